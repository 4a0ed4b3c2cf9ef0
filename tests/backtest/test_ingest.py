"""Tests of vendor-file ingest (backtest.ingest)."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import backtest.ingest as ingest_mod
from backtest.data import load_panel, read_long
from backtest.errors import ConfigError, DataError, HedgeBTError
from backtest.cli import main
from backtest.ingest import IngestReport, ingest, read_vendor_file

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
CDD = RAW / "cryptodatadownload_Binance_FETUSDT_d.csv"
YAHOO = RAW / "yahoo_RNDR-USD_close.csv"
FREQTRADE = RAW / "freqtrade_FET_USDT-1d.json"
UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def message(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------------------------------------
# synthetic Binance klines
# ------------------------------------------------------------------------------------------------

START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC
HOUR_MS = 3_600_000


def kline_lines(rng: np.random.Generator, n: int = 48, *, unit: str = "ms", start_ms: int = START_MS) -> list[str]:
    """Binance kline CSV lines (12 fields); prices consistent (low <= open, close <= high)."""
    close = np.round(np.exp(rng.normal(0, 0.01, n).cumsum()) * 0.5, 5)
    open_ = np.r_[0.5, close[:-1]]
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n)), 5)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n)), 5)
    volume = np.round(rng.uniform(1e5, 1e6, n), 1)
    scale = 1000 if unit == "us" else 1
    lines = []
    for i in range(n):
        t = (start_ms + i * HOUR_MS) * scale
        close_t = t + HOUR_MS * scale - 1
        lines.append(
            f"{t},{open_[i]:.5f},{high[i]:.5f},{low[i]:.5f},{close[i]:.5f},{volume[i]:.1f},"
            f"{close_t},{volume[i] * close[i]:.4f},{100 + i},{volume[i] / 2:.1f},{volume[i] * close[i] / 2:.4f},0"
        )
    return lines


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def klines(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """The same 48 hourly bars written with ms and with µs open times."""
    state = rng.bit_generator.state
    ms = kline_lines(rng, unit="ms")
    rng.bit_generator.state = state
    us = kline_lines(rng, unit="us")
    return ms, us


# ------------------------------------------------------------------------------------------------
# the three real sample files
# ------------------------------------------------------------------------------------------------


def test_cryptodatadownload_sample_round_trips(tmp_path: Path) -> None:
    dataset = tmp_path / "fet_daily.parquet"
    report = ingest([CDD], symbol="FET", into=dataset)
    # the raw file skips 2024-07-21: one bar missing in what was added, reported
    assert report == IngestReport(1972, 0, 0, ("FET",), dataset, missing_bars=1)
    panel = load_panel(dataset, ["FET"])
    assert panel.freq == pd.Timedelta("1D")
    assert panel.close.index[0] == ts("2019-02-28") and panel.close.index[-1] == ts("2024-07-23")
    # Spot values from the raw file (newest row first there).
    assert panel.close.loc[ts("2024-07-22"), "FET"] == 1.37
    assert panel.close.loc[ts("2024-07-23"), "FET"] == 1.29
    assert panel.high.loc[ts("2024-07-22"), "FET"] == 1.499  # type: ignore[union-attr]
    assert panel.low.loc[ts("2019-02-28"), "FET"] == 0.301  # type: ignore[union-attr]
    assert panel.volume.loc[ts("2024-07-23"), "FET"] == 35531697.6  # base units: "Volume FET"  # type: ignore[union-attr]
    # The raw file skips 2024-07-21: one filled bar, reported.
    fet = panel.gap_report("FET")
    assert (fet.n_gaps, fet.n_missing_bars, fet.longest_gap_start) == (1, 1, ts("2024-07-21"))
    assert panel.close.loc[ts("2024-07-21"), "FET"] == 1.46
    frame = read_long(dataset)
    assert len(frame) == 1972 and frame["ts"].is_monotonic_increasing


def test_cryptodatadownload_url_line_is_skipped(tmp_path: Path) -> None:
    with_url = tmp_path / "Binance_FETUSDT_d.csv"
    with_url.write_text("https://www.CryptoDataDownload.com\n" + CDD.read_text())
    a = read_vendor_file(CDD, symbol="FET")
    b = read_vendor_file(with_url, symbol="FET")
    pd.testing.assert_frame_equal(a, b)


def test_yahoo_close_series_with_shift(tmp_path: Path, data_dir: Path) -> None:
    dataset = tmp_path / "rndr.parquet"
    report = ingest([YAHOO], symbol="RNDR", into=dataset, yahoo_shift_days=-1)
    assert report.rows_added == 1482
    panel = load_panel(dataset, ["RNDR"])
    assert panel.high is None and panel.volume is None
    # The value on date 2020-07-01 is the close of UTC day 2020-06-30.
    assert panel.close.index[0] == ts("2020-06-30")
    assert panel.close.loc[ts("2020-06-30"), "RNDR"] == 0.07614800333976746
    assert panel.close.loc[ts("2024-07-20"), "RNDR"] == 7.006581783294678
    unshifted = read_vendor_file(YAHOO, symbol="RNDR")
    assert unshifted["ts"].iloc[0] == ts("2020-07-01")
    np.testing.assert_array_equal(unshifted["close"].to_numpy(), panel.close["RNDR"].to_numpy())
    # Independent check against Binance daily closes: the shift of -1 day is the right one.
    binance = load_panel(data_dir / "binance_spot_1d_ohlcv_2021_2023.parquet", ["RNDR"]).close["RNDR"]
    for shift, expected_median in ((-1, (0.0, 0.005)), (0, (0.02, 1.0))):
        yahoo = read_vendor_file(YAHOO, symbol="RNDR", yahoo_shift_days=shift).set_index("ts")["close"]
        common = binance.index.intersection(yahoo.index)
        assert len(common) > 700
        rel = ((yahoo.loc[common] - binance.loc[common]) / binance.loc[common]).abs().median()
        assert expected_median[0] <= rel < expected_median[1]


def test_freqtrade_sample_round_trips_and_agrees_with_cryptodatadownload(tmp_path: Path) -> None:
    dataset = tmp_path / "fet.parquet"
    assert ingest([FREQTRADE], symbol="FET", into=dataset).rows_added == 1200
    panel = load_panel(dataset, ["FET"], max_fill_bars=0)
    assert panel.close.index[0] == ts("2020-01-05") and panel.close.index[-1] == ts("2023-04-18")
    assert panel.close.loc[ts("2020-01-05"), "FET"] == 0.03847
    assert panel.volume.loc[ts("2020-01-05"), "FET"] == 23547132.8000000007  # type: ignore[union-attr]
    assert panel.close.loc[ts("2023-04-18"), "FET"] == 0.4245
    # Both vendors republish Binance: their OHLC agree exactly where they overlap.
    report = ingest([CDD], symbol="FET", into=dataset)
    assert (report.rows_added, report.rows_unchanged, report.rows_overwritten) == (1972 - 1200, 1200, 0)


def test_freqtrade_and_ccxt_parse_identically_and_gzip_works(tmp_path: Path) -> None:
    ft = read_vendor_file(FREQTRADE, symbol="FET", format="freqtrade")
    cc = read_vendor_file(FREQTRADE, symbol="FET", format="ccxt")
    auto = read_vendor_file(FREQTRADE, symbol="FET")
    pd.testing.assert_frame_equal(ft, cc)
    pd.testing.assert_frame_equal(ft, auto)
    gz = tmp_path / "FET_USDT-1d.json.gz"
    gz.write_bytes(gzip.compress(FREQTRADE.read_bytes()))
    pd.testing.assert_frame_equal(ft, read_vendor_file(gz, symbol="FET"))


def test_output_dtypes_match_bundled_files(tmp_path: Path, data_dir: Path) -> None:
    dataset = tmp_path / "fet.parquet"
    ingest([FREQTRADE], symbol="FET", into=dataset)
    ours = pq.read_schema(dataset)
    bundled = pq.read_schema(data_dir / "binance_spot_1d_ohlcv_2021_2023.parquet")
    assert ours.names == bundled.names
    assert [str(t) for t in ours.types] == [str(t) for t in bundled.types]
    a = pd.read_parquet(dataset)
    b = pd.read_parquet(data_dir / "binance_spot_1d_ohlcv_2021_2023.parquet")
    assert a.dtypes.to_dict() == b.dtypes.to_dict()
    assert isinstance(a.index, pd.RangeIndex)
    frame = read_vendor_file(FREQTRADE, symbol="FET")
    assert frame.dtypes.to_dict() == b.dtypes.to_dict()
    close_only = read_vendor_file(YAHOO, symbol="RNDR")
    assert list(close_only.columns) == ["ts", "symbol", "close"]
    closes = pd.read_parquet(data_dir / "binance_spot_1h_close.parquet")
    assert close_only.dtypes.to_dict() == closes.dtypes.to_dict()


# ------------------------------------------------------------------------------------------------
# Binance klines
# ------------------------------------------------------------------------------------------------


def test_binance_ms_and_us_files_give_identical_frames(tmp_path: Path, klines: tuple[list[str], list[str]]) -> None:
    ms, us = klines
    a = read_vendor_file(write_lines(tmp_path / "FETUSDT-1h-2025-01.csv", ms), symbol="FET")
    b = read_vendor_file(write_lines(tmp_path / "FETUSDT-1h-2025-01b.csv", us), symbol="FET")
    pd.testing.assert_frame_equal(a, b)
    assert a["ts"].iloc[0] == ts("2025-01-01 00:00") and a["ts"].iloc[-1] == ts("2025-01-02 23:00")
    first = ms[0].split(",")
    assert a["open"].iloc[0] == float(first[1]) and a["close"].iloc[0] == float(first[4])
    assert a["volume"].iloc[0] == float(first[5])


def test_binance_zip_and_header_line(tmp_path: Path, klines: tuple[list[str], list[str]]) -> None:
    ms, _ = klines
    plain = read_vendor_file(write_lines(tmp_path / "k.csv", ms), symbol="FET")
    zpath = tmp_path / "FETUSDT-1h-2025-01.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("FETUSDT-1h-2025-01.csv", "\n".join(ms) + "\n")
    pd.testing.assert_frame_equal(plain, read_vendor_file(zpath, symbol="FET"))
    header = ",".join(ingest_mod._BINANCE_COLUMNS)
    with_header = write_lines(tmp_path / "h.csv", [header, *ms])
    pd.testing.assert_frame_equal(plain, read_vendor_file(with_header, symbol="FET"))


def test_binance_mixed_units_name_the_row(tmp_path: Path, klines: tuple[list[str], list[str]]) -> None:
    ms, us = klines
    mixed = ms[:10] + us[10:]
    path = write_lines(tmp_path / "mixed.csv", mixed)
    with pytest.raises(DataError) as exc:
        read_vendor_file(path, symbol="FET")
    text = message(exc)
    assert str(path) in text and "column 'open_time', row 10" in text and "line 11" in text
    assert "mixes timestamp units: row 0 is in ms but this row is in us" in text


def test_binance_monthly_files_ingest_together(tmp_path: Path, rng: np.random.Generator) -> None:
    lines = kline_lines(rng, n=60)
    jan = write_lines(tmp_path / "a.csv", lines[:40])
    feb = write_lines(tmp_path / "b.csv", lines[30:])  # 10 identical overlapping bars
    dataset = tmp_path / "ds.parquet"
    report = ingest([jan, feb], symbol="FET", into=dataset)
    assert report.rows_added == 60
    whole = read_vendor_file(write_lines(tmp_path / "all.csv", lines), symbol="FET")
    pd.testing.assert_frame_equal(read_long(dataset), whole)
    # Input files that disagree with each other are refused.
    bad = lines[30:]
    fields = bad[0].split(",")
    fields[4] = f"{float(fields[4]) * 1.01:.5f}"
    fields[2] = f"{max(float(fields[2]), float(fields[4])):.5f}"
    bad[0] = ",".join(fields)
    feb_bad = write_lines(tmp_path / "c.csv", bad)
    with pytest.raises(DataError, match="input files disagree on close at ts 2025-01-02 06:00:00"):
        ingest([jan, feb_bad], symbol="FET", into=tmp_path / "other.parquet")


# ------------------------------------------------------------------------------------------------
# merge rules
# ------------------------------------------------------------------------------------------------


def test_reingest_is_a_no_op(tmp_path: Path) -> None:
    dataset = tmp_path / "ds.parquet"
    ingest([CDD], symbol="FET", into=dataset)
    ingest([YAHOO], symbol="RNDR", into=tmp_path / "closes.parquet", yahoo_shift_days=-1)
    before = dataset.read_bytes()
    mtime = dataset.stat().st_mtime_ns
    report = ingest([CDD], symbol="FET", into=dataset)
    assert report == IngestReport(0, 1972, 0, ("FET",), dataset)
    assert not report.changed
    assert dataset.read_bytes() == before
    assert dataset.stat().st_mtime_ns == mtime


def test_writes_are_deterministic_regardless_of_ingest_order(tmp_path: Path, rng: np.random.Generator) -> None:
    a = write_lines(tmp_path / "a.csv", kline_lines(rng, n=30))
    b = write_lines(tmp_path / "b.csv", kline_lines(rng, n=30, start_ms=START_MS - 10 * HOUR_MS))
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    ingest([a], symbol="FET", into=one)
    ingest([b], symbol="NEAR", into=one)
    ingest([b], symbol="NEAR", into=two)
    ingest([a], symbol="FET", into=two)
    assert one.read_bytes() == two.read_bytes()
    frame = read_long(one)
    assert frame["symbol"].tolist() == ["FET"] * 30 + ["NEAR"] * 30


def test_ingest_keeps_other_symbols_of_a_bundled_dataset(tmp_path: Path, data_dir: Path) -> None:
    dataset = tmp_path / "daily.parquet"
    shutil.copy(data_dir / "binance_spot_1d_ohlcv_2021_2023.parquet", dataset)
    original = read_long(dataset)
    # The bundled FET daily series starts with a partial day (2021-04-04, hourly data from 06:00),
    # so its open differs from the exchange's daily bar: a real conflict.
    with pytest.raises(DataError) as exc:
        ingest([FREQTRADE], symbol="FET", into=dataset)
    text = message(exc)
    assert str(FREQTRADE) in text and "column 'open'" in text and "ts 2021-04-04 00:00:00+00:00" in text
    assert "0.69785 there but 0.63277 here" in text and "--overwrite" in text
    pd.testing.assert_frame_equal(read_long(dataset), original)
    report = ingest([FREQTRADE], symbol="FET", into=dataset, overwrite=True)
    assert (report.rows_added, report.rows_unchanged, report.rows_overwritten) == (455, 744, 1)
    assert len(report.symbols) == 26
    merged = read_long(dataset)
    assert len(merged) == len(original) + 455
    others = merged[merged["symbol"] != "FET"].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, original[original["symbol"] != "FET"].reset_index(drop=True))
    fet = merged[merged["symbol"] == "FET"].set_index("ts")
    assert fet.loc[ts("2021-04-04"), "open"] == 0.63277
    assert fet.index[0] == ts("2020-01-05")


def test_conflicting_overlap_refused_then_overwritten(tmp_path: Path, rng: np.random.Generator) -> None:
    lines = kline_lines(rng, n=24)
    dataset = tmp_path / "ds.parquet"
    ingest([write_lines(tmp_path / "a.csv", lines)], symbol="FET", into=dataset)
    before = dataset.read_bytes()
    changed = list(lines)
    fields = changed[5].split(",")
    old_close = float(fields[4])
    new_close = round(old_close * 1.001, 5)
    fields[4] = f"{new_close:.5f}"
    fields[2] = f"{max(float(fields[2]), new_close):.5f}"
    changed[5] = ",".join(fields)
    # a volume-only difference is not a conflict
    vfields = changed[7].split(",")
    vfields[5] = f"{float(vfields[5]) + 1:.1f}"
    changed[7] = ",".join(vfields)
    b = write_lines(tmp_path / "b.csv", changed)
    with pytest.raises(DataError) as exc:
        ingest([b], symbol="FET", into=dataset)
    text = message(exc)
    assert str(b) in text and "column 'close', row 5" in text and "line 6" in text
    assert "ts 2025-01-01 05:00:00+00:00" in text
    assert f"close is {old_close!r} there but {new_close!r} here" in text
    assert dataset.read_bytes() == before
    report = ingest([b], symbol="FET", into=dataset, overwrite=True)
    assert (report.rows_added, report.rows_unchanged, report.rows_overwritten) == (0, 22, 2)
    stored = read_long(dataset).set_index("ts")
    assert stored.loc[ts("2025-01-01 05:00"), "close"] == new_close
    assert stored.loc[ts("2025-01-01 07:00"), "volume"] == float(vfields[5])


def test_volume_only_difference_keeps_the_stored_bar(tmp_path: Path, rng: np.random.Generator) -> None:
    lines = kline_lines(rng, n=10)
    dataset = tmp_path / "ds.parquet"
    ingest([write_lines(tmp_path / "a.csv", lines)], symbol="FET", into=dataset)
    before = dataset.read_bytes()
    fields = lines[3].split(",")
    fields[5] = "1.0"
    changed = [*lines[:3], ",".join(fields), *lines[4:]]
    report = ingest([write_lines(tmp_path / "b.csv", changed)], symbol="FET", into=dataset)
    assert (report.rows_added, report.rows_unchanged, report.rows_overwritten) == (0, 10, 0)
    assert dataset.read_bytes() == before


def test_interrupted_write_leaves_old_dataset_intact(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = tmp_path / "ds.parquet"
    ingest([write_lines(tmp_path / "a.csv", kline_lines(rng, n=24))], symbol="FET", into=dataset)
    before = dataset.read_bytes()

    def crash(table: object, fh: object) -> None:
        fh.write(b"PAR1 partial garbage")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingest_mod, "_write_parquet", crash)
    more = write_lines(tmp_path / "b.csv", kline_lines(rng, n=24, start_ms=START_MS + 24 * HOUR_MS))
    with pytest.raises(RuntimeError, match="disk full"):
        ingest([more], symbol="FET", into=dataset)
    assert dataset.read_bytes() == before
    # only the (persistent, empty) lock file is added next to the dataset; no temporary file is left
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.parquet.lock", "a.csv", "b.csv", "ds.parquet"]
    # A dataset that did not exist is not created by a failed write.
    with pytest.raises(RuntimeError):
        ingest([more], symbol="FET", into=tmp_path / "new.parquet")
    assert not (tmp_path / "new.parquet").exists()
    monkeypatch.undo()
    assert ingest([more], symbol="FET", into=dataset).rows_added == 24


def test_column_set_mismatch_is_refused(tmp_path: Path) -> None:
    dataset = tmp_path / "ds.parquet"
    ingest([FREQTRADE], symbol="FET", into=dataset)
    with pytest.raises(DataError, match="dataset has columns ts, symbol, open, high, low, close, volume but the ingested data has ts, symbol, close"):
        ingest([YAHOO], symbol="RNDR", into=dataset)


# ------------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------------

YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
YAHOO_ROWS = [
    "2024-01-01,1.0,1.2,0.9,1.1,1.1,1000",
    "2024-01-02,1.1,1.3,1.0,1.2,1.2,2400",
    "2024-01-03,1.2,1.4,1.1,1.3,1.3,2600",
]


def test_yahoo_ohlcv_file(tmp_path: Path) -> None:
    frame = read_vendor_file(write_lines(tmp_path / "y.csv", [YAHOO_HEADER, *YAHOO_ROWS]), symbol="X")
    assert frame["ts"].tolist() == [ts("2024-01-01"), ts("2024-01-02"), ts("2024-01-03")]
    np.testing.assert_allclose(frame["close"], [1.1, 1.2, 1.3])
    np.testing.assert_allclose(frame["volume"], [1000 / 1.1, 2400 / 1.2, 2600 / 1.3])  # USD → base units


def test_plain_ohlcv_csv_is_read_without_the_volume_whose_unit_it_does_not_tell(tmp_path: Path) -> None:
    """yahoo, freqtrade and ccxt all fit the header and agree on every price; they read volume in
    different units, so it is not stored and the report says why; ``--format`` keeps it."""
    path = write_lines(tmp_path / "x.csv", ["date,open,high,low,close,volume", "2024-01-01,1,2,0.5,1.5,10",
                                            "2024-01-02,1.5,2,1,1.8,12"])
    frame = read_vendor_file(path, symbol="X")
    assert frame["close"].tolist() == [1.5, 1.8] and "volume" not in frame
    assert read_vendor_file(path, symbol="X", format="freqtrade")["volume"].tolist() == [10.0, 12.0]
    np.testing.assert_allclose(read_vendor_file(path, symbol="X", format="yahoo")["volume"], [10 / 1.5, 12 / 1.8])
    report = ingest([path], symbol="X", into=tmp_path / "ds.parquet")
    assert report.rows_added == 2 and len(report.notes) == 1
    assert "x.csv: volume not stored" in report.notes[0] and "--format" in report.notes[0]
    stored = pd.read_parquet(tmp_path / "ds.parquet")
    assert stored["close"].tolist() == [1.5, 1.8] and "volume" not in stored
    assert ingest([path], symbol="X", into=tmp_path / "kept.parquet", format="freqtrade").notes == ()
    assert pd.read_parquet(tmp_path / "kept.parquet")["volume"].tolist() == [10.0, 12.0]


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("empty.csv", "", ["file is empty", "row 0"]),
        ("blank.csv", "\n\n  \n", ["file is empty", "row 0"]),
        ("header_only.csv", YAHOO_HEADER + "\n", ["expected at least one data row after the header on line 1", "row 0"]),
        ("cdd_header_only.csv", "https://www.CryptoDataDownload.com\nUnix,Date,Symbol,Open,High,Low,Close,Volume FET,Volume USDT,tradecount\n",
         ["expected at least one data row after the header on line 2", "row 0"]),
        ("unsupported.csv", "foo,bar\n1,2\n", ["unsupported format", "line 1", "pass --format"]),
        ("semicolon.csv", "Date;Open;High;Low;Close;Adj Close;Volume\n2024-01-01;1;2;0.5;1.5;1.5;10\n",
         ["line 1", "';'-delimited", "comma-separated"]),
    ],
)
def test_unusable_files_name_file_and_row(tmp_path: Path, name: str, content: str, fragments: list[str]) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        read_vendor_file(path, symbol="X")
    text = message(exc)
    assert str(path) in text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


def test_wrong_delimiter_with_explicit_format(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "y.csv", [YAHOO_HEADER.replace(",", ";"), *(r.replace(",", ";") for r in YAHOO_ROWS)])
    with pytest.raises(DataError, match="line 1.*';'-delimited"):
        read_vendor_file(path, symbol="X", format="yahoo")
    rows = [YAHOO_HEADER, YAHOO_ROWS[0], YAHOO_ROWS[1].replace(",", ";"), YAHOO_ROWS[2]]
    path = write_lines(tmp_path / "z.csv", rows)
    with pytest.raises(DataError) as exc:
        read_vendor_file(path, symbol="X")
    assert "row 1 (line 3)" in message(exc) and "expected 7 comma-separated fields, found 1" in message(exc)


@pytest.mark.parametrize(
    ("bad_row", "column", "fragment"),
    [
        ("2024-13-45,1.2,1.4,1.1,1.3,1.3,2600", "Date", "expected a date like 2024-07-22, found '2024-13-45'"),
        ("03/01/2024,1.2,1.4,1.1,1.3,1.3,2600", "Date", "found '03/01/2024'"),
        ("2024-01-03,null,null,null,null,null,null", "Open", "expected a number, found 'null'"),
        ("2024-01-03,1.2,1.4,1.1,abc,1.3,2600", "Close", "expected a number, found 'abc'"),
        ("2024-01-03,1.2,1.0,1.1,1.3,1.3,2600", "high", "expected high >= low"),
    ],
)
def test_bad_yahoo_rows_are_located(tmp_path: Path, bad_row: str, column: str, fragment: str) -> None:
    path = write_lines(tmp_path / "y.csv", [YAHOO_HEADER, *YAHOO_ROWS[:2], bad_row])
    with pytest.raises(DataError) as exc:
        read_vendor_file(path, symbol="X")
    text = message(exc)
    assert str(path) in text and f"column '{column}', row 2" in text and "line 4" in text
    assert fragment in text


def test_duplicate_bars_in_one_file_are_refused(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "y.csv", [YAHOO_HEADER, *YAHOO_ROWS, YAHOO_ROWS[1]])
    with pytest.raises(DataError) as exc:
        read_vendor_file(path, symbol="X")
    text = message(exc)
    assert "column 'ts', row 3" in text and "line 5" in text and "duplicate of row 1" in text


def test_cryptodatadownload_date_must_match_unix(tmp_path: Path) -> None:
    lines = CDD.read_text().splitlines()
    lines[3] = lines[3].replace("2024-07-20", "2024-07-18")  # row 2 (line 4)
    path = write_lines(tmp_path / "cdd.csv", lines)
    with pytest.raises(DataError) as exc:
        read_vendor_file(path, symbol="FET")
    text = message(exc)
    assert "column 'Unix', row 2" in text and "line 4" in text and "disagrees with Date '2024-07-18'" in text


def test_cryptodatadownload_seconds_rows_are_accepted(tmp_path: Path) -> None:
    lines = CDD.read_text().splitlines()
    last = lines[-1].split(",")
    last[0] = str(int(last[0]) // 1000)  # the vendor switched units over the years
    lines[-1] = ",".join(last)
    frame = read_vendor_file(write_lines(tmp_path / "cdd.csv", lines), symbol="FET")
    pd.testing.assert_frame_equal(frame, read_vendor_file(CDD, symbol="FET"))


@pytest.mark.parametrize(
    ("rows", "fragment", "row"),
    [
        ([[1578182400000, 1, 2, 0.5, 1.5, 10], [1578268800000, 1, 2, 0.5, None, 10]], "expected a number, found null", 1),
        ([[1578182400000, 1, 2, 0.5, 1.5, 10], [1578268800000, 1, 2, 0.5, 1.5]], "expected a row [open_time_ms", 1),
        ([[1578182400000, 1, 2, 0.5, 1.5, 10], [1578268800, 1, 2, 0.5, 1.5, 10]], "not a plausible time in ms", 1),
        ([[1578182400000, 1, 2, 0.5, 1.5, 10], [1578182400000, 1, 2, 0.5, 1.5, 10]], "duplicate of row 0", 1),
        ([[1578182400000, 1, 2, 0.5, 1.5, 10], [1578268800000, 1, 2, 0.5, 1.5, -10]], "expected a finite volume >= 0", 1),
    ],
)
def test_bad_json_rows_are_located(tmp_path: Path, rows: list[list[object]], fragment: str, row: int) -> None:
    path = tmp_path / "FET_USDT-1d.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError) as exc:
        read_vendor_file(path, symbol="FET")
    text = message(exc)
    assert str(path) in text and f"row {row}" in text and fragment in text


def test_empty_and_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("[]")
    with pytest.raises(DataError, match="row 0.*empty list"):
        read_vendor_file(path, symbol="FET")
    path.write_text("[[1578182400000, 1, 2")
    with pytest.raises(DataError, match="invalid JSON"):
        read_vendor_file(path, symbol="FET")


def test_binance_bad_rows(tmp_path: Path, rng: np.random.Generator) -> None:
    lines = kline_lines(rng, n=6)
    short = [*lines[:4], ",".join(lines[4].split(",")[:11]), lines[5]]
    path = write_lines(tmp_path / "k.csv", short)
    with pytest.raises(DataError, match="row 4 \\(line 5\\): expected 12 comma-separated fields, found 11"):
        read_vendor_file(path, symbol="FET")
    seconds = [str(START_MS // 1000) + lines[0][len(str(START_MS)):], *lines[1:]]
    path = write_lines(tmp_path / "s.csv", seconds)
    with pytest.raises(DataError, match="column 'open_time', row 0 \\(line 1\\): epoch time 1735689600 is not a plausible time in ms/µs"):
        read_vendor_file(path, symbol="FET", format="binance")


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_vendor_file(tmp_path / "nope.csv", symbol="X")
    with pytest.raises(ConfigError, match="ingest.yahoo_shift_days.*only applies to yahoo"):
        read_vendor_file(FREQTRADE, symbol="FET", yahoo_shift_days=-1)
    for bad in (" FET", "", "a b", "A\nB", "A\tB", "F,ET"):  # a space inside passed, and a newline broke error lines
        with pytest.raises(ConfigError, match="ingest.symbol"):
            read_vendor_file(FREQTRADE, symbol=bad)
    with pytest.raises(ConfigError, match="ingest.format"):
        read_vendor_file(FREQTRADE, symbol="FET", format="excel")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ingest.paths"):
        ingest([], symbol="FET", into=tmp_path / "x.parquet")


# ------------------------------------------------------------------------------------------------
# CLI glue
# ------------------------------------------------------------------------------------------------


def test_cli_ingest_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "ds.parquet"
    argv = ["ingest", str(YAHOO), "--symbol", "RNDR", "--into", str(dataset), "--yahoo-shift-days", "-1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "1482 added, 0 unchanged, 0 overwritten" in out and "written" in out
    assert read_long(dataset)["ts"].iloc[0] == ts("2020-06-30")
    assert main(argv) == 0
    assert "0 added, 1482 unchanged" in capsys.readouterr().out
    assert main(["ingest", str(FREQTRADE), "--symbol", "FET", "--into", str(dataset), "--format", "ccxt"]) == 2
    assert capsys.readouterr().err.startswith("hedgebt: error: ")
    with pytest.raises(SystemExit) as exc:
        main(["ingest", str(FREQTRADE), "--symbol", "FET", "--into", str(dataset), "--format", "excel"])
    assert exc.value.code == 2


def test_a_header_fitting_several_formats_is_read_when_they_agree(tmp_path: Path) -> None:
    """With zero volume every format that fits a plain OHLCV header reads the same bars."""
    path = write_lines(tmp_path / "x.csv", ["date,open,high,low,close,volume", "2024-01-01,1,2,0.5,1.5,0",
                                            "2024-01-02,1.5,2,1,1.8,0"])
    frame = read_vendor_file(path, symbol="X")
    assert frame["close"].tolist() == [1.5, 1.8] and frame["volume"].tolist() == [0.0, 0.0]
    report = ingest([path], symbol="X", into=tmp_path / "ds.parquet")
    assert report.rows_added == 2 and report.notes == ()  # nothing left out
