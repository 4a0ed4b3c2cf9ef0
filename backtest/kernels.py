"""The bar loop: a pure array kernel (numba), one variant or many.

Inputs are plain NumPy arrays prepared by :mod:`backtest.engine`; nothing here
knows about pandas, files or configuration objects. Contract ``k``'s price is read
from column ``k % S`` of ``px`` (``S`` columns, see :func:`simulate_1d_nb`) and its
position is kept in row ``k % S``: below, ``px[t, k]`` stands for ``px[t, k % S]``.
The slow, obvious twin of this kernel is :mod:`backtest.reference`; the tests hold
the two equal.

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
   to what the margin balance supports at initial margin; under ``top_up`` the
   reserve first tops the balance up to the new position's initial margin plus
   the trade's own fees and slippage. Fees and slippage are charged.
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

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from numba import njit

__all__ = [
    "N_FP",
    "N_IP",
    "OUT",
    "SUM",
    "MODE_EVERY",
    "MODE_BAND",
    "MODE_BAND_ON_SCHEDULE",
    "POLICY_TOP_UP",
    "POLICY_CUT",
    "simulate_1d_nb",
    "simulate_many_nb",
    "simulate_paths_nb",
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

# -- integer parameters: ip[...] ---------------------------------------------------------
IP_EVERY = 0  # rebalance period (bars)
IP_MODE = 1  # MODE_*
IP_WHOLE = 2  # 1 = whole contracts
IP_HR_COL = 3  # column of the hedge-ratio matrix
IP_POLICY = 4  # POLICY_*
IP_MARGIN_ON = 5  # 1 = margin checks on
IP_VM_DAILY = 6  # 1 = variation margin only on vm_bar bars
N_IP = 7

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
# One definition of each step. Steps 1-7 are small functions (``_mark_contract``,
# ``_adverse``, ``_margin_call``, ``_funding_contract``, ``_expire``, ``_roll``,
# ``_schedule`` / ``_drift`` / ``_trigger`` / ``_margin_limit`` / ``_trade_to``, ``_pay`` /
# ``_variation_margin`` / ``_end_margin`` / ``_close_bar``) over a variant's named state:
# its :class:`Params` and its :class:`Account`. The steps that read or write the state
# arrays are inlined by numba (``inline="always"``); the pure scalar ones are ordinary
# compiled functions that LLVM inlines into the final module. Inlining those at numba's
# level too re-ran its front end at every call site and made the one compile of the bar
# loop about 1.6x longer, for the same machine code speed.
# They are composed twice:
#
# * :func:`_bar` runs steps 1-7 for one variant on one bar (every bar of
#   :func:`simulate_1d_nb`; the bars of :func:`simulate_many_nb` where something happens);
# * :func:`_quiet_pass` runs them for a group of ``_GROUP`` variants side by side
#   (vectorised, branch-free) on a *quiet* bar (same single contract as the last bar,
#   nothing settling or rolling, no change of the holding; see :func:`_market_prep`),
#   where steps 4 and 5 do nothing and step 6 can only be triggered by the variant's
#   schedule or band. It commits the bar where nothing happens and flags the variants
#   where something does (a margin call, a rebalance);
# * :func:`_quiet_rebalance` then replays the flagged variants of the group side by side
#   too (vectorised, branch-free: step 6 for one contract is :func:`_quiet_trade`, with
#   :func:`_margin_limit` and :func:`_trade_cost`) and commits those without a margin
#   call; only margin calls and the bars that are not quiet run :func:`_bar`, one
#   variant at a time. Steps 1-3 and 7 of a quiet bar are :func:`_quiet_mark` and
#   :func:`_quiet_close`, shared by both passes.
#
# Results are bit-for-bit those of the one-variant loop (the tests hold
# ``simulate_many_nb`` equal to ``simulate_1d_nb`` and both equal to
# :mod:`backtest.reference`). The state of the (up to ``_GROUP``) variants of a group is
# kept structure-of-arrays in one flat array ``st``: row ``r`` of variant ``j`` at
# ``st[r * _GROUP + j]`` (the stride is ``_GROUP`` even for one variant, so it is a
# constant of the one compiled loop), the rows being the fields of :class:`Params`, then of
# :class:`Account`, two scratch rows of the quiet pass, then one row per price column
# (the position). Only :func:`_init_state`, :func:`_load_params`,
# :func:`_load_account`, :func:`_store_account` and :func:`_store_quiet` know the rows. Hedged-return
# statistics are accumulated from a small tile of buffered equities
# (:func:`_return_stats`), variants side by side, so no per-bar series is kept.

#: variants run side by side in :func:`simulate_many_nb` (one parallel task each group)
_GROUP = 32
#: bars of hedged equity buffered before the return statistics are brought up to date
_TILE = 256


class Params(NamedTuple):
    """A variant's parameters as the steps read them (see :class:`backtest.market.Variant`)."""

    fee: float  # fee rate (fraction of traded notional)
    half_spread: float  # fraction
    impact: float  # square-root impact coefficient
    band: float  # relative drift band
    min_trade: float  # contracts
    im: float  # initial margin rate
    mm: float  # maintenance margin rate
    collateral: float  # USD
    liq_fee: float  # fraction of notional
    settle_fee: float  # fraction of notional
    every: float  # rebalance period (bars)
    mode: float  # MODE_*
    policy: float  # POLICY_*
    whole: bool  # whole contracts
    margin_on: bool  # margin checks on
    vm_daily: bool  # variation margin only on vm_bar bars


class Account(NamedTuple):
    """A variant's account and running totals after a bar (USD unless stated)."""

    wallet: float  # margin wallet: collateral, futures cash flows, costs, top-ups
    reserve: float  # cash held back for top-ups
    unreal: float  # futures P&L not yet moved into the wallet (daily variation margin)
    spot: float  # cash flow of the coin trades so far
    eq_u: float  # unhedged equity
    topped: float  # reserve moved into the wallet so far
    need: float  # margin_need so far
    min_excess: float  # smallest margin excess at a close so far
    next_sched: float  # next scheduled rebalance bar
    eq_prev: float  # hedged equity after the last bar (kept for the ledger)
    pnl_f: float  # running sums of the per-bar figures ...
    pnl_b: float
    fees: float
    slip: float
    roll: float
    fund: float
    liq: float
    turnover: float  # contracts
    trades: float  # ... and counts
    rolls: float
    calls: float
    liqs: float
    capped: float


class Mkt(NamedTuple):
    """The market arrays of a run (see :func:`simulate_1d_nb`) plus :func:`_market_prep`'s."""

    px: np.ndarray
    idx: np.ndarray
    xhi: np.ndarray
    xlo: np.ndarray
    expiring: np.ndarray
    quiet: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    w1: np.ndarray
    exp_bar: np.ndarray
    fund_rate: np.ndarray
    volume_usd: np.ndarray
    vm_bar: np.ndarray
    alt_value: np.ndarray
    alt_pnl: np.ndarray
    alt_flow: np.ndarray
    alt_changed: np.ndarray
    hr: np.ndarray
    s0: np.ndarray  # price column of c0[t] (c0[t] % S)
    s1: np.ndarray  # price column of c1[t] (-1 for none)


_N_PARAM = len(Params._fields)
_N_ACCOUNT = len(Account._fields)
_ROW_A = _N_PARAM  # first row of the account
_ROW_PK = _N_PARAM + _N_ACCOUNT  # scratch of _quiet_pass: position in the bar's contract
_ROW_H = _ROW_PK + 1  # scratch of _quiet_pass: target hedge ratio of the bar
_ROW_KEEP = _ROW_H + 1  # scratch of _quiet_rebalance: 1.0 where the variant's bar is committed
_ROW_NEW = _ROW_KEEP + 1  # scratch of _quiet_rebalance: the account after the bar (``_N_ACCOUNT`` rows) ...
_ROW_NEW_PK = _ROW_NEW + _N_ACCOUNT  # ... the position after it ...
_ROW_NEW_EQ = _ROW_NEW_PK + 1  # ... and the hedged equity
_ROW_POS = _ROW_NEW_EQ + 1  # first of K rows: position per price column (contract k in row k % K)


# -- state --------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _init_state(st, G, j, K, fp, ip, alt_value0):
    """Starting state of variant ``j``: its parameters, a fresh account, no position."""
    for r in range(_ROW_POS + K):
        st[r * G + j] = 0.0
    p = (
        fp[FP_FEE], fp[FP_HALF_SPREAD], fp[FP_IMPACT], fp[FP_BAND], fp[FP_MIN_TRADE], fp[FP_IM], fp[FP_MM],
        fp[FP_COLLATERAL], fp[FP_LIQ_FEE], fp[FP_SETTLE_FEE], float(ip[IP_EVERY]), float(ip[IP_MODE]),
        float(ip[IP_POLICY]), 1.0 if ip[IP_WHOLE] == 1 else 0.0, 1.0 if ip[IP_MARGIN_ON] == 1 else 0.0,
        1.0 if ip[IP_VM_DAILY] == 1 else 0.0,
    )
    for r in range(_N_PARAM):
        st[r * G + j] = p[r]
    a = Account(
        fp[FP_COLLATERAL], fp[FP_RESERVE], 0.0, 0.0, alt_value0 + fp[FP_COLLATERAL] + fp[FP_RESERVE], 0.0, 0.0,
        np.inf, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    )
    _store_account(st, G, j, a)


