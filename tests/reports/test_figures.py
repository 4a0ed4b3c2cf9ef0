"""Figures: valid 150-dpi PNGs, readable text, deterministic bytes, honest downsampling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image
from synthetic import build_compare, build_result_dir

from reports import figures as F
from reports import load_events, select_events

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = build_result_dir(tmp_path_factory.mktemp("fig") / "result", compare=False)
    summary = json.loads((folder / "summary.json").read_text())
    ledger = pd.read_parquet(folder / "ledger.parquet")
    extra = {"short": {"start": "2025-02-01T00:00:00Z", "end": "2025-02-01T10:00:00Z", "title": "A short window"}}
    events = select_events(load_events(extra), ["deepseek_2025", "short"])
    return {"summary": summary, "ledger": ledger, "events": events, "compare": build_compare()}


def _figure_calls(inputs: dict[str, Any]) -> dict[str, Callable[[Path], Path]]:
    led, s = inputs["ledger"], inputs["summary"]
    return {
        "equity": lambda p: F.plot_equity(led, p),
        "rolling_vol": lambda p: F.plot_rolling_vol(led, p, bars_per_day=24),
        "drawdowns": lambda p: F.plot_drawdowns(led, p),
        "hedge_ratio": lambda p: F.plot_hedge_ratio(led, p),
        "rolling_he": lambda p: F.plot_rolling_he(led, p, bars_per_day=24, oracle_r2=s["oracle_r2"]),
        "pnl": lambda p: F.plot_pnl_attribution({r: v["pnl"] for r, v in s["rules"].items()}, p),
        "events": lambda p: F.plot_event_panels(led, inputs["events"], p),
        "margin": lambda p: F.plot_margin(led, p),
        "compare_scatter": lambda p: F.plot_compare_scatter(inputs["compare"], p),
        "compare_table": lambda p: F.plot_compare_table(inputs["compare"], p),
    }


NAMES = ["equity", "rolling_vol", "drawdowns", "hedge_ratio", "rolling_he", "pnl", "events", "margin",
         "compare_scatter", "compare_table"]


@pytest.mark.parametrize("name", NAMES)
def test_figure_png_and_text(
    inputs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A valid 150-dpi PNG, text >= 9 pt, titled, labelled, with a legend (byte-identity: test_render)."""
    saved: list[Figure] = []
    original = F._save

    def keep(fig: Figure, path: Path) -> Path:
        saved.append(fig)
        return original(fig, path)

    monkeypatch.setattr(F, "_save", keep)
    call = _figure_calls(inputs)[name]
    path = call(tmp_path / "sub" / f"{name}.png")

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        width, height = img.size
        dpi = img.info.get("dpi")
    assert dpi is not None and round(dpi[0]) == 150
    assert width >= 1200 and height >= 400
    if name in ("equity", "rolling_vol", "drawdowns", "rolling_he"):
        assert (width, height) == (1500, 900)  # 10 x 6 in at 150 dpi
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind

    fig = saved[0]
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert texts
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 9]
    assert small == []
    titled = bool(fig._suptitle and fig._suptitle.get_text()) or any(ax.get_title() for ax in fig.axes)
    assert titled
    for ax in fig.axes:
        if (ax.lines or ax.collections or ax.patches) and ax.axison:
            assert ax.get_ylabel(), f"{name}: y axis without label"
    if name != "compare_table":
        assert fig.legends or any(ax.get_legend() is not None for ax in fig.axes), f"{name}: no legend"


def test_decimation_keeps_extremes(rng: np.random.Generator) -> None:
    n = 39_000
    x = np.arange(n)
    y = np.cumsum(rng.normal(size=n))
    y[12_345] = 1e6  # a one-bar spike must survive
    xd, yd = F._decimate(x, y, max_points=5000)
    assert len(xd) <= 5000
    assert yd.max() == y.max() and yd.min() == y.min()
    assert xd[0] == 0 and xd[-1] == n - 1
    assert np.all(np.diff(xd) > 0)
    np.testing.assert_array_equal(yd, y[xd])
    # every bucket's envelope is kept: the max over any 16-bar span is drawn
    width = int(np.ceil(2 * n / 5000))
    for b in range(0, n, width * 97):
        seg = slice(b, min(b + width, n))
        assert y[seg].max() in yd and y[seg].min() in yd


