"""Build the report of one result folder: CSV tables, PNG figures and a PDF.

:func:`render_report` only reads what the simulator wrote (``summary.json``,
``ledger.parquet`` and, after a rule-comparison grid, ``compare.parquet``); it never
re-simulates. Outputs, written next to the inputs::

    metrics.csv      one row per rule: summary metrics, P&L components, HE bootstrap
                     interval, historical 95 % VaR / CVaR of hedged and unhedged returns
    events.csv       one row per event window x rule (reports.events.event_table)
    figures/*.png    one PNG per figure (reports.figures)
    report.pdf       the multi-page report (reports.pdf)

Every file is written to a temporary name in its folder and moved into place with
:func:`os.replace`, so a reader never sees half a file. The CSVs are byte-deterministic:
floats as ``%.10g``, rows in a fixed order (rules in ``summary.json`` order, events in
the order given), ``\\n`` line ends.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from backtest.errors import DataError, OutputError
from backtest.schema import LEDGER_COLUMNS, PNL_COMPONENTS, RULE_COUNTS, RULE_METRICS
from reports import choose
from reports import figures as fig
from reports import stats, tearsheet
from reports.events import Event, event_table, events_in_period, load_events, split_rules
from reports.pdf import write_compare_pdf, write_pdf

if TYPE_CHECKING:  # pragma: no cover - typing only
    from backtest.progress import Progress

__all__ = [
    "ReportFiles",
    "CompareFiles",
    "read_result",
    "read_compare_folder",
    "choose_events",
    "render_report",
    "write_report",
    "render_compare",
    "write_compare_report",
    "read_instrument_tables",
    "metrics_table",
    "report_rules",
    "DEFAULT_MAX_RULES",
    "csv_bytes",
    "METRICS_COLUMNS",
    "BOOTSTRAP_SEED",
]

#: Seed of the hedge-effectiveness bootstrap (fixed, so reports are reproducible).
BOOTSTRAP_SEED: Final[int] = 20250127
#: Bootstrap resamples per rule.
N_BOOT: Final[int] = 1000
#: Confidence level of the HE interval and of VaR / CVaR.
LEVEL: Final[float] = 0.95
#: Columns of ``metrics.csv``, in order.
METRICS_COLUMNS: Final[tuple[str, ...]] = (
    "rule",
    *RULE_METRICS,
    *(f"pnl_{c}" for c in PNL_COMPONENTS),
    "pnl_total",
    *stats.REPORT_METRICS,
)
_FLOAT_FORMAT: Final[str] = "%.10g"
#: Rules shown in the figures and the PDF when ``[report] max_rules`` is not recorded.
DEFAULT_MAX_RULES: Final[int] = 8
_COMPARE_REQUIRED: Final[tuple[str, ...]] = ("variant", "family", "params", "rebalance", "rank",
                                              "hedge_effectiveness", "cost_drag_bps_per_year")


class _Files:
    """Paths of written files: the ``Path`` and ``tuple of Path`` fields of a frozen dataclass."""

    def moved(self, src: Path, dst: Path) -> Any:
        """The same record with the folder ``src`` in every path replaced by ``dst`` (after
        :func:`backtest.atomic.staged_files` moved the files there)."""
        def at(p: Path) -> Path:  # relative and absolute spellings of the same folder alike
            return Path(dst) / Path(os.path.abspath(p)).relative_to(os.path.abspath(src))

        changes: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Path):
                changes[f.name] = at(value)
            elif isinstance(value, tuple):
                changes[f.name] = tuple(at(v) for v in value)
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ReportFiles(_Files):
    """Paths written by :func:`render_report`.

    Attributes
    ----------
    metrics_csv, events_csv, pdf : Path
    figures : tuple of Path
        The PNGs, in report order.
    pages : int
        Number of pages of the PDF.
    """

    metrics_csv: Path
    events_csv: Path
    figures: tuple[Path, ...]
    pdf: Path
    pages: int


def _read_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(path, "missing: not a hedgebt result folder (no summary.json)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON: {exc}") from exc
    if not isinstance(summary, dict):
        raise DataError(path, "expected a JSON object at the top level")
    for key in ("scenario", "period", "rules", "oracle_r2"):
        if key not in summary:
            raise DataError(path, f"missing key '{key}'")
    bpd = summary["period"].get("bars_per_day") if isinstance(summary["period"], dict) else None
    if not isinstance(bpd, (int, float)) or not bpd > 0:
        raise DataError(path, f"period.bars_per_day must be a positive number, got {bpd!r}")
    if not isinstance(summary["rules"], dict) or not summary["rules"]:
        raise DataError(path, "rules must be a non-empty object")
    for rule, block in summary["rules"].items():
        missing = [k for k in (*RULE_METRICS, "pnl") if k not in block]
        if missing:
            raise DataError(path, f"rules.{rule} lacks {', '.join(missing)}")
        missing = [c for c in PNL_COMPONENTS if c not in block["pnl"]]
        if missing:
            raise DataError(path, f"rules.{rule}.pnl lacks {', '.join(missing)}")
        _check_rule_types(path, rule, block)
    return nulls_as_nan(summary)


def _check_rule_types(path: Path, rule: str, block: Mapping[str, Any]) -> None:
    """Every figure of ``rules.<rule>`` a number or ``null`` (an undefined figure), every count a
    whole number: checked before anything is rendered, so a damaged file is one line and a
    folder left as it was (not a traceback halfway through re-rendering it)."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for key in RULE_METRICS:
        v = block[key]
        if key in RULE_COUNTS:
            if not (number(v) and math.isfinite(v) and v >= 0 and float(v).is_integer()):
                raise DataError(path, f"rules.{rule}.{key} must be a whole number >= 0, got {v!r}")
        elif v is not None and not number(v):
            raise DataError(path, f"rules.{rule}.{key} must be a number or null, got {v!r}")
    for c in (*PNL_COMPONENTS, *(k for k in block["pnl"] if k not in PNL_COMPONENTS)):  # "total" too
        v = block["pnl"][c]
        if v is not None and not number(v):
            raise DataError(path, f"rules.{rule}.pnl.{c} must be a number or null, got {v!r}")


