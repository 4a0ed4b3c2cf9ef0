"""Which hedge instrument: per-underlying table and paired bootstrap verdict of a compare grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import StationaryBootstrap, optimal_block_length

from backtest.cli import main
from backtest.instrument_choice import paired_he_interval

from instr_data import write_btc_coin_prices


def _days(rng: np.random.Generator, n: int = 300) -> pd.DataFrame:
    u = rng.normal(size=n)
    return pd.DataFrame({"h_A": 0.3 * u + rng.normal(0, 0.5, n), "u_A": u,
                         "h_B": 0.6 * u + rng.normal(0, 0.8, n), "u_B": u})


def test_paired_interval_equals_arch_apply_on_the_same_seed(rng) -> None:
    days = _days(rng)
    got = paired_he_interval(days, "A", "B", reps=300, seed=4)
    x = days[["h_A", "u_A", "h_B", "u_B"]].to_numpy()
    block = max(1.0, float(np.nanmax(optimal_block_length(x[:, [0, 2]] ** 2)["stationary"])))
    he = lambda d: np.array([1 - d[:, 0].var(ddof=1) / d[:, 1].var(ddof=1), 1 - d[:, 2].var(ddof=1) / d[:, 3].var(ddof=1)])  # noqa: E731
    draws = StationaryBootstrap(block, x, seed=4).apply(he, 300)
    assert got["block_days"] == block
    assert got["he_a"] == pytest.approx(he(x)[0]) and got["he_a"] > got["he_b"]
    assert [got["diff_lo"], got["diff_hi"]] == pytest.approx(list(np.quantile(draws[:, 0] - draws[:, 1], [0.025, 0.975])))
    assert [got["b_lo"], got["b_hi"]] == pytest.approx(list(np.quantile(draws[:, 1], [0.025, 0.975])))
    same = paired_he_interval(days, "A", "A", reps=50)
    assert same["diff"] == same["diff_lo"] == same["diff_hi"] == 0.0


def test_compare_with_underlyings_writes_the_instrument_verdict(tmp_path: Path, capsys) -> None:
    prices = write_btc_coin_prices(tmp_path / "prices.parquet", n_days=60)
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[scenario]\nstart = "2024-01-01"\n[data]\nprices = "prices.parquet"\nohlc = ""\n'
        '[position]\ncoins = ["COIN"]\nunits = [100000]\n'
        '[index]\nconstituents = ["AAA", "BBB", "CCC", "DDD"]\nmin_history_days = 3\nmax_weight = 0.4\n'
        '[futures]\ncontract_size = 0.01\n[rebalance]\nwhole_contracts = false\n'
        '[compare]\nunderlyings = ["index", "BTC", "ETH"]\n'
        '[[compare.rules]]\nfamily = "min_variance"\nwindow = [120]\n'
        '[[compare.rebalance]]\nmode = "every"\nevery_bars = [24]\n', encoding="utf-8")
    assert main(["compare", str(toml), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    assert "BTC vs ETH" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "instruments.csv")
    assert list(table["underlying"]) == ["BTC", "ETH", "index"]
    assert (table["he_daily_lo"] <= table["he_daily"]).all() and (table["he_daily"] <= table["he_daily_hi"]).all()
    verdict = pd.read_json(tmp_path / "out" / "instruments.json")
    assert verdict.loc[0, "best"] == "BTC" and verdict.loc[0, "verdict"].endswith("BTC better")
