"""Report figures: one function per figure, each saved as its own PNG.

Every function takes plain data (the ledger ``DataFrame``, dicts from ``summary.json``,
the compare ``DataFrame``) and, optionally, a path; none of them re-simulates anything.
With a path the figure is saved there as a PNG and the path returned; without one the
:class:`~matplotlib.figure.Figure` itself is returned (a notebook shows it inline). The
single-panel figures also take ``ax=`` to draw into the caller's axes. Nothing here
touches matplotlib's global state: no ``pyplot``, no ``matplotlib.use``; figures are
drawn on their own Agg canvas at 150 dpi with fonts of at least 9 pt, a title, axis labels
with units and a legend, and saved without a ``Software`` tag so identical inputs give
identical bytes.

Downsampling: a line with more than :data:`MAX_POINTS` points (e.g. 39,000 hourly bars)
is thinned before plotting by *min/max decimation*: the series is cut into equal buckets
of consecutive bars and, per bucket, the bars holding the minimum and the maximum are
kept (in time order). At most ``MAX_POINTS`` points remain, and every peak and trough
of the full series is still drawn, so the envelope -- what the eye reads from a
39,000-point line at 1,500 pixels -- is unchanged. Computations (rolling windows,
drawdowns, cumulative sums) always run on the full series first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ContextManager, Final

import matplotlib
import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402
from matplotlib.typing import RcKeyType  # noqa: E402

from backtest.atomic import atomic_file  # noqa: E402
from backtest.schema import PNL_COLUMN, PNL_COMPONENTS  # noqa: E402
from reports import stats  # noqa: E402
from reports.events import Event, split_rules  # noqa: E402

__all__ = [
    "DPI",
    "MAX_POINTS",
    "MAX_TICKS",
    "STYLE",
    "atomic_output",
    "new_figure",
    "plot_equity",
    "plot_rolling_vol",
    "plot_drawdowns",
    "plot_hedge_ratio",
    "plot_rolling_he",
    "plot_pnl_attribution",
    "plot_event_panels",
    "plot_margin",
    "plot_compare_scatter",
    "plot_compare_table",
]

#: Resolution of every PNG (dots per inch).
DPI: Final[int] = 150
#: Most points drawn per line (see the module docstring).
MAX_POINTS: Final[int] = 5000
#: Most rebalancing bars marked individually in the hedge-ratio figure.
MAX_TICKS: Final[int] = 300
#: Default figure size in inches (1,500 x 900 px at 150 dpi).
SIZE: Final[tuple[float, float]] = (10.0, 6.0)
#: Matplotlib settings applied inside every figure function (never globally).
STYLE: Final[dict[RcKeyType, Any]] = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,
    "svg.hashsalt": "hedgebt",
}
_UNHEDGED_COLOUR: Final[str] = "0.35"
_PALETTE: Final[tuple[str, ...]] = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


def atomic_output(path: Path) -> ContextManager[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    :func:`backtest.atomic.atomic_file`: same-folder temporary file, ``fsync``, :func:`os.replace`,
    folder ``fsync``; removed when the body raises; never written through a linked folder.
    """
    return atomic_file(path)


def new_figure(width: float = SIZE[0], height: float = SIZE[1]) -> Figure:
    """A pyplot-free figure with an Agg canvas (no global figure registry)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure_and_axes(ax: Axes | None) -> tuple[Figure, Axes]:
    """A new single-axes figure, or the figure of the caller's ``ax`` (drawn into, not cleared)."""
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = new_figure()
    return fig, fig.add_subplot()


def _finish(fig: Figure, path: Path | None) -> Path | Figure:
    """Save ``fig`` as a PNG at ``path`` and return the path; with no path, return the figure."""
    return fig if path is None else _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _colours(rules: Sequence[str]) -> dict[str, str]:
    return {r: _PALETTE[i % len(_PALETTE)] for i, r in enumerate(rules)}


def _times(g: pd.DataFrame) -> npt.NDArray[np.datetime64]:
    """Bar open times as naive UTC ``datetime64[us]`` (fast for matplotlib)."""
    ts = g["ts"]
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.to_numpy(dtype="datetime64[us]")