@njit(cache=True, inline="always")
def _load_params(st, G, j):
    """:class:`Params` of variant ``j``."""
    return Params(
        st[j], st[G + j], st[2 * G + j], st[3 * G + j], st[4 * G + j], st[5 * G + j], st[6 * G + j],
        st[7 * G + j], st[8 * G + j], st[9 * G + j], st[10 * G + j], st[11 * G + j], st[12 * G + j],
        st[13 * G + j] != 0.0, st[14 * G + j] != 0.0, st[15 * G + j] != 0.0,
    )


@njit(cache=True, inline="always")
def _params_of(fps, ips, v):
    """:class:`Params` of variant ``v`` read from the packed parameters (one contiguous row each)."""
    return Params(
        fps[v, FP_FEE], fps[v, FP_HALF_SPREAD], fps[v, FP_IMPACT], fps[v, FP_BAND], fps[v, FP_MIN_TRADE],
        fps[v, FP_IM], fps[v, FP_MM], fps[v, FP_COLLATERAL], fps[v, FP_LIQ_FEE], fps[v, FP_SETTLE_FEE],
        float(ips[v, IP_EVERY]), float(ips[v, IP_MODE]), float(ips[v, IP_POLICY]), ips[v, IP_WHOLE] == 1,
        ips[v, IP_MARGIN_ON] == 1, ips[v, IP_VM_DAILY] == 1,
    )


@njit(cache=True, inline="always")
def _load_account(st, G, j):
    """:class:`Account` of variant ``j``."""
    b = _ROW_A * G + j
    return Account(
        st[b], st[b + G], st[b + 2 * G], st[b + 3 * G], st[b + 4 * G], st[b + 5 * G], st[b + 6 * G],
        st[b + 7 * G], st[b + 8 * G], st[b + 9 * G], st[b + 10 * G], st[b + 11 * G], st[b + 12 * G],
        st[b + 13 * G], st[b + 14 * G], st[b + 15 * G], st[b + 16 * G], st[b + 17 * G], st[b + 18 * G],
        st[b + 19 * G], st[b + 20 * G], st[b + 21 * G], st[b + 22 * G],
    )


@njit(cache=True, inline="always")
def _store_account(st, G, j, a):
    """Write ``a`` as the account of variant ``j``.

    No branches: each ``x if cond else y`` adds IR blocks, and numba inlines this body into
    :func:`_bar` and :func:`_init_state` by copying the IR once per block, so fewer blocks
    make the first compile shorter (README, Performance).
    """
    _store_at(st, G, _ROW_A * G + j, a)


@njit(cache=True, inline="always")
def _store_at(st, G, b, a):
    """Write the fields of account ``a`` to ``st[b]``, ``st[b + G]``, ... (one row each)."""
    st[b] = a.wallet
    st[b + G] = a.reserve
    st[b + 2 * G] = a.unreal
    st[b + 3 * G] = a.spot
    st[b + 4 * G] = a.eq_u
    st[b + 5 * G] = a.topped
    st[b + 6 * G] = a.need
    st[b + 7 * G] = a.min_excess
    st[b + 8 * G] = a.next_sched
    st[b + 9 * G] = a.eq_prev
    st[b + 10 * G] = a.pnl_f
    st[b + 11 * G] = a.pnl_b
    st[b + 12 * G] = a.fees
    st[b + 13 * G] = a.slip
    st[b + 14 * G] = a.roll
    st[b + 15 * G] = a.fund
    st[b + 16 * G] = a.liq
    st[b + 17 * G] = a.turnover
    st[b + 18 * G] = a.trades
    st[b + 19 * G] = a.rolls
    st[b + 20 * G] = a.calls
    st[b + 21 * G] = a.liqs
    st[b + 22 * G] = a.capped


@njit(cache=True, inline="always")
def _store_quiet(st, G, j, a, keep):
    """:func:`_store_account` for :func:`_quiet_pass`: only the fields a quiet bar can change.

    On a quiet bar no cost is paid and the reserve, top-ups, counts and ``eq_prev`` are
    carried over unchanged (:func:`_close_bar` adds ``-0.0`` to them or passes them
    through, which leaves every value's bits as they are), so their rows are not
    rewritten.
    """
    b = _ROW_A * G + j
    st[b] = a.wallet if keep else st[b]
    st[b + 2 * G] = a.unreal if keep else st[b + 2 * G]
    st[b + 3 * G] = a.spot if keep else st[b + 3 * G]
    st[b + 4 * G] = a.eq_u if keep else st[b + 4 * G]
    st[b + 6 * G] = a.need if keep else st[b + 6 * G]
    st[b + 7 * G] = a.min_excess if keep else st[b + 7 * G]
    st[b + 8 * G] = a.next_sched if keep else st[b + 8 * G]
    st[b + 10 * G] = a.pnl_f if keep else st[b + 10 * G]
    st[b + 11 * G] = a.pnl_b if keep else st[b + 11 * G]
    st[b + 15 * G] = a.fund if keep else st[b + 15 * G]


# -- small helpers ----------------------------------------------------------------------------


@njit(cache=True)
def _round_half_away(x):
    return np.floor(x + 0.5) if x >= 0 else -np.floor(-x + 0.5)


@njit(cache=True)
def _split_part(total, w, whole):
    """Contracts of ``total`` that sit in the contract being rolled into (fraction ``w``)."""
    part = total * w
    return _round_half_away(part) if whole else part


@njit(cache=True, inline="always")
def _set_split(tgt, total, k0, k1, w, whole):
    """Targets of a total position on this bar's split: ``k1`` gets ``w`` of it, ``k0`` the rest."""
    if k1 >= 0:
        part = _split_part(total, w, whole)
        tgt[k1] = part
        tgt[k0] = total - part
    else:
        tgt[k0] = total


@njit(cache=True)
def _trade_cost(q, cs, p, fee, half_spread, impact, volume):
    """Fee and slippage (both >= 0, USD) of trading ``q`` contracts at price ``p``."""
    notional = abs(q) * cs * p
    slip_rate = half_spread
    if impact > 0.0 and volume > 0.0 and np.isfinite(volume):
        slip_rate += impact * np.sqrt(notional / volume)
    return notional * fee, notional * slip_rate


@njit(cache=True)
def _bar_return(value, value_prev, base):
    """Return of a bar on the coin notional at its start (hedged and unhedged alike)."""
    return (value - value_prev) / base


@njit(cache=True)
def _need(need, m_req, mb, collateral, topped):
    """``margin_need = max(need, MM - (MB - collateral - top-ups))``: the collateral that would
    have kept maintenance ``m_req`` covered at balance ``mb`` along this path with no calls."""
    return max(need, m_req - (mb - collateral - topped))


@njit(cache=True)
def _top_up(reserve, wallet, topped, wanted):
    """Move ``min(reserve, wanted)`` from the reserve into the wallet; returns it and the new state."""
    amount = min(reserve, wanted)
    return amount, reserve - amount, wallet + amount, topped + amount


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


# -- steps 1-3: mark, margin check, funding -----------------------------------------------------


@njit(cache=True)
def _mark_contract(pk, cs, p_t, p_p, i_t, i_p, pnl_f, pnl_b, A, B, D):
    """Step 1 for one held contract, and its part of the book ``MB(x) = D + A x``, ``MM(x) = m B x``.

    ``pnl_f += pk cs (p_t - p_p)``; ``pnl_b += pk cs ((p_t - i_t) - (p_p - i_p))``;
    ``A += pk cs g``, ``B += |pk| cs g`` with ``g = p_t / i_t``; ``D -= pk cs p_p``.
    """
    pnl_f += pk * cs * (p_t - p_p)
    pnl_b += pk * cs * ((p_t - i_t) - (p_p - i_p))
    gk = p_t / i_t
    A += pk * cs * gk
    B += abs(pk) * cs * gk
    D -= pk * cs * p_p
    return pnl_f, pnl_b, A, B, D


@njit(cache=True)
def _adverse(A, B, D, mm, x_hi, x_lo):
    """Step 2's adverse level: the high where ``MB - MM`` falls with ``x`` (slope ``A - m B < 0``),
    else the low; returns ``(slope, x_adv, MB(x_adv), MM(x_adv))``."""
    slope = A - mm * B
    x_adv = x_hi if slope < 0.0 else x_lo
    return slope, x_adv, D + A * x_adv, mm * B * x_adv


