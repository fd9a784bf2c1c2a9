// Boards: one renderer per game, drawing the state as DOM elements, one element per cell.
//
// createBoard(game, config, seats) returns {el, render(steps, index), describe(step, seat)}.
// render() shows steps[index].state and may look at earlier steps (last move, history); an
// earlier step may be missing (not loaded yet: the match page fetches a long match's history
// on demand), and is then left out.
// Every cell carries data-cell (its index) and data-value (what is in it), so tests and
// style sheets read the board the same way: tictactoe and connectx use 0 for empty and
// 1 or 2 for a seat's mark; rps has one cell per seat holding its last sign ("" before any).

import { h, replaceChildren, seatMark, svg } from "./app.js";

export const SIGN_NAMES = ["Rock", "Paper", "Scissors", "Spock", "Lizard"];
const TTT_NAMES = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"];
const FAULTS = new Set(["TIMEOUT", "ERROR", "INVALID"]);

/** The board for a game, or a plain state view for a game this page does not know. */
export function createBoard(game, config, seats) {
  switch (game) {
    case "tictactoe":
      return ticTacToe();
    case "connectx":
      return connectX(config);
    case "rps":
      return rockPaperScissors(config, seats);
    default:
      return plainState();
  }
}

/** The seat that acted in a step of a turn-based game, or null (initial state, forfeits). */
function actingSeat(step) {
  if (!step || !step.actions) return null;
  const seat = step.actions.findIndex((a) => a !== null && a !== undefined);
  return seat >= 0 ? seat : null;
}

// -- tic-tac-toe -----------------------------------------------------------------------------

function xMark() {
  return svg("svg", { viewBox: "0 0 100 100", class: "glyph", "aria-hidden": "true" },
    svg("path", { d: "M24 24 L76 76 M76 24 L24 76" }));
}

function oMark() {
  return svg("svg", { viewBox: "0 0 100 100", class: "glyph", "aria-hidden": "true" },
    svg("circle", { cx: 50, cy: 50, r: 28 }));
}

function ticTacToe() {
  const cells = TTT_NAMES.map((name, i) =>
    h("div", { class: "cell", role: "gridcell", dataset: { cell: i, value: 0 }, "aria-label": `${name}: empty` }));
  const el = h("div", { class: "board board-tictactoe", role: "grid", "aria-label": "Tic-tac-toe board" }, cells);

  function render(steps, index) {
    const step = steps[index];
    const board = (step && step.state && step.state.board) || Array(9).fill(0);
    const line = new Set((step && step.state && step.state.line) || []);
    const seat = actingSeat(step);
    const last = seat === null ? null : step.actions[seat];
    cells.forEach((cell, i) => {
      const value = board[i] || 0;
      if (cell.dataset.value !== String(value)) {
        cell.dataset.value = String(value);
        replaceChildren(cell, value === 1 ? xMark() : value === 2 ? oMark() : null);
        cell.setAttribute("aria-label", `${TTT_NAMES[i]}: ${value === 1 ? "X" : value === 2 ? "O" : "empty"}`);
      }
      cell.classList.toggle("last", i === last);
      cell.classList.toggle("win", line.has(i));
    });
  }

  function describe(step, seat) {
    const cell = step.actions[seat];
    return Number.isInteger(cell) && TTT_NAMES[cell] ? `${TTT_NAMES[cell]} (cell ${cell})` : JSON.stringify(cell);
  }

  return { el, render, describe, isTurnBased: true };
}

// -- connectx ----------------------------------------------------------------------------------

function connectX(config) {
  const rows = config.rows || 6;
  const columns = config.columns || 7;
  const cells = [];
  for (let i = 0; i < rows * columns; i++) {
    cells.push(h("div", { class: "cell", role: "gridcell", dataset: { cell: i, value: 0 } }, h("span", { class: "disc" })));
  }
  const labels = Array.from({ length: columns }, (_, c) => h("span", { class: "col-label" }, String(c)));
  const grid = h("div", { class: "cx-grid", role: "grid", "aria-label": `ConnectX board, ${rows} by ${columns}` }, cells);
  const el = h("div", { class: "board board-connectx" }, h("div", { class: "cx-labels", "aria-hidden": "true" }, labels), grid);
  el.style.setProperty("--cols", String(columns));
  el.style.setProperty("--rows", String(rows));

  function render(steps, index) {
    const step = steps[index];
    const board = (step && step.state && step.state.board) || Array(rows * columns).fill(0);
    const line = new Set((step && step.state && step.state.line) || []);
    // The last disc is the one cell that differs from the previous step's board.
    const previous = index > 0 && steps[index - 1] && steps[index - 1].state ? steps[index - 1].state.board : null;
    cells.forEach((cell, i) => {
      const value = board[i] || 0;
      const isNew = previous !== null && (previous[i] || 0) !== value && value !== 0;
      if (cell.dataset.value !== String(value)) {
        cell.dataset.value = String(value);
        cell.firstChild.className = value ? `disc disc-${value}` : "disc";
      }
      cell.classList.toggle("last", isNew);
      cell.classList.toggle("win", line.has(i));
    });
  }

  function describe(step, seat) {
    return `column ${step.actions[seat]}`;
  }

  return { el, render, describe, isTurnBased: true };
}

// -- rock paper scissors -----------------------------------------------------------------------

