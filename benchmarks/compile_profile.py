"""Where the first run's compile time goes: every numba specialisation a command compiles.

Runs one ``hedgebt`` command (default: ``demo --no-report``) in this process with
``NUMBA_CACHE_DIR`` set to a fresh temporary folder, so every kernel compiles, and
records each ``Dispatcher.compile`` call (one per function and argument-type
signature) and each compiler pass inside it. Printed:

* one row per compiled specialisation: the function, its argument types (shortened),
  the time spent in it *excluding* the functions it compiled in turn (exclusive), and
  how that time splits into type inference, lowering + LLVM (``native_lowering``:
  LLVM IR, optimisation and machine code) and the rest (bytecode analysis, rewrites,
  cache save);
* the functions compiled more than once (one row per extra signature);
* the totals and the wall time of the whole command.

Run: ``.venv/bin/python benchmarks/compile_profile.py [hedgebt args ...]``
(``--out`` of the command goes to a temporary folder unless given).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _install(records: list[dict]) -> None:
    """Patch ``Dispatcher.compile`` and listen to ``numba:run_pass``.

    One stack of frames (compilations and passes, nested as they run): a compilation's
    exclusive time is its wall time minus the compilations nested in it; a pass's own time
    is its wall time minus every frame nested in it (the untyped passes of functions
    inlined at the IR level, other compilations), and goes to the innermost compilation.
    """
    from numba.core import dispatcher, event

    frames: list[dict] = []  # kind, t0, kids (wall time of direct sub-frames)

    def close(frame: dict) -> float:
        incl = time.perf_counter() - frame["t0"]
        if frames:
            frames[-1]["kids"] += incl
        return incl

    original = dispatcher.Dispatcher.compile

    def compile_(self, sig):
        node = {"kind": "compile", "func": f"{self.py_func.__module__}.{self.py_func.__qualname__}",
                "sig": str(sig), "kids": 0.0, "child": 0.0, "passes": defaultdict(float)}
        hits, known = sum(self._cache_hits.values()), len(self.overloads)
        outer = next((f for f in reversed(frames) if f["kind"] == "compile"), None)
        frames.append(node)
        node["t0"] = time.perf_counter()
        node["top"] = outer is None
        try:
            return original(self, sig)
        finally:
            frames.pop()
            node["incl"] = close(node)
            node["cached"] = sum(self._cache_hits.values()) > hits
            node["excl"] = node["incl"] - node["child"]
            if outer is not None:
                outer["child"] += node["incl"]
            if len(self.overloads) > known:
                records.append(node)

    dispatcher.Dispatcher.compile = compile_

    class _Passes(event.Listener):
        def on_start(self, ev):
            frames.append({"kind": "pass", "name": ev.data["name"].split(" [")[0], "kids": 0.0,
                           "t0": time.perf_counter()})

        def on_end(self, ev):
            frame = frames.pop()
            incl = close(frame)
            owner = next((f for f in reversed(frames) if f["kind"] == "compile"), None)
            if owner is not None:
                owner["passes"][frame["name"]] += incl - frame["kids"]

    event.register("numba:run_pass", _Passes())


def _short(sig: str, width: int = 70) -> str:
    sig = sig.replace("array(float64, 1d, C)", "f8[:]").replace("array(float64, 1d, A)", "f8[A]")
    sig = sig.replace("array(float64, 2d, C)", "f8[:,:]").replace("array(int64, 1d, C)", "i8[:]")
    sig = sig.replace("Readonly ", "RO ").replace("readonly ", "RO ")
    return sig if len(sig) <= width else sig[: width - 3] + "..."


def main(argv: list[str]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="hedgebt-compile-"))
    if "NUMBA_CACHE_DIR" not in os.environ or "--keep-cache" not in argv:
        os.environ["NUMBA_CACHE_DIR"] = str(tmp / "numba-cache")
    # everything compiles in this process (a background compile would move the bar loop's out of sight)
    os.environ.setdefault("HEDGEBT_BACKGROUND_COMPILE", "0")
    argv = [a for a in argv if a != "--keep-cache"] or ["demo", "--no-report"]
    if "--out" not in argv:
        argv += ["--out", str(tmp / "out"), "--force"]
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    t_start = time.perf_counter()
    records: list[dict] = []
    _install(records)
    from backtest.cli import main as cli_main

    code = cli_main(argv + ["--quiet"])
    wall = time.perf_counter() - t_start
    compiled = [r for r in records if not r["cached"]]
    print(f"\n{'function':<58} {'excl s':>7} {'typeinf':>7} {'lower+LLVM':>10} {'other':>6}  signature")
    tot = defaultdict(float)
    for r in sorted(compiled, key=lambda r: -r["excl"]):
        ti = r["passes"].get("nopython_type_inference", 0.0)
        nl = r["passes"].get("native_lowering", 0.0)
        other = r["excl"] - ti - nl
        tot["excl"] += r["excl"]
        tot["ti"] += ti
        tot["nl"] += nl
        print(f"{r['func'][-58:]:<58} {r['excl']:7.2f} {ti:7.2f} {nl:10.2f} {other:6.2f}  {_short(r['sig'])}")
    if os.environ.get("HEDGEBT_PROFILE_PASSES"):
        for r in sorted(compiled, key=lambda r: -r["excl"])[:3]:
            print(f"  passes of {r['func']}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(r["passes"].items(), key=lambda kv: -kv[1]) if v > 0.01))
    print(f"{'total (' + str(len(compiled)) + ' specialisations)':<58} {tot['excl']:7.2f} {tot['ti']:7.2f} "
          f"{tot['nl']:10.2f} {tot['excl'] - tot['ti'] - tot['nl']:6.2f}")
    by_func: dict[str, list[dict]] = defaultdict(list)
    for r in compiled:
        by_func[r["func"]].append(r)
    dups = {f: rs for f, rs in by_func.items() if len(rs) > 1}
    print(f"\nfunctions compiled more than once: {len(dups)}")
    for f, rs in sorted(dups.items()):
        print(f"  {f}: {len(rs)} signatures, {sum(r['excl'] for r in rs):.2f} s")
        for r in rs:
            print(f"      {r['excl']:6.2f} s  {_short(r['sig'], 200)}")
    print("\ntimeline (compilations started from Python: seconds since start, wall time with what they compiled):")
    for r in sorted((r for r in compiled if r["top"]), key=lambda r: r["t0"]):
        print(f"  {r['t0'] - t_start:6.1f} s  +{r['incl']:5.2f} s  {r['func']}")
    loaded = [r for r in records if r["cached"]]
    print(f"\nloaded from the cache: {len(loaded)} ({sum(r['incl'] for r in loaded):.2f} s)")
    print(f"wall time of `hedgebt {' '.join(argv)}` in process (imports included): {wall:.1f} s, exit code {code}")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
