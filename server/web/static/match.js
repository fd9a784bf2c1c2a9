// The match page: the board live over /ws/matches/{id}, the move list, then replay and result.
//
// Theory of operation: the spectator socket sends a `snapshot` (the match, its current state
// and its most recent steps, a bounded number of them), then one `event` per step, then
// `end`; a finished match is served the same way at once. `steps[i]` is the step of the event
// with seq i + 1; the steps before the snapshot's are holes until needed, and are then fetched
// a page at a time from GET /api/matches/{id}/events (a long match has hundreds of thousands:
// only what is shown is loaded). The page shows `steps[index]`. While the match is live, the
// view follows the newest step; once `end` arrives the replay controls appear and `index`
// moves only when the spectator asks (a seek to a step not loaded yet draws it once fetched).
// The move list shows the loaded tail, `steps[movesFrom..]`, and a button loads earlier ones.
// A dropped socket reconnects and the new snapshot is merged in (a step never changes, so no
// step is lost or doubled).

import {
  formatDate, formatNumber, gameBadge, getJSON, h, keepSocket, loadGames, pathId, replaceChildren,
  seatLink, seatMark, showConnection, showError, statusBadge, winnerOf,
} from "./app.js";
import { FAULTS, createBoard } from "./boards.js";

const BASE_STEP_MS = 600; // one step per this many ms at 1x
const PAGE_EVENTS = 500; // events per request for steps not loaded (the endpoint allows up to 1000)
const LOOK_BACK = 24; // earlier steps a board may draw from (the rps history shows the last 24 rounds)

const matchId = pathId();
const $ = (id) => document.getElementById(id);

let games = [];
let match = null; // the match document (seats gain status and reward at the end)
let board = null;
let steps = []; // steps[seq - 1]: {step, actions, statuses, rewards, state, faults}, or a hole until loaded
let movesFrom = 0; // the move list shows steps[movesFrom..], all loaded
let loading = Promise.resolve(); // fetches of missing steps run one after the other
let index = 0;
let lastSeq = 0;
let result = null;
let isEnded = false;
let isFatal = false;
let playTimer = null;

// -- header --------------------------------------------------------------------------------------

function symbolFor(seat) {
  const game = match.game;
  if (game === "tictactoe") return h("span", { class: `seat-symbol symbol-${seat + 1}` }, seat === 0 ? "X" : "O");
  return h("span", { class: `seat-symbol disc-symbol disc-${seat + 1}`, "aria-hidden": "true" });
}

function renderHeader() {
  document.title = `Match #${match.id} · ${match.seats.map((s) => s.name).join(" vs ")} · Agent Arena`;
  $("match-title").textContent = `Match #${match.id}`;
  replaceChildren($("match-game"), gameBadge(match.game, games));
  replaceChildren($("match-status"), statusBadge(match.status));
  const started = match.started_at || match.created_at;
  const parts = [`seed ${match.seed}`];
  if (match.game === "connectx") parts.unshift(`${match.config.rows}×${match.config.columns}, ${match.config.inarow} in a row`);
  if (match.game === "rps") parts.unshift(`${match.config.episodeSteps - 1} rounds`);
  if (started) parts.push(`started ${formatDate(started)}`);
  if (match.tags && match.tags.started_by) parts.push(`by ${match.tags.started_by}`);
  // Only the ladder's own matches move ratings; a challenge says so.
  if (match.rated !== undefined) parts.push(match.rated ? "rated ladder match" : "unrated");
  $("match-meta").textContent = parts.join(" · ");
  renderSeats();
}

function renderSeats() {
  const cards = match.seats.map((seat, i) => {
    const state = h("div", { class: "seat-state", dataset: { seatState: i } });
    return h(
      "div",
      { class: "seat-card", dataset: { seat: i } },
      symbolFor(i),
      h("div", { class: "seat-info" },
        seatLink(seat, i),
        h("div", { class: "muted small" }, `by ${seat.owner} · v${seat.version}`)),
      state,
    );
  });
  replaceChildren($("seats"), cards.flatMap((card, i) => (i > 0 ? [h("span", { class: "seats-vs" }, "vs"), card] : [card])));
  updateSeatStates();
}

