"""Numeric kernels behind the hedge rules: plain functions over float64 arrays.

Every fast kernel (``*_nb``, compiled with ``numba.njit(cache=True)``) has a slow,
obvious reference (``*_ref``) written in plain Python/NumPy; the tests hold the
fast one to the reference on random inputs with missing values.

Conventions shared by all estimators
------------------------------------
``x`` is the regressor (the futures return ``r_F``) and ``y`` the regressand (the
coin return ``r_S``); a *beta* is the slope of ``y`` on ``x``, i.e. the hedge ratio.

Missing data
    A bar is an *observation* when both ``x[t]`` and ``y[t]`` are finite. Other bars
    (NaN or inf in either series, e.g. ``t = 0`` where no return exists) are skipped:
    they are neither treated as zero returns nor counted in windows, and they do not
    decay exponential weights. Estimators therefore work on the sequence of
    observations; windows, half-lives and refit intervals count observations.
Output
    Kernels return ``NaN`` at bars that are not observations and wherever the
    estimate is undefined (fewer than ``min_periods`` observations, or a regressor
    with no variance). :func:`fill_hedge_nb` turns that into a finite hedge path
    (last value carried forward, warm-up value before the first estimate).
Degenerate regressor
    A (weighted) variance ``v`` of ``x`` with mean ``m`` counts as zero when
    ``v <= 1e-10 * (v + m**2)``, i.e. when the coefficient of variation is below
    1e-5; this makes "constant" robust to rounding and is scale invariant.

Dynamic model (GARCH(1,1) volatilities + DCC(1,1) correlation)
--------------------------------------------------------------
:func:`dcc_garch_beta` builds the time-varying hedge ratio of Engle (2002)'s
two-step DCC-GARCH, estimated walk-forward. Between refits it is a pure filter.

1. Mean: ``e_t = r_t - mu`` with ``mu`` the sample mean of the fit window.
2. Univariate GARCH(1,1) with variance targeting, for each series::

       s2_{t+1} = omega + alpha * e_t**2 + beta * s2_t,
       omega    = vbar * (1 - alpha - beta),   s2_{t0} = vbar,

   where ``vbar = mean(e**2)`` over the fit window (its sample variance). The two
   free parameters are optimised as persistence ``p = alpha + beta`` in
   ``[0, 1 - 1e-6]`` and ARCH share ``s = alpha / p`` in ``[0, 1]``, a box that
   guarantees ``omega > 0``, ``alpha, beta >= 0`` and stationarity.
3. DCC(1,1) on the standardised residuals ``z_t = e_t / sqrt(s2_t)`` with
   correlation targeting::

       Q_{t+1} = (1 - a - b) * Qbar + a * z_t z_t' + b * Q_t,   Q_{t0} = Qbar,
       rho_t   = Q_t[0, 1] / sqrt(Q_t[0, 0] * Q_t[1, 1]),

   ``Qbar = mean(z z')`` over the fit window, ``a = s p``, ``b = (1 - s) p`` with the
   same box as above.
4. Estimation: Gaussian quasi maximum likelihood, one stage per step (the two
   GARCH fits, then the DCC fit given their residuals), each a 2-parameter
   bound-constrained problem solved by ``scipy.optimize.minimize(method="L-BFGS-B")``
   with analytic gradients computed by numba recursions. Per-observation negative
   log-likelihoods (averaged over the window)::

       GARCH:  0.5 * (log(2 pi) + log s2_t + e_t**2 / s2_t)
       DCC:    0.5 * (log(1 - rho_t**2)
                      + (z1**2 + z2**2 - 2 rho_t z1 z2) / (1 - rho_t**2) - z1**2 - z2**2)

   The first fit starts from ``(p, s) = (0.95, 0.1)`` for GARCH and
   ``(0.95, 0.03)`` for DCC; later fits start from the previous estimates.
5. Hedge ratio: at observation ``j`` (information up to and including ``j``) the
   one-step-ahead forecasts give ``h_j = rho_{j+1} * sqrt(s2_{y, j+1} / s2_{x, j+1})``,
   i.e. the forecast ``Cov(y, x) / Var(x)``.
6. Walk-forward: the first fit happens once ``min_periods`` observations exist,
   then every ``refit_every`` observations, each on the observations so far (or on
   the last ``fit_window`` of them). Forecasts made between two refits use the
   parameters of the earlier one; the filters are re-run from the start of that
   fit's window with those parameters (so they continue the in-sample filtered
   path exactly) and never see data after the forecast origin.

Why this model: a full DCC is only two more parameters than two GARCH fits, and
with variance/correlation targeting and analytic gradients every stage is a cheap,
well-conditioned 2-parameter problem (a few milliseconds on 40,000 hourly bars), so
the simpler "GARCH vols + EWMA correlation" compromise was not needed. Targeting
(rather than estimating ``omega`` and ``Qbar`` by full MLE) is the standard two-step
estimator; it costs a little efficiency and buys robustness on fat-tailed crypto
returns, where free-``omega`` fits often run to the IGARCH boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.optimize import minimize

__all__ = [
    "DEGENERATE_REL",
    "PERSISTENCE_MAX",
    "GarchFit",
    "DccFit",
    "valid_index_nb",
    "fill_hedge_nb",
    "fill_hedge_ref",
    "rolling_beta_nb",
    "rolling_beta_ref",
    "ewma_beta_nb",
    "ewma_beta_ref",
    "garch11_filter_nb",
    "garch11_filter_ref",
    "garch11_nll_grad_nb",
    "garch11_nll_ref",
    "dcc_filter_nb",
    "dcc_filter_ref",
    "dcc_nll_grad_nb",
    "dcc_nll_ref",
    "fit_garch11",
    "fit_dcc",
    "dcc_garch_beta",
]

DEGENERATE_REL = 1e-10
"""A variance ``v`` with mean ``m`` is treated as zero when ``v <= DEGENERATE_REL * (v + m**2)``."""

PERSISTENCE_MAX = 1.0 - 1e-6
"""Upper bound of ``alpha + beta`` (GARCH) and ``a + b`` (DCC) in the fits."""

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- helpers


@njit(cache=True)
def valid_index_nb(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Positions ``t`` where both ``x[t]`` and ``y[t]`` are finite (the observations).

    Parameters
    ----------
    x, y : ndarray of float64, shape (n,)

    Returns
    -------
    ndarray of int64
        Increasing bar positions of the observations.
    """
    n = x.shape[0]
    idx = np.empty(n, dtype=np.int64)
    m = 0
    for t in range(n):
        if np.isfinite(x[t]) and np.isfinite(y[t]):
            idx[m] = t
            m += 1
    return idx[:m].copy()


