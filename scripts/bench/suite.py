"""Run every benchmark of issue 4 on this machine, print the table and write it to JSON.

Usage (``scripts/bench/run`` wraps this with the project's venv):

    python -m scripts.bench [--quick] [--only startup,moves] [--out FILE] [--baseline REF]

Each area runs in turn (see each module's docstring for what exactly is timed). The table
shows, per metric, the median of its repeats, their min-max and the issue's target beside it;
ratio rows are per-round ratios of configurations measured side by side. The results go to
``bench-results/latest.json`` (and ``--out``), with a Markdown copy of the table in
``bench-results/latest.md`` for the README's "Performance" section. ``--quick`` is a smoke run
(well under two minutes with a cached kaggle-environments venv); the default run takes
several minutes. ``--baseline REF`` also measures the big documents (``documents``) on the
code at git revision REF, beside the current figures. ``cluster`` (issue 13) starts a private
PostgreSQL of its own (Debian's binaries, as the tests do).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from . import cluster, documents, fairness, kaggle, ladder, memory, moves, spectators, startup, storage
from ._common import ROOT, Row, Section
from ._procs import SERVER_ERRORS, WORKAROUNDS

__all__ = ["AREAS", "machine", "main", "markdown_table", "run_suite", "text_table"]


Context = dict[str, Any]  # what one area hands to the next (the recommended WebSocket setup)


async def _spectators(quick: bool, context: Context) -> Section:
    section = await spectators.run(quick)
    rec = section.extra.get("recommendation")
    if rec:
        context["recommended"] = (rec["ws"], rec["ws_per_message_deflate"])
    return section


async def _memory(quick: bool, context: Context) -> Section:
    # Idle sockets on what `arena serve` runs today and, when it differs, on the recommended setup.
    setups = list(dict.fromkeys([spectators.UVICORN_DEFAULT, context.get("recommended", spectators.UVICORN_DEFAULT)]))
    return await memory.run(quick, setups)


async def _documents(quick: bool, context: Context) -> Section:
    return await documents.run(quick, context.get("baseline"))


async def _ladder(quick: bool, context: Context) -> Section:
    return await ladder.run(quick, context.get("baseline"))


def _plain(run: Callable[[bool], Awaitable[Section]]) -> Callable[[bool, Context], Awaitable[Section]]:
    async def area(quick: bool, context: Context) -> Section:
        return await run(quick)

    return area


AREAS: dict[str, Callable[[bool, Context], Awaitable[Section]]] = {
    "startup": _plain(startup.run),
    "moves": _plain(moves.run),
    "kaggle": _plain(kaggle.run),
    "spectators": _spectators,
    "storage": _plain(storage.run),
    "memory": _memory,
    "documents": _documents,
    "ladder": _ladder,
    "cluster": _plain(cluster.run),
    "fairness": _plain(fairness.run),
}


def machine() -> dict[str, Any]:
    """What this machine is: cores, CPU model, memory, kernel, Python."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {"cores": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version()}


