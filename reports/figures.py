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

Layout rules every figure keeps (checked by ``tests/reports/test_layout.py``): text a
user supplies (rule, coin, event and variant names) is escaped for matplotlib's mathtext
(:func:`tex`), so ``"$500,000 of RENDER, $500,000 of TAO"`` prints as written; legends sit
outside the plotted area (beside or below the axes); no two labels overlap and none leaves
the figure. Rules are told apart by colour *and* line style.

Downsampling: a line is thinned to the pixel width of its axes before plotting by
*min/max decimation*: the series is cut into as many buckets of consecutive bars as the
axes has pixel columns and, per bucket, the bars holding the minimum and the maximum are
kept (in time order). Every peak and trough of the full series is still drawn, so the
envelope -- what the eye reads from a 39,000-point line at 1,300 pixels -- is unchanged.
Computations (rolling windows, drawdowns, cumulative sums) always run on the full series
first.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import re
import textwrap
import os
import signal
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Final

import matplotlib
import matplotlib.style
import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator, PercentFormatter
from matplotlib.transforms import Bbox
from matplotlib.typing import RcKeyType
from PIL import Image

from backtest.atomic import atomic_file
from backtest.config import is_number
from backtest.errors import ConfigError, OutputError
from backtest.forked import gc_frozen
from backtest.schema import PNL_COLUMN, PNL_COMPONENTS
from reports import stats
from reports.events import Event, split_rules

if TYPE_CHECKING:  # pragma: no cover - typing only
    from backtest.progress import Progress

__all__ = [
    "DPI",
    "MAX_POINTS",
    "MAX_TICKS",
    "STYLE",
    "PNG_COMPRESS_LEVEL",
    "atomic_output",
    "new_figure",
    "tex",
    "roll_starts",
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
    "plot_compare_heatmap",
    "compare_heatmap_axes",
    "render_all",
    "default_workers",
]

#: Resolution of every PNG (dots per inch).
DPI: Final[int] = 150
#: Most points drawn per line when the axes width is not known (2 per pixel column of a
#: 10-inch figure at 150 dpi).
MAX_POINTS: Final[int] = 3000
#: Most rebalancing bars marked individually in the hedge-ratio figure.
MAX_TICKS: Final[int] = 300
#: zlib level of the PNGs written by :func:`png_rgb8` (1 = fastest: the demo's figures are 10 %
#: larger than Pillow's writer makes them at its default level 6, and written 3x faster).
PNG_COMPRESS_LEVEL: Final[int] = 1
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
    "path.simplify": True,
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
#: Line styles cycled with the colours, so rules stay distinguishable in print and when
#: their lines nearly coincide.
_LINESTYLES: Final[tuple[Any, ...]] = ("-", (0, (5, 2)), (0, (3, 1, 1, 1)), (0, (1, 1)))


def atomic_output(path: Path) -> ContextManager[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    :func:`backtest.atomic.atomic_file`: same-folder temporary file, ``fsync``, :func:`os.replace`,
    folder ``fsync``; removed when the body raises; never written through a linked folder.
    """
    return atomic_file(path)


def file_style() -> ContextManager[None]:
    """Matplotlib's own defaults for the block, whatever the caller set (``rcParams``, a style, a
    ``matplotlibrc``): a figure or PDF written to a file is the same bytes from a notebook with a
    dark style as from the command line. The figures' own :data:`STYLE` is applied on top."""
    return matplotlib.style.context("default")  # type: ignore[return-value]


def new_figure(width: float = SIZE[0], height: float = SIZE[1]) -> Figure:
    """A pyplot-free figure with an Agg canvas (no global figure registry)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def tex(text: Any) -> str:
    r"""``text`` with every ``$`` escaped (``\$``), so matplotlib draws it literally.

    Matplotlib reads the span between two unescaped dollar signs as mathtext: "Long
    $500,000 of RENDER, $500,000 of TAO" would print "500,000 of RENDER," in math italics.
    Every user-supplied string (rule, coin, event, variant names) goes through here.
    """
    return str(text).replace("\\$", "$").replace("$", r"\$")


def _figure_and_axes(ax: Axes | None) -> tuple[Figure, Axes, bool]:
    """A new single-axes figure, or the figure of the caller's ``ax`` (drawn into, not cleared).

    The third value is True when the figure is ours (legends may then go outside the axes).
    """
    if ax is not None:
        return ax.figure, ax, False  # type: ignore[return-value]
    fig = new_figure()
    return fig, fig.add_subplot(), True


def _finish(fig: Figure, path: Path | None) -> Path | Figure:
    """Save ``fig`` as a PNG at ``path`` and return the path; with no path, return the figure."""
    return fig if path is None else _save(fig, path)


class _Colours(threading.local):
    """While :func:`_drawn` draws a report's figure in this thread, ``few`` is where :func:`_save`
    records whether each PNG it writes as RGB has at most 256 colours (matplotlib's PDF writer then
    stores it as a palette image); None otherwise, so a figure saved outside a report records
    nothing. :func:`_drawn` hands the flag to the report's PDF (:meth:`PendingFigures.few_colours`),
    which embeds a PNG of more colours without decoding it (:class:`reports.pdf._PngPassThrough`)."""

    few: dict[Path, bool] | None = None


_COLOURS = _Colours()


def few_colours(image: Image.Image) -> bool:
    """Whether ``image`` has at most 256 colours (what :func:`_save` records for the PDF); stops
    counting at the 257th."""
    return image.getcolors(256) is not None


def record_colours(path: Path, image: Image.Image) -> None:
    """While :func:`_drawn` draws a report's figure, record for the PDF whether the RGB PNG written
    at ``path`` from ``image`` has at most 256 colours (:func:`few_colours`); otherwise nothing."""
    if _COLOURS.few is not None:
        _COLOURS.few[Path(path)] = few_colours(image)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    return struct.pack(">L", len(body)) + kind + body + struct.pack(">L", zlib.crc32(kind + body))


def png_rgb8(rgb: npt.NDArray[np.uint8], dpi: int) -> bytes:
    """An 8-bit RGB PNG of the pixels ``rgb`` (rows x columns x 3), at ``dpi``.

    Chunks ``IHDR`` (no interlace), ``pHYs`` (``round(dpi / 0.0254)`` pixels per metre),
    one ``IDAT`` and ``IEND``. Every row has PNG filter type 0 (none): the ``IDAT`` is
    ``zlib`` at :data:`PNG_COMPRESS_LEVEL` of ``0x00 + row`` for each row. Pillow's writer
    tries the five filters on every row and keeps the best; on the report's figures (white
    backgrounds, lines, text) its files were about the same size (1.3 % larger than these over
    the demo's figures) and took 2.5x the time (0.42 s against 0.17 s for a report's twelve).
    """
    h, w, channels = rgb.shape
    if rgb.dtype != np.uint8 or channels != 3:
        raise ValueError(f"png_rgb8 takes uint8 RGB pixels, not {rgb.dtype} with {channels} channels")
    rows = np.empty((h, 1 + 3 * w), np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = rgb.reshape(h, 3 * w)
    ppm = int(dpi / 0.0254 + 0.5)
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">LLBBBBB", w, h, 8, 2, 0, 0, 0)),
        _png_chunk(b"pHYs", struct.pack(">LLB", ppm, ppm, 1)),
        _png_chunk(b"IDAT", zlib.compress(rows.data, PNG_COMPRESS_LEVEL)),
        _png_chunk(b"IEND", b""),
    ))


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        if fig.dpi == DPI and isinstance(fig.canvas, FigureCanvasAgg):
            # opaque figures: draw once and write RGB (a quarter less to compress than RGBA)
            fig.canvas.draw()
            rgb = np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
            tmp.write_bytes(png_rgb8(rgb, DPI))
            image = Image.fromarray(rgb)
        else:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None},
                        pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
            image = None
    if image is not None:
        record_colours(path, image)
    return path


def _colours(rules: Sequence[str]) -> dict[str, str]:
    return {r: _PALETTE[i % len(_PALETTE)] for i, r in enumerate(rules)}


def _styles(rules: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Colour and line style per rule (``plot`` keyword arguments)."""
    return {r: {"color": _PALETTE[i % len(_PALETTE)], "ls": _LINESTYLES[i % len(_LINESTYLES)]}
            for i, r in enumerate(rules)}


