"""`insight build`: load → features → segments → propensity → CLV → basket → artifacts.

Each stage is timed; a stage that cannot run on this data (too few positives, no campaigns...)
is recorded as skipped with the reason and the build goes on. The result is one versioned build
folder (see :mod:`insight_agent.analytics.artifacts`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from insight_agent.analytics.artifacts import BuildWriter, library_versions
from insight_agent.analytics.checkpoint import FOLDER as CHECKPOINT_FOLDER
from insight_agent.analytics.checkpoint import STATE as CHECKPOINT_STATE
from insight_agent.analytics.checkpoint import Checkpoint, resume_key
from insight_agent.errors import InsightError, InsufficientData
from insight_agent.workspace import Workspace

Progress = Callable[[str, str], None]  # (stage, message)


@dataclass
class BuildOptions:
    """Parameters of a build (recorded in its manifest)."""

    k: int | None = None
    k_range: tuple[int, int] = (3, 8)
    horizon_days: int = 90
    clv_horizon_days: int = 365
    # BG/NBD's purchase occasion: "week" (purchases in the same week count once) or "day"
    # (as the published CDNOW fits; `insight clv check --period` compares the two).
    clv_period: str = "week"
    category_models: int = 3  # purchase-in-category models for the top categories by revenue
    seed: int = 0
    stages: tuple[str, ...] = ("segments", "reviews", "propensity", "clv", "basket", "labels")
    # Models of the customers table's own yes/no columns (analytics/labels.py): the column
    # names, which value is positive (None: yes/true/1 or the rarer value), and columns to
    # leave out or to keep despite the leakage guard.
    labels: tuple[str, ...] = ()
    positive: str | None = None
    exclude: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    # Where the feature tables come from: "duckdb" (the engine, over the Parquet cache, out of
    # core), "spark" (the same expressions on Spark: local[2] or spark_master, with
    # spark_conf; docs/scaling.md) or "pandas" (analytics/features.py, the reference the
    # engine is tested against).
    engine: str = "duckdb"
    spark_master: str | None = None
    spark_conf: dict[str, str] = field(default_factory=dict)
    # Threads for OpenMP/BLAS inside scikit-learn. One is the robust default: models train on
    # capped samples, and on a shared 2-core machine two spinning OpenMP threads ran
    # HistGradientBoosting 6x slower (and KMeans 60x) whenever another process held a core,
    # while passive waiting made every small fit 6x slower. Raise it on a dedicated box.
    threads: int = 1
    # Propensity models trained at the same time (threads: the fits and scoring run outside
    # Python's lock, queries to the engine one at a time). None: up to 4, one per core.
    # Results do not depend on it (each model has its own seeded sample).
    workers: int | None = None


@dataclass
class StageReport:
    """What one stage did."""

    name: str
    status: str = "ok"  # ok | skipped
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False  # finished by an interrupted build and restored from its checkpoint


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def target_column(name: str) -> str:
    """Column of the customer table holding a target's probability."""
    for prefix, short in (("category:", "cat"), ("label:", "label")):
        if name.startswith(prefix):
            slug = "".join(ch if ch.isalnum() else "_" for ch in name[len(prefix) :].lower())
            return f"p_{short}_{slug.strip('_')}"
    return f"p_{name}"


