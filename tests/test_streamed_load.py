"""A large orders file is validated in chunks straight into the Parquet cache: the cache, the
customers and the validation report are those of a whole-file load."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import insight_agent.data.load as load_module
from insight_agent.engine.cache import load_and_cache
from insight_agent.errors import DataError
from insight_agent.workspace import Workspace, locate
from tests.conftest import FIXTURES, write_workspace

CUSTOMERS = "customer_id,signup_date,region\n" + "".join(
    f"C{i},2024-0{1 + i % 9}-1{i % 10},{'North' if i % 3 else 'South'}\n" for i in range(40)
)


def _messy_orders() -> str:
    """Order lines with a problem of every kind, spread so that chunks see different ones,
    an extra column that is a number in some chunks and text in others, blank lines and a
    quoted line break."""
    rows = ["order_id,customer_id,order_date,amount,category,note"]
    for i in range(120):
        cid, date, amount, note = f"C{i % 40}", f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}", "", ""
        amount = f"{10 + i * 1.5:.2f}"
        note = str(i) if i < 60 else f"n{i}"
        if i == 5:
            date = "not a date"
        elif i == 17:
            amount = '"12,50"'  # decimal comma, quoted
        elif i == 23:
            amount = "lots"
        elif i == 31:
            cid = ""
        elif i == 44:
            date = "2031-01-01"  # future
        elif i == 52:
            amount = "99999999999"  # above max_amount
        elif i in (61, 62, 90):
            amount = f"-{i}.00"  # returns
        elif i == 75:
            cid = "C999"  # unknown customer
        elif i == 88:
            note = '"two\nlines"'
        elif i == 101:
            date = "20250407"  # compact, among ISO dates
        rows.append(f"O{i // 2},{cid},{date},{amount},{['Shoes', 'Bags', ''][i % 3]},{note}")
        if i in (40, 99):
            rows.append("")
    return "\n".join(rows) + "\n"


def _cases(tmp: Path) -> dict[str, dict[str, Path]]:
    messy = tmp / "messy"
    messy.mkdir()
    (messy / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (messy / "orders.csv").write_text(_messy_orders(), encoding="utf-8")
    return {
        "messy": {"customers": messy / "customers.csv", "orders": messy / "orders.csv"},
        "online_retail": {"orders": FIXTURES / "good" / "online_retail.csv"},
        "ragged": {"orders": FIXTURES / "bad" / "orders_ragged.csv"},
    }


def _load(root: Path, tables: dict[str, Path], extra: str = ""):
    write_workspace(root, tables, extra)
    return load_and_cache(Workspace.open(locate(root)))


def _problems(report) -> list[dict]:
    return sorted(
        (asdict(p) for p in report.problems), key=lambda p: (p["table"], p["code"], p["column"])
    )


@pytest.mark.parametrize(("case", "rows"), [("messy", 7), ("online_retail", 2), ("ragged", 2)])
def test_a_chunked_load_writes_what_a_whole_load_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, rows: int
) -> None:
    tables = _cases(tmp_path)[case]
    monkeypatch.setattr(load_module, "STREAM_BYTES", 1 << 40)
    lenient = "max_drop_share = 0.5\n"
    whole, whole_cache = _load(tmp_path / "whole", tables, lenient)
    monkeypatch.setattr(load_module, "STREAM_BYTES", 0)
    monkeypatch.setattr(load_module, "STREAM_ROWS", rows)
    part, part_cache = _load(tmp_path / "chunks", tables, lenient)

    chunks = part.report.tables["orders"].chunks
    if case == "ragged":  # cannot be read in chunks: read whole, reported as before
        assert chunks == 0 and not part.streamed
    else:
        assert chunks >= 3 and set(part.streamed) == {"orders", "returns"}
        assert len(part.orders) == 0  # the rows are in the cache, not in memory
        assert part.rows("orders") == whole.rows("orders") > 0
    pd.testing.assert_frame_equal(part.customers, whole.customers)
    assert whole_cache.tables == part_cache.tables
    assert whole_cache.data_up_to == part_cache.data_up_to
    for table in whole_cache.tables:
        pd.testing.assert_frame_equal(part_cache.read(table), whole_cache.read(table))
    for name, tr in whole.report.tables.items():
        got = asdict(part.report.tables[name])
        assert {**got, "chunks": 0} == asdict(tr), name
    assert _problems(part.report) == _problems(whole.report)


def test_a_chunked_load_with_too_many_bad_rows_fails_as_a_whole_load_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insight_agent.data.report import ValidationFailed

    tables = _cases(tmp_path)["messy"]
    monkeypatch.setattr(load_module, "STREAM_BYTES", 0)
    monkeypatch.setattr(load_module, "STREAM_ROWS", 10)
    with pytest.raises(ValidationFailed) as failed:
        _load(tmp_path / "strict", tables, "max_drop_share = 0.01\n")
    codes = {p.code for p in failed.value.report.errors}
    assert codes == {"too_many_dropped"}
    # nothing half-written is left behind
    cache_root = tmp_path / "strict" / ".insight" / "tables"
    assert not cache_root.exists() or not any(cache_root.iterdir())


def test_a_chunked_build_equals_a_whole_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The build reads a chunk-loaded workspace from the cache, on the engine and on the
    pandas reference, and both write the table a whole-file load gives."""
    from insight_agent.analytics.build import BuildOptions, run_build
    from tests.test_build import assert_same_customers

    cdnow = FIXTURES / "cdnow" / "CDNOW_sample.txt"
    toml = (
        "[workspace]\nname = 'cdnow'\n[data]\ntoday = 1998-07-01\n[data.orders]\n"
        f"path = '{cdnow}'\nheader = false\n"
        "names = ['customer_id', '', 'order_date', 'quantity', 'amount']\n"
    )
    out = {}
    for label, stream, engine in (
        ("whole", 1 << 40, "duckdb"),
        ("chunks", 0, "duckdb"),
        ("chunks-pandas", 0, "pandas"),
    ):
        monkeypatch.setattr(load_module, "STREAM_BYTES", stream)
        monkeypatch.setattr(load_module, "STREAM_ROWS", 500)
        root = tmp_path / label
        root.mkdir()
        (root / "insight.toml").write_text(toml)
        manifest = run_build(
            Workspace.open(locate(root)),
            BuildOptions(engine=engine, stages=("segments", "propensity", "clv")),
        )
        load = next(s for s in manifest["stages"] if s["name"] == "load")
        assert ("orders_read_in_chunks" in load["details"]) == (stream == 0)
        folder = root / ".insight" / "builds" / (root / ".insight" / "current").read_text().strip()
        out[label] = pd.read_parquet(folder / "customers.parquet")
        shutil.rmtree(root / ".insight" / "engine-tmp", ignore_errors=True)
    assert len(out["whole"]) == 2357
    assert_same_customers(out["chunks"], out["whole"])
    assert_same_customers(out["chunks-pandas"], out["whole"])


