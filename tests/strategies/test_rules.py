"""Hedge rules: independent checks of the estimates, causality, warm-up, NaN handling, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from backtest.errors import ConfigError
from strategies.rules import (
    EWMA,
    RULES,
    Dynamic,
    Fixed,
    HedgeRule,
    MinVariance,
    NoHedge,
    Notional,
    make_rule,
    ols_beta,
    oracle_r2,
)

# simulated market for the accuracy tests: r_F ~ N(0, SIGMA_F^2), r_S = BETA r_F + N(0, SIGMA_E^2)
BETA, SIGMA_F, SIGMA_E, N_BARS = 1.3, 0.01, 0.008, 20_000
THEORETICAL_HE = BETA**2 * SIGMA_F**2 / (BETA**2 * SIGMA_F**2 + SIGMA_E**2)  # 0.7253


def _market(rng: np.random.Generator, n: int, beta: float = BETA) -> tuple[np.ndarray, np.ndarray]:
    """(coin_ret, fut_ret) with the simulator's NaN at bar 0."""
    fut = rng.normal(0.0, SIGMA_F, n)
    coin = beta * fut + rng.normal(0.0, SIGMA_E, n)
    fut[0] = coin[0] = np.nan
    return coin, fut


def _oos_he(coin: np.ndarray, fut: np.ndarray, h: np.ndarray, first: int) -> float:
    """Out-of-sample Ederington HE of ``r_S[t] - h[t-1] r_F[t]`` for ``t > first``."""
    hedged = coin[first + 1 :] - h[first:-1] * fut[first + 1 :]
    return 1.0 - float(np.var(hedged)) / float(np.var(coin[first + 1 :]))


ALL_RULES: list[HedgeRule] = [
    NoHedge(),
    Fixed(0.8),
    Notional(),
    Notional(0.5),
    MinVariance(window=120),
    MinVariance(window=300, min_periods=40, warmup="none"),
    EWMA(halflife=50.0),
    EWMA(halflife=20.0, warmup="none", min_periods=5),
    Dynamic(refit_bars=250, min_periods=400),
    Dynamic(refit_bars=100, min_periods=300, fit_window=500, warmup="none"),
]


# --------------------------------------------------------------------------- exact in-sample identities


def test_min_variance_full_window_equals_ols(rng: np.random.Generator) -> None:
    n = 750
    coin, fut = _market(rng, n + 1)  # bar 0 is NaN: the window holds the n returns
    h = MinVariance(window=n).hedge_ratio(coin, fut)
    y, x = coin[1:], fut[1:]
    slope_sm = sm.OLS(y, sm.add_constant(x)).fit().params[1]
    reg = stats.linregress(x, y)
    assert h[-1] == pytest.approx(slope_sm, rel=1e-10, abs=1e-10)
    assert h[-1] == pytest.approx(reg.slope, rel=1e-10, abs=1e-10)
    assert ols_beta(coin, fut) == pytest.approx(reg.slope, rel=1e-10)
    # Ederington: the in-sample HE of the OLS hedge is the regression R^2
    he = 1.0 - np.var(y - h[-1] * x) / np.var(y)
    r2 = sm.OLS(y, sm.add_constant(x)).fit().rsquared
    assert he == pytest.approx(r2, abs=1e-10)
    assert oracle_r2(coin, fut) == pytest.approx(reg.rvalue**2, abs=1e-10)
    assert h[n - 1] == 1.0 and h[n] != 1.0  # warm-up until the window is full


def test_ols_beta_and_oracle_r2_skip_missing_pairs(rng: np.random.Generator) -> None:
    coin, fut = _market(rng, 500)
    coin[[10, 20]] = np.nan
    fut[[30, 40]] = np.inf
    keep = np.isfinite(coin) & np.isfinite(fut)
    reg = stats.linregress(fut[keep], coin[keep])
    assert ols_beta(coin, fut) == pytest.approx(reg.slope, rel=1e-10)
    assert oracle_r2(coin, fut) == pytest.approx(reg.rvalue**2, rel=1e-10)
    assert math.isnan(ols_beta(coin[:2], fut[:2]))  # a single pair
    assert math.isnan(ols_beta(coin, np.full(500, 0.01)))
    assert math.isnan(oracle_r2(np.full(500, 0.01), fut))


