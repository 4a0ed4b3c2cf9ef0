"""Single-run benchmark: ``hedgebt run`` of the default scenario, split into phases; and ``hedgebt demo``.

Engine: the steps of ``hedgebt run backtest/scenarios/demo.toml`` (FET, three hedge
rules, ~38,000 hourly bars, ledger and report) timed in this process after one
untimed warm-up run (imports done, compiled code loaded from numba's cache):

* load     - config, price files, alignment, holdings, futures book and roll schedule
             (``engine.prepare`` minus the two phases below);
* index    - ``index.build_index`` (the AI-token index with its intrabar high);
* rules    - the hedge-ratio estimates of the three rules;
* simulate - ``results.run``: the kernel with the per-bar ledger for each rule, the
             collateral check runs, the ledger table and the summary;
* report   - ``Result.save`` with the report (figures and PDF); also its CPU time, split into
             this process's (metrics with the HE bootstraps, CSVs, PDF) and the figure workers'
             (forked, reaped when the report ends: ``RUSAGE_CHILDREN``).

The end-to-end wall time of the command line (a fresh interpreter) is measured too.

Baseline: the same three rules replayed by ``backtest.reference.simulate_reference``,
the plain-Python bar loop (one bar at a time, positions in a dict) that the kernel
is tested against: same accounting (fees, slippage, rolls, margin, funding). It is
compared with the kernel producing the same per-bar rows (``market.run_variant``).
The end-to-end baseline is the same run with that loop in place of the kernel.

Also ``hedgebt demo`` (both bundled scenarios with reports) from the command line: once to
fill any cache, then :data:`DEMO_RUNS` warm runs, :data:`DEMO_RUNS` warm runs with each figure
copied from the first run instead of drawn (``demo_without_figures.py``: what the demo costs
besides matplotlib's drawing), and :data:`DEMO_RUNS` cold runs, each with
an empty numba cache (``NUMBA_CACHE_DIR`` a fresh folder: the first run after an install).
This VM's speed moves by a third from one minute to the next, so each figure is the median of
its runs, with the fastest and slowest beside it; the targets (warm under 5 s, cold under
25 s) are judged on the median.

Run: ``.venv/bin/python benchmarks/single_run.py``.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEMO, ROOT, TARGET_COLD_S, TARGET_DEMO_S, Row, fmt_s, say, verdict

#: The timed phases of one in-process run (:func:`_phases`).
_PHASES = ("load", "index", "rules", "simulate", "report")

#: Timed runs of each ``hedgebt demo`` figure (warm, cold); the figure is their median.
DEMO_RUNS = 3


class _TimedRule:
    """A hedge rule whose ``hedge_ratio`` adds its wall time to ``clock[0]``."""

    def __init__(self, rule, clock: list[float]) -> None:
        self._rule = rule
        self._clock = clock

    def __getattr__(self, name):
        return getattr(self._rule, name)

    def hedge_ratio(self, coin_ret, fut_ret):
        t0 = time.perf_counter()
        out = self._rule.hedge_ratio(coin_ret, fut_ret)
        self._clock[0] += time.perf_counter() - t0
        return out


def _phases(out_dir: Path) -> dict[str, float]:
    """One ``hedgebt run`` of the demo, in this process, with the time of each phase."""
    import backtest.engine as engine
    from backtest.api import Result
    from backtest.config import load_config
    from backtest.results import run

    index_clock = [0.0]
    rule_clock = [0.0]
    build_index = engine.build_index
    rule_objects = engine.rule_objects

    def timed_build_index(*a, **kw):
        t0 = time.perf_counter()
        out = build_index(*a, **kw)
        index_clock[0] += time.perf_counter() - t0
        return out

    def timed_rule_objects(config):
        rules, labels = rule_objects(config)
        return tuple(_TimedRule(r, rule_clock) for r in rules), labels

    engine.build_index = timed_build_index
    engine.rule_objects = timed_rule_objects
    try:
        t0 = time.perf_counter()
        config = load_config(DEMO)
        prepared = engine.prepare(config)
        t1 = time.perf_counter()
        result = run(config, prepared=prepared)
        t2 = time.perf_counter()
        main0, workers0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        Result.from_run(result).save(out_dir, force=True)
        t3 = time.perf_counter()
        main1, workers1 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    finally:
        engine.build_index = build_index
        engine.rule_objects = rule_objects
    return {
        "load": (t1 - t0) - index_clock[0] - rule_clock[0],
        "index": index_clock[0],
        "rules": rule_clock[0],
        "simulate": t2 - t1,
        "report": t3 - t2,
        "total": t3 - t0,
        "report_cpu_main": main1 - main0,
        "report_cpu_workers": workers1 - workers0,
    }


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process (``RUSAGE_SELF``) or of its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _kernel_vs_reference() -> dict[str, float]:
    """The three rules' per-bar ledgers: kernel vs the plain-Python reference loop."""
    from backtest.config import load_config
    from backtest.engine import prepare, variant_for
    from backtest.market import run_variant
    from backtest.reference import simulate_reference

    config = load_config(DEMO)
    prepared = prepare(config)
    variants = [variant_for(config, col) for col in range(len(prepared.rules))]
    run_variant(prepared.market, variants[0])  # compiled code loaded
    t0 = time.perf_counter()
    for v in variants:
        run_variant(prepared.market, v)
    kernel = time.perf_counter() - t0
    t0 = time.perf_counter()
    for v in variants:
        simulate_reference(prepared.market, v)
    reference = time.perf_counter() - t0
    return {"kernel": kernel, "reference": reference, "rules": len(variants), "bars": prepared.market.n_bars}


