"""Readers a real export needs (issue 15, item 3): whitespace-separated, fixed-width and
headerless files, compact dates and date_format, encodings (Shift-JIS, UTF-16 without a BOM,
Windows-1252), review text that says "NA", HTML in reviews, clothing-review column names, and
messages that say what was detected when a column is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from insight_agent.config import load_settings
from insight_agent.data.load import load_dataset, validate
from insight_agent.data.readers import guess_encoding, inspect_file, sniff_delimiter
from insight_agent.data.report import ValidationFailed
from insight_agent.errors import ConfigError
from tests.conftest import FIXTURES

CDNOW = FIXTURES / "cdnow" / "CDNOW_sample.txt"
REAL = FIXTURES / "real"


def workspace(root: Path, tables: dict[str, dict], data: str = "") -> Path:
    """A workspace whose [data.<table>] sections hold ``tables`` (values written as JSON,
    which is valid TOML for strings, booleans, numbers and lists of them)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["[data]", "today = 2026-11-01", data]
    for name, entry in tables.items():
        lines.append(f"[data.{name}]")
        columns = entry.pop("columns", None)
        lines += [
            f"{key} = {json.dumps(str(v) if key == 'path' else v)}" for key, v in entry.items()
        ]
        if columns:
            lines.append(f"[data.{name}.columns]")
            lines += [f"{key} = {json.dumps(v)}" for key, v in columns.items()]
    (root / "insight.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def problems(report, code: str) -> list:
    return [p for p in report.problems if p.code == code]


# --- whitespace, headerless, compact dates: the CDNOW transaction file -------------------------


def test_cdnow_sample_loads_with_the_two_line_mapping(tmp_path):
    lines = [line for line in CDNOW.read_text().splitlines() if line.strip()]
    assert len(lines) == 6919
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "insight.toml").write_text(
        "[data]\ntoday = 2026-11-01\n"
        "[data.orders]\n"
        f"path = {json.dumps(str(CDNOW))}\n"
        "header = false\n"
        'names = ["customer_id", "", "order_date", "quantity", "amount"]\n'
    )
    data = load_dataset(load_settings(tmp_path / "ws"))
    orders = data.orders
    assert len(orders) == 6919 and len(data.returns) == 0
    assert orders["customer_id"].iloc[0] == "00004"  # ids keep their zeros
    assert data.customers["customer_id"].nunique() == 2357
    assert orders["order_date"].min() == pd.Timestamp("1997-01-01")
    assert orders["order_date"].max() == pd.Timestamp("1998-06-30")
    assert orders["amount"].sum() == pytest.approx(sum(float(x.split()[4]) for x in lines))
    assert "column_2" in orders.columns  # the unnamed sample id is kept, not dropped
    table = data.report.tables["orders"]
    assert table.delimiter == "whitespace" and table.rows_kept == 6919
    assert not [p for p in data.report.problems if p.severity != "info"]


def test_cdnow_without_names_says_what_was_detected_and_what_to_set(tmp_path):
    ws = workspace(tmp_path / "ws", {"orders": {"path": CDNOW}})
    report = validate(load_settings(ws))
    (error,) = report.errors
    text = f"{error.message} {error.action}"
    assert "missing required columns: customer_id, order_date, amount" in text
    assert "runs of whitespace" in text and "header row: none" in text
    assert "'00004 0001 19970101  2   29.33'" in text  # the first row, as in the file
    assert "1='00004'" in text and "3='19970101'" in text  # its fields by position
    assert "header = false and names = [" in text and "[data.orders]" in text
    # never a column named as missing and as present at once
    listed = text.split("5 columns:", 1)[1].split(";", 1)[0]
    assert listed.strip().startswith("'column_1', 'column_2'")
    assert "customer_id" not in listed and "order_date" not in listed


def test_columns_mapping_by_position_works_for_a_headerless_file(tmp_path):
    ws = workspace(
        tmp_path / "ws",
        {
            "orders": {
                "path": CDNOW,
                "columns": {
                    "customer_id": "column_2",
                    "order_date": "column_3",
                    "amount": "column_5",
                },
            }
        },
    )
    data = load_dataset(load_settings(ws))
    assert len(data.orders) == 6919 and data.customers["customer_id"].nunique() == 2357
    (note,) = problems(data.report, "no_header")  # said, not silent
    assert "looks like data" in note.message and "column_1" in note.action


