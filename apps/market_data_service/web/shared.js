// What the status page's modules share: its state, the DOM helpers, exact decimals.
// Loaded by app.js (see there); no build step.

export const KEY_STORAGE = "market-data.api-key";
const MAX_EVENTS = 30;

export const $ = (id) => document.getElementById(id);

export const page = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  keyNeeded: false, // the last API call answered 401
  health: null,
  healthStatus: null,
  symbols: [], // subscribed symbols (from /health), sorted
  sources: {},
  quotes: new Map(), // symbol -> {data, row}
  rates: [],
  lastAccepted: null,
  lastPollAt: null,
  ws: null, // null, "pending" (getting a ticket) or the WebSocket
  wsOpen: false,
  generation: 0, // bumped by restartStream: an older connect attempt gives up
  streamed: new Set(), // symbols this page asked the stream for
  retries: 0,
  retryTimer: null,
  messages: 0,
};

// -- exact decimals (prices arrive as strings; never through a float) ------------------

function decimal(text) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
  if (!match) return null;
  const fraction = match[3] || "";
  const units = BigInt(match[2] + fraction) * (match[1] ? -1n : 1n);
  return { units, scale: fraction.length };
}

function aligned(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return [a.units * 10n ** BigInt(scale - a.scale), b.units * 10n ** BigInt(scale - b.scale), scale];
}

export function compare(aText, bText) {
  const a = decimal(aText);
  const b = decimal(bText);
  if (!a || !b) return 0;
  const [x, y] = aligned(a, b);
  return x === y ? 0 : x > y ? 1 : -1;
}

export function minus(aText, bText) {
  const a = decimal(aText);
  const b = decimal(bText);
  if (!a || !b) return "-";
  const [x, y, scale] = aligned(a, b);
  const diff = x - y;
  const negative = diff < 0n;
  const digits = (negative ? -diff : diff).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = scale ? "." + digits.slice(digits.length - scale) : "";
  return (negative ? "-" : "") + whole + fraction;
}

// -- small helpers ---------------------------------------------------------------------

export function headers() {
  return page.key ? { "X-API-Key": page.key } : {};
}

export function text(id, value) {
  const element = $(id);
  if (element.textContent !== value) element.textContent = value;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "-";
  if (seconds < 60) return seconds.toFixed(1) + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + String(Math.floor(seconds % 60)).padStart(2, "0") + "s";
  return Math.floor(seconds / 3600) + "h" + String(Math.floor((seconds % 3600) / 60)).padStart(2, "0") + "m";
}

export function exchangeAge(timestamp) {
  // Date.parse takes milliseconds at most: trim the exchange's nanoseconds.
  const trimmed = String(timestamp || "").replace(/(\.\d{3})\d+/, "$1");
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, (Date.now() - at) / 1000);
}

function clock() {
  return new Date().toTimeString().slice(0, 8);
}

export function addEvent(kind, message) {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("time");
  time.textContent = clock();
  item.append(time, " ", message);
  const list = $("events");
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  $("events-empty").hidden = true;
}

export function setKeyStatus(message, bad) {
  text("key-status", message);
  $("key-status").className = bad ? "hint bad" : "hint";
}
