"""Risk and cost figures from a kernel summary (shared by ``run`` and ``compare``).

All formulas use per-bar returns measured on the coin notional at the start of
the bar (see :mod:`backtest.schema`):

* Ederington hedge effectiveness ``HE = 1 - Var(r_hedged) / Var(r_unhedged)``
  (sample variances, ddof = 1);
* annualised volatility ``stdev(r) * sqrt(365 * bars_per_day)`` — crypto trades
  every day, so never 252;
* maximum drawdown of the compounded returns ``prod(1 + r)``;
* cost drag ``-(fees + slippage + roll + liquidation) / mean coin notional / years * 1e4``
  in basis points of notional per year.
"""

from __future__ import annotations

import math
from typing import Any, Final, Mapping

import pandas as pd

__all__ = ["DAYS_PER_YEAR", "annualisation", "summary_metrics", "fmt"]

#: Days per year for annualisation: crypto trades every day (never 252).
DAYS_PER_YEAR: Final[float] = 365.0


def annualisation(bar: pd.Timedelta) -> float:
    """``sqrt(365 x bars per day)``."""
    return math.sqrt(DAYS_PER_YEAR * (pd.Timedelta(days=1) / bar))


def summary_metrics(s: Mapping[str, float], *, n_bars: int, bar: pd.Timedelta, oracle: float) -> dict[str, Any]:
    """Per-variant figures (the keys of ``schema.RULE_METRICS`` plus ``pnl``) from ``kernels.SUM`` values."""
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
    drag = costs / s["mean_notional"] / years * 1e4 if years > 0 and s["mean_notional"] > 0 else math.nan
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
        "pnl": pnl,
    }


def fmt(value: Any, spec: str) -> str:
    """``format(value, spec)``, or ``"n/a"`` for an undefined (``None`` / NaN) figure."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return format(value, spec)
