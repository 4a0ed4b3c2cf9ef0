"""Risk statistics of per-bar returns, as plain functions over NumPy arrays.

Every function takes per-bar simple returns (``ret_hedged`` / ``ret_unhedged`` of the
ledger, i.e. P&L over the bar divided by the coin notional at the start of the bar)
and ignores NaN entries (each rule's first bar has no return). Paired functions
(:func:`hedge_effectiveness`, :func:`he_interval`) drop a bar when either
member of the pair is NaN, so both variances are taken over the same bars.

Conventions
-----------
* Variances and standard deviations use ``ddof = 1``.
* Annualisation uses 365 days a year (crypto markets never close).
* Losses (VaR, CVaR, drawdown) are reported as positive fractions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from backtest.metrics import DAYS_PER_YEAR  # one definition of the 365-day year

__all__ = [
    "DAYS_PER_YEAR",
    "MIN_BARS",
    "REPORT_METRICS",
    "hedge_effectiveness",
    "Interval",
    "BOOTSTRAP_METHOD",
    "block_length",
    "he_interval",
    "paired_he_difference",
    "paired_mean_difference",
    "var_cvar",
    "max_drawdown",
    "drawdown",
    "annualised_vol",
    "too_short",
    "efficient_frontier",
]


#: Fewest bars of returns for which a variance-based statistic is reported without a warning note.
MIN_BARS: Final[int] = 30

#: Per-rule columns the report adds to ``metrics.csv`` (computed from the ledger), with meaning.
REPORT_METRICS: Final[dict[str, str]] = {
    "he_bar": "HE of per-bar returns",
    "he_1D": "HE of returns over non-overlapping 1-day spans (P&L summed over the span / coin notional at its start)",
    "he_7D": "HE of returns over non-overlapping 7-day spans",
    "he_horizon": "headline horizon ([report] horizon): the horizon of the interval and the paired tests",
    "he_headline": "HE at the headline horizon (the he_bar, he_1D or he_7D it names): the point of the interval",
    "he_ci_lo": "lower bound of the HE bootstrap interval at the headline horizon",
    "he_ci_hi": "upper bound of the HE bootstrap interval at the headline horizon",
    "he_ci_level": "confidence level of the intervals (0.95)",
    "he_block_len": "bootstrap block length (spans of the headline horizon; arch optimal_block_length)",
    "he_n_boot": "number of bootstrap resamples",
    "he_boot_seed": "seed of the bootstrap generator",
    "best_rule": "rule with the highest headline HE among those never liquidated (the paired tests' reference)",
    "he_diff_vs_best": "HE(rule) - HE(best_rule) at the headline horizon",
    "he_diff_lo": "lower bound of the paired bootstrap interval of he_diff_vs_best",
    "he_diff_hi": "upper bound of the paired bootstrap interval of he_diff_vs_best",
    "cost_diff_vs_best_bps_per_year": "mean trading cost per span of rule minus best_rule, annualised (bps of notional)",
    "cost_diff_lo": "lower bound of the paired bootstrap interval of cost_diff_vs_best_bps_per_year",
    "cost_diff_hi": "upper bound of the paired bootstrap interval of cost_diff_vs_best_bps_per_year",
    "var95_hedged": "historical 95 % VaR of ret_hedged (loss per bar, fraction of coin notional)",
    "cvar95_hedged": "historical 95 % CVaR of ret_hedged",
    "var95_unhedged": "historical 95 % VaR of ret_unhedged",
    "cvar95_unhedged": "historical 95 % CVaR of ret_unhedged",
}

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


def _as_float(x: ArrayLike) -> FloatArray:
    """Return ``x`` as a 1-D float64 array (a copy only when needed)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array of returns, got shape {arr.shape}")
    return arr