def _cli(*args: str, env: dict[str, str] | None = None) -> float:
    exe = Path(sys.executable).with_name("hedgebt")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "backtest.cli", *args]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def _cold_demo(tmp: Path, run: int) -> float:
    """``hedgebt demo`` with an empty numba cache: ``NUMBA_CACHE_DIR`` set to a fresh folder,
    so every kernel compiles (what the first run after an install does)."""
    cache = tmp / f"numba-cache-{run}"
    cache.mkdir()
    return _cli("demo", "--out", str(tmp / "cold"), "--force", env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})


def _demo_without_figures(drawn: Path, out: Path) -> float:
    """``hedgebt demo`` (fresh interpreter, warm cache) with the figures copied from ``drawn``
    instead of drawn (``benchmarks/demo_without_figures.py``): what the demo costs besides
    matplotlib drawing its figures."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "demo_without_figures.py"), str(drawn), str(out)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _spread(times: list[float]) -> str:
    """``median (min-max of n runs)``."""
    return f"{fmt_s(statistics.median(times))} ({min(times):.2f}-{fmt_s(max(times))} in {len(times)} runs)"


def main() -> list[Row]:
    say("== single run: hedgebt run backtest/scenarios/demo.toml (3 rules, hourly FET 2021-2025, ledger + report) ==")
    tmp = Path(tempfile.mkdtemp(prefix="hedgebt-bench-"))
    try:
        _phases(tmp / "warmup")
        p = _phases(tmp / "run")
        say("in-process, warm: " + ", ".join(f"{k} {fmt_s(p[k])}" for k in _PHASES + ("total",)))
        say(f"report CPU: {fmt_s(p['report_cpu_main'])} in this process, {fmt_s(p['report_cpu_workers'])} in the "
            f"figure workers ({fmt_s(p['report_cpu_main'] + p['report_cpu_workers'])} on {os.cpu_count()} cores)")
        cli_run = _cli("run", str(DEMO), "--out", str(tmp / "cli"), "--force")
        say(f"command line `hedgebt run` (fresh interpreter, warm numba cache): {fmt_s(cli_run)}")
        kr = _kernel_vs_reference()
        ratio_sim = kr["reference"] / kr["kernel"]
        # the run with the three ledger replays done by the reference loop (its collateral
        # check replays are left to the kernel: the baseline is, if anything, flattered)
        base_total = p["total"] - kr["kernel"] + kr["reference"]
        ratio_total = base_total / p["total"]
        say(f"simulate, {kr['rules']} rules x {kr['bars']:,} bars with per-bar ledger: kernel {fmt_s(kr['kernel'])}, "
            f"plain-Python reference loop {fmt_s(kr['reference'])}  -> {ratio_sim:.0f}x")
        say(f"whole run with the reference loop instead of the kernel: {fmt_s(base_total)} vs {fmt_s(p['total'])}  -> {ratio_total:.1f}x")
        _cli("demo", "--out", str(tmp / "demo"), "--force")  # first run: may fill caches
        warm_runs = [_cli("demo", "--out", str(tmp / "demo"), "--force") for _ in range(DEMO_RUNS)]
        demo = statistics.median(warm_runs)
        ok = demo < TARGET_DEMO_S
        say(f"`hedgebt demo` warm (both scenarios with reports), median: {_spread(warm_runs)}  "
            f"target < {TARGET_DEMO_S:.0f} s: {verdict(ok)}")
        floor_runs = [_demo_without_figures(tmp / "demo", tmp / "no-figures") for _ in range(DEMO_RUNS)]
        say(f"`hedgebt demo` warm with each figure copied from the run above instead of drawn (the rest of "
            f"the demo), median: {_spread(floor_runs)}")
        cold_runs = [_cold_demo(tmp, i) for i in range(DEMO_RUNS)]
        cold = statistics.median(cold_runs)
        ok_cold = cold < TARGET_COLD_S
        say(f"first `hedgebt demo` after install (empty numba cache), median: {_spread(cold_runs)}  "
            f"target < {TARGET_COLD_S:.0f} s: {verdict(ok_cold)}")
        say(f"(report rendering is {p['report'] / p['total']:.0%} of a single run)")
        say()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    phases = (", ".join(f"{k} {fmt_s(p[k])}" for k in _PHASES)
              + f" (report CPU: {fmt_s(p['report_cpu_main'])} main process, {fmt_s(p['report_cpu_workers'])} figure workers)")
    return [
        Row("single run", "`hedgebt run` demo, wall time (warm, in process)", fmt_s(p["total"]), fmt_s(base_total),
            f"{ratio_total:.1f}x", "", "", f"{phases}; baseline = same run with the reference loop for the simulation"),
        Row("single run", "simulate step: 3 rules, per-bar ledger", fmt_s(kr["kernel"]), fmt_s(kr["reference"]),
            f"{ratio_sim:.0f}x", "", "", "baseline: backtest.reference.simulate_reference (plain-Python bar loop, same accounting)"),
        Row("single run", "`hedgebt run` demo from the command line", fmt_s(cli_run), "", "", "", "",
            "fresh interpreter, numba cache warm"),
        Row("single run", "`hedgebt demo` warm (median)", _spread(warm_runs), "", "", f"< {TARGET_DEMO_S:.0f} s",
            verdict(ok), "both bundled scenarios with reports; after one run that fills any cache"),
        Row("single run", "`hedgebt demo` warm, figures copied not drawn (median)", _spread(floor_runs), "", "", "", "",
            "the same demo with each figure job copying the PNG of the run above (benchmarks/"
            "demo_without_figures.py): what the rest costs, a floor for any figure work"),
        Row("single run", "first `hedgebt demo` after install (cold, median)", _spread(cold_runs), "", "",
            f"< {TARGET_COLD_S:.0f} s", verdict(ok_cold),
            "NUMBA_CACHE_DIR set to an empty folder for each run: every kernel compiles"),
    ]


if __name__ == "__main__":
    main()
