"""multi_min_variance weights: equal to statsmodels OLS on the same window."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from backtest.errors import ConfigError
from strategies.multi import MultiMinVariance, rolling_multi_beta


def _data(rng: np.random.Generator, T: int = 400) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.normal(0, 0.01, T)
    btc = 0.5 * idx + rng.normal(0, 0.01, T)
    y = 0.9 * idx + 0.4 * btc + rng.normal(0, 0.005, T)
    X = np.column_stack([idx, btc])
    X[[17, 130, 131], 0] = np.nan  # gaps: not observations
    y[250] = np.nan
    return y, X


def test_weights_equal_statsmodels_ols_on_the_same_window(rng) -> None:
    y, X = _data(rng)
    window = 60
    beta = rolling_multi_beta(y, X, window, window)
    obs = np.flatnonzero(np.isfinite(y) & np.isfinite(X).all(axis=1))
    for t in (obs[window - 1], 131 + 5, 249, 251, 399):
        last = obs[obs <= t][-window:]
        fit = sm.OLS(y[last], sm.add_constant(X[last])).fit()
        np.testing.assert_allclose(beta[t], fit.params[1:], rtol=1e-9, atol=1e-12)
    assert np.isnan(beta[obs[window - 2]]).all()  # before min_periods
    assert np.isnan(beta[250]).all() and np.isnan(beta[130]).all()  # not observations


def test_expanding_start_and_rule_fill(rng) -> None:
    y, X = _data(rng)
    beta = rolling_multi_beta(y, X, 100, 20)
    obs = np.flatnonzero(np.isfinite(y) & np.isfinite(X).all(axis=1))
    t = obs[49]  # 50 observations so far: all of them
    fit = sm.OLS(y[obs[:50]], sm.add_constant(X[obs[:50]])).fit()
    np.testing.assert_allclose(beta[t], fit.params[1:], rtol=1e-9)
    w = MultiMinVariance(instruments=("index", "BTC"), window=100, min_periods=20).weights(y, X)
    assert np.isfinite(w).all()
    np.testing.assert_array_equal(w[0], [1.0, 0.0])  # notional on the index before the first estimate
    np.testing.assert_array_equal(w[250], w[249])  # carried over a non-observation bar
    # the past never changes when the future is appended
    w_short = MultiMinVariance(instruments=("index", "BTC"), window=100, min_periods=20).weights(y[:300], X[:300])
    np.testing.assert_array_equal(w_short, w[:300])


def test_singular_window_gives_no_estimate(rng) -> None:
    x = rng.normal(size=50)
    X = np.column_stack([x, 2 * x])  # collinear instruments
    assert np.isnan(rolling_multi_beta(rng.normal(size=50), X, 20, 20)).all()
    with pytest.raises(ConfigError, match="window"):
        MultiMinVariance(instruments=("index", "BTC"), window=2)
