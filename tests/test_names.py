"""Matching what people say to the values in the data (insight_agent/names.py)."""

from __future__ import annotations

import pytest

from insight_agent.names import match_value, mentioned, mentions, value_key, word_key


@pytest.mark.parametrize(
    ("word", "key"),
    [
        ("Dresses", "dress"),
        ("dress", "dress"),
        ("tops", "top"),
        ("accessories", "accessory"),
        ("boxes", "box"),
        ("shoes", "shoe"),
        ("status", "status"),
        ("Intimates", "intimate"),
        ("atlas", "atlas"),
    ],
)
def test_word_key_drops_plural_endings_only(word: str, key: str) -> None:
    assert word_key(word) == key


def test_mentions_in_any_case_and_number_as_whole_words() -> None:
    assert mentions("what do people say about a dress?", "Dresses") == [(27, 32)]
    assert mentions("DRESSES and tops", "dress") == [(0, 7)]
    assert mentioned("tops, jackets and a skirt", ["Dresses", "Jackets", "Skirts", "Tops"]) == [
        "Jackets",
        "Skirts",
        "Tops",
    ]
    # multi-word values, hyphenated words whole
    assert mentions("sales of the skincare gift sets", "Skincare Gift Set") == [(13, 31)]
    assert mentions("blue-collar workers", "blue-collar") == [(0, 11)]
    assert mentions("a new collar", "blue-collar") == []
    assert mentions("re-married couples", "married") == []


def test_short_words_must_be_said_as_the_data_spells_them() -> None:
    """'top 10' does not name Tops; 'tops' does."""
    assert mentions("our top 10 complaints", "Tops") == []
    assert mentions("complaints about tops", "Tops") == [(17, 21)]
    assert mentions("a bag", "Bags") == []


def test_match_value_exact_first_then_any_number_unless_ambiguous() -> None:
    known = ["Dresses", "Tops", "Intimate", "Intimates", "Skincare Gift Set"]
    assert match_value("dress", known) == "Dresses"
    assert match_value(" TOPS ", known) == "Tops"
    assert match_value("intimates", known) == "Intimates"  # exact beats the plural key
    assert match_value("intimate", known) == "Intimate"
    assert match_value("gift set", known) is None  # a part of a name is not the name
    assert match_value("top", known) is None
    assert match_value("", known) is None
    assert value_key("Skincare Gift Sets") == "skincare gift set"


def test_british_and_american_spellings_match_either_way() -> None:
    """ "fibre" for Fiber optic, "colour" for Color, "grey" for Gray (and back)."""
    assert mentions("churn among month-to-month fibre custs", "Fiber optic") == []  # two words
    assert mentions("churn for fibre custs", "Fiber") == [(10, 15)]
    assert match_value("colours", ["Color", "Size"]) == "Color"
    assert match_value("gray", ["Grey", "Blue"]) == "Grey"
    assert word_key("Centres") == "center"
