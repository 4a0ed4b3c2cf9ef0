"""End to end on the bundled real data: `hedgebt demo` and `hedgebt compare` (slow: real data, full reports)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pypdf import PdfReader

from backtest.cli import main
from backtest.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_demo_writes_every_output_from_the_bundled_data(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    q = json.loads((out / "quarterly" / "summary.json").read_text())
    p = json.loads((out / "perpetual" / "summary.json").read_text())
    # real data, 2021 onward, hourly
    assert q["period"]["start"].startswith("2021-02-01") and q["period"]["bar"] == "1h"
    assert q["period"]["bars"] > 38_000
    for label, m in q["rules"].items():
        assert 0.3 < m["hedge_effectiveness"] < 0.5, label  # DOMAIN: hourly rho^2 ~ 0.43
        assert m["rolls"] == 17  # quarterly contracts March 2021 .. March 2025 rolled
        assert m["pnl"]["roll"] < 0 and m["pnl"]["funding"] == 0
        assert m["margin_calls"] > 0 and m["min_safe_collateral"] > 250_000
    assert p["scenario"]["funding_is_proxy"] is True and p["futures"]["funding"]["filled"] > 0
    for m in p["rules"].values():
        assert m["rolls"] == 0 and m["pnl"]["funding"] != 0
    for folder in (out / "quarterly", out / "perpetual"):
        ledger = pd.read_parquet(folder / "ledger.parquet")
        assert len(ledger) == 3 * json.loads((folder / "summary.json").read_text())["period"]["bars"]
        for name in ("metrics.csv", "events.csv", "report.pdf", "figures/equity.png", "figures/margin.png"):
            assert (folder / name).stat().st_size > 0, name
    events = pd.read_csv(out / "quarterly" / "events.csv")
    assert {"crash_2022", "chatgpt_rally_2023", "nvidia_rally_2024", "deepseek_2025"} <= set(events["event"])
    text = PdfReader(out / "perpetual" / "report.pdf").pages[0].extract_text()
    assert "proxy" in text


def test_compare_ranks_fifty_variants_across_all_families(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    config = PROJECT_ROOT / "backtest" / "scenarios" / "compare.toml"
    assert main(["compare", str(config), "--out", str(out), "--no-report", "--scheduler", "none"]) == 0
    table = pd.read_csv(out / "compare.csv")
    assert len(table) >= 50
    assert set(table["family"]) == {"none", "fixed", "notional", "min_variance", "ewma", "dynamic"}
    assert sorted(table["rank"]) == list(range(1, len(table) + 1))
    assert table["oracle_r2"].nunique() == 1 and 0.3 < table["oracle_r2"].iloc[0] < 0.5
    np_he = table.set_index("rank")["hedge_effectiveness"]
    assert np_he.is_monotonic_decreasing
