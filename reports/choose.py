"""Figures that help choose a hedge: the coin scan's league table and the margin-stress curve.

They read the tables of :mod:`backtest.hedgeability` and :mod:`backtest.margin_stress` and never simulate.
Each returns a :class:`matplotlib.figure.Figure` (drawn on its own Agg canvas; no ``pyplot``)
and writes it as a PNG when given a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.atomic import atomic_file

__all__ = ["plot_scan", "plot_stress", "plot_index_weights"]


def plot_scan(table: pd.DataFrame, underlyings: tuple[str, ...], path: Path | None = None, *, ax: Any = None) -> Any:
    """League table as a dot plot: daily HE per coin (rows, best first) and underlying (markers),
    the oracle rho^2 of the best underlying as a grey bar; coin labels carry the data span.

    Returns the :class:`matplotlib.figure.Figure` (written to ``path`` as PNG when given).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(len(table), 1)
    if ax is None:
        fig = Figure(figsize=(9, 1.5 + 0.28 * n), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    y = np.arange(len(table))[::-1]
    best_oracle = [row[f"oracle_r2_{row['best_underlying']}"] for _, row in table.iterrows()]
    ax.barh(y, 100 * np.asarray(best_oracle, dtype=float), color="0.88", height=0.7, label="oracle ρ² (per bar), best underlying")
    markers = ["o", "s", "^", "D", "v", "P"]
    for i, u in enumerate(underlyings):
        ax.scatter(100 * table[f"he_daily_{u}"].to_numpy(dtype=float), y, marker=markers[i % len(markers)],
                   s=22, zorder=3, label=f"HE daily, futures on {u}")
    labels = [f"{r.coin}  ({str(r.start)[:7]} – {str(r.end)[:7]})" for r in table.itertuples()]
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel("hedge effectiveness at the daily horizon (%)")
    ax.set_title("Hedgeability league table: best rule per coin and underlying")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        with atomic_file(Path(path)) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    return fig



def plot_stress(result: Any, path: Path | None = None, *, ax: Any = None) -> Any:
    """P(margin call) (solid) and P(liquidation) (dashed) against starting collateral, per rule;
    dotted verticals at each rule's 99 % collateral, dash-dot at the historical ``min_safe_collateral``.

    Returns the :class:`matplotlib.figure.Figure` (written to ``path`` as PNG when given).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(9, 5.5), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    info = result.info
    colors = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    for i, (label, t) in enumerate(result.table.groupby("rule", sort=False)):
        c = colors[i % len(colors)]
        x = t["collateral_usd"].to_numpy() / 1e3
        ax.plot(x, 100 * t["p_margin_call"].to_numpy(), color=c, lw=1.8, label=f"{label}: P(margin call)")
        ax.plot(x, 100 * t["p_liquidation"].to_numpy(), color=c, lw=1.2, ls="--", label=f"{label}: P(liquidation)")
        r = info["rules"][label]
        ax.axvline(r["collateral_99_usd"] / 1e3, color=c, ls=":", lw=1.2,
                   label=f"{label}: 99 % survival {r['collateral_99_usd'] / 1e3:,.0f}k")
        ax.axvline(r["historical_min_safe_collateral_usd"] / 1e3, color=c, ls="-.", lw=1.0,
                   label=f"{label}: historical min safe {r['historical_min_safe_collateral_usd'] / 1e3:,.0f}k")
    for level in (5, 1):
        ax.axhline(level, color="grey", lw=0.6)
    ax.set_xlabel("starting collateral (thousand USD)")
    ax.set_ylabel(f"probability within {info['horizon_days']:g} days (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"Margin stress: {info['paths']} stationary-bootstrap paths, mean block {info['block_bars']:.1f} bars")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    if path is not None:
        with atomic_file(Path(path)) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    return fig


def plot_index_weights(summary: Any, path: Path | None = None, *, ax: Any = None) -> Any:
    """What the index held: target weights at each rebalance in effect during the replay, stacked
    (a step per rebalance), with the number of constituents held on a second axis. Exits caused by
    the end of a price series (``cause = "data_end"``) are marked. Reads ``summary.json``'s
    ``index.weights`` and ``index.events``. Returns the Figure, or, given a path, writes the PNG
    there and returns the path (as :mod:`reports.figures` does)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from reports.figures import STYLE

    idx = summary.get("index", {}) or {}
    table = idx.get("weights") or {}
    period = summary.get("period", {}) or {}
    with matplotlib.rc_context(STYLE):
        if ax is None:
            fig = Figure(figsize=(10, 6), dpi=150, layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.add_subplot(1, 1, 1)
        else:
            fig = ax.figure
        symbols = list(table.get("symbols") or [])
        if not symbols:
            ax.text(0.5, 0.5, "futures on a single symbol: no index weights", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
        else:
            starts = pd.to_datetime(table["ts"], utc=True).tz_convert(None)
            end = pd.Timestamp(period.get("end", starts[-1])).tz_convert(None) if period.get("end") else starts[-1]
            start = pd.Timestamp(period.get("start", starts[0])).tz_convert(None) if period.get("start") else starts[0]
            x = [max(t, start) for t in starts] + [end]
            w = np.asarray(table["weights"], dtype=float) * 100.0
            w = np.vstack([w, w[-1:]])
            colours = [matplotlib.colormaps["tab20"](i % 20) for i in range(len(symbols))]
            ax.stackplot(x, w.T, labels=symbols, step="post", alpha=0.9, colors=colours)
            ax.set_ylim(0, 100)
            ax.set_ylabel("target weight (%)")
            ax.set_title(f"What the index held: {len(symbols)} constituents over the replay")
            held = (w > 0).sum(axis=1)
            twin = ax.twinx()
            twin.step(x, held, where="post", color="black", lw=1.4, label="constituents held")
            twin.set_ylabel("constituents held")
            twin.set_ylim(0, max(held) + 1)
            ended: dict[pd.Timestamp, list[str]] = {}
            for e in idx.get("events", []) or []:
                if e.get("event") == "exit" and e.get("cause") == "data_end":
                    t = pd.Timestamp(e["ts"]).tz_convert(None).floor("D")
                    if start <= t <= end:
                        ended.setdefault(t, []).append(str(e["symbol"]))
            for t, names in ended.items():
                ax.axvline(t, color="black", ls=":", lw=1.0)
                ax.annotate("data ended: " + ", ".join(names), (t, 98), rotation=90, va="top", ha="right",
                            fontsize=9, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8, "lw": 0})
            handles, labels = ax.get_legend_handles_labels()
            h2, l2 = twin.get_legend_handles_labels()
            ax.legend(handles + h2, labels + l2, loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=9,
                      title="constituent")
            ax.set_xlabel("time (UTC)")
        if path is not None:
            with atomic_file(Path(path)) as tmp:
                fig.savefig(tmp, format="png", metadata={"Software": None})
            return Path(path)
        return fig