def _times(g: pd.DataFrame) -> npt.NDArray[np.datetime64]:
    """Bar open times as naive UTC ``datetime64[us]`` (fast for matplotlib)."""
    ts = g["ts"]
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.to_numpy(dtype="datetime64[us]")


def _decimate(
    x: npt.NDArray[Any], y: npt.ArrayLike, max_points: int = MAX_POINTS
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """Min/max decimation to at most ``max_points`` points (NaN points dropped).

    The series is cut into ``max_points // 2`` buckets of equal length (one per pixel
    column when ``max_points`` is twice the axes width in pixels); per bucket the minimum
    and the maximum are kept, plus the first and last point.
    """
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


def _pixel_points(ax: Axes) -> int:
    """Two points per pixel column of ``ax`` (its width from the figure's grid, in pixels)."""
    fig = ax.figure
    width_px = ax.get_position().width * fig.get_figwidth() * DPI  # type: ignore[union-attr]
    return max(200, 2 * int(math.ceil(width_px)))


def _line(ax: Axes, x: npt.NDArray[Any], y: npt.ArrayLike, **kw: Any) -> None:
    xd, yd = _decimate(x, y, _pixel_points(ax))
    ax.plot(xd, yd, **kw)


def _time_axis(ax: Axes, label: bool = True) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if label:
        ax.set_xlabel("time (UTC)", loc="left")


def _full_span(ax: Axes, x: npt.NDArray[Any]) -> None:
    """Show the whole data period even where a rolling statistic is still undefined."""
    if x.size:
        ax.set_xlim(x[0], x[-1])


def _legend(fig: Figure, ax: Axes, own: bool, *, ncols: int | None = None) -> None:
    """A legend that never covers data: below the figure when the figure is ours, else the
    axes' emptiest corner (``loc="best"``)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if own:
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols or min(len(handles), 4),
                   frameon=False)
    else:
        ax.legend(loc="best")


def _legend_right(ax: Axes, **kw: Any) -> None:
    """A legend to the right of ``ax``, outside the plotted area."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False, **kw)


def _usd(v: float, _pos: Any = None) -> str:
    """``1,234`` with no ``-0``."""
    r = round(float(v))
    return f"{(r if r != 0 else 0):,.0f}"


_USD = FuncFormatter(_usd)


def _usd_short(v: float, _pos: Any = None) -> str:
    """``950``, ``10k``, ``2.5M`` (for log axes)."""
    for div, unit in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:,.4g}{unit}"
    return _usd(v)


_USD_SHORT = FuncFormatter(_usd_short)


