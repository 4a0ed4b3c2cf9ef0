"""Hedge rules: typed, frozen objects mapping return histories to hedge ratios.

A rule turns the coin (basket) returns ``r_S`` and the held futures returns ``r_F``
(both simple returns per bar, ``NaN`` at bar 0) into the target hedge ratio
``h[t] = futures notional to short / coin notional`` decided at the close of bar
``t``. It is computed once for the whole history but is causal: ``h[t]`` depends
on ``r[0..t]`` only (the close of ``t`` is known when rebalancing at ``t``).

Rules and formulas (``family``: class)

``none``: :class:`NoHedge`
    ``h = 0``.
``fixed``: :class:`Fixed`
    ``h = ratio``.
``notional``: :class:`Notional`
    ``h = fraction``: the classic hedge, contracts = coin notional / contract notional,
    scaled by ``fraction``.
``min_variance``: :class:`MinVariance`
    Rolling OLS slope over the last ``window`` observations ending at ``t``:
    ``h[t] = Cov(r_S, r_F) / Var(r_F)`` (same ``ddof``), see
    :func:`strategies.kernels.rolling_beta_nb`.
``ewma``: :class:`EWMA`
    ``lam = 0.5 ** (1 / halflife)``; EW means, covariance and variance with weights
    ``lam**age`` normalised to sum to one (demeaned, RiskMetrics-style in the limit),
    ``h = Cov_EW / Var_EW``; see :func:`strategies.kernels.ewma_beta_nb`.
``dynamic``: :class:`Dynamic`
    GARCH(1,1) volatilities and a DCC(1,1) correlation, fitted walk-forward:
    ``h[t] = rho_{t+1|t} * sigma_{S, t+1|t} / sigma_{F, t+1|t}``; see the docstring of
    :mod:`strategies.kernels` for recursions and estimation.
``multi_min_variance``: :class:`strategies.multi.MultiMinVariance`
    One short futures leg per instrument (e.g. the index and BTC), weights from a rolling
    multivariate OLS; replayed leg by leg by :mod:`backtest.multi_run` (no ``hedge_ratio``).

Missing returns
    A bar where either return is not finite (bar 0, data gaps) is skipped by every
    estimator: it is treated as missing (not as a zero return), does not count
    towards windows, half-lives or refit intervals, and ``h`` keeps its previous
    value there (or the warm-up value if no estimate exists yet).
Warm-up
    Until an estimator has ``min_periods`` observations, ``h`` is ``0`` (``warmup="none"``,
    no hedge) or ``1`` (``warmup="notional"``, the classic notional hedge). The same
    value is used if the estimate is undefined before the first valid one (a
    regressor without variance); an estimate that becomes undefined later keeps
    the last valid ``h``. :meth:`warmup_bars` reports ``min_periods``: under
    the simulator contract (``NaN`` at bar 0 only) bars ``0 .. min_periods - 1`` are
    warm-up bars and ``h[min_periods]`` is the first estimate.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from numbers import Integral, Real
from typing import ClassVar, Literal, Protocol, get_args, runtime_checkable

import numpy as np

from backtest.errors import ConfigError
from strategies import kernels
from strategies.multi import MultiMinVariance

__all__ = [
    "WarmUp",
    "HedgeRule",
    "NoHedge",
    "Fixed",
    "Notional",
    "MinVariance",
    "EWMA",
    "Dynamic",
    "RULES",
    "make_rule",
    "ols_beta",
    "oracle_r2",
]

WarmUp = Literal["none", "notional"]
"""Hedge during warm-up: ``"none"`` -> ``h = 0``, ``"notional"`` -> ``h = 1``."""

_WARMUP_VALUE: dict[str, float] = {"none": 0.0, "notional": 1.0}


@runtime_checkable
class HedgeRule(Protocol):
    """What the simulator needs from a hedge rule."""

    @property
    def name(self) -> str:
        """Stable label, e.g. ``"min_variance(window=720)"`` (used as a column name)."""
        ...

    @property
    def family(self) -> str:
        """One of ``"none" | "fixed" | "notional" | "min_variance" | "ewma" | "dynamic"``."""
        ...

    def warmup_bars(self) -> int:
        """Number of observations needed before the rule's own estimate is used."""
        ...

    def hedge_ratio(self, coin_ret: np.ndarray, fut_ret: np.ndarray) -> np.ndarray:
        """Finite float64 hedge ratios, same length as the inputs; ``h[t]`` uses ``[0..t]`` only."""
        ...


