"""The engine's run: simulate every rule of a config into a ledger and a summary.

:func:`run` returns a :class:`RunResult` (the per-bar ledger and ``summary.json``);
:func:`write_result_files` writes those two files; :class:`atomic_output_dir` builds an
output folder under a temporary name and renames it into place at the end, so an
interrupted or failed run leaves nothing half-written. The user-facing result object,
with metrics, events, figures and reports, is :class:`backtest.api.Result`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest import schema
from backtest.config import Config, FundingSection, RebalanceSection
from backtest.atomic import OutputDir, write_bytes, write_text
from backtest.engine import (Prepared, check_ledger_rows, events_input, min_safe_collaterals, prepare,
                             release_arrow_memory, result_record, variant_for)
from backtest.progress import Progress, report as report_progress
from backtest.metrics import describe_index_held, he_by_horizon, horizon_bars, plural, summary_metrics
from backtest.market import run_variant
from strategies.multi import is_multi

#: the output-folder claim (kept under its old name; see :mod:`backtest.atomic`)
atomic_output_dir = OutputDir

__all__ = ["RunResult", "run", "rule_metrics", "write_result_files", "atomic_output_dir", "ledger_bytes"]


@dataclass(frozen=True, eq=False)
class RunResult:
    """The outcome of one scenario run (read-only).

    ``ledger`` and ``summary`` return fresh copies, so callers cannot change the
    result they were given.
    """

    _ledger: pd.DataFrame
    _summary_json: str
    config: Config
    _legs: pd.DataFrame | None = None

    @property
    def legs(self) -> pd.DataFrame | None:
        """Two-instrument rules' per-leg rows (``legs.parquet``; :data:`backtest.multi_run.LEG_COLUMNS`),
        None without such a rule."""
        return None if self._legs is None else self._legs.copy(deep=False)

    @property
    def ledger(self) -> pd.DataFrame:
        """One row per bar and rule, columns :data:`backtest.schema.LEDGER_COLUMNS`."""
        return self._ledger.copy(deep=False)

    @property
    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return json.loads(self._summary_json)

    @property
    def summary_json(self) -> str:
        return self._summary_json


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def rule_metrics(rows: dict[str, np.ndarray], summary: dict[str, float], *, bar: pd.Timedelta, oracle: float,
                 alt_value: np.ndarray, futures_kind: str) -> dict[str, Any]:
    """Per-rule figures of ``summary.json``: :func:`backtest.metrics.summary_metrics` plus
    the mean held hedge ratio and :func:`backtest.metrics.he_by_horizon` from the per-bar rows."""
    out = summary_metrics(summary, n_bars=len(rows["equity_hedged"]), bar=bar, oracle=oracle, futures_kind=futures_kind)
    out["mean_hedge_ratio_held"] = float(np.mean(rows["hedge_ratio_held"]))
    pnl_h = np.diff(rows["equity_hedged"], prepend=rows["equity_hedged"][0])
    pnl_u = np.diff(rows["equity_unhedged"], prepend=rows["equity_unhedged"][0])
    out["he_by_horizon"] = he_by_horizon(pnl_h, pnl_u, alt_value, bar)
    return out


#: why a metric can come out undefined (written next to its ``null`` in ``summary.json``)
FLAT_COIN_REASON = "unhedged variance is zero: the coin's price never moved"


def undefined_reasons(metrics: dict[str, Any], summ: dict[str, float], bar: pd.Timedelta | None = None,
                      ) -> dict[str, str]:
    """``{metric: reason}`` for every per-rule figure that is not a finite number.

    The variance-based figures (HE, volatilities, HE / oracle) are undefined with fewer than two
    returns or a zero unhedged variance (a coin whose price never moved); ratios with a zero or
    undefined denominator are undefined; anything else non-finite overflowed. With ``bar``, an
    undefined ``he_by_horizon`` entry is ``"he_by_horizon.<h>"``: fewer than two complete spans
    of that horizon (``n_ret // bars per span``), or no unhedged variance over them.
    """
    n, m2_u = summ["n_ret"], summ["m2_u"]
    if n < 2:
        variance = f"fewer than two bar returns ({int(n)})"
    elif not m2_u > 0:
        variance = FLAT_COIN_REASON
    else:
        variance = None
    out: dict[str, str] = {}
    if bar is not None:
        for h, value in (metrics.get("he_by_horizon") or {}).items():
            if value is not None and math.isfinite(float(value)):
                continue
            spans = int(n) // horizon_bars(h, bar)
            out[f"he_by_horizon.{h}"] = (f"{plural(spans, f'complete {h} span')} of returns; a "
                                         "variance needs two" if spans < 2 else variance or
                                         f"no variance of the unhedged {h} returns")
    for key, value in metrics.items():
        if isinstance(value, dict) or value is None or isinstance(value, (str, bool)):
            continue
        if math.isfinite(float(value)):
            continue
        if key in ("hedge_effectiveness", "vol_unhedged_ann", "vol_hedged_ann") and variance:
            out[key] = variance
        elif key == "oracle_r2":
            out[key] = "the oracle rho^2 needs non-zero variance of both the coin's and the futures' returns"
        elif key == "he_vs_oracle":
            out[key] = variance or "the oracle rho^2 is zero or undefined"
        elif key == "cost_drag_bps_per_year":
            out[key] = "the mean coin notional or the period length is zero"
        elif key == "min_margin_excess":  # the kernel's running minimum never saw a position at a close
            out[key] = "no futures position was held at any bar's close: no margin was ever required"
        else:
            out[key] = "not a finite number (zero denominator or overflow)"
    return out


def _ledger_block(prepared: Prepared, label: str, rows: dict[str, np.ndarray], *, copy: bool = True) -> pd.DataFrame:
    """One rule's ledger rows; ``copy=False`` keeps the kernel's rows as the float columns (the block
    is then the whole ledger: no second copy of a long one)."""
    T = len(prepared.ts)
    single = len(prepared.coins) == 1
    primary = rows["primary"].astype(np.int64)
    data: dict[str, Any] = {
        "ts": prepared.ts,
        "rule": pd.array([label] * T, dtype="string"),
        "alt_price": prepared.coin_prices[:, 0] if single else np.full(T, np.nan),
        "alt_units": prepared.coin_units[:, 0] if single else np.full(T, np.nan),
        "alt_value": prepared.market.alt_value,
        "index_level": prepared.market.idx,
        "fut_price": prepared.market.contract_price(np.arange(T), primary),
        "contract_id": pd.array(np.asarray(prepared.book.labels, dtype=object)[primary], dtype="string"),
        "pnl_altcoin": prepared.market.alt_pnl,
    }
    for name in schema.LEDGER_COLUMNS:
        if name in data:
            continue
        values = rows[name]
        if name in ("rebalanced", "rolled", "margin_call", "liquidated"):
            values = values.astype(bool)
        data[name] = values
    return pd.DataFrame(data, columns=list(schema.LEDGER_COLUMNS), copy=copy)


def run(config: Config, *, prepared: Prepared | None = None, progress: Progress | None = None) -> RunResult:
    """Simulate every rule of ``config``; return the immutable result.

    ``progress`` (optional, :class:`backtest.progress.Progress`) hears the collateral
    bisection's kernel passes and then ``"rules"``: replays done of the rules. A run keeps
    the per-bar ledger of every rule: at most :data:`backtest.engine.MAX_LEDGER_ROWS` rows
    (``ConfigError`` on key ``rules`` above it, before any hedge ratio is estimated)."""
    if prepared is None:
        prepared = prepare(config, ledger=True)
    n_legs = sum(len(rule.instruments) for rule in prepared.rules if is_multi(rule))  # legs.parquet rows per bar
    check_ledger_rows(len(prepared.rules) + n_legs, len(prepared.ts))
    oracle = prepared.notes.oracle_r2
    blocks = []
    leg_frames: list[pd.DataFrame] = []
    rules_out: dict[str, Any] = {}
    variants = [variant_for(config, col) for col in range(len(prepared.rules))]
    single = [col for col, rule in enumerate(prepared.rules) if not is_multi(rule)]
    safe = dict(zip(single, min_safe_collaterals(prepared.market, [variants[c] for c in single], progress=progress)))
    for col, (rule, label) in enumerate(zip(prepared.rules, prepared.rule_labels)):
        extra: dict[str, Any] = {}
        if is_multi(rule):  # one isolated-margin leg per instrument (backtest.multi_run)
            rows, summ, rule_oracle, extra, frame = _multi_rule(config, prepared, rule, label)
            leg_frames.append(frame)
        else:
            rows, summ = run_variant(prepared.market, variants[col])
            summ = {**summ, "margin_need": float(safe[col])}  # min_safe_collateral: margin on, reserve 0
            rule_oracle = oracle
        report_progress(progress, "rules", col + 1, len(variants))
        metrics = rule_metrics(rows, summ, bar=prepared.bar, oracle=rule_oracle, alt_value=prepared.market.alt_value,
                               futures_kind=config.futures.kind)
        undefined = undefined_reasons(metrics, summ, prepared.bar)
        if undefined:
            metrics["undefined"] = undefined
        metrics.update(extra)
        metrics["family"] = rule.family
        metrics["warmup_bars"] = int(rule.warmup_bars())
        rules_out[label] = metrics
        blocks.append(_ledger_block(prepared, label, rows, copy=len(prepared.rules) > 1))
        del rows  # the kernel's per-bar rows are in the block now
    # one block is the ledger as it is (no copy); the blocks go as soon as they are joined
    ledger = blocks[0] if len(blocks) == 1 else pd.concat(blocks, ignore_index=True)
    blocks.clear()
    summary = _summary(config, prepared, rules_out)
    summary["ledger_sha256"] = ledger_sha256(ledger)
    legs = pd.concat(leg_frames, ignore_index=True) if leg_frames else None
    return RunResult(ledger, json.dumps(_clean(summary), indent=2, allow_nan=False), config, legs)


def _multi_rule(config: Config, prepared: Prepared, rule: Any,
                label: str) -> tuple[dict[str, np.ndarray], dict[str, float], float, dict[str, Any], pd.DataFrame]:
    """A ``multi_min_variance`` rule: combined rows and summary, its in-sample oracle, the
    per-leg figures for ``summary.json`` and the per-leg rows (:mod:`backtest.multi_run`)."""
    from backtest.multi_run import MARGIN_MODEL, leg_figures, leg_frame, run_multi

    out = run_multi(config, prepared, rule)
    extra = {
        "instruments": list(rule.instruments),
        "collateral_split": list(rule.collateral_split),
        "margin_model": MARGIN_MODEL,
        "legs": leg_figures(out, bar=prepared.bar, futures_kind=config.futures.kind),
    }
    return out.rows, out.summary, out.oracle_r2, extra, leg_frame(out, prepared.market, prepared.ts, label)


def _summary(config: Config, p: Prepared, rules_out: dict[str, Any]) -> dict[str, Any]:
    from backtest.config import BUNDLED_DATA

    provenance = BUNDLED_DATA / "PROVENANCE.md"
    funding = None if p.notes.funding is None else dataclasses.asdict(p.notes.funding)
    fut = config.futures
    index = p.index
    record = result_record(config, [*p.inputs, events_input()])  # the report's event table reads events.toml
    return {
        "hedgebt_version": record["hedgebt_version"],
        "scenario": {
            "name": config.scenario.name,
            "coins": list(p.coins),
            "index": describe_index_held(index, p.ts[0], p.ts[-1])
            if fut.underlying == "index"
            else f"none: futures on {fut.underlying} (its close is the underlying; [index] constituents ignored)",
            "underlying": fut.underlying,
            "futures_kind": fut.kind,
            "funding_source": None if funding is None else funding["source"],
            "funding_is_proxy": bool(funding and funding["is_proxy"]),
            "basis_source": None if p.notes.basis is None else p.notes.basis.description,
            "basis_is_proxy": bool(p.notes.basis is not None and p.notes.basis.is_proxy),
            "description": _describe(config, p) + _multi_note(p),
        },
        "period": {
            "start": p.ts[0].isoformat(),
            "end": p.ts[-1].isoformat(),
            "bars": len(p.ts),
            "bar": config.scenario.bar,
            "bars_per_day": p.bars_per_day,
        },
        "oracle_r2": p.notes.oracle_r2,
        "rules": rules_out,
        "index": {
            "constituents": list(index.spec.constituents),
            "not_listed_before_end": list(p.notes.not_listed),
            "start": index.start.isoformat(),
            "events": [
                {"ts": pd.Timestamp(r.ts).isoformat(), "symbol": r.symbol, "event": r.event, "reason": r.reason,
                 "cause": getattr(r, "cause", None),
                 "data_end": None if pd.isna(getattr(r, "last_price_ts", pd.NaT)) else pd.Timestamp(r.last_price_ts).isoformat()}
                for r in index.events.itertuples()
            ],
            "migrations": [
                {"old": m.old, "new": m.new, "old_last": None if m.old_last is None else m.old_last.isoformat(),
                 "new_first": None if m.new_first is None else m.new_first.isoformat(),
                 "bridged_bars": m.bridged_bars, "hole_bars": m.hole_bars}
                for m in p.notes.migrations
            ],
            "intrabar_high_share": p.notes.intrabar_high_share,
            "weights": _index_weights(index, p.ts[0], p.ts[-1]),
            "intrabar_high": _intrabar_note(p.notes.intrabar_high_share),
        },
        "futures": {
            "underlying": fut.underlying,
            "kind": fut.kind,
            "source": p.book.source,
            "contract_size": fut.contract_size,
            "contracts_used": sorted({p.book.labels[int(k)] for k in np.unique(p.schedule.c0)}),
            "funding": funding,
            "basis": None if p.notes.basis is None else dataclasses.asdict(p.notes.basis),
            "impact": p.notes.impact,
        },
        "config": record["config"],
        "inputs": record["inputs"],
        "packages": record["packages"],
        "data": {
            "provenance": provenance.read_text(encoding="utf-8") if provenance.exists() else "",
            "gaps": [
                {
                    "symbol": g.symbol,
                    "n_gaps": g.n_gaps,
                    "missing_bars": g.n_missing_bars,
                    "longest_gap_bars": g.longest_gap_bars,
                    "longest_gap_start": None if g.longest_gap_start is None else g.longest_gap_start.isoformat(),
                }
                for g in p.notes.gaps
            ],
        },
    }


def _intrabar_note(share: float) -> str:
    """What the margin check's index high was, for ``summary.json`` (``share``: the bars with one)."""
    if share > 0:
        return ("upper bound of the intrabar index high on that share of bars: sum of units x constituent highs "
                "(the constituents' highs need not coincide), so margin checked at it overstates margin calls; "
                "at the close on the other bars")
    return ("none: no bar has an intrabar high for every constituent held (no OHLC file, or one without "
            "them), so margin is checked at bar closes")


def _index_weights(index: Any, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """Target weights of the rebalances in effect during the replay (the last one at or before
    ``start`` and every later one up to ``end``): ``ts``, ``symbols`` and one row of weights per
    rebalance (0 = not held), for the report's weights-over-time figure."""
    w = getattr(index, "weights", None)
    if w is None or not len(w):
        return {"ts": [], "symbols": [], "weights": []}
    w = w[w.index <= end]
    before = w.index[w.index <= start]
    if len(before):
        w = w[w.index >= before[-1]]
    w = w.fillna(0.0)
    w = w.loc[:, (w > 0).any(axis=0)]
    return {"ts": [pd.Timestamp(t).isoformat() for t in w.index], "symbols": [str(c) for c in w.columns],
            "weights": [[round(float(x), 6) for x in row] for row in w.to_numpy()]}


def _multi_note(p: Prepared) -> str:
    """The margin model of two-instrument rules, for the scenario description (empty without them)."""
    if not p.legs:
        return ""
    from backtest.multi_run import MARGIN_MODEL

    used = dict.fromkeys(u for rule in p.rules if is_multi(rule) for u in rule.instruments)
    return f" Two-instrument rules short futures on {', '.join(used)}: {MARGIN_MODEL}."


def _describe(config: Config, p: Prepared) -> str:
    coins = ", ".join(p.coins)
    pos = config.position
    if pos.kind == "units":
        held = ", ".join(f"{u:,.0f} {c}" for u, c in zip(pos.units, pos.coins))
    elif pos.kind == "notional":
        held = ", ".join(f"${n:,.0f} of {c}" for n, c in zip(pos.notional_usd, pos.coins))
    else:
        held = f"{coins} per the holdings file"
    fut = config.futures
    on = "index" if fut.underlying == "index" else fut.underlying
    units = "index unit" if fut.contract_size == 1 else "index units"
    leg = (
        f"quarterly index futures (contract = {fut.contract_size:g} {units}, basis "
        f"{'from a series proxy' if fut.basis == 'series' else f'{fut.basis_ann:.1%}/yr'}), "
        f"rolled {config.roll.days_before_expiry} days before expiry"
        if fut.kind == "quarterly" and config.roll.mode == "before_expiry"
        else "quarterly index futures held to expiry"
        if fut.kind == "quarterly"
        else f"an index perpetual with {_funding_words(config.funding)}"
    )
    if on != "index":
        leg = (leg.replace("index futures", f"{on} futures").replace(units, f"{on}")
               .replace("an index perpetual", f"a {on} perpetual"))
    return f"Long {held}; short {leg}; fees {config.fees.trade_bps:g} bps; {_rebalance_words(config.rebalance)}."


def _funding_words(fund: FundingSection) -> str:
    """``[funding]`` in words: "funding from the FET series of <file> (a proxy)", "a constant funding
    rate of 0.01 % every 8 h" or "funding by the premium formula every 8 h"."""
    every = f"every {fund.interval_hours} h"
    if fund.source == "series":
        return f"funding from the {fund.series_symbol} series of {fund.series_file} (a proxy), {every}"
    if fund.source == "constant":
        return f"a constant funding rate of {100 * fund.rate_per_interval:g} % {every}"
    return f"funding by the premium formula (premium + clamped interest) {every}"


def _rebalance_words(reb: RebalanceSection) -> str:
    """``[rebalance]`` in words: "short re-sized every 24 bars" (``every``), "... on any bar where
    the hedge has drifted more than 10 % from its target" (``band``), or both conditions
    (``band_on_schedule``)."""
    bars = plural(reb.every_bars, "bar")
    drift = f"the hedge has drifted more than {100 * reb.band:g} % from its target"
    if reb.mode == "every":
        return f"short re-sized every {bars}"
    if reb.mode == "band":
        return f"short re-sized on any bar where {drift}"
    return f"short re-sized every {bars} when {drift}"


# -- writing ------------------------------------------------------------------------------


def ledger_bytes(ledger: pd.DataFrame) -> bytes:
    """``ledger.parquet``'s bytes (deterministic for the same frame)."""
    buf = io.BytesIO()
    ledger.to_parquet(buf, index=False)
    return buf.getvalue()


class _HashSink(io.RawIOBase):
    """A write-only stream that keeps only the SHA-256 of what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def ledger_sha256(ledger: pd.DataFrame) -> str:
    """SHA-256 of :func:`ledger_bytes` without holding the bytes (streamed into the hash)."""
    sink = _HashSink()
    ledger.to_parquet(sink, index=False)
    release_arrow_memory()
    return sink.digest.hexdigest()


def write_result_files(result: RunResult, folder: Path) -> None:
    """``summary.json`` and ``ledger.parquet`` (deterministic bytes for the same inputs), and
    ``legs.parquet`` when the run has two-instrument rules.

    ``summary.json`` records ``ledger_sha256``, the SHA-256 of ``ledger.parquet``'s bytes, which
    ``hedgebt report`` checks before rendering. :func:`run` already put it there; it is set
    again from the bytes written, so the pair on disk always agrees.
    """
    data = ledger_bytes(result.ledger)
    release_arrow_memory()
    digest = hashlib.sha256(data).hexdigest()
    text = result.summary_json
    summary = json.loads(text)
    if summary.get("ledger_sha256") != digest:
        summary["ledger_sha256"] = digest
        text = json.dumps(summary, indent=2, allow_nan=False)
    write_text(folder / "summary.json", text + "\n")
    write_bytes(folder / "ledger.parquet", data)
    if result._legs is not None:  # two-instrument rules only: every leg's per-bar rows
        write_bytes(folder / "legs.parquet", ledger_bytes(result._legs))