def roll_starts(g: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Bars where a roll starts: ``rolled`` set and not set on the bar before.

    A roll spread over ``grace_bars`` bars sets ``rolled`` on each of them; this counts it
    once.
    """
    rolled = g["rolled"].to_numpy(dtype=bool)
    prev = np.concatenate([[False], rolled[:-1]])
    return rolled & ~prev


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width=width, break_long_words=False)) or text


def _reserve_note(first: pd.DataFrame) -> str:
    """How much cash (margin collateral + reserve) sits beside the coin position at the start."""
    cash0 = float(first["cash"].iloc[0])
    coin0 = float(first["alt_value"].iloc[0])
    return f"coin position at the start: {_usd(coin0)} USD; cash beside it (collateral + reserve): {_usd(cash0)} USD"


def plot_equity(
    ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None, ax: Axes | None = None
) -> Path | Figure:
    """Cumulative P&L of each hedged rule against the unhedged coin (USD).

    Hedged P&L is ``equity_hedged - equity_hedged[0]`` (the sum of every P&L column:
    coin, futures, costs, funding), unhedged P&L ``equity_unhedged - equity_unhedged[0]``
    (the coin alone). The idle cash (margin collateral and reserve) is the same on both
    sides; it is stated under the title, not plotted, so the axis shows what the hedge
    changes.
    """
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    with matplotlib.rc_context(STYLE):
        fig, ax, own = _figure_and_axes(ax)
        first = next(iter(frames.values()))
        x = _times(first)
        eq_u = first["equity_unhedged"].to_numpy(dtype=float)
        _line(ax, x, eq_u - eq_u[0], color=_UNHEDGED_COLOUR, lw=1.2, label="unhedged (coin only)")
        for rule, g in frames.items():
            eq_h = g["equity_hedged"].to_numpy(dtype=float)
            _line(ax, _times(g), eq_h - eq_h[0], lw=1.2, label=f"hedged: {tex(rule)}", **styles[rule])
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_title(f"Cumulative P&L: hedged vs unhedged\n{_reserve_note(first)}", fontsize=11)
        ax.set_ylabel("P&L since the start (USD)")
        ax.yaxis.set_major_formatter(_USD)
        _full_span(ax, x)
        _time_axis(ax)
        _legend(fig, ax, own)
        return _finish(fig, path)


def window_bars(bars_per_day: float, window_days: float) -> int:
    """Bars in a rolling window of ``window_days`` days: ``max(2, round(window_days x bars_per_day))``.

    Raises
    ------
    ConfigError
        ``window_days`` is not a finite number of days > 0.
    """
    if not (is_number(window_days) and math.isfinite(window_days) and window_days > 0):
        raise ConfigError("window_days", f"expected a number of days > 0, got {window_days!r}")
    return max(2, int(round(window_days * bars_per_day)))


def _diff_panel(fig: Figure, own: bool, n_rules: int) -> tuple[Axes, Axes | None]:
    """Main axes, plus a difference-to-best panel below it when the figure is ours and
    there is more than one rule."""
    if not own or n_rules < 2:
        return fig.axes[0], None
    main = fig.axes[0]
    main.remove()
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2.6, 1.0])
    return top, bottom


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
    sqrt(365 x bars per day). In a figure of its own, a lower panel shows each rule's
    volatility minus that of the rule with the lowest full-sample hedged volatility
    (percentage points), where lines too close to tell apart in the upper panel separate.
    """
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    w = window_bars(bars_per_day, window_days)
    scale = math.sqrt(stats.DAYS_PER_YEAR * bars_per_day) * 100.0
    minp = max(2, int(0.9 * w))
    with matplotlib.rc_context(STYLE):
        fig, ax, own = _figure_and_axes(ax)
        ax, diff_ax = _diff_panel(fig, own, len(frames))
        first = next(iter(frames.values()))
        x = _times(first)
        vol_u = first["ret_unhedged"].rolling(w, min_periods=minp).std() * scale
        _line(ax, x, vol_u, color=_UNHEDGED_COLOUR, lw=1.2, label="unhedged")
        vols = {}
        for rule, g in frames.items():
            vols[rule] = (g["ret_hedged"].rolling(w, min_periods=minp).std() * scale).to_numpy()
            _line(ax, _times(g), vols[rule], lw=1.2, label=f"hedged: {tex(rule)}", **styles[rule])
        _full_span(ax, x)
        ax.set_title(f"Rolling volatility ({window_days:g}-day window, annualised, 365 days)")
        ax.set_ylabel("volatility (% per year)")
        ax.set_ylim(bottom=0)
        if diff_ax is not None:
            full = {r: stats.annualised_vol(g["ret_hedged"], bars_per_day) for r, g in frames.items()}
            best = min(full, key=lambda r: full[r] if math.isfinite(full[r]) else math.inf)
            for rule, g in frames.items():
                _line(diff_ax, _times(g), vols[rule] - vols[best], lw=1.2, **styles[rule])
            diff_ax.axhline(0.0, color="0.5", lw=0.8)
            diff_ax.set_ylabel("minus lowest\n(pp)")
            diff_ax.set_title(f"difference to {tex(best)} (lowest full-sample volatility)", fontsize=10)
            _full_span(diff_ax, x)
            ax.tick_params(labelbottom=False)
        _time_axis(diff_ax if diff_ax is not None else ax)
        _legend(fig, ax, own)
        return _finish(fig, path)


def plot_drawdowns(
    ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None, ax: Axes | None = None
) -> Path | Figure:
    """Drawdown of prod(1 + ret) for the unhedged and each hedged position (%)."""
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    with matplotlib.rc_context(STYLE):
        fig, ax, own = _figure_and_axes(ax)
        first = next(iter(frames.values()))
        x = _times(first)
        dd_u = -100.0 * stats.drawdown(first["ret_unhedged"].to_numpy())
        xd, yd = _decimate(x, dd_u, _pixel_points(ax))
        ax.fill_between(xd, yd, 0.0, color=_UNHEDGED_COLOUR, alpha=0.25, lw=0)
        ax.plot(xd, yd, color=_UNHEDGED_COLOUR, lw=1.0, label="unhedged")
        for rule, g in frames.items():
            dd_h = -100.0 * stats.drawdown(g["ret_hedged"].to_numpy())
            _line(ax, _times(g), dd_h, lw=1.2, label=f"hedged: {tex(rule)}", **styles[rule])
        ax.set_title("Drawdown from the running peak (returns on the coin notional)")
        ax.set_ylabel("drawdown (%)")
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        _full_span(ax, x)
        _time_axis(ax)
        _legend(fig, ax, own)
        return _finish(fig, path)


def plot_hedge_ratio(ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None) -> Path | Figure:
    """Held and target hedge ratio per rule, rebalances and rolls marked; contracts held.

    One panel per rule (held ratio, target ratio, a tick at the bottom for each
    rebalancing bar -- or, above :data:`MAX_TICKS` rebalances, their count and average
    spacing in the legend -- and a dotted vertical line where each roll starts, counted
    once however many grace bars it spans, :func:`roll_starts`), then one panel with the
    signed number of contracts of every rule. Legends sit to the right of each panel.
    """
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    n = len(frames)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11.0, 2.3 * n + 2.8)
        axes = fig.subplots(n + 1, 1, sharex=True, height_ratios=[1.0] * n + [1.1])
        for ax, (rule, g) in zip(axes[:-1], frames.items(), strict=True):
            x = _times(g)
            _line(ax, x, g["hedge_ratio_held"], color=styles[rule]["color"], lw=1.0, label="held")
            _line(ax, x, g["hedge_ratio_target"], color="black", lw=0.8, ls="--", alpha=0.7, label="target")
            lo, hi = ax.get_ylim()
            reb = g["rebalanced"].to_numpy(dtype=bool)
            n_reb = int(reb.sum())
            if 0 < n_reb <= MAX_TICKS:
                ax.plot(x[reb], np.full(n_reb, lo + 0.04 * (hi - lo)), ls="none", marker="|",
                        ms=8, color="tab:gray", label=f"rebalance ({n_reb})")
            elif n_reb > MAX_TICKS:
                # ticks this dense would merge into a solid bar: say how often instead
                ax.plot([], [], ls="none", label=f"{n_reb:,} rebalances,\none every {len(g) / n_reb:,.0f} bars\n"
                                                 "(too dense to mark)")
            rolls = x[roll_starts(g)]
            for i, t in enumerate(rolls):
                ax.axvline(t, color="tab:red", ls=":", lw=1.0, label=f"roll ({rolls.size})" if i == 0 else None)
            ax.set_ylim(lo, hi)
            ax.set_ylabel("hedge ratio h")
            ax.set_title(f"Hedge ratio: {tex(rule)}", fontsize=11)
            _legend_right(ax)
        ax = axes[-1]
        for rule, g in frames.items():
            _line(ax, _times(g), g["contracts"], lw=1.2, label=tex(rule), **styles[rule])
        ax.set_title("Contracts held (negative = short)", fontsize=11)
        ax.set_ylabel("contracts")
        ax.yaxis.set_major_formatter(_USD)
        _legend_right(ax)
        _full_span(ax, _times(next(iter(frames.values()))))
        _time_axis(ax)
        fig.suptitle("Hedge ratio and futures position over time")
        return _finish(fig, path)


