// The lobby: live matches and recent results kept current by /ws/lobby, the ladder, and the leaderboard.
//
// The lobby socket opens before the lists are fetched, so no match that starts or ends in
// between is missed; frames that arrive before the fetch answers are replayed on top of it.
// The ladder's rated matches run unpaced, dozens a second: the featured ones (paced for
// watching) stay at the top of "Live now", and both lists keep a bounded number of rows. The
// leaderboard is ranked by rating; rating_changed frames refetch it (at most once in a while,
// however many arrive) and mark the agent's row with the change its last rated match made. The
// ladder panel (GET /api/ladder) shows the slots, the matches of the last hour and the queue.

import {
  formatNumber, gameBadge, getJSON, h, keepSocket, loadGames, refreshTimes, relativeTime,
  replaceChildren, seatMark, showConnection, stepsText, winnerOf,
} from "./app.js";

const RECENT_PAGE = 15;
const LIVE_SHOWN = 20; // live rows kept: the featured ones, then the newest others
const RECENT_SHOWN = 60; // result rows kept as new ones arrive
const BOARD_REFRESH_MS = 1000; // the leaderboard is refetched at most this often
const LADDER_REFRESH_MS = 10000;
const QUEUE_SHOWN = 5;

const liveList = document.getElementById("live-matches");
const recentList = document.getElementById("recent-matches");
const moreButton = document.getElementById("recent-more");
const tabs = document.getElementById("game-tabs");
const boardBody = document.querySelector("#leaderboard tbody");

let games = [];
let selectedGame = null;
let recentCursor = null;
let isLoaded = false;
const pending = []; // lobby frames received before the first fetch answered
const ended = new Set(); // ids of matches seen ending, so a late "live" copy never resurrects them
let boardTimer = null;
let ladderDoc = null;
const ratingMoves = new Map(); // agent id -> {delta, matchId} of its last rating_changed frame
const justMoved = new Set(); // agent ids whose rating changed since the leaderboard was last drawn

// -- match rows ----------------------------------------------------------------------------------

function versus(match, winner) {
  return h(
    "span",
    { class: "versus" },
    match.seats.map((seat, i) => [
      i > 0 ? h("span", { class: "vs" }, "vs") : null,
      h(
        "span",
        { class: `who${winner === i ? " winner" : ""}`, dataset: { seat: i } },
        seatMark(i),
        h("span", { class: "who-name" }, seat.name),
      ),
    ]),
  );
}

function matchRow(match, { winner, sub, side }) {
  return h(
    "li",
    { class: "match-item", dataset: { matchId: match.id, status: match.status, game: match.game } },
    h(
      "a",
      { class: "match-link", href: `/matches/${match.id}`, title: match.reason || null },
      h("span", { class: "match-main" },
        versus(match, winner),
        h("span", { class: "match-sub" }, gameBadge(match.game, games), sub)),
      h("span", { class: "meta" }, side),
    ),
  );
}

function isFeatured(match) {
  return Boolean(match.tags && match.tags.featured);
}

function liveRow(match) {
  const row = matchRow(match, {
    winner: null,
    sub: h("span", { class: "muted" }, `#${match.id} · `, h("span", { class: "live-word" }, "live"),
      isFeatured(match) ? [" · ", h("span", { class: "tag featured" }, "featured")] : null),
    side: [h("span", { class: "pulse", "aria-hidden": "true" }), relativeTime(match.started_at || match.created_at, "started ")],
  });
  row.dataset.featured = String(isFeatured(match));
  return row;
}

function resultText(match, winner) {
  if (match.status === "aborted") return "aborted";
  if (winner === null) return "draw";
  return `${match.seats[winner].name} won`;
}

function recentRow(match) {
  const winner = match.status === "finished" ? winnerOf(match.seats) : null;
  const kind = match.status === "aborted" ? "aborted" : winner === null ? "draw" : "win";
  return matchRow(match, {
    winner,
    sub: h("span", { class: "muted" }, `#${match.id} · ${stepsText(match)} · `,
      h("span", { class: "result", dataset: { result: kind } }, resultText(match, winner))),
    side: relativeTime(match.finished_at || match.created_at),
  });
}

function findRow(list, id) {
  return list.querySelector(`[data-match-id="${id}"]`);
}

function updateCounts() {
  const live = liveList.children.length;
  document.getElementById("live-count").textContent = String(live);
  document.getElementById("live-empty").hidden = live > 0;
  document.getElementById("recent-empty").hidden = recentList.children.length > 0;
}

function addLive(match) {
  if (ended.has(match.id) || findRow(liveList, match.id)) return;
  const row = liveRow(match);
  // Featured matches first (newest on top), then the others, newest first.
  const firstOther = liveList.querySelector('[data-featured="false"]');
  if (isFeatured(match)) liveList.prepend(row);
  else liveList.insertBefore(row, firstOther);
  const others = liveList.querySelectorAll('[data-featured="false"]');
  for (let i = LIVE_SHOWN; i < others.length; i++) others[i].remove();
}

