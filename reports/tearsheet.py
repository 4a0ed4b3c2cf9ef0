r"""Tearsheet statistics and figures: what users of quantstats and pyfolio look for first.

All returns here are **returns on the coin notional**, as in the ledger
(``ret_hedged = Δ equity_hedged / alt_value[t-1]``, ``ret_unhedged = pnl_altcoin /
alt_value[t-1]``), so the idle cash beside the position does not dilute them. They are
taken to **daily returns** first, one per UTC calendar day, as the sum of that day's
per-bar returns (:func:`daily_returns`; for daily bars the bars themselves): non-overlapping
days, whatever the bar length. Years have 365 days (crypto trades every day); the
risk-free rate is 0.

=================  ========================================================================
statistic          definition (daily returns :math:`r_1 .. r_n`)
=================  ========================================================================
Sharpe             :math:`\bar r / s(r) \cdot \sqrt{365}` (sample sd, ddof 1)
Sortino            :math:`\bar r / \sqrt{\tfrac1n \sum \min(r_i, 0)^2} \cdot \sqrt{365}`
annual return      :math:`\left(\prod (1 + r_i)\right)^{365/n} - 1` (compounded, CAGR)
max drawdown       largest fall of :math:`W_t = \prod_{i \le t} (1 + r_i)` from its running
                   peak, the start (:math:`W_0 = 1`) counting as a peak
Calmar             annual return / max drawdown (NaN without a drawdown)
1-day VaR 99 %     :math:`-r_{(k)}`, :math:`k = \lceil 0.01 n \rceil` (historical, no
                   interpolation: :func:`reports.stats.var_cvar`)
1-day CVaR 99 %    :math:`-\tfrac1k \sum_{i \le k} r_{(i)}`, the mean of the :math:`k` worst days
monthly return     :math:`\prod_{i \in \text{month}} (1 + r_i) - 1`
beta, correlation  of the coin's per-bar returns on the futures' per-bar returns
                   (``alt_price``, ``fut_price``), bars where the held contract changes left
                   out (a roll is not a return)
=================  ========================================================================

Sharpe, Sortino, annual return, max drawdown and Calmar are the definitions of
``empyrical`` (``sharpe_ratio``, ``sortino_ratio``, ``annual_return``, ``max_drawdown``,
``calmar_ratio`` with ``annualization=365``); the tests check the numbers against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from reports import stats
from reports.events import split_rules
from reports.figures import (
    _UNHEDGED_COLOUR,
    STYLE,
    _figure_and_axes,
    _finish,
    _full_span,
    _legend,
    _line,
    _styles,
    _time_axis,
    _times,
    _USD,
    new_figure,
    tex,
    window_bars,
)

__all__ = [
    "DAYS_PER_YEAR",
    "VAR_LEVEL",
    "TEARSHEET_COLUMNS",
    "daily_returns",
    "sharpe",
    "sortino",
    "annual_return",
    "max_drawdown",
    "calmar",
    "monthly_returns",
    "futures_returns",
    "rolling_beta_corr",
    "tearsheet_table",
    "plot_monthly_returns",
    "plot_return_histogram",
    "plot_rolling_beta",
    "draw_summary_panels",
]

#: Days in a year (annualisation).
DAYS_PER_YEAR: Final[float] = float(stats.DAYS_PER_YEAR)
#: Confidence level of the 1-day VaR / CVaR.
VAR_LEVEL: Final[float] = 0.99
#: Columns of :func:`tearsheet_table`, in order.
TEARSHEET_COLUMNS: Final[tuple[str, ...]] = (
    "rule",
    "days",
    "sharpe_hedged",
    "sharpe_unhedged",
    "sortino_hedged",
    "sortino_unhedged",
    "annual_return_hedged",
    "annual_return_unhedged",
    "max_drawdown_daily_hedged",
    "max_drawdown_daily_unhedged",
    "calmar_hedged",
    "calmar_unhedged",
    "var99_1d_hedged",
    "cvar99_1d_hedged",
    "var99_1d_unhedged",
    "cvar99_1d_unhedged",
    "beta_coin_on_futures",
    "corr_coin_futures",
)

FloatArray = npt.NDArray[np.float64]


def daily_returns(g: pd.DataFrame, column: str) -> pd.Series:
    """One return per UTC calendar day: the sum of that day's per-bar returns (NaN bars
    skipped; a day with no finite bar left out).

    Parameters
    ----------
    g : DataFrame
        One rule's ledger rows (columns ``ts`` and ``column``).
    column : str
        ``"ret_hedged"`` or ``"ret_unhedged"``.

    Returns
    -------
    Series
        Indexed by the day (naive UTC midnight), in time order.
    """
    ts = g["ts"]
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    day = ts.dt.floor("D")
    out = g[column].astype(float).groupby(day.to_numpy(), sort=True).sum(min_count=1)
    return out.dropna().rename(column)


def _arr(r: Any) -> FloatArray:
    a = np.asarray(r, dtype=np.float64)
    return a[np.isfinite(a)]


def sharpe(r: Any) -> float:
    r"""Annualised Sharpe ratio :math:`\bar r / s(r) \sqrt{365}` (risk-free 0; NaN with < 2 days)."""
    a = _arr(r)
    if a.size < 2:
        return math.nan
    sd = float(np.std(a, ddof=1))
    return float(np.mean(a) / sd * math.sqrt(DAYS_PER_YEAR)) if sd > 0 else math.nan


def sortino(r: Any) -> float:
    r"""Annualised Sortino ratio :math:`\bar r / \sqrt{\overline{\min(r, 0)^2}} \sqrt{365}` (target 0)."""
    a = _arr(r)
    if a.size < 2:
        return math.nan
    down = math.sqrt(float(np.mean(np.minimum(a, 0.0) ** 2)))
    return float(np.mean(a) / down * math.sqrt(DAYS_PER_YEAR)) if down > 0 else math.nan


def annual_return(r: Any) -> float:
    r"""Compound annual growth :math:`(\prod (1 + r))^{365/n} - 1` of daily returns."""
    a = _arr(r)
    if a.size == 0:
        return math.nan
    growth = float(np.prod(1.0 + a))
    return growth ** (DAYS_PER_YEAR / a.size) - 1.0 if growth > 0 else -1.0


def max_drawdown(r: Any) -> float:
    """Maximum drawdown of the compounded daily returns, a positive fraction
    (:func:`reports.stats.max_drawdown`)."""
    return stats.max_drawdown(_arr(r))


def calmar(r: Any) -> float:
    """Annual return over maximum drawdown (NaN when there is no drawdown)."""
    mdd = max_drawdown(r)
    return annual_return(r) / mdd if mdd > 0 else math.nan


def monthly_returns(daily: pd.Series) -> pd.DataFrame:
    """Compounded monthly returns as a year x month table (columns 1..12, NaN where no day)."""
    if daily.empty:
        return pd.DataFrame(columns=list(range(1, 13)), dtype=float)
    idx = pd.DatetimeIndex(daily.index)
    growth = (1.0 + daily).groupby([idx.year, idx.month]).prod() - 1.0
    table = growth.unstack()
    table.index.name, table.columns.name = "year", "month"
    return table.reindex(columns=list(range(1, 13)))


def futures_returns(g: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """Per-bar coin and futures returns of one rule's ledger rows, NaN on the first bar and
    where the held contract changes (the price jump of a roll is not a return)."""
    coin = g["alt_price"].to_numpy(dtype=float)
    fut = g["fut_price"].to_numpy(dtype=float)
    cid = g["contract_id"].astype(str).to_numpy()
    r_coin = np.full(coin.size, np.nan)
    r_fut = np.full(fut.size, np.nan)
    if coin.size > 1:
        r_coin[1:] = coin[1:] / coin[:-1] - 1.0
        r_fut[1:] = fut[1:] / fut[:-1] - 1.0
        r_fut[1:][cid[1:] != cid[:-1]] = np.nan
    bad = ~(np.isfinite(r_coin) & np.isfinite(r_fut))
    r_coin[bad] = np.nan
    r_fut[bad] = np.nan
    return r_coin, r_fut


def rolling_beta_corr(g: pd.DataFrame, window_bars: int) -> tuple[FloatArray, FloatArray]:
    r"""Rolling beta :math:`\mathrm{cov}(c, f) / \mathrm{var}(f)` and correlation of the coin's
    returns :math:`c` on the futures' :math:`f` over ``window_bars`` bars (at least 90 % present)."""
    r_coin, r_fut = futures_returns(g)
    c, f = pd.Series(r_coin), pd.Series(r_fut)
    minp = max(2, int(0.9 * window_bars))
    cov = c.rolling(window_bars, min_periods=minp).cov(f)
    var = f.rolling(window_bars, min_periods=minp).var()
    corr = c.rolling(window_bars, min_periods=minp).corr(f)
    return (cov / var.where(var > 0)).to_numpy(), corr.to_numpy()


