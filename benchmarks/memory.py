"""Peak memory (resident set) of two large runs, each in its own process.

    python benchmarks/memory.py [bars|rules|all] [--bars N] [--rules N] [--days N] [--no-report]

* ``bars``: one coin and a one-name index on ``N`` (default 2,000,000) one-minute bars
  (2,000,000 hourly bars would run past 2100, the latest bar time the data loader accepts;
  one-minute bars are the shortest it reads: 2,000,000 of them span 3.8 years), hedged
  with modelled quarterly futures, one rule, ``hedgebt run`` with the report;
* ``rules``: ``N`` (default 10,000) labelled ``[[rules]]`` (EWMA half-lives and min-variance
  windows) on ``--days`` (default 7) days of hourly bars, ``hedgebt run`` with the report
  (figures and PDF on the top ``[report] max_rules`` rules).

Each case runs ``python -m backtest.cli run`` in a child process and reads the child's
peak resident set from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (one child per
measuring process, so the figure is that child's own). Prints one line per case; returns
the rows to ``benchmarks/run_all.py``. Target: < 2 GB each (issue 11, "Scale").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: peak resident set allowed for each case (bytes)
TARGET_BYTES = 2 * 1024**3


def write_prices(path: Path, n_bars: int, freq: str, *, seed: int = 11, start: str = "2021-01-01") -> Path:
    """A long price file: ``COIN`` and one index name ``AAA`` on ``n_bars`` bars of ``freq``
    (a common random-walk factor plus noise, seeded)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n_bars, freq=freq, tz="UTC").as_unit("us")
    common = rng.normal(0.0, 0.001, n_bars)
    frames = []
    for i, sym in enumerate(("COIN", "AAA")):
        r = (1.2 if sym == "COIN" else 1.0) * common + rng.normal(0.0, 0.0006, n_bars)
        close = (0.5 + i) * np.exp(np.cumsum(r))
        frames.append(pd.DataFrame({"ts": ts, "symbol": pd.array([sym] * n_bars, dtype="string"), "close": close}))
        del r, close
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
    return path


_BASE = """\
[scenario]
name = "{name}"
start = "{start}"
bar = "1h"
[data]
prices = "prices.parquet"
ohlc = ""
[position]
coins = ["COIN"]
units = [100000]
[index]
constituents = ["AAA"]
min_constituents = 1
min_history_days = 0
rebalance = "monthly"
max_weight = 1.0
[futures]
kind = "quarterly"
contract_size = 1.0
basis_ann = 0.05
[rebalance]
every_bars = 24
[margin]
collateral_usd = 50000.0
reserve_usd = 100000.0
"""


def rules_toml(n_rules: int) -> str:
    """``n_rules`` distinct ``[[rules]]``: EWMA half-lives and min-variance windows (bars)."""
    out = []
    for i in range(n_rules):
        if i % 2 == 0:
            out.append(f'[[rules]]\nfamily = "ewma"\nhalflife = {6.0 + 0.01 * i:.2f}\nlabel = "ewma_{i}"\n')
        else:
            out.append(f'[[rules]]\nfamily = "min_variance"\nwindow = {24 + i % 96}\nlabel = "mv_{i}"\n')
    return "\n".join(out)


def measure(config: Path, out: Path, *, report: bool) -> tuple[float, float, int]:
    """Run ``hedgebt run config --out out`` in a child; (peak RSS bytes, wall s, exit code).

    The child is this module run with ``--child``: it starts the CLI as a grandchild-free
    subprocess of its own and reports that process's ``ru_maxrss``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(config), str(out)]
    cmd += [] if report else ["--no-report"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_env())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        return float("nan"), wall, proc.returncode
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        sys.stderr.write(info.get("stderr", ""))
    return float(info["maxrss_bytes"]), wall, int(info["rc"])


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _child(config: str, out: str, extra: list[str]) -> int:
    """Run the CLI once as this process's only child; print its peak RSS (bytes) as JSON."""
    import resource

    proc = subprocess.run([sys.executable, "-m", "backtest.cli", "run", config, "--out", out, "-q", *extra],
                          capture_output=True, text=True, cwd=ROOT, env=_env())
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Linux reports ru_maxrss in KiB (macOS in bytes)
    scale = 1 if sys.platform == "darwin" else 1024
    print(json.dumps({"maxrss_bytes": ru.ru_maxrss * scale, "rc": proc.returncode, "stderr": proc.stderr[-2000:]}))
    return 0


def case_bars(work: Path, n_bars: int, *, report: bool = True) -> tuple[float, float, int]:
    """2M one-minute bars, one coin, quarterly futures, one rule."""
    work.mkdir(parents=True, exist_ok=True)
    write_prices(work / "prices.parquet", n_bars, "1min")
    cfg = work / "bars.toml"
    cfg.write_text(_BASE.format(name=f"memory: {n_bars:,} bars", start="2021-01-01")
                   + '[[rules]]\nfamily = "notional"\nfraction = 1.0\n', encoding="utf-8")
    return measure(cfg, work / "out", report=report)


def case_rules(work: Path, n_rules: int, days: int, *, report: bool = True) -> tuple[float, float, int]:
    """``n_rules`` rules on ``days`` days of hourly bars, with the report."""
    work.mkdir(parents=True, exist_ok=True)
    write_prices(work / "prices.parquet", days * 24, "1h")
    cfg = work / "rules.toml"
    cfg.write_text(_BASE.format(name=f"memory: {n_rules:,} rules", start="2021-01-01") + rules_toml(n_rules),
                   encoding="utf-8")
    return measure(cfg, work / "out", report=report)


def _line(name: str, rss: float, wall: float, rc: int) -> str:
    ok = rc == 0 and rss < TARGET_BYTES
    return f"{name}: peak RSS {rss / 1024**3:.2f} GB ({rss / 1024**2:,.0f} MB), {wall:.0f} s, exit {rc}: " + (
        "PASS" if ok else "MISS") + " (target < 2 GB)"


def main(argv: list[str] | None = None) -> list:
    import common

    ap = argparse.ArgumentParser()
    ap.add_argument("case", nargs="?", default="all", choices=("bars", "rules", "all"))
    ap.add_argument("--bars", type=int, default=2_000_000)
    ap.add_argument("--rules", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv or [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="hedgebt-memory-") as tmp:
        if args.case in ("bars", "all"):
            rss, wall, rc = case_bars(Path(tmp) / "bars", args.bars, report=not args.no_report)
            common.say(_line(f"memory  {args.bars:,} one-minute bars x 1 coin, quarterly", rss, wall, rc))
            rows.append(common.Row("memory", f"peak RSS, {args.bars:,} bars x 1 coin", f"{rss / 1024**2:,.0f} MB",
                                   target="< 2 GB", status=common.verdict(rc == 0 and rss < TARGET_BYTES),
                                   note="one-minute bars, modelled quarterly futures, one rule, report on"))
        if args.case in ("rules", "all"):
            rss, wall, rc = case_rules(Path(tmp) / "rules", args.rules, args.days, report=not args.no_report)
            common.say(_line(f"memory  {args.rules:,} rules x {args.days} days hourly", rss, wall, rc))
            rows.append(common.Row("memory", f"peak RSS, {args.rules:,} rules", f"{rss / 1024**2:,.0f} MB",
                                   target="< 2 GB", status=common.verdict(rc == 0 and rss < TARGET_BYTES),
                                   note=f"{args.days} days of hourly bars, report on (top [report] max_rules rules)"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        raise SystemExit(_child(sys.argv[2], sys.argv[3], sys.argv[4:]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
