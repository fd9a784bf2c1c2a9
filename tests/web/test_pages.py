"""The web app in a real browser: Debian's chromium driven by playwright, against real uvicorn.

Every page is watched for console errors, uncaught exceptions and failed requests; a test
fails if any shows up. Set ``ARENA_WEB_SCREENSHOTS=DIR`` to save a screenshot of each page
there (``web-*.png``).
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from server.config import Settings
from tests.server.conftest import (
    FAULTY,
    RPS_CYCLE,
    RPS_ROCK,
    TICTACTOE_FIRST_FREE,
    api_client,
    create_user,
    quiet_settings,
    start_match,
    submit_agent,
    wait_finished,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/test installs it as root)"),
]

JSON = Any

# Drops into the leftmost open column, slowly, so a match stays live for a few seconds: each
# column fills bottom-up as 1,2,1,2,1,2, so mark 1 completes the bottom row on move 19.
SLOW_CONNECTX = """
from time import sleep

def agent(observation, configuration):
    sleep(0.12)
    for column in range(configuration.columns):
        if observation.board[column] == 0:
            return column
"""

# Page scripts are written as arrow functions: the pages' CSP forbids evaluating strings.
FILLED_CELLS = "document.querySelectorAll('#board [data-cell]:not([data-value=\"0\"])').length"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def watched_page(browser: Browser, *, allow: tuple[str, ...] = ()) -> AsyncIterator[Page]:
    """A fresh page; on exit, fail on any console error, page error or failed request not in ``allow``."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} {req.failure}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    try:
        yield page
    finally:
        await context.close()
    unexpected = [p for p in problems if not any(a in p for a in allow)]
    assert unexpected == [], unexpected


async def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("ARENA_WEB_SCREENSHOTS")
    if folder:
        await anyio.sleep(0.4)  # let the last animation settle
        await page.screenshot(path=str(Path(folder) / f"web-{name}.png"), full_page=True)


async def wait_steps(client: httpx.AsyncClient, match_id: int, count: int) -> int:
    """Wait until the match has stored at least ``count`` moves; returns the stored step count."""
    with anyio.fail_after(30):
        while True:
            replay = (await client.get(f"/api/matches/{match_id}/replay")).json()
            if len(replay["steps"]) > count:
                return len(replay["steps"]) - 1
            await anyio.sleep(0.05)


async def step_of(page: Page) -> int:
    value = await page.locator("#step-label").get_attribute("data-step")
    assert value is not None
    return int(value)


# -- lobby -------------------------------------------------------------------------------------------