def test_min_variance_window_slides_over_observations(rng: np.random.Generator) -> None:
    coin, fut = _market(rng, 400)
    coin[100:105] = np.nan
    h = MinVariance(window=60, min_periods=30).hedge_ratio(coin, fut)
    valid = np.flatnonzero(np.isfinite(coin) & np.isfinite(fut))
    for t in (150, 220, 399):
        k = int(np.searchsorted(valid, t))
        take = valid[k - 59 : k + 1]
        assert h[t] == pytest.approx(stats.linregress(fut[take], coin[take]).slope, rel=1e-10)
    # missing bars keep the previous hedge
    np.testing.assert_array_equal(h[100:105], np.full(5, h[99]))


def test_ewma_matches_explicit_weights(rng: np.random.Generator) -> None:
    coin, fut = _market(rng, 300)
    rule = EWMA(halflife=30.0)
    h = rule.hedge_ratio(coin, fut)
    lam = 0.5 ** (1 / 30)
    w = lam ** np.arange(298, -1, -1.0)  # observations 1..299, newest has weight 1
    x, y = fut[1:], coin[1:]
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    expected = np.average((x - mx) * (y - my), weights=w) / np.average((x - mx) ** 2, weights=w)
    assert h[-1] == pytest.approx(expected, rel=1e-10)
    assert rule.decay == pytest.approx(lam)


# --------------------------------------------------------------------------- accuracy on simulated data
# Tolerances. Rolling OLS on 500 bars has sd(h) = SIGMA_E / (SIGMA_F sqrt(500)) = 0.036; the
# ~39 disjoint windows of 20,000 bars give sd(mean h) ~ 0.006 (over 20 seeds: 0.0067 for
# MinVariance(500), 0.0065 for EWMA(250), 0.0079 for Dynamic). |mean h - beta| < 0.025 is more
# than 3 of those. The OOS HE has sampling sd ~ 0.0032 (20 seeds, all three rules) and the
# estimation noise in h costs ~0.0006 on average; |HE - theory| < 0.012 is more than 3.5 sd.
MEAN_H_TOL = 0.025
HE_TOL = 0.012


@pytest.mark.parametrize(
    "rule",
    [MinVariance(window=500), EWMA(halflife=250.0), Dynamic(refit_bars=1000)],
    ids=lambda rule: rule.name,
)
def test_recovers_constant_beta_out_of_sample(rng: np.random.Generator, rule: HedgeRule) -> None:
    coin, fut = _market(rng, N_BARS)
    h = rule.hedge_ratio(coin, fut)
    first = rule.warmup_bars()
    assert abs(float(np.mean(h[first:])) - BETA) < MEAN_H_TOL
    assert abs(_oos_he(coin, fut, h, first) - THEORETICAL_HE) < HE_TOL


