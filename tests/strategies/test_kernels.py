"""Fast kernels against their slow references and against independent implementations."""

from __future__ import annotations

import math

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import approx_fprime, minimize

from strategies import kernels as K

RTOL = 1e-10


def _with_gaps(rng: np.random.Generator, n: int, share: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Correlated returns with NaN at bar 0, scattered NaN in either series and a NaN run."""
    x = rng.normal(0.0, 0.01, n)
    y = 1.2 * x + rng.normal(0.0, 0.008, n)
    x[rng.random(n) < share] = np.nan
    y[rng.random(n) < share] = np.nan
    y[rng.random(n) < share / 5] = np.inf
    x[0] = y[0] = np.nan
    x[n // 3 : n // 3 + 12] = np.nan
    return x, y


def _assert_same(fast: np.ndarray, ref: np.ndarray, rtol: float = RTOL) -> None:
    """Same NaN pattern, and equal to ``rtol`` where finite."""
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    assert np.isfinite(fast).sum() > 0
    np.testing.assert_allclose(fast, ref, rtol=rtol, atol=0.0)


def _simulate_dcc_garch(
    rng: np.random.Generator,
    n: int,
    garch_x: tuple[float, float],
    garch_y: tuple[float, float],
    dcc: tuple[float, float],
    rbar: float,
    var_x: float = 1e-4,
    var_y: float = 2e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """Bivariate DCC(1,1)-GARCH(1,1) returns with unit-diagonal ``Qbar``."""
    (ax, bx), (ay, by), (a, b) = garch_x, garch_y, dcc
    s2x, s2y = var_x, var_y
    q11, q22, q12 = 1.0, 1.0, rbar
    u1, u2 = rng.standard_normal(n), rng.standard_normal(n)
    x, y = np.empty(n), np.empty(n)
    for t in range(n):
        rho = q12 / math.sqrt(q11 * q22)
        z1 = u1[t]
        z2 = rho * z1 + math.sqrt(1.0 - rho * rho) * u2[t]
        x[t], y[t] = math.sqrt(s2x) * z1, math.sqrt(s2y) * z2
        s2x = var_x * (1 - ax - bx) + ax * x[t] ** 2 + bx * s2x
        s2y = var_y * (1 - ay - by) + ay * y[t] ** 2 + by * s2y
        q11 = (1 - a - b) + a * z1 * z1 + b * q11
        q22 = (1 - a - b) + a * z2 * z2 + b * q22
        q12 = (1 - a - b) * rbar + a * z1 * z2 + b * q12
    return x, y


def _slope_scale(x: np.ndarray, y: np.ndarray, weights_for: Callable[[int], tuple[np.ndarray, slice]]) -> np.ndarray:
    """Condition number of each window's slope: ``(rms(x) rms(y) + ms(x)) / Var(x)`` (weighted).

    Rounding errors of a slope ``Sxy / Sxx`` computed by any stable method are a few
    ulps of the products summed, relative to ``Sxx``: ``~eps * (rms_x rms_y + |beta| ms_x) / Var_x``.
    ``weights_for(k)`` gives the weights and the slice (in observation numbers) of
    the window ending at observation ``k``.
    """
    valid = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    out = np.zeros(x.shape[0])
    for k, t in enumerate(valid):
        w, take = weights_for(k)
        xw, yw = x[valid[take]], y[valid[take]]
        w = w / w.sum()
        var = float(w @ (xw - w @ xw) ** 2)
        out[t] = np.inf if var == 0.0 else (np.sqrt((w @ xw**2) * (w @ yw**2)) + w @ xw**2) / var
    return out


def _assert_close_conditioned(fast: np.ndarray, ref: np.ndarray, scale: np.ndarray) -> None:
    """Same NaN pattern; ``|fast - ref| <= 1e-10 |ref| + 1e-13 * scale * (1 + |ref|)``."""
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    keep = np.isfinite(ref)
    bound = RTOL * np.abs(ref[keep]) + 1e-13 * scale[keep] * (1.0 + np.abs(ref[keep]))
    assert np.all(np.abs(fast[keep] - ref[keep]) <= bound)


_ELEMENTS = st.one_of(st.floats(-1.0, 1.0, allow_subnormal=False), st.just(np.nan))
_PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)


# --------------------------------------------------------------------------- helpers


def test_fill_hedge_matches_reference(rng: np.random.Generator) -> None:
    raw = rng.normal(1.0, 0.3, 500)
    raw[rng.random(500) < 0.3] = np.nan
    raw[:7] = np.nan
    for warm in (0.0, 1.0):
        out = K.fill_hedge_nb(raw, warm)
        np.testing.assert_array_equal(out, K.fill_hedge_ref(raw, warm))
        assert np.all(out[:7] == warm)
        assert np.all(np.isfinite(out))


def test_valid_index(rng: np.random.Generator) -> None:
    x, y = _with_gaps(rng, 300)
    np.testing.assert_array_equal(K.valid_index_nb(x, y), np.flatnonzero(np.isfinite(x) & np.isfinite(y)))


# --------------------------------------------------------------------------- rolling OLS


@pytest.mark.parametrize(("window", "min_periods"), [(2, 2), (3, 2), (50, 10), (50, 50), (400, 400), (1000, 30)])
def test_rolling_beta_matches_reference(rng: np.random.Generator, window: int, min_periods: int) -> None:
    x, y = _with_gaps(rng, 1500)
    _assert_same(K.rolling_beta_nb(x, y, window, min_periods), K.rolling_beta_ref(x, y, window, min_periods))


@_PROPERTY
@given(arrays(np.float64, st.integers(0, 60), elements=_ELEMENTS), st.integers(2, 12), st.data())
def test_rolling_beta_property(x: np.ndarray, window: int, data: st.DataObject) -> None:
    # arbitrary small inputs: repeated values, constant windows, y constant, NaN runs
    y = data.draw(arrays(np.float64, x.shape, elements=_ELEMENTS))
    min_periods = data.draw(st.integers(2, window))
    scale = _slope_scale(x, y, lambda k: (np.ones(min(k + 1, window)), slice(max(0, k - window + 1), k + 1)))
    _assert_close_conditioned(
        K.rolling_beta_nb(x, y, window, min_periods), K.rolling_beta_ref(x, y, window, min_periods), scale
    )


def test_rolling_beta_constant_window_after_a_jump() -> None:
    # a large value leaving the window must leave no rounding residue behind
    x = np.array([1.0, 0.0, 0.0, 0.0, 1e-9, 0.0])
    y = np.array([0.5, 0.0, 0.0, 0.0, 2e-9, 0.0])
    out = K.rolling_beta_nb(x, y, 3, 2)
    np.testing.assert_array_equal(np.isnan(out), [True, False, False, True, False, False])
    np.testing.assert_allclose(out[[1, 2, 4, 5]], [0.5, 0.5, 2.0, 2.0], rtol=RTOL)


def test_rolling_beta_long_series_matches_reference(rng: np.random.Generator) -> None:
    # 40,000 bars: many add/remove steps and periodic recomputations
    x, y = _with_gaps(rng, 40_000, share=0.01)
    _assert_same(K.rolling_beta_nb(x, y, 720, 100), K.rolling_beta_ref(x, y, 720, 100))


@pytest.mark.parametrize(("scale_x", "scale_y"), [(1e-5, 1e-5), (1e-5, 1e5), (1e5, 1e-5), (1e5, 1e5)])
def test_rolling_beta_is_stable_across_scales(rng: np.random.Generator, scale_x: float, scale_y: float) -> None:
    x, y = _with_gaps(rng, 4000)
    fast = K.rolling_beta_nb(x * scale_x, y * scale_y, 300, 50)
    _assert_same(fast, K.rolling_beta_ref(x * scale_x, y * scale_y, 300, 50))
    _assert_same(fast * scale_x / scale_y, K.rolling_beta_nb(x, y, 300, 50))


def test_rolling_beta_is_stable_with_large_means(rng: np.random.Generator) -> None:
    # means 1000x the standard deviation: naive sums of products lose ~12 digits here
    x, y = _with_gaps(rng, 4000)
    _assert_same(K.rolling_beta_nb(x + 10.0, y - 10.0, 300, 50), K.rolling_beta_ref(x + 10.0, y - 10.0, 300, 50))


def test_rolling_beta_matches_pandas_without_gaps(rng: np.random.Generator) -> None:
    x = rng.normal(0.0, 0.01, 3000)
    y = 0.7 * x + rng.normal(0.0, 0.01, 3000)
    fx, fy = pd.Series(x), pd.Series(y)
    expected = (fy.rolling(250).cov(fx) / fx.rolling(250).var()).to_numpy()
    _assert_same(K.rolling_beta_nb(x, y, 250, 250), expected, rtol=1e-9)


def test_rolling_beta_constant_regressor_is_undefined(rng: np.random.Generator) -> None:
    x = np.full(200, 0.1)
    y = rng.normal(0.0, 0.01, 200)
    assert np.all(np.isnan(K.rolling_beta_nb(x, y, 20, 5)))
    assert np.all(np.isnan(K.rolling_beta_ref(x, y, 20, 5)))
    x[100:] = rng.normal(0.0, 0.01, 100)
    fast = K.rolling_beta_nb(x, y, 20, 5)
    assert np.all(np.isnan(fast[:100])) and np.all(np.isfinite(fast[100:]))


# --------------------------------------------------------------------------- EWMA


@pytest.mark.parametrize(("lam", "min_periods"), [(0.0, 2), (0.5, 2), (0.97, 10), (0.999, 100)])
def test_ewma_beta_matches_reference(rng: np.random.Generator, lam: float, min_periods: int) -> None:
    x, y = _with_gaps(rng, 1200)
    fast = K.ewma_beta_nb(x, y, lam, min_periods)
    ref = K.ewma_beta_ref(x, y, lam, min_periods)
    if lam == 0.0:  # only the newest observation has weight: variance 0, never defined
        assert np.all(np.isnan(fast)) and np.all(np.isnan(ref))
    else:
        _assert_same(fast, ref)


@pytest.mark.parametrize("halflife", [5.0, 250.0])
def test_ewma_beta_matches_pandas(rng: np.random.Generator, halflife: float) -> None:
    x, y = _with_gaps(rng, 3000)
    lam = 0.5 ** (1.0 / halflife)
    valid = np.isfinite(x) & np.isfinite(y)
    fx, fy = pd.Series(np.where(valid, x, np.nan)), pd.Series(np.where(valid, y, np.nan))
    kw = {"alpha": 1.0 - lam, "adjust": True, "ignore_na": True}
    expected = (fy.ewm(**kw).cov(fx, bias=True) / fx.ewm(**kw).var(bias=True)).to_numpy()
    fast = K.ewma_beta_nb(x, y, lam, 2)
    assert np.all(np.isnan(fast[~valid]))
    valid[np.flatnonzero(valid)[0]] = False  # first observation: zero variance in both
    np.testing.assert_allclose(fast[valid], expected[valid], rtol=1e-9)


@_PROPERTY
@given(arrays(np.float64, st.integers(0, 60), elements=_ELEMENTS), st.floats(0.01, 0.999), st.data())
def test_ewma_beta_property(x: np.ndarray, lam: float, data: st.DataObject) -> None:
    y = data.draw(arrays(np.float64, x.shape, elements=_ELEMENTS))
    min_periods = data.draw(st.integers(2, 10))
    scale = _slope_scale(x, y, lambda k: (lam ** np.arange(k, -1, -1.0), slice(0, k + 1)))
    _assert_close_conditioned(K.ewma_beta_nb(x, y, lam, min_periods), K.ewma_beta_ref(x, y, lam, min_periods), scale)


def test_ewma_beta_is_stable_across_scales(rng: np.random.Generator) -> None:
    x, y = _with_gaps(rng, 3000)
    base = K.ewma_beta_nb(x, y, 0.99, 20)
    for sx, sy in [(1e-5, 1e5), (1e5, 1e-5)]:
        _assert_same(K.ewma_beta_nb(x * sx, y * sy, 0.99, 20) * sx / sy, base)


# --------------------------------------------------------------------------- GARCH(1,1)


def test_garch_filter_matches_reference(rng: np.random.Generator) -> None:
    eps = rng.standard_t(5, 3000) * 0.01
    fast = K.garch11_filter_nb(eps, 2e-6, 0.07, 0.9, 1e-4)
    assert fast.shape == (3001,)
    np.testing.assert_allclose(fast, K.garch11_filter_ref(eps, 2e-6, 0.07, 0.9, 1e-4), rtol=RTOL)


@pytest.mark.parametrize(("persistence", "share"), [(0.0, 0.5), (0.5, 0.2), (0.97, 0.08), (0.999, 0.9)])
def test_garch_nll_and_gradient(rng: np.random.Generator, persistence: float, share: float) -> None:
    eps = rng.standard_t(6, 2000) * 0.02
    vbar = float(np.mean(eps**2))
    nll, _, gs = K.garch11_nll_grad_nb(eps, persistence, share, vbar)
    assert nll == pytest.approx(K.garch11_nll_ref(eps, persistence, share, vbar), rel=RTOL)
    if persistence == 0.0:  # share has no effect at p = 0
        assert gs == 0.0
    step = 1e-7

    def value(theta: np.ndarray) -> float:
        return K.garch11_nll_grad_nb(eps, float(theta[0]), float(theta[1]), vbar)[0]

    theta = np.array([min(persistence, 0.999 - step), share])
    numeric = (
        np.array([value(theta + step * e) - value(theta - step * e) for e in np.eye(2)]) / (2 * step)
    )
    analytic = np.array(K.garch11_nll_grad_nb(eps, theta[0], theta[1], vbar)[1:])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_garch_fit_recovers_parameters(rng: np.random.Generator) -> None:
    # 20,000 obs: across seeds the estimates' sd is ~0.003 (alpha) and ~0.006 (beta);
    # the tolerances are >= 4 of those standard deviations
    x, _ = _simulate_dcc_garch(rng, 20_000, (0.05, 0.93), (0.08, 0.90), (0.0, 0.0), 0.0)
    fit = K.fit_garch11(x)
    assert fit is not None
    assert abs(fit.alpha - 0.05) < 0.015
    assert abs(fit.beta - 0.93) < 0.03
    assert fit.omega == pytest.approx(fit.vbar * (1 - fit.alpha - fit.beta))


def test_garch_fit_reaches_the_optimum(rng: np.random.Generator) -> None:
    # an independent optimiser (Nelder-Mead, no gradient) on the reference likelihood
    x, _ = _simulate_dcc_garch(rng, 3000, (0.1, 0.85), (0.1, 0.85), (0.0, 0.0), 0.0)
    fit = K.fit_garch11(x)
    assert fit is not None
    eps = x - x.mean()
    vbar = float(np.mean(eps**2))

    def objective(theta: np.ndarray) -> float:
        p, s = float(theta[0]), float(theta[1])
        if not (0.0 <= p < 1.0 and 0.0 <= s <= 1.0):
            return 1e10
        return K.garch11_nll_ref(eps, p, s, vbar)

    nm = minimize(objective, [0.9, 0.2], method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-13})
    assert fit.nll <= nm.fun + 1e-10
    np.testing.assert_allclose([fit.persistence, fit.share], nm.x, atol=2e-3)


def test_garch_fit_of_constant_returns_is_none() -> None:
    assert K.fit_garch11(np.full(500, 0.003)) is None


# --------------------------------------------------------------------------- DCC(1,1)


def test_dcc_filter_matches_reference(rng: np.random.Generator) -> None:
    z1 = rng.standard_normal(2000)
    z2 = 0.5 * z1 + rng.standard_normal(2000)
    fast = K.dcc_filter_nb(z1, z2, 0.05, 0.9, 1.0, 1.3, 0.5)
    assert fast.shape == (2001,)
    np.testing.assert_allclose(fast, K.dcc_filter_ref(z1, z2, 0.05, 0.9, 1.0, 1.3, 0.5), rtol=RTOL)
    assert np.all(np.abs(fast) < 1.0)


@pytest.mark.parametrize(("persistence", "share"), [(0.3, 0.5), (0.95, 0.05), (0.99, 0.3)])
def test_dcc_nll_and_gradient(rng: np.random.Generator, persistence: float, share: float) -> None:
    z1 = rng.standard_normal(600)
    z2 = 0.6 * z1 + 0.8 * rng.standard_normal(600)
    q = (float(np.mean(z1 * z1)), float(np.mean(z2 * z2)), float(np.mean(z1 * z2)))
    nll, gp, gs = K.dcc_nll_grad_nb(z1, z2, persistence, share, *q)
    assert nll == pytest.approx(K.dcc_nll_ref(z1, z2, persistence, share, *q), rel=1e-9)

    def value(theta: np.ndarray) -> float:
        return K.dcc_nll_grad_nb(z1, z2, float(theta[0]), float(theta[1]), *q)[0]

    numeric = approx_fprime(np.array([persistence, share]), value, 1e-7)
    forward_error = 1e-5  # forward differences: O(step) truncation error
    np.testing.assert_allclose([gp, gs], numeric, rtol=1e-3, atol=forward_error)


def test_dcc_fit_recovers_parameters(rng: np.random.Generator) -> None:
    # two-step estimate on 20,000 obs: across seeds sd ~0.0023 (a) and ~0.005 (b);
    # tolerances >= 4 standard deviations
    x, y = _simulate_dcc_garch(rng, 20_000, (0.05, 0.93), (0.08, 0.90), (0.04, 0.94), 0.6)
    gx, gy = K.fit_garch11(x), K.fit_garch11(y)
    assert gx is not None and gy is not None
    z1 = (x - gx.mu) / np.sqrt(gx.filter(x)[:-1])
    z2 = (y - gy.mu) / np.sqrt(gy.filter(y)[:-1])
    fit = K.fit_dcc(z1, z2)
    assert fit is not None
    assert abs(fit.a - 0.04) < 0.01
    assert abs(fit.b - 0.94) < 0.025
    assert fit.q12 / math.sqrt(fit.q11 * fit.q22) == pytest.approx(0.6, abs=0.05)


def test_dcc_fit_of_collinear_residuals_is_none(rng: np.random.Generator) -> None:
    z = rng.standard_normal(300)
    assert K.fit_dcc(z, 2.0 * z) is None


# --------------------------------------------------------------------------- walk-forward DCC-GARCH


def test_dcc_garch_beta_is_the_documented_composition(rng: np.random.Generator) -> None:
    # rebuild the served forecasts of the second fit by hand from the documented steps
    x, y = _simulate_dcc_garch(rng, 1500, (0.08, 0.9), (0.1, 0.85), (0.05, 0.9), 0.5)
    x = np.r_[np.nan, x]
    y = np.r_[np.nan, y]
    x[700] = np.nan  # a gap: observations, not bars, are counted
    refit, first, window = 300, 400, 500
    beta = K.dcc_garch_beta(x, y, refit, first, fit_window=window)

    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    xs, ys = x[idx], y[idx]
    n_fit = first + refit  # second fit: observations [n_fit - window, n_fit)
    lo, end = n_fit - window, n_fit - 1 + refit
    # the first fit (observations [0, first)) only provides the optimiser's warm start
    gx0, gy0 = K.fit_garch11(xs[:first]), K.fit_garch11(ys[:first])
    assert gx0 is not None and gy0 is not None
    z01 = (xs[:first] - gx0.mu) / np.sqrt(gx0.filter(xs[:first])[:-1])
    z02 = (ys[:first] - gy0.mu) / np.sqrt(gy0.filter(ys[:first])[:-1])
    dcc0 = K.fit_dcc(z01, z02)
    assert dcc0 is not None
    gx = K.fit_garch11(xs[lo:n_fit], start=(gx0.persistence, gx0.share))
    gy = K.fit_garch11(ys[lo:n_fit], start=(gy0.persistence, gy0.share))
    assert gx is not None and gy is not None
    s2x = K.garch11_filter_ref(xs[lo:end] - gx.mu, gx.omega, gx.alpha, gx.beta, gx.vbar)
    s2y = K.garch11_filter_ref(ys[lo:end] - gy.mu, gy.omega, gy.alpha, gy.beta, gy.vbar)
    z1 = (xs[lo:end] - gx.mu) / np.sqrt(s2x[:-1])
    z2 = (ys[lo:end] - gy.mu) / np.sqrt(s2y[:-1])
    dcc = K.fit_dcc(z1[: n_fit - lo], z2[: n_fit - lo], start=(dcc0.persistence, dcc0.share))
    assert dcc is not None
    rho = K.dcc_filter_ref(z1, z2, dcc.a, dcc.b, dcc.q11, dcc.q22, dcc.q12)
    expected = rho[n_fit - lo :] * np.sqrt(s2y[n_fit - lo :] / s2x[n_fit - lo :])
    np.testing.assert_allclose(beta[idx[n_fit - 1 : end]], expected, rtol=RTOL)
    assert np.all(np.isnan(beta[idx[: first - 1]]))
    assert np.all(np.isfinite(beta[idx[first - 1 :]]))
    assert np.isnan(beta[700]) and np.isnan(beta[0])


def test_dcc_garch_beta_constant_regressor_is_undefined(rng: np.random.Generator) -> None:
    x = np.full(800, 0.001)
    y = rng.normal(0.0, 0.01, 800)
    assert np.all(np.isnan(K.dcc_garch_beta(x, y, 100, 200)))
