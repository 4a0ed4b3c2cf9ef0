"""Slow, obvious reference simulator: the specification the fast kernel is held to.

Plain Python over one bar at a time, positions in a dict keyed by contract,
each step of :mod:`backtest.kernels` written out as a separate function. It is
far too slow for real use (seconds per thousand bars) and exists only so that
tests can compare the numba kernel against it on random scenarios. Beside it, the
collateral bisection with one trial per kernel pass
(:func:`min_safe_collaterals_reference`), which the engine's faster search is held to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from backtest.kernels import SUM
from backtest.market import Market, Variant, run_variants

__all__ = ["simulate_reference", "min_safe_collaterals_reference"]


def _round_half_away(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


@dataclass
class _Account:
    positions: dict[int, float] = field(default_factory=dict)
    wallet: float = 0.0
    reserve: float = 0.0
    unrealized: float = 0.0
    spot_cash: float = 0.0
    topped_up: float = 0.0

    def held(self) -> dict[int, float]:
        return {k: q for k, q in self.positions.items() if q != 0.0}

    def total(self) -> float:
        return sum(self.positions.values())


@dataclass
class _Bar:
    """What happened in one bar (all USD amounts signed as P&L)."""

    pnl_futures: float = 0.0
    pnl_basis: float = 0.0
    fees: float = 0.0
    slippage: float = 0.0
    roll_cost: float = 0.0
    funding: float = 0.0
    liquidation_cost: float = 0.0
    trade_contracts: float = 0.0
    roll_contracts: float = 0.0
    rebalanced: bool = False
    rolled: bool = False
    margin_call: bool = False
    liquidated: bool = False


def _costs(v: Variant, q: float, cs: float, price: float, volume: float) -> tuple[float, float]:
    notional = abs(q) * cs * price
    fee = notional * v.fee_bps / 1e4
    slip = notional * v.half_spread_bps / 1e4
    if v.impact_coef > 0 and math.isfinite(volume) and volume > 0:
        slip += notional * v.impact_coef * math.sqrt(notional / volume)
    return fee, slip


def _trades_to(acct: _Account, targets: dict[int, float]) -> dict[int, tuple[float, float]]:
    """Per contract, the trade (above 1e-12 contracts) to go from the positions to ``targets``
    and the target it leaves."""
    out = {}
    for k in sorted(set(acct.positions) | set(targets)):
        q = targets.get(k, 0.0) - acct.positions.get(k, 0.0)
        if abs(q) > 1e-12:
            out[k] = (q, targets.get(k, 0.0))
    return out


def _px(m: Market, t: int, k: int) -> float:
    """Contract ``k``'s price at bar ``t`` (column ``k % S`` of ``m.px``)."""
    return float(m.px[t, k % m.px.shape[1]])


def _split(m: Market, v: Variant, t: int, total: float) -> dict[int, float]:
    """``total`` contracts over bar ``t``'s roll schedule: all in ``c0``, or ``w1`` of it in ``c1``."""
    k0, k1 = int(m.c0[t]), int(m.c1[t])
    if k1 < 0:
        return {k0: total}
    part = total * m.w1[t]
    if v.whole_contracts:
        part = _round_half_away(part)
    return {k1: part, k0: total - part}


def _mark(m: Market, acct: _Account, bar: _Bar, t: int) -> None:
    """Step 1: the held contracts marked from bar ``t - 1`` to ``t`` (and their basis P&L)."""
    cs = m.contract_size
    for k, q in acct.held().items():
        bar.pnl_futures += q * cs * (_px(m, t, k) - _px(m, t - 1, k))
        bar.pnl_basis += q * cs * ((_px(m, t, k) - m.idx[t]) - (_px(m, t - 1, k) - m.idx[t - 1]))


