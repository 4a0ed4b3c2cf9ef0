"""hedgebt's Python API: load a scenario, run it, and read the outcome as pandas objects.

This module is the top of the package, beside the command line (which is a thin
layer over it): it composes the engine (:mod:`backtest.results`,
:mod:`backtest.grid`) with the reports (:mod:`reports`), which only ever read a
result. ::

    import backtest as hb

    res = hb.run("demo.toml")                       # a bundled scenario, or your own TOML file
    res.metrics[["rule", "he_headline", "he_ci_lo", "he_ci_hi"]]  # HE at [report] horizon, interval
    res.ledger.query("rule == 'notional'")[["ts", "equity_hedged", "equity_unhedged"]]
    res.events(["deepseek_2025"])
    res.plot.equity()                               # a matplotlib Figure (inline in a notebook)
    res.save("out/mine")                            # exactly what ``hedgebt run`` writes

    cheaper = hb.run("demo.toml", margin={"reserve_usd": 0}, rebalance={"every_bars": 168})
    grid = hb.compare("compare.toml")               # .table: one ranked row per variant

:class:`Result` and :class:`CompareResult` are immutable: every accessor returns a
fresh copy, so a caller cannot change the result it was given.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from backtest import grid
from backtest.config import Config, config_events, config_from_mapping, config_to_dict, merge_overrides
from backtest.config import load_config as _load_file
from backtest.errors import ConfigError, DataError, OutputError
from backtest.atomic import OutputDir
from backtest import results as _engine
from backtest.results import RunResult, write_result_files

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from backtest.progress import Progress
    from reports.render import CompareFiles, ReportFiles

__all__ = [
    "load_config",
    "run",
    "compare",
    "stress",
    "scan",
    "Result",
    "CompareResult",
    "StressOutcome",
    "ScanOutcome",
    "bundled_scenario",
    "scenario_path",
    "BUNDLED_SCENARIOS",
]

#: The scenario files shipped with hedgebt (``backtest/scenarios/``), usable by name.
BUNDLED_SCENARIOS: tuple[str, ...] = tuple(sorted(
    entry.name for entry in resources.files("backtest").joinpath("scenarios").iterdir() if entry.name.endswith(".toml")
))


def bundled_scenario(name: str) -> Path:
    """Path of a bundled scenario file, e.g. ``bundled_scenario("demo.toml")``."""
    path = Path(str(resources.files("backtest").joinpath("scenarios", name)))
    if not path.is_file():
        raise ConfigError("<file>", f"no bundled scenario {name!r}; bundled: {', '.join(BUNDLED_SCENARIOS)}")
    return path


def scenario_path(path: str | Path) -> Path:
    """``path`` itself when it exists (or names a folder), else the bundled scenario of that name."""
    p = Path(path)
    if p.is_file() or p.parent != Path("."):
        return p
    try:
        return bundled_scenario(p.name)
    except ConfigError:
        return p  # load_config names the missing file


def load_config(path: str | Path | None = None, /, **overrides: Any) -> Config:
    """:func:`backtest.config.load_config`, also taking a bundled scenario by name.

    ``hb.load_config("demo.toml")`` reads ``./demo.toml`` when it exists, else the bundled
    scenario of that name (as :func:`run` does); ``None`` starts from the documented defaults.
    """
    return _load_file(None if path is None else scenario_path(path), **overrides)


def _as_config(config_or_path: Config | str | Path | None, overrides: Mapping[str, Any]) -> Config:
    if isinstance(config_or_path, Config):
        if not overrides:
            return config_or_path
        raw = merge_overrides(config_to_dict(config_or_path), overrides)
        return config_from_mapping(raw, base_dir=config_or_path.base_dir)
    return load_config(config_or_path, **overrides)


def _progress(progress: Any) -> Any:
    """``progress`` when it is a :class:`~backtest.progress.Progress` callback or None."""
    if progress is not None and not callable(progress):
        raise ConfigError("progress", f"expected a function progress(step, done, total) or None, "
                                      f"got {type(progress).__name__}")
    return progress


def _flag(key: str, value: Any) -> bool:
    """``value`` when it is a bool (``progress=True`` of :func:`compare` and :func:`scan`)."""
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected True or False, got {value!r}")
    return value


def run(config_or_path: Config | str | Path | None = None, /, *, progress: Progress | None = None,
        **overrides: Any) -> Result:
    """Simulate every rule of a scenario and return its :class:`Result`.

    Parameters
    ----------
    config_or_path : Config, str or Path, optional
        A :class:`~backtest.config.Config`, a TOML file, or the name of a bundled
        scenario (``"demo.toml"``); ``None`` runs the documented defaults.
    **overrides
        Sections or keys to change before running, validated like a file's own, e.g.
        ``run("demo.toml", margin={"reserve_usd": 0})`` (see
        :func:`backtest.config.merge_overrides`).
    progress : Progress, optional
        Called as ``progress(step, done, total)`` from the long loops (the collateral
        bisection, the rule replays); see :mod:`backtest.progress`. Default: silent.
    """
    progress = _progress(progress)
    config = _as_config(config_or_path, overrides)
    # progress only when asked for: the engine's run(config) stays the call without it
    return Result.from_run(_engine.run(config) if progress is None else _engine.run(config, progress=progress))


def compare(
    config_or_path: Config | str | Path,
    /,
    *,
    scheduler: str = "none",
    progress: bool = False,
    **overrides: Any,
) -> CompareResult:
    """Run a scenario's ``[compare]`` grid and return the ranked :class:`CompareResult`.

    ``scheduler`` is ``"none"`` (this process), ``"processes"`` (local Dask) or
    ``"tcp://HOST:PORT"`` (a running ``dask.distributed`` scheduler).
    """
    grid.check_scheduler(scheduler)
    config = _as_config(config_or_path, overrides)
    events = config_events(config)  # a bad [events.<name>] window fails before the grid runs
    outcome = grid.run_compare_full(config, scheduler=scheduler, progress=_flag("progress", progress))
    table = outcome.table
    choice = grid.instrument_choice(config, table, events)
    return CompareResult(config=config, _table=table,
                         _info_json=json.dumps(grid.compare_info(config, table, outcome.walk_forward, outcome.inputs)),
                         _walk_forward=outcome.walk_forward,
                         _instruments=None if choice is None else choice[0],
                         _verdicts_json=None if choice is None else json.dumps(choice[1], allow_nan=False))


def _sequence(key: str, values: Any) -> tuple[Any, ...]:
    """``values`` (a list, tuple or array; not a string or a mapping) as a tuple of Python objects;
    its items are checked by the caller."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise ConfigError(key, f"expected a list, got {values!r}")
    return tuple(values.tolist() if hasattr(values, "tolist") else values)


