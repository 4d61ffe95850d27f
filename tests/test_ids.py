"""insight_agent.data.ids.isin: pandas' isin results, through Arrow for text ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insight_agent.data.ids import isin

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
