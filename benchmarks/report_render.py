"""Time the steps of one report, wall and CPU (user + system, worker processes included).

    python benchmarks/report_render.py [SCENARIO] [OUT] [--workers N]

Runs the scenario once (``backtest.run``), then renders its report step by step into
``OUT`` (a temporary folder by default): metrics, events, figures (``reports.figures.render_all``),
``report.pdf``. Prints one line per step. A standalone script, not part of ``run_all.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default="demo.toml")
    ap.add_argument("out", nargs="?", default=None)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    steps: list[tuple[str, float, float]] = []

    def timed(name, func):  # type: ignore[no-untyped-def]
        w, c = time.perf_counter(), _cpu()
        value = func()
        steps.append((name, time.perf_counter() - w, _cpu() - c))
        return value

    import backtest as hb
    from reports import figures as F
    from reports import render
    from reports.pdf import write_pdf

    out = Path(args.out or tempfile.mkdtemp(prefix="hedgebt-report-"))
    out.mkdir(parents=True, exist_ok=True)
    res = timed("simulate", lambda: hb.run(args.scenario))
    s, led = res._summary, res._ledger
    metrics = timed("metrics", lambda: res._metrics)
    chosen, notes = render.choose_events(s, led)
    events_df = timed("events", lambda: render.event_table(led, chosen, bars_per_day=float(s["period"]["bars_per_day"]),
                                                           rules=list(s["rules"])))
    jobs = render._figure_jobs(s, led, chosen, None)
    pngs = timed("figures", lambda: F.render_all(jobs, out / "figures", workers=args.workers))
    timed("report.pdf", lambda: write_pdf(out / "report.pdf", s, metrics, events_df,
                                          {render.CAPTIONS[k]: p for k, p in pngs.items()}, None, events=chosen,
                                          notes=notes))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.scenario}: {len(pngs)} figures into {out} (load average {load:.1f}, "
          f"workers {args.workers or F.default_workers()})")
    for name, wall, cpu in steps:
        print(f"  {name:11s} wall {wall:6.2f} s   cpu {cpu:6.2f} s")


if __name__ == "__main__":
    main()
