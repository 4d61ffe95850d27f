"""The metrics layer: a declared catalogue of measures and dimensions over a workspace's
tables, and a compiler from a typed request to Ibis expressions run by DuckDB.

A request names measures (``revenue``, ``response_rate`` …), dimensions to break them down by
(``month``, ``category``, ``segment``, any customer attribute …), a period resolved against the
data's cutoff, filters, an optional comparison period and a top-N. The result carries, for
every figure, what it is: its measure, unit, aggregation and period — so an answer can be
checked for meaning, not only digits. No SQL text is written by anyone: the expressions are
built from the catalogue.

Definitions (docs/metrics.md has the full table):

* orders are purchases only; negative amounts are returns (their own table);
* ``orders`` counts distinct order ids (order lines when the file has no order id);
* ``active_customers`` buy in the period; ``new_customers`` make their first purchase ever
  in it (or in the row's month/week… when broken down by time); ``returning_customers``
  bought before it; ``repeat_rate`` is the share of the period's buyers with two or more
  orders in it;
* review ``sentiment`` as a dimension comes from the star rating (1–2 negative, 3 neutral,
  4–5 positive); ``share_negative`` is the share of rated reviews with 1–2 stars;
* model measures (churn probability, CLV) are per customer as of the cutoff: no period.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from insight_agent.engine import periods as P
from insight_agent.errors import ConfigError

TIME_DIMS = ("day", "week", "month", "quarter", "year")
_TIME_UNIT = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}
# the date each table's rows are placed in time by
TIME_COLUMN = {
    "orders": "order_date",
    "returns": "order_date",
    "campaigns": "sent_date",
    "reviews": "date",
    "customers": "signup_date",
}
MISSING = "(missing)"
MAX_ROWS = 500  # a breakdown longer than this is cut (the result says so)
# Column names that hold personal details: never a measure, a dimension or a profile fact
# (one pattern for the metrics layer, label detection and customer profiles).
PII_COLUMN = re.compile(
    r"name|mail|phone|mobile|address|street|zip|postal|postcode|ssn|iban|card", re.I
)
# How a yes/no column's groups may be written in a filter ("senior_citizen=1", "=true").
FLAG_VALUES = {"1": "Yes", "1.0": "Yes", "true": "Yes", "y": "Yes", "0": "No", "0.0": "No",
                "false": "No", "n": "No"}  # fmt: skip
MAX_LEVELS = 60  # a text column with more distinct values is not a dimension (except product)
# Measures whose rows add up to the total under any non-time breakdown (sums and row counts;
# not distinct counts: an order or a buyer can fall in two categories).
ADDITIVE = frozenset(
    {"revenue", "order_lines", "units", "returns", "returned_value", "campaign_sends",
     "responses", "reviews", "customers", "total_clv"}
)  # fmt: skip


@dataclass(frozen=True)
class Measure:
    """One measure: where it comes from, what it means, and its aggregate expression."""

    name: str
    label: str
    table: str
    unit: str  # currency | count | share | probability | rating | number (an attribute)
    aggregation: str  # total | count | mean | median | rate | share_of_customers | ...
    meaning: str
    expr: Callable[[Any, dict[str, Any]], Any] | None = None
    needs: tuple[str, ...] = ()
    digits: int = 2
    # Phrases (regular expressions, lower case) a person uses for this workspace-specific
    # measure ("y rate", "average balance"); the built-in ones are in tools/metrics.py.
    words: tuple[str, ...] = ()

    def describe(self) -> dict[str, str]:
        """What the figure is (JSON-ready): name, label, unit, aggregation, meaning."""
        return {
            "name": self.name,
            "label": self.label,
            "unit": self.unit,
            "aggregation": self.aggregation,
            "meaning": self.meaning,
        }


@dataclass(frozen=True)
class Dimension:
    """One way to break a measure down: a time grain, a fact column or a customer attribute."""

    name: str
    label: str
    source: str  # time | fact | customer | scores | derived | id (one row per customer)
    column: str | None = None
    tables: tuple[str, ...] = ()  # fact tables it applies to
    numeric: bool = False
    # a 0/1 (or true/false) customer column: its values read "Yes" / "No"
    flag: bool = False
    # offered as a breakdown
    breakdown: bool = True
    # a numeric column with many values: broken down in bands cut at its quantiles
    # ("award rate by balance"), compared as a number in filters ("balance over 100000")
    banded: bool = False


def _orders_count(t: Any, ctx: dict[str, Any]) -> Any:
    return t.order_id.nunique() if "order_id" in t.columns else t.count()


def _ratio(a: Any, b: Any) -> Any:
    return a / b.nullif(0)


def builtin_measures() -> list[Measure]:
    """Every measure Insight knows; those whose table or columns are missing are dropped."""
    m = Measure
    return [
        m("revenue", "Revenue", "orders", "currency", "total",
          "sum of order amounts (purchases, returns excluded)",
          lambda t, c: t.amount.sum()),
        m("orders", "Orders", "orders", "count", "count",
          "number of distinct orders (order lines when the file has no order id)",
          _orders_count, digits=0),
        m("order_lines", "Order lines", "orders", "count", "count", "number of order lines",
          lambda t, c: t.count(), digits=0),
        m("units", "Units", "orders", "count", "total", "sum of quantities",
          lambda t, c: t.quantity.sum(), needs=("quantity",), digits=0),
        m("average_order_value", "Average order value", "orders", "currency", "mean",
          "revenue divided by orders (mean per order)",
          lambda t, c: _ratio(t.amount.sum(), _orders_count(t, c))),
        m("active_customers", "Active customers", "orders", "count", "count",
          "distinct customers who bought in the period",
          lambda t, c: t.customer_id.nunique(), digits=0),
        m("new_customers", "New customers", "orders", "count", "count",
          "customers whose first purchase ever falls in the period (or the row's time bucket)",
          lambda t, c: t.customer_id.nunique(where=c["is_new"]), digits=0),
        m("returning_customers", "Returning customers", "orders", "count", "count",
          "customers who bought in the period and had bought before it",
          lambda t, c: t.customer_id.nunique(where=~c["is_new"]), digits=0),
        m("revenue_per_customer", "Revenue per customer", "orders", "currency", "mean",
          "revenue divided by active customers (mean per buying customer)",
          lambda t, c: _ratio(t.amount.sum(), t.customer_id.nunique())),
        m("orders_per_customer", "Orders per customer", "orders", "number", "mean",
          "orders divided by active customers (mean per buying customer)",
          lambda t, c: _ratio(_orders_count(t, c), t.customer_id.nunique())),
        m("repeat_rate", "Repeat rate", "orders", "share", "share_of_customers",
          "share of the period's buyers with two or more orders in the period", None,
          digits=3),
        m("returns", "Returns", "returns", "count", "count",
          "number of return lines (negative amounts)", lambda t, c: t.count(), digits=0),
        m("returned_value", "Returned value", "returns", "currency", "total",
          "sum of returned amounts (as a positive number)", lambda t, c: -t.amount.sum()),
        m("campaign_sends", "Campaign sends", "campaigns", "count", "count",
          "number of campaign sends", lambda t, c: t.count(), digits=0),
        m("responses", "Responses", "campaigns", "count", "count",
          "number of sends the customer responded to",
          lambda t, c: t.responded.cast("int64").sum(), digits=0),
        m("response_rate", "Response rate", "campaigns", "share", "rate",
          "responses divided by sends (share of sends)",
          lambda t, c: t.responded.cast("float64").mean(), digits=3),
        m("reviews", "Reviews", "reviews", "count", "count", "number of reviews",
          lambda t, c: t.count(), digits=0),
        m("average_rating", "Average rating", "reviews", "rating", "mean",
          "mean star rating of rated reviews", lambda t, c: t.rating.mean(),
          needs=("rating",)),
        m("share_negative", "Share negative", "reviews", "share", "share_of_reviews",
          "share of rated reviews with 1-2 stars",
          lambda t, c: (t.rating <= 2).cast("float64").mean(), needs=("rating",), digits=3),
        m("customers", "Customers", "customers", "count", "count",
          "number of customers in the customers table (by signup date in time breakdowns)",
          lambda t, c: t.count(), digits=0),
        m("mean_churn_probability", "Mean churn probability", "scores", "probability", "mean",
          "mean probability of no purchase in the next 90 days, as of the cutoff",
          lambda t, c: t.p_churn.mean(), needs=("p_churn",), digits=3),
        m("median_churn_probability", "Median churn probability", "scores", "probability",
          "median", "median probability of no purchase in the next 90 days, as of the cutoff",
          lambda t, c: t.p_churn.median(), needs=("p_churn",), digits=3),
        m("high_churn_risk_customers", "Customers at high churn risk", "scores", "count",
          "count", "customers with churn probability of 0.5 or more, as of the cutoff",
          lambda t, c: (t.p_churn >= 0.5).cast("int64").sum(), needs=("p_churn",), digits=0),
        m("mean_purchase_probability", "Mean purchase probability", "scores", "probability",
          "mean", "mean probability of a purchase in the next 90 days, as of the cutoff",
          lambda t, c: t.p_purchase.mean(), needs=("p_purchase",), digits=3),
        m("total_clv", "Total CLV", "scores", "currency", "total",
          "sum of expected customer value over the next 12 months",
          lambda t, c: t.clv_12m.sum(), needs=("clv_12m",)),
        m("mean_clv", "Mean CLV", "scores", "currency", "mean",
          "mean expected value of a customer over the next 12 months",
          lambda t, c: t.clv_12m.mean(), needs=("clv_12m",)),
        m("median_clv", "Median CLV", "scores", "currency", "median",
          "median expected value of a customer over the next 12 months",
          lambda t, c: t.clv_12m.median(), needs=("clv_12m",)),
    ]  # fmt: skip


# Words a person may use for a measure or dimension (matched after normalising).
ALIASES = {
    "sales": "revenue",
    "turnover": "revenue",
    "gmv": "revenue",
    "income": "revenue",
    "aov": "average_order_value",
    "basket_size": "average_order_value",
    "order_value": "average_order_value",
    "number_of_orders": "orders",
    "order_count": "orders",
    "transactions": "orders",
    "buyers": "active_customers",
    "purchasers": "active_customers",
    "repeat_purchase_rate": "repeat_rate",
    "retention_rate": "repeat_rate",
    "conversion_rate": "response_rate",
    "sends": "campaign_sends",
    "rating": "average_rating",
    "avg_rating": "average_rating",
    "clv": "total_clv",
    "churn_probability": "mean_churn_probability",
    "churn": "mean_churn_probability",
    "returns_value": "returned_value",
    # dimensions
    "segments": "segment",
    "categories": "category",
    "products": "product",
    "campaigns": "campaign",
    "channels": "channel",
    "regions": "region",
    "countries": "country",
    "age": "age_band",
    "age_group": "age_band",
    "stars": "rating",
    # clothing exports: Department Name is the category, Class Name the subcategory
    "department": "category",
    "departments": "category",
    "class": "subcategory",
    "classes": "subcategory",
    "star_rating": "rating",
    "star_ratings": "rating",
    "ratings": "rating",
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "quarterly": "quarter",
    "yearly": "year",
    "annual": "year",
}


def norm(text: str) -> str:
    """Lower snake_case: "Average Order Value" -> "average_order_value"."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_")


