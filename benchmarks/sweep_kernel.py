"""Kernel-only sweep timing: ``simulate_many_nb`` on the 1,000-variant sweep of both demos.

The hedgebt half of ``sweep.py`` without the vectorbt baseline, for comparing kernel
versions back to back: wall time (best of ``repeat``) and bar-variants per second on
one thread and on all of numba's threads, quarterly demo (rolls) and perpetual demo
(funding every 8 hours).

Run: ``NUMBA_NUM_THREADS=2 PYTHONPATH=. .venv/bin/python benchmarks/sweep_kernel.py [repeat]``.
"""

from __future__ import annotations

import sys
import time

from common import ROOT, sweep_setup


def main(repeat: int = 5) -> None:
    import numba

    from backtest import kernels as K
    from backtest.config import load_config
    from backtest.market import pack_variants

    perp = load_config(ROOT / "backtest" / "scenarios" / "demo_perpetual.toml")
    for name, cfg in (("quarterly", None), ("perpetual", perp)):
        _, _, market, variants, _ = sweep_setup(cfg)
        fps, ips = pack_variants(variants)
        args = market.kernel_args()
        K.simulate_many_nb(*args, fps[:2], ips[:2])  # load the cached machine code (or compile it)
        for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                K.simulate_many_nb(*args, fps, ips)
                best = min(best, time.perf_counter() - t0)
            rate = market.n_bars * len(variants) / best / 1e6
            print(f"{name} threads={n}: {best:.3f} s, {rate:.1f} M bar-variants/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
