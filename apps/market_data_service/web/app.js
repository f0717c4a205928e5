// The status page of the market data service: plain JavaScript, no build step, nothing
// loaded from elsewhere (the Content-Security-Policy allows this origin only).
//
// - /health, polled each second (public): the state and its reason, the subscriptions
//   with their last-update age, and the quotes-per-second sparkline (the change of
//   stats.quotes_accepted between two polls).
// - /api/v1/subscriptions (needs the API key when the service has one): the sources.
// - WebSocket /api/v1/stream: the live quotes and the gap notices (stream.js).
// Every value is put in the page as text (textContent), never as HTML.
// Modules (shared.js, stream.js), so no "use strict" and no global names.
import { $, KEY_STORAGE, age, headers, page, setKeyStatus, text, addEvent } from "./shared.js";
import { connectStream, refreshAges, restartStream, syncStream } from "./stream.js";

const HEALTH_EVERY_MS = 1000;
const SOURCES_EVERY_MS = 5000;
const AGES_EVERY_MS = 500;
const SPARK_POINTS = 60;

// -- /health: state, subscriptions, quotes per second ---------------------------------------

async function pollHealth() {
  let body;
  try {
    const reply = await fetch("/health", { cache: "no-store" });
    body = await reply.json();
  } catch (error) {
    showHealth("unreachable", "the service does not answer: " + error.message);
    return;
  }
  page.health = body;
  showHealth(body.status, body.reason || "");
  text("feed-state", body.state + (body.websocket_connected ? " (socket open)" : ""));
  text("feed-attempts", `${body.reconnect_attempts} of ${body.max_reconnect_attempts}`);
  const stats = body.stats || {};
  text("redis-state", body.redis_connected ? "connected" : `${stats.redis_state || "down"}: ${stats.redis_last_error || ""}`);
  const cache = body.cache || {};
  text("cache-state", cache.redis_reachable
    ? `${cache.fresh_symbols} fresh, ${cache.stale_symbols} stale, ${cache.missing_symbols} missing`
    : `unreachable: ${cache.error || ""}`);
  sample(stats.quotes_accepted);
  showSubscriptions(body.last_update_age_seconds || {});
}

function showHealth(status, reason) {
  const badge = $("health-status");
  badge.textContent = status;
  badge.className = "badge " + status;
  text("health-reason", reason);
  if (page.healthStatus !== null && page.healthStatus !== status) {
    addEvent(status === "healthy" ? "info" : "link", `service ${page.healthStatus} -> ${status}${reason ? ": " + reason : ""}`);
  }
  page.healthStatus = status;
}

function sample(accepted) {
  const now = performance.now();
  if (typeof accepted === "number" && page.lastAccepted !== null && now > page.lastPollAt) {
    const rate = Math.max(0, (accepted - page.lastAccepted) / ((now - page.lastPollAt) / 1000));
    page.rates.push(rate);
    if (page.rates.length > SPARK_POINTS) page.rates.shift();
    drawSparkline();
  }
  page.lastAccepted = typeof accepted === "number" ? accepted : null;
  page.lastPollAt = now;
}

function drawSparkline() {
  const rates = page.rates;
  const peak = Math.max(1, ...rates);
  const step = 300 / (SPARK_POINTS - 1);
  const offset = SPARK_POINTS - rates.length;
  const points = rates.map((rate, i) => `${((offset + i) * step).toFixed(1)},${(58 - (rate / peak) * 54).toFixed(1)}`);
  $("spark-line").setAttribute("points", points.join(" "));
  text("rate-now", rates.length ? rates[rates.length - 1].toFixed(1) : "-");
  text("rate-peak", Math.max(0, ...rates).toFixed(1));
}

function showSubscriptions(ages) {
  const symbols = Object.keys(ages).sort();
  const body = $("subs-body");
  const rows = symbols.map((symbol) => {
    const row = document.createElement("tr");
    const sources = page.sources[symbol];
    for (const value of [symbol, ages[symbol] === null ? "no quote yet" : age(ages[symbol]) + " ago", sources ? sources.join(", ") : ""]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    return row;
  });
  body.replaceChildren(...rows);
  text("subs-count", `(${symbols.length})`);
  if (symbols.join(",") !== page.symbols.join(",")) {
    page.symbols = symbols;
    syncStream();
  }
}

// -- /api/v1/subscriptions: the sources (needs the key) -----------------------------------------

async function pollSources() {
  try {
    const reply = await fetch("/api/v1/subscriptions", { headers: headers(), cache: "no-store" });
    page.keyNeeded = reply.status === 401;
    if (page.keyNeeded) {
      setKeyStatus(page.key ? "The service refused this API key." : "The service needs an API key: enter it above.", true);
    } else if (reply.ok) {
      page.sources = (await reply.json()).sources || {};
      setKeyStatus(page.key ? "Key accepted; kept in this tab only (sessionStorage)." : "No API key needed.", false);
    }
  } catch (error) {
    // /health says the service is unreachable; nothing more to show here.
  }
  if (!page.ws && !page.retryTimer) connectStream();
}

// -- the API key ---------------------------------------------------------------------------------

function useKey(event) {
  event.preventDefault();
  const value = $("api-key").value.trim();
  $("api-key").value = "";
  page.key = value;
  if (value) sessionStorage.setItem(KEY_STORAGE, value);
  else sessionStorage.removeItem(KEY_STORAGE);
  setKeyStatus(value ? "Checking the key ..." : "No key stored.", false);
  page.keyNeeded = false;
  restartStream();
  pollSources();
}

function forgetKey() {
  page.key = "";
  sessionStorage.removeItem(KEY_STORAGE);
  setKeyStatus("Key forgotten.", false);
  restartStream();
  pollSources();
}

function start() {
  $("key-form").addEventListener("submit", useKey);
  $("key-forget").addEventListener("click", forgetKey);
  if (page.key) setKeyStatus("Using the key stored in this tab.", false);
  pollHealth();
  pollSources();
  setInterval(pollHealth, HEALTH_EVERY_MS);
  setInterval(pollSources, SOURCES_EVERY_MS);
  setInterval(refreshAges, AGES_EVERY_MS);
}

start();
