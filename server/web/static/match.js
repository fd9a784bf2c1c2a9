// The match page: the board live over /ws/matches/{id}, the move list, then replay and result.
//
// Theory of operation: the spectator socket sends a `snapshot` (the match, its state and
// every step so far), then one `event` per step, then `end`; a finished match is served the
// same way at once. The page keeps every step in `steps` and shows `steps[index]`. While
// the match is live, the view follows the newest step; once `end` arrives the replay
// controls appear and `index` moves only when the spectator asks. A dropped socket
// reconnects and the new snapshot replaces everything (no step is lost or doubled).

import {
  formatDate, formatNumber, gameBadge, h, keepSocket, loadGames, pathId, replaceChildren,
  seatLink, seatMark, showConnection, showError, statusBadge, winnerOf,
} from "./app.js";
import { FAULTS, createBoard } from "./boards.js";

const BASE_STEP_MS = 600; // one step per this many ms at 1x

const matchId = pathId();
const $ = (id) => document.getElementById(id);

let games = [];
let match = null; // the match document (seats gain status and reward at the end)
let board = null;
let steps = []; // {step, actions, statuses, rewards, state}
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

function rebuildMoves() {
  const list = $("moves");
  replaceChildren(list, steps.flatMap((step, i) => (i === 0 && step.step === 0 ? [] : [moveItem(step, i)])));
  updateMoveCount();
}

function appendMove(i) {
  $("moves").append(moveItem(steps[i], i));
  updateMoveCount();
}

function updateMoveCount() {
  const count = $("moves").children.length;
  $("moves-empty").hidden = count > 0;
  $("moves-count").textContent = count ? `${count} ${count === 1 ? "step" : "steps"}` : "";
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
  const rows = result.seats.map((seat, i) =>
    h("tr", { dataset: { seat: i, status: seat.status || "" } },
      h("td", {}, seatLink(seat, i)),
      h("td", {}, h("span", { class: "seat-status", dataset: { status: seat.status || "" } }, seat.status || "–")),
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
    else show(index + 1);
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
    state: frame.state,
  };
}

function onSnapshot(msg) {
  match = msg.match;
  const isFollowing = !isEnded || index === steps.length - 1;
  steps = msg.events.filter((e) => e.kind === undefined || e.kind === "step").map(toStep);
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
  steps.push(toStep(msg));
  appendMove(steps.length - 1);
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
