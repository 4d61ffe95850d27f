"""The customer feature table at a cutoff, as Ibis expressions run by the engine (DuckDB, out of
core) over the validated Parquet cache.

Same columns, names, order and values as :func:`insight_agent.analytics.features.customer_features`
(the pandas reference, kept for the equality test): the rules are that module's, restated as
group-bys and conditional aggregates so that 10M customers never sit in pandas at once.

* orders are identified by order_id when the export has one (lines without one fall back to
  ``day:YYYY-MM-DD``), else by customer and day; an order's date is its first line's, its
  amount the sum of its lines;
* everything counts events strictly before the cutoff; the population is every customer with
  an order before it, plus every customer who signed up before it;
* category shares are of each customer's categorised spend, for the top categories by spend
  (ties: alphabetical); spend in the remaining categories stays in the denominator ("other");
* demographic one-hot levels are the (at most 8) most frequent among the population (ties: the
  level of the lowest customer id first), a column constant in the population is left out.

Where pandas and the engine could differ in the last bit of a float (sums in another order),
the float32 cast both apply makes the tables equal; the tests assert it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The feature definitions both implementations share (analytics/features.py imports them).
WINDOWS = (30, 90, 180)
MAX_CATEGORIES = 12  # category-share columns; the rest fold into "other"
MAX_LEVELS = 8  # one-hot levels per demographic column
#: Customers one feature query covers at most: above it, :meth:`FeatureEngine.features` runs one
#: query per range of customer ids. At 10M customers under the engine's 2 GB limit a range of
#: 1M took 14 s (peak 2.2 GB), one of 2M 26 s; at 2M customers four ranges took as long as
#: one query.
SHARD_CUSTOMERS = 1_000_000


@dataclass
class _Base:
    """What :meth:`FeatureEngine._base` starts a feature table from: ``table`` (one row per
    customer of the population, or of the part of it asked for, with the order aggregates),
    the first feature ``cols`` and ``tenure``."""

    table: Any
    cols: dict[str, Any]
    tenure: Any


@dataclass
class FeatureFrame:
    """Features for one cutoff: ``X`` (numeric, one row per customer) and what it describes."""

    X: pd.DataFrame
    cutoff: pd.Timestamp
    categories: list[str]


def slug(name: str) -> str:
    """A category's column suffix: ``share_<slug>`` (lower case, non-alphanumerics as _)."""
    return "".join(ch if ch.isalnum() else "_" for ch in str(name).lower()).strip("_")


_US_PER_DAY = 86400.0
_CATEGORICAL = ("gender", "region", "channel", "country")
_NUMERIC = ("age", "income")


def to_frame(table: Any, index: str | None = None) -> pd.DataFrame:
    """An Arrow query result as pandas, text columns (and the ``index`` column, when given)
    as pandas' string dtype, the same as the validated frames, sorted by ``index``.

    Arrow strings come back as pandas' default ``str`` (NaN for missing) or as objects; the
    pandas reference holds them as "string" (NA for missing), and frames compared or joined
    across the two must agree."""
    from insight_agent.engine.cache import text_as_string

    frame = text_as_string(table.to_pandas())
    if index is not None:
        frame = frame.set_index(index).sort_index()
    return frame


def float32_frame(table: Any, index: str, names: list[str]) -> pd.DataFrame:
    """An Arrow result of ``index`` and float32 columns (in that order) as one float32 block
    named ``names``, indexed and sorted by ``index`` (text as pandas' "string" dtype, as in
    :func:`to_frame`). One allocation for the block: pandas' own conversion builds a float
    array per column and copies them again when they are combined.

    ``table`` may also be an iterable of such results (their rows end to end), each copied
    out as it comes and let go before the next (an Arrow result from DuckDB is freed only
    when none of its columns is referenced): at 10M customers, holding the results until
    the block was filled took the process from 4.4 to 6.6 GB."""
    import pyarrow as pa

    blocks, labels = [], []
    for part in [table] if isinstance(table, pa.Table) else table:
        block = np.empty((len(names), part.num_rows), dtype=np.float32)
        for i in range(len(names)):
            block[i] = part.column(i + 1).to_numpy()  # nulls come back as NaN
        blocks.append(block)
        ids = part.column(0)
        if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
            labels.append(pd.Series(pd.array(ids.combine_chunks(), dtype=pd.StringDtype())))
        else:
            labels.append(ids.to_pandas())
        del part, ids, block
    if len(blocks) == 1:
        block = blocks.pop()
    else:  # a part's block is freed once copied (the block's pages are taken as it fills)
        block = np.empty((len(names), sum(b.shape[1] for b in blocks)), dtype=np.float32)
        at = 0
        while blocks:
            part_block = blocks.pop(0)
            block[:, at : at + part_block.shape[1]] = part_block
            at += part_block.shape[1]
            del part_block
    if not labels:
        labels.append(pd.Series(pd.array([], dtype=pd.StringDtype())))
    found = labels[0] if len(labels) == 1 else pd.concat(labels, ignore_index=True)
    index_ = pd.Index(found, name=index)
    frame = pd.DataFrame(block.T, index=index_, columns=names, copy=False)
    return frame if index_.is_monotonic_increasing else frame.sort_index()