def _rolling_he(g: pd.DataFrame, w: int, minp: int) -> npt.NDArray[np.float64]:
    pair = g[["ret_hedged", "ret_unhedged"]].where(g[["ret_hedged", "ret_unhedged"]].notna().all(axis=1))
    var_h = pair["ret_hedged"].rolling(w, min_periods=minp).var()
    var_u = pair["ret_unhedged"].rolling(w, min_periods=minp).var()
    return (100.0 * (1.0 - var_h / var_u.where(var_u > 0))).to_numpy()


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

    Variances over the last ``window_days`` days of bars (at least 90 % present). The
    horizontal line is the full-sample oracle ρ²: the HE of the one constant hedge fitted
    to the whole period in hindsight. A window is a different (shorter) sample, so its HE
    can lie above that line. In a figure of its own, a lower panel shows each rule minus
    the rule with the highest full-sample HE (percentage points).
    """
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    w = window_bars(bars_per_day, window_days)
    minp = max(2, int(0.9 * w))
    with matplotlib.rc_context(STYLE):
        fig, ax, own = _figure_and_axes(ax)
        ax, diff_ax = _diff_panel(fig, own, len(frames))
        he = {}
        for rule, g in frames.items():
            he[rule] = _rolling_he(g, w, minp)
            _line(ax, _times(g), he[rule], lw=1.2, label=tex(rule), **styles[rule])
        if math.isfinite(oracle_r2):
            ax.axhline(100.0 * oracle_r2, color="black", ls="--", lw=1.2,
                       label=f"full-sample oracle ρ² = {100.0 * oracle_r2:.1f} %")
        ax.axhline(0.0, color="0.5", lw=0.8)
        x = _times(next(iter(frames.values())))
        _full_span(ax, x)
        ax.set_title(f"Rolling hedge effectiveness ({window_days:g}-day window)")
        ax.set_ylabel("HE = 1 - Var(hedged)/Var(unhedged)")
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        if diff_ax is not None:
            full = {r: stats.hedge_effectiveness(g["ret_hedged"], g["ret_unhedged"]) for r, g in frames.items()}
            best = max(full, key=lambda r: full[r] if math.isfinite(full[r]) else -math.inf)
            for rule, g in frames.items():
                _line(diff_ax, _times(g), he[rule] - he[best], lw=1.2, **styles[rule])
            diff_ax.axhline(0.0, color="0.5", lw=0.8)
            diff_ax.set_ylabel("minus best\n(pp)")
            diff_ax.set_title(f"difference to {tex(best)} (highest full-sample HE)", fontsize=10)
            _full_span(diff_ax, x)
            ax.tick_params(labelbottom=False)
        _time_axis(diff_ax if diff_ax is not None else ax)
        _legend(fig, ax, own, ncols=min(len(frames) + 1, 3))
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
    hatches = ("", "//", "..", "xx", "\\\\")
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11.0, 6.0)
        ax_m, ax_c = fig.subplots(1, 2, width_ratios=[1.0, 1.5])
        width = 0.8 / max(len(rules), 1)
        for ax, comps in ((ax_m, market), (ax_c, costs)):
            xs = np.arange(len(comps))
            for i, rule in enumerate(rules):
                vals = [float(pnl[rule].get(c, math.nan)) for c in comps]
                bars = ax.bar(xs + (i - (len(rules) - 1) / 2) * width, vals, width, color=colours[rule],
                              hatch=hatches[i % len(hatches)], edgecolor="white", lw=0.0, label=tex(rule))
                if ax is ax_c:
                    ax.bar_label(bars, labels=[_usd(v) if math.isfinite(v) else "" for v in vals], fontsize=9,
                                 padding=2, rotation=90)
            finite = [v for r in rules for c in comps if math.isfinite(v := float(pnl[r].get(c, math.nan)))]
            lo, hi = min([0.0, *finite]), max([0.0, *finite])
            span = (hi - lo) or 1.0
            pad = 0.3 if ax is ax_c else 0.05
            ax.set_ylim(lo - (pad * span if lo < 0 else 0.05 * span), hi + (pad * span if hi > 0 else 0.05 * span))
            ax.set_xticks(xs, comps)
            ax.axhline(0.0, color="black", lw=0.8)
            ax.yaxis.set_major_formatter(_USD)
            ax.set_ylabel("P&L (USD)")
        ax_m.set_title("Market legs and total", fontsize=11)
        ax_c.set_title("Costs and funding (own scale)", fontsize=11)
        _legend(fig, ax_m, True)
        fig.suptitle("P&L attribution over the whole period")
        return _finish(fig, path)


def plot_event_panels(
    ledger: pd.DataFrame, events: Sequence[Event], path: Path | None = None, *, rules: Sequence[str] | None = None
) -> Path | Figure:
    """One panel per event: cumulative hedged vs unhedged P&L inside the window (USD).

    Hedged P&L is the cumulative sum of all P&L columns (change of hedged equity),
    unhedged P&L the cumulative ``pnl_altcoin``; both start at 0 at the window start.
    Two panels a row; titles wrap instead of being cut; one legend below all panels.
    """
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    cols = [PNL_COLUMN[c] for c in PNL_COMPONENTS]
    n = max(len(events), 1)
    ncols = min(2, n)
    nrows = math.ceil(n / ncols)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11.0, 3.4 * nrows + 1.2)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
        for ax in axes[len(events):]:
            ax.set_axis_off()
        if not events:
            axes[0].text(0.5, 0.5, "no event windows inside the data period", ha="center", va="center",
                         transform=axes[0].transAxes)
        handles: dict[str, Any] = {}
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
                _line(ax, x, np.cumsum(g[cols].to_numpy().sum(axis=1)[m]), lw=1.2,
                      label=f"hedged: {tex(rule)}", **styles[rule])
                drawn = True
            if not drawn:
                ax.text(0.5, 0.5, "no data in this window", ha="center", va="center", transform=ax.transAxes)
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(lab, h)
            ax.axhline(0.0, color="0.5", lw=0.8)
            ax.set_title(f"{_wrap(tex(ev.title), 48)}\n{ev.span()}", fontsize=10)
            ax.set_ylabel("cumulative P&L (USD)")
            ax.yaxis.set_major_formatter(_USD)
            locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            ax.set_xlabel("time (UTC)", loc="left")
        if handles:
            fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                       ncols=min(len(handles), 4), frameon=False)
        fig.suptitle("Event windows: cumulative P&L, hedged vs unhedged")
        return _finish(fig, path)


def plot_margin(ledger: pd.DataFrame, path: Path | None = None, *, rules: Sequence[str] | None = None) -> Path | Figure:
    """Margin balance against maintenance and initial requirement, one panel per rule (USD).

    Log scale, so the requirement band (maintenance to initial, a factor
    initial/maintenance apart) stays visible beside a balance many times larger. Bars
    where the balance is zero or negative cannot be drawn on a log scale: they are marked
    at the bottom edge and counted in the legend. Margin calls are marked with triangles,
    liquidations with crosses.
    """
    frames = split_rules(ledger, rules)
    styles = _styles(list(frames))
    n = len(frames)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(11.0, 2.6 * n + 1.2)
        axes = np.atleast_1d(fig.subplots(n, 1, sharex=True, squeeze=False).ravel())
        for ax, (rule, g) in zip(axes, frames.items(), strict=True):
            x = _times(g)
            bal = g["margin_balance"].to_numpy(dtype=float)
            init = g["margin_initial"].to_numpy(dtype=float)
            req = g["margin_required"].to_numpy(dtype=float)
            pos = lambda a: np.where(a > 0, a, np.nan)  # noqa: E731
            xd, lo_d = _decimate(x, pos(req), _pixel_points(ax))
            _xd2, hi_d = _decimate(x, pos(init), _pixel_points(ax))
            if xd.size == _xd2.size and np.array_equal(xd, _xd2):
                ax.fill_between(xd, lo_d, hi_d, color="tab:red", alpha=0.12, lw=0,
                                label="requirement band (maintenance to initial)")
            _line(ax, x, pos(init), color="0.3", lw=1.0, ls="--", label="initial requirement")
            _line(ax, x, pos(req), color="tab:red", lw=1.0, label="maintenance requirement")
            _line(ax, x, pos(bal), color=styles[rule]["color"], lw=1.0, label="margin balance")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(_USD_SHORT)  # plain numbers: no mathtext to typeset
            ax.yaxis.set_minor_locator(NullLocator())  # 2..9 x 10^k minor ticks cost a third of the figure
            low = bal <= 0
            if low.any():
                ymin = ax.get_ylim()[0]
                ax.plot(x[low], np.full(int(low.sum()), ymin), ls="none", marker="|", ms=8, color="black",
                        label=f"balance <= 0 ({int(low.sum())} bars)", clip_on=False)
            calls = g["margin_call"].to_numpy(dtype=bool)
            if calls.any():
                ax.plot(x[calls], pos(bal)[calls], ls="none", marker="v", ms=5,
                        color="tab:red", label=f"margin call ({int(calls.sum())})")
            liq = g["liquidated"].to_numpy(dtype=bool)
            if liq.any():
                ax.plot(x[liq], pos(bal)[liq], ls="none", marker="X", ms=8,
                        color="black", label=f"liquidation ({int(liq.sum())})")
            ax.set_title(f"Margin: {tex(rule)}", fontsize=11)
            ax.set_ylabel("USD (log scale)")
            _legend_right(ax)
        _full_span(axes[-1], _times(next(iter(frames.values()))))
        _time_axis(axes[-1])
        fig.suptitle("Margin balance vs maintenance and initial requirement")
        return _finish(fig, path)


# -- rule comparison ----------------------------------------------------------------------------


def _scenario_groups(compare: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The compare table split per scenario (coin x window), labelled; one group without
    those columns."""
    keys = [c for c in ("coin", "window") if c in compare.columns]
    if not keys:
        return [("", compare)]
    out = []
    for key, g in compare.groupby(keys, sort=False):
        parts = key if isinstance(key, tuple) else (key,)
        label = " ".join(str(p) for p in parts if str(p))
        out.append((label, g))
    return out


