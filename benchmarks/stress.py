"""Stress benchmark: paths x bars x variants per second of ``hedgebt stress``, and its peak memory.

Workload: the demo scenario (FET, three hedge rules, hourly bars), ``PATHS`` stationary-
bootstrap paths of 30 days (721 bars; seed 0, the data-driven block length), replayed
as ``hedgebt stress`` does in its two kernel passes:

* first pass - the margin-free replay of each rule (3 variants; it gives each path's
  collateral need);
* curve pass - per rule the margin-free replay and 21 collateral levels with margin on
  (66 variants; the grid is the one ``run_stress`` picks: 21 round levels up to 1.2 x
  the largest 99.5 % path quantile of the need).

Engine: :func:`backtest.kernels.simulate_paths_nb`, every (path, variant group) of a batch
of 64 stacked paths as tasks of one parallel pass (a thread takes the next task when done), stacking
included (what ``backtest.margin_stress.simulate_paths`` does). Baseline, measured in the same run on the same
path markets: the per-path loop it replaced, one ``simulate_many_nb`` call (all variants
of that path in parallel) per path. Throughput = paths x bars x variants / wall time (best
of ``REPEAT``, the two timed alternately), on one thread and on two (``numba.set_num_threads``). Building the path
markets (prices, holding, re-estimated hedge ratios) is not timed here; it is in the
command's wall time below.

Memory: ``hedgebt stress backtest/scenarios/demo.toml --paths 1000 --horizon-days 30`` run in
a fresh process (``backtest.cli.main``, all cores): its wall time, the resident set after
the imports and the process's peak resident set (``VmHWM`` of ``/proc/self/status``; Linux
carries ``ru_maxrss`` over ``exec`` from the forking parent, so it is not used). The
1-minute load average before each measurement is printed: the machine is shared.

Run: ``.venv/bin/python benchmarks/stress.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEMO, ROOT, Row, fmt_s, say, time_best

PATHS = 256
HORIZON_DAYS = 30
BATCH = 64  # paths per kernel call, as backtest.margin_stress.simulate_paths
REPEAT = 5
CLI_PATHS = 1000


def _rate(x: float) -> str:
    return f"{x / 1e6:,.1f} M/s"


def _workload():
    """Path markets and the two passes' variants (see the module docstring)."""
    from backtest import kernels as K
    from backtest.market import pack_variants
    from backtest.margin_stress import _nice_grid, _quantile, _variants, block_length, draw_indices, joint_moves, path_market
    from common import demo_config, demo_prepared

    config = demo_config()
    prepared = demo_prepared(config)
    moves = joint_moves(prepared)
    H = HORIZON_DAYS * 24 + 1
    indices = draw_indices(prepared.market.n_bars - 1, H - 1, PATHS, block_length(prepared), seed=0)
    markets = [path_market(config, prepared, rows, moves) for rows in indices]
    R = len(prepared.rules)
    first = pack_variants(_variants(config, R, ()))
    needs = np.stack([K.simulate_many_nb(*mk.kernel_args(), *first)[:, K.S_MARGIN_NEED] for mk in markets])
    grid = _nice_grid(1.2 * max(_quantile(needs[:, r], 0.995) for r in range(R)))
    curve = pack_variants(_variants(config, R, grid))
    return markets, {"first pass": first, "curve pass": curve}


def _loop(markets, fps, ips):
    from backtest import kernels as K

    return [K.simulate_many_nb(*mk.kernel_args(), fps, ips) for mk in markets]


def _one_pass(markets, fps, ips):
    from backtest.margin_stress import _kernel_batch, stack_markets

    return [_kernel_batch(stack_markets(markets[i : i + BATCH]), fps, ips) for i in range(0, len(markets), BATCH)]


