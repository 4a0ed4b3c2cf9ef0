"""Layout of every figure, measured with matplotlib's own renderer (no system tools).

For each figure, on the synthetic report data and on a long hourly ledger: every drawn
text lies inside the figure; no two text boxes overlap; no legend covers more than
:data:`MAX_COVERED` of the plotted data points of any axes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from synthetic import build_compare, build_compare_grid, build_ledger

from reports import figures as F
from reports import load_events, select_events
from reports import tearsheet as T

#: Largest share of an axes' data points a legend may cover.
MAX_COVERED = 0.01
#: Pixels two boxes may share before they count as overlapping (anti-aliasing slack).
SLACK = 1.0


def _axis_texts(ax: Axes) -> list[Text]:
    out: list[Text] = []
    if not ax.axison:
        return out
    for axis in (ax.xaxis, ax.yaxis):
        if not axis.get_visible():
            continue
        for tick in axis._update_ticks():  # the ticks actually drawn
            out += [t for t in (tick.label1, tick.label2) if t.get_visible()]
        out += [axis.label, axis.offsetText]
    return out


def drawn_texts(fig: Figure) -> list[Text]:
    """Every text matplotlib draws for ``fig``, with a non-empty string."""
    texts: list[Text] = list(fig.texts)
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    for leg in fig.legends:
        texts += leg.get_texts()
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts, *_axis_texts(ax)]
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
        for tbl in ax.tables:
            texts += [c.get_text() for c in tbl.get_celld().values()]
    unique = list({id(t): t for t in texts}.values())  # the suptitle is also in fig.texts
    return [t for t in unique if t.get_visible() and t.get_text().strip()]


def _legends(fig: Figure) -> list[Legend]:
    return [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]]


def _data_points(ax: Axes) -> np.ndarray:
    """Display coordinates of the axes' line vertices inside the axes box."""
    pts = []
    for ln in ax.lines:
        if not isinstance(ln, Line2D) or not ln.get_visible():
            continue
        xy = ln.get_xydata()
        if len(xy) < 2:
            continue  # legend-only entries and single markers
        xy = ln.get_transform().transform(np.asarray(xy, dtype=float))
        pts.append(xy[np.isfinite(xy).all(axis=1)])
    for coll in ax.collections:
        off = coll.get_offsets()
        if len(off):
            pts.append(coll.get_offset_transform().transform(np.asarray(off, dtype=float)))
    if not pts:
        return np.empty((0, 2))
    allp = np.concatenate(pts)
    box = ax.get_window_extent()
    inside = (allp[:, 0] >= box.x0) & (allp[:, 0] <= box.x1) & (allp[:, 1] >= box.y0) & (allp[:, 1] <= box.y1)
    return allp[inside]


