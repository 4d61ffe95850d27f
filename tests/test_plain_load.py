"""A plain orders file is checked and copied by the engine (DuckDB) instead of pandas: the
cache and the validation report are exactly the pandas validator's, and any row the engine
cannot prove unchanged sends the whole file back to pandas."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

import insight_agent.data.load as load_module
from insight_agent.engine.cache import load_and_cache
from insight_agent.engine.plainload import WHITESPACE
from insight_agent.workspace import Workspace, locate
from tests.conftest import write_workspace

CUSTOMERS = "customer_id,signup_date,region\n" + "".join(
    f"C{i},2024-0{1 + i % 9}-1{i % 10},{'North' if i % 3 else 'South'}\n" for i in range(40)
)


def _orders(change: dict[int, str] | None = None, newline: str = "\n", bom: bool = False) -> str:
    """Clean order lines with extras of every type (whole numbers, numbers with blanks,
    text that is sometimes a number or a missing word), returns, times and quoted commas;
    ``change`` replaces whole lines (by data row, 0-based)."""
    rows = ["order_id,customer_id,order_date,amount,category,note,pieces,score"]
    for i in range(90):
        date = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}" + (" 10:15:00" if i % 7 == 0 else "")
        amount = f"-{i}.50" if i in (13, 14, 60) else f"{10 + i * 1.25:.2f}"
        category = ['"Bags, small"', "Shoes", ""][i % 3]
        note = ["NA", str(i), "hello", "", "null"][i % 5]
        pieces = str(1 + i % 4)
        score = "" if i % 10 == 3 else f"{i / 8:.3f}"
        rows.append(f"O{i // 2},C{i % 40},{date},{amount},{category},{note},{pieces},{score}")
    for i, line in (change or {}).items():
        rows[1 + i] = line
    text = newline.join(rows) + newline
    return ("\ufeff" if bom else "") + text


def _load(
    root: Path,
    orders: str | bytes,
    monkeypatch: pytest.MonkeyPatch,
    engine: bool,
    customers: bool = True,
    chunks: bool = False,
):
    """Load ``orders`` (and the customers file, unless not ``customers``): by the engine
    first, or by pandas, whole or (``chunks``) three records at a time."""
    root.mkdir(parents=True)
    tables = {}
    if customers:
        (root / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
        tables["customers"] = root / "customers.csv"
    tables["orders"] = root / "orders.csv"
    tables["orders"].write_bytes(orders if isinstance(orders, bytes) else orders.encode("utf-8"))
    write_workspace(root / "ws", tables, "max_drop_share = 0.5\n")
    monkeypatch.setattr(load_module, "ENGINE_BYTES", 0 if engine else 1 << 40)
    monkeypatch.setattr(load_module, "STREAM_BYTES", 0 if chunks else 128 << 20)
    monkeypatch.setattr(load_module, "STREAM_ROWS", 3)
    return load_and_cache(Workspace.open(locate(root / "ws")))


def _same(
    tmp_path: Path,
    orders: str | bytes,
    monkeypatch: pytest.MonkeyPatch,
    *,
    customers: bool = True,
    chunks: bool = False,
) -> str | None:
    """Load ``orders`` by pandas (whole, or in chunks) and by the engine first; assert the
    same cache and report; return the engine's mark."""
    ref, ref_cache = _load(tmp_path / "pandas", orders, monkeypatch, False, customers, chunks)
    got, got_cache = _load(tmp_path / "engine", orders, monkeypatch, True, customers)
    assert got_cache.tables == ref_cache.tables
    assert got_cache.data_up_to == ref_cache.data_up_to
    for table in ref_cache.tables:
        pd.testing.assert_frame_equal(got_cache.read(table), ref_cache.read(table), obj=table)
    mark = got.report.tables["orders"].engine
    for name, tr in ref.report.tables.items():
        how = {"chunks": 0, "engine": None, "file": Path(tr.file).name}  # how it was read
        assert {**asdict(got.report.tables[name]), **how} == {**asdict(tr), **how}

    def problems(report) -> list[dict]:
        found = [{**asdict(p), "file": Path(p.file).name} for p in report.problems]
        return sorted(found, key=lambda p: (p["table"], p["code"], str(p["column"])))

    assert problems(got.report) == problems(ref.report)
    return mark


@pytest.mark.parametrize(
    ("newline", "bom"), [("\n", False), ("\r\n", False), ("\n", True)], ids=["lf", "crlf", "bom"]
)
def test_a_plain_file_is_loaded_by_the_engine_as_pandas_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, newline: str, bom: bool
) -> None:
    mark = _same(tmp_path, _orders(newline=newline, bom=bom), monkeypatch)
    assert mark == "duckdb"
    orders = pd.read_parquet(next((tmp_path / "engine" / "ws").rglob("orders.parquet")))
    # the extras typed as the chunked load types them
    assert str(orders["pieces"].dtype) == "int64" and orders["score"].dtype == float
    assert orders["note"].isna().sum() == 51  # "NA", "" and "null" (3 of 5; 3 rows are returns)


def test_demo_orders_without_an_amount_column(tmp_path, monkeypatch) -> None:
    """quantity × unit_price, as the demo and the benchmark files have it."""
    from insight_agent.data.demo import DemoConfig, generate_frames

    frames = generate_frames(DemoConfig(n_customers=300, n_reviews=0))
    frames.orders["customer_id"] = "C" + (frames.orders.index % 40).astype(str)
    text = frames.orders.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.2f")
    assert _same(tmp_path, text, monkeypatch) == "duckdb"


