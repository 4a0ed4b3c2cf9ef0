"""The whole pipeline on synthetic files: no look-ahead, vectorbt agreement, determinism."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest import schema
from backtest.engine import InputFile, input_records, prepare
from backtest.market import Variant, run_variant
from backtest.results import run

from conftest import synthetic_config, write_synthetic_prices
from records import assert_result_record


def test_ledger_has_the_schema_and_identities(synthetic_prices: Path) -> None:
    result = run(synthetic_config(synthetic_prices))
    ledger = result.ledger
    assert list(ledger.columns) == list(schema.LEDGER_COLUMNS)
    assert set(ledger["rule"].unique()) == {"notional", "min_variance(window=120)"}
    for _, g in ledger.groupby("rule"):
        np.testing.assert_allclose(g["equity_hedged"], g["cash"] + g["alt_value"] + g["fut_unrealized"], rtol=1e-12)
        parts = g[[schema.PNL_COLUMN[c] for c in schema.PNL_COMPONENTS]].sum(axis=1).to_numpy()
        steps = np.diff(g["equity_hedged"].to_numpy())
        np.testing.assert_allclose(steps, parts[1:], rtol=0, atol=1e-6)
    summary = result.summary
    for label, m in summary["rules"].items():
        g = ledger[ledger["rule"] == label]
        for comp in schema.PNL_COMPONENTS:
            assert m["pnl"][comp] == pytest.approx(g[schema.PNL_COLUMN[comp]].sum(), rel=1e-9, abs=1e-6)
        assert m["pnl"]["total"] == pytest.approx(sum(m["pnl"][c] for c in schema.PNL_COMPONENTS), rel=1e-12)
        r_h, r_u = g["ret_hedged"].to_numpy()[1:], g["ret_unhedged"].to_numpy()[1:]
        assert m["hedge_effectiveness"] == pytest.approx(1 - r_h.var(ddof=1) / r_u.var(ddof=1), rel=1e-9)
        assert m["vol_hedged_ann"] == pytest.approx(r_h.std(ddof=1) * np.sqrt(365 * 24), rel=1e-9)
        assert set(schema.RULE_METRICS) <= set(m)


def test_no_step_sees_a_future_bar(tmp_path: Path) -> None:
    """Perturb every price after bar k in the input file: every ledger row up to k is unchanged."""
    prices = write_synthetic_prices(tmp_path / "prices.parquet")
    base = run(synthetic_config(prices)).ledger
    raw = pd.read_parquet(prices)
    cut = pd.Timestamp("2024-02-20 13:00", tz="UTC")
    rng = np.random.default_rng(3)
    later = raw["ts"] > cut
    raw.loc[later, "close"] *= np.exp(np.cumsum(rng.normal(0, 0.05, later.sum())))
    other = tmp_path / "other"
    other.mkdir()
    raw.to_parquet(other / "prices.parquet", index=False)
    moved = run(synthetic_config(other / "prices.parquet")).ledger
    past_a = base[base["ts"] <= cut].reset_index(drop=True)
    past_b = moved[moved["ts"] <= cut].reset_index(drop=True)
    assert len(past_a) > 1000
    pd.testing.assert_frame_equal(past_a, past_b)
    assert not base[base["ts"] > cut]["equity_hedged"].equals(moved[moved["ts"] > cut]["equity_hedged"])


def test_same_inputs_give_byte_identical_tables(synthetic_prices: Path, tmp_path: Path) -> None:
    from backtest.api import run as api_run

    config = synthetic_config(synthetic_prices)
    a = api_run(config).save(tmp_path / "a", report=False)
    b = api_run(config).save(tmp_path / "b", report=False)
    for name in ("summary.json", "ledger.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_summary_records_inputs_config_and_versions(synthetic_prices: Path) -> None:
    import hashlib

    summary = run(synthetic_config(synthetic_prices)).summary
    digest = hashlib.sha256(synthetic_prices.read_bytes()).hexdigest()
    assert {"role": "prices", "path": "prices.parquet", "sha256": digest} in summary["inputs"]
    assert_result_record(summary, {"prices": synthetic_prices}, events=True)  # the report's event table reads it
    # no OHLC file: the margin check's index high is the close, and the record says so
    assert summary["index"]["intrabar_high_share"] == 0.0
    assert summary["index"]["intrabar_high"].startswith("none: ")
    assert summary["config"]["fees"]["taker_bps"] == 5.0
    assert summary["packages"]["numpy"] == np.__version__
    assert summary["period"]["bars_per_day"] == 24


def test_input_records_list_each_file_once_in_the_order_first_read() -> None:
    files = [InputFile("prices", "/a/p.parquet", "1"), InputFile("ohlc", "/a/o.parquet", "2"),
             InputFile("prices", "/b/p.parquet", "1"), InputFile("prices", "/a/p.parquet", "3")]
    assert input_records(files) == [{"role": "prices", "path": "p.parquet", "sha256": "1"},
                                    {"role": "ohlc", "path": "o.parquet", "sha256": "2"},
                                    {"role": "prices", "path": "p.parquet", "sha256": "3"}]


def test_holdings_file_resizes_the_hedge_when_the_holding_changes(synthetic_prices: Path) -> None:
    holdings = synthetic_prices.parent / "holdings.csv"
    holdings.write_text(
        "ts,symbol,units\n2023-12-01T00:00:00Z,COIN,100000\n2024-02-10T05:00:00Z,COIN,250000\n", encoding="utf-8"
    )
    config = synthetic_config(
        synthetic_prices,
        position={"kind": "file", "holdings_file": "holdings.csv", "units": []},
        rebalance={"every_bars": 1000},
        rules=[{"family": "notional", "fraction": 1.0}],
    )
    ledger = run(config).ledger
    at = ledger.index[ledger["ts"] == pd.Timestamp("2024-02-10 05:00", tz="UTC")][0]
    assert ledger.loc[at - 1, "alt_units"] == 100_000 and ledger.loc[at, "alt_units"] == 250_000
    assert bool(ledger.loc[at, "rebalanced"])  # re-sized on the bar the holding changed
    assert ledger.loc[at, "hedge_ratio_held"] == pytest.approx(1.0, abs=1e-12)
    # between those bars (every_bars = 1000) the hedge is not re-sized
    assert not ledger.loc[at - 30 : at - 1, "rebalanced"].any()


def test_constant_notional_basket(synthetic_prices: Path) -> None:
    config = synthetic_config(
        synthetic_prices,
        position={"coins": ["COIN", "AAA"], "kind": "notional", "notional_usd": [60_000.0, 40_000.0], "units": []},
        index={"constituents": ["BBB", "CCC", "DDD"], "max_weight": 0.5},
        rules=[{"family": "notional", "fraction": 0.5}],
    )
    ledger = run(config).ledger
    resets = ledger.iloc[::24]
    np.testing.assert_allclose(resets["alt_value"], 100_000.0, rtol=1e-12)
    assert ledger["alt_price"].isna().all()  # a basket has no single price
    np.testing.assert_allclose(resets["hedge_ratio_held"], 0.5, atol=1e-12)


@pytest.mark.slow
def test_fee_only_pnl_equals_vectorbt_from_orders(rng: np.random.Generator) -> None:
    """Independent reference: vectorbt's portfolio on the same orders and prices (fees only)."""
    import vectorbt as vbt

    from scenarios import random_market

    m = random_market(rng, 500, perpetual=True, holding_changes=True)
    m = replace(m, fund_rate=np.zeros(m.n_bars))
    v = Variant(fee_bps=4.0, every_bars=5, whole_contracts=True)
    rows, _ = run_variant(m, v)
    contracts = rows["contracts"]
    orders = np.diff(np.concatenate([[0.0], contracts]))
    price = m.px[:, 0] * m.contract_size  # one contract's value
    pf = vbt.Portfolio.from_orders(
        close=pd.Series(price), size=pd.Series(np.where(orders != 0, orders, np.nan)), size_type="amount",
        direction="both", fees=4e-4, init_cash=1e9, freq="1h",
    )
    value = pf.value().to_numpy()
    ours = np.cumsum(rows["pnl_futures"] + rows["fees"])
    np.testing.assert_allclose(value - 1e9, ours, rtol=1e-9, atol=1e-5)
    assert pf.orders.count() == int((orders != 0).sum())


