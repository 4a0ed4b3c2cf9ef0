"""The multi-page PDF report, drawn with matplotlib's PDF backend.

Layout (A4 landscape):

1. title page: scenario, data period, data provenance (with a warning when the
   funding series is a proxy);
2. executive summary in plain words: variance removed per rule at the headline horizon
   with its bootstrap interval, a recommended rule by the paired-bootstrap criterion of
   :func:`recommend_rule`, and for that rule the hedged vs unhedged dollar P&L, trading
   cost, carry (with its source), the margin the hedge needed and its worst event window;
   a small figure (cumulative P&L coin vs hedged, HE per rule with intervals) fills the
   rest of its last page;
3. tables (real text in a monospaced grid, not images): metrics per rule, P&L and costs
   per rule, the legs of each two-instrument rule (only when the summary has one: per leg its
   collateral split, collateral and reserve, mean weight, cost, carry, margin calls,
   liquidations, min safe collateral and contracts; the margin model; the legs' min safe
   collateral summed to the rule's), the event windows (with each event's description), and
   the rule comparison when a grid was run;
4. one page per figure (the PNGs, embedded without resampling), each with a caption;
5. appendix: the resolved configuration (dotted keys, wrapped across pages), input file
   hashes and package versions.

The file is byte-for-byte reproducible: the PDF metadata carries no creation or
modification date, and everything drawn is a pure function of the inputs.

Fonts: a page whose text the standard PDF fonts can show (Windows-1252 characters, no
mathtext) is set in Helvetica and Courier, which PDF readers carry and the file does not
embed; the few Greek letters of the report's own wording are spelled out there
(:data:`CORE_SPELLING`: "rho²"). Any other page -- a coin, rule or file name in another
script -- is set in DejaVu, embedded (TrueType subsets). Embedding DejaVu for every page
cost about 2 s of the demo report's 3.3 s of PDF writing (per-glyph layout in Python and
font subsetting), so the standard fonts are the fast path, not a different look.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import struct
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.cbook import is_math_text
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from PIL import Image

from backtest.metrics import plural
from backtest.schema import PNL_COMPONENTS, RULE_METRICS
from reports.events import Event
from reports.stats import BOOTSTRAP_METHOD
from reports.figures import STYLE, FigureMap, atomic_output, compare_table_rows, file_style

if TYPE_CHECKING:  # pragma: no cover - typing only
    from backtest.progress import Progress

__all__ = [
    "PAGE_SIZE",
    "RECOMMENDATION_CRITERION",
    "fmt_pct",
    "fmt_usd",
    "recommend_rule",
    "write_pdf",
]

#: Page size in inches (A4 landscape).
PAGE_SIZE: Final[tuple[float, float]] = (11.69, 8.27)
_MARGIN: Final[float] = 0.6
_BOTTOM: Final[float] = 0.55  # room for the footer
#: Average advance of DejaVu Sans / DejaVu Sans Mono glyphs, in em (for wrapping).
_SANS_EM: Final[float] = 0.56
_MONO_EM: Final[float] = 0.602
#: Characters of the report's own wording that the standard PDF fonts lack, as they are
#: spelled on a page set in those fonts (the text of every page passes through this table).
CORE_SPELLING: Final[dict[int, str]] = str.maketrans({"ρ": "rho", "Δ": "delta ", "−": "-"})
#: Settings of a page set in the standard PDF fonts (not embedded).
_CORE_FONTS: Final[dict[str, Any]] = {
    "pdf.use14corefonts": True,
    "font.sans-serif": ["Helvetica", "DejaVu Sans"],
    "font.monospace": ["Courier", "DejaVu Sans Mono"],
    "axes.unicode_minus": False,
}


class _RegularIsMedium(logging.Filter):
    """Drops matplotlib's notice that a standard font has no "normal" weight: the regular face of
    Helvetica and Courier is named "Medium" in the font metrics matplotlib ships, and that face
    is the one it then uses, as intended."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("findfont: Failed to find font weight normal for ")
                    and msg.endswith(", now using medium."))


@contextmanager
def _core_fonts() -> Iterator[None]:
    """:data:`_CORE_FONTS` in force, and :class:`_RegularIsMedium` on matplotlib's font lookup log."""
    log = logging.getLogger("matplotlib.font_manager")
    quiet = _RegularIsMedium()
    log.addFilter(quiet)
    try:
        with matplotlib.rc_context(_CORE_FONTS):
            yield
    finally:
        log.removeFilter(quiet)
#: Most compared variants listed in the PDF table (the full list stays in compare.parquet).
MAX_COMPARE_ROWS: Final[int] = 100

#: The recommendation rule, stated in the report.
RECOMMENDATION_CRITERION: Final[str] = (
    "Among the rules that were never liquidated, the best rule is the one with the highest hedge "
    "effectiveness (HE) at the headline horizon. Every other rule is compared with it by a paired "
    "circular block bootstrap (arch; both rules resampled on the same spans) of the HE difference and "
    "of the trading-cost difference. Recommend the cheapest rule whose HE is not significantly below the "
    "best rule's (the upper end of the 95 % interval of the difference is not below 0) and whose trading "
    "cost is significantly lower (the interval of the cost difference lies below 0); otherwise the best "
    "rule. A rule whose intervals could not be computed is not recommended over the best rule."
)


def fmt_pct(x: float, digits: int = 1) -> str:
    """``0.4523 -> '45.2 %'`` (``'n/a'`` for NaN); the report's format for fractions."""
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    return f"{100.0 * float(x):.{digits}f} %"


def fmt_usd(x: float) -> str:
    """``-12345.6 -> '-12,346 USD'`` (``'n/a'`` for NaN)."""
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    return f"{float(x):,.0f} USD"


def _fmt_count(value: Any) -> str:
    """A whole number with thousands separators (``"38,241"``); ``"?"`` when not recorded."""
    return f"{int(value):,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"


def _fmt_when(value: Any) -> str:
    """An ISO time stamp as ``'2025-01-20 00:00 UTC'`` (unchanged when unparsable)."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if ts is pd.NaT:
        return str(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def _fmt_num(x: Any, spec: str) -> str:
    """``format(x, spec)``; ``'n/a'`` for a missing figure (None: ``null`` in ``summary.json``) or a
    non-finite one; a value that is not a number as its text."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "n/a"
    return format(v, spec)


#: How each per-rule metric is labelled and formatted in the metrics table.
_METRIC_FORMAT: Final[dict[str, tuple[str, str]]] = {
    "hedge_effectiveness": ("hedge effectiveness HE = 1 - Var(h)/Var(u), per bar", "pct"),
    "he_bar": ("HE per bar", "pct"),
    "he_1D": ("HE of 1-day returns", "pct"),
    "he_7D": ("HE of 7-day returns", "pct"),
    "oracle_r2": ("oracle ρ² (best constant hedge in hindsight)", "pct"),
    "he_vs_oracle": ("HE / oracle ρ²", "ratio"),
    "vol_unhedged_ann": ("volatility unhedged, per year", "pct"),
    "vol_hedged_ann": ("volatility hedged, per year", "pct"),
    "max_drawdown_unhedged": ("max drawdown unhedged", "pct"),
    "max_drawdown_hedged": ("max drawdown hedged", "pct"),
    "var95_unhedged": ("95 % VaR per bar unhedged (historical)", "pct2"),
    "var95_hedged": ("95 % VaR per bar hedged (historical)", "pct2"),
    "cvar95_unhedged": ("95 % CVaR per bar unhedged", "pct2"),
    "cvar95_hedged": ("95 % CVaR per bar hedged", "pct2"),
    "trades": ("rebalancing trades (bars)", "int"),
    "rolls": ("contract rolls", "int"),
    "turnover_contracts": ("turnover (contracts)", "int"),
    "margin_calls": ("margin calls", "int"),
    "liquidations": ("liquidations", "int"),
    "min_margin_excess": ("smallest margin excess (USD)", "usd"),
    "min_safe_collateral": ("smallest starting collateral with no margin call, no capped re-size, no liquidation, reserve 0 (USD)", "usd"),
    "cost_drag_bps_per_year": ("cost drag (bps of coin notional per year)", "bps"),
    "cost_trading_usd": ("trading cost: fees, slippage, rolls, liquidation (USD)", "usd"),
    "cost_trading_bps_per_year": ("trading cost (bps of coin notional per year)", "bps"),
    "carry_usd": ("carry: basis or funding, + = earned by the short (USD)", "usd"),
    "carry_bps_per_year": ("carry (bps of coin notional per year)", "bps"),
    "net_cost_usd": ("net cost = trading cost - carry (USD)", "usd"),
    "net_cost_bps_per_year": ("net cost (bps of coin notional per year)", "bps"),
    "futures_basis_pnl": ("futures basis P&L (USD)", "usd"),
}


