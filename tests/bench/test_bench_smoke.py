"""The benchmark suite (scripts/bench) still imports and runs: one cheap benchmark, tiny sizes.

No timing is asserted (this machine is shared and noisy); only that numbers come back and the
table renders, so the suite cannot rot unnoticed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `scripts` is not an installed package
    sys.path.insert(0, str(ROOT))

from scripts.bench import suite  # noqa: E402  (imports every area's module)
from scripts.bench._common import Row, Section, percentile  # noqa: E402
from scripts.bench.storage import events_per_second  # noqa: E402


async def test_events_per_second_returns_a_rate() -> None:
    rate = await events_per_second(total=200, matches=2)
    assert rate > 0 and math.isfinite(rate)


def test_table_renders_rows_ratios_and_failures() -> None:
    section = Section("Storage", [Row("events stored", "events/s", [1.0, 3.0, 2.0], ">= 50,000"),
                                  Row("a / b", "x", [1.5], is_ratio=True),
                                  Row("kaggle", "episodes/s", error="pip failed")], ["a note"])
    results = {"date": "today", "machine": suite.machine(), "quick": True, "seconds": 1.0,
               "sections": [section.to_json()]}
    text = suite.text_table(results)
    assert "events stored" in text and "pip failed" in text and "a note" in text
    markdown = suite.markdown_table(results)
    assert "| events stored | 2.00 | 1.00-3.00 | events/s | >= 50,000 |" in markdown
    assert "| kaggle | n/a | pip failed | episodes/s |" in markdown
    assert set(suite.AREAS) == {"startup", "moves", "kaggle", "spectators", "storage", "memory", "documents", "ladder",
                                "cluster", "fairness"}
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


async def test_the_full_path_returns_figures() -> None:
    """A few ConnectX matches through the public API and through the ladder, on a real bench server."""
    from scripts.bench._procs import bench_server
    from scripts.bench.ladder import full_path

    for via_ladder in (False, True):
        async with bench_server("websockets-sansio", False, ladder_slots=2 if via_ladder else 0) as server:
            figures = await full_path(server.port, 4, 2, via_ladder=via_ladder)
        assert figures["matches_per_s"] > 0 and figures["server_ms"] > 0, figures
        assert all(math.isfinite(value) for value in figures.values()), figures


async def test_events_per_second_on_postgresql_returns_a_figure(postgres_url: str) -> None:
    """The cluster area's storage figure, on the tests' private PostgreSQL, with a few events."""
    from scripts.bench.cluster import pg_events_per_second

    rate = await pg_events_per_second(postgres_url, total=200, matches=4)
    assert math.isfinite(rate) and rate > 0
