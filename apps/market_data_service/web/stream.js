// The live stream of the status page: WebSocket /api/v1/stream, the quotes table and the
// gap notices. With an API key, a one-time ticket from POST /api/v1/stream/ticket goes in
// the URL: a browser cannot set headers on a WebSocket (docs/streaming.md).
import { $, addEvent, age, compare, exchangeAge, headers, minus, page, setKeyStatus, text } from "./shared.js";

const MAX_SYMBOLS = 200; // rows of the live table; the rest are listed, not streamed
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;
// Symbols of the last `coalesced` message whose next update has not come yet: the service
// replaced older updates with it while the page was behind (latest-value), so its seq
// jump is those replaced updates, not a gap (docs/streaming.md, "Slow clients").
const replaced = new Set();

function setStream(state) {
  text("stream-state", `${state} · ${page.messages} messages`);
}

function retryLater(why) {
  page.ws = null;
  page.wsOpen = false;
  page.streamed.clear();
  page.retries += 1;
  const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(page.retries - 1, 10));
  setStream(`${why}; retrying in ${(delay / 1000).toFixed(1)}s`);
  clearTimeout(page.retryTimer);
  page.retryTimer = setTimeout(() => {
    page.retryTimer = null;
    connectStream();
  }, delay);
}

export async function connectStream() {
  if (page.ws) return;
  if (page.keyNeeded && !page.key) {
    setStream("waiting for the API key");
    return;
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let url = `${scheme}//${location.host}/api/v1/stream`;
  const generation = page.generation;
  page.ws = "pending";
  setStream("connecting");
  if (page.key) {
    try {
      const reply = await fetch("/api/v1/stream/ticket", { method: "POST", headers: headers() });
      if (generation !== page.generation) return;
      if (reply.status === 401) {
        page.keyNeeded = true;
        setKeyStatus("The service refused this API key.", true);
        retryLater("the API key was refused");
        return;
      }
      if (!reply.ok) {
        retryLater(`no ticket (HTTP ${reply.status})`);
        return;
      }
      const { ticket } = await reply.json();
      if (generation !== page.generation) return;
      url += "?ticket=" + encodeURIComponent(ticket);
    } catch (error) {
      if (generation === page.generation) retryLater("no ticket: " + error.message);
      return;
    }
  }
  const ws = new WebSocket(url);
  page.ws = ws;
  ws.onopen = () => {
    page.retries = 0;
    page.wsOpen = true;
    setStream("open");
    addEvent("link", "stream connected");
    syncStream();
  };
  ws.onmessage = (event) => {
    let parsed;
    try {
      parsed = JSON.parse(event.data);
    } catch (error) {
      addEvent("error", "a stream frame that is not JSON");
      return;
    }
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) handle(message);
    setStream("open");
  };
  ws.onclose = (event) => {
    if (page.ws !== ws) return; // replaced (a new key)
    const why = `stream closed (${event.code}${event.reason ? ": " + event.reason : ""})`;
    if (page.wsOpen) addEvent("link", why + ", reconnecting");
    retryLater(why);
  };
}

export function restartStream() {
  const ws = page.ws;
  page.generation += 1;
  page.ws = null;
  page.wsOpen = false;
  page.streamed.clear();
  clearTimeout(page.retryTimer);
  page.retryTimer = null;
  page.retries = 0;
  if (ws && ws !== "pending") ws.close(1000, "new API key");
  connectStream();
}

export function syncStream() {
  const ws = page.ws;
  if (!page.wsOpen || !ws || ws === "pending") return;
  const wanted = new Set(page.symbols.slice(0, MAX_SYMBOLS));
  const add = [...wanted].filter((s) => !page.streamed.has(s));
  const drop = [...page.streamed].filter((s) => !wanted.has(s));
  if (add.length) ws.send(JSON.stringify({ action: "subscribe", symbols: add }));
  if (drop.length) ws.send(JSON.stringify({ action: "unsubscribe", symbols: drop }));
  page.streamed = wanted;
  for (const symbol of drop) {
    const known = page.quotes.get(symbol);
    if (known) known.row.remove();
    page.quotes.delete(symbol);
  }
  for (const symbol of add) quoteRow(symbol);
  $("quotes-empty").hidden = page.quotes.size > 0;
}

function quoteRow(symbol) {
  let known = page.quotes.get(symbol);
  if (known) return known;
  const row = document.createElement("tr");
  row.dataset.symbol = symbol;
  for (const name of ["symbol", "bid", "ask", "mid", "spread", "size", "age", "seq"]) {
    const cell = document.createElement("td");
    cell.className = name;
    cell.textContent = name === "symbol" ? symbol : "-";
    row.append(cell);
  }
  // Keep the rows sorted by symbol.
  const body = $("quotes-body");
  const after = [...body.children].find((other) => other.dataset.symbol > symbol);
  body.insertBefore(row, after || null);
  known = { data: null, row };
  page.quotes.set(symbol, known);
  return known;
}

function handle(message) {
  page.messages += 1;
  switch (message.type) {
    case "snapshot":
    case "price":
      if (message.data) showQuote(message.data, message.type === "price");
      break;
    case "resync":
      addEvent("gap", `resync ${(message.symbols || []).join(", ") || "(all)"}: ${message.reason}`);
      break;
    case "coalesced":
      for (const symbol of message.symbols || []) replaced.add(symbol);
      addEvent("info", `behind: ${message.replaced} older updates replaced (${(message.symbols || []).join(", ")})`);
      break;
    case "error":
      addEvent("error", "stream: " + message.message);
      break;
    default:
      break; // subscriptions acknowledgements and future types
  }
}

function flash(cell, direction) {
  cell.classList.remove("up", "down");
  void cell.offsetWidth; // restart the animation
  cell.classList.add(direction > 0 ? "up" : "down");
}

function showQuote(data, live) {
  if (!page.streamed.has(data.symbol)) return;
  const known = quoteRow(data.symbol);
  const before = known.data;
  const coalesced = replaced.delete(data.symbol); // only its next update follows the replacing
  if (before && before.epoch === data.epoch && data.seq <= before.seq) return; // never go back
  if (live && !coalesced && before && before.epoch === data.epoch && data.seq > before.seq + 1) {
    addEvent("gap", `${data.symbol}: seq ${before.seq} -> ${data.seq}, ${data.seq - before.seq - 1} not seen`);
  }
  const values = {
    bid: data.bid,
    ask: data.ask,
    mid: data.mid,
    spread: minus(data.ask, data.bid),
  };
  const cells = known.row.children;
  const index = { bid: 1, ask: 2, mid: 3, spread: 4 };
  for (const [name, value] of Object.entries(values)) {
    const cell = cells[index[name]];
    if (before) {
      const previous = name === "spread" ? minus(before.ask, before.bid) : before[name];
      const direction = compare(value, previous);
      if (direction) flash(cell, direction);
    }
    cell.textContent = value;
  }
  cells[5].textContent = `${data.bid_size} x ${data.ask_size}`;
  cells[6].textContent = age(exchangeAge(data.timestamp));
  cells[7].textContent = String(data.seq);
  known.data = data;
  $("quotes-empty").hidden = true;
}

export function refreshAges() {
  for (const known of page.quotes.values()) {
    if (known.data) known.row.children[6].textContent = age(exchangeAge(known.data.timestamp));
  }
}
