"""Facts for examples/eval/charles_book_club_heldout.yaml, computed with pandas from the raw
fixture (tests/fixtures/public/charles_book_club/CharlesBookClub.csv.gz), never from Insight.

    .venv/bin/python examples/eval/charles_book_club_facts.py

Definitions (the same as in the yaml header):
* a customer is a row (4,000 rows, ID# unique); no value is missing anywhere in the file;
* "Florence rate" / response rate = share of rows with Florence == 1 (a 0/1 column;
  Yes_Florence is the same column, No_Florence its complement);
* average_X / median_X = mean / median of column X over the rows in scope;
* M = total money spent on books (dollars), R = months since last purchase, F = number of
  purchases, FirstPurch = months since first purchase, <Cat>Bks = number of books bought in
  that category; Rcode / Fcode / Mcode are the data set's own bands of R / F / M;
* Gender: 1 = female, 0 = male (the DMBA book's data dictionary; the file only has 0/1);
* "bought an X book" = X column > 0; shares = rows in the group / rows in scope.
Rates are printed to one and two decimals (percent), money to two decimals.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "tests/fixtures/public/charles_book_club/CharlesBookClub.csv.gz"


def pct(x: float) -> str:
    return f"{100 * x:.1f}% / {100 * x:.2f}%"


def money(x: float) -> str:
    return f"{x:,.2f} / {x:.2f}"


def show(title: str, value) -> None:
    print(f"{title}: {value}")


def main() -> None:
    df = pd.read_csv(FILE)
    n = len(df)
    assert n == 4000 and df["ID#"].is_unique and not df.isna().any().any()
    fl = df["Florence"] == 1
    women = df["Gender"] == 1

    print("== single figures")
    show("customers", n)
    show("florence buyers", int(fl.sum()))
    show("florence rate", pct(fl.mean()))
    show("average M", money(df["M"].mean()))
    show("median M", df["M"].median())
    show("total M (sum)", money(df["M"].sum()))
    show("average R", f"{df['R'].mean():.2f}")
    show("median R", df["R"].median())
    show("average F", f"{df['F'].mean():.2f}")
    show("median F", df["F"].median())
    show("average FirstPurch", f"{df['FirstPurch'].mean():.2f}")
    show("median FirstPurch", df["FirstPurch"].median())
    show("average CookBks", f"{df['CookBks'].mean():.4f}")
    show("women (Gender=1)", f"{int(women.sum())} = {pct(women.mean())}")
    show("men (Gender=0)", f"{int((~women).sum())} = {pct((~women).mean())}")

    print("== florence rate by gender")
    print(df.groupby("Gender")["Florence"].agg(["mean", "sum", "count"]).to_string())
    print("== average / median M by gender")
    print(df.groupby("Gender")["M"].agg(["mean", "median"]).to_string())
    show("median M women", df.loc[women, "M"].median())
    show("average M women", money(df.loc[women, "M"].mean()))
    print("== average F by gender")
    print(df.groupby("Gender")["F"].mean().round(2).to_string())

    print("== by Florence (1 = bought)")
    print(df.groupby("Florence")[["M", "R", "Related Purchase"]].mean().round(2).to_string())
    print(df.groupby("Florence")[["M", "R"]].median().to_string())

    for code in ("Rcode", "Fcode", "Mcode"):
        print(f"== florence rate by {code}")
        g = df.groupby(code)["Florence"].agg(["mean", "sum", "count"])
        g["rate"] = [pct(x) for x in g["mean"]]
        print(g.to_string())

    print("== florence rate by Rcode, women only")
    g = df[women].groupby("Rcode")["Florence"].agg(["mean", "sum", "count"])
    g["rate"] = [pct(x) for x in g["mean"]]
    print(g.to_string())

    print("== filters")
    for title, mask in (
        ("ArtBks>0", df["ArtBks"] > 0),
        ("ItalArt>0", df["ItalArt"] > 0),
        ("GeogBks>0", df["GeogBks"] > 0),
        ("CookBks>0", df["CookBks"] > 0),
        ("R<=6", df["R"] <= 6),
        ("M>300", df["M"] > 300),
        ("Gender=1 & ArtBks>0", women & (df["ArtBks"] > 0)),
    ):
        sub = df[mask]
        show(
            title,
            f"customers {len(sub)} ({pct(len(sub) / n)} of all); florence rate "
            f"{pct(sub['Florence'].mean())} ({int(sub['Florence'].sum())} buyers)",
        )

    print("== florence buyers only")
    show("average R", f"{df.loc[fl, 'R'].mean():.2f}")

    print("== customer 25")
    print(df[df["ID#"] == 25].T.to_string())


if __name__ == "__main__":
    main()