/** The line under each seat: to move (live), or its final status and reward. */
function updateSeatStates() {
  const state = steps[index] && steps[index].state;
  const toAct = new Set((state && state.to_act) || []);
  const winner = result ? result.winner : null;
  match.seats.forEach((seat, i) => {
    const card = document.querySelector(`.seat-card[data-seat="${i}"]`);
    const line = card.querySelector(".seat-state");
    const atEnd = isEnded && index === steps.length - 1;
    // In a simultaneous game every seat is always to move: nothing worth pointing out.
    const isToMove = !atEnd && toAct.has(i) && board !== null && board.isTurnBased;
    card.classList.toggle("to-move", isToMove);
    card.classList.toggle("winner", atEnd && winner === i);
    if (atEnd && seat.status) {
      line.textContent = `${winner === i ? "winner · " : ""}${seat.status} · ${formatNumber(seat.reward)}`;
      line.dataset.status = seat.status;
    } else {
      line.textContent = isToMove ? "to move" : "";
      delete line.dataset.status;
    }
  });
}

// -- board and step caption ------------------------------------------------------------------------

function ensureBoard() {
  if (board) return;
  board = createBoard(match.game, match.config, match.seats);
  const host = $("board");
  host.dataset.game = match.game;
  replaceChildren(host, board.el);
}

function show(newIndex) {
  index = Math.max(0, Math.min(newIndex, steps.length - 1));
  if (!board || steps.length === 0) return;
  const wanted = index;
  if (!steps[index]) { // not loaded yet: fetch it (with the steps a board looks back at), then draw
    load(index - LOOK_BACK, index + PAGE_EVENTS - LOOK_BACK).then(() => {
      if (index === wanted && steps[index]) show(index);
    });
    return;
  }
  if (!isLoaded(index - LOOK_BACK, index)) {
    load(index - LOOK_BACK, index).then(() => {
      if (index === wanted) board.render(steps, index);
    });
  }
  board.render(steps, index);
  const current = steps[index];
  const lastStep = steps[steps.length - 1].step;
  const host = $("board");
  host.dataset.step = String(current.step);
  host.dataset.index = String(index);
  const label = $("step-label");
  label.dataset.step = String(current.step);
  label.textContent = isEnded ? `Step ${current.step} of ${lastStep}` : `Step ${current.step}`;
  $("turn-label").textContent = turnText(current);
  const seek = $("replay-seek");
  seek.value = String(index);
  seek.setAttribute("aria-valuetext", `step ${current.step}`);
  updateSeatStates();
  markCurrentMove();
}

function turnText(step) {
  const state = step.state || {};
  if (isEnded && index === steps.length - 1) return resultHeadline();
  if (!isEnded && match.status !== "live") return match.status === "pending" ? "waiting to start" : "";
  const toAct = state.to_act || [];
  if (board && board.isTurnBased && toAct.length === 1) return `${match.seats[toAct[0]].name} to move`;
  return "";
}

// -- moves ----------------------------------------------------------------------------------------

function moveItem(step, i) {
  const faults = (step.statuses || []).flatMap((status, seat) =>
    FAULTS.has(status) ? [h("span", { class: "fault", dataset: { status } }, `${match.seats[seat].name}: ${status}`)] : []);
  let body;
  const acted = (step.actions || []).flatMap((a, seat) => (a === null || a === undefined ? [] : [seat]));
  if (board && !board.isTurnBased && acted.length > 1) {
    body = acted.map((seat, k) => [
      k > 0 ? h("span", { class: "vs" }, "vs") : null,
      h("span", { class: "move-act" }, seatMark(seat), board.describe(step, seat)),
    ]);
  } else {
    body = acted.map((seat) =>
      h("span", { class: "move-act" }, seatMark(seat), h("span", { class: "move-who" }, match.seats[seat].name),
        h("span", { class: "move-what" }, board ? board.describe(step, seat) : JSON.stringify(step.actions[seat]))));
  }
  return h("li", { class: "move", dataset: { step: step.step, index: i } },
    h("span", { class: "move-no" }, String(step.step)), h("span", { class: "move-body" }, body, faults));
}

