"""Re-derive the facts of examples/eval/complete_journey_heldout.yaml from the raw fixture.

    .venv/bin/python examples/eval/complete_journey_facts.py

Reads tests/fixtures/public/complete_journey/cj_transactions_300hh.csv.gz with plain pandas
(no Insight code) and prints every figure the yaml quotes, labelled by the question.

Definitions (stated in the yaml header too):
* one row = one order line; revenue = sum of `sales_value` (no line is negative, so there is
  nothing to treat as a return; the 1,379 zero-value lines count as lines, add 0);
* orders ("baskets", "trips") = distinct `basket_id`; customers ("households") = distinct
  `household_id`; units = sum of `quantity`; AOV = revenue / orders;
  revenue per customer = revenue / distinct households;
* a filtered AOV (one department) = that department's revenue / baskets holding a line of it;
* the date of a line = the calendar date of `transaction_timestamp`; the cutoff (the data's
  last date) is 2018-01-01 (16 lines on that day, all other lines in 2017);
  "last month" = December 2017, "last quarter" = 2017-Q4, "last year" = 2017 (latest complete
  calendar units before the cutoff);
* new customers in a period = households whose first line ever falls in the period;
  repeat rate = share of the period's buyers with two or more baskets in the period;
* department = `department`, product category = `product_category`, brand = `brand`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "tests" / "fixtures" / "public" / "complete_journey" / "cj_transactions_300hh.csv.gz"

d = pd.read_csv(FILE)
d["ts"] = pd.to_datetime(d["transaction_timestamp"])
d["date"] = d["ts"].dt.normalize()
CUTOFF = d["date"].max()


def money(x: float) -> str:
    return f"{x:,.2f}"


def pct(x: float) -> str:
    return f"{100 * x:.1f}% / {100 * x:.2f}%"


def between(start: str, end: str) -> pd.DataFrame:
    return d[(d["date"] >= pd.Timestamp(start)) & (d["date"] <= pd.Timestamp(end))]


def summary(f: pd.DataFrame) -> dict[str, str]:
    rev = f["sales_value"].sum()
    orders = f["basket_id"].nunique()
    cust = f["household_id"].nunique()
    return {
        "revenue": money(rev),
        "orders": f"{orders:,}",
        "customers": f"{cust:,}",
        "units": f"{f['quantity'].sum():,}",
        "aov": money(rev / orders) if orders else "-",
        "rev_per_customer": money(rev / cust) if cust else "-",
        "lines": f"{len(f):,}",
    }


def show(label: str, value: object) -> None:
    print(f"{label:<58} {value}")


def by(f: pd.DataFrame, col: str, n: int | None = None, ascending: bool = False) -> None:
    g = f.groupby(col).agg(
        revenue=("sales_value", "sum"),
        orders=("basket_id", "nunique"),
        units=("quantity", "sum"),
        customers=("household_id", "nunique"),
    )
    g["aov"] = g["revenue"] / g["orders"]
    g["share"] = g["revenue"] / f["sales_value"].sum()
    g = g.sort_values("revenue", ascending=ascending)
    if n:
        g = g.head(n)
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(g.round(4).to_string())


print(f"file: {FILE.name}  rows {len(d):,}  columns {d.shape[1] - 2}  cutoff {CUTOFF.date()}")
print(f"lines on the cutoff day: {(d['date'] == CUTOFF).sum()}")

print("\n== all data")
for k, v in summary(d).items():
    show(k, v)

print("\n== by department (all data)")
by(d, "department")
show("lines without a department", int(d["department"].isna().sum()))

print("\n== by department, units (all data)")
u = d.groupby("department")["quantity"].sum().sort_values(ascending=False).head(6)
print(u.to_string())

print("\n== top 15 product categories by revenue (all data)")
by(d, "product_category", n=15)

print("\n== by brand (all data)")
by(d, "brand")

print("\n== by month")
m = (
    d.assign(month=d["date"].dt.to_period("M"))
    .groupby("month")
    .agg(
        revenue=("sales_value", "sum"),
        orders=("basket_id", "nunique"),
        customers=("household_id", "nunique"),
        units=("quantity", "sum"),
    )
)
m["aov"] = m["revenue"] / m["orders"]
print(m.round(2).to_string())

print("\n== by quarter")
q = (
    d.assign(q=d["date"].dt.to_period("Q"))
    .groupby("q")
    .agg(revenue=("sales_value", "sum"), orders=("basket_id", "nunique"), units=("quantity", "sum"))
)
q["aov"] = q["revenue"] / q["orders"]
print(q.round(2).to_string())

periods = {
    "last month = 2017-12": ("2017-12-01", "2017-12-31"),
    "2017-11": ("2017-11-01", "2017-11-30"),
    "last quarter = 2017-Q4": ("2017-10-01", "2017-12-31"),
    "2017-Q3": ("2017-07-01", "2017-09-30"),
    "2017-Q2": ("2017-04-01", "2017-06-30"),
    "last year = 2017": ("2017-01-01", "2017-12-31"),
    "2017-03-01 to 2017-05-31": ("2017-03-01", "2017-05-31"),
    "2017-07-01 to 2017-09-30": ("2017-07-01", "2017-09-30"),
    "since 2017-10-01": ("2017-10-01", str(CUTOFF.date())),
    "2018 (this year / ytd)": ("2018-01-01", "2018-12-31"),
}
for label, (a, b) in periods.items():
    print(f"\n== {label}")
    for k, v in summary(between(a, b)).items():
        show(k, v)

print("\n== December 2017 by department")
by(between("2017-12-01", "2017-12-31"), "department", n=5)

print("\n== December 2017, GROCERY only")
for k, v in summary(between("2017-12-01", "2017-12-31").query("department == 'GROCERY'")).items():
    show(k, v)

print("\n== department filters (all data)")
for dep in ["PRODUCE", "FUEL", "DRUG GM"]:
    f = d[d["department"] == dep]
    print(dep, summary(f))
y2017 = between("2017-01-01", "2017-12-31")
dec17 = between("2017-12-01", "2017-12-31")
print("FUEL in 2017", summary(y2017[y2017["department"] == "FUEL"]))
print("MEAT in Dec 2017", summary(dec17[dec17["department"] == "MEAT"]))
meat_any = dec17[dec17["department"].isin(["MEAT", "MEAT-PCKGD"])]
print("MEAT or MEAT-PCKGD in Dec 2017", summary(meat_any))

print("\n== BEERS/ALES")
beer = d[d["product_category"] == "BEERS/ALES"]
print("all", summary(beer))
q4 = between("2017-10-01", "2017-12-31")
print("2017-Q4", summary(q4[q4["product_category"] == "BEERS/ALES"]))
print("2017-12", summary(dec17[dec17["product_category"] == "BEERS/ALES"]))

print("\n== brand by month (2017)")
bm = between("2017-01-01", "2017-12-31")
bm = bm.assign(month=bm["date"].dt.to_period("M")).pivot_table(
    index="month", columns="brand", values="sales_value", aggfunc="sum"
)
print(bm.round(2).to_string())

print("\n== new customers (first line ever) by quarter")
first = d.groupby("household_id")["date"].min()
print(first.dt.to_period("Q").value_counts().sort_index().to_string())
print("new in 2017-Q2:", int(((first >= "2017-04-01") & (first <= "2017-06-30")).sum()))

print("\n== repeat rate, December 2017")
dec = between("2017-12-01", "2017-12-31")
per = dec.groupby("household_id")["basket_id"].nunique()
show("buyers", len(per))
show("with 2+ baskets", int((per >= 2).sum()))
show("repeat rate", pct((per >= 2).mean()))

print("\n== household 1419")
h = d[d["household_id"] == 1419]
for k, v in summary(h).items():
    show(k, v)
show("first / last date", f"{h['date'].min().date()} / {h['date'].max().date()}")

print("\n== bottom 3 departments by revenue (all data, departments with a name)")
by(d, "department", n=3, ascending=True)

print("\n== period-over-period changes")
nov17 = between("2017-11-01", "2017-11-30")
q3 = between("2017-07-01", "2017-09-30")


def aov(f: pd.DataFrame) -> float:
    return f["sales_value"].sum() / f["basket_id"].nunique()


show("revenue Dec vs Nov", pct(dec17["sales_value"].sum() / nov17["sales_value"].sum() - 1))
show("revenue Q4 vs Q3", pct(q4["sales_value"].sum() / q3["sales_value"].sum() - 1))
show("orders Dec vs Nov", pct(dec17["basket_id"].nunique() / nov17["basket_id"].nunique() - 1))
show("AOV Q4 vs Q3", f"{aov(q4):.2f} vs {aov(q3):.2f}: {pct(aov(q4) / aov(q3) - 1)}")
show(
    "private label share of all revenue",
    pct(d.loc[d["brand"] == "Private", "sales_value"].sum() / d["sales_value"].sum()),
)
