"""insight_agent.data.ids.isin: pandas' isin results, through Arrow for text ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insight_agent.data.ids import IdSet, isin

TEXT = pd.Index(["a", "b", None, "d"], dtype="str")


@pytest.mark.parametrize(
    ("values", "candidates"),
    [
        (TEXT, pd.Series(["a", None, "x"], dtype="str")),  # missing matches missing
        (TEXT, pd.Series(["a", "x"], dtype="str").unique()),
        (pd.Series(["a", "b"], dtype="str"), {"b"}),
        (pd.Series(["a", "b"], dtype="str"), []),
        (pd.Series(["a", "b"], dtype="str"), [1, 2]),  # text against numbers: pandas
        (pd.Series([1, 2, 3]), [2, 5]),
        (pd.Index(["a", "b"], dtype=object), np.array(["b"], dtype=object)),
        (pd.Series(["a", None], dtype="str"), [None]),
    ],
)
def test_isin_matches_pandas(values: object, candidates: object) -> None:
    expected = pd.Series(values).isin(
        list(candidates) if isinstance(candidates, set) else candidates
    )
    got = isin(values, candidates)
    assert got.dtype == bool
    assert got.tolist() == expected.tolist()


def test_isin_many_ids() -> None:
    ids = pd.Index([f"C{i:06d}" for i in range(5000)], dtype="str")
    seen = pd.Series([f"C{i:06d}" for i in range(0, 10000, 3)], dtype="str")
    got = isin(ids, seen.unique())
    assert got.tolist() == [i % 3 == 0 for i in range(5000)]


@pytest.mark.parametrize(
    ("values", "known"),
    [
        (TEXT, pd.Series(["a", None, "x", "a"], dtype="string")),
        (pd.Series(["a", "b"], dtype="str"), pd.Series([], dtype="string")),
        (pd.Series([1, 2, 3]), pd.Series([2, 5, None])),
    ],
)
def test_idset_is_the_set_of_its_present_ids(values: object, known: pd.Series) -> None:
    ids = IdSet(known)
    present = set(known.dropna())
    expected = [v in present for v in values]  # a missing value is in no IdSet
    for _ in range(2):  # the Arrow array built on first use is reused
        assert isin(values, ids).tolist() == expected
    assert len(ids) == len(present) and set(ids) == present
    assert all(v in ids for v in present) and "zz" not in ids


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["b", None, "a", "b", "c"], dtype="str"),
        pd.Series(["b", pd.NA, "a", "b"], dtype="string"),
        pd.Series(["b", "a"], dtype=object),
        pd.Series([3, 1, 3]),
        pd.Series([None, None], dtype="string"),
    ],
)
def test_factorize_and_positions_match_pandas(values: pd.Series) -> None:
    from insight_agent.data.ids import factorize, positions

    codes, uniques = factorize(values)
    ref_codes, ref_uniques = pd.factorize(values, sort=False)
    assert codes.tolist() == ref_codes.tolist()
    assert list(uniques) == list(ref_uniques)
    labels = pd.Index(["a", "c", "zz"], dtype="str")
    if values.dtype.kind in "iu":
        labels = pd.Index([1, 7])
    assert positions(values, labels).tolist() == labels.get_indexer(values).tolist()


def test_idset_hash_index_equals_a_set_lookup() -> None:
    """Text ids go through the hash index (built once, probed many times): the same answer as
    a Python set, for present, absent, missing, unicode and near-miss ids, chunk after chunk."""
    rng = np.random.default_rng(7)
    known = [f"C{i:03d}-{j:06d}" for i in range(3) for j in range(4000)] + ["Zoë", "", "ä" * 40]
    ids = IdSet(pd.Series(known, dtype="str"))
    assert ids.index().usable
    universe = np.array([*known, "C000-000000 ", "c000-000001", "zoe", "X", "ä" * 39], dtype=object)
    present = set(known)
    for _ in range(3):
        chunk = list(rng.choice(universe, size=5000))
        chunk[::97] = [None] * len(chunk[::97])
        values = pd.Series(chunk, dtype="str")
        got = isin(values, ids)
        assert got.tolist() == [v is not None and v in present for v in chunk]
    assert isin(pd.Series([], dtype="str"), ids).tolist() == []
    assert isin(pd.Series(["a"], dtype="str"), IdSet(pd.Series([], dtype="str"))).tolist() == [
        False
    ]


def test_idset_falls_back_when_its_own_ids_share_a_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two known ids with one hash would hide one of them: the index says it is not usable and
    the lookup falls back to Arrow's set (the same answer)."""
    from insight_agent.data import ids as ids_module

    def clashing(con: object, array: object) -> np.ndarray:
        return np.zeros(len(array), dtype=np.uint64)  # every text hashes alike

    monkeypatch.setattr(ids_module, "_hashes", clashing)
    known = IdSet(pd.Series(["a", "b", "c"], dtype="str"))
    assert not known.index().usable
    assert isin(pd.Series(["c", "x", "a"], dtype="str"), known).tolist() == [True, False, True]


def test_hash_index_confirms_a_found_hash_by_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tested value whose hash equals a known id's is not taken for that id."""
    from insight_agent.data import ids as ids_module

    def first_letter(con: object, array: object) -> np.ndarray:
        return np.array([ord((v or "?")[0]) for v in array.to_pylist()], dtype=np.uint64)

    monkeypatch.setattr(ids_module, "_hashes", first_letter)
    known = IdSet(pd.Series(["apple", "banana"], dtype="str"))
    assert known.index().usable
    got = isin(pd.Series(["avocado", "banana", "apple", None, "cherry"], dtype="str"), known)
    assert got.tolist() == [False, True, True, False, False]
