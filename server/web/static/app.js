// Shared helpers of the Agent Arena pages: JSON fetches, DOM building, sockets, formatting.
//
// Every page module imports from here. Text from the server (names, reasons) only ever
// reaches the page through textContent, never as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

/** GET a JSON document from the API; throws an Error carrying the API's message and status. */
export async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    error.body = body; // a 503 health document still says what fails
    throw error;
  }
  return body;
}

/**
 * Build an element: h("a", {href: "/", class: "x", dataset: {id: 3}}, "text", child).
 * Attributes set to null, undefined or false are left out; children may be nested arrays.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element, built like h(). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") {
      for (const [name, v] of Object.entries(value)) node.dataset[name] = String(v);
    } else if (key === "text") {
      node.textContent = String(value);
    } else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of node. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** The integer id at the end of the page's path (/matches/12 -> 12), or null. */
export function pathId() {
  const last = location.pathname.split("/").filter(Boolean).pop();
  const id = Number(last);
  return Number.isInteger(id) && id > 0 ? id : null;
}

// -- games -----------------------------------------------------------------------------------

const FALLBACK_TITLES = { tictactoe: "Tic-tac-toe", connectx: "ConnectX", rps: "Rock Paper Scissors" };
let gamesPromise = null;

/** The games the server knows ({name, title, players, config}), fetched once per page. */
export function loadGames() {
  if (!gamesPromise) {
    gamesPromise = getJSON("/api/games")
      .then((doc) => doc.items)
      .catch(() => Object.entries(FALLBACK_TITLES).map(([name, title]) => ({ name, title, players: 2, config: {} })));
  }
  return gamesPromise;
}

/** A game's display title (falls back to its name). */
export function gameTitle(name, games = []) {
  const game = games.find((g) => g.name === name);
  return game ? game.title : FALLBACK_TITLES[name] || name;
}

export function gameBadge(name, games) {
  return h("span", { class: "game-badge", dataset: { game: name } }, gameTitle(name, games));
}

// -- matches ---------------------------------------------------------------------------------

/**
 * The winning seat index of a finished match from its seats' rewards, as the server decides
 * it for `end` frames: the single best reward, and not everybody equal. Null for a draw.
 */
export function winnerOf(seats) {
  const rewards = seats.map((s) => s.reward);
  const known = rewards.filter((r) => r !== null && r !== undefined);
  if (known.length === 0) return null;
  const best = Math.max(...known);
  const leaders = rewards.flatMap((r, i) => (r === best ? [i] : []));
  return leaders.length === 1 && new Set(rewards).size > 1 ? leaders[0] : null;
}

/**
 * "9 steps": the steps played, as the match page numbers them. A match document counts
 * stored steps, and steps[0] is the initial state.
 */
export function stepsText(match) {
  const played = Math.max(0, (match.steps || 0) - 1);
  return `${played} ${played === 1 ? "step" : "steps"}`;
}

/** The little colored mark of a seat (seat 0, 1, ...), used wherever a seat is named. */
export function seatMark(seat) {
  return h("span", { class: `mark mark-${seat + 1}`, "aria-hidden": "true" });
}

/** A seat's name linked to its agent page, with its mark. */
export function seatLink(seat, index) {
  return h(
    "a",
    { class: "seat-link", href: `/agents/${seat.agent_id}`, dataset: { seat: index } },
    seatMark(index),
    h("span", { class: "seat-name" }, seat.name),
  );
}

/** A one-word status badge: live, finished, aborted, pending. */
export function statusBadge(status) {
  return h("span", { class: "status-badge", dataset: { status } }, status);
}

// -- time ------------------------------------------------------------------------------------

/** "just now", "42 s ago", "5 min ago", "3 h ago", or a date, for an epoch time in seconds. */
export function timeAgo(epochSeconds) {
  if (!epochSeconds) return "";
  const seconds = Math.max(0, Date.now() / 1000 - epochSeconds);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return formatDate(epochSeconds);
}

/** A readable local date and time for an epoch time in seconds. */
export function formatDate(epochSeconds) {
  if (!epochSeconds) return "";
  return new Date(epochSeconds * 1000).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

/** A <time> element that keeps its relative text fresh (see refreshTimes). */
export function relativeTime(epochSeconds, prefix = "") {
  const node = h("time", {
    datetime: epochSeconds ? new Date(epochSeconds * 1000).toISOString() : null,
    title: formatDate(epochSeconds),
    dataset: { epoch: epochSeconds || 0, prefix },
  });
  node.textContent = `${prefix}${timeAgo(epochSeconds)}`;
  return node;
}

/** Refresh every relative time on the page every few seconds. */
export function refreshTimes(intervalMs = 5000) {
  setInterval(() => {
    for (const node of document.querySelectorAll("time[data-epoch]")) {
      node.textContent = `${node.dataset.prefix || ""}${timeAgo(Number(node.dataset.epoch))}`;
    }
  }, intervalMs);
}

export function formatNumber(value, digits = 2) {
  if (value === null || value === undefined) return "–";
  return Number.isInteger(value) ? String(value) : value.toFixed(digits).replace(/\.?0+$/, "");
}

// -- sockets ---------------------------------------------------------------------------------

/** The ws:// or wss:// URL of a path on this server. */
export function wsURL(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

/**
 * A WebSocket that reconnects (with backoff) until stop() is called. Callbacks:
 * onMessage(msg) for each JSON frame, onState("connecting" | "open" | "closed"), and
 * shouldReconnect(closeEvent) to refuse reconnecting (e.g. after a final frame).
 */
export function keepSocket(path, { onMessage, onState = () => {}, shouldReconnect = () => true }) {
  let socket = null;
  let stopped = false;
  let delayMs = 500;
  let timer = null;

  function connect() {
    onState("connecting");
    socket = new WebSocket(wsURL(path));
    socket.addEventListener("open", () => {
      delayMs = 500;
      onState("open");
    });
    socket.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      onMessage(msg);
    });
    socket.addEventListener("close", (event) => {
      onState("closed");
      if (stopped || !shouldReconnect(event)) return;
      timer = setTimeout(connect, delayMs);
      delayMs = Math.min(delayMs * 2, 10000);
    });
  }

  connect();
  window.addEventListener("pagehide", () => stop());

  function stop() {
    stopped = true;
    clearTimeout(timer);
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  }
  return { stop };
}

/** Show the state of the page's live connection in the top bar. */
export function showConnection(state) {
  const node = document.getElementById("conn");
  if (!node) return;
  node.dataset.state = state;
  node.textContent = { open: "live", connecting: "connecting…", closed: "offline", done: "" }[state] ?? state;
}

/** Put a short error message in a container. */
export function showError(container, message) {
  replaceChildren(container, h("p", { class: "error-box", role: "alert" }, message));
}