def _paired(ret_h: ArrayLike, ret_u: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return the bars where both returns are finite."""
    h = _as_float(ret_h)
    u = _as_float(ret_u)
    if h.shape != u.shape:
        raise ValueError(f"hedged and unhedged returns differ in length: {h.size} vs {u.size}")
    ok = np.isfinite(h) & np.isfinite(u)
    return h[ok], u[ok]


def _finite(ret: ArrayLike) -> FloatArray:
    r = _as_float(ret)
    return r[np.isfinite(r)]


def hedge_effectiveness(ret_h: ArrayLike, ret_u: ArrayLike) -> float:
    r"""Ederington hedge effectiveness of paired per-bar returns.

    .. math:: HE = 1 - \frac{\operatorname{Var}(r^h)}{\operatorname{Var}(r^u)}

    with sample variances (``ddof = 1``) over the bars where both returns are finite.

    Parameters
    ----------
    ret_h, ret_u : array_like
        Per-bar returns of the hedged and the unhedged position (same length).

    Returns
    -------
    float
        HE (1 = all variance removed, 0 = none, negative = the hedge added variance);
        NaN when fewer than two paired bars exist or the unhedged variance is zero.
    """
    h, u = _paired(ret_h, ret_u)
    if h.size < 2:
        return math.nan
    var_u = float(np.var(u, ddof=1))
    if var_u == 0.0:
        return math.nan
    return 1.0 - float(np.var(h, ddof=1)) / var_u


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap interval.

    Attributes
    ----------
    point : float
        The statistic on the sample.
    lo, hi : float
        Percentile interval bounds (NaN when the sample is too short or degenerate).
    level : float
        Two-sided confidence level.
    block_len : int
        Block length of the circular block bootstrap (observations).
    reps : int
        Bootstrap resamples.
    seed : int
        Seed of the ``numpy.random.default_rng`` generator handed to arch.
    """

    point: float
    lo: float
    hi: float
    level: float
    block_len: int
    reps: int
    seed: int

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely above or below 0 (a significant difference)."""
        return bool(self.lo > 0.0 or self.hi < 0.0)


#: How the intervals are computed, for the report.
BOOTSTRAP_METHOD: Final[str] = (
    "circular block bootstrap (arch.bootstrap.CircularBlockBootstrap), block length from "
    "arch.bootstrap.optimal_block_length (Politis-White, circular), percentile intervals"
)


def block_length(*series: ArrayLike) -> int:
    r"""Data-driven block length for a bootstrap of variances of ``series``.

    Variances are means of squared deviations, so the dependence that matters is that of
    :math:`(x_t - \bar x)^2`: the block length is the largest ``circular`` optimal block
    length of :func:`arch.bootstrap.optimal_block_length` (Politis & White 2004, with the
    Patton, Politis & White 2009 correction) over the squared demeaned series, rounded up,
    within ``[1, n]`` (1 when no column gives a finite estimate, and with fewer than 8
    observations, where arch's estimator does not run).

    Parameters
    ----------
    *series : array_like
        Equal-length 1-D series without NaN.

    Returns
    -------
    int
    """
    from arch.bootstrap import optimal_block_length

    cols = [_as_float(x) for x in series]
    n = cols[0].size
    if n < _MIN_BLOCK_OBS:
        return 1
    sq = np.column_stack([(x - x.mean()) ** 2 for x in cols])
    sq = sq[:, sq.std(axis=0) > 0]
    if sq.shape[1] == 0:
        return 1
    with warnings.catch_warnings():
        # arch divides by a zero sum of squares when a series is constant over a tail; such a
        # column's estimate is NaN or inf and is skipped below
        warnings.simplefilter("ignore", RuntimeWarning)
        est = optimal_block_length(sq)["circular"].to_numpy(dtype=float)
    est = est[np.isfinite(est)]
    if est.size == 0:
        return 1
    return int(min(max(math.ceil(float(est.max())), 1), n))


#: fewest observations :func:`block_length` estimates from (arch's estimator raises below 8);
#: with fewer, resampling is by single observations
_MIN_BLOCK_OBS = 8


def _he_of(h: FloatArray, u: FloatArray) -> float:
    return 1.0 - float(np.var(h, ddof=1)) / float(np.var(u, ddof=1))


def _bootstrap(func, data: tuple[FloatArray, ...], point: float, *, block_len: int | None, reps: int,
               level: float, seed: int) -> Interval:
    """Percentile interval of ``func(*data)`` from arch's circular block bootstrap."""
    from arch.bootstrap import CircularBlockBootstrap

    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if block_len is not None and block_len < 1:
        raise ValueError(f"block_len must be at least 1, got {block_len}")
    n = data[0].size
    length = block_length(*data) if block_len is None else min(block_len, max(n, 1))
    if n < MIN_BARS or not math.isfinite(point):
        return Interval(point, math.nan, math.nan, level, length, reps, seed)
    bs = CircularBlockBootstrap(length, *data, seed=np.random.default_rng(seed))
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = bs.conf_int(lambda *x: np.array([func(*x)]), reps=reps, method="percentile", size=level)
    return Interval(point, float(ci[0, 0]), float(ci[1, 0]), level, length, reps, seed)


def he_interval(ret_h: ArrayLike, ret_u: ArrayLike, *, block_len: int | None = None, reps: int = 1000,
                level: float = 0.95, seed: int) -> Interval:
    r"""Hedge effectiveness with a circular block bootstrap percentile interval (arch).

    The pairs :math:`(r^h_t, r^u_t)` are resampled jointly in blocks of consecutive
    observations (wrapping around the end) by
    :class:`arch.bootstrap.CircularBlockBootstrap`; HE is computed on each resample and
    the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles.

    Parameters
    ----------
    ret_h, ret_u : array_like
        Hedged and unhedged returns at one horizon; pairs with a NaN are dropped.
    block_len : int, optional
        Block length; default :func:`block_length` of the pair.
    reps : int, default 1000
    level : float, default 0.95
    seed : int
        Seed of the generator handed to arch (results are reproducible).

    Returns
    -------
    Interval
        ``lo``/``hi`` NaN with fewer than :data:`MIN_BARS` pairs.
    """
    h, u = _paired(ret_h, ret_u)
    return _bootstrap(_he_of, (h, u), hedge_effectiveness(h, u), block_len=block_len, reps=reps, level=level,
                      seed=seed)


def paired_he_difference(ret_a: ArrayLike, ret_b: ArrayLike, ret_u: ArrayLike, *, block_len: int | None = None,
                         reps: int = 1000, level: float = 0.95, seed: int) -> Interval:
    r"""``HE(a) - HE(b)`` with a *paired* circular block bootstrap interval.

    .. math:: HE_a - HE_b = \frac{\operatorname{Var}(r^b) - \operatorname{Var}(r^a)}{\operatorname{Var}(r^u)}

    Both rules hedge the same holding, so the triples :math:`(r^a_t, r^b_t, r^u_t)` are
    resampled together: the common noise cancels and the interval measures only how
    differently the two rules hedged. An interval that excludes 0 is a significant
    difference (:attr:`Interval.excludes_zero`).
    """
    a, b, u = (_as_float(x) for x in (ret_a, ret_b, ret_u))
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(u)
    a, b, u = a[ok], b[ok], u[ok]

    def diff(x: FloatArray, y: FloatArray, z: FloatArray) -> float:
        return (float(np.var(y, ddof=1)) - float(np.var(x, ddof=1))) / float(np.var(z, ddof=1))

    point = diff(a, b, u) if a.size >= 2 and np.var(u) > 0 else math.nan
    return _bootstrap(diff, (a, b, u), point, block_len=block_len, reps=reps, level=level, seed=seed)


def paired_mean_difference(x_a: ArrayLike, x_b: ArrayLike, *, block_len: int | None = None, reps: int = 1000,
                           level: float = 0.95, seed: int) -> Interval:
    """``mean(x_a - x_b)`` with a paired circular block bootstrap interval (e.g. cost per span)."""
    a, b = _paired(x_a, x_b)
    d = a - b
    point = float(d.mean()) if d.size else math.nan
    if d.size and np.all(d == d[0]):
        return Interval(point, point, point, level, 1, reps, seed)
    return _bootstrap(lambda x: float(x.mean()), (d,), point, block_len=block_len, reps=reps, level=level, seed=seed)


def var_cvar(ret: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    r"""Historical Value-at-Risk and Conditional VaR of per-bar returns.

    Historical (non-parametric) method, no interpolation: sort the :math:`n` finite
    returns ascending, :math:`r_{(1)} \le \dots \le r_{(n)}`, and take the
    :math:`k = \lceil n (1 - \text{level}) \rceil` worst ones (at least one). Then

    .. math::
        \mathrm{VaR} = -r_{(k)}, \qquad
        \mathrm{CVaR} = -\frac{1}{k} \sum_{i=1}^{k} r_{(i)} .

    Both are losses per bar as positive fractions of the coin notional (negative when
    even the tail returns are gains). Example: 100 returns at ``level = 0.95`` give
    ``k = 5``: VaR is minus the 5th-worst return, CVaR minus the mean of the 5 worst.

    Parameters
    ----------
    ret : array_like
        Per-bar returns; NaN entries are ignored.
    level : float, default 0.95
        Confidence level in (0, 1).

    Returns
    -------
    var, cvar : float
        NaN when no finite return exists.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    r = np.sort(_finite(ret))
    if r.size == 0:
        return math.nan, math.nan
    k = max(1, math.ceil(round(r.size * (1.0 - level), 9)))
    return float(-r[k - 1]), float(-r[:k].mean())


def drawdown(ret: ArrayLike) -> FloatArray:
    r"""Drawdown path of the wealth index :math:`W_t = \prod_{s \le t} (1 + r_s)`.

    .. math:: DD_t = 1 - \frac{W_t}{\max(1, \max_{s \le t} W_s)}

    The starting wealth :math:`W_0 = 1` counts as a peak, so a loss on the first bar is a
    drawdown. NaN returns count as zero return.

    Parameters
    ----------
    ret : array_like
        Per-bar returns.

    Returns
    -------
    numpy.ndarray
        Drawdown per bar as a positive fraction (same length as ``ret``).
    """
    r = np.nan_to_num(_as_float(ret), nan=0.0)
    wealth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0)) if wealth.size else wealth
    return 1.0 - wealth / peak


def max_drawdown(ret: ArrayLike) -> float:
    r"""Maximum drawdown of :math:`\prod (1 + r)`, as a positive fraction.

    .. math:: MDD = \max_t DD_t  \quad\text{(see :func:`drawdown`)}

    Example: returns ``[0.10, -0.20, 0.05, -0.10]`` give wealth
    ``1.10, 0.88, 0.924, 0.8316``; the peak is 1.10, so MDD = 1 - 0.8316 / 1.10 = 0.244.

    Parameters
    ----------
    ret : array_like
        Per-bar returns; NaN counts as zero return.

    Returns
    -------
    float
        0.0 for an empty or never-falling series.
    """
    dd = drawdown(ret)
    return float(dd.max()) if dd.size else 0.0


def annualised_vol(ret: ArrayLike, bars_per_day: float) -> float:
    r"""Annualised volatility of per-bar returns (365-day year).

    .. math:: \sigma_{ann} = \operatorname{sd}(r) \sqrt{365 \cdot \text{bars per day}}

    Parameters
    ----------
    ret : array_like
        Per-bar returns; NaN entries are ignored.
    bars_per_day : float
        Bars per day (24 for hourly bars, 1 for daily bars).

    Returns
    -------
    float
        NaN with fewer than two finite returns.
    """
    if bars_per_day <= 0:
        raise ValueError(f"bars_per_day must be positive, got {bars_per_day}")
    r = _finite(ret)
    if r.size < 2:
        return math.nan
    return float(np.std(r, ddof=1) * math.sqrt(DAYS_PER_YEAR * bars_per_day))


def too_short(n: int) -> str | None:
    """A plain-words note when ``n`` bars of returns are too few to say anything.

    Parameters
    ----------
    n : int
        Number of bars with a return.

    Returns
    -------
    str or None
        ``None`` when ``n >= MIN_BARS`` (30), else a sentence for the report.
    """
    if n >= MIN_BARS:
        return None
    if n <= 0:
        return "No bars with returns in this window: nothing can be measured."
    return (
        f"Only {n} bar{'s' if n != 1 else ''} of returns in this window: too few "
        f"(fewer than {MIN_BARS}) to say anything reliable about risk or hedge effectiveness."
    )


def efficient_frontier(he: ArrayLike, cost: ArrayLike) -> npt.NDArray[np.bool_]:
    """Mask of the variants not dominated on (higher HE, lower cost).

    Variant *i* is dominated when some variant *j* has ``he[j] >= he[i]`` and
    ``cost[j] <= cost[i]`` with at least one inequality strict. Variants with a NaN
    in either coordinate are never on the frontier and never dominate.

    Parameters
    ----------
    he : array_like
        Hedge effectiveness per variant (higher is better).
    cost : array_like
        Cost per variant, e.g. cost drag in bps per year (lower is better).

    Returns
    -------
    numpy.ndarray of bool
        True for the frontier variants.
    """
    e = _as_float(he)
    c = _as_float(cost)
    if e.shape != c.shape:
        raise ValueError(f"he and cost differ in length: {e.size} vs {c.size}")
    ok = np.isfinite(e) & np.isfinite(c)
    ge = (e[None, :] >= e[:, None]) & (c[None, :] <= c[:, None])
    strict = (e[None, :] > e[:, None]) | (c[None, :] < c[:, None])
    dominated = (ge & strict & ok[None, :]).any(axis=1)
    return ok & ~dominated
