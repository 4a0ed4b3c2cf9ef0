"""Risk statistics of per-bar returns, as plain functions over NumPy arrays.

Every function takes per-bar simple returns (``ret_hedged`` / ``ret_unhedged`` of the
ledger, i.e. P&L over the bar divided by the coin notional at the start of the bar)
and ignores NaN entries (each rule's first bar has no return). Paired functions
(:func:`hedge_effectiveness`, :func:`block_bootstrap_he`) drop a bar when either
member of the pair is NaN, so both variances are taken over the same bars.

Conventions
-----------
* Variances and standard deviations use ``ddof = 1``.
* Annualisation uses 365 days a year (crypto markets never close).
* Losses (VaR, CVaR, drawdown) are reported as positive fractions.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from backtest.metrics import DAYS_PER_YEAR  # one definition of the 365-day year

__all__ = [
    "DAYS_PER_YEAR",
    "MIN_BARS",
    "REPORT_METRICS",
    "hedge_effectiveness",
    "default_block_length",
    "block_bootstrap_he",
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
    "he_ci_lo": "lower bound of the hedge-effectiveness bootstrap interval",
    "he_ci_hi": "upper bound of the hedge-effectiveness bootstrap interval",
    "he_ci_level": "confidence level of that interval (0.95)",
    "he_block_len": "bootstrap block length (bars)",
    "he_n_boot": "number of bootstrap resamples",
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


def default_block_length(n: int, bars_per_day: float) -> int:
    r"""Default block length of :func:`block_bootstrap_he`, in bars.

    .. math:: L = \max\left(\lceil n^{1/3} \rceil,\ \operatorname{round}(\text{bars per day})\right)

    :math:`n^{1/3}` is the rate at which the mean-squared-error-optimal block length of
    a block bootstrap of a variance-type statistic grows (Hall, Horowitz & Jing 1995);
    the floor of one day keeps the intraday volatility pattern and short-lived volatility
    clusters inside a block for hourly bars. Examples: 39,000 hourly bars give 34 bars,
    2,000 hourly bars give 24 bars, 1,600 daily bars give 12 bars.

    Parameters
    ----------
    n : int
        Number of paired bars.
    bars_per_day : float
        Bars per day (24 for hourly, 1 for daily).

    Returns
    -------
    int
        Block length, at least 1 and at most ``n`` (1 when ``n < 1``).
    """
    if n < 1:
        return 1
    length = max(math.ceil(round(n ** (1.0 / 3.0), 9)), int(round(bars_per_day)), 1)
    return min(length, n)


def block_bootstrap_he(
    ret_h: ArrayLike,
    ret_u: ArrayLike,
    *,
    block_len: int,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int,
) -> tuple[float, float, float]:
    r"""Hedge effectiveness with a circular moving-block bootstrap percentile interval.

    Variant: the *circular moving-block bootstrap* (Künsch 1989; Politis & Romano 1992).
    The paired bars :math:`(r^h_t, r^u_t)` are resampled jointly, so the cross-dependence
    of hedged and unhedged returns is kept. Each resample is built from
    :math:`k = \lceil n / L \rceil` blocks of :math:`L` consecutive bars whose start bars
    are drawn uniformly from the :math:`n` bars, wrapping around the end of the sample
    (so every bar is equally likely to be drawn); the last block is cut so the resample
    has exactly :math:`n` bars. HE is computed on each resample, and the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the ``n_boot`` values
    (percentile method). A suitable block length is :func:`default_block_length`.

    The variances of a resample are computed from block sums of :math:`r` and
    :math:`r^2` (after centring both series on their sample means, which leaves
    variances unchanged and keeps the sums well conditioned), so the cost is
    :math:`O(n + n_{boot} \cdot k)`.

    Parameters
    ----------
    ret_h, ret_u : array_like
        Per-bar returns of the hedged and the unhedged position (same length); bars
        where either is NaN are dropped first.
    block_len : int
        Block length :math:`L` in bars, ``1 <= L``; values above ``n`` are cut to ``n``.
    n_boot : int, default 1000
        Number of bootstrap resamples.
    level : float, default 0.95
        Two-sided confidence level of the interval, in (0, 1).
    seed : int
        Seed of the ``numpy.random.default_rng`` generator (results are reproducible).

    Returns
    -------
    point, lo, hi : float
        HE of the sample and the interval bounds; ``lo`` and ``hi`` are NaN when fewer
        than :data:`MIN_BARS` paired bars exist or the sample is degenerate.
    """
    if block_len < 1:
        raise ValueError(f"block_len must be at least 1, got {block_len}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    h, u = _paired(ret_h, ret_u)
    point = hedge_effectiveness(h, u)
    n = h.size
    if n < MIN_BARS or not math.isfinite(point):
        return point, math.nan, math.nan
    length = min(block_len, n)
    k = math.ceil(n / length)
    last = n - (k - 1) * length  # length of the final, cut block (1..length)

    # circular block sums of x and x^2 for every start bar, full and cut length
    def block_sums(x: FloatArray, width: int) -> FloatArray:
        ext = np.concatenate([x, x[: width - 1]]) if width > 1 else x
        csum = np.concatenate([[0.0], np.cumsum(ext)])
        return csum[width : width + n] - csum[:n]

    sums = {}
    for name, x in (("h", h - h.mean()), ("u", u - u.mean())):
        sums[name] = (
            block_sums(x, length),
            block_sums(x * x, length),
            block_sums(x, last),
            block_sums(x * x, last),
        )

    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_boot, k))
    full, cut = starts[:, : k - 1], starts[:, k - 1]

    def resample_var(name: str) -> FloatArray:
        s1, s2, c1, c2 = sums[name]
        total = s1[full].sum(axis=1) + c1[cut]
        total_sq = s2[full].sum(axis=1) + c2[cut]
        return (total_sq - total * total / n) / (n - 1)

    var_h = resample_var("h")
    var_u = resample_var("u")
    with np.errstate(divide="ignore", invalid="ignore"):
        he = 1.0 - var_h / var_u
    he = he[np.isfinite(he)]
    if he.size == 0:
        return point, math.nan, math.nan
    lo, hi = np.quantile(he, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return point, float(lo), float(hi)


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