def _dcc_garch_market(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DCC(1,1)-GARCH(1,1) returns and the true one-step-ahead beta forecast made at each bar."""
    ax, bx, ay, by, a, b, rbar, vx, vy = 0.05, 0.93, 0.08, 0.90, 0.04, 0.94, 0.6, 1e-4, 2e-4
    s2x, s2y, q11, q22, q12 = vx, vy, 1.0, 1.0, rbar
    u1, u2 = rng.standard_normal(n), rng.standard_normal(n)
    fut, coin, beta = np.empty(n), np.empty(n), np.empty(n)
    for t in range(n):
        rho = q12 / math.sqrt(q11 * q22)
        z1, z2 = u1[t], rho * u1[t] + math.sqrt(1 - rho * rho) * u2[t]
        fut[t], coin[t] = math.sqrt(s2x) * z1, math.sqrt(s2y) * z2
        s2x = vx * (1 - ax - bx) + ax * fut[t] ** 2 + bx * s2x
        s2y = vy * (1 - ay - by) + ay * coin[t] ** 2 + by * s2y
        q11 = (1 - a - b) + a * z1 * z1 + b * q11
        q22 = (1 - a - b) + a * z2 * z2 + b * q22
        q12 = (1 - a - b) * rbar + a * z1 * z2 + b * q12
        beta[t] = q12 / math.sqrt(q11 * q22) * math.sqrt(s2y / s2x)
    nan = np.array([np.nan])
    return np.r_[nan, coin], np.r_[nan, fut], np.r_[nan, beta]


def test_dynamic_tracks_a_time_varying_beta(rng: np.random.Generator) -> None:
    # On DCC-GARCH data the true conditional beta is the best hedge. Over 10 seeds the
    # walk-forward DCC-GARCH came within 0.0015 of its HE (tolerance 0.005) and beat the
    # rolling OLS by 0.03-0.06 (required: 0.02).
    coin, fut, true_beta = _dcc_garch_market(rng, 20_000)
    first = 1000
    he_true = _oos_he(coin, fut, true_beta, first)
    he_dynamic = _oos_he(coin, fut, Dynamic(refit_bars=1000).hedge_ratio(coin, fut), first)
    he_rolling = _oos_he(coin, fut, MinVariance(window=500).hedge_ratio(coin, fut), first)
    assert he_dynamic > he_true - 0.005
    assert he_dynamic > he_rolling + 0.02


# --------------------------------------------------------------------------- causality


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_no_look_ahead(rng: np.random.Generator, rule: HedgeRule) -> None:
    coin, fut = _market(rng, 1600)
    coin[700:703] = np.nan  # a gap
    h = rule.hedge_ratio(coin, fut)
    # before the first estimate, around refits (400, 650, 900 ... observations), in the gap, late
    for k in (0, 1, 250, 398, 399, 400, 401, 649, 650, 651, 701, 905, 1399, 1598):
        coin2, fut2 = coin.copy(), fut.copy()
        coin2[k + 1 :] = rng.normal(0.0, 0.05, coin.size - k - 1)
        fut2[k + 1 :] = rng.normal(0.0, 0.05, coin.size - k - 1)
        h2 = rule.hedge_ratio(coin2, fut2)
        np.testing.assert_array_equal(h2[: k + 1], h[: k + 1])
        if rule.warmup_bars() and k + 1 > rule.warmup_bars() + 100:
            assert not np.array_equal(h2[k + 1 :], h[k + 1 :])  # the perturbation did reach the rule


# --------------------------------------------------------------------------- output contract, warm-up, NaN


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_output_is_finite_float64_same_length(rng: np.random.Generator, rule: HedgeRule) -> None:
    coin, fut = _market(rng, 1200)
    coin[rng.random(1200) < 0.05] = np.nan
    h = rule.hedge_ratio(coin, fut)
    assert isinstance(rule, HedgeRule)
    assert h.dtype == np.float64 and h.shape == coin.shape
    assert np.all(np.isfinite(h))
    assert rule.family in RULES and rule.name.startswith(rule.family)


@pytest.mark.parametrize(
    "rule",
    [rule for rule in ALL_RULES if rule.family in ("min_variance", "ewma", "dynamic")],
    ids=lambda rule: rule.name,
)
def test_warm_up(rng: np.random.Generator, rule: HedgeRule) -> None:
    coin, fut = _market(rng, 1200)
    h = rule.hedge_ratio(coin, fut)
    warm = {"none": 0.0, "notional": 1.0}[rule.warmup]  # type: ignore[attr-defined]
    w = rule.warmup_bars()
    assert w > 0
    np.testing.assert_array_equal(h[:w], np.full(w, warm))
    assert h[w] != warm  # the first estimate is at bar warmup_bars() (bar 0 has no return)
    # with a gap inside the warm-up, the first estimate moves by the gap's length
    coin[5:15] = np.nan
    h = rule.hedge_ratio(coin, fut)
    np.testing.assert_array_equal(h[: w + 10], np.full(w + 10, warm))
    assert h[w + 10] != warm


def test_warm_up_defaults() -> None:
    assert MinVariance(window=720).warmup_bars() == 720
    assert MinVariance(window=720, min_periods=100).warmup_bars() == 100
    assert EWMA(halflife=99.5).warmup_bars() == 100
    assert EWMA(halflife=1.0).warmup_bars() == 2
    assert Dynamic(refit_bars=24).warmup_bars() == 500
    for rule in (NoHedge(), Fixed(0.3), Notional()):
        assert rule.warmup_bars() == 0


def test_constant_rules(rng: np.random.Generator) -> None:
    coin, fut = _market(rng, 50)
    np.testing.assert_array_equal(NoHedge().hedge_ratio(coin, fut), np.zeros(50))
    np.testing.assert_array_equal(Fixed(0.75).hedge_ratio(coin, fut), np.full(50, 0.75))
    np.testing.assert_array_equal(Notional().hedge_ratio(coin, fut), np.ones(50))
    np.testing.assert_array_equal(Notional(fraction=0.5).hedge_ratio(coin, fut), np.full(50, 0.5))


@pytest.mark.parametrize(
    "rule",
    [MinVariance(window=100), EWMA(halflife=40.0), Dynamic(refit_bars=200, min_periods=300)],
    ids=lambda rule: rule.name,
)
def test_missing_bars_are_skipped_not_zero(rng: np.random.Generator, rule: HedgeRule) -> None:
    coin, fut = _market(rng, 1500)
    gaps = np.sort(rng.choice(np.arange(1, 1500), 60, replace=False))
    coin_gap, fut_gap = coin.copy(), fut.copy()
    coin_gap[gaps[::2]] = np.nan
    fut_gap[gaps[1::2]] = np.nan
    h = rule.hedge_ratio(coin_gap, fut_gap)
    # same as running the rule on the observations only, then holding h over the gaps
    keep = np.isfinite(coin_gap) & np.isfinite(fut_gap)
    keep[0] = True  # keep the leading NaN bar so the warm-up lines up
    h_compact = rule.hedge_ratio(coin_gap[keep], fut_gap[keep])
    np.testing.assert_array_equal(h[keep], h_compact)
    for t in gaps:
        assert h[t] == h[t - 1]
    # treating missing returns as zeros would give a different answer
    zeros = rule.hedge_ratio(np.nan_to_num(coin_gap), np.nan_to_num(fut_gap))
    assert not np.allclose(zeros[keep], h_compact)


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="equal length"):
        MinVariance(window=10).hedge_ratio(np.zeros(5), np.zeros(6))


# --------------------------------------------------------------------------- names, factory, validation


def test_names() -> None:
    assert NoHedge().name == "none"
    assert Fixed(1).name == "fixed(ratio=1.0)"
    assert Notional().name == "notional"
    assert Notional(0.5).name == "notional(fraction=0.5)"
    assert MinVariance(window=720).name == "min_variance(window=720)"
    assert MinVariance(720, "none", 100).name == "min_variance(window=720, warmup=none, min_periods=100)"
    assert EWMA(halflife=168).name == "ewma(halflife=168.0)"
    assert EWMA(halflife=168, min_periods=10).name == "ewma(halflife=168.0, min_periods=10)"
    assert Dynamic(refit_bars=720).name == "dynamic(refit_bars=720)"
    assert (
        Dynamic(720, min_periods=1000, fit_window=8760, warmup="none").name
        == "dynamic(refit_bars=720, min_periods=1000, fit_window=8760, warmup=none)"
    )
    assert len({rule.name for rule in ALL_RULES}) == len(ALL_RULES)


def test_make_rule_builds_each_family() -> None:
    assert make_rule("none") == NoHedge()
    assert make_rule("fixed", ratio=0.9) == Fixed(0.9)
    assert make_rule("notional") == Notional(1.0)
    assert make_rule("min_variance", window=720) == MinVariance(720, "notional", 720)
    assert make_rule("ewma", halflife=168, warmup="none") == EWMA(168.0, "none")
    assert make_rule("dynamic", refit_bars=720, fit_window=8760) == Dynamic(720, 500, 8760)
    assert make_rule("multi_min_variance", instruments=["index", "BTC"], window=720).collateral_split == (0.5, 0.5)
    assert set(RULES) == {"none", "fixed", "notional", "min_variance", "ewma", "dynamic", "multi_min_variance"}


@pytest.mark.parametrize(
    ("family", "params", "key", "message"),
    [
        ("garch", {}, "rules.garch", "unknown rule 'garch'; expected one of 'none', 'fixed'"),
        ("none", {"ratio": 1.0}, "rules.none.ratio", "unknown parameter 'ratio' of rule 'none'; expected no param"),
        (
            "min_variance",
            {"window": 10, "span": 3},
            "rules.min_variance.span",
            "unknown parameter 'span' of rule 'min_variance'; expected 'window', 'warmup', 'min_periods'",
        ),
        ("min_variance", {}, "rules.min_variance.window", "missing required parameter 'window'"),
        ("ewma", {"warmup": "none"}, "rules.ewma.halflife", "missing required parameter 'halflife'"),
        ("dynamic", {}, "rules.dynamic.refit_bars", "missing required parameter 'refit_bars'"),
        ("fixed", {}, "rules.fixed.ratio", "missing required parameter 'ratio'"),
    ],
)
def test_make_rule_errors(family: str, params: dict[str, object], key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        make_rule(family, **params)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("family", "params", "key"),
    [
        ("fixed", {"ratio": -0.1}, "rules.fixed.ratio"),
        ("fixed", {"ratio": math.nan}, "rules.fixed.ratio"),
        ("fixed", {"ratio": math.inf}, "rules.fixed.ratio"),
        ("fixed", {"ratio": "1"}, "rules.fixed.ratio"),
        ("fixed", {"ratio": True}, "rules.fixed.ratio"),
        ("notional", {"fraction": -1.0}, "rules.notional.fraction"),
        ("notional", {"fraction": None}, "rules.notional.fraction"),
        ("min_variance", {"window": 1}, "rules.min_variance.window"),
        ("min_variance", {"window": 720.0}, "rules.min_variance.window"),
        ("min_variance", {"window": True}, "rules.min_variance.window"),
        ("min_variance", {"window": 10, "min_periods": 11}, "rules.min_variance.min_periods"),
        ("min_variance", {"window": 10, "min_periods": 1}, "rules.min_variance.min_periods"),
        ("min_variance", {"window": 10, "warmup": "zero"}, "rules.min_variance.warmup"),
        ("min_variance", {"window": 10, "warmup": None}, "rules.min_variance.warmup"),
        ("ewma", {"halflife": 0.0}, "rules.ewma.halflife"),
        ("ewma", {"halflife": -5.0}, "rules.ewma.halflife"),
        ("ewma", {"halflife": math.inf}, "rules.ewma.halflife"),
        ("ewma", {"halflife": "10"}, "rules.ewma.halflife"),
        ("ewma", {"halflife": 10.0, "min_periods": 1}, "rules.ewma.min_periods"),
        ("ewma", {"halflife": 10.0, "min_periods": 2.5}, "rules.ewma.min_periods"),
        ("ewma", {"halflife": 10.0, "warmup": "Notional"}, "rules.ewma.warmup"),
        ("dynamic", {"refit_bars": 0}, "rules.dynamic.refit_bars"),
        ("dynamic", {"refit_bars": 1.5}, "rules.dynamic.refit_bars"),
        ("dynamic", {"refit_bars": 24, "min_periods": 99}, "rules.dynamic.min_periods"),
        ("dynamic", {"refit_bars": 24, "fit_window": 499}, "rules.dynamic.fit_window"),
        ("dynamic", {"refit_bars": 24, "min_periods": 600, "fit_window": 500}, "rules.dynamic.fit_window"),
        ("dynamic", {"refit_bars": 24, "warmup": "full"}, "rules.dynamic.warmup"),
    ],
)
def test_bad_parameters_name_their_key(family: str, params: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match="expected") as info:
        make_rule(family, **params)
    assert info.value.key == key
    assert f"config key '{key}'" in str(info.value)
    # the classes validate on their own too, not only through the factory
    with pytest.raises(ConfigError):
        RULES[family](**params)


def test_rules_are_frozen() -> None:
    rule = MinVariance(window=10)
    with pytest.raises(AttributeError):
        rule.window = 20  # type: ignore[misc]