def stress(
    config_or_path: Config | str | Path,
    /,
    *,
    paths: int,
    horizon_days: float,
    seed: int = 0,
    collateral_usd: Sequence[float] | None = None,
    block_bars: float | None = None,
    scheduler: str = "none",
    progress: Progress | None = None,
    **overrides: Any,
) -> StressOutcome:
    """Margin stress: ``paths`` stationary-bootstrap paths of ``horizon_days`` replayed for a grid of
    starting collateral (see :mod:`backtest.margin_stress`); P(margin call), P(liquidation) and the
    collateral for 95 % / 99 % survival, per rule. ``progress`` hears the historical bisection and
    the path batches (:mod:`backtest.progress`)."""
    from backtest.margin_stress import StressSpec, run_stress

    grid.check_scheduler(scheduler)
    progress = _progress(progress)
    spec = StressSpec(paths=paths, horizon_days=horizon_days, seed=seed,
                      collateral_usd=None if collateral_usd is None else _sequence("collateral_usd", collateral_usd),
                      block_bars=block_bars)
    return StressOutcome(run_stress(_as_config(config_or_path, overrides), spec, scheduler=scheduler, progress=progress))


def scan(
    config_or_path: Config | str | Path | None = "demo.toml",
    /,
    *,
    coins: Sequence[str] = (),
    underlyings: Sequence[str] = ("index", "BTC", "ETH"),
    min_history_days: float | None = None,
    notional_usd: float = 1_000_000.0,
    progress: bool = False,
    config_file: str | None = None,
    **overrides: Any,
) -> ScanOutcome:
    """Hedgeability league table: every coin (``coins=()`` = all with enough history) hedged with
    every underlying and rule of the scenario (see :mod:`backtest.hedgeability`)."""
    from backtest.hedgeability import MIN_HISTORY_DAYS, ScanSpec, run_scan, scan_info

    config = _as_config(config_or_path, overrides)
    spec = ScanSpec(coins=_sequence("coins", coins), underlyings=_sequence("underlyings", underlyings),
                    min_history_days=MIN_HISTORY_DAYS if min_history_days is None else min_history_days,
                    notional_usd=notional_usd)
    scan = run_scan(config, spec, progress=_flag("progress", progress))
    name = config_file or (Path(config_or_path).name if isinstance(config_or_path, (str, Path)) else "<config>")
    info = scan_info(config, spec, scan, name)
    return ScanOutcome(_table=scan.table, _long=scan.long, _info_json=json.dumps(info, allow_nan=True))