def _bulk_limit(values: npt.NDArray[np.float64]) -> float:
    """Upper x limit that keeps the bulk: the largest value inside Tukey's far-out fence
    ``Q3 + 3 IQR`` (the maximum when nothing lies beyond it)."""
    v = values[np.isfinite(values)]
    if v.size < 4:
        return float(v.max()) if v.size else 1.0
    q1, q3 = np.quantile(v, [0.25, 0.75])
    fence = q3 + 3.0 * max(q3 - q1, 1e-9)
    return float(v[v <= fence].max())


def _place_labels(fig: Figure, ax: Axes, points: Sequence[tuple[float, float, str]],
                  avoid: Sequence[tuple[float, float]] = ()) -> int:
    """Annotate points with names, never overprinting: each label takes the first of eight
    offsets around its point whose box lies inside the axes and clear of every label and
    marker (``points`` and ``avoid``, in data coordinates); a label with no free spot is left
    out. Returns how many were left out."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    axbox = ax.get_window_extent(renderer)
    taken = []
    for xv, yv in [*[(p[0], p[1]) for p in points], *avoid]:
        px, py = ax.transData.transform((xv, yv))
        taken.append(Bbox.from_extents(px - 6, py - 6, px + 6, py + 6))
    offsets = ((8, 6), (8, -14), (-8, 6), (-8, -14), (8, 18), (-8, 18), (8, -26), (-8, -26))
    skipped = 0
    for xv, yv, name in points:
        placed = False
        for dx, dy in offsets:
            ann = ax.annotate(name, (xv, yv), textcoords="offset points", xytext=(dx, dy), fontsize=9,
                              ha="left" if dx > 0 else "right", annotation_clip=True)
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer)
            inside = axbox.x0 <= box.x0 and box.x1 <= axbox.x1 and axbox.y0 <= box.y0 and box.y1 <= axbox.y1
            if inside and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                placed = True
                break
            ann.remove()
        skipped += not placed
    return skipped


def plot_compare_scatter(compare: pd.DataFrame, path: Path | None = None, *, ax: Axes | None = None) -> Path | Figure:
    """HE against annual cost drag for every compared variant, with the efficient frontier,
    one panel per scenario (coin x window).

    Each variant is a point coloured by family, the legend counting the table's rows of
    that family in that scenario (variants that coincide, e.g. ``none`` under every
    rebalance policy, are one point but all counted). The frontier joins the variants no
    other beats on both higher HE and lower cost drag
    (:func:`reports.stats.efficient_frontier`); its points are named where a label fits
    without overprinting. The x axis keeps the bulk (:func:`_bulk_limit`); costlier
    variants are drawn as ``>`` at the right edge and counted.
    """
    groups = _scenario_groups(compare)
    families = list(pd.unique(compare["family"].astype(str)))
    colours = _colours(families)
    with matplotlib.rc_context(STYLE):
        if ax is not None:
            fig, axes, own = ax.figure, [ax], False
            groups = groups[:1]
        else:
            fig = new_figure(11.0, 6.0 if len(groups) == 1 else 4.6 * len(groups) + 0.6)
            axes = list(np.atleast_1d(fig.subplots(len(groups), 1, squeeze=False).ravel()))
            own = True
        fronts = []
        for a, (label, g) in zip(axes, groups, strict=True):
            fronts.append((_scatter_panel(a, g, label, families, colours), _visible_points(a, g)))
        if own:
            for a in axes:
                _legend_right(a)
            fig.suptitle("Rule comparison: hedge effectiveness vs cost")
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
        else:
            a = axes[0]
            a.legend(loc="best")
            fig.draw_without_rendering()  # type: ignore[union-attr]
        for a, (pts, avoid) in zip(axes, fronts, strict=True):
            skipped = _place_labels(fig, a, pts, avoid)  # type: ignore[arg-type]
            if skipped:
                a.set_title(f"{a.get_title()} ({skipped} frontier label(s) left out: no free space)", fontsize=11)
        return _finish(fig, path)  # type: ignore[arg-type]


def _visible_points(ax: Axes, g: pd.DataFrame) -> list[tuple[float, float]]:
    """Every variant's marker position inside the axes (data coordinates)."""
    he = 100.0 * g["hedge_effectiveness"].to_numpy(dtype=float)
    cost = g["cost_drag_bps_per_year"].to_numpy(dtype=float)
    right = ax.get_xlim()[1]
    return [(min(float(c), right), float(h)) for c, h in zip(cost, he, strict=True) if math.isfinite(c + h)]