@njit(cache=True)
def fill_hedge_nb(raw: np.ndarray, warm_value: float) -> np.ndarray:
    """Turn a raw estimate with gaps into a finite hedge path.

    ``h[t] = raw[t]`` where ``raw[t]`` is finite, else ``h[t] = h[t-1]``, with
    ``h[-1] = warm_value`` (the warm-up value before the first finite estimate).

    Parameters
    ----------
    raw : ndarray of float64, shape (n,)
        Estimates, NaN where undefined.
    warm_value : float
        Value used before the first finite estimate.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    n = raw.shape[0]
    out = np.empty(n)
    last = warm_value
    for t in range(n):
        if np.isfinite(raw[t]):
            last = raw[t]
        out[t] = last
    return out


def fill_hedge_ref(raw: np.ndarray, warm_value: float) -> np.ndarray:
    """Reference for :func:`fill_hedge_nb` (same formula, pure Python loop)."""
    out = []
    last = float(warm_value)
    for value in np.asarray(raw, dtype=np.float64):
        if math.isfinite(value):
            last = float(value)
        out.append(last)
    return np.array(out, dtype=np.float64)


@njit(cache=True)
def _is_degenerate(var: float, mean: float) -> bool:
    return not var > DEGENERATE_REL * (var + mean * mean)


def _is_degenerate_py(var: float, mean: float) -> bool:
    return not var > DEGENERATE_REL * (var + mean * mean)


# --------------------------------------------------------------------------- rolling OLS


@njit(cache=True)
def _merge(
    na: float,
    mxa: float,
    mya: float,
    sxxa: float,
    sxya: float,
    nb: float,
    mxb: float,
    myb: float,
    sxxb: float,
    sxyb: float,
) -> tuple[float, float, float, float, float]:
    """Chan, Golub & LeVeque pairwise merge of counts, means and demeaned co-moments.

    ``n = na + nb``, ``d = mean_b - mean_a``, ``mean = mean_a + d * nb / n`` and
    ``S = S_a + S_b + dx * dy * na * nb / n``. Nothing is subtracted from a co-moment,
    so no rounding residue of data that has left the window can remain.
    """
    if nb == 0.0:
        return na, mxa, mya, sxxa, sxya
    if na == 0.0:
        return nb, mxb, myb, sxxb, sxyb
    n = na + nb
    dx = mxb - mxa
    dy = myb - mya
    f = na * nb / n
    return n, mxa + dx * (nb / n), mya + dy * (nb / n), sxxa + sxxb + dx * dx * f, sxya + sxyb + dx * dy * f


@njit(cache=True)
def rolling_beta_nb(x: np.ndarray, y: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Rolling OLS slope of ``y`` on ``x`` (with intercept) over the last ``window`` observations.

    For the observations ``i`` in the window ending at bar ``t`` (the last
    ``min(window, count)`` observations up to and including ``t``)::

        beta_t = sum (x_i - xbar)(y_i - ybar) / sum (x_i - xbar)**2  = Cov(x, y) / Var(x)

    (same ``ddof`` in both, so it is the OLS slope).

    Algorithm: a sliding-window aggregation with two stacks, O(1) amortised per bar
    and no down-dating. The window is split into an older "front" part, for which
    suffix aggregates (count, means, demeaned co-moments) were built newest-to-oldest
    by Welford updates, and a newer "back" part aggregated by Welford updates as
    observations arrive; the window's moments are the Chan merge of the two. When
    the window start passes the end of the front, the back becomes the new front.
    Every co-moment is a sum of demeaned products of observations inside the window,
    so the result is as accurate as a two-pass formula on the window, whatever the
    level or the history of the data (no running sums, no subtraction of old data).

    Parameters
    ----------
    x : ndarray of float64, shape (n,)
        Regressor (futures returns).
    y : ndarray of float64, shape (n,)
        Regressand (coin returns).
    window : int
        Maximum number of observations in the window, >= 2.
    min_periods : int
        Observations required for an estimate, ``2 <= min_periods <= window``.

    Returns
    -------
    ndarray of float64, shape (n,)
        ``beta_t`` at observation bars with at least ``min_periods`` observations
        and a non-degenerate ``Var(x)``; NaN elsewhere.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    idx = valid_index_nb(x, y)
    m = idx.shape[0]
    # suffix aggregates of the front part, indexed by observation
    f_n = np.zeros(m)
    f_mx = np.zeros(m)
    f_my = np.zeros(m)
    f_sxx = np.zeros(m)
    f_sxy = np.zeros(m)
    front_end = 0  # front = observations [start, front_end), back = [front_end, j]
    b_n = 0.0
    b_mx = 0.0
    b_my = 0.0
    b_sxx = 0.0
    b_sxy = 0.0
    for j in range(m):
        xj = x[idx[j]]
        yj = y[idx[j]]
        # Welford update of the back aggregate
        b_n += 1.0
        dx = xj - b_mx
        b_mx += dx / b_n
        b_my += (yj - b_my) / b_n
        b_sxx += dx * (xj - b_mx)
        b_sxy += dx * (yj - b_my)
        start = max(0, j - window + 1)
        if start >= front_end:
            # the front is used up: rebuild it from the back, newest to oldest
            c_n = 0.0
            c_mx = 0.0
            c_my = 0.0
            c_sxx = 0.0
            c_sxy = 0.0
            for i in range(j, front_end - 1, -1):
                xi = x[idx[i]]
                yi = y[idx[i]]
                c_n += 1.0
                d = xi - c_mx
                c_mx += d / c_n
                c_my += (yi - c_my) / c_n
                c_sxx += d * (xi - c_mx)
                c_sxy += d * (yi - c_my)
                f_n[i] = c_n
                f_mx[i] = c_mx
                f_my[i] = c_my
                f_sxx[i] = c_sxx
                f_sxy[i] = c_sxy
            front_end = j + 1
            b_n = 0.0
            b_mx = 0.0
            b_my = 0.0
            b_sxx = 0.0
            b_sxy = 0.0
        cnt, mx, _, sxx, sxy = _merge(
            f_n[start], f_mx[start], f_my[start], f_sxx[start], f_sxy[start], b_n, b_mx, b_my, b_sxx, b_sxy
        )
        if cnt >= min_periods and not _is_degenerate(sxx / cnt, mx):
            out[idx[j]] = sxy / sxx
    return out


def rolling_beta_ref(x: np.ndarray, y: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Reference for :func:`rolling_beta_nb`: slice each window and apply the two-pass formula.

    A window whose ``x`` values are all equal is degenerate (the fast kernel's
    moments of such a window are exactly zero; a two-pass mean may round).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.full(x.shape[0], np.nan)
    valid = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    for k, t in enumerate(valid):
        take = valid[max(0, k - window + 1) : k + 1]
        if take.size < min_periods:
            continue
        xw, yw = x[take], y[take]
        dx = xw - xw.mean()
        sxx = float(dx @ dx)
        if np.all(xw == xw[0]) or _is_degenerate_py(sxx / take.size, float(xw.mean())):
            continue
        out[t] = float(dx @ (yw - yw.mean())) / sxx
    return out


# --------------------------------------------------------------------------- EWMA


@njit(cache=True)
def ewma_beta_nb(x: np.ndarray, y: np.ndarray, lam: float, min_periods: int) -> np.ndarray:
    """Exponentially weighted beta of ``y`` on ``x``, demeaned, with normalised weights.

    The observation ``k`` steps back (counting observations) has weight ``lam**k``;
    with ``W_t = sum of weights``, EW means ``mx, my`` and EW (biased) co-moments
    ``Cxx = sum w (x - mx)**2 / W``, ``Cxy = sum w (x - mx)(y - my) / W``, the
    estimate is ``beta_t = Cxy_t / Cxx_t``. Recursions (West 1979, weighted Welford;
    identical to pandas ``ewm(alpha=1 - lam, adjust=True, ignore_na=True).cov(bias=True)``)::

        a   = lam * W_{t-1};   W_t = a + 1
        dx  = x_t - mx_{t-1};  dy = y_t - my_{t-1}
        mx_t = mx_{t-1} + dx / W_t;   my_t = my_{t-1} + dy / W_t
        Cxx_t = (a / W_t) * (Cxx_{t-1} + dx * dx / W_t)
        Cxy_t = (a / W_t) * (Cxy_{t-1} + dx * dy / W_t)

    starting from ``W = Cxx = Cxy = 0``. For large ``t``, ``a / W_t -> lam``: the
    RiskMetrics recursion with demeaning. The ``ddof`` convention cancels in the ratio.

    Parameters
    ----------
    x, y : ndarray of float64, shape (n,)
        Regressor (futures returns) and regressand (coin returns).
    lam : float
        Decay per observation, ``0 < lam < 1`` (``lam = 0.5 ** (1 / halflife)``).
    min_periods : int
        Observations required for an estimate, >= 2.

    Returns
    -------
    ndarray of float64, shape (n,)
        ``beta_t`` at observation bars once ``min_periods`` observations exist and
        ``Cxx`` is not degenerate; NaN elsewhere.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    w = 0.0
    mx = 0.0
    my = 0.0
    cxx = 0.0
    cxy = 0.0
    cnt = 0
    for t in range(n):
        if not (np.isfinite(x[t]) and np.isfinite(y[t])):
            continue
        cnt += 1
        a = lam * w
        w = a + 1.0
        r = 1.0 / w
        dx = x[t] - mx
        dy = y[t] - my
        mx += dx * r
        my += dy * r
        keep = a * r
        cxx = keep * (cxx + dx * dx * r)
        cxy = keep * (cxy + dx * dy * r)
        if cnt >= min_periods and not _is_degenerate(cxx, mx):
            out[t] = cxy / cxx
    return out


