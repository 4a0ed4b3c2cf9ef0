"""Which hedge instrument? One row per underlying of a ``compare`` grid, and a paired verdict.

For each (coin, window) of a grid with ``compare.underlyings``, the best variant on each
underlying (by ``compare.rank_by``) is replayed with its per-bar ledger, and the table gives:
oracle rho^2, per-bar and daily hedge effectiveness ``HE_1D`` (non-overlapping UTC-day P&L
sums, :func:`backtest.hedgeability.daily_he`) with a 95 % stationary-bootstrap interval, cost drag,
carry (basis P&L + funding, USD), ``min_safe_collateral``, margin calls, the worst day
(the common day with the largest hedged loss: its date and its hedged and unhedged P&L, USD)
and the worst named event (:func:`worst_event`: of the bundled and the config's
``[events.<name>]`` windows lying inside the common days, the one with the largest hedged
loss).

The verdict compares the two underlyings with the highest ``HE_1D``: the difference of their
daily HE, with a 95 % interval from a *paired* stationary bootstrap of days (the same
resampled days for both, so common market moves cancel). It is "better" when the interval
lies above 0 (its lower end > 0), otherwise "not distinguishable".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from backtest.config import Config, PositionSection, RuleSpec
from backtest.engine import prepare, variant_for
from backtest.market import run_variant
from backtest.windows import Event

__all__ = ["daily_pnl", "paired_he_interval", "event_days", "worst_event", "instrument_table"]

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
    both pairs together; ``reps`` and ``seed`` are returned with the figures. With ``a == b``
    it is the interval of one underlying (``instruments.csv``); ``a``'s interval from a pair
    differs slightly, its block being the pair's.
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
            "diff": he_a - he_b, "diff_lo": float(d_lo), "diff_hi": float(d_hi), "block_days": block, "days": int(len(x)),
            "reps": int(reps), "seed": int(seed)}


def event_days(days: pd.DatetimeIndex, events: Sequence[Event]) -> list[tuple[Event, np.ndarray]]:
    """The events lying inside the days ``days``, each with a boolean mask of its days.

    ``days`` are UTC midnights of complete days (the index of :func:`daily_pnl`). An event
    ``[start, end)`` lies inside them when ``days[0] <= start`` and ``end <= days[-1] + 1 day``;
    its days are those it touches, ``d < end`` and ``d + 1 day > start`` (a window not on
    midnights is widened to whole UTC days, the resolution of the daily P&L). Events that
    reach outside the days, or touch none of them (a gap), are left out.
    """
    if len(days) == 0:
        return []
    one = pd.Timedelta(days=1)
    lo, hi = days[0], days[-1] + one
    out = []
    for ev in events:
        mask = np.asarray((days < ev.end) & (days + one > ev.start))
        if lo <= ev.start and ev.end <= hi and mask.any():
            out.append((ev, mask))
    return out


_NO_EVENT: dict[str, Any] = {"worst_event": "", "worst_event_start": "", "worst_event_end": "",
                             "worst_event_pnl_hedged": float("nan"), "worst_event_pnl_unhedged": float("nan"),
                             "worst_event_he": float("nan")}


def worst_event(days: pd.DataFrame, u: str, windows: Sequence[tuple[Event, np.ndarray]]) -> dict[str, Any]:
    """The event of ``windows`` with the largest hedged loss on underlying ``u``.

    For each event ``e`` with day mask ``m`` (:func:`event_days`), ``H_e = sum(h_u[m])`` and
    ``U_e = sum(u_u[m])`` (USD, columns ``h_<u>`` / ``u_<u>`` of ``days``); the worst is the
    smallest ``H_e`` (the largest loss, or the smallest gain when no event lost), ties broken
    by name. ``worst_event_he = 1 - var(h_u[m]) / var(u_u[m])`` (ddof = 1), NaN with fewer
    than 2 days or a constant coin P&L. Start and end are the event's window (``YYYY-MM-DD``, end exclusive).
    No window: an empty name and NaN figures.
    """
    if not windows:
        return dict(_NO_EVENT)
    h = days[f"h_{u}"].to_numpy(dtype=float)
    un = days[f"u_{u}"].to_numpy(dtype=float)
    ev, mask = min(windows, key=lambda w: (float(h[w[1]].sum()), w[0].name))
    he = float("nan")
    if mask.sum() >= 2 and float(np.var(un[mask], ddof=1)) > 0.0:
        he = _he(h[mask], un[mask])
    return {"worst_event": ev.name, "worst_event_start": ev.start.strftime("%Y-%m-%d"),
            "worst_event_end": ev.end.strftime("%Y-%m-%d"), "worst_event_pnl_hedged": float(h[mask].sum()),
            "worst_event_pnl_unhedged": float(un[mask].sum()), "worst_event_he": he}


def _best_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("rank", kind="stable").groupby(["coin", "window", "underlying"], sort=False).head(1)


def instrument_table(config: Config, table: pd.DataFrame, rebalances: dict[str, Any], *,
                     events: Sequence[Event] = ()) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Per-underlying table and paired verdicts for a ranked ``compare`` table.

    ``rebalances`` maps the table's ``rebalance`` labels to :class:`~backtest.config.RebalanceSection`.
    Coins of the grid (``compare.coins``) are held as in the grid: a constant USD notional.
    ``events`` are the named windows for the worst event (:func:`backtest.config.config_events`:
    the bundled ones plus the config's ``[events.<name>]``); every underlying of a (coin, window)
    is judged on the same events and days.
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
        windows = event_days(pd.DatetimeIndex(days.index), events)
        for x in ours:
            u = x["underlying"]
            solo = paired_he_interval(days, u, u)
            x.update(he_daily=solo["he_a"], he_daily_lo=solo["a_lo"], he_daily_hi=solo["a_hi"], days=solo["days"])
            worst = days[f"h_{u}"].idxmin()  # the worst event at a daily scale: the largest hedged loss
            x.update(worst_day=worst.strftime("%Y-%m-%d"), worst_day_pnl_hedged=float(days.at[worst, f"h_{u}"]),
                     worst_day_pnl_unhedged=float(days.at[worst, f"u_{u}"]))
            x.update(worst_event(days, u, windows))
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
