"""Compare hedge rules at scale: rules x parameters x rebalance policies (x coins x windows).

A ``[compare]`` table in the scenario config describes the grid; lists expand
to their Cartesian product::

    [compare]
    rank_by = "hedge_effectiveness"        # or "he_per_cost", "vol_hedged_ann", "cost_drag_bps_per_year"
    coins = ["FET", "RNDR"]                # optional: one single-coin scenario per coin ...
    notional_usd = 1_000_000               # ... each holding this constant USD notional
    windows = [{start = "2022-01-01", end = "2022-12-31"}]   # optional time windows

    [[compare.rules]]
    family = "min_variance"
    window = [168, 336, 720]

    [[compare.rebalance]]
    mode = "every"
    every_bars = [1, 24, 168]
    whole_contracts = [true]

Every rule is estimated once per scenario (one hedge-ratio column); every
variant then runs in a single call of the parallel many-variant kernel
(:func:`backtest.kernels.simulate_many_nb`) that keeps summaries only. The
scenarios (coin x window) and chunks of variants are independent tasks: they
run in this process, on Dask's local process pool (``--scheduler processes``)
or on a running ``dask.distributed`` cluster (``--scheduler tcp://HOST:PORT``).
Results are identical whichever runs them: the kernel is deterministic and
variants do not interact.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from backtest import kernels as K
from backtest.config import (
    Config,
    PositionSection,
    RebalanceSection,
    RuleSpec,
    ScenarioSection,
    check_rule_params,
    coerce_fields,
    config_to_dict,
    input_paths,
    load_config,
)
from backtest.engine import Prepared, prepare, variant_for
from backtest.errors import ConfigError, HedgeBTError
from backtest.market import Market, pack_variants
from backtest.atomic import OutputDir, write_bytes, write_text
from backtest.metrics import fmt, summary_metrics
from backtest.results import hedgebt_version, package_versions

__all__ = ["CompareSpec", "parse_compare", "run_compare", "run_compare_command", "RANK_BY"]

RankBy = Literal["hedge_effectiveness", "he_per_cost", "vol_hedged_ann", "cost_drag_bps_per_year"]
RANK_BY: tuple[str, ...] = ("hedge_effectiveness", "he_per_cost", "vol_hedged_ann", "cost_drag_bps_per_year")
_REBALANCE_KEYS = ("mode", "every_bars", "band", "whole_contracts", "min_trade_contracts")


@dataclass(frozen=True)
class CompareSpec:
    """The expanded grid."""

    rules: tuple[RuleSpec, ...]
    rebalances: tuple[RebalanceSection, ...]
    coins: tuple[str, ...]
    notional_usd: float
    windows: tuple[tuple[str | None, str | None], ...]
    rank_by: RankBy
    chunk: int


def _expand(table: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    if not isinstance(table, Mapping):
        raise ConfigError(key, f"expected a table, got {table!r}")
    names = list(table)
    values = [v if isinstance(v, list) else [v] for v in table.values()]
    for name, vals in zip(names, values):
        if not vals:
            raise ConfigError(f"{key}.{name}", "an empty list expands to no variant")
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def parse_compare(config: Config) -> CompareSpec:
    """Validate and expand the config's ``[compare]`` table.

    Raises
    ------
    ConfigError
        Naming ``compare.<key>`` for an unknown key, a bad value or an empty grid.
    """
    raw = dict(config.compare or {})
    if not raw:
        raise ConfigError("compare", "the config has no [compare] table; see the README for its keys")
    known = {"rules", "rebalance", "coins", "notional_usd", "windows", "rank_by", "chunk"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"compare.{unknown[0]}", f"unknown key; known keys: {', '.join(sorted(known))}")
    from strategies.rules import make_rule

    rules: list[RuleSpec] = []
    for i, table in enumerate(raw.get("rules", [])):
        key = f"compare.rules[{i}]"
        for combo in _expand(table, key):
            family = combo.pop("family", None)
            if not isinstance(family, str):
                raise ConfigError(f"{key}.family", "required: the rule family")
            check_rule_params(family, combo, key)
            try:
                make_rule(family, **combo)
            except ConfigError as exc:
                raise ConfigError(f"{key}.{exc.key.rsplit('.', 1)[-1]}", str(exc).split(": ", 1)[-1]) from None
            rules.append(RuleSpec(family, tuple(sorted(combo.items()))))
    if not rules:
        raise ConfigError("compare.rules", "expected at least one [[compare.rules]] table")
    rebalances: list[RebalanceSection] = []
    for i, table in enumerate(raw.get("rebalance", [{}])):
        key = f"compare.rebalance[{i}]"
        for combo in _expand(table, key):
            bad = sorted(set(combo) - set(_REBALANCE_KEYS))
            if bad:
                raise ConfigError(f"{key}.{bad[0]}", f"unknown key; known: {', '.join(_REBALANCE_KEYS)}")
            try:
                rebalances.append(replace(config.rebalance, **coerce_fields(RebalanceSection, combo, key)))
            except ConfigError as exc:
                raise ConfigError(key, str(exc).split(": ", 1)[-1]) from None
            except TypeError as exc:
                raise ConfigError(key, str(exc)) from None
    coins = raw.get("coins", [])
    if not isinstance(coins, list) or not all(isinstance(c, str) for c in coins):
        raise ConfigError("compare.coins", f"expected a list of symbols, got {coins!r}")
    notional = raw.get("notional_usd", 1_000_000.0)
    if not isinstance(notional, (int, float)) or isinstance(notional, bool) or notional <= 0:
        raise ConfigError("compare.notional_usd", f"expected a positive USD amount, got {notional!r}")
    windows: list[tuple[str | None, str | None]] = []
    for i, w in enumerate(raw.get("windows", [])):
        if not isinstance(w, Mapping) or set(w) - {"start", "end"}:
            raise ConfigError(f"compare.windows[{i}]", f"expected a table with start and end, got {w!r}")
        try:
            ScenarioSection(start=w.get("start"), end=w.get("end"))
        except ConfigError as exc:
            raise ConfigError(f"compare.windows[{i}]", str(exc).split(": ", 1)[-1]) from None
        windows.append((w.get("start"), w.get("end")))
    rank_by = raw.get("rank_by", "hedge_effectiveness")
    if rank_by not in RANK_BY:
        raise ConfigError("compare.rank_by", f"expected one of {', '.join(RANK_BY)}, got {rank_by!r}")
    chunk = raw.get("chunk", 256)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ConfigError("compare.chunk", f"expected a positive integer, got {chunk!r}")
    return CompareSpec(tuple(rules), tuple(rebalances), tuple(coins), float(notional), tuple(windows), rank_by, chunk)


def _rebalance_label(r: RebalanceSection) -> str:
    if r.mode == "every":
        core = f"every {r.every_bars} bars"
    elif r.mode == "band":
        core = f"band {r.band:.0%}"
    else:
        core = f"every {r.every_bars} bars if drift > {r.band:.0%}"
    size = "whole" if r.whole_contracts else "fractional"
    extra = f", min {r.min_trade_contracts:g}" if r.min_trade_contracts else ""
    return f"{core}, {size}{extra}"


@dataclass(frozen=True, eq=False)
class _Scenario:
    coin: str
    window: str
    config: Config
    prepared: Prepared


def _scenarios(config: Config, spec: CompareSpec) -> list[_Scenario]:
    base = replace(config, rules=spec.rules)
    coin_sets = [(c,) for c in spec.coins] or [config.position.coins]
    windows = list(spec.windows) or [(config.scenario.start, config.scenario.end)]
    out = []
    for coins in coin_sets:
        cfg = base
        if spec.coins:
            cfg = replace(cfg, position=PositionSection(coins=coins, kind="notional", notional_usd=(spec.notional_usd,), units=()))
        for start, end in windows:
            scen = replace(cfg, scenario=replace(cfg.scenario, start=start, end=end))
            label = f"{start or 'start'}..{end or 'end'}"
            out.append(_Scenario("+".join(coins), label, scen, prepare(scen)))
    return out


def _simulate_chunk(market: Market, fps: np.ndarray, ips: np.ndarray) -> np.ndarray:
    return K.simulate_many_nb(*market.kernel_args(), fps, ips)


def check_scheduler(scheduler: str) -> None:
    """``none``, ``processes`` or ``tcp://HOST:PORT`` (port 1..65535), else a one-line ConfigError."""
    import urllib.parse

    if scheduler in ("none", "processes"):
        return
    expected = "expected 'none', 'processes' or tcp://HOST:PORT"
    if scheduler.startswith("tls://"):
        raise ConfigError("--scheduler", f"tls:// schedulers need TLS certificates, which hedgebt does not configure; {expected}")
    if not scheduler.startswith("tcp://"):
        raise ConfigError("--scheduler", f"{expected}, got {scheduler!r}")
    try:
        parts = urllib.parse.urlsplit(scheduler)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("--scheduler", f"{expected}, got {scheduler!r} ({exc})") from None
    if not parts.hostname or port is None or not 1 <= port <= 65535 or parts.path not in ("", "/"):
        raise ConfigError("--scheduler", f"{expected} with a host and a port 1..65535, got {scheduler!r}")