def _full_beta_corr(g: pd.DataFrame) -> tuple[float, float]:
    c, f = futures_returns(g)
    ok = np.isfinite(c) & np.isfinite(f)
    if ok.sum() < 3:
        return math.nan, math.nan
    cov = np.cov(c[ok], f[ok], ddof=1)
    beta = float(cov[0, 1] / cov[1, 1]) if cov[1, 1] > 0 else math.nan
    corr = float(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])) if cov[0, 0] > 0 and cov[1, 1] > 0 else math.nan
    return beta, corr  # undefined (NaN) when either series never moved


def tearsheet_table(summary: Mapping[str, Any], ledger: pd.DataFrame, *, level: float = VAR_LEVEL) -> pd.DataFrame:
    """One row per rule: Sharpe, Sortino, annual return, max drawdown, Calmar of the hedged
    and the unhedged daily returns, 1-day VaR / CVaR at ``level``, and the full-sample beta
    and correlation of coin on futures returns (definitions in the module docstring).

    Returns
    -------
    DataFrame
        Columns :data:`TEARSHEET_COLUMNS`, rules in ``summary.json`` order.
    """
    rows = []
    for rule, g in split_rules(ledger, list(summary["rules"])).items():
        row: dict[str, Any] = {"rule": rule}
        d_h, d_u = daily_returns(g, "ret_hedged"), daily_returns(g, "ret_unhedged")
        row["days"] = int(len(d_h))
        for side, d in (("hedged", d_h), ("unhedged", d_u)):
            row[f"sharpe_{side}"] = sharpe(d)
            row[f"sortino_{side}"] = sortino(d)
            row[f"annual_return_{side}"] = annual_return(d)
            row[f"max_drawdown_daily_{side}"] = max_drawdown(d)
            row[f"calmar_{side}"] = calmar(d)
            var, cvar = stats.var_cvar(d.to_numpy(), level)
            row[f"var99_1d_{side}"], row[f"cvar99_1d_{side}"] = var, cvar
        row["beta_coin_on_futures"], row["corr_coin_futures"] = _full_beta_corr(g)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(TEARSHEET_COLUMNS))


