"""Immutable run results, their metrics, and writing them to an output folder.

:func:`run` simulates every rule of a config and returns a :class:`RunResult`;
:func:`write_outputs` writes ``summary.json``, ``ledger.parquet`` and the
report into a folder atomically (a temporary sibling folder renamed into place
at the end), so an interrupted or failed run leaves nothing half-written.
Reports only read results; nothing here re-simulates.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from backtest import schema
from backtest.config import Config, config_to_dict
from backtest.engine import Prepared, min_safe_collateral, prepare, variant_for
from backtest.metrics import summary_metrics
from backtest.errors import OutputError
from backtest.market import run_variant

__all__ = ["RunResult", "run", "rule_metrics", "write_outputs", "atomic_output_dir", "package_versions", "hedgebt_version"]

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
            f"{index.spec.rebalance} rebalance" + (f", cap {index.spec.max_weight:.0%}" if index.spec.max_weight else "")
            if fut.underlying == "index"
            else f"none: futures on {fut.underlying} (its close is the underlying; [index] constituents ignored)",
            "underlying": fut.underlying,
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
            "underlying": fut.underlying,
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
    on = "index" if fut.underlying == "index" else fut.underlying
    leg = (
        f"quarterly index futures (contract = {fut.contract_size:g} index units, basis {fut.basis_ann:.1%}/yr), "
        f"rolled {config.roll.days_before_expiry} days before expiry"
        if fut.kind == "quarterly" and config.roll.mode == "before_expiry"
        else "quarterly index futures held to expiry"
        if fut.kind == "quarterly"
        else f"an index perpetual with {config.funding.source} funding"
    )
    if on != "index":
        leg = leg.replace("index futures", f"{on} futures").replace("index units", f"{on}").replace("an index perpetual", f"a {on} perpetual")
    return f"Long {held}; short {leg}; fees {config.fees.trade_bps:g} bps, rebalance {config.rebalance.mode} ({config.rebalance.every_bars} bars)."


# -- writing ------------------------------------------------------------------------------


class atomic_output_dir:
    """Context manager: build outputs in a temporary sibling folder, rename into place on success.

    An existing non-empty folder is refused unless ``force``; a path that is a
    file is refused. On error the temporary folder is removed and the target is
    untouched.
    """

    def __init__(self, target: str | Path, *, force: bool = False) -> None:
        self.target = Path(target)
        self.force = force
        self.tmp: Path | None = None

    def check(self) -> None:
        """Refuse an unsafe target now (call before expensive work)."""
        t = self.target
        if t.exists() and not t.is_dir():
            raise OutputError(f"{t}: output path is a file, expected a folder")
        if t.is_dir() and any(t.iterdir()) and not self.force:
            raise OutputError(f"{t}: output folder exists and is not empty; pass --force to replace it")

    def __enter__(self) -> Path:
        t = self.target
        self.check()
        parent = t.resolve().parent
        if not parent.exists():
            try:
                parent.mkdir(parents=True)
            except OSError as exc:
                raise OutputError(f"{parent}: cannot create output folder: {exc.strerror}") from None
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{t.name}.tmp-", dir=parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        os.chmod(self.tmp, 0o755)
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
            os.replace(self.tmp, self.target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.target)


def write_result_files(result: RunResult, folder: Path) -> None:
    """``summary.json`` and ``ledger.parquet`` (deterministic bytes for the same inputs)."""
    (folder / "summary.json").write_text(result.summary_json + "\n", encoding="utf-8")
    result.ledger.to_parquet(folder / "ledger.parquet", index=False)


def write_outputs(
    result: RunResult,
    out_dir: str | Path,
    *,
    force: bool = False,
    render: Callable[[Path], Any] | None = None,
) -> Path:
    """Write a run's files (and its report, via ``render(folder)``) atomically into ``out_dir``."""
    with atomic_output_dir(out_dir, force=force) as tmp:
        write_result_files(result, tmp)
        if render is not None:
            render(tmp)
    return Path(out_dir)