def _margin_check(m: Market, v: Variant, acct: _Account, bar: _Bar, t: int, need: float) -> float:
    """Step 2: the margin at the adverse intrabar index level ``x``, the balance ``D + A x``
    against ``mm B x``; a call tops up (``top_up``) or cuts the position (``cut``), a
    liquidation closes it at the level where the balance meets maintenance. Returns the
    running margin need."""
    held = acct.held()
    if not held:
        return need
    cs, mm, im = m.contract_size, v.maintenance_rate, v.initial_rate
    g = {k: _px(m, t, k) / m.idx[t] for k in held}
    A = sum(q * cs * g[k] for k, q in held.items())
    B = sum(abs(q) * cs * g[k] for k, q in held.items())
    D = acct.wallet + acct.unrealized - sum(q * cs * _px(m, t - 1, k) for k, q in held.items())
    short_like = A - mm * B < 0
    if short_like:
        x_adv = m.idx_hi[t] if math.isfinite(m.idx_hi[t]) else m.idx[t]
        x_adv = max(x_adv, m.idx[t])
    else:
        x_adv = m.idx_lo[t] if math.isfinite(m.idx_lo[t]) else m.idx[t]
        x_adv = min(x_adv, m.idx[t])

    def balance(x: float) -> float:
        return D + A * x

    need = max(need, mm * B * x_adv - (balance(x_adv) - v.collateral_usd - acct.topped_up))
    if not (v.margin_enabled and balance(x_adv) < mm * B * x_adv):
        return need
    bar.margin_call = True
    liquidate = False
    if v.policy == "top_up":
        amount = min(acct.reserve, im * B * x_adv - balance(x_adv))
        acct.reserve -= amount
        acct.wallet += amount
        acct.topped_up += amount
        D += amount
        liquidate = balance(x_adv) < mm * B * x_adv
    elif balance(x_adv) <= 0:
        liquidate = True
    else:
        scale = balance(x_adv) / (im * B * x_adv)
        if scale < 1e-9:  # keep no dust: close the position
            scale = 0.0
        for k, q in held.items():
            new = math.trunc(q * scale) if v.whole_contracts else q * scale
            trade = new - q
            price = g[k] * x_adv
            bar.pnl_futures += trade * cs * (_px(m, t, k) - price)
            fee, slip = _costs(v, trade, cs, price, m.volume_usd[t])
            bar.fees -= fee
            bar.slippage -= slip
            bar.trade_contracts += abs(trade)
            acct.positions[k] = new
        bar.rebalanced = True
    if liquidate:
        x_star = D / (mm * B - A)
        if short_like:
            lower = min(m.idx[t - 1], x_adv)
            x_star = min(max(x_star, lower), x_adv)
        else:
            upper = max(m.idx[t - 1], x_adv)
            x_star = max(min(x_star, upper), x_adv)
        for k, q in held.items():
            price = g[k] * x_star
            bar.pnl_futures += -q * cs * (_px(m, t, k) - price)
            bar.liquidation_cost -= abs(q) * cs * price * v.liquidation_fee_bps / 1e4
            acct.positions[k] = 0.0
        bar.liquidated = True
    return need


def _settle_and_roll(m: Market, v: Variant, acct: _Account, bar: _Bar, t: int) -> None:
    """Steps 4 and 5: contracts expiring at ``t`` settle (settlement fee), and the position,
    the settled contracts included, moves onto bar ``t``'s split (same total)."""
    cs = m.contract_size
    carried = 0.0
    for k, q in acct.held().items():
        if m.exp_bar[k] == t:
            bar.roll_cost -= abs(q) * cs * _px(m, t, k) * v.settlement_fee_bps / 1e4
            carried += q
            acct.positions[k] = 0.0
            bar.rolled = True
    targets = _split(m, v, t, acct.total() + carried)
    for k in set(acct.positions) | set(targets):
        q = targets.get(k, 0.0) - acct.positions.get(k, 0.0)
        if abs(q) > 1e-12:
            fee, slip = _costs(v, q, cs, _px(m, t, k), m.volume_usd[t])
            bar.roll_cost -= fee + slip
            bar.roll_contracts += abs(q)
            acct.positions[k] = targets.get(k, 0.0)
            bar.rolled = True