def check_layout(fig: Figure) -> list[str]:
    """Problems with ``fig``'s layout (empty when there are none)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figbox = Bbox.from_bounds(0, 0, fig.bbox.width, fig.bbox.height)
    problems = []
    boxes = []
    for t in drawn_texts(fig):
        b = t.get_window_extent(renderer)
        if b.x0 < figbox.x0 - SLACK or b.y0 < figbox.y0 - SLACK or b.x1 > figbox.x1 + SLACK \
                or b.y1 > figbox.y1 + SLACK:
            problems.append(f"outside the figure: {t.get_text()!r} {b.bounds}")
        boxes.append((t, b))
    for (t1, b1), (t2, b2) in itertools.combinations(boxes, 2):
        w = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
        h = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
        if w > SLACK and h > SLACK:
            problems.append(f"overlap: {t1.get_text()!r} and {t2.get_text()!r}")
    for leg in _legends(fig):
        lb = leg.get_window_extent(renderer)
        for ax in fig.axes:
            pts = _data_points(ax)
            if len(pts) == 0:
                continue
            covered = ((pts[:, 0] >= lb.x0) & (pts[:, 0] <= lb.x1) & (pts[:, 1] >= lb.y0)
                       & (pts[:, 1] <= lb.y1)).mean()
            if covered > MAX_COVERED:
                problems.append(f"legend covers {100 * covered:.1f} % of the data of {ax.get_title()!r}")
    return problems


def _datasets() -> dict[str, dict[str, Any]]:
    short = build_ledger(2000, rules=("static_ols", "rolling_ols"))
    long = build_ledger(24 * 420, rules=("notional", "min_variance(window=720)", "ewma(halflife=168.0)"),
                        start="2024-01-01T00:00:00Z", seed=11)
    extra = {"short": {"start": "2025-02-01T00:00:00Z", "end": "2025-02-01T10:00:00Z",
                       "title": "A short window with a rather long title that must wrap, not be cut"}}
    return {
        "synthetic": {"ledger": short, "events": select_events(load_events(extra), ["deepseek_2025", "short"])},
        "long_hourly": {"ledger": long, "events": select_events(load_events(None), ["deepseek_2025"])},
    }


DATA = _datasets()


def _calls() -> dict[str, Callable[[dict[str, Any]], Figure]]:
    def pnl(led: pd.DataFrame) -> dict[str, dict[str, float]]:
        from backtest.schema import PNL_COLUMN, PNL_COMPONENTS

        out = {}
        for rule, g in led.groupby("rule", sort=False):
            p = {c: float(g[PNL_COLUMN[c]].sum()) for c in PNL_COMPONENTS}
            p["total"] = sum(p.values())
            out[str(rule)] = p
        return out

    return {
        "equity": lambda d: F.plot_equity(d["ledger"]),
        "rolling_vol": lambda d: F.plot_rolling_vol(d["ledger"], bars_per_day=24),
        "drawdowns": lambda d: F.plot_drawdowns(d["ledger"]),
        "hedge_ratio": lambda d: F.plot_hedge_ratio(d["ledger"]),
        "rolling_he": lambda d: F.plot_rolling_he(d["ledger"], bars_per_day=24, oracle_r2=0.45),
        "pnl_attribution": lambda d: F.plot_pnl_attribution(pnl(d["ledger"])),
        "events": lambda d: F.plot_event_panels(d["ledger"], d["events"]),
        "margin": lambda d: F.plot_margin(d["ledger"]),
        "monthly_returns": lambda d: T.plot_monthly_returns(d["ledger"]),
        "return_histogram": lambda d: T.plot_return_histogram(d["ledger"]),
        "rolling_beta": lambda d: T.plot_rolling_beta(d["ledger"], bars_per_day=24),
    }


CALLS = _calls()


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("name", list(CALLS))
def test_figure_layout(name: str, data: str) -> None:
    fig = CALLS[name](DATA[data])
    assert check_layout(fig) == []


@pytest.mark.parametrize("name", ["scatter", "table", "heatmap"])
@pytest.mark.parametrize("table", ["grid", "single"])
def test_compare_figure_layout(name: str, table: str) -> None:
    compare = build_compare_grid() if table == "grid" else build_compare()
    fig = getattr(F, f"plot_compare_{name}")(compare)
    assert check_layout(fig) == []


def test_the_check_finds_problems() -> None:
    """The check is not vacuous: a legend over the data, overlapping and clipped text fail it."""
    fig = F.new_figure(4.0, 3.0)
    ax = fig.add_subplot()
    x = np.linspace(0, 1, 400)
    ax.plot(x, np.full_like(x, 0.9), label="a line near the top")
    ax.plot(x, x, label="diagonal")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")  # sits on the flat line
    ax.text(0.5, 0.5, "one label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "another label", transform=ax.transAxes)
    fig.text(0.95, 0.5, "runs off the right edge of the figure")
    problems = check_layout(fig)
    assert any(p.startswith("legend covers") for p in problems)
    assert any(p.startswith("overlap") and "one label" in p for p in problems)
    assert any(p.startswith("outside the figure") for p in problems)


def record_pdf_pages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Patch ``PdfPages.savefig`` so that every PDF page the reports write is checked by
    :func:`check_layout` (drawn once with Agg) before it is saved; returns the list that fills
    with ``(the page's text, its problems)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_pdf import PdfPages

    pages: list[tuple[str, list[str]]] = []
    real = PdfPages.savefig

    def savefig(self: PdfPages, figure: Figure | None = None, **kw: Any) -> None:
        assert figure is not None
        FigureCanvasAgg(figure)
        problems = check_layout(figure)
        pages.append((" ".join(t.get_text() for t in drawn_texts(figure)), problems))
        real(self, figure, **kw)

    monkeypatch.setattr(PdfPages, "savefig", savefig)
    return pages


@pytest.mark.parametrize("rules", [("static_ols", "rolling_ols"), ("static_ols",)])
def test_report_pdf_pages_layout(rules: tuple[str, ...], tmp_path, monkeypatch) -> None:
    """Every page of the run report, the executive summary with its figure included: no text
    outside the page, no two text boxes overlapping, no legend over the data; none empty.
    The summary's figure fills the rest of its last page, or the next page when fewer than
    ``_SUMMARY_FIGURE_MIN`` inches are left."""
    from synthetic import build_result_dir

    from reports.render import render_report

    pages = record_pdf_pages(monkeypatch)
    files = render_report(build_result_dir(tmp_path / "r", n_bars=2000, rules=rules, compare=False))
    assert len(pages) == files.pages
    summary = [i for i, (text, _) in enumerate(pages) if "Executive summary" in text]
    assert summary, "no executive summary page"
    with_figure = [i for i, (text, _) in enumerate(pages) if "Cumulative P&L since the start (USD)" in text]
    assert len(with_figure) == 1 and summary[0] <= with_figure[0] <= summary[0] + 2
    assert "Metrics per rule" in pages[with_figure[0] + 1][0]  # the figure ends the summary
    for i, (text, problems) in enumerate(pages):
        assert text.strip(), f"page {i + 1} is empty"
        assert problems == [], f"page {i + 1}: {problems}"
