"""Figures that help choose a hedge: the coin scan's league table and the margin-stress curve.

They read the tables of :mod:`backtest.scan` and :mod:`backtest.stress` and never simulate.
Each returns a :class:`matplotlib.figure.Figure` (drawn on its own Agg canvas; no ``pyplot``)
and writes it as a PNG when given a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.atomic import atomic_file

__all__ = ["plot_scan", "plot_stress"]


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
