"""Two-instrument hedges (``multi_min_variance``): isolated-margin legs from the one-instrument kernel.

A ``multi_min_variance`` rule on instruments ``u_1 .. u_k`` (each ``"index"`` or a symbol) shorts
one futures leg per instrument. Leg ``i`` is exactly the single-instrument replay
(:func:`backtest.market.run_variant`, the kernel unchanged) of futures on ``u_i`` -- the market
:func:`backtest.engine.prepare` builds with ``futures.underlying = u_i`` -- with the hedge-ratio
series ``h_i[t]`` (the rule's walk-forward weights, :meth:`MultiMinVariance.weights` on the coin's
and every leg's held-contract returns) and its own margin account holding ``s_i`` of
``margin.collateral_usd`` and of ``margin.reserve_usd`` (``s = collateral_split``). This is
**isolated margin**: each leg's calls, top-ups and liquidations depend on its own account only.
Cross margin (one account netting the legs' gains and losses) is not simulated, so the collateral
need shown is an upper bound for a cross-margined account.

The combined account counts the coin once. With ``spot[t] = sum_{s<=t} alt_flow[s]`` (the coin
trades' cash, the same in every leg) and leg ``i``'s futures account
``A_i[t] = (cash_i[t] - spot[t]) + fut_unrealized_i[t]`` (its wallet, reserve and unsettled P&L)::

    equity_hedged[t]   = alt_value[t] + spot[t] + sum_i A_i[t]
    equity_unhedged[t] = equity_unhedged_1[t] + sum_{i>=2} (s_i collateral + s_i reserve)
    flow[t]            = sum_i flow_i[t]   for pnl_futures, pnl_basis, fees, slippage, roll_cost,
                                           funding, liquidation_cost and the margin figures (USD)

(computed as leg 1's row plus the other legs' parts, so a rule whose other legs never trade is
leg 1's replay to the last bit). ``hedge_ratio_target`` / ``hedge_ratio_held`` are the sums over
legs (net futures notional / coin notional); ``contracts``, ``trade_contracts`` and
``roll_contracts`` are the first instrument's leg (contracts of different underlyings do not add);
``fut_price`` / ``contract_id`` are the run's own futures, as for every rule. Every leg's per-bar
rows are in :attr:`MultiRun.legs`. Summary counts (trades, rolls, margin calls, liquidations,
capped re-sizes, turnover) are summed over legs; ``min_margin_excess`` is the smallest over legs
(each leg is its own account); ``min_safe_collateral`` is the sum of the legs' own
(:func:`backtest.engine.min_safe_collaterals` per leg: what each isolated account needs).

Calendar: :func:`backtest.engine.prepare` computes every underlying's replay window; the run
uses the bars they share (the ``scenario`` start/end narrowed to them), for every rule of the
config, and ``Prepared.legs`` holds each underlying's market on those bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from backtest import kernels as K
from backtest.config import Config
from backtest.engine import Prepared, coin_and_futures_returns, min_safe_collaterals, variant_for
from backtest.errors import ConfigError
from backtest.market import Market, Variant, run_variant
from strategies.multi import MultiMinVariance

__all__ = ["MARGIN_MODEL", "LEG_COLUMNS", "Leg", "MultiRun", "leg_markets", "combine_legs",
           "run_multi", "multi_oracle_r2", "refuse_multi", "leg_frame"]

#: The margin model of a two-instrument hedge, stated wherever its figures are shown.
MARGIN_MODEL = ("two-instrument hedges are simulated with isolated margin per leg; cross margin (one account "
                "netting both legs' gains and losses) is not simulated, so the collateral need shown is an "
                "upper bound for a cross-margined account")

#: Columns of ``legs.parquet`` (one row per bar, two-instrument rule and leg); the kernel's rows keep
#: their ledger meaning (:data:`backtest.schema.LEDGER_COLUMNS`) for the leg alone.
LEG_COLUMNS: dict[str, str] = {
    "ts": "bar open time, UTC",
    "rule": "two-instrument rule label",
    "leg": "the leg's futures underlying ('index' or a symbol)",
    "weight": "the rule's weight h_i[t] for this leg (target futures notional / coin notional)",
    "contracts": "signed futures position of the leg after the bar (negative = short)",
    "fut_price": "price of the leg's primary contract at the bar's close (USD)",
    "contract_id": "expiry of the leg's primary contract, 'PERP' for a perpetual",
    "hedge_ratio_held": "the leg's held futures notional / coin notional after the bar",
    "trade_contracts": "contracts of the leg traded for rebalancing in the bar (absolute)",
    "roll_contracts": "contracts of the leg traded by roll legs in the bar (absolute)",
    "rebalanced": "True when the leg was resized in the bar",
    "rolled": "True when the leg rolled (or settled) in the bar",
    "account": "the leg's isolated account: margin wallet + reserve + unsettled futures P&L (USD)",
    "pnl_futures": "mark-to-market P&L of the leg over the bar (USD)",
    "pnl_basis": "part of pnl_futures due to the change of basis (USD)",
    "fees": "the leg's fees (USD, <= 0)",
    "slippage": "the leg's half-spread + impact (USD, <= 0)",
    "roll_cost": "the leg's roll fees, slippage and settlement fees (USD, <= 0)",
    "funding": "the leg's perpetual funding (USD)",
    "liquidation_cost": "the leg's liquidation fees (USD, <= 0)",
    "margin_balance": "the leg's margin wallet + unrealized P&L (USD)",
    "margin_required": "the leg's maintenance margin (USD)",
    "margin_excess": "margin_balance - margin_required of the leg (USD)",
    "margin_reserve": "the leg's reserve left for top-ups (USD)",
    "margin_call": "True when the leg had a margin call in the bar",
    "liquidated": "True when the leg was liquidated in the bar",
}

#: kernel rows that are USD amounts of one leg's account or flows: summed over legs
_SUMMED = ("pnl_futures", "pnl_basis", "fees", "slippage", "roll_cost", "funding", "liquidation_cost",
           "margin_balance", "margin_initial", "margin_required", "margin_excess", "margin_reserve", "fut_unrealized",
           "hedge_ratio_target", "hedge_ratio_held")
#: kernel flags: true when true in any leg
_ANY = ("rebalanced", "rolled", "margin_call", "liquidated")
#: summary counts and USD totals summed over legs
_SUM_ADDED = ("pnl_futures", "pnl_basis", "fees", "slippage", "roll_cost", "funding", "liquidation_cost", "trades",
              "rolls", "margin_calls", "liquidations", "turnover_contracts", "margin_capped")


def refuse_multi(config: Config, command: str) -> None:
    """``ConfigError`` (key ``rules[i].family``) when a ``[[rules]]`` entry is ``multi_min_variance``:
    ``command`` replays one futures position per rule and has no legs."""
    for i, spec in enumerate(config.rules):
        if spec.family == MultiMinVariance.family:
            raise ConfigError(f"rules[{i}].family", f"'multi_min_variance' is not available in `hedgebt {command}` "
                                                    "(it replays one futures leg per rule); use `hedgebt run`")


@dataclass(frozen=True, eq=False)
class Leg:
    """One leg of a two-instrument hedge: its underlying, market (``hr`` = the leg's weights,
    one column) and kernel parameters (collateral and reserve = the leg's share)."""

    underlying: str
    market: Market
    variant: Variant
    contract_labels: tuple[str, ...]


def leg_markets(config: Config, prepared: Prepared, rule: MultiMinVariance) -> tuple[np.ndarray, tuple[Leg, ...]]:
    """The rule's weights, shape (T, k), and its legs.

    ``W = rule.weights(coin_ret, [fut_ret_1 .. fut_ret_k])`` with the returns of
    :func:`backtest.engine.coin_and_futures_returns` on each leg's market (walk-forward:
    ``W[t]`` uses bars ``<= t``). Leg ``i`` trades with the config's execution settings
    (:func:`backtest.engine.variant_for`) and ``collateral_split[i]`` of the collateral and reserve.
    """
    by_name = dict(prepared.legs)
    missing = [u for u in rule.instruments if u not in by_name]
    if missing:
        raise ConfigError("rules", f"no prepared market for instrument '{missing[0]}' (prepare the config with "
                                   "backtest.engine.prepare)")
    coin_ret, _ = coin_and_futures_returns(prepared.market)
    fut = np.column_stack([coin_and_futures_returns(by_name[u].market)[1] for u in rule.instruments])
    weights = rule.weights(coin_ret, fut)
    return weights, legs_with_weights(config, prepared, rule, weights)


def legs_with_weights(config: Config, prepared: Prepared, rule: MultiMinVariance, weights: np.ndarray) -> tuple[Leg, ...]:
    """The rule's legs with the given weights ``(T, k)`` (a test hook: plant a weight series)."""
    by_name = dict(prepared.legs)
    base = variant_for(config, 0)
    split = rule.collateral_split
    assert split is not None
    out = []
    for i, u in enumerate(rule.instruments):
        p = by_name[u]
        market = replace(p.market, hr=np.ascontiguousarray(weights[:, i : i + 1], dtype=float))
        variant = replace(base, collateral_usd=split[i] * base.collateral_usd, reserve_usd=split[i] * base.reserve_usd)
        out.append(Leg(u, market, variant, tuple(p.book.labels)))
    return tuple(out)


def combine_legs(market: Market, legs: Sequence[Leg], rows: Sequence[dict[str, np.ndarray]],
                 summaries: Sequence[dict[str, float]], safe: Sequence[float]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The combined account's per-bar rows and kernel summary (see the module docstring).

    ``market`` is the run's own market (the coin holding and the ``primary`` contract shown);
    ``rows`` / ``summaries`` are the legs' :func:`run_variant` outputs; ``safe`` their
    ``min_safe_collateral``.
    """
    spot = np.cumsum(market.alt_flow)  # the kernel's running sum of coin-trade cash, in the same order
    first = rows[0]
    out = {name: np.array(first[name], dtype=float, copy=True) for name in K.OUT}
    for leg, r in zip(legs[1:], rows[1:]):
        account = (r["cash"] - spot) + r["fut_unrealized"]
        out["cash"] += r["cash"] - spot
        out["equity_hedged"] += account
        out["equity_unhedged"] += leg.variant.collateral_usd + leg.variant.reserve_usd
        for name in _SUMMED:
            out[name] += r[name]
        for name in _ANY:
            out[name] = np.maximum(out[name], r[name])
        out["margin_need"] += r["margin_need"]
    out["primary"] = market.c0.astype(float)
    ret = np.full(market.n_bars, np.nan)
    ret[1:] = np.diff(out["equity_hedged"]) / market.alt_value[:-1]
    out["ret_hedged"] = ret
    summ = dict(summaries[0])
    for s in summaries[1:]:
        for name in _SUM_ADDED:
            summ[name] += s[name]
    excess = [s["min_margin_excess"] for s in summaries if math.isfinite(s["min_margin_excess"])]
    summ["min_margin_excess"] = min(excess) if excess else math.nan
    r = ret[1:]
    summ["mean_h"] = float(r.mean())
    summ["m2_h"] = float(((r - r.mean()) ** 2).sum())
    wealth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0))
    summ["max_dd_h"] = float(max(0.0, (1.0 - wealth / peak).max())) if r.size else 0.0
    summ["final_equity_hedged"] = float(out["equity_hedged"][-1])
    summ["final_equity_unhedged"] = float(out["equity_unhedged"][-1])
    summ["margin_need"] = float(sum(safe))
    return out, summ


@dataclass(frozen=True, eq=False)
class MultiRun:
    """A two-instrument rule's replay: combined rows and summary, weights and every leg's outputs."""

    rows: dict[str, np.ndarray]
    summary: dict[str, float]
    weights: np.ndarray
    legs: tuple[Leg, ...]
    leg_rows: tuple[dict[str, np.ndarray], ...]
    leg_summaries: tuple[dict[str, float], ...]
    oracle_r2: float


def multi_oracle_r2(prepared: Prepared, rule: MultiMinVariance) -> float:
    """In-sample R^2 of the OLS (with intercept) of coin returns on every leg's futures returns
    (bars where all are finite): the best constant k-instrument hedge's variance reduction."""
    by_name = dict(prepared.legs)
    y, _ = coin_and_futures_returns(prepared.market)
    X = np.column_stack([coin_and_futures_returns(by_name[u].market)[1] for u in rule.instruments])
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    if ok.sum() <= X.shape[1] + 1:
        return math.nan
    y, X = y[ok] - y[ok].mean(), X[ok] - X[ok].mean(axis=0)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    tss = float(y @ y)
    return 1.0 - float(((y - X @ beta) ** 2).sum()) / tss if tss > 0 else math.nan


def run_multi(config: Config, prepared: Prepared, rule: MultiMinVariance, *,
              weights: np.ndarray | None = None) -> MultiRun:
    """Replay every leg with the unchanged kernel and combine them (``weights`` planted or the rule's)."""
    if weights is None:
        weights, legs = leg_markets(config, prepared, rule)
    else:
        legs = legs_with_weights(config, prepared, rule, np.asarray(weights, dtype=float))
    outs = [run_variant(leg.market, leg.variant) for leg in legs]
    safe = [float(min_safe_collaterals(leg.market, [leg.variant])[0]) for leg in legs]
    leg_summ = tuple({**s, "margin_need": c} for (_, s), c in zip(outs, safe))
    rows, summ = combine_legs(prepared.market, legs, [r for r, _ in outs], leg_summ, safe)
    return MultiRun(rows, summ, weights, legs, tuple(r for r, _ in outs), leg_summ, multi_oracle_r2(prepared, rule))


def leg_pnl(pnl: dict[str, float]) -> dict[str, float]:
    """A leg's P&L components without the coin (counted once, in the rule's ``pnl.altcoin``)."""
    out = {k: v for k, v in pnl.items() if k not in ("altcoin", "total")}
    out["total"] = sum(out.values())
    return out


def leg_figures(run: MultiRun, *, bar: pd.Timedelta, futures_kind: str) -> dict[str, Any]:
    """Per-leg figures for ``summary.json`` (``rules.<rule>.legs.<underlying>``)."""
    from backtest.metrics import summary_metrics

    out: dict[str, Any] = {}
    for i, (leg, rows, summ) in enumerate(zip(run.legs, run.leg_rows, run.leg_summaries)):
        m = summary_metrics(summ, n_bars=len(rows["equity_hedged"]), bar=bar, oracle=math.nan, futures_kind=futures_kind)
        out[leg.underlying] = {
            "collateral_usd": leg.variant.collateral_usd,
            "reserve_usd": leg.variant.reserve_usd,
            "mean_weight": float(np.mean(run.weights[:, i])),
            "mean_hedge_ratio_held": float(np.mean(rows["hedge_ratio_held"])),
            "pnl": leg_pnl(m["pnl"]),
            "cost_trading_usd": m["cost_trading_usd"],
            "cost_drag_bps_per_year": m["cost_drag_bps_per_year"],
            "carry_usd": m["carry_usd"],
            "trades": m["trades"],
            "rolls": m["rolls"],
            "margin_calls": m["margin_calls"],
            "liquidations": m["liquidations"],
            "margin_capped_bars": m["margin_capped_bars"],
            "min_margin_excess": m["min_margin_excess"],
            "min_safe_collateral": m["min_safe_collateral"],
            "contracts_used": sorted({leg.contract_labels[int(k)] for k in np.unique(leg.market.c0)}),
        }
    return out


def leg_frame(run: MultiRun, market: Market, ts: pd.DatetimeIndex, label: str) -> pd.DataFrame:
    """Every leg's per-bar rows of a two-instrument rule (columns :data:`LEG_COLUMNS`), leg after leg."""
    spot = np.cumsum(market.alt_flow)
    T = len(ts)
    frames = []
    for i, (leg, rows) in enumerate(zip(run.legs, run.leg_rows)):
        primary = rows["primary"].astype(np.int64)
        data: dict[str, Any] = {
            "ts": ts,
            "rule": pd.array([label] * T, dtype="string"),
            "leg": pd.array([leg.underlying] * T, dtype="string"),
            "weight": run.weights[:, i],
            "fut_price": leg.market.contract_price(np.arange(T), primary),
            "contract_id": pd.array(np.asarray(leg.contract_labels, dtype=object)[primary], dtype="string"),
            "account": (rows["cash"] - spot) + rows["fut_unrealized"],
        }
        for name in LEG_COLUMNS:
            if name not in data:
                data[name] = rows[name].astype(bool) if name in _ANY else rows[name]
        frames.append(pd.DataFrame(data, columns=list(LEG_COLUMNS)))
    return pd.concat(frames, ignore_index=True)
