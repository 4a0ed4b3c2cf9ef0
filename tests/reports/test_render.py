"""render_report end to end on a synthetic result folder."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pypdf
import pytest
from PIL import Image
from synthetic import build_result_dir, restamp_ledger

from backtest.errors import ConfigError, DataError, OutputError
from backtest.schema import PNL_COMPONENTS, RULE_METRICS
from reports import ReportFiles, load_events, render_report, select_events, stats
from reports.events import EVENT_COLUMNS
from reports.pdf import RECOMMENDATION_CRITERION, fmt_pct, fmt_usd, recommend_rule
from reports.render import METRICS_COLUMNS, _span_series

OUTPUTS = ("report.pdf", "metrics.csv", "events.csv")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReportFiles, dict[str, bytes], dict[str, str]]:
    """One synthetic result folder rendered twice; the first render's bytes are kept."""
    folder = build_result_dir(tmp_path_factory.mktemp("render") / "result")
    inputs = {p.name: _digest(p) for p in folder.iterdir()}
    first = render_report(folder)
    first_bytes = {name: (folder / name).read_bytes() for name in OUTPUTS}
    first_bytes.update({f"figures/{p.name}": p.read_bytes() for p in first.figures})
    second = render_report(folder)
    assert second == first
    return folder, second, first_bytes, inputs


def _pdf_text(path: Path) -> tuple[int, str]:
    reader = pypdf.PdfReader(path)
    text = "\n".join(page.extract_text() for page in reader.pages)
    return len(reader.pages), re.sub(r"\s+", " ", text)


