"""Run every benchmark and write ``benchmarks/results/results.md`` and ``results.csv``.

``make bench`` runs this. Order: scaling (one subprocess per point), single run
(including ``hedgebt demo`` from the command line), stress (``hedgebt stress``'s kernel
passes, one-pass vs per-path loop, and the command's memory), the sweep (vectorbt last of the
timings: it is the heaviest in memory), then peak memory of 2,000,000 bars and of
10,000 rules (``memory.py``, each run in a child process). Each benchmark prints its
engine figure, its baseline, their ratio and PASS / MISS against the targets of the performance issue;
the table collects them with the machine's description and, per row, the script that
measured it (run alone, it makes the same measurements).

Run: ``.venv/bin/python benchmarks/run_all.py`` (about 7 minutes warm; a fresh clone
adds the first compilation of the kernels and of vectorbt).
"""

from __future__ import annotations

import time
from dataclasses import replace

import common
import memory
import scaling
import single_run
import stress
import sweep


def main() -> int:
    started = time.perf_counter()
    info = common.machine_info()
    common.say("hedgebt benchmarks - " + ", ".join(f"{k}: {v}" for k, v in info.items()))
    common.say()
    rows: list[common.Row] = []
    for module in (scaling, single_run, stress, sweep, memory):
        command = f".venv/bin/python benchmarks/{module.__name__}.py"  # the same measurement, run alone
        rows += [replace(r, command=command) for r in module.main()]
    elapsed = time.perf_counter() - started
    extra = [
        "hedgebt 'all cores' uses numba's default thread count "
        f"({info['cores']} here); the 100 M/s target is for one core (numba.set_num_threads(1)).",
        "vectorbt runs on one core; its figure is the faster of the two ways it was timed (see the sweep notes).",
        "4x and 16x bars: every hourly bar split into 4 or 16 sub-bars, prices interpolated geometrically "
        "(benchmarks/common.py: stretch_market); the 18 contracts are kept.",
        "Peak memory: the whole process's maximum resident set (ru_maxrss), one process per point.",
        "Single-run baseline: backtest.reference.simulate_reference, the plain-Python bar loop the kernel is "
        "tested against (not a pandas loop).",
        f"Benchmarks took {elapsed / 60:.1f} min in all.",
    ]
    md, csv_path = common.write_table(rows, info, extra)
    common.say("== summary ==")
    width = max(len(r.metric) for r in rows)
    for r in rows:
        line = f"{r.benchmark:<10} {r.metric:<{width}}  {r.engine}"
        if r.baseline:
            line += f"  | baseline {r.baseline}"
        if r.ratio:
            line += f"  | {r.ratio}"
        if r.status:
            line += f"  | {r.target}: {r.status}"
        common.say(line)
    common.say()
    common.say(f"wrote {md.relative_to(common.ROOT)} and {csv_path.relative_to(common.ROOT)} in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
