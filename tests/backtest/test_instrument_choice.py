"""Which hedge instrument: per-underlying table and paired bootstrap verdict of a compare grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import StationaryBootstrap, optimal_block_length

import backtest as hb
from backtest.cli import main
from backtest.instrument_choice import event_days, paired_he_interval, worst_event
from backtest.windows import Event
from conftest import SYNTHETIC_SCENARIO

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
    assert got["block_days"] == block and (got["reps"], got["seed"]) == (300, 4)
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
    # 2024-01-01..2024-03-01: no bundled event lies inside (nvidia_rally_2024 runs to 2024-04-01)
    assert table["worst_event"].isna().all() and table["worst_event_pnl_hedged"].isna().all()
    assert table["worst_event_he"].isna().all() and table["worst_day_pnl_hedged"].notna().all()
    verdict = pd.read_json(tmp_path / "out" / "instruments.json")
    assert verdict.loc[0, "best"] == "BTC" and verdict.loc[0, "verdict"].endswith("BTC better")


def _event(name: str, start: str, end: str) -> Event:
    return Event(name=name, title=name, start=pd.Timestamp(start, tz="UTC"), end=pd.Timestamp(end, tz="UTC"))


def test_worst_event_is_the_planted_window_with_the_hand_summed_loss(rng) -> None:
    """On 30 synthetic days, a window planted with a loss on A is A's worst event (P&L = the hand
    sum of its 3 days); B, without the loss, picks another window; windows reaching outside the
    days are left out; an intraday window counts the whole days it touches."""
    idx = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    days = pd.DataFrame({"h_A": rng.normal(0, 100, 30), "u_A": rng.normal(0, 300, 30),
                         "h_B": rng.normal(0, 100, 30), "u_B": rng.normal(0, 300, 30)}, index=idx)
    days.loc["2024-01-10":"2024-01-12", "h_A"] = [-5_000.0, -7_000.0, -6_000.0]
    planted = _event("planted", "2024-01-10", "2024-01-13")
    late = _event("late", "2024-01-20T06:00Z", "2024-01-21T06:00Z")  # touches the 20th and the 21st
    windows = event_days(pd.DatetimeIndex(days.index), [
        _event("before", "2023-12-01", "2023-12-10"),  # outside the days
        _event("straddle", "2024-01-25", "2024-02-05"),  # reaches past the last day
        _event("whole", "2024-01-01", "2024-01-31"), planted, late])
    assert [w[0].name for w in windows] == ["whole", "planted", "late"]
    assert list(idx[windows[2][1]].strftime("%d")) == ["20", "21"]

    got = worst_event(days, "A", windows[1:])
    assert got["worst_event"] == "planted"
    assert (got["worst_event_start"], got["worst_event_end"]) == ("2024-01-10", "2024-01-13")
    assert got["worst_event_pnl_hedged"] == pytest.approx(-18_000.0)
    in_window = days.loc["2024-01-10":"2024-01-12"]
    assert got["worst_event_pnl_unhedged"] == pytest.approx(in_window["u_A"].sum())
    assert got["worst_event_he"] == pytest.approx(1 - in_window["h_A"].var() / in_window["u_A"].var())

    b = worst_event(days, "B", windows[1:])
    sums = {"planted": days.loc["2024-01-10":"2024-01-12", "h_B"].sum(), "late": days.loc["2024-01-20":"2024-01-21", "h_B"].sum()}
    assert b["worst_event"] == min(sums, key=sums.get) and b["worst_event_pnl_hedged"] == pytest.approx(min(sums.values()))

    one_day = worst_event(days, "A", event_days(pd.DatetimeIndex(days.index), [_event("d", "2024-01-11", "2024-01-12")]))
    assert one_day["worst_event_pnl_hedged"] == -7_000.0 and np.isnan(one_day["worst_event_he"])  # HE needs 2 days
    tie = [(_event("zz", "2024-01-02", "2024-01-03"), idx == idx[1]), (_event("aa", "2024-01-02", "2024-01-03"), idx == idx[1])]
    assert worst_event(days, "A", tie)["worst_event"] == "aa"  # equal losses: the first name

    none = worst_event(days, "A", [])
    assert none["worst_event"] == "" and none["worst_event_start"] == "" and np.isnan(none["worst_event_pnl_hedged"])
    assert np.isnan(none["worst_event_pnl_unhedged"]) and np.isnan(none["worst_event_he"])


def test_compare_names_the_worst_event_from_the_common_days(tmp_path: Path, monkeypatch) -> None:
    """End to end: COIN alone loses ~25 % on 2024-01-20..22 (no instrument follows it); the user
    window over those days is every underlying's worst event, with the P&L summed from the common
    daily frame the table was built on; a window before the data and the bundled
    nvidia_rally_2024 (past the data's end) are not candidates. Cross-check: the event table of a
    single run of the same variant (reports.events.event_table) gives the same hedged P&L."""
    import backtest.instrument_choice as ic

    path = write_btc_coin_prices(tmp_path / "prices.parquet", n_days=40)
    prices = pd.read_parquet(path)
    ts, coin = prices["ts"], prices["symbol"] == "COIN"
    hours = ((ts >= "2024-01-20") & (ts < "2024-01-23") & coin).to_numpy()
    drop = np.cumsum(np.where(hours, -0.004, 0.0)[coin.to_numpy()])  # -0.29 in log over 72 h, kept after
    prices.loc[coin, "close"] = prices.loc[coin, "close"].to_numpy() * np.exp(drop)
    prices.to_parquet(path, index=False)
    seen: list[tuple[pd.DataFrame, list]] = []
    real = ic.worst_event
    monkeypatch.setattr(ic, "worst_event", lambda days, u, windows: seen.append((days, windows)) or real(days, u, windows))
    toml = tmp_path / "c.toml"
    toml.write_text(
        SYNTHETIC_SCENARIO +
        '[futures]\ncontract_size = 0.01\n[rebalance]\nmode = "every"\nevery_bars = 24\nwhole_contracts = false\n'
        '[[rules]]\nfamily = "notional"\nfraction = 1.0\n'
        '[events.coin_crash]\nstart = 2024-01-20\nend = 2024-01-23\n'
        '[events.calm]\nstart = 2024-01-05\nend = 2024-01-12\n'
        '[events.old]\nstart = 2023-06-01\nend = 2023-06-10\n'
        '[compare]\nunderlyings = ["BTC", "ETH"]\n'
        '[[compare.rules]]\nfamily = "notional"\nfraction = [1.0]\n'
        '[[compare.rebalance]]\nmode = "every"\nevery_bars = [24]\n', encoding="utf-8")
    assert main(["compare", str(toml), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    table = pd.read_csv(tmp_path / "out" / "instruments.csv")
    assert list(table.columns[-6:]) == ["worst_event", "worst_event_start", "worst_event_end", "worst_event_pnl_hedged",
                                        "worst_event_pnl_unhedged", "worst_event_he"]
    assert len(seen) == 2 and seen[0][0] is seen[1][0]  # one common daily frame for both underlyings
    days = seen[0][0]
    assert [w[0].name for w in seen[0][1]] == ["coin_crash", "calm"]  # config order; old and nvidia_rally_2024 left out
    crash = days.loc["2024-01-20":"2024-01-22"]
    assert len(crash) == 3
    for _, r in table.iterrows():
        u = r["underlying"]
        assert r["worst_event"] == "coin_crash" and (r["worst_event_start"], r["worst_event_end"]) == ("2024-01-20", "2024-01-23")
        assert r["worst_event_pnl_hedged"] == pytest.approx(crash[f"h_{u}"].sum(), rel=1e-9)
        assert r["worst_event_pnl_unhedged"] == pytest.approx(crash[f"u_{u}"].sum(), rel=1e-9)
        assert r["worst_event_pnl_hedged"] < days.loc["2024-01-05":"2024-01-11", f"h_{u}"].sum()
        assert r["worst_event_he"] == pytest.approx(1 - crash[f"h_{u}"].var() / crash[f"u_{u}"].var(), rel=1e-6)
        assert r["worst_event_pnl_hedged"] < -0.1 * 100_000 * 0.5  # a real loss: over a tenth of the coin's starting value
        # the same variant run alone: the event table of reports.events sums the same hedged loss bar by bar
        run = hb.run(toml, futures={"underlying": u})
        assert run.events(["coin_crash"])["pnl_hedged"].item() == pytest.approx(r["worst_event_pnl_hedged"], rel=1e-9)


def test_a_bad_event_window_stops_compare_before_the_grid(tmp_path: Path, monkeypatch, capsys) -> None:
    import backtest.grid as grid

    write_btc_coin_prices(tmp_path / "prices.parquet", n_days=10)
    monkeypatch.setattr(grid, "run_compare_full", lambda *a, **k: pytest.fail("the grid ran"))
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[data]\nprices = "prices.parquet"\nohlc = ""\n[position]\ncoins = ["COIN"]\nunits = [1]\n'
        '[events.backwards]\nstart = 2024-01-05\nend = 2024-01-02\n'
        '[compare]\nunderlyings = ["BTC", "ETH"]\n[[compare.rules]]\nfamily = "notional"\nfraction = [1.0]\n',
        encoding="utf-8")
    assert main(["compare", str(toml), "--out", str(tmp_path / "out")]) == 2
    assert "events.backwards.end" in capsys.readouterr().err
