"""Tests of the AI-token index builder (backtest.index, backtest.index_kernels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.errors import ConfigError, DataError
from backtest.index import (
    DEFAULT_AI_BASKET,
    IndexResult,
    IndexSpec,
    build_index,
    default_index_spec,
    read_market_caps,
)
from backtest.index_kernels import (
    STATUS_OK,
    STATUS_UNPRICED_HOLDING,
    _index_level_reference,
    cap_weights,
    index_level_nb,
)

NAN = np.nan


def _panel(columns: dict[str, list[float]], start: str, freq: str) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in columns.items()}, index=index)


def _random_panel(rng: np.random.Generator, n_bars: int, n_sym: int, freq: str = "h") -> pd.DataFrame:
    """Random-walk closes with random listings and delistings; two symbols live throughout."""
    index = pd.date_range("2024-01-03 05:00", periods=n_bars, freq=freq, tz="UTC")
    steps = rng.normal(0.0, 0.02, size=(n_bars, n_sym))
    prices = 10.0 * np.exp(np.cumsum(steps, axis=0)) * rng.uniform(0.5, 50.0, size=n_sym)
    for col in range(2, n_sym):
        first = int(rng.integers(0, n_bars // 3))
        last = int(rng.integers(n_bars // 3, n_bars)) if rng.random() < 0.6 else n_bars - 1
        prices[:first, col] = NAN
        prices[last + 1 :, col] = NAN
    return pd.DataFrame(prices, index=index, columns=[f"S{i}" for i in range(n_sym)])


def _random_caps(rng: np.random.Generator, close: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    """Market caps at random times off the grid, starting before the panel."""
    span = (close.index[-1] - close.index[0]).total_seconds()
    offsets = np.sort(rng.uniform(0.0, span, size=n_rows))
    times = close.index[0] - pd.Timedelta(minutes=17) + pd.to_timedelta(offsets, unit="s")
    times = times.insert(0, close.index[0] - pd.Timedelta(days=1))
    values = rng.uniform(1e6, 1e9, size=(len(times), close.shape[1]))
    return pd.DataFrame(values, index=times, columns=close.columns)


def _reference_from_result(close: pd.DataFrame, res: IndexResult, high: pd.DataFrame | None = None):
    """Re-run the pure-Python reference loop on the plan recorded in a result."""
    cols = list(res.spec.constituents)
    prices = close[cols].to_numpy(dtype=float)
    highs = np.full(prices.shape, NAN) if high is None else high.reindex(columns=cols).to_numpy(dtype=float)
    rows = np.full(len(close), -1, dtype=np.int64)
    rows[close.index.get_indexer(res.weights.index)] = np.arange(len(res.weights))
    start = int(close.index.get_loc(res.start))
    return _index_level_reference(prices, highs, rows, res.weights.to_numpy(), start, res.spec.base_level)


# --------------------------------------------------------------------------- spec


def test_default_spec() -> None:
    spec = default_index_spec()
    assert spec.constituents == DEFAULT_AI_BASKET
    assert "FET" not in spec.constituents
    assert {"RNDR", "RENDER", "OCEAN", "AGIX", "TAO"} <= set(spec.constituents)
    assert (spec.weighting, spec.rebalance, spec.min_history_days) == ("equal", "monthly", 30)
    assert (spec.max_weight, spec.min_constituents) == (0.30, 3)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"constituents": ()}, "index.constituents"),
        ({"constituents": "NEAR"}, "index.constituents"),
        ({"constituents": ("A", "B", "A")}, "index.constituents"),
        ({"constituents": ("A", "")}, "index.constituents"),
        ({"weighting": "cap"}, "index.weighting"),
        ({"rebalance": "hourly"}, "index.rebalance"),
        ({"min_history_days": -1}, "index.min_history_days"),
        ({"min_history_days": 2.5}, "index.min_history_days"),
        ({"vol_lookback_days": 0}, "index.vol_lookback_days"),
        ({"min_constituents": 0}, "index.min_constituents"),
        ({"min_constituents": 5}, "index.min_constituents"),
        ({"max_weight": 0.0}, "index.max_weight"),
        ({"max_weight": 1.5}, "index.max_weight"),
        ({"max_weight": 0.2}, "index.max_weight"),  # 4 names x 0.2 < 1: never feasible
        ({"base_level": 0.0}, "index.base_level"),
        ({"base_level": float("inf")}, "index.base_level"),
    ],
)
def test_spec_validation(kwargs: dict, key: str) -> None:
    args = {"constituents": ("A", "B", "C", "D"), "min_constituents": 2} | kwargs
    with pytest.raises(ConfigError) as info:
        IndexSpec(**args)
    assert info.value.key == key


def test_spec_accepts_a_list_and_stores_a_tuple() -> None:
    spec = IndexSpec(["A", "B", "C"], max_weight=0.34)  # type: ignore[arg-type]
    assert spec.constituents == ("A", "B", "C")
    hash(spec)


# --------------------------------------------------------------------------- hand computations


def test_hand_computed_entry_exit_and_units() -> None:
    # Daily bars from Sunday 2023-12-31; weekly schedule: first bar (Sun), Mon 1 Jan (t=1), Mon 8 Jan (t=8).
    a = [10, 10, 11, 12, 12, 10, 9, 10, 11, 12, 12, 13]
    b = [20, 20, 22, 22, 24, 25, 24, 20, 20, 22, 21, 20]
    c = [NAN, NAN, 5, 5, 6, 5, 4, 5, 5, 4, 5, 6]  # listed t=2; 1 day of history from t=3; next schedule t=8
    d = [40, 40, 38, 40, 42, 44] + [NAN] * 6  # data ends after t=5 -> exits at t=6
    close = _panel({"A": a, "B": b, "C": c, "D": d}, "2023-12-31", "D")
    high = close * 1.05
    high.iloc[9, 1] = NAN  # B's high unknown at t=9
    spec = IndexSpec(("A", "B", "C", "D"), rebalance="weekly", min_history_days=1, min_constituents=3)
    res = build_index(close, spec, high=high)
    ts = close.index

    # t=0: nobody has 1 day of history; t=1: A, B, D have exactly 1 day -> start, equal thirds.
    assert res.start == ts[1]
    i1 = 1000.0
    qa1, qb1, qd1 = i1 / 3 / 10, i1 / 3 / 20, i1 / 3 / 40
    i2 = qa1 * 11 + qb1 * 22 + qd1 * 38  # = 1000/3 * (1.10 + 1.10 + 0.95) = 1050
    i3 = qa1 * 12 + qb1 * 22 + qd1 * 40  # = 1100
    i4 = qa1 * 12 + qb1 * 24 + qd1 * 42  # = 1150
    i5 = qa1 * 10 + qb1 * 25 + qd1 * 44  # = 1116.67
    # t=6: D has no price -> valued at its last price 44, then A and B rebalance to 1/2 each.
    i6 = qa1 * 9 + qb1 * 24 + qd1 * 44  # = 1066.67
    qa6, qb6 = i6 / 2 / 9, i6 / 2 / 24
    i7 = qa6 * 10 + qb6 * 20
    i8 = qa6 * 11 + qb6 * 20
    # t=8 (Monday): C (6 days of history) enters; thirds again.
    qa8, qb8, qc8 = i8 / 3 / 11, i8 / 3 / 20, i8 / 3 / 5
    i9 = qa8 * 12 + qb8 * 22 + qc8 * 4
    i10 = qa8 * 12 + qb8 * 21 + qc8 * 5
    i11 = qa8 * 13 + qb8 * 20 + qc8 * 6
    assert (i2, i3, i4) == pytest.approx((1050.0, 1100.0, 1150.0), rel=1e-14)
    expected = [NAN, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11]
    np.testing.assert_allclose(res.level.to_numpy(), expected, rtol=1e-13)
    assert res.level.index.equals(ts)

    assert list(res.weights.index) == [ts[1], ts[6], ts[8]]
    third, half = 1 / 3, 1 / 2
    np.testing.assert_allclose(
        res.weights.to_numpy(), [[third, third, 0, third], [half, half, 0, 0], [third, third, third, 0]], rtol=1e-15
    )
    np.testing.assert_allclose(
        res.units.to_numpy(), [[qa1, qb1, 0, qd1], [qa6, qb6, 0, 0], [qa8, qb8, qc8, 0]], rtol=1e-13
    )
    assert list(res.weights.columns) == ["A", "B", "C", "D"]

    ev = res.events
    assert list(zip(ev["ts"], ev["symbol"], ev["event"])) == [
        (ts[1], "A", "enter"),
        (ts[1], "B", "enter"),
        (ts[1], "D", "enter"),
        (ts[6], "D", "exit"),
        (ts[8], "C", "enter"),
    ]
    assert ev["reason"].iloc[3].startswith("data ended")
    assert ev["reason"].iloc[4] == "history >= 1 days"

    # Highs: units held over the bar times 1.05 x close; D at its frozen value at t=6; B's high unknown at t=9.
    expected_high = [NAN, NAN, 1.05 * i2, 1.05 * i3, 1.05 * i4, 1.05 * i5]
    expected_high += [1.05 * (qa1 * 9 + qb1 * 24) + qd1 * 44, 1.05 * i7, 1.05 * i8, NAN, 1.05 * i10, 1.05 * i11]
    np.testing.assert_allclose(res.high.to_numpy(), expected_high, rtol=1e-13)


def test_hand_computed_market_cap_with_cap_and_asof_lookup() -> None:
    # 6-hourly bars over 2 days, daily schedule: rebalances at t=0 and t=4.
    prices = {"X": [10, 11, 12, 11, 10, 9, 10, 12], "Y": [5, 5, 6, 6, 7, 7, 6, 6], "Z": [2.0] * 8}
    close = _panel(prices, "2024-03-01", "6h")
    ts = close.index
    caps = pd.DataFrame(
        {"X": [500.0, 100.0, 1e6], "Y": [300.0, 100.0, 1.0], "Z": [200.0, 200.0, 1.0]},
        index=pd.DatetimeIndex([ts[0], ts[4] - pd.Timedelta(hours=1), ts[4] + pd.Timedelta(hours=1)]),
    )
    spec = IndexSpec(("X", "Y", "Z"), weighting="market_cap", rebalance="daily", min_history_days=0, max_weight=0.4)
    res = build_index(close, spec, market_caps=caps)

    # t=0: caps 500/300/200 -> 0.5/0.3/0.2; X capped at 0.4, its excess 0.1 goes to Y and Z pro rata 0.3 : 0.2.
    w0 = [0.4, 0.3 + 0.1 * 0.3 / 0.5, 0.2 + 0.1 * 0.2 / 0.5]  # = 0.4, 0.36, 0.24
    # t=4: latest row <= t4 is the one an hour earlier (100/100/200 -> 0.25/0.25/0.5), never the later one.
    # Z capped at 0.4; excess 0.1 split equally -> 0.3, 0.3, 0.4.
    w4 = [0.25 + 0.05, 0.25 + 0.05, 0.4]
    np.testing.assert_allclose(res.weights.to_numpy(), [w0, w4], rtol=1e-14)
    assert w0 == pytest.approx([0.4, 0.36, 0.24], rel=1e-14)

    q0 = np.array(w0) * 1000.0 / [10, 5, 2]
    i = [1000.0] + [float(q0 @ close.iloc[t].to_numpy()) for t in (1, 2, 3, 4)]
    assert i[1] == pytest.approx(0.4 * 1000 / 10 * 11 + 0.36 * 1000 / 5 * 5 + 0.24 * 1000 / 2 * 2, rel=1e-14)
    q4 = np.array(w4) * i[4] / [10, 7, 2]
    i += [float(q4 @ close.iloc[t].to_numpy()) for t in (5, 6, 7)]
    np.testing.assert_allclose(res.level.to_numpy(), i, rtol=1e-13)
    np.testing.assert_allclose(res.units.to_numpy(), [q0, q4], rtol=1e-13)


def test_cap_redistribution_by_hand() -> None:
    np.testing.assert_allclose(cap_weights(np.array([0.5, 0.3, 0.2]), 0.4), [0.4, 0.36, 0.24], rtol=1e-15)
    # Unnormalised input and zeros (not held) are fine.
    np.testing.assert_allclose(cap_weights(np.array([5.0, 0.0, 3.0, 2.0]), 0.4), [0.4, 0, 0.36, 0.24], rtol=1e-15)


def test_iterative_cap_pushes_a_second_name_over() -> None:
    # Round 1: A -> 0.4, the other 0.6 split 0.35 : 0.05 : 0.05 -> B = 0.6 * 0.35 / 0.45 = 0.467 > 0.4.
    # Round 2: B -> 0.4, the last 0.2 split 0.05 : 0.05 -> C = D = 0.1.
    out = cap_weights(np.array([0.55, 0.35, 0.05, 0.05]), 0.4)
    np.testing.assert_allclose(out, [0.4, 0.4, 0.1, 0.1], rtol=1e-14)
    assert out.max() <= 0.4
    # An exactly binding cap (n * cap == 1) gives equal weights.
    np.testing.assert_allclose(cap_weights(np.array([0.7, 0.1, 0.1, 0.1]), 0.25), [0.25] * 4, rtol=1e-15)


def test_iterative_cap_through_build_index() -> None:
    close = _panel({s: [1.0, 1.1, 1.2] for s in "ABCD"}, "2024-01-01", "D")
    caps = pd.DataFrame({"A": [55.0], "B": [35.0], "C": [5.0], "D": [5.0]}, index=close.index[:1])
    spec = IndexSpec(tuple("ABCD"), weighting="market_cap", rebalance="quarterly", min_history_days=0, max_weight=0.4)
    res = build_index(close, spec, market_caps=caps)
    np.testing.assert_allclose(res.weights.to_numpy(), [[0.4, 0.4, 0.1, 0.1]], rtol=1e-14)


def test_infeasible_cap_raises() -> None:
    with pytest.raises(ValueError, match="cannot hold with 2"):
        cap_weights(np.array([0.5, 0.5, 0.0]), 0.4)
    # Three names capped at 0.4 are fine until one exits and leaves two (2 x 0.4 < 1).
    prices = {"A": [1.0, 1.0, 1.1, 1.1, 1.1], "B": [2.0, 2.1, 2.2, 2.3, 2.4], "C": [3.0, 3.1, NAN, NAN, NAN]}
    close = _panel(prices, "2024-01-01", "D")
    spec = IndexSpec(("A", "B", "C"), rebalance="monthly", min_history_days=0, max_weight=0.4)
    with pytest.raises(ConfigError, match="only 2 constituents") as info:
        build_index(close, spec)
    assert info.value.key == "index.max_weight"
    assert "2024-01-03" in str(info.value)


# --------------------------------------------------------------------------- weighting rules


def test_inverse_vol_weights_equal_numpy_sigma_on_the_window(rng: np.random.Generator) -> None:
    close = _random_panel(rng, n_bars=24 * 20, n_sym=5)
    spec = IndexSpec(
        tuple(close.columns),
        weighting="inverse_vol",
        rebalance="daily",
        min_history_days=2,
        vol_lookback_days=3,
        min_constituents=2,
    )
    res = build_index(close, spec)
    assert len(res.weights) > 15
    for r, row in res.weights.iterrows():
        held = row[row > 0].index
        window = close.loc[r - pd.Timedelta(days=3) : r, held]  # closes at ts_r - 3 days .. ts_r, inclusive
        assert window.index[-1] == r
        inv_sigma = []
        for symbol in held:
            rets = np.diff(np.log(window[symbol].to_numpy()))
            rets = rets[~np.isnan(rets)]
            inv_sigma.append(1.0 / np.std(rets, ddof=1))
        np.testing.assert_allclose(row[held].to_numpy(), np.array(inv_sigma) / np.sum(inv_sigma), rtol=1e-10)
    assert (res.events["event"] == "exit").any()  # exit rebalances are covered too


def test_inverse_vol_needs_two_returns() -> None:
    close = _panel({s: [1.0, 1.1, 1.05, 1.2] for s in "ABC"}, "2024-01-01", "D")
    spec = IndexSpec(tuple("ABC"), weighting="inverse_vol", rebalance="daily", min_history_days=0)
    with pytest.raises(ConfigError, match="at least 2 log returns") as info:
        build_index(close, spec)
    assert info.value.key == "index.min_history_days"


def test_market_cap_asof_never_uses_a_later_row() -> None:
    close = _panel({s: [1.0 + 0.01 * t for t in range(48)] for s in "ABC"}, "2024-05-01", "h")
    ts = close.index
    # A row exactly at the second rebalance (t=24) is used; rows one second later are not.
    caps = pd.DataFrame(
        {"A": [1.0, 2.0, 100.0], "B": [1.0, 1.0, 1.0], "C": [2.0, 1.0, 1.0]},
        index=pd.DatetimeIndex([ts[0] - pd.Timedelta(hours=3), ts[24], ts[24] + pd.Timedelta(seconds=1)]),
    )
    spec = IndexSpec(tuple("ABC"), weighting="market_cap", rebalance="daily", min_history_days=0)
    res = build_index(close, spec, market_caps=caps)
    np.testing.assert_allclose(res.weights.to_numpy(), [[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]], rtol=1e-15)


def test_market_cap_asof_per_symbol_skips_missing_values() -> None:
    close = _panel({s: [1.0, 1.0, 1.0] for s in "ABC"}, "2024-05-01", "D")
    caps = pd.DataFrame(
        {"A": [3.0, NAN], "B": [NAN, 1.0], "C": [5.0, 1.0]},
        index=pd.DatetimeIndex([close.index[0] - pd.Timedelta(days=2), close.index[0] - pd.Timedelta(days=1)]),
    )
    spec = IndexSpec(tuple("ABC"), weighting="market_cap", rebalance="quarterly", min_history_days=0)
    res = build_index(close, spec, market_caps=caps)
    np.testing.assert_allclose(res.weights.to_numpy(), [[0.6, 0.2, 0.2]], rtol=1e-15)


def test_missing_market_cap_errors_naming_symbol_and_time() -> None:
    close = _panel({s: [1.0, 1.0, 1.0] for s in "ABC"}, "2024-05-01", "D")
    later = pd.DataFrame({"A": [1.0], "B": [1.0], "C": [1.0]}, index=close.index[1:2])
    spec = IndexSpec(tuple("ABC"), weighting="market_cap", rebalance="daily", min_history_days=0)
    with pytest.raises(DataError, match="no market cap at or before 2024-05-01 00:00:00") as info:
        build_index(close, spec, market_caps=later)  # only a later row exists
    assert info.value.column == "A"
    no_column = pd.DataFrame({"A": [1.0], "B": [1.0]}, index=close.index[:1])
    with pytest.raises(DataError, match="constituent C") as info:
        build_index(close, spec, market_caps=no_column)
    assert info.value.column == "C"


def test_market_caps_only_with_market_cap_weighting() -> None:
    close = _panel({s: [1.0, 1.0] for s in "ABC"}, "2024-05-01", "D")
    caps = pd.DataFrame({s: [1.0] for s in "ABC"}, index=close.index[:1])
    with pytest.raises(ConfigError, match="needs market caps"):
        build_index(close, IndexSpec(tuple("ABC"), weighting="market_cap", min_history_days=0))
    with pytest.raises(ConfigError, match="would be ignored"):
        build_index(close, IndexSpec(tuple("ABC"), min_history_days=0), market_caps=caps)


# --------------------------------------------------------------------------- schedule, start, exits


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("weekly", ["2024-01-03 05:00"] + [f"2024-{d}" for d in ("01-08", "01-15", "01-22", "01-29", "02-05", "02-12")]),
        ("monthly", ["2024-01-03 05:00"] + [f"2024-{m:02d}-01" for m in range(2, 8)]),
        ("quarterly", ["2024-01-03 05:00", "2024-04-01", "2024-07-01"]),
    ],
)
def test_rebalance_bars_are_first_bars_of_each_period(schedule: str, expected: list[str]) -> None:
    hours = 24 * 40 if schedule == "weekly" else 24 * 200
    index = pd.date_range("2024-01-03 05:00", periods=hours, freq="h", tz="UTC")
    close = pd.DataFrame({s: np.linspace(1.0, 2.0, hours) for s in "ABC"}, index=index)
    res = build_index(close, IndexSpec(tuple("ABC"), rebalance=schedule, min_history_days=0))  # type: ignore[arg-type]
    assert list(res.weights.index) == list(pd.DatetimeIndex(expected, tz="UTC"))


def test_daily_schedule_and_min_constituents_start() -> None:
    index = pd.date_range("2024-01-01 22:00", periods=24 * 5, freq="h", tz="UTC")
    close = pd.DataFrame({s: np.linspace(1.0, 2.0, len(index)) for s in "ABC"}, index=index)
    close.loc[: "2024-01-02 23:00", "C"] = NAN  # C listed 2024-01-03 00:00
    # Two names would start at the first bar; three need C, which has 1 day of history only on 2024-01-04.
    res = build_index(close, IndexSpec(tuple("ABC"), rebalance="daily", min_history_days=1, min_constituents=3))
    assert res.start == pd.Timestamp("2024-01-04", tz="UTC")
    assert res.level[: res.start].iloc[:-1].isna().all()
    assert res.level[res.start] == 1000.0
    assert list(res.weights.index) == list(pd.date_range("2024-01-04", "2024-01-06", freq="D", tz="UTC"))


def test_no_start_and_no_constituent_left_raise() -> None:
    close = _panel({"A": [1.0, 1.1, 1.2], "B": [1.0, 1.0, 1.0], "C": [NAN, NAN, NAN]}, "2024-01-01", "D")
    with pytest.raises(DataError, match="at least 3 eligible"):
        build_index(close, IndexSpec(("A", "B", "C"), rebalance="daily", min_history_days=0))
    close = _panel({"A": [1.0, 1.1, NAN], "B": [1.0, NAN, NAN]}, "2024-01-01", "D")
    with pytest.raises(DataError, match="no constituent left at 2024-01-03"):
        build_index(close, IndexSpec(("A", "B"), min_history_days=0, min_constituents=2))


# --------------------------------------------------------------------------- input validation


def test_close_validation_errors() -> None:
    good = _panel({"A": [1.0, 1.1, 1.2], "B": [2.0, 2.1, 2.2]}, "2024-01-01", "D")
    spec = IndexSpec(("A", "B"), min_history_days=0, min_constituents=2)
    gap = good.copy()
    gap.iloc[1, 0] = NAN
    with pytest.raises(DataError, match="inside the symbol's life") as info:
        build_index(gap, spec)
    assert (info.value.column, info.value.row) == ("A", 1)
    neg = good.copy()
    neg.iloc[2, 1] = -1.0
    with pytest.raises(DataError, match="finite positive close") as info:
        build_index(neg, spec)
    assert (info.value.column, info.value.row) == ("B", 2)
    with pytest.raises(DataError, match="time zone"):
        build_index(good.tz_localize(None), spec)
    with pytest.raises(DataError, match="regular grid"):
        build_index(good.set_axis(pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-04"], tz="UTC")), spec)
    with pytest.raises(DataError, match="missing from the close panel") as info:
        build_index(good[["A"]], spec)
    assert info.value.column == "B"
    high = good * 1.01
    high.iloc[1, 0] = 1.0
    with pytest.raises(DataError, match="below the close") as info:
        build_index(good, spec, high=high)
    assert (info.value.column, info.value.row) == ("A", 1)


def test_non_utc_index_is_converted() -> None:
    close = _panel({s: [1.0, 1.1, 1.2, 1.3] for s in "ABC"}, "2024-01-01", "6h")
    spec = IndexSpec(tuple("ABC"), rebalance="daily", min_history_days=0)
    res_utc = build_index(close, spec)
    res_cet = build_index(close.tz_convert("Europe/Berlin"), spec)
    assert res_cet.level.index.equals(res_utc.level.index)
    assert list(res_cet.weights.index) == list(res_utc.weights.index)  # UTC days, not Berlin days


# --------------------------------------------------------------------------- no look-ahead


@pytest.mark.parametrize("weighting", ["equal", "inverse_vol", "market_cap"])
def test_no_lookahead_perturbing_the_future(rng: np.random.Generator, weighting: str) -> None:
    close = _random_panel(rng, n_bars=24 * 30, n_sym=6)
    spec = IndexSpec(
        tuple(close.columns),
        weighting=weighting,  # type: ignore[arg-type]
        rebalance="daily",
        min_history_days=2,
        max_weight=0.5,
        min_constituents=2,
    )
    caps = _random_caps(rng, close, 60) if weighting == "market_cap" else None
    full = build_index(close, spec, market_caps=caps)
    for k in rng.integers(24 * 4, 24 * 28, size=4):
        cut = close.index[k]
        bent = close.copy()
        bent.iloc[k + 1 :] *= rng.lognormal(0.0, 0.3, size=bent.iloc[k + 1 :].shape)
        bent_caps = None
        if caps is not None:
            bent_caps = caps.copy()
            later = bent_caps.index > cut
            bent_caps.loc[later] *= rng.lognormal(0.0, 1.0, size=(int(later.sum()), caps.shape[1]))
        other = build_index(bent, spec, market_caps=bent_caps)
        np.testing.assert_array_equal(other.level.iloc[: k + 1].to_numpy(), full.level.iloc[: k + 1].to_numpy())
        past = full.weights.index <= cut
        pd.testing.assert_frame_equal(other.weights[past], full.weights[past])
        pd.testing.assert_frame_equal(other.units[past], full.units[past])
        # ... while the future did change (so the comparison above can fail).
        assert not np.allclose(other.level.iloc[k + 2 :].to_numpy(), full.level.iloc[k + 2 :].to_numpy())

        # Truncating the panel at k (the future, delistings included, unknown) gives the same past.
        short = build_index(close.iloc[: k + 1], spec, market_caps=None if caps is None else caps[caps.index <= cut])
        np.testing.assert_array_equal(short.level.to_numpy(), full.level.iloc[: k + 1].to_numpy())
        pd.testing.assert_frame_equal(short.weights, full.weights[past])


# --------------------------------------------------------------------------- kernel vs reference


def test_kernel_matches_reference_on_random_panels(rng: np.random.Generator) -> None:
    weightings = ["equal", "inverse_vol", "market_cap"]
    schedules = ["daily", "weekly", "monthly"]
    for trial in range(24):
        schedule = schedules[trial % 2 if trial % 4 else 2]
        n_days = int(rng.integers(35, 100) if schedule == "monthly" else rng.integers(10, 70))
        close = _random_panel(rng, n_bars=24 * n_days, n_sym=int(rng.integers(3, 9)))
        high = close * rng.uniform(1.0, 1.05, size=close.shape)
        high = high.mask(rng.random(close.shape) < 0.01)
        weighting = weightings[trial % 3]
        spec = IndexSpec(
            tuple(close.columns),
            weighting=weighting,  # type: ignore[arg-type]
            rebalance=schedule,  # type: ignore[arg-type]
            min_history_days=int(rng.integers(1, 5)),
            min_constituents=2,
        )
        caps = _random_caps(rng, close, 40) if weighting == "market_cap" else None
        res = build_index(close, spec, high=high, market_caps=caps)
        level, level_high, units = _reference_from_result(close, res, high)
        np.testing.assert_allclose(res.level.to_numpy(), level, rtol=1e-12)
        np.testing.assert_allclose(res.high.to_numpy(), level_high, rtol=1e-12)
        np.testing.assert_allclose(res.units.to_numpy(), units, rtol=1e-12)
        np.testing.assert_allclose(res.weights.sum(axis=1), 1.0, rtol=1e-12)
        known = res.high.notna()
        assert known.sum() > 0.5 * res.level.notna().sum()
        assert (res.high[known] >= res.level[known] * (1 - 1e-12)).all()


def test_kernel_and_reference_flag_an_unpriced_holding() -> None:
    close = np.array([[1.0, 2.0], [1.1, NAN], [1.2, NAN]])
    high = np.full(close.shape, NAN)
    rows = np.array([0, -1, -1], dtype=np.int64)  # no rebalance at bar 1 although column 1 lost its price
    weights = np.array([[0.5, 0.5]])
    *_, status = index_level_nb(close, high, rows, weights, 0, 100.0)
    assert tuple(status) == (STATUS_UNPRICED_HOLDING, 1, 1)
    with pytest.raises(ValueError, match="no price at bar 1"):
        _index_level_reference(close, high, rows, weights, 0, 100.0)
    rows[1] = 1
    weights = np.array([[0.5, 0.5], [1.0, 0.0]])
    level, _, units, status = index_level_nb(close, high, rows, weights, 0, 100.0)
    assert status[0] == STATUS_OK
    np.testing.assert_allclose(level, [100.0, 50 / 1.0 * 1.1 + 25 * 2.0, (55 + 50) / 1.1 * 1.2])
    np.testing.assert_allclose(units, [[50.0, 25.0], [105 / 1.1, 0.0]])


# --------------------------------------------------------------------------- market caps file


def test_read_market_caps_csv(tmp_path: Path) -> None:
    path = tmp_path / "caps.csv"
    path.write_text(
        "ts,symbol,market_cap\n"
        "2024-01-02T00:00:00Z,NEAR,5e9\n"
        "2024-01-01T00:00:00Z,NEAR,4e9\n"
        "2024-01-01T00:00:00+00:00,FIL,2e9\n"
    )
    caps = read_market_caps(path)
    assert list(caps.columns) == ["FIL", "NEAR"]
    assert caps.index.tz is not None and str(caps.index.tz) == "UTC"
    assert list(caps.index) == list(pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"))
    np.testing.assert_array_equal(caps["NEAR"].to_numpy(), [4e9, 5e9])
    assert np.isnan(caps["FIL"].iloc[1])


@pytest.mark.parametrize(
    ("body", "column", "row", "match"),
    [
        ("ts,symbol,market_cap\n2024-01-01T00:00:00Z,A,1\n2024-01-02 00:00,A,2\n", "ts", 1, "UTC offset"),
        ("ts,symbol,market_cap\n2024-01-01T00:00:00Z,A,1\n2024-01-02T00:00:00Z,A,-5\n", "market_cap", 1, "positive"),
        ("ts,symbol,market_cap\n2024-01-01T00:00:00Z,A,inf\n", "market_cap", 0, "finite positive"),
        ("ts,symbol,market_cap\n2024-01-01T00:00:00Z,A,1\n2024-01-01T00:00:00Z,,2\n", "symbol", 1, "empty symbol"),
        ("ts,symbol,market_cap\n2024-01-01T00:00:00Z,A,1\n2024-01-01T00:00:00Z,A,2\n", None, 1, "duplicate"),
        ("ts,symbol,market_cap\n2024-13-45T00:00:00Z,A,1\n", "ts", 0, "unreadable timestamp"),
        ("ts,symbol,cap\n2024-01-01T00:00:00Z,A,1\n", None, None, "exactly one of"),
        ("ts,symbol,market_cap,supply\n2024-01-01T00:00:00Z,A,1,1\n", None, None, "exactly one of"),
        ("time,symbol,market_cap\n2024-01-01T00:00:00Z,A,1\n", None, None, "missing column 'ts'"),
    ],
)
def test_read_market_caps_errors(tmp_path: Path, body: str, column: str | None, row: int | None, match: str) -> None:
    path = tmp_path / "caps.csv"
    path.write_text(body)
    with pytest.raises(DataError, match=match) as info:
        read_market_caps(path)
    assert info.value.file == str(path)
    assert (info.value.column, info.value.row) == (column, row)


def test_read_market_caps_supply_parquet(tmp_path: Path) -> None:
    close = _panel({"A": [10.0, 11.0, 12.0, 13.0], "B": [1.0, 2.0, 3.0, 4.0]}, "2024-01-01", "D")
    long = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(["2023-12-31 12:00", "2024-01-02 06:00", "2024-01-01 00:00"], tz="UTC"),
            "symbol": ["A", "A", "B"],
            "supply": [100.0, 200.0, 7.0],
        }
    )
    path = tmp_path / "supply.parquet"
    long.to_parquet(path)
    with pytest.raises(DataError, match="pass close="):
        read_market_caps(path)
    caps = read_market_caps(path, close=close)
    # cap[t] = supply as of t x close[t]: A uses 100 until the 06:00 row on 2 Jan, so 200 from 3 Jan on.
    np.testing.assert_allclose(caps["A"].to_numpy(), [100 * 10, 100 * 11, 200 * 12, 200 * 13])
    np.testing.assert_allclose(caps["B"].to_numpy(), [7 * 1, 7 * 2, 7 * 3, 7 * 4])
    spec = IndexSpec(("A", "B"), weighting="market_cap", rebalance="daily", min_history_days=0, min_constituents=2)
    res = build_index(close, spec, market_caps=caps)
    np.testing.assert_allclose(res.weights["A"].to_numpy(), [1000 / 1007, 1100 / 1114, 2400 / 2421, 2600 / 2628])


def test_read_market_caps_naive_parquet_and_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "caps.parquet"
    pd.DataFrame({"ts": pd.DatetimeIndex(["2024-01-01"]), "symbol": ["A"], "market_cap": [1.0]}).to_parquet(path)
    with pytest.raises(DataError, match="no time zone"):
        read_market_caps(path)
    with pytest.raises(DataError, match="suffix"):
        read_market_caps(tmp_path / "caps.xlsx")
    with pytest.raises(DataError, match="not found"):
        read_market_caps(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def hourly_panel(data_dir: Path) -> pd.DataFrame:
    """The bundled hourly closes, wide, on a full hourly grid, short gaps forward-filled inside each life."""
    long = pd.read_parquet(data_dir / "binance_spot_1h_close.parquet")
    wide = long.pivot(index="ts", columns="symbol", values="close")
    grid = pd.date_range(wide.index[0], wide.index[-1], freq="h")
    return wide.reindex(grid).ffill(limit_area="inside")


def test_default_index_on_real_data(hourly_panel: pd.DataFrame) -> None:
    # Over the hedged coin's life (FET ends 2025-06-13 08:00; most basket coins end an hour or two later).
    panel = hourly_panel.loc[: hourly_panel["FET"].last_valid_index()]
    res = build_index(panel, default_index_spec())
    assert pd.Timestamp("2021-01-01", tz="UTC") < res.start < pd.Timestamp("2021-03-01", tz="UTC")

    ev = res.events
    exits = ev[ev["event"] == "exit"]
    for symbol in ("AGIX", "OCEAN", "RNDR"):
        when = exits.loc[exits["symbol"] == symbol, "ts"]
        assert len(when) == 1 and when.iloc[0] >= pd.Timestamp("2023-12-30", tz="UTC"), symbol
        assert res.weights.loc[res.weights.index > when.iloc[0], symbol].eq(0).all()
    render = ev[(ev["symbol"] == "RENDER") & (ev["event"] == "enter")]["ts"]
    assert len(render) == 1
    assert render.iloc[0] >= pd.Timestamp("2024-07-26 08:00", tz="UTC") + pd.Timedelta(days=30)
    assert res.weights.loc[: render.iloc[0]].iloc[:-1]["RENDER"].eq(0).all()

    assert res.weights.to_numpy().max() <= 0.30 + 1e-12
    np.testing.assert_allclose(res.weights.sum(axis=1), 1.0, rtol=1e-12)
    live = res.level.loc[res.start :]
    assert live.index[-1] == panel.index[-1]
    assert np.all(np.isfinite(live.to_numpy())) and (live > 0).all()
    assert res.level.loc[: res.start].iloc[:-1].isna().all()

    # Between rebalances the level is sum(units x close): check a sample of bars with pandas.
    rows = res.units.index.searchsorted(live.index[1:], side="left") - 1
    for pos in np.linspace(0, len(rows) - 1, 200).astype(int):
        t = live.index[1 + pos]
        q = res.units.iloc[rows[pos]]
        prices = panel.loc[t, list(q.index)].fillna(panel.loc[t - pd.Timedelta(hours=1), list(q.index)])
        assert live[t] == pytest.approx(float((q * prices).sum()), rel=1e-12)


def test_default_index_on_the_full_grid_runs_out_of_cap_room(hourly_panel: pd.DataFrame) -> None:
    # At 2025-06-13 10:00 only TAO and RENDER still have prices: a 30 % cap cannot hold with 2 names.
    with pytest.raises(ConfigError, match="2025-06-13 10:00:00.*only 2 constituents") as info:
        build_index(hourly_panel, default_index_spec())
    assert info.value.key == "index.max_weight"


# --------------------------------------------------------------------------- snapshot caps, migrations, data-end exits


def _snapshot_file(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    """A CMC-like snapshot file: ``ts`` = day D 00:00 UTC holding end-of-day-D caps."""
    frame = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex([r[0] for r in rows], tz="UTC"),
            "symbol": pd.array([r[1] for r in rows], dtype="string"),
            "name": pd.array([r[1].lower() for r in rows], dtype="string"),
            "market_cap": [r[2] for r in rows],
            "cmc_rank": 1,
        }
    )
    frame.to_parquet(path, index=False)
    return path


_SNAPSHOTS = [
    ("2024-01-01", "A", 120.0), ("2024-01-01", "B", 40.0), ("2024-01-01", "C", 25.0), ("2024-01-01", "D", 15.0),
    ("2024-02-01", "A", 200.0), ("2024-02-01", "B", 100.0), ("2024-02-01", "C", 60.0), ("2024-02-01", "D", 40.0),
    ("2024-03-01", "A", 1000.0), ("2024-03-01", "B", 100.0), ("2024-03-01", "D", 40.0),  # C missing once
    ("2024-04-01", "A", 200.0), ("2024-04-01", "B", 100.0), ("2024-04-01", "D", 40.0),  # C missing twice
]


def test_cap_weights_from_a_snapshot_file_equal_a_hand_computation(tmp_path: Path) -> None:
    from backtest.index import load_snapshot_caps

    caps = load_snapshot_caps(_snapshot_file(tmp_path / "cmc.parquet", _SNAPSHOTS))
    close = _panel({s: [1.0 + i] * 140 for i, s in enumerate("ABCD")}, "2024-01-01", "D")
    spec = IndexSpec(tuple("ABCD"), weighting="market_cap", rebalance="monthly", min_history_days=0,
                     max_weight=0.5, min_constituents=2, cap_max_missing=1)
    res = build_index(close, spec, market_caps=caps)
    T = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    # 2024-01-01: the 01-01 snapshot is known only from 01-02 -> no caps, no start
    assert res.start == T("2024-02-01")
    expected = {
        # 01-01 caps 120/40/25/15 -> .6/.2/.125/.075; A capped at .5, .1 to B, C, D pro rata (.4)
        "2024-02-01": [0.5, 0.2 + 0.1 * 0.2 / 0.4, 0.125 + 0.1 * 0.125 / 0.4, 0.075 + 0.1 * 0.075 / 0.4],
        # 02-01 caps 200/100/60/40 (not 03-01's A = 1000: snapshot D is not used at D)
        "2024-03-01": [0.5, 0.25, 0.15, 0.10],
        # 03-01 caps: A 1000, B 100, D 40; C missed one snapshot and keeps 60 -> A .5, rest 100:60:40
        "2024-04-01": [0.5, 0.25, 0.15, 0.10],
        # C missed two snapshots: out. A 200, B 100, D 40 -> A capped .5, B and D share .5 as 100:40
        "2024-05-01": [0.5, 0.5 * 100 / 140, 0.0, 0.5 * 40 / 140],
    }
    for when, w in expected.items():
        np.testing.assert_allclose(res.weights.loc[T(when)].to_numpy(), w, rtol=1e-12, err_msg=when)
    exits = res.events[res.events["event"] == "exit"]
    assert exits[["symbol", "cause"]].values.tolist() == [["C", "no_market_cap"]]
    assert exits["ts"].iloc[0] == T("2024-05-01")
    # the held weights equal the targets on rebalance bars
    np.testing.assert_allclose(res.held_weights.loc[T("2024-05-01")].to_numpy(), expected["2024-05-01"], rtol=1e-12)
    assert res.held_weights.loc[: T("2024-01-31")].isna().all().all()


def test_a_snapshot_is_not_used_on_its_own_day(tmp_path: Path) -> None:
    """Change A's 2024-03-01 cap: weights at the 2024-03-01 rebalance do not move, at 04-01 they do."""
    from backtest.index import load_snapshot_caps

    close = _panel({s: [1.0 + i] * 140 for i, s in enumerate("ABCD")}, "2024-01-01", "D")
    spec = IndexSpec(tuple("ABCD"), weighting="market_cap", rebalance="monthly", min_history_days=0,
                     max_weight=None, min_constituents=2, cap_max_missing=1)
    bent = [(d, s, 10.0 if (d, s) == ("2024-03-01", "A") else v) for d, s, v in _SNAPSHOTS]
    a = build_index(close, spec, market_caps=load_snapshot_caps(_snapshot_file(tmp_path / "a.parquet", _SNAPSHOTS)))
    b = build_index(close, spec, market_caps=load_snapshot_caps(_snapshot_file(tmp_path / "b.parquet", bent)))
    day = pd.Timestamp("2024-03-01", tz="UTC")
    pd.testing.assert_frame_equal(a.weights.loc[:day], b.weights.loc[:day])
    pd.testing.assert_series_equal(a.level.loc[: day + pd.Timedelta(days=30)], b.level.loc[: day + pd.Timedelta(days=30)])
    assert not np.allclose(a.weights.loc[pd.Timestamp("2024-04-01", tz="UTC")], b.weights.loc[pd.Timestamp("2024-04-01", tz="UTC")])