# -- figures ------------------------------------------------------------------------------------

_MONTHS: Final[tuple[str, ...]] = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                   "Dec")


def plot_monthly_returns(
    ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None
) -> Path | Figure:
    """Monthly returns heatmap (%), one panel for the unhedged coin and one per rule, on one
    colour scale centred at 0 (red losses, green gains); every cell prints its value."""
    frames = split_rules(ledger, rules)
    first = next(iter(frames.values()))
    panels = [("unhedged", monthly_returns(daily_returns(first, "ret_unhedged")))]
    panels += [(f"hedged: {tex(r)}", monthly_returns(daily_returns(g, "ret_hedged"))) for r, g in frames.items()]
    vals = np.concatenate([100.0 * t.to_numpy(dtype=float).ravel() for _n, t in panels])
    finite = vals[np.isfinite(vals)]
    lim = float(np.quantile(np.abs(finite), 0.98)) if finite.size else 1.0
    lim = lim or 1.0
    heights = [0.36 * max(len(t), 1) + 0.9 for _n, t in panels]
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11.0, sum(heights) + 0.9)
        axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights).ravel())
        im = None
        for ax, (name, table) in zip(axes, panels, strict=True):
            data = 100.0 * table.to_numpy(dtype=float)
            im = ax.imshow(data, aspect="auto", cmap="RdYlGn", vmin=-lim, vmax=lim, interpolation="nearest")
            for (i, j), v in np.ndenumerate(data):
                if math.isfinite(v):
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=9, in_layout=False,
                            color="black" if abs(v) < 0.6 * lim else "white")  # inside its cell
            ax.set_xticks(range(12), list(_MONTHS))
            ax.set_yticks(range(len(table)), [str(y) for y in table.index])
            ax.tick_params(axis="x", labelbottom=ax is axes[-1])
            ax.set_ylabel("year")
            ax.grid(False)
            ax.set_title(f"{name}: monthly return (%)", fontsize=11)
        if im is not None:
            fig.colorbar(im, ax=list(axes), shrink=0.6, label="monthly return (%)")
        fig.suptitle("Monthly returns on the coin notional")
        return _finish(fig, path)