def _fmt_metric(value: Any, kind: str) -> str:
    if kind == "pct":
        return fmt_pct(value)
    if kind == "pct2":
        return fmt_pct(value, 2)
    if kind == "ratio":
        return _fmt_num(value, ".2f")
    if kind in ("usd", "int"):
        return _fmt_num(value, ",.0f")
    if kind == "bps":
        return _fmt_num(value, ",.1f")
    return _fmt_num(value, ".4g")


def recommend_rule(metrics: pd.DataFrame) -> tuple[str | None, str]:
    """Pick a rule by :data:`RECOMMENDATION_CRITERION`.

    A rule other than the best (``best_rule``) is recommended when it was never liquidated,
    ``he_diff_hi >= 0`` (its HE is not significantly below the best rule's; a NaN interval
    fails) and ``cost_diff_hi < 0`` (significantly cheaper); among those, the cheapest
    (lowest ``cost_diff_vs_best_bps_per_year``). Otherwise the best rule.

    Parameters
    ----------
    metrics : pandas.DataFrame
        One row per rule (the ``metrics.csv`` table) with ``rule``, ``best_rule``,
        ``he_horizon``, ``he_<horizon>``, ``he_diff_vs_best``/``_lo``/``_hi``,
        ``cost_diff_vs_best_bps_per_year``, ``cost_diff_lo``/``_hi`` and ``liquidations``.

    Returns
    -------
    rule, reason : str or None, str
        The recommended rule (None when no rule has a finite HE) and a plain-words reason.
    """
    if not len(metrics) or not str(metrics["best_rule"].iloc[0]):
        return None, "No rule has a measurable hedge effectiveness, so none is recommended."
    horizon = str(metrics["he_horizon"].iloc[0])
    he_col = f"he_{horizon}"
    best_name = str(metrics["best_rule"].iloc[0])
    best = metrics[metrics["rule"] == best_name].iloc[0]
    caveat = ""
    if int(best["liquidations"]) > 0:
        caveat = " Every rule was liquidated at least once, so all rules were considered; add collateral."
    ok = metrics[(metrics["rule"] != best_name) & (metrics["liquidations"].to_numpy(dtype=float) == 0)
                 & (metrics["he_diff_hi"].to_numpy(dtype=float) >= 0.0)  # NaN (no interval): not shown equal
                 & (metrics["cost_diff_hi"].to_numpy(dtype=float) < 0.0)]
    level = fmt_pct(float(metrics["he_ci_level"].iloc[0]), 0)
    if ok.empty:
        others = metrics[metrics["rule"] != best_name]
        detail = "; ".join(
            f"{r['rule']}: HE {_fmt_pp(r['he_diff_vs_best'])} ({level} interval {_fmt_pp(r['he_diff_lo'])} to "
            f"{_fmt_pp(r['he_diff_hi'])}), cost {_fmt_num(r['cost_diff_vs_best_bps_per_year'], '+,.1f')} bps a year "
            f"({_fmt_num(r['cost_diff_lo'], '+,.1f')} to {_fmt_num(r['cost_diff_hi'], '+,.1f')})"
            for _, r in others.iterrows()
        )
        reason = (
            f"{best_name} has the highest HE at the {horizon} horizon ({fmt_pct(best[he_col])}); no other rule is "
            f"both not significantly less effective and significantly cheaper (paired bootstrap against "
            f"{best_name}" + (f": {detail})." if detail else ").")
        )
        return best_name, reason + caveat
    pick = ok.sort_values(["cost_diff_vs_best_bps_per_year", "rule"], kind="stable").iloc[0]
    reason = (
        f"{pick['rule']} (HE {fmt_pct(pick[he_col])} at the {horizon} horizon) is not significantly less effective "
        f"than the most effective rule {best_name} (HE {fmt_pct(best[he_col])}; paired difference "
        f"{_fmt_pp(pick['he_diff_vs_best'])}, {level} interval {_fmt_pp(pick['he_diff_lo'])} to "
        f"{_fmt_pp(pick['he_diff_hi'])}) and significantly cheaper (trading cost "
        f"{_fmt_num(pick['cost_diff_vs_best_bps_per_year'], '+,.1f')} bps a year, interval "
        f"{_fmt_num(pick['cost_diff_lo'], '+,.1f')} to {_fmt_num(pick['cost_diff_hi'], '+,.1f')})."
    )
    return str(pick["rule"]), reason + caveat


