"""``hedgebt replay``: what the hedge did inside named AI-market swings.

Runs the scenario once, then cuts the ledger into the requested event windows
(bundled ones from ``reports/events.toml`` or the config's ``[events.<name>]``)
and writes ``events.csv`` (one row per event and rule), ``summary.json``,
``ledger.parquet`` and the event-panel figure into the output folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from backtest.atomic import OutputDir
from backtest.config import input_paths, load_config
from backtest.metrics import fmt
from backtest.results import run, write_result_files
from reports.events import event_table, load_events, select_events

__all__ = ["run_replay_command"]


def run_replay_command(args: argparse.Namespace) -> int:
    """Run the scenario and report each requested event window."""
    out = Path(args.out)
    claim = OutputDir(args.out, force=args.force, protect=[args.config])
    claim.check()
    config = load_config(args.config)
    claim.protect(input_paths(config))
    events = select_events(load_events({name: dict(spec) for name, spec in config.events}), args.event)
    result = run(config)
    summary = result.summary
    table = event_table(result.ledger, events, bars_per_day=float(summary["period"]["bars_per_day"]))
    with claim as tmp:
        write_result_files(result, tmp)
        from reports import render_report

        render_report(tmp, events=events)
    for r in table.itertuples(index=False):
        note = f"  ({r.note})" if r.note else ""
        print(
            f"  {r.event} / {r.rule}: coin {r.coin_return:+.1%}, index {r.index_return:+.1%}; "
            f"P&L unhedged {r.pnl_unhedged:+,.0f} vs hedged {r.pnl_hedged:+,.0f} USD; HE {fmt(r.hedge_effectiveness, '.2f')}{note}"
        )
    print(f"wrote {out}/events.csv and the report")
    return 0