def _migration_panel() -> pd.DataFrame:
    """Hourly closes: OLD until 2024-03-10 05:00, a 3-day swap window, NEW from 2024-03-13 12:00."""
    index = pd.date_range("2024-01-01", "2024-05-31 23:00", freq="h", tz="UTC")
    n = len(index)
    t = np.arange(n)
    old = np.where(index <= pd.Timestamp("2024-03-10 05:00", tz="UTC"), 2.0 + 0.001 * t, np.nan)
    new = np.where(index >= pd.Timestamp("2024-03-13 12:00", tz="UTC"), 2.5 + 0.001 * t, np.nan)
    return pd.DataFrame({"OLD": old, "NEW": new, "B": 3.0 + 0.0005 * t, "C": 4.0 - 0.0002 * t}, index=index)


def test_a_ticker_migration_carries_the_weight_without_a_gap() -> None:
    from backtest.index import TickerMigration, apply_migrations

    close = _migration_panel()
    mig = (TickerMigration("OLD", "NEW", "2024-03-13"),)
    joined, notes = apply_migrations(close, mig)
    assert sorted(joined.columns) == ["B", "C", "NEW"]
    assert notes[0].old_last == pd.Timestamp("2024-03-10 05:00", tz="UTC")
    assert notes[0].new_first == pd.Timestamp("2024-03-13 12:00", tz="UTC")
    assert notes[0].bridged_bars == 3 * 24 + 6 and notes[0].hole_bars == 0
    # the swap window is held at OLD's last close
    swap = joined.loc["2024-03-10 06:00":"2024-03-13 11:00", "NEW"]
    assert (swap == close.loc[pd.Timestamp("2024-03-10 05:00", tz="UTC"), "OLD"]).all()
    spec = IndexSpec(("NEW", "B", "C"), rebalance="monthly", min_history_days=30, max_weight=None, min_constituents=2)
    res = build_index(joined, spec, gaps_allowed=("NEW",))
    held = res.held_weights["NEW"]
    entered = pd.Timestamp("2024-02-01", tz="UTC")  # 30 days after OLD's first bar
    assert res.events[res.events["symbol"] == "NEW"][["ts", "event"]].values.tolist() == [[entered, "enter"]]
    assert (held.loc[entered:] > 0.2).all()  # weight carried across the migration, every bar
    np.testing.assert_allclose(res.weights.loc[pd.Timestamp("2024-04-01", tz="UTC")].to_numpy(), [1 / 3] * 3)
    # without the alias, NEW is a new listing: out from OLD's end, back only at the first
    # monthly rebalance 30 days after its own first bar
    plain = build_index(close.drop(columns="OLD"), IndexSpec(("NEW", "B", "C"), rebalance="monthly",
                                                             min_history_days=30, max_weight=None, min_constituents=2))
    assert plain.events[plain.events["symbol"] == "NEW"]["ts"].tolist() == [pd.Timestamp("2024-05-01", tz="UTC")]


