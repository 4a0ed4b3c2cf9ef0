"""Compare hedge rules at scale: rules x parameters x rebalance policies (x coins x windows).

A ``[compare]`` table in the scenario config describes the grid; lists expand
to their Cartesian product::

    [compare]
    rank_by = "hedge_effectiveness"        # per-bar HE; or "he_headline" (HE at [report] horizon),
                                           # "he_per_cost", "vol_hedged_ann", "cost_drag_bps_per_year"
    coins = ["FET", "RNDR"]                # optional: one single-coin scenario per coin ...
    notional_usd = 1_000_000               # ... each holding this constant USD notional,
    reset_days = 30                        # ... reset to it every 30 days (the same schedule for every variant)
    windows = [{start = "2022-01-01", end = "2022-12-31"}]   # optional time windows
    underlyings = ["index", "BTC", "ETH"]  # optional: futures underlying axis (futures.underlying)

    [[compare.rules]]
    family = "min_variance"
    window = [168, 336, 720]

    [[compare.rebalance]]
    mode = "every"
    every_bars = [1, 24, 168]
    whole_contracts = [true]

In coins mode the holding is reset to ``notional_usd`` on one schedule, every
``reset_days`` days from the first bar, identical across variants; a reset re-sizes
the hedge in every variant (the holding changed), and between resets each variant
trades by its own rebalance policy only, so policies change trades.

``min_safe_collateral`` is computed per variant exactly as ``run`` does
(:func:`backtest.engine.min_safe_collaterals`: bisection on the margin-on replay with
reserve 0), all variants of a scenario in each bisection step in one kernel call.

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

import io
import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal, Mapping, Sequence

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
    config_events,
)
from backtest.engine import (InputFile, Prepared, events_input, min_safe_collaterals, prepare, result_record,
                             variant_for)
from backtest.errors import ConfigError, HedgeBTError
from backtest.atomic import write_bytes, write_text
from backtest.market import Market, Variant, pack_variants, run_variant
from backtest.metrics import horizon_bars, horizon_returns, plural, summary_metrics
from backtest.windows import Event

__all__ = ["CompareSpec", "GridRun", "parse_compare", "run_compare", "run_compare_full", "walk_forward",
           "compare_info", "instrument_choice", "write_compare_tables", "write_instrument_tables", "RANK_BY",
           "BOOTSTRAP_SEED"]

#: Seed of the per-variant HE intervals (the report's seed, so run and compare agree).
BOOTSTRAP_SEED: Final[int] = 20250127

RankBy = Literal["hedge_effectiveness", "he_headline", "he_per_cost", "vol_hedged_ann", "cost_drag_bps_per_year"]
RANK_BY: tuple[str, ...] = ("hedge_effectiveness", "he_headline", "he_per_cost", "vol_hedged_ann", "cost_drag_bps_per_year")
_REBALANCE_KEYS = ("mode", "every_bars", "band", "whole_contracts", "min_trade_contracts")


@dataclass(frozen=True)
class CompareSpec:
    """The expanded grid."""

    rules: tuple[RuleSpec, ...]
    rebalances: tuple[RebalanceSection, ...]
    coins: tuple[str, ...]
    notional_usd: float
    reset_days: float
    windows: tuple[tuple[str | None, str | None], ...]
    rank_by: RankBy
    chunk: int
    underlyings: tuple[str, ...] = ()


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
    known = {"rules", "rebalance", "coins", "notional_usd", "reset_days", "windows", "rank_by", "chunk", "underlyings"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"compare.{unknown[0]}", f"unknown key; known keys: {', '.join(sorted(known))}")
    from strategies.rules import make_rule

    rules: list[RuleSpec] = []
    rule_keys: dict[str, str] = {}  # label -> the key that gave it (each variant's name must be unique)
    for i, table in enumerate(raw.get("rules", [])):
        key = f"compare.rules[{i}]"
        if isinstance(table, Mapping) and table.get("family") == "multi_min_variance":
            raise ConfigError(f"{key}.family", "'multi_min_variance' is not available in `hedgebt compare` (the grid "
                                               "replays one futures position per variant); run it with `hedgebt run`")
        for combo in _expand(table, key):
            family = combo.pop("family", None)
            if not isinstance(family, str):
                raise ConfigError(f"{key}.family", "required: the rule family")
            check_rule_params(family, combo, key)
            try:
                make_rule(family, **combo)
            except ConfigError as exc:
                raise ConfigError(f"{key}.{exc.key.rsplit('.', 1)[-1]}", str(exc).split(": ", 1)[-1]) from None
            _once(rule_keys, make_rule(family, **combo).name, key, "rule")
            rules.append(RuleSpec(family, tuple(sorted(combo.items()))))
    if not rules:
        raise ConfigError("compare.rules", "expected at least one [[compare.rules]] table")
    rebalances: list[RebalanceSection] = []
    policy_keys: dict[str, str] = {}
    for i, table in enumerate(raw.get("rebalance", [{}])):
        key = f"compare.rebalance[{i}]"
        for combo in _expand(table, key):
            bad = sorted(set(combo) - set(_REBALANCE_KEYS))
            if bad:
                raise ConfigError(f"{key}.{bad[0]}", f"unknown key; known: {', '.join(_REBALANCE_KEYS)}")
            try:
                reb = replace(config.rebalance, **coerce_fields(RebalanceSection, combo, key))
            except ConfigError as exc:
                raise ConfigError(key, str(exc).split(": ", 1)[-1]) from None
            except TypeError as exc:
                raise ConfigError(key, str(exc)) from None
            _once(policy_keys, _rebalance_label(reb), key, "rebalance policy")
            rebalances.append(reb)
    if not rebalances:  # an empty list; leaving the key out means the scenario's own policy
        raise ConfigError("compare.rebalance", "expected at least one [[compare.rebalance]] table (or none of the "
                                               "key, for the scenario's [rebalance])")
    coins = raw.get("coins", [])
    if not isinstance(coins, list) or not all(isinstance(c, str) for c in coins):
        raise ConfigError("compare.coins", f"expected a list of symbols, got {coins!r}")
    notional = raw.get("notional_usd", 1_000_000.0)
    if not isinstance(notional, (int, float)) or isinstance(notional, bool) or notional <= 0:
        raise ConfigError("compare.notional_usd", f"expected a positive USD amount, got {notional!r}")
    reset_days = raw.get("reset_days", 30.0)
    if not isinstance(reset_days, (int, float)) or isinstance(reset_days, bool) or not reset_days > 0:
        raise ConfigError("compare.reset_days", f"expected a positive number of days, got {reset_days!r}")
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
    underlyings = raw.get("underlyings", [])
    if not isinstance(underlyings, list) or not all(isinstance(u, str) for u in underlyings):
        raise ConfigError("compare.underlyings", f"expected a list like ['index', 'BTC', 'ETH'], got {underlyings!r}")
    if len(set(underlyings)) != len(underlyings):
        raise ConfigError("compare.underlyings", f"duplicate entries in {underlyings}")
    for i, u in enumerate(underlyings):
        try:
            replace(config.futures, underlying=u)
        except ConfigError as exc:
            raise ConfigError(f"compare.underlyings[{i}]", str(exc).split(": ", 1)[-1]) from None
    return CompareSpec(tuple(rules), tuple(rebalances), tuple(coins), float(notional), float(reset_days),
                       tuple(windows), rank_by, chunk, tuple(underlyings))


def _once(seen: dict[str, str], label: str, key: str, what: str) -> None:
    """Record that ``key`` gave the variant name part ``label``; a second key giving it is a
    :class:`ConfigError` (two variants of one name could not be told apart)."""
    if label in seen:
        where = "twice" if seen[label] == key else f"that {seen[label]} gives already"
        raise ConfigError(key, f"gives the {what} '{label}' {where}; list each {what} once")
    seen[label] = key


def _rebalance_label(r: RebalanceSection) -> str:
    """The policy in a variant's name: "every 24 bars", "band 2.5%", "every 24 bars if drift >
    10%", then "whole" or "fractional" and the minimum trade. Two policies that trade differently
    never share a label (the band to six significant digits; :func:`parse_compare` refuses two
    policies of one label)."""
    bars = plural(r.every_bars, "bar")
    band = f"{100 * r.band:g}%"
    if r.mode == "every":
        core = f"every {bars}"
    elif r.mode == "band":
        core = f"band {band}"
    else:
        core = f"every {bars} if drift > {band}"
    size = "whole" if r.whole_contracts else "fractional"
    extra = f", min {r.min_trade_contracts:g}" if r.min_trade_contracts else ""
    return f"{core}, {size}{extra}"


@dataclass(frozen=True, eq=False)
class _Scenario:
    coin: str
    window: str
    config: Config
    prepared: Prepared
    underlying: str = "index"


def _scenarios(config: Config, spec: CompareSpec) -> list[_Scenario]:
    base = replace(config, rules=spec.rules)
    coin_sets = [(c,) for c in spec.coins] or [config.position.coins]
    windows = list(spec.windows) or [(config.scenario.start, config.scenario.end)]
    out = []
    for coins in coin_sets:
        cfg = base
        if spec.coins:
            # the notional holding resets every rebalance.every_bars of the prepared config: set it to
            # the reset schedule (variants take their own rebalance section in run_compare)
            reset_bars = max(1, round(spec.reset_days * (pd.Timedelta(days=1) / pd.Timedelta(config.scenario.bar))))
            cfg = replace(cfg, position=PositionSection(coins=coins, kind="notional", notional_usd=(spec.notional_usd,), units=()),
                          rebalance=replace(cfg.rebalance, every_bars=reset_bars))
        for w, (start, end) in enumerate(windows):
            label = None
            for under in spec.underlyings or (config.futures.underlying,):
                scen = replace(cfg, scenario=replace(cfg.scenario, start=start, end=end),
                               futures=replace(cfg.futures, underlying=under))
                try:
                    prepared = prepare(scen)
                except ConfigError as exc:
                    if not spec.windows or not exc.key.startswith("scenario."):
                        raise
                    # the window is the grid's, not [scenario]'s: name the key the user wrote
                    raise ConfigError(f"compare.windows[{w}]", exc.problem) from None
                if label is None:  # the window as asked, open ends shown as the replay's first / last day
                    label = f"{start or f'{prepared.ts[0]:%Y-%m-%d}'}..{end or f'{prepared.ts[-1]:%Y-%m-%d}'}"
                out.append(_Scenario("+".join(coins), label, scen, prepared, under))
    return out


def _simulate_chunk(market: Market, fps: np.ndarray, ips: np.ndarray) -> np.ndarray:
    return K.simulate_many_nb(*market.kernel_args(), fps, ips)


def check_scheduler(scheduler: str) -> None:
    """``none``, ``processes`` or ``tcp://HOST:PORT`` (port 1..65535), else a one-line ConfigError."""
    import urllib.parse

    expected = "expected 'none', 'processes' or tcp://HOST:PORT"
    if not isinstance(scheduler, str):
        raise ConfigError("--scheduler", f"{expected}, got {scheduler!r}")
    if scheduler in ("none", "processes"):
        return
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