def _run_tasks(tasks: list[tuple[Market, np.ndarray, np.ndarray]], scheduler: str, progress: bool) -> list[np.ndarray]:
    check_scheduler(scheduler)
    try:
        return _dispatch(tasks, scheduler, progress)
    except HedgeBTError:
        raise
    except Exception as exc:  # noqa: BLE001 - worker deaths surface as many library types
        name = type(exc).__name__
        if name in ("BrokenProcessPool", "FutureCancelledError", "CancelledError", "KilledWorker", "CommClosedError"):
            raise HedgeBTError(f"the {scheduler} scheduler lost its workers ({name}); no output was written") from None
        raise


def _dispatch(tasks: list[tuple[Market, np.ndarray, np.ndarray]], scheduler: str, progress: bool) -> list[np.ndarray]:
    if scheduler == "none":
        from tqdm import tqdm

        return [_simulate_chunk(*t) for t in tqdm(tasks, desc="variants", unit="chunk", disable=not progress or len(tasks) < 2)]
    try:
        import dask
    except ImportError:  # pragma: no cover - dask is a dependency
        raise HedgeBTError("--scheduler needs dask: pip install 'dask[distributed]'") from None
    if scheduler == "processes":
        delayed = [dask.delayed(_simulate_chunk)(*t) for t in tasks]
        return list(dask.compute(*delayed, scheduler="processes"))
    if scheduler.startswith("tcp://") or scheduler.startswith("tls://"):
        from distributed import Client

        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise HedgeBTError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            markets = {id(t[0]): t[0] for t in tasks}
            remote = {key: client.scatter(m, broadcast=False) for key, m in markets.items()}
            futures = [client.submit(_simulate_chunk, remote[id(m)], f, i, pure=False) for m, f, i in tasks]
            return client.gather(futures)
        finally:
            client.close()
    raise ConfigError("--scheduler", f"expected 'none', 'processes' or tcp://HOST:PORT, got {scheduler!r}")


