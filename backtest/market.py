"""Typed containers passed to the simulation kernels.

:class:`Market` holds the arrays every variant shares (prices, contract
schedule, coin holding); :class:`Variant` holds one variant's parameters with
units in the names. :func:`pack_variants` turns variants into the flat
parameter arrays the numba kernel reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from backtest import kernels as K
from backtest.errors import ConfigError

__all__ = ["Market", "Variant", "pack_variants", "run_variant", "run_variants"]


@dataclass(frozen=True, eq=False)
class Market:
    """Arrays shared by all variants of a replay (length T unless stated).

    Attributes
    ----------
    px : float64[T, S]
        Contract prices at bar closes, contract ``k`` in column ``k % S``: one column per
        contract (``S = K``), or ``S`` reused columns holding each contract on the bars the
        replay uses it (:func:`backtest.contracts.slot_prices`; memory ``T x S``, not ``T x K``).
    idx, idx_hi, idx_lo : float64[T]
        Index close and intrabar high / low (NaN = unknown, the close is used).
    c0, c1 : int64[T]; w1 : float64[T]
        Roll schedule (see :mod:`backtest.contracts`): contract ids, not columns.
    exp_bar : int64[K]
        Settlement bar per contract.
    fund_rate : float64[T]
        Funding rate settled in each bar.
    volume_usd : float64[T]
        Futures volume per bar (USD) for the impact term.
    vm_bar : bool[T]
        Variation-margin bars for daily VM.
    alt_value, alt_pnl, alt_flow : float64[T]; alt_changed : bool[T]
        The coin holding: value, P&L over the bar, cash flow of coin trades, size changes.
    hr : float64[T, R]
        Target hedge ratios, one column per rule.
    contract_size : float
        Index units per contract.
    """

    px: np.ndarray
    idx: np.ndarray
    idx_hi: np.ndarray
    idx_lo: np.ndarray
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
    contract_size: float

    def __post_init__(self) -> None:
        T = len(self.idx)
        for name in ("idx_hi", "idx_lo", "c0", "c1", "w1", "fund_rate", "volume_usd", "vm_bar",
                     "alt_value", "alt_pnl", "alt_flow", "alt_changed"):
            if len(getattr(self, name)) != T:
                raise ValueError(f"Market.{name} has length {len(getattr(self, name))}, expected {T}")
        if self.px.shape[0] != T or self.hr.shape[0] != T:
            raise ValueError("Market.px and Market.hr must have one row per bar")
        if self.px.ndim != 2 or self.px.shape[1] < 1:
            raise ValueError("Market.px must have at least one price column")

    @property
    def n_bars(self) -> int:
        return len(self.idx)

    def contract_price(self, t: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Price of contract ``k`` at the close of bar ``t`` (integer arrays): ``px[t, k % S]``."""
        k = np.asarray(k)
        return self.px[t, k % self.px.shape[1]]

    def kernel_args(self) -> tuple:
        """Positional market arguments of :func:`backtest.kernels.simulate_1d_nb`."""
        f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        i = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
        b = lambda a: np.ascontiguousarray(a, dtype=np.bool_)  # noqa: E731
        return (
            f(self.px), f(self.idx), f(self.idx_hi), f(self.idx_lo), i(self.c0), i(self.c1), f(self.w1),
            i(self.exp_bar), f(self.fund_rate), f(self.volume_usd), b(self.vm_bar), f(self.alt_value),
            f(self.alt_pnl), f(self.alt_flow), b(self.alt_changed), f(self.hr), float(self.contract_size),
        )