def _decimate(
    x: npt.NDArray[Any], y: npt.ArrayLike, max_points: int = MAX_POINTS
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """Min/max decimation to at most ``max_points`` points (NaN points dropped)."""
    yy = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(yy)
    x, yy = x[ok], yy[ok]
    n = yy.size
    if n <= max_points:
        return x, yy
    width = math.ceil(2 * n / max_points)
    buckets = math.ceil(n / width)
    pad = buckets * width - n
    lo = np.concatenate([yy, np.full(pad, np.inf)]).reshape(buckets, width).argmin(axis=1)
    hi = np.concatenate([yy, np.full(pad, -np.inf)]).reshape(buckets, width).argmax(axis=1)
    base = np.arange(buckets) * width
    idx = np.unique(np.concatenate([base + lo, base + hi, [0, n - 1]]))
    return x[idx], yy[idx]


def _line(ax: Axes, x: npt.NDArray[Any], y: npt.ArrayLike, **kw: Any) -> None:
    xd, yd = _decimate(x, y)
    ax.plot(xd, yd, **kw)


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _headroom(ax: Axes, frac: float = 0.3) -> None:
    """Extend the y axis upwards by ``frac`` of its span (room for a legend)."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + frac * (hi - lo))


def _full_span(ax: Axes, x: npt.NDArray[Any]) -> None:
    """Show the whole data period even where a rolling statistic is still undefined."""
    if x.size:
        ax.set_xlim(x[0], x[-1])


_USD = FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def plot_equity(
    ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None, ax: Axes | None = None
) -> Path | Figure:
    """Hedged equity of each rule against the unhedged equity (USD).

    The unhedged line is the same capital without futures (``equity_unhedged``); it is
    drawn once, from the first rule.
    """
    frames = split_rules(ledger, rules)
    colours = _colours(list(frames))
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure_and_axes(ax)
        first = next(iter(frames.values()))
        _line(ax, _times(first), first["equity_unhedged"], color=_UNHEDGED_COLOUR, lw=1.2, label="unhedged")
        for rule, g in frames.items():
            _line(ax, _times(g), g["equity_hedged"], color=colours[rule], lw=1.2, label=f"hedged: {rule}")
        ax.set_title("Equity: hedged vs unhedged")
        ax.set_ylabel("equity (USD)")
        ax.yaxis.set_major_formatter(_USD)
        _time_axis(ax)
        ax.legend(loc="best")
        return _finish(fig, path)


def _window_bars(bars_per_day: float, window_days: float) -> int:
    return max(2, int(round(window_days * bars_per_day)))


def plot_rolling_vol(
    ledger: pd.DataFrame,
    path: Path | None = None,
    *,
    bars_per_day: float,
    window_days: float = 30.0,
    rules: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Path | Figure:
    """Rolling annualised volatility of hedged and unhedged per-bar returns (%).

    sd over the last ``window_days`` days of bars (at least 90 % of them present) times
    sqrt(365 x bars per day).
    """
    frames = split_rules(ledger, rules)
    colours = _colours(list(frames))
    w = _window_bars(bars_per_day, window_days)
    scale = math.sqrt(stats.DAYS_PER_YEAR * bars_per_day) * 100.0
    minp = max(2, int(0.9 * w))
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure_and_axes(ax)
        first = next(iter(frames.values()))
        vol_u = first["ret_unhedged"].rolling(w, min_periods=minp).std() * scale
        _line(ax, _times(first), vol_u, color=_UNHEDGED_COLOUR, lw=1.2, label="unhedged")
        for rule, g in frames.items():
            vol_h = g["ret_hedged"].rolling(w, min_periods=minp).std() * scale
            _line(ax, _times(g), vol_h, color=colours[rule], lw=1.2, label=f"hedged: {rule}")
        _full_span(ax, _times(first))
        ax.set_title(f"Rolling volatility ({window_days:g}-day window, annualised, 365 days)")
        ax.set_ylabel("volatility (% per year)")
        ax.set_ylim(bottom=0)
        _time_axis(ax)
        ax.legend(loc="best")
        return _finish(fig, path)


def plot_drawdowns(
    ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None, ax: Axes | None = None
) -> Path | Figure:
    """Drawdown of prod(1 + ret) for the unhedged and each hedged position (%)."""
    frames = split_rules(ledger, rules)
    colours = _colours(list(frames))
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure_and_axes(ax)
        first = next(iter(frames.values()))
        x = _times(first)
        dd_u = -100.0 * stats.drawdown(first["ret_unhedged"].to_numpy())
        xd, yd = _decimate(x, dd_u)
        ax.fill_between(xd, yd, 0.0, color=_UNHEDGED_COLOUR, alpha=0.25, lw=0)
        ax.plot(xd, yd, color=_UNHEDGED_COLOUR, lw=1.0, label="unhedged")
        for rule, g in frames.items():
            dd_h = -100.0 * stats.drawdown(g["ret_hedged"].to_numpy())
            _line(ax, _times(g), dd_h, color=colours[rule], lw=1.2, label=f"hedged: {rule}")
        ax.set_title("Drawdown from the running peak (returns on the coin notional)")
        ax.set_ylabel("drawdown (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        _time_axis(ax)
        ax.legend(loc="best")
        return _finish(fig, path)


def plot_hedge_ratio(ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None) -> Path | Figure:
    """Held and target hedge ratio per rule, rebalances and rolls marked; contracts held.

    One panel per rule (held ratio, target ratio, a tick at the bottom for each
    rebalancing bar -- or, above :data:`MAX_TICKS` rebalances, their count and average
    spacing in the legend -- and a dotted vertical line at each roll), then one panel with
    the signed number of contracts of every rule.
    """
    frames = split_rules(ledger, rules)
    colours = _colours(list(frames))
    n = len(frames)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10.0, 2.4 * n + 2.8)
        axes = fig.subplots(n + 1, 1, sharex=True, height_ratios=[1.0] * n + [1.1])
        for ax, (rule, g) in zip(axes[:-1], frames.items(), strict=True):
            x = _times(g)
            _line(ax, x, g["hedge_ratio_held"], color=colours[rule], lw=1.2, label="held")
            _line(ax, x, g["hedge_ratio_target"], color="black", lw=0.8, ls="--", alpha=0.7, label="target")
            lo, hi = ax.get_ylim()
            reb = g["rebalanced"].to_numpy(dtype=bool)
            n_reb = int(reb.sum())
            if 0 < n_reb <= MAX_TICKS:
                ax.plot(x[reb], np.full(n_reb, lo + 0.04 * (hi - lo)), ls="none", marker="|",
                        ms=8, color="tab:gray", label=f"rebalance ({n_reb})")
            elif n_reb > MAX_TICKS:
                # ticks this dense would merge into a solid bar: say how often instead
                ax.plot([], [], ls="none", label=f"rebalances: {n_reb:,}, one every {len(g) / n_reb:,.0f} bars "
                                                 "on average (too dense to mark)")
            rolls = x[g["rolled"].to_numpy(dtype=bool)]
            for i, t in enumerate(rolls):
                ax.axvline(t, color="tab:red", ls=":", lw=1.0, label=f"roll ({rolls.size})" if i == 0 else None)
            ax.set_ylim(lo, hi)
            _headroom(ax)
            ax.set_ylabel("hedge ratio h")
            ax.set_title(f"Hedge ratio: {rule}", fontsize=11)
            ax.legend(loc="upper left", ncols=4)
        ax = axes[-1]
        for rule, g in frames.items():
            _line(ax, _times(g), g["contracts"], color=colours[rule], lw=1.2, label=rule)
        ax.set_title("Contracts held (negative = short)", fontsize=11)
        ax.set_ylabel("contracts")
        ax.yaxis.set_major_formatter(_USD)
        ax.legend(loc="best")
        _time_axis(ax)
        fig.suptitle("Hedge ratio and futures position over time")
        return _finish(fig, path)


def plot_rolling_he(
    ledger: pd.DataFrame,
    path: Path | None = None,
    *,
    bars_per_day: float,
    oracle_r2: float,
    window_days: float = 30.0,
    rules: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Path | Figure:
    """Rolling hedge effectiveness 1 - Var(hedged) / Var(unhedged) per rule (%).

    Variances over the last ``window_days`` days of bars (at least 90 % present); the
    horizontal line is the full-sample oracle ρ² (best constant hedge in hindsight).
    """
    frames = split_rules(ledger, rules)
    colours = _colours(list(frames))
    w = _window_bars(bars_per_day, window_days)
    minp = max(2, int(0.9 * w))
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure_and_axes(ax)
        for rule, g in frames.items():
            pair = g[["ret_hedged", "ret_unhedged"]].where(g[["ret_hedged", "ret_unhedged"]].notna().all(axis=1))
            var_h = pair["ret_hedged"].rolling(w, min_periods=minp).var()
            var_u = pair["ret_unhedged"].rolling(w, min_periods=minp).var()
            he = 100.0 * (1.0 - var_h / var_u.where(var_u > 0))
            _line(ax, _times(g), he, color=colours[rule], lw=1.2, label=rule)
        if math.isfinite(oracle_r2):
            ax.axhline(100.0 * oracle_r2, color="black", ls="--", lw=1.2,
                       label=f"oracle ρ² = {100.0 * oracle_r2:.1f} %")
        ax.axhline(0.0, color="0.5", lw=0.8)
        _full_span(ax, _times(next(iter(frames.values()))))
        ax.set_title(f"Rolling hedge effectiveness ({window_days:g}-day window)")
        ax.set_ylabel("HE = 1 - Var(hedged) / Var(unhedged) (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        _time_axis(ax)
        ax.legend(loc="best")
        return _finish(fig, path)


def plot_pnl_attribution(pnl: Mapping[str, Mapping[str, float]], path: Path | None = None) -> Path | Figure:
    """P&L attribution per rule (USD): market legs and costs on separate scales.

    Parameters
    ----------
    pnl : mapping
        ``{rule: {component: USD}}`` with the keys of ``backtest.schema.PNL_COMPONENTS``
        (``summary.json`` ``rules.<rule>.pnl``); ``total`` is drawn when present.
    """
    rules = list(pnl)
    colours = _colours(rules)
    market = ["altcoin", "futures", "total"]
    costs = [c for c in PNL_COMPONENTS if c not in ("altcoin", "futures")]
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11.0, 6.0)
        ax_m, ax_c = fig.subplots(1, 2, width_ratios=[1.0, 1.5])
        width = 0.8 / max(len(rules), 1)
        for ax, comps in ((ax_m, market), (ax_c, costs)):
            xs = np.arange(len(comps))
            for i, rule in enumerate(rules):
                vals = [float(pnl[rule].get(c, math.nan)) for c in comps]
                bars = ax.bar(xs + (i - (len(rules) - 1) / 2) * width, vals, width, color=colours[rule], label=rule)
                if ax is ax_c:
                    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals], fontsize=9, padding=2, rotation=90)
            finite = [v for r in rules for c in comps if math.isfinite(v := float(pnl[r].get(c, math.nan)))]
            lo, hi = min([0.0, *finite]), max([0.0, *finite])
            span = (hi - lo) or 1.0
            ax.set_ylim(lo - (0.2 if ax is ax_c else 0.05) * span, hi + (0.2 if ax is ax_c else 0.05) * span)
            ax.set_xticks(xs, comps)
            ax.axhline(0.0, color="black", lw=0.8)
            ax.yaxis.set_major_formatter(_USD)
            ax.set_ylabel("P&L (USD)")
        ax_m.set_title("Market legs and total", fontsize=11)
        ax_c.set_title("Costs and funding (own scale)", fontsize=11)
        ax_m.legend(loc="best")
        fig.suptitle("P&L attribution over the whole period")
        return _finish(fig, path)


def plot_event_panels(
    ledger: pd.DataFrame, events: Sequence[Event], path: Path | None = None, *, rules: Sequence[str] | None = None
) -> Path | Figure:
    """One small panel per event: cumulative hedged vs unhedged P&L inside the window (USD).

    Hedged P&L is the cumulative sum of all P&L columns (change of hedged equity),
    unhedged P&L the cumulative ``pnl_altcoin``; both start at 0 at the window start.
    """
    frames = split_rules(ledger, rules)
    colours = _colours(list(frames))
    cols = [PNL_COLUMN[c] for c in PNL_COMPONENTS]
    n = max(len(events), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(max(10.0, 3.4 * ncols), 3.3 * nrows + 0.8)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
        for ax in axes[len(events):]:
            ax.set_axis_off()
        if not events:
            axes[0].text(0.5, 0.5, "no event windows inside the data period", ha="center", va="center",
                         transform=axes[0].transAxes)
        for ax, ev in zip(axes, events, strict=False):
            drawn = False
            for k, (rule, g) in enumerate(frames.items()):
                m = ((g["ts"] >= ev.start) & (g["ts"] < ev.end)).to_numpy()
                if not m.any():
                    continue
                x = _times(g)[m]
                if k == 0:
                    _line(ax, x, np.cumsum(g["pnl_altcoin"].to_numpy()[m]), color=_UNHEDGED_COLOUR, lw=1.2,
                          label="unhedged")
                _line(ax, x, np.cumsum(g[cols].to_numpy().sum(axis=1)[m]), color=colours[rule], lw=1.2,
                      label=f"hedged: {rule}")
                drawn = True
            if not drawn:
                ax.text(0.5, 0.5, "no data in this window", ha="center", va="center", transform=ax.transAxes)
            ax.axhline(0.0, color="0.5", lw=0.8)
            ax.set_title(f"{ev.title}\n{ev.span()}", fontsize=10)
            ax.set_ylabel("cumulative P&L (USD)")
            ax.yaxis.set_major_formatter(_USD)
            locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            ax.set_xlabel("time (UTC)")
        if events:
            handles, labels = axes[0].get_legend_handles_labels()
            if handles:
                axes[0].legend(handles, labels, loc="best")
        fig.suptitle("Event windows: cumulative P&L, hedged vs unhedged")
        return _finish(fig, path)


def plot_margin(ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None) -> Path | Figure:
    """Margin balance against maintenance and initial requirement, one panel per rule (USD).

    Margin calls are marked with triangles, liquidations with crosses.
    """
    frames = split_rules(ledger, rules)
    colours = _colours(list(frames))
    n = len(frames)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(10.0, 2.8 * n + 1.2)
        axes = np.atleast_1d(fig.subplots(n, 1, sharex=True, squeeze=False).ravel())
        for ax, (rule, g) in zip(axes, frames.items(), strict=True):
            x = _times(g)
            _line(ax, x, g["margin_balance"], color=colours[rule], lw=1.2, label="margin balance")
            _line(ax, x, g["margin_initial"], color="0.3", lw=1.0, ls="--", label="initial requirement")
            _line(ax, x, g["margin_required"], color="tab:red", lw=1.0, label="maintenance requirement")
            calls = g["margin_call"].to_numpy(dtype=bool)
            if calls.any():
                ax.plot(x[calls], g["margin_balance"].to_numpy()[calls], ls="none", marker="v", ms=5,
                        color="tab:red", label=f"margin call ({int(calls.sum())})")
            liq = g["liquidated"].to_numpy(dtype=bool)
            if liq.any():
                ax.plot(x[liq], g["margin_balance"].to_numpy()[liq], ls="none", marker="X", ms=8,
                        color="black", label=f"liquidation ({int(liq.sum())})")
            _headroom(ax)
            ax.set_title(f"Margin: {rule}", fontsize=11)
            ax.set_ylabel("USD")
            ax.yaxis.set_major_formatter(_USD)
            ax.legend(loc="upper left", ncols=3)
        _time_axis(axes[-1])
        fig.suptitle("Margin balance vs maintenance and initial requirement")
        return _finish(fig, path)


def plot_compare_scatter(compare: pd.DataFrame, path: Path | None = None, *, ax: Axes | None = None) -> Path | Figure:
    """HE against annual cost drag for every compared variant, with the efficient frontier.

    Each variant is a point coloured by family; the frontier joins the variants that no
    other variant beats on both higher HE and lower cost drag
    (:func:`reports.stats.efficient_frontier`), in order of cost.
    """
    he = 100.0 * compare["hedge_effectiveness"].to_numpy(dtype=float)
    cost = compare["cost_drag_bps_per_year"].to_numpy(dtype=float)
    families = list(pd.unique(compare["family"].astype(str)))
    colours = _colours(families)
    front = stats.efficient_frontier(he, cost)
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure_and_axes(ax)
        fam = compare["family"].astype(str).to_numpy()
        for f in families:
            m = fam == f
            ax.scatter(cost[m], he[m], s=36, color=colours[f], label=f, zorder=3)
        order = np.argsort(cost[front], kind="stable")
        ax.plot(cost[front][order], he[front][order], color="black", lw=1.2, marker="o", mfc="none", ms=10,
                label="efficient frontier", zorder=2)
        names = compare["variant"].astype(str).to_numpy()
        if front.sum() <= 15:
            for xv, yv, name in zip(cost[front], he[front], names[front], strict=True):
                ax.annotate(name, (xv, yv), textcoords="offset points", xytext=(6, 4), fontsize=9)
        ax.set_title("Rule comparison: hedge effectiveness vs cost")
        ax.set_xlabel("cost drag (bps of coin notional per year)")
        ax.set_ylabel("hedge effectiveness (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.legend(loc="best")
        return _finish(fig, path)


#: Columns of the ranked compare table: (compare column, header, formatter).
_COMPARE_TABLE: Final[tuple[tuple[str, str, Any], ...]] = (
    ("rank", "rank", lambda v: f"{int(v)}"),
    ("variant", "variant", str),
    ("family", "family", str),
    ("rebalance", "rebalance", str),
    ("hedge_effectiveness", "HE", lambda v: f"{100 * v:.1f} %"),
    ("he_vs_oracle", "HE / oracle", lambda v: f"{v:.2f}"),
    ("cost_drag_bps_per_year", "cost (bps/yr)", lambda v: f"{v:,.0f}"),
    ("max_drawdown_hedged", "max DD hedged", lambda v: f"{100 * v:.1f} %"),
    ("margin_calls", "margin calls", lambda v: f"{v:,.0f}"),
    ("liquidations", "liquidations", lambda v: f"{v:,.0f}"),
)


def compare_table_rows(compare: pd.DataFrame, max_rows: int) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of the best ``max_rows`` variants by rank."""
    cols = [c for c in _COMPARE_TABLE if c[0] in compare.columns]
    top = compare.sort_values(["rank", "variant"], kind="stable").head(max_rows)
    header = [c[1] for c in cols]
    rows = [
        ["" if (isinstance(v, float) and not math.isfinite(v)) else fmt(v) for (name, _h, fmt), v in
         zip(cols, [row[c[0]] for c in cols], strict=True)]
        for _, row in top.iterrows()
    ]
    return header, rows


def plot_compare_table(compare: pd.DataFrame, path: Path | None = None, *, max_rows: int = 25) -> Path | Figure:
    """The compared variants ranked (best ``max_rows``), drawn as a table."""
    header, rows = compare_table_rows(compare, max_rows)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11.0, max(3.0, 0.29 * (len(rows) + 1) + 0.8))
        ax = fig.add_subplot()
        ax.set_axis_off()
        table = ax.table(cellText=rows or [[""] * len(header)], colLabels=header, loc="upper center",
                         cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1.0, 1.25)
        table.auto_set_column_width(list(range(len(header))))
        for (r, _c), cell in table.get_celld().items():
            if r == 0:
                cell.set_text_props(weight="bold")
                cell.set_facecolor("0.9")
        shown = f"best {len(rows)} of {len(compare)}" if len(compare) > len(rows) else f"all {len(rows)}"
        ax.set_title(f"Rule comparison ranked by the grid's rank ({shown} variants)")
        return _finish(fig, path)