async def test_lobby_shows_live_match_then_its_result_and_the_leaderboard(settings: Settings) -> None:
    async with api_client(settings) as client, chromium() as browser, watched_page(browser) as page:
        user = await create_user(client, "alice")
        alpha = await submit_agent(client, user, "alpha", "connectx", SLOW_CONNECTX)
        beta = await submit_agent(client, user, "beta", "connectx", SLOW_CONNECTX)
        await submit_agent(client, user, "noughts", "tictactoe", TICTACTOE_FIRST_FREE)

        await page.goto(f"{client.base_url}/")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "open")  # the lobby socket is up
        await expect(page.locator("#live-empty")).to_be_visible()

        match = await start_match(client, user, "connectx", [alpha["id"], beta["id"]])
        live_row = page.locator(f'#live-matches [data-match-id="{match["id"]}"]')
        await expect(live_row).to_be_visible()  # pushed by /ws/lobby, no reload
        await expect(live_row).to_contain_text("alpha")
        await expect(live_row).to_contain_text("beta")
        await expect(page.locator("#live-count")).to_have_text("1")
        await screenshot(page, "lobby")

        await wait_finished(client, match["id"])
        recent_row = page.locator(f'#recent-matches [data-match-id="{match["id"]}"]')
        await expect(recent_row).to_be_visible()
        await expect(live_row).to_have_count(0)
        await expect(recent_row).to_contain_text("alpha won")  # mark 1 completes the bottom row
        await expect(recent_row).to_contain_text("19 steps")

        # The leaderboard follows the result (refetched on match_ended and rating_changed), per
        # game, ranked by rating. A challenge is unrated (only the ladder's matches are: see
        # test_ladder_pages.py for a rating's change): both stay at 1000, with no change marked,
        # while the win and the loss count in the standings.
        await page.locator('#game-tabs [data-game="connectx"]').click()
        rows = page.locator("#leaderboard tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_have_attribute("data-agent-id", str(alpha["id"]))
        await expect(rows.nth(0)).to_contain_text("alpha")
        board = {row["agent_id"]: row for row in (await client.get("/api/leaderboard?game=connectx")).json()["items"]}
        top, second = board[alpha["id"]], board[beta["id"]]
        assert top["rating"] == second["rating"] == 1000.0 and top["rated_matches"] == second["rated_matches"] == 0
        await expect(rows.nth(0).locator("td.rating")).to_have_attribute("data-rating", "1000")
        await expect(rows.nth(0).locator("td.rating.provisional .rating-value")).to_have_text("1000")
        await expect(page.locator("#leaderboard .delta")).to_have_count(0)
        await expect(rows.nth(0).locator("td.rank")).to_have_text("1")
        await expect(rows.nth(0).locator("td.wins")).to_have_text("1")
        await expect(rows.nth(1).locator("td.losses")).to_have_text("1")
        await screenshot(page, "lobby-leaderboard")
        await page.locator('#game-tabs [data-game="tictactoe"]').click()
        await expect(page.locator("#leaderboard")).to_have_attribute("data-game", "tictactoe")
        await expect(rows).to_have_count(1)
        await expect(rows.nth(0)).to_contain_text("noughts")
        await expect(rows.nth(0).locator("td.rating.provisional .rating-value")).to_have_text("1000")  # unrated

        # A result row leads to its match page.
        await recent_row.locator("a").click()
        await expect(page).to_have_url(f"{client.base_url}/matches/{match['id']}")
        await expect(page.locator("#board [data-cell]")).to_have_count(42)
        await expect(page.locator("#match-meta")).to_contain_text("unrated")


# -- match page, live ----------------------------------------------------------------------------------


async def test_live_match_page_fills_cells_and_a_late_spectator_sees_the_state_at_once(settings: Settings) -> None:
    async with api_client(settings) as client, chromium() as browser:
        user = await create_user(client, "alice")
        alpha = await submit_agent(client, user, "alpha", "connectx", SLOW_CONNECTX)
        beta = await submit_agent(client, user, "beta", "connectx", SLOW_CONNECTX)
        match = await start_match(client, user, "connectx", [alpha["id"], beta["id"]])
        url = f"{client.base_url}/matches/{match['id']}"

        async with watched_page(browser) as page:
            await page.goto(url)
            cells = page.locator("#board [data-cell]")
            await expect(cells).to_have_count(42)  # one element per cell: 6 rows x 7 columns
            await expect(page.locator("#match-status .status-badge")).to_have_text("live")
            await expect(page.locator(f'#seats a[href="/agents/{alpha["id"]}"]')).to_have_text("alpha")
            await expect(page.locator(f'#seats a[href="/agents/{beta["id"]}"]')).to_have_text("beta")
            await expect(page.locator("#replay")).to_be_hidden()  # no replay controls while live

            # Cells fill as moves happen, without reloading.
            await page.wait_for_function(f"() => {FILLED_CELLS} >= 2")
            filled = await page.evaluate(f"() => {FILLED_CELLS}")
            await page.wait_for_function(f"() => {FILLED_CELLS} > {filled}")
            await expect(page.locator('#board [data-cell="35"]')).to_have_attribute("data-value", "1")  # bottom left
            await expect(page.locator('#board [data-cell="28"]')).to_have_attribute("data-value", "2")  # above it
            assert await page.locator("#moves .move").count() >= 2
            await screenshot(page, "match-live")

            # A spectator joining mid-match: the first board it draws is the current one.
            stored = await wait_steps(client, match["id"], 6)
            async with watched_page(browser) as late:
                await late.add_init_script("""
                    window.__drawnSteps = [];
                    new MutationObserver((records) => {
                      for (const r of records) window.__drawnSteps.push(Number(r.target.dataset.step));
                    }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-step"]});
                """)
                await late.goto(url)
                await late.wait_for_function("() => window.__drawnSteps.length > 0")
                first = await late.evaluate("() => window.__drawnSteps[0]")
                assert first >= stored >= 6, (first, stored)
                status = "document.querySelector('#match-status').textContent"
                board = await late.evaluate(f"() => ({{filled: {FILLED_CELLS}, status: {status}}})")
                assert board["filled"] >= stored
                if board["status"] == "live":
                    assert await late.locator("#moves .move").count() >= stored

            # The end arrives on the same socket: result and replay controls appear.
            await wait_finished(client, match["id"])
            await expect(page.locator("#match-status .status-badge")).to_have_text("finished")
            await expect(page.locator("#replay")).to_be_visible()
            await expect(page.locator("#result")).to_have_attribute("data-winner", "0")
            await expect(page.locator("#board .cell.win")).to_have_count(4)


# -- match page, replay --------------------------------------------------------------------------------


async def test_finished_match_replay_controls_and_result(settings: Settings) -> None:
    async with api_client(settings) as client, chromium() as browser, watched_page(browser) as page:
        user = await create_user(client, "alice")
        alpha = await submit_agent(client, user, "alpha", "tictactoe", TICTACTOE_FIRST_FREE)
        beta = await submit_agent(client, user, "beta", "tictactoe", TICTACTOE_FIRST_FREE)
        match = await start_match(client, user, "tictactoe", [alpha["id"], beta["id"]])
        await wait_finished(client, match["id"])
        # First-free against first-free: X takes 0, 2, 4, 6 and wins on the diagonal at step 7.

        await page.goto(f"{client.base_url}/matches/{match['id']}")
        cells = page.locator("#board [data-cell]")
        marks = page.locator('#board [data-cell]:not([data-value="0"])')
        label = page.locator("#step-label")
        await expect(cells).to_have_count(9)
        await expect(page.locator("#replay")).to_be_visible()
        await expect(label).to_have_attribute("data-step", "7")
        await expect(label).to_have_text("Step 7 of 7")
        await expect(marks).to_have_count(7)
        await expect(page.locator("#board .cell.win")).to_have_count(3)
        await expect(page.locator("#moves .move")).to_have_count(7)

        # The result: winner and each seat's status, reward and reason.
        result = page.locator("#result")
        await expect(result).to_have_attribute("data-winner", "0")
        await expect(result.locator(".result-headline")).to_have_text("alpha wins")
        seats = result.locator("tbody tr")
        await expect(seats).to_have_count(2)
        await expect(seats.nth(0)).to_have_attribute("data-status", "DONE")
        await expect(seats.nth(0).locator("td.num")).to_have_text("1")
        await expect(seats.nth(1)).to_have_attribute("data-status", "DONE")
        await expect(seats.nth(1).locator("td.num")).to_have_text("-1")
        await expect(seats.nth(1).locator("td.reason")).to_have_text("—")
        await screenshot(page, "match-finished")

        # Seek to step 0: an empty board.
        await page.locator("#replay-seek").fill("0")
        await expect(label).to_have_attribute("data-step", "0")
        await expect(marks).to_have_count(0)
        await expect(cells).to_have_count(9)

        # Step forward: one mark, X in the first free cell.
        await page.get_by_role("button", name="Step forward").click()
        await expect(label).to_have_attribute("data-step", "1")
        await expect(marks).to_have_count(1)
        await expect(page.locator('#board [data-cell="0"]')).to_have_attribute("data-value", "1")
        await expect(page.locator("#replay-seek")).to_have_value("1")

        # Play advances on its own; pause stops it.
        await page.get_by_role("button", name="Play").click()
        await page.wait_for_function("() => Number(document.querySelector('#step-label').dataset.step) >= 3")
        await page.get_by_role("button", name="Pause").click()
        await expect(page.get_by_role("button", name="Play")).to_be_visible()
        paused = await step_of(page)
        assert 3 <= paused <= 7
        await anyio.sleep(1.5)  # more than two playback intervals at 1x
        assert await step_of(page) == paused
        await expect(marks).to_have_count(paused)

        # Step back, then the keyboard and the move list seek too.
        await page.get_by_role("button", name="Step back").click()
        await expect(label).to_have_attribute("data-step", str(paused - 1))
        await page.locator("#moves .move[data-step='5']").click()
        await expect(label).to_have_attribute("data-step", "5")
        await page.keyboard.press("End")
        await expect(label).to_have_attribute("data-step", "7")
        await page.keyboard.press("Home")
        await expect(marks).to_have_count(0)

        # Play at step 0 runs through to the end and stops there.
        await page.get_by_role("button", name="Play").click()
        await expect(label).to_have_attribute("data-step", "7", timeout=15_000)
        await expect(page.get_by_role("button", name="Play")).to_be_visible()


async def test_rps_board_has_one_cell_per_seat_and_faults_show_in_the_result(settings: Settings) -> None:
    async with api_client(settings) as client, chromium() as browser:
        user = await create_user(client, "alice")
        cycle = await submit_agent(client, user, "cycle", "rps", RPS_CYCLE)
        rock = await submit_agent(client, user, "rock", "rps", RPS_ROCK)
        crash = await submit_agent(client, user, "crash", "rps", FAULTY)
        played = await start_match(client, user, "rps", [cycle["id"], rock["id"]], config={"episodeSteps": 10})
        faulty = await start_match(client, user, "rps", [crash["id"], rock["id"]])
        await wait_finished(client, played["id"])
        await wait_finished(client, faulty["id"])

        async with watched_page(browser) as page:
            await page.goto(f"{client.base_url}/matches/{played['id']}")
            throws = page.locator("#board [data-cell]")
            await expect(throws).to_have_count(2)
            await expect(page.locator("#step-label")).to_have_attribute("data-step", "9")
            # Step 9: cycle throws 8 % 3 = 2 (scissors), rock throws 0.
            await expect(throws.nth(0)).to_have_attribute("data-value", "2")
            await expect(throws.nth(1)).to_have_attribute("data-value", "0")
            await expect(throws.nth(0)).to_contain_text("Scissors")
            await page.locator("#replay-seek").fill("0")
            await expect(throws.nth(0)).to_have_attribute("data-value", "")
            await page.get_by_role("button", name="Step forward").click()
            await expect(throws.nth(0)).to_have_attribute("data-value", "0")  # step 1: 0 % 3
            await screenshot(page, "match-rps")

        async with watched_page(browser) as page:
            await page.goto(f"{client.base_url}/matches/{faulty['id']}")
            seats = page.locator("#result tbody tr")
            await expect(seats.nth(0)).to_have_attribute("data-status", "ERROR")
            await expect(seats.nth(0).locator("td.reason")).to_contain_text("boom")
            await expect(seats.nth(1)).to_have_attribute("data-status", "DONE")
            await expect(page.locator("#result .result-headline")).to_have_text("rock wins")
            await expect(page.locator("#moves .fault")).to_contain_text("crash: ERROR")


async def test_the_result_shows_which_limit_a_faulty_seat_hit(settings: Settings) -> None:
    """Read from the forfeit step (its ``faults``), never from the words of the reason."""
    async with api_client(settings) as client, chromium() as browser:
        user = await create_user(client, "alice")
        crash = await submit_agent(client, user, "crash", "rps", FAULTY)
        rock = await submit_agent(client, user, "rock", "rps", RPS_ROCK)
        faulty = await start_match(client, user, "rps", [crash["id"], rock["id"]])
        await wait_finished(client, faulty["id"])

        async with watched_page(browser) as page:
            await page.goto(f"{client.base_url}/matches/{faulty['id']}")
            statuses = page.locator("#result tbody tr .seat-status")
            await expect(statuses.nth(0)).to_have_attribute("data-limit", "exception")
            await expect(statuses.nth(0)).to_have_attribute("title", "limit: exception")
            await expect(statuses.nth(1)).to_have_attribute("data-limit", "")


# -- agent page ----------------------------------------------------------------------------------------


async def test_agent_page_shows_agent_standing_and_matches(settings: Settings) -> None:
    async with api_client(settings) as client, chromium() as browser:
        user = await create_user(client, "alice")
        alpha = await submit_agent(client, user, "alpha", "tictactoe", TICTACTOE_FIRST_FREE)
        beta = await submit_agent(client, user, "beta", "tictactoe", TICTACTOE_FIRST_FREE)
        first = await start_match(client, user, "tictactoe", [alpha["id"], beta["id"]])
        await wait_finished(client, first["id"])
        second = await start_match(client, user, "tictactoe", [beta["id"], alpha["id"]])
        await wait_finished(client, second["id"])

        async with watched_page(browser) as page:
            await page.goto(f"{client.base_url}/agents/{alpha['id']}")
            await expect(page.locator("#agent-name")).to_have_text("alpha")
            await expect(page.locator("#agent")).to_have_attribute("data-agent-id", str(alpha["id"]))
            await expect(page.locator('[data-field="owner"]')).to_have_text("alice")
            await expect(page.locator('[data-field="version"]')).to_have_text("v1")
            await expect(page.locator('[data-field="created"]')).not_to_be_empty()
            await expect(page.locator("#agent-game")).to_have_text("Tic-tac-toe")

            rows = page.locator("#agent-matches .match-item")
            await expect(rows).to_have_count(2)
            await expect(rows.nth(0)).to_have_attribute("data-match-id", str(second["id"]))  # newest first
            await expect(rows.nth(0).locator(".outcome")).to_have_text("loss")  # seat 1 loses
            await expect(rows.nth(1).locator(".outcome")).to_have_text("win")
            await expect(rows.nth(1)).to_contain_text("beta")
            await expect(rows.nth(1)).to_contain_text(f"#{first['id']} · 7 steps")

            standing = page.locator("#standing")
            await expect(standing).to_have_attribute("data-agent-id", str(alpha["id"]))
            await expect(standing).to_contain_text("played")
            await expect(standing.locator(".stat", has_text="played").locator(".stat-value")).to_have_text("2")
            await expect(standing.locator(".stat", has_text="wins").locator(".stat-value")).to_have_text("1")
            # Its rating, in the facts and the standing, as the API has it: the default, since
            # challenges are unrated (a ladder match moves it: see test_ladder_pages.py).
            doc = (await client.get(f"/api/agents/{alpha['id']}")).json()
            assert doc["rated_matches"] == 0 and doc["rating"] == 1000.0
            shown = str(math.floor(doc["rating"] + 0.5))
            await expect(page.locator('[data-field="rating"]')).to_have_text(shown)
            await expect(standing.locator(".stat.rating .stat-value")).to_have_text(shown)
            await expect(standing).to_contain_text("No rated match yet")
            await screenshot(page, "agent")

            await rows.nth(1).locator("a").click()
            await expect(page).to_have_url(f"{client.base_url}/matches/{first['id']}")
            await page.locator(f'#seats a[href="/agents/{beta["id"]}"]').click()
            await expect(page.locator("#agent-name")).to_have_text("beta")

        # Unknown ids say so (the API's 404 is the only failed request).
        async with watched_page(browser, allow=("404",)) as page:
            await page.goto(f"{client.base_url}/agents/999")
            await expect(page.locator("#page-error")).to_contain_text("does not exist")
        async with watched_page(browser) as page:
            await page.goto(f"{client.base_url}/matches/999")
            await expect(page.locator("#page-error")).to_contain_text("does not exist")


async def test_a_long_match_page_fetches_the_steps_its_snapshot_left_out(tmp_path: Path) -> None:
    """The snapshot carries the latest steps only: the move list offers the earlier ones, and a
    seek (or playing) into steps not loaded yet fetches them from GET /api/matches/{id}/events."""
    settings = quiet_settings(tmp_path, spectator_snapshot_events=30)
    async with api_client(settings) as client, chromium() as browser:
        user = await create_user(client, "alice")
        cycle = await submit_agent(client, user, "cycle", "rps", RPS_CYCLE)
        rock = await submit_agent(client, user, "rock", "rps", RPS_ROCK)
        match = await start_match(client, user, "rps", [cycle["id"], rock["id"]], config={"episodeSteps": 600})
        await wait_finished(client, match["id"])

        async with watched_page(browser) as page:
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url) if "/events" in r.url else None)
            await page.goto(f"{client.base_url}/matches/{match['id']}")
            label = page.locator("#step-label")
            throws = page.locator("#board [data-cell]")
            moves = page.locator("#moves .move")
            await expect(label).to_have_attribute("data-step", "599")
            await expect(label).to_have_text("Step 599 of 599")
            await expect(moves).to_have_count(30)  # the snapshot's steps 570..599
            await expect(page.locator("#moves-count")).to_have_text("599 steps")
            earlier = page.locator("#moves-earlier")
            await expect(earlier).to_be_visible()
            assert requests == []  # nothing fetched until asked for

            # Seek to the start: the step is fetched, then drawn.
            await page.locator("#replay-seek").fill("0")
            await expect(label).to_have_attribute("data-step", "0")
            await expect(throws.nth(0)).to_have_attribute("data-value", "")
            await page.get_by_role("button", name="Step forward").click()
            await expect(label).to_have_attribute("data-step", "1")
            await expect(throws.nth(0)).to_have_attribute("data-value", "0")  # step 1: 0 % 3
            await page.locator("#replay-seek").fill("550")  # between what the seek loaded and the snapshot
            await expect(label).to_have_attribute("data-step", "550")
            await expect(throws.nth(0)).to_have_attribute("data-value", str(549 % 3))
            await expect(page.locator("#board .rps-history .pill")).to_have_count(24)  # the rounds before it too
            assert requests and all("limit=" in url for url in requests)

            # The earlier moves, a page at a time, up to the first.
            await earlier.click()
            await expect(moves).to_have_count(530)
            await earlier.click()
            await expect(moves).to_have_count(599)
            await expect(earlier).to_be_hidden()
            await page.locator("#moves .move[data-step='3']").click()
            await expect(label).to_have_attribute("data-step", "3")
            await expect(throws.nth(0)).to_have_attribute("data-value", "2")  # step 3: 2 % 3