def test_a_migrated_series_with_a_data_hole_exits_and_reenters_at_a_schedule() -> None:
    from backtest.index import TickerMigration, apply_migrations

    close = _migration_panel()
    hole = (close.index >= pd.Timestamp("2024-02-10", tz="UTC")) & (close.index < pd.Timestamp("2024-02-20 03:00", tz="UTC"))
    close.loc[hole, "OLD"] = np.nan
    joined, notes = apply_migrations(close, (TickerMigration("OLD", "NEW", "2024-03-13"),))
    assert notes[0].hole_bars == int(hole.sum())
    with pytest.raises(DataError, match="missing close inside"):
        build_index(joined, IndexSpec(("NEW", "B", "C"), min_history_days=30, max_weight=None, min_constituents=2))
    res = build_index(joined, IndexSpec(("NEW", "B", "C"), min_history_days=30, max_weight=None, min_constituents=2),
                      gaps_allowed=("NEW",))
    ev = res.events[res.events["symbol"] == "NEW"][["ts", "event", "cause"]].values.tolist()
    T = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    assert ev == [[T("2024-02-01"), "enter", "eligible"], [T("2024-02-10"), "exit", "data_end"],
                  [T("2024-03-01"), "enter", "eligible"]]
    assert (res.held_weights.loc[T("2024-02-10"):T("2024-02-29 23:00"), "NEW"] == 0).all()