@njit(cache=True)
def _liquidation_level(D, A, B, mm, slope, i_p, x_adv):
    """``x* = D / (m B - A)`` (where ``MB = MM``), kept between the last close and ``x_adv``."""
    x_star = D / (mm * B - A)
    if slope < 0.0:
        return min(max(x_star, i_p if i_p < x_adv else x_adv), x_adv)
    return max(min(x_star, i_p if i_p > x_adv else x_adv), x_adv)


@njit(cache=True, inline="always")
def _cut(st, pb, G, cand, nc, p_close, i_t, x_adv, scale, p, cs, vol, pnl_f, fees, slip, trade_q):
    """Scale every position by ``scale`` at ``p_close[k] / I * x_adv``, charging fees and slippage."""
    for jj in range(nc):
        k = cand[jj]
        pk = st[pb + k * G]
        if pk != 0.0:
            new = pk * scale
            if p.whole:
                new = np.trunc(new)
            q = new - pk
            price = p_close[k] / i_t * x_adv
            pnl_f += q * cs * (p_close[k] - price)
            f_, s_ = _trade_cost(q, cs, price, p.fee, p.half_spread, p.impact, vol)
            fees -= f_
            slip -= s_
            trade_q += abs(q)
            st[pb + k * G] = new
    return pnl_f, fees, slip, trade_q


@njit(cache=True, inline="always")
def _liquidate(st, pb, G, cand, nc, p_close, i_t, x_star, cs, liq_fee, pnl_f, liq):
    """Close every position at ``p_close[k] / I * x*`` with the liquidation fee on the notional."""
    for jj in range(nc):
        k = cand[jj]
        pk = st[pb + k * G]
        if pk != 0.0:
            price = p_close[k] / i_t * x_star
            q = -pk
            pnl_f += q * cs * (p_close[k] - price)
            liq -= abs(q) * cs * price * liq_fee
            st[pb + k * G] = 0.0
    return pnl_f, liq


@njit(cache=True, inline="always")
def _margin_call(st, pb, G, cand, nc, p_close, i_t, i_p, vol, cs, p, A, B, D, slope, x_adv, mb_adv, mm_adv,
                 wallet, reserve, topped, pnl_f, fees, slip, liq, trade_q):
    """Step 2 after a breach ``MB(x_adv) < MM(x_adv)``.

    ``top_up``: move ``min(reserve, IM(x_adv) - MB(x_adv))`` into the wallet; liquidate
    if maintenance is still not covered. ``cut_hedge``: scale the book by
    ``MB / IM`` (at ``x_adv``; closed below ``_DUST``), or liquidate if ``MB <= 0``.
    Returns the new ``wallet, reserve, topped, pnl_f, fees, slip, liq, trade_q``,
    whether the hedge was cut and whether it was liquidated.
    """
    liquidate = False
    cut = False
    if p.policy == POLICY_TOP_UP:
        amount, reserve, wallet, topped = _top_up(reserve, wallet, topped, p.im * B * x_adv - mb_adv)
        D += amount
        mb_adv += amount
        liquidate = mb_adv < mm_adv
    elif mb_adv <= 0.0:
        liquidate = True
    else:
        scale = mb_adv / (p.im * B * x_adv)
        if scale < _DUST:
            scale = 0.0
        pnl_f, fees, slip, trade_q = _cut(
            st, pb, G, cand, nc, p_close, i_t, x_adv, scale, p, cs, vol, pnl_f, fees, slip, trade_q
        )
        cut = True
    if liquidate:
        x_star = _liquidation_level(D, A, B, p.mm, slope, i_p, x_adv)
        pnl_f, liq = _liquidate(st, pb, G, cand, nc, p_close, i_t, x_star, cs, p.liq_fee, pnl_f, liq)
    return wallet, reserve, topped, pnl_f, fees, slip, liq, trade_q, cut, liquidate


@njit(cache=True)
def _funding_contract(fund, pk, cs, p, rate):
    """Step 3 for one contract: ``funding -= pk cs p rate``."""
    return fund - pk * cs * p * rate


# -- steps 4-5: expiry and roll --------------------------------------------------------------


@njit(cache=True, inline="always")
def _expire(st, pb, G, cand, nc, exp_bar, p_close, t, cs, settle_fee):
    """Step 4: close positions in contracts settling at ``t`` at the close, with the settlement fee
    (``cand[jj]`` is a contract's price column and position row, ``cand[4 + jj]`` its id).

    Returns the (negative) fees, the contracts carried into the roll and the number settled.
    """
    roll = 0.0
    carried = 0.0
    n = 0.0
    for jj in range(nc):
        k = cand[jj]
        pk = st[pb + k * G]
        if exp_bar[cand[4 + jj]] == t and pk != 0.0:
            roll -= abs(pk) * cs * p_close[k] * settle_fee
            carried += pk
            st[pb + k * G] = 0.0
            n += 1.0
    return roll, carried, n


@njit(cache=True, inline="always")
def _roll(st, pb, G, cand, nc, tgt, k0, k1, w, carried, p_close, cs, p, vol, roll, rolls):
    """Step 5: move the held total (plus what settled) onto this bar's split, keeping the total.

    Each leg pays fee and slippage into ``roll``. Returns ``roll``, the contracts
    moved, ``rolls`` (+1 per contract left without a settlement) and whether anything moved.
    """
    total = carried
    for jj in range(nc):
        total += st[pb + cand[jj] * G]
    for jj in range(nc):
        tgt[cand[jj]] = 0.0
    _set_split(tgt, total, k0, k1, w, p.whole)
    roll_q = 0.0
    moved = False
    for jj in range(nc):
        k = cand[jj]
        pk = st[pb + k * G]
        q = tgt[k] - pk
        if abs(q) > _EPS:
            f_, s_ = _trade_cost(q, cs, p_close[k], p.fee, p.half_spread, p.impact, vol)
            roll -= f_ + s_
            roll_q += abs(q)
            if pk != 0.0 and tgt[k] == 0.0 and carried == 0.0:
                rolls += 1.0
            st[pb + k * G] = tgt[k]
            moved = True
    return roll, roll_q, rolls, moved


# -- step 6: rebalance --------------------------------------------------------------------------


@njit(cache=True)
def _schedule(t, next_sched, every):
    """Whether bar ``t`` (float) is scheduled (``t % every == 0`` without a division) and the next one."""
    scheduled = next_sched == t
    return scheduled, next_sched + every if scheduled else next_sched


@njit(cache=True)
def _drift(held, cs, f0, av, h_t, band):
    """The held hedge ratio ``-N cs F / V`` is more than ``band`` (relative) away from ``h_t``."""
    h_held = -held * cs * f0 / av
    return abs(h_held - h_t) > band * abs(h_t) + _EPS


@njit(cache=True)
def _trigger(forced, mode, scheduled, drift):
    """The rebalance policy: forced, or by schedule (``every``), drift (``band``) or both."""
    return forced or (mode == MODE_EVERY and scheduled) or (
        (mode == MODE_BAND or (mode == MODE_BAND_ON_SCHEDULE and scheduled)) and drift
    )


@njit(cache=True)
def _target_contracts(h_t, av, cs, f0, whole):
    """``N* = -h V / (cs F)``, rounded half away from zero for whole contracts."""
    n_star = -h_t * av / (cs * f0)
    return _round_half_away(n_star) if whole else n_star


@njit(cache=True, inline="always")
def _resize_cost(st, pb, G, cand, nc, tgt, k0, k1, w, n_star, p_close, cs, p, vol):
    """Fees plus slippage (>= 0, USD) that :func:`_trade_to` would charge for trading to ``n_star``."""
    _set_split(tgt, n_star, k0, k1, w, p.whole)
    cost = 0.0
    for jj in range(nc):
        k = cand[jj]
        if k != k0 and k != k1:
            tgt[k] = 0.0
        q = tgt[k] - st[pb + k * G]
        if abs(q) > _EPS:
            f_, s_ = _trade_cost(q, cs, p_close[k], p.fee, p.half_spread, p.impact, vol)
            cost += f_ + s_
    return cost