def ewma_beta_ref(x: np.ndarray, y: np.ndarray, lam: float, min_periods: int) -> np.ndarray:
    """Reference for :func:`ewma_beta_nb`: explicit weights ``lam**age`` at every bar (O(n^2))."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.full(x.shape[0], np.nan)
    valid = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    for k, t in enumerate(valid):
        if k + 1 < min_periods:
            continue
        xw, yw = x[valid[: k + 1]], y[valid[: k + 1]]
        wts = lam ** np.arange(k, -1, -1, dtype=np.float64)
        mx = float(np.sum(wts * xw) / np.sum(wts))
        my = float(np.sum(wts * yw) / np.sum(wts))
        cxx = float(np.sum(wts * (xw - mx) ** 2) / np.sum(wts))
        cxy = float(np.sum(wts * (xw - mx) * (yw - my)) / np.sum(wts))
        if _is_degenerate_py(cxx, mx):
            continue
        out[t] = cxy / cxx
    return out


# --------------------------------------------------------------------------- GARCH(1,1)


@njit(cache=True)
def garch11_filter_nb(eps: np.ndarray, omega: float, alpha: float, beta: float, sigma2_0: float) -> np.ndarray:
    """GARCH(1,1) conditional variances.

    ``s2[0] = sigma2_0`` and ``s2[t + 1] = omega + alpha * eps[t]**2 + beta * s2[t]``.

    Parameters
    ----------
    eps : ndarray of float64, shape (n,)
        Demeaned returns (no NaN).
    omega, alpha, beta : float
        GARCH parameters.
    sigma2_0 : float
        Variance of ``eps[0]``.

    Returns
    -------
    ndarray of float64, shape (n + 1,)
        ``s2[t]`` is the variance of ``eps[t]`` given ``eps[:t]``; ``s2[n]`` is the
        forecast for the step after the sample.
    """
    n = eps.shape[0]
    s2 = np.empty(n + 1)
    s2[0] = sigma2_0
    for t in range(n):
        s2[t + 1] = omega + alpha * eps[t] * eps[t] + beta * s2[t]
    return s2


def garch11_filter_ref(eps: np.ndarray, omega: float, alpha: float, beta: float, sigma2_0: float) -> np.ndarray:
    """Reference for :func:`garch11_filter_nb` (pure Python loop)."""
    s2 = [float(sigma2_0)]
    for e in np.asarray(eps, dtype=np.float64):
        s2.append(omega + alpha * float(e) ** 2 + beta * s2[-1])
    return np.array(s2, dtype=np.float64)


@njit(cache=True)
def garch11_nll_grad_nb(eps: np.ndarray, persistence: float, share: float, vbar: float) -> tuple[float, float, float]:
    """Mean Gaussian negative log-likelihood of a variance-targeted GARCH(1,1) and its gradient.

    With ``alpha = share * persistence``, ``beta = (1 - share) * persistence`` and
    ``omega = vbar * (1 - persistence)``, the variances follow
    :func:`garch11_filter_nb` from ``s2_0 = vbar`` and::

        nll = mean_t 0.5 * (log(2 pi) + log s2_t + eps_t**2 / s2_t)

    The gradient uses the derivative recursions (``d s2_0 = 0``)::

        d s2_{t+1}/dp = -vbar + share * eps_t**2 + (1 - share) * s2_t + beta * d s2_t/dp
        d s2_{t+1}/ds = persistence * (eps_t**2 - s2_t) + beta * d s2_t/ds

    and ``d nll/d theta = mean_t 0.5 * (1 / s2_t - eps_t**2 / s2_t**2) * d s2_t/d theta``.

    Parameters
    ----------
    eps : ndarray of float64, shape (n,)
        Demeaned returns (no NaN), n >= 1.
    persistence, share : float
        ``p = alpha + beta`` and ``s = alpha / p``.
    vbar : float
        Variance target (> 0).

    Returns
    -------
    tuple of float
        ``(nll, d nll / d persistence, d nll / d share)``; ``nll = inf`` if a
        variance is not positive.
    """
    n = eps.shape[0]
    alpha = share * persistence
    beta = (1.0 - share) * persistence
    omega = vbar * (1.0 - persistence)
    s2 = vbar
    dp = 0.0
    ds = 0.0
    nll = 0.0
    gp = 0.0
    gs = 0.0
    for t in range(n):
        if not s2 > 0.0:
            return np.inf, 0.0, 0.0
        e2 = eps[t] * eps[t]
        nll += math.log(s2) + e2 / s2
        c = (1.0 - e2 / s2) / s2
        gp += c * dp
        gs += c * ds
        dp_next = -vbar + share * e2 + (1.0 - share) * s2 + beta * dp
        ds_next = persistence * (e2 - s2) + beta * ds
        s2 = omega + alpha * e2 + beta * s2
        dp = dp_next
        ds = ds_next
    return 0.5 * (_LOG_2PI + nll / n), 0.5 * gp / n, 0.5 * gs / n


def garch11_nll_ref(eps: np.ndarray, persistence: float, share: float, vbar: float) -> float:
    """Reference for the value of :func:`garch11_nll_grad_nb` (filter, then the textbook likelihood)."""
    eps = np.asarray(eps, dtype=np.float64)
    alpha = share * persistence
    beta = (1.0 - share) * persistence
    s2 = garch11_filter_ref(eps, vbar * (1.0 - persistence), alpha, beta, vbar)[:-1]
    return float(np.mean(0.5 * (np.log(2.0 * np.pi) + np.log(s2) + eps**2 / s2)))


# --------------------------------------------------------------------------- DCC(1,1)


@njit(cache=True)
def dcc_filter_nb(
    z1: np.ndarray, z2: np.ndarray, a: float, b: float, q11: float, q22: float, q12: float
) -> np.ndarray:
    """DCC(1,1) conditional correlations.

    ``Q_0 = Qbar``, ``Q_{t+1} = (1 - a - b) Qbar + a z_t z_t' + b Q_t`` and
    ``rho_t = Q_t[0, 1] / sqrt(Q_t[0, 0] Q_t[1, 1])``, with
    ``Qbar = [[q11, q12], [q12, q22]]``.

    Parameters
    ----------
    z1, z2 : ndarray of float64, shape (n,)
        Standardised residuals (no NaN).
    a, b : float
        DCC parameters.
    q11, q22, q12 : float
        Elements of ``Qbar``.

    Returns
    -------
    ndarray of float64, shape (n + 1,)
        ``rho[t]`` is the correlation of ``(z1[t], z2[t])`` given data before ``t``;
        ``rho[n]`` is the forecast for the step after the sample.
    """
    n = z1.shape[0]
    rho = np.empty(n + 1)
    c = 1.0 - a - b
    p11 = q11
    p22 = q22
    p12 = q12
    rho[0] = p12 / math.sqrt(p11 * p22)
    for t in range(n):
        p11 = c * q11 + a * z1[t] * z1[t] + b * p11
        p22 = c * q22 + a * z2[t] * z2[t] + b * p22
        p12 = c * q12 + a * z1[t] * z2[t] + b * p12
        rho[t + 1] = p12 / math.sqrt(p11 * p22)
    return rho


def dcc_filter_ref(
    z1: np.ndarray, z2: np.ndarray, a: float, b: float, q11: float, q22: float, q12: float
) -> np.ndarray:
    """Reference for :func:`dcc_filter_nb`, with explicit 2x2 matrices."""
    qbar = np.array([[q11, q12], [q12, q22]], dtype=np.float64)
    q = qbar.copy()
    rho = [q[0, 1] / np.sqrt(q[0, 0] * q[1, 1])]
    for u, v in zip(np.asarray(z1, dtype=np.float64), np.asarray(z2, dtype=np.float64), strict=True):
        z = np.array([u, v])
        q = (1.0 - a - b) * qbar + a * np.outer(z, z) + b * q
        rho.append(q[0, 1] / np.sqrt(q[0, 0] * q[1, 1]))
    return np.array(rho, dtype=np.float64)


@njit(cache=True)
def dcc_nll_grad_nb(
    z1: np.ndarray, z2: np.ndarray, persistence: float, share: float, q11: float, q22: float, q12: float
) -> tuple[float, float, float]:
    """Mean negative correlation log-likelihood of a DCC(1,1) and its gradient.

    With ``a = share * persistence``, ``b = (1 - share) * persistence`` and ``rho_t``
    from :func:`dcc_filter_nb`::

        nll = mean_t 0.5 * (log(1 - rho_t**2)
                            + (z1_t**2 + z2_t**2 - 2 rho_t z1_t z2_t) / (1 - rho_t**2)
                            - z1_t**2 - z2_t**2)

    (the correlation part of the bivariate Gaussian likelihood). The gradient
    propagates ``dQ_{t+1}/dp = -Qbar + share z z' + (1 - share) Q_t + b dQ_t/dp`` and
    ``dQ_{t+1}/ds = persistence (z z' - Q_t) + b dQ_t/ds`` through
    ``d rho = dQ12 / sqrt(Q11 Q22) - rho / 2 (dQ11 / Q11 + dQ22 / Q22)``.

    Parameters
    ----------
    z1, z2 : ndarray of float64, shape (n,)
        Standardised residuals (no NaN), n >= 1.
    persistence, share : float
        ``p = a + b`` and ``s = a / p``.
    q11, q22, q12 : float
        Elements of ``Qbar`` (positive definite).

    Returns
    -------
    tuple of float
        ``(nll, d nll / d persistence, d nll / d share)``; ``nll = inf`` if a
        correlation reaches +-1.
    """
    n = z1.shape[0]
    a = share * persistence
    b = (1.0 - share) * persistence
    c = 1.0 - persistence
    p11 = q11
    p22 = q22
    p12 = q12
    d11p = 0.0
    d22p = 0.0
    d12p = 0.0
    d11s = 0.0
    d22s = 0.0
    d12s = 0.0
    nll = 0.0
    gp = 0.0
    gs = 0.0
    for t in range(n):
        sq = math.sqrt(p11 * p22)
        rho = p12 / sq
        om = 1.0 - rho * rho
        if not om > 1e-12:
            return np.inf, 0.0, 0.0
        u = z1[t]
        v = z2[t]
        aa = u * u + v * v
        bb = u * v
        nll += math.log(om) + (aa - 2.0 * rho * bb) / om - aa
        dl = -2.0 * rho / om + (-2.0 * bb * om + 2.0 * rho * (aa - 2.0 * rho * bb)) / (om * om)
        drp = d12p / sq - 0.5 * rho * (d11p / p11 + d22p / p22)
        drs = d12s / sq - 0.5 * rho * (d11s / p11 + d22s / p22)
        gp += dl * drp
        gs += dl * drs
        d11p = -q11 + share * u * u + (1.0 - share) * p11 + b * d11p
        d22p = -q22 + share * v * v + (1.0 - share) * p22 + b * d22p
        d12p = -q12 + share * bb + (1.0 - share) * p12 + b * d12p
        d11s = persistence * (u * u - p11) + b * d11s
        d22s = persistence * (v * v - p22) + b * d22s
        d12s = persistence * (bb - p12) + b * d12s
        p11 = c * q11 + a * u * u + b * p11
        p22 = c * q22 + a * v * v + b * p22
        p12 = c * q12 + a * bb + b * p12
    return 0.5 * nll / n, 0.5 * gp / n, 0.5 * gs / n


def dcc_nll_ref(
    z1: np.ndarray, z2: np.ndarray, persistence: float, share: float, q11: float, q22: float, q12: float
) -> float:
    """Reference for the value of :func:`dcc_nll_grad_nb`: bivariate normal density of ``z`` given ``R_t``.

    Computed as ``-log N(z; 0, R_t) + log N(z; 0, I)`` with explicit matrix inverse
    and determinant, averaged over ``t``.
    """
    z1 = np.asarray(z1, dtype=np.float64)
    z2 = np.asarray(z2, dtype=np.float64)
    rho = dcc_filter_ref(z1, z2, share * persistence, (1.0 - share) * persistence, q11, q22, q12)[:-1]
    total = 0.0
    for u, v, r in zip(z1, z2, rho, strict=True):
        mat = np.array([[1.0, r], [r, 1.0]])
        z = np.array([u, v])
        total += 0.5 * (np.log(np.linalg.det(mat)) + z @ np.linalg.inv(mat) @ z - z @ z)
    return float(total / z1.size)


# --------------------------------------------------------------------------- estimation


@dataclass(frozen=True)
class GarchFit:
    """A variance-targeted GARCH(1,1) fit.

    Attributes
    ----------
    mu : float
        Mean removed from the returns (sample mean of the fit window).
    vbar : float
        Variance target ``mean((r - mu)**2)``.
    persistence, share : float
        ``alpha + beta`` and ``alpha / (alpha + beta)``.
    nll : float
        Mean negative log-likelihood at the estimate.
    """

    mu: float
    vbar: float
    persistence: float
    share: float
    nll: float

    @property
    def alpha(self) -> float:
        """ARCH coefficient ``share * persistence``."""
        return self.share * self.persistence

    @property
    def beta(self) -> float:
        """GARCH coefficient ``(1 - share) * persistence``."""
        return (1.0 - self.share) * self.persistence

    @property
    def omega(self) -> float:
        """Intercept ``vbar * (1 - persistence)``."""
        return self.vbar * (1.0 - self.persistence)

    def filter(self, returns: np.ndarray) -> np.ndarray:
        """Conditional variances of ``returns - mu`` (see :func:`garch11_filter_nb`), shape (n + 1,)."""
        eps = np.ascontiguousarray(returns, dtype=np.float64) - self.mu
        return garch11_filter_nb(eps, self.omega, self.alpha, self.beta, self.vbar)


@dataclass(frozen=True)
class DccFit:
    """A correlation-targeted DCC(1,1) fit.

    Attributes
    ----------
    q11, q22, q12 : float
        ``Qbar = mean(z z')`` over the fit window.
    persistence, share : float
        ``a + b`` and ``a / (a + b)``.
    nll : float
        Mean negative correlation log-likelihood at the estimate.
    """

    q11: float
    q22: float
    q12: float
    persistence: float
    share: float
    nll: float

    @property
    def a(self) -> float:
        """News coefficient ``share * persistence``."""
        return self.share * self.persistence

    @property
    def b(self) -> float:
        """Decay coefficient ``(1 - share) * persistence``."""
        return (1.0 - self.share) * self.persistence

    def filter(self, z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
        """Conditional correlations (see :func:`dcc_filter_nb`), shape (n + 1,)."""
        return dcc_filter_nb(
            np.ascontiguousarray(z1, dtype=np.float64),
            np.ascontiguousarray(z2, dtype=np.float64),
            self.a,
            self.b,
            self.q11,
            self.q22,
            self.q12,
        )


_GARCH_START = (0.95, 0.1)
_DCC_START = (0.95, 0.03)
_BOUNDS = [(0.0, PERSISTENCE_MAX), (0.0, 1.0)]
_OPTIONS = {"maxiter": 200, "ftol": 1e-12, "gtol": 1e-9}


def _minimize_2(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]], start: tuple[float, float]
) -> tuple[float, float, float] | None:
    """Minimise ``fun`` (value and gradient) over the (persistence, share) box with L-BFGS-B.

    Returns ``(persistence, share, value)``; the start point if the optimiser ends
    somewhere worse or non-finite; ``None`` if the start point itself is not finite.
    """
    x0 = np.clip(np.asarray(start, dtype=np.float64), [lo for lo, _ in _BOUNDS], [hi for _, hi in _BOUNDS])
    f0 = fun(x0)[0]
    if not math.isfinite(f0):
        return None
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=_BOUNDS, options=_OPTIONS)
    if not (math.isfinite(res.fun) and np.all(np.isfinite(res.x))) or res.fun > f0:
        return float(x0[0]), float(x0[1]), float(f0)
    return float(res.x[0]), float(res.x[1]), float(res.fun)


def fit_garch11(returns: np.ndarray, start: tuple[float, float] | None = None) -> GarchFit | None:
    """Fit a variance-targeted GARCH(1,1) by Gaussian QML (see the module docstring).

    Parameters
    ----------
    returns : ndarray of float64, shape (n,)
        Returns of the fit window (no NaN), n >= 2.
    start : (persistence, share), optional
        Starting point; defaults to ``(0.95, 0.1)``.

    Returns
    -------
    GarchFit or None
        ``None`` when the returns have no variance (see ``DEGENERATE_REL``).
    """
    r = np.ascontiguousarray(returns, dtype=np.float64)
    mu = float(np.mean(r))
    eps = r - mu
    vbar = float(np.mean(eps * eps))
    if _is_degenerate_py(vbar, mu):
        return None

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        f, gp, gs = garch11_nll_grad_nb(eps, float(theta[0]), float(theta[1]), vbar)
        return f, np.array([gp, gs])

    found = _minimize_2(fun, _GARCH_START if start is None else start)
    if found is None:
        return None
    return GarchFit(mu=mu, vbar=vbar, persistence=found[0], share=found[1], nll=found[2])


def fit_dcc(z1: np.ndarray, z2: np.ndarray, start: tuple[float, float] | None = None) -> DccFit | None:
    """Fit a correlation-targeted DCC(1,1) by Gaussian QML (see the module docstring).

    Parameters
    ----------
    z1, z2 : ndarray of float64, shape (n,)
        Standardised residuals of the fit window (no NaN).
    start : (persistence, share), optional
        Starting point; defaults to ``(0.95, 0.03)``.

    Returns
    -------
    DccFit or None
        ``None`` when ``Qbar`` is not positive definite (collinear residuals).
    """
    u = np.ascontiguousarray(z1, dtype=np.float64)
    v = np.ascontiguousarray(z2, dtype=np.float64)
    q11 = float(np.mean(u * u))
    q22 = float(np.mean(v * v))
    q12 = float(np.mean(u * v))
    if not (q11 > 0.0 and q22 > 0.0 and q12 * q12 < (1.0 - 1e-12) * q11 * q22):
        return None

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        f, gp, gs = dcc_nll_grad_nb(u, v, float(theta[0]), float(theta[1]), q11, q22, q12)
        return f, np.array([gp, gs])

    found = _minimize_2(fun, _DCC_START if start is None else start)
    if found is None:
        return None
    return DccFit(q11=q11, q22=q22, q12=q12, persistence=found[0], share=found[1], nll=found[2])


def dcc_garch_beta(
    x: np.ndarray,
    y: np.ndarray,
    refit_every: int,
    min_periods: int,
    fit_window: int | None = None,
) -> np.ndarray:
    """Walk-forward DCC-GARCH beta of ``y`` on ``x`` (see the module docstring).

    Fits happen when the number of observations reaches
    ``min_periods, min_periods + refit_every, ...``; fit ``k`` uses the observations
    so far (the last ``fit_window`` of them if given) and serves the forecasts made
    at the observations from the one completing its sample up to the one before the
    next fit completes. At observation ``j``::

        h_j = rho_{j+1|j} * sqrt(s2_{y, j+1|j} / s2_{x, j+1|j})

    Parameters
    ----------
    x, y : ndarray of float64, shape (n,)
        Regressor (futures returns) and regressand (coin returns).
    refit_every : int
        Observations between refits, >= 1.
    min_periods : int
        Observations before the first fit, >= 2.
    fit_window : int, optional
        Maximum observations per fit (rolling); ``None`` for an expanding window.

    Returns
    -------
    ndarray of float64, shape (n,)
        The beta at observation bars served by a successful fit; NaN elsewhere.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    out = np.full(x.shape[0], np.nan)
    idx = valid_index_nb(x, y)
    xs, ys = x[idx], y[idx]
    m = idx.size
    start_x: tuple[float, float] | None = None
    start_y: tuple[float, float] | None = None
    start_c: tuple[float, float] | None = None
    for n_fit in range(min_periods, m + 1, refit_every):
        lo = 0 if fit_window is None else max(0, n_fit - fit_window)
        end = min(n_fit - 1 + refit_every, m)
        gx = fit_garch11(xs[lo:n_fit], start_x)
        gy = fit_garch11(ys[lo:n_fit], start_y)
        if gx is None or gy is None:
            continue
        start_x = (gx.persistence, gx.share)
        start_y = (gy.persistence, gy.share)
        s2x = gx.filter(xs[lo:end])
        s2y = gy.filter(ys[lo:end])
        zx = (xs[lo:end] - gx.mu) / np.sqrt(s2x[:-1])
        zy = (ys[lo:end] - gy.mu) / np.sqrt(s2y[:-1])
        dcc = fit_dcc(zx[: n_fit - lo], zy[: n_fit - lo], start_c)
        if dcc is None:
            continue
        start_c = (dcc.persistence, dcc.share)
        rho = dcc.filter(zx, zy)
        served = slice(n_fit - lo, end - lo + 1)  # forecasts made at observations n_fit-1 .. end-1
        out[idx[n_fit - 1 : end]] = rho[served] * np.sqrt(s2y[served] / s2x[served])
    return out
