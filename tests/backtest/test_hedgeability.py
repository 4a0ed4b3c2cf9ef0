"""Coin scan: league table on a small synthetic dataset, daily HE by hand, CLI."""

from __future__ import annotations

import json
import re

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from backtest.errors import ConfigError
from backtest.results import run
from backtest.hedgeability import ScanSpec, _coin_config, daily_he, run_scan

from conftest import synthetic_config
from instr_data import write_scan_prices
from records import assert_result_record


@pytest.fixture
def config(tmp_path: Path):
    prices = write_scan_prices(tmp_path / "prices.parquet")
    return synthetic_config(prices, rules=[{"family": "notional", "fraction": 1.0},
                                           {"family": "min_variance", "window": 120}])


def test_league_table_picks_the_natural_instrument(config) -> None:
    spec = ScanSpec(min_history_days=30, notional_usd=50_000.0)
    scan = run_scan(config, spec)
    table, long, skipped = scan.table, scan.long, scan.skipped
    assert set(table["coin"]) == {"AAA", "AIC", "BBB", "BTCLIKE", "CCC", "DDD"}  # underlyings not scanned
    assert skipped == [{"coin": "NEW", "reason": "10 days of data in the window < 30"}]
    best = table.set_index("coin")
    assert best.loc["BTCLIKE", "best_underlying"] == "BTC"
    assert best.loc["AIC", "best_underlying"] == "index"
    assert best.loc["BTCLIKE", "oracle_r2_BTC"] > 0.6 > best.loc["BTCLIKE", "oracle_r2_index"]
    assert list(table["rank"]) == list(range(1, 7))
    assert (np.diff(table["best_he_daily"].to_numpy()) <= 0).all()
    assert len(long) == 6 * 3 * 2
    # every underlying of a coin runs on the same window (the index's first level fixes the start)
    assert long.groupby("coin")["start"].nunique().max() == 1


def test_daily_he_equals_a_hand_computation_from_the_ledger(config) -> None:
    spec = ScanSpec(coins=("AIC",), min_history_days=30, notional_usd=50_000.0)
    long = run_scan(config, spec).long
    row = long[(long["underlying"] == "index") & (long["rule"] == "notional")].iloc[0]
    cfg = _coin_config(config, "AIC", 50_000.0, pd.Timestamp(row["start"]), pd.Timestamp(row["end"]), "index")
    result = run(cfg)
    led = result.ledger
    led = led[led["rule"] == "notional"].set_index("ts")
    pnl_h = led["ret_hedged"] * led["alt_value"].shift(1)
    pnl_u = led["pnl_altcoin"].where(led.index > led.index[0])
    daily = pd.DataFrame({"h": pnl_h, "u": pnl_u}).dropna().resample("1D")
    sums, counts = daily.sum(), daily.count()["h"]
    sums = sums[counts == 24]
    want = 1 - sums["h"].var() / sums["u"].var()
    assert row["he_daily"] == pytest.approx(want, rel=1e-9)
    assert row["he_bar"] == pytest.approx(result.summary["rules"]["notional"]["hedge_effectiveness"], rel=1e-12)


def test_daily_he_on_daily_bars_is_the_bar_he() -> None:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2024-01-01", periods=50, freq="D", tz="UTC")
    u = rng.normal(size=50)
    h = 0.4 * u + rng.normal(size=50)
    assert daily_he(ts, pd.Timedelta(days=1), h, u) == pytest.approx(1 - np.var(h, ddof=1) / np.var(u, ddof=1))
    assert np.isnan(daily_he(ts[:2], pd.Timedelta(days=1), h[:2], u[:2]))


