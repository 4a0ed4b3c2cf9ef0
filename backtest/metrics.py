"""Risk and cost figures from a kernel summary (shared by ``run`` and ``compare``).

All formulas use per-bar returns measured on the coin notional at the start of
the bar (see :mod:`backtest.schema`):

* Ederington hedge effectiveness ``HE = 1 - Var(r_hedged) / Var(r_unhedged)``
  (sample variances, ddof = 1);
* annualised volatility ``stdev(r) * sqrt(365 * bars_per_day)`` — crypto trades
  every day, so never 252;
* maximum drawdown of the compounded returns ``prod(1 + r)``;
* cost drag ``-(fees + slippage + roll + liquidation) / mean coin notional / years * 1e4``
  in basis points of notional per year;
* trading cost ``cost_trading_usd = -(fees + slippage + roll + liquidation)`` (>= 0) and
  ``cost_trading_bps_per_year`` (the same figure as ``cost_drag_bps_per_year``); carry
  ``carry_usd`` = basis P&L of dated futures or funding of a perpetual, signed (positive =
  the short earned it), ``carry_bps_per_year`` on the same scale; net
  ``net_cost_usd = cost_trading_usd - carry_usd`` and ``net_cost_bps_per_year``;
* hedge effectiveness at horizons (:func:`he_by_horizon`): non-overlapping sums of
  per-bar P&L over the horizon divided by the coin notional at its start;
* ``min_safe_collateral`` is the summary's ``margin_need``, which ``run`` and
  ``compare`` replace by :func:`backtest.engine.min_safe_collaterals` (the smallest
  starting collateral with no margin call, no capped re-size, no liquidation, reserve 0).
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal, Mapping

import numpy as np
import pandas as pd

__all__ = ["DAYS_PER_YEAR", "HORIZONS", "Horizon", "annualisation", "summary_metrics", "horizon_bars",
           "horizon_returns", "he_by_horizon", "describe_index_held", "fmt", "plural"]

#: Horizons of :func:`he_by_horizon`: one bar, one day, one week.
Horizon = Literal["bar", "1D", "7D"]
HORIZONS: Final[tuple[str, ...]] = ("bar", "1D", "7D")

#: Days per year for annualisation: crypto trades every day (never 252).
DAYS_PER_YEAR: Final[float] = 365.0


def annualisation(bar: pd.Timedelta) -> float:
    """``sqrt(365 x bars per day)``."""
    return math.sqrt(DAYS_PER_YEAR * (pd.Timedelta(days=1) / bar))


def horizon_bars(horizon: str, bar: pd.Timedelta) -> int:
    """Bars per horizon: 1 for ``"bar"``, else ``horizon / bar`` (which must be a whole number >= 1)."""
    if horizon == "bar":
        return 1
    if horizon not in HORIZONS:
        raise ValueError(f"horizon must be one of {HORIZONS}, got {horizon!r}")
    ratio = pd.Timedelta(horizon) / bar
    if ratio < 1 or ratio != int(ratio):
        raise ValueError(f"horizon {horizon} is not a whole number of {bar} bars")
    return int(ratio)


def horizon_returns(pnl_h: np.ndarray, pnl_u: np.ndarray, alt_value: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Hedged and unhedged returns over non-overlapping spans of ``n`` bars.

    Bar 0 carries no P&L (the replay starts at its close). Span ``j`` covers bars
    ``s = 1 + j n, ..., s + n - 1``; an incomplete last span is dropped. Its return is

    .. math:: R_j = \frac{\sum_{t=s}^{s+n-1} \mathrm{pnl}_t}{V_{s-1}}

    with :math:`V_{s-1}` the coin notional (``alt_value``) at the start of the span. With
    ``n = 1`` these are the ledger's per-bar ``ret_hedged`` / ``ret_unhedged``.

    Parameters
    ----------
    pnl_h, pnl_u : ndarray, shape (T,)
        Per-bar change of hedged equity and of the unhedged coin holding (USD).
    alt_value : ndarray, shape (T,)
        Coin notional after each bar (USD).
    n : int
        Bars per span.
    """
    spans = (len(pnl_h) - 1) // n
    if spans < 1:
        return np.zeros(0), np.zeros(0)
    stop = 1 + spans * n
    start_value = alt_value[0 : stop - 1 : n]
    sum_h = np.asarray(pnl_h[1:stop], dtype=float).reshape(spans, n).sum(axis=1)
    sum_u = np.asarray(pnl_u[1:stop], dtype=float).reshape(spans, n).sum(axis=1)
    return sum_h / start_value, sum_u / start_value


def _he(r_h: np.ndarray, r_u: np.ndarray) -> float:
    if len(r_h) < 2:
        return math.nan
    var_u = float(np.var(r_u, ddof=1))
    return 1.0 - float(np.var(r_h, ddof=1)) / var_u if var_u > 0 else math.nan


def he_by_horizon(pnl_h: np.ndarray, pnl_u: np.ndarray, alt_value: np.ndarray, bar: pd.Timedelta) -> dict[str, float]:
    """Ederington HE ``1 - Var(R_h) / Var(R_u)`` (ddof = 1) of :func:`horizon_returns` at each of
    :data:`HORIZONS` (NaN with fewer than two spans)."""
    return {h: _he(*horizon_returns(pnl_h, pnl_u, alt_value, horizon_bars(h, bar))) for h in HORIZONS}