function addRecent(match, { atTop }) {
  const old = findRow(recentList, match.id);
  if (old) old.remove();
  const row = recentRow(match);
  if (atTop) recentList.prepend(row);
  else recentList.append(row);
  while (atTop && recentList.children.length > RECENT_SHOWN) recentList.lastElementChild.remove();
}

function onLobbyFrame(msg) {
  if (!isLoaded) {
    pending.push(msg);
    return;
  }
  if (msg.type === "match_started") {
    addLive(msg.match);
  } else if (msg.type === "match_ended") {
    ended.add(msg.match.id);
    findRow(liveList, msg.match.id)?.remove();
    addRecent(msg.match, { atTop: true });
    const row = findRow(recentList, msg.match.id);
    row.classList.add("fresh");
    if (msg.match.game === selectedGame) scheduleLeaderboard();
  } else if (msg.type === "rating_changed") {
    const previous = typeof msg.previous === "number" ? msg.previous : msg.rating;
    ratingMoves.set(msg.agent_id, { delta: msg.rating - previous, matchId: msg.match_id });
    justMoved.add(msg.agent_id);
    if (!msg.game || msg.game === selectedGame) scheduleLeaderboard();
  }
  updateCounts();
}

async function loadLists() {
  const [live, recent] = await Promise.all([
    getJSON("/api/matches?status=live&limit=50"),
    getJSON(`/api/matches?status=finished&limit=${RECENT_PAGE}`),
  ]);
  replaceChildren(liveList);
  // The API lists newest first; prepend oldest first to keep that order.
  for (const match of [...live.items].reverse()) addLive(match);
  replaceChildren(recentList);
  for (const match of recent.items) addRecent(match, { atTop: false });
  recentCursor = recent.next;
  moreButton.hidden = !recentCursor;
  isLoaded = true;
  for (const msg of pending.splice(0)) onLobbyFrame(msg);
  updateCounts();
}

async function loadOlder() {
  if (!recentCursor) return;
  moreButton.disabled = true;
  try {
    const page = await getJSON(`/api/matches?status=finished&limit=${RECENT_PAGE}&cursor=${encodeURIComponent(recentCursor)}`);
    for (const match of page.items) if (!findRow(recentList, match.id)) addRecent(match, { atTop: false });
    recentCursor = page.next;
    moreButton.hidden = !recentCursor;
  } finally {
    moreButton.disabled = false;
  }
}

// -- leaderboard ---------------------------------------------------------------------------------

function scheduleLeaderboard() {
  // At most one refetch a second, however many results arrive (the ladder rates dozens a second).
  if (boardTimer === null) boardTimer = setTimeout(loadLeaderboard, BOARD_REFRESH_MS);
}

function selectGame(name) {
  selectedGame = name;
  for (const tab of tabs.children) {
    const isSelected = tab.dataset.game === name;
    tab.setAttribute("aria-selected", String(isSelected));
    tab.tabIndex = isSelected ? 0 : -1;
  }
  history.replaceState(null, "", `#game=${name}`);
  loadLeaderboard();
  renderLadder();
}

async function loadLeaderboard() {
  clearTimeout(boardTimer); // this load supersedes a scheduled one
  boardTimer = null;
  const game = selectedGame;
  const table = document.getElementById("leaderboard");
  table.dataset.game = game;
  let doc;
  try {
    doc = await getJSON(`/api/leaderboard?game=${encodeURIComponent(game)}`);
  } catch (error) {
    replaceChildren(boardBody, h("tr", {}, h("td", { colspan: 8, class: "error-cell" }, error.message)));
    return;
  }
  if (game !== selectedGame) return; // a newer selection is loading
  const rows = doc.items.map((row) =>
    h(
      "tr",
      { dataset: { agentId: row.agent_id }, class: justMoved.has(row.agent_id) ? "moved" : null },
      h("td", { class: "num rank" }, String(row.rank)),
      h(
        "td",
        { class: "agent-cell" },
        h("a", { href: `/agents/${row.agent_id}` }, row.name),
        h("span", { class: "owner-line muted small" }, `by ${row.owner} · v${row.version}`),
      ),
      ratingCell(row),
      h("td", { class: "num" }, String(row.matches)),
      h("td", { class: "num wins" }, String(row.wins)),
      h("td", { class: "num draws" }, String(row.draws)),
      h("td", { class: "num losses" }, String(row.losses)),
      h("td", { class: `num opt${row.faults ? " faults" : ""}` }, String(row.faults)),
    ),
  );
  replaceChildren(boardBody, rows);
  for (const row of doc.items) justMoved.delete(row.agent_id);
  document.getElementById("leaderboard-empty").hidden = rows.length > 0;
}