@njit(cache=True)
def _margin_limit(n_star, mb, wallet, reserve, topped, cs, f0, vol, p, cost):
    """Limit ``N*`` to what the balance ``mb`` covers at initial margin, after a top-up (``top_up``).

    Under ``top_up`` the reserve first covers the shortfall ``IM(N*) + cost - mb`` (the new
    position's initial margin plus the trade's own fees and slippage ``cost``); when the
    reserve covers all of it the position is covered by construction (no comparison of
    the rounded sum ``mb + amount``, which can land one ulp below the target). Otherwise
    ``N*`` is capped to the largest position whose initial margin plus trading costs the
    balance covers. Returns ``n_star, wallet, reserve, topped`` and 1.0 if capped.
    """
    need_im = p.im * abs(n_star) * cs * f0
    covered = False
    if p.policy == POLICY_TOP_UP and reserve > 0.0:
        shortfall = need_im + cost - mb
        if shortfall > 0.0:
            amount, reserve, wallet, topped = _top_up(reserve, wallet, topped, shortfall)
            mb += amount
            covered = amount == shortfall
    capped = 0.0
    if need_im > mb and not covered:
        # the venue would reject an order beyond the available margin: the largest position
        # whose initial margin plus trading costs the balance covers (impact bounded above by
        # that of a trade of the whole balance / im)
        cost_rate = p.fee + p.half_spread
        if p.impact > 0.0 and vol > 0.0 and np.isfinite(vol):
            cost_rate += p.impact * np.sqrt(max(mb, 0.0) / p.im / vol)
        cap = max(mb, 0.0) / (p.im * cs * f0 * (1.0 + cost_rate / p.im))
        if p.whole:
            cap = np.floor(cap)
        if cap < _DUST * abs(n_star):
            cap = 0.0
        if abs(n_star) > cap:
            n_star = cap if n_star > 0 else -cap
            capped = 1.0
    return n_star, wallet, reserve, topped, capped


@njit(cache=True, inline="always")
def _trade_to(st, pb, G, cand, nc, tgt, k0, k1, w, n_star, p_close, cs, p, vol, fees, slip, trade_q):
    """Trade every contract to ``n_star``'s split at the close, charging fees and slippage.

    Returns ``fees, slip, trade_q`` and whether any contract traded.
    """
    _set_split(tgt, n_star, k0, k1, w, p.whole)
    traded = False
    for jj in range(nc):
        k = cand[jj]
        if k != k0 and k != k1:
            tgt[k] = 0.0
        pk = st[pb + k * G]
        q = tgt[k] - pk
        if abs(q) > _EPS:
            f_, s_ = _trade_cost(q, cs, p_close[k], p.fee, p.half_spread, p.impact, vol)
            fees -= f_
            slip -= s_
            trade_q += abs(q)
            st[pb + k * G] = tgt[k]
            traded = True
    return fees, slip, trade_q, traded


# -- step 7: cash, variation margin, end-of-bar figures ----------------------------------------


@njit(cache=True)
def _pay(wallet, busy, fund, fees, slip, roll, liq):
    """The bar's funding and costs go through the wallet (skipped when all are +0.0)."""
    return wallet + (fund + fees + slip + roll + liq) if busy else wallet


@njit(cache=True)
def _variation_margin(wallet, unreal, settle):
    """On a settling bar the unrealised futures P&L moves into the wallet."""
    return (wallet + unreal, 0.0) if settle else (wallet, unreal)


@njit(cache=True)
def _gross_contract(gross, pk, cs, p):
    """Gross notional ``+= |pk| cs p``."""
    return gross + abs(pk) * cs * p


@njit(cache=True)
def _end_margin(wallet, unreal, gross, mm, collateral, topped, need, min_excess):
    """Margin balance, maintenance, excess at the close; the running minimum excess and need."""
    mb = wallet + unreal
    m_req = mm * gross
    excess = mb - m_req
    has_g = gross > 0.0
    me = min(min_excess, excess)
    nd = _need(need, m_req, mb, collateral, topped)
    return mb, m_req, excess, me if has_g else min_excess, nd if has_g else need


@njit(cache=True)
def _close_bar(a, wallet, reserve, unreal, spot, eq_u, topped, need, min_excess, next_sched, eq_prev, busy,
               pnl_f, pnl_b, fees, slip, roll, fund, liq, turnover, trades, rolls, calls, liqs, capped):
    """The account after a bar: state replaced, the bar's figures added to the running sums
    (the costs only on a busy bar: otherwise they are all +0.0)."""
    return Account(
        wallet, reserve, unreal, spot, eq_u, topped, need, min_excess, next_sched, eq_prev,
        a.pnl_f + pnl_f, a.pnl_b + pnl_b,
        a.fees + fees if busy else a.fees,
        a.slip + slip if busy else a.slip,
        a.roll + roll if busy else a.roll,
        a.fund + fund if busy else a.fund,
        a.liq + liq if busy else a.liq,
        a.turnover + turnover if busy else a.turnover,
        a.trades + trades, a.rolls + rolls, a.calls + calls, a.liqs + liqs, a.capped + capped,
    )


# -- compositions ---------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _mark_and_check(st, pb, G, cand, nc, m, t, cs, p, a):
    """Steps 1-3 of :func:`_bar` (``t > 0``); returns the bar's state and figures so far."""
    wallet, reserve, unreal, topped, need = a.wallet, a.reserve, a.unreal, a.topped, a.need
    pnl_f = pnl_b = fees = slip = liq = fund = trade_q = 0.0
    call = cut = liqd = busy = False
    i_t = m.idx[t]
    i_p = m.idx[t - 1]
    p_close = m.px[t]
    A = 0.0
    B = 0.0
    D = wallet + unreal
    for jj in range(nc):
        k = cand[jj]
        pk = st[pb + k * G]
        if pk != 0.0:
            pnl_f, pnl_b, A, B, D = _mark_contract(pk, cs, p_close[k], m.px[t - 1, k], i_t, i_p, pnl_f, pnl_b, A, B, D)
    if B > 0.0:
        slope, x_adv, mb_adv, mm_adv = _adverse(A, B, D, p.mm, m.xhi[t], m.xlo[t])
        need = _need(need, mm_adv, mb_adv, p.collateral, topped)
        if p.margin_on and mb_adv < mm_adv:
            call = True
            busy = True
            wallet, reserve, topped, pnl_f, fees, slip, liq, trade_q, cut, liqd = _margin_call(
                st, pb, G, cand, nc, p_close, i_t, i_p, m.volume_usd[t], cs, p, A, B, D, slope, x_adv, mb_adv,
                mm_adv, wallet, reserve, topped, pnl_f, fees, slip, liq, trade_q,
            )
    unreal += pnl_f
    rate = m.fund_rate[t]
    if rate != 0.0:
        busy = True
        for jj in range(nc):
            k = cand[jj]
            pk = st[pb + k * G]
            if pk != 0.0:
                fund = _funding_contract(fund, pk, cs, p_close[k], rate)
    return wallet, reserve, unreal, topped, need, pnl_f, pnl_b, fees, slip, liq, fund, trade_q, call, cut, liqd, busy