def memtable(columns: dict[str, Any]) -> Any:
    """An in-memory engine table (a DuckDB relation, or a Spark DataFrame, like the cached
    tables) of ``columns``: Arrow arrays, or pandas ids/labels sent as Arrow text."""
    import ibis
    import pyarrow as pa

    arrays = {}
    for name, values in columns.items():
        if isinstance(values, pd.Index | pd.Series):
            text = pd.Index(values).astype("string").to_numpy(na_value=None)
            values = pa.array(text, pa.string())
        arrays[name] = values
    return ibis.memtable(pa.table(arrays))


def _lit(ts: pd.Timestamp) -> Any:
    import ibis

    return ibis.literal(pd.Timestamp(ts).to_pydatetime(), type="timestamp")


#: What a feature query keeps of a table with a customer_id column (see :func:`_keeper`).
Keep = Callable[[Any], Any] | None


def _everyone(table: Any) -> Any:
    return table


def _keeper(sample: Any, lo: Any, hi: Any) -> Callable[[Any], Any]:
    """The rows of a table a feature query reads: those of the ``sample``'s customers (an
    id table, or None: everyone) with an id in [``lo``, ``hi``) (None: open; the first range
    also holds a missing id)."""

    def keep(table: Any) -> Any:
        if sample is not None:
            table = table.semi_join(sample, "customer_id")
        if lo is not None:
            table = table.filter(table.customer_id >= lo)
        if hi is not None:
            below = table.customer_id < hi
            table = table.filter(below if lo is not None else below | table.customer_id.isnull())
        return table

    return keep


def _days(later: Any, earlier: Any) -> Any:
    """Days between two timestamps as pandas' ``total_seconds() / 86400`` computes them."""
    return later.delta(earlier, unit="microsecond").cast("float64") / 1e6 / _US_PER_DAY