def plot_return_histogram(
    ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None, ax: Axes | None = None,
    level: float = VAR_LEVEL,
) -> Path | Figure:
    """Histogram of daily returns (%), unhedged (grey, filled) against each rule (outlines in
    the rule's colour and line style), on shared bins; dashed lines at each 1-day VaR."""
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    first = next(iter(frames.values()))
    series = [("unhedged", 100.0 * daily_returns(first, "ret_unhedged").to_numpy(), None)]
    series += [(f"hedged: {tex(r)}", 100.0 * daily_returns(g, "ret_hedged").to_numpy(), r) for r, g in frames.items()]
    allv = np.concatenate([s for _n, s, _r in series])
    allv = allv[np.isfinite(allv)]
    lo, hi = (np.quantile(allv, [0.001, 0.999]) if allv.size else (-1.0, 1.0))
    bins = np.linspace(lo, hi, 61)
    with matplotlib.rc_context(STYLE):
        fig, ax, own = _figure_and_axes(ax)
        for name, v, rule in series:
            var, _cvar = stats.var_cvar(v / 100.0, level)
            clipped = np.clip(v, bins[0], bins[-1])
            if rule is None:
                ax.hist(clipped, bins=bins, color=_UNHEDGED_COLOUR, alpha=0.35,
                        label=f"{name} (VaR {100 * var:.1f} %)")
                ax.axvline(-100.0 * var, color=_UNHEDGED_COLOUR, ls="--", lw=1.0)
            else:
                st = styles[rule]
                ax.hist(clipped, bins=bins, histtype="step", lw=1.4, color=st["color"], ls=st["ls"],
                        label=f"{name} (VaR {100 * var:.1f} %)")
                ax.axvline(-100.0 * var, color=st["color"], ls="--", lw=1.0)
        ax.set_title(f"Daily returns on the coin notional; dashed: 1-day VaR {100 * level:g} %")
        ax.set_xlabel("daily return (%, outer 0.1 % of days pooled in the end bins)")
        ax.set_ylabel("days")
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        _legend(fig, ax, own, ncols=2)
        return _finish(fig, path)


def plot_rolling_beta(
    ledger: pd.DataFrame, path: Path | None = None, *, bars_per_day: float, window_days: float = 30.0
) -> Path | Figure:
    """Rolling beta and correlation of the coin's returns on the futures' returns (two
    panels), from the ledger's ``alt_price`` and ``fut_price`` (the same for every rule)."""
    frames = split_rules(ledger)
    g = next(iter(frames.values()))
    w = window_bars(bars_per_day, window_days)
    beta, corr = rolling_beta_corr(g, w)
    full_beta, full_corr = _full_beta_corr(g)
    x = _times(g)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10.0, 6.5)
        ax_b, ax_c = fig.subplots(2, 1, sharex=True)
        _line(ax_b, x, beta, color="tab:blue", lw=1.1, label=f"rolling {window_days:g}-day beta")
        if math.isfinite(full_beta):
            ax_b.axhline(full_beta, color="black", ls="--", lw=1.0, label=f"full sample {full_beta:.2f}")
        ax_b.set_ylabel("beta")
        ax_b.set_title("Beta of the coin on the futures (cov / var of per-bar returns)", fontsize=11)
        _line(ax_c, x, corr, color="tab:purple", lw=1.1, label=f"rolling {window_days:g}-day correlation")
        if math.isfinite(full_corr):
            ax_c.axhline(full_corr, color="black", ls="--", lw=1.0, label=f"full sample {full_corr:.2f}")
        ax_c.set_ylabel("correlation")
        ax_c.set_ylim(min(0.0, float(np.nanmin(corr)) if np.isfinite(corr).any() else 0.0) - 0.05, 1.05)
        ax_c.set_title("Correlation of coin and futures returns", fontsize=11)
        for ax in (ax_b, ax_c):
            _full_span(ax, x)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
        ax_b.tick_params(labelbottom=False)
        _time_axis(ax_c)
        fig.suptitle("Coin vs hedge instrument: rolling beta and correlation")
        return _finish(fig, path)