@njit(cache=True, _nrt=False)
def _bar(t, j, G, m, cs, p, st, cand, nc, tgt, h_t, record, out):
    """Steps 1-7 for variant ``j`` (parameters ``p``) on bar ``t`` (contracts ``cand[:nc]``);
    returns the hedged equity."""
    a = _load_account(st, G, j)
    pb = _ROW_POS * G + j  # position in column k: st[pb + k * G]
    k0 = m.s0[t]  # columns of this bar's split
    k1 = m.s1[t]
    p_close = m.px[t]
    vol = m.volume_usd[t]
    av = m.alt_value[t]
    wallet, reserve, unreal, topped, need = a.wallet, a.reserve, a.unreal, a.topped, a.need
    pnl_f = pnl_b = fees = slip = liq = fund = trade_q = roll = roll_q = rolls = trades = capped = 0.0
    call = cut = liqd = busy = rolled = rebal = False
    if t > 0:  # 1.-3. mark to market, margin check at the adverse price, funding
        (wallet, reserve, unreal, topped, need, pnl_f, pnl_b, fees, slip, liq, fund, trade_q, call, cut, liqd,
         busy) = _mark_and_check(st, pb, G, cand, nc, m, t, cs, p, a)
        rebal = cut
        trades = 1.0 if cut else 0.0
    carried = 0.0
    if m.expiring[t]:  # 4. expiry settlement at the index
        roll, carried, rolls = _expire(st, pb, G, cand, nc, m.exp_bar, p_close, t, cs, p.settle_fee)
        rolled = rolls > 0.0
        busy = busy or rolled
    # 5. roll (one contract, no split and nothing settled: the split is the holding itself)
    if nc > 1 or k1 >= 0 or carried != 0.0:
        roll, roll_q, rolls, moved = _roll(st, pb, G, cand, nc, tgt, k0, k1, m.w1[t], carried, p_close, cs, p, vol,
                                           roll, rolls)
        rolled = rolled or moved
        busy = busy or moved
    # 6. rebalance to the rule's target
    f0 = p_close[k0]
    held = 0.0
    for jj in range(nc):
        held += st[pb + cand[jj] * G]
    scheduled, next_sched = _schedule(float(t), a.next_sched, p.every)
    forced = t == 0 or m.alt_changed[t]
    drift = False
    if not forced and p.mode != MODE_EVERY and (p.mode == MODE_BAND or scheduled):
        drift = _drift(held, cs, f0, av, h_t, p.band)
    if _trigger(forced, p.mode, scheduled, drift):
        n_star = _target_contracts(h_t, av, cs, f0, p.whole)
        if p.margin_on:
            mb = wallet + unreal + fund + fees + slip + roll + liq
            cost = 0.0
            if p.policy == POLICY_TOP_UP and reserve > 0.0:
                cost = _resize_cost(st, pb, G, cand, nc, tgt, k0, k1, m.w1[t], n_star, p_close, cs, p, vol)
            n_star, wallet, reserve, topped, capped = _margin_limit(n_star, mb, wallet, reserve, topped, cs, f0, vol, p,
                                                                    cost)
        q_total = n_star - held
        if abs(q_total) > _EPS and abs(q_total) >= p.min_trade:
            fees, slip, trade_q, traded = _trade_to(st, pb, G, cand, nc, tgt, k0, k1, m.w1[t], n_star, p_close, cs, p,
                                                    vol, fees, slip, trade_q)
            busy = busy or traded
            rebal = True
            trades += 1.0
    # 7. cash movements and variation margin
    wallet = _pay(wallet, busy, fund, fees, slip, roll, liq)
    wallet, unreal = _variation_margin(wallet, unreal, not p.vm_daily or m.vm_bar[t])
    spot = a.spot + m.alt_flow[t]
    cash = spot + wallet + reserve
    equity = cash + av + unreal
    eq_u = a.eq_u + m.alt_pnl[t]
    contracts = 0.0
    gross = 0.0
    for jj in range(nc):
        k = cand[jj]
        pk = st[pb + k * G]
        contracts += pk
        gross = _gross_contract(gross, pk, cs, p_close[k])
    mb, m_req, excess, min_excess, need = _end_margin(wallet, unreal, gross, p.mm, p.collateral, topped, need,
                                                      a.min_excess)
    a2 = _close_bar(a, wallet, reserve, unreal, spot, eq_u, topped, need, min_excess, next_sched,
                    equity if record else a.eq_prev, busy, pnl_f, pnl_b, fees, slip, roll, fund, liq,
                    trade_q + roll_q, trades, rolls, 1.0 if call else 0.0, 1.0 if liqd else 0.0, capped)
    _store_account(st, G, j, a2)
    if record:
        o = out[:, t]
        o[O_CONTRACTS] = contracts
        o[O_PRIMARY] = m.c0[t]
        o[O_HR_TARGET] = h_t
        o[O_HR_HELD] = -contracts * cs * f0 / av
        o[O_TRADE] = trade_q
        o[O_ROLL_Q] = roll_q
        o[O_REBAL] = 1.0 if rebal else 0.0
        o[O_ROLLED] = 1.0 if rolled else 0.0
        o[O_CASH] = cash
        o[O_UNREAL] = unreal
        o[O_EQ_H] = equity
        o[O_EQ_U] = eq_u
        _record_flows(o, pnl_f, pnl_b, fees, slip, roll, fund, liq)
        _record_margin(o, mb, p.im * gross, m_req, excess, reserve, call, liqd, need)
        o[O_RET_H] = _bar_return(equity, a.eq_prev, m.alt_value[t - 1]) if t > 0 else np.nan
        o[O_RET_U] = m.alt_pnl[t] / m.alt_value[t - 1] if t > 0 else np.nan
    return equity


@njit(cache=True, inline="always")
def _record_flows(o, pnl_f, pnl_b, fees, slip, roll, fund, liq):
    o[O_PNL_F] = pnl_f
    o[O_PNL_B] = pnl_b
    o[O_FEES] = fees
    o[O_SLIP] = slip
    o[O_ROLL] = roll
    o[O_FUND] = fund
    o[O_LIQ] = liq


@njit(cache=True, inline="always")
def _record_margin(o, mb, m_init, m_req, excess, reserve, call, liqd, need):
    o[O_MB] = mb
    o[O_IM] = m_init
    o[O_MM] = m_req
    o[O_EXCESS] = excess
    o[O_RESERVE] = reserve
    o[O_CALL] = 1.0 if call else 0.0
    o[O_LIQD] = 1.0 if liqd else 0.0
    o[O_NEED] = need


@njit(cache=True)
def _quiet_mark(p, a, pk, cs, p_t, p_p, i_t, i_p, x_hi, x_lo, rate):
    """Steps 1-3 of :func:`_bar` on a quiet bar (one contract ``pk`` held, nothing settling),
    branch-free: returns ``pnl_f, pnl_b, need, call, unreal, fund``.

    The mark and the book ``MB(x) = D + A x`` of :func:`_mark_contract` (all zero when flat),
    the margin check at the adverse intrabar level (``call``: ``MB < MM`` there, margin on),
    the running margin need, the unrealised P&L after the mark, and funding at the close
    (``rate != 0``) on the position held.
    """
    held = pk != 0.0
    D = a.wallet + a.unreal
    pnl_f, pnl_b, A, B, D_held = _mark_contract(pk, cs, p_t, p_p, i_t, i_p, 0.0, 0.0, 0.0, 0.0, D)
    pnl_f = pnl_f if held else 0.0
    pnl_b = pnl_b if held else 0.0
    A = A if held else 0.0
    B = B if held else 0.0
    D = D_held if held else D
    has_b = B > 0.0
    slope, x_adv, mb_adv, mm_adv = _adverse(A, B, D, p.mm, x_hi, x_lo)
    need_b = _need(a.need, mm_adv, mb_adv, p.collateral, a.topped)
    need = need_b if has_b else a.need
    call = has_b and p.margin_on and mb_adv < mm_adv
    unreal = a.unreal + pnl_f
    fund_held = _funding_contract(0.0, pk, cs, p_t, rate)
    fund = fund_held if held and rate != 0.0 else 0.0
    return pnl_f, pnl_b, need, call, unreal, fund


@njit(cache=True)
def _quiet_close(p, a, wallet, reserve, topped, unreal, need, next_sched, busy, pnl_f, pnl_b, fees, slip, fund,
                 turnover, trades, capped, pk, cs, p_t, vm_t, flow_t, av_t, pnl_t):
    """Step 7 of :func:`_bar` on a quiet bar (position ``pk`` after the bar): returns the
    account after the bar and the hedged equity.

    The figures that are zero on a quiet bar (roll cost, liquidation cost, roll and call
    counts) are passed as ``-0.0``, as are the costs of a bar without a trade: ``x + -0.0
    == x`` for every ``x``, so the compiler drops those additions, and the sums they go
    into are never ``-0.0``, so :func:`_bar` adding ``+0.0`` gives the same bits.
    """
    wallet = _pay(wallet, busy, fund, fees, slip, -0.0, -0.0)
    wallet, unreal = _variation_margin(wallet, unreal, not p.vm_daily or vm_t)
    spot = a.spot + flow_t
    equity = spot + wallet + reserve + av_t + unreal
    gross = _gross_contract(0.0, pk, cs, p_t)
    _, _, _, min_excess, need = _end_margin(wallet, unreal, gross, p.mm, p.collateral, topped, need, a.min_excess)
    a2 = _close_bar(a, wallet, reserve, unreal, spot, a.eq_u + pnl_t, topped, need, min_excess, next_sched,
                    a.eq_prev, busy, pnl_f, pnl_b, fees, slip, -0.0, fund, -0.0, turnover, trades, -0.0, -0.0, -0.0,
                    capped)
    return a2, equity


@njit(cache=True, error_model="numpy", _nrt=False)
def _quiet_pass(t, row, k, st, hr, cols, eq, ev, cs, p_t, p_p, i_t, i_p, x_hi, x_lo, rate, vm_t, flow_t, av_t, pnl_t):
    """Bar ``t`` (row ``row`` of the equity tile ``eq``) of a group of ``_GROUP`` variants on a
    quiet bar (contract ``k``), side by side.

    The steps of :func:`_bar` on a quiet bar when nothing happens (1, 2, 3, the
    schedule and band of 6, and 7; 4 and 5 do nothing there), in the same order, for
    every variant, committed where nothing happens. ``ev[j]`` is set where something
    does: a margin call, or a rebalance by schedule or band (then :func:`_quiet_rebalance`);
    the state of those variants is left untouched. Returns the number of them and of those
    with a margin call. Branch-free so that it vectorises; ``error_model="numpy"`` only
    removes the zero checks of ``i_t`` and ``av_t`` (non-zero on quiet bars).
    """
    G = _GROUP
    tf = float(t)
    busy = rate != 0.0  # a funding bar is busy: its (zero) costs and its funding are booked
    n_ev = 0
    n_call = 0
    # the loop below reads fixed rows of st only (so the compiler sees they do not overlap)
    for j in range(G):
        st[_ROW_PK * G + j] = st[(_ROW_POS + k) * G + j]
        st[_ROW_H * G + j] = hr[t, cols[j]]
    for j in range(G):
        p = _load_params(st, G, j)
        a = _load_account(st, G, j)
        pk = st[_ROW_PK * G + j]
        # 1.-3. mark, margin check at the adverse intrabar price (a call is an event), funding
        pnl_f, pnl_b, need, call, unreal, fund = _quiet_mark(p, a, pk, cs, p_t, p_p, i_t, i_p, x_hi, x_lo, rate)
        # 6. rebalance trigger: the variant's schedule, or its band (an event)
        drift = _drift(0.0 + pk, cs, p_t, av_t, st[_ROW_H * G + j], p.band)
        scheduled, next_sched = _schedule(tf, a.next_sched, p.every)
        event = call or _trigger(False, p.mode, scheduled, drift)
        # 7. variation margin, cash, equity, margin figures
        a2, equity = _quiet_close(p, a, a.wallet, a.reserve, a.topped, unreal, need, next_sched, busy, pnl_f, pnl_b,
                                  -0.0, -0.0, fund, -0.0, -0.0, -0.0, pk, cs, p_t, vm_t, flow_t, av_t, pnl_t)
        _store_quiet(st, G, j, a2, not event)
        eq[row, j] = equity
        ev[j] = event
        n_ev += 1 if event else 0
        n_call += 1 if call else 0
    return n_ev, n_call


