"""The web pages and the rated ladder: a rating moves with the ladder's matches only.

The lobby's leaderboard marks each agent's row with the change its last rated match made (from
``rating_changed`` on ``/ws/lobby``), the agent page shows the rating and how many rated
matches made it, and a match page says whether the match was rated.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from playwright.async_api import expect

from server.ladder.rules import DEFAULT_SKILL, display_rating, rate_match
from tests.server.conftest import api_client, create_user, quiet_settings, submit_agent
from tests.server.ladder_client import leaderboard, open_lobby, read_until, settle_ladder
from tests.web.test_pages import CHROMIUM, chromium, watched_page

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/test installs it as root)"),
]

# Drops into the leftmost open column: the first mover completes the bottom row on move 19.
CONNECTX_FIRST_OPEN = """
def agent(observation, configuration):
    return [c for c in range(configuration.columns) if observation.board[c] == 0][0]
"""


async def test_the_leaderboard_marks_each_ladder_rating_change(tmp_path: Path) -> None:
    settings = quiet_settings(tmp_path, ladder=True, ladder_slots=1, ladder_featured=0)
    async with api_client(settings) as client, chromium() as browser, watched_page(browser) as page:
        await page.goto(f"{client.base_url}/")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "open")  # the lobby socket is up
        await page.locator('#game-tabs [data-game="connectx"]').click()
        alice, bob = await create_user(client, "alice"), await create_user(client, "bob")
        alpha = (await submit_agent(client, alice, "alpha", "connectx", CONNECTX_FIRST_OPEN))["id"]
        beta = (await submit_agent(client, bob, "beta", "connectx", CONNECTX_FIRST_OPEN))["id"]
        async with open_lobby(client) as lobby:  # a few ladder matches are rated, then the ladder rests
            await read_until(lobby, [], lambda fs: sum(f["type"] == "rating_changed" for f in fs) >= 4)
        rated = await settle_ladder(client, {alice: [alpha], bob: [beta]}, "connectx")
        assert rated, "the ladder played no connectx match"

        # The ratings as the ladder's matches alone make them, and the last one's change.
        skills = {alpha: DEFAULT_SKILL, beta: DEFAULT_SKILL}
        change: dict[int, float] = {}
        for match in rated:
            seats = [s["agent_id"] for s in match["seats"]]
            before = {a: display_rating(skills[a].mu, skills[a].sigma) for a in seats}
            skills.update(zip(seats, rate_match([skills[a] for a in seats], [s["reward"] for s in match["seats"]]),
                              strict=True))
            change = {a: display_rating(skills[a].mu, skills[a].sigma) - before[a] for a in seats}
        board = await leaderboard(client, "connectx")
        assert [row["rating"] for row in board] == sorted(
            (display_rating(s.mu, s.sigma) for s in skills.values()), reverse=True)

        rows = page.locator("#leaderboard tbody tr")
        await expect(rows).to_have_count(2)
        for index, row in enumerate(board):
            shown = rows.nth(index)
            await expect(shown).to_have_attribute("data-agent-id", str(row["agent_id"]))
            as_js = str(row["rating"]).removesuffix(".0")  # a number as JavaScript writes it
            await expect(shown.locator("td.rating")).to_have_attribute("data-rating", as_js)
            await expect(shown.locator(".rating-value")).to_have_text(str(math.floor(row["rating"] + 0.5)))
            delta = change[row["agent_id"]]
            if delta > 0:
                await expect(shown.locator(".delta.up")).to_have_text(f"+{math.floor(delta + 0.5)}")
            else:
                await expect(shown.locator(".delta.down")).to_have_text(f"−{math.floor(-delta + 0.5)}")

        # The agent page shows the same rating and how many rated matches made it.
        top = board[0]
        await page.goto(f"{client.base_url}/agents/{top['agent_id']}")
        await expect(page.locator('[data-field="rating"]')).to_have_text(str(math.floor(top["rating"] + 0.5)))
        plural = "" if top["rated_matches"] == 1 else "es"
        await expect(page.locator("#standing")).to_contain_text(f"{top['rated_matches']} rated match{plural}")
        await expect(page.locator("#agent-matches .match-item").first).to_be_visible()  # loaded before leaving
        # A ladder match's page says it was rated.
        await page.goto(f"{client.base_url}/matches/{rated[-1]['id']}")
        await expect(page.locator("#match-meta")).to_contain_text("rated ladder match")


async def test_the_lobby_and_the_agent_page_show_what_the_ladder_does(tmp_path: Path) -> None:
    """The lobby's ladder panel: matches in the last hour, the slots, the selected game's queue;
    the agent page: the agent's place in line. Featured matches lead "Live now"."""
    settings = quiet_settings(tmp_path, ladder=True, seed_examples=True, ladder_slots=1, ladder_featured=1,
                              ladder_pace_s=0.2)
    async with api_client(settings) as client, chromium() as browser, watched_page(browser) as page:
        owner = await create_user(client, "owner")
        mine = (await submit_agent(client, owner, "mine", "connectx", CONNECTX_FIRST_OPEN))["id"]
        await page.goto(f"{client.base_url}/#game=connectx")
        await expect(page.locator("#ladder-rate")).to_contain_text("rated matches in the last hour")
        await expect(page.locator("#ladder-summary")).to_contain_text("of 1 rated slots busy (unpaced)")
        await expect(page.locator("#ladder-summary")).to_contain_text("1 featured (paced for watching)")
        queue = page.locator("#ladder-queue li")
        await expect(queue.first).to_be_visible()
        names = await queue.locator("a").all_text_contents()
        assert set(names) <= {"connectx_greedy", "connectx_random", "mine"} and names
        featured = page.locator('#live-matches [data-featured="true"]')
        await expect(featured.first).to_be_visible()  # a paced match lasts long enough to be seen
        await expect(page.locator("#live-matches li").first).to_have_attribute("data-featured", "true")

        await page.goto(f"{client.base_url}/agents/{mine}")
        await expect(page.locator("#ladder-place")).to_contain_text("in line")
        await expect(page.locator("#ladder-place")).to_contain_text("with v1")
        await expect(page.locator("#agent-matches .match-item").first).to_be_visible()