def run_compare(config: Config, *, scheduler: str = "none", progress: bool = False) -> pd.DataFrame:
    """Run the grid; one row per (scenario, rule, rebalance policy), ranked within each scenario.

    Columns: ``coin``, ``window``, ``variant``, ``family``, ``rule``, ``params``,
    ``rebalance``, the metrics of :data:`backtest.schema.RULE_METRICS`, ``pnl_*``
    components and ``rank`` (1 = best by ``compare.rank_by``).
    """
    spec = parse_compare(config)
    scenarios = _scenarios(config, spec)
    tasks: list[tuple[Market, np.ndarray, np.ndarray]] = []
    meta: list[tuple[_Scenario, list[tuple[int, RebalanceSection]]]] = []
    for scen in scenarios:
        combos = [(col, reb) for col in range(len(spec.rules)) for reb in spec.rebalances]
        variants = [variant_for(replace(scen.config, rebalance=reb), col) for col, reb in combos]
        fps, ips = pack_variants(variants)
        for lo in range(0, len(variants), spec.chunk):
            tasks.append((scen.prepared.market, fps[lo : lo + spec.chunk], ips[lo : lo + spec.chunk]))
        meta.append((scen, combos))
    summaries = np.concatenate(_run_tasks(tasks, scheduler, progress), axis=0)

    rows = []
    i = 0
    for scen, combos in meta:
        p = scen.prepared
        oracle = p.notes.oracle_r2
        for col, reb in combos:
            s = dict(zip(K.SUM, summaries[i].tolist()))
            i += 1
            m = summary_metrics(s, n_bars=len(p.ts), bar=p.bar, oracle=oracle)
            pnl = m.pop("pnl")
            rule = p.rules[col]
            rows.append({
                "coin": scen.coin,
                "window": scen.window,
                "variant": f"{p.rule_labels[col]} | {_rebalance_label(reb)}",
                "family": rule.family,
                "rule": p.rule_labels[col],
                "params": json.dumps(dict(spec.rules[col].params), sort_keys=True),
                "rebalance": _rebalance_label(reb),
                **m,
                **{f"pnl_{k}": v for k, v in pnl.items()},
            })
    table = pd.DataFrame(rows)
    table["he_per_cost"] = table["hedge_effectiveness"] / table["cost_drag_bps_per_year"].clip(lower=1e-9)
    ascending = spec.rank_by in ("vol_hedged_ann", "cost_drag_bps_per_year")
    table["rank"] = (
        table.groupby(["coin", "window"], sort=False)[spec.rank_by]
        .rank(ascending=ascending, method="first", na_option="bottom")
        .astype(int)
    )
    return table.sort_values(["coin", "window", "rank"], kind="stable").reset_index(drop=True)