def _fmt_pp(x: Any) -> str:
    """A difference of fractions in percentage points, signed: ``0.0083 -> '+0.83 pp'``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return f"{100.0 * v:+.2f} pp" if math.isfinite(v) else "n/a"


class _Doc:
    """A cursor that writes text lines, grids and images onto successive PDF pages."""

    def __init__(self, pdf: PdfPages, footer: str, progress: Progress | None = None, expected_pages: int = 1) -> None:
        self.pdf = pdf
        self.pngs = _PngPassThrough(pdf)
        self.footer = footer
        self.progress = progress
        self.expected_pages = expected_pages  # an estimate, for progress reports only
        self.pages = 0
        self.fig: Figure | None = None
        self.y = 0.0  # inches from the top of the page

    # -- pages -------------------------------------------------------------------
    def new_page(self) -> Figure:
        self.flush()
        self.fig = Figure(figsize=PAGE_SIZE)
        self.y = _MARGIN
        return self.fig

    def flush(self) -> None:
        if self.fig is None:
            return
        self.pages += 1
        self.fig.text(0.5, 0.3 / PAGE_SIZE[1], f"{self.footer} - page {self.pages}", ha="center",
                      va="bottom", fontsize=8, color="0.4")
        with page_fonts(self.fig):
            self.pdf.savefig(self.fig)
        self.fig = None
        if self.progress is not None:
            self.progress("PDF pages", self.pages, max(self.expected_pages, self.pages + 1))

    def close(self) -> int:
        """Write the last page; report the final page count as the total; return it."""
        self.flush()
        if self.progress is not None:
            self.progress("PDF pages", self.pages, self.pages)
        return self.pages

    def _need(self, height: float) -> Figure:
        if self.fig is None or self.y + height > PAGE_SIZE[1] - _BOTTOM:
            self.new_page()
        assert self.fig is not None
        return self.fig

    # -- text --------------------------------------------------------------------
    @staticmethod
    def _width_chars(size: float, em: float, indent: float = 0.0) -> int:
        usable = (PAGE_SIZE[0] - 2 * _MARGIN - indent) * 72.0
        return max(20, int(usable / (em * size)))

    def line(self, text: str, *, size: float = 10, weight: str = "normal", mono: bool = False,
             indent: float = 0.0, color: str = "black") -> None:
        height = size * 1.4 / 72.0
        fig = self._need(height)
        self.y += height
        fig.text((_MARGIN + indent) / PAGE_SIZE[0], 1.0 - (self.y - 0.25 * size / 72.0) / PAGE_SIZE[1], text,
                 fontsize=size, fontweight=weight, family="monospace" if mono else "sans-serif",
                 ha="left", va="baseline", color=color)

    def para(self, text: str, *, size: float = 10, indent: float = 0.0, hanging: str = "",
             mono: bool = False, weight: str = "normal") -> None:
        width = self._width_chars(size, _MONO_EM if mono else _SANS_EM, indent)
        lines = textwrap.wrap(text, width=width, initial_indent=hanging,
                              subsequent_indent=" " * len(hanging), break_long_words=True) or [""]
        for ln in lines:
            self.line(ln, size=size, indent=indent, mono=mono, weight=weight)

    def space(self, inches: float) -> None:
        self.y += inches

    def heading(self, text: str, *, size: float = 15) -> None:
        if self.fig is not None and self.y > _MARGIN:
            self.space(0.15)
        self._need(size * 1.4 / 72.0 + 0.6)
        self.line(text, size=size, weight="bold")
        self.space(0.08)

    def rule_line(self) -> None:
        fig = self._need(0.05)
        y = 1.0 - (self.y + 0.04) / PAGE_SIZE[1]
        fig.add_artist(Line2D([_MARGIN / PAGE_SIZE[0], 1 - _MARGIN / PAGE_SIZE[0]], [y, y], color="0.5", lw=0.6))
        self.space(0.08)

    def grid(self, header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[bool],
             size: float = 9.0) -> None:
        """A table as monospaced text rows; the header repeats on every page. Cells are spelled
        with :data:`CORE_SPELLING` before the columns are sized (a page in the standard fonts
        would spell them so, and the columns must stay aligned)."""
        header = [str(h).translate(CORE_SPELLING) for h in header]
        cells = [[str(c).translate(CORE_SPELLING) for c in r] for r in rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
        total = sum(widths) + 2 * (len(widths) - 1)
        fit = (PAGE_SIZE[0] - 2 * _MARGIN) * 72.0 / (_MONO_EM * max(total, 1))
        size = max(6.0, min(size, fit))

        def fmt(row: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True))

        def head() -> None:
            self.line(fmt(header), size=size, mono=True, weight="bold")
            self.rule_line()

        row_h = size * 1.4 / 72.0
        self._need(3 * row_h + 0.1)
        head()
        for r in cells:
            if self.y + row_h > PAGE_SIZE[1] - _BOTTOM:
                self.new_page()
                head()
            self.line(fmt(r), size=size, mono=True)
        self.space(0.1)

    def image_page(self, png: Path, caption: str, few_colours: bool | None = None) -> None:
        """A page with the figure ``png`` and its caption; ``few_colours`` as
        :meth:`reports.figures.PendingFigures.few_colours` (see :class:`_PngPassThrough`)."""
        fig = self.new_page()
        img = self.pngs.read(png, few_colours)  # uint8, opaque: the pixels or a stand-in, embedded as the PNG
        box_w = PAGE_SIZE[0] - 2 * _MARGIN
        box_h = PAGE_SIZE[1] - _MARGIN - 1.2
        h_px, w_px = img.shape[:2]
        scale = min(box_w / w_px, box_h / h_px)
        w, h = w_px * scale, h_px * scale
        left = (PAGE_SIZE[0] - w) / 2
        bottom = PAGE_SIZE[1] - _MARGIN - h
        ax = fig.add_axes((left / PAGE_SIZE[0], bottom / PAGE_SIZE[1], w / PAGE_SIZE[0], h / PAGE_SIZE[1]))
        ax.imshow(img[::-1], origin="lower", interpolation="none")  # rows as in the PNG (see _PngPassThrough)
        ax.set_axis_off()
        self.y = PAGE_SIZE[1] - bottom + 0.1
        self.para(caption, size=10)


def _page_texts(artist: Any) -> list[Text | str]:
    """Every text ``artist`` holds, and the fixed tick labels its axes will show.

    Unlike ``findobj`` this makes no tick: an axis makes its ticks when asked for its children.
    An axis contributes its label, its offset text, the ticks it has already made (their labels
    are filled in when the page is drawn) and the strings of a fixed tick formatter (labels set
    with ``set_xticks(..., labels)``); other tick labels come from the report's number formatters.
    """
    if isinstance(artist, Axis):
        made = [*vars(artist).get("majorTicks", []), *vars(artist).get("minorTicks", [])]
        fixed = [str(x) for x in getattr(artist.get_major_formatter(), "seq", ())]
        return [artist.label, artist.offsetText, *(lab for tick in made for lab in (tick.label1, tick.label2)), *fixed]
    own = [artist] if isinstance(artist, Text) else []
    return own + [t for child in artist.get_children() for t in _page_texts(child)]


def page_fonts(fig: Figure) -> AbstractContextManager[Any]:
    """The font settings to save the page ``fig`` with (see the module notes on fonts).

    When the page's texts, spelled with :data:`CORE_SPELLING`, encode as Windows-1252 (the
    encoding matplotlib writes standard-font text in) and none is mathtext, they are so
    spelled and the page is set in Helvetica and Courier (:func:`_core_fonts`); otherwise it
    keeps the embedded DejaVu. Tick labels not made yet are made while the page is drawn:
    they hold digits, signs and the report's own units.
    """
    found = _page_texts(fig)
    strings = [t if isinstance(t, str) else t.get_text() for t in found]
    # a fixed tick label is drawn as given (it is not a Text yet): it is not respelled
    spelled = [s if isinstance(t, str) else s.translate(CORE_SPELLING) for t, s in zip(found, strings, strict=True)]
    try:
        "".join(spelled).encode("cp1252")
    except UnicodeEncodeError:
        return nullcontext()
    if any(is_math_text(s) for s in spelled):
        return nullcontext()
    for t, s, new in zip(found, strings, spelled, strict=True):
        if isinstance(t, Text) and new != s:
            t.set_text(new)
    return _core_fonts()


class _PngPassThrough:
    """Figure PNGs embedded in the PDF with their own compressed pixel data.

    A PDF image with ``/FlateDecode`` and PNG predictors (``/Predictor 10``) holds exactly the
    concatenated ``IDAT`` data of an 8-bit, non-interlaced PNG. Matplotlib's PDF writer makes
    that data by encoding the image again (``PdfFile._writePng``, zlib level 6: about 0.15 s per
    1,500 x 900 figure); for a figure :meth:`read` has seen, the writer is handed the file's
    own ``IDAT`` instead. The pixels are the same bits either way; the PDF then stays as
    reproducible as the PNGs.

    An 8-bit RGB PNG known to have more than 256 colours (``few_colours=False``, from the figure
    worker that drew it) is not even decoded: :meth:`read` returns a *stand-in* of its size
    (opaque, white; row 0 holds 257 colours, so that matplotlib writes it as an RGB image as it
    would the figure, row 1 a key), and :meth:`_write_png` answers the stand-in's key with the
    PNG's ``IDAT``. That spares decoding the PNG and matplotlib's conversions of its pixels
    (about 0.07 s per figure). The PDF is byte-identical to one written from the decoded pixels
    (tested); :meth:`check_embedded` refuses a PDF in which a stand-in's key was not met. Any
    other image (fewer colours: matplotlib writes a palette image; not known; an RGBA PNG; a
    different matplotlib) is decoded and goes through matplotlib's own steps.
    """

    #: prefix of a stand-in's key (row 1, pixels 0-3: 12 bytes with a 4-byte counter)
    _KEY: Final[bytes] = b"hedgebt\x00"

    def __init__(self, pdf: PdfPages) -> None:
        self._pdf = pdf
        self._known: dict[bytes, bytes] = {}  # SHA-256 of decoded RGB pixels -> IDAT
        self._waiting: dict[bytes, tuple[bytes, tuple[int, int]]] = {}  # stand-in key -> (IDAT, size)
        self._stand_ins = 0
        self._encode: Any = None

    def _hook(self) -> bool:
        """Route this PDF's image encoding through :meth:`_write_png` (the writer exists once a
        page is saved); False when this matplotlib has no such writer method."""
        if self._encode is None:
            writer = getattr(self._pdf, "_file", None)
            encode = getattr(writer, "_writePng", None)
            if encode is None:
                return False
            self._encode = encode
            writer._writePng = self._write_png  # type: ignore[union-attr]  # this file's writer only
        return True

    def read(self, png: Path, few_colours: bool | None = None) -> np.ndarray:
        """The pixels to draw for ``png`` (uint8, RGB or opaque RGBA), embedded as its ``IDAT``
        where possible: a stand-in when ``few_colours`` is False (see the class notes), else
        the decoded pixels."""
        data = Path(png).read_bytes()
        idat = _rgb8_idat(data)
        if idat is not None and few_colours is False and self._hook():
            width, height = struct.unpack(">LL", data[16:24])  # IHDR, checked by _rgb8_idat
            if width > 256 and height > 1:
                return self._stand_in(width, height, idat)
        with Image.open(io.BytesIO(data)) as im:
            img = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        if idat is not None and self._hook():
            self._known[hashlib.sha256(img.tobytes()).digest()] = idat
        return img

    def _stand_in(self, width: int, height: int, idat: bytes) -> np.ndarray:
        key = self._KEY + struct.pack(">L", self._stand_ins)
        self._stand_ins += 1
        self._waiting[key] = idat, (width, height)
        img = np.full((height, width, 4), 255, np.uint8)
        n = np.arange(257)
        img[0, :257, 0], img[0, :257, 1] = n % 256, n // 256  # 257 colours: not a palette image
        img[1, :4, :3] = np.frombuffer(key, np.uint8).reshape(4, 3)
        return img

    def _write_png(self, img: Image.Image) -> tuple[bytes, int | None, bytes | None]:
        if img.mode == "RGB":
            if self._waiting and img.width >= 4 and img.height >= 2:
                found = self._waiting.pop(img.crop((0, 1, 4, 2)).tobytes(), None)
                if found is not None:
                    if img.size != found[1]:  # matplotlib cut the image: the PNG's data no longer fits
                        raise RuntimeError(f"a figure was drawn {img.size[0]} x {img.size[1]} pixels, not as its PNG "
                                           f"({found[1][0]} x {found[1][1]}); see reports.pdf._PngPassThrough")
                    return found[0], 8, None
            idat = self._known.get(hashlib.sha256(img.tobytes()).digest())
            if idat is not None:
                return idat, 8, None
        assert self._encode is not None
        return self._encode(img)

    def check_embedded(self) -> None:
        """Raise when a stand-in was not replaced by its PNG's data (the PDF would show it)."""
        if self._waiting:
            raise RuntimeError(f"{len(self._waiting)} figure(s) not embedded in the PDF: this matplotlib's PDF "
                               "writer did not write them through PdfFile._writePng (see reports.pdf._PngPassThrough)")


