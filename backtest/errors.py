"""Every exception hedgebt raises, in one place.

User errors (bad data, bad configuration, bad command-line usage) derive from
:class:`HedgeBTError`; the CLI turns them into a one-line message and exit code 2.
Anything else escaping is a bug in hedgebt and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "HedgeBTError",
    "DataError",
    "ConfigError",
    "OutputError",
]


class HedgeBTError(Exception):
    """Base class of every user-facing error (exit code 2 from the CLI)."""

    exit_code = 2


class DataError(HedgeBTError):
    """An input data file is malformed.

    The message always names the file, and where known the column, the row
    (0-based position in the file as read) and what was expected.

    Parameters
    ----------
    file : path or str
        The offending file (or a label such as ``"<frame>"`` for in-memory data).
    problem : str
        What is wrong, e.g. ``"expected a finite positive price, got -1.0"``.
    column : str, optional
        The offending column.
    row : int, optional
        0-based row position in the file as read.
    detail : str, optional
        Extra context, e.g. the timestamp and symbol of the row.
    """

    def __init__(
        self,
        file: str | Path,
        problem: str,
        *,
        column: str | None = None,
        row: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.file = str(file)
        self.column = column
        self.row = row
        self.problem = problem
        location = ", ".join(
            part
            for part in (
                None if column is None else f"column '{column}'",
                None if row is None else f"row {row}",
            )
            if part is not None
        )
        if detail:
            location = f"{location} ({detail})" if location else f"({detail})"
        super().__init__(f"{self.file}: {location}: {problem}" if location else f"{self.file}: {problem}")


class ConfigError(HedgeBTError):
    """A configuration value is missing, unknown, of the wrong type or out of range.

    Parameters
    ----------
    key : str
        Dotted key, e.g. ``"fees.taker_bps"``, or a command-line option, e.g. ``"--paths"``
        (then the message says "option").
    problem : str
        What is wrong and what was expected.
    source : str, optional
        The config file the key came from.
    """

    def __init__(self, key: str, problem: str, *, source: str | Path | None = None) -> None:
        self.key = key
        self.problem = problem
        self.source = None if source is None else str(source)
        prefix = f"{self.source}: " if self.source else ""
        kind = "option" if key.startswith("--") else "config key"  # a command-line option, not a TOML key
        super().__init__(f"{prefix}{kind} '{key}': {problem}")


class OutputError(HedgeBTError):
    """The output location cannot be written safely (exists, is a file, ...)."""