@dataclass(frozen=True)
class Variant:
    """One variant's execution, rebalancing and margin parameters.

    Attributes
    ----------
    hr_col : int
        Column of ``Market.hr`` with this variant's target hedge ratios.
    fee_bps, half_spread_bps : float
        Fee and half-spread in basis points of traded notional.
    impact_coef : float
        Square-root impact: extra cost fraction = coef * sqrt(notional / bar volume).
    mode : {"every", "band", "band_on_schedule"}
    every_bars : int
    band : float
        Relative drift band.
    whole_contracts : bool
    min_trade_contracts : float
    margin_enabled : bool
    initial_rate, maintenance_rate : float
    collateral_usd, reserve_usd : float
    policy : {"top_up", "cut_hedge"}
    liquidation_fee_bps, settlement_fee_bps : float
    daily_variation : bool
    """

    hr_col: int = 0
    fee_bps: float = 5.0
    half_spread_bps: float = 0.0
    impact_coef: float = 0.0
    mode: Literal["every", "band", "band_on_schedule"] = "every"
    every_bars: int = 1
    band: float = 0.0
    whole_contracts: bool = False
    min_trade_contracts: float = 0.0
    margin_enabled: bool = False
    initial_rate: float = 0.05
    maintenance_rate: float = 0.02
    collateral_usd: float = 0.0
    reserve_usd: float = 0.0
    policy: Literal["top_up", "cut_hedge"] = "top_up"
    liquidation_fee_bps: float = 50.0
    settlement_fee_bps: float = 0.0
    daily_variation: bool = False

    def __post_init__(self) -> None:
        if self.every_bars < 1:
            raise ConfigError("rebalance.every_bars", f"expected >= 1, got {self.every_bars}")
        if self.mode not in ("every", "band", "band_on_schedule"):
            raise ConfigError("rebalance.mode", f"expected 'every', 'band' or 'band_on_schedule', got {self.mode!r}")
        if self.policy not in ("top_up", "cut_hedge"):
            raise ConfigError("margin.policy", f"expected 'top_up' or 'cut_hedge', got {self.policy!r}")
        for name in ("fee_bps", "half_spread_bps", "impact_coef", "band", "min_trade_contracts",
                     "collateral_usd", "reserve_usd", "liquidation_fee_bps", "settlement_fee_bps"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"expected >= 0, got {getattr(self, name)}")
        if not 0 < self.maintenance_rate <= self.initial_rate < 1:
            raise ConfigError("margin.initial_rate", "expected 0 < maintenance_rate <= initial_rate < 1")

    def fp(self) -> np.ndarray:
        out = np.zeros(K.N_FP)
        out[K.FP_FEE] = self.fee_bps / 1e4
        out[K.FP_HALF_SPREAD] = self.half_spread_bps / 1e4
        out[K.FP_IMPACT] = self.impact_coef
        out[K.FP_BAND] = self.band
        out[K.FP_MIN_TRADE] = self.min_trade_contracts
        out[K.FP_IM] = self.initial_rate
        out[K.FP_MM] = self.maintenance_rate
        out[K.FP_COLLATERAL] = self.collateral_usd
        out[K.FP_RESERVE] = self.reserve_usd
        out[K.FP_LIQ_FEE] = self.liquidation_fee_bps / 1e4
        out[K.FP_SETTLE_FEE] = self.settlement_fee_bps / 1e4
        return out

    def ip(self) -> np.ndarray:
        out = np.zeros(K.N_IP, dtype=np.int64)
        out[K.IP_EVERY] = self.every_bars
        out[K.IP_MODE] = {"every": K.MODE_EVERY, "band": K.MODE_BAND, "band_on_schedule": K.MODE_BAND_ON_SCHEDULE}[self.mode]
        out[K.IP_WHOLE] = int(self.whole_contracts)
        out[K.IP_HR_COL] = self.hr_col
        out[K.IP_POLICY] = K.POLICY_TOP_UP if self.policy == "top_up" else K.POLICY_CUT
        out[K.IP_MARGIN_ON] = int(self.margin_enabled)
        out[K.IP_VM_DAILY] = int(self.daily_variation)
        return out


def pack_variants(variants: Sequence[Variant]) -> tuple[np.ndarray, np.ndarray]:
    """Stack variants into the ``(fps, ips)`` arrays of :func:`backtest.kernels.simulate_many_nb`."""
    return np.stack([v.fp() for v in variants]), np.stack([v.ip() for v in variants])


def run_variant(market: Market, variant: Variant) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Run one variant with the fast kernel; per-bar rows and the summary, by name."""
    if not 0 <= variant.hr_col < market.hr.shape[1]:
        raise ConfigError("hr_col", f"expected a column of the hedge-ratio matrix (0..{market.hr.shape[1] - 1})")
    out = np.zeros((K.N_OUT, market.n_bars))
    summary = np.zeros(K.N_SUM)
    K.simulate_1d_nb(*market.kernel_args(), variant.fp(), variant.ip(), True, out, summary)
    return dict(zip(K.OUT, out)), dict(zip(K.SUM, summary.tolist()))



def run_variants(market: Market, variants: Sequence[Variant]) -> np.ndarray:
    """Run many variants (summaries only) in one parallel kernel call: one row of
    :data:`backtest.kernels.SUM` per variant (used by the minimum-safe-collateral bisection)."""
    fps, ips = pack_variants(variants)
    return K.simulate_many_nb(*market.kernel_args(), fps, ips)