@dataclass(frozen=True, eq=False)
class StressOutcome:
    """A margin-stress run: ``.table`` (rule x collateral level), ``.needs`` (collateral each path
    needed), ``.info`` (block length, horizon, 95 % / 99 % collateral, historical figure),
    ``.plot()`` and ``.save(dir)``."""

    result: Any

    @property
    def table(self) -> pd.DataFrame:
        return self.result.table.copy()

    @property
    def info(self) -> dict[str, Any]:
        return copy.deepcopy(self.result.info)

    @property
    def needs(self) -> pd.DataFrame:
        return pd.DataFrame(self.result.needs, columns=list(self.result.info["rules"]))

    def plot(self, ax: Axes | None = None) -> Figure:
        from reports.choose import plot_stress

        return plot_stress(self.result, ax=ax)

    def save(self, folder: str | Path | OutputDir, *, force: bool = False) -> Path:
        """``stress.csv``, ``stress_needs.csv``, ``stress.json`` and ``stress.png``, atomically."""
        from backtest.margin_stress import write_stress_tables
        from reports.choose import plot_stress
        from reports.figures import file_style

        claim = folder if isinstance(folder, OutputDir) else OutputDir(folder, force=force)
        with claim as tmp:
            write_stress_tables(self.result, tmp)
            with file_style():
                plot_stress(self.result, tmp / "stress.png")
        return claim.target


@dataclass(frozen=True, eq=False)
class ScanOutcome:
    """A coin scan: ``.table`` (the league table, best first), ``.long`` (every coin x underlying x
    rule), ``.info`` (spans, skipped coins and why), ``.plot()`` and ``.save(dir)``."""

    _table: pd.DataFrame = field(repr=False)
    _long: pd.DataFrame = field(repr=False)
    _info_json: str = field(repr=False)

    @property
    def table(self) -> pd.DataFrame:
        """The league table, best first (a fresh copy)."""
        return self._table.copy()

    @property
    def long(self) -> pd.DataFrame:
        """Every coin x underlying x rule (a fresh copy)."""
        return self._long.copy()

    @property
    def info(self) -> dict[str, Any]:
        """Spans, skipped coins and why (the content of ``scan.json``; a fresh copy)."""
        return json.loads(self._info_json)

    def plot(self, ax: Axes | None = None) -> Figure:
        from reports.choose import plot_scan

        return plot_scan(self._table, tuple(self.info["underlyings"]), ax=ax)

    def save(self, folder: str | Path | OutputDir, *, force: bool = False) -> Path:
        """``scan.csv``, ``scan_long.csv``, ``scan.json`` and ``scan.png``, atomically."""
        from backtest.hedgeability import write_scan_tables
        from reports.choose import plot_scan
        from reports.figures import file_style

        claim = folder if isinstance(folder, OutputDir) else OutputDir(folder, force=force)
        with claim as tmp:
            write_scan_tables(self._table, self._long, self.info, tmp)
            with file_style():
                plot_scan(self._table, tuple(self.info["underlyings"]), tmp / "scan.png")
        return claim.target