def _rgb8_idat(data: bytes) -> bytes | None:
    """The concatenated ``IDAT`` data of an 8-bit RGB non-interlaced PNG, else None."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">L4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR" and (body[8], body[9], body[12]) != (8, 2, 0):  # depth 8, RGB, no interlace
            return None
        if kind == b"IDAT":
            idat.append(body)
        if kind == b"IEND":
            break
        pos += 12 + length
    return b"".join(idat) or None


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for k in value:
            out += _flatten(f"{prefix}.{k}" if prefix else str(k), value[k])
        return out or [(prefix, "{}")]
    return [(prefix, json.dumps(value, ensure_ascii=False, default=str))]


def _metrics_rows(metrics: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    rules = list(metrics["rule"])
    header = ["metric", *rules]
    keys: list[str] = []
    for key in (*RULE_METRICS, "he_bar", "he_1D", "he_7D", "var95_unhedged", "var95_hedged", "cvar95_unhedged",
                "cvar95_hedged"):
        if key in metrics.columns and key not in keys:
            keys.append(key)
    rows: list[list[str]] = []
    for key in keys:
        label, kind = _METRIC_FORMAT.get(key, (key, "general"))
        rows.append([label, *(_fmt_metric(v, kind) for v in metrics[key])])
        if key == "he_7D" and {"he_ci_lo", "he_ci_hi"} <= set(metrics.columns):
            level = metrics["he_ci_level"].iloc[0] if "he_ci_level" in metrics.columns else 0.95
            rows.append([f"  {fmt_pct(level, 0)} bootstrap interval of HE at {metrics['he_horizon'].iloc[0]}",
                         *(f"{fmt_pct(lo)} .. {fmt_pct(hi)}" for lo, hi in
                           zip(metrics["he_ci_lo"], metrics["he_ci_hi"], strict=True))])
    return header, rows


def _cost_rows(metrics: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["P&L component (USD)", *metrics["rule"]]
    rows = []
    for comp in (*PNL_COMPONENTS, "total"):
        col = f"pnl_{comp}"
        if col in metrics.columns:
            rows.append([comp, *(_fmt_num(v, ",.0f") for v in metrics[col])])
    if "cost_drag_bps_per_year" in metrics.columns:
        rows.append(["cost drag (bps per year)", *(_fmt_num(v, ",.1f") for v in metrics["cost_drag_bps_per_year"])])
    for col, label in (("carry_usd", "carry, + = earned by the short"), ("carry_bps_per_year", "carry (bps per year)"),
                       ("net_cost_bps_per_year", "net cost after carry (bps per year)")):
        if col in metrics.columns:
            rows.append([label, *(_fmt_num(v, ",.1f" if "bps" in col else ",.0f") for v in metrics[col])])
    return header, rows


def _multi_rules(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The two-instrument rules of a summary (``rules.<rule>.legs`` present and non-empty), in order."""
    return [(str(rule), block) for rule, block in (summary.get("rules") or {}).items()
            if isinstance(block, Mapping) and isinstance(block.get("legs"), Mapping) and block["legs"]]


def _contracts_short(labels: Any) -> str:
    """A leg's ``contracts_used`` in short: ``'18: 2021-03-26 .. 2025-06-27'`` (count, first and last
    expiry date), ``'PERP'`` for a perpetual, ``'n/a'`` when not recorded."""
    if not isinstance(labels, Sequence) or isinstance(labels, str) or not labels:
        return "n/a"
    names = [str(x)[:10] for x in labels]
    return names[0] if len(names) == 1 else f"{len(names)}: {names[0]} .. {names[-1]}"


def _leg_order(block: Mapping[str, Any]) -> list[tuple[str, Any, Mapping[str, Any]]]:
    """``(underlying, collateral split, leg figures)`` of a rule's legs, in ``instruments`` order
    (legs not named there follow in ``legs`` order; a split not recorded is None)."""
    legs = {str(u): leg if isinstance(leg, Mapping) else {} for u, leg in block["legs"].items()}
    named = [str(u) for u in (block.get("instruments") or [])]
    split = list(block.get("collateral_split") or [])
    order = [u for u in named if u in legs] + [u for u in legs if u not in named]
    return [(u, split[named.index(u)] if u in named and named.index(u) < len(split) else None, legs[u])
            for u in order]