def test_outputs_exist_and_inputs_untouched(rendered) -> None:
    folder, files, _, inputs = rendered
    assert files.metrics_csv == folder / "metrics.csv"
    assert files.events_csv == folder / "events.csv"
    assert files.pdf == folder / "report.pdf"
    assert [p.name for p in files.figures] == [
        "equity.png", "rolling_vol.png", "drawdowns.png", "hedge_ratio.png", "rolling_he.png",
        "pnl_attribution.png", "events.png", "margin.png", "monthly_returns.png", "return_histogram.png",
        "rolling_beta.png", "compare_scatter.png", "compare_table.png",
    ]
    for name, digest in inputs.items():
        assert _digest(folder / name) == digest  # render only reads its inputs
    leftovers = [p.name for p in folder.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_two_renders_are_byte_identical(rendered) -> None:
    folder, _, first_bytes, _ = rendered
    for name, data in first_bytes.items():
        assert (folder / name).read_bytes() == data, name


def test_render_in_another_process_is_byte_identical(rendered, tmp_path: Path) -> None:
    """Same bytes from a fresh interpreter with another hash seed (no hidden process state)."""
    folder, _, first_bytes, _ = rendered
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("summary.json", "ledger.parquet", "compare.parquet"):
        shutil.copy2(folder / name, copy / name)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    code = "import sys; from pathlib import Path; from reports import render_report; render_report(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(copy)], check=True, env=env, cwd=root, timeout=120)
    for name in OUTPUTS:
        assert (copy / name).read_bytes() == first_bytes[name], name


def test_metrics_csv(rendered) -> None:
    folder, _, _, _ = rendered
    summary = json.loads((folder / "summary.json").read_text())
    ledger = pd.read_parquet(folder / "ledger.parquet")
    raw = (folder / "metrics.csv").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    metrics = pd.read_csv(folder / "metrics.csv")
    assert list(metrics.columns) == list(METRICS_COLUMNS)
    assert list(metrics["rule"]) == list(summary["rules"])
    for _, row in metrics.iterrows():
        block = summary["rules"][row["rule"]]
        for key in RULE_METRICS:
            assert row[key] == pytest.approx(block[key], rel=1e-9), key
        for comp in PNL_COMPONENTS:
            assert row[f"pnl_{comp}"] == pytest.approx(block["pnl"][comp], rel=1e-9, abs=1e-9)
        assert row["pnl_total"] == pytest.approx(block["pnl"]["total"], rel=1e-9)
        g = ledger[ledger["rule"] == row["rule"]]
        # headline horizon 1D (the default): the interval is arch's on the daily spans
        assert row["he_horizon"] == "1D"
        assert row["he_ci_lo"] <= row["he_1D"] <= row["he_ci_hi"]
        assert row["he_bar"] == pytest.approx(row["hedge_effectiveness"], rel=1e-9)
        r_h, r_u, _ = _span_series(g.reset_index(drop=True), 24)
        assert row["he_1D"] == pytest.approx(stats.hedge_effectiveness(r_h, r_u), rel=1e-9)
        assert row["he_block_len"] == stats.block_length(r_h, r_u)
        assert row["he_n_boot"] == 1000 and row["he_ci_level"] == 0.95
        var_h, cvar_h = stats.var_cvar(g["ret_hedged"].to_numpy(), 0.95)
        var_u, cvar_u = stats.var_cvar(g["ret_unhedged"].to_numpy(), 0.95)
        assert (row["var95_hedged"], row["cvar95_hedged"]) == pytest.approx((var_h, cvar_h), rel=1e-9)
        assert (row["var95_unhedged"], row["cvar95_unhedged"]) == pytest.approx((var_u, cvar_u), rel=1e-9)
        assert 0 < row["var95_hedged"] < row["var95_unhedged"]


def test_events_csv(rendered) -> None:
    folder, _, _, _ = rendered
    events = pd.read_csv(folder / "events.csv", keep_default_na=False, na_values=[""])
    assert list(events.columns) == list(EVENT_COLUMNS)
    # the synthetic period (2025-01-01 .. 2025-03-25) holds only the DeepSeek window
    assert list(zip(events["event"], events["rule"], strict=True)) == [
        ("deepseek_2025", "static_ols"), ("deepseek_2025", "rolling_ols")]
    assert list(events["start"]) == ["2025-01-20T00:00:00Z"] * 2
    assert (events["bars"] == 504).all()


def test_pdf_pages_and_numbers(rendered) -> None:
    folder, files, _, _ = rendered
    summary = json.loads((folder / "summary.json").read_text())
    pages, text = _pdf_text(folder / "report.pdf")
    # title, executive summary (text, then its figure on the next page), metrics + costs, events, compare
    # ranking, one per figure, appendix
    assert pages == files.pages == 8 + len(files.figures) == 21
    assert "Cumulative P&L since the start (USD)" in text and "HE at 1D, 95 % interval" in text
    metrics = pd.read_csv(folder / "metrics.csv")
    for _, row in metrics.iterrows():
        assert f"{row['rule']}: variance reduced by {fmt_pct(row['he_1D'])} at the 1D horizon" in text
        assert fmt_pct(row["max_drawdown_hedged"]) in text
        assert f"interval {fmt_pct(row['he_ci_lo'])} to {fmt_pct(row['he_ci_hi'])}" in text
    rule, _ = recommend_rule(metrics)
    assert f"Recommendation: {rule} " in text
    pick = metrics[metrics["rule"] == rule].iloc[0]
    assert f"For the recommended rule {rule}" in text
    assert f"made {fmt_usd(pick['pnl_total'])} against {fmt_usd(pick['pnl_altcoin'])}" in text
    assert f"margin account of {fmt_usd(pick['min_safe_collateral'])}" in text
    assert "paired bootstrap" in text
    assert re.sub(r"\s+", " ", RECOMMENDATION_CRITERION) in text
    assert "funding series is a proxy" in text
    assert "DeepSeek sell-off" in text and "outside the data period" in text
    assert "ab" * 32 in text and "margin.maintenance = 0.02" in text


def test_pdf_metadata_has_no_dates(rendered) -> None:
    folder, _, _, _ = rendered
    meta = pypdf.PdfReader(folder / "report.pdf").metadata
    assert "/CreationDate" not in meta and "/ModDate" not in meta
    assert meta["/Title"] == "hedgebt report: fet_vs_ai_index"


def test_pngs_are_valid(rendered) -> None:
    _, files, _, _ = rendered
    for path in files.figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as img:
            assert img.size[0] >= 1200 and img.size[1] >= 400
            assert round(img.info["dpi"][0]) == 150


def test_pdf_embeds_each_figure_with_the_pngs_own_pixel_data(rendered) -> None:
    """Each figure page holds the PNG's IDAT data verbatim (no second encoding), and the image
    pypdf decodes from the PDF equals the PNG's pixels."""
    from reports.pdf import _rgb8_idat

    folder, files, _, _ = rendered
    pdf_bytes = (folder / "report.pdf").read_bytes()
    reader = pypdf.PdfReader(folder / "report.pdf")
    # matplotlib lists every image in each page's resources: one set of distinct images
    embedded: dict[str, np.ndarray] = {}
    for page in reader.pages:
        for key in page.images.keys():
            if key not in embedded:  # decode each image once
                embedded[key] = np.asarray(page.images[key].image.convert("RGB"))
    assert len(embedded) == len(files.figures)
    passed_through = 0
    for path in files.figures:
        with Image.open(path) as img:
            png = np.asarray(img.convert("RGB"))
            few_colours = img.convert("RGB").getcolors(maxcolors=256) is not None
        idat = _rgb8_idat(path.read_bytes())
        assert idat is not None
        # matplotlib stores an image of at most 256 colours as a (smaller) palette image instead
        assert (idat in pdf_bytes) != few_colours, path.name
        passed_through += not few_colours
        assert any(np.array_equal(png, pixels) for pixels in embedded.values()), path.name
    assert passed_through >= len(files.figures) - 2


def test_image_page_draws_the_png_upright(tmp_path: Path, monkeypatch) -> None:
    """A PNG red above and blue below is drawn red above blue on its page (rows stored as in
    the PNG, the axes flip them back)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.backends.backend_pdf import PdfPages

    from reports.pdf import _Doc

    png = tmp_path / "two.png"
    rng = np.random.default_rng(0)
    rgb = np.zeros((300, 500, 3), np.uint8)
    rgb[..., 1] = rng.integers(0, 40, (300, 500))  # over 256 colours: not made a palette image
    rgb[:150, :, 0] = rng.integers(215, 256, (150, 500))  # top: red
    rgb[150:, :, 2] = rng.integers(215, 256, (150, 500))  # bottom: blue
    Image.fromarray(rgb).save(png)
    drawn = []
    with PdfPages(tmp_path / "x.pdf") as pdf:
        doc = _Doc(pdf, "t")
        doc.new_page()
        doc.line("a text page first: the PDF writer exists")
        doc.image_page(png, "caption")
        page = doc.fig
        FigureCanvasAgg(page)
        page.canvas.draw()
        drawn.append(np.asarray(page.canvas.buffer_rgba())[..., :3].copy())
        doc.close()
    img = drawn[0]
    reds = np.flatnonzero((img[..., 0] > 200) & (img[..., 2] < 50) & (img[..., 1] < 50)) // img.shape[1]
    blues = np.flatnonzero((img[..., 2] > 200) & (img[..., 0] < 50) & (img[..., 1] < 50)) // img.shape[1]
    assert reds.size and blues.size and reds.max() < blues.min()
    assert _rgb8_idat_of(png) in (tmp_path / "x.pdf").read_bytes()


def _pages(out: Path, pngs: list[Path], few_colours: bool | None) -> tuple[bytes, int]:
    from matplotlib.backends.backend_pdf import PdfPages

    from reports.pdf import _Doc

    with PdfPages(out, metadata={"CreationDate": None, "ModDate": None}) as pdf:
        doc = _Doc(pdf, "t")
        doc.new_page()
        doc.line("a text page first: the PDF writer exists")
        for png in pngs:
            doc.image_page(png, png.stem, few_colours)
        doc.close()
    doc.pngs.check_embedded()
    return out.read_bytes(), doc.pngs._stand_ins


def _noisy_png(path: Path, seed: int, shape: tuple[int, int] = (300, 500)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    return path


def test_a_png_of_many_colours_is_embedded_undecoded_with_the_same_bytes(tmp_path: Path) -> None:
    """``few_colours=False`` (a figure worker's count): the page is drawn with a stand-in and the
    PDF gets the PNG's IDAT; the file is byte-identical to the one made from the decoded pixels."""
    pngs = [_noisy_png(tmp_path / "a.png", 0), _noisy_png(tmp_path / "b.png", 1, (420, 380))]
    decoded, none_used = _pages(tmp_path / "decoded.pdf", pngs, None)
    undecoded, used = _pages(tmp_path / "undecoded.pdf", pngs, False)
    assert (none_used, used) == (0, 2)
    assert undecoded == decoded
    assert all(_rgb8_idat_of(p) in undecoded for p in pngs)
    narrow = _noisy_png(tmp_path / "narrow.png", 2, (300, 200))  # too narrow for the stand-in's 257 colours
    assert _pages(tmp_path / "narrow.pdf", [narrow], False)[1] == 0


def test_a_stand_in_left_unreplaced_is_an_error_not_a_blank_figure(tmp_path: Path, monkeypatch) -> None:
    """Were matplotlib to write an image without PdfFile._writePng, the stand-in would be the
    page's picture: write_pdf's document refuses that, and no file is left."""
    from reports import pdf as P

    monkeypatch.setattr(P._PngPassThrough, "_write_png", lambda self, img: self._encode(img))
    png = _noisy_png(tmp_path / "a.png", 0)
    with pytest.raises(RuntimeError, match="1 figure.s. not embedded"):
        with P._pdf_doc(tmp_path / "x.pdf", "t") as doc:
            doc.line("text first")
            doc.image_page(png, "caption", False)
            doc.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def _rgb8_idat_of(path: Path) -> bytes:
    from reports.pdf import _rgb8_idat

    data = _rgb8_idat(path.read_bytes())
    assert data is not None
    return data


def test_without_compare_and_with_chosen_events(tmp_path: Path) -> None:
    folder = build_result_dir(tmp_path / "r", n_bars=800, compare=False, funding_is_proxy=False, shuffle=True)
    extra = {"mine": {"start": "2025-01-10T00:00:00Z", "end": "2025-01-12T00:00:00Z", "title": "My window"}}
    events = select_events(load_events(extra), ["mine"])
    files = render_report(folder, events=events)
    assert len(files.figures) == 11
    pages, text = _pdf_text(files.pdf)
    assert pages == files.pages == 7 + 11  # the executive summary's figure on a page of its own
    assert "proxy" not in text
    assert "My window" in text
    table = pd.read_csv(files.events_csv)
    assert list(table["event"]) == ["mine", "mine"] and (table["bars"] == 48).all()


def test_explicit_event_outside_period_is_a_config_error(tmp_path: Path) -> None:
    folder = build_result_dir(tmp_path / "r", n_bars=300, compare=False)
    with pytest.raises(ConfigError, match="outside the data period"):
        render_report(folder, events=select_events(load_events(), ["crash_2022"]))
    assert not (folder / "report.pdf").exists()


def test_bad_result_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="summary.json"):
        render_report(tmp_path)
    folder = build_result_dir(tmp_path / "r", n_bars=200, compare=False)
    ledger = pd.read_parquet(folder / "ledger.parquet")
    edited = ledger.copy()
    edited.loc[0, "equity_hedged"] += 1.0  # a changed ledger: refused by its hash, before anything else
    edited.to_parquet(folder / "ledger.parquet")
    with pytest.raises(DataError, match="does not match summary.json's ledger_sha256"):
        render_report(folder)
    (folder / "ledger.parquet").write_bytes(b"not parquet")
    restamp_ledger(folder)
    with pytest.raises(DataError, match="ledger.parquet: not a readable Parquet file"):
        render_report(folder)
    ledger.drop(columns=["funding"]).to_parquet(folder / "ledger.parquet")
    restamp_ledger(folder)
    with pytest.raises(DataError, match="missing \\['funding'\\]"):
        render_report(folder)
    ledger[list(reversed(ledger.columns))].to_parquet(folder / "ledger.parquet")
    restamp_ledger(folder)
    with pytest.raises(DataError, match="order differs"):
        render_report(folder)
    ledger.astype({"equity_hedged": str}).to_parquet(folder / "ledger.parquet")
    restamp_ledger(folder)
    with pytest.raises(DataError, match="column 'equity_hedged': expected numbers"):
        render_report(folder)
    ledger[ledger["rule"] == "static_ols"].to_parquet(folder / "ledger.parquet")
    restamp_ledger(folder)
    with pytest.raises(DataError, match="differ from summary.json rules"):
        render_report(folder)
    summary = json.loads((folder / "summary.json").read_text())
    del summary["rules"]["static_ols"]["pnl"]["funding"]
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(DataError, match="rules.static_ols.pnl lacks funding"):
        render_report(folder)


def test_unwritable_output_is_an_output_error(tmp_path: Path) -> None:
    folder = build_result_dir(tmp_path / "r", n_bars=200, compare=False)
    (folder / "metrics.csv").mkdir()  # a folder where the CSV must go
    with pytest.raises(OutputError, match="cannot write the report"):
        render_report(folder)
    assert [p.name for p in folder.iterdir() if ".tmp-" in p.name] == []


def _recommendation_table(**over: list) -> pd.DataFrame:
    base = {
        "rule": ["a", "b", "c", "d"],
        "best_rule": ["a"] * 4,
        "he_horizon": ["1D"] * 4,
        "he_1D": [0.50, 0.49, 0.40, 0.60],
        "he_ci_level": [0.95] * 4,
        "he_diff_vs_best": [0.0, -0.01, -0.10, 0.10],
        "he_diff_lo": [0.0, -0.03, -0.14, 0.05],
        "he_diff_hi": [0.0, 0.01, -0.06, 0.15],
        "cost_diff_vs_best_bps_per_year": [0.0, -150.0, -290.0, -250.0],
        "cost_diff_lo": [0.0, -180.0, -300.0, -260.0],
        "cost_diff_hi": [0.0, -120.0, -280.0, -240.0],
        "liquidations": [0, 0, 0, 2],
    }
    base.update(over)
    return pd.DataFrame(base)


def test_recommendation_criterion() -> None:
    # d is liquidated; a is best; b is not significantly worse and significantly cheaper; c is worse
    rule, reason = recommend_rule(_recommendation_table())
    assert rule == "b"
    assert "not significantly less effective" in reason and "a" in reason
    # b's cost difference not significant -> the best rule
    rule, reason = recommend_rule(_recommendation_table(cost_diff_hi=[0.0, 10.0, -280.0, -240.0]))
    assert rule == "a" and "paired bootstrap" in reason
    # b significantly worse -> the best rule
    rule, _ = recommend_rule(_recommendation_table(he_diff_hi=[0.0, -0.001, -0.06, 0.15]))
    assert rule == "a"
    rule, reason = recommend_rule(_recommendation_table(best_rule=["d"] * 4, liquidations=[1, 1, 1, 1],
                                                         he_diff_hi=[-0.1, -0.1, -0.1, 0.0],
                                                         cost_diff_hi=[1.0, 1.0, 1.0, 0.0]))
    assert rule == "d" and "liquidated" in reason
    rule, _ = recommend_rule(_recommendation_table(best_rule=[""] * 4))
    assert rule is None


def test_a_rule_without_an_he_interval_is_not_recommended() -> None:
    # b is cheaper, but its HE-difference interval could not be computed (NaN): not shown equal to the best
    rule, _ = recommend_rule(_recommendation_table(he_diff_lo=[0.0, np.nan, -0.14, 0.05],
                                                   he_diff_hi=[0.0, np.nan, -0.06, 0.15]))
    assert rule == "a"
    # an interval wholly above 0 is "not significantly below" the best rule's HE
    rule, _ = recommend_rule(_recommendation_table(he_diff_lo=[0.0, 0.001, -0.14, 0.05],
                                                   he_diff_hi=[0.0, 0.02, -0.06, 0.15]))
    assert rule == "b"


def test_recommendation_from_paired_tests_on_a_ledger(tmp_path: Path) -> None:
    """The metrics table's paired columns: identical rules -> zero difference, not significant."""
    folder = build_result_dir(tmp_path / "r", n_bars=2000, rules=("static_ols", "rolling_ols"))
    summary = json.loads((folder / "summary.json").read_text())
    ledger = pd.read_parquet(folder / "ledger.parquet")
    twin = ledger[ledger["rule"] == "static_ols"].assign(rule="twin")
    summary["rules"]["twin"] = summary["rules"]["static_ols"]
    from reports.render import metrics_table

    m = metrics_table(summary, pd.concat([ledger, twin], ignore_index=True), n_boot=200).set_index("rule")
    best = m["best_rule"].iloc[0]
    other = "twin" if best == "static_ols" else ("static_ols" if best == "twin" else None)
    if other is not None:
        assert m.loc[other, "he_diff_vs_best"] == 0.0
        assert m.loc[other, "he_diff_lo"] <= 0.0 <= m.loc[other, "he_diff_hi"]


@pytest.mark.slow
def test_full_size_hourly_ledger_renders_every_event(tmp_path: Path) -> None:
    # render time is measured by benchmarks/single_run.py, not asserted here
    folder = build_result_dir(tmp_path / "big", n_bars=39_000, rules=("static_ols", "rolling_ols", "ewma"),
                              start="2021-01-01T00:00:00Z")
    files = render_report(folder)
    metrics = pd.read_csv(files.metrics_csv)
    # block length from arch on the daily spans of each rule (the headline horizon)
    ledger = pd.read_parquet(folder / "ledger.parquet")
    for _, row in metrics.iterrows():
        r_h, r_u, _ = _span_series(ledger[ledger["rule"] == row["rule"]].reset_index(drop=True), 24)
        assert row["he_block_len"] == stats.block_length(r_h, r_u) >= 1
    assert np.isfinite(metrics["he_ci_lo"]).all()
    events = pd.read_csv(files.events_csv)
    assert list(pd.unique(events["event"])) == [e.name for e in load_events()]  # 2021-01 .. 2025-06
    shutil.rmtree(folder)


def _page_fonts(reader: pypdf.PdfReader) -> list[set[tuple[str, bool]]]:
    """Per page: (base font name, embedded?) of every font its content stream selects (``Tf``);
    matplotlib shares one resource dictionary between all pages."""
    out = []
    for page in reader.pages:
        table = page["/Resources"]["/Font"]
        fonts = set()
        for key in set(re.findall(rb"/(F\d+) [\d.]+ Tf", page.get_contents().get_data())):
            font = table["/" + key.decode()].get_object()
            desc = font.get("/FontDescriptor")
            if desc is None and "/DescendantFonts" in font:
                desc = font["/DescendantFonts"][0].get_object().get("/FontDescriptor")
            desc = desc.get_object() if desc is not None else {}
            embedded = "/CharProcs" in font or any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3"))
            fonts.add((str(font["/BaseFont"]), embedded))
        out.append(fonts)
    return out


def test_pdf_text_is_set_in_the_standard_fonts(rendered) -> None:
    """The report's pages are set in Helvetica and Courier, not embedded; the oracle's ρ² is
    spelled "rho²" there (the standard fonts have no Greek)."""
    folder, _, _, _ = rendered
    reader = pypdf.PdfReader(folder / "report.pdf")
    used = set().union(*_page_fonts(reader))
    assert used and all(not embedded for _, embedded in used), used
    assert {name.lstrip("/") for name, _ in used} >= {"Helvetica", "Courier"}
    _, text = _pdf_text(folder / "report.pdf")
    assert "oracle rho²" in text and "ρ" not in text


def test_a_page_the_standard_fonts_cannot_show_embeds_dejavu(tmp_path: Path, caplog) -> None:
    """A page with a character outside Windows-1252 (a coin named in Greek) keeps the embedded
    DejaVu and shows the character; the other pages stay in the standard fonts, and no font
    lookup complains."""
    from reports.pdf import _pdf_doc

    with caplog.at_level("WARNING", logger="matplotlib.font_manager"), _pdf_doc(tmp_path / "x.pdf", "t") as doc:
        doc.line("oracle ρ² of FET: 41.6 %")
        doc.line("Bold heading", weight="bold")
        doc.line("12,345.00  -6.70", mono=True)
        doc.new_page()
        doc.line("coin σίγμα: ρ² 40 %")
        doc.close()
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    reader = pypdf.PdfReader(tmp_path / "x.pdf")
    first, second = _page_fonts(reader)
    assert first == {("/Helvetica", False), ("/Helvetica-Bold", False), ("/Courier", False)}
    assert second and all(embedded and "DejaVuSans" in name for name, embedded in second), second
    assert "oracle rho² of FET" in reader.pages[0].extract_text()
    assert "coin σίγμα: ρ² 40 %" in reader.pages[1].extract_text()


def test_fixed_tick_labels_decide_the_page_fonts_too(tmp_path: Path, caplog) -> None:
    """Tick labels set as a fixed list (rule names on the summary's HE panel) are checked
    before the page is drawn: a rule named in Greek keeps the page in embedded DejaVu, and
    its name is shown as given; an ASCII one leaves the page in Helvetica without a notice."""
    from reports.pdf import _pdf_doc

    with caplog.at_level("WARNING", logger="matplotlib.font_manager"), _pdf_doc(tmp_path / "x.pdf", "t") as doc:
        for names in (["notional", "ewma"], ["notional", "ρυθμός"]):
            fig = doc.new_page()
            ax = fig.add_axes((0.2, 0.2, 0.6, 0.6))
            ax.plot([0, 1], [0, 1], label="coin alone")
            ax.set_yticks([0.25, 0.75], labels=names)
            ax.legend()
        doc.close()
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    reader = pypdf.PdfReader(tmp_path / "x.pdf")
    first, second = _page_fonts(reader)
    assert first and all(not embedded for _, embedded in first), first
    assert second and all(embedded for _, embedded in second), second
    assert "ρυθμός" in reader.pages[1].extract_text()


def test_a_stand_in_drawn_cut_is_an_error_not_a_misfit_image() -> None:
    """Were matplotlib to crop an image (an axes smaller than it), the PNG's data would not fit the
    image it replaces: refused, rather than embedded with the wrong size."""
    from types import SimpleNamespace

    from reports.pdf import _PngPassThrough

    pdf = SimpleNamespace(_file=SimpleNamespace(_writePng=lambda img: (b"encoded", 8, None)))
    through = _PngPassThrough(pdf)  # type: ignore[arg-type]
    assert through._hook()
    stand_in = through._stand_in(300, 10, b"idat")[..., :3]
    assert through._write_png(Image.fromarray(np.ascontiguousarray(stand_in))) == (b"idat", 8, None)
    cut = through._stand_in(300, 10, b"idat")[:, :299, :3]
    with pytest.raises(RuntimeError, match="drawn 299 x 10 pixels, not as its PNG .300 x 10."):
        through._write_png(Image.fromarray(np.ascontiguousarray(cut)))
    assert through._write_png(Image.fromarray(np.zeros((10, 300, 3), np.uint8))) == (b"encoded", 8, None)
