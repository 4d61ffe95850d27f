"""Redaction: customer PII is masked before it reaches a hosted model, and restored after."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insight_agent.agent.redaction import Redactor

PLACEHOLDER = re.compile(r"<(EMAIL|PHONE|PERSON|CUSTOMER|TEXT)_\d+>")


def make() -> Redactor:
    return Redactor(
        known_ids=["C000042", "C000043", "4217"],
        known_names=["Jane Doe", "Grace Smith", "Tom O'Brien", "Priya", "Max"],
        id_pattern=r"CUST-\d{2,}",
    )


def roundtrip(red: Redactor, text: str) -> str:
    masked = red.mask(text)
    assert red.unmask(masked) == text
    assert red.mask(masked) == masked  # idempotent
    return masked


def test_realistic_review_has_no_raw_pii_left() -> None:
    red = make()
    review = (
        "Order late again. Call me on +44 7700 900123 or email jane.doe@example.com "
        "— Jane Doe, customer C000042"
    )
    masked = roundtrip(red, review)
    assert masked == (
        "Order late again. Call me on <PHONE_1> or email <EMAIL_1> — <PERSON_1>, "
        "customer <CUSTOMER_1>"
    )
    for secret in ("7700", "900123", "jane", "Jane", "Doe", "C000042", "example.com"):
        assert secret not in masked


@pytest.mark.parametrize(
    "email", ["jane.doe@example.com", "a+tag@mail.co.uk", "J_Smith99@sub-domain.example.org"]
)
def test_emails(email: str) -> None:
    red = Redactor()
    assert roundtrip(red, f"Write to {email}.") == "Write to <EMAIL_1>."
    assert red.mapping == {"<EMAIL_1>": email}


@pytest.mark.parametrize(
    "phone",
    [
        "+44 7700 900123",
        "+447700900123",
        "+1 (555) 123-4567",
        "+33 1 23 45 67 89",
        "+49-30-1234567",
        "07700 900123",
        "07700-900-123",
        "(020) 7946 0958",
        "020 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
    ],
)
def test_phones(phone: str) -> None:
    red = Redactor()
    assert roundtrip(red, f"Call {phone} after 5pm") == "Call <PHONE_1> after 5pm"
    assert red.mapping == {"<PHONE_1>": phone}


@pytest.mark.parametrize(
    "text",
    [
        "Spent £1,234.56 on order 100234 (12 items, 0.91 rating)",
        "Delivered 2026-11-24, 24.11.2026, 24/11/2026 and 01.12.2026 at 10:30",
        "Segments S2 and T3, review R001234, model gpt-4o, 1234 5678 9012",
        "Revenue 1,234,567 and 12345678901 page views",
        "Bought 4217 items",  # a short numeric id is only masked after 'customer'
        "the grace period for Max spend",  # common words that are also names
    ],
)
def test_amounts_dates_and_other_ids_untouched(text: str) -> None:
    red = make()
    assert red.mask(text) == text


def test_customer_ids() -> None:
    red = make()
    masked = roundtrip(red, "C000042, c000042, C000043's basket, customer 4217, CUST-99.")
    assert masked == (
        "<CUSTOMER_1>, <CUSTOMER_2>, <CUSTOMER_3>'s basket, customer <CUSTOMER_4>, <CUSTOMER_5>."
    )
    assert red.mask("XC000042 C0000421") == "XC000042 C0000421"  # whole tokens only


def test_known_names_whole_words_any_case() -> None:
    red = make()
    masked = roundtrip(red, "jane doe and JANE DOE and Jane Doe; Grace Smith; Tom O’Brien; Priya")
    assert masked == "<PERSON_1> and <PERSON_2> and <PERSON_3>; <PERSON_4>; <PERSON_5>; <PERSON_6>"
    assert red.mask("Janedoe, Jane Doeson, priya (lower case one-word name)") == (
        "Janedoe, Jane Doeson, priya (lower case one-word name)"
    )


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("My name is Sarah Connor and I'm upset", "Sarah Connor"),
        ("Mrs. Patel was lovely", "Patel"),
        ("Dr Ahmed Khan called", "Ahmed Khan"),
        ("Ask for Dave at the desk", "Dave"),
        ("I spoke to Leah yesterday", "Leah"),
        ("Kind regards,\nNiamh Walsh", "Niamh Walsh"),
        ("Signed, Oliver", "Oliver"),
    ],
)
def test_context_names(text: str, name: str) -> None:
    red = Redactor()
    masked = roundtrip(red, text)
    assert name not in masked
    assert red.mapping == {"<PERSON_1>": name}


def test_context_cues_skip_non_names() -> None:
    red = Redactor()
    text = "I spoke to the Manager, asked for a refund, my name is not important, 200 ms Latency"
    assert red.mask(text) == text


def test_same_value_same_placeholder() -> None:
    red = make()
    first = red.mask("jane.doe@example.com wrote")
    second = red.mask_obj({"quote": "again jane.doe@example.com", "other": "x@y.io"})
    assert first == "<EMAIL_1> wrote"
    assert second == {"quote": "again <EMAIL_1>", "other": "<EMAIL_2>"}


def test_unmask_placeholders_echoed_in_other_text() -> None:
    red = make()
    red.mask("Jane Doe, jane.doe@example.com")
    answer = "Reply to <PERSON_1>'s note (<email_1>), cc < PERSON_1 >; <PHONE_7> is unknown."
    assert red.unmask(answer) == (
        "Reply to Jane Doe's note (jane.doe@example.com), cc Jane Doe; <PHONE_7> is unknown."
    )


def test_placeholder_lookalikes_in_data_are_escaped() -> None:
    red = Redactor()
    text = "The template says <EMAIL_1> and <person_2>; mine is me@x.io"
    masked = roundtrip(red, text)
    assert masked == "The template says <TEXT_1> and <TEXT_2>; mine is <EMAIL_1>"
    assert red.unmask("<EMAIL_1>") == "me@x.io"


def test_mask_obj_values_only_and_structure_kept() -> None:
    red = make()
    obj = {
        "C000042": {"name": "Jane Doe", "orders": 3, "tags": ["vip", "jane.doe@example.com"]},
        "pair": ("Priya", 1.5),
        "none": None,
    }
    masked = red.mask_obj(obj)
    assert masked == {
        "C000042": {"name": "<PERSON_1>", "orders": 3, "tags": ["vip", "<EMAIL_1>"]},
        "pair": ("<PERSON_2>", 1.5),
        "none": None,
    }
    assert red.unmask_obj(masked) == obj


# --- properties ---------------------------------------------------------------------------

FRAGMENTS = [
    "jane.doe@example.com",
    "a@b.co",
    "+44 7700 900123",
    "07700 900123",
    "(555) 123-4567",
    "Jane Doe",
    "JANE DOE",
    "Priya",
    "C000042",
    "CUST-99",
    "customer 4217",
    "My name is Sarah Connor",
    "Mr. Smith",
    "Regards,\nTom",
    "<EMAIL_1>",
    "<person_2>",
    "< TEXT_1 >",
    "£1,234.56",
    "2026-11-24",
    "0.91",
    "<",
    ">",
    "@",
    "+",
    "-",
    "(",
    ")",
    ".",
    "_",
]
pieces = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12))
texts = st.lists(
    st.tuples(pieces, st.sampled_from(["", " ", "\n", ", ", ".", "-", "x"])), max_size=12
).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_property_roundtrip_and_idempotence(text: str) -> None:
    red = make()
    masked = red.mask(text)
    assert red.unmask(masked) == text
    assert red.mask(masked) == masked


CROSS_CALL_TEXTS = texts.filter(lambda t: not PLACEHOLDER.search(t))


@settings(max_examples=100, deadline=None)
@given(st.lists(CROSS_CALL_TEXTS, min_size=1, max_size=4))
def test_property_roundtrip_across_calls(batch: list[str]) -> None:
    """One Redactor over several texts (as in one chat session): each round-trips.

    Texts holding an exact placeholder are left out: see the next test.
    """
    red = make()
    masked = [red.mask(t) for t in batch]
    assert [red.unmask(m) for m in masked] == batch


def test_issued_placeholder_in_later_text_counts_as_masked() -> None:
    """The price of idempotence: an issued placeholder is never re-masked, even in new text."""
    red = Redactor()
    assert red.mask("me@x.io") == "<EMAIL_1>"
    assert red.mask("literal <EMAIL_1>") == "literal <EMAIL_1>"
    assert red.mask("literal <EMAIL_2>") == "literal <TEXT_1>"  # not issued: escaped
