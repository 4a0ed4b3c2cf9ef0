"""Tests of the data loader and its validation rules (backtest.data)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.data import (
    GapReport,
    PricePanel,
    file_sha256,
    load_funding,
    load_panel,
    read_long,
    validate_long_frame,
)
from backtest.errors import ConfigError, DataError

H = pd.Timedelta("1h")
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def bars(symbol: str, hours: list[int] | range, *, ohlcv: bool = False, base: float = 10.0) -> pd.DataFrame:
    """Hourly bars of ``symbol`` at ``T0 + h hours``; close = base + h/10 (easy to check by hand)."""
    hours = list(hours)
    close = np.array([base + h / 10 for h in hours])
    df = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex([T0 + h * H for h in hours]).as_unit("us"),
            "symbol": pd.array([symbol] * len(hours), dtype="string"),
            "close": close,
        }
    )
    if ohlcv:
        df.insert(2, "open", close - 0.05)
        df.insert(3, "high", close + 0.2)
        df.insert(4, "low", close - 0.3)
        df["volume"] = 100.0 + np.asarray(hours, dtype=float)
    return df


def two_symbols(*, ohlcv: bool = False) -> pd.DataFrame:
    """A (rows 0-4) and B (rows 5-9), hourly from T0."""
    return pd.concat([bars("A", range(5), ohlcv=ohlcv), bars("B", range(5), ohlcv=ohlcv, base=20.0)], ignore_index=True)


def write(tmp_path: Path, df: pd.DataFrame, name: str = "prices.parquet") -> Path:
    path = tmp_path / name
    df.to_parquet(path, index=False)
    return path


def message(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text, "error messages are one line"
    return text


def assert_located(text: str, path: Path, column: str, row: int, *fragments: str) -> None:
    assert str(path) in text
    assert f"column '{column}'" in text
    assert f"row {row}" in text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


# ------------------------------------------------------------------------------------------------
# file-level rules
# ------------------------------------------------------------------------------------------------


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert str(path) in message(exc) and "not found" in message(exc)


def test_non_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "prices.parquet"
    path.write_text("ts,symbol,close\n2024-01-01,A,1.0\n")
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert str(path) in message(exc) and "not a readable Parquet file" in message(exc)


def test_empty_file_is_a_data_error(tmp_path: Path) -> None:
    path = write(tmp_path, two_symbols().iloc[:0])
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert str(path) in message(exc) and "0 rows" in message(exc)


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, two_symbols().drop(columns="close"))
    with pytest.raises(DataError) as exc:
        read_long(path)
    text = message(exc)
    assert str(path) in text and "column 'close'" in text and "missing required column" in text


# ------------------------------------------------------------------------------------------------
# timestamps
# ------------------------------------------------------------------------------------------------


def test_tz_naive_timestamps_are_rejected(tmp_path: Path) -> None:
    df = two_symbols()
    df["ts"] = df["ts"].dt.tz_localize(None)
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert_located(message(exc), path, "ts", 0, "timestamps must be tz-aware UTC", "tz-naive", "symbol 'A'")


def test_non_utc_timezone_is_rejected(tmp_path: Path) -> None:
    df = two_symbols()
    df["ts"] = df["ts"].dt.tz_convert("Europe/Berlin")
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert_located(message(exc), path, "ts", 0, "timestamps must be tz-aware UTC", "Europe/Berlin")


def test_duplicate_ts_symbol_names_the_first_duplicated_row(tmp_path: Path) -> None:
    df = two_symbols()
    df = pd.concat([df, df.iloc[[6]], df.iloc[[1]]], ignore_index=True)  # rows 10 (dup of 6), 11 (dup of 1)
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert_located(
        message(exc), path, "ts", 10, "duplicate of row 6", "symbol 'B'", "ts 2024-03-01 01:00:00+00:00"
    )


def test_unsorted_ts_names_the_first_out_of_order_row(tmp_path: Path) -> None:
    df = two_symbols()
    df = df.iloc[[0, 1, 3, 2, 4, 5, 6, 7, 9, 8]].reset_index(drop=True)  # A: rows 2/3 swapped; B: 8/9
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert_located(
        message(exc), path, "ts", 3, "strictly increasing", "symbol 'A'", "ts 2024-03-01 02:00:00+00:00", "(row 2)"
    )


def test_missing_timestamp_is_rejected(tmp_path: Path) -> None:
    df = two_symbols()
    df.loc[7, "ts"] = pd.NaT
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert_located(message(exc), path, "ts", 7, "NaT", "symbol 'B'")


# ------------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (0.0, "0.0"), (-1.5, "-1.5")]
)
def test_bad_close_is_rejected_with_the_value(tmp_path: Path, value: float, shown: str) -> None:
    df = two_symbols()
    df.loc[8, "close"] = value
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        read_long(path)
    assert_located(
        message(exc),
        path,
        "close",
        8,
        "expected a finite price > 0",
        f"found {shown}",
        "symbol 'B'",
        "ts 2024-03-01 03:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("column", "value", "row", "column_named", "fragment"),
    [
        ("high", 9.0, 2, "high", "expected high >= low, found low=9.8"),
        ("close", 30.0, 6, "close", "expected close <= high"),
        ("close", 19.0, 7, "close", "expected low <= close"),
        ("open", 12.0, 1, "open", "expected open <= high"),
        ("low", -2.0, 3, "low", "expected a finite price > 0, found -2.0"),
        ("volume", -1.0, 4, "volume", "expected a finite volume >= 0, found -1.0"),
        ("volume", np.nan, 9, "volume", "expected a finite volume >= 0, found nan"),
    ],
)
def test_ohlcv_consistency_rules(
    tmp_path: Path, column: str, value: float, row: int, column_named: str, fragment: str
) -> None:
    df = two_symbols(ohlcv=True)
    df.loc[row, column] = value
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        read_long(path)
    symbol = "A" if row < 5 else "B"
    assert_located(message(exc), path, column_named, row, fragment, f"symbol '{symbol}'")


def test_high_low_tolerance_is_relative_1e_12(tmp_path: Path) -> None:
    df = two_symbols(ohlcv=True)
    df.loc[0, "close"] = df.loc[0, "high"] * (1 + 1e-13)  # within tolerance
    assert len(read_long(write(tmp_path, df))) == 10
    df.loc[0, "close"] = df.loc[0, "high"] * (1 + 1e-10)  # outside
    with pytest.raises(DataError, match="close <= high"):
        read_long(write(tmp_path, df, "b.parquet"))


def test_validate_long_frame_in_memory_names_the_label() -> None:
    df = two_symbols()
    validate_long_frame(df, file="<frame>", price_columns=["close"])  # valid: no error
    df.loc[2, "close"] = -3.0
    with pytest.raises(DataError) as exc:
        validate_long_frame(df, file="<frame>", price_columns=["close"])
    assert message(exc).startswith("<frame>: column 'close', row 2 (symbol 'A', ts 2024-03-01 02:00:00+00:00)")


def test_read_long_returns_rows_in_file_order(tmp_path: Path) -> None:
    df = pd.concat([bars("B", range(3)), bars("A", range(3))], ignore_index=True)
    out = read_long(write(tmp_path, df))
    assert out["symbol"].tolist() == ["B"] * 3 + ["A"] * 3
    assert str(out["ts"].dtype) == "datetime64[us, UTC]"
    np.testing.assert_array_equal(out["close"].to_numpy(), df["close"].to_numpy())


# ------------------------------------------------------------------------------------------------
# load_panel: selection and arguments
# ------------------------------------------------------------------------------------------------


def test_unknown_symbol_lists_alternatives(tmp_path: Path) -> None:
    path = write(tmp_path, two_symbols())
    with pytest.raises(DataError) as exc:
        load_panel(path, ["A", "XYZ"])
    text = message(exc)
    assert str(path) in text and "column 'symbol'" in text
    assert "unknown symbol 'XYZ'; available: A, B" in text


def test_start_after_end_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, two_symbols())
    with pytest.raises(ConfigError, match="start 2024-03-02 00:00:00\\+00:00 is after end 2024-03-01"):
        load_panel(path, start="2024-03-02", end="2024-03-01")


def test_empty_window_is_a_data_error(tmp_path: Path) -> None:
    path = write(tmp_path, two_symbols())
    with pytest.raises(DataError) as exc:
        load_panel(path, start="2025-01-01")
    assert str(path) in message(exc) and "no bars of A, B from start=2025-01-01 00:00:00+00:00 on" in message(exc)


def test_requested_symbol_without_bars_in_window_is_an_error(tmp_path: Path) -> None:
    df = pd.concat([bars("A", range(10)), bars("B", range(3))], ignore_index=True)
    path = write(tmp_path, df)
    with pytest.raises(DataError, match="symbol\\(s\\) B have no bars from start=2024-03-01 05:00"):
        load_panel(path, ["A", "B"], start=T0 + 5 * H)
    panel = load_panel(path, start=T0 + 5 * H)  # symbols=None: only symbols with bars
    assert panel.symbols == ("A",)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_fill_bars": -1}, "data.max_fill_bars"),
        ({"max_fill_bars": 1.5}, "data.max_fill_bars"),
        ({"freq": "banana"}, "data.freq"),
        ({"resample": "0h"}, "data.resample"),
        ({"resample": "90min"}, "data.resample"),
        ({"start": "not a date"}, "data.start"),
    ],
)
def test_bad_arguments_are_config_errors(tmp_path: Path, kwargs: dict[str, object], key: str) -> None:
    path = write(tmp_path, two_symbols())
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        load_panel(path, **kwargs)  # type: ignore[arg-type]


def test_duplicate_requested_symbol_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, two_symbols())
    with pytest.raises(ConfigError, match="'A' is listed twice"):
        load_panel(path, ["A", "B", "A"])


def test_panel_shape_dtypes_and_order(tmp_path: Path) -> None:
    path = write(tmp_path, two_symbols(ohlcv=True))
    panel = load_panel(path, ["B", "A"])
    assert isinstance(panel, PricePanel)
    assert list(panel.close.columns) == ["B", "A"]
    assert panel.close.index.name == "ts"
    assert str(panel.close.index.dtype) == "datetime64[us, UTC]"
    assert panel.freq == H
    assert panel.close.index[0] == T0 and len(panel.close) == 5
    assert (panel.close.index[1:] - panel.close.index[:-1] == H).all()
    np.testing.assert_allclose(panel.close["A"], [10.0, 10.1, 10.2, 10.3, 10.4])
    np.testing.assert_allclose(panel.high["B"], [20.2, 20.3, 20.4, 20.5, 20.6])  # type: ignore[index]
    np.testing.assert_allclose(panel.low["A"], [9.7, 9.8, 9.9, 10.0, 10.1])  # type: ignore[index]
    np.testing.assert_allclose(panel.volume["A"], [100.0, 101.0, 102.0, 103.0, 104.0])  # type: ignore[index]
    assert panel.gaps == (GapReport("B", 0, 0, 0, None), GapReport("A", 0, 0, 0, None))
    assert panel.path == path.resolve()
    assert panel.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_close_only_file_has_no_high_low_volume(tmp_path: Path) -> None:
    panel = load_panel(write(tmp_path, two_symbols()))
    assert panel.high is None and panel.low is None and panel.volume is None
    assert panel.symbols == ("A", "B")


def test_start_end_are_inclusive_and_naive_strings_are_utc(tmp_path: Path) -> None:
    path = write(tmp_path, bars("A", range(24)))
    panel = load_panel(path, start="2024-03-01 05:00", end=pd.Timestamp("2024-03-01 09:00", tz="UTC"))
    assert panel.close.index[0] == T0 + 5 * H and panel.close.index[-1] == T0 + 9 * H
    # A bound in another zone is converted: 07:00+01:00 = 06:00 UTC.
    panel = load_panel(path, start=pd.Timestamp("2024-03-01 07:00", tz="Europe/Berlin"))
    assert panel.close.index[0] == T0 + 6 * H


def test_off_grid_timestamp_is_rejected(tmp_path: Path) -> None:
    df = bars("A", range(10))
    df.loc[4, "ts"] = T0 + pd.Timedelta("3h30min")
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        load_panel(path)
    assert_located(message(exc), path, "ts", 4, "is not on the 1h bar grid", "03:30:00")


def test_explicit_freq_is_checked_against_the_grid(tmp_path: Path) -> None:
    path = write(tmp_path, bars("A", range(10)))
    with pytest.raises(DataError, match="not on the 2h bar grid"):
        load_panel(path, freq="2h")
    assert load_panel(path, freq="1h").freq == H


# ------------------------------------------------------------------------------------------------
# gap policy
# ------------------------------------------------------------------------------------------------


def test_three_bar_gap_is_forward_filled_and_reported(tmp_path: Path) -> None:
    hours = [h for h in range(20) if h not in (5, 6, 7)]
    df = pd.concat([bars("A", hours, ohlcv=True), bars("B", range(20), ohlcv=True, base=20.0)], ignore_index=True)
    panel = load_panel(write(tmp_path, df), max_fill_bars=6)
    assert len(panel.close) == 20
    filled = [T0 + h * H for h in (5, 6, 7)]
    last_close = 10.0 + 4 / 10
    np.testing.assert_allclose(panel.close.loc[filled, "A"], [last_close] * 3)
    np.testing.assert_allclose(panel.high.loc[filled, "A"], [last_close] * 3)  # type: ignore[union-attr]
    np.testing.assert_allclose(panel.low.loc[filled, "A"], [last_close] * 3)  # type: ignore[union-attr]
    np.testing.assert_array_equal(panel.volume.loc[filled, "A"], [0.0, 0.0, 0.0])  # type: ignore[union-attr]
    assert panel.close.loc[T0 + 8 * H, "A"] == pytest.approx(10.8)  # real bar after the gap untouched
    assert panel.high.loc[T0 + 4 * H, "A"] == pytest.approx(10.6)  # type: ignore[union-attr]
    assert panel.gap_report("A") == GapReport("A", 1, 3, 3, T0 + 5 * H)
    assert panel.gap_report("B") == GapReport("B", 0, 0, 0, None)
    assert not panel.close.isna().any().any()


def test_several_gaps_report_counts_and_the_longest(tmp_path: Path) -> None:
    hours = [h for h in range(30) if h not in (3, 10, 11, 12, 20, 21)]
    panel = load_panel(write(tmp_path, bars("A", hours)))
    assert panel.gap_report("A") == GapReport("A", 3, 6, 3, T0 + 10 * H)


def test_gap_of_exactly_max_fill_bars_is_filled(tmp_path: Path) -> None:
    hours = [h for h in range(20) if not 5 <= h <= 10]  # 6 missing
    panel = load_panel(write(tmp_path, bars("A", hours)), max_fill_bars=6)
    assert panel.gap_report("A") == GapReport("A", 1, 6, 6, T0 + 5 * H)


def test_seven_bar_gap_is_an_error(tmp_path: Path) -> None:
    hours = [h for h in range(20) if not 5 <= h <= 11]  # 7 missing
    df = pd.concat([bars("B", range(20)), bars("A", hours)], ignore_index=True)
    path = write(tmp_path, df)
    with pytest.raises(DataError) as exc:
        load_panel(path, ["B", "A"], max_fill_bars=6)
    text = message(exc)
    assert str(path) in text
    assert "symbol 'A'" in text and "first missing ts 2024-03-01 05:00:00+00:00" in text
    assert "gap of 7 missing 1h bar(s)" in text and "max_fill_bars=6" in text and "data.max_fill_bars" in text
    assert "row 25" in text  # the first bar after the gap: B has rows 0-19, A's 12:00 bar is row 25
    # A larger limit fills it.
    assert load_panel(path, max_fill_bars=7).gap_report("A").n_missing_bars == 7


def test_max_fill_bars_zero_makes_any_gap_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, bars("A", [0, 1, 3, 4]))
    with pytest.raises(DataError, match="gap of 1 missing 1h bar\\(s\\) for 'A' from 2024-03-01 02:00:00"):
        load_panel(path, max_fill_bars=0)
    assert load_panel(path).gap_report("A") == GapReport("A", 1, 1, 1, T0 + 2 * H)


def test_listing_and_delisting_are_nan_not_gaps(tmp_path: Path) -> None:
    # B lists 10 bars after A and is delisted 5 bars before A's end.
    df = pd.concat([bars("A", range(30)), bars("B", range(10, 25), base=20.0)], ignore_index=True)
    panel = load_panel(write(tmp_path, df), max_fill_bars=0)
    b = panel.close["B"]
    assert b.iloc[:10].isna().all() and b.iloc[25:].isna().all()
    assert not b.iloc[10:25].isna().any()
    assert panel.gap_report("B") == GapReport("B", 0, 0, 0, None)


def test_gap_straddling_start_is_filled_from_the_bar_before(tmp_path: Path) -> None:
    path = write(tmp_path, bars("A", [0, 1, 2, 6, 7, 8]))  # 3..5 missing
    panel = load_panel(path, start=T0 + 4 * H)
    assert panel.close.index[0] == T0 + 4 * H
    np.testing.assert_allclose(panel.close["A"].iloc[:2], [10.2, 10.2])
    assert panel.gap_report("A") == GapReport("A", 1, 2, 2, T0 + 4 * H)
    # The whole run counts against the limit, even the part before start.
    with pytest.raises(DataError, match="gap of 3 missing"):
        load_panel(path, start=T0 + 5 * H, max_fill_bars=2)
    # A gap ending right before start is outside the window: no error, no report.
    assert load_panel(path, start=T0 + 6 * H, max_fill_bars=0).gap_report("A").n_gaps == 0


def _reference_panel(df: pd.DataFrame, symbols: list[str]) -> pd.DataFrame:
    """Slow, obvious reference: pivot, reindex to the hourly grid, ffill inside each life."""
    wide = df.pivot(index="ts", columns="symbol", values="close")[symbols]
    grid = pd.date_range(wide.index.min(), wide.index.max(), freq="1h", unit="us", name="ts")
    wide = wide.reindex(grid)
    out = {}
    for s in symbols:
        col = wide[s]
        first, last = col.first_valid_index(), col.last_valid_index()
        filled = col.ffill()
        filled[(col.index < first) | (col.index > last)] = np.nan
        out[s] = filled
    return pd.DataFrame(out, index=grid)


def test_panel_matches_a_reference_on_random_scenarios(tmp_path: Path, rng: np.random.Generator) -> None:
    for k in range(20):
        frames = []
        symbols = ["S0", "S1", "S2", "S3"]
        for s in symbols:
            first = int(rng.integers(0, 40))
            last = first + int(rng.integers(1, 200))
            hours = np.arange(first, last + 1)
            drop = rng.random(hours.size) < 0.15
            drop[0] = drop[-1] = False
            kept = hours[~drop]
            df = bars(s, kept.tolist())
            df["close"] = np.exp(rng.normal(0, 0.02, kept.size).cumsum()) * 5
            frames.append(df)
        df = pd.concat(frames, ignore_index=True)
        path = write(tmp_path, df, f"r{k}.parquet")
        order = list(rng.permutation(symbols))
        panel = load_panel(path, order, max_fill_bars=1000)
        expected = _reference_panel(df, order)
        pd.testing.assert_frame_equal(panel.close, expected, check_names=False, check_freq=False)
        for s in order:
            col = _reference_panel(df, [s])[s]
            raw_present = col.index.isin(df.loc[df["symbol"] == s, "ts"])
            life = col.notna()
            assert panel.gap_report(s).n_missing_bars == int((life & ~raw_present).sum())


# ------------------------------------------------------------------------------------------------
# resampling
# ------------------------------------------------------------------------------------------------


def test_resample_to_days_against_hand_computation(tmp_path: Path) -> None:
    day = pd.Timedelta("1D")
    d0 = T0
    rows = [
        # (ts, open, high, low, close, volume)
        (d0 + 0 * H, 10.0, 11.0, 9.5, 10.5, 5.0),
        (d0 + 7 * H, 10.5, 12.0, 10.0, 11.5, 7.0),
        (d0 + 23 * H, 11.5, 11.8, 8.0, 9.0, 1.0),
        (d0 + day + 3 * H, 9.0, 9.5, 8.5, 9.2, 2.0),  # day 2: a single bar
        # day 3 has no bar: one missing daily bar, filled
        (d0 + 3 * day + 0 * H, 9.3, 13.0, 9.1, 12.0, 4.0),
        (d0 + 3 * day + 1 * H, 12.0, 12.5, 11.0, 12.2, 6.0),
    ]
    df = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
    df["ts"] = df["ts"].dt.as_unit("us")
    df.insert(1, "symbol", pd.array(["A"] * len(df), dtype="string"))
    panel = load_panel(write(tmp_path, df), resample="1D", freq="1h")
    assert panel.freq == day
    assert list(panel.close.index) == [d0, d0 + day, d0 + 2 * day, d0 + 3 * day]
    np.testing.assert_allclose(panel.close["A"], [9.0, 9.2, 9.2, 12.2])
    np.testing.assert_allclose(panel.high["A"], [12.0, 9.5, 9.2, 13.0])  # type: ignore[index]
    np.testing.assert_allclose(panel.low["A"], [8.0, 8.5, 9.2, 9.1])  # type: ignore[index]
    np.testing.assert_allclose(panel.volume["A"], [13.0, 2.0, 0.0, 10.0])  # type: ignore[index]
    assert panel.gap_report("A") == GapReport("A", 1, 1, 1, d0 + 2 * day)
    # start/end select day labels; a day is aggregated whole.
    cut = load_panel(write(tmp_path, df, "b.parquet"), resample="1D", start="2024-03-01 12:00", end="2024-03-02")
    assert list(cut.close.index) == [d0 + day]


def test_resampled_hourly_file_matches_bundled_daily_file(data_dir: Path) -> None:
    """Independent check: the bundled daily OHLCV was built from the hourly bars by the vendor script."""
    hourly = load_panel(data_dir / "binance_spot_1h_ohlcv_2021_2023.parquet", resample="1D")
    daily = load_panel(data_dir / "binance_spot_1d_ohlcv_2021_2023.parquet", hourly.symbols)
    common = hourly.close.index.intersection(daily.close.index)
    assert len(common) > 900
    for field in ("close", "high", "low", "volume"):
        a = getattr(hourly, field).loc[common]
        b = getattr(daily, field).loc[common]
        pd.testing.assert_frame_equal(a, b, check_freq=False, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# bundled real data
# ------------------------------------------------------------------------------------------------


def test_real_hourly_data_loads_and_reports_maintenance_gaps(data_dir: Path) -> None:
    path = data_dir / "binance_spot_1h_close.parquet"
    panel = load_panel(path, ["FET", "NEAR"])
    assert panel.freq == H
    assert panel.symbols == ("FET", "NEAR")
    assert panel.close.index[0] == pd.Timestamp("2021-01-01 00:00", tz="UTC")
    assert panel.close.index[-1] == pd.Timestamp("2025-06-13 09:00", tz="UTC")
    fet = panel.gap_report("FET")
    assert fet.n_gaps == 7
    assert fet.longest_gap_bars == 4
    assert fet.n_missing_bars == 1 + 1 + 2 + 3 + 4 + 2 + 1
    assert fet.longest_gap_start == pd.Timestamp("2021-08-13 02:00", tz="UTC")
    # Filled bars carry the last real close (FET closed at 0.36444 at 2021-04-25 04:00, then 3 bars missing).
    window = panel.close.loc["2021-04-25 04:00":"2021-04-25 08:00", "FET"]
    np.testing.assert_allclose(window, [0.36444, 0.36444, 0.36444, 0.36444, 0.37982])
    # FET's last bar is one hour before NEAR's: NaN there is delisting/end of data, not a gap.
    assert np.isnan(panel.close["FET"].iloc[-1]) and not np.isnan(panel.close["NEAR"].iloc[-1])
    assert int(panel.close.isna().sum().sum()) == 1


def test_real_funding_series(data_dir: Path) -> None:
    rate = load_funding(data_dir / "binance_usdm_perp_funding_8h.parquet", "FET")
    assert rate.name == "funding_rate"
    assert rate.attrs["interval_h"] == 8
    assert len(rate) == 2889
    assert str(rate.index.dtype) == "datetime64[us, UTC]" and rate.index.name == "ts"
    assert rate.index.is_monotonic_increasing and rate.index.is_unique
    assert rate.index[0] == pd.Timestamp("2023-01-16 08:00", tz="UTC")
    # DOMAIN.md: mean 0.009 %, min -0.24 %, max +0.18 % per 8 h.
    assert rate.mean() == pytest.approx(0.00009, abs=0.000005)
    assert rate.min() == pytest.approx(-0.0024, abs=0.00005)
    assert rate.max() == pytest.approx(0.0018, abs=0.00005)


def test_funding_unknown_symbol_and_bad_rate(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(DataError, match="unknown symbol 'BTC'; available: FET"):
        load_funding(data_dir / "binance_usdm_perp_funding_8h.parquet", "BTC")
    df = pd.read_parquet(data_dir / "binance_usdm_perp_funding_8h.parquet").iloc[:10].copy()
    df.loc[4, "funding_rate"] = np.nan
    path = write(tmp_path, df, "funding.parquet")
    with pytest.raises(DataError) as exc:
        load_funding(path, "FET")
    assert_located(message(exc), path, "funding_rate", 4, "expected a finite funding rate, found nan")
    df.loc[4, "funding_rate"] = -0.001  # negative rates are legitimate
    df.loc[6, "interval_h"] = 4
    path = write(tmp_path, df, "funding2.parquet")
    with pytest.raises(DataError) as exc:
        load_funding(path, "FET")
    assert_located(message(exc), path, "interval_h", 6, "one settlement interval per symbol")


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 5000
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()
    assert file_sha256(str(path)) == file_sha256(path)


def test_bundled_cme_files_are_derived_from_the_basis_file_and_hedge_btc() -> None:
    """The bundled CME spot/futures files equal cme_front_month_frames of the basis file (cropped),
    and the scenario on them rolls monthly on the file's own expiries."""
    from backtest.config import BUNDLED_DATA, PROJECT_ROOT, load_config
    from backtest.data import cme_front_month_frames
    from backtest.results import run

    spot, fut = cme_front_month_frames(BUNDLED_DATA / "cme_btc_front_month_basis_daily.parquet")
    fut = fut[(fut["ts"] >= pd.Timestamp("2020-12-01", tz="UTC")) & (fut["ts"] <= pd.Timestamp("2025-07-31", tz="UTC"))]
    pd.testing.assert_frame_equal(spot, pd.read_parquet(BUNDLED_DATA / "cme_btc_spot_at_settlement_daily.parquet"))
    pd.testing.assert_frame_equal(fut.reset_index(drop=True),
                                  pd.read_parquet(BUNDLED_DATA / "cme_btc_front_month_futures_daily.parquet"))
    # a contract is priced on its first trade date and every day to the next one's first trade date
    jan = fut[fut["expiry"] == pd.Timestamp("2021-02-02", tz="UTC")].set_index("ts")["close"]
    assert jan.index[-1] == pd.Timestamp("2021-02-01", tz="UTC")
    assert jan.iloc[-1] == jan.loc[pd.Timestamp("2021-01-29", tz="UTC")]  # final settlement held
    summary = run(load_config(PROJECT_ROOT / "backtest" / "scenarios" / "cme_btc_daily.toml")).summary
    used = summary["futures"]["contracts_used"]
    assert len(used) >= 50 and "2021-02-02T00:00Z" in used and "2021-03-02T00:00Z" in used
    for m in summary["rules"].values():
        assert 0.9 < m["hedge_effectiveness"] <= summary["oracle_r2"] + 1e-3
