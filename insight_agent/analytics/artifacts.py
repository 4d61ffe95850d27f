"""Versioned build artifacts under ``.insight/builds/<build_id>/``.

A build is written into a temporary folder and renamed into place when complete, then
``.insight/current`` (one line: the build id) is replaced atomically — readers never see a
half-written build. Each build has a ``manifest.json`` with library versions, the data
fingerprint, parameters, metrics and timings. The per-customer table is stored twice: Parquet
for analytics and SQLite (each row one JSON object, indexed by customer_id) so `insight score`
answers in milliseconds without loading pandas.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata as md
import json
import os
import shutil
import sqlite3
import warnings
from pathlib import Path
from typing import Any

from insight_agent.errors import InsightError
from insight_agent.workspace import Workspace, atomic_write_text

KEEP_BUILDS = 3
#: Customers converted and written at a time by :meth:`BuildWriter.write_customers`.
WRITE_ROWS = 250_000
VERSIONED = ("insight", "scikit-learn", "numpy", "pandas", "scipy")


class NoBuild(InsightError):
    """The workspace has no (usable) build yet."""

    exit_code = 2


def library_versions() -> dict[str, str]:
    """Versions that decide whether saved models can be trusted."""
    from insight_agent import __version__

    out = {"insight": __version__}
    for dist in VERSIONED[1:]:
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "missing"
    return out


def new_build_id(now: dt.datetime | None = None) -> str:
    """Sortable id: UTC timestamp plus the process id (two builds never collide)."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"