def test_whitespace_delimiter_setting_and_detection(tmp_path):
    path = tmp_path / "orders.txt"
    path.write_text(
        "customer_id   order_date   amount\n"
        "A   2024-01-02   5.00\n"
        "B\t2024-01-03\t7.50\n"
        "C   2024-01-04   1.25\n"
    )
    assert sniff_delimiter(path.read_text()) == "whitespace"
    data = load_dataset(load_settings(workspace(tmp_path / "a", {"orders": {"path": path}})))
    assert data.orders["amount"].tolist() == [5.0, 7.5, 1.25]
    for spelling in ("\\s+", "whitespace", " "):
        ws = workspace(tmp_path / "b", {"orders": {"path": path, "delimiter": spelling}})
        assert len(load_dataset(load_settings(ws)).orders) == 3
    # a one-column review file whose lines have different word counts is not whitespace data
    assert sniff_delimiter("text\nGreat mug, fast\nToo small\n") == ","
    assert sniff_delimiter("text\nGreat mug arrived fast\nToo small\n") == ","


def test_a_header_read_with_the_wrong_delimiter_is_reported_as_one_column(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("customer_id order_date amount\nA 2024-01-02 5\nB 2024-01-03 6\n")
    ws = workspace(tmp_path / "ws", {"orders": {"path": path, "delimiter": ","}})
    (error,) = validate(load_settings(ws)).errors
    assert "1 column: 'customer_id order_date amount'" in error.action
    assert 'delimiter = "whitespace"' in error.action


def test_a_first_row_of_numbers_and_dates_is_data(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("1001,2024-01-02,5.00\n1002,2024-01-03,7.50\n")
    ws = workspace(
        tmp_path / "ws",
        {"orders": {"path": path, "names": ["customer_id", "order_date", "amount"]}},
    )
    data = load_dataset(load_settings(ws))
    assert data.orders["customer_id"].tolist() == ["1001", "1002"]  # the first row is kept
    assert problems(data.report, "no_header")
    # a header = true setting wins over the guess
    ws = workspace(tmp_path / "ws2", {"orders": {"path": path, "header": True}})
    (error,) = validate(load_settings(ws)).errors
    assert "header row: yes" in error.action and "header = false" in error.action


def test_headerless_row_numbers_count_from_one(tmp_path):
    path = tmp_path / "orders.txt"
    path.write_text("A 20240102 5\nB 20241345 6\n" + "C 20240103 1\n" * 40)
    ws = workspace(
        tmp_path / "ws",
        {
            "orders": {
                "path": path,
                "header": False,
                "names": ["customer_id", "order_date", "amount"],
            }
        },
    )
    data = load_dataset(load_settings(ws))
    (bad,) = problems(data.report, "unparseable_date")
    assert bad.rows == [2] and bad.column == "order_date" and "20241345" in bad.example


# --- fixed width -------------------------------------------------------------------------------


def test_fixed_width_with_widths_and_inferred(tmp_path):
    path = REAL / "orders_fixed.txt"
    for entry in (
        {"widths": [5, 9, 8, 10]},
        {"delimiter": "fixed"},
    ):
        ws = workspace(
            tmp_path / str(len(entry)) / "ws",
            {"orders": {"path": path, "columns": {"customer_id": "CUST"}, **entry}},
        )
        data = load_dataset(load_settings(ws))
        orders = data.orders
        assert orders["customer_id"].tolist() == ["0001", "0002", "0003"]
        assert orders["amount"].tolist() == [12.5, 100.0, 7.25]
        assert orders["product"].tolist()[:2] == ["Blue mug", "Tea set"]
        assert pd.isna(orders["product"].iloc[2])
        assert orders["order_date"].iloc[0] == pd.Timestamp("2024-01-05")
        assert data.report.tables["orders"].delimiter == "fixed"


def test_widths_with_another_delimiter_is_a_config_error(tmp_path):
    ws = workspace(tmp_path / "ws", {"orders": {"path": "x.txt", "widths": [5], "delimiter": ";"}})
    with pytest.raises(ConfigError, match="widths"):
        load_settings(ws)
    ws = workspace(tmp_path / "ws", {"orders": {"path": "x.txt", "delimiter": "::"}})
    with pytest.raises(ConfigError, match="one character"):
        load_settings(ws)
    ws = workspace(tmp_path / "ws", {"orders": {"path": "x.txt", "names": ["a", "a"]}})
    with pytest.raises(ConfigError, match="repeats"):
        load_settings(ws)
    ws = workspace(tmp_path / "ws", {"orders": {"path": "x.txt", "date_format": "yyyymmdd"}})
    with pytest.raises(ConfigError, match="strftime"):
        load_settings(ws)


# --- dates -------------------------------------------------------------------------------------


def test_date_format_per_table_and_compact_dates(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,order_date,amount\nA,05.01.2024,1\nB,2024-01-06,2\nC,07.01.2024,3\n"
    )
    ws = workspace(tmp_path / "ws", {"orders": {"path": path, "date_format": "%d.%m.%Y"}})
    data = load_dataset(load_settings(ws), max_drop_share=0.5)
    assert data.orders["order_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-05",
        "2024-01-07",
    ]
    (bad,) = problems(data.report, "unparseable_date")
    assert bad.rows == [3] and "%d.%m.%Y" in bad.message and "2024-01-06" in bad.example

    compact = tmp_path / "compact.csv"
    compact.write_text("customer_id,order_date,amount\nA,19970101,1\nB,19980630,2\n")
    data = load_dataset(load_settings(workspace(tmp_path / "c", {"orders": {"path": compact}})))
    assert data.orders["order_date"].tolist() == [
        pd.Timestamp("1997-01-01"),
        pd.Timestamp("1998-06-30"),
    ]


# --- encodings ---------------------------------------------------------------------------------


def test_shift_jis_reviews_are_decoded_or_refused_never_garbled(tmp_path):
    text = ["レビュー", "とても良い商品でした。また買いたいです。", "配送が遅かった"]
    path = tmp_path / "reviews.csv"
    body = "text,rating\n" + "".join(f"{t},{i + 3}\n" for i, t in enumerate(text))
    path.write_bytes(body.encode("shift_jis"))
    data = load_dataset(load_settings(workspace(tmp_path / "ws", {"reviews": {"path": path}})))
    assert data.reviews["text"].tolist() == text
    (note,) = problems(data.report, "encoding")
    assert note.severity == "info" and "read as cp932" in note.message and "row 2" in note.message

    # two kanji alone could be Japanese, Korean or Chinese: refused, with what to set
    short = tmp_path / "short.csv"
    short.write_bytes("text\n漢字\n".encode("shift_jis"))
    report = validate(load_settings(workspace(tmp_path / "ws2", {"reviews": {"path": short}})))
    (error,) = report.errors
    assert error.file.endswith("short.csv") and "not UTF-8" in error.message
    assert 'set data.reviews.encoding = "' in error.action and "cp932" in error.message
    with pytest.raises(ValidationFailed) as info:
        load_dataset(load_settings(tmp_path / "ws2"))
    assert "short.csv" in str(info.value)

    # the setting the message names makes it load
    ws = workspace(tmp_path / "ws3", {"reviews": {"path": short, "encoding": "shift_jis"}})
    assert load_dataset(load_settings(ws)).reviews["text"].tolist() == ["漢字"]


def test_utf16_without_a_bom(tmp_path):
    body = "customer_id\torder_date\tamount\nA\t2024-01-02\t1\nB\t2024-01-03\t2\n"
    for encoding in ("utf-16-le", "utf-16-be"):
        path = tmp_path / f"orders-{encoding}.txt"
        path.write_bytes(body.encode(encoding))
        ws = workspace(tmp_path / encoding, {"orders": {"path": path}})
        data = load_dataset(load_settings(ws))
        assert data.orders["amount"].tolist() == [1.0, 2.0]
        (note,) = problems(data.report, "encoding")
        assert encoding.upper() in note.message and "without a byte-order mark" in note.message
    # Japanese review text in UTF-16 without a BOM
    path = tmp_path / "reviews.csv"
    path.write_bytes("text,rating\nレビュー,5\n良い,4\n".encode("utf-16-le"))
    data = load_dataset(load_settings(workspace(tmp_path / "ja", {"reviews": {"path": path}})))
    assert data.reviews["text"].tolist() == ["レビュー", "良い"]


def test_nul_bytes_without_a_pattern_get_a_hint(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_bytes(b"customer_id,order_date,amount\n" + b"\x00\x00\x01\x00\x00\x00" * 40)
    (error,) = validate(
        load_settings(workspace(tmp_path / "ws", {"orders": {"path": path}}))
    ).errors
    assert "NUL" in error.message and 'encoding = "utf-16-le"' in error.action


def test_windows_1252_excel_export_still_loads(tmp_path):
    text = ["“Great” mug – café au lait for €5", "Naïve señor, très bien"]
    path = tmp_path / "reviews.csv"
    path.write_bytes(("text,rating\n" + "".join(f'"{t}",4\n' for t in text)).encode("cp1252"))
    data = load_dataset(load_settings(workspace(tmp_path / "ws", {"reviews": {"path": path}})))
    assert data.reviews["text"].tolist() == text
    assert data.report.tables["reviews"].encoding == "cp1252"
    assert guess_encoding("a;b\nx;Süd\n".encode("cp1252"))[0] == "cp1252"


# --- review text -------------------------------------------------------------------------------


def test_na_words_in_review_text_are_text_but_missing_elsewhere(tmp_path):
    path = tmp_path / "reviews.csv"
    words = ["NA", "None", "null", "nan", "N/A"]
    path.write_text(
        "text,rating,customer_id\n"
        + "".join(f"{w},NA,NA\n" for w in words)
        + ",5,C1\n"  # an empty cell is still missing
        + "fine,4,C2\n"
    )
    ws = workspace(tmp_path / "ws", {"reviews": {"path": path}})
    data = load_dataset(load_settings(ws), max_drop_share=0.2)
    reviews = data.reviews
    assert reviews["text"].tolist() == [*words, "fine"]
    assert reviews["rating"].isna().sum() == 5  # NA is missing in a number column ...
    assert reviews["customer_id"].isna().sum() == 5  # ... and in an id column
    assert not problems(data.report, "unparseable_number")
    (missing,) = problems(data.report, "missing_value")
    assert missing.rows == [7] and missing.column == "text"


def test_clothing_review_export(tmp_path):
    ws = workspace(tmp_path / "ws", {"reviews": {"path": REAL / "reviews_clothing.csv"}})
    data = load_dataset(load_settings(ws))
    reviews = data.reviews
    table = data.report.tables["reviews"]
    assert table.columns["category"] == "Department Name"
    assert table.columns["subcategory"] == "Class Name"
    assert table.columns["title"] == "Title"
    assert reviews["category"].tolist()[:3] == ["Intimate", "Dresses", "Dresses"]
    assert reviews["subcategory"].iloc[3] == "Pants"
    texts = reviews["text"].tolist()
    assert texts[0] == "Absolutely wonderful - silky and sexy and comfortable"  # no title
    # title first, HTML entities unescaped, <br/> a line break; the original kept
    assert texts[2] == (
        "Some major design flaws. I had such high hopes for this dress & really wanted it to "
        "work for me.\nThe bottom half was very tight 'layered'."
    )
    assert "&amp;" in reviews["text_raw"].iloc[2] and "<br/>" in reviews["text_raw"].iloc[2]
    assert reviews["text_raw"].isna().sum() == len(reviews) - 1  # only where it changed
    assert texts[3].startswith("My favorite buy! I love")  # no doubled punctuation
    assert texts[4] == "Flattering shirt. NA"  # "NA" is what the customer wrote
    assert texts[5] == "Not for the very petite"  # a title alone is the review
    assert reviews["title"].iloc[5] == "Not for the very petite"  # and kept on its own
    assert texts[6] == "Cagrcoal shimmer fun. None"
    (html,) = problems(data.report, "html")
    assert html.severity == "info" and html.rows == [4] and html.column == "Review Text"
    assert "text_raw" in html.action
    assert len(reviews) == 7 and not problems(data.report, "missing_value")


def test_class_name_is_the_category_when_there_is_no_department(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("Review Text,Class Name\nlovely,Knits\n")
    data = load_dataset(load_settings(workspace(tmp_path / "ws", {"reviews": {"path": path}})))
    assert data.reviews["category"].tolist() == ["Knits"]
    assert "subcategory" not in data.reviews


def test_text_that_is_only_markup_is_dropped_with_a_reason(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text\n<br/>\nsize <10 and >8 & I <3 it; AT&T\n" + "ok\n" * 30)
    data = load_dataset(load_settings(workspace(tmp_path / "ws", {"reviews": {"path": path}})))
    assert data.reviews["text"].iloc[0] == "size <10 and >8 & I <3 it; AT&T"  # not markup
    (gone,) = problems(data.report, "missing_value")
    assert gone.rows == [2] and "HTML" in gone.message


# --- other readers -----------------------------------------------------------------------------


def test_excel_without_a_header_row(tmp_path):
    xlsx = tmp_path / "orders.xlsx"
    pd.DataFrame([["A", "2024-01-02", 5.0], ["B", "2024-01-03", 6.0]]).to_excel(
        xlsx, index=False, header=False
    )
    layout = inspect_file(xlsx, "orders.xlsx")
    assert layout.header and not layout.header_detected  # "A" could be a column name
    ws = workspace(
        tmp_path / "ws",
        {
            "orders": {
                "path": xlsx,
                "header": False,
                "names": ["customer_id", "order_date", "amount"],
            }
        },
    )
    data = load_dataset(load_settings(ws))
    assert data.orders["customer_id"].tolist() == ["A", "B"]


def test_an_extra_field_in_the_first_row_is_reported_not_shifted(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,order_date,amount\nA,2024-01-02,5,oops\n"
        + "B,2024-01-03,6\n" * 30
        + "C,2024-01-04,7,\n"  # a trailing delimiter: the empty extra field is harmless
    )
    data = load_dataset(load_settings(workspace(tmp_path / "ws", {"orders": {"path": path}})))
    assert data.orders["customer_id"].tolist() == ["B"] * 30 + ["C"]
    (bad,) = problems(data.report, "wrong_field_count")
    assert bad.rows == [2]