def test_data_end_exits_are_flagged_with_the_last_price() -> None:
    close = _panel({"A": [1.0] * 10, "B": [2.0] * 6 + [NAN] * 4, "C": [3.0] * 10}, "2024-01-01", "D")
    res = build_index(close, IndexSpec(tuple("ABC"), rebalance="weekly", min_history_days=0, min_constituents=2))
    exits = res.events[res.events["event"] == "exit"]
    assert exits[["symbol", "cause"]].values.tolist() == [["B", "data_end"]]
    assert exits["ts"].iloc[0] == pd.Timestamp("2024-01-07", tz="UTC")
    assert exits["last_price_ts"].iloc[0] == pd.Timestamp("2024-01-06", tz="UTC")
    assert (res.events.loc[res.events["event"] == "enter", "cause"] == "eligible").all()


def _bundled_config(**sections):
    from backtest.config import config_from_mapping

    raw = {
        "scenario": {"name": "bundled", "start": "2024-05-01", "end": "2024-09-30", "bar": "1h"},
        "position": {"coins": ["FET"], "kind": "units", "units": [100_000.0]},
        "rules": [{"family": "notional", "fraction": 1.0}],
    }
    for name, table in sections.items():
        raw[name] = {**raw.get(name, {}), **table}
    return config_from_mapping(raw)