function ratingCell(row) {
  const isProvisional = row.rated_matches === 0;
  const move = ratingMoves.get(row.agent_id);
  const title = isProvisional
    ? "No rated match yet: every agent starts at 1000"
    : `skill ${formatNumber(row.mu, 2)} ± ${formatNumber(row.sigma, 2)} over ${row.rated_matches} rated ` +
      `match${row.rated_matches === 1 ? "" : "es"}; the rating is 1000 + 40 × (skill − 3 × uncertainty)`;
  let delta = null;
  if (move && Math.round(move.delta) !== 0) {
    const up = move.delta > 0;
    delta = h("span", { class: `delta ${up ? "up" : "down"}`, title: `after match #${move.matchId}` },
      `${up ? "+" : "−"}${Math.abs(Math.round(move.delta))}`);
  }
  return h(
    "td",
    { class: `num rating${isProvisional ? " provisional" : ""}`, title, dataset: { rating: row.rating } },
    h("span", { class: "rating-value" }, String(Math.round(row.rating))),
    delta,
  );
}

function buildTabs() {
  replaceChildren(
    tabs,
    games.map((game) =>
      h("button", {
        type: "button", role: "tab", class: "tab", dataset: { game: game.name },
        "aria-selected": "false", onclick: () => selectGame(game.name),
      }, game.title),
    ),
  );
  tabs.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const names = games.map((g) => g.name);
    const step = event.key === "ArrowRight" ? 1 : -1;
    const next = names[(names.indexOf(selectedGame) + step + names.length) % names.length];
    selectGame(next);
    tabs.querySelector(`[data-game="${next}"]`).focus();
  });
  const wanted = new URLSearchParams(location.hash.slice(1)).get("game");
  const names = games.map((g) => g.name);
  selectGame(names.includes(wanted) ? wanted : names.includes("connectx") ? "connectx" : names[0]);
}

// -- the ladder ------------------------------------------------------------------------------------

async function loadLadder() {
  try {
    ladderDoc = await getJSON("/api/ladder");
  } catch {
    ladderDoc = null;
  }
  renderLadder();
}

function waitingText(entry) {
  if (entry.playing) return "playing now";
  if (entry.waiting_s === null) return "has not played yet";
  return `waiting ${Math.round(entry.waiting_s)} s`;
}

function renderLadder() {
  const panel = document.getElementById("ladder");
  const doc = ladderDoc;
  if (!doc || !doc.running) {
    document.getElementById("ladder-rate").textContent = "";
    document.getElementById("ladder-summary").textContent = doc ? "The ladder is off on this server." : "";
    replaceChildren(document.getElementById("ladder-queue"));
    document.getElementById("ladder-empty").hidden = true;
    return;
  }
  panel.dataset.game = selectedGame || "";
  document.getElementById("ladder-rate").textContent = `${formatNumber(doc.matches_last_hour, 0)} rated matches in the last hour`;
  const game = doc.games.find((g) => g.game === selectedGame);
  const slots = `${doc.live.rated} of ${doc.slots.rated} rated slots busy (unpaced) · ` +
    `${doc.live.featured} of ${doc.slots.featured} featured (paced for watching)`;
  document.getElementById("ladder-summary").textContent = game
    ? `${slots}. ${gameTitleOf(selectedGame)}: ${game.agents} agents, ${game.matches_last_hour} matches in the last hour; next in line:`
    : slots;
  const queue = game ? game.queue.slice(0, QUEUE_SHOWN) : [];
  replaceChildren(
    document.getElementById("ladder-queue"),
    queue.map((entry) => h(
      "li",
      { dataset: { agentId: entry.agent_id } },
      h("a", { href: `/agents/${entry.agent_id}` }, entry.name),
      h("span", { class: "muted small" },
        ` v${entry.version} · ${entry.version_matches} rated with this version · ${waitingText(entry)}`),
    )),
  );
  document.getElementById("ladder-empty").hidden = !game || queue.length > 0;
}

function gameTitleOf(name) {
  const game = games.find((g) => g.name === name);
  return game ? game.title : name;
}

// -- sandbox status in the footer ----------------------------------------------------------------

async function loadHealth() {
  let health;
  try {
    health = await getJSON("/api/health");
  } catch (error) {
    health = error.body; // 503: the server still says what fails
  }
  if (!health || !health.sandbox) return; // the footer note is optional
  const layers = health.sandbox.layers;
  const active = layers.filter((layer) => layer.active).length;
  const status = health.status === "ok" ? "" : ` · status: ${health.status}`;
  document.getElementById("sandbox-status").textContent =
    `v${health.version} · sandbox: ${active} of ${layers.length} layers active${status}`;
}

async function main() {
  moreButton.addEventListener("click", loadOlder);
  keepSocket("/ws/lobby", {
    onMessage: onLobbyFrame,
    onState: (state) => {
      showConnection(state);
      // After a reconnect, frames may have been missed: fetch the lists again.
      if (state === "open" && isLoaded) {
        isLoaded = false;
        loadLists().catch(() => {});
      }
    },
  });
  games = await loadGames();
  buildTabs();
  await loadLists();
  loadHealth();
  loadLadder();
  setInterval(loadLadder, LADDER_REFRESH_MS);
  refreshTimes();
}

main().catch((error) => {
  document.getElementById("live-empty").textContent = `Could not load the lobby: ${error.message}`;
});
