"""The result schema: ledger columns and ``summary.json`` layout, in one place.

Everything that writes or reads results (the simulator, the report builder, the
CLI's ``report`` command) uses these names, so the two sides cannot drift apart.

Sign convention
---------------
Every P&L column is a signed contribution in USD to the change of hedged equity
over the bar: gains are positive, costs (``fees``, ``slippage``, ``roll_cost``,
``liquidation_cost``) are zero or negative. Hence, per bar,

    equity_hedged[t] - equity_hedged[t-1]
        = pnl_altcoin + pnl_futures + fees + slippage + roll_cost + funding + liquidation_cost

and ``equity_hedged = cash + alt_value + fut_unrealized`` (cash includes the coin
account, the margin wallet and the margin reserve).
"""

from __future__ import annotations

from typing import Final

#: Ledger columns (one row per bar and rule) with their meaning and unit.
LEDGER_COLUMNS: Final[dict[str, str]] = {
    "ts": "bar open time, UTC; prices are the bar's close",
    "rule": "hedge rule label (one scenario may run several rules)",
    "alt_price": "altcoin close (USD); NaN for a multi-coin basket (see alt_value)",
    "alt_units": "altcoin units held after the bar; NaN for a multi-coin basket",
    "alt_value": "marked value of the altcoin holding, sum(units x price) (USD)",
    "index_level": "AI index level at the bar's close (USD)",
    "fut_price": "price of the primary futures contract held at the bar's close (USD)",
    "contract_id": "expiry of the primary contract (UTC ISO string), 'PERP' for the perpetual",
    "contracts": "signed futures position after the bar, summed over contracts (negative = short)",
    "hedge_ratio_target": "target hedge ratio h (futures notional / coin notional) from the rule",
    "hedge_ratio_held": "held hedge ratio after the bar's trades",
    "trade_contracts": "contracts traded for rebalancing in the bar (absolute, excluding roll legs)",
    "roll_contracts": "contracts traded by roll legs in the bar (absolute, both legs)",
    "rebalanced": "True when the hedge was resized in the bar",
    "rolled": "True when a roll leg (or expiry settlement) happened in the bar",
    "cash": "coin-account cash + margin wallet + margin reserve (USD)",
    "fut_unrealized": "futures P&L not yet settled into the margin wallet (USD)",
    "equity_hedged": "cash + alt_value + fut_unrealized (USD)",
    "equity_unhedged": "same capital with no futures: initial cash + alt trades + alt_value (USD)",
    "pnl_altcoin": "sum(units[t-1] x (P[t] - P[t-1])) (USD)",
    "pnl_futures": "mark-to-market P&L of futures positions over the bar (USD)",
    "pnl_basis": "part of pnl_futures due to the change of basis F - I (USD, informational)",
    "fees": "exchange fees of rebalancing trades (USD, <= 0)",
    "slippage": "half-spread + impact of rebalancing trades (USD, <= 0)",
    "roll_cost": "fees + slippage of roll legs and expiry settlement fees (USD, <= 0)",
    "funding": "perpetual funding received (+) or paid (-) (USD)",
    "liquidation_cost": "liquidation fee charged on a forced close (USD, <= 0)",
    "margin_balance": "margin wallet + unrealized futures P&L (USD)",
    "margin_initial": "initial margin of the position after the bar (USD)",
    "margin_required": "maintenance margin of the position after the bar (USD)",
    "margin_excess": "margin_balance - margin_required (USD)",
    "margin_reserve": "reserve still available for top-ups (USD)",
    "margin_call": "True when a margin call happened in the bar",
    "liquidated": "True when the futures position was liquidated in the bar",
    "ret_unhedged": "pnl_altcoin / alt_value[t-1] (per-bar return on the coin notional)",
    "ret_hedged": "(equity_hedged[t] - equity_hedged[t-1]) / alt_value[t-1]",
}

#: Components of ``summary.json`` ``rules.<rule>.pnl``; ``total`` is their sum.
PNL_COMPONENTS: Final[tuple[str, ...]] = (
    "altcoin",
    "futures",
    "fees",
    "slippage",
    "roll",
    "funding",
    "liquidation",
)

#: ledger column that feeds each P&L component
PNL_COLUMN: Final[dict[str, str]] = {
    "altcoin": "pnl_altcoin",
    "futures": "pnl_futures",
    "fees": "fees",
    "slippage": "slippage",
    "roll": "roll_cost",
    "funding": "funding",
    "liquidation": "liquidation_cost",
}

#: Per-rule keys of ``summary.json`` (besides ``pnl``).
RULE_METRICS: Final[dict[str, str]] = {
    "hedge_effectiveness": "HE = 1 - Var(ret_hedged) / Var(ret_unhedged)",
    "oracle_r2": "in-sample squared correlation of coin and futures returns (best constant linear hedge)",
    "he_vs_oracle": "hedge_effectiveness / oracle_r2",
    "vol_unhedged_ann": "stdev(ret_unhedged) x sqrt(365 x bars per day)",
    "vol_hedged_ann": "stdev(ret_hedged) x sqrt(365 x bars per day)",
    "max_drawdown_unhedged": "max drawdown of prod(1 + ret_unhedged), fraction",
    "max_drawdown_hedged": "max drawdown of prod(1 + ret_hedged), fraction",
    "trades": "number of bars with a rebalancing trade",
    "rolls": "number of contract rolls (including expiry settlements)",
    "margin_calls": "number of margin calls",
    "liquidations": "number of liquidations",
    "min_margin_excess": "smallest margin_excess over the replay (USD)",
    "min_safe_collateral": "smallest starting collateral with no margin call, no capped re-size, no liquidation, reserve 0 (USD, bisection on the margin-on replay to $1, rounded up)",
    "turnover_contracts": "sum of |trade_contracts| + |roll_contracts|",
    "cost_drag_bps_per_year": "-(fees + slippage + roll + liquidation) / mean coin notional / years x 1e4",
    "futures_basis_pnl": "sum of pnl_basis (USD, part of pnl.futures)",
    "cost_trading_usd": "-(fees + slippage + roll + liquidation) (USD, >= 0)",
    "cost_trading_bps_per_year": "cost_trading_usd / mean coin notional / years x 1e4 (= cost_drag_bps_per_year)",
    "carry_usd": "basis P&L of dated futures (futures_basis_pnl) or perpetual funding (pnl.funding); "
                 "positive = the short earned it (USD)",
    "carry_bps_per_year": "carry_usd / mean coin notional / years x 1e4",
    "net_cost_usd": "cost_trading_usd - carry_usd (USD; negative = carry paid for the trading)",
    "net_cost_bps_per_year": "cost_trading_bps_per_year - carry_bps_per_year",
}

#: The keys of :data:`RULE_METRICS` that are counts: whole numbers >= 0, never ``null``.
RULE_COUNTS: Final[tuple[str, ...]] = ("trades", "rolls", "margin_calls", "liquidations")

#: Per-rule ``summary.json`` key ``he_by_horizon``: HE at each horizon, from non-overlapping
#: sums of per-bar hedged / unhedged P&L over the horizon divided by the coin notional at its start.
HE_HORIZONS: Final[tuple[str, ...]] = ("bar", "1D", "7D")