def _margin_cap(m: Market, v: Variant, acct: _Account, bar: _Bar, t: int, n_star: float) -> float:
    """Step 6's margin limit on the target ``n_star``: under ``top_up`` the reserve first covers
    the new position's initial margin plus the trade's own costs; what the balance still cannot
    carry at the initial rate (costs included) is capped."""
    cs, im = m.contract_size, v.initial_rate
    f0 = _px(m, t, int(m.c0[t]))
    pending = bar.funding + bar.fees + bar.slippage + bar.roll_cost + bar.liquidation_cost
    balance_now = acct.wallet + acct.unrealized + pending
    required = im * abs(n_star) * cs * f0
    covered = False
    if v.policy == "top_up" and acct.reserve > 0:
        # the top-up covers the new position's initial margin plus the trade's own costs
        trade_cost = sum(sum(_costs(v, q, cs, _px(m, t, k), m.volume_usd[t]))
                         for k, (q, _) in _trades_to(acct, _split(m, v, t, n_star)).items())
        shortfall = required + trade_cost - balance_now
        if shortfall > 0:
            amount = min(acct.reserve, shortfall)
            acct.reserve -= amount
            acct.wallet += amount
            acct.topped_up += amount
            balance_now += amount
            # all of the shortfall came from the reserve: covered, whatever the rounding
            # of balance_now + amount (it can land an ulp below the target)
            covered = amount == shortfall
    if required > balance_now and not covered:
        cost_rate = v.fee_bps / 1e4 + v.half_spread_bps / 1e4
        volume = m.volume_usd[t]
        if v.impact_coef > 0 and math.isfinite(volume) and volume > 0:
            cost_rate += v.impact_coef * math.sqrt(max(balance_now, 0.0) / im / volume)
        cap = max(balance_now, 0.0) / (im * cs * f0 * (1 + cost_rate / im))
        if v.whole_contracts:
            cap = math.floor(cap)
        if cap < 1e-9 * abs(n_star):
            cap = 0.0
        if abs(n_star) > cap:
            n_star = math.copysign(cap, n_star)
    return n_star


def _rebalance(m: Market, v: Variant, acct: _Account, bar: _Bar, t: int) -> None:
    """Step 6: on the schedule, the band or the first bar / a holding change, trade to
    ``N* = -h V / (cs F)`` (whole contracts rounded half away from zero; margin-limited),
    unless the trade is below the minimum."""
    cs = m.contract_size
    f0 = _px(m, t, int(m.c0[t]))
    h = m.hr[t, v.hr_col]
    held_total = acct.total()
    h_held = -held_total * cs * f0 / m.alt_value[t]
    drift = abs(h_held - h) > v.band * abs(h) + 1e-12
    periodic = t % v.every_bars == 0
    trigger = {"every": periodic, "band": drift, "band_on_schedule": periodic and drift}[v.mode]
    if not (trigger or t == 0 or bool(m.alt_changed[t])):
        return
    n_star = -h * m.alt_value[t] / (cs * f0)
    if v.whole_contracts:
        n_star = _round_half_away(n_star)
    if v.margin_enabled:
        n_star = _margin_cap(m, v, acct, bar, t, n_star)
    q_total = n_star - held_total
    if abs(q_total) > 1e-12 and abs(q_total) >= v.min_trade_contracts:
        for k, (q, target) in _trades_to(acct, _split(m, v, t, n_star)).items():
            fee, slip = _costs(v, q, cs, _px(m, t, k), m.volume_usd[t])
            bar.fees -= fee
            bar.slippage -= slip
            bar.trade_contracts += abs(q)
            acct.positions[k] = target
        bar.rebalanced = True


def _record(rows: dict[str, list[float]], m: Market, v: Variant, acct: _Account, bar: _Bar, t: int,
            equity: float, eq_u: float, equity_prev: float, need: float) -> None:
    """The bar's ledger row (the columns of ``kernels.OUT``) appended to ``rows``."""
    cs, mm, im = m.contract_size, v.maintenance_rate, v.initial_rate
    f0 = _px(m, t, int(m.c0[t]))
    gross = sum(abs(q) * cs * _px(m, t, k) for k, q in acct.held().items())
    contracts = acct.total()
    balance_end = acct.wallet + acct.unrealized
    values = {
        "contracts": contracts, "primary": int(m.c0[t]), "hedge_ratio_target": m.hr[t, v.hr_col],
        "hedge_ratio_held": -contracts * cs * f0 / m.alt_value[t], "trade_contracts": bar.trade_contracts,
        "roll_contracts": bar.roll_contracts, "rebalanced": bar.rebalanced, "rolled": bar.rolled,
        "cash": acct.spot_cash + acct.wallet + acct.reserve, "fut_unrealized": acct.unrealized,
        "equity_hedged": equity, "equity_unhedged": eq_u, "pnl_futures": bar.pnl_futures,
        "pnl_basis": bar.pnl_basis, "fees": bar.fees, "slippage": bar.slippage, "roll_cost": bar.roll_cost,
        "funding": bar.funding, "liquidation_cost": bar.liquidation_cost, "margin_balance": balance_end,
        "margin_initial": im * gross, "margin_required": mm * gross, "margin_excess": balance_end - mm * gross,
        "margin_reserve": acct.reserve, "margin_call": bar.margin_call, "liquidated": bar.liquidated,
        "ret_hedged": (equity - equity_prev) / m.alt_value[t - 1] if t > 0 else math.nan,
        "ret_unhedged": m.alt_pnl[t] / m.alt_value[t - 1] if t > 0 else math.nan,
        "margin_need": need,
    }
    for name, value in values.items():
        rows.setdefault(name, []).append(float(value))


