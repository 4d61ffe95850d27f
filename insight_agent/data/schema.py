"""The data contract: Insight's four tables, their columns and the names they go by.

Documented for users in docs/data.md; keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["id", "date", "number", "integer", "text", "bool"]


@dataclass(frozen=True)
class Column:
    """One canonical column: its type, whether it is required, and synonyms in priority order."""

    name: str
    kind: Kind
    required: bool = False
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """One table of the contract."""

    name: str
    columns: tuple[Column, ...]
    description: str

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical column names in contract order."""
        return tuple(c.name for c in self.columns)


_CUSTOMER_ID = (
    "customer_id",
    "customerid",
    "customer",
    "cust_id",
    "custid",
    "customer_no",
    "customer_number",
    "client_id",
    "clientid",
    "client",
    "user_id",
    "userid",
    "member_id",
    "account_id",
    "buyer_id",
    "shopper_id",
    "member_no",
    "member_number",
    "membership_id",
    "membership_number",
    "account_no",
    "account_number",
    "household_id",
    "household_key",
    "contact_id",
    "customer_key",
    "cust_no",
    "cust_number",
)
# Only in the customers table: there a bare "ID" (or "ID#") is the customer's; in orders it
# would be the order's.
_CUSTOMERS_ID = (*_CUSTOMER_ID, "id", "id_no", "id_number")
_PRODUCT = (
    "product",
    "product_name",
    "item",
    "item_name",
    "description",
    "sku",
    "stock_code",
    "stockcode",
    "product_id",
)
_CATEGORY = (
    "category",
    "product_category",
    "department",
    "department_name",
    "dept",
    "product_type",
    "category_name",
    "product_line",
)
_SUBCATEGORY = (
    "subcategory",
    "sub_category",
    "subcategory_name",
    "class_name",
    "product_class",
    "subclass",
)

CUSTOMERS = Table(
    "customers",
    (
        Column("customer_id", "id", True, _CUSTOMERS_ID),
        Column(
            "signup_date",
            "date",
            False,
            (
                "signup_date",
                "signup",
                "sign_up_date",
                "registration_date",
                "registered",
                "registered_at",
                "join_date",
                "joined",
                "joined_at",
                "created_at",
                "created",
                "customer_since",
                "first_seen",
            ),
        ),
        Column("age", "number", False, ("age", "customer_age", "age_years")),
        Column("gender", "text", False, ("gender", "sex")),
        Column("region", "text", False, ("region", "state", "province", "area", "county")),
        Column("country", "text", False, ("country", "country_code", "nation")),
        Column(
            "channel",
            "text",
            False,
            (
                "channel",
                "acquisition_channel",
                "signup_channel",
                "source",
                "signup_source",
                "acquisition_source",
            ),
        ),
        Column(
            "income",
            "number",
            False,
            (
                "income",
                "annual_income",
                "household_income",
                "yearly_income",
            ),
        ),
    ),
    "One row per customer. Columns other than these are kept as customer attributes.",
)

ORDERS = Table(
    "orders",
    (
        Column("customer_id", "id", True, _CUSTOMER_ID),
        Column(
            "order_date",
            "date",
            True,
            (
                "order_date",
                "orderdate",
                "invoice_date",
                "invoicedate",
                "purchase_date",
                "transaction_date",
                "order_datetime",
                "order_time",
                "date",
                "created_at",
                "timestamp",
            ),
        ),
        Column(
            "amount",
            "number",
            False,
            (
                "amount",
                "order_amount",
                "order_total",
                "total",
                "total_amount",
                "line_total",
                "revenue",
                "sales",
                "net_amount",
                "gross_amount",
                "value",
                "order_value",
                "spend",
            ),
        ),
        Column("quantity", "number", False, ("quantity", "qty", "units", "quantity_ordered")),
        Column(
            "unit_price",
            "number",
            False,
            (
                "unit_price",
                "unitprice",
                "price",
                "item_price",
                "price_each",
                "unit_cost",
            ),
        ),
        Column(
            "order_id",
            "id",
            False,
            (
                "order_id",
                "orderid",
                "order_no",
                "order_number",
                "invoice_no",
                "invoiceno",
                "invoice",
                "invoice_number",
                "invoice_id",
                "transaction_id",
                "receipt_id",
            ),
        ),
        Column("product", "text", False, _PRODUCT),
        Column("category", "text", False, _CATEGORY),
    ),
    "One row per order or order line. Needs amount, or quantity and unit_price.",
)

