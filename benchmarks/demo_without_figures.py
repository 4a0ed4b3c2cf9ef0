"""``hedgebt demo`` with every figure's drawing replaced by a copy of the PNG a normal demo drew.

    python benchmarks/demo_without_figures.py DRAWN OUT

``DRAWN`` is the output folder of an ordinary ``hedgebt demo`` (its ``quarterly/figures`` and
``perpetual/figures``); the demo then writes into ``OUT`` exactly as usual (the figure workers,
the PDF, the CSVs, the claim of the folder), except that each figure job copies its PNG from
``DRAWN`` instead of drawing it with matplotlib. Timed by :mod:`single_run`, this is what the
rest of the demo costs: a floor under the warm demo that no figure work can go below. Not a
product path; for the benchmark only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(drawn: Path, out: Path) -> None:
    """The demo as the ``hedgebt`` script runs it (:func:`backtest.cli.console_main`: exits)."""
    from PIL import Image

    from backtest.cli import console_main
    from reports import figures

    def copy_drawn(job: figures.FigureJob, path: Path) -> Path:  # noqa: ARG001 - the job is not drawn
        # quarterly or perpetual (the report is written in a temporary ".quarterly.tmp-..." first)
        scenario = Path(path).parent.parent.name.lstrip(".").split(".tmp-")[0]
        part = Path(f"{path}.part")
        shutil.copyfile(drawn / scenario / "figures" / Path(path).name, part)
        os.replace(part, path)
        with Image.open(path) as im:  # as figures._save records it for the PDF (RGB figures only)
            if im.mode == "RGB":
                figures.record_colours(Path(path), im)
        return Path(path)

    figures._run_job = copy_drawn  # type: ignore[assignment]  # the forked workers inherit it
    sys.argv = ["hedgebt", "demo", "--out", str(out), "--force", "-q"]
    console_main()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