def test_bundled_market_caps_weight_the_index_out_of_the_box() -> None:
    """No market_caps file: the CMC snapshot of 2024-08-01 (used from 08-02) does not set the
    2024-08-01 weights; 2024-07-01's does, RNDR's cap carried into RENDER."""
    from backtest.engine import prepare
    from backtest.index import load_snapshot_caps, migrate_caps

    p = prepare(_bundled_config(index={"weighting": "market_cap", "max_weight": 0.3}))
    assert any(f.role == "market_caps" and f.path.endswith("cmc_monthly_snapshot_ai_tokens.parquet") for f in p.inputs)
    w = p.index.weights.loc[pd.Timestamp("2024-08-01", tz="UTC")]
    raw = pd.read_parquet(Path(__file__).resolve().parents[2] / "data" / "cmc_monthly_snapshot_ai_tokens.parquet")
    snap = raw[raw["ts"] == pd.Timestamp("2024-07-01", tz="UTC")].set_index("symbol")["market_cap"]
    snap = snap.rename(index={"RNDR": "RENDER"})
    held = [s for s in w.index if w[s] > 0]
    assert "RENDER" in held and set(held) <= set(snap.index)
    share = snap[held] / snap[held].sum()
    from backtest.index_kernels import cap_weights

    np.testing.assert_allclose(w[held].to_numpy(), cap_weights(share.to_numpy(), 0.3), rtol=1e-12)
    caps = migrate_caps(load_snapshot_caps(Path(__file__).resolve().parents[2] / "data" / "cmc_monthly_snapshot_ai_tokens.parquet"))
    assert caps.index.min() == pd.Timestamp("2020-01-02", tz="UTC")