# --------------------------------------------------------------------------- validation


def _key(family: str, param: str) -> str:
    return f"rules.{family}.{param}"


def _check_int(family: str, param: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """An integer (not bool) in ``[minimum, maximum]``."""
    bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(_key(family, param), f"expected an integer {bound}, got {value!r}")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(_key(family, param), f"expected an integer {bound}, got {number}")
    return number


def _check_real(family: str, param: str, value: object, *, positive: bool = False) -> float:
    """A finite real number (not bool), ``> 0`` if ``positive`` else ``>= 0``."""
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(_key(family, param), f"expected a finite number {bound}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0.0 or (positive and number == 0.0):
        raise ConfigError(_key(family, param), f"expected a finite number {bound}, got {number!r}")
    return number


def _check_warmup(family: str, value: object) -> str:
    options = get_args(WarmUp)
    if not isinstance(value, str) or value not in options:
        expected = ", ".join(repr(option) for option in options)
        raise ConfigError(_key(family, "warmup"), f"expected one of {expected}, got {value!r}")
    return value


def _returns(coin_ret: np.ndarray, fut_ret: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both return series as contiguous 1-D float64 arrays of equal length."""
    coin = np.ascontiguousarray(coin_ret, dtype=np.float64)
    fut = np.ascontiguousarray(fut_ret, dtype=np.float64)
    if coin.ndim != 1 or fut.shape != coin.shape:
        raise ValueError(f"coin_ret and fut_ret must be 1-D of equal length, got shapes {coin.shape} and {fut.shape}")
    return coin, fut


def _label(family: str, params: list[tuple[str, object]]) -> str:
    if not params:
        return family
    return f"{family}({', '.join(f'{key}={value}' for key, value in params)})"


# --------------------------------------------------------------------------- constant rules


@dataclass(frozen=True)
class NoHedge:
    """No hedge: ``h[t] = 0``."""

    family: ClassVar[str] = "none"

    @property
    def name(self) -> str:
        """``"none"``."""
        return self.family

    def warmup_bars(self) -> int:
        """0: no estimation."""
        return 0

    def hedge_ratio(self, coin_ret: np.ndarray, fut_ret: np.ndarray) -> np.ndarray:
        """``h[t] = 0`` for every bar."""
        coin, _ = _returns(coin_ret, fut_ret)
        return np.zeros(coin.shape[0])


@dataclass(frozen=True)
class Fixed:
    """Constant hedge ratio: ``h[t] = ratio``.

    Parameters
    ----------
    ratio : float
        Futures notional shorted per unit of coin notional, finite and >= 0.
    """

    ratio: float
    family: ClassVar[str] = "fixed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", _check_real(self.family, "ratio", self.ratio))

    @property
    def name(self) -> str:
        """``"fixed(ratio=...)"``."""
        return _label(self.family, [("ratio", self.ratio)])

    def warmup_bars(self) -> int:
        """0: no estimation."""
        return 0

    def hedge_ratio(self, coin_ret: np.ndarray, fut_ret: np.ndarray) -> np.ndarray:
        """``h[t] = ratio`` for every bar."""
        coin, _ = _returns(coin_ret, fut_ret)
        return np.full(coin.shape[0], self.ratio)


@dataclass(frozen=True)
class Notional:
    """Classic notional hedge: ``h[t] = fraction``.

    The simulator then shorts ``fraction * coin notional / (contract size * F_t)``
    contracts, i.e. the classic contracts = coin notional / contract notional.

    Parameters
    ----------
    fraction : float, default 1.0
        Share of the coin notional hedged, finite and >= 0.
    """

    fraction: float = 1.0
    family: ClassVar[str] = "notional"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", _check_real(self.family, "fraction", self.fraction))

    @property
    def name(self) -> str:
        """``"notional"``, or ``"notional(fraction=...)"`` when ``fraction != 1``."""
        return _label(self.family, [] if self.fraction == 1.0 else [("fraction", self.fraction)])

    def warmup_bars(self) -> int:
        """0: no estimation."""
        return 0

    def hedge_ratio(self, coin_ret: np.ndarray, fut_ret: np.ndarray) -> np.ndarray:
        """``h[t] = fraction`` for every bar."""
        coin, _ = _returns(coin_ret, fut_ret)
        return np.full(coin.shape[0], self.fraction)


# --------------------------------------------------------------------------- estimated rules


@dataclass(frozen=True)
class MinVariance:
    """Rolling minimum-variance (OLS) hedge ratio.

    ``h[t] = sum (F_i - Fbar)(S_i - Sbar) / sum (F_i - Fbar)**2`` over the last
    ``window`` observations ``i`` up to and including ``t``: the OLS slope (with
    intercept) of coin returns ``S`` on futures returns ``F``, ``Cov(S, F) / Var(F)``.

    Parameters
    ----------
    window : int
        Observations (bars with both returns finite) in the window, >= 2.
    warmup : {"none", "notional"}, default "notional"
        Hedge before ``min_periods`` observations exist: 0 or 1.
    min_periods : int, optional
        Observations needed for an estimate, in ``[2, window]``; defaults to
        ``window`` (only full windows). With fewer than ``window`` observations the
        window is all observations so far.
    """

    window: int
    warmup: WarmUp = "notional"
    min_periods: int | None = None
    family: ClassVar[str] = "min_variance"

    def __post_init__(self) -> None:
        window = _check_int(self.family, "window", self.window, 2)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "warmup", _check_warmup(self.family, self.warmup))
        min_periods = window if self.min_periods is None else self.min_periods
        object.__setattr__(self, "min_periods", _check_int(self.family, "min_periods", min_periods, 2, window))

    @property
    def name(self) -> str:
        """``"min_variance(window=...)"`` plus any non-default ``warmup`` / ``min_periods``."""
        params: list[tuple[str, object]] = [("window", self.window)]
        if self.warmup != "notional":
            params.append(("warmup", self.warmup))
        if self.min_periods != self.window:
            params.append(("min_periods", self.min_periods))
        return _label(self.family, params)

    def warmup_bars(self) -> int:
        """``min_periods``."""
        assert self.min_periods is not None  # resolved in __post_init__
        return self.min_periods

    def hedge_ratio(self, coin_ret: np.ndarray, fut_ret: np.ndarray) -> np.ndarray:
        """Rolling OLS slope, forward-filled over missing bars, warm-up value before it exists."""
        coin, fut = _returns(coin_ret, fut_ret)
        raw = kernels.rolling_beta_nb(fut, coin, self.window, self.warmup_bars())
        return kernels.fill_hedge_nb(raw, _WARMUP_VALUE[self.warmup])


@dataclass(frozen=True)
class EWMA:
    """Exponentially weighted minimum-variance hedge ratio.

    With ``lam = 0.5 ** (1 / halflife)`` and weights ``lam**age`` (age in
    observations, normalised to sum to one), EW means ``mS, mF`` and
    ``h[t] = sum w (F - mF)(S - mS) / sum w (F - mF)**2``, updated recursively
    (see :func:`strategies.kernels.ewma_beta_nb`).

    Parameters
    ----------
    halflife : float
        Observations after which a weight halves, finite and > 0.
    warmup : {"none", "notional"}, default "notional"
        Hedge before ``min_periods`` observations exist: 0 or 1.
    min_periods : int, optional
        Observations needed for an estimate, >= 2; defaults to
        ``max(2, ceil(halflife))`` (by then the newest ``halflife`` observations
        carry at least half of the weight the estimator will give them).
    """

    halflife: float
    warmup: WarmUp = "notional"
    min_periods: int | None = None
    family: ClassVar[str] = "ewma"

    def __post_init__(self) -> None:
        halflife = _check_real(self.family, "halflife", self.halflife, positive=True)
        object.__setattr__(self, "halflife", halflife)
        object.__setattr__(self, "warmup", _check_warmup(self.family, self.warmup))
        min_periods = self._default_min_periods() if self.min_periods is None else self.min_periods
        object.__setattr__(self, "min_periods", _check_int(self.family, "min_periods", min_periods, 2))

    def _default_min_periods(self) -> int:
        return max(2, math.ceil(self.halflife))

    @property
    def decay(self) -> float:
        """``lam = 0.5 ** (1 / halflife)``."""
        return 0.5 ** (1.0 / self.halflife)

    @property
    def name(self) -> str:
        """``"ewma(halflife=...)"`` plus any non-default ``warmup`` / ``min_periods``."""
        params: list[tuple[str, object]] = [("halflife", self.halflife)]
        if self.warmup != "notional":
            params.append(("warmup", self.warmup))
        if self.min_periods != self._default_min_periods():
            params.append(("min_periods", self.min_periods))
        return _label(self.family, params)

    def warmup_bars(self) -> int:
        """``min_periods``."""
        assert self.min_periods is not None  # resolved in __post_init__
        return self.min_periods

    def hedge_ratio(self, coin_ret: np.ndarray, fut_ret: np.ndarray) -> np.ndarray:
        """EWMA beta, forward-filled over missing bars, warm-up value before it exists."""
        coin, fut = _returns(coin_ret, fut_ret)
        raw = kernels.ewma_beta_nb(fut, coin, self.decay, self.warmup_bars())
        return kernels.fill_hedge_nb(raw, _WARMUP_VALUE[self.warmup])


@dataclass(frozen=True)
class Dynamic:
    """DCC-GARCH hedge ratio, fitted walk-forward.

    Two variance-targeted GARCH(1,1) and a correlation-targeted DCC(1,1), each
    estimated by Gaussian QML (see :mod:`strategies.kernels`), re-estimated every
    ``refit_bars`` observations on the data up to then and used as filters until
    the next refit::

        h[t] = rho_{t+1|t} * sigma_{S, t+1|t} / sigma_{F, t+1|t}

    from the one-step-ahead forecasts made with information up to ``t``.

    Parameters
    ----------
    refit_bars : int
        Observations between re-estimations, >= 1. Cost grows as 1 / refit_bars:
        on 39,000 bars (expanding window) about 0.45 s for 720 and 1.9 s for 168.
    min_periods : int, default 500
        Observations before the first fit, >= 100 (Gaussian QML of a GARCH is
        unreliable on shorter samples). Until then ``h`` is the warm-up value.
    fit_window : int, optional
        Estimate on at most the last ``fit_window`` observations (rolling), >= ``min_periods``;
        ``None`` (default) uses all observations so far (expanding).
    warmup : {"none", "notional"}, default "notional"
        Hedge before the first fit: 0 or 1.
    """

    refit_bars: int
    min_periods: int = 500
    fit_window: int | None = None
    warmup: WarmUp = "notional"
    family: ClassVar[str] = "dynamic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "refit_bars", _check_int(self.family, "refit_bars", self.refit_bars, 1))
        min_periods = _check_int(self.family, "min_periods", self.min_periods, 100)
        object.__setattr__(self, "min_periods", min_periods)
        if self.fit_window is not None:
            object.__setattr__(
                self, "fit_window", _check_int(self.family, "fit_window", self.fit_window, min_periods)
            )
        object.__setattr__(self, "warmup", _check_warmup(self.family, self.warmup))

    @property
    def name(self) -> str:
        """``"dynamic(refit_bars=...)"`` plus any non-default parameter."""
        params: list[tuple[str, object]] = [("refit_bars", self.refit_bars)]
        if self.min_periods != 500:
            params.append(("min_periods", self.min_periods))
        if self.fit_window is not None:
            params.append(("fit_window", self.fit_window))
        if self.warmup != "notional":
            params.append(("warmup", self.warmup))
        return _label(self.family, params)

    def warmup_bars(self) -> int:
        """``min_periods``."""
        return self.min_periods

    def hedge_ratio(self, coin_ret: np.ndarray, fut_ret: np.ndarray) -> np.ndarray:
        """Walk-forward DCC-GARCH beta, forward-filled over missing bars, warm-up value before it exists."""
        coin, fut = _returns(coin_ret, fut_ret)
        raw = kernels.dcc_garch_beta(fut, coin, self.refit_bars, self.min_periods, self.fit_window)
        return kernels.fill_hedge_nb(raw, _WARMUP_VALUE[self.warmup])


# --------------------------------------------------------------------------- factory

RULES: dict[str, type[HedgeRule]] = {
    cls.family: cls  # type: ignore[misc]
    for cls in (NoHedge, Fixed, Notional, MinVariance, EWMA, Dynamic, MultiMinVariance)
}
"""Rule classes by family name."""


def make_rule(family: str, **params: object) -> HedgeRule:
    """Build a rule from its family name and parameters (e.g. from a config table).

    Parameters
    ----------
    family : str
        One of the keys of :data:`RULES`.
    **params
        Constructor parameters of that rule.

    Returns
    -------
    HedgeRule

    Raises
    ------
    ConfigError
        Unknown family (key ``rules.<family>``), unknown or missing parameter, or an
        invalid value (key ``rules.<family>.<param>``).
    """
    expected = ", ".join(repr(name) for name in RULES)
    if not isinstance(family, str) or family not in RULES:
        raise ConfigError(f"rules.{family}", f"unknown rule {family!r}; expected one of {expected}")
    cls = RULES[family]
    accepted = [f for f in fields(cls) if f.init]  # type: ignore[arg-type]
    names = [f.name for f in accepted]
    for param in params:
        if param not in names:
            options = ", ".join(repr(name) for name in names) if names else "no parameters"
            problem = f"unknown parameter {param!r} of rule {family!r}; expected {options}"
            raise ConfigError(_key(family, param), problem)
    for f in accepted:
        if f.default is MISSING and f.default_factory is MISSING and f.name not in params:
            raise ConfigError(_key(family, f.name), f"missing required parameter {f.name!r} of rule {family!r}")
    return cls(**params)


# --------------------------------------------------------------------------- whole-sample statistics


def _finite_pairs(coin_ret: np.ndarray, fut_ret: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coin, fut = _returns(coin_ret, fut_ret)
    keep = np.isfinite(coin) & np.isfinite(fut)
    return coin[keep], fut[keep]


def ols_beta(coin_ret: np.ndarray, fut_ret: np.ndarray) -> float:
    """Whole-sample OLS slope of coin returns on futures returns (with intercept).

    ``beta = sum (F - Fbar)(S - Sbar) / sum (F - Fbar)**2`` over all bars where both
    returns are finite: the in-sample minimum-variance hedge ratio.

    Returns
    -------
    float
        NaN with fewer than 2 finite pairs or a constant futures return.
    """
    coin, fut = _finite_pairs(coin_ret, fut_ret)
    if coin.size < 2:
        return math.nan
    dx = fut - fut.mean()
    sxx = float(dx @ dx)
    if not sxx > kernels.DEGENERATE_REL * (sxx + coin.size * float(fut.mean()) ** 2):
        return math.nan
    return float(dx @ (coin - coin.mean())) / sxx


def oracle_r2(coin_ret: np.ndarray, fut_ret: np.ndarray) -> float:
    """In-sample squared correlation of coin and futures returns.

    ``rho**2 = Sxy**2 / (Sxx * Syy)`` with demeaned sums over all bars where both
    returns are finite. Equals the Ederington hedge effectiveness of the
    in-sample OLS hedge: the most variance any constant linear hedge removes.

    Returns
    -------
    float
        NaN with fewer than 2 finite pairs or a constant series.
    """
    coin, fut = _finite_pairs(coin_ret, fut_ret)
    if coin.size < 2:
        return math.nan
    dx = fut - fut.mean()
    dy = coin - coin.mean()
    sxx = float(dx @ dx)
    syy = float(dy @ dy)
    n = coin.size
    if not (
        sxx > kernels.DEGENERATE_REL * (sxx + n * float(fut.mean()) ** 2)
        and syy > kernels.DEGENERATE_REL * (syy + n * float(coin.mean()) ** 2)
    ):
        return math.nan
    sxy = float(dx @ dy)
    return sxy * sxy / (sxx * syy)