@dataclass
class FeatureEngine:
    """Feature tables over one engine connection (see the module docstring).

    ``con`` is an Ibis backend with the cached tables registered under their names (see
    :func:`insight_agent.engine.backend.connect`). The order table (one row per order) is
    materialised once, as a temporary engine table, and shared by every cutoff.
    """

    con: Any
    _orders: Any = field(default=None, init=False, repr=False)
    _seen: Any = field(default=None, init=False, repr=False)
    _rows: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_cache(
        cls,
        cache: Any,
        *,
        spill_dir: Path | None = None,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> FeatureEngine:
        """An engine over a :class:`~insight_agent.engine.cache.TableCache`."""
        from insight_agent.engine.backend import DEFAULT_MEMORY_LIMIT, connect

        con = connect(
            cache,
            spill_dir=spill_dir,
            memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT,
            threads=threads,
        )
        return cls(con)

    def close(self) -> None:
        """Drop the materialised tables and close the connection."""
        self.release()
        self.con.disconnect()

    def release(self) -> None:
        """Drop the materialised order and first-seen tables, keeping the connection (a
        shared Spark session outlives one engine)."""
        for name in ("_orders", "_seen"):
            table = getattr(self, name)
            setattr(self, name, None)
            if table is not None:
                table.release()

    # -- tables -------------------------------------------------------------------------
    def _has(self, table: str) -> bool:
        return table in self.con.list_tables()

    def rows(self, table: str) -> int:
        """Rows of a registered table (0 when the workspace has none)."""
        if table not in self._rows:
            self._rows[table] = (
                int(self.con.table(table).count().execute()) if self._has(table) else 0
            )
        return self._rows[table]

    def _columns(self, table: str) -> list[str]:
        return list(self.con.table(table).columns) if self._has(table) else []

    def order_table(self) -> Any:
        """One row per order: customer_id, order_date (first line), amount (lines summed)."""
        if self._orders is not None:
            return self._orders
        lines = self.con.table("orders")
        by_id = "order_id" in lines.columns and bool(lines.order_id.notnull().any().execute())
        if by_id:
            key = lines.order_id.fill_null("day:" + lines.order_date.strftime("%Y-%m-%d"))
        else:
            key = lines.order_date.truncate("D").cast("string")
        orders = (
            lines.mutate(order_key=key)
            .group_by(["customer_id", "order_key"])
            .aggregate(order_date=lambda t: t.order_date.min(), amount=lambda t: t.amount.sum())
            .select("customer_id", "order_date", "amount")
        )
        # cached by the engine (DuckDB: a temporary table; Spark: a cached DataFrame), the
        # portable form of a temporary table, which Ibis's Spark backend does not offer
        self._orders = orders.cache()
        return self._orders

    def category_spend(self) -> pd.Series | None:
        """Spend per customer and category, like
        :func:`insight_agent.analytics.features.category_spend`: indexed by (customer_id,
        category), sorted, float64; None without categories."""
        if "category" not in self._columns("orders"):
            return None
        lines = self.con.table("orders").filter(lambda t: t.category.notnull())
        found = (
            lines.group_by(["customer_id", "category"])
            .aggregate(spend=lambda t: t.amount.sum())
            .to_pyarrow()
        )
        found = to_frame(found)
        if found.empty:
            return None
        spend = found.set_index(["customer_id", "category"])["spend"].sort_index()
        return spend.astype("float64")

    def basket_lines(self) -> pd.DataFrame:
        """The order lines reduced to what the basket analysis reads
        (:mod:`insight_agent.analytics.basket`): one row per customer, basket and category
        (the basket being the order_id, or the day for lines without one), with the spend
        summed (negative amounts as 0). The rules, next-best items and segment shares come out
        as from the full lines: a basket holds each item once, and spend is only summed."""
        import ibis

        lines = self.con.table("orders")
        cols = lines.columns
        if "category" not in cols:
            return pd.DataFrame(columns=["customer_id", "order_date", "amount"])
        has_id = "order_id" in cols
        day = lines.order_date.truncate("D")
        keys: dict[str, Any] = {"customer_id": lines.customer_id, "category": lines.category}
        if has_id:
            keys["order_id"] = lines.order_id
            # the day only matters for lines without an order id
            keys["_day"] = ibis.cases((lines.order_id.isnull(), day), else_=ibis.null("timestamp"))
        else:
            keys["_day"] = day
        order = ["customer_id", *(["order_id"] if has_id else []), "order_date", "category"]
        found = (
            lines.group_by(**keys)
            .aggregate(
                order_date=lines.order_date.min(),
                amount=ibis.greatest(lines.amount, 0.0).sum(),
            )
            .select(*order, "amount")
            .order_by(order)  # the same rows in the same order on every engine
            .to_pyarrow()
        )
        return to_frame(found)

    def outcomes(self) -> Any:
        """Who bought / responded in a window, for the propensity labels
        (:class:`insight_agent.engine.outcomes.EngineOutcomes`)."""
        from insight_agent.engine.outcomes import EngineOutcomes

        return EngineOutcomes(self)

    def scoring_cutoff(self) -> pd.Timestamp:
        """T for scoring: the day after the last order (so the last day's orders count)."""
        last = self.con.table("orders").order_date.max().execute()
        return pd.Timestamp(last).normalize() + pd.Timedelta(days=1)

    def top_categories(
        self, cutoff: pd.Timestamp | None = None, limit: int = MAX_CATEGORIES
    ) -> list[str]:
        """Categories by total spend (of lines before ``cutoff``, or all), largest first;
        ties alphabetical, as the pandas reference orders them."""
        if "category" not in self._columns("orders"):
            return []
        lines = self.con.table("orders").filter(lambda t: t.category.notnull())
        if cutoff is not None:
            lines = lines.filter(lines.order_date < _lit(cutoff))
        spend = (
            lines.group_by("category")
            .aggregate(spend=lambda t: t.amount.sum())
            .order_by([lambda t: t.spend.desc(), "category"])
            .limit(limit)
            .execute()
        )
        return [str(c) for c in spend["category"]]

    # -- the CLV summary ------------------------------------------------------------------
    def clv_summary(
        self,
        cutoff: pd.Timestamp | None = None,
        *,
        period_days: float = 1.0,
        positive_only: bool = False,
    ) -> pd.DataFrame:
        """Per-customer frequency, recency, T and monetary value, as
        :func:`insight_agent.analytics.clv.rfm_summary` computes them from the order lines
        (same rules: day resolution, orders on the cutoff day count, one purchase per period
        counted back from the cutoff day). Indexed by customer_id, sorted. ``positive_only``
        leaves out lines with an amount of 0 or less (as the CLV fit does).

        Above :data:`SHARD_CUSTOMERS` customers it is computed in ranges of customer ids, as
        :meth:`features` is: at 10M customers (133M lines) the one query (lines joined to each
        customer's first period, then a grouped distinct count) failed under the 2 GB limit.
        """
        import ibis
        import pyarrow as pa

        if not (np.isfinite(period_days) and period_days > 0):
            from insight_agent.errors import ConfigError

            raise ConfigError(f"period_days must be a positive number of days, got {period_days!r}")
        lines = self.con.table("orders")
        if positive_only:
            lines = lines.filter(lines.amount > 0)
        epoch = ibis.date(1970, 1, 1)
        day = lines.order_date.date().delta(epoch, unit="day")
        if cutoff is None:
            cutoff_day = int(lines.select(d=day).d.max().execute())
        else:
            stamp = pd.Timestamp(cutoff)
            stamp = stamp.tz_localize(None) if stamp.tz is not None else stamp
            cutoff_day = int(np.datetime64(stamp.to_datetime64(), "D").astype(np.int64))
        t = lines.mutate(_age=cutoff_day - day).filter(lambda x: x._age >= 0)
        if float(period_days).is_integer():
            period = t._age // int(period_days)
        else:
            period = (t._age.cast("float64") / float(period_days)).floor()
        t = t.mutate(_p=period.cast("int64"))
        parts = (
            self._clv_query(_keeper(None, lo, hi)(t)).to_pyarrow() for lo, hi in self._id_ranges()
        )
        return to_frame(pa.concat_tables(parts), index="customer_id")

    @staticmethod
    def _clv_query(t: Any) -> Any:
        """frequency / recency / T / monetary_value per customer of lines ``t`` (with their
        period ``_p`` counted back from the cutoff day), in customer order."""
        import ibis

        # one row per customer and period first (the distinct periods are then its rows),
        # then per customer; the repeat spend is the total less the first period's (the
        # lines joined back to each customer's first period and a distinct count took twice
        # the time: 9.7 s at 1M customers)
        periods = t.group_by(["customer_id", "_p"]).aggregate(_amount=t.amount.sum())
        per = periods.group_by("customer_id").aggregate(
            _first=periods._p.max(),
            _last=periods._p.min(),
            _periods=periods.count(),
            _total=periods._amount.sum(),
            _opening=periods._amount.argmax(periods._p),  # the first period's spend
        )
        per = per.mutate(_repeat=per._total - per._opening)
        freq = per._periods - 1
        return per.select(
            "customer_id",
            frequency=freq.cast("int64"),
            recency=(per._first - per._last).cast("float64"),
            T=per._first.cast("float64"),
            monetary_value=ibis.cases(
                (freq > 0, per._repeat.fill_null(0.0) / freq.cast("float64")), else_=0.0
            ),
        ).order_by("customer_id")

    def clv_inputs(self, cutoff: pd.Timestamp | None = None, *, period_days: float = 7.0) -> Any:
        """What the CLV fit needs (:class:`insight_agent.analytics.clv.ClvInputs`), as
        :func:`insight_agent.analytics.clv.clv_inputs` computes it from the order lines."""

        from insight_agent.analytics.clv import ClvInputs
        from insight_agent.errors import InsufficientData

        lines = self.con.table("orders")
        if self.rows("orders") == 0:
            raise InsufficientData("There are no orders to estimate customer lifetime value from.")
        if cutoff is None:
            cut = pd.Timestamp(lines.order_date.max().execute()).normalize()
        else:
            stamp = pd.Timestamp(cutoff)
            cut = (stamp.tz_localize(None) if stamp.tz is not None else stamp).normalize()
        summary = self.clv_summary(cut, period_days=period_days, positive_only=True)
        upto = lines.filter(lines.order_date < _lit(cut + pd.Timedelta(days=1)))
        per = upto.group_by("customer_id").aggregate(_pos=upto.amount.count(where=upto.amount > 0))
        # customers with lines up to the cutoff day, none of them with a positive amount
        ids = per.filter(per._pos == 0).customer_id.to_pyarrow().to_pandas()
        nonpositive = lines.count(where=~(lines.amount > 0).fill_null(False)).execute()
        return ClvInputs(
            summary=summary,
            cutoff=cut,
            without_value=pd.Index(sorted(ids.dropna()), name="customer_id", dtype="string"),
            nonpositive_lines=int(nonpositive),
        )

    # -- the feature table ----------------------------------------------------------------
    def _first_seen(self) -> Any:
        """customer_id and ``_since`` (the first order's date or the sign-up date, whichever
        is earlier) of every customer with either, materialised once: the population at a
        cutoff is then those seen before it, from one row a customer rather than from the
        order table (the demographic statistics of each cutoff's table took ~2 s a cutoff
        at 1M customers that way)."""
        if self._seen is not None:
            return self._seen
        orders = self.order_table()
        seen = orders.select("customer_id", _since=orders.order_date.cast("timestamp"))
        signup = self._signups(None)
        if signup is not None:
            seen = seen.union(
                signup.select("customer_id", _since=signup._signup.cast("timestamp")),
                distinct=False,
            )
        self._seen = seen.group_by("customer_id").aggregate(_since=lambda t: t._since.min()).cache()
        return self._seen

    def _signups(self, cut: Any) -> Any:
        """customer_id and ``_signup`` of every customer who signed up before ``cut`` (with
        ``cut`` None: every customer with a sign-up date); None when the customers have no
        sign-up date column."""
        if not self._has("customers"):
            return None
        customers = self.con.table("customers")
        if "signup_date" not in customers.columns:
            return None
        if cut is None:  # every sign-up date there is
            customers = customers.filter(customers.signup_date.notnull())
        else:
            customers = customers.filter(customers.signup_date < cut)
        return customers.select("customer_id", _signup=customers.signup_date)

    def _base(self, cutoff: pd.Timestamp, keep: Keep = None, *, history: bool = True) -> _Base:
        """The population at ``cutoff`` (every customer with an order before it, plus every
        sign-up before it; only those ``keep`` keeps, when given) with the order-history
        columns every feature table starts from. Without ``history``, only the aggregates its
        first ``cols`` need (no windows, no ranking: a third of the work)."""
        import ibis

        keep = keep or _everyone
        cut = _lit(cutoff)
        past = keep(self.order_table().filter(lambda t: t.order_date < cut))
        if history:
            past = past.mutate(
                _rank=ibis.row_number().over(
                    group_by="customer_id", order_by=ibis.desc("order_date")
                )
            )
        aggs: dict[str, Any] = {
            "_n": past.count(),
            "_m": past.amount.sum(),
            "_first": past.order_date.min(),
            "_last": past.order_date.max(),
        }
        if history:
            since = {w: _lit(cutoff - pd.Timedelta(days=w)) for w in WINDOWS}
            prev = (past.order_date >= since[180]) & (past.order_date < since[90])
            # the second latest order (ties count twice): the last gap is last - this
            aggs["_last2"] = past.order_date.max(where=past._rank == 1)
            aggs["_prev"] = past.amount.sum(where=prev)
            for w in WINDOWS:
                recent = past.order_date >= since[w]
                aggs[f"_o{w}"] = past.count(where=recent)
                aggs[f"_s{w}"] = past.amount.sum(where=recent)
        buyers = past.group_by("customer_id").aggregate(**aggs)

        signup = self._signups(cut)
        if signup is not None:
            signup = keep(signup)
        base = buyers.select("customer_id")
        if signup is not None:
            base = base.union(signup.select("customer_id"), distinct=True)
        t = base.left_join(buyers, "customer_id")
        if signup is not None:
            t = t.left_join(signup, "customer_id")

        freq = t._n.cast("float64").fill_null(0.0)
        recency = _days(cut, t._last)
        first_days = _days(cut, t._first)
        if signup is not None:
            tenure = ibis.greatest(first_days, _days(cut, t._signup))
        else:
            tenure = first_days
        cols: dict[str, Any] = {
            "frequency": freq,
            "monetary_total": t._m.fill_null(0.0),
            "recency_days": recency.fill_null(tenure),
            "avg_order_value": (t._m / t._n.cast("float64")).fill_null(0.0),
            "tenure_days": tenure,
        }
        return _Base(t, cols, tenure)

    def population(
        self,
        cutoff: pd.Timestamp,
        *,
        horizon_days: int | None = None,
        categories: Sequence[str] = (),
    ) -> pd.DataFrame:
        """Every customer of :meth:`features`'s table at ``cutoff``, with just its
        ``frequency`` and ``recency_days`` (equal to the table's): what the propensity
        labels need to choose their population, at a fraction of the table's cost.

        With ``horizon_days``, also whether each customer has an order line in the window
        [cutoff, cutoff + horizon_days) (column :func:`window_flag`), and one in each of
        ``categories`` there: the labels then read a column instead of looking a million
        text ids up in the window's buyers (~1 s a label at 1M customers, every target and
        window; here one join in the same query)."""
        from insight_agent.analytics.propensity import window_flag

        cutoff = pd.Timestamp(cutoff)
        base = self._base(cutoff, history=False)
        names = ["frequency", "recency_days"]
        cols = {n: base.cols[n] for n in names}
        t = base.table
        if horizon_days is not None:
            lines = self.con.table("orders")
            end = cutoff + pd.Timedelta(days=horizon_days)
            window = lines.filter(
                (lines.order_date >= _lit(cutoff)) & (lines.order_date < _lit(end))
            )
            cats = list(categories) if "category" in lines.columns else []
            aggs = {"_w": window.count()}
            for i, category in enumerate(cats):
                aggs[f"_w{i}"] = window.count(where=window.category == category)
            t = t.left_join(window.group_by("customer_id").aggregate(**aggs), "customer_id")
            cols[window_flag(horizon_days)] = (t._w.fill_null(0) > 0).cast("float32")
            for i, category in enumerate(cats):
                flag = (t[f"_w{i}"].fill_null(0) > 0).cast("float32")
                cols[window_flag(horizon_days, category)] = flag
        frame = t.select(
            "customer_id", *[v.cast("float32").name(f"c{i}") for i, v in enumerate(cols.values())]
        ).order_by("customer_id")
        return float32_frame(frame.to_pyarrow(), "customer_id", list(cols))

    def features(
        self,
        cutoff: pd.Timestamp,
        *,
        categories: list[str] | None = None,
        demographics: bool = True,
        ids: pd.Index | None = None,
    ) -> FeatureFrame:
        """Features of every customer known before ``cutoff``, like
        :func:`insight_agent.analytics.features.customer_features` (same columns, float32).

        ``categories`` fixes the category-share columns (the training list when scoring).
        ``ids`` keeps only those customers of the population (the models' training sample):
        their rows equal the whole table's, since demographic levels and medians are still
        the whole population's, but the engine aggregates only their orders.

        Above :data:`SHARD_CUSTOMERS` customers the table is computed in ranges of customer
        ids, one query each, every source (orders, sign-ups, returns, reviews, campaigns,
        demographics) cut to the range before it is aggregated, and the ranges' rows put end
        to end (already in customer order). A customer's row depends only on its own events
        and on the whole population's statistics (top categories, demographic levels and
        medians), found first, so the rows are the same as from one query. One query joins
        five per-customer tables; at 10M customers (each table ~1 GB) DuckDB's hash joins all
        went out of core in the same pipeline, spilled 9 GB and failed under the 2 GB limit
        ("failed to pin block": the spilled partitions' bookkeeping, which is not spillable,
        grew to 1 GB). A range of 1M customers runs in memory.
        """
        cutoff = pd.Timestamp(cutoff)
        cats = self._category_list(cutoff, categories)
        demo = self._demographic_columns(cutoff) if demographics else []
        sample = None if ids is None else memtable({"customer_id": ids})
        queries = [
            self._feature_query(cutoff, cats, demo, _keeper(sample, lo, hi))
            for lo, hi in self._id_ranges(ids)
        ]
        names = queries[0][0]
        results = (query.to_pyarrow() for _, query in queries)  # one range at a time
        return FeatureFrame(float32_frame(results, "customer_id", names), cutoff, cats)

    def _id_ranges(self, ids: pd.Index | None = None) -> list[tuple[Any, Any]]:
        """The (from, to) customer-id ranges :meth:`features` computes one at a time (from
        included, to excluded, None: open): one open range up to :data:`SHARD_CUSTOMERS`
        customers, else as many as needed of about that many customers each, cut at ids
        drawn from the customers (``ids`` when given) and sorted as the engine sorts text."""
        if ids is not None:
            n = len(ids)
        elif self._has("customers"):
            n = self.rows("customers")
        else:
            n = int(self.order_table().customer_id.nunique().execute())
        parts = -(-n // SHARD_CUSTOMERS)
        if parts <= 1:
            return [(None, None)]
        if ids is not None:
            drawn = sorted({str(i) for i in ids if not pd.isna(i)})
        else:
            source = self.con.table("customers") if self._has("customers") else self.order_table()
            # ~1,000 ids a range, the same ones each time (a hash, not a random sample)
            step = max(1, n // (parts * 1000))
            found = source.filter((source.customer_id.hash() % step) == 0).customer_id
            drawn = sorted(v for v in found.to_pyarrow().to_pylist() if v is not None)
        bounds = sorted({drawn[len(drawn) * i // parts] for i in range(1, parts)} if drawn else ())
        return list(zip([None, *bounds], [*bounds, None], strict=True))

    def _feature_query(
        self, cutoff: pd.Timestamp, cats: list[str], demo: list[tuple[str, str, Any]], keep: Keep
    ) -> tuple[list[str], Any]:
        """The feature columns' names and the query of the rows ``keep`` keeps: customer_id
        and the columns as float32 (``c0``, ``c1``, ...), in customer order."""
        import ibis

        cut = _lit(cutoff)
        base = self._base(cutoff, keep)
        t, cols, tenure = base.table, base.cols, base.tenure
        for w in WINDOWS:
            cols[f"orders_{w}d"] = t[f"_o{w}"].cast("float64").fill_null(0.0)
            cols[f"spend_{w}d"] = t[f"_s{w}"].fill_null(0.0)
        s90, sprev = cols["spend_90d"], t._prev.fill_null(0.0)
        cols["spend_trend"] = ((s90 - sprev) / (s90 + sprev).nullif(0.0)).fill_null(0.0)

        # gaps: the mean of consecutive gaps telescopes to (last - first) / (n - 1)
        mean_gap = (_days(t._last, t._first) / (t._n - 1).nullif(0).cast("float64")).fill_null(
            tenure
        )
        last_gap = _days(t._last, t._last2).fill_null(tenure)
        floor = ibis.greatest(mean_gap, 1.0)
        cols["mean_gap_days"] = mean_gap
        cols["last_gap_days"] = last_gap
        cols["overdue_ratio"] = ibis.least(cols["recency_days"] / floor, 50.0)
        cols["gap_trend"] = ibis.least(last_gap / floor, 50.0)

        t = self._categories(t, cut, cats, cols, keep)
        t = self._returns(t, cut, cols, keep)
        t = self._reviews(t, cut, cols, keep)
        t = self._campaigns(t, cut, cols, keep)
        t = self._demographics(t, demo, cols, keep)

        names = list(cols)
        # float32 and in customer order from the engine: at a million customers, converting
        # 48 float64 columns in pandas and sorting the rows took ~4 s a cutoff
        frame = t.select(
            "customer_id", *[cols[n].cast("float32").name(f"c{i}") for i, n in enumerate(names)]
        ).order_by("customer_id")
        return names, frame

    def _category_list(self, cutoff: pd.Timestamp, categories: list[str] | None) -> list[str]:
        """The category-share columns' categories: ``categories``, else the top ones at
        ``cutoff``; none without a category column."""
        if "category" not in self._columns("orders"):
            return []
        if categories is None:
            categories = self.top_categories(cutoff)
        return list(categories or [])

    def _categories(
        self, t: Any, cut: Any, categories: list[str], cols: dict[str, Any], keep: Keep
    ) -> Any:
        if not categories:
            return t
        lines = self.con.table("orders")
        # one pass over the lines (summing per customer and category first, then per
        # customer, took ~1.8x as long at 13M lines)
        per = keep(lines.filter((lines.order_date < cut) & lines.category.notnull()))
        aggs = {"_ctotal": per.amount.sum()}
        for i, cat in enumerate(categories):
            aggs[f"_cat{i}"] = per.amount.sum(where=per.category == cat)
        spend = per.group_by("customer_id").aggregate(**aggs)
        t = t.left_join(spend, "customer_id")
        total = t._ctotal.nullif(0.0)
        for i, cat in enumerate(categories):
            cols[f"share_{slug(cat)}"] = (t[f"_cat{i}"].fill_null(0.0) / total).fill_null(0.0)
        return t

    def _returns(self, t: Any, cut: Any, cols: dict[str, Any], keep: Keep) -> Any:
        if not self.rows("returns"):
            return t
        r = self.con.table("returns")
        got = (
            keep(r.filter(r.order_date < cut))
            .group_by("customer_id")
            .aggregate(_rn=lambda x: x.count(), _ra=lambda x: -x.amount.sum())
        )
        t = t.left_join(got, "customer_id")
        cols["returns"] = t._rn.cast("float64").fill_null(0.0)
        share = (t._ra.fill_null(0.0) / cols["monetary_total"].nullif(0.0)).fill_null(0.0)
        cols["return_share"] = share.clip(lower=0.0, upper=1.0)
        return t

    def _reviews(self, t: Any, cut: Any, cols: dict[str, Any], keep: Keep) -> Any:
        columns = self._columns("reviews")
        if "customer_id" not in columns or not self.rows("reviews"):
            return t
        r = self.con.table("reviews")
        r = r.filter(r.customer_id.notnull())
        if "date" in columns:
            r = r.filter(r.date.isnull() | (r.date < cut))
        r = keep(r)
        aggs: dict[str, Any] = {"_vn": r.count()}
        if "rating" in columns:
            aggs["_vr"] = r.rating.mean()
            aggs["_vneg"] = (r.rating <= 2).fill_null(False).cast("float64").mean()
        got = r.group_by("customer_id").aggregate(**aggs)
        t = t.left_join(got, "customer_id")
        cols["review_count"] = t._vn.cast("float64").fill_null(0.0)
        if "rating" in columns:
            cols["avg_rating"] = t._vr.fill_null(3.0)
            cols["negative_review_share"] = t._vneg.fill_null(0.0)
        return t

    def _campaigns(self, t: Any, cut: Any, cols: dict[str, Any], keep: Keep) -> Any:
        if not self.rows("campaigns"):
            return t
        c = self.con.table("campaigns")
        got = (
            keep(c.filter(c.sent_date < cut))
            .group_by("customer_id")
            .aggregate(_kn=lambda x: x.count(), _kr=lambda x: x.responded.cast("float64").mean())
        )
        t = t.left_join(got, "customer_id")
        cols["campaigns_sent"] = t._kn.cast("float64").fill_null(0.0)
        cols["campaign_response_rate"] = t._kr.fill_null(0.0)
        return t

    def _demographic_columns(self, cutoff: pd.Timestamp) -> list[tuple[str, str, Any]]:
        """The demographic columns of the feature table at ``cutoff``, from the whole
        population's statistics: ("numeric", column, median) for a numeric column (its
        ``_missing`` flag and its value, missing as the median), ("level", column, value) for
        each one-hot level of a categorical one. None without a customers table."""
        if not self._has("customers"):
            return []
        customers = self.con.table("customers")
        wanted = [c for c in (*_NUMERIC, *_CATEGORICAL) if c in customers.columns]
        if not wanted:
            return []
        # the whole population's ids (also for a sample of it): everyone first seen before
        # the cutoff; the statistics need nothing of the feature table's aggregates
        seen = self._first_seen()
        ids = seen.filter(seen._since < _lit(cutoff)).select("customer_id")
        people = customers.select("customer_id", *[customers[c].name(f"_d_{c}") for c in wanted])
        pop = (
            ids.left_join(people, "customer_id")
            .select("customer_id", *[f"_d_{c}" for c in wanted])
            .cache()
        )
        numeric = [c for c in _NUMERIC if c in wanted]
        categorical = [c for c in _CATEGORICAL if c in wanted]
        out: list[tuple[str, str, Any]] = []
        try:
            # one query for every numeric column's count and median and the population size,
            # one for every categorical column's levels: each query is a job on Spark
            stats: dict[str, Any] = {"_pop": pop.count()}
            for col in numeric:
                stats[f"n_{col}"] = pop[f"_d_{col}"].count()
                stats[f"m_{col}"] = pop[f"_d_{col}"].cast("float64").median()
            row = pop.aggregate(**stats).to_pyarrow().to_pylist()[0]
            for col in numeric:
                if int(row[f"n_{col}"] or 0):
                    out.append(("numeric", col, float(row[f"m_{col}"])))
            levels = self._levels(pop, [f"_d_{c}" for c in categorical])
            for col in categorical:
                found = levels.get(f"_d_{col}", [])
                if not found or (len(found) < 2 and int(row["_pop"]) > 1):
                    continue
                out += [("level", col, level) for level in found]
        finally:
            pop.release()
        return out

    def _demographics(
        self, t: Any, demo: list[tuple[str, str, Any]], cols: dict[str, Any], keep: Keep
    ) -> Any:
        """The columns :meth:`_demographic_columns` chose, from each customer's row."""
        if not demo:
            return t
        wanted = list(dict.fromkeys(col for _, col, _ in demo))
        customers = keep(self.con.table("customers"))
        people = customers.select("customer_id", *[customers[c].name(f"_d_{c}") for c in wanted])
        t = t.left_join(people, "customer_id")
        for kind, col, value in demo:
            if kind == "numeric":
                values = t[f"_d_{col}"].cast("float64")
                cols[f"{col}_missing"] = values.isnull().cast("float64")
                cols[col] = values.fill_null(value)
            else:
                values = t[f"_d_{col}"].cast("string")
                cols[f"{col}={value}"] = (values == value).fill_null(False).cast("float64")
        return t

    @staticmethod
    def _levels(pop: Any, columns: list[str]) -> dict[str, list[str]]:
        """Each column's most frequent values (at most MAX_LEVELS): count desc, then first
        appearance in customer-id order, as ``value_counts`` ranks them. One query for all the
        columns (a customer has one value per column, so the first appearance breaks ties)."""
        import ibis

        if not columns:
            return {}
        parts = []
        for column in columns:
            v = pop[column].cast("string")
            parts.append(
                pop.filter(v.notnull())
                .group_by(_v=v)
                .aggregate(_n=lambda x: x.count(), _first=lambda x: x.customer_id.min())
                .mutate(_col=ibis.literal(column))
            )
        every = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
        rank = ibis.row_number().over(
            group_by="_col", order_by=[ibis.desc("_n"), ibis.asc("_first")]
        )
        top = (
            every.mutate(_rank=rank)
            .filter(lambda x: x._rank < MAX_LEVELS)
            .order_by(["_col", "_rank"])
            .to_pyarrow()
            .to_pylist()
        )
        out: dict[str, list[str]] = {}
        for row in top:
            out.setdefault(row["_col"], []).append(str(row["_v"]))
        return out


__all__ = [
    "MAX_CATEGORIES",
    "MAX_LEVELS",
    "SHARD_CUSTOMERS",
    "WINDOWS",
    "FeatureEngine",
    "FeatureFrame",
    "memtable",
    "slug",
]