function moveItems(from, to) {
  const items = [];
  for (let i = from; i < to; i++) {
    const step = steps[i];
    if (step && !(i === 0 && step.step === 0)) items.push(moveItem(step, i));
  }
  return items;
}

function rebuildMoves() {
  movesFrom = loadedFrom();
  replaceChildren($("moves"), moveItems(movesFrom, steps.length));
  updateMoveCount();
}

function appendMove(i) {
  $("moves").append(moveItem(steps[i], i));
  updateMoveCount();
}

/** The "earlier moves" button: the page before the list's first move. */
async function showEarlierMoves() {
  const button = $("moves-earlier");
  button.disabled = true;
  const from = Math.max(0, movesFrom - PAGE_EVENTS);
  await load(from, movesFrom - 1);
  const first = loadedFrom(from, movesFrom);
  if (first < movesFrom) {
    const list = $("moves");
    const keep = list.scrollHeight - list.scrollTop;
    list.prepend(...moveItems(first, movesFrom));
    list.scrollTop = list.scrollHeight - keep; // the moves in view stay in view
    movesFrom = first;
  }
  button.disabled = false;
  updateMoveCount();
  markCurrentMove();
}

function updateMoveCount() {
  const count = Math.max(0, steps.length - 1); // steps[0] is the initial state, not a move
  const shown = $("moves").children.length;
  $("moves-empty").hidden = count > 0;
  $("moves-count").textContent = count ? `${count} ${count === 1 ? "step" : "steps"}` : "";
  const earlier = $("moves-earlier");
  earlier.hidden = movesFrom <= 1 || shown === 0;
  earlier.textContent = `Show earlier moves (${movesFrom - 1} more)`;
}

// -- steps not loaded yet ---------------------------------------------------------------------------

/** The first index of the loaded stretch that ends at `to` (exclusive), looking no further back than `from`. */
function loadedFrom(from = 0, to = steps.length) {
  let i = to;
  while (i > from && steps[i - 1]) i--;
  return i;
}

function isLoaded(from, to) {
  for (let i = Math.max(0, from); i <= Math.min(to, steps.length - 1); i++) if (!steps[i]) return false;
  return true;
}

/** Fetch the missing steps among steps[from..to] (inclusive), a page at a time; resolves once they are in. */
function load(from, to) {
  loading = loading.then(() => fetchMissing(Math.max(0, from), Math.min(to, steps.length - 1))).catch((error) => {
    showError($("page-error"), `Could not load earlier steps: ${error.message}`);
  });
  return loading;
}

async function fetchMissing(from, to) {
  let i = from;
  while (i <= to) {
    while (i <= to && steps[i]) i++;
    if (i > to) return;
    const limit = Math.min(PAGE_EVENTS, to - i + 1);
    const page = await getJSON(`/api/matches/${matchId}/events?from=${i + 1}&limit=${limit}`);
    if (page.items.length === 0) return;
    for (const event of page.items) {
      // only steps the socket has announced: later ones come in order over the socket
      if (event.seq <= steps.length && !steps[event.seq - 1]) steps[event.seq - 1] = toStep(event);
    }
    i = page.items[page.items.length - 1].seq; // the index after the page's last step
  }
}

function markCurrentMove() {
  const list = $("moves");
  list.querySelector(".move.current")?.classList.remove("current");
  const item = list.querySelector(`.move[data-index="${index}"]`);
  if (!item) return;
  item.classList.add("current");
  // Scroll the list only (scrollIntoView would scroll the whole page along).
  const top = item.offsetTop; // the list is positioned, so this is relative to it
  if (top < list.scrollTop || top + item.offsetHeight > list.scrollTop + list.clientHeight) {
    list.scrollTop = top - list.clientHeight / 2;
  }
}