def _scatter_panel(ax: Axes, g: pd.DataFrame, label: str, families: Sequence[str],
                   colours: Mapping[str, str]) -> list[tuple[float, float, str]]:
    """One scenario's scatter; returns the frontier points to label."""
    he = 100.0 * g["hedge_effectiveness"].to_numpy(dtype=float)
    cost = g["cost_drag_bps_per_year"].to_numpy(dtype=float) + 0.0
    fam = g["family"].astype(str).to_numpy()
    limit = _bulk_limit(cost)
    finite_cost = cost[np.isfinite(cost)]
    lo = float(min(0.0, finite_cost.min())) if finite_cost.size else 0.0
    span = (limit - lo) or 1.0
    right = limit + 0.08 * span
    out = cost > right
    for f in families:
        m = fam == f
        if not m.any():
            continue
        inside = m & ~out
        ax.scatter(cost[inside], he[inside], s=36, color=colours[f], label=f"{tex(f)} ({int(m.sum())})", zorder=3)
        if (m & out).any():
            ax.scatter(np.full(int((m & out).sum()), right), he[m & out], s=60, marker=">", color=colours[f],
                       zorder=3, clip_on=False)
    front = stats.efficient_frontier(he, cost)
    order = np.argsort(cost[front], kind="stable")
    fx, fy = cost[front][order], he[front][order]
    keep = fx <= right
    ax.plot(fx[keep], fy[keep], color="black", lw=1.2, marker="o", mfc="none", ms=10,
            label="efficient frontier", zorder=2)
    if out.any():
        ax.plot([], [], ls="none", marker=">", color="0.3",
                label=f"{int(out.sum())} beyond the axis\n(up to {_usd(float(np.nanmax(cost)))} bps)")
    ax.set_xlim(lo - 0.03 * span, right + 0.02 * span)
    names = g["variant"].astype(str).to_numpy()[front][order]
    ax.set_title(f"{tex(label)}" if label else "all variants", fontsize=11)
    labels: dict[tuple[float, float], list[str]] = {}
    for x, y, nm, k in zip(fx, fy, names, keep, strict=True):
        if k:
            labels.setdefault((float(x), float(y)), []).append(tex(nm))
    ax.set_xlabel("cost drag (bps of coin notional per year)")
    ax.set_ylabel("hedge effectiveness (%)")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.xaxis.set_major_formatter(_USD)
    # identical variants (e.g. ``none`` under every rebalance policy) get one label
    return [(x, y, nm[0] if len(nm) == 1 else f"{nm[0]} (+{len(nm) - 1} identical)")
            for (x, y), nm in labels.items()]


def _fmt_int(v: Any) -> str:
    return _usd(float(v))


#: Columns of the ranked compare table: (compare column, header, formatter).
_COMPARE_TABLE: Final[tuple[tuple[str, str, Any], ...]] = (
    ("coin", "coin", str),
    ("window", "window", str),
    ("rank", "rank", lambda v: f"{int(v)}"),
    ("variant", "variant", str),
    ("hedge_effectiveness", "HE", lambda v: f"{100 * v:.1f} %"),
    ("he_vs_oracle", "HE / oracle", lambda v: f"{v:.2f}"),
    ("cost_drag_bps_per_year", "cost (bps/yr)", _fmt_int),
    ("max_drawdown_hedged", "max DD hedged", lambda v: f"{100 * v:.1f} %"),
    ("margin_calls", "margin calls", _fmt_int),
    ("liquidations", "liquidations", _fmt_int),
)


def compare_table_rows(compare: pd.DataFrame, max_rows: int) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of the best ``max_rows`` variants of each scenario by rank.

    ``coin`` and ``window`` columns appear when the table has them and they vary.
    """
    varying = {c for c in ("coin", "window") if c in compare.columns and compare[c].nunique() > 1}
    cols = [c for c in _COMPARE_TABLE if c[0] in compare.columns and (c[0] not in ("coin", "window") or c[0] in varying)]
    keys = [c for c in ("coin", "window") if c in compare.columns]
    ordered = compare.sort_values([*keys, "rank", "variant"], kind="stable")
    top = ordered.groupby(keys, sort=False).head(max_rows) if keys else ordered.head(max_rows)
    header = [c[1] for c in cols]
    rows = [
        ["" if (isinstance(v, float) and not math.isfinite(v)) else tex(fmt(v)) for (name, _h, fmt), v in
         zip(cols, [row[c[0]] for c in cols], strict=True)]
        for _, row in top.iterrows()
    ]
    return header, rows


def plot_compare_table(compare: pd.DataFrame, path: Path | None = None, *, max_rows: int = 25) -> Path | Figure:
    """The compared variants ranked (best ``max_rows`` of each scenario), drawn as a table
    whose width is sized from its longest cells, so nothing is clipped."""
    header, rows = compare_table_rows(compare, max_rows)
    body = rows or [[""] * len(header)]
    chars = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    col_in = [0.078 * c + 0.2 for c in chars]  # 9-pt sans: ~0.075 in a character, plus padding
    width = sum(col_in) + 0.4
    height = 0.25 * (len(body) + 1) + 0.9
    with matplotlib.rc_context(STYLE):
        fig = new_figure(max(6.0, width), max(2.0, height))
        ax = fig.add_subplot()
        ax.set_axis_off()
        table = ax.table(cellText=body, colLabels=header, cellLoc="center", bbox=(0.0, 0.0, 1.0, 1.0),
                         colWidths=[w / sum(col_in) for w in col_in])
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        for (r, _c), cell in table.get_celld().items():
            if r == 0:
                cell.set_text_props(weight="bold")
                cell.set_facecolor("0.9")
        n_shown, n_all = len(rows), len(compare)
        shown = f"best {n_shown} of {n_all}" if n_all > n_shown else f"all {n_shown}"
        ax.set_title(f"Rule comparison ranked by the grid's rank ({shown} variants)")
        return _finish(fig, path)


def compare_heatmap_axes(compare: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Families of a compare table with exactly two varying grid axes, as
    ``(family, row axis, column axis)``.

    The axes of a family are its parameters (``params``, JSON) with more than one value
    and ``rebalance`` when it takes more than one policy; a family with more than two
    varying axes uses its first parameter and ``rebalance`` (the rest averaged over is
    not done: such a family is skipped).
    """
    out = []
    for fam, g in compare.groupby(compare["family"].astype(str), sort=False):
        params = pd.DataFrame([_params(p) for p in g["params"]], index=g.index)
        axes = [c for c in params.columns if params[c].nunique(dropna=False) > 1]
        if "rebalance" in g.columns and g["rebalance"].nunique() > 1:
            axes.append("rebalance")
        if len(axes) == 2:
            out.append((str(fam), axes[0], axes[1]))
    return out


