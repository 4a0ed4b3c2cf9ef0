"""Two-instrument (or k-instrument) minimum-variance hedge weights: the ``multi_min_variance`` family.

The rule shorts several futures at once -- e.g. the AI index *and* BTC -- with weights from
a rolling multivariate regression of the coin's returns on the instruments' returns,
walk-forward like :class:`strategies.rules.MinVariance`::

    S_i = a + h_1 F_1,i + ... + h_k F_k,i + e_i,   i = the last ``window`` observations up to t

``h[t] = (h_1, ..., h_k)`` is the OLS slope vector with intercept, ``(X'X)^-1 X'y`` on the
centred data; an *observation* is a bar where the coin and every instrument return are
finite. In sample, the k-instrument R^2 can only be >= any single instrument's; out of
sample it need not be, which is what a replay would show.

The replay (:mod:`backtest.multi_run`) shorts one futures leg per instrument, leg ``i``
sized by ``h_i[t]`` exactly as a single-instrument rule with hedge ratio ``h_i`` would be,
each leg on its own (isolated) margin account holding ``collateral_split[i]`` of the
configured collateral and reserve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from backtest.errors import ConfigError

__all__ = ["rolling_multi_beta", "MultiMinVariance", "is_multi"]

#: relative size below which the centred cross-product matrix counts as singular
_DEGENERATE_REL = 1e-9


def rolling_multi_beta(y: np.ndarray, X: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Rolling OLS slopes (with intercept) of ``y`` on the columns of ``X``; walk-forward.

    Parameters
    ----------
    y : ndarray, shape (T,)
        Coin returns.
    X : ndarray, shape (T, k)
        Instrument returns.
    window : int
        Observations (bars with ``y`` and all of ``X[t]`` finite) per regression, >= k + 1.
    min_periods : int
        Observations needed for an estimate, in ``[k + 1, window]``; with fewer than
        ``window`` the regression uses all observations so far.

    Returns
    -------
    ndarray, shape (T, k)
        ``beta[t]`` uses observations at bars ``<= t`` only; NaN on bars that are not
        observations, before ``min_periods`` observations, and where the centred
        cross-product matrix ``A = Sxx - Sx Sx' / n`` is singular (smallest eigenvalue
        <= 1e-9 x its trace).

    Notes
    -----
    Window sums ``n, Sx, Sy, Sxx, Sxy`` come from cumulative sums over the observations
    (shifted by the means of the first ``min_periods`` observations);
    the slopes solve ``(Sxx - Sx Sx'/n) beta = Sxy - Sx Sy / n``.
    """
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"expected y of shape (T,) and X of shape (T, k), got {y.shape} and {X.shape}")
    T, k = X.shape
    if not k + 1 <= min_periods <= window:
        raise ValueError(f"expected k + 1 <= min_periods <= window, got k={k}, {min_periods}, {window}")
    out = np.full((T, k), np.nan)
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    rows = np.flatnonzero(ok)
    n_obs = rows.size
    if n_obs < min_periods:
        return out
    yo, Xo = y[rows], X[rows]
    # shift by the means of the first min_periods observations (data every estimate may use):
    # shifts do not change slopes and keep the sums small, and appending bars changes nothing
    yo = yo - yo[:min_periods].mean()
    Xo = Xo - Xo[:min_periods].mean(axis=0)

    def csum(a: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((1, *a.shape[1:])), np.cumsum(a, axis=0)])

    c_x, c_y = csum(Xo), csum(yo)
    c_xx = csum(Xo[:, :, None] * Xo[:, None, :])
    c_xy = csum(Xo * yo[:, None])
    j = np.arange(n_obs)
    lo = np.maximum(j + 1 - window, 0)
    n = (j + 1 - lo).astype(float)
    sx, sy = c_x[j + 1] - c_x[lo], c_y[j + 1] - c_y[lo]
    sxx, sxy = c_xx[j + 1] - c_xx[lo], c_xy[j + 1] - c_xy[lo]
    a = sxx - sx[:, :, None] * sx[:, None, :] / n[:, None, None]
    b = sxy - sx * (sy / n)[:, None]
    # singular (collinear instruments, constant returns): smallest eigenvalue tiny against the trace
    eig = np.linalg.eigvalsh(a)
    good = (n >= min_periods) & (eig[:, 0] > _DEGENERATE_REL * np.maximum(eig.sum(axis=1), 1e-300))
    beta = np.full((n_obs, k), np.nan)
    if good.any():
        beta[good] = np.linalg.solve(a[good], b[good][:, :, None])[:, :, 0]
    out[rows] = beta
    return out


