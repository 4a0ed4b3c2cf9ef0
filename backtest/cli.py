"""``hedgebt`` command line.

Subcommands: ``demo``, ``run``, ``compare``, ``replay``, ``report``, ``ingest``.
Any user error (bad data, bad config, bad arguments, unsafe output path) prints
one line ``hedgebt: error: ...`` on stderr and exits with code 2 — no
traceback, and nothing half-written (outputs are built in a temporary folder
and renamed into place at the end).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from backtest.errors import HedgeBTError

__all__ = ["main", "DEMO_CONFIGS"]

#: the bundled demo scenarios: main (quarterly futures) and the perpetual variant
DEMO_CONFIGS = ("demo.toml", "demo_perpetual.toml")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        words = self.prog.split()
        command = "hedgebt" if len(words) < 2 else f"hedgebt {words[-1]}"
        self.exit(2, f"hedgebt: error: {message} (see '{command} --help')\n")


def _print_summary(summary: dict, out: Path, seconds: float) -> None:
    period = summary["period"]
    print(f"{summary['scenario']['name']}: {period['start'][:10]} .. {period['end'][:10]}, {period['bars']} bars of {period['bar']}")
    print(f"  oracle rho^2 (best constant linear hedge, in sample): {summary['oracle_r2']:.3f}")
    for label, m in summary["rules"].items():
        he = m["hedge_effectiveness"]
        print(
            f"  {label:<32} HE {he:6.3f}  vol {m['vol_unhedged_ann']:.0%} -> {m['vol_hedged_ann']:.0%}  "
            f"cost {m['cost_drag_bps_per_year']:.0f} bps/yr  rolls {m['rolls']}  calls {m['margin_calls']}  "
            f"liquidations {m['liquidations']}"
        )
    print(f"  wrote {out}/ in {seconds:.1f} s")


def _run_one(config_path: Path, out: Path, force: bool, *, report: bool = True, shown: Path | None = None) -> None:
    from backtest import api
    from backtest.results import atomic_output_dir

    started = time.perf_counter()
    atomic_output_dir(out, force=force).check()
    result = api.run(config_path)
    result.save(out, force=force, report=report)
    _print_summary(result.summary, shown or out, time.perf_counter() - started)


def _cmd_demo(args: argparse.Namespace) -> int:
    from backtest.api import bundled_scenario
    from backtest.results import atomic_output_dir

    out = Path(args.out)
    with atomic_output_dir(out, force=args.force) as tmp:
        for name, sub in zip(DEMO_CONFIGS, ("quarterly", "perpetual")):
            _run_one(bundled_scenario(name), tmp / sub, False, report=not args.no_report, shown=out / sub)
    print(f"demo written to {out}/quarterly and {out}/perpetual")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    _run_one(Path(args.config), Path(args.out), args.force, report=not args.no_report)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from backtest.api import CompareResult, Result

    folder = Path(args.result_dir)
    if (folder / "compare.parquet").is_file() and not (folder / "summary.json").is_file():
        files = CompareResult.load(folder).report(folder)
        print(f"compare report re-rendered in {folder}: {Path(files.pdf).name}")
        return 0
    if not (folder / "summary.json").is_file() or not (folder / "ledger.parquet").is_file():
        raise HedgeBTError(f"{folder}: not a result folder (expected summary.json and ledger.parquet, "
                           "or compare.parquet and compare.json)")
    report = Result.load(folder).report(folder)
    print(f"report re-rendered in {folder}: {Path(report.pdf).name}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from backtest import api
    from backtest.results import atomic_output_dir

    out = Path(args.out)
    atomic_output_dir(out, force=args.force).check()
    result = api.compare(Path(args.config), scheduler=args.scheduler, progress=sys.stderr.isatty())
    result.save(out, force=args.force, report=not args.no_report)
    table = result.table
    print(f"{len(table)} variants ranked by {result.info['rank_by']}; oracle rho^2 shown for context")
    for r in result.best().itertuples():
        print(f"  best for {r.coin} {r.window}: {r.variant}  HE {r.hedge_effectiveness:.3f} (oracle {r.oracle_r2:.3f}), "
              f"cost {r.cost_drag_bps_per_year:.0f} bps/yr")
    print(f"  wrote {out}/compare.csv, compare.parquet")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from backtest import api
    from backtest.results import atomic_output_dir

    out = Path(args.out)
    atomic_output_dir(out, force=args.force).check()
    result = api.run(Path(args.config))
    table = result.events(args.event)  # unknown or out-of-period events fail before anything is written
    result.save(out, force=args.force, events=args.event)
    for r in table.itertuples(index=False):
        note = f"  ({r.note})" if r.note else ""
        print(
            f"  {r.event} / {r.rule}: coin {r.coin_return:+.1%}, index {r.index_return:+.1%}; "
            f"P&L unhedged {r.pnl_unhedged:+,.0f} vs hedged {r.pnl_hedged:+,.0f} USD; HE {r.hedge_effectiveness:.2f}{note}"
        )
    print(f"wrote {out}/events.csv and the report")
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
    print(
        f"ingest {args.symbol} -> {report.path}: {report.rows_added} added, {report.rows_unchanged} unchanged, "
        f"{report.rows_overwritten} overwritten; dataset {state} ({len(report.symbols)} symbol(s))"
    )
    return 0


def _add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    from backtest.ingest import FORMATS

    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="vendor files of one symbol")
    parser.add_argument("--symbol", required=True, help="symbol to store the bars under, e.g. FET")
    parser.add_argument(
        "--into", required=True, type=Path, metavar="DATASET.parquet", help="long Parquet dataset (created if missing)"
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
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="run the bundled FET scenario (quarterly and perpetual) on the bundled data")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-report", action="store_true", help="write summary.json and ledger.parquet only")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="run a scenario from a TOML config")
    p.add_argument("config", help="scenario TOML file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-report", action="store_true", help="write summary.json and ledger.parquet only")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="re-render the report of a result folder (no re-simulation)")
    p.add_argument("result_dir")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="rank a grid of hedge rules x parameters x rebalance policies")
    p.add_argument("config", help="scenario TOML file with a [compare] section")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--scheduler", default="none", help="'none' (this process), 'processes' (local Dask) or tcp://HOST:PORT")
    p.add_argument("--no-report", action="store_true", help="write tables only")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("replay", help="hedge figures inside named AI-market swings")
    p.add_argument("config", help="scenario TOML file")
    p.add_argument("--event", action="append", required=True, help="event name (repeatable); see reports/events.toml")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("ingest", help="turn vendor files into the project's Parquet layout")
    _add_ingest_arguments(p)
    p.set_defaults(func=_cmd_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hedgebt`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HedgeBTError as exc:
        print("hedgebt: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hedgebt: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
