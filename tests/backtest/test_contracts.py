"""Contract calendar, modelled prices, roll schedules and funding times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest import contracts as C
from backtest.config import FundingSection, RollSection
from backtest.errors import ConfigError, DataError
from backtest.results import run
from conftest import synthetic_config, write_synthetic_prices


def test_expiries_are_last_fridays_of_the_quarter_at_0800_utc() -> None:
    got = C.quarterly_expiries(pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC"))
    assert [e.isoformat() for e in got] == [
        "2024-03-29T08:00:00+00:00",
        "2024-06-28T08:00:00+00:00",
        "2024-09-27T08:00:00+00:00",
        "2024-12-27T08:00:00+00:00",
        "2025-03-28T08:00:00+00:00",
    ]
    assert all(e.weekday() == 4 for e in got)


def _hourly(start: str, days: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=days * 24, freq="h", tz="UTC") + pd.Timedelta(hours=1)  # close times


def test_modelled_prices_carry_the_basis_and_settle_at_the_index() -> None:
    close = _hourly("2024-03-20", 20)
    idx = np.linspace(1000, 1100, len(close))
    book = C.modelled_quarterly(close, idx, 0.10)
    exp = pd.Timestamp("2024-03-29 08:00", tz="UTC")
    k = book.labels.index("2024-03-29T08:00Z")
    settle = book.exp_bar[k]
    assert close[settle] == exp  # the bar opening 07:00 closes at expiry
    assert book.px[settle, k] == idx[settle]
    assert np.isnan(book.px[settle + 1 :, k]).all()
    t = 5
    tau = (exp - close[t]) / pd.Timedelta(days=365)
    assert book.px[t, k] == pytest.approx(idx[t] * np.exp(0.10 * tau), rel=1e-12)


def test_roll_schedule_days_before_expiry_with_grace() -> None:
    close = _hourly("2024-03-20", 20)
    book = C.modelled_quarterly(close, np.full(len(close), 1000.0), 0.05)
    sched = C.roll_schedule(close, book, RollSection(days_before_expiry=3, hour_utc=8, grace_bars=4))
    k = book.labels.index("2024-03-29T08:00Z")
    start = close.get_loc(pd.Timestamp("2024-03-26 08:00", tz="UTC"))
    assert (sched.c0[:start] == k).all()
    assert sched.c1[start : start + 3].tolist() == [k + 1] * 3
    assert sched.w1[start : start + 3].tolist() == [0.25, 0.5, 0.75]
    assert sched.c0[start + 3] == k + 1 and sched.c1[start + 3] == -1


def test_hold_to_expiry_switches_on_the_settlement_bar() -> None:
    close = _hourly("2024-03-20", 20)
    book = C.modelled_quarterly(close, np.full(len(close), 1000.0), 0.05)
    sched = C.roll_schedule(close, book, RollSection(mode="hold_to_expiry"))
    k = book.labels.index("2024-03-29T08:00Z")
    settle = int(book.exp_bar[k])
    assert sched.c0[settle - 1] == k and sched.c0[settle] == k + 1


def test_grace_roll_that_cannot_finish_is_refused() -> None:
    close = _hourly("2024-03-20", 20)
    book = C.modelled_quarterly(close, np.full(len(close), 1000.0), 0.05)
    with pytest.raises(ConfigError, match="roll.grace_bars"):
        C.roll_schedule(close, book, RollSection(days_before_expiry=1, hour_utc=0, grace_bars=40))


def test_funding_times_every_8h_across_month_end_and_leap_day() -> None:
    opens = pd.date_range("2024-02-27 00:00", "2024-03-02 23:00", freq="h", tz="UTC")
    rate, info = C.funding_per_bar(opens, pd.Timedelta(hours=1), FundingSection(rate_per_interval=0.0001))
    # (02-27 00:00, 03-03 00:00]: 08 and 16 on the 27th, 3 a day on 28, 29, 1, 2, and 00:00 on the 3rd
    assert info.funding_times == 2 + 3 * 4 + 1
    closes = opens + pd.Timedelta(hours=1)
    paid = closes[rate != 0]
    assert set(paid.hour) == {0, 8, 16}
    assert pd.Timestamp("2024-02-29 16:00", tz="UTC") in paid and pd.Timestamp("2024-03-01 00:00", tz="UTC") in paid
    assert rate.sum() == pytest.approx(15 * 0.0001)


def test_daily_bars_collect_three_funding_times() -> None:
    opens = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    rate, info = C.funding_per_bar(opens, pd.Timedelta(days=1), FundingSection(rate_per_interval=0.0002))
    assert rate.tolist() == pytest.approx([0.0006] * 5)


def test_funding_series_gap_is_an_error_unless_filled() -> None:
    opens = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    times = pd.date_range("2024-01-01 08:00", periods=4, freq="8h", tz="UTC")
    series = pd.Series([0.0001, 0.0002, 0.0003, 0.0004], index=times)
    with pytest.raises(DataError, match="no funding rate for funding time 2024-01-02 16:00"):
        C.funding_per_bar(opens, pd.Timedelta(hours=1), FundingSection(source="series"), series=series, series_label="f.parquet")
    rate, info = C.funding_per_bar(
        opens, pd.Timedelta(hours=1), FundingSection(source="series", fill_rate_per_interval=0.0), series=series
    )
    assert info.filled == 2 and rate.sum() == pytest.approx(0.001)


def test_formula_funding_is_the_clamped_premium() -> None:
    opens = pd.date_range("2024-01-01", periods=24, freq="h", tz="UTC")
    cfg = FundingSection(source="formula", interest_per_interval=0.0001, clamp_per_interval=0.0005)
    rate, _ = C.funding_per_bar(opens, pd.Timedelta(hours=1), cfg, premium=0.002)
    # premium 0.2 % + clamp(0.01 % - 0.2 %, -0.05 %, 0.05 %) = 0.2 % - 0.05 % = 0.15 % per 8 h
    assert rate[rate != 0] == pytest.approx([0.0015] * 3)


def test_a_replay_ending_inside_a_roll_window_holds_the_next_contract() -> None:
    # ends 2023-12-28, inside the roll window of the 2023-12-29 contract (3 days before expiry)
    close = pd.date_range("2023-12-01", "2023-12-28", freq="D", tz="UTC") + pd.Timedelta(days=1)
    book = C.modelled_quarterly(close, np.full(len(close), 1000.0), 0.05)
    sched = C.roll_schedule(close, book, RollSection(days_before_expiry=3, hour_utc=8))
    assert book.labels[sched.c0[-1]] == "2024-03-29T08:00Z"
    assert np.isfinite(book.px[np.arange(len(close)), sched.c0]).all()


# --------------------------------------------------------------------------- basis series


def _basis_file(path, days: list[str], basis: list[float], dte: list[float], hour: int = 21):
    """A CME-like basis file: one row per trade date, observed at ``hour`` UTC that day."""
    ts = pd.DatetimeIndex(days, tz="UTC")
    frame = pd.DataFrame(
        {
            "ts": ts,
            "obs_ts": ts + pd.Timedelta(hours=hour),
            "days_to_expiry": dte,
            "basis_ann": basis,
        }
    )
    frame.to_parquet(path, index=False)
    return path


def test_series_basis_is_the_last_value_observed_at_or_before_the_close(tmp_path) -> None:
    # Mon..Fri values, weekend missing, one near-expiry row (dte 5 <= 7) dropped, one missing basis
    path = _basis_file(
        tmp_path / "basis.parquet",
        ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08", "2024-03-11"],
        [0.10, -0.02, 0.50, np.nan, 0.06, 0.08],
        [30.0, 29.0, 5.0, 27.0, 26.0, 23.0],
    )
    series = C.load_basis_series(path, min_days_to_expiry=7.0)
    assert series.rows_total == 6 and series.rows_kept == 4
    # before the first observation (Mon 21:00) there is no basis -> a bar closing 20:00 is refused
    with pytest.raises(DataError, match="no basis observed at or before the first bar"):
        C.basis_per_bar(_hourly("2024-03-04 19:00", 1), series)
    close = _hourly("2024-03-04 20:00", 8)  # closes 2024-03-04 21:00 .. 2024-03-12 20:00
    b = C.basis_per_bar(close, series)
    at = {c: v for c, v in zip(close, b)}
    T = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    assert at[T("2024-03-04 21:00")] == 0.10          # observed exactly at the close: usable
    assert at[T("2024-03-05 20:00")] == 0.10          # Tuesday's value not yet known
    assert at[T("2024-03-05 21:00")] == -0.02
    assert at[T("2024-03-06 23:00")] == -0.02         # Wednesday dropped (5 days to expiry)
    assert at[T("2024-03-07 22:00")] == -0.02         # Thursday has no basis
    assert at[T("2024-03-08 21:00")] == 0.06
    assert at[T("2024-03-10 12:00")] == 0.06          # weekend: forward filled
    assert at[T("2024-03-11 21:00")] == 0.08
    # the futures price follows the series: F = I * exp(b_t * tau)
    idx = np.linspace(1000.0, 1200.0, len(close))
    book = C.modelled_quarterly(close, idx, b, source="series")
    k = book.labels.index("2024-03-29T08:00Z")
    exp = pd.Timestamp("2024-03-29 08:00", tz="UTC")
    for when, bt in ((T("2024-03-05 21:00"), -0.02), (T("2024-03-09 00:00"), 0.06)):
        t = close.get_loc(when)
        tau = (exp - when) / pd.Timedelta(days=365)
        assert book.px[t, k] == pytest.approx(idx[t] * np.exp(bt * tau), rel=1e-12)
    assert book.source == "series"


def test_a_stale_or_bad_basis_series_is_refused(tmp_path) -> None:
    path = _basis_file(tmp_path / "b.parquet", ["2024-03-04", "2024-03-05"], [0.1, 0.1], [30.0, 29.0])
    series = C.load_basis_series(path)
    close = _hourly("2024-03-05 00:00", 20)
    with pytest.raises(DataError, match="does not cover the replay"):
        C.basis_per_bar(close, series, max_stale_days=10)
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"obs_ts": pd.DatetimeIndex(["2024-01-01"]), "basis_ann": [0.1], "days_to_expiry": [30.0]}).to_parquet(bad)
    with pytest.raises(DataError, match="UTC"):
        C.load_basis_series(bad)
    near = _basis_file(tmp_path / "near.parquet", ["2024-03-04"], [0.1], [3.0])
    with pytest.raises(DataError, match="no row with a basis"):
        C.load_basis_series(near)


def _synthetic_basis(path: Path, seed: int = 11) -> pd.DataFrame:
    """Daily basis observations at 21:00 UTC on weekdays, 2023-12-25 .. 2024-04-05 (seeded)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2023-12-25", "2024-04-05", tz="UTC")
    frame = pd.DataFrame({
        "ts": days, "obs_ts": days + pd.Timedelta(hours=21), "days_to_expiry": 30.0,
        "basis_ann": rng.normal(0.06, 0.08, len(days)),
    })
    frame.to_parquet(path, index=False)
    return frame