// -- result ---------------------------------------------------------------------------------------

function resultHeadline() {
  if (!result) return "";
  if (result.status === "aborted") return "Match aborted";
  return result.winner === null || result.winner === undefined ? "Draw" : `${match.seats[result.winner].name} wins`;
}

/** One line under the headline: the reason, or how the game was decided. */
function resultNote() {
  if (result.reason) return result.reason;
  const last = steps.length ? steps[steps.length - 1] : null;
  const state = last && last.state;
  if (match.game === "rps" && state && state.scores && result.winner === null && state.scores[0] !== state.scores[1]) {
    return `Final score ${state.scores.join(" : ")}, within the tie threshold of ${match.config.tieRewardThreshold}: a draw.`;
  }
  const moves = last ? last.step : 0;
  return `After ${moves} ${moves === 1 ? "step" : "steps"}.`;
}

function renderResult() {
  const winner = result.winner;
  // What fired for each faulty seat, as the forfeit step (the last) recorded it.
  const last = steps.length ? steps[steps.length - 1] : null;
  const faults = (last && last.faults) || [];
  const rows = result.seats.map((seat, i) =>
    h("tr", { dataset: { seat: i, status: seat.status || "" } },
      h("td", {}, seatLink(seat, i)),
      h("td", {}, h("span", {
        class: "seat-status", dataset: { status: seat.status || "", limit: faults[i] || "" },
        title: faults[i] ? `limit: ${faults[i]}` : null,
      }, seat.status || "–")),
      h("td", { class: "num" }, formatNumber(seat.reward)),
      h("td", { class: "reason" }, seat.reason || "—")));
  const box = $("result");
  box.dataset.status = result.status;
  box.dataset.winner = winner === null || winner === undefined ? "" : String(winner);
  replaceChildren(
    box,
    h("p", { class: "result-headline" },
      winner !== null && winner !== undefined && result.status !== "aborted" ? seatMark(winner) : null,
      resultHeadline()),
    h("p", { class: "muted small reason-line" }, resultNote()),
    h("div", { class: "table-scroll" },
      h("table", { class: "table result-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Seat"), h("th", {}, "Status"), h("th", { class: "num" }, "Reward"),
          h("th", {}, "Reason"))),
        h("tbody", {}, rows))),
  );
  $("result-panel").hidden = false;
}

// -- replay ---------------------------------------------------------------------------------------

function enterReplay() {
  const seek = $("replay-seek");
  seek.max = String(Math.max(0, steps.length - 1));
  $("replay").hidden = false;
  $("moves").classList.add("seekable");
}

function isPlaying() {
  return playTimer !== null;
}

function setPlayButton(playing) {
  const button = $("replay-play");
  button.dataset.playing = String(playing);
  button.setAttribute("aria-label", playing ? "Pause" : "Play");
}

function play() {
  if (isPlaying() || steps.length < 2) return;
  if (index >= steps.length - 1) show(0);
  const speed = Number($("replay-speed").value) || 1;
  playTimer = setInterval(() => {
    if (index >= steps.length - 1) pause();
    else if (steps[index + 1]) {
      show(index + 1);
      const ahead = Math.min(index + LOOK_BACK * 4, steps.length - 1);
      if (!steps[ahead]) load(index + 1, index + PAGE_EVENTS); // fetch ahead of the playback
    } else load(index + 1, index + PAGE_EVENTS); // wait for the next steps (this tick shows nothing new)
  }, BASE_STEP_MS / speed);
  setPlayButton(true);
}

function pause() {
  clearInterval(playTimer);
  playTimer = null;
  setPlayButton(false);
}

function seek(newIndex) {
  pause();
  show(newIndex);
}

