"""Versions of hedgebt and of the packages that shape its results (a leaf module: no engine imports)."""

from __future__ import annotations

import importlib.metadata
import platform

__all__ = ["hedgebt_version", "package_versions", "RESULT_PACKAGES"]

#: Packages whose versions every result records.
#: (scipy: the dynamic rule's optimiser; arch: every bootstrap and block length; pillow: the PNGs;
#: dask only schedules, with the same results, and vectorbt only serves the benchmarks.)
RESULT_PACKAGES: tuple[str, ...] = ("hedgebt", "numpy", "pandas", "numba", "llvmlite", "pyarrow", "scipy", "arch",
                                    "matplotlib", "pillow")


def hedgebt_version() -> str:
    """The installed version of hedgebt (``0+unknown`` when run from a tree that was never installed)."""
    try:
        return importlib.metadata.version("hedgebt")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results (read from metadata, no imports)."""
    out = {"python": platform.python_version()}
    for name in RESULT_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