def _recorded_config(path: Path, record: Mapping[str, Any]) -> Config:
    """The scenario recorded in a result's ``summary.json`` / ``compare.json`` (key ``config``)."""
    recorded = record.get("config")
    if not isinstance(recorded, Mapping) or not recorded:
        raise DataError(path, "has no config (the resolved scenario every hedgebt result records)")
    try:
        return config_from_mapping(recorded)
    except ConfigError as exc:
        raise DataError(path, f"its config does not validate: {exc}") from None


def _report_folder(folder: str | Path) -> Path:
    """The folder a ``.report()`` renders into: an empty path is refused (as by ``.save``)."""
    if str(folder) == "":
        raise OutputError("the report folder is an empty path; give a folder name")
    return Path(folder)


# -- the result of one run ---------------------------------------------------------------------


class ResultPlots:
    """The report's figures of a :class:`Result`, each returned as a matplotlib ``Figure``.

    Single-panel figures (``equity``, ``rolling_vol``, ``drawdowns``, ``rolling_he``) also
    draw into a caller's ``ax``; the others have several panels and always make their own
    figure. Nothing touches matplotlib's global state (no ``pyplot``).
    """

    def __init__(self, result: Result) -> None:
        self._result = result

    def _frame(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        return self._result._ledger, self._result._summary

    def equity(self, ax: Axes | None = None) -> Figure:
        """Hedged equity of each rule against the unhedged equity (USD)."""
        from reports import figures as F

        ledger, s = self._frame()
        return F.plot_equity(ledger, rules=list(s["rules"]), ax=ax)  # type: ignore[return-value]

    def rolling_vol(self, ax: Axes | None = None, *, window_days: float = 30.0) -> Figure:
        """Rolling annualised volatility, hedged vs unhedged."""
        from reports import figures as F

        ledger, s = self._frame()
        return F.plot_rolling_vol(ledger, bars_per_day=float(s["period"]["bars_per_day"]),  # type: ignore[return-value]
                                  window_days=window_days, rules=list(s["rules"]), ax=ax)

    def drawdowns(self, ax: Axes | None = None) -> Figure:
        """Drawdowns from the running peak, hedged vs unhedged."""
        from reports import figures as F

        ledger, s = self._frame()
        return F.plot_drawdowns(ledger, rules=list(s["rules"]), ax=ax)  # type: ignore[return-value]

    def rolling_he(self, ax: Axes | None = None, *, window_days: float = 30.0) -> Figure:
        """Rolling hedge effectiveness against the full-sample oracle ρ²."""
        from reports import figures as F

        ledger, s = self._frame()
        return F.plot_rolling_he(ledger, bars_per_day=float(s["period"]["bars_per_day"]),  # type: ignore[return-value]
                                 oracle_r2=float(s["oracle_r2"]), window_days=window_days,
                                 rules=list(s["rules"]), ax=ax)

    def hedge_ratio(self) -> Figure:
        """Held and target hedge ratio per rule, and contracts held."""
        from reports import figures as F

        ledger, s = self._frame()
        return F.plot_hedge_ratio(ledger, rules=list(s["rules"]))  # type: ignore[return-value]

    def pnl_attribution(self) -> Figure:
        """Where the P&L came from, per rule (USD)."""
        from reports import figures as F

        _ledger, s = self._frame()
        return F.plot_pnl_attribution({r: v["pnl"] for r, v in s["rules"].items()})  # type: ignore[return-value]

    def events(self, names: Sequence[str] | None = None) -> Figure:
        """Cumulative P&L inside each event window, hedged vs unhedged."""
        from reports import figures as F

        ledger, s = self._frame()
        return F.plot_event_panels(ledger, self._result._events(names), rules=list(s["rules"]))  # type: ignore[return-value]

    def index_weights(self, ax: Axes | None = None) -> Figure:
        """What the index held: target weights per rebalance (stacked), the count held, data-end exits."""
        from reports.choose import plot_index_weights

        return plot_index_weights(self._result._summary, ax=ax)

    def margin(self) -> Figure:
        """Margin balance against maintenance and initial requirement, per rule."""
        from reports import figures as F

        ledger, s = self._frame()
        return F.plot_margin(ledger, rules=list(s["rules"]))  # type: ignore[return-value]

    def monthly_returns(self) -> Figure:
        """Monthly returns heatmap (%), unhedged and per rule (:mod:`reports.tearsheet`)."""
        from reports import tearsheet as T

        ledger, s = self._frame()
        return T.plot_monthly_returns(ledger, rules=list(s["rules"]))  # type: ignore[return-value]

    def return_histogram(self, ax: Axes | None = None) -> Figure:
        """Histogram of daily returns, unhedged vs each rule, with the 1-day 99 % VaR."""
        from reports import tearsheet as T

        ledger, s = self._frame()
        return T.plot_return_histogram(ledger, rules=list(s["rules"]), ax=ax)  # type: ignore[return-value]

    def rolling_beta(self, *, window_days: float = 30.0) -> Figure:
        """Rolling beta and correlation of the coin's returns on the futures' returns."""
        from reports import tearsheet as T

        ledger, s = self._frame()
        return T.plot_rolling_beta(ledger, bars_per_day=float(s["period"]["bars_per_day"]),  # type: ignore[return-value]
                                   window_days=window_days)


@dataclass(frozen=True, eq=False)
class Result:
    """The immutable outcome of one scenario run.

    Attributes
    ----------
    config : Config
        The validated scenario that produced it.
    ledger : DataFrame
        One row per bar and rule; columns :data:`backtest.schema.LEDGER_COLUMNS`.
    summary : dict
        The content of ``summary.json`` (parsed once; a fresh copy per access).
    metrics : DataFrame
        One row per rule, the columns of ``metrics.csv`` (summary figures, P&L parts,
        HE interval, VaR / CVaR).
    plot : ResultPlots
        The report's figures as matplotlib ``Figure`` objects.
    """

    config: Config
    _ledger: pd.DataFrame = field(repr=False)
    _summary_json: str = field(repr=False)
    _legs: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_run(cls, run_result: RunResult) -> Result:
        """Wrap the engine's :class:`~backtest.results.RunResult`."""
        return cls(config=run_result.config, _ledger=run_result._ledger, _summary_json=run_result.summary_json,
                   _legs=run_result._legs)

    @property
    def legs(self) -> pd.DataFrame | None:
        """Per-leg rows of two-instrument rules (``legs.parquet``), None without such a rule."""
        return None if self._legs is None else self._legs.copy()

    @classmethod
    def load(cls, folder: str | Path) -> Result:
        """Read a result folder written by :meth:`save` or ``hedgebt run`` (no re-simulation).

        The ledger is checked against ``summary.json``'s ``ledger_sha256``. ``.config`` is the
        recorded scenario; the folder of the scenario file it came from is not recorded, so its
        relative data file names resolve against the bundled data (``summary.json``'s ``inputs``
        name each file with its SHA-256). To re-run with your own files, load the scenario file.
        """
        from reports.render import read_parquet_file, read_result

        folder = Path(folder)
        summary, ledger, _compare = read_result(folder)  # the ledger checked against its ledger_sha256
        config = _recorded_config(folder / "summary.json", summary)
        legs = read_parquet_file(folder / "legs.parquet") if (folder / "legs.parquet").is_file() else None
        return cls(config=config, _ledger=ledger,
                   _summary_json=(folder / "summary.json").read_text(encoding="utf-8").rstrip("\n"), _legs=legs)

    def __repr__(self) -> str:
        s = self._summary
        p = s["period"]
        return (f"Result({s['scenario']['name']!r}, {p['start'][:10]}..{p['end'][:10]}, {p['bars']:,} bars of "
                f"{p['bar']}, rules={list(s['rules'])})")

    @cached_property
    def _summary(self) -> dict[str, Any]:
        return json.loads(self._summary_json)

    @property
    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json`` (a fresh copy)."""
        return copy.deepcopy(self._summary)

    @property
    def summary_json(self) -> str:
        """``summary.json`` exactly as :meth:`save` writes it (without the final newline)."""
        return self._summary_json

    @property
    def ledger(self) -> pd.DataFrame:
        """One row per bar and rule (a fresh copy)."""
        return self._ledger.copy()

    @property
    def rules(self) -> list[str]:
        """Rule labels, in run order."""
        return list(self._summary["rules"])

    @cached_property
    def _metrics(self) -> pd.DataFrame:
        from reports.render import metrics_table

        return metrics_table(self._summary, self._ledger)

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per rule: the columns of ``metrics.csv`` (a fresh copy)."""
        return self._metrics.copy()

    def _events(self, names: Sequence[str] | None) -> tuple[Any, ...]:
        from reports.events import load_events, select_events
        from reports.render import choose_events

        if names is None:
            return choose_events(self._summary, self._ledger)[0]
        user = {name: dict(spec) for name, spec in self.config.events}
        return select_events(load_events(user or None), list(names))

    def events(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """What each rule did inside named market windows (the columns of ``events.csv``).

        ``names=None`` takes the bundled and configured windows inside the data period;
        otherwise the named ones (bundled, or ``[events.<name>]`` of the config).
        """
        from reports.events import event_table
        from reports.render import multi_rules

        return event_table(self._ledger, self._events(names),
                           bars_per_day=float(self._summary["period"]["bars_per_day"]), rules=self.rules,
                           several_underlyings=multi_rules(self._summary))

    @property
    def plot(self) -> ResultPlots:
        """The report's figures (``res.plot.equity()``, ``res.plot.margin()``, ...)."""
        return ResultPlots(self)

    def save(
        self,
        folder: str | Path | OutputDir,
        *,
        force: bool = False,
        report: bool = True,
        events: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Write ``summary.json``, ``ledger.parquet`` and (``report=True``) the report into ``folder``.

        The same bytes as ``hedgebt run`` (``events`` as ``hedgebt replay --event``). The
        folder is built under a temporary name and claimed atomically at the end
        (:class:`backtest.atomic.OutputDir`); an existing non-empty folder is replaced only
        with ``force=True``. ``folder`` may be a claim made before a long run, so that a
        folder appearing meanwhile is detected. ``progress`` hears the report's long loops
        (HE bootstrap, figures, PDF pages; :mod:`backtest.progress`).
        """
        progress = _progress(progress)
        claim = folder if isinstance(folder, OutputDir) else OutputDir(folder, force=force)
        with claim as tmp:
            write_result_files(RunResult(self._ledger, self._summary_json, self.config, self._legs), tmp)
            if report:
                self._write_report(tmp, None if events is None else self._events(events), progress)
        return claim.target

    def report(self, folder: str | Path, *, events: Sequence[str] | None = None,
               progress: Progress | None = None) -> ReportFiles:
        """Render ``metrics.csv``, ``events.csv``, ``figures/*.png`` and ``report.pdf`` into ``folder``
        (created if missing) from this object: no re-simulation, no re-reading."""
        from backtest.atomic import staged_files

        progress = _progress(progress)
        folder = _report_folder(folder)
        chosen = None if events is None else self._events(events)  # checked before anything is written
        with staged_files(folder) as stage:  # a failure halfway leaves the folder's old report as it was
            files = self._write_report(stage, chosen, progress)
        return files.moved(stage, folder)

    def _write_report(self, folder: Path, chosen: tuple[Any, ...] | None,
                      progress: Progress | None = None) -> ReportFiles:
        from reports.render import write_report

        # metrics not computed yet: write_report computes the same table (same seed), reporting progress
        metrics = self.__dict__.get("_metrics")
        return write_report(folder, self._summary, self._ledger, events=chosen, metrics=metrics, progress=progress)


# -- the result of a comparison grid ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CompareResult:
    """The immutable outcome of a ``[compare]`` grid: one ranked row per variant and scenario.

    Attributes
    ----------
    config : Config
        The scenario whose ``[compare]`` table was run.
    table : DataFrame
        The columns of ``compare.csv``, best first within each (coin, window).
    info : dict
        The content of ``compare.json`` (rank criterion, scenarios, oracle, config, versions).
    """

    config: Config
    _table: pd.DataFrame = field(repr=False)
    _info_json: str = field(repr=False)
    _walk_forward: pd.DataFrame | None = field(default=None, repr=False)
    _instruments: pd.DataFrame | None = field(default=None, repr=False)
    _verdicts_json: str | None = field(default=None, repr=False)

    @property
    def walk_forward(self) -> pd.DataFrame | None:
        """The out-of-sample check of picking the best variant (``walk_forward.csv``): per yearly fold,
        the variant chosen on the past, its HE on the fold, and the in-sample best's HE there."""
        return None if self._walk_forward is None else self._walk_forward.copy()

    @property
    def instruments(self) -> pd.DataFrame | None:
        """With ``compare.underlyings``: one row per underlying (oracle, daily HE with its interval,
        cost, carry, min safe collateral) -- ``instruments.csv``; else None."""
        return None if self._instruments is None else self._instruments.copy()

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        """The paired-bootstrap verdict between the two best underlyings, per coin and window."""
        return [] if self._verdicts_json is None else json.loads(self._verdicts_json)

    @classmethod
    def load(cls, folder: str | Path) -> CompareResult:
        """Read a folder written by :meth:`save` or ``hedgebt compare``."""
        from reports.render import read_compare_folder, read_csv_file, read_instrument_tables

        folder = Path(folder)
        table, info = read_compare_folder(folder)
        folds = read_csv_file(folder / "walk_forward.csv") if (folder / "walk_forward.csv").is_file() else None
        table = table.sort_values(["coin", "window", "rank"], kind="stable").reset_index(drop=True) \
            if {"coin", "window"} <= set(table.columns) else table
        config = _recorded_config(folder / "compare.json", info)
        instruments, verdicts = read_instrument_tables(folder)
        return cls(config=config, _table=table, _info_json=json.dumps(info), _walk_forward=folds,
                   _instruments=instruments,
                   _verdicts_json=None if instruments is None else json.dumps(verdicts, allow_nan=False))

    def __repr__(self) -> str:
        return f"CompareResult({len(self._table)} variants, ranked by {self.info['rank_by']})"

    @property
    def table(self) -> pd.DataFrame:
        """The ranked grid (a fresh copy)."""
        return self._table.copy()

    @property
    def info(self) -> dict[str, Any]:
        """The content of ``compare.json`` (a fresh copy)."""
        return json.loads(self._info_json)

    def best(self) -> pd.DataFrame:
        """The rank-1 variant of every scenario (coin × window)."""
        return self._table[self._table["rank"] == 1].reset_index(drop=True)

    def save(self, folder: str | Path | OutputDir, *, force: bool = False, report: bool = True,
             progress: Progress | None = None) -> Path:
        """Write ``compare.csv``, ``compare.parquet``, ``compare.json`` and (``report=True``) the
        figures and ``compare.pdf`` into ``folder`` (atomically, as :meth:`Result.save`)."""
        progress = _progress(progress)
        claim = folder if isinstance(folder, OutputDir) else OutputDir(folder, force=force)
        with claim as tmp:
            grid.write_compare_tables(self._table, tmp, self.info)
            if self._walk_forward is not None:
                from backtest.atomic import write_text

                write_text(tmp / "walk_forward.csv",
                           self._walk_forward.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
            if self._instruments is not None:
                grid.write_instrument_tables(self._instruments, self.verdicts, tmp)
            if report:
                self.report(tmp, progress=progress)
        return claim.target

    def report(self, folder: str | Path, *, progress: Progress | None = None) -> CompareFiles:
        """Render the compare figures and ``compare.pdf`` into ``folder`` from this object (with the
        "Which hedge instrument?" section when :attr:`instruments` has several underlyings)."""
        from backtest.atomic import staged_files
        from reports.render import write_compare_report

        progress = _progress(progress)
        folder = _report_folder(folder)
        with staged_files(folder) as stage:  # a failure halfway leaves the folder's old report as it was
            files = write_compare_report(stage, self._table, self.info, instruments=self._instruments,
                                         verdicts=self.verdicts, progress=progress)
        return files.moved(stage, folder)

