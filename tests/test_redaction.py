"""Redaction: customer PII is masked before it reaches a hosted model, and restored after."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insight_agent.agent.redaction import KINDS, Redactor, is_name_header, names_in_table

PLACEHOLDER = re.compile(rf"<({'|'.join(KINDS)})_\d+>")


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
        "+44 20 7946 0958",
        "(555) 123 4567",
        "555 123 4567",
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
        "Paid 1,234.50 on 2025-03-01 (review R001234, 41% off, 12.5% of 1,600 orders)",
        "Order 4111 1111 1111 1112 and ref 1234567890123456",  # fail the Luhn check
        "IBAN-like GB82 WEST 1234 5698 7654 33 with a wrong check",  # fails mod 97
        "Top 10 Products, 3 Stars, 12 items on the street, 2 Baker boxes",
        "Segment S2 spent $1,234,567 in Q3 2025; 100 200 3000 units",
    ],
)
def test_amounts_dates_and_other_ids_untouched(text: str) -> None:
    red = make()
    assert red.mask(text) == text


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "3782 822463 10005",  # Amex, 15 digits in 4-6-5
        "6011 0009 9013 9424",
    ],
)
def test_cards_pass_the_luhn_check(card: str) -> None:
    red = Redactor()
    assert roundtrip(red, f"Charged {card} twice.") == "Charged <CARD_1> twice."
    assert red.mapping == {"<CARD_1>": card}


def test_a_card_followed_by_a_number_keeps_the_number() -> None:
    red = Redactor()
    assert roundtrip(red, "card 4111 1111 1111 1111 2026") == "card <CARD_1> 2026"


@pytest.mark.parametrize(
    "iban",
    ["GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00"],
)
def test_ibans_pass_the_mod_97_check(iban: str) -> None:
    red = Redactor()
    assert roundtrip(red, f"Pay to {iban}, thanks") == "Pay to <IBAN_1>, thanks"
    assert red.mapping == {"<IBAN_1>": iban}


@pytest.mark.parametrize(
    "address",
    [
        "12 Baker Street",
        "221B Baker St",
        "1600 Pennsylvania Ave NW",
        "350 5th Avenue",
        "12-14 Old Kent Road",
        "7 St Mary's Close",
        "42 Elm street",
    ],
)
def test_street_addresses(address: str) -> None:
    red = Redactor()
    assert roundtrip(red, f"Send it to {address}. Thanks") == "Send it to <ADDRESS_1>. Thanks"
    assert red.mapping == {"<ADDRESS_1>": address}


def test_every_kind_in_one_review() -> None:
    red = make()
    review = (
        "Jane Doe, 221B Baker St., London: card 4111 1111 1111 1111, IBAN "
        "GB82 WEST 1234 5698 7654 32, call (555) 123 4567. Refund 1,234.50 by 2025-03-01?"
    )
    masked = roundtrip(red, review)
    assert masked == (
        "<PERSON_1>, <ADDRESS_1>., London: card <CARD_1>, IBAN <IBAN_1>, call <PHONE_1>. "
        "Refund 1,234.50 by 2025-03-01?"
    )


@pytest.mark.parametrize(
    "header",
    [
        "First Name",
        "first_name",
        "LAST NAME",
        "Full Name",
        "Customer Name",
        "name",
        " Name ",
        "Surname",
        "customer-name",
    ],
)
def test_name_headers(header: str) -> None:
    assert is_name_header(header)


@pytest.mark.parametrize("header", ["email", "phone", "Product Name", "segment", "Contact"])
def test_not_name_headers(header: str) -> None:
    assert not is_name_header(header)


def test_names_in_table_under_any_name_like_header() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "Customer ID": ["C1", "C2", "C3"],
            "First Name": ["Hannah", "Connor", None],
            "LAST_NAME": ["Ward", "Evans", "Singh"],
            "Contact Preference": ["Email", "SMS", "Email"],
            "Contact": ["Email", "SMS", "Email"],  # not names: one word, a category
            "email": ["h@x.io", "c@x.io", "s@x.io"],
        }
    )
    names = names_in_table(frame)
    assert set(names) == {
        "Hannah",
        "Connor",
        "Ward",
        "Evans",
        "Singh",
        "Hannah Ward",
        "Connor Evans",
    }
    red = Redactor(known_names=names)
    assert red.mask("HANNAH WARD and Connor wrote; Email us") == (
        "<PERSON_1> and <PERSON_2> wrote; Email us"
    )


def test_a_contact_column_of_full_names_is_a_name_column() -> None:
    import pandas as pd

    frame = pd.DataFrame({"Contact": ["Jane Doe", "Bob Stone", "Email", None]})
    assert names_in_table(frame) == ["Jane Doe", "Bob Stone"]


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
    "+44 20 7946 0958",
    "555 123 4567",
    "4111 1111 1111 1111",
    "4111111111111111",
    "GB82 WEST 1234 5698 7654 32",
    "221B Baker St.",
    "1600 Pennsylvania Ave NW",
    "1,234.50",
    "41%",
    "R001234",
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