def run_build(
    ws: Workspace, options: BuildOptions | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Build every model for the workspace and publish the artifacts; return the manifest."""
    options = options or BuildOptions()
    pace = Pace(_previous_seconds(ws))
    say = pace.wrap(progress or (lambda stage, msg: None))
    stages: list[StageReport] = []
    started = time.perf_counter()
    from threadpoolctl import threadpool_limits

    with ws.lock(), threadpool_limits(limits=options.threads):
        writer = BuildWriter(ws)
        try:
            manifest = _build(ws, options, writer, stages, say, pace)
            manifest["seconds"] = round(time.perf_counter() - started, 2)
            writer.write_json("manifest.json", manifest)
            writer.commit()
        except BaseException:
            keep = _resumable(writer)
            writer.abort(keep=keep)
            if keep:
                say("build", "stopped; the finished steps are kept: run `insight build` again "
                    "(same data and options) to resume after the last one")  # fmt: skip
            raise
    return manifest


def _previous_seconds(ws: Workspace) -> tuple[dict[str, float], int]:
    """Seconds per stage of the workspace's current build, and its order lines (for ETAs)."""
    from insight_agent.analytics.artifacts import current_build, read_json

    try:
        manifest = read_json(current_build(ws), "manifest.json")
    except (InsightError, OSError, ValueError):  # no build yet, or an unreadable one
        return {}, 0
    # a resumed stage's report keeps the seconds it took when it ran
    seconds = {s["name"]: float(s.get("seconds") or 0.0) for s in manifest.get("stages", [])}
    return seconds, int(manifest.get("data", {}).get("rows", {}).get("orders") or 0)


class Pace:
    """Each stage's throughput and the build's time left, added to the progress messages.

    The estimate is the last build's time for the stages still to run, scaled by the order
    lines now against then (every stage grows with the data); none for a first build.
    ``rows`` (order lines) and ``customers`` are set as the build learns them.
    """

    def __init__(self, previous: tuple[dict[str, float], int]) -> None:
        self.before, self.before_rows = previous
        self.rows = 0
        self.customers = 0
        self.done: set[str] = set()
        self.started: dict[str, float] = {}

    def left(self, running: str | None = None) -> float | None:
        """Seconds the remaining stages took last time, scaled to this data (None: unknown)."""
        if not self.before:
            return None
        # before the data is read, assume it is the size it was
        scale = self.rows / self.before_rows if self.rows and self.before_rows else 1.0
        rest = sum(s for name, s in self.before.items() if name not in self.done)
        if running in self.started and running in self.before:
            spent = time.perf_counter() - self.started[running]
            rest -= min(spent, self.before[running] * scale) / scale
        return max(rest * scale, 0.0)

    def wrap(self, say: Progress) -> Progress:
        """``say`` with "running · about 2 min left" and "ok · 52,000 customers/s"."""

        def paced(stage: str, message: str) -> None:
            if message == "running":
                self.started[stage] = time.perf_counter()
                left = self.left(stage)
                if left is not None and left >= 1:
                    message = f"running · about {_duration(left)} left"
            elif stage not in self.done and (
                message == "ok" or message.startswith(("ok:", "skipped", "resumed"))
            ):  # the stage's end (a resumed one ran in the interrupted build)
                self.done.add(stage)
                count, unit = (
                    (self.rows, "order lines") if stage == "load" else (self.customers, "customers")
                )
                if message == "ok" and count and stage in self.started:
                    seconds = time.perf_counter() - self.started[stage]
                    if seconds > 0:
                        message = f"ok · {count / seconds:,.0f} {unit}/s"
            say(stage, message)

        return paced


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _resume(
    writer: BuildWriter, fingerprint: str, options: BuildOptions, say: Progress
) -> Checkpoint:
    """The checkpoint this build records its steps in: an interrupted build's, when one of
    the same data, options and library versions is left (the writer adopts its folder)."""
    key = resume_key(fingerprint, asdict(options), library_versions())
    found = Checkpoint.find(writer.builds, key, exclude=writer.tmp)
    if found is not None:
        writer.adopt(found)
    checkpoint = Checkpoint(writer.tmp, key)
    if checkpoint.finished:
        say("resume", f"resuming build {writer.build_id}: {len(checkpoint.finished)} finished "
            f"step(s) kept ({', '.join(checkpoint.finished)})")  # fmt: skip
    return checkpoint


def _resumable(writer: BuildWriter) -> bool:
    """Whether a failed build leaves finished steps for the next one to resume."""
    return (writer.tmp / CHECKPOINT_FOLDER / CHECKPOINT_STATE).is_file()


class _Stepper:
    """``step(name, run)``: run a step (``run()`` times its own stages and returns the
    step's result) and checkpoint it — its stage reports, result and the customer columns it
    added — or, when an interrupted build finished it, restore all three instead."""

    def __init__(
        self,
        checkpoint: Checkpoint | None,
        stages: list[StageReport],
        customers: pd.DataFrame,
        say: Progress,
    ) -> None:
        self.checkpoint, self.stages, self.customers, self.say = checkpoint, stages, customers, say

    def finished(self, name: str) -> dict[str, Any] | None:
        """What an interrupted build recorded for step ``name`` (it will be restored), or
        None when the step is still to run."""
        return self.checkpoint.get(name) if self.checkpoint is not None else None

    def __call__(self, name: str, run: Callable[[], Any]) -> Any:
        checkpoint, stages, customers = self.checkpoint, self.stages, self.customers
        done = self.finished(name)
        if checkpoint is not None and done is not None:
            for saved in done["reports"]:
                report = StageReport(**{**saved, "resumed": True})
                stages.append(report)
                self.say(report.name, "resumed: finished by the interrupted build")
            columns = checkpoint.columns(name)
            if columns is not None:
                for col in columns.columns:
                    customers[col] = columns[col].reindex(customers.index)
            return done["result"]
        first, before = len(stages), set(customers.columns)
        result = run()
        if checkpoint is not None:
            added = [c for c in customers.columns if c not in before]
            checkpoint.record(
                name,
                [asdict(r) for r in stages[first:]],
                result,
                customers[added] if added else None,
            )
        return result


@contextlib.contextmanager
def _stage(
    stages: list[StageReport], name: str, say: Progress, *, ran_for: float | None = None
) -> Iterator[StageReport]:
    """Time a stage; InsufficientData marks it skipped (with the reason) instead of failing.
    ``ran_for``: seconds the stage already ran elsewhere (a worker thread, which said it was
    running), added to this part's."""
    report = StageReport(name)
    stages.append(report)
    if ran_for is None:
        say(name, "running")
    start = time.perf_counter()
    try:
        yield report
    except InsufficientData as exc:
        report.status = "skipped"
        report.message = exc.message
    report.seconds = round((ran_for or 0.0) + time.perf_counter() - start, 2)
    report.peak_rss_mb = round(_rss_mb(), 1)
    say(name, report.status + (f": {report.message}" if report.message else ""))


def _build(
    ws: Workspace,
    options: BuildOptions,
    writer: BuildWriter,
    stages: list[StageReport],
    say: Progress,
    pace: Pace,
) -> dict[str, Any]:
    from insight_agent.engine.cache import load_and_cache

    with _stage(stages, "load", say) as st:
        # the validated tables as Parquet: `insight metrics`, the feature engine and later
        # commands read these; a large orders file goes there in chunks, not into memory
        data, cache = load_and_cache(ws)
        pace.rows = data.rows("orders")
        st.details = {
            "customers": len(data.customers),
            "order_rows": data.rows("orders"),
            "returns": data.rows("returns"),
            "reviews": data.rows("reviews"),
            "campaign_sends": data.rows("campaigns"),
        }
        orders = data.report.tables.get("orders")
        if data.streamed and orders is not None and orders.engine:
            st.details["orders_checked_by"] = orders.engine  # one pass, no pandas chunks
        elif data.streamed and orders is not None:
            st.details["orders_read_in_chunks"] = orders.chunks
    if data.rows("orders") == 0:
        return _build_without_orders(ws, data, options, writer, stages, say)
    checkpoint = _resume(writer, data.fingerprint, options, say)

    with contextlib.ExitStack() as cleanup:
        with _stage(stages, "features", say) as st:
            source = _feature_source(ws, data, cache, options, cleanup)
            if options.engine != "pandas":
                # every later stage reads the orders from the engine: the validated lines
                # (millions of rows at scale) need not stay in memory
                data.orders, data.returns = data.orders.iloc[:0], data.returns.iloc[:0]
            X = source.features(source.end).X
            pace.customers = len(X)
            st.details = {
                "cutoff": str(source.end.date()),
                "customers": len(X),
                "features": X.shape[1],
                "orders": source.n_orders,
                "engine": options.engine,
            }
            if options.engine == "spark":
                st.details["spark_master"] = options.spark_master or "local[2]"
        return _build_from_features(ws, data, options, writer, stages, say, source, X, checkpoint)


@dataclass
class _Source:
    """What the stages after the feature table read about the orders, from the engine (or
    from pandas, the reference): features per cutoff (propensity reuses the cutoffs computed
    here), the scoring cutoff, the category columns, the number of orders, the propensity
    labels' outcomes and each customer's spend per category."""

    features: Any  # SliceCache: cutoff -> FeatureFrame
    end: pd.Timestamp
    categories: list[str]
    n_orders: int
    outcomes: Any  # analytics.propensity.Outcomes
    category_spend: Callable[[], pd.Series | None]
    # (cutoff, period_days) -> analytics.clv.ClvInputs
    clv_inputs: Callable[[pd.Timestamp, float], Any]
    # the order lines the basket analysis reads (the engine reduces them first)
    basket_lines: Callable[[], pd.DataFrame]
    # the baskets and customers as item masks (analytics.basket.BasketCounts), when the engine
    # can reduce them so (None: the analysis reads basket_lines), and spend per segment
    basket_counts: Callable[[], Any] = lambda: None
    segment_spend: Callable[[pd.Series], pd.DataFrame | None] = lambda segments: None
    # spend per segment and category, refunds netted (the segment profiles' top categories),
    # when the engine sums it (None: the profiles read category_spend)
    net_segment_spend: Callable[[pd.Series], pd.DataFrame | None] | None = None
    # the engine's connection answers one query at a time: every thread of the build that
    # asks it something holds this
    lock: Any = field(default_factory=threading.RLock)


def _feature_source(
    ws: Workspace,
    data: Any,
    cache: Any,
    options: BuildOptions,
    cleanup: contextlib.ExitStack,
) -> _Source:
    """Where the build's order-based stages read from. The engine's connection is closed by
    ``cleanup``.

    The engine (DuckDB over the Parquet cache) by default, or the same expressions on Spark
    (``options.engine == "spark"``); ``"pandas"`` uses analytics/features.py, the reference
    the engine's output is tested against.
    """
    from insight_agent.analytics.propensity import Outcomes, SliceCache, dataset_features

    # the engine's connection answers one query at a time: every thread asking it holds this
    lock = threading.RLock()
    if options.engine == "pandas" and data.streamed:
        # the reference path reads the order lines in memory: from the cache, where the
        # chunked load wrote them
        data.orders, data.returns = cache.read("orders"), cache.read("returns")
    if options.engine == "pandas":
        from insight_agent.analytics.clv import clv_inputs
        from insight_agent.analytics.features import (
            category_spend,
            order_table,
            scoring_cutoff,
            top_categories,
        )

        table = order_table(data.orders)
        categories = top_categories(data.orders)
        return _Source(
            features=dataset_features(
                data, orders_table=table, categories=categories, seed=options.seed, lock=lock
            ),
            end=scoring_cutoff(data.orders),
            categories=categories,
            n_orders=len(table),
            outcomes=Outcomes(data.orders, data.campaigns),
            category_spend=lambda: category_spend(data.orders),
            clv_inputs=lambda cut, days: clv_inputs(data.orders, cut, period_days=days),
            basket_lines=lambda: data.orders,
            lock=lock,
        )
    from insight_agent.engine.backend import open_connection
    from insight_agent.engine.basket import basket_counts, segment_spend
    from insight_agent.engine.cache import spill_dir
    from insight_agent.engine.features import FeatureEngine

    con = open_connection(
        cache,
        options.engine,
        spill_dir=spill_dir(ws),
        spark_master=options.spark_master,
        spark_conf=options.spark_conf,
    )
    if options.engine == "duckdb":
        # jemalloc inside DuckDB keeps freed pages until told to purge them: with a thread
        # doing it, a 1M-customer build's basket query left ~0.3-0.8 GB less resident
        con.raw_sql("SET allocator_background_threads = true")
    engine = FeatureEngine(con)
    cleanup.callback(engine.close)
    categories = engine.top_categories()
    return _Source(
        features=SliceCache(
            lambda cutoff: engine.features(cutoff, categories=categories),
            # the labels' windows as flags of the population (no text-id lookups)
            population_fn=lambda cutoff: engine.population(
                cutoff,
                horizon_days=options.horizon_days,
                categories=categories[: options.category_models],
            ),
            rows_fn=lambda cutoff, ids: engine.features(cutoff, categories=categories, ids=ids),
            seed=options.seed,
            lock=lock,
        ),
        end=engine.scoring_cutoff(),
        categories=categories,
        n_orders=int(engine.order_table().count().execute()),
        outcomes=engine.outcomes(),
        category_spend=engine.category_spend,
        clv_inputs=lambda cut, days: engine.clv_inputs(cut, period_days=days),
        basket_lines=engine.basket_lines,
        basket_counts=lambda: basket_counts(engine),
        segment_spend=lambda segments: segment_spend(engine, segments),
        net_segment_spend=lambda segments: _locked(lock, segment_spend, engine, segments, net=True),
        lock=lock,
    )


def _locked(lock: Any, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``run(*args, **kwargs)`` holding ``lock`` (the engine's one query at a time)."""
    with lock:
        return run(*args, **kwargs)


def _build_from_features(
    ws: Workspace,
    data: Any,
    options: BuildOptions,
    writer: BuildWriter,
    stages: list[StageReport],
    say: Progress,
    source: _Source,
    X: pd.DataFrame,
    checkpoint: Checkpoint | None,
) -> dict[str, Any]:
    """The stages after the feature table: segments, reviews, propensity, CLV, basket, labels.
    Each is a step of ``checkpoint``: restored when an interrupted build finished it."""
    customers = (
        X[["recency_days", "frequency", "monetary_total", "avg_order_value", "tenure_days"]]
        .round(2)
        .copy()
    )
    _add_demographics(customers, data.customers)
    results: dict[str, Any] = {}
    step = _Stepper(checkpoint, stages, customers, say)

    def staged(name: str, run: Callable[[StageReport], Any]) -> None:
        """One stage as one step; its result goes to the manifest unless it was skipped."""

        def one() -> Any:
            with _stage(stages, name, say) as st:
                return run(st)
            return None  # skipped (InsufficientData): the report says why

        value = step(name, one)
        if value is not None:
            results[name] = value

    if "segments" in options.stages:
        staged("segments", lambda st: _segments(X, source, options, writer, customers, st))
    if "reviews" in options.stages:
        staged("reviews", lambda st: _reviews(ws, data, customers, options, st, say))
    # CLV and the basket rules read the customers and their segments, not the models: with
    # several workers they are computed in a thread of their own while the models train,
    # then committed in their usual place (same columns, files and checkpoints)
    side = {
        name: compute
        for name, compute in (("clv", _clv_compute), ("basket", _basket_compute))
        if name in options.stages and step.finished(name) is None
    }
    early: dict[str, Future[_Computed]] = {}
    pool = None
    if "propensity" in options.stages and _workers(options) > 1 and side:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="side")
        segments = customers.get("segment_name")
        segments = None if segments is None else segments.copy()
        for name, compute in side.items():
            early[name] = pool.submit(
                _compute_part, name, say, compute, source, options, customers.index, segments
            )

    def part(name: str) -> _Computed:
        """Stage ``name``'s computed part: from its thread, or computed now."""
        if name in early:
            return early[name].result()
        return _compute_part(
            name, say, side[name], source, options, customers.index, customers.get("segment_name")
        )

    try:
        if "propensity" in options.stages:
            results["models"] = _propensity(
                source, X, options, writer, customers, stages, say, step
            )
        for name, commit in (("clv", _clv_commit), ("basket", _basket_commit)):
            if name in options.stages:
                value = step(
                    name,
                    lambda n=name, c=commit: _commit_part(
                        n, c, part(n), writer, customers, stages, say
                    ),
                )
                if value is not None:
                    results[name] = value
    finally:
        if pool is not None:
            for future in early.values():
                future.cancel()
            pool.shutdown(wait=True)
    if "labels" in options.stages and options.labels:
        labels = step("labels", lambda: _labels(data, options, writer, customers, stages, say, X))
        results.setdefault("models", {}).update(labels)

    with _stage(stages, "write", say):
        customers.index.name = "customer_id"
        writer.write_customers(customers)
    return _manifest(writer, data, options, stages, str(source.end.date()), results)


DEMOGRAPHICS = ("age", "gender", "region", "country", "channel", "income")


def _add_demographics(customers: pd.DataFrame, people: pd.DataFrame) -> None:
    """Who the customers are (for segment profiles and personas): the demographic columns
    the customers file has, carried over as given. The file's table indexed by id is a copy
    (~170 MB a million customers): it lives only in this call, not for the whole build."""
    people = people.drop_duplicates("customer_id").set_index("customer_id")
    for column in DEMOGRAPHICS:
        if column in people and people[column].notna().any():
            customers[column] = people[column].reindex(customers.index)


_ORDER_STAGES = ("features", "segments", "propensity", "clv", "basket")


def _skip(stages: list[StageReport], name: str, reason: str, say: Progress) -> None:
    """Record a stage that cannot run on this data, with the reason."""
    stages.append(StageReport(name, status="skipped", message=reason))
    say(name, f"skipped: {reason}")


def _build_without_orders(
    ws: Workspace,
    data: Any,
    options: BuildOptions,
    writer: BuildWriter,
    stages: list[StageReport],
    say: Progress,
) -> dict[str, Any]:
    """A build from what there is when there are no orders: the customers table's own
    labels, the review index; the order-based stages are skipped with the reason."""
    for name in _ORDER_STAGES:
        _skip(stages, name, "no orders table (segments, RFM, churn, CLV and basket rules "
              "need order history)", say)  # fmt: skip
    ids = data.customers["customer_id"].drop_duplicates()
    customers = pd.DataFrame(index=pd.Index(ids, name="customer_id"))
    _add_demographics(customers, data.customers)
    results: dict[str, Any] = {}
    if "reviews" in options.stages:
        with _stage(stages, "reviews", say) as st:
            results["reviews"] = _reviews(ws, data, customers, options, st, say)
    if "labels" in options.stages and options.labels:
        results["models"] = _labels(data, options, writer, customers, stages, say, None)
    if "labels" in options.stages and (
        response := campaign_response(data.customers, data.campaigns)
    ):
        # no orders, so no order-based response model: the campaign's outcome is a label
        frame, label, meaning = response
        models = _labels(
            data,
            options,
            writer,
            customers,
            stages,
            say,
            None,
            frame=frame,
            labels=(label,),
            positive="yes",
            meaning=meaning,
        )
        results.setdefault("models", {}).update(models)
    with _stage(stages, "write", say):
        customers.index.name = "customer_id"
        writer.write_customers(customers)
    from insight_agent.engine.cache import cached

    found = cached(ws, data.fingerprint)
    return _manifest(writer, data, options, stages, found.data_up_to if found else None, results)


def _manifest(
    writer: BuildWriter,
    data: Any,
    options: BuildOptions,
    stages: list[StageReport],
    cutoff: str | None,
    results: dict[str, Any],
) -> dict[str, Any]:
    """The build's manifest: versions, data fingerprint and cutoff, options, stages, results."""
    return {
        "build_id": writer.build_id,
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "versions": library_versions(),
        "data": {
            "fingerprint": data.fingerprint,
            "sources": data.sources,
            "cutoff": cutoff,
            "rows": {k: v.rows_kept for k, v in data.report.tables.items()},
        },
        "options": asdict(options),
        "stages": [asdict(s) for s in stages],
        **results,
    }


def campaign_response(
    customers: pd.DataFrame, campaigns: pd.DataFrame | None
) -> tuple[pd.DataFrame, str, str] | None:
    """The customers table with a yes/no column saying whether each customer responded to
    the campaign they were sent (customers never sent one: missing, so scored but not
    trained on), its name and its meaning; None without campaign sends.

    One campaign: "responded to <campaign>". Several, one send per customer: the pooled
    response to the campaign each was sent, and which campaign becomes a feature. Several
    sends per customer: responded to at least one of them."""
    if campaigns is None or campaigns.empty:
        return None
    people = customers.drop_duplicates("customer_id").reset_index(drop=True)
    sends = campaigns.dropna(subset=["customer_id"])
    per = sends.groupby("customer_id").agg(
        responded=("responded", "max"), sends=("responded", "size"), campaign=("campaign", "first")
    )
    names = sorted(sends["campaign"].dropna().astype(str).unique())
    label = "response" if "response" not in people.columns else "campaign_response"
    answered = people["customer_id"].map(per["responded"])
    people[label] = answered.map({True: "yes", False: "no"}).astype("string")
    if len(names) == 1:
        meaning = f"responded to {names[0]}"
    elif per["sends"].max() == 1:
        meaning = f"responded to the campaign they were sent ({len(names)} campaigns pooled)"
        column = "campaign" if "campaign" not in people.columns else "campaign_sent"
        people[column] = people["customer_id"].map(per["campaign"]).astype("string")
    else:
        meaning = f"responded to at least one of their sends ({len(names)} campaigns pooled)"
    return people, label, meaning


def _labels(
    data: Any,
    options: BuildOptions,
    writer: BuildWriter,
    customers: pd.DataFrame,
    stages: list[StageReport],
    say: Progress,
    order_features: pd.DataFrame | None,
    *,
    frame: pd.DataFrame | None = None,
    labels: tuple[str, ...] | None = None,
    positive: str | None = None,
    meaning: str | None = None,
) -> dict[str, Any]:
    """One model per label column of the customers table (analytics/labels.py), or of
    ``labels`` in ``frame`` (a customers table with a derived label, e.g. campaign response;
    ``meaning`` then says what the label is)."""
    import joblib

    from insight_agent.analytics.labels import label_card, score_label, train_label_model

    cards: dict[str, Any] = {}
    people = data.customers if frame is None else frame
    people = people.drop_duplicates("customer_id").reset_index(drop=True)
    for label in options.labels if labels is None else labels:
        target = f"label:{label}"
        with _stage(stages, f"propensity:{target}", say) as st:
            model = train_label_model(
                people,
                label,
                positive=options.positive if positive is None else positive,
                exclude=list(options.exclude),
                keep=list(options.keep),
                extra_features=order_features,
                seed=options.seed,
            )
            scored = score_label(
                model,
                people.join(order_features.add_prefix("orders_"), on="customer_id")
                if order_features is not None
                else people,
            )
            scored.index = people["customer_id"].to_numpy()
            col = target_column(target)
            base = col.removeprefix("p_")
            customers[col] = scored["probability"].reindex(customers.index)
            customers[f"{base}_decile"] = scored["decile"].reindex(customers.index)
            customers[f"{base}_reasons"] = scored["reasons"].reindex(customers.index)
            card = label_card(model)
            card["column"] = col
            if meaning:
                card["meaning"] = meaning
                card["own_label"] = False  # e.g. past campaign responders: still prospects
            writer.write_json(f"models/{_file_name(target)}.json", card)
            model.oof_ = None  # the build's scores keep them; a saved model scores new rows
            joblib.dump(model, writer.path("models", f"{_file_name(target)}.joblib"))
            cards[target] = {
                "roc_auc": model.metrics["roc_auc"],
                "pr_auc": model.metrics["pr_auc"],
                "family": model.family,
                "column": col,
                "excluded": [x["column"] for x in model.leakage],
            }
            st.details = cards[target]
    return cards


def _segments(
    X: pd.DataFrame,
    source: _Source,
    options: BuildOptions,
    writer: BuildWriter,
    customers: pd.DataFrame,
    st: StageReport,
) -> dict[str, Any]:
    from insight_agent.analytics.segmentation import segment_customers

    by_segment = source.net_segment_spend
    seg = segment_customers(
        X,
        k=options.k,
        k_range=options.k_range,
        seed=options.seed,
        # the engine sums spend per segment: each customer's spend per category (~45M rows
        # at 10M customers) was ~6 GB of the segments stage's memory there
        category_spend=None if by_segment is not None else source.category_spend(),
        spend_by_segment=by_segment,
    )
    customers["segment"] = seg.labels.reindex(customers.index)
    customers["segment_name"] = customers["segment"].map(seg.names)
    customers[["R", "F", "M", "rfm"]] = seg.rfm.reindex(customers.index)[["R", "F", "M", "rfm"]]
    profiles = seg.profiles.reset_index().to_dict(orient="records")
    payload = {
        "k": seg.k,
        "names": seg.names,
        "profiles": profiles,
        "rules": seg.rules,
        "tree_fidelity": round(seg.tree_fidelity, 3),
        "silhouette": {str(k): round(v, 3) for k, v in seg.silhouette.items()},
        "reference_silhouette": None
        if seg.reference_silhouette is None
        else round(seg.reference_silhouette, 3),
        "features": seg.features,
        "params": seg.params,
    }
    # seg.model (scaler, k-means) is not saved: nothing loads it (`insight score --record`
    # scores the propensity and label models; it does not assign segments)
    writer.write_json("segments.json", payload)
    st.details = {
        "k": seg.k,
        "tree_fidelity": payload["tree_fidelity"],
        "names": sorted(set(seg.names.values())),
    }
    return {"k": seg.k, "names": seg.names, "tree_fidelity": payload["tree_fidelity"]}


def _reviews(
    ws: Workspace,
    data: Any,
    customers: pd.DataFrame,
    options: BuildOptions,
    st: StageReport,
    say: Progress,
) -> dict[str, Any]:
    """Bring the review index in line with the data (only new or edited reviews are embedded;
    segment changes update metadata). The index lives in .insight/chroma, outside builds."""
    if data.reviews is None or len(data.reviews) == 0:
        raise InsufficientData("no reviews table: nothing to index (add [data.reviews])")
    from insight_agent.vectorstore.store import open_index
    from insight_agent.vectorstore.textmodel import train_text_sentiment

    reviews = data.reviews
    text_model = None
    if "rating" in reviews and "text" in reviews:
        say("reviews", "training the sentiment model on rated reviews")
        text_model = train_text_sentiment(reviews["text"], reviews["rating"])
    model_dir = ws.artifacts / "reviews"
    if text_model is not None:
        text_model.save(model_dir)
    else:  # no ratings (or too few): the lexicon labels text, and a stale model must not linger
        (model_dir / "sentiment.joblib").unlink(missing_ok=True)
    index = open_index(ws.artifacts, ws.settings.vectorstore.chroma_url)
    segments = customers["segment_name"].dropna() if "segment_name" in customers else None
    started = time.perf_counter()

    def embedded(done: int, total: int) -> None:
        # Shown by `insight build` as a live line; an interrupted ingest resumes from here.
        rate = done / max(time.perf_counter() - started, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        say("reviews", f"embedding {done:,}/{total:,} new reviews · {rate:.0f}/s · ETA {eta:.0f} s")

    def units(done: int, total: int) -> None:
        say("reviews", f"embedding opinion units {done:,}/{total:,}")

    report = asdict(
        index.sync(reviews, segments, progress=embedded, text_model=text_model, unit_progress=units)
    )
    report["sentiment_model"] = (
        {"cv_auc": round(text_model.cv_auc, 4), "trained_on": text_model.n_train}
        if text_model is not None
        else "none (fewer than 200 rated reviews with text, or one class only): lexicon used"
    )
    st.details = report
    return report


def _workers(options: BuildOptions) -> int:
    """Models trained at once (the build's default: one per core, up to 4)."""
    return max(1, options.workers or min(4, os.cpu_count() or 1))


@dataclass
class _Computed:
    """A stage's work done ahead in a thread (or the InsufficientData that skips it)."""

    value: Any
    skipped: InsufficientData | None
    seconds: float


def _compute_part(
    name: str,
    say: Progress,
    compute: Callable[..., Any],
    source: _Source,
    options: BuildOptions,
    index: pd.Index,
    segments: pd.Series | None,
) -> _Computed:
    """Run a stage's computing part (on the build's thread, or in one of its own)."""
    from threadpoolctl import threadpool_limits

    say(name, "running")
    started = time.perf_counter()
    with threadpool_limits(limits=options.threads):  # a new thread: the build's limit again
        try:
            value = compute(source, options, index, segments)
        except InsufficientData as exc:
            return _Computed(None, exc, time.perf_counter() - started)
    return _Computed(value, None, time.perf_counter() - started)


def _commit_part(
    name: str,
    commit: Callable[[Any, BuildWriter, pd.DataFrame, StageReport], Any],
    done: _Computed,
    writer: BuildWriter,
    customers: pd.DataFrame,
    stages: list[StageReport],
    say: Progress,
) -> Any:
    """Stage ``name`` (CLV or basket) from its computed part: its columns and files; its
    seconds are the part's plus the commit's. None when the data cannot support it (the
    report says why)."""
    with _stage(stages, name, say, ran_for=done.seconds) as st:
        if done.skipped is not None:
            raise done.skipped
        return commit(done.value, writer, customers, st)
    return None


def _propensity(
    source: _Source,
    X: pd.DataFrame,
    options: BuildOptions,
    writer: BuildWriter,
    customers: pd.DataFrame,
    stages: list[StageReport],
    say: Progress,
    step: _Stepper,
) -> dict[str, Any]:
    """One model per target (churn, purchase, response, top categories), each its own step
    (checkpointed: an interrupted build resumes after the last finished model).

    Models are trained and scored ``options.workers`` at a time in threads (scikit-learn's
    fits and numpy release Python's lock; the engine is asked one query at a time), then
    committed in target order on this thread: their columns, cards and checkpoints are
    exactly a one-at-a-time build's. A model's stage seconds are its own training and
    scoring, so with several workers the propensity stages overlap in time."""
    from insight_agent.analytics.propensity import SerialOutcomes, Target

    targets = [Target("churn", "churn"), Target("purchase", "purchase")]
    if source.outcomes.has_campaigns:
        targets.append(Target("response", "response"))
    targets += [
        Target(f"category:{c}", "category", c) for c in source.categories[: options.category_models]
    ]
    outcomes = SerialOutcomes(source.outcomes, source.lock)  # source.features holds it too
    history_start = outcomes.first_order()
    purchase: Future[_Fitted] | None = None

    def family() -> list[str] | None:
        """Category models reuse the purchase model's family (build time)."""
        if purchase is not None:
            fitted = purchase.result()
            return [fitted.model.family] if fitted.model is not None else None
        done = step.finished("propensity:purchase")  # resumed: its card says
        return [done["result"]["family"]] if done and done["result"] else None

    def fit(target: Target) -> _Fitted:
        from threadpoolctl import threadpool_limits

        from insight_agent.analytics.propensity import score_customers, train_propensity

        say(f"propensity:{target.name}", "running")
        started = time.perf_counter()
        # a new thread starts with OpenMP's default thread count: set the build's again
        with threadpool_limits(limits=options.threads):
            try:
                model = train_propensity(
                    target,
                    outcomes,
                    source.features,
                    source.end,
                    horizon_days=options.horizon_days,
                    history_start=history_start,
                    families=family() if target.kind == "category" else None,
                    seed=options.seed,
                )
                reasons = 3 if target.kind != "category" else 0
                scored = score_customers(model, X, n_reasons=reasons)
            except InsufficientData as exc:
                return _Fitted(None, None, exc, time.perf_counter() - started)
        return _Fitted(model, scored, None, time.perf_counter() - started)

    todo = [t for t in targets if step.finished(f"propensity:{t.name}") is None]
    cards: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=_workers(options), thread_name_prefix="propensity") as pool:
        futures: dict[str, Future[_Fitted]] = {}
        for target in todo:  # in order: the purchase model starts before any category model
            futures[target.name] = pool.submit(fit, target)
            if target.kind == "purchase":
                purchase = futures[target.name]
        try:
            for target in targets:
                name = f"propensity:{target.name}"
                card = step(
                    name,
                    lambda t=target, n=name: _commit_model(
                        t, futures[t.name].result(), writer, customers, stages, say
                    ),
                )
                if card is not None:
                    cards[target.name] = card
        except BaseException:
            for future in futures.values():
                future.cancel()  # an interrupted build stops queued models
            raise
    return cards


@dataclass
class _Fitted:
    """A model trained and scored in a worker thread (or why it could not be)."""

    model: Any
    scored: pd.DataFrame | None
    skipped: InsufficientData | None
    seconds: float


def _commit_model(
    target: Any,
    fitted: _Fitted,
    writer: BuildWriter,
    customers: pd.DataFrame,
    stages: list[StageReport],
    say: Progress,
) -> dict[str, Any] | None:
    """A trained model's stage report, customer columns, card and pickle (on the build's
    thread, in target order); None when it was skipped."""
    import joblib

    from insight_agent.analytics.propensity import PROB_CEIL, PROB_FLOOR

    name = f"propensity:{target.name}"
    with _stage(stages, name, say, ran_for=fitted.seconds) as st:
        if fitted.skipped is not None:
            raise fitted.skipped  # too few positives, too little history...: skipped
        model, scored = fitted.model, fitted.scored
        col = target_column(target.name)
        # rounded, then bounded again: 4 decimals must not turn 0.99996 into 1.0
        customers[col] = scored["probability"].round(4).clip(PROB_FLOOR, PROB_CEIL)
        if target.kind != "category":
            customers[col.replace("p_", "", 1) + "_decile"] = scored["decile"]
            customers[col.replace("p_", "", 1) + "_reasons"] = scored["reasons"]
        fitted.scored = None  # its columns are the customer table's now (memory)
        card = model_card(model)
        card["column"] = col
        writer.write_json(f"models/{_file_name(target.name)}.json", card)
        joblib.dump(model, writer.path("models", f"{_file_name(target.name)}.joblib"))
        st.details = {
            "roc_auc": model.metrics["roc_auc"],
            "pr_auc": model.metrics["pr_auc"],
            "family": model.family,
            "column": col,
        }
        return st.details
    return None


def _file_name(target: str) -> str:
    return target.replace(":", "__").replace("/", "_").replace(" ", "_")


def model_card(model: Any) -> dict[str, Any]:
    """JSON model card: what it predicts, how well (out of time), and what drives it."""
    return {
        "target": model.target.name,
        "meaning": model.target.description.format(h=model.horizon_days),
        "horizon_days": model.horizon_days,
        "family": model.family,
        "comparison": model.comparison,
        "metrics": model.metrics,
        "drivers": model.drivers,
        "n_features": len(model.features),
        "params": model.params,
        "scored_at": str(model.cutoff.date()),
    }


def _clv_compute(
    source: _Source, options: BuildOptions, index: pd.Index, segments: pd.Series | None
) -> dict[str, Any]:
    """The CLV fit and each customer's values (no side effects: may run in a thread)."""
    from insight_agent.analytics.clv import customer_values, fit_clv, summarise_clv

    period_days = {"day": 1.0, "week": 7.0}[options.clv_period]
    # the last day before the scoring cutoff T; its orders count
    with source.lock:
        inputs = source.clv_inputs(source.end - pd.Timedelta(days=1), period_days)
    result = fit_clv(
        inputs,
        horizon_days=options.clv_horizon_days,
        period_days=period_days,
    )
    per = result.customers.reindex(index)
    values, report = customer_values(result, index)
    summary = summarise_clv(per.dropna(subset=["clv"]), segments)
    return {
        "params": result.params,
        "values": values,
        "report": report,
        "summary": summary,
        "period": options.clv_period,
        "horizon_days": options.clv_horizon_days,
    }


def _clv_commit(
    done: dict[str, Any], writer: BuildWriter, customers: pd.DataFrame, st: StageReport
) -> dict[str, Any]:
    """The CLV columns, clv.json and the stage's report."""
    values, report, params = done["values"], done["report"], done["params"]
    customers["clv_12m"] = values["clv"]
    customers["p_alive"] = values["p_alive"]
    customers["expected_purchases_12m"] = values["expected_purchases"]
    customers["clv_note"] = values["note"]  # why a figure is missing or 1 by construction
    payload = {
        "params": params,
        "period": done["period"],  # what one purchase occasion is for BG/NBD
        "horizon_days": done["horizon_days"],
        "summary": done["summary"].reset_index().to_dict(orient="records"),
        **report,
    }
    writer.write_json("clv.json", payload)
    st.details = {"params": params, **report}
    if report["customers_without_clv"]["only_zero_value_orders"]:
        st.message = report["notes"][0]  # "68 customers have only zero-value orders: no CLV"
    return {"params": params, "customers_without_clv": report["customers_without_clv"]}


def _basket_compute(
    source: _Source, options: BuildOptions, index: pd.Index, segments: pd.Series | None
) -> dict[str, Any]:
    """Category rules, each customer's next best category and the per-segment table (no
    side effects: may run in a thread)."""
    from insight_agent.analytics.basket import (
        association_rules,
        next_best,
        next_best_by_segment,
        next_best_from_counts,
    )

    with source.lock:
        counts = source.basket_counts()
    by_seg = None
    if counts is not None:  # the engine reduced the lines to item masks
        rules = association_rules(counts)
        best = next_best_from_counts(counts, rules, customers=index)
        if segments is not None:
            labelled = segments.dropna()
            with source.lock:
                spend = source.segment_spend(labelled)
            by_seg = next_best_by_segment(None, rules, labelled, best=best, spend=spend)
        return {"rules": rules, "best": best, "by_segment": by_seg}
    with source.lock:
        orders = source.basket_lines()
    rules = association_rules(orders, level="category")
    best = next_best(orders, rules, customers=index)
    if segments is not None:
        by_seg = next_best_by_segment(orders, rules, segments.dropna(), best=best)
    return {"rules": rules, "best": best, "by_segment": by_seg}


def _basket_commit(
    done: dict[str, Any], writer: BuildWriter, customers: pd.DataFrame, st: StageReport
) -> dict[str, Any]:
    """The next-best columns, basket.json and the stage's report."""
    from insight_agent.analytics.basket import to_facts

    rules, best = done["rules"], done["best"]
    customers["next_best_category"] = best["item"].reindex(customers.index)
    customers["next_best_reason"] = best["reason"].reindex(customers.index)
    payload: dict[str, Any] = {"facts": to_facts(rules), "n_baskets": rules.n_baskets}
    payload["rules"] = (
        rules.rules.head(200)
        .assign(antecedent=lambda d: d["antecedent"].map(list))
        .to_dict(orient="records")
    )
    if done["by_segment"] is not None:
        payload["by_segment"] = done["by_segment"].to_dict(orient="records")
    writer.write_json("basket.json", payload)
    st.details = {"rules": len(rules.rules), "baskets": rules.n_baskets}
    return {"rules": len(rules.rules)}


__all__ = ["BuildOptions", "model_card", "run_build", "target_column"]