def test_series_basis_has_no_look_ahead_and_is_recorded(tmp_path: Path) -> None:
    """Perturb every basis value observed after bar k's close: ledger rows up to k unchanged."""
    import hashlib

    prices = write_synthetic_prices(tmp_path / "prices.parquet")
    frame = _synthetic_basis(tmp_path / "basis.parquet")
    futures = {"basis": "series", "basis_file": "basis.parquet"}
    result = run(synthetic_config(prices, futures=futures))
    base = result.ledger
    basis = result.summary["futures"]["basis"]
    assert basis["source"] == "series" and basis["is_proxy"] and basis["file"] == "basis.parquet"
    assert basis["sha256"] == hashlib.sha256((tmp_path / "basis.parquet").read_bytes()).hexdigest()
    assert {"role": "basis", "path": "basis.parquet", "sha256": basis["sha256"]} in result.summary["inputs"]
    cut = pd.Timestamp("2024-02-20 20:00", tz="UTC")  # closes 21:00, when that day's value is observed
    later = frame["obs_ts"] > cut + pd.Timedelta(hours=1)
    frame.loc[later, "basis_ann"] = frame.loc[later, "basis_ann"] * -3.0 + 0.2
    other = tmp_path / "other"
    other.mkdir()
    frame.to_parquet(other / "basis.parquet", index=False)
    (other / "prices.parquet").write_bytes(prices.read_bytes())
    moved = run(synthetic_config(other / "prices.parquet", futures=futures)).ledger
    past_a = base[base["ts"] <= cut].reset_index(drop=True)
    past_b = moved[moved["ts"] <= cut].reset_index(drop=True)
    assert len(past_a) > 1000
    pd.testing.assert_frame_equal(past_a, past_b)
    assert not base[base["ts"] > cut]["pnl_basis"].equals(moved[moved["ts"] > cut]["pnl_basis"])
    constant = run(synthetic_config(prices)).summary["futures"]["basis"]
    assert constant["source"] == "constant" and not constant["is_proxy"] and constant["file"] is None