@pytest.mark.parametrize("stream", [False, True])
def test_unchanged_data_is_read_back_from_the_cache_not_validated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """The cache keeps the validation report: a second load of the same files and settings
    reads the dataset and report back (a resumed or repeated build skips validation)."""
    tables = _cases(tmp_path)["messy"]
    monkeypatch.setattr(load_module, "STREAM_BYTES", 0 if stream else 1 << 40)
    monkeypatch.setattr(load_module, "STREAM_ROWS", 7)
    first, cache = _load(tmp_path / "ws", tables, "max_drop_share = 0.5\n")

    def no_second_validation(*args, **kwargs):
        raise AssertionError("validated again")

    monkeypatch.setattr(load_module, "load_dataset", no_second_validation)
    again, cache_again = load_and_cache(Workspace.open(locate(tmp_path / "ws")))
    assert cache_again.folder == cache.folder
    assert again.report.to_dict() == first.report.to_dict()
    assert again.streamed == first.streamed and again.rows("orders") == first.rows("orders")
    pd.testing.assert_frame_equal(again.customers, cache.read("customers"))
    if not stream:
        pd.testing.assert_frame_equal(again.orders, cache.read("orders"))
    # a changed file is validated again
    with open(tables["orders"], "a", encoding="utf-8") as fh:
        fh.write("O999,C1,2025-03-03,10.00,Shoes,x\n")
    with pytest.raises(AssertionError, match="validated again"):
        load_and_cache(Workspace.open(locate(tmp_path / "ws")))


