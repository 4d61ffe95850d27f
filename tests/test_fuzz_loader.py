"""Property-based: whatever bytes a CSV holds, loading either works or raises Insight's own
DataError (ValidationFailed is one) — never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from insight_agent.config import TableSource, settings_from_dict
from insight_agent.data.load import Dataset, load_dataset
from insight_agent.errors import DataError

HEADERS = [
    "customer_id",
    "CustomerID",
    "order_date",
    "InvoiceDate",
    "amount",
    "Quantity",
    "UnitPrice",
    "text",
    "Review Text",
    "rating",
    "signup_date",
    "age",
    "",
    "x,y",
    '"q"',
]
CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            "C1",
            "2024-01-02",
            "12/31/2023",
            "31/12/2023",
            "1e308",
            "-1e400",
            "nan",
            "NaN",
            "inf",
            "NULL",
            "$1,234.50",
            "(3)",
            "１２",
            "0x1F",
            "True",
            "2024-02-30",
            "9999-12-31",
            "0001-01-01",
            '"',
            '""',
            "\\",
            "\x00",
            "\u202eevil",
            "é",
            "😀",
            " ",
            "\t",
            ";",
            "|",
        ]
    ),
    st.text(max_size=12),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


REQUIRED = {
    "orders": ["customer_id", "order_date", "amount"],
    "customers": ["customer_id", "signup_date", "age"],
    "reviews": ["text", "rating", "customer_id"],
    "campaigns": ["customer_id", "campaign", "sent_date", "responded"],
}


@st.composite
def csv_bytes(draw: st.DrawFn, table: str) -> bytes:
    if draw(st.booleans()):  # a usable header, so the row-level checks get exercised
        header = REQUIRED[table] + draw(st.lists(st.sampled_from(HEADERS), max_size=2))
    else:
        header = draw(st.lists(st.sampled_from(HEADERS), min_size=0, max_size=6))
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = len(header)
    rows = draw(
        st.lists(
            st.one_of(st.lists(CELLS, min_size=width, max_size=width), st.lists(CELLS, max_size=8)),
            max_size=8,
        )
    )
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [delim.join(header)] + [delim.join(r) for r in rows]
    text = newline.join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):  # sometimes corrupt a few bytes
        junk = draw(st.binary(max_size=8))
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + junk + data[at:]
    return data


def _settings(root: Path, table: str, path: Path, share: float):
    today = pd.Timestamp("2026-11-01").date()
    s = settings_from_dict({"data": {"today": today, "max_drop_share": share}}, root)
    s.data.tables[table] = TableSource(path=path)
    return s


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(sorted(REQUIRED)))
def test_loader_loads_or_raises_its_own_error(draw: st.DataObject, table: str) -> None:
    data = draw.draw(csv_bytes(table))
    share = draw.draw(st.sampled_from([0.05, 1.0]))  # 1.0: junk rows are dropped, not fatal
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / f"{table}.csv"
        path.write_bytes(data)
        try:
            result = load_dataset(_settings(root, table, path, share))
        except DataError as exc:
            assert str(exc)  # a message for the user
            event(f"refused: {type(exc).__name__}")
            return
        event("loaded")
        assert isinstance(result, Dataset)
        # no silent loss: every row read is either kept or counted as dropped
        report = result.report.tables[table]
        kept = report.rows_kept + report.rows_dropped + report.blank_rows
        assert kept == report.rows_read or report.returns, report
