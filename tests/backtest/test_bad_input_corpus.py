"""The bad-input corpus: every case goes through the real command line.

Each case builds its bad input in a temporary folder and runs ``hedgebt`` in-process
(``backtest.cli.main``); each must exit with code 2, print exactly one line
``hedgebt: error: ...`` that names the file and the column/row (data) or the dotted key
(config), print no traceback, and leave the folder byte-identical: no result folder, no
dataset, no temporary file, every pre-existing file unchanged (the only file allowed to
appear is an ingest's empty ``.NAME.lock`` next to an existing dataset).

The cases of issue 11 (hostile inputs) are in :data:`HOSTILE`; signal and concurrency cases
that need real processes are in ``test_harden.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zipfile
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



# -- issue 11: hostile inputs ------------------------------------------------------------------

HOUR_MS = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC in ms


def _klines(n: int = 3, start: int = T0, step: int = HOUR_MS, close: float = 1.5, first: int | None = None) -> str:
    rows = []
    for k in range(n):
        t = start + k * step if not (k == 0 and first is not None) else first
        rows.append(KLINE.format(t=t, t2=t + step - 1, c=close))
    return "".join(rows)


def _cfg(extra: str) -> Callable[[Path], list[str]]:
    """The base scenario with ``extra`` TOML appended."""
    return _run_with_config(lambda t: t + "\n" + extra + "\n")


def _sub(old: str, new: str) -> Callable[[Path], list[str]]:
    def edit(t: str) -> str:
        assert old in t, old
        return t.replace(old, new)

    return _run_with_config(edit)


def _rule(table: str) -> Callable[[Path], list[str]]:
    return _sub('family = "notional"', table)


def _config_file(make: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    """``run`` on a config path that ``make`` turns into something hostile."""

    def build(tmp: Path) -> list[str]:
        write_synthetic_prices(tmp / "prices.parquet", n_days=30)
        make(tmp / "scenario.toml")
        return ["run", str(tmp / "scenario.toml"), "--out", str(tmp / "out")]

    return build


def _prices_path(make: Callable[[Path], str]) -> Callable[[Path], list[str]]:
    """``run`` with ``data.prices`` pointing at what ``make`` builds (returns the TOML value)."""

    def build(tmp: Path) -> list[str]:
        write_synthetic_prices(tmp / "real.parquet", n_days=30)
        value = make(tmp)
        (tmp / "scenario.toml").write_text(BASE_CONFIG.replace('prices = "prices.parquet"', f"prices = {value}"), encoding="utf-8")
        return ["run", str(tmp / "scenario.toml"), "--out", str(tmp / "out")]

    return build


def _with_ts_us(row: int, when: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Set one bar time to ``when`` (microsecond unit, so 1600 and 2300 are representable)."""

    def corrupt(d: pd.DataFrame) -> pd.DataFrame:
        values = d["ts"].astype("datetime64[us, UTC]").array.asi8.copy()
        values[row] = int(np.datetime64(when, "us").astype(np.int64))
        d = d.copy()
        d["ts"] = pd.DatetimeIndex(values.view("M8[us]")).tz_localize("UTC")
        return d

    return corrupt


def _funding(value: float, column: str = "funding_rate") -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        write_synthetic_prices(tmp / "prices.parquet", n_days=30)
        ts = pd.date_range("2024-01-01", periods=90, freq="8h", tz="UTC")
        df = pd.DataFrame({"ts": ts, "symbol": "COIN", "interval_h": 8.0, "funding_rate": 1e-4})
        df["symbol"] = df["symbol"].astype("string")
        df.loc[5, column] = value
        df.to_parquet(tmp / "funding.parquet", index=False)
        extra = ('\n[futures]\nkind = "perpetual"\n[funding]\nsource = "series"\nseries_file = "funding.parquet"\n'
                 'series_symbol = "COIN"\nfill_rate_per_interval = 0.0001\n')
        (tmp / "scenario.toml").write_text(BASE_CONFIG + extra, encoding="utf-8")
        return ["run", str(tmp / "scenario.toml"), "--out", str(tmp / "out")]

    return build


def _ingest_into(dataset_rows: str, new_rows: str, fmt: str = "binance") -> Callable[[Path], list[str]]:
    """Ingest ``new_rows`` into a dataset first created from ``dataset_rows``."""

    def build(tmp: Path) -> list[str]:
        (tmp / "first.csv").write_text(dataset_rows, encoding="utf-8")
        assert main(["ingest", str(tmp / "first.csv"), "--symbol", "FET", "--into", str(tmp / "dataset.parquet"), "--format", fmt]) == 0
        (tmp / "second.csv").write_text(new_rows, encoding="utf-8")
        return ["ingest", str(tmp / "second.csv"), "--symbol", "FET", "--into", str(tmp / "dataset.parquet"), "--format", fmt]

    return build


