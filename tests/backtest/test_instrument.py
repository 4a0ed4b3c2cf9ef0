"""futures.underlying: the built index or one symbol of the price data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from backtest.cli import main
from backtest.config import FuturesSection
from backtest.engine import prepare
from backtest.errors import ConfigError
from backtest.results import run
from conftest import synthetic_config
from instr_data import write_btc_coin_prices


def _config(prices: Path, underlying: str):
    return synthetic_config(
        prices,
        futures={"kind": "perpetual", "contract_size": 0.01, "premium": 0.0, "underlying": underlying},
        funding={"source": "constant", "rate_per_interval": 0.0},
        rules=[{"family": "notional", "fraction": 1.0}, {"family": "min_variance", "window": 240}],
    )


def test_coin_built_from_btc_is_best_hedged_with_btc_and_oracle_is_ols_r2(tmp_path: Path) -> None:
    prices = write_btc_coin_prices(tmp_path / "prices.parquet")
    oracle = {u: prepare(_config(prices, u)).notes.oracle_r2 for u in ("index", "BTC", "ETH")}
    assert max(oracle, key=oracle.get) == "BTC"
    assert oracle["BTC"] > 0.6 > oracle["ETH"] and oracle["index"] < 0.05

    # independent: statsmodels OLS of the coin's close-to-close returns on BTC's, from the raw file,
    # over the replay window (the perpetual at premium 0 is marked at BTC's close)
    p = prepare(_config(prices, "BTC"))
    raw = pd.read_parquet(prices).pivot(index="ts", columns="symbol", values="close").loc[p.ts]
    y = raw["COIN"].pct_change().to_numpy()[1:]
    x = raw["BTC"].pct_change().to_numpy()[1:]
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    assert oracle["BTC"] == pytest.approx(fit.rsquared, rel=1e-10)
    np.testing.assert_allclose(p.market.idx, raw["BTC"].to_numpy(), rtol=0, atol=0)

    he = {u: json.loads(run(_config(prices, u)).summary_json)["rules"]["min_variance(window=240)"]["hedge_effectiveness"]
          for u in ("index", "BTC", "ETH")}
    assert max(he, key=he.get) == "BTC"


def test_symbol_underlying_ignores_constituents_and_summary_says_so(tmp_path: Path) -> None:
    prices = write_btc_coin_prices(tmp_path / "prices.parquet")
    # constituents that do not exist would fail the index build; with a symbol they are ignored
    cfg = synthetic_config(prices, futures={"underlying": "ETH"}, index={"constituents": ["NOPE1", "NOPE2", "NOPE3"]})
    summary = run(cfg).summary
    assert summary["futures"]["underlying"] == "ETH"
    assert summary["scenario"]["underlying"] == "ETH"
    assert "ignored" in summary["scenario"]["index"]
    assert "ETH futures" in summary["scenario"]["description"]
    index_run = run(synthetic_config(prices)).summary
    assert index_run["futures"]["underlying"] == "index"


def test_unknown_underlying_names_it_and_lists_available(tmp_path: Path, capsys) -> None:
    prices = write_btc_coin_prices(tmp_path / "prices.parquet")
    with pytest.raises(ConfigError, match=r"unknown symbol 'DOGE'.*AAA, BBB, BTC, CCC, COIN, DDD, ETH"):
        prepare(synthetic_config(prices, futures={"underlying": "DOGE"}))
    toml = tmp_path / "s.toml"
    toml.write_text('[data]\nprices = "prices.parquet"\nohlc = ""\n[position]\ncoins = ["COIN"]\nunits = [1000]\n'
                    '[futures]\nunderlying = "DOGE"\n', encoding="utf-8")
    assert main(["run", str(toml), "--out", str(tmp_path / "out"), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "futures.underlying" in err and "DOGE" in err and "BTC" in err and "Traceback" not in err


@pytest.mark.parametrize("bad", ["", " BTC", "B TC"])
def test_underlying_must_be_a_symbol(bad: str) -> None:
    with pytest.raises(ConfigError, match="futures.underlying"):
        FuturesSection(underlying=bad)


def test_compare_underlyings_is_a_grid_axis(tmp_path: Path) -> None:
    from backtest.grid import parse_compare, run_compare

    prices = write_btc_coin_prices(tmp_path / "prices.parquet", n_days=40)
    grid = {"underlyings": ["index", "BTC", "ETH"], "rules": [{"family": "min_variance", "window": [120]}],
            "rebalance": [{"mode": "every", "every_bars": [24]}]}
    cfg = synthetic_config(prices, compare=grid)
    table = run_compare(cfg)
    assert list(table["underlying"]) == ["BTC", "ETH", "index"]  # ranked by HE within the coin
    assert list(table["rank"]) == [1, 2, 3]
    assert table["variant"].iloc[0].startswith("BTC | ")
    single = run(synthetic_config(prices, futures={"underlying": "BTC"},
                                  rules=[{"family": "min_variance", "window": 120}])).summary
    assert table["hedge_effectiveness"].iloc[0] == pytest.approx(
        single["rules"]["min_variance(window=120)"]["hedge_effectiveness"], rel=1e-12)
    with pytest.raises(ConfigError, match=r"compare.underlyings"):
        parse_compare(synthetic_config(prices, compare={**grid, "underlyings": ["BTC", "BTC"]}))