@dataclass(frozen=True, eq=False)
class GridRun:
    """The ranked grid and the out-of-sample walk-forward check (see :func:`walk_forward`);
    :class:`backtest.api.CompareResult` is its user-facing form."""

    table: pd.DataFrame
    walk_forward: pd.DataFrame
    #: every file the grid's scenarios read (the bundled event library last), for ``compare.json``
    inputs: tuple[InputFile, ...]


#: Fewest spans of the headline horizon in a walk-forward training span or test fold.
MIN_FOLD_SPANS: Final[int] = 10
#: Columns of the walk-forward table.
WALK_FORWARD_COLUMNS: Final[tuple[str, ...]] = (
    "coin", "window", "underlying", "horizon", "fold", "train_start", "train_end", "chosen", "he_train", "he_oos",
    "in_sample_best", "in_sample_best_he_oos", "fold_best", "fold_best_he",
)


def _span_paths(market: Market, variants: list[Variant], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hedged returns over spans of ``n`` bars per variant (rows) and the unhedged ones (shared)."""
    r_h = []
    r_u = np.zeros(0)
    for v in variants:
        rows, _ = run_variant(market, v)
        eq_h, eq_u = rows["equity_hedged"], rows["equity_unhedged"]
        h, r_u = horizon_returns(np.diff(eq_h, prepend=eq_h[0]), np.diff(eq_u, prepend=eq_u[0]), market.alt_value, n)
        r_h.append(h)
    return np.array(r_h), r_u


def _he_rows(r_h: np.ndarray, r_u: np.ndarray) -> np.ndarray:
    """HE of each row of ``r_h`` against ``r_u`` (NaN with fewer than 2 spans)."""
    if r_u.size < 2 or np.var(r_u) == 0:
        return np.full(r_h.shape[0], np.nan)
    return 1.0 - np.var(r_h, axis=1, ddof=1) / np.var(r_u, ddof=1)


def walk_forward(r_h: np.ndarray, r_u: np.ndarray, years: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Out-of-sample check of picking the variant with the best HE.

    Folds are calendar years (UTC) of the spans' start times. For each fold after the first,
    the training span is every earlier span (expanding); the variant with the highest HE on
    it is "chosen" and scored on the fold. Beside it: the variant with the best HE on the whole
    sample (picked with hindsight by the same HE; the table's rank 1 when ``rank_by`` is the
    headline HE, not necessarily otherwise) scored on the same fold, and the best HE any
    variant reached on the fold. Folds or training spans with fewer than
    :data:`MIN_FOLD_SPANS` spans are skipped.
    """
    full = _he_rows(r_h, r_u)
    best_all = int(np.nanargmax(full)) if np.isfinite(full).any() else None
    out = []
    folds = sorted(set(years.tolist()))
    for fold in folds[1:]:
        train = years < fold
        test = years == fold
        if train.sum() < MIN_FOLD_SPANS or test.sum() < MIN_FOLD_SPANS:
            continue
        he_train = _he_rows(r_h[:, train], r_u[train])
        he_test = _he_rows(r_h[:, test], r_u[test])
        if not np.isfinite(he_train).any() or not np.isfinite(he_test).any() or best_all is None:
            continue
        chosen = int(np.nanargmax(he_train))
        top = int(np.nanargmax(he_test))
        out.append({
            "fold": int(fold), "train_start": int(min(folds)), "train_end": int(fold) - 1,
            "chosen": names[chosen], "he_train": float(he_train[chosen]), "he_oos": float(he_test[chosen]),
            "in_sample_best": names[best_all], "in_sample_best_he_oos": float(he_test[best_all]),
            "fold_best": names[top], "fold_best_he": float(he_test[top]),
        })
    return out


def run_compare(config: Config, *, scheduler: str = "none", progress: bool = False) -> pd.DataFrame:
    """The ranked table of :func:`run_compare_full`."""
    return run_compare_full(config, scheduler=scheduler, progress=progress).table


def run_compare_full(config: Config, *, scheduler: str = "none", progress: bool = False) -> GridRun:
    """Run the grid; one row per (scenario, rule, rebalance policy), ranked within each scenario.

    Columns: ``coin``, ``window``, ``underlying`` (the futures underlying; with
    ``compare.underlyings`` it is a grid axis, ranked together with the rules), ``variant``, ``family``, ``rule``, ``params``,
    ``rebalance``, the metrics of :data:`backtest.schema.RULE_METRICS`, ``pnl_*``
    components, ``rank`` (1 = best by ``compare.rank_by``), and at the headline horizon
    (``[report] horizon``) ``he_horizon``, ``he_headline``, the HE interval ``he_ci_lo`` /
    ``he_ci_hi`` (:func:`reports.stats.he_interval`, seed :data:`BOOTSTRAP_SEED`) and its
    ``he_block_len``. The walk-forward table is :func:`walk_forward` per scenario.
    """
    from reports import stats  # pure statistics (a leaf module)

    spec = parse_compare(config)
    scenarios = _scenarios(config, spec)
    tasks: list[tuple[Market, np.ndarray, np.ndarray]] = []
    meta: list[tuple[_Scenario, list[tuple[int, RebalanceSection]]]] = []
    safe: list[np.ndarray] = []
    for scen in scenarios:
        combos = [(col, reb) for col in range(len(spec.rules)) for reb in spec.rebalances]
        variants = [variant_for(replace(scen.config, rebalance=reb), col) for col, reb in combos]
        fps, ips = pack_variants(variants)
        for lo in range(0, len(variants), spec.chunk):
            tasks.append((scen.prepared.market, fps[lo : lo + spec.chunk], ips[lo : lo + spec.chunk]))
        meta.append((scen, combos))
        safe.append(min_safe_collaterals(scen.prepared.market, variants))
    summaries = np.concatenate(_run_tasks(tasks, scheduler, progress), axis=0)
    summaries[:, K.SUM.index("margin_need")] = np.concatenate(safe)

    horizon = config.report.horizon
    rows = []
    folds: list[dict[str, Any]] = []
    i = 0
    for scen, combos in meta:
        p = scen.prepared
        oracle = p.notes.oracle_r2
        n = horizon_bars(horizon, p.bar)
        variants = [variant_for(replace(scen.config, rebalance=reb), col) for col, reb in combos]
        r_h, r_u = _span_paths(p.market, variants, n)
        names = [f"{p.rule_labels[col]} | {_rebalance_label(reb)}" for col, reb in combos]
        years = np.asarray(p.ts[1 : 1 + n * r_u.size : n].year)
        folds += [{"coin": scen.coin, "window": scen.window, "underlying": scen.underlying, "horizon": horizon, **f}
                  for f in walk_forward(r_h, r_u, years, names)]
        for j, (col, reb) in enumerate(combos):
            s = dict(zip(K.SUM, summaries[i].tolist()))
            i += 1
            m = summary_metrics(s, n_bars=len(p.ts), bar=p.bar, oracle=oracle, futures_kind=scen.config.futures.kind)
            ci = stats.he_interval(r_h[j], r_u, seed=BOOTSTRAP_SEED)
            pnl = m.pop("pnl")
            rule = p.rules[col]
            on = f"{scen.underlying} | " if spec.underlyings else ""
            rows.append({
                "coin": scen.coin,
                "window": scen.window,
                "underlying": scen.underlying,
                "variant": f"{on}{p.rule_labels[col]} | {_rebalance_label(reb)}",
                "family": rule.family,
                "rule": p.rule_labels[col],
                "params": json.dumps(dict(spec.rules[col].params), sort_keys=True),
                "rebalance": _rebalance_label(reb),
                **m,
                **{f"pnl_{k}": v for k, v in pnl.items()},
                "he_horizon": horizon,
                "he_headline": ci.point,
                "he_ci_lo": ci.lo,
                "he_ci_hi": ci.hi,
                "he_block_len": ci.block_len,
            })
    table = pd.DataFrame(rows)
    table["he_per_cost"] = table["hedge_effectiveness"] / table["cost_drag_bps_per_year"].clip(lower=1e-9)
    ascending = spec.rank_by in ("vol_hedged_ann", "cost_drag_bps_per_year")
    table["rank"] = (
        table.groupby(["coin", "window"], sort=False)[spec.rank_by]
        .rank(ascending=ascending, method="first", na_option="bottom")
        .astype(int)
    )
    table = table.sort_values(["coin", "window", "rank"], kind="stable").reset_index(drop=True)
    inputs = (*(f for scen in scenarios for f in scen.prepared.inputs), events_input())
    return GridRun(table, pd.DataFrame(folds, columns=list(WALK_FORWARD_COLUMNS)), inputs)


def write_compare_tables(table: pd.DataFrame, folder: Path, info: dict[str, Any]) -> None:
    """``compare.csv`` (fixed float format, byte-deterministic), ``compare.parquet`` and ``compare.json``."""
    write_text(folder / "compare.csv", table.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    write_bytes(folder / "compare.parquet", buf.getvalue())
    write_text(folder / "compare.json", json.dumps(info, indent=2, allow_nan=False) + "\n")


def _walk_forward_summary(folds: pd.DataFrame) -> list[dict[str, Any]]:
    """Per scenario: number of folds, mean out-of-sample HE of the chosen variants and of the in-sample best."""
    out = []
    for (coin, window, underlying), g in folds.groupby(["coin", "window", "underlying"], sort=True):
        out.append({
            "coin": coin, "window": window, "underlying": underlying, "horizon": str(g["horizon"].iloc[0]),
            "folds": int(len(g)),
            "mean_he_oos_chosen": float(g["he_oos"].mean()),
            "in_sample_best": str(g["in_sample_best"].iloc[0]),
            "mean_he_oos_in_sample_best": float(g["in_sample_best_he_oos"].mean()),
            "mean_fold_best_he": float(g["fold_best_he"].mean()),
        })
    return out


def instrument_choice(config: Config, table: pd.DataFrame, events: Sequence[Event] | None = None,
                      ) -> tuple[pd.DataFrame, list[dict[str, Any]]] | None:
    """Per underlying of a grid with two or more ``compare.underlyings``: the instrument table and the
    paired verdict between the best two (:func:`backtest.instrument_choice.instrument_table`); else None.
    ``events``: the named windows for the worst event (default :func:`backtest.config.config_events`)."""
    spec = parse_compare(config)
    if len(spec.underlyings) < 2:
        return None
    from backtest.instrument_choice import instrument_table

    return instrument_table(config, table, {_rebalance_label(r): r for r in spec.rebalances},
                            events=config_events(config) if events is None else events)


def write_instrument_tables(table: pd.DataFrame, verdicts: list[dict[str, Any]], folder: Path) -> None:
    """``instruments.csv`` (one row per underlying) and ``instruments.json`` (the paired verdicts)."""
    write_text(folder / "instruments.csv", table.to_csv(index=False, float_format="%.10g", lineterminator="\n"))  # as compare.csv: re-renders match
    write_text(folder / "instruments.json", json.dumps(verdicts, indent=2, allow_nan=False) + "\n")


def compare_info(config: Config, table: pd.DataFrame, folds: pd.DataFrame,
                 inputs: Sequence[InputFile]) -> dict[str, Any]:
    """Facts about a grid run for ``compare.json``: rank criterion, scenarios, oracle per scenario,
    the resolved config, the files read with their SHA-256 (:func:`backtest.engine.input_records`),
    package versions and the walk-forward summary (:func:`walk_forward`)."""
    spec = parse_compare(config)
    return {
        "rank_by": spec.rank_by,
        "variants": int(len(table)),
        "scenarios": sorted({f"{c} {w}" for c, w in zip(table["coin"], table["window"])}),
        "oracle_r2": {f"{c} {w}" + (f" {u}" if spec.underlyings else ""): float(o)
                      for (c, w, u), o in table.groupby(["coin", "window", "underlying"])["oracle_r2"].first().items()},
        "walk_forward": _walk_forward_summary(folds),
        **result_record(config, inputs),
    }