def _params(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def _axis_values(g: pd.DataFrame, axis: str) -> pd.Series:
    if axis == "rebalance":
        return g["rebalance"].astype(str)
    return pd.Series([_params(p).get(axis) for p in g["params"]], index=g.index)


def plot_compare_heatmap(
    compare: pd.DataFrame, path: Path | None = None, *, value: str = "hedge_effectiveness", max_panels: int = 6
) -> Path | Figure:
    """Hedge effectiveness over two grid axes (e.g. EWMA half-life x rebalance policy),
    one heatmap per (scenario, family) with two varying axes (:func:`compare_heatmap_axes`).

    Cells print the value (HE in %); every cell is one row of the compare table, so the
    grid's counts and the table's agree. At most ``max_panels`` panels (the first ones).
    """
    panels = []
    for label, g in _scenario_groups(compare):
        for fam, row_axis, col_axis in compare_heatmap_axes(g):
            panels.append((label, fam, row_axis, col_axis, g[g["family"].astype(str) == fam]))
    panels = panels[:max_panels]
    with matplotlib.rc_context(STYLE):
        if not panels:
            fig = new_figure(8.0, 2.5)
            ax = fig.add_subplot()
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no family varies over exactly two grid axes", ha="center", va="center")
            ax.set_title("Rule comparison heatmap")
            return _finish(fig, path)
        heights = []
        grids = []
        for label, fam, ra, ca, g in panels:
            rows = _axis_values(g, ra)
            colv = _axis_values(g, ca)
            grid = pd.DataFrame({"r": rows.astype(str), "c": colv.astype(str), "v": g[value].to_numpy(dtype=float)})
            r_order = _sorted_labels(rows)
            c_order = _sorted_labels(colv)
            table = grid.pivot_table(index="r", columns="c", values="v", aggfunc="mean").reindex(
                index=r_order, columns=c_order)
            grids.append(table)
            heights.append(0.45 * len(r_order) + 1.6)
        ncol_max = max(t.shape[1] for t in grids)
        fig = new_figure(max(8.0, 1.15 * ncol_max + 3.0), sum(heights) + 0.8)
        axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights).ravel())
        scale = 100.0 if value == "hedge_effectiveness" else 1.0
        for ax, (label, fam, ra, ca, _g), table in zip(axes, panels, grids, strict=True):
            data = table.to_numpy() * scale
            im = ax.imshow(data, aspect="auto", cmap="viridis", interpolation="nearest")
            finite = data[np.isfinite(data)]
            mid = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
            for (i, j), v in np.ndenumerate(data):
                if math.isfinite(v):
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=9, in_layout=False,
                            color="black" if v > mid else "white")  # inside its cell
            ax.set_xticks(range(table.shape[1]), [tex(c) for c in table.columns], rotation=20, ha="right")
            ax.set_yticks(range(table.shape[0]), [tex(r) for r in table.index])
            ax.set_xlabel(tex(ca))
            ax.set_ylabel(tex(ra))
            ax.grid(False)
            ax.set_title(f"{tex(label)} {tex(fam)}: {'HE (%)' if scale == 100.0 else tex(value)}".strip(),
                         fontsize=11)
            fig.colorbar(im, ax=ax, shrink=0.9, label="HE (%)" if scale == 100.0 else tex(value))
        fig.suptitle("Rule comparison over two grid axes")
        return _finish(fig, path)


def _sorted_labels(values: pd.Series) -> list[str]:
    """Distinct values as strings in natural order (numbers inside labels compared as numbers:
    "every 24 bars" before "every 168 bars")."""
    def key(text: str) -> tuple[Any, ...]:
        parts = re.split(r"(\d+(?:\.\d+)?)", text)
        return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)

    return sorted({str(v) for v in pd.unique(values)}, key=key)


# -- rendering many figures --------------------------------------------------------------------

#: A figure job: ``(function, args, kwargs)``; the function is called as
#: ``function(*args, path, **kwargs)`` and returns the path it wrote.
FigureJob = tuple[Any, tuple[Any, ...], dict[str, Any]]


#: Relative rendering cost of the heavier figures (the rest count 1): handed out first, so
#: the workers finish together.
_COST: Final[dict[str, float]] = {"monthly_returns": 4.0, "margin": 3.5, "events": 3.0, "hedge_ratio": 2.5,
                                  "compare_scatter": 2.0, "compare_heatmap": 2.0}
#: The jobs of the :func:`render_all` call in progress, read by forked workers (set only
#: for the duration of that call; the workers inherit it instead of unpickling a ledger).
_PENDING: dict[str, tuple[FigureJob, Path]] = {}


