"""The propensity labels' outcomes as engine queries: who bought (in a category) and who
responded to a campaign in a window, without the order lines in memory.

Same answers as :class:`insight_agent.analytics.propensity.Outcomes` over the validated
frames (the tests hold the two equal); one small query per window, cached, on DuckDB or Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from insight_agent.analytics.propensity import WindowOutcomes

if TYPE_CHECKING:
    from insight_agent.engine.features import FeatureEngine


class EngineOutcomes(WindowOutcomes):
    """:class:`WindowOutcomes` answered by a :class:`FeatureEngine`'s connection."""

    def __init__(self, engine: FeatureEngine) -> None:
        super().__init__()
        self._engine = engine
        self._buyers: dict[tuple[pd.Timestamp, pd.Timestamp, str | None], Any] = {}

    def buyers(self, start: pd.Timestamp, end: pd.Timestamp, category: str | None = None) -> Any:
        """Ids of the customers with an order line in [start, end) (in ``category``), one
        query per window and category, cached. Not the base class's window of distinct
        (customer, category) pairs: at 10M customers a 90-day window of those is ~0.4 GB,
        and a build keeps several, where the distinct buyers are a quarter of that."""
        from insight_agent.engine.features import _lit, to_frame

        key = (pd.Timestamp(start), pd.Timestamp(end), category)
        if key not in self._buyers:
            lines = self._engine.con.table("orders")
            if category is not None and "category" not in lines.columns:
                return np.array([], dtype=object)
            found = lines.filter(
                (lines.order_date >= _lit(key[0])) & (lines.order_date < _lit(key[1]))
            )
            if category is not None:
                found = found.filter(found.category == category)
            ids = found.select("customer_id").distinct().to_pyarrow()
            self._buyers[key] = to_frame(ids)["customer_id"].unique()
        return self._buyers[key]

    @property
    def has_campaigns(self) -> bool:
        """Whether the workspace has campaign sends."""
        return self._engine.rows("campaigns") > 0

    def first_order(self) -> pd.Timestamp:
        """The first order date (NaT without orders)."""
        return pd.Timestamp(self._engine.con.table("orders").order_date.min().execute())

    def _window(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        from insight_agent.engine.features import _lit, to_frame

        lines = self._engine.con.table("orders")
        cols = ["customer_id"] + (["category"] if "category" in lines.columns else [])
        found = (
            lines.filter((lines.order_date >= _lit(start)) & (lines.order_date < _lit(end)))
            .select(*cols)
            .distinct()
            .to_pyarrow()
        )
        return to_frame(found)

    def responses(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        """Per customer sent a campaign in [start, end): 1 when they responded to one of
        those sends, else 0 (index customer_id, sorted)."""
        from insight_agent.engine.features import _lit, to_frame
        from insight_agent.errors import InsufficientData

        if not self._engine._has("campaigns"):
            raise InsufficientData("campaign response needs a campaigns table")
        sends = self._engine.con.table("campaigns")
        found = (
            sends.filter(
                (sends.sent_date >= _lit(start))
                & (sends.sent_date < _lit(end))
                & sends.customer_id.notnull()
            )
            .group_by("customer_id")
            .aggregate(responded=lambda t: t.responded.cast("int64").max())
            .to_pyarrow()
        )
        frame = to_frame(found)
        out = frame.set_index("customer_id")["responded"].sort_index()
        out.index.name = "customer_id"
        return out.astype(int)


__all__ = ["EngineOutcomes"]
