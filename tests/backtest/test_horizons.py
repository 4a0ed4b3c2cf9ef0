"""Hedge effectiveness at horizons (bar, 1D, 7D) and the ``[report] horizon`` key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.config import ReportSection
from backtest.errors import ConfigError
from backtest.metrics import he_by_horizon, horizon_bars, horizon_returns
from backtest.results import run

from conftest import synthetic_config, write_synthetic_prices


def test_horizon_returns_by_hand() -> None:
    # 7 bars: bar 0 has no P&L; spans of 3 bars are bars 1-3 and 4-6
    pnl_h = np.array([0.0, 1.0, -2.0, 4.0, 3.0, 0.5, -1.5])
    pnl_u = np.array([0.0, 10.0, -5.0, 2.0, -8.0, 6.0, 1.0])
    value = np.array([100.0, 110.0, 105.0, 107.0, 99.0, 105.0, 106.0])
    r_h, r_u = horizon_returns(pnl_h, pnl_u, value, 3)
    np.testing.assert_allclose(r_h, [(1 - 2 + 4) / 100, (3 + 0.5 - 1.5) / 107])
    np.testing.assert_allclose(r_u, [(10 - 5 + 2) / 100, (-8 + 6 + 1) / 107])
    # an incomplete span is dropped: 8 bars still give two spans of 3
    r_h8, _ = horizon_returns(np.append(pnl_h, 9.0), np.append(pnl_u, 9.0), np.append(value, 1.0), 3)
    assert len(r_h8) == 2


def test_he_at_1d_on_a_synthetic_scenario_equals_a_hand_computation(tmp_path: Path) -> None:
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=40)
    result = run(synthetic_config(prices))
    ledger = result.ledger
    for rule, m in result.summary["rules"].items():
        g = ledger[ledger["rule"] == rule].reset_index(drop=True)
        eq_h = g["equity_hedged"].to_numpy()
        eq_u = g["equity_unhedged"].to_numpy()
        value = g["alt_value"].to_numpy()
        # by hand: day j covers bars 1 + 24 j .. 24 (j + 1); P&L = equity change over the day
        days_h, days_u = [], []
        j = 0
        while 24 * (j + 1) < len(g):
            s, e = 1 + 24 * j, 24 * (j + 1)
            days_h.append((eq_h[e] - eq_h[s - 1]) / value[s - 1])
            days_u.append((eq_u[e] - eq_u[s - 1]) / value[s - 1])
            j += 1
        dh, du = np.array(days_h), np.array(days_u)
        mean_h, mean_u = dh.mean(), du.mean()
        var_h = sum((x - mean_h) ** 2 for x in dh) / (len(dh) - 1)
        var_u = sum((x - mean_u) ** 2 for x in du) / (len(du) - 1)
        assert m["he_by_horizon"]["1D"] == pytest.approx(1 - var_h / var_u, rel=1e-9), rule
        assert m["he_by_horizon"]["bar"] == pytest.approx(m["hedge_effectiveness"], rel=1e-9), rule
        assert np.isfinite(m["he_by_horizon"]["7D"])
    assert result.summary["config"]["report"]["horizon"] == "1D"


def test_horizon_bars() -> None:
    assert horizon_bars("bar", pd.Timedelta("1h")) == 1
    assert horizon_bars("1D", pd.Timedelta("1h")) == 24
    assert horizon_bars("7D", pd.Timedelta("1D")) == 7
    assert set(he_by_horizon(np.zeros(5), np.ones(5), np.ones(5), pd.Timedelta("1D"))) == {"bar", "1D", "7D"}


def test_bad_report_horizon_is_refused(tmp_path: Path) -> None:
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=10)
    with pytest.raises(ConfigError, match="report.horizon"):
        synthetic_config(prices, report={"horizon": "3D"})
    assert ReportSection().horizon == "1D"


@pytest.mark.parametrize("horizon", ["bar", "1D", "7D"])
def test_metrics_headline_he_is_the_one_its_interval_is_about(tmp_path: Path, horizon: str) -> None:
    """``he_headline`` is the HE at ``[report] horizon`` (``hedge_effectiveness`` is per bar
    whatever the horizon), the point estimate of the ``he_ci_lo`` .. ``he_ci_hi`` interval."""
    from reports.render import metrics_table
    from reports.stats import he_interval

    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=60)
    result = run(synthetic_config(prices, report={"horizon": horizon}))
    metrics = metrics_table(result.summary, result.ledger, n_boot=200).set_index("rule")
    n = horizon_bars(horizon, pd.Timedelta("1h"))
    for rule, m in metrics.iterrows():
        assert m["he_horizon"] == horizon
        assert m["he_headline"] == m[f"he_{horizon}"]
        assert m["hedge_effectiveness"] == pytest.approx(m["he_bar"], rel=1e-9)
        g = result.ledger[result.ledger["rule"] == rule]
        eq_h, eq_u = g["equity_hedged"].to_numpy(), g["equity_unhedged"].to_numpy()
        r_h, r_u = horizon_returns(np.diff(eq_h, prepend=eq_h[0]), np.diff(eq_u, prepend=eq_u[0]),
                                   g["alt_value"].to_numpy(), n)
        ci = he_interval(r_h, r_u, reps=200, seed=int(m["he_boot_seed"]))
        assert ci.point == pytest.approx(m["he_headline"], rel=1e-9, abs=1e-12)
        np.testing.assert_array_equal([ci.lo, ci.hi], [m["he_ci_lo"], m["he_ci_hi"]])  # NaN: too few 7D spans


def test_an_undefined_headline_he_says_why(tmp_path: Path) -> None:
    """A replay shorter than two days has no HE at 1D or 7D: each is null with its reason under
    ``undefined`` (it had none), and the PDF does not compare rules with an empty best rule."""
    from reports.pdf import write_pdf
    from reports.render import event_table, metrics_table

    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=40)
    cfg = synthetic_config(prices, scenario={"name": "short", "start": "2024-01-20", "end": "2024-01-21T12:00:00Z",
                                             "bar": "1h"})
    result = run(cfg)
    for rule, m in result.summary["rules"].items():
        assert m["he_by_horizon"]["1D"] is None and m["he_by_horizon"]["7D"] is None, rule
        assert m["undefined"]["he_by_horizon.1D"] == "1 complete 1D span of returns; a variance needs two"
        assert m["undefined"]["he_by_horizon.7D"] == "0 complete 7D spans of returns; a variance needs two"
        assert "he_by_horizon.bar" not in m["undefined"]
    metrics = metrics_table(result.summary, result.ledger, n_boot=50)
    assert (metrics["best_rule"] == "").all()
    pdf = tmp_path / "r.pdf"
    write_pdf(pdf, result.summary, metrics, event_table(result.ledger, [], bars_per_day=24.0,
                                                          rules=list(result.summary["rules"])), {})
    from pypdf import PdfReader

    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)
    assert "compared with by" not in text
    assert "No rule has a defined HE at 1D, so none is compared with another." in text


def test_a_rule_that_never_holds_futures_says_so_for_its_margin_excess(tmp_path: Path) -> None:
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=20)
    result = run(synthetic_config(prices, rules=[{"family": "none"}]))
    m = result.summary["rules"]["none"]
    assert m["min_margin_excess"] is None
    assert m["undefined"]["min_margin_excess"] == ("no futures position was held at any bar's close: no margin was "
                                                   "ever required")


def test_fmt_prints_no_negative_zero() -> None:
    from backtest.metrics import fmt

    assert [fmt(v, spec) for v, spec in [(-0.0, ".0f"), (-0.0004, ".3f"), (-0.4, ".0f"), (-0.0, "6.3f"),
                                        (-0.0, "+.0f"), (-1.5, ".0f"), (None, ".0f"), (float("nan"), ".1%")]] == [
        "0", "0.000", "0", " 0.000", "+0", "-2", "n/a", "n/a"]