def _futures_file_from_model(prepared, path: Path) -> pd.DataFrame:
    book = prepared.book
    rows = []
    for k, exp in enumerate(book.expiry):
        live = np.isfinite(book.px[:, k])
        rows.append(pd.DataFrame({"ts": prepared.ts[live], "expiry": exp, "close": book.px[live, k]}))
    frame = pd.concat(rows, ignore_index=True)
    frame.to_parquet(path, index=False)
    return frame


def test_user_futures_prices_replace_the_model(synthetic_prices: Path) -> None:
    """A futures file holding exactly the modelled prices reproduces the modelled run; other prices change it."""
    config = synthetic_config(synthetic_prices)
    modelled = run(config)
    frame = _futures_file_from_model(prepare(config), synthetic_prices.parent / "futures.parquet")
    from_file = run(synthetic_config(synthetic_prices, futures={"price_file": "futures.parquet"}))
    pd.testing.assert_frame_equal(modelled.ledger, from_file.ledger)
    # a richer basis in the file shows up as futures P&L
    frame.assign(close=frame["close"] * 1.01).to_parquet(synthetic_prices.parent / "rich.parquet", index=False)
    rich = run(synthetic_config(synthetic_prices, futures={"price_file": "rich.parquet"}))
    assert not np.allclose(rich.ledger["fut_price"], modelled.ledger["fut_price"])
    assert rich.summary["futures"]["source"] == "user file rich.parquet"


