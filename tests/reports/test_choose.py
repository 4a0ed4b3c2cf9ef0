"""Index weights over time and the data-end exits in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SYNTHETIC_SCENARIO

import backtest as hb
from reports.choose import plot_index_weights
from reports.pdf import data_end_exits


@pytest.fixture
def result(synthetic_prices: Path) -> hb.Result:
    path = synthetic_prices.parent / "s.toml"
    path.write_text(SYNTHETIC_SCENARIO + '[[rules]]\nfamily = "notional"\n', encoding="utf-8")
    return hb.run(path)


def test_summary_holds_the_rebalance_weights_of_the_replay(result: hb.Result) -> None:
    table = result.summary["index"]["weights"]
    w = np.asarray(table["weights"])
    assert table["symbols"] == ["AAA", "BBB", "CCC", "DDD"]
    assert len(table["ts"]) == len(w) >= 10  # weekly rebalances over ~12 weeks
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    assert w.max() <= 0.4 + 1e-6  # the configured cap
    assert table["ts"][0] <= result.summary["period"]["start"]


def test_weights_figure_stacks_every_constituent(result: hb.Result, tmp_path: Path) -> None:
    assert plot_index_weights(result.summary, tmp_path / "w.png") == tmp_path / "w.png"
    fig = plot_index_weights(result.summary)
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert len(ax.collections) == 4  # one stacked band per constituent
    assert ax.get_legend() is not None
    assert len(result.plot.index_weights().axes[0].collections) == 4


def test_data_end_exits_are_named_with_their_last_price() -> None:
    summary = {"index": {"events": [
        {"ts": "2023-12-30T21:00:00+00:00", "symbol": "OCEAN", "event": "exit", "cause": "data_end",
         "data_end": "2023-12-30T20:00:00+00:00"},
        {"ts": "2023-06-01T00:00:00+00:00", "symbol": "ROSE", "event": "exit", "cause": "no_market_cap"},
        {"ts": "2021-02-01T00:00:00+00:00", "symbol": "NEAR", "event": "enter", "cause": "eligible"},
    ]}}
    assert data_end_exits(summary) == "OCEAN (last price 2023-12-30 20:00)"


def test_data_end_exits_are_those_of_the_replay_with_the_return() -> None:
    """An exit before the replay is left out (the title page said RENDER 'left the index' on a
    replay that held it throughout); an exit followed by a re-entry says when the symbol came back."""
    events = [
        {"ts": "2023-12-30T21:00:00+00:00", "symbol": "OCEAN", "event": "exit", "cause": "data_end",
         "data_end": "2023-12-30T20:00:00+00:00"},
        {"ts": "2023-12-30T22:00:00+00:00", "symbol": "RENDER", "event": "exit", "cause": "data_end",
         "data_end": "2023-12-30T21:00:00+00:00"},
        {"ts": "2024-07-01T00:00:00+00:00", "symbol": "RENDER", "event": "enter", "cause": "eligible"},
    ]
    late = {"index": {"events": events}, "period": {"start": "2024-09-01T00:00:00+00:00", "end": "2025-06-13T08:00:00+00:00"}}
    assert data_end_exits(late) == ""
    full = {"index": {"events": events}, "period": {"start": "2021-02-01T00:00:00+00:00", "end": "2025-06-13T08:00:00+00:00"}}
    assert data_end_exits(full) == ("OCEAN (last price 2023-12-30 20:00), "
                                    "RENDER (last price 2023-12-30 21:00, back 2024-07-01 00:00)")
