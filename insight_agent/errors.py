"""Errors that reach the user as a clear message and an exit code, never as a traceback."""

from __future__ import annotations


class InsightError(Exception):
    """Base class for problems the user can fix; the CLI prints ``message`` and ``hint``."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(InsightError):
    """insight.toml or a command-line setting is invalid."""

    exit_code = 2


class DataError(InsightError):
    """An input file cannot be used; names the file and, where known, the row and column."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = [
            p
            for p in (file, f"row {row}" if row else None, f"column '{column}'" if column else None)
            if p
        ]
        full = f"{', '.join(where)}: {message}" if where else message
        super().__init__(full, hint=hint)
        self.file = file
        self.row = row
        self.column = column


class WorkspaceBusy(InsightError):
    """Another process holds the workspace lock (e.g. a build is running)."""

    exit_code = 3


class InsufficientData(InsightError):
    """The data cannot support a model or statistic (too few rows, positives, history...).

    The message says what is missing and how much would be enough.
    """

    exit_code = 2