def test_user_futures_file_must_cover_held_bars(synthetic_prices: Path) -> None:
    from backtest.errors import DataError

    config = synthetic_config(synthetic_prices)
    frame = _futures_file_from_model(prepare(config), synthetic_prices.parent / "futures.parquet")
    frame.drop(index=300).to_parquet(synthetic_prices.parent / "holey.parquet", index=False)
    with pytest.raises(DataError, match="no price for the primary contract"):
        run(synthetic_config(synthetic_prices, futures={"price_file": "holey.parquet"}))


def test_constituent_listed_after_the_end_is_left_out_not_an_error(tmp_path: Path) -> None:
    from backtest.errors import DataError

    prices = write_synthetic_prices(tmp_path / "prices.parquet", symbols=("COIN", "AAA", "BBB", "CCC", "DDD", "EEE"))
    raw = pd.read_parquet(prices)
    late = (raw["symbol"] == "EEE") & (raw["ts"] < pd.Timestamp("2024-03-01", tz="UTC"))
    raw[~late].to_parquet(prices, index=False)
    config = synthetic_config(prices, scenario={"end": "2024-02-15"},
                              index={"constituents": ["AAA", "BBB", "CCC", "DDD", "EEE"]})
    summary = run(config).summary
    assert summary["index"]["not_listed_before_end"] == ["EEE"]
    assert "EEE" not in summary["index"]["constituents"]
    # a hedged coin without data in the window stays an error
    with pytest.raises(DataError, match="EEE"):
        run(synthetic_config(prices, scenario={"end": "2024-02-15"}, position={"coins": ["EEE"]}))


def test_bundled_daily_scenario_checks_margin_at_intrabar_highs() -> None:
    from backtest.config import PROJECT_ROOT, load_config

    result = run(load_config(PROJECT_ROOT / "backtest" / "scenarios" / "daily_2021_2023.toml"))
    summary = result.summary
    assert summary["period"]["bar"] == "1D"
    assert summary["index"]["intrabar_high_share"] > 0.9
    assert summary["index"]["intrabar_high"].startswith("upper bound of the intrabar index high")
    assert {"ohlc"} <= {i["role"] for i in summary["inputs"]}
    assert summary["index"]["not_listed_before_end"] == ["TAO"]  # RENDER: RNDR under its new ticker
    for m in summary["rules"].values():
        assert 0.3 < m["hedge_effectiveness"] < 0.6 and m["rolls"] > 0

