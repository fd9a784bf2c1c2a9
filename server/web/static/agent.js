// The agent page: who it is, its rating and where it stands on its game's leaderboard, and its matches.

import {
  formatDate, formatNumber, gameBadge, getJSON, h, loadGames, pathId, refreshTimes, relativeTime,
  replaceChildren, seatMark, showError, statusBadge, stepsText, winnerOf,
} from "./app.js";

const PAGE = 20;
const agentId = pathId();
const $ = (id) => document.getElementById(id);

let games = [];
let cursor = null;

function fact(term, value) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, value));
}

function renderAgent(agent) {
  document.title = `${agent.name} · Agent Arena`;
  $("agent").dataset.agentId = String(agent.id);
  $("agent-name").textContent = agent.name;
  replaceChildren($("agent-game"), gameBadge(agent.game, games));
  replaceChildren($("agent-kind"), agent.remote ? h("span", { class: "tag" }, "remote") : null);
  replaceChildren(
    $("agent-facts"),
    fact("Owner", h("span", { dataset: { field: "owner" } }, agent.owner)),
    fact("Rating", h("span", { dataset: { field: "rating" } }, String(Math.round(agent.rating)))),
    fact("Version", h("span", { dataset: { field: "version" } }, `v${agent.version}`)),
    fact("Created", h("span", { dataset: { field: "created" } }, formatDate(agent.created_at))),
    agent.updated_at && agent.updated_at !== agent.created_at
      ? fact("Updated", formatDate(agent.updated_at)) : null,
  );
}

function stat(label, value, extra = "") {
  return h("div", { class: `stat ${extra}` }, h("span", { class: "stat-value" }, value), h("span", { class: "stat-label" }, label));
}

async function renderStanding(agent) {
  const box = $("standing");
  let doc;
  // Both at once, and both answered before anything shows: the page is whole once the standing is.
  const ladder = getJSON(`/api/ladder?agent=${agent.id}`).catch(() => null);
  try {
    doc = await getJSON(`/api/leaderboard?game=${encodeURIComponent(agent.game)}`);
  } catch (error) {
    showError(box, error.message);
    return;
  }
  const ladderDoc = await ladder;
  const row = doc.items.find((r) => r.agent_id === agent.id);
  if (!row) {
    replaceChildren(box, h("p", { class: "empty" }, "Not on the leaderboard."));
    return;
  }
  box.dataset.agentId = String(row.agent_id);
  const note = row.rated_matches === 0
    ? "No rated match yet: every agent starts at 1000 and moves after each rated match. "
    : `Skill ${formatNumber(row.mu, 2)} ± ${formatNumber(row.sigma, 2)} over ${row.rated_matches} rated ` +
      `match${row.rated_matches === 1 ? "" : "es"}; the rating is 1000 + 40 × (skill − 3 × uncertainty). `;
  replaceChildren(
    box,
    h("div", { class: "stats" },
      stat("rank", `#${row.rank}`, "rank"),
      stat("rating", String(Math.round(row.rating)), "rating"),
      stat("played", String(row.matches)),
      stat("wins", String(row.wins), "wins"),
      stat("draws", String(row.draws)),
      stat("losses", String(row.losses), "losses"),
      stat("faults", String(row.faults), row.faults ? "faults" : "")),
    h("p", { class: "muted small" }, note, `Ranked among ${doc.items.length} agents · `,
      h("a", { href: `/#game=${agent.game}` }, "full leaderboard")),
    h("p", { class: "muted small", id: "ladder-place" }, ladderText(agent, ladderDoc)),
  );
}

/** Where the agent stands in the ladder's queue (GET /api/ladder?agent=ID), in a line; "" if unknown. */
function ladderText(agent, doc) {
  if (!doc) return "";
  const place = doc.agent;
  if (!doc.running) return "The ladder is off on this server.";
  if (!place) {
    return agent.remote || agent.disabled
      ? "Not in the ladder's queue (the ladder pairs enabled agents with code)."
      : "Not in the ladder's queue yet.";
  }
  const state = place.playing ? "playing now" : place.waiting_s === null ? "has not played yet"
    : `last played ${Math.round(place.waiting_s)} s ago`;
  return `Ladder: #${place.position} of ${place.queued} in line · ${place.version_matches} rated ` +
    `match${place.version_matches === 1 ? "" : "es"} with v${place.version} · ${place.matches_last_hour} in the ` +
    `last hour · ${state}`;
}

function outcomeFor(match, agent) {
  if (match.status === "live" || match.status === "pending") return { key: match.status, text: match.status };
  if (match.status === "aborted") return { key: "aborted", text: "aborted" };
  const seat = match.seats.findIndex((s) => s.agent_id === agent.id);
  const winner = winnerOf(match.seats);
  if (winner === null) return { key: "draw", text: "draw" };
  if (match.seats[winner].agent_id === agent.id) return { key: "win", text: "win" };
  const status = seat >= 0 ? match.seats[seat].status : null;
  return { key: "loss", text: status && status !== "DONE" ? `loss · ${status}` : "loss" };
}

function matchRow(match, agent) {
  const outcome = outcomeFor(match, agent);
  const opponents = match.seats
    .map((seat, i) => ({ seat, i }))
    .filter(({ seat }) => seat.agent_id !== agent.id);
  const shown = opponents.length ? opponents : match.seats.map((seat, i) => ({ seat, i }));
  return h(
    "li",
    { class: "match-item", dataset: { matchId: match.id, status: match.status } },
    h("a", { class: "match-link", href: `/matches/${match.id}` },
      h("span", { class: "outcome", dataset: { outcome: outcome.key } }, outcome.text),
      h("span", { class: "match-main" },
        h("span", { class: "versus" }, h("span", { class: "vs" }, "vs"),
          shown.map(({ seat, i }) => h("span", { class: "who" }, seatMark(i), h("span", { class: "who-name" }, seat.name)))),
        h("span", { class: "match-sub muted" }, `#${match.id} · ${stepsText(match)}`)),
      h("span", { class: "meta" },
        match.status === "live" ? statusBadge("live") : relativeTime(match.finished_at || match.created_at))),
  );
}

async function loadMatches(agent) {
  const more = $("agent-matches-more");
  more.disabled = true;
  try {
    const query = `/api/matches?agent=${agent.id}&limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const page = await getJSON(query);
    $("agent-matches").append(...page.items.map((m) => matchRow(m, agent)));
    cursor = page.next;
    more.hidden = !cursor;
    $("agent-matches-empty").hidden = $("agent-matches").children.length > 0;
  } finally {
    more.disabled = false;
  }
}

async function main() {
  if (agentId === null) {
    showError($("page-error"), "This is not an agent address.");
    return;
  }
  games = await loadGames();
  let agent;
  try {
    agent = await getJSON(`/api/agents/${agentId}`);
  } catch (error) {
    showError($("page-error"), error.status === 404 ? `Agent #${agentId} does not exist.` : error.message);
    $("agent-name").textContent = "Unknown agent";
    return;
  }
  renderAgent(agent);
  $("agent-matches-more").addEventListener("click", () => loadMatches(agent));
  await Promise.all([renderStanding(agent), loadMatches(agent)]);
  refreshTimes();
}

main().catch((error) => showError($("page-error"), `Could not load the agent: ${error.message}`));
