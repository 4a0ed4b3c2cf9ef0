"""Event library and event-window figures, checked against direct pandas computations."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import build_ledger

from backtest.errors import ConfigError
from reports import Event, event_table, load_events, select_events
from reports.events import EVENT_COLUMNS

UTC = dt.UTC


@pytest.fixture(scope="module")
def ledger() -> pd.DataFrame:
    """2,000 hourly bars from 2025-01-01 (spans the DeepSeek window), 2 rules, rows shuffled."""
    led = build_ledger(2000, rules=("static_ols", "rolling_ols"), seed=7)
    return led.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# -- library ---------------------------------------------------------------------------
def test_bundled_events() -> None:
    events = {e.name: e for e in load_events()}
    expected = {
        "crash_2022": ("2022-05-01", "2022-07-01"),
        "chatgpt_rally_2023": ("2023-01-01", "2023-03-01"),
        "nvidia_rally_2024": ("2024-02-01", "2024-04-01"),
        "deepseek_2025": ("2025-01-20", "2025-02-10"),
    }
    for name, (start, end) in expected.items():
        ev = events[name]
        assert (ev.start, ev.end) == (_ts(start), _ts(end))
        assert str(ev.start.tz) == "UTC" and ev.title and len(ev.description) > 80
    assert all(e.end > e.start for e in events.values())
    assert _ts("2025-01-27") in pd.Interval(events["deepseek_2025"].start, events["deepseek_2025"].end)


def test_user_events_added_and_overriding() -> None:
    extra = {
        "mine": {"start": dt.datetime(2024, 8, 1, tzinfo=UTC), "end": "2024-08-15T12:00:00Z", "title": "Mine"},
        "day": {"start": dt.date(2024, 9, 1), "end": "2024-09-03"},
        "berlin": {"start": "2024-10-01T02:00:00+02:00", "end": "2024-10-02T00:00:00Z"},
        "deepseek_2025": {"start": "2025-01-25T00:00:00Z", "end": "2025-02-01T00:00:00Z", "title": "narrow"},
    }
    events = load_events(extra)
    names = [e.name for e in events]
    assert names[-3:] == ["mine", "day", "berlin"]
    by = {e.name: e for e in events}
    assert by["mine"] == Event("mine", "Mine", _ts("2024-08-01"), _ts("2024-08-15 12:00"), "")
    assert (by["day"].start, by["day"].end, by["day"].title) == (_ts("2024-09-01"), _ts("2024-09-03"), "day")
    assert by["berlin"].start == _ts("2024-10-01 00:00")
    assert by["deepseek_2025"].title == "narrow"
    assert names.index("deepseek_2025") < names.index("mine")  # replaced in place


@pytest.mark.parametrize(
    "table, key",
    [
        ({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "events.bad.end"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, "events.bad.end"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z", "colour": "red"}, "events.bad.colour"),
        ({"end": "2024-01-02T00:00:00Z"}, "events.bad.start"),
        ({"start": "2024-01-01T00:00:00", "end": "2024-01-02T00:00:00Z"}, "events.bad.start"),
        ({"start": dt.datetime(2024, 1, 1), "end": "2024-01-02T00:00:00Z"}, "events.bad.start"),
        ({"start": "yesterday", "end": "2024-01-02T00:00:00Z"}, "events.bad.start"),
        ({"start": 5, "end": "2024-01-02T00:00:00Z"}, "events.bad.start"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z", "title": 3}, "events.bad.title"),
        ("2024-01-01", "events.bad"),
    ],
)
def test_bad_user_event_names_the_key(table: object, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_events({"bad": table})
    assert info.value.key == key
    assert f"'{key}'" in str(info.value)


def test_select_events() -> None:
    events = load_events()
    picked = select_events(events, ["deepseek_2025", "crash_2022", "deepseek_2025"])
    assert [e.name for e in picked] == ["deepseek_2025", "crash_2022"]
    with pytest.raises(ConfigError) as info:
        select_events(events, ["deepseek_2024"], key="report.events")
    assert info.value.key == "report.events"
    msg = str(info.value)
    assert "deepseek_2024" in msg
    assert all(e.name in msg for e in events)


# -- event table -----------------------------------------------------------------------
def _by_hand(ledger: pd.DataFrame, rule: str, start: str, end: str) -> dict[str, float]:
    """Direct pandas computation of the window figures from the ledger."""
    g = ledger[ledger["rule"] == rule].sort_values("ts").reset_index(drop=True)
    inside = (g["ts"] >= _ts(start)) & (g["ts"] < _ts(end))
    first = int(np.flatnonzero(inside)[0])
    last = int(np.flatnonzero(inside)[-1])
    before = g.iloc[first - 1]
    w = g[inside]
    wealth_u = (1 + w["ret_unhedged"]).cumprod()
    wealth_h = (1 + w["ret_hedged"]).cumprod()
    prev_h = g["hedge_ratio_held"].shift(1)[inside]
    prev_n = g["alt_value"].shift(1)[inside]
    idx_ret = g["index_level"].pct_change()[inside]
    divergence = (prev_h * (w["ret_unhedged"] - idx_ret) * prev_n).sum()
    pnl_hedged = g["equity_hedged"].iloc[last] - before["equity_hedged"]
    return {
        "bars": len(w),
        # the holding is fixed in the synthetic ledger, so the alt_value ratio is the coin return
        "coin_return": g["alt_value"].iloc[last] / before["alt_value"] - 1,
        "index_return": g["index_level"].iloc[last] / before["index_level"] - 1,
        "pnl_unhedged": w["pnl_altcoin"].sum(),
        "pnl_hedged": pnl_hedged,
        "hedge_effectiveness": 1 - w["ret_hedged"].var() / w["ret_unhedged"].var(),
        "max_drawdown_unhedged": (1 - wealth_u / wealth_u.cummax().clip(lower=1)).max(),
        "max_drawdown_hedged": (1 - wealth_h / wealth_h.cummax().clip(lower=1)).max(),
        "margin_calls": int(w["margin_call"].sum()),
        "liquidations": int(w["liquidated"].sum()),
        "pnl_divergence": divergence,
        "basis_share": divergence / pnl_hedged if pnl_hedged < 0 else math.nan,
    }


def test_event_window_figures_equal_direct_computation(ledger: pd.DataFrame) -> None:
    events = select_events(load_events(), ["deepseek_2025"])
    table = event_table(ledger, events, bars_per_day=24)
    assert list(table.columns) == list(EVENT_COLUMNS)
    # default rule order: first appearance in the (shuffled) ledger
    assert list(table["rule"]) == list(pd.unique(ledger["rule"]))
    for _, row in table.iterrows():
        hand = _by_hand(ledger, row["rule"], "2025-01-20", "2025-02-10")
        assert row["bars"] == hand["bars"] == 21 * 24
        for key, value in hand.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(row[key]), key
            else:
                assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        # the four parts add up to the hedged P&L
        parts = row[["pnl_divergence", "pnl_unhedged_fraction", "pnl_costs", "pnl_hedge_residual"]].sum()
        assert parts == pytest.approx(row["pnl_hedged"], rel=1e-9)
        assert row["note"] == ""
    assert (table["pnl_hedged"] < 0).all() and table["basis_share"].notna().all()
    assert table["margin_calls"].sum() > 0


def test_event_table_rule_order_and_event_order(ledger: pd.DataFrame) -> None:
    extra = {"a": {"start": "2025-02-15T00:00:00Z", "end": "2025-02-20T00:00:00Z"}}
    events = select_events(load_events(extra), ["a", "deepseek_2025"])
    table = event_table(ledger, events, bars_per_day=24, rules=["rolling_ols", "static_ols"])
    assert list(zip(table["event"], table["rule"], strict=True)) == [
        ("a", "rolling_ols"), ("a", "static_ols"),
        ("deepseek_2025", "rolling_ols"), ("deepseek_2025", "static_ols"),
    ]


def test_hedged_gain_has_no_basis_share(ledger: pd.DataFrame) -> None:
    extra = {f"w{i}": {"start": f"2025-02-{10 + 2 * i:02d}T00:00:00Z", "end": f"2025-02-{12 + 2 * i:02d}T00:00:00Z"}
             for i in range(6)}
    table = event_table(ledger, load_events(extra)[-6:], bars_per_day=24)
    gains = table[table["pnl_hedged"] >= 0]
    assert len(gains) > 0 and gains["basis_share"].isna().all()
    losses = table[table["pnl_hedged"] < 0]
    assert len(losses) > 0
    np.testing.assert_allclose(losses["basis_share"], losses["pnl_divergence"] / losses["pnl_hedged"])


def test_short_and_partial_windows_get_a_note(ledger: pd.DataFrame) -> None:
    extra = {
        "short": {"start": "2025-02-01T00:00:00Z", "end": "2025-02-01T10:00:00Z"},
        "early": {"start": "2024-12-20T00:00:00Z", "end": "2025-01-05T00:00:00Z"},
    }
    table = event_table(ledger, load_events(extra)[-2:], bars_per_day=24).set_index(["event", "rule"])
    short = table.loc[("short", "static_ols")]
    assert short["bars"] == 10
    assert "Only 10 bars" in short["note"]
    early = table.loc[("early", "static_ols")]
    assert "only part" in early["note"]
    assert early["bars"] == 4 * 24
    # the rule's first bar has no return: 95 of the 96 bars carry one
    assert early["coin_return"] == pytest.approx(
        ledger[(ledger["rule"] == "static_ols") & (ledger["ts"] == _ts("2025-01-04 23:00"))]["alt_value"].iloc[0]
        / ledger[(ledger["rule"] == "static_ols") & (ledger["ts"] == _ts("2025-01-01"))]["alt_value"].iloc[0] - 1
    )


def test_event_outside_the_data_raises(ledger: pd.DataFrame) -> None:
    crash = select_events(load_events(), ["crash_2022"])
    with pytest.raises(ConfigError) as info:
        event_table(ledger, crash, bars_per_day=24)
    assert info.value.key == "events.crash_2022"
    assert "event 'crash_2022' (2022-05-01..2022-07-01) is outside the data period (2025-01-01..2025-03-25 08:00)" \
        in str(info.value)


def test_events_toml_is_packaged() -> None:
    assert (Path(__file__).resolve().parents[2] / "backtest" / "events.toml").is_file()


def test_bundled_descriptions_carry_no_replay_figures() -> None:
    """Event prose holds dates, titles and sourced market facts; replay figures (coin or index
    returns, ρ²) come from the run's event table only, so prose and table cannot disagree."""
    import re

    for event in load_events():
        text = event.description
        assert "ρ²" not in text and "bundled data" not in text, event.name
        assert not re.search(r"\b(FET|basket|index)\b[^.]*\d+ ?%", text), event.name