def test_a_monthly_expiry_price_file_rolls_on_its_own_expiries(tmp_path) -> None:
    """CME-like monthly contracts (last Friday of each month, here at 15:00 UTC) on daily bars:
    contract ids and roll bars checked by hand."""
    ts = pd.date_range("2024-01-01", "2024-04-30", freq="D", tz="UTC")  # bar open times
    expiries = [pd.Timestamp(d, tz="UTC") + pd.Timedelta(hours=15) for d in ("2024-01-26", "2024-02-23", "2024-03-29", "2024-04-26", "2024-05-31")]
    rows = []
    for e in expiries:
        for t in ts:
            if t <= e and t >= e - pd.Timedelta(days=70):
                rows.append((t, e, 100.0 + (e - t).days * 0.1))
    frame = pd.DataFrame(rows, columns=["ts", "expiry", "close"])
    path = tmp_path / "monthly.parquet"
    frame.to_parquet(path, index=False)
    close = ts + pd.Timedelta(days=1)
    idx = np.full(len(ts), 100.0)
    book = C.quarterly_from_prices(close, idx, path)
    assert book.labels == tuple(e.strftime("%Y-%m-%dT%H:%MZ") for e in expiries)
    # settlement bar: the last bar closing at or before the expiry (the bar opening the day before)
    assert [ts[b] for b in book.exp_bar[:4]] == [pd.Timestamp(d, tz="UTC") for d in ("2024-01-25", "2024-02-22", "2024-03-28", "2024-04-25")]
    sched = C.roll_schedule(close, book, RollSection(days_before_expiry=3, hour_utc=0, grace_bars=1))
    # roll of contract k: first bar closing at or after day(expiry) - 3 days 00:00 -> the bar opening 4 days before
    roll_bars = np.flatnonzero(np.diff(sched.c0)) + 1
    assert [ts[b] for b in roll_bars] == [pd.Timestamp(d, tz="UTC") for d in ("2024-01-22", "2024-02-19", "2024-03-25", "2024-04-22")]
    assert sched.c0[0] == 0 and sched.c0[-1] == 4
    assert [int(sched.c0[b]) for b in roll_bars] == [1, 2, 3, 4]
    C.check_coverage(book, sched, close)
