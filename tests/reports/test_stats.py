"""Risk statistics: hand-computed examples and independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as sps

from reports import stats


# -- hedge effectiveness ---------------------------------------------------------------
def test_he_hand_example() -> None:
    u = np.array([0.01, -0.02, 0.03, -0.01])
    # hedged = half the unhedged move: Var(h) = Var(u) / 4, HE = 0.75
    assert stats.hedge_effectiveness(0.5 * u, u) == pytest.approx(0.75, abs=1e-15)


def test_he_drops_unpaired_bars() -> None:
    u = np.array([np.nan, 0.01, -0.02, 0.03, -0.01, 0.5])
    h = np.array([0.2, 0.005, -0.01, 0.015, -0.005, np.nan])
    # only bars 1..4 are paired: h = u / 2 there
    assert stats.hedge_effectiveness(h, u) == pytest.approx(0.75, abs=1e-12)


def test_he_of_min_variance_hedge_is_r_squared(rng: np.random.Generator) -> None:
    """Ederington: the in-sample OLS hedge has HE = rho^2 (checked against scipy)."""
    f = rng.normal(0, 0.01, 3000)
    u = 1.2 * f + rng.normal(0, 0.008, 3000)
    fit = sps.linregress(f, u)
    hedged = u - fit.slope * f
    assert stats.hedge_effectiveness(hedged, u) == pytest.approx(fit.rvalue**2, rel=1e-9)


def test_he_degenerate() -> None:
    assert math.isnan(stats.hedge_effectiveness([0.1], [0.2]))
    assert math.isnan(stats.hedge_effectiveness([0.1, 0.2], [0.3, 0.3]))


# -- block bootstrap -------------------------------------------------------------------
def _paired_sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    f = rng.standard_t(4, n) * 0.01
    u = f + rng.normal(0, 0.007, n)
    h = u - 0.9 * f
    return h, u


def test_he_interval_equals_arch_on_the_same_seed(rng: np.random.Generator) -> None:
    from arch.bootstrap import CircularBlockBootstrap, optimal_block_length

    h, u = _paired_sample(rng, 700)
    ci = stats.he_interval(h, u, reps=300, seed=11)
    # independently: block length from arch on the squared demeaned pair, then arch's interval
    opt = optimal_block_length(np.column_stack([(h - h.mean()) ** 2, (u - u.mean()) ** 2]))["circular"].max()
    assert ci.block_len == math.ceil(opt)
    bs = CircularBlockBootstrap(ci.block_len, h, u, seed=np.random.default_rng(11))
    ref = bs.conf_int(lambda x, y: np.array([1 - np.var(x, ddof=1) / np.var(y, ddof=1)]), reps=300,
                      method="percentile", size=0.95)
    assert ci.point == pytest.approx(stats.hedge_effectiveness(h, u), abs=1e-15)
    assert (ci.lo, ci.hi) == pytest.approx((ref[0, 0], ref[1, 0]), abs=1e-12)
    assert ci.lo <= ci.point <= ci.hi


def test_he_interval_is_seeded_and_narrows(rng: np.random.Generator) -> None:
    h, u = _paired_sample(rng, 6000)
    a = stats.he_interval(h, u, block_len=10, reps=300, seed=1)
    b = stats.he_interval(h, u, block_len=10, reps=300, seed=1)
    c = stats.he_interval(h, u, block_len=10, reps=300, seed=2)
    assert a == b and (a.lo, a.hi) != (c.lo, c.hi)
    small = stats.he_interval(h[:400], u[:400], block_len=10, reps=300, seed=1)
    assert a.hi - a.lo < 0.5 * (small.hi - small.lo)


def test_paired_test_flags_a_planted_difference(rng: np.random.Generator) -> None:
    n = 1500
    f = rng.standard_t(4, n) * 0.01
    u = f + rng.normal(0, 0.007, n)
    good = u - 0.95 * f
    worse = u - 0.80 * f
    d = stats.paired_he_difference(worse, good, u, reps=400, seed=3)
    assert d.point == pytest.approx(stats.hedge_effectiveness(worse, u) - stats.hedge_effectiveness(good, u), abs=1e-12)
    assert d.point < 0 and d.hi < 0 and d.excludes_zero
    same = stats.paired_he_difference(good, good.copy(), u, reps=400, seed=3)
    assert same.point == 0.0 and same.lo <= 0.0 <= same.hi and not same.excludes_zero


def test_paired_mean_difference(rng: np.random.Generator) -> None:
    x = rng.normal(0.001, 0.0005, 800)
    d = stats.paired_mean_difference(x + 0.0004, x, reps=200, seed=1)
    assert d.point == pytest.approx(0.0004) and d.excludes_zero
    noisy = stats.paired_mean_difference(x, rng.permutation(x), reps=400, seed=1)
    assert not noisy.excludes_zero
    same = stats.paired_mean_difference(x, x, seed=1)
    assert same.point == 0.0 and not same.excludes_zero


def test_bootstrap_short_sample_gives_no_interval() -> None:
    u = np.linspace(-0.01, 0.01, 20)
    ci = stats.he_interval(u / 2, u, block_len=5, seed=0)
    assert ci.point == pytest.approx(0.75)
    assert math.isnan(ci.lo) and math.isnan(ci.hi)


@pytest.mark.parametrize("kwargs", [{"block_len": 0}, {"block_len": 5, "reps": 0}, {"block_len": 5, "level": 1.0}])
def test_bootstrap_rejects_bad_arguments(kwargs: dict) -> None:
    u = np.linspace(-0.01, 0.01, 100)
    with pytest.raises(ValueError):
        stats.he_interval(u, u * 0.5, seed=0, **kwargs)


# -- VaR / CVaR ------------------------------------------------------------------------
def test_var_cvar_hand_example() -> None:
    r = np.arange(-10, 10) / 100.0  # -0.10 ... 0.09, 20 returns
    # level 0.90: k = ceil(20 * 0.10) = 2 worst returns, -0.10 and -0.09
    var, cvar = stats.var_cvar(r, 0.90)
    assert var == pytest.approx(0.09)
    assert cvar == pytest.approx(0.095)


def test_var_cvar_100_returns_ignores_nan(rng: np.random.Generator) -> None:
    r = rng.permutation(np.arange(1, 101) / -1000.0)  # -0.001 ... -0.100
    r = np.append(r, np.nan)
    var, cvar = stats.var_cvar(r, 0.95)
    # k = 5 worst: -0.100, -0.099, -0.098, -0.097, -0.096
    assert var == pytest.approx(0.096)
    assert cvar == pytest.approx(0.098)


def test_var_cvar_empty() -> None:
    assert all(math.isnan(x) for x in stats.var_cvar([np.nan]))


# -- drawdown, volatility, notes -------------------------------------------------------
def test_max_drawdown_hand_example() -> None:
    # wealth 1.10, 0.88, 0.924, 0.8316; peak 1.10 -> 1 - 0.8316 / 1.10
    assert stats.max_drawdown([0.10, -0.20, 0.05, -0.10]) == pytest.approx(0.244, abs=1e-12)


def test_max_drawdown_counts_first_bar_and_nan() -> None:
    assert stats.max_drawdown([np.nan, -0.1, 0.05]) == pytest.approx(0.1)
    assert stats.max_drawdown([0.01, 0.02, np.nan]) == 0.0
    assert stats.max_drawdown([]) == 0.0


def test_annualised_vol_uses_365_days(rng: np.random.Generator) -> None:
    r = rng.normal(0, 0.01, 500)
    sd = np.std(r, ddof=1)
    assert stats.annualised_vol(r, 24) == pytest.approx(sd * math.sqrt(365 * 24))
    assert stats.annualised_vol(np.append(r, np.nan), 1) == pytest.approx(sd * math.sqrt(365))


def test_too_short() -> None:
    note = stats.too_short(29)
    assert note is not None and "29" in note and "30" in note
    assert stats.too_short(30) is None
    assert stats.too_short(0) is not None


def test_efficient_frontier_hand_example() -> None:
    he = [0.50, 0.40, 0.45, 0.30, np.nan, 0.50]
    cost = [100, 50, 120, 40, 10, 100]
    # 0.45 @ 120 is dominated by 0.50 @ 100; ties (0, 5) do not dominate each other
    assert stats.efficient_frontier(he, cost).tolist() == [True, True, False, True, False, True]


_finite = st.floats(-0.5, 0.5, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 300), elements=_finite), st.floats(0.5, 0.995))
def test_cvar_is_at_least_var(r: np.ndarray, level: float) -> None:
    var, cvar = stats.var_cvar(r, level)
    assert cvar >= var - 1e-12
    assert -r.max() - 1e-12 <= var <= -r.min() + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=40))
def test_efficient_frontier_properties(points: list[tuple[int, int]]) -> None:
    he = np.array([p[0] for p in points], dtype=float)
    cost = np.array([p[1] for p in points], dtype=float)
    front = stats.efficient_frontier(he, cost)
    assert front.any()
    for i in range(len(points)):
        dominated = np.any((he >= he[i]) & (cost <= cost[i]) & ((he > he[i]) | (cost < cost[i])))
        assert front[i] == (not dominated)
    # the best-HE point among the cheapest of its HE is always on the frontier
    best = np.lexsort((cost, -he))[0]
    assert front[best]


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(2, 200), elements=_finite))
def test_max_drawdown_matches_loop(r: np.ndarray) -> None:
    wealth, peak, mdd = 1.0, 1.0, 0.0
    for x in r:
        wealth *= 1 + x
        peak = max(peak, wealth)
        mdd = max(mdd, 1 - wealth / peak)
    assert stats.max_drawdown(r) == pytest.approx(mdd, abs=1e-12)