def write_compare_tables(table: pd.DataFrame, folder: Path, info: dict[str, Any]) -> None:
    """``compare.csv`` (fixed float format, byte-deterministic), ``compare.parquet`` and ``compare.json``."""
    write_text(folder / "compare.csv", table.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    write_bytes(folder / "compare.parquet", buf.getvalue())
    write_text(folder / "compare.json", json.dumps(info, indent=2, allow_nan=False) + "\n")


def run_compare_command(args: argparse.Namespace) -> int:
    """``hedgebt compare CONFIG --out DIR [--scheduler ...]``."""
    check_scheduler(args.scheduler)
    claim = OutputDir(args.out, force=args.force, protect=[args.config])
    claim.check()
    config = load_config(args.config)
    claim.protect(input_paths(config))
    table = run_compare(config, scheduler=args.scheduler, progress=sys.stderr.isatty())
    spec = parse_compare(config)
    info = {
        "hedgebt_version": hedgebt_version(),
        "rank_by": spec.rank_by,
        "variants": int(len(table)),
        "scenarios": sorted({f"{c} {w}" for c, w in zip(table["coin"], table["window"])}),
        "oracle_r2": {f"{c} {w}": float(o) for (c, w), o in table.groupby(["coin", "window"])["oracle_r2"].first().items()},
        "config": config_to_dict(config),
        "packages": package_versions(),
    }
    out = Path(args.out)
    with claim as tmp:
        write_compare_tables(table, tmp, info)
        if not args.no_report:
            from reports import render_compare

            render_compare(tmp)
    best = table[table["rank"] == 1]
    print(f"{len(table)} variants ranked by {spec.rank_by}; oracle rho^2 shown for context")
    for r in best.itertuples():
        print(f"  best for {r.coin} {r.window}: {r.variant}  HE {fmt(r.hedge_effectiveness, '.3f')} "
              f"(oracle {fmt(r.oracle_r2, '.3f')}), cost {fmt(r.cost_drag_bps_per_year, '.0f')} bps/yr")
    print(f"  wrote {out}/compare.csv, compare.parquet")
    return 0
