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
