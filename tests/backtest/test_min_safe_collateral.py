"""``min_safe_collateral``: the smallest starting collateral (reserve 0) with no margin event,
found by bisection on the margin-on replay; ``run`` and ``compare`` report the same figure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from backtest.engine import MIN_SAFE_TOL_USD, min_safe_collaterals, prepare, variant_for
from backtest.market import run_variant
from backtest.results import run
from backtest.grid import run_compare

from conftest import synthetic_config, write_synthetic_prices


def _events(market, variant, collateral: float) -> int:
    _, s = run_variant(market, replace(variant, margin_enabled=True, collateral_usd=collateral, reserve_usd=0.0))
    return int(s["margin_calls"] + s["liquidations"] + s["margin_capped"])


@pytest.fixture
def config(tmp_path: Path):
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=60)
    return synthetic_config(prices)


def test_reported_figure_has_no_event_and_one_percent_less_has_one(config) -> None:
    result = run(config)
    p = prepare(config)
    for col, (label, m) in enumerate(result.summary["rules"].items()):
        need = m["min_safe_collateral"]
        variant = variant_for(config, col)
        assert need > 0 and need == np.ceil(need)
        assert _events(p.market, variant, need) == 0, label
        assert _events(p.market, variant, 0.99 * need) > 0, label
        # to the stated tolerance: $1 + the rounding up below, there is an event
        assert _events(p.market, variant, need - MIN_SAFE_TOL_USD - 1.0) > 0, label


def test_event_count_is_monotone_in_collateral(config) -> None:
    """The premise of the bisection: above an event-free collateral every collateral is event-free."""
    p = prepare(config)
    variant = variant_for(config, 1)
    need = min_safe_collaterals(p.market, [variant])[0]
    grid = np.linspace(0.5 * need, 1.5 * need, 41)
    free = np.array([_events(p.market, variant, c) == 0 for c in grid])
    first = int(np.argmax(free))
    assert free[first:].all() and not free[:first].any()


def test_compare_and_run_agree(config) -> None:
    grid = replace(config, compare={"rules": [{"family": "notional", "fraction": 1.0}, {"family": "min_variance", "window": 120}],
                                    "rebalance": [{"mode": "every", "every_bars": 24}]})
    table = run_compare(grid)
    single = run(config).summary["rules"]
    for label, m in single.items():
        row = table[table["rule"] == label].iloc[0]
        assert row["min_safe_collateral"] == m["min_safe_collateral"], label


def test_no_hedge_needs_no_collateral(config) -> None:
    cfg = replace(config, rules=(replace(config.rules[0], family="none", params=()),))
    assert run(cfg).summary["rules"]["none"]["min_safe_collateral"] == 0.0


# -- several trials per kernel pass: the same search as one trial per pass ------------------------


def _variants_with_margins(config, p) -> list:
    """The scenario's rules under several margin rates, rebalance periods and contract kinds
    (some need no collateral at all: the ``none`` rule never holds a hedge; some need up to
    seven times the margin-off need, found by doubling it)."""
    out = []
    for col in range(len(p.rules)):
        v = variant_for(config, col)
        # the last two need several doublings of the margin-off need (initial margin binds at re-sizes)
        for im, mm, every, whole in ((0.05, 0.02, 24, False), (0.02, 0.01, 168, True), (0.2, 0.1, 1, True),
                                     (0.9, 0.05, 24, False)):
            out.append(replace(v, initial_rate=im, maintenance_rate=mm, every_bars=every, whole_contracts=whole))
    return out


@pytest.mark.parametrize("count", [1, 2, 3, 7, 17, 40])
def test_search_equals_the_one_trial_per_pass_reference(config, count: int) -> None:
    """From one variant (31 midpoints per pass, five halvings) to 40 (one trial per variant,
    two groups): the same brackets and figures, to the bit, as the plain bisection."""
    from backtest.reference import min_safe_collaterals_reference

    cfg = replace(config, rules=(*config.rules, replace(config.rules[0], family="none", params=())))
    p = prepare(cfg)
    pool = _variants_with_margins(cfg, p)
    variants = [pool[i % len(pool)] for i in range(count)]
    if count > len(pool):  # distinct collaterals: each repeat a little more fee
        variants = [replace(v, fee_bps=v.fee_bps + i // len(pool)) for i, v in enumerate(variants)]
    for tol in (MIN_SAFE_TOL_USD, 0.01, 250.0):
        fast = min_safe_collaterals(p.market, variants, tol_usd=tol)
        np.testing.assert_array_equal(fast, min_safe_collaterals_reference(p.market, variants, tol), err_msg=f"tol {tol}")
    assert (fast > 0).any() and ((fast == 0).any() or count < len(pool))  # the none rule is the last of the pool


def test_fewer_kernel_passes_than_one_trial_per_pass(config, monkeypatch) -> None:
    import backtest.engine as E

    p = prepare(config)
    variants = [variant_for(config, c) for c in range(len(p.rules))]
    calls = []
    real = E.run_variants
    monkeypatch.setattr(E, "run_variants", lambda m, vs: calls.append(len(vs)) or real(m, vs))
    safe = min_safe_collaterals(p.market, variants)
    halvings = int(np.ceil(np.log2(safe.max())))  # about, from a bracket [0, ~safe]
    assert len(calls) <= 2 + -(-halvings // E._tree_depth(len(variants))) + 1
    assert max(calls) <= E.K._GROUP  # every pass one group: no lane beyond the padding it replaces


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 10, 16, 17, 31, 32, 33, 64, 65])
def test_trials_fill_the_groups_the_variants_take(rows: int) -> None:
    import backtest.engine as E

    G = E.K._GROUP
    k, d = E._trials_per_row(rows), E._tree_depth(rows)
    groups = -(-rows // G)
    assert rows * k <= groups * G < rows * (k + 1)
    assert 2**d - 1 <= k < 2 ** (d + 1) - 1 or (k == 1 and d == 1)


def test_levels_of_one_pass_match_sequential_halvings() -> None:
    """:func:`_bisect_levels` against plain halvings on thresholds: same bits, every depth."""
    import backtest.engine as E

    rng = np.random.default_rng(3)
    for depth in range(1, 6):
        for _ in range(30):
            rows = int(rng.integers(1, 6))
            lo = rng.uniform(0, 1e6, rows)
            hi = lo + rng.uniform(0, 1e6, rows) * rng.choice([1e-9, 1.0], rows)
            thr = lo + rng.uniform(-0.1, 1.1, rows) * (hi - lo)
            tol = float(rng.choice([1.0, 1e-3, 1e5]))
            r_idx = np.repeat(np.arange(rows), 2**depth - 1)
            got_lo, got_hi = E._bisect_levels(lo, hi, depth, tol, lambda mids: mids < thr[r_idx])
            want_lo, want_hi = lo.copy(), hi.copy()
            for _step in range(depth):
                for r in range(rows):
                    if want_hi[r] - want_lo[r] > tol:
                        mid = 0.5 * (want_lo[r] + want_hi[r])
                        if mid < thr[r]:
                            want_lo[r] = mid
                        else:
                            want_hi[r] = mid
            np.testing.assert_array_equal(got_lo, want_lo)
            np.testing.assert_array_equal(got_hi, want_hi)