def test_render_is_hedged_across_its_ticker_migration() -> None:
    """Coin RENDER from 2024-06-15: RNDR's closes (bundled extra file) then RENDER's, the
    swap window held at RNDR's last close; the index keeps Render without a re-entry wait."""
    from backtest.engine import prepare

    cfg = _bundled_config(scenario={"start": "2024-06-15", "end": "2024-09-30"},
                          position={"coins": ["RENDER"], "units": [10_000.0]})
    p = prepare(cfg)
    assert p.ts[0] == pd.Timestamp("2024-06-15", tz="UTC")
    assert [m.old for m in p.notes.migrations] == ["RNDR"]
    note = p.notes.migrations[0]
    assert note.old_last == pd.Timestamp("2024-07-22 02:00", tz="UTC")
    assert note.new_first == pd.Timestamp("2024-07-26 08:00", tz="UTC")
    extra = pd.read_parquet(Path(__file__).resolve().parents[2] / "data" / "binance_spot_1h_close_RNDR_2024-06_07.parquet")
    px = pd.Series(p.coin_prices[:, 0], index=p.ts)
    assert px.loc[pd.Timestamp("2024-07-01 05:00", tz="UTC")] == extra.set_index("ts")["close"].loc[pd.Timestamp("2024-07-01 05:00", tz="UTC")]
    assert (px.loc["2024-07-22 03:00":"2024-07-26 07:00"] == px.loc[pd.Timestamp("2024-07-22 02:00", tz="UTC")]).all()
    off = prepare(_bundled_config(index={"migrations": False}))
    assert "RNDR" in off.index.spec.constituents and "RENDER" in off.index.spec.constituents
    on = prepare(_bundled_config())
    assert "RNDR" not in on.index.spec.constituents
    held = on.index.held_weights["RENDER"].loc["2024-07-01":"2024-09-30"]
    assert (held > 0).all()


def test_summary_flags_data_end_exits_with_the_date(tmp_path: Path) -> None:
    from conftest import synthetic_config, write_synthetic_prices

    from backtest.results import run

    prices = write_synthetic_prices(tmp_path / "prices.parquet")
    raw = pd.read_parquet(prices)
    cut = pd.Timestamp("2024-02-15 09:00", tz="UTC")
    raw[~((raw["symbol"] == "DDD") & (raw["ts"] > cut))].to_parquet(prices, index=False)
    summary = run(synthetic_config(prices)).summary
    exits = [e for e in summary["index"]["events"] if e["event"] == "exit"]
    assert exits == [{
        "ts": "2024-02-15T10:00:00+00:00", "symbol": "DDD", "event": "exit",
        "reason": "data ended (last price 2024-02-15 09:00 UTC)", "cause": "data_end",
        "data_end": "2024-02-15T09:00:00+00:00",
    }]
    assert all(e["cause"] == "eligible" for e in summary["index"]["events"] if e["event"] == "enter")