@njit(cache=True, inline="always")
def _quiet_trade(p, a, pk, h_t, unreal, fund, cs, p_t, av_t, vol):
    """Step 6 of :func:`_bar` on a quiet bar (one contract, ``pk`` held) for a variant whose
    schedule or band fired, branch-free.

    The target ``N*`` (:func:`_target_contracts`), limited by :func:`_margin_limit` when
    margin is on (under ``top_up`` the reserve first covers the new position's initial
    margin plus the fees and slippage of trading to it, :func:`_trade_cost`; otherwise a
    cap), then the trade at the close when it moves more than ``_EPS`` and at least the
    minimum trade (:func:`_trade_to` for one contract). Returns ``wallet, reserve, topped,
    capped, fees, slip, trade_q, trades, traded`` and the position after it; the figures
    of a bar without a trade are ``-0.0`` (see :func:`_quiet_close`).
    """
    held = 0.0 + pk
    n_star = _target_contracts(h_t, av_t, cs, p_t, p.whole)
    q0 = n_star - pk
    f0_, s0_ = _trade_cost(q0, cs, p_t, p.fee, p.half_spread, p.impact, vol)
    top_up = p.policy == POLICY_TOP_UP and a.reserve > 0.0
    cost = 0.0 + (f0_ + s0_) if top_up and abs(q0) > _EPS else 0.0  # (:func:`_resize_cost`)
    mb = a.wallet + unreal + fund + 0.0 + 0.0 + 0.0 + 0.0
    n_lim, w_lim, r_lim, t_lim, c_lim = _margin_limit(n_star, mb, a.wallet, a.reserve, a.topped, cs, p_t, vol, p,
                                                      cost)
    on = p.margin_on
    n_star = n_lim if on else n_star
    q_total = n_star - held
    rebal = abs(q_total) > _EPS and abs(q_total) >= p.min_trade
    q = n_star - pk
    traded = rebal and abs(q) > _EPS
    f_, s_ = _trade_cost(q, cs, p_t, p.fee, p.half_spread, p.impact, vol)
    return (
        w_lim if on else a.wallet, r_lim if on else a.reserve, t_lim if on else a.topped, c_lim if on else -0.0,
        0.0 - f_ if traded else -0.0, 0.0 - s_ if traded else -0.0, 0.0 + abs(q) if traded else -0.0,
        1.0 if rebal else -0.0, traded, n_star if traded else pk,
    )


@njit(cache=True, error_model="numpy", _nrt=False)
def _quiet_rebalance(t, row, k, st, eq, ev, cs, p_t, p_p, i_t, i_p, x_hi, x_lo, rate, vm_t, flow_t, av_t, pnl_t,
                     vol):
    """The variants :func:`_quiet_pass` flagged (``ev[j]``) on quiet bar ``t``, side by side:
    steps 1-3, 6 (:func:`_quiet_trade`) and 7 of :func:`_bar` for one contract.

    Every variant of the group is computed branch-free (so that it vectorises) into scratch
    rows; the flagged ones without a margin call are then committed: their account,
    position in contract ``k`` and hedged equity. ``ev[j]`` stays set only where
    :func:`_bar` is still needed (a margin call). Reads the scratch rows
    :func:`_quiet_pass` wrote (position and target hedge ratio). Returns the number still
    flagged.
    """
    G = _GROUP
    tf = float(t)
    busy = rate != 0.0
    for j in range(G):
        p = _load_params(st, G, j)
        a = _load_account(st, G, j)
        pk = st[_ROW_PK * G + j]
        pnl_f, pnl_b, need, call, unreal, fund = _quiet_mark(p, a, pk, cs, p_t, p_p, i_t, i_p, x_hi, x_lo, rate)
        _, next_sched = _schedule(tf, a.next_sched, p.every)
        wallet, reserve, topped, capped, fees, slip, trade_q, trades, traded, pk_new = _quiet_trade(
            p, a, pk, st[_ROW_H * G + j], unreal, fund, cs, p_t, av_t, vol)
        a2, equity = _quiet_close(p, a, wallet, reserve, topped, unreal, need, next_sched, busy or traded, pnl_f,
                                  pnl_b, fees, slip, fund, trade_q, trades, capped, pk_new, cs, p_t, vm_t, flow_t,
                                  av_t, pnl_t)
        _store_at(st, G, _ROW_NEW * G + j, a2)
        st[_ROW_NEW_PK * G + j] = pk_new
        st[_ROW_NEW_EQ * G + j] = equity
        st[_ROW_KEEP * G + j] = 0.0 if call else 1.0
    n_ev = 0
    for j in range(G):
        keep = ev[j] and st[_ROW_KEEP * G + j] != 0.0
        if keep:
            for r in range(_N_ACCOUNT):
                st[(_ROW_A + r) * G + j] = st[(_ROW_NEW + r) * G + j]
            st[(_ROW_POS + k) * G + j] = st[_ROW_NEW_PK * G + j]
            eq[row, j] = st[_ROW_NEW_EQ * G + j]
        ev[j] = ev[j] and not keep
        n_ev += 1 if ev[j] else 0
    return n_ev


@njit(cache=True)
def _slots(c0, c1, S):
    """Price columns of the roll schedule's contracts: ``c % S`` (``-1`` for none), once per market."""
    T = c0.shape[0]
    s0 = np.empty(T, dtype=np.int64)
    s1 = np.empty(T, dtype=np.int64)
    for t in range(T):
        s0[t] = c0[t] % S if c0[t] >= 0 else -1
        s1[t] = c1[t] % S if c1[t] >= 0 else -1
    return s0, s1


@njit(cache=True, inline="always")
def _candidates(m, t, cand):
    """Contracts that may hold a position or be targeted on bar ``t`` (last and this bar's split):
    their columns ``cand[:nc]`` and ids ``cand[4:4 + nc]``."""
    nc = 0
    for i in range(4):
        u = t - 1 + i // 2  # the last bar's c0, c1, then this bar's
        if u < 0:
            continue
        k = m.c0[u] if i % 2 == 0 else m.c1[u]
        if k < 0:
            continue
        dup = False
        for jj in range(nc):
            if cand[4 + jj] == k:
                dup = True
        if not dup:
            cand[nc] = m.s0[u] if i % 2 == 0 else m.s1[u]
            cand[4 + nc] = k
            nc += 1
    return nc


@njit(cache=True, inline="always")
def _write_summary(st, G, j, equity_final, summary):
    """Summary fields kept in the account (all but the return statistics and the unhedged fields)."""
    a = _load_account(st, G, j)
    summary[S_PNL_FUTURES] = a.pnl_f
    summary[S_PNL_BASIS] = a.pnl_b
    summary[S_FEES] = a.fees
    summary[S_SLIPPAGE] = a.slip
    summary[S_ROLL_COST] = a.roll
    summary[S_FUNDING] = a.fund
    summary[S_LIQUIDATION_COST] = a.liq
    summary[S_TRADES] = a.trades
    summary[S_ROLLS] = a.rolls
    summary[S_MARGIN_CALLS] = a.calls
    summary[S_LIQUIDATIONS] = a.liqs
    summary[S_MARGIN_CAPPED] = a.capped
    summary[S_TURNOVER_CONTRACTS] = a.turnover
    summary[S_MIN_MARGIN_EXCESS] = a.min_excess if np.isfinite(a.min_excess) else np.nan
    summary[S_FINAL_EQUITY_HEDGED] = equity_final
    summary[S_FINAL_EQUITY_UNHEDGED] = a.eq_u
    summary[S_MARGIN_NEED] = max(a.need, 0.0)


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


