"""The query engine: the validated Parquet cache of a workspace's tables and the queries that
run over it (DuckDB through Ibis, so the same expressions can later run on Spark or a
warehouse).

* :mod:`insight_agent.engine.cache` — validated tables as Parquet, keyed by the data
  fingerprint: written once by ``validate`` / ``build``, read by every later command instead
  of the CSVs.
* :mod:`insight_agent.engine.backend` — one DuckDB connection (memory limit, spill folder
  under ``.insight/``) with the cached tables registered.
* :mod:`insight_agent.engine.periods` — "last 12 months", "2025-Q3", "since 2025-01-01" …
  resolved against the data's cutoff date.
* :mod:`insight_agent.engine.metrics` — the metrics catalogue (measures, dimensions) and its
  query compiler. No SQL text is ever written by a model: a query is a typed request.
"""
