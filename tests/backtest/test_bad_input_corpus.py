"""The bad-input corpus: every case goes through the real command line.

Each case builds its bad input in a temporary folder and runs ``hedgebt``; each must
exit with code 2, print exactly one line ``hedgebt: error: ...`` that names the file
and the column/row (data) or the dotted key (config), print no traceback, and leave
no output behind (no result folder, no dataset, no temporary files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main

from conftest import SYNTHETIC_SCENARIO, write_synthetic_prices

BASE_CONFIG = SYNTHETIC_SCENARIO + '[[rules]]\nfamily = "notional"\n'

KLINE = "{t},1,2,0.5,{c},100,{t2},150,10,50,75,0\n"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]
    expect: tuple[str, ...]


# -- builders ----------------------------------------------------------------------------------


def _ingest(name: str, text: str, fmt: str = "auto") -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / name).write_text(text, encoding="utf-8")
        return ["ingest", str(tmp / name), "--symbol", "FET", "--into", str(tmp / "dataset.parquet"), "--format", fmt]

    return build


def _yahoo(*rows: str) -> str:
    return "Date,Open,High,Low,Close,Adj Close,Volume\n" + "".join(r + "\n" for r in rows)


def _run_with_prices(corrupt: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        prices = write_synthetic_prices(tmp / "prices.parquet", n_days=30)
        corrupt(pd.read_parquet(prices)).to_parquet(prices, index=False)
        (tmp / "scenario.toml").write_text(BASE_CONFIG, encoding="utf-8")
        return ["run", str(tmp / "scenario.toml"), "--out", str(tmp / "out")]

    return build


def _run_with_config(edit: Callable[[str], str]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        write_synthetic_prices(tmp / "prices.parquet", n_days=30)
        (tmp / "scenario.toml").write_text(edit(BASE_CONFIG), encoding="utf-8")
        return ["run", str(tmp / "scenario.toml"), "--out", str(tmp / "out")]

    return build


def _set(df: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    df = df.copy()
    df.loc[row, column] = value
    return df


def _gap(df: pd.DataFrame) -> pd.DataFrame:
    coin = df.index[df["symbol"] == "COIN"]
    return df.drop(coin[100:110])  # 10 missing hours > max_fill_bars = 6


def _with_ohlc(corrupt: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        prices = write_synthetic_prices(tmp / "prices.parquet", n_days=30)
        df = pd.read_parquet(prices)
        ohlc = df.assign(open=df["close"], high=df["close"] * 1.01, low=df["close"] * 0.99, volume=1.0)
        corrupt(ohlc).to_parquet(tmp / "ohlc.parquet", index=False)
        (tmp / "scenario.toml").write_text(BASE_CONFIG.replace('ohlc = ""', 'ohlc = "ohlc.parquet"'), encoding="utf-8")
        return ["run", str(tmp / "scenario.toml"), "--out", str(tmp / "out")]

    return build


def _output_is_a_file(tmp: Path) -> list[str]:
    args = _run_with_config(lambda t: t)(tmp)
    (tmp / "out").write_text("not a folder")
    return args


def _replay_outside(tmp: Path) -> list[str]:
    args = _run_with_config(lambda t: t + '\n[events.future]\nstart = "2030-01-01"\nend = "2030-02-01"\ntitle = "later"\n')(tmp)
    return ["replay", args[1], "--event", "future", "--out", str(tmp / "out")]


CASES = [
    # ingest: vendor files
    Case("ingest_empty_file", _ingest("empty.csv", ""), ("empty.csv", "empty")),
    Case("ingest_header_only", _ingest("h.csv", "Unix,Date,Symbol,Open,High,Low,Close,Volume FET,Volume USDT,tradecount\n"), ("h.csv", "row 0")),
    Case("ingest_wrong_delimiter", _ingest("semi.csv", "Date;Open;High;Low;Close;Adj Close;Volume\n2024-01-01;1;2;0.5;1.5;1.5;100\n"), ("semi.csv", "delimited")),
    Case("ingest_unparseable_date", _ingest("d.csv", _yahoo("2024-01-01,1,2,0.5,1.5,1.5,100", "2024-13-45,1,2,0.5,1.5,1.5,100")), ("d.csv", "column 'Date'", "row 1", "2024-13-45")),
    Case("ingest_mixed_timestamp_units", _ingest("m.csv", KLINE.format(t=1704067200000, t2=1704070799999, c=1.5) + KLINE.format(t=1704070800000000, t2=1704074399999999, c=1.5), "binance"), ("m.csv", "row 1", "mixes timestamp units")),
    Case("ingest_negative_price", _ingest("n.csv", KLINE.format(t=1704067200000, t2=1704070799999, c=-1.5), "binance"), ("n.csv", "column 'close'", "row 0", "-1.5")),
    Case("ingest_zero_price", _ingest("z.csv", _yahoo("2024-01-01,1,2,0.5,0,1.5,100")), ("z.csv", "column 'close'", "row 0", "0.0")),
    Case("ingest_nan_price", _ingest("nan.csv", _yahoo("2024-01-01,1,2,0.5,nan,1.5,100")), ("nan.csv", "column 'close'", "nan")),
    Case("ingest_infinite_price", _ingest("inf.csv", _yahoo("2024-01-01,1,2,0.5,inf,1.5,100")), ("inf.csv", "column 'close'", "inf")),
    Case("ingest_high_below_low", _ingest("hl.csv", _yahoo("2024-01-01,1,0.4,0.5,0.45,0.45,100")), ("hl.csv", "column 'high'", "high >= low")),
    Case("ingest_negative_volume", _ingest("v.csv", _yahoo("2024-01-01,1,2,0.5,1.5,1.5,-100")), ("v.csv", "column 'volume'", ">= 0")),
    Case("ingest_duplicate_bars", _ingest("dup.csv", _yahoo("2024-01-01,1,2,0.5,1.5,1.5,100", "2024-01-01,1,2,0.5,1.5,1.5,100")), ("dup.csv", "column 'ts'", "row 1", "duplicate")),
    # run: Parquet inputs
    Case("parquet_tz_naive", _run_with_prices(lambda d: d.assign(ts=d["ts"].dt.tz_localize(None))), ("prices.parquet", "column 'ts'", "tz-aware")),
    Case("parquet_non_utc", _run_with_prices(lambda d: d.assign(ts=d["ts"].dt.tz_convert("Europe/Berlin"))), ("prices.parquet", "column 'ts'", "UTC")),
    Case("parquet_duplicate_bars", _run_with_prices(lambda d: pd.concat([d, d.iloc[[5]]], ignore_index=True)), ("prices.parquet", "column 'ts'", "duplicate")),
    Case("parquet_unsorted_bars", _run_with_prices(lambda d: d.iloc[[1, 0, *range(2, len(d))]].reset_index(drop=True)), ("prices.parquet", "column 'ts'", "row 1")),
    Case("parquet_negative_price", _run_with_prices(lambda d: _set(d, 40, "close", -2.0)), ("prices.parquet", "column 'close'", "row 40", "-2.0")),
    Case("parquet_zero_price", _run_with_prices(lambda d: _set(d, 41, "close", 0.0)), ("prices.parquet", "column 'close'", "row 41")),
    Case("parquet_nan_price", _run_with_prices(lambda d: _set(d, 42, "close", np.nan)), ("prices.parquet", "column 'close'", "row 42", "nan")),
    Case("parquet_infinite_price", _run_with_prices(lambda d: _set(d, 43, "close", np.inf)), ("prices.parquet", "column 'close'", "row 43", "inf")),
    Case("parquet_huge_gap", _run_with_prices(_gap), ("prices.parquet", "COIN", "max_fill_bars")),
    Case("parquet_missing_close_column", _run_with_prices(lambda d: d.rename(columns={"close": "price"})), ("prices.parquet", "column 'close'")),
    Case("ohlc_high_below_low", _with_ohlc(lambda d: _set(d, 7, "high", d.loc[7, "low"] * 0.5)), ("ohlc.parquet", "column 'high'", "row 7")),
    # run: configuration
    Case("basket_symbol_missing", _run_with_config(lambda t: t.replace('"DDD"]', '"NOPE"]')), ("prices.parquet", "unknown symbol 'NOPE'")),
    Case("config_unknown_key", _run_with_config(lambda t: t.replace("[position]", "[position]\nsize = 3")), ("scenario.toml", "'position.size'", "unknown key")),
    Case("config_wrong_type", _run_with_config(lambda t: t.replace("units = [100000]", 'units = "lots"')), ("scenario.toml", "'position.units'", "expected a list")),
    Case("config_negative_fee", _run_with_config(lambda t: t + "\n[fees]\ntaker_bps = -3\n"), ("scenario.toml", "'fees.taker_bps'", "-3")),
    Case("config_contract_size_zero", _run_with_config(lambda t: t + "\n[futures]\ncontract_size = 0\n"), ("scenario.toml", "'futures.contract_size'", "> 0")),
    Case("config_end_before_start", _run_with_config(lambda t: t.replace('start = "2024-01-01"', 'start = "2024-01-20"\nend = "2024-01-10"')), ("scenario.toml", "'scenario.end'", "not after start")),
    Case("config_unknown_rule", _run_with_config(lambda t: t.replace('family = "notional"', 'family = "hope"')), ("scenario.toml", "unknown rule 'hope'")),
    Case("config_not_toml", _run_with_config(lambda t: "this is not = = toml"), ("scenario.toml", "not valid TOML")),
    Case("event_outside_data", _replay_outside, ("'future'", "outside the data period")),
    Case("output_path_is_a_file", _output_is_a_file, ("out", "is a file")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_one_line_and_no_output(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = case.build(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hedgebt: error: ") and "Traceback" not in err
    for fragment in case.expect:
        assert fragment in lines[0], (fragment, lines[0])
    after = {p for p in tmp_path.rglob("*")}
    assert after == before, f"left behind: {sorted(map(str, after - before))}"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
