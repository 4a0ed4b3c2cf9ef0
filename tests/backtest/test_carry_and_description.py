"""Carry and trading cost per rule, and the index description computed from what was held."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.engine import prepare
from backtest.results import run

from conftest import synthetic_config, write_synthetic_prices


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    return write_synthetic_prices(tmp_path / "prices.parquet", n_days=45)


def _years(summary: dict) -> float:
    return summary["period"]["bars"] / summary["period"]["bars_per_day"] / 365.0


def test_quarterly_carry_is_the_basis_pnl(prices: Path) -> None:
    result = run(synthetic_config(prices))
    ledger = result.ledger
    for rule, m in result.summary["rules"].items():
        g = ledger[ledger["rule"] == rule]
        costs = -(g["fees"] + g["slippage"] + g["roll_cost"] + g["liquidation_cost"]).sum()
        assert m["cost_trading_usd"] == pytest.approx(costs, rel=1e-9)
        assert m["cost_trading_bps_per_year"] == pytest.approx(m["cost_drag_bps_per_year"], rel=1e-12)
        assert m["carry_usd"] == pytest.approx(g["pnl_basis"].sum(), rel=1e-9)
        assert m["carry_usd"] > 0  # 5 %/yr contango: the short earns the roll-down
        # both bps figures on one scale: USD / bps is the same for cost and carry
        assert m["carry_usd"] / m["carry_bps_per_year"] == pytest.approx(costs / m["cost_trading_bps_per_year"], rel=1e-9)
        assert m["net_cost_usd"] == pytest.approx(costs - m["carry_usd"], rel=1e-9)
        assert m["net_cost_bps_per_year"] == pytest.approx(m["cost_trading_bps_per_year"] - m["carry_bps_per_year"], rel=1e-9)
        mean_value = g["alt_value"].mean()
        assert m["carry_bps_per_year"] == pytest.approx(m["carry_usd"] / mean_value / _years(result.summary) * 1e4, rel=1e-6)


def test_perpetual_carry_is_the_funding(prices: Path) -> None:
    cfg = synthetic_config(prices, futures={"kind": "perpetual", "contract_size": 1.0},
                           funding={"source": "constant", "rate_per_interval": 0.0001})
    result = run(cfg)
    for rule, m in result.summary["rules"].items():
        assert m["carry_usd"] == pytest.approx(m["pnl"]["funding"], rel=1e-12)
        assert m["carry_usd"] > 0  # a positive rate: the short receives


def test_index_description_reports_what_was_held(prices: Path) -> None:
    cfg = synthetic_config(prices)
    text = run(cfg).summary["scenario"]["index"]
    w = prepare(cfg).index.weights
    held = (w > 0).sum(axis=1)
    shown = str(held.min()) if held.min() == held.max() else f"{held.min()}-{held.max()}"  # not "held 10-10"
    assert f"held {shown} at once" in text
    assert f"largest weight {w.to_numpy().max():.1%}" in text
    cap_bound = bool((np.abs(w.to_numpy() - 0.4) < 1e-9).any())
    assert ("never bound" in text) != cap_bound


@pytest.mark.parametrize(("rebalance", "words"), [
    ({"mode": "every", "every_bars": 24}, "short re-sized every 24 bars."),
    ({"mode": "every", "every_bars": 1}, "short re-sized every 1 bar."),
    ({"mode": "band", "band": 0.025}, "short re-sized on any bar where the hedge has drifted more than 2.5 % from its target."),
    ({"mode": "band_on_schedule", "every_bars": 8, "band": 0.1},
     "short re-sized every 8 bars when the hedge has drifted more than 10 % from its target."),
])
def test_scenario_description_states_the_rebalance_rule_in_words(prices: Path, rebalance: dict, words: str) -> None:
    """The description names the rule of ``[rebalance]`` the run used (not the mode's key with a
    bar count that a band does not use), and a one-unit contract in the singular."""
    text = run(synthetic_config(prices, rebalance=rebalance)).summary["scenario"]["description"]
    assert text.endswith("; " + words), text
    assert "contract = 1 index unit," in text


@pytest.mark.parametrize(("funding", "words"), [
    ({"source": "constant", "rate_per_interval": 0.0001}, "an index perpetual with a constant funding rate of 0.01 % every 8 h;"),
    ({"source": "formula", "interval_hours": 4}, "an index perpetual with funding by the premium formula (premium + clamped "
                                                 "interest) every 4 h;"),
])
def test_scenario_description_states_the_funding_in_words(prices: Path, funding: dict, words: str) -> None:
    cfg = synthetic_config(prices, futures={"kind": "perpetual", "contract_size": 1.0}, funding=funding)
    assert "; short " + words in run(cfg).summary["scenario"]["description"]