@njit(cache=True, error_model="numpy", _nrt=False)
def _return_stats(eq, n_rows, t0, alt_value, rs, S, G):
    """Bring the hedged-return statistics of ``G`` variants up to date with a tile of bars.

    ``eq[i, j]`` is the hedged equity of variant ``j`` after bar ``t0 + i - 1`` for
    ``i = 1 .. n_rows``, and ``eq[0, j]`` the equity after bar ``t0 - 1``. ``rs``
    holds the running Welford mean (``rs[j]``), M2 (``rs[S + j]``), compounded
    wealth, its peak and the maximum drawdown (``rs[4 * S + j]``) of the returns
    ``(eq[t] - eq[t - 1]) / alt_value[t - 1]`` of bars ``t >= 1``. The variants'
    recursions are independent and run side by side (vector divisions); each still
    sees exactly the operations of a one-variant loop. ``S`` is the row stride of
    ``rs`` (``_GROUP``) and ``G <= S`` the variants in use, both passed on their own
    (taken from the shape, they keep the loop from vectorising). ``error_model="numpy"`` only drops zero-divisor checks: the
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
            rs[S + j] += d * (r - mean)
            w = rs[2 * S + j] * (1.0 + r)
            rs[2 * S + j] = w
            p = max(rs[3 * S + j], w)
            rs[3 * S + j] = p
            rs[4 * S + j] = max(rs[4 * S + j], 1.0 - w / p)


def _new_work(K: int) -> tuple:
    """Arrays of :func:`_simulate_group_nb` for up to ``_GROUP`` variants and ``K`` price columns: the variants
    (``var``), their state (``st``), the equity tile (``eq``), the return statistics
    (``rs``) and scratch (``cols``, ``ev``, ``cand``, ``tgt``). Always ``_GROUP`` wide, so
    the state's row stride is a constant of the compiled loop."""
    G = _GROUP
    return (
        np.zeros(G, dtype=np.int64), np.empty((_ROW_POS + K) * G), np.empty((_TILE + 1, G)), np.empty(5 * G),
        np.empty(G, dtype=np.int64), np.empty(G, dtype=np.bool_), np.empty(8, dtype=np.int64), np.empty(K),
    )


@njit(cache=True, nogil=True, _nrt=False)
def _simulate_group_nb(m, cs, fps, ips, members, G, unhedged, summaries, record, out, work):
    """Variants ``members`` (at most ``G``) side by side; their summaries into ``summaries[v]``.

    The one compiled body of the bar loop: :func:`simulate_1d_nb` runs it with ``G = 1``
    (no quiet bars flagged, ``record`` on), :func:`simulate_many_nb` with ``G = _GROUP``
    (the width of :func:`_quiet_pass`). A group with fewer members is padded with copies
    of its last member (results discarded). Compiled without reference counting
    (``_nrt=False``: nothing here allocates, ``work`` holds the arrays of
    :func:`_new_work`, so the views and arrays the steps take cost nothing per bar) and
    without the GIL, so groups run on parallel threads.

    The loop of ``G`` variants (rows ``var = work[0]`` of ``fps`` / ``ips``): per bar, on a
    bar flagged in ``m.quiet``, :func:`_quiet_pass` for all variants at once, then
    :func:`_quiet_rebalance` when it flags rebalances, then :func:`_bar` for the margin
    calls; on any other bar :func:`_bar` for every variant. ``st`` holds at least
    ``(_ROW_POS + K) * G`` values and is initialised here. The hedged equity after each
    bar goes to the tile buffer ``eq`` (``(_TILE + 1) x G``), from which
    :func:`_return_stats` keeps the return statistics in ``rs`` (``5 x G``) up to date; at
    the end ``eq[0, j]`` is the final equity. Writes
    the per-bar rows of variant 0 to ``out`` when ``record``. The quiet pass is
    ``_GROUP`` wide: bars are flagged quiet only when ``G == _GROUP``.

    The loop is written here rather than in an inlined helper: numba inlines
    ``inline="always"`` functions at the IR level by deep-copying the callee once per
    block, which for a body this size cost ~7 s of the first compile; and a separately
    compiled helper is optimised by LLVM twice (on its own and linked into this function).
    For the same reason :func:`_bar` is an ordinary compiled function: with the quiet
    rebalances replayed side by side, a sweep calls it on well under 1 % of its
    (bar, variant) pairs, and inlining it cost ~5 s of the first compile.
    """
    var, st, eq, rs, cols, ev, cand, tgt = work
    ng = members.shape[0]
    for j in range(G):
        var[j] = members[min(j, ng - 1)]
    S = _GROUP  # the stride of the state rows (a constant, whatever G)
    T = m.px.shape[0]
    K = m.px.shape[1]  # price columns: contract k in column k % K
    for j in range(G):
        v = var[j]
        _init_state(st, S, j, K, fps[v], ips[v], m.alt_value[0])
        cols[j] = ips[v, IP_HR_COL]
        rs[j] = 0.0
        rs[S + j] = 0.0
        rs[2 * S + j] = 1.0
        rs[3 * S + j] = 1.0
        rs[4 * S + j] = 0.0
    for j in range(G):
        ev[j] = True
    for k in range(K):
        tgt[k] = 0.0
    row = 0
    for t in range(T):
        if row == _TILE:
            _return_stats(eq, row, t - row, m.alt_value, rs, S, G)
            for j in range(G):
                eq[0, j] = eq[row, j]
            row = 0
        row += 1  # bar t's row of eq
        on_quiet = m.quiet[t]
        if on_quiet:
            k0 = m.s0[t]
            cand[0] = k0
            cand[4] = m.c0[t]
            nc = 1
            n_ev, n_call = _quiet_pass(
                t, row, k0, st, m.hr, cols, eq, ev, cs, m.px[t, k0], m.px[t - 1, k0], m.idx[t], m.idx[t - 1],
                m.xhi[t], m.xlo[t], m.fund_rate[t], m.vm_bar[t], m.alt_flow[t], m.alt_value[t], m.alt_pnl[t],
            )
            if n_ev > n_call:  # rebalances by schedule or band
                n_ev = _quiet_rebalance(
                    t, row, k0, st, eq, ev, cs, m.px[t, k0], m.px[t - 1, k0], m.idx[t], m.idx[t - 1], m.xhi[t],
                    m.xlo[t], m.fund_rate[t], m.vm_bar[t], m.alt_flow[t], m.alt_value[t], m.alt_pnl[t],
                    m.volume_usd[t],
                )
            if n_ev == 0:
                continue
        else:
            nc = _candidates(m, t, cand)
        for j in range(G):
            if on_quiet and not ev[j]:
                continue
            eq[row, j] = _bar(
                t, j, S, m, cs, _params_of(fps, ips, var[j]), st, cand, nc, tgt, m.hr[t, cols[j]], record, out
            )
    _return_stats(eq, row, T - row, m.alt_value, rs, S, G)
    for j in range(G):
        eq[0, j] = eq[row, j]
    for j in range(ng):
        s = summaries[var[j]]
        _write_summary(st, S, j, eq[0, j], s)
        s[S_N_RET] = unhedged[S_N_RET]
        s[S_MEAN_U] = unhedged[S_MEAN_U]
        s[S_M2_U] = unhedged[S_M2_U]
        s[S_MAX_DD_U] = unhedged[S_MAX_DD_U]
        s[S_PNL_ALTCOIN] = unhedged[S_PNL_ALTCOIN]
        s[S_MEAN_NOTIONAL] = unhedged[S_MEAN_NOTIONAL]
        s[S_MEAN_H] = rs[j]
        s[S_M2_H] = rs[S + j]
        s[S_MAX_DD_H] = rs[4 * S + j]


