"""The package installs like any other: a built wheel, a fresh virtual environment, any folder.

The wheel is built from this checkout, installed without dependencies into a new virtual
environment that borrows the test environment's third-party packages (a ``.pth`` line; no
registry is asked), and ``hedgebt demo`` runs from an empty temporary folder: the bundled
data must come from the wheel (``hedgebt_data``) and not from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_runtime_dependencies_are_what_runtime_imports() -> None:
    """scipy is imported at run time, vectorbt only by tests and benchmarks."""
    deps = " ".join(_pyproject()["project"]["dependencies"])
    assert "scipy" in deps and "vectorbt" not in deps
    for folder in ("backtest", "strategies", "reports"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "import vectorbt" not in text, path
            assert "matplotlib.use(" not in text and "import matplotlib.pyplot" not in text, path


def test_license_is_a_pep639_string() -> None:
    assert _pyproject()["project"]["license"] == "MIT"


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo_from_any_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "out", "build", "__pycache__",
                                                                "*.egg-info", ".pytest_cache", ".hypothesis"))
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert "warning" not in (build.stdout + build.stderr).lower().replace("warnings are errors", "")
    (wheel,) = wheels.glob("hedgebt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hedgebt_data/binance_spot_1h_close.parquet" in names
    assert "backtest/scenarios/demo.toml" in names and "backtest/events.toml" in names

    env_dir = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = Path(subprocess.run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # third-party packages of the test environment, without its editable hedgebt (its .pth files
    # are not processed when the folder is added by a .pth line)
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--no-deps",
         "--no-index", str(wheel)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    version = subprocess.run([str(env_dir / "bin" / "hedgebt"), "--version"], capture_output=True, text=True,
                             cwd=work, env=env)
    assert version.returncode == 0 and version.stdout.strip() == "hedgebt 0.1.0"
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                            "import backtest.config as c; print(c.BUNDLED_DATA)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's data, not the checkout's
    demo = subprocess.run([str(env_dir / "bin" / "hedgebt"), "demo", "--out", "out", "--no-report"],
                          capture_output=True, text=True, cwd=work, env=env)
    assert demo.returncode == 0, demo.stderr[-2000:]
    for sub in ("quarterly", "perpetual"):
        assert (work / "out" / sub / "summary.json").is_file()
        assert (work / "out" / sub / "ledger.parquet").is_file()