class BuildWriter:
    """Collects a build's files in a temporary folder; :meth:`commit` publishes it."""

    def __init__(self, ws: Workspace, build_id: str | None = None) -> None:
        self.ws = ws
        self.build_id = build_id or new_build_id()
        self.builds = ws.artifacts / "builds"
        self.tmp = self.builds / f".{self.build_id}.tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def path(self, *parts: str) -> Path:
        """A path inside the build being written."""
        path = self.tmp.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_json(self, name: str, payload: Any) -> None:
        """Write a JSON file (stable key order, so identical builds give identical files)."""
        self.path(name).write_text(
            json.dumps(payload, indent=2, sort_keys=True, default=str), encoding="utf-8"
        )

    def write_customers(self, table: Any) -> None:
        """The per-customer table: Parquet, plus an indexed SQLite copy for point lookups
        holding each row as one JSON object (:func:`lookup_customer`).

        The Parquet file is written :data:`WRITE_ROWS` customers at a time (written whole,
        the conversion took the 2M-customer build from 6.3 to 9.6 GB). The JSON rows are
        made by DuckDB from that file (:func:`_write_lookup`): binding every value of a
        million rows to SQLite columns one at a time from Python was most of this stage
        (~15 s of its ~30 s at 1M customers on a slow day).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        containers = [c for c in table.columns if _holds_containers(table[c])]
        schema = _arrow_schema(table, containers)
        parquet_path = self.path("customers.parquet")
        with pq.ParquetWriter(parquet_path, schema) as parquet:
            for lo in range(0, max(len(table), 1), WRITE_ROWS):
                part = table.iloc[lo : lo + WRITE_ROWS]
                parquet.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=True))
        # pandas writes an unnamed index as this column
        index = str(table.index.name) if table.index.name is not None else "__index_level_0__"
        _write_lookup(parquet_path, self.path("customers.sqlite"), index)

    def adopt(self, folder: Path) -> None:
        """Continue an interrupted build in ``folder`` (``.<build_id>.tmp``, see
        :mod:`insight_agent.analytics.checkpoint`) instead of this writer's empty folder."""
        if folder == self.tmp:
            return
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = folder
        self.build_id = folder.name.removeprefix(".").removesuffix(".tmp")

    def commit(self) -> Path:
        """Move the finished build into place, point ``current`` at it, prune old builds."""
        from insight_agent.analytics.checkpoint import FOLDER

        shutil.rmtree(self.tmp / FOLDER, ignore_errors=True)  # resume state, not an artifact
        final = self.builds / self.build_id
        for leftover in self.tmp.rglob("*"):
            if leftover.is_file():
                with open(leftover, "rb") as fh:
                    os.fsync(fh.fileno())
        os.replace(self.tmp, final)
        atomic_write_text(self.ws.artifacts / "current", self.build_id + "\n")
        self._prune()
        return final

    def abort(self, *, keep: bool = False) -> None:
        """Discard the unfinished build, or with ``keep`` leave it for the next build to
        resume (it holds a checkpoint of its finished steps)."""
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _prune(self) -> None:
        builds = sorted(
            p for p in self.builds.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        for old in builds[:-KEEP_BUILDS]:
            shutil.rmtree(old, ignore_errors=True)


def _holds_containers(column: Any) -> bool:
    """Whether an object column holds lists or dicts (the reasons): typed as lists in the
    Parquet schema even when its first slices hold none. any() stops at the first one:
    reason columns hold one in their first row."""
    return column.dtype == object and any(isinstance(v, list | dict) for v in column)


def _arrow_schema(table: Any, containers: list[str]) -> Any:
    """The Arrow schema ``table.to_parquet`` would write, without converting the whole table
    at once: typed columns from an empty slice, and each object column's type from its first
    slice that gives one (a slice of empty lists or missing values does not)."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(table.head(0), preserve_index=True)
    for col in table.columns:
        if table[col].dtype != object:
            continue
        found = pa.null()
        for lo in range(0, len(table), WRITE_ROWS):
            kind = pa.array(table[col].iloc[lo : lo + WRITE_ROWS], from_pandas=True).type
            found = kind
            if not (pa.types.is_null(kind) or _empty_list_type(kind)):
                break
        if col in containers and pa.types.is_null(found):
            found = pa.list_(pa.null())
        i = schema.get_field_index(str(col))
        schema = schema.set(i, pa.field(str(col), found))
    return schema


def _empty_list_type(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_list(kind) and pa.types.is_null(kind.value_type)


#: The column of the SQLite copy holding each customer's row as a JSON object.
ROW_JSON = "row_json"


def _write_lookup(parquet_path: Path, db: Path, id_column: str) -> None:
    """The SQLite copy of a per-customer Parquet file: (customer_id, the row as a JSON
    object), indexed by customer_id.

    DuckDB writes the JSON (shortest round-trip numbers; floats as doubles, as SQLite held
    them; NaN as null; yes/no as 1/0; lists as arrays), a batch of rows at a time; SQLite then
    binds two values a row. The object's keys are the customer id first and then the
    table's columns in order, as the columns of the earlier layout were."""
    import duckdb
    import pyarrow.parquet as pq

    from insight_agent.engine.cache import sql_name

    fields = pq.read_schema(parquet_path)
    names = [id_column, *[f.name for f in fields if f.name != id_column]]
    kinds = {f.name: f.type for f in fields}
    parts = []
    for name in names:
        quoted = sql_name(name)
        key = sql_name("customer_id") if name == "__index_level_0__" else quoted
        parts.append(f"{key} := {_json_value(quoted, kinds[name])}")
    con = duckdb.connect()
    lite = sqlite3.connect(db)
    try:
        path = str(parquet_path).replace("'", "''")
        rows = con.execute(
            f"SELECT {sql_name(id_column)} AS id, to_json(struct_pack({', '.join(parts)})) "
            f"AS row FROM read_parquet('{path}')"
        ).to_arrow_reader(WRITE_ROWS)
        # a fresh file inside the unfinished build (fsynced when the build is committed): no
        # journal needed
        lite.execute("PRAGMA page_size = 65536")  # before the first table: long JSON rows
        lite.execute("PRAGMA journal_mode = OFF")
        lite.execute("PRAGMA synchronous = OFF")
        with lite:
            lite.execute(f"CREATE TABLE customers (customer_id TEXT, {ROW_JSON} TEXT)")
            for batch in rows:
                ids = batch.column(0).to_pylist()
                lite.executemany(
                    "INSERT INTO customers VALUES (?, ?)",
                    zip(ids, batch.column(1).to_pylist(), strict=True),
                )
            lite.execute("CREATE UNIQUE INDEX idx_customer ON customers(customer_id)")
    finally:
        lite.close()
        con.close()


def _json_value(column: str, kind: Any) -> str:
    """DuckDB's expression for a column's value in the JSON row (see :func:`_write_lookup`)."""
    import pyarrow as pa

    if pa.types.is_floating(kind):
        return f"CASE WHEN isnan({column}) THEN NULL ELSE CAST({column} AS DOUBLE) END"
    if pa.types.is_boolean(kind):
        return f"CAST({column} AS INTEGER)"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return f"CAST({column} AS VARCHAR)"
    return column


def current_build(ws: Workspace) -> Path:
    """Folder of the current build; :class:`NoBuild` with a fix when there is none."""
    pointer = ws.artifacts / "current"
    if not pointer.is_file():
        raise NoBuild(
            "this workspace has no models yet", hint=f"run `insight build -w {ws.root}` first"
        )
    folder = ws.artifacts / "builds" / pointer.read_text(encoding="utf-8").strip()
    if not (folder / "manifest.json").is_file():
        raise NoBuild(
            f"the current build ({folder.name}) is missing or incomplete",
            hint="run `insight build` again",
        )
    return folder


def read_json(folder: Path, name: str) -> Any:
    """Read one JSON artifact of a build."""
    path = folder / name
    if not path.is_file():
        raise NoBuild(
            f"the current build has no {name}",
            hint="that stage was skipped in the last build; see `insight build`",
        )
    return json.loads(path.read_text(encoding="utf-8"))


def check_versions(manifest: dict[str, Any]) -> list[str]:
    """Warnings for models saved by other library versions (results may differ)."""
    saved = manifest.get("versions", {})
    now = library_versions()
    notes = [
        f"{lib} {saved[lib]} at build time, {now[lib]} now"
        for lib in VERSIONED
        if lib in saved and saved[lib] != now.get(lib)
    ]
    for note in notes:
        warnings.warn(
            f"models were built with different library versions: {note}; "
            "run `insight build` to refresh them",
            stacklevel=2,
        )
    return notes


def lookup_customer(folder: Path, customer_id: str) -> dict[str, Any] | None:
    """One row of the per-customer table, by id, from SQLite (no pandas import): the row's
    JSON object; builds written before it read column by column, lists from their JSON."""
    con = sqlite3.connect(f"file:{folder / 'customers.sqlite'}?mode=ro", uri=True)
    try:
        con.row_factory = sqlite3.Row
        row = con.execute(
            "SELECT * FROM customers WHERE customer_id = ?", (customer_id,)
        ).fetchone()
    finally:
        con.close()
    if row is None:
        return None
    out = dict(row)
    if list(out) == ["customer_id", ROW_JSON]:
        return json.loads(out[ROW_JSON])
    for key, value in out.items():
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(ValueError):
                out[key] = json.loads(value)
    return out
