"""The engine's connections (through Ibis) over a workspace's cached tables.

* :func:`connect` — DuckDB, the default: out of core, a memory limit and a spill folder under
  ``.insight/`` keep a large query inside the machine's means. Tables are registered as views
  over the Parquet files, so nothing is copied into memory until a query needs it.
* :func:`connect_spark` — Spark (``[engine] name = "spark"``, ``insight build --engine
  spark``): the same Ibis expressions run by Ibis's pyspark backend, on ``local[N]`` or a
  cluster (``--spark-master``). Spark reads the same Parquet files; on a cluster every executor
  must be able to read the workspace's ``.insight/tables`` path (docs/scaling.md).

The expressions in :mod:`~insight_agent.engine.features` and :mod:`~insight_agent.engine.metrics`
are written once and must stay portable: what one backend cannot run is rewritten for both,
never copied per engine (tests/test_engine_spark.py holds Spark's results to DuckDB's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from insight_agent.config import ENGINES
from insight_agent.engine.cache import DEFAULT_MEMORY_LIMIT, TABLE_NAMES, TableCache
from insight_agent.errors import ConfigError

DEFAULT_SPARK_MASTER = "local[2]"
SPARK_INSTALL_HINT = (
    "install the extra (pip install 'customer-insight-agent[spark]') and a Java 17 runtime "
    "(apt-get install openjdk-17-jre-headless, or set JAVA_HOME), or use --engine duckdb"
)


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
    _register(con, cache, scores)
    return con


def _register(con: Any, cache: TableCache, scores: Path | None) -> None:
    for name in TABLE_NAMES:
        path = cache.path(name)
        if path is not None:
            con.read_parquet(path, table_name=name)
    if scores is not None and scores.is_file():
        con.read_parquet(scores, table_name="scores")


# --- Spark ------------------------------------------------------------------------------------


def java_home() -> str | None:
    """Where the Java runtime Spark will start is: JAVA_HOME, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return home
    java = shutil.which("java")
    return str(Path(java).resolve().parent.parent) if java else None


def spark_missing() -> str | None:
    """Why the Spark engine cannot start here (pyspark or Java missing), or None."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "the Spark engine needs pyspark, which is not installed"
    if java_home() is None:
        return "the Spark engine needs a Java runtime (17), and none was found"
    return None


def spark_session(
    master: str | None = None,
    *,
    app_name: str = "insight",
    conf: dict[str, str] | None = None,
    local_dir: Path | None = None,
) -> Any:
    """A SparkSession on ``master`` (``local[2]`` by default; ``spark://host:7077``, ``yarn``,
    ``k8s://…`` for a cluster). An existing session in this process is reused (Spark allows one
    per process). ``conf`` adds or overrides settings, e.g. ``spark.executor.memory``.

    Local masters get settings for a small machine: no web UI, no progress bar, few shuffle
    partitions, the driver on 127.0.0.1 and scratch files in ``local_dir``.
    """
    reason = spark_missing()
    if reason:
        raise ConfigError(reason, hint=SPARK_INSTALL_HINT)
    from pyspark.sql import SparkSession

    master = master or DEFAULT_SPARK_MASTER
    builder = SparkSession.builder.master(master).appName(app_name)
    settings: dict[str, str] = {
        "spark.ui.showConsoleProgress": "false",
        # timestamps are naive dates from the exports: read and compute them as they are
        "spark.sql.session.timeZone": "UTC",
    }
    if master.startswith("local"):
        settings |= {
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        }
        if local_dir is not None:
            local_dir.mkdir(parents=True, exist_ok=True)
            settings["spark.local.dir"] = str(local_dir)
            settings["spark.sql.warehouse.dir"] = str(local_dir / "warehouse")
    settings |= dict(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def connect_spark(
    cache: TableCache,
    *,
    session: Any = None,
    master: str | None = None,
    scores: Path | None = None,
    conf: dict[str, str] | None = None,
    local_dir: Path | None = None,
) -> Any:
    """An Ibis pyspark backend with the cached tables (and ``scores``) registered as temporary
    views under their names, on ``session`` or a new one (see :func:`spark_session`).

    Disconnecting the backend stops the session; an engine sharing a session keeps it open by
    not disconnecting (``FeatureEngine.release``).
    """
    import ibis

    if session is None:
        session = spark_session(master, conf=conf, local_dir=local_dir)
    con = ibis.pyspark.connect(session)
    for name in (*TABLE_NAMES, "scores"):  # a session may outlive an earlier workspace's views
        session.catalog.dropTempView(name)
    _register(con, cache, scores)
    return con


def open_connection(
    cache: TableCache,
    engine: str = "duckdb",
    *,
    spill_dir: Path | None = None,
    spark_master: str | None = None,
    spark_conf: dict[str, str] | None = None,
    scores: Path | None = None,
) -> Any:
    """A connection of the named ``engine`` ("duckdb" or "spark") over ``cache``; scratch
    files (DuckDB's spill, Spark's local files) under ``spill_dir``."""
    if engine == "duckdb":
        return connect(cache, scores=scores, spill_dir=spill_dir)
    if engine == "spark":
        local = None if spill_dir is None else spill_dir / "spark"
        return connect_spark(
            cache, master=spark_master, conf=spark_conf, scores=scores, local_dir=local
        )
    raise ConfigError(f"unknown engine {engine!r}", hint="use duckdb or spark")


__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_SPARK_MASTER",
    "ENGINES",
    "connect",
    "connect_spark",
    "java_home",
    "open_connection",
    "spark_missing",
    "spark_session",
]
