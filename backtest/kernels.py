"""The bar loop: a pure array kernel (numba), one variant or many.

Inputs are plain NumPy arrays prepared by :mod:`backtest.engine`; nothing here
knows about pandas, files or configuration objects. The slow, obvious twin of
this kernel is :mod:`backtest.reference`; the tests hold the two equal.

Per bar ``t`` (prices are bar closes) the kernel does, in order:

1. **Mark to market** every held contract:
   ``pnl_futures += pos_k * cs * (px[t, k] - px[t-1, k])``; the part due to the
   basis ``F - I`` goes to ``pnl_basis``.
2. **Margin check at the bar's adverse price** (the index high for a short,
   scaled to each contract by ``px[t, k] / I[t]``; the close where no high is
   known). With margin balance ``MB(x) = D + A x`` and maintenance
   ``MM(x) = m B x`` as functions of the index level ``x`` (``A = sum pos*cs*g``,
   ``B = sum |pos|*cs*g``, ``g = px/I``), a breach ``MB < MM`` at the adverse
   price is a margin call. Policy ``top_up`` moves cash from the reserve to
   restore initial margin at that price; if the reserve cannot even restore
   maintenance, the position is **liquidated** at ``x* = D / (m B - A)``, where
   ``MB = MM``, with a liquidation fee on the notional. Policy ``cut_hedge``
   buys back contracts at the adverse price until the balance covers initial
   margin (liquidation only if the balance is already gone).
   A trade of ``q`` contracts at price ``p`` inside the bar adds
   ``q * cs * (px[t] - p)`` to ``pnl_futures`` (it is marked to the close).
3. **Funding** (perpetual): ``funding = -sum pos_k * cs * px[t, k] * rate[t]``.
4. **Expiry**: a contract whose settlement bar is ``t`` is closed at
   ``px[t, k]`` (the index) with a settlement fee.
5. **Roll**: positions are moved to the roll schedule's split
   (``c0``: ``1 - w1``, ``c1``: ``w1``) keeping the total; each leg pays fee and
   slippage (``roll_cost``).
6. **Rebalance** (if the policy triggers): the total goes to
   ``N* = -h[t] * V[t] / (cs * px[t, c0])`` (rounded for whole contracts), limited
   to what the margin balance (plus reserve, under ``top_up``) supports at
   initial margin; fees and slippage are charged.
7. **Variation margin**: unrealised futures P&L moves into the margin wallet
   every bar (``per_bar``) or on bars flagged ``vm_bar`` (``daily``).

Costs: ``fee = |q| cs p * fee_rate``; ``slippage = |q| cs p * (half_spread +
impact * sqrt(|q| cs p / volume_usd))`` (no impact term where the volume is
not positive/finite).

Accounting identities, true on every bar by construction and tested:
``equity = cash + alt_value + unrealised`` and
``equity[t] - equity[t-1] = pnl_altcoin + pnl_futures + fees + slippage + roll_cost + funding + liquidation_cost``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "FP",
    "IP",
    "OUT",
    "SUM",
    "MODE_EVERY",
    "MODE_BAND",
    "MODE_BAND_ON_SCHEDULE",
    "POLICY_TOP_UP",
    "POLICY_CUT",
    "simulate_1d_nb",
    "simulate_many_nb",
]

# -- float parameters of a variant: fp[...] ---------------------------------------------
FP_FEE = 0  # fee rate (fraction of traded notional)
FP_HALF_SPREAD = 1  # fraction
FP_IMPACT = 2  # square-root impact coefficient
FP_BAND = 3  # relative drift band
FP_MIN_TRADE = 4  # contracts
FP_IM = 5  # initial margin rate
FP_MM = 6  # maintenance margin rate
FP_COLLATERAL = 7  # USD
FP_RESERVE = 8  # USD
FP_LIQ_FEE = 9  # fraction of notional
FP_SETTLE_FEE = 10  # fraction of notional
N_FP = 11
FP = {
    "fee": FP_FEE,
    "half_spread": FP_HALF_SPREAD,
    "impact": FP_IMPACT,
    "band": FP_BAND,
    "min_trade": FP_MIN_TRADE,
    "im": FP_IM,
    "mm": FP_MM,
    "collateral": FP_COLLATERAL,
    "reserve": FP_RESERVE,
    "liq_fee": FP_LIQ_FEE,
    "settle_fee": FP_SETTLE_FEE,
}

# -- integer parameters: ip[...] ---------------------------------------------------------
IP_EVERY = 0  # rebalance period (bars)
IP_MODE = 1  # MODE_*
IP_WHOLE = 2  # 1 = whole contracts
IP_HR_COL = 3  # column of the hedge-ratio matrix
IP_POLICY = 4  # POLICY_*
IP_MARGIN_ON = 5  # 1 = margin checks on
IP_VM_DAILY = 6  # 1 = variation margin only on vm_bar bars
N_IP = 7
IP = {
    "every": IP_EVERY,
    "mode": IP_MODE,
    "whole": IP_WHOLE,
    "hr_col": IP_HR_COL,
    "policy": IP_POLICY,
    "margin_on": IP_MARGIN_ON,
    "vm_daily": IP_VM_DAILY,
}

MODE_EVERY = 0
MODE_BAND = 1
MODE_BAND_ON_SCHEDULE = 2
POLICY_TOP_UP = 0
POLICY_CUT = 1

# -- per-bar output rows: out[ROW, t] ----------------------------------------------------
OUT = (
    "contracts",
    "primary",
    "hedge_ratio_target",
    "hedge_ratio_held",
    "trade_contracts",
    "roll_contracts",
    "rebalanced",
    "rolled",
    "cash",
    "fut_unrealized",
    "equity_hedged",
    "equity_unhedged",
    "pnl_futures",
    "pnl_basis",
    "fees",
    "slippage",
    "roll_cost",
    "funding",
    "liquidation_cost",
    "margin_balance",
    "margin_initial",
    "margin_required",
    "margin_excess",
    "margin_reserve",
    "margin_call",
    "liquidated",
    "ret_hedged",
    "ret_unhedged",
    "margin_need",
)
(
    O_CONTRACTS,
    O_PRIMARY,
    O_HR_TARGET,
    O_HR_HELD,
    O_TRADE,
    O_ROLL_Q,
    O_REBAL,
    O_ROLLED,
    O_CASH,
    O_UNREAL,
    O_EQ_H,
    O_EQ_U,
    O_PNL_F,
    O_PNL_B,
    O_FEES,
    O_SLIP,
    O_ROLL,
    O_FUND,
    O_LIQ,
    O_MB,
    O_IM,
    O_MM,
    O_EXCESS,
    O_RESERVE,
    O_CALL,
    O_LIQD,
    O_RET_H,
    O_RET_U,
    O_NEED,
) = range(len(OUT))
N_OUT = len(OUT)

# -- per-variant summary: summary[...] -------------------------------------------------------
SUM = (
    "n_ret",
    "mean_h",
    "m2_h",
    "mean_u",
    "m2_u",
    "max_dd_h",
    "max_dd_u",
    "pnl_altcoin",
    "pnl_futures",
    "pnl_basis",
    "fees",
    "slippage",
    "roll_cost",
    "funding",
    "liquidation_cost",
    "trades",
    "rolls",
    "margin_calls",
    "liquidations",
    "min_margin_excess",
    "turnover_contracts",
    "final_equity_hedged",
    "final_equity_unhedged",
    "margin_need",
    "margin_capped",
    "mean_notional",
)
(
    S_N_RET,
    S_MEAN_H,
    S_M2_H,
    S_MEAN_U,
    S_M2_U,
    S_MAX_DD_H,
    S_MAX_DD_U,
    S_PNL_ALTCOIN,
    S_PNL_FUTURES,
    S_PNL_BASIS,
    S_FEES,
    S_SLIPPAGE,
    S_ROLL_COST,
    S_FUNDING,
    S_LIQUIDATION_COST,
    S_TRADES,
    S_ROLLS,
    S_MARGIN_CALLS,
    S_LIQUIDATIONS,
    S_MIN_MARGIN_EXCESS,
    S_TURNOVER_CONTRACTS,
    S_FINAL_EQUITY_HEDGED,
    S_FINAL_EQUITY_UNHEDGED,
    S_MARGIN_NEED,
    S_MARGIN_CAPPED,
    S_MEAN_NOTIONAL,
) = range(len(SUM))
N_SUM = len(SUM)

_EPS = 1e-12
#: a cut or margin cap that would keep less than this fraction of the position closes it
#: instead (scale-free: no dust positions of 1e-12 contracts that trigger margin calls)
_DUST = 1e-9

# -- implementation ------------------------------------------------------------------------
#
# One source for the bar logic: the loop of :func:`_run` performs steps 1-7 for each
# variant of a group on each bar, on the variants' state kept in a flat array (row
# ``r`` of variant ``j`` at ``st[r * G + j]``). :func:`simulate_1d_nb` runs it with a
# group of one and the ledger on. :func:`simulate_many_nb` runs groups of ``_GROUP``
# variants side by side, summaries only: on a *quiet* bar (same single contract as the
# last bar, nothing settling or rolling, no change of the holding; see
# :func:`_market_prep`) :func:`_quiet_pass` first performs, for all variants of the
# group at once (vectorised), exactly the operations of steps 1-7 on such a bar when
# nothing happens, in the same order, and flags the variants for which something does
# (a margin call, a rebalance by schedule or band); only those run the full steps on
# that bar. Results are bit-for-bit those of the one-variant loop (the tests hold
# ``simulate_many_nb`` equal to ``simulate_1d_nb`` and both equal to
# :mod:`backtest.reference`). Hedged-return statistics are accumulated from a small
# tile of buffered equities (:func:`_return_stats`), variants side by side, so no
# per-bar series is kept for them.

#: variants run side by side in :func:`simulate_many_nb` (one parallel task each group)
_GROUP = 32
#: bars of hedged equity buffered before the return statistics are brought up to date
_TILE = 256

# rows of the state array
(
    R_WALLET,
    R_RESERVE,
    R_UNREAL,
    R_SPOT,
    R_EQ_U,
    R_TOPPED,
    R_NEED,
    R_PNL_F,
    R_PNL_B,
    R_FEES,
    R_SLIP,
    R_ROLL,
    R_FUND,
    R_LIQ,
    R_TRADES,
    R_ROLLS,
    R_CALLS,
    R_LIQS,
    R_CAPPED,
    R_TURNOVER,
    R_MIN_EXCESS,
    R_NEXT_SCHED,
    R_EVERY,
    R_MM,
    R_COLLATERAL,
    R_BAND,
    R_MODE,
    R_MARGIN_ON,
    R_VM_DAILY,
    R_EQ_PREV,  # hedged equity after the last bar (kept for the ledger)
    R_PK,  # scratch for _quiet_pass: position in the bar's contract
    R_H,  # scratch for _quiet_pass: target hedge ratio of the bar
    R_POS,  # first of K rows: position per contract
) = range(33)


@njit(cache=True)
def _round_half_away(x):
    return np.floor(x + 0.5) if x >= 0 else -np.floor(-x + 0.5)


@njit(cache=True, inline="always")
def _split_part(total, w, whole):
    """Contracts of ``total`` that sit in the contract being rolled into (fraction ``w``)."""
    part = total * w
    return _round_half_away(part) if whole else part


@njit(cache=True)
def _trade_cost(q, cs, p, fee, half_spread, impact, volume):
    """Fee and slippage (both >= 0, USD) of trading ``q`` contracts at price ``p``."""
    notional = abs(q) * cs * p
    slip_rate = half_spread
    if impact > 0.0 and volume > 0.0 and np.isfinite(volume):
        slip_rate += impact * np.sqrt(notional / volume)
    return notional * fee, notional * slip_rate


@njit(cache=True, inline="always")
def _bar_return(value, value_prev, base):
    """Return of a bar on the coin notional at its start (hedged and unhedged alike)."""
    return (value - value_prev) / base


@njit(cache=True)
def _market_prep(idx, idx_hi, idx_lo, c0, c1, exp_bar, alt_value, alt_changed):
    """Variant-independent per-bar quantities, computed once per market.

    Returns

    * ``xhi[t] = max(high or close, close)`` and ``xlo[t] = min(low or close, close)``:
      the adverse index levels of step 2 for a short-like and a long-like book;
    * ``expiring[t]``: some contract settles at bar ``t``;
    * ``quiet[t]``: ``t > 0``, the primary contract is the last bar's and nothing is
      being rolled on either bar, nothing settles, the holding did not change and is
      worth something. On a quiet bar steps 4 and 5 do nothing and step 6 can only be
      triggered by the variant's own schedule or band.
    """
    T = idx.shape[0]
    xhi = np.empty(T)
    xlo = np.empty(T)
    for t in range(T):
        it = idx[t]
        x = idx_hi[t] if np.isfinite(idx_hi[t]) else it
        xhi[t] = max(x, it)
        x = idx_lo[t] if np.isfinite(idx_lo[t]) else it
        xlo[t] = min(x, it)
    expiring = np.zeros(T, dtype=np.bool_)
    for k in range(exp_bar.shape[0]):
        e = exp_bar[k]
        if 0 <= e < T:
            expiring[e] = True
    quiet = np.zeros(T, dtype=np.bool_)
    for t in range(1, T):
        quiet[t] = (
            c0[t] >= 0
            and c0[t] == c0[t - 1]
            and c1[t] < 0
            and c1[t - 1] < 0
            and not expiring[t]
            and not alt_changed[t]
            and alt_value[t] != 0.0
        )
    return xhi, xlo, expiring, quiet


@njit(cache=True, inline="always")
def _init_state(st, G, j, K, fp, ip, alt_value0):
    """Starting state of a variant (column ``j`` of ``st``)."""
    for r in range(R_POS + K):
        st[r * G + j] = 0.0
    st[R_WALLET * G + j] = fp[FP_COLLATERAL]
    st[R_RESERVE * G + j] = fp[FP_RESERVE]
    st[R_EQ_U * G + j] = alt_value0 + fp[FP_COLLATERAL] + fp[FP_RESERVE]
    st[R_MIN_EXCESS * G + j] = np.inf
    st[R_MM * G + j] = fp[FP_MM]
    st[R_COLLATERAL * G + j] = fp[FP_COLLATERAL]
    st[R_BAND * G + j] = fp[FP_BAND]
    st[R_MODE * G + j] = ip[IP_MODE]
    st[R_EVERY * G + j] = ip[IP_EVERY]
    st[R_MARGIN_ON * G + j] = 1.0 if ip[IP_MARGIN_ON] == 1 else 0.0
    st[R_VM_DAILY * G + j] = 1.0 if ip[IP_VM_DAILY] == 1 else 0.0


@njit(cache=True, inline="always")
def _write_summary(st, G, j, equity_final, summary):
    """Summary fields kept in the state (all but the return statistics and the unhedged fields)."""
    summary[S_PNL_FUTURES] = st[R_PNL_F * G + j]
    summary[S_PNL_BASIS] = st[R_PNL_B * G + j]
    summary[S_FEES] = st[R_FEES * G + j]
    summary[S_SLIPPAGE] = st[R_SLIP * G + j]
    summary[S_ROLL_COST] = st[R_ROLL * G + j]
    summary[S_FUNDING] = st[R_FUND * G + j]
    summary[S_LIQUIDATION_COST] = st[R_LIQ * G + j]
    summary[S_TRADES] = st[R_TRADES * G + j]
    summary[S_ROLLS] = st[R_ROLLS * G + j]
    summary[S_MARGIN_CALLS] = st[R_CALLS * G + j]
    summary[S_LIQUIDATIONS] = st[R_LIQS * G + j]
    summary[S_MARGIN_CAPPED] = st[R_CAPPED * G + j]
    summary[S_TURNOVER_CONTRACTS] = st[R_TURNOVER * G + j]
    me = st[R_MIN_EXCESS * G + j]
    summary[S_MIN_MARGIN_EXCESS] = me if np.isfinite(me) else np.nan
    summary[S_FINAL_EQUITY_HEDGED] = equity_final
    summary[S_FINAL_EQUITY_UNHEDGED] = st[R_EQ_U * G + j]
    summary[S_MARGIN_NEED] = max(st[R_NEED * G + j], 0.0)


@njit(cache=True, inline="always")
def _run(
    px, idx, xhi, xlo, expiring, quiet, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
    alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips, var, record, out, st, eq, rs,
):
    """The bar loop of ``G = len(var)`` variants (rows ``var`` of ``fps`` / ``ips``) side by side.

    Per bar, for each variant, steps 1-7 of the module docstring on the variant's
    state (row ``r`` of variant ``j`` at ``st[r * G + j]``; ``st`` holds at least
    ``(R_POS + K) * G`` values and is initialised here). A bar flagged in ``quiet``
    first goes through :func:`_quiet_pass` for all variants at once and only the
    variants it flags run the steps here. The hedged equity after each bar goes to
    the tile buffer ``eq`` (``(_TILE + 1) x G``), from which :func:`_return_stats`
    keeps the return statistics in ``rs`` (``5 x G``) up to date; at the end
    ``eq[0, j]`` is the final equity. Writes the per-bar rows of variant 0 to
    ``out`` when ``record``.

    The steps are written out in this loop (not in a function called per bar) so
    that no array reference is taken per bar.
    """
    G = var.shape[0]
    T = px.shape[0]
    K = px.shape[1]
    cols = np.empty(G, dtype=np.int64)
    for j in range(G):
        v = var[j]
        _init_state(st, G, j, K, fps[v], ips[v], alt_value[0])
        cols[j] = ips[v, IP_HR_COL]
    for j in range(G):
        rs[j] = 0.0
        rs[G + j] = 0.0
        rs[2 * G + j] = 1.0
        rs[3 * G + j] = 1.0
        rs[4 * G + j] = 0.0
    ev = np.ones(G, dtype=np.bool_)
    cand = np.empty(4, dtype=np.int64)
    tgt = np.zeros(K)
    row = 0
    for t in range(T):
        if row == _TILE:
            _return_stats(eq, row, t - row, alt_value, rs, G)
            for j in range(G):
                eq[0, j] = eq[row, j]
            row = 0
        row += 1  # bar t's row of eq
        k0 = c0[t]
        k1 = c1[t]
        on_quiet = quiet[t]
        if on_quiet:
            # same contract as the last bar and nothing rolling: k0 is the only candidate
            cand[0] = k0
            nc = 1
            n_ev = _quiet_pass(
                t, row, k0, st, hr, cols, eq, ev, cs, px[t, k0], px[t - 1, k0], idx[t], idx[t - 1], px[t, k0] / idx[t],
                xhi[t], xlo[t], fund_rate[t], vm_bar[t], alt_flow[t], alt_value[t], alt_pnl[t],
            )
            if n_ev == 0:
                continue
        else:
            # contracts that may hold a position or be targeted on this bar
            nc = 0
            for k in (c0[t - 1] if t > 0 else -1, c1[t - 1] if t > 0 else -1, k0, k1):
                if k < 0:
                    continue
                dup = False
                for jj in range(nc):
                    if cand[jj] == k:
                        dup = True
                if not dup:
                    cand[nc] = k
                    nc += 1
        for j in range(G):
            if on_quiet and not ev[j]:
                continue
            v = var[j]
            h_t = hr[t, cols[j]]
            fee = fps[v, FP_FEE]
            hs = fps[v, FP_HALF_SPREAD]
            imp = fps[v, FP_IMPACT]
            band = fps[v, FP_BAND]
            min_trade = fps[v, FP_MIN_TRADE]
            im = fps[v, FP_IM]
            mm = fps[v, FP_MM]
            collateral = fps[v, FP_COLLATERAL]
            liq_fee = fps[v, FP_LIQ_FEE]
            settle_fee = fps[v, FP_SETTLE_FEE]
            every = ips[v, IP_EVERY]
            mode = ips[v, IP_MODE]
            whole = ips[v, IP_WHOLE] == 1
            policy = ips[v, IP_POLICY]
            margin_on = ips[v, IP_MARGIN_ON] == 1
            vm_daily = ips[v, IP_VM_DAILY] == 1
            pb = R_POS * G + j  # position of contract k: st[pb + k * G]

            wallet = st[R_WALLET * G + j]
            reserve = st[R_RESERVE * G + j]
            unreal = st[R_UNREAL * G + j]
            topped = st[R_TOPPED * G + j]
            need = st[R_NEED * G + j]

            pnl_f = 0.0
            pnl_b = 0.0
            fees = 0.0
            slip = 0.0
            roll = 0.0
            fund = 0.0
            liq = 0.0
            trade_q = 0.0
            roll_q = 0.0
            rebal = False
            rolled = False
            call = False
            liqd = False
            trades = 0.0
            rolls = 0.0
            capped = 0.0
            # any cost, funding or trade this bar (otherwise those are all +0.0 and adding
            # them changes nothing, so the additions are skipped)
            busy = False

            if t > 0:
                # 1. mark to market, and 2. the book as a function of the index level x
                i_t = idx[t]
                i_p = idx[t - 1]
                A = 0.0
                B = 0.0
                D = wallet + unreal
                for jj in range(nc):
                    k = cand[jj]
                    pk = st[pb + k * G]
                    if pk != 0.0:
                        p_t = px[t, k]
                        p_p = px[t - 1, k]
                        pnl_f += pk * cs * (p_t - p_p)
                        pnl_b += pk * cs * ((p_t - i_t) - (p_p - i_p))
                        gk = p_t / i_t
                        A += pk * cs * gk
                        B += abs(pk) * cs * gk
                        D -= pk * cs * p_p
                # 2. margin check at the adverse intrabar price
                if B > 0.0:
                    slope = A - mm * B  # d(MB - MM)/dx
                    if slope < 0.0:
                        x_adv = xhi[t]
                    else:
                        x_adv = xlo[t]
                    mb_adv = D + A * x_adv
                    mm_adv = mm * B * x_adv
                    # margin_need tracks max(MM_adv - (MB_adv - collateral - top-ups)): the collateral
                    # that would have kept maintenance covered along this path with no calls
                    need = max(need, mm_adv - (mb_adv - collateral - topped))
                    if margin_on and mb_adv < mm_adv:
                        call = True
                        busy = True
                        liquidate = False
                        if policy == POLICY_TOP_UP:
                            amount = min(reserve, im * B * x_adv - mb_adv)
                            reserve -= amount
                            wallet += amount
                            topped += amount
                            D += amount
                            mb_adv += amount
                            liquidate = mb_adv < mm_adv
                        elif mb_adv <= 0.0:
                            liquidate = True
                        else:
                            # cut the hedge to what the balance supports at initial margin
                            scale = mb_adv / (im * B * x_adv)
                            if scale < _DUST:
                                scale = 0.0
                            for jj in range(nc):
                                k = cand[jj]
                                pk = st[pb + k * G]
                                if pk != 0.0:
                                    new = pk * scale
                                    if whole:
                                        new = np.trunc(new)
                                    q = new - pk
                                    p = px[t, k] / i_t * x_adv
                                    pnl_f += q * cs * (px[t, k] - p)
                                    f_, s_ = _trade_cost(q, cs, p, fee, hs, imp, volume_usd[t])
                                    fees -= f_
                                    slip -= s_
                                    trade_q += abs(q)
                                    st[pb + k * G] = new
                            rebal = True
                            trades += 1.0
                        if liquidate:
                            x_star = D / (mm * B - A)
                            if slope < 0.0:
                                x_star = min(max(x_star, i_p if i_p < x_adv else x_adv), x_adv)
                            else:
                                x_star = max(min(x_star, i_p if i_p > x_adv else x_adv), x_adv)
                            for jj in range(nc):
                                k = cand[jj]
                                pk = st[pb + k * G]
                                if pk != 0.0:
                                    p = px[t, k] / i_t * x_star
                                    q = -pk
                                    pnl_f += q * cs * (px[t, k] - p)
                                    liq -= abs(q) * cs * p * liq_fee
                                    st[pb + k * G] = 0.0
                            liqd = True
                            st[R_LIQS * G + j] += 1.0
                        st[R_CALLS * G + j] += 1.0
                unreal += pnl_f
                # 3. funding at the close
                rate = fund_rate[t]
                if rate != 0.0:
                    busy = True
                    for jj in range(nc):
                        k = cand[jj]
                        pk = st[pb + k * G]
                        if pk != 0.0:
                            fund -= pk * cs * px[t, k] * rate

            # 4. expiry settlement at the index
            carried = 0.0
            for jj in range(nc if expiring[t] else 0):
                k = cand[jj]
                pk = st[pb + k * G]
                if exp_bar[k] == t and pk != 0.0:
                    roll -= abs(pk) * cs * px[t, k] * settle_fee
                    carried += pk
                    st[pb + k * G] = 0.0
                    rolled = True
                    busy = True
                    rolls += 1.0

            # 5. roll: move the held total onto this bar's contract split
            # (one contract, no split and nothing settled: the split is the holding itself)
            if nc > 1 or k1 >= 0 or carried != 0.0:
                total = carried
                for jj in range(nc):
                    total += st[pb + cand[jj] * G]
                for jj in range(nc):
                    tgt[cand[jj]] = 0.0
                if k1 >= 0:
                    part = _split_part(total, w1[t], whole)
                    tgt[k1] = part
                    tgt[k0] = total - part
                else:
                    tgt[k0] = total
                for jj in range(nc):
                    k = cand[jj]
                    pk = st[pb + k * G]
                    q = tgt[k] - pk
                    if abs(q) > _EPS:
                        f_, s_ = _trade_cost(q, cs, px[t, k], fee, hs, imp, volume_usd[t])
                        roll -= f_ + s_
                        roll_q += abs(q)
                        if pk != 0.0 and tgt[k] == 0.0 and carried == 0.0:
                            rolls += 1.0
                        st[pb + k * G] = tgt[k]
                        rolled = True
                        busy = True

            # 6. rebalance to the rule's target
            f0 = px[t, k0]
            held = 0.0
            for jj in range(nc):
                held += st[pb + cand[jj] * G]
            next_sched = np.int64(st[R_NEXT_SCHED * G + j])
            scheduled = t == next_sched  # t % every == 0, without a division per bar
            if scheduled:
                st[R_NEXT_SCHED * G + j] = next_sched + every
            if t == 0 or alt_changed[t]:
                trigger = True
            elif mode == MODE_EVERY:
                trigger = scheduled
            elif mode == MODE_BAND or scheduled:
                h_held = -held * cs * f0 / alt_value[t]
                trigger = abs(h_held - h_t) > band * abs(h_t) + _EPS
            else:
                trigger = False
            if trigger:
                n_star = -h_t * alt_value[t] / (cs * f0)
                if whole:
                    n_star = _round_half_away(n_star)
                if margin_on:
                    mb = wallet + unreal + fund + fees + slip + roll + liq
                    need_im = im * abs(n_star) * cs * f0
                    if need_im > mb and policy == POLICY_TOP_UP and reserve > 0.0:
                        amount = min(reserve, need_im - mb)
                        reserve -= amount
                        wallet += amount
                        topped += amount
                        mb += amount
                    if need_im > mb:
                        # the venue would reject an order beyond the available margin
                        # largest position whose initial margin plus trading costs the balance covers
                        # (impact bounded above by that of a trade of the whole balance / im)
                        cost_rate = fee + hs
                        if imp > 0.0 and volume_usd[t] > 0.0 and np.isfinite(volume_usd[t]):
                            cost_rate += imp * np.sqrt(max(mb, 0.0) / im / volume_usd[t])
                        cap = max(mb, 0.0) / (im * cs * f0 * (1.0 + cost_rate / im))
                        if whole:
                            cap = np.floor(cap)
                        if cap < _DUST * abs(n_star):
                            cap = 0.0
                        if abs(n_star) > cap:
                            n_star = cap if n_star > 0 else -cap
                            capped += 1.0
                q_total = n_star - held
                if abs(q_total) > _EPS and abs(q_total) >= min_trade:
                    if k1 >= 0:
                        part = _split_part(n_star, w1[t], whole)
                        tgt[k1] = part
                        tgt[k0] = n_star - part
                    else:
                        tgt[k0] = n_star
                    for jj in range(nc):
                        k = cand[jj]
                        if k != k0 and k != k1:
                            tgt[k] = 0.0
                        pk = st[pb + k * G]
                        q = tgt[k] - pk
                        if abs(q) > _EPS:
                            f_, s_ = _trade_cost(q, cs, px[t, k], fee, hs, imp, volume_usd[t])
                            fees -= f_
                            slip -= s_
                            trade_q += abs(q)
                            st[pb + k * G] = tgt[k]
                            busy = True
                    rebal = True
                    trades += 1.0

            # 7. cash movements and variation margin
            if busy:
                wallet += fund + fees + slip + roll + liq
            if not vm_daily or vm_bar[t]:
                wallet += unreal
                unreal = 0.0
            spot_cash = st[R_SPOT * G + j] + alt_flow[t]
            cash = spot_cash + wallet + reserve
            equity = cash + alt_value[t] + unreal
            eq_u = st[R_EQ_U * G + j] + alt_pnl[t]

            contracts = 0.0
            gross = 0.0
            for jj in range(nc):
                k = cand[jj]
                pk = st[pb + k * G]
                contracts += pk
                gross += abs(pk) * cs * px[t, k]
            mb = wallet + unreal
            m_req = mm * gross
            excess = mb - m_req
            if gross > 0.0:
                st[R_MIN_EXCESS * G + j] = min(st[R_MIN_EXCESS * G + j], excess)
                need = max(need, m_req - (mb - collateral - topped))

            st[R_WALLET * G + j] = wallet
            st[R_RESERVE * G + j] = reserve
            st[R_UNREAL * G + j] = unreal
            st[R_SPOT * G + j] = spot_cash
            st[R_EQ_U * G + j] = eq_u
            st[R_TOPPED * G + j] = topped
            st[R_NEED * G + j] = need
            st[R_PNL_F * G + j] += pnl_f
            st[R_PNL_B * G + j] += pnl_b
            st[R_TRADES * G + j] += trades
            st[R_ROLLS * G + j] += rolls
            st[R_CAPPED * G + j] += capped
            if busy:
                st[R_FEES * G + j] += fees
                st[R_SLIP * G + j] += slip
                st[R_ROLL * G + j] += roll
                st[R_FUND * G + j] += fund
                st[R_LIQ * G + j] += liq
                st[R_TURNOVER * G + j] += trade_q + roll_q
            if record:
                equity_prev = st[R_EQ_PREV * G + j]
                st[R_EQ_PREV * G + j] = equity
            eq[row, j] = equity

            if record:
                out[O_CONTRACTS, t] = contracts
                out[O_PRIMARY, t] = k0
                out[O_HR_TARGET, t] = h_t
                out[O_HR_HELD, t] = -contracts * cs * f0 / alt_value[t]
                out[O_TRADE, t] = trade_q
                out[O_ROLL_Q, t] = roll_q
                out[O_REBAL, t] = 1.0 if rebal else 0.0
                out[O_ROLLED, t] = 1.0 if rolled else 0.0
                out[O_CASH, t] = cash
                out[O_UNREAL, t] = unreal
                out[O_EQ_H, t] = equity
                out[O_EQ_U, t] = eq_u
                out[O_PNL_F, t] = pnl_f
                out[O_PNL_B, t] = pnl_b
                out[O_FEES, t] = fees
                out[O_SLIP, t] = slip
                out[O_ROLL, t] = roll
                out[O_FUND, t] = fund
                out[O_LIQ, t] = liq
                out[O_MB, t] = mb
                out[O_IM, t] = im * gross
                out[O_MM, t] = m_req
                out[O_EXCESS, t] = excess
                out[O_RESERVE, t] = reserve
                out[O_CALL, t] = 1.0 if call else 0.0
                out[O_LIQD, t] = 1.0 if liqd else 0.0
                if t > 0:
                    out[O_RET_H, t] = _bar_return(equity, equity_prev, alt_value[t - 1])
                    out[O_RET_U, t] = alt_pnl[t] / alt_value[t - 1]
                else:
                    out[O_RET_H, t] = np.nan
                    out[O_RET_U, t] = np.nan
                out[O_NEED, t] = need
    _return_stats(eq, row, T - row, alt_value, rs, G)
    for j in range(G):
        eq[0, j] = eq[row, j]


@njit(cache=True, error_model="numpy")
def _quiet_pass(
    t, row, k, st, hr, cols, eq, ev, cs, p_t, p_p, i_t, i_p, g_t, x_hi, x_lo, rate, vm_t, flow_t, av_t, pnl_t,
):
    """Bar ``t`` (row ``row`` of the equity tile ``eq``) of a group of ``_GROUP`` variants on a
    quiet bar (contract ``k``), side by side.

    Performs the operations of the loop of :func:`_run` on a quiet bar when nothing
    happens (steps 1, 2, 3, 7 and the schedule of step 6; steps 4 and 5 do nothing there), in the same order, for
    every variant, and commits them where nothing happens. ``ev[j]`` is set where
    something does: a margin call, a scheduled rebalance, a band breach; the state
    of those variants is left untouched for that loop. Returns the number of them.
    Branch-free so that it vectorises; ``error_model="numpy"`` only removes the
    zero check of ``av_t`` (non-zero on quiet bars).
    """
    G = _GROUP
    tf = float(t)
    n_ev = 0
    # the loop below reads fixed rows of st only (so the compiler sees they do not overlap)
    for j in range(G):
        st[R_PK * G + j] = st[(R_POS + k) * G + j]
        st[R_H * G + j] = hr[t, cols[j]]
    for j in range(G):
        pk = st[R_PK * G + j]
        wallet = st[R_WALLET * G + j]
        unreal = st[R_UNREAL * G + j]
        reserve = st[R_RESERVE * G + j]
        mm = st[R_MM * G + j]
        collateral = st[R_COLLATERAL * G + j]
        topped = st[R_TOPPED * G + j]
        need = st[R_NEED * G + j]
        min_excess = st[R_MIN_EXCESS * G + j]
        # 1. mark to market, and 2. the book as a function of x (all zero when flat)
        held = pk != 0.0
        pc = pk * cs
        D = wallet + unreal
        pnl_f = 0.0 + pc * (p_t - p_p)
        pnl_b = 0.0 + pc * ((p_t - i_t) - (p_p - i_p))
        A = 0.0 + pc * g_t
        B = 0.0 + abs(pk) * cs * g_t
        D_held = D - pc * p_p
        pnl_f = pnl_f if held else 0.0
        pnl_b = pnl_b if held else 0.0
        A = A if held else 0.0
        B = B if held else 0.0
        D = D_held if held else D
        # 2. margin check at the adverse intrabar price
        has_b = B > 0.0
        slope = A - mm * B
        x_adv = x_hi if slope < 0.0 else x_lo
        mb_adv = D + A * x_adv
        mm_adv = mm * B * x_adv
        gap = mm_adv - (mb_adv - collateral - topped)
        need_b = gap if gap > need else need
        need = need_b if has_b else need
        call = has_b and st[R_MARGIN_ON * G + j] != 0.0 and mb_adv < mm_adv
        unreal = unreal + pnl_f
        # 3. funding at the close (the only cost on a quiet bar without an event)
        fund_held = 0.0 - pc * p_t * rate
        fund = fund_held if held and rate != 0.0 else 0.0
        # 6. rebalance trigger: the variant's schedule, or its band in band mode
        held_total = 0.0 + pk
        h_t = st[R_H * G + j]
        h_held = -held_total * cs * p_t / av_t
        drift = abs(h_held - h_t) > st[R_BAND * G + j] * abs(h_t) + _EPS
        next_sched = st[R_NEXT_SCHED * G + j]
        scheduled = next_sched == tf
        mode = st[R_MODE * G + j]
        trigger = (mode == MODE_EVERY and scheduled) or (
            (mode == MODE_BAND or (mode == MODE_BAND_ON_SCHEDULE and scheduled)) and drift
        )
        event = call or trigger
        next_sched = next_sched + st[R_EVERY * G + j] if scheduled else next_sched
        # 7. variation margin, cash, equity, margin figures
        busy = rate != 0.0
        wallet_busy = wallet + (fund + 0.0 + 0.0 + 0.0 + 0.0)  # + fees + slippage + roll + liquidation
        wallet = wallet_busy if busy else wallet
        vm = st[R_VM_DAILY * G + j] == 0.0 or vm_t
        wallet_vm = wallet + unreal
        wallet = wallet_vm if vm else wallet
        unreal = 0.0 if vm else unreal
        spot_cash = st[R_SPOT * G + j] + flow_t
        cash = spot_cash + wallet + reserve
        equity = cash + av_t + unreal
        eq_u = st[R_EQ_U * G + j] + pnl_t
        gross = 0.0 + abs(pk) * cs * p_t
        mb = wallet + unreal
        m_req = mm * gross
        excess = mb - m_req
        has_g = gross > 0.0
        min_excess_g = excess if excess < min_excess else min_excess
        min_excess_new = min_excess_g if has_g else min_excess
        gap = m_req - (mb - collateral - topped)
        need_g = gap if gap > need else need
        need = need_g if has_g else need
        # commit where nothing happened
        keep = not event
        st[R_WALLET * G + j] = wallet if keep else st[R_WALLET * G + j]
        st[R_UNREAL * G + j] = unreal if keep else st[R_UNREAL * G + j]
        st[R_SPOT * G + j] = spot_cash if keep else st[R_SPOT * G + j]
        st[R_EQ_U * G + j] = eq_u if keep else st[R_EQ_U * G + j]
        st[R_NEED * G + j] = need if keep else st[R_NEED * G + j]
        st[R_MIN_EXCESS * G + j] = min_excess_new if keep else min_excess
        st[R_NEXT_SCHED * G + j] = next_sched if keep else st[R_NEXT_SCHED * G + j]
        pnl_f_sum = st[R_PNL_F * G + j] + pnl_f
        st[R_PNL_F * G + j] = pnl_f_sum if keep else st[R_PNL_F * G + j]
        pnl_b_sum = st[R_PNL_B * G + j] + pnl_b
        st[R_PNL_B * G + j] = pnl_b_sum if keep else st[R_PNL_B * G + j]
        eq[row, j] = equity
        ev[j] = event
        n_ev += 1 if event else 0
    if rate != 0.0:
        # a funding bar is busy: the cost sums take this bar's (zero) fees, slippage, roll
        # and liquidation costs and its funding, as in the loop of _run
        for j in range(G):
            if not ev[j]:
                pk = st[R_PK * G + j]
                fund = 0.0 - pk * cs * p_t * rate if pk != 0.0 else 0.0
                st[R_FEES * G + j] += 0.0
                st[R_SLIP * G + j] += 0.0
                st[R_ROLL * G + j] += 0.0
                st[R_FUND * G + j] += fund
                st[R_LIQ * G + j] += 0.0
                st[R_TURNOVER * G + j] += 0.0 + 0.0
    return n_ev


@njit(cache=True)
def _unhedged_stats(alt_value, alt_pnl, summary):
    """Summary fields that do not depend on the variant (the unhedged coin holding).

    Writes ``n_ret``, ``mean_u``, ``m2_u`` (Welford), ``max_dd_u``, ``pnl_altcoin``
    and ``mean_notional``.
    """
    T = alt_value.shape[0]
    n = 0.0
    mean = 0.0
    m2 = 0.0
    wealth = 1.0
    peak = 1.0
    dd = 0.0
    pnl = 0.0
    notional = 0.0
    for t in range(T):
        if t > 0:
            r = alt_pnl[t] / alt_value[t - 1]
            n += 1.0
            d = r - mean
            mean += d / n
            m2 += d * (r - mean)
            wealth *= 1.0 + r
            peak = max(peak, wealth)
            dd = max(dd, 1.0 - wealth / peak)
        pnl += alt_pnl[t]
        notional += alt_value[t] / T
    summary[S_N_RET] = n
    summary[S_MEAN_U] = mean
    summary[S_M2_U] = m2
    summary[S_MAX_DD_U] = dd
    summary[S_PNL_ALTCOIN] = pnl
    summary[S_MEAN_NOTIONAL] = notional


@njit(cache=True, error_model="numpy")
def _return_stats(eq, n_rows, t0, alt_value, rs, G):
    """Bring the hedged-return statistics of ``G`` variants up to date with a tile of bars.

    ``eq[i, j]`` is the hedged equity of variant ``j`` after bar ``t0 + i - 1`` for
    ``i = 1 .. n_rows``, and ``eq[0, j]`` the equity after bar ``t0 - 1``. ``rs``
    holds the running Welford mean (``rs[j]``), M2 (``rs[G + j]``), compounded
    wealth, its peak and the maximum drawdown (``rs[4 * G + j]``) of the returns
    ``(eq[t] - eq[t - 1]) / alt_value[t - 1]`` of bars ``t >= 1``. The variants'
    recursions are independent and run side by side (vector divisions); each still
    sees exactly the operations of a one-variant loop. ``G`` equals ``eq.shape[1]``
    but is passed on its own (taken from the shape, it keeps the loop from
    vectorising). ``error_model="numpy"`` only drops zero-divisor checks: the
    divisors are the bar count, the coin value (checked non-zero by
    :func:`_unhedged_stats`) and the running peak (>= 1).
    """
    for i in range(1, n_rows + 1):
        t = t0 + i - 1
        if t == 0:
            continue
        n = float(t)  # returns so far, bar t's included
        base = alt_value[t - 1]
        for j in range(G):
            r = _bar_return(eq[i, j], eq[i - 1, j], base)
            d = r - rs[j]
            mean = rs[j] + d / n
            rs[j] = mean
            rs[G + j] += d * (r - mean)
            w = rs[2 * G + j] * (1.0 + r)
            rs[2 * G + j] = w
            p = max(rs[3 * G + j], w)
            rs[3 * G + j] = p
            rs[4 * G + j] = max(rs[4 * G + j], 1.0 - w / p)


@njit(cache=True)
def simulate_1d_nb(
    px,
    idx,
    idx_hi,
    idx_lo,
    c0,
    c1,
    w1,
    exp_bar,
    fund_rate,
    volume_usd,
    vm_bar,
    alt_value,
    alt_pnl,
    alt_flow,
    alt_changed,
    hr,
    cs,
    fp,
    ip,
    record,
    out,
    summary,
):
    """Simulate one variant over all bars.

    Parameters
    ----------
    px : float64[T, K]
        Contract prices at bar closes (NaN where not traded).
    idx, idx_hi, idx_lo : float64[T]
        Index close and intrabar high/low (NaN high/low = use the close).
    c0, c1 : int64[T]
        Primary contract and contract being rolled into (-1 = none).
    w1 : float64[T]
        Fraction of the hedge in ``c1``.
    exp_bar : int64[K]
        Settlement bar of each contract.
    fund_rate : float64[T]
        Funding rate settled in each bar (summed over funding times).
    volume_usd : float64[T]
        Futures volume per bar for the impact term (<= 0 or NaN: no impact).
    vm_bar : bool[T]
        Variation-margin settlement bars (used when ``ip[IP_VM_DAILY] == 1``).
    alt_value, alt_pnl, alt_flow : float64[T]
        Coin holding value after the bar, its P&L over the bar, and the cash flow
        of coin trades in the bar (``-sum dU * P``).
    alt_changed : bool[T]
        True where the holding changed size (forces a hedge re-size).
    hr : float64[T, R]
        Target hedge ratios; column ``ip[IP_HR_COL]`` is used.
    cs : float
        Contract size in index units.
    fp, ip : float64[N_FP], int64[N_IP]
        Variant parameters (see ``FP`` / ``IP``).
    record : bool
        Write per-bar rows into ``out`` (float64[N_OUT, T]); otherwise ``out`` is ignored.
    summary : float64[N_SUM]
        Filled with the variant's summary statistics.
    """
    xhi, xlo, expiring, quiet = _market_prep(idx, idx_hi, idx_lo, c0, c1, exp_bar, alt_value, alt_changed)
    fps = np.empty((1, N_FP))
    fps[0] = fp
    ips = np.empty((1, N_IP), dtype=np.int64)
    ips[0] = ip
    var = np.zeros(1, dtype=np.int64)
    st = np.empty(R_POS + px.shape[1])
    eq = np.empty((_TILE + 1, 1))
    rs = np.empty(5)
    # one variant: no quiet-bar pass, every bar runs the steps
    _run(
        px, idx, xhi, xlo, expiring, np.zeros_like(quiet), c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
        alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips, var, record, out, st, eq, rs,
    )
    _write_summary(st, 1, 0, eq[0, 0], summary)
    _unhedged_stats(alt_value, alt_pnl, summary)
    summary[S_MEAN_H] = rs[0]
    summary[S_M2_H] = rs[1]
    summary[S_MAX_DD_H] = rs[4]


@njit(cache=True)
def _simulate_group_nb(
    px, idx, xhi, xlo, expiring, quiet, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
    alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips, members, unhedged, summaries,
):
    """Variants ``members`` (at most ``_GROUP``) of :func:`simulate_many_nb`, side by side; summaries only.

    A group with fewer members is padded with copies of its last member (results discarded).
    """
    G = _GROUP
    ng = members.shape[0]
    var = np.empty(G, dtype=np.int64)
    for j in range(G):
        var[j] = members[min(j, ng - 1)]
    dummy = np.empty((N_OUT, 1))
    st = np.empty((R_POS + px.shape[1]) * G)
    eq = np.empty((_TILE + 1, G))
    rs = np.empty(5 * G)
    _run(
        px, idx, xhi, xlo, expiring, quiet, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
        alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips, var, False, dummy, st, eq, rs,
    )
    for j in range(ng):
        s = summaries[var[j]]
        _write_summary(st, G, j, eq[0, j], s)
        s[S_N_RET] = unhedged[S_N_RET]
        s[S_MEAN_U] = unhedged[S_MEAN_U]
        s[S_M2_U] = unhedged[S_M2_U]
        s[S_MAX_DD_U] = unhedged[S_MAX_DD_U]
        s[S_PNL_ALTCOIN] = unhedged[S_PNL_ALTCOIN]
        s[S_MEAN_NOTIONAL] = unhedged[S_MEAN_NOTIONAL]
        s[S_MEAN_H] = rs[j]
        s[S_M2_H] = rs[G + j]
        s[S_MAX_DD_H] = rs[4 * G + j]


@njit(cache=True, parallel=True)
def simulate_many_nb(
    px, idx, idx_hi, idx_lo, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
    alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips,
):
    """Simulate many variants (rows of ``fps`` / ``ips``) over the same market; summaries only.

    Memory is O(variants x N_SUM) plus O(contracts + ``_TILE``) x ``_GROUP`` per
    running group: no per-bar ledger is kept. Variant-independent work (adverse index
    levels, quiet bars, the unhedged statistics) is done once. Variants are grouped
    with similar ones (same rebalance mode and margin policy, nearby periods and
    bands: they tend to need the full steps on the same bars), and the groups are
    dealt to the parallel loop in a scattered order so that each thread gets a mix of
    cheap and expensive groups. Results do not depend on the grouping or the number
    of threads.
    """
    V = fps.shape[0]
    summaries = np.empty((V, N_SUM))
    xhi, xlo, expiring, quiet = _market_prep(idx, idx_hi, idx_lo, c0, c1, exp_bar, alt_value, alt_changed)
    unhedged = np.zeros(N_SUM)
    _unhedged_stats(alt_value, alt_pnl, unhedged)
    key = np.empty(V)
    for v in range(V):
        key[v] = (
            (ips[v, IP_MODE] * 2.0 + ips[v, IP_POLICY]) * 2.0 + ips[v, IP_MARGIN_ON]
        ) * 1e8 + min(ips[v, IP_EVERY], 10**7) + min(fps[v, FP_BAND], 0.999)
    order = np.argsort(key, kind="mergesort")
    n_groups = (V + _GROUP - 1) // _GROUP
    # sorted group g runs as iteration (g * q) % n_groups of the parallel loop, q coprime
    # with n_groups near n_groups / golden ratio: neighbours in cost land far apart, so
    # every contiguous share of the iterations (one thread's) gets a spread of costs
    q = 1
    for s in range(max(1, int(n_groups * 0.618)), n_groups):
        a, b = s, n_groups
        while b:
            a, b = b, a % b
        if a == 1:
            q = s
            break
    group_at = np.empty(n_groups, dtype=np.int64)
    for g in range(n_groups):
        group_at[(g * q) % n_groups] = g
    for i in prange(n_groups):
        g = group_at[i]
        _simulate_group_nb(
            px, idx, xhi, xlo, expiring, quiet, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
            alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips, order[g * _GROUP : min(V, (g + 1) * _GROUP)],
            unhedged, summaries,
        )
    return summaries