def draw_summary_panels(fig: Figure, box: tuple[float, float, float, float], ledger: pd.DataFrame,
                        metrics: pd.DataFrame, rule: str) -> tuple[Axes, Axes]:
    """The executive summary's small figure, drawn into ``box`` (inches from the page's
    bottom-left: left, bottom, width, height, axes titles and tick labels included) of a page.

    Left: cumulative P&L of the coin alone (``equity_unhedged - equity_unhedged[0]``) and of
    the position hedged with ``rule`` (``equity_hedged - equity_hedged[0]``), USD. Right: the
    hedge effectiveness of every rule at the headline horizon (``he_<horizon>`` of
    ``metrics``) with its bootstrap interval (``he_ci_lo`` .. ``he_ci_hi``), the rule
    ``rule`` marked, and the oracle ρ² dashed.
    """
    w_in, h_in = fig.get_size_inches()
    left, bottom, width, height = box
    label_w = 1.9  # rule names left of the right panel
    right_w = min(2.6, 0.28 * width)
    top_pad, bottom_pad = 0.3, 0.45  # axes title above, tick labels and x label below
    y0, hh = (bottom + bottom_pad) / h_in, (height - bottom_pad - top_pad) / h_in
    pnl_left = left + 0.85  # room for the USD tick labels
    pnl_w = width - 0.85 - label_w - right_w - 0.35
    ax = fig.add_axes((pnl_left / w_in, y0, pnl_w / w_in, hh))
    ax_he = fig.add_axes(((left + width - right_w) / w_in, y0, right_w / w_in, hh))
    frames = split_rules(ledger, list(metrics["rule"]))
    g = frames[rule]
    x = _times(g)
    eq_u = g["equity_unhedged"].to_numpy(dtype=float)
    eq_h = g["equity_hedged"].to_numpy(dtype=float)
    _line(ax, x, eq_u - eq_u[0], color=_UNHEDGED_COLOUR, lw=1.0, label="coin alone")
    _line(ax, x, eq_h - eq_h[0], color=_styles(list(frames))[rule]["color"], lw=1.0, label=f"hedged with {tex(rule)}")
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_title("Cumulative P&L since the start (USD)", fontsize=9, loc="left")
    ax.yaxis.set_major_formatter(_USD)
    ax.tick_params(labelsize=7.5)
    _full_span(ax, x)
    _time_axis(ax, label=False)
    ax.legend(loc="best", fontsize=7.5, frameon=False)
    horizon = str(metrics["he_horizon"].iloc[0])
    he = metrics[f"he_{horizon}"].to_numpy(dtype=float)
    lo = metrics["he_ci_lo"].to_numpy(dtype=float)
    hi = metrics["he_ci_hi"].to_numpy(dtype=float)
    ys = np.arange(len(metrics))[::-1]
    colours = ["C3" if r == rule else "0.3" for r in metrics["rule"]]
    for y, v, a, b, c in zip(ys, he, lo, hi, colours, strict=True):
        if math.isfinite(v):
            ax_he.errorbar([100 * v], [y], xerr=[[100 * max(v - a, 0.0)], [100 * max(b - v, 0.0)]]
                           if math.isfinite(a) and math.isfinite(b) else None, fmt="o", color=c, ms=4,
                           capsize=3, lw=1.0)
    oracle = float(metrics["oracle_r2"].iloc[0]) if "oracle_r2" in metrics.columns else math.nan
    if math.isfinite(oracle):
        ax_he.axvline(100 * oracle, color="0.5", ls="--", lw=0.8)
    ax_he.set_yticks(ys, [tex(str(r) if len(str(r)) <= 30 else str(r)[:29] + "~") for r in metrics["rule"]])
    ax_he.set_ylim(-0.7, len(metrics) - 0.3)
    ax_he.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
    ax_he.xaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax_he.tick_params(labelsize=7.5)
    ax_he.set_title(f"HE at {horizon}, 95 % interval", fontsize=9, loc="left")
    ax_he.set_xlabel("variance removed (dashed: oracle ρ²)", fontsize=7.5)
    return ax, ax_he