@dataclass(frozen=True, kw_only=True)
class MultiMinVariance:
    """Rolling multivariate minimum-variance weights on k instruments.

    Parameters
    ----------
    instruments : tuple of str
        The futures underlyings, in order: each ``"index"`` or a symbol of the price data;
        at least 2, all distinct (whether a symbol exists is checked when the data is read).
    window : int
        Observations per regression (>= k + 1).
    min_periods : int, optional
        Observations before the first estimate; default ``window``.
    warmup : tuple of float, optional
        Weights used before the first estimate (and carried over non-observation bars
        until then); default 1 on the first instrument, 0 on the others (a notional hedge
        on the index).
    collateral_split : tuple of float, optional
        Fractions of ``margin.collateral_usd`` and ``margin.reserve_usd`` given to each leg's
        isolated margin account: >= 0, summing to 1 (within 1e-9); default equal, ``1 / k`` each.
    """

    instruments: tuple[str, ...]
    window: int
    min_periods: int | None = None
    warmup: tuple[float, ...] | None = None
    collateral_split: tuple[float, ...] | None = None
    family: ClassVar[str] = "multi_min_variance"

    def __post_init__(self) -> None:
        self._check_instruments()
        lo = len(self.instruments) + 1  # an intercept and k slopes
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < lo:
            raise ConfigError("rules.multi_min_variance.window", f"expected an integer >= {lo}, got {self.window!r}")
        mp = self.window if self.min_periods is None else self.min_periods
        if isinstance(mp, bool) or not isinstance(mp, int) or not lo <= mp <= self.window:
            raise ConfigError("rules.multi_min_variance.min_periods", f"expected an integer in [{lo}, {self.window}], got {mp!r}")
        object.__setattr__(self, "min_periods", mp)
        if self.warmup is not None:
            if not isinstance(self.warmup, (list, tuple)) or not all(
                    isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in self.warmup):
                raise ConfigError("rules.multi_min_variance.warmup", f"expected finite weights, got {self.warmup!r}")
            object.__setattr__(self, "warmup", tuple(float(w) for w in self.warmup))
        self._check_split()

    def _check_instruments(self) -> None:
        key = "rules.multi_min_variance.instruments"
        value = self.instruments
        if not isinstance(value, (list, tuple)) or not all(isinstance(u, str) and u for u in value):
            raise ConfigError(key, f"expected a list of futures underlyings ('index' or a symbol), got {value!r}")
        if len(value) < 2:
            raise ConfigError(key, f"expected at least 2 instruments, got {list(value)!r}")
        if len(set(value)) != len(value):
            raise ConfigError(key, f"expected distinct instruments, got {list(value)!r}")
        object.__setattr__(self, "instruments", tuple(value))

    def _check_split(self) -> None:
        key = "rules.multi_min_variance.collateral_split"
        k = len(self.instruments)
        value = self.collateral_split
        if value is None:
            object.__setattr__(self, "collateral_split", tuple(1.0 / k for _ in range(k)))
            return
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in value):
            raise ConfigError(key, f"expected {k} finite fractions, got {value!r}")
        if len(value) != k:
            raise ConfigError(key, f"expected {k} fractions (one per instrument), got {len(value)}")
        if any(w < 0 for w in value) or abs(sum(value) - 1.0) > 1e-9:
            raise ConfigError(key, f"expected fractions >= 0 summing to 1, got {list(value)!r}")
        object.__setattr__(self, "collateral_split", tuple(float(w) for w in value))

    @property
    def name(self) -> str:
        return f"multi_min_variance({'+'.join(self.instruments)}, window={self.window})"

    def warmup_bars(self) -> int:
        assert self.min_periods is not None
        return self.min_periods

    def weights(self, coin_ret: np.ndarray, fut_rets: np.ndarray) -> np.ndarray:
        """Finite hedge weights, shape (T, k): the rolling slopes, forward-filled over bars
        without an estimate, the warm-up weights before the first one."""
        X = np.asarray(fut_rets, dtype=float)
        k = X.shape[1]
        if k != len(self.instruments):
            raise ValueError(f"expected {len(self.instruments)} instrument return columns, got {k}")
        if self.min_periods is not None and self.min_periods < k + 1:
            raise ConfigError("rules.multi_min_variance.min_periods", f"expected >= {k + 1} for {k} instruments")
        warm = np.zeros(k)
        warm[0] = 1.0
        if self.warmup is not None:
            if len(self.warmup) != k:
                raise ConfigError("rules.multi_min_variance.warmup", f"expected {k} weights, got {len(self.warmup)}")
            warm = np.asarray(self.warmup, dtype=float)
        assert self.min_periods is not None
        raw = rolling_multi_beta(coin_ret, X, self.window, self.min_periods)
        out = np.empty_like(raw)
        last = warm
        for t in range(raw.shape[0]):
            if np.isfinite(raw[t]).all():
                last = raw[t]
            out[t] = last
        return out


def is_multi(rule: object) -> bool:
    """True for a rule that holds one futures leg per instrument (``multi_min_variance``)."""
    return isinstance(rule, MultiMinVariance)