def test_a_cache_that_found_future_dates_is_validated_again_on_a_later_day(
    tmp_path: Path,
) -> None:
    """Validation drops orders dated after "today": a cache written on 1 Nov that did so is
    stale on 20 Nov (the order of 15 Nov is no longer in the future), so it is validated
    again; a cache that found no future dates stays valid as the days pass, not when today
    moves back."""
    from insight_agent.engine.cache import cached

    root = tmp_path / "ws"
    root.mkdir()
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,customer_id,order_date,amount\nO1,C1,2026-10-01,10\nO2,C2,2026-10-20,12\n"
        "O3,C1,2026-11-15,9\n",
        encoding="utf-8",
    )

    def on(day: str) -> Workspace:
        (root / "insight.toml").write_text(
            f'[workspace]\nname = "t"\n[data]\ntoday = {day}\nmax_drop_share = 0.5\n'
            f"[data.orders]\npath = {json.dumps(str(orders))}\n",
            encoding="utf-8",
        )
        return Workspace.open(locate(root))

    first, _ = load_and_cache(on("2026-11-01"))
    assert [p.code for p in first.report.problems if p.code == "future_date"]
    assert cached(on("2026-11-01")) is not None
    assert cached(on("2026-11-20")) is None
    later, _ = load_and_cache(on("2026-11-20"))
    assert not [p for p in later.report.problems if p.code == "future_date"]
    assert later.rows("orders") == 3
    assert cached(on("2026-12-01")) is not None  # nothing was in the future: still true
    assert cached(on("2026-11-16")) is None  # today moved back


def test_the_cache_merges_chunks_within_the_engine_memory_limit(tmp_path: Path) -> None:
    """The queries that merge streamed chunks run under the engine's memory limit and spill
    folder (DuckDB's own default, most of the machine's memory, let a 2M-customer merge grow
    by 2.7 GB)."""
    from insight_agent.engine.cache import CacheWriter, spill_dir

    write_workspace(tmp_path, _cases(tmp_path)["messy"])
    ws = Workspace.open(locate(tmp_path))
    writer = CacheWriter(ws, "f" * 16)
    try:
        limit, scratch = writer._query(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        )[0]
    finally:
        writer.close()
    assert limit == "1.8 GiB"  # 2 GB
    assert Path(scratch) == spill_dir(ws)


_ORDER_CELLS = {
    "order_id": ["O1", "O2", "", "NA", " O3 "],
    "customer_id": ["C1", "C2", " C3 ", "", "NA", "c1", "007", '"C,4"'],
    "order_date": [
        "2025-01-02", "20250103", "01/02/2025", "not a date", "", "2031-01-01",
        " 2025-02-03 ", "2025-02-30", "null",
    ],
    "amount": [
        "10.5", "-3", '"$1,234.50"', '"12,50"', " 7 ", "", "NA", "null", "1e3", "lots",
        "99999999999", "(4.00)", "0", "#N/A",
    ],
    "category": ["Shoes", "", "NA", '"a, b"', '"x\ny"', "N/A", "nan", "  ", '""'],
}  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_chunks_load_what_a_whole_load_loads(data: st.DataObject) -> None:
    """Orders with every kind of odd cell (missing tokens, padded values, quoted commas and
    line breaks, blank lines, bad dates and amounts): read in chunks, the cache and the report
    equal a whole-file load's. (Ids like "12.0" are left out: their ".0" is dropped per chunk
    when every id of the chunk has it, not per file.)"""
    columns = list(_ORDER_CELLS)
    n = data.draw(st.integers(min_value=1, max_value=25))
    lines = [",".join(columns)]
    for _ in range(n):
        if data.draw(st.integers(0, 9)) == 0:
            lines.append("")  # a blank line is a record
        lines.append(",".join(data.draw(st.sampled_from(_ORDER_CELLS[c])) for c in columns))
    text = "\n".join(lines) + "\n"
    rows = data.draw(st.integers(min_value=1, max_value=6))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        tmp_path = Path(tmp)
        (tmp_path / "orders.csv").write_text(text, encoding="utf-8")
        tables = {"orders": tmp_path / "orders.csv"}
        lenient = "max_drop_share = 1.0\n"
        outcome = {}
        for label, size in (("whole", 1 << 40), ("chunks", 0)):
            mp.setattr(load_module, "STREAM_BYTES", size)
            mp.setattr(load_module, "STREAM_ROWS", rows)
            try:
                outcome[label] = _load(tmp_path / label, tables, lenient)
            except DataError as exc:  # e.g. no row left: both loads must say the same
                outcome[label] = f"{type(exc).__name__}: {exc}"
        whole, part = outcome["whole"], outcome["chunks"]
        event(f"read in chunks: {not isinstance(part, str) and bool(part[0].streamed)}")
        if isinstance(whole, str) or isinstance(part, str):
            assert whole == part
            return
        assert _problems(part[0].report) == _problems(whole[0].report)
        assert part[1].tables == whole[1].tables
        for table in whole[1].tables:
            pd.testing.assert_frame_equal(part[1].read(table), whole[1].read(table))
