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
from importlib import resources
from pathlib import Path
from typing import Sequence

from backtest.errors import HedgeBTError

__all__ = ["main", "DEMO_CONFIGS"]

#: the bundled demo scenarios: main (quarterly futures) and the perpetual variant
DEMO_CONFIGS = ("demo.toml", "demo_perpetual.toml")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"hedgebt: error: {message} (see 'hedgebt {self.prog.split()[-1]} --help')\n")


def _demo_config_path(name: str) -> Path:
    return Path(str(resources.files("backtest").joinpath("scenarios", name)))


def _render(folder: Path) -> None:
    from reports import render_report

    render_report(folder)


def _run_one(
    config_path: Path, out: Path, force: bool, *, render: bool = True, shown: Path | None = None
) -> dict:
    from backtest.config import load_config
    from backtest.results import atomic_output_dir, run, write_outputs

    started = time.perf_counter()
    atomic_output_dir(out, force=force).check()
    config = load_config(config_path)
    result = run(config)
    write_outputs(result, out, force=force, render=_render if render else None)
    summary = result.summary
    _print_summary(summary, shown or out, time.perf_counter() - started)
    return summary


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


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    from backtest.results import atomic_output_dir

    with atomic_output_dir(out, force=args.force) as tmp:
        for name, sub in zip(DEMO_CONFIGS, ("quarterly", "perpetual")):
            _run_one(_demo_config_path(name), tmp / sub, False, render=not args.no_report, shown=out / sub)
    print(f"demo written to {out}/quarterly and {out}/perpetual")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    _run_one(Path(args.config), Path(args.out), args.force, render=not args.no_report)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from reports import render_report

    folder = Path(args.result_dir)
    if not (folder / "summary.json").is_file() or not (folder / "ledger.parquet").is_file():
        raise HedgeBTError(f"{folder}: not a result folder (expected summary.json and ledger.parquet)")
    files = render_report(folder)
    print(f"report re-rendered in {folder}: {Path(files.pdf).name}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from strategies.compare import run_compare_command

    return run_compare_command(args)


def _cmd_replay(args: argparse.Namespace) -> int:
    from reports.replay import run_replay_command

    return run_replay_command(args)


def _cmd_stress(args: argparse.Namespace) -> int:
    from backtest.stress import run_stress_command

    return run_stress_command(args)


def _cmd_scan(args: argparse.Namespace) -> int:
    from backtest.scan import run_scan_command

    return run_scan_command(args)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from backtest.ingest import run_ingest_command

    return run_ingest_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hedgebt", description="Backtest a short AI-index futures hedge of AI-sector altcoins.")
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

    p = sub.add_parser("stress", help="margin-call and liquidation odds vs collateral on bootstrapped paths")
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

    p = sub.add_parser("scan", help="hedgeability league table: every coin x underlying (index, BTC, ETH) x rule")
    p.add_argument("config", nargs="?", default=None, help="scenario TOML file (default: the bundled demo)")
    p.add_argument("--coins", default="all", help="'all' (default) or comma-separated symbols")
    p.add_argument("--underlyings", default="index,BTC,ETH", help="comma-separated futures underlyings")
    p.add_argument("--min-days", type=float, default=180.0, help="days of data a coin needs (default 180)")
    p.add_argument("--notional-usd", type=float, default=1_000_000.0, help="USD held in each coin")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("ingest", help="turn vendor files into the project's Parquet layout")
    try:
        from backtest.ingest import add_ingest_arguments

        add_ingest_arguments(p)
    except ImportError:  # pragma: no cover - ingest ships with the package
        pass
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
