"""Shared pieces of the benchmarks: the demo market, the 1,000-variant sweep grid,
timing, targets and machine information.

The benchmarks are scripts, not tests: each prints the engine's figure, a baseline
measured in the same process run, their ratio and PASS / MISS against the targets of
the performance issue, and returns its rows to ``benchmarks/run_all.py``.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DEMO = ROOT / "backtest" / "scenarios" / "demo.toml"
RESULTS = ROOT / "benchmarks" / "results"

# -- targets of the performance issue ---------------------------------------------------------
TARGET_RATIO_VS_VBT = 50.0  # sweep throughput / vectorbt's, one core each, same bars and variants
TARGET_SCALING = 1.8  # sweep throughput on two threads / on one
TARGET_PERPETUAL_SHARE = 0.8  # perpetual sweep (funding) / quarterly sweep, one core each
TARGET_PEAK_MB = 1500.0  # peak memory, 10,000 variants on the hourly 2021-2025 data, summaries only
TARGET_DEMO_S = 5.0  # `hedgebt demo`, warm (both scenarios, full reports)
TARGET_COLD_S = 25.0  # the first `hedgebt demo` after install (empty numba cache)


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    metric: str
    engine: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    status: str = ""
    note: str = ""
    command: str = ""  # the script that measured it, run alone (set by run_all)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def say(line: str = "") -> None:
    print(line, flush=True)


def fmt_rate(x: float) -> str:
    """Bar-variants per second, human-readable."""
    return f"{x / 1e6:,.1f} M/s"


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def time_best(fn: Callable[[], object], repeat: int = 3) -> tuple[float, list[float]]:
    """Best wall time of ``repeat`` calls (and all of them)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


# -- machine ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """CPU, cores, memory, package versions and the date (no heavy imports)."""
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "numba": _version("numba"),
        "vectorbt": _version("vectorbt"),
        "hedgebt": _version("hedgebt"),
    }


# -- the demo market and the sweep grid ---------------------------------------------------------

#: hedge rules of the sweep (family, parameters): one hedge-ratio column each
SWEEP_RULES: tuple[tuple[str, dict], ...] = (
    ("notional", {"fraction": 0.5}),
    ("notional", {"fraction": 0.75}),
    ("notional", {"fraction": 1.0}),
    ("fixed", {"ratio": 0.8}),
    ("min_variance", {"window": 168}),
    ("min_variance", {"window": 336}),
    ("min_variance", {"window": 720}),
    ("min_variance", {"window": 1440}),
    ("ewma", {"halflife": 72.0}),
    ("ewma", {"halflife": 168.0}),
)


def sweep_policies() -> list[dict]:
    """The 100 rebalance policies of the sweep (keyword changes to the demo's ``Variant``)."""
    everys = (1, 2, 4, 6, 8, 12, 24, 48, 72, 168)
    bands = (0.01, 0.02, 0.03, 0.05, 0.075, 0.10, 0.15, 0.20, 0.25, 0.30)
    out: list[dict] = []
    for whole in (True, False):
        out += [dict(mode="every", every_bars=e, whole_contracts=whole) for e in everys]
        out += [dict(mode="band", band=b, whole_contracts=whole) for b in bands]
        out += [dict(mode="band_on_schedule", every_bars=e, band=b, whole_contracts=whole)
                for e in (4, 8, 24, 72, 168) for b in (0.02, 0.05, 0.10, 0.20)]
    out += [dict(mode="every", every_bars=e, whole_contracts=True, min_trade_contracts=5.0) for e in everys]
    out += [dict(mode="band", band=b, whole_contracts=True, policy="cut_hedge") for b in bands]
    assert len(out) == 100
    return out


def demo_config():
    from backtest.config import load_config

    return load_config(DEMO)


def demo_prepared(config=None):
    """``prepare`` of the bundled demo scenario: FET hedged with the default AI index, hourly, 2021 on."""
    from backtest.engine import prepare

    return prepare(config if config is not None else demo_config())


def sweep_setup(config=None, prepared=None):
    """The sweep: the demo market with one hedge-ratio column per rule of ``SWEEP_RULES``,
    and 1,000 variants (10 rules x 100 rebalance policies) under the demo's fees,
    slippage, rolls and margin settings (margin checks on).

    Returns ``(config, prepared, market, variants, labels)``.
    """
    from backtest.engine import coin_and_futures_returns, variant_for
    from strategies.rules import make_rule

    config = config if config is not None else demo_config()
    prepared = prepared if prepared is not None else demo_prepared(config)
    coin_ret, fut_ret = coin_and_futures_returns(prepared.market)
    hr = np.column_stack([np.asarray(make_rule(f, **p).hedge_ratio(coin_ret, fut_ret), dtype=float)
                          for f, p in SWEEP_RULES])
    market = replace(prepared.market, hr=hr)
    variants = []
    labels = []
    for col, (family, params) in enumerate(SWEEP_RULES):
        base = variant_for(config, col, margin_enabled=True)
        for pol in sweep_policies():
            variants.append(replace(base, **pol))
            labels.append(f"{family}{params} {pol}")
    return config, prepared, market, variants, labels


