"""Tearsheet statistics: checked against empyrical (annualisation 365) and hand calculation."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from synthetic import build_result_dir

from reports import tearsheet as T

empyrical = pytest.importorskip("empyrical")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = build_result_dir(tmp_path_factory.mktemp("ts") / "r", compare=False, n_bars=24 * 120)
    return {"summary": json.loads((folder / "summary.json").read_text()),
            "ledger": pd.read_parquet(folder / "ledger.parquet")}


def test_daily_returns_are_sums_of_the_days_bars(result: dict[str, Any]) -> None:
    led = result["ledger"]
    g = led[led["rule"] == "static_ols"].sort_values("ts")
    d = T.daily_returns(g, "ret_hedged")
    assert len(d) == 120
    day3 = g[(g["ts"] >= "2025-01-03") & (g["ts"] < "2025-01-04")]["ret_hedged"]
    assert d.loc[pd.Timestamp("2025-01-03")] == pytest.approx(day3.sum(), rel=1e-12)
    # the first bar's NaN return is skipped, not propagated
    assert math.isfinite(d.iloc[0])


def test_ratios_match_empyrical(rng: np.random.Generator) -> None:
    r = pd.Series(rng.normal(0.001, 0.03, 1000))
    kw = {"annualization": 365}
    assert T.sharpe(r) == pytest.approx(empyrical.sharpe_ratio(r, **kw), rel=1e-10)
    assert T.sortino(r) == pytest.approx(empyrical.sortino_ratio(r, **kw), rel=1e-10)
    assert T.annual_return(r) == pytest.approx(empyrical.annual_return(r, **kw), rel=1e-10)
    assert T.max_drawdown(r) == pytest.approx(-empyrical.max_drawdown(r), rel=1e-10)
    assert T.calmar(r) == pytest.approx(empyrical.calmar_ratio(r, **kw), rel=1e-10)
    # 1000 days at 99 %: the 10 worst; empyrical's interpolated cut-off selects the same 10
    var, cvar = T.stats.var_cvar(r.to_numpy(), 0.99)
    assert cvar == pytest.approx(-empyrical.conditional_value_at_risk(r, cutoff=0.01), rel=1e-12)
    assert var == pytest.approx(-np.sort(r.to_numpy())[9], rel=1e-12)


def test_ratios_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03, -0.01])
    mean, sd = r.mean(), r.std(ddof=1)
    assert T.sharpe(r) == pytest.approx(mean / sd * math.sqrt(365))
    assert T.sortino(r) == pytest.approx(mean / math.sqrt((0.02**2 + 0.01**2) / 4) * math.sqrt(365))
    growth = 1.01 * 0.98 * 1.03 * 0.99
    assert T.annual_return(r) == pytest.approx(growth ** (365 / 4) - 1)
    assert T.max_drawdown(r) == pytest.approx(1 - 1.01 * 0.98 / 1.01)
    assert math.isnan(T.calmar([0.01, 0.02]))  # no drawdown


def test_monthly_returns_compound_days() -> None:
    days = pd.date_range("2025-01-30", periods=4, freq="D")
    d = pd.Series([0.1, -0.1, 0.05, 0.05], index=days)
    table = T.monthly_returns(d)
    assert table.loc[2025, 1] == pytest.approx(1.1 * 0.9 - 1)
    assert table.loc[2025, 2] == pytest.approx(1.05 * 1.05 - 1)
    assert np.isnan(table.loc[2025, 3])
    emp = empyrical.aggregate_returns(d, "monthly")
    assert emp.loc[(2025, 1)] == pytest.approx(table.loc[2025, 1])


def test_tearsheet_table(result: dict[str, Any]) -> None:
    s, led = result["summary"], result["ledger"]
    table = T.tearsheet_table(s, led)
    assert list(table.columns) == list(T.TEARSHEET_COLUMNS)
    assert list(table["rule"]) == list(s["rules"])
    g = led[led["rule"] == "rolling_ols"].sort_values("ts")
    d = T.daily_returns(g, "ret_hedged")
    row = table.set_index("rule").loc["rolling_ols"]
    assert row["sharpe_hedged"] == pytest.approx(empyrical.sharpe_ratio(d, annualization=365))
    assert row["var99_1d_hedged"] == pytest.approx(-np.sort(d.to_numpy())[math.ceil(0.01 * len(d)) - 1])
    # unhedged columns are the same for every rule (same coin)
    assert table["sharpe_unhedged"].nunique() == 1
    # the synthetic coin is built as 1.1 x index + noise: beta on futures near 1.1
    assert 0.8 < row["beta_coin_on_futures"] < 1.4 and 0.5 < row["corr_coin_futures"] < 1.0


def test_futures_returns_skip_contract_changes(result: dict[str, Any]) -> None:
    led = result["ledger"]
    g = led[led["rule"] == "static_ols"].sort_values("ts").reset_index(drop=True)
    r_coin, r_fut = T.futures_returns(g)
    change = np.flatnonzero(g["contract_id"].to_numpy()[1:] != g["contract_id"].to_numpy()[:-1]) + 1
    assert change.size and np.isnan(r_fut[change]).all() and np.isnan(r_coin[change]).all()
    ok = np.isfinite(r_fut)
    assert ok.sum() == len(g) - 1 - change.size
    beta, corr = T.rolling_beta_corr(g, 24 * 30)
    i = len(g) - 1
    c, f = r_coin[i - 24 * 30 + 1: i + 1], r_fut[i - 24 * 30 + 1: i + 1]
    m = np.isfinite(c) & np.isfinite(f)
    cov = np.cov(c[m], f[m], ddof=1)
    assert beta[i] == pytest.approx(cov[0, 1] / cov[1, 1], rel=1e-9)
    assert corr[i] == pytest.approx(np.corrcoef(c[m], f[m])[0, 1], rel=1e-9)


@pytest.mark.parametrize("name", ["plot_monthly_returns", "plot_return_histogram", "plot_rolling_beta"])
def test_tearsheet_figures(result: dict[str, Any], tmp_path: Any, name: str) -> None:
    led = result["ledger"]
    kw = {"bars_per_day": 24.0} if name == "plot_rolling_beta" else {}
    path = getattr(T, name)(led, tmp_path / f"{name}.png", **kw)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = getattr(T, name)(led, **kw)
    assert fig.legends or any(ax.get_legend() for ax in fig.axes) or name == "plot_monthly_returns"
    if name == "plot_monthly_returns":
        panel = fig.axes[1]
        g = led[led["rule"] == "static_ols"].sort_values("ts")
        jan = T.monthly_returns(T.daily_returns(g, "ret_hedged")).loc[2025, 1]
        assert f"{100 * jan:.1f}" in [t.get_text() for t in panel.texts]