@dataclass
class Catalogue:
    """What this workspace can be asked: its measures and dimensions (by fact table)."""

    measures: dict[str, Measure]
    dimensions: dict[str, Dimension]
    columns: dict[str, list[str]]  # table -> columns
    data_up_to: dt.date | None
    data_from: dt.date | None
    notes: list[str] = field(default_factory=list)
    # This workspace's own aliases (they win over ALIASES): "response_rate" is the label's
    # rate when the label is the only outcome the workspace has.
    aliases: dict[str, str] = field(default_factory=dict)

    def churn_label_rate(self) -> Measure | None:
        """The rate of the customers table's churn-like label where "churn" means it (no
        order-based churn model in the build); None otherwise."""
        measure = self.measures.get(self.resolve("churn") or "")
        return (
            measure if measure is not None and measure.aggregation == "share_of_customers" else None
        )

    def resolve(self, name: str) -> str | None:
        """The measure ``name`` stands for here (its own name or an alias), or None."""
        key = norm(name)
        key = self.aliases.get(key, ALIASES.get(key, key))
        return key if key in self.measures else None

    def measure(self, name: str) -> Measure:
        """The measure called ``name`` (aliases and case accepted); ConfigError otherwise."""
        key = norm(name)
        key = self.aliases.get(key, ALIASES.get(key, key))
        if key in self.measures:
            return self.measures[key]
        raise ConfigError(f"no measure '{name}' in this workspace", hint=self._choices(key, "m"))

    def dimension(self, name: str) -> Dimension:
        """The dimension called ``name``; ConfigError listing the choices otherwise."""
        key = norm(name)
        if key not in self.dimensions:  # "rating" is a dimension before it is a measure alias
            key = ALIASES.get(key, key)
        if key in self.dimensions:
            return self.dimensions[key]
        raise ConfigError(f"no dimension '{name}' in this workspace", hint=self._choices(key, "d"))

    def _choices(self, key: str, kind: str) -> str:
        names = list(self.measures if kind == "m" else self.dimensions)
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
        what = "measures" if kind == "m" else "dimensions"
        lead = f"did you mean {', '.join(close)}? " if close else ""
        return f"{lead}{what}: {', '.join(names)}"

    def dims_for(self, table: str) -> list[str]:
        """Dimensions a measure of ``table`` can be broken down or filtered by."""
        return [d.name for d in self.dimensions.values() if table in d.tables]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready catalogue (``insight metrics --list``)."""
        return {
            "data_up_to": self.data_up_to.isoformat() if self.data_up_to else None,
            "measures": [
                {**m.describe(), "table": m.table, "dimensions": self.dims_for(m.table)}
                for m in self.measures.values()
            ],
            "dimensions": [
                {
                    "name": d.name,
                    "label": d.label,
                    "applies_to": list(d.tables),
                    "kind": "yes/no" if d.flag else "number" if d.numeric else d.source,
                    "breakdown": d.breakdown,
                    "banded": d.banded,
                }
                for d in self.dimensions.values()
            ],
            "notes": self.notes,
        }


def build_catalogue(con: Any, labels: dict[str, str] | None = None) -> Catalogue:
    """The catalogue of the tables registered on ``con`` (see engine.backend.connect).
    ``labels``: the build's label models, label column -> its positive value (each gets a
    rate and a mean predicted probability)."""
    present = set(con.list_tables())
    columns = {name: list(con.table(name).columns) for name in present}
    # a table with no rows offers no measure (a customers-only export has an empty orders
    # table: "returns" there is a measure of nothing)
    empty = {
        t
        for t in ("orders", "returns", "campaigns", "reviews")
        if t in present and con.table(t).count().to_pyarrow().as_py() == 0
    }
    measures: dict[str, Measure] = {}
    for m in builtin_measures():
        if m.table not in present or m.table in empty:
            continue
        if any(c not in columns[m.table] for c in m.needs):
            continue
        if m.table == "customers" and _derived_customers(columns):
            continue  # customers made from order ids: active_customers says it better
        measures[m.name] = m
    aliases: dict[str, str] = {}
    if "orders" in present and "orders" not in empty:
        # an orders export's own figures (a Superstore's Profit, Discount, Shipping Cost)
        own = _order_measures(con, columns["orders"])
        measures.update(own)
        for word in ("profit", "margin"):  # "profit by region": the Profit column's total
            named = [m for m in own if m.startswith("total_") and word in m]
            if len(named) == 1:
                aliases[word] = named[0]
    flags: list[str] = []
    if "customers" in present and not _derived_customers(columns):
        flags = flag_columns(con, columns["customers"], {})
        label_flags = [c for c in flags if c in (labels or {})]  # "buyers vs non buyers"
        flags = [c for c in flags if c not in label_flags]
        measures.update(_attribute_measures(con, columns, labels or {}, flags))
        for col in flags:  # "share on paperless billing", "% seniors"
            if _GENDER.search(col):
                continue  # which of 0 and 1 is which sex the file does not say
            share = _flag_share(col)
            measures[share.name] = share
            aliases[f"average_{norm(col)}"] = share.name
        money = [
            m for m in measures.values()
            if m.table == "customers" and m.name.startswith("total_")
            and _CUSTOMER_MONEY.search(m.name.removeprefix("total_"))
        ]  # fmt: skip
        if len(money) == 1 and "revenue" not in measures:
            # a customers table with one spend column (Tayko's Spending) and no orders:
            # that column is what "revenue", "total $" and "spend per customer" mean here
            col = money[0].name.removeprefix("total_")
            aliases.update(revenue=f"total_{col}", sales=f"total_{col}",
                           revenue_per_customer=f"average_{col}")  # fmt: skip
            measures[money[0].name] = replace(money[0], words=(
                *money[0].words, r"\btotal \$|\bbrought in\b|\btook in\b"))  # fmt: skip
        rates = _label_measures(columns, labels or {})
        measures.update(rates)
        rate_names = [n for n, m in rates.items() if m.aggregation == "share_of_customers"]
        lost = [n for n in rate_names if CHURN_LABEL.search(n.removesuffix("_rate"))]
        if len(lost) == 1 and "p_churn" not in columns.get("scores", []):
            # a churn / attrition column is what "churn" means in a workspace without the
            # order-based churn model: "churn by contract", "which plan loses the most"
            aliases.update(churn=lost[0], churn_rate=lost[0], attrition_rate=lost[0])
            rate = measures[lost[0]]
            measures[rate.name] = replace(rate, words=(*rate.words, _CHURN_WORDS))
        elif len(rate_names) == 1 and "response_rate" not in measures:
            # the customers table's one outcome is what "response / conversion rate" means
            # here (the bank's "y": subscribed after the call); the answer names the label
            for word in ("response_rate", "conversion_rate", "success_rate", "outcome_rate",
                         "subscription_rate", "take_up_rate", "uptake_rate"):  # fmt: skip
                aliases[word] = rate_names[0]
            rate = measures[rate_names[0]]
            positive = re.escape(rate.label.rsplit(" = ", 1)[-1].lower())
            measures[rate.name] = replace(rate, words=(*rate.words, *(
                # and so are the verbs for it: "which age group responds best?"
                r"\brespon\w*", rf"\b(?:say|says|said|saying|answer\w*) {positive}\b",
                r"\bsubscri\w*", r"\bsign(?:s|ed|ing)? up\b", r"\bconver\w*",
                r"\btake[- ]?up\b", r"\bconv\b", r"\buptake\b",
                r"\b(?:buy|buying|hit) rate\b", r"\bacceptance\b",
                r"(?:%|\bshare|\bpercent\w*|\bproportion|\bhow many) (?:of (?:them |those )?)?"
                r"(?:that|who) (?:bought|purchased|converted|took it|said yes)\b",
                r"\b(?:works?|worked|performs?|performed|does|did|do) "
                r"better\b", r"\bmore (?:effective|successful)\b")))  # fmt: skip
    facts = [t for t in ("orders", "returns", "campaigns", "reviews", "customers")
             if t in present and t not in empty]  # fmt: skip
    has_customer_id = {t for t in facts if "customer_id" in columns[t]} | (
        {"scores"} if "scores" in present else set()
    )
    dims: dict[str, Dimension] = {}
    timed = tuple(t for t in facts if TIME_COLUMN.get(t) in columns[t])
    for grain in TIME_DIMS if timed else ():  # no dated rows: no time breakdown
        dims[grain] = Dimension(grain, grain.capitalize(), "time", tables=timed)
    # columns of the fact tables themselves
    fact_cols: dict[str, list[str]] = {
        "orders": ["category", "product"],
        "returns": ["category", "product"],
        "campaigns": ["campaign"],
        "reviews": ["category", "product", "rating"],
    }
    for table in facts:
        if table == "customers":
            continue
        wanted = [c for c in fact_cols.get(table, []) if c in columns[table]]
        wanted += _extra_levels(con, table, columns[table])
        for col in wanted:
            name = norm(col)
            if name in dims and dims[name].source != "fact":
                continue
            old = dims.get(name)
            tables = (*old.tables, table) if old else (table,)
            numeric = col == "rating"
            dims[name] = Dimension(name, col.replace("_", " ").capitalize(), "fact", col, tables,
                                   numeric)  # fmt: skip
    if "reviews" in facts and "rating" in columns["reviews"]:
        dims["sentiment"] = Dimension("sentiment", "Sentiment (from rating)", "derived", "rating",
                                      ("reviews",))  # fmt: skip
    # customer attributes, joined by customer_id
    people = has_customer_id | ({"customers"} if "customers" in facts else set())
    if "scores" in present and "segment_name" in columns["scores"]:
        dims["segment"] = Dimension("segment", "Segment", "scores", "segment_name",
                                    tuple(sorted(people | {"scores"})))  # fmt: skip
    if "customers" in present and not _derived_customers(columns):
        cust = columns["customers"]
        if "age" in cust:
            dims["age_band"] = Dimension("age_band", "Age band", "customer", "age",
                                         tuple(sorted(people | {"scores"} & present)))  # fmt: skip
        cands = [c for c in ("gender", "region", "country", "channel") if c in cust]
        cands += _extra_levels(con, "customers", cust) + flags + label_flags
        numeric = _numeric_levels(con, cust, set(cands) | set(labels or {}))
        cands += list(numeric)
        for col in cands:
            name = norm(col)
            if name in dims:
                # a fact column of the same name wins for its own table; customers elsewhere
                old = dims[name]
                rest = tuple(t for t in sorted(people | ({"scores"} & present)) if t not in
                             old.tables)  # fmt: skip
                if rest and old.source == "fact":
                    dims[f"customer_{name}"] = Dimension(f"customer_{name}", f"Customer {col}",
                                                         "customer", col, rest)  # fmt: skip
                continue
            dims[name] = Dimension(name, col.replace("_", " ").capitalize(), "customer", col,
                                   tuple(sorted(people | ({"scores"} & present))),
                                   numeric=col in numeric,
                                   flag=(col in flags or col in label_flags)
                                   and not _GENDER.search(col),
                                   # "by age" is the age bands; "older than 60" filters age
                                   breakdown=not (col == "age" and "age_band" in dims),
                                   banded=not numeric.get(col, True) and col != "age")  # fmt: skip
    if "customer" not in dims and has_customer_id:
        # one row per customer: "top 10 customers by revenue last year" (never matched by
        # value or offered without a ranking in mind: see tools/metrics.py)
        dims["customer"] = Dimension("customer", "Customer", "id", "customer_id",
                                     tuple(sorted(has_customer_id)))  # fmt: skip
    up_to, first = _date_range(con, present)
    notes = []
    if "scores" not in present:
        notes.append("no build yet: segment and model measures appear after `insight build`")
    return Catalogue(measures, dims, columns, up_to, first, notes, aliases)


# A label column that records customers lost ("churn", "Exited", "attrition", "cancelled")
CHURN_LABEL = re.compile(r"churn|attrit|exited|cancel|lapsed|defect|left_|_left|^left$", re.I)
# How people say it: "churn rate", "churned", "who cancels", "attrition", "which plan loses"
_CHURN_WORDS = (
    r"\bchurn\w*|\battrition\b|\bcancel\w*|\bleav(?:e|es|ing)\b|\blos(?:e|es|ing) (?:the )?"
    r"most\b|\bquit\w*"
)


def _label_measures(columns: dict[str, list[str]], labels: dict[str, str]) -> dict[str, Measure]:
    """Per label model of the customers table: the share of customers with the positive
    value (as the model was trained on it) and the mean predicted probability."""
    out: dict[str, Measure] = {}
    scores = columns.get("scores", [])
    for label, positive in sorted(labels.items()):
        if label not in columns["customers"]:
            continue
        key = norm(label)
        # "award rate" for Award?, "gender=male" said without its punctuation too, "loan
        # rate" for Personal Loan
        last = _last_word(label, columns["customers"])
        said = rf"(?:{re.escape(label.lower().replace('_', ' '))}|{column_words(label)}" + (
            rf"|{re.escape(last)})" if last else ")"
        )

        def rate(t: Any, c: dict[str, Any], _label: str = label, _pos: str = positive) -> Any:
            col = t[_label].cast("string").strip()
            # missing labels stay missing (as in training): the mean skips them
            return (col.lower() == _pos.strip().lower()).cast("float64").mean()

        out[f"{key}_rate"] = Measure(
            f"{key}_rate", f"Share with {label} = {positive}", "customers", "share",
            "share_of_customers",
            f"share of customers whose {label} is {positive} (the customers table's own label)",
            rate, digits=3,
            words=(rf"\b(?:{said}|{re.escape(positive.lower())})[- ](?:[a-z]+ )?rate\b",
                   rf"\b(?:share|percent\w*|proportion|%|how many)"
                   rf"\b.{{0,30}}\b(?:with|said|say|says|saying|answered) "
                   rf"(?:{said}|{re.escape(positive.lower())})\b"),
        )  # fmt: skip
        col = f"p_label_{label}"
        if col in scores:
            out[f"mean_{key}_probability"] = Measure(
                f"mean_{key}_probability", f"Mean predicted probability of {label} = {positive}",
                "scores", "probability", "mean",
                f"mean probability the model gives that {label} is {positive}, per customer",
                lambda t, c, _c=col: t[_c].mean(), needs=(col,), digits=3,
                words=(rf"\b(?:predicted|expected|modelled|model) (?:{said} )?(?:rate|"
                       rf"probability|likelihood)\b",),
            )  # fmt: skip
    return out


# Numeric customer columns that are not attributes to average.
# A row or record number ("Seq#", "row", "index", "rownames"): an order, not an attribute.
ROW_NUMBER = re.compile(
    r"^(?:seq|sequence|row|rows|rownum|rownames|row_?n(?:o|um|umber)?|index|idx|obs|record|"
    r"rec_?no|line|line_?no|unnamed(?:_\d+)?)$"
)
_NOT_AVERAGED = re.compile(
    r"(?:^|_)(?:id|ids|key|zip|postcode|year|month|day|week)$|code$|" + ROW_NUMBER.pattern
)
# Numeric customer columns with few values break figures down by value ("Rcode", "children",
# "tenure_years"); those with more by bands (see MetricsEngine.bands), and they filter as
# numbers ("M over 300", "tenure > 24").
MAX_NUMERIC_LEVELS = 24
# A banded column with at least this share of zeros gets "0" as a band of its own ("no
# qualifying miles"), the other bands cut at the quantiles of the non-zero values.
ZERO_BAND_SHARE = 0.15
BAND_QUANTILES = (0.2, 0.4, 0.6, 0.8)  # quintiles; quartiles of the rest after a zero band


_MONEY_WORDS = re.compile(
    r"profit|margin|cost|price|amount|value|revenue|sales|shipping|tax|fee|spend", re.I
)


# A filler word between "average" and a column's name ("avg monthly call duration") is never
# one that starts a breakdown or a second figure: "avg balance by bonus trans" is the
# average balance, by bonus_trans.
_FILLER = r"(?!(?:by|per|vs|versus|for|across|among|and|or|than|in|of|with|without)\b)"


def _order_measures(con: Any, cols: list[str]) -> dict[str, Measure]:
    """The total and the average per order line of each extra numeric column of the orders
    (Profit, Discount, Shipping Cost …): "profit by region", "avg discount by category"."""
    schema = con.table("orders").schema()
    out: dict[str, Measure] = {}
    for col in cols:
        key = norm(col)
        if (
            col in _KNOWN_COLS
            or PII_COLUMN.search(col)
            or _NOT_AVERAGED.search(key)
            or not schema[col].is_numeric()
            or schema[col].is_boolean()
            or key in {"revenue", "orders", "units", "returns"}  # built-in names
        ):
            continue
        said = column_words(col)
        unit = "currency" if _MONEY_WORDS.search(col) else "number"
        out[f"total_{key}"] = Measure(
            f"total_{key}", f"Total {col}", "orders", unit, "total",
            f"sum of the order lines' {col} (orders file, returns excluded)",
            lambda t, c, _c=col: t[_c].sum(),
            words=(rf"\b(?:(?:total|sum of|overall)\s+)?{said}\b",),
        )  # fmt: skip
        out[f"average_{key}"] = Measure(
            f"average_{key}", f"Average {col} per order line", "orders", unit, "mean",
            f"mean of the order lines' {col} (orders file, returns excluded)",
            lambda t, c, _c=col: t[_c].mean(), digits=2 if unit == "currency" else 4,
            words=(rf"\b(?:average|avg|mean|typical)\s+(?:[a-z]+\s+)?{said}\b",),
        )  # fmt: skip
    return out


def flag_columns(con: Any, cols: list[str], labels: dict[str, str]) -> list[str]:
    """Customer columns holding only 0 and 1 (or true and false): yes/no attributes such as
    senior_citizen or paperless_billing. They break figures down ("seniors vs non seniors")
    and their share is a measure; their mean or median as a number would mislead."""
    t = con.table("customers")
    schema = t.schema()
    cands = [
        c
        for c in cols
        if c != "customer_id"
        and c not in labels
        and (schema[c].is_boolean() or schema[c].is_integer() or schema[c].is_floating())
    ]
    if not cands:
        return []
    stats = t.aggregate(**{
        f"o{i}": (t[c].cast("float64").isin([0.0, 1.0]) | t[c].isnull()).all()
        for i, c in enumerate(cands)
    } | {f"n{i}": t[c].cast("float64").nunique() for i, c in enumerate(cands)})  # fmt: skip
    row = stats.to_pyarrow().to_pylist()[0]
    return [c for i, c in enumerate(cands) if row[f"o{i}"] and row[f"n{i}"] == 2]


# A customers-table column that is money the customer spent (not a balance or a charge)
_CUSTOMER_MONEY = re.compile(r"spen[dt]|revenue|sales|monetary|amount_?spent|amt_?spent|mnt")
# Customer columns whose sum is a figure: money, counts of things bought ("AmtSpent",
# "total_charges", "ArtBks", "NumWebPurchases").
_SUMMABLE = re.compile(
    r"spen[dt]|amount|amt|mnt|value|revenue|sales|charge|paid|payment|purchase|purch|order|"
    r"bks|book|items|units|qty|quantity|balance|visits",
    re.I,
)
_GENDER = re.compile(r"^(?:gender|sex)$", re.I)


def _numeric_levels(con: Any, cols: list[str], taken: set[str]) -> dict[str, bool]:
    """Numeric customer columns worth filtering by ("M over 300", "tenure > 24"), each with
    whether it has few enough values to break figures down by ("by Rcode")."""
    t = con.table("customers")
    schema = t.schema()
    cands = [
        c
        for c in cols
        if c not in taken
        and c != "customer_id"
        and not PII_COLUMN.search(c)
        and schema[c].is_numeric()
        and not schema[c].is_boolean()
        and not re.search(r"(?:^|_)(?:id|ids|key)$", norm(c))
        and not ROW_NUMBER.match(norm(c))
    ]
    if not cands:
        return {}
    counts = t.aggregate(**{f"n{i}": t[c].nunique() for i, c in enumerate(cands)})
    row = counts.to_pyarrow().to_pylist()[0]
    return {c: (row[f"n{i}"] or 0) <= MAX_NUMERIC_LEVELS for i, c in enumerate(cands)}


def flag_words(col: str, siblings: Sequence[str] = ()) -> str:
    """A regex for a yes/no column said in words: its name, or its first word alone when
    that is long enough to be distinctive ("seniors" for senior_citizen, "paperless")."""
    words = re.findall(r"[a-z0-9]+", col.lower())
    whole = column_words(col)
    # not when other yes/no columns start with that word too (source_a … source_x)
    shared = sum(re.findall(r"[a-z0-9]+", s.lower())[:1] == words[:1] for s in siblings) > 1
    if len(words) == 2 and all(w.isalpha() and len(w) >= 3 for w in words):
        # the two words the other way round: "ordered on the web" for Web order
        first, second = (re.escape(w) for w in words)
        whole = rf"(?:{whole}|{second}\w*(?:\s+(?:on|in|at|by|via|from|the|a|an)){{0,2}}\s+{first})"
    last = _last_word(col, siblings)
    if last:  # "took the loan" for Personal Loan, where no other column ends in "loan"
        whole = rf"(?:{whole}|{re.escape(last)}s?)"
    if len(words) > 1 and len(words[0]) >= 5 and words[0].isalpha() and not shared:
        return rf"(?:{whole}|{re.escape(words[0])}s?)"
    return whole


def _last_word(col: str, siblings: Sequence[str]) -> str | None:
    """The last word of a two-or-more-word column name when it names the column alone: four
    letters or more, and in no other column of ``siblings`` ("loan" for Personal Loan; not
    "account" beside Securities Account and CD Account). None without siblings to check."""
    words = re.findall(r"[a-z]+", col.lower())
    if not siblings or len(words) < 2 or len(words[-1]) < 4:
        return None
    others = [s for s in siblings if s != col]
    if any(words[-1] in re.findall(r"[a-z]+", s.lower()) for s in others):
        return None
    return words[-1]


def _flag_share(col: str) -> Measure:
    key = norm(col)
    said = flag_words(col)
    return Measure(
        f"share_{key}", f"Share with {col} = 1", "customers", "share", "share_of_customers",
        f"share of customers whose {col} is 1 (yes), missing values skipped",
        lambda t, c, _c=col: t[_c].cast("float64").mean(), digits=3,
        words=(rf"(?:\b(?:share|percent\w*|proportion|fraction)\b|%)(?:\s+of)?(?:\s+(?:our|the|all))?"
               rf"(?:\s+(?:customers?|custs?|people|ppl|users|members|subscribers?|clients?))?"
               rf"(?:\s+(?:who|that))?(?:\s+(?:are|is|have|has|use|uses|pay|pays|get|gets))?"
               rf"(?:\s+(?:on|with|using|in|having|by))?(?:\s+an?)?\s+{said}\b",
               rf"\b{said}\s+(?:share|rate|percent\w*|proportion)\b"),
    )  # fmt: skip


def _attribute_measures(
    con: Any, columns: dict[str, list[str]], labels: dict[str, str], flags: Sequence[str] = ()
) -> dict[str, Measure]:
    """The mean and median of each numeric customer attribute (balance, income, age,
    tenure …): "average balance by job". Yes/no columns (``flags``) get a share instead."""
    schema = con.table("customers").schema()
    out: dict[str, Measure] = {}
    rfm = _rfm_table(columns["customers"])
    for col in columns["customers"]:
        key = norm(col)
        if (
            col == "customer_id"
            or col in labels
            or col in flags
            or PII_COLUMN.search(col)
            or _NOT_AVERAGED.search(key)
            or not schema[col].is_numeric()
            or schema[col].is_boolean()
        ):
            continue
        said = column_words(col, columns["customers"])
        for agg, word, fn in (("mean", "average", "mean"), ("median", "median", "median")):
            name = f"{word}_{key}"
            out[name] = Measure(
                name, f"{word.capitalize()} {col}", "customers", "number", agg,
                f"{'mean' if agg == 'mean' else 'median'} of the customers' {col} "
                "(customers table, missing values skipped)",
                lambda t, c, _c=col, _f=fn: getattr(t[_c], _f)(),
                # "avg call duration", "median no. of purchases"
                words=(rf"\b(?:{word}|{'avg|mean|typical' if agg == 'mean' else 'middle'})"
                       rf"(?: (?:no\.?|number|#) of)? "
                       rf"(?P<filler>(?:{_FILLER}[a-z]+ ){{0,2}}(?:\( )?){said}\b",),
            )  # fmt: skip
        if not _SUMMABLE.search(str(col)) and not (rfm and str(col).strip().lower() == "m"):
            continue  # a sum of ages or tenures means nothing
        out[f"total_{key}"] = Measure(
            f"total_{key}", f"Total {col}", "customers", "number", "total",
            f"sum of the customers' {col} (customers table, missing values skipped)",
            lambda t, c, _c=col: t[_c].sum(),
            words=(rf"\b(?:total|sum of|sum|overall)(?: (?:the |our |all ))?"
                   rf"(?: {_FILLER}[a-z]+)? {said}\b(?! per\b)",),
        )  # fmt: skip
    return out


def column_words(col: str, siblings: Sequence[str] = ()) -> str:
    """A regex for a column's name said in words, in any number and with the usual
    synonyms: "monthly charge(s)" or "monthly bill" for monthly_charges, "total charge" or
    "lifetime spend" for TotalCharges' snake form, "art books" for ArtBks, "first purchase"
    for FirstPurch. ``siblings`` (the table's other columns) tell a single-letter R, F or M
    of an RFM table apart: "months since last purchase", "number of purchases", "spend"."""
    from insight_agent.names import word_key

    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", str(col))
    words = re.findall(r"[a-z0-9]+", spaced.lower())
    said = r"[\s_-]*".join(  # "cookbook" for CookBks, "cook books" too
        "(?:"
        + "|".join(re.escape(k) for k in (word_key(w), *_SAID_AS.get(word_key(w), ())))
        + r")(?:e?s|ers?)?"  # "web orderers" for Web order
        for w in words
    )
    tail = len(words)
    while tail > 1 and re.fullmatch(r"\d+[a-z]{0,3}", words[tail - 1]):
        tail -= 1  # "flight miles" for Flight_miles_12mo: a trailing "12mo" may go unsaid
    if tail < len(words):
        head = column_words("_".join(words[:tail]))
        said = rf"(?:{said}|{head}(?![\s_-]*\d))"
    extra = _RFM_WORDS.get(str(col).strip().lower()) if _rfm_table(siblings) else None
    return f"(?:{extra}|{said})" if extra else said


def _rfm_table(columns: Sequence[str]) -> bool:
    """Whether the table's columns include single-letter R, F and M (an RFM export)."""
    return {str(c).strip().lower() for c in columns} >= {"r", "f", "m"}


# An RFM table's single-letter columns, as people say them.
_RFM_WORDS = {
    "r": r"recency|(?:months?|days?|weeks?|time) since (?:the |their )?last "
    r"(?:purchase|order|buy)",
    "f": r"frequency|(?:purchases|orders|buys)(?: per (?:customer|cust|person))?|purchase count",
    "m": r"monetary(?: value)?|(?:total |book |overall )?"
    r"(?:spend|spending|amount spent|money spent)",
}


# How people say a column's words in a question ("avg monthly bill" for monthly_charges,
# "lifetime spend" for total_charges); keys are names.word_key forms.
_SAID_AS = {
    "charge": ("bill", "billing", "fee", "spend", "payment"),
    "total": ("lifetime", "cumulative", "all time", "all-time"),
    "income": ("salary", "earning"),
    "salary": ("income", "pay"),
    # abbreviations of exports ("ArtBks", "FirstPurch", "AmtSpent", "NumPurchases")
    "bk": ("book",),
    "bks": ("book",),
    "geog": ("geography",),
    "ital": ("italian",),
    "purch": ("purchase",),
    "amt": ("amount",),
    "num": ("number", "no"),
    "qty": ("quantity",),
    "cnt": ("count",),
    "yr": ("year",),
    "mo": ("month",),
    "mnt": ("amount", "spend"),
    "disc": ("discount", "dollar", "saving"),  # Complete Journey's coupon_disc
    "pct": ("percent", "percentage"),
    "val": ("value",),
    "tot": ("total",),
    "dept": ("department",),
    "freq": ("frequency", "transaction", "purchase"),
    "spending": ("spend", "spent"),
    "spent": ("spend", "spending"),
    "trans": ("transaction",),
}


def _derived_customers(columns: dict[str, list[str]]) -> bool:
    return columns.get("customers") == ["customer_id"]


_KNOWN_COLS = {
    "customer_id", "order_id", "order_date", "amount", "quantity", "unit_price", "product",
    "category", "review_id", "text", "rating", "date", "campaign", "sent_date", "responded",
    "signup_date", "age", "income", "gender", "region", "country", "channel", "text_raw",
    "title",
}  # fmt: skip


def _extra_levels(con: Any, table: str, cols: list[str]) -> list[str]:
    """Extra text columns of ``table`` with few distinct values (dimensions worth offering)."""
    t = con.table(table)
    cands = [
        c
        for c in cols
        if c not in _KNOWN_COLS and not PII_COLUMN.search(c) and t[c].type().is_string()
    ]
    if not cands:
        return []
    counts = t.aggregate(**{f"n{i}": t[c].nunique() for i, c in enumerate(cands)})
    row = counts.to_pyarrow().to_pylist()[0]
    return [c for i, c in enumerate(cands) if 1 < (row[f"n{i}"] or 0) <= MAX_LEVELS]


def _little_data(period: Any, cutoff: dt.date) -> str | None:
    """A note when the period asked for runs past the data's last day ("Q1" on data that ends
    1 Jan: 1 of its 90 days) or is a "to date" period of a few days ("this year" on 1 Jan):
    its figure is not the whole period's."""
    total = period.days
    if period.start is None or total is None:
        return None
    if period.end > cutoff:
        covered = max((cutoff - period.start).days + 1, 0)
        return (
            f"the data ends on {cutoff}: {covered:,} of this period's {total:,} days "
            f"{'has' if covered == 1 else 'have'} data, so the figure is not the whole period's"
        )
    if period.label.endswith("to date") and total <= 7:
        return (
            f"{period.label} is only {total} day{'s' if total > 1 else ''} of data (the data "
            f"ends on {cutoff}); name a complete period (e.g. last year) for more"
        )
    return None


def _date_range(con: Any, present: set[str]) -> tuple[dt.date | None, dt.date | None]:
    for table in ("orders", "campaigns", "reviews"):
        if table in present and TIME_COLUMN[table] in con.table(table).columns:
            t = con.table(table)
            col = t[TIME_COLUMN[table]]
            row = t.aggregate(lo=col.min(), hi=col.max()).to_pyarrow().to_pylist()[0]
            if row["hi"] is not None:
                return _as_date(row["hi"]), _as_date(row["lo"])
    return None, None


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    import pandas as pd

    return pd.Timestamp(value).date()


# --- requests ---------------------------------------------------------------------------------


@dataclass
class Filter:
    """``dimension op value(s)``: = and != take several values separated by '|'."""

    dimension: str
    op: str
    values: list[str]

    def to_text(self) -> str:
        """As a person would write it: ``category=Shoes|Bags``."""
        return f"{self.dimension}{self.op}{'|'.join(self.values)}"


_FILTER = re.compile(r"^\s*([^=!<>]+?)\s*(!=|>=|<=|=|>|<)\s*(.+?)\s*$")


def parse_filter(text: str) -> Filter:
    """``segment=Lapsing customers``, ``category!=Shoes``, ``rating<=2``, ``region=North|South``."""
    m = _FILTER.match(text)
    if not m:
        raise ConfigError(
            f"cannot read the filter '{text}'",
            hint="write DIMENSION=VALUE (also !=, <, <=, >, >=; several values: A|B)",
        )
    return Filter(m[1], m[2], [v.strip() for v in m[3].split("|") if v.strip()])


@dataclass
class MetricRequest:
    """A typed metrics question (what the CLI, the tool and report sections build)."""

    measures: list[str]
    by: list[str] = field(default_factory=list)
    period: str | None = None
    compare: str | None = None  # previous | year
    filters: list[Filter] = field(default_factory=list)
    top: int | None = None
    ascending: bool = False


class MetricsEngine:
    """Answers :class:`MetricRequest` s over one connection (see :func:`open_metrics`)."""

    def __init__(
        self, con: Any, *, dayfirst: bool = False, labels: dict[str, str] | None = None
    ) -> None:
        self.con = con
        self.catalogue = build_catalogue(con, labels)
        self.dayfirst = dayfirst
        self._levels: dict[str, list[str]] = {}
        self._bands: dict[str, list[tuple[str, float | None]]] = {}

    # -- building blocks ------------------------------------------------------------------

    def _table(self, name: str, needed: set[str]) -> Any:
        """Fact table ``name`` with the customer columns ``needed`` joined on."""
        con, cat = self.con, self.catalogue
        t = con.table(name)
        if name == "scores":
            cust_cols = [
                d.column
                for d in cat.dimensions.values()
                if d.name in needed and d.source == "customer"
            ]
            if cust_cols and "customers" in cat.columns:
                c = con.table("customers").select("customer_id", *sorted(set(cust_cols)))
                c = c.rename({f"cust__{col}": col for col in sorted(set(cust_cols))})
                t = t.left_join(c, "customer_id").drop("customer_id_right")
            return t
        cust = {
            d.column
            for d in cat.dimensions.values()
            if d.name in needed and d.source == "customer" and name != "customers"
        }
        if cust:
            c = con.table("customers").select("customer_id", *sorted(cust))
            c = c.rename({f"cust__{col}": col for col in sorted(cust)})
            t = t.left_join(c, "customer_id").drop("customer_id_right")
        if "segment" in needed and "scores" in cat.columns:
            s = con.table("scores").select("customer_id", seg__=con.table("scores").segment_name)
            t = t.left_join(s, "customer_id").drop("customer_id_right")
        return t

    def bands(self, dim: Dimension) -> list[tuple[str, float | None]]:
        """The bands a many-valued number column is broken down by: (label, lower bound)
        in order, the first without a lower bound. Cut at the customers' quantiles rounded
        to two significant figures (each band holds its lower bound, not its upper); a
        column that is mostly zeros gets "0" as a band of its own."""
        if dim.name in self._bands:
            return self._bands[dim.name]
        t = self.con.table("customers")
        col = t[dim.column].cast("float64")
        stats = (
            t.aggregate(lo=col.min(), hi=col.max(), zeros=(col == 0).cast("float64").mean())
            .to_pyarrow()
            .to_pylist()[0]
        )
        lo, hi = stats["lo"], stats["hi"]
        if lo is None:
            self._bands[dim.name] = []
            return []
        zero_band = lo >= 0 and (stats["zeros"] or 0) >= ZERO_BAND_SHARE
        rest = t.filter(col > 0) if zero_band else t
        qs = (0.25, 0.5, 0.75) if zero_band else BAND_QUANTILES
        rc = rest[dim.column].cast("float64")
        row = rest.aggregate(**{f"q{i}": rc.quantile(q) for i, q in enumerate(qs)})
        raw = [v for v in row.to_pyarrow().to_pylist()[0].values() if v is not None]
        cuts: list[float] = []
        for v in raw:
            c = _two_figures(v)
            if (c > (0 if zero_band else lo)) and c <= hi and (not cuts or c > cuts[-1]):
                cuts.append(c)
        out: list[tuple[str, float | None]] = []
        if zero_band:
            out.append(("0", None))
        if not cuts:
            out.append(("over 0", 0.0) if zero_band else (f"{_num(lo)} to {_num(hi)}", None))
        else:
            first = f"over 0 to {_num(cuts[0])}" if zero_band else f"under {_num(cuts[0])}"
            out.append((first, 0.0 if zero_band else None))
            for a, b in itertools.pairwise(cuts):
                out.append((f"{_num(a)} to {_num(b)}", a))
            out.append((f"{_num(cuts[-1])} and over", cuts[-1]))
        self._bands[dim.name] = out
        return out

    def _band_expr(self, col: Any, dim: Dimension) -> Any:
        import ibis

        bands = self.bands(dim)
        if not bands:
            return col.cast("string").fill_null(MISSING)
        x = col.cast("float64")
        cases: list[tuple[Any, str]] = [(x.isnull(), MISSING)]
        if bands[0][0] == "0":
            cases.append((x == 0, "0"))
        # each band holds its lower bound: a value goes to the last band it reaches
        for (label, _), (_, upper) in itertools.pairwise(bands):
            if label == "0":
                continue
            cases.append((x < upper, label))
        return ibis.cases(*cases, else_=bands[-1][0])

    def _dim_expr(self, t: Any, table: str, dim: Dimension, group: bool = False) -> Any:
        import ibis

        if dim.source == "time":
            col = t[TIME_COLUMN[table]]
            return col.truncate(_TIME_UNIT[dim.name]).cast("date")
        if dim.name == "segment":
            col = t["segment_name"] if table == "scores" else t["seg__"]
            return col.cast("string").fill_null(MISSING)
        if dim.source == "id":
            return t["customer_id"].cast("string")
        if dim.name == "sentiment":
            r = t["rating"]
            return ibis.cases(
                (r.isnull(), MISSING), (r <= 2, "negative"), (r < 4, "neutral"),
                else_="positive",
            )  # fmt: skip
        col = self._column(t, table, dim)
        if dim.name.endswith("age_band"):
            return ibis.cases(
                (col.isnull(), MISSING), (col < 25, "18-24"), (col < 35, "25-34"),
                (col < 45, "35-44"), (col < 55, "45-54"), (col < 65, "55-64"), else_="65+",
            )  # fmt: skip
        if dim.banded and group:
            return self._band_expr(col, dim)
        if dim.numeric:
            return col
        if dim.flag:
            return ibis.cases((col.isnull(), MISSING), (col.cast("float64") == 1, "Yes"),
                              else_="No")  # fmt: skip
        return col.cast("string").fill_null(MISSING)

    def _column(self, t: Any, table: str, dim: Dimension) -> Any:
        if dim.source == "customer" and table != "customers":
            return t[f"cust__{dim.column}"]
        return t[dim.column]

    def levels(self, dim: Dimension) -> list[str]:
        """The distinct values of a text dimension (for filters and error messages)."""
        if dim.name not in self._levels:
            table = dim.tables[0]
            t = self._table(table, {dim.name})
            col = self._dim_expr(t, table, dim)
            vals = t.select(v=col).distinct().limit(5000).to_pyarrow().column("v").to_pylist()
            self._levels[dim.name] = sorted(str(v) for v in vals if v is not None)
        return self._levels[dim.name]

    def _match_value(self, dim: Dimension, value: str) -> Any:
        if dim.numeric:
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{dim.name} needs a number, not '{value}'") from None
        if dim.source == "id":  # an id as written: too many to list or to guess between
            return value.strip()
        if dim.flag:  # "senior_citizen=1", "=true", "=yes"
            value = FLAG_VALUES.get(value.strip().lower(), value)
        if dim.name == "segment":
            value = re.sub(r"^\s*S\d+\s+|\s*\(S\d+\)\s*$", "", value)  # "S2 Lapsing customers"
        levels = self.levels(dim)
        low = {lv.lower(): lv for lv in levels}
        if value.lower() in low:
            return low[value.lower()]
        part = [lv for lv in levels if value.lower() in lv.lower()]
        if len(part) == 1:
            return part[0]
        close = difflib.get_close_matches(value, levels, n=3, cutoff=0.6)
        shown = ", ".join(levels[:20]) + (f" … ({len(levels)} in all)" if len(levels) > 20 else "")
        lead = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"no {dim.name} '{value}'", hint=f"{lead}{dim.name} values: {shown}")

    def _filter_expr(self, t: Any, table: str, f: Filter) -> Any:
        dim = self.catalogue.dimension(f.dimension)
        if table not in dim.tables:
            raise ConfigError(
                f"{table} measures cannot be filtered by {dim.name}",
                hint=f"{table} dimensions: {', '.join(self.catalogue.dims_for(table))}",
            )
        if dim.source == "time":
            raise ConfigError(
                f"filter by time with --period, not '{f.to_text()}'", hint=f"e.g. {P.EXAMPLES}"
            )
        col = self._dim_expr(t, table, dim)
        values = [self._match_value(dim, v) for v in f.values]
        if f.op == "=":
            return col.isin(values)
        if f.op == "!=":
            return ~col.isin(values)
        if not dim.numeric:
            raise ConfigError(f"'{f.op}' needs a numeric dimension; {dim.name} is text")
        v = values[0]
        return {"<": col < v, "<=": col <= v, ">": col > v, ">=": col >= v}[f.op]

    # -- one query --------------------------------------------------------------------------

    def _query_table(
        self,
        table: str,
        measures: list[Measure],
        by: list[Dimension],
        period: P.Period | None,
        filters: list[Filter],
    ) -> Any:
        import ibis
        import pandas as pd

        needed = {d.name for d in by} | {
            self.catalogue.dimension(f.dimension).name for f in filters
        }
        t = self._table(table, needed)
        time_col = TIME_COLUMN.get(table) if table != "scores" else None
        if time_col and time_col not in t.columns:
            time_col = None
        if any(m.name in ("new_customers", "returning_customers") for m in measures):
            o = self.con.table("orders")
            first = o.group_by("customer_id").aggregate(first__=o.order_date.min())
            t = t.left_join(first, "customer_id").drop("customer_id_right")
        if period is not None and time_col:
            col = t[time_col]
            if period.start is not None:
                t = t.filter(col >= ibis.timestamp(pd.Timestamp(period.start)))
            end = pd.Timestamp(period.end) + pd.Timedelta(days=1)
            t = t.filter(col < ibis.timestamp(end))
        for f in filters:
            t = t.filter(self._filter_expr(t, table, f))
        keys = {f"d__{d.name}": self._dim_expr(t, table, d, group=True) for d in by}
        t = t.mutate(**keys) if keys else t
        ctx: dict[str, Any] = {}
        if "first__" in t.columns:
            time_dims = [d for d in by if d.source == "time"]
            if time_dims:
                ref = t[f"d__{time_dims[0].name}"].cast("timestamp")
            elif period is not None and period.start is not None:
                ref = ibis.timestamp(pd.Timestamp(period.start))
            else:
                ref = None
            ctx["is_new"] = (t.first__ >= ref) if ref is not None else ibis.literal(True)
        aggs = {m.name: m.expr(t, ctx) for m in measures if m.expr is not None}
        frames = []
        group = list(keys)
        if aggs:
            expr = t.group_by(group).aggregate(**aggs) if group else t.aggregate(**aggs)
            frames.append(expr.to_pandas())
        if any(m.name == "repeat_rate" for m in measures):
            per = t.group_by([*group, "customer_id"]).aggregate(n__=_orders_count(t, ctx))
            rate = (per.n__ >= 2).cast("float64").mean()
            expr = (
                per.group_by(group).aggregate(repeat_rate=rate)
                if group
                else per.aggregate(repeat_rate=rate)
            )
            frames.append(expr.to_pandas())
        out = frames[0]
        for extra in frames[1:]:
            out = (
                out.merge(extra, on=group, how="outer")
                if group
                else pd.concat([out, extra], axis=1)
            )
        return out

    def _run(
        self, measures: list[Measure], by: list[Dimension], period: P.Period | None,
        filters: list[Filter],
    ) -> Any:  # fmt: skip
        import pandas as pd

        keys = [f"d__{d.name}" for d in by]
        out = None
        for table in dict.fromkeys(m.table for m in measures):
            part = self._query_table(
                table, [m for m in measures if m.table == table], by, period, filters
            )
            if out is None:
                out = part
            elif keys:
                out = out.merge(part, on=keys, how="outer")
            else:
                out = pd.concat([out, part], axis=1)
        return out

    # -- the public entry point -------------------------------------------------------------

    def query(self, request: MetricRequest) -> dict[str, Any]:
        """Run ``request``; JSON-ready facts with each figure's meaning and the period."""
        import pandas as pd

        cat = self.catalogue
        if not request.measures:
            raise ConfigError("name at least one measure", hint=cat._choices("", "m"))
        measures = list(dict.fromkeys(cat.measure(m) for m in request.measures))
        by = list(dict.fromkeys(cat.dimension(d) for d in request.by))
        if sum(d.source == "time" for d in by) > 1:
            raise ConfigError("break down by one time grain at a time (day, week, month …)")
        notes: list[str] = []
        for m in measures:
            for d in by:
                if m.table not in d.tables:
                    if d.source == "time" and m.table == "scores":
                        raise ConfigError(
                            f"{m.name} is per customer as of the data's end "
                            f"({cat.data_up_to}); it has no {d.name}",
                            hint=f"break it down by: {', '.join(cat.dims_for('scores'))}",
                        )
                    raise ConfigError(
                        f"{m.name} cannot be broken down by {d.name}",
                        hint=f"{m.name} dimensions: {', '.join(cat.dims_for(m.table))}",
                    )
        if cat.data_up_to is None and request.period:
            raise ConfigError(
                "this workspace's tables have no dates, so no period applies",
                hint="leave --period out, or add a dated table (orders, campaigns, reviews)",
            )
        cutoff = cat.data_up_to or dt.date.today()
        period = P.parse_period(request.period, cutoff, first=cat.data_from,
                                dayfirst=self.dayfirst)  # fmt: skip
        if period.start is not None and period.start > cutoff:  # "h2 1998" on data to June 1998
            raise ConfigError(
                f"the data ends on {cutoff}, before {period.label} starts ({period.start})",
                hint="ask for a period up to that date, e.g. last month or last quarter",
            )
        short = _little_data(period, cutoff)
        if short:
            notes.append(short)
        undated = [m.name for m in measures if m.table == "scores"]
        if undated and request.period:
            notes.append(
                f"{', '.join(undated)}: per customer as of {cutoff}; the period does not apply"
            )
        frame = self._run(measures, by, period, request.filters)
        keys = [f"d__{d.name}" for d in by]
        compare_period = None
        if request.compare:
            compare_period = P.comparison(period, request.compare)
            before = self._run(measures, by, compare_period, request.filters)
            time_key = next((f"d__{d.name}" for d in by if d.source == "time"), None)
            if time_key:
                months, days = P.shift(period, compare_period)
                moved = pd.to_datetime(before[time_key])
                moved = moved + (
                    pd.DateOffset(months=months) if months else pd.Timedelta(days=days)
                )
                before[time_key] = moved.dt.date
                frame[time_key] = pd.to_datetime(frame[time_key]).dt.date
            before = before.rename(columns={m.name: f"{m.name}__prev" for m in measures})
            if keys:
                frame = frame.merge(before, on=keys, how="left")
            else:
                frame = pd.concat([frame, before], axis=1)
        return self._facts(request, measures, by, period, compare_period, frame, notes)

    def _facts(
        self, request: MetricRequest, measures: list[Measure], by: list[Dimension],
        period: P.Period, compare_period: P.Period | None, frame: Any, notes: list[str],
    ) -> dict[str, Any]:  # fmt: skip
        import pandas as pd

        first = measures[0].name
        time_dim = next((d for d in by if d.source == "time"), None)
        if time_dim is not None and len(by) == 1 and not request.top:
            frame = frame.sort_values(f"d__{time_dim.name}")
        elif len(by) == 1 and by[0].banded and not request.top and not request.ascending:
            order = {label: i for i, (label, _) in enumerate(self.bands(by[0]))}
            frame = frame.sort_values(f"d__{by[0].name}",
                                      key=lambda s: s.map(order).fillna(len(order)))  # fmt: skip
        else:
            keys = [f"d__{d.name}" for d in by]
            frame = frame.sort_values([first, *keys], ascending=[request.ascending] +
                                      [True] * len(keys), na_position="last")  # fmt: skip
        # an additive figure broken down by non-time values also gets each row's share of
        # the total ("what share of customers have a housing loan?")
        shares = (
            [m.name for m in measures if m.name in ADDITIVE]
            if by and compare_period is None and all(d.source != "time" for d in by)
            else []
        )
        totals = {name: frame[name].sum() for name in shares}
        total_rows = len(frame)
        cap = min(request.top or MAX_ROWS, MAX_ROWS)
        if total_rows > cap:
            frame = frame.head(cap)
            if not request.top:
                notes.append(f"showing the first {cap} of {total_rows} rows")
        rows = []
        for _, r in frame.iterrows():
            row: dict[str, Any] = {}
            for d in by:
                row[d.name] = _label(r[f"d__{d.name}"], d)
            for m in measures:
                row[m.name] = _round(r.get(m.name), m)
                if m.name in totals and totals[m.name] and row[m.name] is not None:
                    row[f"{m.name}_share"] = round(float(r.get(m.name)) / totals[m.name], 6)
                if compare_period is not None:
                    prev = _round(r.get(f"{m.name}__prev"), m)
                    row[f"{m.name}_previous"] = prev
                    row[f"{m.name}_change"] = _change(row[m.name], prev, m)
                    row[f"{m.name}_change_pct"] = _pct(row[m.name], prev)
            rows.append(row)
        out: dict[str, Any] = {
            "by": [d.name for d in by],
            "period": period.to_dict(),
            "data_up_to": self.catalogue.data_up_to.isoformat()
            if self.catalogue.data_up_to
            else None,
        }
        if period.start is None and self.catalogue.data_from:
            out["period"]["start"] = self.catalogue.data_from.isoformat()
        if self.catalogue.data_up_to is None:  # no dated table: no period to state
            out["period"] = {"label": "all data", "start": None, "end": None}
        if compare_period is not None:
            out["compared_with"] = compare_period.to_dict()
        if request.filters:
            out["filters"] = [f.to_text() for f in request.filters]
        if request.top:
            out["top"] = request.top
        if request.top or request.ascending:
            out["sorted_by"] = f"{first} ({'lowest' if request.ascending else 'highest'} first)"
        banded = [d for d in by if d.banded]
        if banded:
            out["bands"] = {
                d.name: f"{d.column} in bands cut near the customers' quantiles (each band holds "
                "its lower bound, not its upper)"
                for d in banded
            }
        out["rows_total"] = total_rows
        out["rows"] = rows  # before the definitions: the table shown under an answer
        out["measures"] = [m.describe() for m in measures]
        if notes:
            out["notes"] = notes
        del pd
        return out