def stretch_market(market, factor: int):
    """The same period with ``factor`` times as many bars (``factor`` sub-bars per bar).

    Prices (contracts, index, coin value) are interpolated geometrically between
    consecutive closes, so the last sub-bar of bar ``t`` closes exactly at bar ``t``'s
    close; the roll schedule, hedge ratios and holding are repeated; settlements,
    funding and daily variation-margin flags fall on the last sub-bar of their bar;
    the volume per bar is divided by ``factor``. The number of contracts is unchanged
    (concatenating the history with itself would multiply the contracts too, and the
    dense ``bars x contracts`` price matrix would grow with the square of the length).
    Only for a holding of constant size (as in the demo).
    """
    from backtest.market import Market

    f = int(factor)
    if f == 1:
        return market
    if market.alt_changed.any() or np.any(market.alt_flow != 0):
        raise ValueError("stretch_market needs a holding of constant size")
    T = market.n_bars
    frac = (np.arange(f) + 1.0) / f  # position of each sub-bar inside its bar

    def geo(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=float)
        prev = np.concatenate([a[:1], a[:-1]], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = a / prev
        shape = (T, f) + a.shape[1:]
        w = frac.reshape((1, f) + (1,) * (a.ndim - 1))
        out = prev[:, None] * np.power(ratio[:, None], w)
        bad = ~np.isfinite(out)
        out = np.where(bad, np.broadcast_to(a[:, None], shape), out)
        out[:, -1] = a
        return out.reshape((T * f,) + a.shape[1:])

    def rep(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, f, axis=0)

    def last(a: np.ndarray, fill) -> np.ndarray:
        out = np.full((T, f) + a.shape[1:], fill, dtype=a.dtype)
        out[:, -1] = a
        return out.reshape((T * f,) + a.shape[1:])

    alt_value = geo(market.alt_value)
    alt_pnl = np.zeros(T * f)
    alt_pnl[1:] = np.diff(alt_value)
    exp_bar = np.where(market.exp_bar < T, market.exp_bar * f + (f - 1), market.exp_bar)
    return Market(
        px=geo(market.px), idx=geo(market.idx), idx_hi=last(market.idx_hi, np.nan), idx_lo=last(market.idx_lo, np.nan),
        c0=rep(market.c0), c1=rep(market.c1), w1=rep(market.w1), exp_bar=exp_bar,
        fund_rate=last(market.fund_rate, 0.0), volume_usd=rep(market.volume_usd) / f, vm_bar=last(market.vm_bar, False),
        alt_value=alt_value, alt_pnl=alt_pnl, alt_flow=np.zeros(T * f), alt_changed=np.zeros(T * f, dtype=bool),
        hr=rep(market.hr), contract_size=market.contract_size,
    )


def write_table(rows: list[Row], info: dict[str, str], extra: list[str] | None = None) -> tuple[Path, Path]:
    """``benchmarks/results/results.md`` and ``results.csv``."""
    import csv

    RESULTS.mkdir(parents=True, exist_ok=True)
    md = RESULTS / "results.md"
    lines = ["# hedgebt benchmarks", ""]
    lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "date") + ".")
    lines.append(f"Measured {info['date']} by `make bench` (`benchmarks/run_all.py`).")
    lines.append("")
    lines.append("| benchmark | metric | hedgebt | baseline | ratio | target | status | command |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        command = f"`{r.command}`" if r.command else ""
        lines.append(f"| {r.benchmark} | {r.metric} | {r.engine} | {r.baseline} | {r.ratio} | {r.target} | {r.status} "
                     f"| {command} |")
    notes = [f"- {r.benchmark} / {r.metric}: {r.note}" for r in rows if r.note]
    if notes or extra:
        lines += ["", "Notes:", ""] + notes + [f"- {x}" for x in (extra or [])]
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_path = RESULTS / "results.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["benchmark", "metric", "hedgebt", "baseline", "ratio", "target", "status", "note", "command", *info])
        for r in rows:
            w.writerow([r.benchmark, r.metric, r.engine, r.baseline, r.ratio, r.target, r.status, r.note, r.command,
                        *info.values()])
    return md, csv_path