def _market(px, idx, idx_hi, idx_lo, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
            alt_value, alt_pnl, alt_flow, alt_changed, hr, *, quiet_bars: bool) -> tuple[Mkt, np.ndarray]:
    """The :class:`Mkt` of a run (arrays made contiguous, of the kernel's dtypes, read-only)
    and its unhedged summary fields; quiet bars flagged only when ``quiet_bars``.

    Every array is a read-only view (:func:`_frozen`) whatever the caller passed (NumPy,
    Arrow- or pandas-backed, writeable or not), so the compiled kernels see one type per
    field and compile once for every entry point.
    """
    f = lambda a: _frozen(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    i = lambda a: _frozen(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    b = lambda a: _frozen(np.ascontiguousarray(a, dtype=np.bool_))  # noqa: E731
    px, idx, idx_hi, idx_lo, w1, fund_rate, volume_usd = map(f, (px, idx, idx_hi, idx_lo, w1, fund_rate, volume_usd))
    alt_value, alt_pnl, alt_flow, hr = map(f, (alt_value, alt_pnl, alt_flow, hr))
    c0, c1, exp_bar = map(i, (c0, c1, exp_bar))
    vm_bar, alt_changed = b(vm_bar), b(alt_changed)
    xhi, xlo, expiring, quiet = _market_prep(idx, idx_hi, idx_lo, c0, c1, exp_bar, alt_value, alt_changed)
    if not quiet_bars:
        quiet = np.zeros_like(quiet)
    unhedged = np.zeros(N_SUM)
    _unhedged_stats(alt_value, alt_pnl, unhedged)
    s0, s1 = _slots(c0, c1, px.shape[1])
    xhi, xlo, expiring, quiet, s0, s1 = map(_frozen, (xhi, xlo, expiring, quiet, s0, s1))
    m = Mkt(px, idx, xhi, xlo, expiring, quiet, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
            alt_value, alt_pnl, alt_flow, alt_changed, hr, s0, s1)
    return m, unhedged


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
    px : float64[T, S]
        Contract prices at bar closes (NaN where not traded), contract ``k`` in column
        ``k % S``: ``S = K`` columns, one per contract, or ``S`` reused columns
        (:func:`backtest.contracts.slot_prices`). Contracts used on the same bar
        (``c0``, ``c1`` of the bar and of the last bar) must not share a column.
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
        Variant parameters (indices ``FP_*`` / ``IP_*``).
    record : bool
        Write per-bar rows into ``out`` (float64[N_OUT, T]); otherwise ``out`` is ignored.
    summary : float64[N_SUM]
        Filled with the variant's summary statistics.

    Notes
    -----
    A thin Python wrapper: the bar loop is :func:`_simulate_group_nb` with one variant
    and every bar running the full steps (the body :func:`simulate_many_nb` runs too, so
    a run compiles it once).
    """
    m, unhedged = _market(px, idx, idx_hi, idx_lo, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
                          alt_value, alt_pnl, alt_flow, alt_changed, hr, quiet_bars=False)
    fps, ips = _variant_arrays(np.reshape(fp, (1, N_FP)), np.reshape(ip, (1, N_IP)))
    record = bool(record)
    if not record or out.dtype != np.float64 or not out.flags.c_contiguous:
        rows = np.empty((N_OUT, m.px.shape[0]) if record else (N_OUT, 1))
    else:
        rows = out
    summaries = np.empty((1, N_SUM))
    _simulate_group_nb(m, float(cs), fps, ips, np.zeros(1, dtype=np.int64), 1, unhedged, summaries, record, rows,
                       _new_work(m.px.shape[1]))
    if record and rows is not out:
        out[...] = rows
    summary[:] = summaries[0]


def simulate_many_nb(
    px, idx, idx_hi, idx_lo, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
    alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips,
):
    """Simulate many variants (rows of ``fps`` / ``ips``) over the same market; summaries only.

    Memory is O(variants x N_SUM) plus O(price columns + ``_TILE``) x ``_GROUP`` per
    running group: no per-bar ledger is kept. Variant-independent work (adverse index
    levels, quiet bars, the unhedged statistics) is done once. Variants are grouped
    with similar ones (:func:`_group_order`); each group is one call of
    :func:`_simulate_group_nb` (which releases the GIL), run on
    ``numba.get_num_threads()`` threads (:func:`_run_tasks`). Results do not depend on
    the grouping or the number of threads.
    """
    m, unhedged = _market(px, idx, idx_hi, idx_lo, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
                          alt_value, alt_pnl, alt_flow, alt_changed, hr, quiet_bars=True)
    fps, ips = _variant_arrays(fps, ips)
    V = fps.shape[0]
    summaries = np.empty((V, N_SUM))
    order, tasks = _group_order(fps, ips)
    dummy = np.empty((N_OUT, 1))
    cs = float(cs)

    def group(g: int) -> None:
        _simulate_group_nb(m, cs, fps, ips, _members(order, g), _GROUP, unhedged, summaries, False, dummy,
                           _new_work(m.px.shape[1]))

    _run_tasks(group, tasks)
    return summaries


def simulate_paths_nb(
    px, idx, idx_hi, idx_lo, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
    alt_value, alt_pnl, alt_flow, alt_changed, hr, cs, fps, ips,
):
    """Simulate many variants on each of ``P`` markets that share one calendar; summaries only.

    The markets are the paths of a margin stress (:mod:`backtest.margin_stress`): prices, the
    coin holding and the hedge ratios differ per path, stacked along a leading path
    axis; the calendar (roll schedule, settlements, funding, volume, variation-margin
    bars) is the same for all. Every (path, variant group) pair is one task of a single
    parallel pass (:func:`_run_tasks`), so all paths of a call run together::

        summaries[p] == simulate_many_nb(px[p], idx[p], idx_hi[p], idx_lo, c0, c1, w1, exp_bar,
                                         fund_rate, volume_usd, vm_bar, alt_value[p], alt_pnl[p],
                                         alt_flow[p], alt_changed[p], hr[p], cs, fps, ips)

    bit for bit (the same steps, groups and operations; tested).

    Parameters
    ----------
    px : float64[P, T, K]
        Contract prices per path.
    idx, idx_hi : float64[P, T]
        Index (underlying) close and intrabar high per path (NaN high = use the close).
    idx_lo : float64[T]
        Intrabar low (shared; NaN = use the close).
    c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar
        The shared calendar, as in :func:`simulate_1d_nb`.
    alt_value, alt_pnl, alt_flow : float64[P, T]; alt_changed : bool[P, T]
        The coin holding per path.
    hr : float64[P, T, R]
        Target hedge ratios per path.
    cs : float
        Contract size in index units.
    fps, ips : float64[V, N_FP], int64[V, N_IP]
        Variant parameters.

    Returns
    -------
    float64[P, V, N_SUM]
        Summary rows per path and variant.

    Memory: the inputs (O(P x T x K)), the per-path quantities of :func:`_market_prep`
    (O(P x T)), the summaries and O(contracts + ``_TILE``) x ``_GROUP`` per running task.
    """
    P = px.shape[0]
    fps, ips = _variant_arrays(fps, ips)
    V = fps.shape[0]
    markets = [
        _market(px[p], idx[p], idx_hi[p], idx_lo, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar,
                alt_value[p], alt_pnl[p], alt_flow[p], alt_changed[p], hr[p], quiet_bars=True)
        for p in range(P)
    ]
    summaries = np.empty((P, V, N_SUM))
    order, tasks = _group_order(fps, ips)
    n_groups = len(tasks)
    dummy = np.empty((N_OUT, 1))
    cs = float(cs)

    def task(i: int) -> None:
        p, g = divmod(i, n_groups)
        m, unhedged = markets[p]
        _simulate_group_nb(m, cs, fps, ips, _members(order, g), _GROUP, unhedged, summaries[p], False, dummy,
                           _new_work(m.px.shape[1]))

    _run_tasks(task, [p * n_groups + g for p in range(P) for g in tasks])
    return summaries


def _variant_arrays(fps, ips) -> tuple[np.ndarray, np.ndarray]:
    """The variant parameters as the kernel takes them: contiguous, float64 / int64, read-only."""
    return _frozen(np.ascontiguousarray(fps, dtype=np.float64)), _frozen(np.ascontiguousarray(ips, dtype=np.int64))


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (no copy): numba types read-only and writeable arrays
    differently, so inputs normalised this way compile one specialisation."""
    v = a.view()
    v.flags.writeable = False
    return v


def _group_order(fps: np.ndarray, ips: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The variant groups and the order in which they run.

    Returns ``order`` (variants sorted by rebalance mode, margin policy, margin switch,
    period and band, so that a group's variants tend to need the full steps on the same
    bars; group ``g`` is ``order[g * _GROUP : (g + 1) * _GROUP]``) and the groups in run
    order, costliest first, so that threads taking the next task as they finish end on
    cheap ones (longest-processing-time first). The cost is estimated per bar as one unit
    per variant for the quiet pass plus 8 units for each full step, a variant rebalancing
    every ``n`` bars taking a full step on ``1 / n`` of the bars (band modes: none counted).
    """
    key = ((ips[:, IP_MODE] * 2.0 + ips[:, IP_POLICY]) * 2.0 + ips[:, IP_MARGIN_ON]) * 1e8 \
        + np.minimum(ips[:, IP_EVERY], 10**7) + np.minimum(fps[:, FP_BAND], 0.999)
    order = np.argsort(key, kind="mergesort").astype(np.int64)
    n_groups = (fps.shape[0] + _GROUP - 1) // _GROUP
    full = np.where(ips[:, IP_MODE] == MODE_EVERY, 1.0 / np.maximum(ips[:, IP_EVERY], 1), 0.0)
    cost = [_GROUP + 8.0 * float(full[order[g * _GROUP : (g + 1) * _GROUP]].sum()) for g in range(n_groups)]
    return order, sorted(range(n_groups), key=lambda g: -cost[g])


def _members(order: np.ndarray, g: int) -> np.ndarray:
    """The variants of group ``g`` (contiguous, as the compiled loop takes them)."""
    return np.ascontiguousarray(order[g * _GROUP : (g + 1) * _GROUP])


def _run_tasks(fn, tasks: list[int]) -> None:
    """``fn(task)`` for every task, on ``numba.get_num_threads()`` threads taking the next
    task as they finish one (tasks differ in cost: margin calls, rebalances); in this
    thread when that is one. ``fn`` must release the GIL for the threads to run at once."""
    import numba

    threads = min(numba.get_num_threads(), len(tasks))
    if threads <= 1:
        for t in tasks:
            fn(t)
        return
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fn, tasks):
            pass
