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