def test_scan_cli(config, tmp_path: Path, capsys) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[scenario]\nstart = "2024-01-01"\n[data]\nprices = "prices.parquet"\nohlc = ""\n'
        '[index]\nconstituents = ["AAA", "BBB", "CCC", "DDD"]\nmin_history_days = 3\nmax_weight = 0.4\n'
        '[rebalance]\nwhole_contracts = false\n', encoding="utf-8")
    args = ["scan", str(toml), "--coins", "BTCLIKE,AIC", "--min-days", "30", "--notional-usd", "50000"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    for name in ("scan.csv", "scan_long.csv", "scan.json", "scan.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    record = json.loads((tmp_path / "a" / "scan.json").read_text(encoding="utf-8"))
    assert_result_record(record, {"prices": tmp_path / "prices.parquet"}, events=False)
    assert record["coins"] == ["BTCLIKE", "AIC"]
    table = pd.read_csv(tmp_path / "a" / "scan.csv")
    assert list(table["coin"]) == ["BTCLIKE", "AIC"] or list(table["coin"]) == ["AIC", "BTCLIKE"]
    capsys.readouterr()
    assert main(["scan", str(toml), "--coins", "DOGE", "--out", str(tmp_path / "c")]) == 2
    assert "DOGE" in capsys.readouterr().err
    assert main(["scan", str(toml), "--underlyings", "index,XRP", "--out", str(tmp_path / "d")]) == 2
    with pytest.raises(ConfigError, match="--min-days"):
        ScanSpec(min_history_days=0)


def test_scan_refuses_a_scan_of_nothing_and_an_absurd_notional(config, tmp_path: Path, capsys) -> None:
    """Every coin skipped (was a KeyError while drawing scan.png), or a holding above the
    config's bound of 1e12 USD (ran with overflow warnings and named a best underlying):
    one line, exit 2, nothing written."""
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[scenario]\nstart = "2024-01-01"\n[data]\nprices = "prices.parquet"\nohlc = ""\n'
        '[index]\nconstituents = ["AAA", "BBB", "CCC", "DDD"]\nmin_history_days = 3\nmax_weight = 0.4\n',
        encoding="utf-8")
    capsys.readouterr()
    assert main(["scan", str(toml), "--coins", "AIC", "--min-days", "100000", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "option '--coins': no coin left to scan (AIC: " in err[0], err
    assert main(["scan", str(toml), "--coins", "AIC", "--notional-usd", "1e300", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "option '--notional-usd': expected a USD amount > 0 and <= 1e+12" in err[0], err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_league_names_no_best_when_no_hedge_effectiveness_was_measurable() -> None:
    from backtest.hedgeability import _league

    ts = pd.Timestamp("2024-01-01", tz="UTC")
    long = pd.DataFrame([{"coin": "AIC", "underlying": u, "rule": "notional", "start": ts, "end": ts, "days": 200.0,
                          "oracle_r2": np.nan, "he_daily": np.nan, "cost_drag_bps_per_year": 0.0}
                         for u in ("index", "BTC")])
    row = _league(long, ScanSpec(underlyings=("index", "BTC"))).iloc[0]
    assert row["best_underlying"] == "" and row["best_rule"] == "" and np.isnan(row["best_he_daily"])
    assert row["rule_index"] == "" and row["rule_BTC"] == ""


def test_a_scan_outcome_hands_out_copies(config) -> None:
    from backtest.api import scan

    outcome = scan(config, coins=["AAA"], underlyings=["index"], min_history_days=30, notional_usd=50_000.0)
    table, long, info = outcome.table, outcome.long, outcome.info
    table.loc[:, "coin"] = "changed"
    long.loc[:, "coin"] = "changed"
    info["underlyings"] = ["zz"]
    assert set(outcome.table["coin"]) == {"AAA"} and set(outcome.long["coin"]) == {"AAA"}
    assert outcome.info["underlyings"] == ["index"]


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"coins": "AAA"}, "'coins': expected a list, got 'AAA'"),  # a string was scanned letter by letter
    ({"coins": [1]}, "'--coins': expected symbols"),
    ({"notional_usd": "1e6"}, "'--notional-usd': expected a number, got '1e6'"),
])
def test_scan_arguments_of_the_wrong_type_are_config_errors(config, kwargs: dict, says: str) -> None:
    from backtest.api import scan
    from backtest.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        scan(config, **kwargs)
