"""Immutable run results, their metrics, and writing them to an output folder.

:func:`run` simulates every rule of a config and returns a :class:`RunResult`;
:func:`write_outputs` writes ``summary.json``, ``ledger.parquet`` and the
report into a folder atomically (a temporary sibling folder renamed into place
at the end), so an interrupted or failed run leaves nothing half-written.
Reports only read results; nothing here re-simulates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from backtest import schema
from backtest.config import Config, config_to_dict
from backtest.engine import Prepared, min_safe_collateral, prepare, variant_for
from backtest.metrics import summary_metrics
from backtest.atomic import OutputDir, write_bytes, write_text
from backtest.market import run_variant

#: the output-folder claim (kept under its old name; see :mod:`backtest.atomic`)
atomic_output_dir = OutputDir

__all__ = ["RunResult", "run", "rule_metrics", "write_outputs", "atomic_output_dir", "ledger_bytes", "package_versions", "hedgebt_version"]

_PACKAGES = ("hedgebt", "numpy", "pandas", "numba", "pyarrow", "matplotlib", "vectorbt")


def hedgebt_version() -> str:
    try:
        return importlib.metadata.version("hedgebt")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results (read from metadata, no imports)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(frozen=True, eq=False)
class RunResult:
    """The outcome of one scenario run (read-only).

    ``ledger`` and ``summary`` return fresh copies, so callers cannot change the
    result they were given.
    """

    _ledger: pd.DataFrame
    _summary_json: str
    config: Config

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


def rule_metrics(rows: dict[str, np.ndarray], summary: dict[str, float], *, bar: pd.Timedelta, oracle: float) -> dict[str, Any]:
    """Per-rule figures of ``summary.json``: :func:`backtest.metrics.summary_metrics` plus
    the mean held hedge ratio from the per-bar rows."""
    out = summary_metrics(summary, n_bars=len(rows["equity_hedged"]), bar=bar, oracle=oracle)
    out["mean_hedge_ratio_held"] = float(np.mean(rows["hedge_ratio_held"]))
    return out


#: why a metric can come out undefined (written next to its ``null`` in ``summary.json``)
FLAT_COIN_REASON = "unhedged variance is zero: the coin's price never moved"


def undefined_reasons(metrics: dict[str, Any], summ: dict[str, float]) -> dict[str, str]:
    """``{metric: reason}`` for every per-rule figure that is not a finite number.

    The variance-based figures (HE, volatilities, HE / oracle) are undefined with fewer than two
    returns or a zero unhedged variance (a coin whose price never moved); ratios with a zero or
    undefined denominator are undefined; anything else non-finite overflowed.
    """
    n, m2_u = summ["n_ret"], summ["m2_u"]
    if n < 2:
        variance = f"fewer than two bar returns ({int(n)})"
    elif not m2_u > 0:
        variance = FLAT_COIN_REASON
    else:
        variance = None
    out: dict[str, str] = {}
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
        else:
            out[key] = "not a finite number (zero denominator or overflow)"
    return out


def _ledger_block(prepared: Prepared, label: str, rows: dict[str, np.ndarray]) -> pd.DataFrame:
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
        "fut_price": prepared.market.px[np.arange(T), primary],
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
    return pd.DataFrame(data, columns=list(schema.LEDGER_COLUMNS))


def run(config: Config, *, prepared: Prepared | None = None) -> RunResult:
    """Simulate every rule of ``config``; return the immutable result."""
    prepared = prepared if prepared is not None else prepare(config)
    oracle = prepared.notes.oracle_r2
    blocks = []
    rules_out: dict[str, Any] = {}
    for col, (rule, label) in enumerate(zip(prepared.rules, prepared.rule_labels)):
        variant = variant_for(config, col)
        rows, summ = run_variant(prepared.market, variant)
        if summ["margin_calls"] or summ["liquidations"] or summ["margin_capped"]:
            # with margin events the path depends on the collateral; measure on a free path
            summ = {**summ, "margin_need": min_safe_collateral(prepared, variant)}
        metrics = rule_metrics(rows, summ, bar=prepared.bar, oracle=oracle)
        undefined = undefined_reasons(metrics, summ)
        if undefined:
            metrics["undefined"] = undefined
        metrics["family"] = rule.family
        metrics["warmup_bars"] = int(rule.warmup_bars())
        rules_out[label] = metrics
        blocks.append(_ledger_block(prepared, label, rows))
    ledger = pd.concat(blocks, ignore_index=True)
    summary = _summary(config, prepared, rules_out)
    return RunResult(ledger, json.dumps(_clean(summary), indent=2, allow_nan=False), config)


def _summary(config: Config, p: Prepared, rules_out: dict[str, Any]) -> dict[str, Any]:
    from backtest.config import BUNDLED_DATA

    provenance = BUNDLED_DATA / "PROVENANCE.md"
    funding = None if p.notes.funding is None else dataclasses.asdict(p.notes.funding)
    fut = config.futures
    index = p.index
    return {
        "hedgebt_version": hedgebt_version(),
        "scenario": {
            "name": config.scenario.name,
            "coins": list(p.coins),
            "index": f"{index.spec.weighting}-weighted AI index of {len(index.spec.constituents)} tokens, "
            f"{index.spec.rebalance} rebalance" + (f", cap {index.spec.max_weight:.0%}" if index.spec.max_weight else ""),
            "futures_kind": fut.kind,
            "funding_source": None if funding is None else funding["source"],
            "funding_is_proxy": bool(funding and funding["is_proxy"]),
            "description": _describe(config, p),
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
                {"ts": pd.Timestamp(r.ts).isoformat(), "symbol": r.symbol, "event": r.event, "reason": r.reason}
                for r in index.events.itertuples()
            ],
            "intrabar_high_share": p.notes.intrabar_high_share,
        },
        "futures": {
            "kind": fut.kind,
            "source": p.book.source,
            "contract_size": fut.contract_size,
            "contracts_used": sorted({p.book.labels[int(k)] for k in np.unique(p.schedule.c0)}),
            "funding": funding,
            "impact": p.notes.impact,
        },
        "config": config_to_dict(config),
        "inputs": [{"role": f.role, "path": Path(f.path).name, "sha256": f.sha256} for f in p.inputs],
        "packages": package_versions(),
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
    leg = (
        f"quarterly index futures (contract = {fut.contract_size:g} index units, basis {fut.basis_ann:.1%}/yr), "
        f"rolled {config.roll.days_before_expiry} days before expiry"
        if fut.kind == "quarterly" and config.roll.mode == "before_expiry"
        else "quarterly index futures held to expiry"
        if fut.kind == "quarterly"
        else f"an index perpetual with {config.funding.source} funding"
    )
    return f"Long {held}; short {leg}; fees {config.fees.trade_bps:g} bps, rebalance {config.rebalance.mode} ({config.rebalance.every_bars} bars)."


# -- writing ------------------------------------------------------------------------------


def ledger_bytes(ledger: pd.DataFrame) -> bytes:
    """``ledger.parquet``'s bytes (deterministic for the same frame)."""
    buf = io.BytesIO()
    ledger.to_parquet(buf, index=False)
    return buf.getvalue()


def write_result_files(result: RunResult, folder: Path) -> None:
    """``summary.json`` and ``ledger.parquet`` (deterministic bytes for the same inputs).

    ``summary.json`` gains ``ledger_sha256``, the SHA-256 of ``ledger.parquet``'s bytes, which
    ``hedgebt report`` checks before rendering.
    """
    data = ledger_bytes(result.ledger)
    summary = json.loads(result.summary_json)
    summary["ledger_sha256"] = hashlib.sha256(data).hexdigest()
    write_text(folder / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    write_bytes(folder / "ledger.parquet", data)


def write_outputs(
    result: RunResult,
    out_dir: str | Path | OutputDir,
    *,
    force: bool = False,
    render: Callable[[Path], Any] | None = None,
) -> Path:
    """Write a run's files (and its report, via ``render(folder)``) atomically into ``out_dir``.

    ``out_dir`` may be an :class:`~backtest.atomic.OutputDir` already checked at the start of
    the run (so a folder appearing meanwhile is detected); a path is checked now.
    """
    claim = out_dir if isinstance(out_dir, OutputDir) else OutputDir(out_dir, force=force)
    with claim as tmp:
        write_result_files(result, tmp)
        if render is not None:
            render(tmp)
    return claim.target