def simulate_reference(m: Market, v: Variant) -> dict[str, np.ndarray]:
    """Simulate one variant; returns per-bar arrays named like ``kernels.OUT``.

    Per bar ``t``, in the kernel's order: 1. mark, 2. margin check at the adverse intrabar
    price, 3. funding, 4. expiry settlement, 5. roll onto the bar's split, 6. rebalance, 7. cash,
    variation margin, equity ``= spot cash + wallet + reserve + coin value + unrealised``.
    """
    acct = _Account(wallet=v.collateral_usd, reserve=v.reserve_usd)
    rows: dict[str, list[float]] = {}
    equity_prev = m.alt_value[0] + v.collateral_usd + v.reserve_usd
    eq_u = equity_prev
    need = 0.0
    cs = m.contract_size
    for t in range(m.n_bars):
        bar = _Bar()
        if t > 0:
            _mark(m, acct, bar, t)  # 1.
            need = _margin_check(m, v, acct, bar, t, need)  # 2.
            acct.unrealized += bar.pnl_futures
            for k, q in acct.held().items():  # 3. funding
                bar.funding -= q * cs * _px(m, t, k) * m.fund_rate[t]
        _settle_and_roll(m, v, acct, bar, t)  # 4. and 5.
        _rebalance(m, v, acct, bar, t)  # 6.
        # 7. cash and variation margin
        acct.wallet += bar.funding + bar.fees + bar.slippage + bar.roll_cost + bar.liquidation_cost
        if not v.daily_variation or m.vm_bar[t]:
            acct.wallet += acct.unrealized
            acct.unrealized = 0.0
        acct.spot_cash += m.alt_flow[t]
        equity = acct.spot_cash + acct.wallet + acct.reserve + m.alt_value[t] + acct.unrealized
        eq_u += m.alt_pnl[t]
        gross = sum(abs(q) * cs * _px(m, t, k) for k, q in acct.held().items())
        if gross > 0:
            need = max(need, v.maintenance_rate * gross - (acct.wallet + acct.unrealized - v.collateral_usd
                                                           - acct.topped_up))
        _record(rows, m, v, acct, bar, t, equity, eq_u, equity_prev, need)
        equity_prev = equity
    return {name: np.asarray(values) for name, values in rows.items()}


def min_safe_collaterals_reference(m: Market, variants: list[Variant], tol_usd: float) -> np.ndarray:
    """The collateral bisection of :func:`backtest.engine.min_safe_collaterals`, one trial per
    variant per kernel pass: the specification its several-trials-per-pass search is held to.

    Per variant (margin on, reserve 0): collateral 0 when it has no margin event (call,
    capped re-size, liquidation); otherwise the upper bound starts at the margin-off
    ``margin_need`` (at least 1) and doubles while it has an event, then ``[lo, hi]`` is
    halved at ``0.5 (lo + hi)`` until at most ``tol_usd`` wide. Returns ``ceil(hi)``.
    """
    event_cols = [SUM.index(name) for name in ("margin_calls", "liquidations", "margin_capped")]
    base = [replace(v, margin_enabled=True, reserve_usd=0.0) for v in variants]

    def has_event(v: Variant, c: float) -> bool:
        return bool((run_variants(m, [replace(v, collateral_usd=float(c))])[0, event_cols] > 0).any())

    out = np.zeros(len(base))
    for i, v in enumerate(base):
        if not has_event(v, 0.0):
            continue
        free = run_variants(m, [replace(v, margin_enabled=False, collateral_usd=0.0)])[0]
        lo, hi = 0.0, max(float(free[SUM.index("margin_need")]), 1.0)
        while has_event(v, hi):
            lo, hi = hi, 2.0 * hi
        while hi - lo > tol_usd:
            mid = 0.5 * (lo + hi)
            if has_event(v, mid):
                lo = mid
            else:
                hi = mid
        out[i] = math.ceil(hi)
    return out