def default_workers() -> int:
    """Worker processes :func:`render_all` uses: the CPUs this process may run on, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def render_all(jobs: Mapping[str, FigureJob], out: Path, *, workers: int | None = None,
               progress: Progress | None = None) -> dict[str, Path]:
    """Render every job to ``out/<stem>.png``; returns ``{stem: path}`` in the order given.

    :func:`start_all`, then wait for every figure. With ``workers > 1`` (default
    :func:`default_workers`) and the ``fork`` start method available, the figures are drawn
    in that many forked processes, costliest first; each figure is drawn by the same code
    from the same data either way, so the PNG bytes are identical to a serial render
    (tested). Otherwise they are drawn here, one by one. ``progress`` (optional,
    :class:`backtest.progress.Progress`) is called as ``progress("figures", done, len(jobs))``
    after each finished figure.
    """
    with start_all(jobs, out, workers=workers, progress=progress) as pending:
        return pending.wait_all()


#: Longest wait for one figure from a worker process (a worker killed from outside loses its
#: figure: ``multiprocessing.Pool`` replaces the process but not the task).
FIGURE_TIMEOUT_S: Final[float] = 600.0


class FigureMap(Mapping[str, Path]):
    """Figures for a PDF, ``{caption or stem: PNG path}``, that may know each PNG's colour count.

    :func:`reports.pdf.write_pdf` asks :meth:`few_colours` of every figure it embeds; a plain
    mapping of paths is read as one that knows none.
    """

    def few_colours(self, key: str) -> bool | None:
        """Whether the PNG of ``key`` has at most 256 colours; None when not known (this default)."""
        return None


class PendingFigures(FigureMap):
    """The figures of :func:`start_all`, ``{stem: path}``: reading a figure's path waits until
    that figure is written (and re-raises the error of its drawing, if any).

    The caller draws or writes something else meanwhile (the report's metrics and the PDF's
    text pages) and reads the paths when it needs the PNGs. ``progress`` hears
    ``("figures", done, total)`` from the caller's thread, as each figure is first waited for.
    """

    def __init__(self, jobs: Mapping[str, FigureJob], paths: dict[str, Path], handles: dict[str, Any] | None,
                 progress: Progress | None) -> None:
        self._jobs = jobs
        self._paths = paths
        self._handles = handles  # AsyncResult per stem (a pool), or None (drawn here on demand)
        self._done: dict[str, tuple[Path, bool | None]] = {}
        self._progress = progress

    def __getitem__(self, stem: str) -> Path:
        return self._wait(stem)[0]

    def few_colours(self, stem: str) -> bool | None:
        """Whether the figure's PNG has at most 256 colours (waits for it); None when not known."""
        return self._wait(stem)[1]

    def _wait(self, stem: str) -> tuple[Path, bool | None]:
        if stem not in self._done:
            if stem not in self._paths:
                raise KeyError(stem)
            if self._handles is None:
                self._done[stem] = _drawn(self._jobs[stem], self._paths[stem])
            else:
                try:
                    self._done[stem] = self._handles[stem].get(FIGURE_TIMEOUT_S)[1:]
                except mp.TimeoutError:
                    raise OutputError(f"figure {stem!r} not drawn within {FIGURE_TIMEOUT_S:.0f} s "
                                      "(was its worker process killed?)") from None
            if self._progress is not None:
                self._progress("figures", len(self._done), len(self._paths))
        return self._done[stem]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def wait_all(self) -> dict[str, Path]:
        """Every figure's path, ``{stem: path}`` in the jobs' order, once all are written."""
        return {stem: self[stem] for stem in self._paths}

    def relabelled(self, labels: Mapping[str, str]) -> FigureMap:
        """A view ``{labels[stem]: path}`` that still waits per figure (e.g. PDF captions)."""
        return _Relabelled(self, {labels[stem]: stem for stem in self._paths})


class _Relabelled(FigureMap):
    def __init__(self, figures: PendingFigures, stems: dict[str, str]) -> None:
        self._figures = figures
        self._stems = stems

    def __getitem__(self, label: str) -> Path:
        return self._figures[self._stems[label]]

    def few_colours(self, label: str) -> bool | None:
        return self._figures.few_colours(self._stems[label])

    def __iter__(self) -> Iterator[str]:
        return iter(self._stems)

    def __len__(self) -> int:
        return len(self._stems)


@contextmanager
def start_all(jobs: Mapping[str, FigureJob], out: Path, *, workers: int | None = None,
              progress: Progress | None = None) -> Iterator[PendingFigures]:
    """Start drawing every job to ``out/<stem>.png`` in forked worker processes; yield the
    :class:`PendingFigures` at once, so the caller works while the figures are drawn.

    Workers as in :func:`render_all`. On leaving the block normally, every figure is waited
    for and the workers leave; on an error (or a signal turned into an exception) the
    workers are stopped. With one worker or no ``fork``, nothing runs in the background:
    each figure is drawn here when its path is first read.
    """
    out = Path(out)
    paths = {stem: out / f"{stem}.png" for stem in jobs}
    n = min(default_workers() if workers is None else workers, len(jobs))
    if n <= 1 or "fork" not in mp.get_all_start_methods():
        serial = PendingFigures(jobs, paths, None, progress)
        yield serial
        serial.wait_all()
        return
    out.mkdir(parents=True, exist_ok=True)
    order = sorted(jobs, key=lambda stem: -_COST.get(stem, 1.0))
    _PENDING.clear()
    _PENDING.update({stem: (jobs[stem], paths[stem]) for stem in jobs})
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns on fork() in a process with threads (numba, pyarrow pools);
            # the workers only draw with matplotlib and numpy and start no threads of their own
            warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks",
                                    category=DeprecationWarning)
            with gc_frozen():  # the workers' collector leaves this process's objects alone
                pool = mp.get_context("fork").Pool(n, initializer=_default_sigterm)
        try:
            handles = {stem: pool.apply_async(_run_pending, (stem, os.getpid())) for stem in order}
            pending = PendingFigures(jobs, paths, handles, progress)
            yield pending
            pending.wait_all()
            pool.close()  # every figure is drawn: the workers leave on the close sentinel
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    finally:
        _PENDING.clear()  # set only while this call's workers may need it


def _default_sigterm() -> None:
    """Pool-worker start-up: ``SIGTERM`` back to its default action, ``SIGINT`` ignored.

    A forked worker inherits its parent's handlers, and the CLI's (``terminate_as_exit``)
    raises ``SystemExit`` so that the parent can clean up its output. ``Pool.terminate``
    stops workers with ``SIGTERM`` and then waits for them; a worker that handled it instead
    of dying could leave that wait hanging (seen once under pytest-xdist, a worker blocked
    on the task queue's lock). Ctrl-C in a terminal reaches every process of the group: the
    parent handles it (and terminates the pool); workers that raised ``KeyboardInterrupt``
    too printed their tracebacks, and a worker that died mid-figure could leave the parent
    waiting for that figure. (Linux's ``PR_SET_PDEATHSIG``, to end the workers of a killed
    parent, was tried and dropped: it fires when the *thread* that forked a worker ends, and the
    pool's handler thread forks the replacement of a dead worker, then ends at ``terminate``,
    killing that worker while it may hold the task queue's lock: ``terminate`` then hung.)
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_pending(stem: str, parent: int) -> tuple[str, Path, bool | None]:
    """A worker's task: draw figure ``stem`` for the process ``parent`` that started the pool."""
    _leave_if_orphaned(parent)
    job, path = _PENDING[stem]
    drawn = stem, *_drawn(job, path)
    _leave_if_orphaned(parent)
    return drawn


def _leave_if_orphaned(parent: int) -> None:
    """End this worker, silently, when the process that started the pool is gone (killed with
    ``SIGKILL``: it could not stop its workers). Nothing waits for the figure then, and handing it
    back would print a ``BrokenPipeError`` traceback into the terminal after the command ended."""
    if os.getppid() != parent:
        os._exit(0)


def _drawn(job: FigureJob, path: Path) -> tuple[Path, bool | None]:
    """Draw ``job`` to ``path``: the path written, and whether the PNG has at most 256 colours
    (None when :func:`_save` did not record it)."""
    few: dict[Path, bool] = {}
    _COLOURS.few = few
    try:
        written = _run_job(job, path)
        return written, few.get(Path(written))
    finally:
        _COLOURS.few = None


def _run_job(job: FigureJob, path: Path) -> Path:
    func, args, kwargs = job
    with file_style():
        result = func(*args, path, **kwargs)
    assert isinstance(result, Path)
    return result
