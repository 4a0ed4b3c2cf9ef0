"""Scaling benchmark: time and peak memory against the number of variants and of bars.

Points: 100, 1,000 and 10,000 variants on the hourly demo market (1x bars), and 1,000
variants on 1x, 4x and 16x the bars. Variants are the 1,000 of the sweep benchmark,
repeated as needed; summaries only (``simulate_many_nb``), all cores.

Each point runs in its own process (so peaks do not contaminate each other): it loads
the prepared market (pickled by the parent), builds its variants, loads the compiled
kernel with a two-variant call, then times three full calls (best kept). Peak memory
is the process's maximum resident set over its life (``ru_maxrss``, what the target is
about), reported with the resident set just before the timed calls (interpreter,
libraries, market, variants) and the peak during them (``VmHWM`` after resetting
it through ``/proc/self/clear_refs``, Linux), so the kernel's own share is visible.

More bars: ``common.stretch_market`` splits every hourly bar into 4 or 16 sub-bars
(prices interpolated geometrically between closes; schedule, hedge ratios and holding
repeated; settlements, funding and variation-margin flags on each bar's last sub-bar).
This keeps the 18 contracts: concatenating the history with itself would add contracts
with every copy, and the dense bars x contracts price matrix would grow with the square.

Run: ``.venv/bin/python benchmarks/scaling.py``.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import TARGET_PEAK_MB, Row, fmt_s, say, verdict

VARIANT_POINTS = (100, 1_000, 10_000)
BAR_FACTORS = (1, 4, 16)
BAR_POINT_VARIANTS = 1_000
REPEAT = 3  # timed calls per point (best kept)


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MB, if available."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the process's peak resident set (Linux ``clear_refs``); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _child(path: str, n_variants: int, factor: int) -> None:
    import resource

    import numpy as np

    from backtest import kernels as K
    from common import stretch_market

    with open(path, "rb") as fh:
        market, fps, ips = pickle.load(fh)
    market = stretch_market(market, factor)
    reps = -(-n_variants // fps.shape[0])
    fps = np.ascontiguousarray(np.tile(fps, (reps, 1))[:n_variants])
    ips = np.ascontiguousarray(np.tile(ips, (reps, 1))[:n_variants])
    args = market.kernel_args()
    K.simulate_many_nb(*args, fps[:2], ips[:2])
    before = _status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reset = _reset_peak()
    seconds = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        summaries = K.simulate_many_nb(*args, fps, ips)
        seconds = min(seconds, time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # whole process life
    during = _status_mb("VmHWM") if reset else None  # since the reset: the timed call
    assert np.isfinite(summaries[:, K.S_FINAL_EQUITY_HEDGED]).all()
    print(json.dumps({"variants": n_variants, "factor": factor, "bars": market.n_bars, "seconds": seconds,
                      "peak_mb": peak, "before_mb": before, "during_mb": during,
                      "summary_mb": summaries.nbytes / 1024**2}))


def _mb(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f} MB"


def _point(path: Path, n_variants: int, factor: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path), str(n_variants), str(factor)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> list[Row]:
    from backtest.market import pack_variants
    from common import sweep_setup

    say("== scaling: time and peak memory vs variants and bars (summaries only, all cores, one process per point) ==")
    _, _, market, variants, _ = sweep_setup()
    fps, ips = pack_variants(variants)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hedgebt-bench-") as tmp:
        path = Path(tmp) / "market.pkl"
        with path.open("wb") as fh:
            pickle.dump((market, fps, ips), fh)
        points = [(n, 1) for n in VARIANT_POINTS] + [(BAR_POINT_VARIANTS, f) for f in BAR_FACTORS if f != 1]
        results = {}
        for n, f in points:
            r = _point(path, n, f)
            results[(n, f)] = r
            work = r["bars"] * r["variants"]
            say(f"{r['variants']:>6,} variants x {r['bars']:>8,} bars ({f:>2}x): {fmt_s(r['seconds']):>8}  "
                f"{r['seconds'] / work * 1e9:5.2f} ns per bar-variant  process peak {r['peak_mb']:,.0f} MB; "
                f"resident before the calls {r['before_mb']:,.0f} MB, peak during them {_mb(r['during_mb'])}")
    base_v = results[(VARIANT_POINTS[0], 1)]
    for n in VARIANT_POINTS:
        r = results[(n, 1)]
        growth = r["seconds"] / base_v["seconds"]
        note = (f"{r['bars']:,} bars; {r['seconds'] / (r['bars'] * n) * 1e9:.2f} ns per bar-variant; resident before "
                f"the calls {r['before_mb']:,.0f} MB, peak during them {_mb(r['during_mb'])}")
        target = status = ""
        if n == 10_000:
            target = f"peak < {TARGET_PEAK_MB:,.0f} MB"
            status = verdict(r["peak_mb"] < TARGET_PEAK_MB)
        rows.append(Row("scaling", f"{n:,} variants x 1x bars", f"{fmt_s(r['seconds'])}, peak {r['peak_mb']:,.0f} MB",
                        "", f"time {growth:.1f}x of 100 variants (variants {n / VARIANT_POINTS[0]:.0f}x)", target, status, note))
    base_b = results[(BAR_POINT_VARIANTS, 1)]
    for f in BAR_FACTORS[1:]:  # (1x is the 1,000-variant row above)
        r = results[(BAR_POINT_VARIANTS, f)]
        growth = r["seconds"] / base_b["seconds"]
        rows.append(Row("scaling", f"{BAR_POINT_VARIANTS:,} variants x {f}x bars ({r['bars']:,})",
                        f"{fmt_s(r['seconds'])}, peak {r['peak_mb']:,.0f} MB", "", f"time {growth:.1f}x of 1x bars (bars {f}x)",
                        "", "", f"{r['seconds'] / (r['bars'] * BAR_POINT_VARIANTS) * 1e9:.2f} ns per bar-variant; "
                        f"resident before the calls {r['before_mb']:,.0f} MB, peak during them {_mb(r['during_mb'])}"))
    r10k = results[(10_000, 1)]
    say(f"target: peak memory < {TARGET_PEAK_MB:,.0f} MB for 10,000 variants on the hourly data: "
        f"{verdict(r10k['peak_mb'] < TARGET_PEAK_MB)} (process peak {r10k['peak_mb']:,.0f} MB; during the kernel calls "
        f"{_mb(r10k['during_mb'])}, from {r10k['before_mb']:,.0f} MB resident before them)")
    say()
    return rows


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
