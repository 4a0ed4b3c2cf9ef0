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
import warnings
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
    from backtest.atomic import OutputDir
    from backtest.config import input_paths, load_config
    from backtest.results import run, write_outputs

    started = time.perf_counter()
    claim = OutputDir(out, force=force, protect=[config_path])
    claim.check()
    config = load_config(config_path)
    claim.protect(input_paths(config))
    result = run(config)
    write_outputs(result, claim, render=_render if render else None)
    summary = result.summary
    _print_summary(summary, shown or out, time.perf_counter() - started)
    return summary


def _print_summary(summary: dict, out: Path, seconds: float) -> None:
    from backtest.metrics import fmt

    period = summary["period"]
    print(f"{summary['scenario']['name']}: {period['start'][:10]} .. {period['end'][:10]}, {period['bars']} bars of {period['bar']}")
    print(f"  oracle rho^2 (best constant linear hedge, in sample): {fmt(summary['oracle_r2'], '.3f')}")
    for label, m in summary["rules"].items():
        print(
            f"  {label:<32} HE {fmt(m['hedge_effectiveness'], '6.3f')}  vol {fmt(m['vol_unhedged_ann'], '.0%')} -> "
            f"{fmt(m['vol_hedged_ann'], '.0%')}  cost {fmt(m['cost_drag_bps_per_year'], '.0f')} bps/yr  "
            f"rolls {m['rolls']}  calls {m['margin_calls']}  liquidations {m['liquidations']}"
        )
        for key, reason in (m.get("undefined") or {}).items():
            print(f"    {key} undefined: {reason}")
    print(f"  wrote {out}/ in {seconds:.1f} s")


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    from backtest.atomic import OutputDir

    with OutputDir(args.out, force=args.force) as tmp:
        for name, sub in zip(DEMO_CONFIGS, ("quarterly", "perpetual")):
            _run_one(_demo_config_path(name), tmp / sub, False, render=not args.no_report, shown=out / sub)
    print(f"demo written to {out}/quarterly and {out}/perpetual")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    _run_one(Path(args.config), args.out, args.force, render=not args.no_report)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from reports import render_report

    folder = Path(args.result_dir)
    if not (folder / "summary.json").is_file() or not (folder / "ledger.parquet").is_file():
        raise HedgeBTError(f"{folder}: not a result folder (expected summary.json and ledger.parquet)")
    verify_ledger(folder)
    _refuse_links(folder)
    files = render_report(folder)
    print(f"report re-rendered in {folder}: {Path(files.pdf).name}")
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


def verify_ledger(folder: Path) -> None:
    """Refuse a result folder whose ``ledger.parquet`` does not match ``summary.json``'s ``ledger_sha256``."""
    import hashlib
    import json

    from backtest.errors import DataError

    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(folder / "summary.json", f"not valid JSON ({exc})") from None
    expected = summary.get("ledger_sha256") if isinstance(summary, dict) else None
    if not isinstance(expected, str):
        raise DataError(
            folder / "summary.json",
            "has no ledger_sha256 (written by an older hedgebt?); re-run the scenario to re-create the folder",
        )
    digest = hashlib.sha256((folder / "ledger.parquet").read_bytes()).hexdigest()
    if digest != expected:
        raise DataError(
            folder / "ledger.parquet",
            f"SHA-256 {digest[:12]}... does not match summary.json's ledger_sha256 {expected[:12]}...; "
            f"the ledger was changed or corrupted after the run",
        )


def _cmd_compare(args: argparse.Namespace) -> int:
    from strategies.compare import run_compare_command

    return run_compare_command(args)


def _cmd_replay(args: argparse.Namespace) -> int:
    from reports.replay import run_replay_command

    return run_replay_command(args)


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
    from backtest.atomic import terminate_as_exit

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # library warnings are held back: after an error they are dropped (the error line is the
        # only output), after success each is printed as one line
        with terminate_as_exit(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            code = int(args.func(args) or 0)
        for w in caught:
            print("hedgebt: warning: " + " ".join(str(w.message).split()), file=sys.stderr)
        return code
    except HedgeBTError as exc:
        print("hedgebt: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hedgebt: interrupted; no output was written", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code == 143:
            print("hedgebt: terminated (SIGTERM); no output was written", file=sys.stderr)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