def _label(value: Any, dim: Dimension) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    if dim.source == "time":
        day = pd.Timestamp(value).date()
        if dim.name == "month":
            return day.strftime("%Y-%m")
        if dim.name == "quarter":
            return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
        if dim.name == "year":
            return str(day.year)
        return day.isoformat()  # day, and week (its Monday)
    if dim.numeric and not dim.banded:
        f = float(value)
        return int(f) if f.is_integer() else f
    return str(value)


def _two_figures(v: float) -> float:
    """``v`` rounded to two significant figures (a band's cut: 43,097 -> 43,000)."""
    import math

    if v == 0 or not math.isfinite(v):
        return float(v)
    digits = 1 - math.floor(math.log10(abs(v)))
    return float(round(v, digits))


def _num(v: float) -> str:
    """A band bound as people write it: 43,000; 2.5; 0.35."""
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.6g}"


def _round(value: Any, m: Measure) -> float | int | None:
    import math

    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or math.isinf(f):
        return None
    if m.digits == 0:
        return round(f)
    # a share keeps 6 decimals, so the percentage shown (one decimal) is rounded once:
    # 0.51749 read at 4 decimals (0.5175) would show as 51.8%
    return round(f, max(m.digits, 6) if m.unit in ("share", "probability") else m.digits)


def _change(now: Any, before: Any, m: Measure) -> float | int | None:
    if now is None or before is None:
        return None
    diff = now - before
    return int(diff) if m.digits == 0 else round(diff, m.digits)


def _pct(now: Any, before: Any) -> float | None:
    if now is None or before in (None, 0):
        return None
    return round((now - before) / abs(before), 3)


__all__ = [
    "ALIASES",
    "Catalogue",
    "Dimension",
    "Filter",
    "Measure",
    "MetricRequest",
    "MetricsEngine",
    "build_catalogue",
    "norm",
    "parse_filter",
]
