"""One DuckDB connection (through Ibis) over a workspace's cached tables.

DuckDB runs out of core: a memory limit and a spill folder under ``.insight/`` keep a large
query inside the machine's means. Tables are registered as views over the Parquet files, so
nothing is copied into memory until a query needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insight_agent.engine.cache import TABLE_NAMES, TableCache

DEFAULT_MEMORY_LIMIT = "2GB"


def connect(
    cache: TableCache,
    *,
    scores: Path | None = None,
    spill_dir: Path | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
) -> Any:
    """An Ibis DuckDB backend with the cached tables (and the build's per-customer ``scores``
    table, when given) registered under their names."""
    import ibis

    config: dict[str, Any] = {"memory_limit": memory_limit}
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(spill_dir)
    if threads:
        config["threads"] = threads
    con = ibis.duckdb.connect(**config)
    for name in TABLE_NAMES:
        path = cache.path(name)
        if path is not None:
            con.read_parquet(path, table_name=name)
    if scores is not None and scores.is_file():
        con.read_parquet(scores, table_name="scores")
    return con


__all__ = ["DEFAULT_MEMORY_LIMIT", "connect"]