def nulls_as_nan(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``summary`` in which an undefined figure (``null`` in ``summary.json``, its reason
    under ``"undefined"``) is NaN, so tables and figures can format it."""
    out = copy.deepcopy(dict(summary))
    for block in out["rules"].values():
        for k in RULE_METRICS:
            if block.get(k, 0.0) is None:
                block[k] = math.nan
        for c in list(block["pnl"]):
            if block["pnl"][c] is None:
                block["pnl"][c] = math.nan
    if out["oracle_r2"] is None:
        out["oracle_r2"] = math.nan
    return out


def read_parquet_file(path: Path, data: bytes | None = None) -> pd.DataFrame:
    """``pd.read_parquet(path)`` (or of ``data``, the file's bytes already read); a file that is
    not Parquet is a :class:`DataError` naming it."""
    try:
        return pd.read_parquet(path if data is None else io.BytesIO(data))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(path, f"not a readable Parquet file ({' '.join(str(exc).split())[:160]})") from None


def read_csv_file(path: Path) -> pd.DataFrame:
    """``pd.read_csv(path)``; a file that is not a CSV table is a :class:`DataError` naming it."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and pandas' EmptyDataError / ParserError are ValueErrors
        raise DataError(path, f"not a readable CSV table ({' '.join(str(exc).split())[:160]})") from None


def verify_ledger(result_dir: Path, summary: Mapping[str, Any]) -> bytes:
    """The bytes of ``ledger.parquet``, once they are checked against ``summary.json``'s
    ``ledger_sha256``; a ledger changed or corrupted after the run is a :class:`DataError`."""
    expected = summary.get("ledger_sha256")
    if not isinstance(expected, str):
        raise DataError(result_dir / "summary.json",
                        "has no ledger_sha256 (written by an older hedgebt?); re-run the scenario to re-create the folder")
    path = result_dir / "ledger.parquet"
    if not path.is_file():
        raise DataError(path, "missing: the result folder has no ledger")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise DataError(path, f"SHA-256 {digest[:12]}... does not match summary.json's ledger_sha256 {expected[:12]}...; "
                              "the ledger was changed or corrupted after the run")
    return data


def _read_ledger(path: Path, rules: Sequence[str], data: bytes) -> pd.DataFrame:
    """The ledger parsed from ``data`` (the bytes of ``path`` that :func:`verify_ledger` checked)."""
    ledger = read_parquet_file(path, data)
    if list(ledger.columns) != list(LEDGER_COLUMNS):
        extra = [c for c in ledger.columns if c not in LEDGER_COLUMNS]
        missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
        raise DataError(
            path,
            "columns differ from backtest.schema.LEDGER_COLUMNS"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + ("; order differs" if not missing and not extra else ""),
        )
    if not isinstance(ledger["ts"].dtype, pd.DatetimeTZDtype) or str(ledger["ts"].dt.tz) != "UTC":
        raise DataError(path, f"expected UTC timestamps, got dtype {ledger['ts'].dtype}", column="ts")
    if ledger.empty:
        raise DataError(path, "the ledger has no rows")
    for col in LEDGER_COLUMNS:
        if col not in ("ts", "rule", "contract_id") and not pd.api.types.is_numeric_dtype(ledger[col].dtype):
            raise DataError(path, f"expected numbers, got dtype {ledger[col].dtype}", column=col)
    present = set(pd.unique(ledger["rule"]))
    if present != set(rules):
        raise DataError(path, f"rules {sorted(present)} differ from summary.json rules {sorted(rules)}",
                        column="rule")
    return ledger


def _read_compare(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    compare = read_parquet_file(path)
    missing = [c for c in _COMPARE_REQUIRED if c not in compare.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}")
    return compare.sort_values(["rank", "variant"], kind="stable").reset_index(drop=True)


def _span_series(g: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hedged and unhedged returns and trading cost (fraction of notional) over spans of ``n`` bars."""
    from backtest.metrics import horizon_returns

    eq_h = g["equity_hedged"].to_numpy(dtype=float)
    eq_u = g["equity_unhedged"].to_numpy(dtype=float)
    value = g["alt_value"].to_numpy(dtype=float)
    cost = -(g["fees"] + g["slippage"] + g["roll_cost"] + g["liquidation_cost"]).to_numpy(dtype=float)
    pnl_h = np.diff(eq_h, prepend=eq_h[0])
    pnl_u = np.diff(eq_u, prepend=eq_u[0])
    r_h, r_u = horizon_returns(pnl_h, pnl_u, value, n)
    c, _ = horizon_returns(cost, cost, value, n)
    return r_h, r_u, c


def metrics_table(
    summary: Mapping[str, Any],
    ledger: pd.DataFrame,
    *,
    n_boot: int = N_BOOT,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per rule: ``summary.json`` metrics and P&L plus ledger-based risk figures.

    HE at each horizon is :func:`backtest.metrics.he_by_horizon` of the ledger's equity
    changes. At the headline horizon (``config.report.horizon``, default ``"1D"``):
    the HE interval is :func:`reports.stats.he_interval` (arch circular block bootstrap,
    block length :func:`reports.stats.block_length`), and every rule is compared with the
    best never-liquidated rule by :func:`reports.stats.paired_he_difference` and
    :func:`reports.stats.paired_mean_difference` of the trading cost per span (one block
    length, that of the best rule, for all pairs). VaR / CVaR are
    :func:`reports.stats.var_cvar` (historical) of per-bar returns. ``progress`` (optional)
    hears ``("HE bootstrap", rules done, rules)``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`METRICS_COLUMNS`, rules in ``summary.json`` order.
    """
    from backtest.metrics import DAYS_PER_YEAR, HORIZONS, he_by_horizon, horizon_bars

    summary = nulls_as_nan(summary)
    bpd = float(summary["period"]["bars_per_day"])
    bar = pd.Timedelta(days=1) / bpd
    horizon = str(((summary.get("config") or {}).get("report") or {}).get("horizon", "1D"))
    n = horizon_bars(horizon, bar)
    spans_per_year = DAYS_PER_YEAR * bpd / n
    frames = split_rules(ledger, list(summary["rules"]))
    series = {rule: _span_series(frames[rule], n) for rule in summary["rules"]}
    head = {rule: stats.hedge_effectiveness(r_h, r_u) for rule, (r_h, r_u, _) in series.items()}
    safe = [r for r in summary["rules"] if int(summary["rules"][r]["liquidations"]) == 0 and math.isfinite(head[r])]
    pool = safe or [r for r in summary["rules"] if math.isfinite(head[r])]
    best = sorted(pool, key=lambda r: (-head[r], r))[0] if pool else None
    best_len = stats.block_length(*series[best][:2]) if best is not None and len(series[best][0]) >= 3 else 1
    rows = []
    for rule, block in summary["rules"].items():
        g = frames[rule]
        ret_h = g["ret_hedged"].to_numpy(dtype=float)
        ret_u = g["ret_unhedged"].to_numpy(dtype=float)
        r_h, r_u, cost = series[rule]
        ci = stats.he_interval(r_h, r_u, reps=n_boot, level=level, seed=seed)
        var_h, cvar_h = stats.var_cvar(ret_h, level)
        var_u, cvar_u = stats.var_cvar(ret_u, level)
        hz = he_by_horizon(np.diff(g["equity_hedged"].to_numpy(dtype=float), prepend=g["equity_hedged"].iloc[0]),
                           np.diff(g["equity_unhedged"].to_numpy(dtype=float), prepend=g["equity_unhedged"].iloc[0]),
                           g["alt_value"].to_numpy(dtype=float), bar)
        row: dict[str, Any] = {"rule": rule}
        row.update({k: block[k] for k in RULE_METRICS})
        row.update({f"pnl_{c}": float(block["pnl"][c]) for c in PNL_COMPONENTS})
        total = block["pnl"].get("total")
        row["pnl_total"] = float(total) if total is not None else math.fsum(row[f"pnl_{c}"] for c in PNL_COMPONENTS)
        row.update({f"he_{h}": hz[h] for h in HORIZONS})
        row.update({
            "he_horizon": horizon,
            "he_headline": row[f"he_{horizon}"],
            "he_ci_lo": ci.lo,
            "he_ci_hi": ci.hi,
            "he_ci_level": level,
            "he_block_len": ci.block_len,
            "he_n_boot": n_boot,
            "he_boot_seed": seed,
            "best_rule": best if best is not None else "",
        })
        if best is not None:
            b_h, _, b_cost = series[best]
            d_he = stats.paired_he_difference(r_h, b_h, r_u, block_len=best_len, reps=n_boot, level=level, seed=seed)
            d_cost = stats.paired_mean_difference(cost, b_cost, block_len=best_len, reps=n_boot, level=level, seed=seed)
            scale = spans_per_year * 1e4
            row.update({"he_diff_vs_best": d_he.point, "he_diff_lo": d_he.lo, "he_diff_hi": d_he.hi,
                        "cost_diff_vs_best_bps_per_year": d_cost.point * scale,
                        "cost_diff_lo": d_cost.lo * scale, "cost_diff_hi": d_cost.hi * scale})
        row.update({
            "var95_hedged": var_h,
            "cvar95_hedged": cvar_h,
            "var95_unhedged": var_u,
            "cvar95_unhedged": cvar_u,
        })
        rows.append(row)
        if progress is not None:
            progress("HE bootstrap", len(rows), len(summary["rules"]))
    return pd.DataFrame(rows, columns=list(METRICS_COLUMNS))


def _write_bytes(path: Path, data: bytes) -> None:
    with fig.atomic_output(path) as tmp:
        tmp.write_bytes(data)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """Byte-deterministic CSV: floats as ``%.10g``, UTC times as ISO ``...Z``, ``\\n`` line ends."""
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    buf = io.StringIO()
    out.to_csv(buf, index=False, float_format=_FLOAT_FORMAT, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


#: Captions printed under each figure in the PDF (keyed by PNG stem).
CAPTIONS: Final[dict[str, str]] = {
    "index_weights": "What the index held: target weights at each rebalance in effect during the replay "
                     "(stacked), the number of constituents held (black, right axis), and exits caused by the "
                     "end of a price series rather than by the market (dotted).",
    "equity": "Cumulative P&L of each hedged rule against the coin alone (USD). The cash held beside the "
              "position (margin collateral and reserve, stated in the figure's title) is the same on both sides and "
              "is not plotted.",
    "rolling_vol": "Rolling 30-day volatility of per-bar returns, annualised with 365 days: the hedge should "
                   "keep the coloured lines below the grey one. Lower panel: each rule minus the rule with "
                   "the lowest full-sample volatility (percentage points).",
    "drawdowns": "Drawdown of the compounded per-bar returns (on the coin notional) from their running peak.",
    "hedge_ratio": "Held vs target hedge ratio per rule; dotted red lines where a roll starts (a roll over "
                   "several grace bars counts once); rebalancing bars ticked at the bottom when there are at "
                   "most 300, else counted in the legend. Bottom: signed number of contracts held.",
    "rolling_he": "Rolling 30-day hedge effectiveness. Dashed: the full-sample oracle ρ², the HE of the one "
                  "constant hedge fitted to the whole period in hindsight; a 30-day window is a different, "
                  "shorter sample, so its HE can lie above that line. Lower panel: each rule minus the rule "
                  "with the highest full-sample HE (percentage points).",
    "pnl_attribution": "Where the P&L came from over the whole period; costs on their own scale (USD).",
    "events": "Cumulative P&L inside each named market window, hedged vs unhedged (USD).",
    "margin": "Margin balance against maintenance and initial requirement, log scale (the shaded band runs "
              "from maintenance to initial); triangles mark margin calls, crosses liquidations.",
    "monthly_returns": "Monthly returns on the coin notional (daily returns compounded), unhedged and per "
                       "rule (%).",
    "return_histogram": "Distribution of daily returns on the coin notional (sums of the day's per-bar "
                        "returns), unhedged vs each rule; dashed lines at the 1-day 99 % VaR.",
    "rolling_beta": "Rolling 30-day beta and correlation of the coin's returns on the futures' returns (bars "
                    "where the held contract changes are left out).",
    "compare_scatter": "Every compared variant, one panel per coin and window: hedge effectiveness against "
                       "annual cost drag; the line joins the variants no other beats on both. Legend counts "
                       "are rows of the compare table; costlier outliers sit at the right edge (>).",
    "compare_table": "Compared variants in the grid's rank order, per coin and window.",
    "compare_heatmap": "Hedge effectiveness (%) over the two grid axes a rule family varies (e.g. EWMA "
                       "half-life x rebalance policy), per coin and window.",
}


def multi_rules(summary: Mapping[str, Any]) -> tuple[str, ...]:
    """The rules of a run that short futures on several underlyings (their summary has ``legs``)."""
    return tuple(r for r, m in summary["rules"].items() if isinstance(m, Mapping) and m.get("legs"))


def max_rules(summary: Mapping[str, Any]) -> int:
    """``[report] max_rules`` of a run's summary (default :data:`DEFAULT_MAX_RULES`)."""
    return int(((summary.get("config") or {}).get("report") or {}).get("max_rules", DEFAULT_MAX_RULES))


def report_rules(summary: Mapping[str, Any], metrics: pd.DataFrame) -> tuple[str, ...]:
    """The rules the figures and the PDF show, in ``summary.json`` order.

    All rules when there are at most ``max_rules`` (``[report] max_rules``, default
    :data:`DEFAULT_MAX_RULES`). Otherwise the ``max_rules`` rules with the highest hedge
    effectiveness at the headline horizon (``he_<horizon>`` of :func:`metrics_table`; NaN
    last, ties in ``summary.json`` order), plus, when not among them, the recommended
    rule (:func:`reports.pdf.recommend_rule`), the rule the others are compared with
    (``best_rule``) and the baseline: the first rule of family ``notional`` (the one-to-one
    hedge), else the first rule. ``metrics.csv``, ``events.csv`` and ``summary.json``
    keep every rule.
    """
    from reports.pdf import recommend_rule

    rules = list(summary["rules"])
    cap = max_rules(summary)
    if len(rules) <= cap:
        return tuple(rules)
    horizon = str(metrics["he_horizon"].iloc[0])
    he = pd.to_numeric(metrics[f"he_{horizon}"], errors="coerce").to_numpy(dtype=float)
    order = np.lexsort((np.arange(len(he)), np.where(np.isnan(he), np.inf, -he)))
    keep = {str(metrics["rule"].iloc[i]) for i in order[:cap]}
    recommended, _ = recommend_rule(metrics)
    best = str(metrics["best_rule"].iloc[0])
    families = [str((summary["rules"][r] or {}).get("family", "")) for r in rules]
    baseline = rules[families.index("notional")] if "notional" in families else rules[0]
    keep |= {r for r in (recommended, best, baseline) if r}
    return tuple(r for r in rules if r in keep)


def _shown_note(shown: Sequence[str], n_all: int) -> str:
    """The report's statement of how many rules it shows ('' when it shows all)."""
    if len(shown) >= n_all:
        return ""
    return (f"Showing {len(shown)} of {n_all} rules: the best by hedge effectiveness at the headline horizon "
            "([report] max_rules), plus the recommended rule and the baseline; metrics.csv, events.csv and "
            "summary.json have all of them.")


def _figure_jobs(summary: Mapping[str, Any], ledger: pd.DataFrame, events: Sequence[Event],
                 compare: pd.DataFrame | None) -> dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """Every figure of a report as ``stem: (function, args, kwargs)``; each function takes the
    PNG path as its second positional argument."""
    rules = list(summary["rules"])
    bpd = float(summary["period"]["bars_per_day"])
    jobs: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {
        "equity": (fig.plot_equity, (ledger,), {"rules": rules}),
        "rolling_vol": (fig.plot_rolling_vol, (ledger,), {"bars_per_day": bpd, "rules": rules}),
        "drawdowns": (fig.plot_drawdowns, (ledger,), {"rules": rules}),
        "hedge_ratio": (fig.plot_hedge_ratio, (ledger,), {"rules": rules}),
        "rolling_he": (fig.plot_rolling_he, (ledger,), {"bars_per_day": bpd,
                                                         "oracle_r2": float(summary["oracle_r2"]), "rules": rules}),
        "pnl_attribution": (fig.plot_pnl_attribution, ({r: summary["rules"][r]["pnl"] for r in rules},), {}),
        "events": (fig.plot_event_panels, (ledger, events), {"rules": rules}),
        "margin": (fig.plot_margin, (ledger,), {"rules": rules}),
        "monthly_returns": (tearsheet.plot_monthly_returns, (ledger,), {"rules": rules}),
        "return_histogram": (tearsheet.plot_return_histogram, (ledger,), {"rules": rules}),
        "rolling_beta": (tearsheet.plot_rolling_beta, (ledger,), {"bars_per_day": bpd}),
    }
    if ((summary.get("index") or {}).get("weights") or {}).get("symbols"):
        jobs["index_weights"] = (choose.plot_index_weights, (summary,), {})
    if compare is not None and len(compare):
        jobs.update(_compare_jobs(compare))
    return jobs


def _compare_jobs(compare: pd.DataFrame) -> dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    jobs: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {
        "compare_scatter": (fig.plot_compare_scatter, (compare,), {}),
        "compare_table": (fig.plot_compare_table, (compare,), {}),
    }
    if fig.compare_heatmap_axes(compare):
        jobs["compare_heatmap"] = (fig.plot_compare_heatmap, (compare,), {})
    return jobs


def read_result(result_dir: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame | None]:
    """``summary.json``, ``ledger.parquet`` and (after a grid) ``compare.parquet`` of a result folder,
    each checked against :mod:`backtest.schema`, the ledger also against ``summary.json``'s
    ``ledger_sha256`` (:func:`verify_ledger`).

    Raises
    ------
    DataError
        A file is missing or does not follow the schema.
    """
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise DataError(result_dir, "not a folder")
    summary = _read_summary(result_dir / "summary.json")
    data = verify_ledger(result_dir, summary)  # read once: hashed, then parsed
    ledger = _read_ledger(result_dir / "ledger.parquet", list(summary["rules"]), data)
    return summary, ledger, _read_compare(result_dir / "compare.parquet")


def choose_events(
    summary: Mapping[str, Any], ledger: pd.DataFrame, events: Sequence[Event] | None = None
) -> tuple[tuple[Event, ...], list[str]]:
    """The event windows a report analyses, and notes about the ones it leaves out.

    ``events=None`` means the bundled windows plus the config's ``[events.<name>]`` that
    overlap the data period; the others are named in a note.
    """
    if events is not None:
        return tuple(events), []
    bpd = float(summary["period"]["bars_per_day"])
    user = (summary.get("config") or {}).get("events") or None
    inside, outside = events_in_period(load_events(user), ledger, bars_per_day=bpd)
    notes = []
    if outside:
        notes.append("Bundled event windows outside the data period (not analysed): "
                     + ", ".join(e.name for e in outside) + ".")
    return tuple(inside), notes


def render_report(
    result_dir: Path,
    *,
    events: Sequence[Event] | None = None,
    n_boot: int = N_BOOT,
    seed: int = BOOTSTRAP_SEED,
    progress: Progress | None = None,
) -> ReportFiles:
    """Re-render the report of a result folder from its files (:func:`read_result`, then
    :func:`write_report` into the same folder). Nothing is re-simulated."""
    summary, ledger, compare = read_result(Path(result_dir))
    return write_report(Path(result_dir), summary, ledger, compare=compare, events=events, n_boot=n_boot,
                        seed=seed, progress=progress)


def write_report(
    result_dir: Path,
    summary: Mapping[str, Any],
    ledger: pd.DataFrame,
    *,
    compare: pd.DataFrame | None = None,
    events: Sequence[Event] | None = None,
    metrics: pd.DataFrame | None = None,
    n_boot: int = N_BOOT,
    seed: int = BOOTSTRAP_SEED,
    progress: Progress | None = None,
) -> ReportFiles:
    """Write ``metrics.csv``, ``events.csv``, ``figures/*.png`` and ``report.pdf`` into ``result_dir``.

    Parameters
    ----------
    result_dir : Path
        The folder to write into (it must exist).
    summary, ledger : mapping, DataFrame
        A run's summary (the content of ``summary.json``) and per-bar ledger.
    compare : DataFrame, optional
        A rule-comparison table to add to the report.
    events : sequence of Event, optional
        Event windows to analyse; each must overlap the data period. Default: see
        :func:`choose_events`. Pass ``select_events(load_events(config["events"]), names)``
        for user windows.
    metrics : DataFrame, optional
        :func:`metrics_table` of the same run, when the caller already has it.
    n_boot : int, default 1000
        Bootstrap resamples of the HE interval.
    seed : int, default :data:`BOOTSTRAP_SEED`
        Bootstrap seed.
    progress : Progress, optional
        Hears the long loops (:class:`backtest.progress.Progress`): ``"HE bootstrap"`` (when
        ``metrics`` is not given), ``"figures"`` and ``"PDF pages"``.

    Returns
    -------
    ReportFiles

    Raises
    ------
    ConfigError
        An explicitly requested event lies outside the data period.
    OutputError
        The result folder cannot be written.
    """
    result_dir = Path(result_dir).resolve()  # the folder itself may be reached through a link; nothing below it
    summary = nulls_as_nan(summary)
    rules = list(summary["rules"])
    bpd = float(summary["period"]["bars_per_day"])
    chosen, notes = choose_events(summary, ledger, events)
    events_df = event_table(ledger, chosen, bars_per_day=bpd, rules=rules, several_underlyings=multi_rules(summary))
    if metrics is None and len(rules) > max_rules(summary):
        # the figures show the best rules: they wait for the metrics
        metrics = metrics_table(summary, ledger, n_boot=n_boot, seed=seed, progress=progress)
    shown = tuple(rules) if metrics is None else report_rules(summary, metrics)
    note = _shown_note(shown, len(rules))
    fig_summary, fig_ledger = _only_rules_run(shown, summary, ledger) if note else (summary, ledger)
    try:
        # the figures are drawn in worker processes while the metrics, the CSVs and the PDF's
        # text pages are written here; the PDF waits for each PNG when it reaches its page
        with fig.start_all(_figure_jobs(fig_summary, fig_ledger, chosen, compare), result_dir / "figures",
                           progress=progress) as pending:
            if metrics is None:
                metrics = metrics_table(summary, ledger, n_boot=n_boot, seed=seed, progress=progress)
            metrics_shown, events_shown = _only_rules_tables(shown, metrics, events_df) if note else (metrics, events_df)
            metrics_csv = result_dir / "metrics.csv"
            events_csv = result_dir / "events.csv"
            _write_bytes(metrics_csv, csv_bytes(metrics))
            _write_bytes(events_csv, csv_bytes(events_df))
            pdf_path = result_dir / "report.pdf"
            pages = write_pdf(pdf_path, fig_summary, metrics_shown, events_shown, pending.relabelled(CAPTIONS),
                              compare, events=chosen, notes=notes, rules_note=note, progress=progress,
                              ledger=fig_ledger)
            pngs = pending.wait_all()
    except OutputError as exc:
        raise OutputError(f"{result_dir}: cannot write the report: {exc}") from None
    except OSError as exc:
        raise OutputError(f"{result_dir}: cannot write the report: {exc}") from exc
    return ReportFiles(metrics_csv=metrics_csv, events_csv=events_csv, figures=tuple(pngs.values()),
                       pdf=pdf_path, pages=pages)


def _only_rules_run(shown: Sequence[str], summary: Mapping[str, Any],
                    ledger: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """Summary and ledger restricted to the rules ``shown`` (for the figures and the PDF); the
    summary's ``config.rules`` keeps the shown rules' entries."""
    keep = set(shown)
    rules = list(summary["rules"])
    out = dict(summary)
    out["rules"] = {r: summary["rules"][r] for r in rules if r in keep}
    config = dict(summary.get("config") or {})
    if isinstance(config.get("rules"), list) and len(config["rules"]) == len(rules):
        config["rules"] = [spec for r, spec in zip(rules, config["rules"], strict=True) if r in keep]
    out["config"] = config
    return out, ledger[ledger["rule"].isin(keep)].reset_index(drop=True)


def _only_rules_tables(shown: Sequence[str], metrics: pd.DataFrame,
                       events_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics and event table restricted to the rules ``shown``."""
    keep = set(shown)
    met = metrics[metrics["rule"].isin(keep)].reset_index(drop=True)
    ev = events_df[events_df["rule"].isin(keep)].reset_index(drop=True) if "rule" in events_df else events_df
    return met, ev


@dataclass(frozen=True)
class CompareFiles(_Files):
    """Files written by :func:`render_compare`."""

    figures: tuple[Path, ...]
    pdf: Path
    pages: int


def read_compare_folder(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The ranked table (``compare.parquet``) and run facts (``compare.json``) of a compare folder."""
    folder = Path(folder)
    compare = _read_compare(folder / "compare.parquet")
    if compare is None or not len(compare):
        raise DataError(folder / "compare.parquet", "missing or empty: not a compare result folder")
    info_path = folder / "compare.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(info_path, f"cannot read: {exc}") from None
    if not isinstance(info, dict):
        raise DataError(info_path, "expected a JSON object at the top level")
    for key in ("rank_by", "config"):
        if key not in info:
            raise DataError(info_path, f"missing key '{key}'")
    return compare, info


def read_instrument_tables(folder: Path) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    """``instruments.csv`` and the verdicts of ``instruments.json`` of a compare folder (written when
    the grid has ``compare.underlyings``); ``(None, [])`` when the folder has none."""
    folder = Path(folder)
    path = folder / "instruments.csv"
    if not path.is_file():
        return None, []
    table = read_csv_file(path)
    missing = [c for c in ("coin", "window", "underlying", "variant", "oracle_r2", "he_daily", "he_daily_lo",
                           "he_daily_hi", "cost_drag_bps_per_year", "carry_usd", "min_safe_collateral",
                           "margin_calls", "max_drawdown_hedged") if c not in table.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}")
    verdicts_path = folder / "instruments.json"
    try:
        verdicts = json.loads(verdicts_path.read_text(encoding="utf-8")) if verdicts_path.is_file() else []
    except (OSError, ValueError) as exc:
        raise DataError(verdicts_path, f"cannot read: {exc}") from None
    if not isinstance(verdicts, list):
        raise DataError(verdicts_path, "expected a JSON list of verdicts")
    return table, verdicts


def render_compare(folder: Path, *, progress: Progress | None = None) -> CompareFiles:
    """Re-render the figures and ``compare.pdf`` of a ``hedgebt compare`` folder from its tables."""
    compare, info = read_compare_folder(Path(folder))
    instruments, verdicts = read_instrument_tables(Path(folder))
    return write_compare_report(Path(folder), compare, info, instruments=instruments, verdicts=verdicts,
                                progress=progress)


def write_compare_report(folder: Path, compare: pd.DataFrame, info: Mapping[str, Any], *,
                         instruments: pd.DataFrame | None = None, verdicts: Sequence[Mapping[str, Any]] = (),
                         progress: Progress | None = None) -> CompareFiles:
    """Write ``figures/compare_scatter.png`` (HE vs annual cost, efficient frontier, per
    scenario), ``figures/compare_table.png`` (the ranking), ``figures/compare_heatmap.png``
    (when a family varies over two grid axes) and ``compare.pdf`` into ``folder``.

    ``instruments`` / ``verdicts`` (``CompareResult.instruments`` / ``.verdicts``, or
    :func:`read_instrument_tables`) add the "Which hedge instrument?" section when a coin was
    hedged with more than one underlying. ``progress`` hears ``"figures"`` and ``"PDF pages"``.
    """
    folder = Path(folder)
    compare = compare.sort_values(["rank", "variant"], kind="stable").reset_index(drop=True)
    out = folder / "figures"
    try:
        pngs = tuple(fig.render_all(_compare_jobs(compare), out, progress=progress).values())
        pages = write_compare_pdf(folder / "compare.pdf", compare, dict(info), pngs, progress=progress,
                                  instruments=instruments, verdicts=list(verdicts))
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write the compare report: {exc}") from exc
    return CompareFiles(figures=pngs, pdf=folder / "compare.pdf", pages=pages)
