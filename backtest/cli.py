"""``hedgebt`` command line.

Subcommands: ``demo``, ``run``, ``compare``, ``replay``, ``report``, ``ingest``, ``stress``, ``scan``.
Any user error (bad data, bad config, bad arguments, unsafe output path) prints
one line ``hedgebt: error: ...`` on stderr and exits with code 2 — no
traceback, and nothing half-written (outputs are built in a temporary folder
and renamed into place at the end).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

from backtest.background_compile import BackgroundCompile, compile_bar_loop
from backtest.errors import ConfigError, HedgeBTError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from backtest.progress import Progress

__all__ = ["main", "console_main", "DEMO_CONFIGS"]

#: the bundled demo scenarios: main (quarterly futures) and the perpetual variant
DEMO_CONFIGS = ("demo.toml", "demo_perpetual.toml")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        words = self.prog.split()
        command = "hedgebt" if len(words) < 2 else f"hedgebt {words[-1]}"
        self.exit(2, f"hedgebt: error: {message} (see '{command} --help')\n")


class _Console:
    """What a command tells its user: results and progress, and nothing but errors with ``--quiet``.

    Each stage prints a line when it starts (so a slow stage never looks hung) and its
    elapsed time when it ends: on a terminal both on one stderr line; otherwise (logs,
    pipes, CI) as two lines on stdout, so that stderr keeps the error contract's single line.
    On a terminal, the long loops inside a stage (collateral bisection, figures, PDF pages,
    stress paths) also draw a ``tqdm`` bar each, on stderr, removed when the loop ends
    (:meth:`progress`); off a terminal and with ``--quiet`` there are no bars.
    """

    def __init__(self, quiet: bool, record: list[tuple[Any, ...]] | None = None) -> None:
        self.quiet = quiet
        self.record = record  # a console of a forked run: lines kept for the command to replay
        self.tty = sys.stderr.isatty() and record is None
        self._announced = False
        self._line_open = False  # a terminal stage line waits for its " 1.2 s"
        self._bars: dict[str, Any] = {}

    def progress(self) -> Progress | None:
        """The callback that draws the bars (:class:`backtest.progress.Progress`), or None off a
        terminal or with ``--quiet``."""
        return None if self.quiet or not self.tty else self._advance

    def _advance(self, step: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self._bars.get(step)
        if bar is None:
            if done >= total:
                return  # finished before it was shown: nothing to draw
            if self._line_open:  # the bars go below the stage line
                print(file=sys.stderr, flush=True)
                self._line_open = False
            bar = self._bars[step] = tqdm(total=total, desc=f"  {step}", leave=False, file=sys.stderr,
                                          dynamic_ncols=True, bar_format="{desc}: {n}/{total} |{bar}| {elapsed}")
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self._bars[step]

    def bar_below(self) -> bool:
        """End an open terminal stage line so that a bar drawn by a library (the grid's and the
        scan's own ``tqdm``) goes below it; True when bars are wanted (on a terminal, not quiet)."""
        if self._line_open:
            print(file=sys.stderr, flush=True)
            self._line_open = False
        return self.tty and not self.quiet

    def _close_bars(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def say(self, line: str = "") -> None:
        if self.quiet:
            return
        if self.record is not None:
            self.record.append(("say", line))
        else:
            print(line, flush=True)

    def replay(self, lines: Sequence[tuple[Any, ...]]) -> None:
        """Print what a forked run's console recorded (:class:`backtest.forked.ForkedRun`), as
        this console would have: ``("say", line)`` and ``("stage", what, seconds)``."""
        if self.quiet:
            return
        stream = sys.stderr if self.tty else sys.stdout
        for kind, *rest in lines:
            if kind == "say":
                print(rest[0], flush=True)
            elif self.tty:
                print(f"hedgebt: {rest[0]} ... {rest[1]:.1f} s", file=stream, flush=True)
            else:
                print(f"hedgebt: {rest[0]} ...\nhedgebt: {rest[0]}: {rest[1]:.1f} s", file=stream, flush=True)

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        if self.quiet:
            yield
            return
        if self.record is not None:
            started = time.perf_counter()
            yield
            self.record.append(("stage", what, time.perf_counter() - started))
            return
        stream = sys.stderr if self.tty else sys.stdout
        started = time.perf_counter()
        print(f"hedgebt: {what} ...", end="" if self.tty else "\n", file=stream, flush=True)
        self._line_open = self.tty
        try:
            yield
        except BaseException:
            self._close_bars()
            if self.tty:
                print(" failed" if self._line_open else f"hedgebt: {what}: failed", file=stream, flush=True)
            self._line_open = False
            raise
        self._close_bars()
        took = time.perf_counter() - started
        same_line = self._line_open
        self._line_open = False
        print(f" {took:.1f} s" if same_line else f"hedgebt: {what}: {took:.1f} s", file=stream, flush=True)

    def announce_compile(self) -> None:
        """Say once that numba compiles the kernels on the first run after an install."""
        if self._announced or self.quiet or self.record is not None or _kernels_cached():
            return
        self._announced = True
        print("hedgebt: compiling the numba kernels, once after an install (about half a minute on 2 cores); "
              "later runs start in seconds", file=sys.stderr if self.tty else sys.stdout, flush=True)

    def wrote(self, folder: Path, only: Iterable[Path] | None = None) -> None:
        """List every file under ``folder`` (relative names; figures grouped), or only the files
        ``only`` (those a command wrote into a folder that holds others)."""
        if self.quiet or not folder.is_dir():
            return
        paths = folder.rglob("*") if only is None else (Path(p) for p in only)
        files = sorted(p.relative_to(folder).as_posix() for p in paths if p.is_file())
        figures = [f for f in files if f.startswith("figures/")]
        rest = [f for f in files if not f.startswith("figures/")]
        line = ", ".join(rest)
        if figures:
            line += f", figures/ ({len(figures)} PNG: " + ", ".join(Path(f).stem for f in figures) + ")"
        print(f"  wrote {folder}/: {line}", flush=True)


def _kernels_cached() -> bool:
    """Whether numba's cache (the one this process uses) holds the bar loop compiled from the
    current source, so the run will not compile it (it is most of the compile)."""
    from backtest.background_compile import kernel_cache_state

    return kernel_cache_state() == "cached"


def _background_enabled() -> bool:
    """Whether ``demo`` / ``run`` compile the bar loop in a second process while preparing the
    data (:mod:`backtest.background_compile`); off with ``HEDGEBT_BACKGROUND_COMPILE=0``."""
    import os

    return os.environ.get("HEDGEBT_BACKGROUND_COMPILE", "1") != "0"


def config_input_paths(config) -> list[Path]:
    """Every existing file a config names (its data inputs); ``--force`` never deletes them."""
    from backtest.config import input_paths

    return input_paths(config)


def fmt(value, spec: str) -> str:
    """``format(value, spec)``, or ``n/a`` for an undefined (``None``/NaN) figure."""
    from backtest.metrics import fmt as _fmt

    return _fmt(value, spec)


def plural(n: int, noun: str) -> str:
    """``"1 coin"``, ``"3 coins"`` (:func:`backtest.metrics.plural`, imported when first used)."""
    from backtest.metrics import plural as _plural

    return _plural(n, noun)


def _print_summary(console: _Console, summary: dict) -> None:
    period = summary["period"]
    console.say(f"{summary['scenario']['name']}: {period['start'][:10]} .. {period['end'][:10]}, "
                f"{period['bars']:,} bars of {period['bar']}")
    console.say(f"  oracle rho^2 (best constant linear hedge, in sample): {fmt(summary['oracle_r2'], '.3f')}")
    horizon = summary["config"]["report"]["horizon"]
    for label, m in summary["rules"].items():
        console.say(
            f"  {label:<32} HE({horizon}) {fmt(m['he_by_horizon'][horizon], '6.3f')}  "
            f"vol {fmt(m['vol_unhedged_ann'], '.0%')} -> {fmt(m['vol_hedged_ann'], '.0%')}  "
            f"cost {fmt(m['cost_drag_bps_per_year'], ',.0f')} bps/yr  carry {fmt(m['carry_bps_per_year'], '+,.0f')} bps/yr  "
            f"rolls {m['rolls']}  calls {m['margin_calls']}  liquidations {m['liquidations']}  "
            f"min safe collateral ${fmt(m['min_safe_collateral'], ',.0f')}"
        )
        for key, reason in (m.get("undefined") or {}).items():
            console.say(f"    {key} undefined: {reason}")


def _claim(out: str | Path, force: bool, config_path: Path):
    """Claim the output folder now (refused if unsafe); ``--force`` never touches the config."""
    from backtest.api import scenario_path
    from backtest.atomic import OutputDir

    claim = OutputDir(out, force=force, protect=[scenario_path(config_path)])
    claim.check()
    return claim


def _run_one(console: _Console, config_path: Path, out: str | Path, force: bool, *, report: bool = True,
             shown: Path | None = None, background: BackgroundCompile | None = None,
             compile_ahead: bool = False, prepared_hook: Callable[[], object] | None = None,
             compiled_hook: Callable[[], object] | None = None, waiting_hook: Callable[[], object] | None = None,
             prepared_ahead: Callable[[], Any] | None = None) -> None:
    """Run one scenario into ``out``. With ``background`` (a child compiling the bar loop into
    numba's cache; or one started here, once the config is read, when ``compile_ahead``), the
    data, index and hedge ratios are prepared first and the child is waited for before the
    first bar-loop call (:mod:`backtest.background_compile`). ``prepared_hook`` is called once
    the scenario is prepared (before that wait), ``waiting_hook`` while waiting for a child
    that is still compiling, ``compiled_hook`` once that wait is over (before the replay).
    ``prepared_ahead`` returns this scenario's preparation when it was done ahead
    (:func:`_cmd_demo`), else None."""
    from contextlib import nullcontext

    from backtest import api
    from backtest.config import load_config
    from backtest.engine import prepare
    from backtest.results import run

    claim = _claim(out, force, config_path)
    config_path = api.scenario_path(config_path)  # a bundled scenario by name works from any folder
    config = load_config(config_path)
    claim.protect(config_input_paths(config))
    console.announce_compile()
    with (BackgroundCompile.start(_background_enabled()) if compile_ahead else nullcontext(background)) as child, \
            console.stage(f"simulating {config_path.name}"):
        prepared = prepared_ahead() if prepared_ahead is not None else None
        if prepared is None:
            prepared = prepare(config, ledger=True)  # the ledger-rows limit before any hedge ratio
        if prepared_hook is not None:
            prepared_hook()
        if child is not None:

            def meanwhile() -> None:
                if report:
                    _load_report_libraries()
                if waiting_hook is not None:
                    waiting_hook()

            child.wait(meanwhile=meanwhile if report or waiting_hook is not None else None)
            if compiled_hook is not None:
                compiled_hook()
        result = api.Result.from_run(run(config, prepared=prepared, progress=console.progress()))
        del prepared  # the inputs go before the report, as when the run prepares them itself
    with console.stage("writing results" + (" and the report" if report else "")):
        result.save(claim, report=report, progress=console.progress())
    _print_summary(console, result.summary)
    if shown is None:  # the demo lists its folders once they are in place
        console.wrote(claim.target)


def _load_report_libraries() -> None:
    """Import what writing a report imports first (matplotlib and the report modules, arch's
    bootstrap): done while the bar loop is still being compiled in the background, on the
    core the compile leaves free, instead of after the replay."""
    import arch.bootstrap  # noqa: F401
    import reports.render  # noqa: F401


def _cmd_demo(args: argparse.Namespace) -> int:
    """Both bundled scenarios. The perpetual one runs in a process forked
    (:class:`backtest.forked.ForkedRun`) from the quarterly one, and writes its report beside
    the quarterly report; its console lines are printed after the quarterly ones. The fork
    happens once the quarterly scenario is prepared when the bar loop is already compiled (then
    both replays run at once too), or once the compile is over when the bar loop is being
    compiled in the background (the fork then inherits the compiled loop, loaded here first,
    and does not slow the compile down; both replays run at once; the second scenario is
    prepared in this process while the first one waits for the compile, and the fork takes
    that preparation over). Without ``os.fork`` they run one after the other."""
    from contextlib import ExitStack

    from backtest.api import bundled_scenario
    from backtest.atomic import OutputDir
    from backtest.forked import ForkedRun

    console = _Console(args.quiet)
    out = Path(args.out)
    report = not args.no_report
    (first, first_dir), (second, second_dir) = zip(DEMO_CONFIGS, ("quarterly", "perpetual"), strict=True)
    with OutputDir(args.out, force=args.force) as tmp, BackgroundCompile.start(_background_enabled()) as background, \
            ExitStack() as forked:

        ahead: list = []  # the second scenario prepared ahead, and the warnings its preparation gave

        def prepare_second() -> None:
            """The second scenario's preparation, done while the first one waits for the compile
            (the core is free then); the forked run takes it over, and gives its warnings as its
            own. Any error is left to that run to meet and report on its own."""
            from backtest.api import scenario_path
            from backtest.config import load_config
            from backtest.engine import prepare

            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", UserWarning)
                    prepared = prepare(load_config(scenario_path(bundled_scenario(second))), ledger=True)
                ahead.append((prepared, [w.message for w in caught]))
            except Exception:  # noqa: BLE001 - the second run prepares again and raises it as its own
                ahead.clear()

        def taken_over() -> Any:
            if not ahead:
                return None
            prepared, messages = ahead[0]
            for message in messages:  # in the forked run's output, where its preparation's warnings belong
                warnings.warn(message, stacklevel=1)
            return prepared

        def run_second(record: list) -> None:
            _run_one(_Console(args.quiet, record), bundled_scenario(second), tmp / second_dir, False, report=report,
                     shown=out / second_dir, prepared_ahead=taken_over)

        children: list[ForkedRun] = []

        def fork_second() -> None:
            if report:  # imported once, for both processes (already done by a compile's wait)
                _load_report_libraries()
            children.append(forked.enter_context(ForkedRun.start(run_second)))

        def fork_compiled() -> None:
            compile_bar_loop()  # from the cache the compile filled: both processes have it, loaded once
            fork_second()

        fork = ForkedRun.available()
        compiling = background.pid is not None  # the bar loop is being compiled: fork once it is loaded
        _run_one(console, bundled_scenario(first), tmp / first_dir, False, report=report, shown=out / first_dir,
                 background=background, prepared_hook=fork_second if fork and not compiling else None,
                 compiled_hook=fork_compiled if fork and compiling else None,
                 waiting_hook=prepare_second if fork and compiling else None)
        if children:
            outcome = children[0].result()
            console.replay(outcome.lines)
            for message in outcome.warnings:  # main() prints them as this command's warnings
                warnings.warn(message, UserWarning, stacklevel=1)
        else:
            _run_one(console, bundled_scenario(second), tmp / second_dir, False, report=report,
                     shown=out / second_dir, background=background)
    for sub in (first_dir, second_dir):
        console.wrote(out / sub)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    _run_one(_Console(args.quiet), Path(args.config), args.out, args.force, report=not args.no_report,
             compile_ahead=True)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from backtest.api import CompareResult, Result

    console = _Console(args.quiet)
    folder = Path(args.result_dir)
    if (folder / "compare.parquet").is_file() and not (folder / "summary.json").is_file():
        _refuse_links(folder)
        with console.stage(f"re-rendering the compare report in {folder}"):
            compare_files = CompareResult.load(folder).report(folder, progress=console.progress())
        console.wrote(folder, only=(compare_files.pdf, *compare_files.figures))  # what was re-rendered
        return 0
    if not (folder / "summary.json").is_file() or not (folder / "ledger.parquet").is_file():
        raise HedgeBTError(f"{folder}: not a result folder (expected summary.json and ledger.parquet, "
                           "or compare.parquet and compare.json)")
    _refuse_links(folder)
    with console.stage(f"re-rendering the report in {folder}"):  # Result.load checks the ledger's SHA-256
        files = Result.load(folder).report(folder, progress=console.progress())
    console.wrote(folder, only=(files.metrics_csv, files.events_csv, files.pdf, *files.figures))
    return 0


def _refuse_links(folder: Path) -> None:
    """A result folder to re-render must hold no symbolic links (outputs never follow links out)."""
    import os

    for dirpath, dirs, files in os.walk(folder, followlinks=False):
        for name in [*dirs, *files]:
            p = Path(dirpath, name)
            if p.is_symlink():
                from backtest.errors import OutputError

                raise OutputError(f"{p}: is a symbolic link (to {os.readlink(p)}); hedgebt does not write through links")


def _cmd_compare(args: argparse.Namespace) -> int:
    from backtest import api
    from backtest.config import load_config
    from backtest.grid import check_scheduler

    console = _Console(args.quiet)
    check_scheduler(args.scheduler)
    claim = _claim(args.out, args.force, Path(args.config))
    config = load_config(api.scenario_path(args.config))
    claim.protect(config_input_paths(config))
    console.announce_compile()
    with console.stage(f"running the grid of {Path(args.config).name}"):
        result = api.compare(config, scheduler=args.scheduler, progress=console.bar_below())
    with console.stage("writing tables" + ("" if args.no_report else " and the report")):
        result.save(claim, report=not args.no_report, progress=console.progress())
    table = result.table
    console.say(f"{len(table)} variants ranked by {result.info['rank_by']}; oracle rho^2 shown for context")
    for r in result.best().itertuples():
        console.say(f"  best for {r.coin} {r.window}: {r.variant}  HE {fmt(r.hedge_effectiveness, '.3f')} "
                    f"(oracle {fmt(r.oracle_r2, '.3f')}), HE({r.he_horizon}) {fmt(r.he_headline, '.3f')} "
                    f"[{fmt(r.he_ci_lo, '.3f')}, {fmt(r.he_ci_hi, '.3f')}], "
                    f"cost {fmt(r.cost_drag_bps_per_year, ',.0f')} bps/yr")
    for w in result.info.get("walk_forward", []):
        on = f" on {w['underlying']}" if len(result.info.get("walk_forward", [])) > 1 and w.get("underlying") else ""
        console.say(f"  walk-forward {w['coin']} {w['window']}{on} ({plural(w['folds'], 'yearly fold')}, "
                    f"HE({w['horizon']})): variants chosen on the past score {fmt(w['mean_he_oos_chosen'], '.3f')} "
                    f"out of sample on average; the best by HE({w['horizon']}) over the whole replay (hindsight), "
                    f"{w['in_sample_best']}, scores {fmt(w['mean_he_oos_in_sample_best'], '.3f')} on the same folds")
    for v in result.verdicts:
        console.say(f"  which instrument for {v['coin']} {v['window']}: {v['verdict']}")
    console.wrote(claim.target)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from backtest import api
    from backtest.config import load_config

    console = _Console(args.quiet)
    claim = _claim(args.out, args.force, Path(args.config))
    config = load_config(api.scenario_path(args.config))
    claim.protect(config_input_paths(config))
    console.announce_compile()
    with console.stage(f"simulating {Path(args.config).name}"):
        result = api.run(config, progress=console.progress())
    table = result.events(args.event)  # unknown or out-of-period events fail before anything is written
    with console.stage("writing results and the report"):
        result.save(claim, events=args.event, progress=console.progress())
    for r in table.itertuples(index=False):
        note = f"  ({r.note})" if r.note else ""
        console.say(
            f"  {r.event} / {r.rule}: coin {r.coin_return:+.1%}, index {r.index_return:+.1%}; "
            f"P&L unhedged {r.pnl_unhedged:+,.0f} vs hedged {r.pnl_hedged:+,.0f} USD; "
            f"HE {fmt(r.hedge_effectiveness, '.2f')}{note}"
        )
    console.wrote(claim.target)
    return 0


def _cmd_stress(args: argparse.Namespace) -> int:
    from backtest import api
    from backtest.config import load_config
    from backtest.grid import check_scheduler

    console = _Console(args.quiet)
    check_scheduler(args.scheduler)
    grid = None
    if args.collateral_grid is not None:  # an empty grid is refused, not taken for the default
        try:
            grid = tuple(float(v) for v in args.collateral_grid.split(","))
        except ValueError:
            raise ConfigError("--collateral-grid", f"expected comma-separated USD amounts, got {args.collateral_grid!r}") from None
    claim = _claim(args.out, args.force, Path(args.config))
    config = load_config(api.scenario_path(args.config))
    claim.protect(config_input_paths(config))
    console.announce_compile()
    with console.stage(f"replaying {args.paths} bootstrap paths of {args.horizon_days:g} days"):
        result = api.stress(config, paths=args.paths, horizon_days=args.horizon_days, seed=args.seed,
                            collateral_usd=grid, block_bars=args.block_bars, scheduler=args.scheduler,
                            progress=console.progress())
    with console.stage("writing tables and the figure"):
        result.save(claim)
    info = result.info
    console.say(f"{info['paths']:,} paths x {info['horizon_days']:g} days ({info['horizon_bars']:,} bars), "
                f"mean block {info['block_bars']:.1f} bars, seed {info['seed']}")
    for label, r in info["rules"].items():
        console.say(f"  {label:<32} collateral for 95 % / 99 % survival {r['collateral_95_usd']:,.0f} / "
                    f"{r['collateral_99_usd']:,.0f} USD; historical min safe {r['historical_min_safe_collateral_usd']:,.0f} USD")
    console.wrote(claim.target)
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from backtest import api
    from backtest.config import load_config

    console = _Console(args.quiet)
    coins: tuple[str, ...] = () if args.coins == "all" else tuple(c.strip() for c in args.coins.split(",") if c.strip())
    if args.coins != "all" and not coins:
        raise ConfigError("--coins", f"expected 'all' or comma-separated symbols, got {args.coins!r}")
    config_path = api.scenario_path(args.config) if args.config else api.bundled_scenario("demo.toml")
    claim = _claim(args.out, args.force, config_path)
    config = load_config(config_path)
    claim.protect(config_input_paths(config))
    console.announce_compile()
    with console.stage("hedging every coin with every underlying"):
        result = api.scan(config, coins=coins, underlyings=tuple(u.strip() for u in args.underlyings.split(",")),
                          min_history_days=args.min_days, notional_usd=args.notional_usd,
                          progress=console.bar_below(), config_file=config_path.name)
    with console.stage("writing tables and the figure"):
        result.save(claim)
    console.say(f"{plural(len(result.table), 'coin')} scanned, {len(result.info['skipped'])} skipped (see scan.json); "
                "best first:")
    for r in result.table.head(10).itertuples():
        best = f"with {r.best_underlying} ({r.best_rule})" if r.best_underlying else "(no underlying measurable)"
        console.say(f"  {r.rank:>3} {r.coin:<8} HE daily {fmt(r.best_he_daily, '6.3f')} {best}, "
                    f"{str(r.start)[:10]} .. {str(r.end)[:10]}")
    console.wrote(claim.target)
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from backtest.ingest import ingest

    report = ingest(
        args.files,
        symbol=args.symbol,
        into=args.into,
        format=args.format,
        overwrite=args.overwrite,
        yahoo_shift_days=args.yahoo_shift_days,
    )
    state = "written" if report.changed else "unchanged, not rewritten"
    gaps = f"; {report.missing_bars} bar(s) missing in the added range" if report.missing_bars else ""
    console = _Console(args.quiet)
    console.say(
        f"ingest {args.symbol} -> {report.path}: {report.rows_added} added, {report.rows_unchanged} unchanged, "
        f"{report.rows_overwritten} overwritten; dataset {state} ({len(report.symbols)} symbol(s)){gaps}"
    )
    for note in report.notes:
        console.say(f"  note: {note}")
    return 0


def _add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    from backtest.ingest import FORMATS

    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="vendor files of one symbol")
    parser.add_argument("--symbol", required=True, help="symbol to store the bars under, e.g. FET")
    parser.add_argument(
        "--into", required=True, type=str, metavar="DATASET.parquet", help="long Parquet dataset (created if missing)"
    )
    parser.add_argument("--format", default="auto", choices=FORMATS, help="vendor format (default: auto-detect)")
    parser.add_argument("--overwrite", action="store_true", help="replace stored bars that conflict with the new ones")
    parser.add_argument(
        "--yahoo-shift-days",
        type=int,
        default=0,
        metavar="N",
        help="yahoo only: relabel each row to date + N days (-1 when the value on date D is the close of day D-1)",
    )


def build_parser() -> argparse.ArgumentParser:
    from backtest.versions import hedgebt_version

    parser = _Parser(prog="hedgebt", description="Backtest a short AI-index futures hedge of AI-sector altcoins.")
    parser.add_argument("--version", action="version", version=f"hedgebt {hedgebt_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", parents=[common], help="run the bundled FET scenario (quarterly and perpetual) on the bundled data")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-report", action="store_true", help="write summary.json and ledger.parquet only")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", parents=[common], help="run a scenario from a TOML config")
    p.add_argument("config", help="scenario TOML file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-report", action="store_true", help="write summary.json and ledger.parquet only")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", parents=[common], help="re-render the report of a result folder (no re-simulation)")
    p.add_argument("result_dir")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", parents=[common], help="rank a grid of hedge rules x parameters x rebalance policies")
    p.add_argument("config", help="scenario TOML file with a [compare] section")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--scheduler", default="none", help="'none' (this process), 'processes' (local Dask) or tcp://HOST:PORT")
    p.add_argument("--no-report", action="store_true", help="write tables only")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("replay", parents=[common], help="hedge figures inside named AI-market swings")
    p.add_argument("config", help="scenario TOML file")
    p.add_argument("--event", action="append", required=True, help="event name (repeatable); see backtest/events.toml")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("stress", parents=[common], help="margin-call and liquidation odds vs collateral on bootstrapped paths")
    p.add_argument("config", help="scenario TOML file")
    p.add_argument("--paths", type=int, required=True, help="number of bootstrap paths")
    p.add_argument("--horizon-days", type=float, required=True, help="days per path")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--collateral-grid", default=None, help="comma-separated starting collateral levels (USD)")
    p.add_argument("--block-bars", type=float, default=None, help="mean bootstrap block length (bars); default data-driven")
    p.add_argument("--scheduler", default="none", help="'none' (this process), 'processes' (local Dask) or tcp://HOST:PORT")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=_cmd_stress)

    p = sub.add_parser("scan", parents=[common], help="hedgeability league table: every coin x underlying (index, BTC, ETH) x rule")
    p.add_argument("config", nargs="?", default=None, help="scenario TOML file (default: the bundled demo)")
    p.add_argument("--coins", default="all", help="'all' (default) or comma-separated symbols")
    p.add_argument("--underlyings", default="index,BTC,ETH", help="comma-separated futures underlyings")
    p.add_argument("--min-days", type=float, default=180.0, help="days of data a coin needs (default 180)")
    p.add_argument("--notional-usd", type=float, default=1_000_000.0, help="USD held in each coin")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("ingest", parents=[common], help="turn vendor files into the project's Parquet layout")
    _add_ingest_arguments(p)
    p.set_defaults(func=_cmd_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hedgebt`` console script; returns the exit code."""
    from backtest.atomic import terminate_as_exit, written_note

    try:
        # library warnings are held back: after an error they are dropped (the error line is the
        # only output), after success each is printed as one line
        with terminate_as_exit(), warnings.catch_warnings(record=True) as caught:
            args = build_parser().parse_args(argv)  # inside: a signal while it imports is one line too
            warnings.simplefilter("always", UserWarning)
            code = int(args.func(args) or 0)
        for w in caught:
            print("hedgebt: warning: " + " ".join(str(w.message).split()), file=sys.stderr)
        return code
    except HedgeBTError as exc:
        print("hedgebt: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"hedgebt: interrupted; {written_note()}", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code == 143:
            print(f"hedgebt: terminated (SIGTERM); {written_note()}", file=sys.stderr)
        raise


def console_main() -> NoReturn:
    """The ``hedgebt`` console script: :func:`main`, then exit with its code.

    Before the interpreter shuts down, every object left is moved out of the cyclic garbage
    collector's reach (``gc.freeze``): its final collection would otherwise walk the whole heap a
    command leaves behind (prices, ledgers, the report's libraries) only to free memory the
    operating system takes back at exit anyway: 0.4-0.5 s of CPU after a ``hedgebt demo``. Exit
    handlers (``atexit``, ``weakref.finalize``), buffered output and non-daemon threads are
    handled as on any other exit.
    """
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