REVIEWS = Table(
    "reviews",
    (
        Column(
            "text",
            "text",
            True,
            (
                "text",
                "review_text",
                "review",
                "review_body",
                "body",
                "comment",
                "comments",
                "content",
                "feedback",
                "review_content",
                "message",
            ),
        ),
        Column("review_id", "id", False, ("review_id", "reviewid", "id", "review_no")),
        Column("customer_id", "id", False, _CUSTOMER_ID),
        Column(
            "rating",
            "number",
            False,
            (
                "rating",
                "stars",
                "star_rating",
                "score",
                "review_rating",
                "review_score",
            ),
        ),
        Column(
            "date",
            "date",
            False,
            (
                "date",
                "review_date",
                "reviewed_at",
                "created_at",
                "submitted_at",
                "submission_date",
                "timestamp",
            ),
        ),
        Column("product", "text", False, _PRODUCT),
        # A department is the category; a class ("Class Name") is the subcategory, or the
        # category when the file has no department-like column (matched in this order).
        Column("category", "text", False, (*_CATEGORY, *_SUBCATEGORY)),
        Column("subcategory", "text", False, _SUBCATEGORY),
        # The review's title: kept, and put before the text ("Title. Text") for search.
        Column(
            "title",
            "text",
            False,
            ("title", "review_title", "headline", "summary", "review_summary", "subject"),
        ),
    ),
    "One row per review. Reviews without a customer_id are searchable but not linked.",
)

CAMPAIGNS = Table(
    "campaigns",
    (
        Column("customer_id", "id", True, _CUSTOMER_ID),
        Column(
            "campaign",
            "text",
            True,
            (
                "campaign",
                "campaign_name",
                "campaign_id",
                "campaign_code",
            ),
        ),
        Column(
            "sent_date",
            "date",
            True,
            (
                "sent_date",
                "send_date",
                "sent_at",
                "sent",
                "date",
                "send_time",
            ),
        ),
        Column(
            "responded",
            "bool",
            True,
            (
                "responded",
                "response",
                "converted",
                "conversion",
                "responder",
                "purchased",
            ),
        ),
    ),
    "One row per campaign send to one customer.",
)

SCHEMA: dict[str, Table] = {t.name: t for t in (CUSTOMERS, ORDERS, REVIEWS, CAMPAIGNS)}

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise(name: object) -> str:
    """Lower-case a column name and drop everything but letters and digits.

    ``"Customer ID"``, ``"customer_id"`` and ``"CustomerID"`` all become ``"customerid"``.
    """
    return _NON_ALNUM.sub("", str(name).lower())


@dataclass
class ColumnMatch:
    """Result of matching a file's header against a table of the contract."""

    mapping: dict[str, str]  # canonical -> source column
    missing: list[str]  # required canonical columns not found
    extras: list[str]  # source columns not mapped (kept as attributes)
    ambiguous: dict[str, list[str]]  # canonical -> several candidate source columns


def match_columns(table: Table, header: list[str], explicit: dict[str, str]) -> ColumnMatch:
    """Map a file's header onto ``table``: explicit mapping first, then names and synonyms.

    Explicit entries must name a column that exists; the caller reports them otherwise.
    A source column is used for at most one canonical column.
    """
    by_norm: dict[str, list[str]] = {}
    for col in header:
        by_norm.setdefault(normalise(col), []).append(col)
    used: set[str] = set()
    mapping: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}

    for canon, src in explicit.items():
        if src in header:
            mapping[canon] = src
            used.add(src)
    for column in table.columns:
        if column.name in mapping:
            continue
        for synonym in (column.name, *column.synonyms):
            candidates = [c for c in by_norm.get(normalise(synonym), []) if c not in used]
            if candidates:
                if len(candidates) > 1:
                    ambiguous[column.name] = candidates
                mapping[column.name] = candidates[0]
                used.add(candidates[0])
                break
    missing = [c.name for c in table.columns if c.required and c.name not in mapping]
    extras = [c for c in header if c not in used]
    return ColumnMatch(mapping, missing, extras, ambiguous)