/** +1 when sign a beats b, -1 when it loses, 0 for a tie (Kaggle's get_score). */
export function rpsScore(a, b) {
  const delta = (a + b) % 2 === 0 ? b - a : a - b;
  return Math.sign(delta);
}

function signGlyph(sign) {
  const box = { viewBox: "0 0 64 64", class: "sign-glyph", "aria-hidden": "true" };
  if (sign === 0) {
    return svg("svg", box,
      svg("path", { class: "fill", d: "M8 42 L14 22 L29 10 L47 14 L57 31 L51 50 L31 56 Z" }),
      svg("path", { class: "detail", d: "M14 22 L30 30 L47 14 M30 30 L31 56 M30 30 L57 31 M8 42 L30 30" }));
  }
  if (sign === 1) {
    return svg("svg", box,
      svg("path", { class: "fill", d: "M16 8 H40 L50 18 V56 H16 Z" }),
      svg("path", { class: "detail", d: "M40 8 V18 H50 M23 28 H43 M23 36 H43 M23 44 H36" }));
  }
  if (sign === 2) {
    return svg("svg", box,
      svg("path", { class: "detail thick", d: "M27 39 L45 8 M37 39 L19 8" }),
      svg("circle", { class: "ring", cx: 22, cy: 47, r: 8 }),
      svg("circle", { class: "ring", cx: 42, cy: 47, r: 8 }));
  }
  return svg("svg", box,
    svg("circle", { class: "fill", cx: 32, cy: 32, r: 24 }),
    svg("text", { x: 32, y: 40, "text-anchor": "middle", class: "glyph-text" }, (SIGN_NAMES[sign] || "?").slice(0, 2)));
}

function rockPaperScissors(config, seats) {
  const signs = config.signs || 3;
  const throws = seats.map((seat, i) =>
    h("div", { class: `throw throw-${i + 1}`, dataset: { cell: i, value: "" } },
      h("div", { class: "throw-glyph" }),
      h("div", { class: "throw-name" }, "—"),
      h("div", { class: "throw-seat" }, seatMark(i), seat.name)));
  const scores = seats.map((_, i) => h("span", { class: "score", dataset: { scoreSeat: i } }, "0"));
  const verdict = h("div", { class: "verdict" }, "Waiting for the first round");
  const history = h("ol", { class: "rps-history", "aria-label": "Recent rounds" });
  const el = h("div", { class: "board board-rps", role: "group", "aria-label": "Rock paper scissors" },
    h("div", { class: "rps-arena" }, throws[0], h("div", { class: "rps-vs" }, "vs"), throws[1]),
    h("div", { class: "rps-score" }, scores[0], h("span", { class: "score-sep" }, ":"), scores[1]),
    verdict,
    history);

  function render(steps, index) {
    const state = steps[index] && steps[index].state;
    const last = state && state.last_actions;
    throws.forEach((cell, i) => {
      const value = last ? last[i] : null;
      const text = value === null || value === undefined ? "" : String(value);
      if (cell.dataset.value !== text) {
        cell.dataset.value = text;
        replaceChildren(cell.querySelector(".throw-glyph"), text === "" ? null : signGlyph(value));
        cell.querySelector(".throw-name").textContent = text === "" ? "—" : SIGN_NAMES[value] || `sign ${value}`;
      }
    });
    const score = (state && state.scores) || [0, 0];
    scores.forEach((node, i) => { node.textContent = String(score[i]); });
    if (last) {
      const result = rpsScore(last[0], last[1]);
      throws[0].classList.toggle("won", result > 0);
      throws[1].classList.toggle("won", result < 0);
      verdict.textContent = result === 0
        ? `Round ${state.step}: tie`
        : `Round ${state.step}: ${seats[result > 0 ? 0 : 1].name} takes it`;
    } else {
      throws.forEach((t) => t.classList.remove("won"));
      verdict.textContent = index > 0 ? `Round ${state ? state.step : index}` : "Waiting for the first round";
    }
    // The last rounds up to this step, newest last; each pill shows who took the round.
    const first = Math.max(1, index - 23);
    const pills = [];
    for (let i = first; i <= index; i++) {
      const acts = steps[i] && steps[i].state && steps[i].state.last_actions;
      if (!acts) continue;
      const r = rpsScore(acts[0], acts[1]);
      pills.push(h("li", {
        class: `pill ${r > 0 ? "pill-1" : r < 0 ? "pill-2" : "pill-tie"}`,
        title: `Round ${steps[i].step}: ${SIGN_NAMES[acts[0]] || acts[0]} vs ${SIGN_NAMES[acts[1]] || acts[1]}`,
      }));
    }
    replaceChildren(history, pills);
  }

  function describe(step, seat) {
    const a = step.actions[seat];
    return Number.isInteger(a) && a < signs ? SIGN_NAMES[a] : JSON.stringify(a);
  }

  return { el, render, describe, isTurnBased: false };
}

// -- unknown games -----------------------------------------------------------------------------

function plainState() {
  const pre = h("pre", { class: "state-json" });
  const el = h("div", { class: "board board-plain" }, pre);
  function render(steps, index) {
    pre.textContent = JSON.stringify(steps[index] ? steps[index].state : null, null, 2);
  }
  function describe(step, seat) {
    return JSON.stringify(step.actions[seat]);
  }
  return { el, render, describe, isTurnBased: false };
}

export { FAULTS, actingSeat };