def leg_rows(block: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a two-instrument rule's legs table (``rules.<rule>`` of ``summary.json``),
    one row per leg, as printed; a figure that is missing, None or NaN shows ``'n/a'``."""
    header = ["leg", "collateral split", "collateral + reserve (USD)", "mean weight", "trading cost bps/yr",
              "carry USD", "margin calls", "liquidations", "min safe collateral USD", "contracts used"]
    rows = []
    for u, share, leg in _leg_order(block):
        rows.append([
            u, fmt_pct(share),
            f"{_fmt_num(leg.get('collateral_usd'), ',.0f')} + {_fmt_num(leg.get('reserve_usd'), ',.0f')}",
            _fmt_num(leg.get("mean_weight"), ".3f"), _fmt_num(leg.get("cost_drag_bps_per_year"), ",.1f"),
            _fmt_num(leg.get("carry_usd"), "+,.0f"), _fmt_num(leg.get("margin_calls"), ",.0f"),
            _fmt_num(leg.get("liquidations"), ",.0f"), _fmt_num(leg.get("min_safe_collateral"), ",.0f"),
            _contracts_short(leg.get("contracts_used")),
        ])
    return header, rows


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def leg_collateral_sum(block: Mapping[str, Any]) -> str:
    """The line stating that the rule's ``min_safe_collateral`` is the sum of its legs'.

    Each leg is an isolated account funded exactly, so ``C_rule = sum_i C_i`` with ``C_i`` the leg's
    ``min_safe_collateral``: ``'... index 2,201,205 + BTC 139,282 = 2,340,487 USD.'``. When a leg's
    figure is missing (None or NaN) the sum is n/a; a rule figure that is missing or differs from the
    sum by more than 0.5 USD is named after it.
    """
    legs = _leg_order(block)
    parts = [_finite(leg.get("min_safe_collateral")) for _, _, leg in legs]
    total = math.fsum(p for p in parts if p is not None) if all(p is not None for p in parts) else None
    terms = " + ".join(f"{u} {_fmt_num(leg.get('min_safe_collateral'), ',.0f')}" for u, _, leg in legs)
    rule = _finite(block.get("min_safe_collateral"))
    text = (f"Min safe collateral of the rule = sum over its legs (isolated accounts, each funded exactly): {terms} "
            f"= {fmt_usd(total)}")
    if total is not None and rule is not None and abs(rule - total) <= 0.5:
        return text + "."
    return text + f"; summary.json gives {fmt_usd(rule)} for the rule."


def _instruments_words(block: Mapping[str, Any]) -> str:
    """A two-instrument rule's underlyings in words: ``'the index and BTC'``."""
    names = [("the index" if u == "index" else u) for u, _, _ in _leg_order(block)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _legs_section(doc: _Doc, summary: Mapping[str, Any]) -> None:
    """The "Two-instrument legs" section: per two-instrument rule, one row per leg, its margin model
    and the sum of the legs' min safe collateral."""
    multi = _multi_rules(summary)
    if not multi:
        return
    doc.heading("Two-instrument legs")
    doc.para("Each leg shorts futures on its underlying from its own margin account. Collateral split: the leg's "
             "share of the collateral and the reserve; mean weight: its hedge ratio h_i (futures notional / coin "
             "notional) averaged over the bars; trading cost: fees, slippage, rolls and liquidation, bps of the "
             "coin notional a year; carry: basis or funding, + = earned by the short; min safe collateral: the "
             "leg's smallest starting collateral with no margin call, no capped re-size and no liquidation "
             "(reserve 0); contracts used: how many, first and last expiry.", size=9)
    for rule, block in multi:
        doc.line(rule, size=11, weight="bold")
        header, rows = leg_rows(block)
        doc.grid(header, rows, right=[False] + [True] * (len(header) - 2) + [False])
        doc.para(f"Margin model: {block.get('margin_model') or 'not recorded'}.", size=9)
        doc.para(leg_collateral_sum(block), size=9)
        doc.space(0.05)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _event_rows(events_df: pd.DataFrame) -> tuple[list[str], list[list[str]], list[str]]:
    header = ["event", "rule", "days", "coin", "index", "P&L unhedged", "P&L hedged", "of which div.", "HE",
              "maxDD unh.", "maxDD h.", "calls", "liq.", "basis share", "note"]
    rows, notes = [], []
    for _, r in events_df.iterrows():
        ref = ""
        if isinstance(r["note"], str) and r["note"]:
            if r["note"] not in notes:
                notes.append(r["note"])
            ref = f"[{notes.index(r['note']) + 1}]"
        rows.append([
            _short(str(r["event"]), 24), _short(str(r["rule"]), 28), _fmt_num(r["days"], ".1f"),
            fmt_pct(r["coin_return"]), fmt_pct(r["index_return"]), _fmt_num(r["pnl_unhedged"], ",.0f"),
            _fmt_num(r["pnl_hedged"], ",.0f"), _fmt_num(r["pnl_divergence"], ",.0f"),
            fmt_pct(r["hedge_effectiveness"]),
            fmt_pct(r["max_drawdown_unhedged"]), fmt_pct(r["max_drawdown_hedged"]),
            _fmt_num(r["margin_calls"], ",.0f"), _fmt_num(r["liquidations"], ",.0f"),
            fmt_pct(r["basis_share"], 0), ref,
        ])
    return header, rows, notes


def _title_page(doc: _Doc, summary: Mapping[str, Any]) -> None:
    sc = summary.get("scenario", {})
    period = summary.get("period", {})
    doc.new_page()
    doc.space(0.8)
    doc.line("hedgebt backtest report", size=24, weight="bold")
    doc.line(f"Scenario: {sc.get('name', '?')}", size=16)
    doc.space(0.2)
    if sc.get("description"):
        doc.para(str(sc["description"]), size=11)
    doc.space(0.2)
    coins = ", ".join(map(str, sc.get("coins", [])))
    facts = [
        ("Position", f"long {coins}, hedged with short {sc.get('futures_kind', '?')} futures on {_underlying(sc)}"),
        ("Index", str(sc.get("index", "?"))),
        ("Data period", f"{_fmt_when(period.get('start', '?'))} to {_fmt_when(period.get('end', '?'))} (bar open "
                        f"times), {_fmt_count(period.get('bars'))} bars of {period.get('bar', '?')}"),
        ("Funding", str(sc.get("funding_source") or "none")),
        ("hedgebt version", str(summary.get("hedgebt_version", "?"))),
    ]
    for k, v in facts:
        doc.para(f"{k}: {v}", size=11, hanging="")
    ended = data_end_exits(summary)
    if ended:
        doc.para("Left the index because their price data ended (the data, not the market): " + ended + ".",
                 size=10, hanging="")
    if ((summary.get("futures") or {}).get("basis") or {}).get("source") == "series":
        doc.para("Basis: " + carry_source(summary) + ".", size=10, hanging="")
    if sc.get("funding_is_proxy"):
        doc.space(0.1)
        doc.para("WARNING: the funding series is a proxy - it is not the funding history of the hedging "
                 "instrument itself, so funding P&L is an estimate.", size=11, weight="bold")
    data = summary.get("data", {}) or {}
    doc.space(0.2)
    doc.line("Data provenance (data/PROVENANCE.md; the full note is in Appendix B)", size=12, weight="bold")
    rows = provenance_rows(str(data.get("provenance") or ""))
    inputs = {Path(str(i.get("path", ""))).name for i in summary.get("inputs", []) or []}
    used = [r for r in rows if r[0] in inputs] or rows
    if used:
        doc.grid(["file read by this run", "source"], [[_short(f, 48), _short(src, 70)] for f, src in used],
                 right=[False, False], size=8.5)
    else:
        doc.line("not recorded", size=9)
    gaps = list(data.get("gaps", []) or [])
    doc.space(0.05)
    doc.line(f"Data gaps filled: {len(gaps)}" + (" (listed in Appendix B)." if gaps else "."), size=10)


def provenance_rows(text: str) -> list[tuple[str, str]]:
    """``(file, source)`` of every row of the Markdown table in a provenance note (header and rule
    rows skipped), so the PDF prints a real table instead of raw Markdown."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or set(cells[0]) <= {"-", ":", " "} or cells[0].lower() == "file":
            continue
        out.append((cells[0], cells[-1]))
    return out


def data_end_exits(summary: Mapping[str, Any]) -> str:
    """``"AGIX (last price 2023-12-30 23:00), RENDER (last price ..., back 2024-07-01 00:00)"``: index
    exits caused by the end of a price series during the replay (``period.start`` .. ``period.end``),
    each with the symbol's next entry when it came back."""
    events = (summary.get("index", {}) or {}).get("events", []) or []
    period = summary.get("period", {}) or {}
    start, end = str(period.get("start") or ""), str(period.get("end") or "9999")

    def stamp(value: Any) -> str:
        return str(value or "?")[:16].replace("T", " ")

    out = []
    for i, e in enumerate(events):
        ts = str(e.get("ts") or "")
        if e.get("event") != "exit" or e.get("cause") != "data_end" or not start <= ts <= end:
            continue
        back = next((str(b.get("ts")) for b in events[i + 1:]
                     if b.get("event") == "enter" and b.get("symbol") == e.get("symbol")), None)
        again = f", back {stamp(back)}" if back is not None and back <= end else ""
        out.append(f"{e.get('symbol', '?')} (last price {stamp(e.get('data_end') or ts)}{again})")
    return ", ".join(out)


def carry_source(summary: Mapping[str, Any]) -> str:
    """Where the carry figure comes from, in plain words (assumption, real series or proxy)."""
    fut = summary.get("futures", {}) or {}
    if fut.get("kind") == "perpetual":
        funding = fut.get("funding") or {}
        source = funding.get("source", "?")
        if source != "series":
            return f"funding of the perpetual from an assumed {source} rate (no real series)"
        times, filled = int(funding.get("funding_times", 0)), int(funding.get("filled", 0))
        share = filled / times if times else math.nan
        kind = "a proxy series" if funding.get("is_proxy") else "a real series"
        return (f"funding of the perpetual from {kind} ({funding.get('symbol') or '?'}); {filled:,} of {times:,} "
                f"funding times ({fmt_pct(share)}) had no value and were filled")
    basis = fut.get("basis") or {}
    if basis.get("source") == "series":
        return (f"basis of the dated futures modelled from a proxy series, {basis.get('file') or '?'} "
                f"(mean {fmt_pct(basis.get('mean_ann', math.nan))} a year, range "
                f"{fmt_pct(basis.get('min_ann', math.nan))} to {fmt_pct(basis.get('max_ann', math.nan))}; "
                "no AI-index future trades, so this is a proxy)")
    src = str(fut.get("source", "?"))
    if src.startswith("modelled"):
        return f"basis of the dated futures under an assumed constant basis ({src})"
    return f"basis of the dated futures from a real price series ({src})"


def _rule_lines(doc: _Doc, metrics: pd.DataFrame, horizon: str, level: str) -> None:
    for _, r in metrics.iterrows():
        doc.para(
            f"{r['rule']}: variance reduced by {fmt_pct(r[f'he_{horizon}'])} at the {horizon} horizon "
            f"({level} interval {fmt_pct(r.get('he_ci_lo', math.nan))} to {fmt_pct(r.get('he_ci_hi', math.nan))}; "
            f"per bar {fmt_pct(r['he_bar'])}, 1D {fmt_pct(r['he_1D'])}, 7D {fmt_pct(r['he_7D'])}); volatility "
            f"{fmt_pct(r['vol_unhedged_ann'])} -> {fmt_pct(r['vol_hedged_ann'])} a year; worst drawdown "
            f"{fmt_pct(r['max_drawdown_unhedged'])} -> {fmt_pct(r['max_drawdown_hedged'])}; trading cost "
            f"{_fmt_num(r['cost_trading_bps_per_year'], ',.1f')} bps a year, carry "
            f"{_fmt_num(r['carry_bps_per_year'], '+,.1f')} bps a year; {int(r['margin_calls'])} margin calls, "
            f"{int(r['liquidations'])} liquidations.",
            hanging="- ",
        )


def _recommended_paragraph(doc: _Doc, summary: Mapping[str, Any], r: pd.Series, horizon: str, level: str,
                           events_df: pd.DataFrame) -> None:
    hedged = float(r["pnl_total"])
    coin = float(r["pnl_altcoin"])
    carry = float(r["carry_usd"])
    net = float(r["net_cost_bps_per_year"])
    block = dict(_multi_rules(summary)).get(str(r["rule"]))
    doc.para(
        f"For the recommended rule {r['rule']}"
        + ("" if block is None else f" (short futures on {_instruments_words(block)}, one isolated margin account "
                                     "per leg)")
        + f": the hedge removed {fmt_pct(r[f'he_{horizon}'])} of the variance of "
        f"{horizon} returns ({level} interval {fmt_pct(r['he_ci_lo'])} to {fmt_pct(r['he_ci_hi'])}). The hedged "
        f"position made {fmt_usd(hedged)} against {fmt_usd(coin)} for the coin alone. Trading cost (fees, "
        f"slippage, rolls, liquidations) was {fmt_usd(r['cost_trading_usd'])}, "
        f"{_fmt_num(r['cost_trading_bps_per_year'], ',.1f')} bps of the coin notional a year. Carry was "
        f"{fmt_usd(carry)} ({_fmt_num(r['carry_bps_per_year'], '+,.1f')} bps a year, "
        f"{'earned by' if carry >= 0 else 'paid by'} the {'short' if block is None else 'shorts'}), from the "
        f"{carry_source(summary)}{'' if block is None else ', the same for every leg'}; net of carry the "
        f"hedge {'cost' if net >= 0 else 'earned'} {_fmt_num(abs(net), ',.1f')} bps a year. "
        + (f"The hedge needed a margin account "
           f"of {fmt_usd(r['min_safe_collateral'])}: the smallest starting collateral with no margin call, no capped "
           f"re-size and no liquidation, with no reserve; with the configured collateral and reserve it had "
           if block is None else _legs_margin_need(block, r["min_safe_collateral"]))
        + f"{int(r['margin_calls'])} margin calls and {int(r['liquidations'])} liquidations."
    )
    own = events_df[events_df["rule"] == r["rule"]] if len(events_df) else events_df
    if len(own):
        worst = own.sort_values(["pnl_hedged", "event"], kind="stable").iloc[0]
        share = worst["basis_share"]
        under = str((summary.get("scenario") or {}).get("underlying", "index"))  # what index_level is
        basis = (f" The coin drifting away from {'the ' if under == 'index' else ''}{under} caused "
                 f"{fmt_pct(share, 0)} of that loss." if math.isfinite(float(share)) else "")
        doc.para(
            f"Worst event window for {r['rule']}: {worst['title']} ({worst['start']:%Y-%m-%d} to "
            f"{worst['end']:%Y-%m-%d}): hedged P&L {fmt_usd(worst['pnl_hedged'])} against "
            f"{fmt_usd(worst['pnl_unhedged'])} unhedged (coin {fmt_pct(worst['coin_return'])}, {under} "
            f"{fmt_pct(worst['index_return'])}).{basis}"
        )
    else:
        doc.para("No named event window falls inside the data period.")


def _legs_margin_need(block: Mapping[str, Any], total: Any) -> str:
    """The recommended paragraph's margin sentence for a two-instrument rule, up to its call count."""
    parts = " + ".join(f"{u} {_fmt_num(leg.get('min_safe_collateral'), ',.0f')}" for u, _, leg in _leg_order(block))
    return (f"The hedge needed margin accounts of {fmt_usd(total)} in all ({parts}): each leg's smallest starting "
            "collateral with no margin call, no capped re-size and no liquidation, with no reserve, in its own "
            "isolated account (cross margin is not simulated; one cross-margined account would need at most "
            "this); with the configured collateral and reserve, split between the legs, they had ")


def _underlying(sc: Mapping[str, Any]) -> str:
    """What the futures are written on (``scenario.underlying`` of summary.json; older results: the index)."""
    under = sc.get("underlying", "index")
    return "an AI-token index" if under == "index" else str(under)


def _multi_clause(summary: Mapping[str, Any]) -> str:
    """``'; the two-instrument rule R shorts futures on the index and BTC at once, ...'`` (empty
    without two-instrument rules)."""
    return "".join(f"; the two-instrument rule {rule} shorts futures on {_instruments_words(block)} at once, each "
                   "leg from its own isolated margin account" for rule, block in _multi_rules(summary))


def _executive_summary(doc: _Doc, summary: Mapping[str, Any], metrics: pd.DataFrame,
                       events_df: pd.DataFrame, notes: Sequence[str], ledger: pd.DataFrame | None = None) -> None:
    sc = summary.get("scenario", {})
    period = summary.get("period", {})
    horizon = str(metrics["he_horizon"].iloc[0]) if len(metrics) else "bar"
    level = fmt_pct(float(metrics["he_ci_level"].iloc[0]), 0) if len(metrics) else "95 %"
    doc.new_page()
    doc.heading("Executive summary")
    coins = ", ".join(map(str, sc.get("coins", [])))
    doc.para(
        f"We replayed a long position in {coins} from {_fmt_when(period.get('start', '?'))} to "
        f"{_fmt_when(period.get('end', '?'))} "
        f"({_fmt_count(period.get('bars'))} bars of {period.get('bar', '?')}) and hedged it with short "
        f"{sc.get('futures_kind', '?')} futures on {_underlying(sc)} ({sc.get('index', '?')})"
        f"{_multi_clause(summary)}. 'Variance "
        f"removed' is the hedge effectiveness HE = 1 - Var(hedged returns) / Var(unhedged returns); the headline "
        f"horizon is {horizon}: returns are P&L summed over non-overlapping {horizon} spans divided by the coin "
        "notional at the start of the span. 100 % would remove all risk, 0 % none. The best constant hedge in "
        f"hindsight would have removed {fmt_pct(summary.get('oracle_r2', math.nan))} of per-bar variance (oracle ρ²)."
    )
    for rule, block in (summary.get("rules") or {}).items():
        for key, reason in ((block or {}).get("undefined") or {}).items():
            doc.para(f"{rule}: {key} is undefined ({reason}).")
    doc.space(0.08)
    _rule_lines(doc, metrics, horizon, level)
    doc.space(0.08)
    rule, reason = recommend_rule(metrics)
    doc.para(f"Recommendation: {reason}" if rule is not None else f"Recommendation: none. {reason}", weight="bold")
    doc.para(f"Criterion: {RECOMMENDATION_CRITERION}", size=9)
    doc.space(0.08)
    if rule is not None:
        _recommended_paragraph(doc, summary, metrics[metrics["rule"] == rule].iloc[0], horizon, level, events_df)
    doc.space(0.08)
    caveats = list(notes)
    if sc.get("funding_is_proxy"):
        caveats.append("The funding series is a proxy, so funding P&L is an estimate.")
    share = float((summary.get("index", {}) or {}).get("intrabar_high_share") or 0.0)
    if share > 0:
        caveats.append(
            f"On {fmt_pct(share)} of bars margin was checked at an upper bound of the intrabar index high (units x "
            "each constituent's own high, summed; the highs need not fall in the same hour), so margin calls and "
            "the margin the hedge needed are overstated there."
        )
    if len(metrics):
        blocks = ", ".join(f"{r} {int(b)}" for r, b in zip(metrics["rule"], metrics["he_block_len"], strict=True))
        best = metrics["best_rule"].iloc[0]
        compared = (f"Rules are compared with {best} by a paired bootstrap (same resampled spans for both). "
                    if isinstance(best, str) and best else
                    f"No rule has a defined HE at {horizon}, so none is compared with another. ")
        caveats.append(
            f"Intervals: {BOOTSTRAP_METHOD}; {horizon} spans, block lengths (spans) {blocks}; "
            f"{int(metrics['he_n_boot'].iloc[0])} resamples, seed {int(metrics['he_boot_seed'].iloc[0])}. {compared}"
            "Past hedge effectiveness is no promise: rules fall short of the oracle out of sample."
        )
    for c in caveats:
        doc.para(c, size=9, hanging="- ")
    if ledger is not None and rule is not None:
        _summary_figure(doc, ledger, metrics, rule)


#: Least height (inches) of the executive summary's figure; with less room left on the page it
#: goes to the next page (which it then fills, up to :data:`_SUMMARY_FIGURE_MAX`).
_SUMMARY_FIGURE_MIN: Final[float] = 1.8
_SUMMARY_FIGURE_MAX: Final[float] = 7.0


def _summary_figure(doc: _Doc, ledger: pd.DataFrame, metrics: pd.DataFrame, rule: str) -> None:
    """Fill the rest of the executive summary's last page with
    :func:`reports.tearsheet.draw_summary_panels` (cumulative P&L of the coin alone vs hedged
    with the recommended rule; HE per rule with its interval)."""
    from reports.tearsheet import draw_summary_panels

    floor = _BOTTOM + 0.05  # inches from the bottom: above the footer
    if doc.fig is None or PAGE_SIZE[1] - doc.y - 0.15 - floor < _SUMMARY_FIGURE_MIN:
        doc.new_page()
    assert doc.fig is not None
    top = PAGE_SIZE[1] - doc.y - 0.15
    height = min(top - floor, _SUMMARY_FIGURE_MAX)
    draw_summary_panels(doc.fig, (_MARGIN, top - height, PAGE_SIZE[0] - 2 * _MARGIN, height), ledger, metrics, rule)
    doc.y = PAGE_SIZE[1] - (top - height)


@contextmanager
def _pdf_doc(path: Path, title: str, progress: Progress | None = None, expected_pages: int = 1) -> Iterator[_Doc]:
    """A :class:`_Doc` on a PDF written atomically, with fixed metadata (no dates: byte-identical reruns)."""
    metadata = {"Title": title, "Creator": "hedgebt", "Producer": "hedgebt (matplotlib)",
                "CreationDate": None, "ModDate": None}
    with (
        file_style(),
        matplotlib.rc_context({**STYLE, "axes.grid": False}),
        atomic_output(path) as tmp,
    ):
        pdf = PdfPages(tmp, metadata=metadata)
        doc = _Doc(pdf, title, progress, expected_pages)
        try:
            yield doc
        except BaseException:
            # the file is discarded: an error of closing it half-written (matplotlib asserts
            # that every page object has an offset) must not hide why the block stopped
            with suppress(Exception):
                pdf.close()
            raise
        pdf.close()
        doc.pngs.check_embedded()


def write_pdf(
    path: Path,
    summary: Mapping[str, Any],
    metrics_df: pd.DataFrame,
    events_df: pd.DataFrame,
    figure_paths: Mapping[str, Path] | Sequence[Path],
    compare_df: pd.DataFrame | None = None,
    *,
    events: Sequence[Event] = (),
    notes: Sequence[str] = (),
    progress: Progress | None = None,
    ledger: pd.DataFrame | None = None,
    rules_note: str = "",
) -> int:
    """Write the report PDF atomically and return its number of pages.

    Parameters
    ----------
    path : Path
        Output file; written to a temporary name in the same folder, then moved.
    summary : mapping
        The parsed ``summary.json``.
    metrics_df : pandas.DataFrame
        One row per rule (the ``metrics.csv`` table).
    events_df : pandas.DataFrame
        The :func:`reports.events.event_table` output (may be empty).
    figure_paths : mapping of caption to Path, or sequence of Path
        PNGs to include, one per page, in order. A :class:`reports.figures.FigureMap` (the
        report's pending figures) also tells which PNGs have more than 256 colours: those are
        embedded without being decoded.
    compare_df : pandas.DataFrame, optional
        The rule-comparison grid (``compare.parquet``).
    events : sequence of Event, optional
        The events of ``events_df`` (their descriptions are printed under the table).
    notes : sequence of str, optional
        Extra caveats for the executive summary.
    progress : Progress, optional
        Called as ``progress("PDF pages", done, total)`` after each page
        (:class:`backtest.progress.Progress`; the total is estimated until the last page).
    ledger : pandas.DataFrame, optional
        The run's ledger; when given, the executive summary ends with a small figure
        (:func:`reports.tearsheet.draw_summary_panels`) filling the rest of its page.
    rules_note : str, optional
        When the report shows only some rules (``"Showing N of M rules ..."``): printed
        under the title and above the per-rule tables.

    Returns
    -------
    int
        Number of pages written.
    """
    if isinstance(figure_paths, Mapping):
        figures = figure_paths  # read one by one: a PendingFigures path waits for its PNG
    else:
        figures = {f"Figure {i + 1}: {Path(p).stem}": Path(p) for i, p in enumerate(figure_paths)}
    sc = summary.get("scenario", {})
    title = f"hedgebt report: {sc.get('name', '')}"
    expected = 5 + len(figures) + int(compare_df is not None and len(compare_df) > 0)
    with _pdf_doc(Path(path), title, progress, expected) as doc:
        _title_page(doc, summary)
        if rules_note:
            doc.para(rules_note, size=11, weight="bold")
        _executive_summary(doc, summary, metrics_df, events_df, notes, ledger)
        _rule_tables(doc, summary, metrics_df, rules_note)
        _events_page(doc, events_df, events)
        if compare_df is not None and len(compare_df):
            _compare_page(doc, compare_df)
        for caption in figures:
            few = figures.few_colours(caption) if isinstance(figures, FigureMap) else None  # known for drawn figures
            doc.image_page(Path(figures[caption]), str(caption), few)
        _appendices(doc, summary)
        pages = doc.close()
    return pages


def _rule_tables(doc: _Doc, summary: Mapping[str, Any], metrics_df: pd.DataFrame, rules_note: str) -> None:
    """The page of per-rule tables: metrics, P&L and costs, and the legs of two-instrument rules."""
    doc.new_page()
    doc.heading("Metrics per rule")
    if rules_note:
        doc.para(rules_note, size=9)
    header, rows = _metrics_rows(metrics_df)
    doc.grid(header, rows, right=[False] + [True] * (len(header) - 1))
    doc.heading("P&L and costs per rule")
    header, rows = _cost_rows(metrics_df)
    doc.grid(header, rows, right=[False] + [True] * (len(header) - 1))
    doc.para("Costs (fees, slippage, roll, liquidation) are zero or negative; funding is received (+) or "
             "paid (-); total = change of hedged equity.", size=9)
    _legs_section(doc, summary)


def _events_page(doc: _Doc, events_df: pd.DataFrame, events: Sequence[Event]) -> None:
    """The event-window table, its legend and notes, and what each window was."""
    doc.new_page()
    doc.heading("Event windows")
    if not len(events_df):
        doc.para("No named event window falls inside the data period.")
        return
    header, rows, ev_notes = _event_rows(events_df)
    doc.grid(header, rows, right=[False, False] + [True] * 12 + [False])
    doc.para("coin / index: return over the window; P&L in USD; of which div.: hedged P&L due to the "
             "coin moving differently from the index, h x (coin return - index return) x notional "
             "summed over the bars; HE inside the window; basis share: that divergence P&L divided "
             "by the hedged P&L, shown only when the hedged P&L is a loss (above 100 % when other "
             "parts gained, negative when the divergence gained).", size=9)
    for i, n in enumerate(ev_notes):
        doc.para(n, size=9, hanging=f"[{i + 1}] ")
    shown = [e for e in events if e.name in set(events_df["event"])]
    if shown:
        doc.space(0.1)
        doc.line("About the windows", size=11, weight="bold")
        for e in shown:
            doc.para(f"{e.title} ({e.span()}): {e.description}", size=9, hanging="- ")


def _compare_page(doc: _Doc, compare_df: pd.DataFrame) -> None:
    """The ranked rule comparison (its best :data:`MAX_COMPARE_ROWS` rows)."""
    doc.new_page()
    doc.heading("Rule comparison (ranked)")
    header, rows = compare_table_rows(compare_df, MAX_COMPARE_ROWS)
    text_cols = {"variant", "family", "rebalance"}
    doc.grid(header, rows, right=[h not in text_cols for h in header])
    if len(compare_df) > MAX_COMPARE_ROWS:
        doc.para(f"Best {MAX_COMPARE_ROWS} of {len(compare_df)} variants; all are in compare.parquet.", size=9)


def _input_files(doc: _Doc, inputs: Sequence[Mapping[str, Any]]) -> None:
    """The files a run or a grid read, each with its SHA-256 (``inputs`` of ``summary.json`` or
    ``compare.json``)."""
    doc.line("Input files (SHA-256)", size=11, weight="bold")
    for item in inputs:
        doc.para(f"{item.get('role', '?')}: {item.get('path', '?')}", size=9, mono=True)
        doc.para(f"sha256 {item.get('sha256', '?')}", size=9, mono=True, indent=0.3)


def _appendices(doc: _Doc, summary: Mapping[str, Any]) -> None:
    """Appendix A (the resolved configuration) and B (input hashes, provenance, gaps, versions)."""
    doc.new_page()
    doc.heading("Appendix A: resolved configuration")
    for key, value in _flatten("", summary.get("config", {})):
        doc.para(f"{key} = {value}", size=9, mono=True, hanging="")
    doc.heading("Appendix B: inputs and software")
    _input_files(doc, summary.get("inputs", []) or [])
    data = summary.get("data", {}) or {}
    doc.space(0.1)
    doc.line("Data provenance", size=11, weight="bold")
    for line in str(data.get("provenance") or "not recorded").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|"):
            if len(cells) >= 3 and not set(cells[0]) <= {"-", ":", " "} and cells[0].lower() != "file":
                doc.para(f"{cells[0]}: {cells[1]} (source: {cells[-1]})", size=8.5, hanging="- ")
        elif line.strip() and not line.startswith("#"):
            doc.para(line.strip(), size=8.5)
    gaps = list(data.get("gaps", []) or [])
    if gaps:
        doc.space(0.1)
        doc.line(f"Data gaps filled ({len(gaps)})", size=11, weight="bold")
        doc.grid(["symbol", "gaps", "missing bars", "longest (bars)", "longest gap starts"],
                 [[str(g.get("symbol", "?")), str(g.get("n_gaps", "?")), str(g.get("missing_bars", "?")),
                   str(g.get("longest_gap_bars", "?")), str(g.get("longest_gap_start") or "")[:16]]
                  if isinstance(g, dict) else [str(g), "", "", "", ""] for g in gaps],
                 right=[False, True, True, True, False], size=8.5)
    doc.space(0.1)
    doc.line("Package versions", size=11, weight="bold")
    packages = {"hedgebt": summary.get("hedgebt_version", "?"), **dict(summary.get("packages", {}) or {})}
    for name, version in packages.items():
        doc.para(f"{name} {version}", size=9, mono=True)


def instrument_rows(instruments: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the "Which hedge instrument?" table, one row per underlying of one
    (coin, window), as printed (the columns of ``instruments.csv``)."""
    header = ["underlying", "best variant on it", "oracle ρ²", "HE 1D", "95 % interval", "cost bps/yr",
              "carry USD", "margin need", "calls", "max DD", "worst day: hedged / coin USD",
              "worst event: hedged USD"]
    rows = [[str(r["underlying"]), _short(str(r["variant"]).split(" | ", 1)[-1], 50), fmt_pct(r["oracle_r2"]),
             fmt_pct(r["he_daily"]), f"{fmt_pct(r['he_daily_lo'])} .. {fmt_pct(r['he_daily_hi'])}",
             _fmt_num(r["cost_drag_bps_per_year"], ",.0f"), _fmt_num(r["carry_usd"], "+,.0f"),
             _fmt_num(r["min_safe_collateral"], ",.0f"), _fmt_num(r["margin_calls"], ",.0f"),
             fmt_pct(r["max_drawdown_hedged"]), _worst_day(r), _worst_event(r)]
            for _, r in instruments.iterrows()]
    return header, rows


def _worst_day(r: pd.Series) -> str:
    """``'2024-08-05 -81,234 / -150,876'`` (the worst hedged day of ``instruments.csv``; n/a if absent)."""
    if not isinstance(r.get("worst_day"), str):
        return "n/a"
    return (f"{r['worst_day']} {_fmt_num(r.get('worst_day_pnl_hedged'), '+,.0f')} / "
            f"{_fmt_num(r.get('worst_day_pnl_unhedged'), '+,.0f')}")


def _worst_event(r: pd.Series) -> str:
    """``'deepseek_2025 -81,234'`` (the worst named event of ``instruments.csv`` and its hedged P&L);
    ``none`` when no event lies inside the data, ``n/a`` for a folder written without the column."""
    if "worst_event" not in r.index:
        return "n/a"
    if not isinstance(r["worst_event"], str) or not r["worst_event"]:
        return "none"
    return f"{_short(r['worst_event'], 18)} {_fmt_num(r.get('worst_event_pnl_hedged'), '+,.0f')}"


def instrument_verdict(v: Mapping[str, Any]) -> str:
    """One sentence from a paired-bootstrap verdict of ``instruments.json``."""
    better = float(v["diff_lo"]) > 0.0
    return (f"Verdict: futures on {v['best']} removed {fmt_pct(v['he_a'])} of the variance of daily P&L, against "
            f"{fmt_pct(v['he_b'])} for the next best, {v['second']}; the paired bootstrap over {int(v['days']):,} common "
            f"days puts the difference at {_fmt_pp(v['diff'])} (95 % interval {_fmt_pp(v['diff_lo'])} to "
            f"{_fmt_pp(v['diff_hi'])}), so "
            + (f"{v['best']} is the better hedge instrument for this coin." if better else
               f"the two cannot be told apart on this history (the interval contains 0)."))


def _multi_underlying(instruments: pd.DataFrame | None) -> bool:
    return (instruments is not None and len(instruments) > 0
            and bool((instruments.groupby(["coin", "window"])["underlying"].nunique() > 1).any()))


def _instrument_section(doc: _Doc, instruments: pd.DataFrame, verdicts: Sequence[Mapping[str, Any]],
                        horizon: str) -> None:
    """The "Which hedge instrument?" page(s): per (coin, window), a table of the underlyings and
    the paired verdict between the best two."""
    doc.new_page()
    doc.heading("Which hedge instrument?", size=18)
    doc.para("The same grid was run with futures on each underlying. For each, the variant ranked best on it is "
             "replayed bar by bar: oracle ρ² is the variance of the coin's returns that the best constant hedge "
             "with that underlying removes in hindsight; HE 1D is the share of the variance of daily P&L removed "
             "after all costs, with its 95 % stationary-bootstrap interval (arch; days resampled in blocks); cost is "
             "the trading cost drag in bps of the coin notional a year; carry is the basis and funding P&L in USD "
             "(+ = earned by the short); margin need is the smallest starting collateral (USD) with no margin call, no "
             "capped re-size and no liquidation (reserve 0); calls are the margin calls with the configured "
             "collateral; max DD is the worst drawdown of the hedged position; worst day is its worst event at "
             "a daily scale, the common day with the largest hedged loss, with the hedged and the coin-alone P&L "
             "that day (USD); worst event is, of the named market windows (bundled and [events] of the config) "
             "lying inside the common days, the one with the largest hedged loss, with that loss summed over its "
             "days (USD; none: no window inside the data). Rows are sorted by HE 1D." + ("" if horizon in ("", "1D") else
                                    f" The ranking's headline horizon is {horizon}; this table is at 1D."),
             size=9.5)
    found = {(str(v["coin"]), str(v["window"])): v for v in verdicts}
    for (coin, window), g in instruments.groupby(["coin", "window"], sort=True):
        doc.heading(f"{coin}, {window}", size=12)
        header, rows = instrument_rows(g)
        doc.grid(header, rows, right=[False, False] + [True] * (len(header) - 2))
        v = found.get((str(coin), str(window)))
        if v is not None:
            doc.para(instrument_verdict(v), size=10, weight="bold")
        elif g["underlying"].nunique() < 2:
            doc.para("Only one underlying for this coin: nothing to compare.", size=10)


def write_compare_pdf(path: Path, compare: pd.DataFrame, info: Mapping[str, Any], figure_paths: Sequence[Path],
                      *, progress: Progress | None = None, instruments: pd.DataFrame | None = None,
                      verdicts: Sequence[Mapping[str, Any]] = ()) -> int:
    """The rule-comparison PDF: what was compared, the ranking per scenario, the "Which hedge
    instrument?" section (when ``instruments`` holds more than one underlying for a coin:
    ``instruments.csv`` and the verdicts of ``instruments.json``), the figures, and an appendix
    with the config and package versions. Deterministic (no dates). ``progress`` as in
    :func:`write_pdf`."""
    title = "hedgebt rule comparison"
    with _pdf_doc(Path(path), title, progress, 2 + len(figure_paths)) as doc:
        doc.new_page()
        doc.heading("Which hedge rule?", size=20)
        doc.para(f"{len(compare)} variants (hedge rule x parameters x rebalance policy) ranked by "
                 f"{info.get('rank_by', 'hedge_effectiveness')} within each scenario. Every variant is "
                 "replayed with the same fees, slippage, rolls and margin; hedge effectiveness (HE) is the "
                 "share of per-bar variance removed after all costs, out of sample. The oracle rho^2 is "
                 "the most variance any constant linear hedge removes in sample: the bar to measure against.")
        for scenario, oracle in sorted((info.get("oracle_r2") or {}).items()):
            doc.para(f"{scenario}: oracle rho^2 = {oracle:.3f}", hanging="- ")
        headline = "he_headline" in compare.columns
        horizon = str(compare["he_horizon"].iloc[0]) if headline else ""
        if headline:
            doc.para(f"HE {horizon}: hedge effectiveness of returns over non-overlapping {horizon} spans, with its 95 % "
                     f"interval ({BOOTSTRAP_METHOD}). These are each variant's own intervals: they show how uncertain "
                     "one figure is, not whether two variants differ (a paired bootstrap, as in the run report, "
                     "can separate variants whose intervals overlap).")
        header = ["rank", "variant", "HE", "HE/oracle", "vol hedged", "cost bps/yr", "trades", "rolls", "calls"]
        header += [f"HE {horizon}", "95 % interval"] if headline else []
        for (coin, window), g in compare.groupby(["coin", "window"], sort=True):
            doc.heading(f"{coin}, {window}", size=12)
            rows = [
                [str(int(r["rank"])), _short(str(r["variant"]), 58), fmt_pct(r["hedge_effectiveness"]),
                 _fmt_num(r["he_vs_oracle"], ".2f"), fmt_pct(r["vol_hedged_ann"], 0),
                 _fmt_num(r["cost_drag_bps_per_year"], ",.0f"), str(int(r["trades"])), str(int(r["rolls"])),
                 str(int(r["margin_calls"]))]
                + ([fmt_pct(r["he_headline"]), f"{fmt_pct(r['he_ci_lo'])} .. {fmt_pct(r['he_ci_hi'])}"] if headline else [])
                for _, r in g.sort_values("rank").iterrows()
            ]
            doc.grid(header, rows, right=[True, False] + [True] * (len(header) - 2))
        for w in info.get("walk_forward") or []:
            doc.para(
                f"Out-of-sample check ({w['coin']}, {w['window']}"
                + (f", futures on {w['underlying']}" if w.get("underlying") else "")
                + f"): over {plural(w['folds'], 'yearly fold')}, the variant with "
                f"the best HE {w['horizon']} on all earlier years scored {fmt_pct(w['mean_he_oos_chosen'])} on the "
                f"next year on average; the best by HE {w['horizon']} over the whole replay (picked with "
                f"hindsight, not necessarily rank 1 of the table above), {w['in_sample_best']}, scored "
                f"{fmt_pct(w['mean_he_oos_in_sample_best'])} on the same years, and the best variant of each year "
                f"{fmt_pct(w['mean_fold_best_he'])} (walk_forward.csv lists every fold).",
                size=9,
            )
        if _multi_underlying(instruments):
            assert instruments is not None
            _instrument_section(doc, instruments, verdicts, horizon)
        for png in figure_paths:
            doc.image_page(Path(png), f"Figure: {Path(png).stem.replace('_', ' ')}")
        doc.new_page()
        doc.heading("Appendix: configuration, inputs and versions")
        for key, value in _flatten("", info.get("config", {})):
            doc.para(f"{key} = {value}", size=8, mono=True)
        doc.space(0.1)
        if info.get("inputs"):  # a folder written before compare.json held them has none
            _input_files(doc, info["inputs"])
            doc.space(0.1)
        for key, value in sorted((info.get("packages") or {}).items()):
            doc.para(f"{key} {value}", size=8, mono=True)
        pages = doc.close()
    return pages