async def run_suite(quick: bool, only: list[str] | None = None, baseline: str | None = None) -> dict[str, Any]:
    """Run the areas (all, or ``only``) one after another; a failing area becomes a note, not a crash."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    sections = []
    context: Context = {"baseline": baseline}
    for name, run in AREAS.items():
        if only and name not in only:
            continue
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            section = await run(quick, context)
        except Exception as exc:  # one broken area must not cost the others' results
            traceback.print_exc()
            section = Section(name, notes=[f"failed: {type(exc).__name__}: {exc}"])
        section.seconds = time.perf_counter() - t0
        print(f"[bench] {name} done in {section.seconds:.0f} s", file=sys.stderr, flush=True)
        sections.append(section)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 1),
        # Other work on the machine skews every figure: the 1-minute load average before and after.
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "workarounds": sorted(WORKAROUNDS),
        "server_errors": list(SERVER_ERRORS),
        "sections": [s.to_json() for s in sections],
    }


def _num(x: float) -> str:
    if math.isnan(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _rows(results: dict[str, Any]) -> list[tuple[str, list[Row], list[str]]]:
    out = []
    for section in results["sections"]:
        rows = [Row(r["name"], r["unit"], r.get("values", []), r.get("target", ""), r.get("error"),
                    r.get("ratio", False)) for r in section["rows"]]
        out.append((section["title"], rows, section["notes"]))
    return out


def _caveats(results: dict[str, Any]) -> list[str]:
    lines = []
    if "load_average" in results:
        before, after = results["load_average"]
        lines.append(f"load average (1 min) before / after the run: {before} / {after}")
    lines += [f"worked around in the benchmark server: {w}" for w in results.get("workarounds", [])]
    lines += [f"logged by a benchmark server: {e}" for e in results.get("server_errors", [])]
    return lines


def text_table(results: dict[str, Any]) -> str:
    """The table as plain text: median, min-max, unit and target per metric, section by section."""
    m = results["machine"]
    lines = [f"Agent Arena benchmarks, {results['date']}, {m['cores']} cores ({m['cpu']}), Python {m['python']}"
             + (" [quick]" if results["quick"] else "")]
    lines += _caveats(results)
    width = max([len(r.name) for _, rows, _ in _rows(results) for r in rows] + [20]) + 2
    for title, rows, notes in _rows(results):
        lines.append("")
        lines.append(f"{title:<{width}}{'median':>10}  {'min - max':>21}  {'unit':<12}target")
        for r in rows:
            if r.error:
                lines.append(f"  {r.name:<{width - 2}}{'n/a':>10}  {'':>21}  {r.unit:<12}{r.target}  ({r.error})")
                continue
            span = f"{_num(r.min)} - {_num(r.max)}"
            lines.append(f"  {r.name:<{width - 2}}{_num(r.median):>10}  {span:>21}  {r.unit:<12}{r.target}")
        lines += [f"  * {note}" for note in notes]
    return "\n".join(lines)


def _md_row(r: Row, *, with_target: bool) -> str:
    value = ("n/a", r.error or "") if r.error else (_num(r.median), f"{_num(r.min)}-{_num(r.max)}")
    target = f" {r.target} |" if with_target else ""
    return f"| {r.name} | {value[0]} | {value[1]} | {r.unit} |{target}"


def markdown_table(results: dict[str, Any]) -> str:
    """Markdown for the README's "Performance" section: the metrics with a target, then everything."""
    m = results["machine"]
    sections = _rows(results)
    lines = [f"Measured {results['date']} on {m['cores']} cores ({m['cpu']}, {m['memory_gib']} GiB, "
             f"Linux {m['kernel']}, Python {m['python']}) by `scripts/bench/run`"
             + (" --quick" if results["quick"] else "") + f" in {results['seconds']:.0f} s. "
             "Medians of the repeats with their min-max; ratios are per-round ratios of configurations "
             "measured side by side.", "",
             "| metric | median | min-max | unit | target (issue 4) |", "|---|---:|---:|---|---|"]
    lines += [_md_row(r, with_target=True) for _, rows, _ in sections for r in rows if r.target]
    notes = [note for _, _, ns in sections for note in ns] + _caveats(results)
    lines += ["", *[f"- {note}" for note in notes], "", "<details><summary>Every measurement</summary>", "",
              "| metric | median | min-max | unit |", "|---|---:|---:|---|"]
    for title, rows, _ in sections:
        lines.append(f"| **{title}** | | | |")
        lines += [_md_row(r, with_target=False) for r in rows]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (small sizes, fewer repeats)")
    parser.add_argument("--only", help=f"comma-separated areas among {', '.join(AREAS)}")
    parser.add_argument("--out", type=Path, help="also write the JSON results here")
    parser.add_argument("--baseline", metavar="REF",
                        help="also measure the big documents on the code at this git revision (e.g. HEAD)")
    args = parser.parse_args(argv)
    only = [a.strip() for a in args.only.split(",")] if args.only else None
    unknown = sorted(set(only or []) - set(AREAS))
    if unknown:
        parser.error(f"unknown area {', '.join(unknown)}; known: {', '.join(AREAS)}")
    os.chdir(ROOT)  # the server and client processes run as `python -m scripts.bench._...` from here
    results = anyio.run(run_suite, args.quick, only, args.baseline)
    print(text_table(results))
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    data = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    (out_dir / "latest.json").write_text(data)
    (out_dir / "latest.md").write_text(markdown_table(results))
    if args.out:
        args.out.write_text(data)
    print(f"\nwritten: {out_dir / 'latest.json'}, {out_dir / 'latest.md'}" + (f", {args.out}" if args.out else ""))