def test_orders_without_a_customers_file(tmp_path, monkeypatch) -> None:
    """The customers are derived from the engine's copy (found on the Complete Journey's
    transactions, which have no customers file: the derived table was empty)."""
    assert _same(tmp_path, _orders(), monkeypatch, customers=False) == "duckdb"


def test_a_file_without_returns_types_its_extras_alike_every_way(tmp_path, monkeypatch):
    """Whole, in chunks or by the engine, the (empty) returns table's extra columns have the
    orders' types (the chunked load typed them alone: DOUBLE for BIGINT ones, found on the
    Complete Journey's full 1.47M lines)."""
    text = _orders({i: _orders().splitlines()[i + 1].replace(",-", ",") for i in (13, 14, 60)})
    assert _same(tmp_path / "whole", text, monkeypatch) == "duckdb"
    assert _same(tmp_path / "chunks", text, monkeypatch, chunks=True) == "duckdb"
    returns = pd.read_parquet(next((tmp_path / "chunks" / "pandas").rglob("returns.parquet")))
    assert len(returns) == 0 and str(returns["pieces"].dtype) == "int64"


LINE = "O1,C1,2025-03-04,12.50,Shoes,x,1,0.5"
FALLBACKS = {
    "surrounding space": LINE.replace("Shoes", "Shoes "),
    "unicode space": LINE.replace("C1,", "C1\u3000,"),
    "missing word in text": LINE.replace("Shoes", "None"),
    "currency": LINE.replace("12.50", '"$1,212.50"'),
    "day-first date": LINE.replace("2025-03-04", "04/03/2025"),
    "compact date": LINE.replace("2025-03-04", "20250304"),
    "timezone": LINE.replace("2025-03-04", "2025-03-04T10:00:00+02:00"),
    "before 1900": LINE.replace("2025-03-04", "1899-12-31"),
    "impossible date": LINE.replace("2025-03-04", "2025-02-30"),
    "future date": LINE.replace("2025-03-04", "2031-01-01"),
    "unknown customer": LINE.replace("C1,", "C999,"),
    "missing customer": LINE.replace("C1,", ","),
    "above max_amount": LINE.replace("12.50", "99999999999"),
    "infinite": LINE.replace("12.50", "inf"),
    "whole-float id": LINE.replace("O1,", "17.0,"),
    "ragged": LINE + ",extra",
    "quoted line break": LINE.replace(",x,", ',"two\nlines",'),
    "blank line": LINE + "\n",
    "short row": "O1,C1,2025-03-04,12.50,Shoes",
    "missing word in a number": LINE.replace("12.50", "NA"),
}


PLAIN_BUT_ODD = {
    "stray quote": LINE.replace("Shoes", 'Sh"oes'),
    "doubled quotes": LINE.replace("Shoes", '"say ""hi"", twice"'),
    "exponent": LINE.replace("12.50", "1.25e1"),
    "signs and bare points": LINE.replace("12.50", "+12.").replace(",0.5", ",.5"),
    "minutes only": LINE.replace("2025-03-04", "2025-03-04T09:30"),
    "fractions of a second": LINE.replace("2025-03-04", "2025-03-04 09:30:15.250"),
    "unicode text": LINE.replace("Shoes", "Schuhe für Kinder — 日本"),
}


@pytest.mark.parametrize("case", list(PLAIN_BUT_ODD))
def test_odd_but_plain_rows_stay_with_the_engine(tmp_path, monkeypatch, case) -> None:
    assert _same(tmp_path, _orders({45: PLAIN_BUT_ODD[case]}), monkeypatch) == "duckdb"


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_a_row_the_engine_cannot_vouch_for_sends_the_file_to_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    assert _same(tmp_path, _orders({45: FALLBACKS[case]}), monkeypatch) is None


def test_a_file_that_is_not_utf8_is_left_to_pandas(tmp_path, monkeypatch) -> None:
    text = _orders({10: LINE.replace("Shoes", "Chaussures d'été")})
    assert _same(tmp_path, text.encode("latin-1"), monkeypatch) is None


def test_the_whitespace_stripped_is_pandas_own() -> None:
    """The engine leaves to pandas any text with surrounding whitespace; its list must be
    what pandas' ``str.strip`` strips."""
    chars = [chr(i) for i in range(sys.maxunicode + 1) if not 0xD800 <= i <= 0xDFFF]
    stripped = pd.Series(chars, dtype="string").str.strip()
    assert sorted(c for c, s in zip(chars, stripped, strict=True) if s == "") == sorted(WHITESPACE)


def test_the_engine_running_out_of_memory_falls_back_to_pandas(tmp_path, monkeypatch) -> None:
    """An engine error after the copy (here: the customer-id check out of memory) is not a
    failed load: pandas validates the file, and the cache is its."""
    import duckdb

    from insight_agent.engine.cache import CacheWriter

    real = CacheWriter._connect

    class Starved:
        def __init__(self, con) -> None:
            self.con = con

        def execute(self, sql: str, *args):
            if "_known_ids" in sql and "NOT EXISTS" in sql:
                raise duckdb.OutOfMemoryException("failed to allocate (test)")
            return self.con.execute(sql, *args)

        def __getattr__(self, name: str):
            return getattr(self.con, name)

    monkeypatch.setattr(CacheWriter, "_connect", lambda self: Starved(real(self)))
    assert _same(tmp_path, _orders(), monkeypatch) is None
