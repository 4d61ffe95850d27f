"""What loading found: problems (file, row, column, what was done) and rows kept/dropped."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from insight_agent.errors import DataError

Severity = Literal["error", "warning", "info"]
MAX_ROWS_KEPT = 100  # row numbers remembered per problem (the count is always exact)
MAX_ROWS_SHOWN = 5


@dataclass
class Problem:
    """One kind of problem in one column of one file, with the rows it affects.

    ``severity`` "error" is fatal (nothing is loaded); "warning" means rows were dropped or values
    cleared; "info" is a note (e.g. returns kept apart, encoding fallback).
    """

    table: str
    file: str
    code: str
    message: str
    severity: Severity = "warning"
    column: str | None = None
    rows: list[int] = field(default_factory=list)
    count: int = 0
    action: str = ""
    example: str | None = None

    def describe(self, max_rows: int = MAX_ROWS_SHOWN) -> str:
        """One line for a terminal: ``file, rows 3, 9: message 'example' — action``."""
        where = [self.file]
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:max_rows])
            more = self.count - min(len(self.rows), max_rows)
            label = "row" if self.count == 1 else "rows"
            where.append(f"{label} {shown}" + (f" and {more:,} more" if more > 0 else ""))
        elif self.count > 1:
            where.append(f"{self.count:,} rows")
        if self.column:
            where.append(f"column '{self.column}'")
        text = f"{', '.join(where)}: {self.message}"
        if self.example is not None:
            text += f" (e.g. {self.example})"
        if self.action:
            text += f" — {self.action}"
        return text


@dataclass
class TableReport:
    """Row accounting for one table."""

    table: str
    file: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason code -> rows
    returns: int = 0  # order rows with negative amounts, kept apart as returns
    blank_rows: int = 0
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> source column
    extra_columns: list[str] = field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None
    derived: bool = False  # customers derived from orders (no customers file)
    chunks: int = 0  # read in this many chunks (a large file; 0: read whole)
    engine: str | None = None  # "duckdb": checked and copied by the engine, not in pandas

    @property
    def rows_dropped(self) -> int:
        """Rows removed for data problems (blank lines not counted)."""
        return sum(self.dropped.values())


@dataclass
class ValidationReport:
    """Everything validation found, table by table."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    max_drop_share: float = 0.05

    @property
    def fatal(self) -> bool:
        """True when at least one problem is an error: nothing should be loaded."""
        return any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        """The fatal problems."""
        return [p for p in self.problems if p.severity == "error"]

    def add(self, problem: Problem) -> None:
        """Record a problem."""
        self.problems.append(problem)

    def add_error(self, table: str, error: DataError) -> None:
        """Record a :class:`DataError` raised while reading ``table`` as a fatal problem."""
        self.problems.append(
            Problem(
                table=table,
                file=error.file or table,
                code="unreadable",
                severity="error",
                message=error.message.split(": ", 1)[-1] if error.file else error.message,
                column=error.column,
                rows=[error.row] if error.row else [],
                count=1 if error.row else 0,
                action=error.hint or "",
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by ``insight validate --json``)."""
        return {
            "ok": not self.fatal,
            "max_drop_share": self.max_drop_share,
            "tables": {
                name: {**asdict(t), "rows_dropped": t.rows_dropped}
                for name, t in self.tables.items()
            },
            "problems": [asdict(p) for p in self.problems],
        }


def report_from_dict(data: dict[str, Any]) -> ValidationReport:
    """The :class:`ValidationReport` that :meth:`ValidationReport.to_dict` wrote."""
    tables = {}
    for name, fields in data.get("tables", {}).items():
        known = {k: v for k, v in fields.items() if k in TableReport.__dataclass_fields__}
        tables[name] = TableReport(**known)
    problems = [
        Problem(**{k: v for k, v in p.items() if k in Problem.__dataclass_fields__})
        for p in data.get("problems", [])
    ]
    return ValidationReport(
        tables=tables, problems=problems, max_drop_share=data.get("max_drop_share", 0.05)
    )


class ValidationFailed(DataError):
    """Loading stopped on fatal problems; ``report`` has all of them."""

    def __init__(self, report: ValidationReport) -> None:
        errors = report.errors
        first = errors[0].describe() if errors else "validation failed"
        more = f" (and {len(errors) - 1} more fatal problems)" if len(errors) > 1 else ""
        super().__init__(first + more, hint="run `insight validate` for the full list")
        self.report = report