function wireReplay() {
  $("replay-first").addEventListener("click", () => seek(0));
  $("replay-back").addEventListener("click", () => seek(index - 1));
  $("replay-forward").addEventListener("click", () => seek(index + 1));
  $("replay-last").addEventListener("click", () => seek(steps.length - 1));
  $("replay-play").addEventListener("click", () => (isPlaying() ? pause() : play()));
  $("replay-seek").addEventListener("input", (event) => seek(Number(event.target.value)));
  $("moves-earlier").addEventListener("click", () => showEarlierMoves());
  $("replay-speed").addEventListener("change", () => {
    if (isPlaying()) {
      pause();
      play();
    }
  });
  $("moves").addEventListener("click", (event) => {
    const item = event.target.closest(".move");
    if (item && isEnded) seek(Number(item.dataset.index));
  });
  document.addEventListener("keydown", (event) => {
    if (!isEnded || event.altKey || event.ctrlKey || event.metaKey) return;
    const tag = event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    const actions = {
      ArrowLeft: () => seek(index - 1),
      ArrowRight: () => seek(index + 1),
      Home: () => seek(0),
      End: () => seek(steps.length - 1),
      " ": () => (isPlaying() ? pause() : play()),
    };
    if (tag === "BUTTON" && event.key === " ") return; // the button itself handles it
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}

// -- frames ---------------------------------------------------------------------------------------

function toStep(frame) {
  return {
    step: frame.step, actions: frame.actions || [], statuses: frame.statuses || [], rewards: frame.rewards || [],
    state: frame.state, faults: frame.faults || [],
  };
}

function onSnapshot(msg) {
  match = msg.match;
  const isFollowing = !isEnded || index === steps.length - 1;
  // A reconnect keeps the steps loaded so far: a step never changes once played.
  if (msg.seq < steps.length) steps = [];
  steps.length = msg.seq;
  for (const event of msg.events) {
    if (event.kind === undefined || event.kind === "step") steps[event.seq - 1] = toStep(event);
  }
  if (steps.length === 0 && msg.state) steps = [toStep({ step: msg.state.step || 0, state: msg.state })];
  lastSeq = msg.seq;
  renderHeader();
  ensureBoard();
  rebuildMoves();
  show(isFollowing ? steps.length - 1 : index);
}

function onEvent(msg) {
  if (msg.seq <= lastSeq || !match) return;
  lastSeq = msg.seq;
  if (msg.kind !== undefined && msg.kind !== "step") return;
  steps[msg.seq - 1] = toStep(msg);
  appendMove(msg.seq - 1);
  if (!isEnded) show(steps.length - 1);
}

function onEnd(msg) {
  if (!match) return;
  const wasEnded = isEnded;
  result = msg.result;
  isEnded = true;
  match.status = result.status;
  match.reason = result.reason;
  match.seats = match.seats.map((seat, i) => ({ ...seat, ...(result.seats[i] || {}) }));
  if (result.winner === undefined) result.winner = winnerOf(result.seats);
  renderHeader();
  renderResult();
  enterReplay();
  if (!wasEnded) show(steps.length - 1);
  showConnection("done");
}

function onMessage(msg) {
  if (msg.type === "snapshot") onSnapshot(msg);
  else if (msg.type === "event") onEvent(msg);
  else if (msg.type === "end") onEnd(msg);
  else if (msg.type === "error" && !match) {
    isFatal = true;
    showError($("page-error"), msg.code === "not_found" ? `Match #${matchId} does not exist.` : msg.message);
  }
}

async function main() {
  if (matchId === null) {
    showError($("page-error"), "This is not a match address.");
    return;
  }
  $("match-title").textContent = `Match #${matchId}`;
  wireReplay();
  games = await loadGames();
  keepSocket(`/ws/matches/${matchId}`, {
    onMessage,
    onState: (state) => {
      if (!isEnded) showConnection(state);
    },
    shouldReconnect: (event) => !isEnded && !isFatal && event.code !== 4404,
  });
}

main().catch((error) => showError($("page-error"), `Could not load the match: ${error.message}`));