def test_a_rule_on_several_underlyings_has_no_basis_split() -> None:
    """A two-instrument rule's held hedge ratio sums legs on different underlyings, so its
    basis decomposition against ``index_level`` alone is not computed (NaN); the other
    figures, and every figure of the other rules, are as without the flag."""
    import math

    from synthetic import build_ledger

    ledger = build_ledger(n_bars=24 * 60)
    rules = list(pd.unique(ledger["rule"]))
    events = [Event("w", "window", pd.Timestamp(ledger["ts"].iloc[24 * 10]), pd.Timestamp(ledger["ts"].iloc[24 * 20]))]
    plain = event_table(ledger, events, bars_per_day=24, rules=rules)
    flagged = event_table(ledger, events, bars_per_day=24, rules=rules, several_underlyings={rules[0]})
    split = ["pnl_divergence", "pnl_unhedged_fraction", "pnl_hedge_residual", "basis_share"]
    first, other = flagged["rule"] == rules[0], flagged["rule"] != rules[0]
    assert flagged.loc[first, split].isna().all().all()
    assert plain.loc[first, "pnl_divergence"].notna().all()
    keep = [c for c in flagged.columns if c not in split]
    pd.testing.assert_frame_equal(flagged[keep], plain[keep])
    pd.testing.assert_frame_equal(flagged[other], plain[other])
    assert math.isfinite(flagged.loc[first, "pnl_costs"].iloc[0])
