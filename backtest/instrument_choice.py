"""Which hedge instrument? One row per underlying of a ``compare`` grid, and a paired verdict.

For each (coin, window) of a grid with ``compare.underlyings``, the best variant on each
underlying (by ``compare.rank_by``) is replayed with its per-bar ledger, and the table gives:
oracle rho^2, per-bar and daily hedge effectiveness ``HE_1D`` (non-overlapping UTC-day P&L
sums, :func:`backtest.scan.daily_he`) with a 95 % stationary-bootstrap interval, cost drag,
carry (basis P&L + funding, USD), ``min_safe_collateral``, margin calls, and the worst day
(the common day with the largest hedged loss: its date and its hedged and unhedged P&L, USD).

The verdict compares the two underlyings with the highest ``HE_1D``: the difference of their
daily HE, with a 95 % interval from a *paired* stationary bootstrap of days (the same
resampled days for both, so common market moves cancel). It is "better" when the interval
excludes 0, otherwise "not distinguishable".
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from backtest.config import Config, PositionSection, RuleSpec
from backtest.engine import prepare, variant_for
from backtest.market import run_variant

__all__ = ["daily_pnl", "paired_he_interval", "instrument_table"]

_REPS = 1000
_SEED = 0


def daily_pnl(ts: pd.DatetimeIndex, bar: pd.Timedelta, pnl: dict[str, np.ndarray]) -> pd.DataFrame:
    """UTC-day sums of per-bar P&L series (complete days only; bar t counts on the day of ``ts[t]``)."""
    per_day = int(round(pd.Timedelta(days=1) / bar))
    frame = pd.DataFrame(pnl, index=ts)
    frame = frame[np.isfinite(frame.to_numpy()).all(axis=1)]
    day = frame.index.floor("D")
    sums = frame.groupby(day).sum()
    return sums[frame.groupby(day).size().to_numpy() == per_day]


def _he(h: np.ndarray, u: np.ndarray) -> float:
    return 1.0 - float(np.var(h, ddof=1)) / float(np.var(u, ddof=1))


def paired_he_interval(days: pd.DataFrame, a: str, b: str, *, reps: int = _REPS, seed: int = _SEED) -> dict[str, float]:
    """Daily HE of underlyings ``a`` and ``b`` with 95 % percentile intervals, and of their difference.

    ``days`` has columns ``h_<x>`` (hedged) and ``u_<x>`` (unhedged) daily P&L per underlying
    ``x``. One stationary bootstrap of days (``arch``; mean block = the largest
    ``optimal_block_length`` estimate over the squared hedged P&L, at least 1 day) resamples
    both pairs together.
    """
    from arch.bootstrap import StationaryBootstrap, optimal_block_length

    x = days[[f"h_{a}", f"u_{a}", f"h_{b}", f"u_{b}"]].to_numpy(dtype=float)
    est = optimal_block_length(x[:, [0, 2]] ** 2)["stationary"].to_numpy(dtype=float)
    block = float(max(1.0, np.nanmax(est)))
    bs = StationaryBootstrap(block, x, seed=seed)
    draws = np.array([[_he(d[:, 0], d[:, 1]), _he(d[:, 2], d[:, 3])] for (d,), _ in bs.bootstrap(reps)])
    diff = draws[:, 0] - draws[:, 1]
    he_a, he_b = _he(x[:, 0], x[:, 1]), _he(x[:, 2], x[:, 3])
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    d_lo, d_hi = np.quantile(diff, [0.025, 0.975])
    return {"he_a": he_a, "he_b": he_b, "a_lo": lo[0], "a_hi": hi[0], "b_lo": lo[1], "b_hi": hi[1],
            "diff": he_a - he_b, "diff_lo": float(d_lo), "diff_hi": float(d_hi), "block_days": block, "days": int(len(x))}


def _best_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("rank", kind="stable").groupby(["coin", "window", "underlying"], sort=False).head(1)


def instrument_table(config: Config, table: pd.DataFrame, rebalances: dict[str, Any]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Per-underlying table and paired verdicts for a ranked ``compare`` table.

    ``rebalances`` maps the table's ``rebalance`` labels to :class:`~backtest.config.RebalanceSection`.
    Coins of the grid (``compare.coins``) are held as in the grid: a constant USD notional.
    """
    rows: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    notional = float((config.compare or {}).get("notional_usd", 1_000_000.0))
    for (coin, window), group in _best_rows(table).groupby(["coin", "window"], sort=False):
        start, end = (None if w in ("start", "end") else w for w in window.split(".."))
        frames: list[pd.DataFrame] = []
        ours: list[dict[str, Any]] = []
        for r in group.itertuples():
            cfg = replace(config, rules=(RuleSpec(r.family, tuple(sorted(json.loads(r.params).items()))),),
                          rebalance=rebalances[r.rebalance], futures=replace(config.futures, underlying=r.underlying),
                          scenario=replace(config.scenario, start=start, end=end))
            if "+".join(config.position.coins) != coin:
                cfg = replace(cfg, position=PositionSection(coins=(coin,), kind="notional", notional_usd=(notional,), units=()))
            p = prepare(cfg)
            ledger, _ = run_variant(p.market, variant_for(cfg, 0))
            pnl_h = np.full(len(p.ts), np.nan)
            pnl_h[1:] = ledger["ret_hedged"][1:] * p.market.alt_value[:-1]
            pnl_u = np.full(len(p.ts), np.nan)
            pnl_u[1:] = p.market.alt_pnl[1:]
            frames.append(daily_pnl(p.ts, p.bar, {f"h_{r.underlying}": pnl_h, f"u_{r.underlying}": pnl_u}))
            ours.append({
                "coin": coin, "window": window, "underlying": r.underlying, "variant": r.variant,
                "oracle_r2": r.oracle_r2, "he_bar": r.hedge_effectiveness,
                "cost_drag_bps_per_year": r.cost_drag_bps_per_year,
                "carry_usd": r.futures_basis_pnl + r.pnl_funding,
                "min_safe_collateral": r.min_safe_collateral, "margin_calls": r.margin_calls,
                "max_drawdown_hedged": r.max_drawdown_hedged,
            })
        days = pd.concat(frames, axis=1, join="inner")  # common complete days of every underlying
        for x in ours:
            u = x["underlying"]
            solo = paired_he_interval(days, u, u)
            x.update(he_daily=solo["he_a"], he_daily_lo=solo["a_lo"], he_daily_hi=solo["a_hi"], days=solo["days"])
            worst = days[f"h_{u}"].idxmin()  # the worst event at a daily scale: the largest hedged loss
            x.update(worst_day=worst.strftime("%Y-%m-%d"), worst_day_pnl_hedged=float(days.at[worst, f"h_{u}"]),
                     worst_day_pnl_unhedged=float(days.at[worst, f"u_{u}"]))
        ours.sort(key=lambda x: -x["he_daily"])
        rows.extend(ours)
        if len(ours) >= 2:
            a, b = ours[0]["underlying"], ours[1]["underlying"]
            v = paired_he_interval(days, a, b)
            word = "better" if v["diff_lo"] > 0 else "not distinguishable"
            verdicts.append({"coin": coin, "window": window, "best": a, "second": b, **v,
                             "verdict": f"{a} vs {b}: HE_1D difference {v['diff']:+.3f} "
                                        f"[{v['diff_lo']:+.3f}, {v['diff_hi']:+.3f}] -> {a} {word}"})
    return pd.DataFrame(rows), verdicts