def _ingest_file(make: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        path = make(tmp)
        return ["ingest", str(path), "--symbol", "FET", "--into", str(tmp / "dataset.parquet"), *extra]

    return build


def _ingest_to(make_target: Callable[[Path], str]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / "k.csv").write_text(_klines(), encoding="utf-8")
        return ["ingest", str(tmp / "k.csv"), "--symbol", "FET", "--into", make_target(tmp), "--format", "binance"]

    return build


def _zip_of(name: str, payload: bytes, members: int = 1) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for k in range(members):
                zf.writestr(f"m{k}.csv", payload)
        (tmp / name).write_bytes(buf.getvalue())
        return tmp / name

    return make


def _text(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        data = text.encode("utf-8") if isinstance(text, str) else text
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


def _fifo(tmp: Path, name: str = "fifo") -> Path:
    os.mkfifo(tmp / name)
    return tmp / name


def _loop(tmp: Path, name: str = "loop") -> Path:
    os.symlink(tmp / f"{name}2", tmp / name)
    os.symlink(tmp / name, tmp / f"{name}2")
    return tmp / name


def _dangling(tmp: Path, name: str = "dangling") -> Path:
    os.symlink(tmp / "nowhere", tmp / name)
    return tmp / name


def _out(make: Callable[[Path], str], *flags: str, command: str = "run") -> Callable[[Path], list[str]]:
    """A valid scenario written to ``--out`` = ``make(tmp)``."""

    def build(tmp: Path) -> list[str]:
        args = _run_with_config(lambda t: t)(tmp)
        out = make(tmp)
        if command == "run":
            return ["run", args[1], "--out", out, "--no-report", *flags]
        if command == "compare":
            return ["compare", args[1], "--out", out, "--no-report", *flags]
        if command == "replay":
            return ["replay", args[1], "--event", "x", "--out", out, *flags]
        return ["demo", "--out", out, "--no-report", *flags]

    return build


def _nonempty(tmp: Path) -> str:
    (tmp / "res").mkdir()
    (tmp / "res" / "mine.txt").write_text("precious")
    return str(tmp / "res")


def _holder_of_config(tmp: Path) -> list[str]:
    (tmp / "cfg").mkdir()
    write_synthetic_prices(tmp / "cfg" / "prices.parquet", n_days=30)
    (tmp / "cfg" / "scenario.toml").write_text(BASE_CONFIG, encoding="utf-8")
    return ["run", str(tmp / "cfg" / "scenario.toml"), "--out", str(tmp / "cfg"), "--force", "--no-report"]


def _holder_of_inputs(tmp: Path) -> list[str]:
    (tmp / "data").mkdir()
    write_synthetic_prices(tmp / "data" / "prices.parquet", n_days=30)
    (tmp / "data" / "keep.txt").write_text("x")
    text = BASE_CONFIG.replace('prices = "prices.parquet"', f'prices = "{tmp / "data" / "prices.parquet"}"')
    (tmp / "scenario.toml").write_text(text, encoding="utf-8")
    return ["run", str(tmp / "scenario.toml"), "--out", str(tmp / "data"), "--force", "--no-report"]


def _parent_of_cwd(tmp: Path) -> list[str]:
    args = _run_with_config(lambda t: t)(tmp)
    (tmp / "work").mkdir()
    os.chdir(tmp / "work")  # restored by the test (monkeypatch.chdir)
    return ["run", args[1], "--out", str(tmp), "--force", "--no-report"]


def _cwd_itself(tmp: Path) -> list[str]:
    args = _run_with_config(lambda t: t)(tmp)
    (tmp / "work").mkdir()
    (tmp / "work" / "f").write_text("x")
    os.chdir(tmp / "work")
    return ["run", args[1], "--out", str(tmp / "work"), "--force", "--no-report"]


def _home(parent: bool) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        args = _run_with_config(lambda t: t)(tmp)
        (tmp / "h" / "home").mkdir(parents=True)
        (tmp / "h" / "home" / ".bashrc").write_text("x")
        os.environ["HOME"] = str(tmp / "h" / "home")  # restored by the test (monkeypatch.setenv)
        target = tmp / "h" if parent else tmp / "h" / "home"
        return ["run", args[1], "--out", str(target), "--force", "--no-report"]

    return build


_RESULT: dict[str, Path] = {}


def _result_folder(tmp: Path) -> Path:
    """A copy of one real (``--no-report``) result folder, made once per session."""
    import shutil

    if "src" not in _RESULT:
        import tempfile

        base = Path(tempfile.mkdtemp(prefix="hedgebt-corpus-"))
        args = _run_with_config(lambda t: t)(base)
        assert main(["run", args[1], "--out", str(base / "res"), "--no-report"]) == 0
        _RESULT["src"] = base / "res"
    shutil.copytree(_RESULT["src"], tmp / "res")
    return tmp / "res"


def _report(corrupt: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        res = _result_folder(tmp)
        corrupt(res)
        return ["report", str(res)]

    return build


def _flip_bytes(res: Path) -> None:
    data = bytearray((res / "ledger.parquet").read_bytes())
    data[200:300] = b"\x00" * 100
    (res / "ledger.parquet").write_bytes(bytes(data))


def _drop_hash(res: Path) -> None:
    import json

    s = json.loads((res / "summary.json").read_text())
    del s["ledger_sha256"]
    (res / "summary.json").write_text(json.dumps(s))


def _figures_link(res: Path) -> None:
    outside = res.parent / "outside"
    outside.mkdir()
    (outside / "equity.png").write_text("not yours")
    os.symlink(outside, res / "figures")


def _compare_cfg(extra: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        args = _run_with_config(lambda t: t + "\n" + extra + "\n")(tmp)
        return ["compare", args[1], "--out", str(tmp / "out"), "--no-report"]

    return build


def _scheduler(value: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        args = _compare_cfg('[compare]\n[[compare.rules]]\nfamily = "notional"\n')(tmp)
        return [*args, "--scheduler", value]

    return build


def _bounded_zip(tmp: Path) -> Path:
    # 2 MB of valid rows compressed to a few kB; the test lowers the limit to 1 MB
    return _zip_of("bomb.zip", _klines(n=20_000).encode())(tmp)


def _bounded_gzip(tmp: Path) -> Path:
    rows = "[" + ",".join(f"[{T0 + k * HOUR_MS},1,2,0.5,1.5,10]" for k in range(40_000)) + "]"
    (tmp / "bomb.json.gz").write_bytes(gzip.compress(rows.encode()))
    return tmp / "bomb.json.gz"


def _holdings(text: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        args = _run_with_config(lambda t: t.replace("units = [100000]", 'kind = "file"\nholdings_file = "holdings.csv"\nunits = []'))(tmp)
        (tmp / "holdings.csv").write_text("ts,symbol,units\n" + text, encoding="utf-8")
        return args

    return build


def _futures_file(corrupt: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        args = _cfg('[futures]\nprice_file = "futures.parquet"')(tmp)
        ts = pd.date_range("2024-01-01", periods=30 * 24, freq="h", tz="UTC")
        frame = pd.DataFrame({"ts": ts, "expiry": pd.Timestamp("2024-03-29 08:00", tz="UTC"), "close": 100.0})
        corrupt(frame).to_parquet(tmp / "futures.parquet", index=False)
        return args

    return build


NESTED = "a = " + "[" * 5000 + "]" * 5000 + "\n"

HOSTILE = [
    # -- config values: finite and bounded (issue 11 "wrong numbers written silently")
    Case("cfg_contract_size_inf", _cfg("[futures]\ncontract_size = inf"), ("scenario.toml", "'futures.contract_size'", "finite")),
    Case("cfg_contract_size_nan", _cfg("[futures]\ncontract_size = nan"), ("'futures.contract_size'", "finite")),
    Case("cfg_contract_size_huge", _cfg("[futures]\ncontract_size = 1e10"), ("'futures.contract_size'", "1e+09")),
    Case("cfg_fixed_ratio_1e308", _rule('family = "fixed"\nratio = 1e308'), ("'rules[0].ratio'", "<= 100")),
    Case("cfg_fixed_ratio_inf", _rule('family = "fixed"\nratio = inf'), ("'rules[0].ratio'", "finite")),
    Case("cfg_units_1e300", _sub("units = [100000]", "units = [1e300]"), ("'position.units[0]'", "1e+15")),
    Case("cfg_units_inf", _sub("units = [100000]", "units = [inf]"), ("'position.units[0]'", "finite")),
    Case("cfg_units_nan", _sub("units = [100000]", "units = [nan]"), ("'position.units[0]'",)),
    Case("cfg_ewma_halflife_1e308", _rule('family = "ewma"\nhalflife = 1e308'), ("'rules[0].halflife'",)),
    Case("cfg_min_variance_window_huge", _rule('family = "min_variance"\nwindow = 1_000_000_000_000'), ("'rules[0].window'",)),
    Case("cfg_vol_lookback_huge", _sub("max_weight = 0.4", "max_weight = 0.4\nvol_lookback_days = 1000000000000"), ("'index.vol_lookback_days'", "3650")),
    Case("cfg_min_history_huge", _sub("min_history_days = 3", "min_history_days = 99999999"), ("'index.min_history_days'",)),
    Case("cfg_start_empty", _sub('start = "2024-01-01"', 'start = ""'), ("'scenario.start'", "''")),
    Case("cfg_start_blank", _sub('start = "2024-01-01"', 'start = "   "'), ("'scenario.start'",)),
    Case("cfg_start_1600", _sub('start = "2024-01-01"', 'start = "1600-01-01"'), ("'scenario.start'", "2009-01-01")),
    Case("cfg_end_2300", _sub('start = "2024-01-01"', 'start = "2024-01-01"\nend = "2300-01-01"'), ("'scenario.end'", "2100-01-01")),
    Case("cfg_start_garbage", _sub('start = "2024-01-01"', 'start = "yesterday-ish"'), ("'scenario.start'",)),
    Case("cfg_events_not_table", _cfg("[events]\nfoo = 5"), ("'events.foo'", "expected a table")),
    Case("cfg_collateral_inf", _cfg("[margin]\ncollateral_usd = inf"), ("'margin.collateral_usd'", "finite")),
    Case("cfg_reserve_huge", _cfg("[margin]\nreserve_usd = 1e300"), ("'margin.reserve_usd'",)),
    Case("cfg_initial_rate_5", _cfg("[margin]\ninitial_rate = 5.0"), ("'margin.initial_rate'",)),
    Case("cfg_fee_nan", _cfg("[fees]\ntaker_bps = nan"), ("'fees.taker_bps'",)),
    Case("cfg_impact_huge", _cfg("[slippage]\nimpact_coef = 1e9"), ("'slippage.impact_coef'",)),
    Case("cfg_volume_inf", _cfg("[slippage]\nvolume_usd_per_bar = inf"), ("'slippage.volume_usd_per_bar'", "finite")),
    Case("cfg_funding_rate_huge", _cfg("[funding]\nrate_per_interval = 0.5"), ("'funding.rate_per_interval'",)),
    Case("cfg_funding_clamp_huge", _cfg("[funding]\nclamp_per_interval = 1.0"), ("'funding.clamp_per_interval'",)),
    Case("cfg_every_bars_float", _cfg("[rebalance]\nevery_bars = 1.5"), ("'rebalance.every_bars'", "integer")),
    Case("cfg_every_bars_huge", _cfg("[rebalance]\nevery_bars = 1000000000"), ("'rebalance.every_bars'",)),
    Case("cfg_band_inf", _cfg("[rebalance]\nband = inf"), ("'rebalance.band'", "finite")),
    Case("cfg_min_trade_inf", _cfg("[rebalance]\nmin_trade_contracts = inf"), ("'rebalance.min_trade_contracts'",)),
    Case("cfg_max_fill_huge", _sub('ohlc = ""', 'ohlc = ""\nmax_fill_bars = 1000000000'), ("'data.max_fill_bars'",)),
    Case("cfg_grace_huge", _cfg("[roll]\ngrace_bars = 1000000000"), ("'roll.grace_bars'",)),
    Case("cfg_int_beyond_int64", _cfg("[rebalance]\nevery_bars = 99999999999999999999"), ("scenario.toml",)),
    Case("cfg_prices_empty_list", _sub('prices = "prices.parquet"', "prices = []"), ("'data.prices'", "non-empty")),
    Case("cfg_prices_empty_name", _sub('prices = "prices.parquet"', 'prices = ""'), ("'data.prices'",)),
    Case("cfg_prices_list_of_empty", _sub('prices = "prices.parquet"', 'prices = ["", "prices.parquet"]'), ("'data.prices'",)),
    # -- config files
    Case("cfg_nested_5000_deep", _config_file(lambda p: p.write_text(NESTED)), ("scenario.toml", "nested too deeply")),
    Case("cfg_is_dev_zero", lambda tmp: ["run", "/dev/zero", "--out", str(tmp / "out")], ("/dev/zero", "character device")),
    Case("cfg_is_fifo", lambda tmp: ["run", str(_fifo(tmp)), "--out", str(tmp / "out")], ("fifo", "FIFO")),
    Case("cfg_is_directory", lambda tmp: ["run", str(tmp), "--out", str(tmp / "out")], ("directory",)),
    Case("cfg_symlink_loop", lambda tmp: ["run", str(_loop(tmp)), "--out", str(tmp / "out")], ("loop", "symbolic link loop")),
    Case("cfg_dangling_link", lambda tmp: ["run", str(_dangling(tmp)), "--out", str(tmp / "out")], ("dangling symbolic link",)),
    Case("cfg_missing", lambda tmp: ["run", str(tmp / "nope.toml"), "--out", str(tmp / "out")], ("nope.toml", "not found")),
    Case("cfg_binary", _config_file(lambda p: p.write_bytes(b"\xff\xfe\x00\x01garbage")), ("scenario.toml", "not valid TOML")),
    Case("cfg_bom_then_garbage", _config_file(lambda p: p.write_bytes(b"\xef\xbb\xbfthis is = = not toml")), ("scenario.toml", "not valid TOML")),
    # -- price files: values, times, file kinds
    Case("prices_1e300", _run_with_prices(lambda d: _set(d, 44, "close", 1e300)), ("prices.parquet", "column 'close'", "row 44", "1e+09")),
    Case("prices_above_1e9", _run_with_prices(lambda d: _set(d, 45, "close", 2e9)), ("prices.parquet", "column 'close'", "row 45")),
    Case("prices_ts_1600", _run_with_prices(_with_ts_us(0, "1600-01-01")), ("prices.parquet", "column 'ts'", "row 0", "1600")),
    Case("prices_ts_2300", _run_with_prices(_with_ts_us(0, "2300-01-01")), ("prices.parquet", "column 'ts'", "2300")),
    Case("prices_ts_nat", _run_with_prices(lambda d: _set(d, 3, "ts", pd.NaT)), ("prices.parquet", "column 'ts'", "NaT")),
    Case("prices_symbol_blank", _run_with_prices(lambda d: _set(d, 2, "symbol", " ")), ("prices.parquet", "column 'symbol'")),
    Case("prices_close_strings", _run_with_prices(lambda d: d.assign(close=d["close"].astype(str))), ("prices.parquet", "column 'close'", "numeric")),
    Case("prices_is_directory", _prices_path(lambda tmp: (tmp / "dir").mkdir() or '"dir"'), ("dir", "directory")),
    Case("prices_is_dev_zero", _prices_path(lambda tmp: '"/dev/zero"'), ("/dev/zero", "character device")),
    Case("prices_is_fifo", _prices_path(lambda tmp: f'"{_fifo(tmp)}"'), ("fifo", "FIFO")),
    Case("prices_symlink_loop", _prices_path(lambda tmp: f'"{_loop(tmp)}"'), ("loop", "symbolic link loop")),
    Case("prices_dangling_link", _prices_path(lambda tmp: f'"{_dangling(tmp)}"'), ("dangling",)),
    Case("prices_not_parquet", _prices_path(lambda tmp: (tmp / "t.parquet").write_text("hello") and '"t.parquet"'), ("t.parquet", "not a readable Parquet")),
    Case("prices_zero_bytes", _prices_path(lambda tmp: (tmp / "z.parquet").write_bytes(b"") or '"z.parquet"'), ("z.parquet",)),
    Case("prices_truncated", _prices_path(lambda tmp: (tmp / "c.parquet").write_bytes((tmp / "real.parquet").read_bytes()[:100]) and '"c.parquet"'), ("c.parquet",)),
    Case("ohlc_volume_inf", _with_ohlc(lambda d: _set(d, 9, "volume", np.inf)), ("ohlc.parquet", "column 'volume'", "row 9")),
    Case("ohlc_volume_huge", _with_ohlc(lambda d: _set(d, 10, "volume", 1e30)), ("ohlc.parquet", "column 'volume'", "1e+18")),
    Case("ohlc_high_1e300", _with_ohlc(lambda d: _set(d, 11, "high", 1e300)), ("ohlc.parquet", "column 'high'", "row 11")),
    Case("ohlc_volume_negative", _with_ohlc(lambda d: _set(d, 12, "volume", -1.0)), ("ohlc.parquet", "column 'volume'", "row 12")),
    Case("funding_value_1e6", _funding(1e6), ("funding.parquet", "column 'funding_rate'", "row 5", "0.05")),
    Case("funding_value_nan", _funding(np.nan), ("funding.parquet", "column 'funding_rate'", "row 5")),
    Case("funding_value_minus_1", _funding(-1.0), ("funding.parquet", "column 'funding_rate'")),
    Case("funding_interval_zero", _funding(0.0, "interval_h"), ("funding.parquet", "column 'interval_h'")),
    Case("holdings_naive_and_aware", _holdings("2024-01-01T00:00:00Z,COIN,100\n2024-01-05 00:00,COIN,200\n"), ("holdings.csv", "column 'ts'", "row 1", "no time zone")),
    Case("holdings_unparseable", _holdings("2024-01-01T00:00:00Z,COIN,100\n2024-13-45T00:00:00Z,COIN,200\n"), ("holdings.csv", "row 1", "unparseable")),
    Case("holdings_year_1600", _holdings("1600-01-01T00:00:00Z,COIN,100\n"), ("holdings.csv", "column 'ts'", "row 0")),
    Case("holdings_units_1e300", _holdings("2024-01-01T00:00:00Z,COIN,1e300\n"), ("holdings.csv", "column 'units'", "1e+15")),
    Case("holdings_units_inf", _holdings("2024-01-01T00:00:00Z,COIN,inf\n"), ("holdings.csv", "column 'units'")),
    Case("futures_file_nat_expiry", _futures_file(lambda f: _set(f, 4, "expiry", pd.NaT)), ("futures.parquet", "column 'expiry'", "row 4", "NaT")),
    Case("futures_file_close_1e300", _futures_file(lambda f: _set(f, 5, "close", 1e300)), ("futures.parquet", "column 'close'", "row 5")),
    Case("futures_file_expiry_2300", _futures_file(lambda f: f.assign(expiry=pd.Series([pd.Timestamp("2300-01-01", tz="UTC").as_unit("us")] * len(f)))), ("futures.parquet", "column 'expiry'", "2300")),
    # -- ingest: times range-checked before conversion, shift bounded, bar size, limits
    Case("ingest_ms_9999999999999", _ingest("w.csv", _klines(first=9_999_999_999_999), "binance"), ("w.csv", "column 'open_time'", "row 0", "9999999999999", "2286")),
    Case("ingest_ms_before_2009", _ingest("e.csv", _klines(first=1_000_000_000_000), "binance"), ("e.csv", "row 0", "2001")),
    Case("ingest_us_2286", _ingest("u.csv", _klines(n=2, start=9_999_999_999_999_000, step=3_600_000_000), "binance"), ("u.csv", "µs")),
    Case("ingest_cdd_unix_far_future", _ingest("c.csv", "Unix,Date,Symbol,Open,High,Low,Close,Volume FET,Volume USDT,tradecount\n"
                                                "9999999999999,2286-11-20,FET/USDT,1,2,0.5,1.5,10,15,3\n"), ("c.csv", "column 'Unix'")),
    Case("ingest_freqtrade_json_far_future", _ingest("f.json", "[[9999999999999,1,2,0.5,1.5,10]]", "freqtrade"), ("f.json", "open_time", "9999999999999")),
    Case("ingest_freqtrade_csv_2300", _ingest("f.csv", "date,open,high,low,close,volume\n2300-01-01T00:00:00Z,1,2,0.5,1.5,10\n", "freqtrade"), ("f.csv", "2300")),
    Case("ingest_freqtrade_json_nested", _ingest("n.json", "[" * 100_000 + "]" * 100_000, "freqtrade"), ("n.json",)),
    Case("ingest_freqtrade_json_inf_price", _ingest("i.json", f"[[{T0},1,2,0.5,1e400,10]]", "freqtrade"), ("i.json", "close")),
    Case("ingest_yahoo_1600", _ingest("y.csv", _yahoo("1600-01-01,1,2,0.5,1.5,1.5,100"), "yahoo"), ("y.csv", "column 'Date'")),
    Case("ingest_yahoo_2300", _ingest("y.csv", _yahoo("2300-01-01,1,2,0.5,1.5,1.5,100"), "yahoo"), ("y.csv", "column 'Date'")),
    Case("ingest_yahoo_price_1e300", _ingest("y.csv", _yahoo("2024-01-01,1,1e300,0.5,1.5,1.5,100"), "yahoo"), ("y.csv", "column 'high'", "1e+09")),
    Case("ingest_binance_price_above_1e9", _ingest("b.csv", _klines(close=5e9).replace(",2,0.5,", ",6e9,0.5,"), "binance"), ("b.csv", "1e+09")),
    Case("ingest_yahoo_shift_200000", lambda tmp: _ingest("y.csv", _yahoo("2024-01-01,1,2,0.5,1.5,1.5,100"), "yahoo")(tmp) + ["--yahoo-shift-days", "200000"], ("ingest.yahoo_shift_days", "200000")),
    Case("ingest_yahoo_shift_before_2009", lambda tmp: _ingest("y.csv", _yahoo("2009-03-01,1,2,0.5,1.5,1.5,100"), "yahoo")(tmp) + ["--yahoo-shift-days", "-300"], ("y.csv", "after --yahoo-shift-days -300")),
    Case("ingest_yahoo_shift_into_future", lambda tmp: _ingest("y.csv", _yahoo(f"{pd.Timestamp.now('UTC').date()},1,2,0.5,1.5,1.5,100"), "yahoo")(tmp) + ["--yahoo-shift-days", "30"], ("y.csv", "now + 1 day")),
    Case("ingest_half_hour_into_hourly", _ingest_into(_klines(n=5), _klines(n=4, start=T0 + 10 * HOUR_MS, step=HOUR_MS // 2)), ("second.csv", "bar size", "its bars are 1 hour apart, these 30 minutes")),
    Case("ingest_off_grid_into_hourly", _ingest_into(_klines(n=5), _klines(n=1, start=T0 + 10 * HOUR_MS + 60_000)), ("second.csv", "off its grid")),
    Case("ingest_daily_into_hourly", _ingest_into(_klines(n=5), _klines(n=3, start=T0 + 24 * HOUR_MS, step=24 * HOUR_MS)), ("second.csv", "bar size", "its bars are 1 hour apart, these 1 day")),
    Case("ingest_zip_too_large", _ingest_file(_bounded_zip), ("bomb.zip", "ingest limit")),
    Case("ingest_gzip_too_large", _ingest_file(_bounded_gzip, "--format", "freqtrade"), ("bomb.json.gz", "ingest limit")),
    Case("ingest_zip_two_members", _ingest_file(_zip_of("two.zip", _klines().encode(), members=2)), ("two.zip", "2 member(s)")),
    Case("ingest_zip_corrupt", _ingest_file(_text("bad.zip", b"PK\x03\x04" + b"\x00" * 50), "--format", "binance"), ("bad.zip", "zip")),
    Case("ingest_gzip_corrupt", _ingest_file(_text("bad.json.gz", b"\x1f\x8b" + b"\x00" * 50), "--format", "freqtrade"), ("bad.json.gz", "gzip")),
    Case("ingest_input_dev_zero", lambda tmp: ["ingest", "/dev/zero", "--symbol", "FET", "--into", str(tmp / "d.parquet")], ("/dev/zero", "character device")),
    Case("ingest_input_fifo", lambda tmp: ["ingest", str(_fifo(tmp)), "--symbol", "FET", "--into", str(tmp / "d.parquet")], ("FIFO",)),
    Case("ingest_input_loop", lambda tmp: ["ingest", str(_loop(tmp)), "--symbol", "FET", "--into", str(tmp / "d.parquet")], ("symbolic link loop",)),
    Case("ingest_input_directory", lambda tmp: ["ingest", str(tmp), "--symbol", "FET", "--into", str(tmp / "d.parquet")], ("directory",)),
    Case("ingest_input_missing", lambda tmp: ["ingest", str(tmp / "none.csv"), "--symbol", "FET", "--into", str(tmp / "d.parquet")], ("none.csv", "not found")),
    Case("ingest_into_dangling_link", _ingest_to(lambda tmp: str(_dangling(tmp, "ds.parquet"))), ("ds.parquet", "dangling")),
    Case("ingest_into_link_loop", _ingest_to(lambda tmp: str(_loop(tmp, "ds.parquet"))), ("ds.parquet", "loop")),
    Case("ingest_into_directory", _ingest_to(lambda tmp: (tmp / "dsdir").mkdir() or str(tmp / "dsdir")), ("dsdir", "directory")),
    Case("ingest_into_empty", _ingest_to(lambda tmp: ""), ("ingest.into",)),
    Case("ingest_into_below_file", _ingest_to(lambda tmp: (tmp / "plain").write_text("x") and str(tmp / "plain" / "ds.parquet")), ("plain", "not a folder")),
    Case("ingest_into_deep_below_file", _ingest_to(lambda tmp: (tmp / "plain").write_text("x") and str(tmp / "plain" / "a" / "ds.parquet")), ("plain", "not a folder")),
    Case("ingest_into_name_300_chars", _ingest_to(lambda tmp: str(tmp / ("x" * 300 + ".parquet"))), ("ingest.into", "limit is 200")),
    Case("ingest_into_parent_300_chars", _ingest_to(lambda tmp: str(tmp / ("z" * 300) / "ds.parquet")), ("unusable dataset path", "too long")),
    Case("ingest_into_dev_zero", _ingest_to(lambda tmp: "/dev/zero"), ("/dev/zero", "character device")),
    Case("ingest_bad_symbol", lambda tmp: _ingest("k.csv", _klines(), "binance")(tmp)[:2] + ["--symbol", " FET", "--into", str(tmp / "d.parquet")], ("ingest.symbol",)),
    # -- output paths
    Case("out_dot", _out(lambda tmp: "."), ("'.'",)),
    Case("out_empty", _out(lambda tmp: ""), ("output path is empty",)),
    Case("out_dotdot", _out(lambda tmp: ".."), ("'..'",)),
    Case("out_trailing_dot", _out(lambda tmp: str(tmp) + "/."), ("'.'",)),
    Case("out_dangling_link", _out(lambda tmp: str(_dangling(tmp, "res"))), ("res", "dangling symbolic link")),
    Case("out_link_to_folder", _out(lambda tmp: (tmp / "real").mkdir() or os.symlink(tmp / "real", tmp / "res") or str(tmp / "res")), ("res", "symbolic link")),
    Case("out_below_a_file", _out(lambda tmp: (tmp / "file").write_text("x") and str(tmp / "file" / "sub")), ("file", "is a file")),
    Case("out_deep_below_a_file", _out(lambda tmp: (tmp / "file").write_text("x") and str(tmp / "file" / "a" / "b")), ("is a file",)),
    Case("out_name_300_chars", _out(lambda tmp: str(tmp / ("x" * 300))), ("300 bytes", "limit is 200")),
    Case("out_parent_name_300_chars", _out(lambda tmp: str(tmp / ("y" * 300) / "out")), ("unusable output path", "too long")),
    Case("out_non_empty_no_force", _out(_nonempty), ("res", "not empty", "--force")),
    Case("out_is_a_file_no_force", _out(lambda tmp: (tmp / "f").write_text("x") and str(tmp / "f")), ("is a file",)),
    Case("out_is_a_file_force", _out(lambda tmp: (tmp / "f").write_text("x") and str(tmp / "f"), "--force"), ("is a file",)),
    Case("out_below_dangling_link", _out(lambda tmp: str(_dangling(tmp, "dl") / "sub")), ("dangling",)),
    Case("force_config_folder", _holder_of_config, ("cfg", "own input", "scenario.toml")),
    Case("force_inputs_folder", _holder_of_inputs, ("data", "own input", "prices.parquet")),
    Case("force_parent_of_cwd", _parent_of_cwd, ("current directory or one of its parents",)),
    Case("force_cwd", _cwd_itself, ("current directory",)),
    Case("force_home", _home(parent=False), ("home directory",)),
    Case("force_parent_of_home", _home(parent=True), ("home directory",)),
    Case("demo_out_dot", _out(lambda tmp: ".", command="demo"), ("'.'",)),
    Case("compare_out_empty", _out(lambda tmp: "", command="compare"), ("output path is empty",)),
    Case("replay_out_dotdot", _out(lambda tmp: "..", command="replay"), ("'..'",)),
    Case("demo_out_non_empty", _out(_nonempty, command="demo"), ("not empty",)),
    # -- report: verified ledger, no links
    Case("report_corrupted_ledger", _report(_flip_bytes), ("ledger.parquet", "does not match", "ledger_sha256")),
    Case("report_no_ledger_hash", _report(_drop_hash), ("summary.json", "ledger_sha256")),
    Case("report_figures_link_outside", _report(_figures_link), ("figures", "symbolic link")),
    Case("report_summary_not_json", _report(lambda res: (res / "summary.json").write_text("{nope")), ("summary.json", "JSON")),
    Case("report_missing_folder", lambda tmp: ["report", str(tmp / "nothing")], ("not a result folder",)),
    # -- compare
    Case("compare_every_bars_float", _compare_cfg('[compare]\n[[compare.rules]]\nfamily = "notional"\n[[compare.rebalance]]\nevery_bars = 1.5'), ("compare.rebalance[0]", "integer")),
    Case("compare_ratio_huge", _compare_cfg('[compare]\n[[compare.rules]]\nfamily = "fixed"\nratio = [0.5, 1e308]'), ("compare.rules[0].ratio",)),
    Case("compare_band_inf", _compare_cfg('[compare]\n[[compare.rules]]\nfamily = "notional"\n[[compare.rebalance]]\nband = inf'), ("compare.rebalance[0]", "finite")),
    Case("scheduler_tcp_without_port", _scheduler("tcp://127.0.0.1"), ("--scheduler", "port")),
    Case("scheduler_tcp_bad_port", _scheduler("tcp://127.0.0.1:99999"), ("--scheduler",)),
    Case("scheduler_tcp_no_host", _scheduler("tcp://:8786"), ("--scheduler",)),
    Case("scheduler_tls", _scheduler("tls://127.0.0.1:8786"), ("--scheduler", "tls://")),
    Case("scheduler_unknown", _scheduler("threads"), ("--scheduler", "'threads'")),
]


# -- the harness ------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below ``root`` (links not followed): kind plus content hash or link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            elif p.is_file():
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("special",)
    return out


def _precious(tmp: Path) -> None:
    """A pre-existing tree every case must leave byte-identical."""
    (tmp / "precious" / "sub").mkdir(parents=True)
    (tmp / "precious" / "mine.txt").write_text("precious\n")
    (tmp / "precious" / "sub" / "data.bin").write_bytes(bytes(range(256)))


ALL_CASES = CASES + HOSTILE


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_bad_input_exits_2_with_one_line_and_leaves_the_tree_byte_identical(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import backtest.ingest as ingest_mod

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", os.environ.get("HOME", "/root"))
    if case.name in ("ingest_zip_too_large", "ingest_gzip_too_large"):
        monkeypatch.setattr(ingest_mod, "MAX_INPUT_BYTES", 1_000_000)
    _precious(tmp_path)
    argv = case.build(tmp_path)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hedgebt: error: ") and "Traceback" not in err
    for fragment in case.expect:
        assert fragment in lines[0], (fragment, lines[0])
    after = _snapshot(tmp_path)
    new_locks = {k for k in set(after) - set(before) if Path(k).name.startswith(".") and k.endswith(".lock")}
    assert {k: v for k, v in after.items() if k not in new_locks} == before


def test_the_corpus_is_large_enough() -> None:
    assert len(ALL_CASES) >= 120
    assert len({c.name for c in ALL_CASES}) == len(ALL_CASES)