def summary_metrics(s: Mapping[str, float], *, n_bars: int, bar: pd.Timedelta, oracle: float,
                    futures_kind: str) -> dict[str, Any]:
    """Per-variant figures (the keys of ``schema.RULE_METRICS`` plus ``pnl``) from ``kernels.SUM`` values.

    ``futures_kind`` (``"quarterly"`` or ``"perpetual"``) picks the carry: basis P&L of
    dated futures, funding of a perpetual.
    """
    n = s["n_ret"]
    var_h = s["m2_h"] / (n - 1) if n > 1 else math.nan
    var_u = s["m2_u"] / (n - 1) if n > 1 else math.nan
    he = 1.0 - var_h / var_u if var_u > 0 else math.nan
    ann = annualisation(bar)
    pnl = {
        "altcoin": s["pnl_altcoin"],
        "futures": s["pnl_futures"],
        "fees": s["fees"],
        "slippage": s["slippage"],
        "roll": s["roll_cost"],
        "funding": s["funding"],
        "liquidation": s["liquidation_cost"],
    }
    pnl["total"] = sum(pnl.values())
    years = n_bars / (DAYS_PER_YEAR * (pd.Timedelta(days=1) / bar))
    costs = -(pnl["fees"] + pnl["slippage"] + pnl["roll"] + pnl["liquidation"])
    scale = 1e4 / s["mean_notional"] / years if years > 0 and s["mean_notional"] > 0 else math.nan
    drag = costs * scale
    carry = pnl["funding"] if futures_kind == "perpetual" else s["pnl_basis"]
    return {
        "hedge_effectiveness": he,
        "oracle_r2": oracle,
        "he_vs_oracle": he / oracle if oracle > 0 else math.nan,
        "vol_unhedged_ann": math.sqrt(var_u) * ann,
        "vol_hedged_ann": math.sqrt(var_h) * ann,
        "max_drawdown_unhedged": s["max_dd_u"],
        "max_drawdown_hedged": s["max_dd_h"],
        "trades": int(s["trades"]),
        "rolls": int(s["rolls"]),
        "margin_calls": int(s["margin_calls"]),
        "liquidations": int(s["liquidations"]),
        "min_margin_excess": s["min_margin_excess"],
        "min_safe_collateral": s["margin_need"],
        "turnover_contracts": s["turnover_contracts"],
        "cost_drag_bps_per_year": drag,
        "futures_basis_pnl": s["pnl_basis"],
        "margin_capped_bars": int(s["margin_capped"]),
        "cost_trading_usd": costs,
        "cost_trading_bps_per_year": drag,
        "carry_usd": carry,
        "carry_bps_per_year": carry * scale,
        "net_cost_usd": costs - carry,
        "net_cost_bps_per_year": (costs - carry) * scale,
        "pnl": pnl,
    }


def describe_index_held(index: Any, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """What the index held during the replay ``[start, end]``, in words, from its rebalance rows.

    The rows in effect are the last rebalance at or before ``start`` and every later one up to
    ``end``. Reports the number of constituents held at once (range), the largest weight, and
    whether the weight cap bound (some weight equal to the cap, to 1e-9).

    Parameters
    ----------
    index : backtest.index.IndexResult
    start, end : Timestamp
        First and last bar of the replay.
    """
    spec = index.spec
    w = index.weights
    w = w[w.index <= end]
    before = w.index[w.index <= start]
    if len(before):
        w = w[w.index >= before[-1]]
    held = (w > 0).sum(axis=1)
    top = float(w.to_numpy().max()) if w.size else math.nan
    lo, hi = int(held.min()), int(held.max())
    text = (f"{spec.weighting}-weighted AI index of {len(spec.constituents)} listed tokens, {spec.rebalance} rebalance; "
            f"held {lo if lo == hi else f'{lo}-{hi}'} at once during the replay, largest weight {top:.1%}")
    if spec.max_weight:
        bound = int((np.abs(w.to_numpy() - spec.max_weight) < 1e-9).any(axis=1).sum())
        text += (f"; weight cap {spec.max_weight:.0%} bound at {bound} of {len(w)} rebalances" if bound
                 else f"; weight cap {spec.max_weight:.0%} never bound")
    return text


def plural(n: int, noun: str) -> str:
    """``"1 bar"``, ``"24 bars"``: ``n`` and ``noun``, with an ``s`` unless ``n`` is 1 (no thousands
    separator: the words also make compare variant labels)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def fmt(value: Any, spec: str) -> str:
    """``format(value, spec)``, or ``"n/a"`` for an undefined (``None`` / NaN) figure; a figure that
    rounds to zero prints without a minus sign (``-0.0001`` at ``".0f"`` is ``"0"``, not ``"-0"``)."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    text = format(value, spec)
    if text.lstrip().startswith("-") and not any(c in "123456789" for c in text):
        return format(abs(value), spec)  # the same width and sign option, without the minus
    return text