def test_decimation_leaves_short_series_and_drops_nan() -> None:
    x = np.arange(6)
    y = np.array([np.nan, 1.0, 2.0, np.nan, 3.0, 4.0])
    xd, yd = F._decimate(x, y)
    assert xd.tolist() == [1, 2, 4, 5] and yd.tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("shape", [(1, 1), (3, 257), (90, 150), (61, 7)])
def test_png_writer_round_trips_through_pillow(rng: np.random.Generator, shape: tuple[int, int]) -> None:
    """Pillow (an independent decoder, CRCs checked) reads back the same pixels, mode and dpi as it
    would from its own writer, and the PDF finds the ``IDAT`` it embeds."""
    import io

    from reports.pdf import _rgb8_idat

    rgb = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    rgb[: shape[0] // 2] = 255  # flat rows, as a figure's white margins
    data = F.png_rgb8(rgb, F.DPI)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.mode == "RGB" and im.size == (shape[1], shape[0])
        np.testing.assert_array_equal(np.asarray(im), rgb)
        dpi = im.info["dpi"]
    own = io.BytesIO()
    Image.fromarray(rgb).save(own, format="png", dpi=(F.DPI, F.DPI))
    with Image.open(own) as ref:
        assert dpi == ref.info["dpi"]
    assert _rgb8_idat(data) is not None
    with pytest.raises(ValueError, match="uint8 RGB"):
        F.png_rgb8(np.zeros((2, 2, 4), np.uint8), F.DPI)


def test_compare_scatter_frontier_line(inputs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[Figure] = []
    monkeypatch.setattr(F, "_save", lambda fig, path: saved.append(fig) or path)
    compare = inputs["compare"]
    F.plot_compare_scatter(compare, tmp_path / "c.png")
    (ax,) = saved[0].axes
    (line,) = [ln for ln in ax.lines if ln.get_label() == "efficient frontier"]
    cost = compare["cost_drag_bps_per_year"].to_numpy()
    he = compare["hedge_effectiveness"].to_numpy()
    xs = line.get_xdata()
    # frontier points, sorted by cost: each costs more and hedges better than the last
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(line.get_ydata()) > 0)
    for xv, yv in zip(xs, line.get_ydata(), strict=True):
        assert not np.any((cost <= xv) & (100 * he > yv) | (cost < xv) & (100 * he >= yv))


def _all_texts(fig: Figure) -> list[Text]:
    """Every visible text of ``fig``, table cells included (``findobj`` does not reach them)."""
    cells = [c.get_text() for ax in fig.axes for tbl in ax.tables for c in tbl.get_celld().values()]
    return [t for t in [*fig.findobj(Text), *cells] if t.get_visible() and t.get_text()]


def test_user_text_is_never_mathtext(inputs: dict[str, Any]) -> None:
    """Dollar signs in rule, event and variant names print as dollars, not as mathematics."""
    from matplotlib import cbook

    led = inputs["ledger"].copy()
    led["rule"] = led["rule"].map({"static_ols": "$500,000 of RENDER", "rolling_ols": "$500,000 of TAO"})
    extra = {"cash": {"start": "2025-01-20T00:00:00Z", "end": "2025-02-01T00:00:00Z",
                      "title": "Long $500,000 of RENDER, $500,000 of TAO"}}
    events = select_events(load_events(extra), ["cash"])
    compare = inputs["compare"].copy()
    compare["variant"] = [f"${i} fixed" for i in range(len(compare))]
    figs = [
        F.plot_equity(led), F.plot_rolling_he(led, bars_per_day=24, oracle_r2=0.5), F.plot_hedge_ratio(led),
        F.plot_margin(led), F.plot_event_panels(led, events), F.plot_rolling_vol(led, bars_per_day=24),
        F.plot_compare_table(compare), F.plot_compare_scatter(compare),
    ]
    for fig in figs:
        assert isinstance(fig, Figure)
        texts = _all_texts(fig)
        assert any("$" in t.get_text() for t in texts), fig.axes[0].get_title()
        for t in texts:
            assert not cbook.is_math_text(t.get_text()), t.get_text()
        fig.canvas.draw()  # renders without a mathtext parse error


def test_tex_escapes_each_dollar_once() -> None:
    assert F.tex("$5 and $6") == r"\$5 and \$6"
    assert F.tex(r"\$5") == r"\$5"
    assert F.tex("no dollars") == "no dollars"


def test_roll_count_counts_roll_starts(inputs: dict[str, Any]) -> None:
    """A roll spread over 4 grace bars is one roll in the legend."""
    led = inputs["ledger"].copy()
    rolled = np.zeros(len(led) // 2, dtype=bool)
    for start in (100, 700, 1400):
        rolled[start:start + 4] = True
    led["rolled"] = np.concatenate([rolled, rolled])
    fig = F.plot_hedge_ratio(led)
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "roll (3)" in labels and not any(lab == "roll (12)" for lab in labels)
    assert F.roll_starts(led[led["rule"] == "static_ols"]).sum() == 3


def test_margin_is_log_scale_and_shows_the_band(inputs: dict[str, Any]) -> None:
    led = inputs["ledger"]
    fig = F.plot_margin(led)
    for ax, rule in zip(fig.axes, ["static_ols", "rolling_ols"], strict=True):
        g = led[led["rule"] == rule]
        assert ax.get_yscale() == "log"
        lo, hi = ax.get_ylim()
        req = g["margin_required"]
        assert lo <= req[req > 0].min() and hi >= g["margin_balance"].max()
        assert any("requirement band" in c.get_label() for c in ax.collections)


def test_equity_is_pnl_with_reserve_stated(inputs: dict[str, Any]) -> None:
    led = inputs["ledger"]
    fig = F.plot_equity(led)
    ax = fig.axes[0]
    first = led[led["rule"] == "static_ols"].sort_values("ts")
    unhedged = [ln for ln in ax.lines if ln.get_label().startswith("unhedged")][0]
    assert unhedged.get_ydata()[0] == 0.0
    want = first["equity_unhedged"].iloc[-1] - first["equity_unhedged"].iloc[0]
    assert unhedged.get_ydata()[-1] == pytest.approx(want)
    assert f"{first['cash'].iloc[0]:,.0f}" in ax.get_title()


def test_rules_have_distinct_line_styles_and_a_difference_panel(inputs: dict[str, Any]) -> None:
    fig = F.plot_rolling_he(inputs["ledger"], bars_per_day=24, oracle_r2=0.5)
    top, bottom = fig.axes
    styles = {ln.get_label(): ln.get_linestyle() for ln in top.lines if not ln.get_label().startswith("_")}
    assert styles["static_ols"] != styles["rolling_ols"]
    assert "difference to" in bottom.get_title()
    # the best rule's difference to itself is zero wherever it is defined
    zero = [ln for ln in bottom.lines if np.nanmax(np.abs(ln.get_ydata())) == 0.0]
    assert len(zero) >= 2  # the best rule's own line and the zero reference


def test_compare_scatter_per_coin_clipped_and_counted() -> None:
    from synthetic import build_compare_grid

    compare = build_compare_grid()
    fig = F.plot_compare_scatter(compare)
    scen = compare.groupby(["coin", "window"]).ngroups
    assert len(fig.axes) == scen == 2
    for ax, ((coin, _w), g) in zip(fig.axes, compare.groupby(["coin", "window"], sort=False), strict=True):
        assert coin in ax.get_title()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        for fam, n in g["family"].value_counts().items():
            assert f"{fam} ({n})" in labels
        # the costly outlier is beyond the axis, and said so
        assert ax.get_xlim()[1] < g["cost_drag_bps_per_year"].max()
        assert any("beyond the axis" in lab for lab in labels)
    # no "-0" anywhere
    assert not any(t.get_text().startswith("-0") for t in _all_texts(fig))


def test_compare_table_has_coin_and_no_negative_zero() -> None:
    from synthetic import build_compare_grid

    compare = build_compare_grid()
    header, rows = F.compare_table_rows(compare, 100)
    assert header[0] == "coin"
    assert {r[0] for r in rows} == set(compare["coin"])
    assert not any(cell == "-0" for r in rows for cell in r)


def test_compare_heatmap_axes_and_cells() -> None:
    from synthetic import build_compare_grid

    compare = build_compare_grid()
    axes = F.compare_heatmap_axes(compare[compare["coin"] == "FET"])
    assert ("ewma", "halflife", "rebalance") in axes
    assert all(fam != "none" for fam, _r, _c in axes)
    fig = F.plot_compare_heatmap(compare)
    panel = [ax for ax in fig.axes if ax.get_title().startswith("FET") and "ewma" in ax.get_title()][0]
    g = compare[(compare["coin"] == "FET") & (compare["family"] == "ewma")]
    cells = [t.get_text() for t in panel.texts]
    assert len(cells) == len(g)
    assert sorted(cells) == sorted(f"{100 * v:.1f}" for v in g["hedge_effectiveness"])