def _throughputs(markets, passes) -> dict:
    import numba

    threads = numba.config.NUMBA_NUM_THREADS
    out = {}
    H = markets[0].n_bars
    for name, (fps, ips) in passes.items():
        want = np.concatenate(_one_pass(markets, fps, ips))  # also loads the compiled code
        if not np.array_equal(want, np.stack(_loop(markets, fps, ips))):
            raise AssertionError(f"{name}: the one-pass kernel differs from the per-path loop")
        work = len(markets) * H * fps.shape[0]
        for n in sorted({1, min(2, threads)}):
            numba.set_num_threads(n)
            old = new = float("inf")
            for _ in range(REPEAT):  # interleaved, so that a change of load hits both alike
                old = min(old, time_best(lambda: _loop(markets, fps, ips), 1)[0])
                new = min(new, time_best(lambda: _one_pass(markets, fps, ips), 1)[0])
            out[(name, n)] = {"work": work, "variants": fps.shape[0], "old_s": old, "new_s": new,
                              "old": work / old, "new": work / new}
        numba.set_num_threads(threads)
    return out


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child(out_dir: str) -> None:
    """``hedgebt stress`` of the demo in this (fresh) process: wall time and memory as JSON."""
    from backtest.cli import main

    rss0 = _status_mb("VmRSS")
    t0 = time.perf_counter()
    code = main(["stress", str(DEMO), "--paths", str(CLI_PATHS), "--horizon-days", str(HORIZON_DAYS),
                 "--out", out_dir, "--quiet"])
    seconds = time.perf_counter() - t0
    print(json.dumps({"code": code, "seconds": seconds, "imports_mb": rss0, "peak_mb": _status_mb("VmHWM")}))


def _cli() -> dict:
    with tempfile.TemporaryDirectory(prefix="hedgebt-bench-stress-") as tmp:
        out = subprocess.run([sys.executable, __file__, "--child", tmp + "/out"], check=True, capture_output=True,
                             text=True, cwd=ROOT)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["code"] != 0:
        raise RuntimeError(f"hedgebt stress exited with {r['code']}")
    return r


def main() -> list[Row]:
    say(f"== stress: {PATHS} bootstrap paths x {HORIZON_DAYS} days of the demo, one-pass kernel vs per-path loop ==")
    markets, passes = _workload()
    load = os.getloadavg()[0]
    res = _throughputs(markets, passes)
    rows: list[Row] = []
    for (name, n), r in res.items():
        ratio = r["new"] / r["old"]
        say(f"{name:<10} {r['variants']:>3} variants, {n} thread{'s' if n > 1 else ' '}: one pass "
            f"{_rate(r['new']):>11} ({r['new_s'] * 1e3:6.0f} ms)   per-path loop {_rate(r['old']):>11} "
            f"({r['old_s'] * 1e3:6.0f} ms)   {ratio:.2f}x")
        rows.append(Row("stress", f"{name} ({r['variants']} variants), {n} thread{'s' if n > 1 else ''} "
                        "(path-bar-variants/s)", _rate(r["new"]), _rate(r["old"]), f"{ratio:.2f}x", "", "",
                        f"{PATHS} paths x {markets[0].n_bars} bars; baseline: one simulate_many_nb call per path; "
                        f"load average {load:.1f} before"))
    say(f"(1-minute load average before the kernel timings: {load:.1f} on {os.cpu_count()} cores)")
    load = os.getloadavg()[0]
    c = _cli()
    say(f"hedgebt stress demo.toml --paths {CLI_PATHS} --horizon-days {HORIZON_DAYS}: {fmt_s(c['seconds'])}, "
        f"peak resident set {c['peak_mb']:,.0f} MB (after imports {c['imports_mb']:,.0f} MB)")
    rows.append(Row("stress", f"hedgebt stress demo, {CLI_PATHS:,} paths x {HORIZON_DAYS} days",
                    f"{fmt_s(c['seconds'])}, peak {c['peak_mb']:,.0f} MB", "", "", "", "",
                    f"fresh process, all cores; resident after imports {c['imports_mb']:,.0f} MB; load average {load:.1f} before"))
    say()
    return rows


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main()
