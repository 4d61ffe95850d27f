"""``query_metrics``: descriptive figures from the metrics layer, as one tool unit.

Its arguments, implementation, headline, brief, summary, routing cues and template answer
live here together. In a workspace the argument schema lists *that* workspace's measures and
dimensions as enums (:func:`_args_for`), so a model can only choose names that exist.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from insight_agent.formatting import number, pct, signed_pct
from insight_agent.names import mentions, value_key
from insight_agent.tools.registry import Facts, ToolContext, ToolSpec, register

MAX_TOOL_ROWS = 25  # rows a model is shown; the CLI's `insight metrics` gives them all

PERIOD_HELP = (
    "period relative to the data's last date: 'last 12 months', 'last month', 'last 90 "
    "days', 'this year', '2025-Q3', '2025-03', 'since 2025-01-01'; omit for all data"
)


class QueryMetricsArgs(BaseModel):
    """Measures broken down by dimensions over a period."""

    model_config = ConfigDict(extra="forbid")

    measures: list[str] = Field(
        min_length=1,
        max_length=4,
        description="what to measure, e.g. revenue, orders, average_order_value, "
        "active_customers, new_customers, repeat_rate, response_rate, average_rating",
    )
    by: list[str] = Field(
        default_factory=list,
        max_length=2,
        description="break down by, e.g. month, week, quarter, category, channel, segment, "
        "campaign, region; customer with top N ranks customers by the measure",
    )
    period: str | None = Field(None, description=PERIOD_HELP)
    compare: Literal["previous", "year"] | None = Field(
        None, description="compare with the previous period or the same period a year earlier"
    )
    where: list[str] = Field(
        default_factory=list,
        description="filters as DIMENSION=VALUE, e.g. 'segment=Lapsing customers', "
        "'category=Shoes', 'rating<=2'",
    )
    top: int | None = Field(None, ge=1, le=100, description="keep the N highest rows")
    ascending: bool = Field(False, description="with top: the N lowest instead")


def _args_for(ctx: ToolContext) -> type[BaseModel]:
    """QueryMetricsArgs with this workspace's measure and dimension names as enums."""
    from insight_agent.analytics.queries import metrics_engine

    cat = metrics_engine(ctx.ws).catalogue
    measure = Literal[tuple(cat.measures)]  # type: ignore[valid-type]
    # a numeric column with many values filters ("m>300") but breaks nothing down
    dims = Literal[tuple(d for d, dim in cat.dimensions.items() if dim.breakdown)]  # type: ignore[valid-type]
    base = QueryMetricsArgs.model_fields
    return create_model(
        "QueryMetricsArgs",
        __base__=QueryMetricsArgs,
        measures=(list[measure], base["measures"]),  # type: ignore[valid-type]
        by=(list[dims], base["by"]),  # type: ignore[valid-type]
    )


def _run(ctx: ToolContext, args: QueryMetricsArgs) -> Facts:
    from insight_agent.analytics.queries import query_metrics

    facts = query_metrics(
        ctx.ws,
        list(args.measures),
        by=list(args.by),
        period=args.period,
        compare=args.compare,
        where=list(args.where),
        top=args.top,
        ascending=args.ascending,
    )
    rows = facts["rows"]
    if len(rows) > MAX_TOOL_ROWS:
        facts["rows"] = rows[:MAX_TOOL_ROWS]
        facts.setdefault("notes", []).append(
            f"showing {MAX_TOOL_ROWS} of {len(rows)} rows; `insight metrics` lists them all"
        )
    return facts


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "share":
        return pct(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):,.2f}" if unit == "currency" else number(value)


def _span(facts: Facts) -> str:
    p = facts["period"]
    if not p.get("end"):
        return p["label"]
    dates = f"{p.get('start') or '…'} to {p['end']}"
    return dates if p["label"] == dates else f"{p['label']} ({dates})"


def _in_span(facts: Facts) -> str:
    """ "in last month (…)", "since 1998-03-01 (…)": the period with its preposition."""
    label = str(facts["period"]["label"])
    return ("" if label.startswith(("since ", "until ")) else "in ") + _span(facts)


def _for(facts: Facts) -> str:
    """ " for category = PRODUCE": the filters a figure was computed under, as the sentence
    must say them (a filtered figure stated as "revenue in all data" is a wrong answer)."""
    filters = facts.get("filters") or []
    if not filters:
        return ""
    said = [re.sub(r"\s*(!=|>=|<=|=|<|>)\s*", r" \1 ", f, count=1) for f in filters]
    return " for " + " and ".join(said)


def headline(facts: Facts) -> str | None:
    """The answer in one sentence, figures exactly as in the rows."""
    rows = facts.get("rows") or []
    if not rows:
        return f"No data{_for(facts)} {_in_span(facts)}."
    m = facts["measures"][0]
    name, unit = m["name"], m["unit"]
    label = m["label"] + _for(facts)
    by = facts.get("by") or []
    if not by:
        row = rows[0]
        line = f"{label} {_in_span(facts)}: {_fmt(row.get(name), unit)}"
        cmp = facts.get("compared_with")
        if cmp and row.get(f"{name}_previous") is None:
            # "dec vs the same month last year" on data that starts after it: say so, never
            # leave the comparison out without a word
            line += f" (no data for {cmp['start']} to {cmp['end']} to compare with)"
        elif cmp:
            change = row.get(f"{name}_change_pct")
            move = "" if change is None else (f", {'up' if change >= 0 else 'down'} "
                                              f"{pct(abs(change))}")  # fmt: skip
            line += (
                f" vs {_fmt(row[f'{name}_previous'], unit)} in "
                f"{facts['compared_with']['start']} to {facts['compared_with']['end']}{move}"
            )
        return line + "."
    dim = by[0]
    if dim in ("day", "week", "month", "quarter", "year") and len(by) == 1:
        first, last = rows[0], rows[-1]
        best = max((r for r in rows if r.get(name) is not None), key=lambda r: r[name],
                   default=None)  # fmt: skip
        line = (
            f"{label} by {dim}, {_span(facts)}: {_fmt(first.get(name), unit)} in "
            f"{first[dim]}, {_fmt(last.get(name), unit)} in {last[dim]}"
        )
        if best is not None and best is not first and best is not last:
            line += f"; highest {_fmt(best[name], unit)} in {best[dim]}"
        return line + "."
    top = rows[0]
    keys = " / ".join(str(top[d]) for d in by)
    order = "lowest" if facts.get("sorted_by", "").endswith("(lowest first)") else "highest"
    share = top.get(f"{name}_share")
    of_all = f" ({pct(share)} of the total)" if share is not None else ""
    counted = f"{facts['rows_total']} {by[0]} values"
    if by == ["customer"]:  # a ranking of customers: "customer 2351", of how many
        keys = f"customer {keys}"
        counted = f"of {facts['rows_total']:,} customers with a figure"
    line = (
        f"{label} by {' and '.join(by)}, {_span(facts)}: {order} is {keys} with "
        f"{_fmt(top.get(name), unit)}{of_all} ({counted})"
    )
    return line + _moves(facts, name, by) + "."


def _moves(facts: Facts, name: str, by: list[str]) -> str:
    """With a comparison: the biggest rise and the biggest fall (or, when nothing fell, the
    smallest rise) among the rows, for "which … grew fastest / dropped the most?"."""
    key = f"{name}_change_pct"
    moved = [r for r in facts.get("rows") or [] if r.get(key) is not None]
    if not facts.get("compared_with") or len(moved) < 2:
        return ""
    up = max(moved, key=lambda r: r[key])
    down = min(moved, key=lambda r: r[key])
    where = " / ".join(str(up[d]) for d in by), " / ".join(str(down[d]) for d in by)
    line = f"; biggest rise vs before: {where[0]} ({signed_pct(up[key])})"
    if down[key] < 0:
        return line + f"; biggest fall: {where[1]} ({signed_pct(down[key])})"
    return line + f"; none fell, smallest rise: {where[1]} ({signed_pct(down[key])})"


ROWS_SHOWN = 12  # rows of a breakdown listed under an answer
MAX_ROWS_SHOWN = 50  # … and at most, when the question asked for more ("top 15")


def answer(facts: Facts) -> str:
    """The templated answer (no LLM): the headline and up to 12 rows (the rows asked for,
    up to 50, when the question named a number: "top 15 products")."""
    lines = [headline(facts) or ""]
    by = facts.get("by") or []
    shown = min(max(int(facts.get("top") or 0), ROWS_SHOWN), MAX_ROWS_SHOWN)
    if by and len(facts.get("rows") or []) > 1:
        for row in facts["rows"][:shown]:
            parts = []
            for m in facts["measures"]:
                part = f"{m['name']} {_fmt(row.get(m['name']), m['unit'])}"
                if row.get(f"{m['name']}_share") is not None:
                    part += f" ({pct(row[m['name'] + '_share'])} of the total)"
                change = row.get(f"{m['name']}_change_pct")
                if change is not None:
                    part += f" ({signed_pct(change)} vs before)"
                parts.append(part)
            figures = ", ".join(parts)
            lines.append(f"- {' / '.join(str(row[d]) for d in by)}: {figures}")
        if facts["rows_total"] > shown:
            lines.append(f"({facts['rows_total']} rows in all: `insight metrics` lists them)")
    lines += [f"Note: {n}" for n in facts.get("notes", [])]
    return "\n".join(lines)


# --- routing cues (the no-LLM router, and the shortlist the embedded model may call) --------

# what is inside a value of a dimension: "the top 5 categories in grocery" are its products
_FINER = {"category": ("subcategory", "product"), "subcategory": ("product",)}
# "best seller in produce", "top-selling products", "which category sold the most": revenue
# ranked by what sells
_BEST_SELLER = (
    r"\bbest[- ]?sell(?:er|ers|ing)\b|\btop[- ]?sell(?:er|ers|ing)\b|"
    r"\bsells? (?:the )?(?:most|best)\b|\bsold (?:the )?(?:most|best)\b"
)
_MEASURE_WORDS: tuple[tuple[str, str], ...] = (
    (r"average order value|\baov\b|basket size|order value|"
     r"\b(?:average|typical|mean) (?:basket|ticket|transaction|trip)\b|"
     r"\b(?:basket|ticket|transaction|trip) (?:\$ ?)?(?:value|spend|amount|size)\b|"
     r"\b(?:basket|ticket) \$|\bspend per (?:basket|trip|visit|transaction)\b|"
     r"\b(?:spend|spends|spent|spending|pays?|paid) (?:the )?(?:most |least |more |less )?"
     r"(?:on average )?per order\b", "average_order_value"),
    (r"revenue per customer|spend per customer", "revenue_per_customer"),
    (r"\b(?:orders|purchases|transactions|trips|baskets|visits) (?:per|a|each) (?:customer|"
     r"household|shopper|buyer|client|member)\b|\bpurchase frequency\b|"
     r"\bhow (?:often|many times) (?:do|does|did) (?:our |the |a |an )?(?:customers?|households?|"
     r"shoppers?|buyers?|clients?|members?|people) (?:buy|shop|order|purchase|come back)",
     "orders_per_customer"),
    (r"repeat (?:purchase )?rate|repeat customers", "repeat_rate"),
    (r"response rate|conversion rate|respon\w+ rate|"
     r"\brespond\w* to (?:our |the |their )?(?:campaigns?|emails?|offers?|promos?)",
     "response_rate"),
    (r"\bresponses\b", "responses"),
    (r"\b(?:campaign )?sends\b|emails? sent", "campaign_sends"),
    (r"new customers|first[- ]time (?:buyers|customers)|acquired|new customer (?:acquisition|"
     r"count|numbers|signups?)|customer acquisition", "new_customers"),
    (r"returning customers", "returning_customers"),
    (r"\bhow many (?:of (?:those|them|these|the \w+) )?(?:were|are|was|is) (?:brand[- ])?new\b",
     "new_customers"),
    (r"active customers|\bbuyers\b|(?:customers|people|ppl|shoppers) (?:who |that )?"
     r"(?:bought|ordered|purchased|shopped)|how many (?:customers |people |ppl )?"
     r"(?:bought|ordered|purchased|shopped)\b", "active_customers"),
    (r"average (?:star )?rating|avg rating|mean rating|"
     r"\b(?:worst|best|lowest|highest|top|bottom)[- ](?:star )?ratings?\b|\bratings?(?= by| per)|"
     r"\b(?:best|worst|highest|lowest|better|worse)[- ]rated\b|"
     r"\brated (?:better|worse|higher|lower|best|worst)\b", "average_rating"),
    (r"(?:share|%|percent\w*|proportion|fraction) (?:of )?(?:negative|bad|poor|low[- ]rated|"
     r"unhappy|(?:1-2|1 (?:or|and|to) 2|one or two|low)[- ]?stars?)(?: reviews?| ratings?| ones)?|"
     r"negative share|% negative",
     "share_negative"),
    (r"(?:customers |people |ppl )?(?:at |with )?high churn risk|high[- ]risk customers",
     "high_churn_risk_customers"),
    (r"(?:average |mean |avg )?churn (?:probability|risk|likelihood)", "mean_churn_probability"),
    (r"(?:average|mean|typical) (?:customer )?(?:clv|lifetime value)", "mean_clv"),
    (r"median (?:customer )?(?:clv|lifetime value)", "median_clv"),
    (r"total (?:clv|lifetime value)", "total_clv"),
    (r"(?:how many|number of|count of) reviews|\breviews(?= per| by)|\breviews in total",
     "reviews"),
    (r"\breturns\b|returned", "returns"),
    (r"\bunits\b|items sold", "units"),
    (r"\bline items\b|\border lines\b|\b(?:how many|number of|count of) (?:order |basket |"
     r"receipt |transaction )?lines\b", "order_lines"),
    (r"revenue|\bsales\b|turnover|takings|\bgmv\b|how much (?:did we|we) (?:sell|make)|"
     r"how much (?:do|does|did|have|had)? ?(?:we|you|they|it|i) (?:sell|sold|make|made|"
     r"take in|took in|bring in|brought in|earn|earned)|"
     r"how much (?:do|does|did|have|had) (?:they|those|these|customers|people|shoppers|he|she)"
     r" (?:spend|spent)\b(?! per)|"
     # (the words between stay for filters: "how much seafood have we sold")
     r"how much (?=(?:[a-z&'-]+ ){0,3}(?:have|had|did) we (?:sold|sell|made|make)\b)|"
     r"how much (?:was|did we|we) (?:sold|sell)|" + _BEST_SELLER + "|"
     r"how (?:are|were|is|was) (?:we|business|things) (?:doing|going)|how did we do|"
     r"\bperformance\b", "revenue"),
    # figures no export of orders gives without costs: named so they are declined, never
    # answered with revenue (a workspace with a profit column has its own measure for it)
    (r"\bprofit\w*|\bcogs\b|\bcost of (?:goods|sales)\b", "profit"),
    (r"\bmargins?\b|\bmark-?ups?\b", "margin"),
    (r"(?:how many|number of|count of|total) (?:orders|baskets|transactions|shopping visits|"
     r"store visits|visits|receipts|tickets)|\borders\b|"
     r"\b(?:baskets|transactions)(?= (?:from|between|since|in|during|last|this|per|by|each|"
     r"over|vs|did|were|we)\b)", "orders"),
    (r"(?:how many|number of|count of|most|fewest|more|fewer) customers|"
     r"\b(?:split|breakdown|distribution|spread|mix|count) of (?:our |the |all )?customers\b|"
     # (not "% of customers who have X": that is a yes/no column's or outcome's share)
     r"(?:share|percent\w*|proportion|fraction|%) of (?:our |the |all )?customers"
     r"(?!\s+(?:who |that )?(?:have|has|own|owns|hold|holds|bought|took|got)\b)|"
     r"\bcustomer (?:count|numbers|totals?)\b|^customers(?= (?:by|per|split by|broken down by)\b)",
     "customers"),
)  # fmt: skip
_TIME_WORDS = (
    (r"\bdaily\b|per day|by day|each day", "day"),
    (r"\bweekly\b|per week|by week|each week", "week"),
    (r"\bmonthly\b|per month|by month|each month|month by month|over time|\btrend", "month"),
    (r"\bquarterly\b|per quarter|by quarter|each quarter", "quarter"),
    (r"\byearly\b|\bannual\b|per year|by year|each year", "year"),
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"  # a month by name
# "March 1998", "feb 97", "jun '21" (a two-digit year of 32-99 or with an apostrophe; "May 12"
# is a day)
_MONTH_YEAR = _MONTH + r" (?:\d{4}|'\d{2}|[3-9]\d\b)"
# A month by a name that is nothing else ("may" is a verb first; "mar", "dec" are not words
# a marketer types otherwise).
_MONTH_ALONE = (
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|"
    r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b"
)
_STRICT_MONTH = _MONTH_ALONE[:-3] + r"|may)\b"
# A day as people write it: 2017-03-01, 3/1/2017, "mar 1 2017", "1st march 2017", "oct 1"
_DAY = re.compile(
    r"(\d{4}-\d{1,2}-\d{1,2})|(\d{1,2}/\d{1,2}/\d{4})"
    rf"|({_STRICT_MONTH})\.? (\d{{1,2}})(?:st|nd|rd|th)?(?:,? (\d{{4}}))?\b"
    rf"|\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?({_STRICT_MONTH})(?:,? (\d{{4}}))?",
    re.I,
)
_PERIOD = re.compile(
    r"\b(?:in |during |over |for )?(?:the )?"
    r"((?:last|past|previous|trailing) (?:\d+|a|one|two|three|six|twelve) "
    r"(?:days?|weeks?|months?|quarters?|years?)"
    r"|(?:last|previous|this|current) (?:week|month|quarter|year)"
    r"|\b(?:ytd|mtd|qtd|year to date|month to date)\b"
    r"|(?:since|from|after) (?:\d{4}-\d{2}-\d{2}|\d{4}-q[1-4]|q[1-4] \d{4}|\d{4}-\d{2}"
    rf"|{_MONTH_YEAR}|(?:19|20)\d\d(?![\d-]))"
    # half years: "first half of 2017", "2nd half", "h1 2017", "2017-H2"
    r"|(?:first|1st|second|2nd) half(?: of)?(?: (?:19|20)\d\d)?"
    r"|\bh[12](?:[-\s]?(?:19|20)\d\d)?\b|(?:19|20)\d\d[-\s]?h[12]\b"
    r"|\d{4}-q[1-4]|q[1-4] \d{4}|\bq[1-4]\b|\d{4}-\d{2}(?!-)"
    rf"|{_MONTH_YEAR}"
    r"|(?<![\d-])(?:19|20)\d\d(?![\d-])"
    # a month named alone ("dec vs nov"): the latest one up to the cutoff; "may" only where
    # it cannot be the verb ("in may", "may vs april")
    rf"|{_MONTH_ALONE}(?! \d)"
    r"|(?:(?<=\bin )|(?<=\bfor )|(?<=\bof )|(?<=\bvs )|(?<=\bduring ))may\b(?! \d)"
    r"|\bmay(?= (?:vs\.?|versus|and|or|compared|sales|revenue|orders)\b))",
    re.I,
)
# "the same month last year", "Q1 last year": a year-earlier comparison whose "last year" is
# not the period asked about.
_SAME_LAST_YEAR = re.compile(r"\bsame (?:period|time|day|week|month|quarter) (?:of |as )?last "
                             rf"year|\b(?:q[1-4]|{_MONTH}) (?:of )?last year\b", re.I)  # fmt: skip
_YEAR_CMP = re.compile(r"year[- ]over[- ]year|\byoy\b|(?:the )?year before|prior year|"
                       r"previous year|a year earlier|a year ago|(?:vs\.?|versus|against|with|"
                       r"compared (?:to|with)) (?:the )?(?:same .* )?last year|"
                       + _SAME_LAST_YEAR.pattern, re.I)  # fmt: skip
_PREV_CMP = re.compile(r"(?:vs\.?|versus|compared (?:to|with)|than) (?:the )?(?:previous|prior|"
                       r"last) (?:period|month|quarter|week)|period[- ]over[- ]period|"
                       r"month[- ]over[- ]month|\bmom\b|quarter[- ]over[- ]quarter|"
                       r"the (?:day|week|month|quarter|year|period) before|"
                       r"the (?:\d+|two|three|six|twelve) (?:days|weeks|months|quarters) "
                       r"(?:before|prior|earlier)|(?:vs\.?|versus|compared (?:to|with)|than|"
                       r"against) (?:the )?(?:previous|prior|preceding) (?:\d+|two|three|six|"
                       r"twelve)\b|"
                       r"\bgrowth\b|\bgrow(?:ing|s)?\b|\bchange[ds]?\b|\bgrew\b|\bup or down\b|"
                       r"\bdeclin|\bfall(?:ing)?\b|\bdrop(?:ped|ping)?\b", re.I)  # fmt: skip


# Growth words: a question about change over time, compared with the period before.
_GROWTH = re.compile(r"\bgrow(?:ing|s|th)?\b|\bgrew\b|\bfastest\b|\bdeclin\w*|\bshrink\w*|"
                     r"\bdrop(?:ped|ping|s)?\b|\bfell\b|\bfalling\b|\bincreas\w*|\bdecreas\w*",
                     re.I)  # fmt: skip
GROWTH_PERIOD = "last 3 months"  # the window a growth question with no period is read over


def compare_said(text: str) -> str | None:
    """The comparison ``text`` asks for, whatever its period: "year" ("vs the year before",
    "yoy"), "previous" ("vs the month before", "growth") or None."""
    if _YEAR_CMP.search(text):
        return "year"
    if _PREV_CMP.search(text) or re.search(r"\bvs\.?\b|\bbefore\b", text, re.I):
        return "previous"
    return None


# What people type: "hw many", "revnue", "ordres" … read as the words they meant.
_TYPOS = {"hw": "how", "hoe": "how", "whats": "what is", "u": "you", "no.": "number of",
          "rev": "revenue", "revs": "revenue", "custs": "customers", "cust": "customer",
          "avg": "average", "avg.": "average", "ords": "orders", "qty": "units",
          "hows": "how is", "yr": "year", "yrs": "years", "mo": "month", "mos": "months",
          "12m": "12 months", "6m": "6 months", "3m": "3 months", "ppl": "people",
          "abt": "about", "dept": "department", "depts": "departments", "r": "are",
          "pls": "please", "diff": "different", "qtr": "quarter", "qtrs": "quarters",
          "grp": "group", "grps": "groups", "houshold": "household",
          "q's": "quarters", "wk": "week", "wks": "weeks", "prob": "probability",
          "probs": "probabilities", "pct": "percent",
          # retail words for the same things: a household is the customer, a shopping trip
          # (a visit, a ticket) is an order
          "households": "customers", "household": "customer", "hh": "customers",
          "hhs": "customers", "trips": "orders", "trip": "order", "clients": "customers",
          "client": "customer", "w/": "with", "w/o": "without", "wo/": "without"}  # fmt: skip
_VOCAB = ("revenue", "orders", "sales", "reviews", "customers", "returns", "rating", "ratings",
          "average", "repeat", "response", "campaign", "campaigns", "channel", "category",
          "segment", "month", "quarter", "weekly", "monthly", "subcategory", "department",
          "region", "country", "gender", "product", "products", "comments", "members")  # fmt: skip


def normalise(question: str) -> str:
    """Lower case, common shorthand expanded and near-miss spellings of the metrics
    vocabulary corrected ("revnue split by age band" -> "revenue split by age band")."""
    import difflib

    # "the base", "our customer base": the customers
    text = re.sub(
        r"\b(?:the|our|my|whole|entire|all)\s+(?:whole\s+|entire\s+)?(?:customer\s+|client\s+)?"
        r"base\b|\bcustomer base\b|"
        # a mailer's "the file", "our list", "the database"
        r"(?<=\bof )(?:the|our)\s+(?:whole\s+|entire\s+)?(?:mailing\s+|customer\s+)?"
        r"(?:file|list|database|db)\b",
        "customers",
        question.lower(),
    )
    words = []
    # "1,000" stays one number (not "1 , 000")
    for word in re.findall(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?\b|[\w.%'/-]+|[^\w\s]", text):
        word = _TYPOS.get(word, word)
        inflected = word.rstrip("s") in _VOCAB or f"{word}s" in _VOCAB
        if word.isalpha() and len(word) >= 5 and word not in _VOCAB and not inflected:
            close = difflib.get_close_matches(word, _VOCAB, n=1, cutoff=0.8)
            # "responds" is a verb of "response", not a misspelling of it
            word = close[0] if close and close[0][:5] != word[:5] else word
        words.append(word)
    return re.sub(r"\bnumber of of\b", "number of", " ".join(words))  # "no. of"


# What a business calls its customers: "members" of a loyalty scheme, "users", "passengers",
# a grocer's "households" ("hh").
_THEIR_CUSTOMERS = re.compile(
    r"\b(?:members|users|accounts|passengers|guests|patrons|consumers|"
    r"policyholders|subscribers|donors|fliers|flyers|households|hhs?)\b",
    re.I,
)
_THEIR_CUSTOMER = re.compile(
    r"\b(?:member|user|account|passenger|guest|patron|consumer|policyholder|"
    r"subscriber|donor|flier|flyer|household)\b",
    re.I,
)


def workspace_catalogue(ctx: ToolContext) -> Any | None:
    """The workspace's metrics catalogue, or None where it has none (no build, no tables):
    the router's checks then leave the question as it is."""
    try:
        from insight_agent.analytics.queries import metrics_engine

        return metrics_engine(ctx.ws).catalogue
    except Exception:
        return None


def people_words(cat: Any, q: str) -> str:
    """``q`` with the business's word for its customers read as "customers" ("how many
    members …"), unless a column of this workspace is named by that word (a "member" flag,
    "subscribed")."""
    names = " ".join([*cat.dimensions, *cat.measures]).replace("_", " ")

    def swap(m: re.Match[str], plural: bool) -> str:
        word = m[0].lower().rstrip("s")
        if re.search(rf"\b{word}", names):
            return m[0]
        return "customers" if plural else "customer"

    q = _fix_column_typos(cat, q)
    q = _THEIR_CUSTOMERS.sub(lambda m: swap(m, True), q)
    return _THEIR_CUSTOMER.sub(lambda m: swap(m, False), q)


def _fix_column_typos(cat: Any, q: str) -> str:
    """``q`` with near-miss spellings of this workspace's column words corrected ("balanse"
    -> "balance", "purchse" -> "purchase"); inflections ("orders", "balanced") are left."""
    import difflib

    vocab = sorted({w for c in cat.columns.get("customers", [])
                    for w in re.findall(r"[a-z]+", str(c).lower()) if len(w) >= 5})  # fmt: skip
    if not vocab:
        return q

    def fix(m: re.Match[str]) -> str:
        word = m[0]
        if len(word) < 6 or word in vocab or word in _VOCAB or word.rstrip("s") in _VOCAB:
            return word
        if difflib.get_close_matches(word, _VOCAB, n=1, cutoff=0.8):
            return word  # "custmers": normalise() reads it as the metrics word
        close = difflib.get_close_matches(word, vocab, n=1, cutoff=0.8)
        if not close or close[0][:2] != word[:2]:
            return word
        if word.startswith(close[0]) or close[0].startswith(word.rstrip("s")):
            return word  # an inflection, not a typo
        return close[0]

    return re.sub(r"\b[a-z]{6,}\b", fix, q)


def _named_measures(q: str) -> tuple[list[str], list[str], str]:
    """The built-in measures ``q`` (normalised) names, the words that named them, and ``q``
    with those words taken out."""
    measures: list[str] = []
    said: list[str] = []  # the words that named measures
    both = re.search(r"\bnew\s*(?:vs\.?|versus|and|or|/)\s*returning\b", q)
    if both:  # "new vs returning customers"
        measures += ["new_customers", "returning_customers"]
        said.append(both[0])
    rest = q
    for pattern, name in _MEASURE_WORDS:
        found = re.search(pattern, rest)
        if found:
            measures.append(name)
            said.append(found[0])
            rest = re.sub(pattern, " ", rest)  # "average order value" is not also "orders"
    return measures, said, rest


# Values too common to say which attribute a question means ("yes" is every yes/no column's).
# Nor marketing words that name a value of one column but mean more ("email" is a campaign
# medium before it is the acquisition channel "Email").
VAGUE_LEVELS = frozenset({"yes", "no", "unknown", "other", "others", "none", "missing", "true",
                           "false", "n/a", "na", "all", "any", "(missing)", "email", "search",
                           "social", "direct", "online", "store", "web", "mobile", "app",
                           "referral"})  # fmt: skip
# segments are matched by name; products and customers are too many
NOT_BY_VALUE = ("segment", "product", "customer")


# The customers who have a customers table's outcome, in words ("caravan owners", "buyers",
# "subscribers"): in a workspace without orders these name the label's groups, not buyers.
_HAVE_IT = (r"(?:owners?|buyers?|purchasers?|takers?|holders?|subscribers?|converters?|"
            r"responders?|adopters?|acceptors?)")  # fmt: skip
_HAVE_IT_BOTH = re.compile(
    rf"\b{_HAVE_IT}\b.{{0,30}}\b(?:vs\.?|versus|compared (?:to|with)|and|or)\s+(?:the\s+)?"
    rf"(?:non[- ]?\w+|rest|others|everyone else|everybody else)\b|\bnon[- ]?{_HAVE_IT}\b"
)


def _outcome_rates(cat: Any) -> list[Any]:
    """The rates of the customers table's yes/no outcomes (label models' ``<label>_rate``)."""
    return [m for m in cat.measures.values()
            if m.aggregation == "share_of_customers" and m.name.endswith("_rate")]  # fmt: skip


def _outcome_group(cat: Any, q: str) -> tuple[str, str, str] | None:
    """(the outcome dimension, its positive value, "positive" | "both") when ``q`` names the
    customers who have the customers table's one outcome ("mean pbrand among caravan owners",
    "buyers vs the rest") in a workspace with no orders (where "buyers" are no order
    measure); else None."""
    if "revenue" in cat.measures or not re.search(rf"\b{_HAVE_IT}\b", q):
        return None
    rates = _outcome_rates(cat)
    if len(rates) != 1:
        return None
    label = rates[0].name.removesuffix("_rate")
    if label not in cat.dimensions:
        return None
    positive = rates[0].label.rsplit(" = ", 1)[-1]
    return label, positive, "both" if _HAVE_IT_BOTH.search(q) else "positive"


_COMPARED = re.compile(r"\bvs\.?\b|\bversus\b|\bstayed\b|\bnon[- ]?churn|\bcompar")


def _churned_filter(cat: Any, by: list[str]) -> tuple[str, str] | None:
    """(the churn label's rate, the filter of its churned group), unless the label is a
    breakdown already or there is none."""
    measure = cat.churn_label_rate()
    if measure is None:
        return None
    label = measure.name.removesuffix("_rate")
    if label not in cat.dimensions or label in by:
        return None
    return measure.name, f"{label}={measure.label.rsplit(' = ', 1)[-1]}"


# a figure of one group compared with the rest: "do seniors churn more", "any different"
_COMPARES = re.compile(
    r"\b(?:more|less|fewer|higher|lower|better|worse|differen\w*|diffrent|differ)\b"
)


def _lost_customers(cat: Any, q: str, measures: list[str], by: list[str]) -> tuple[str, str] | None:
    """(the churn label's rate, its filter) when ``q`` asks a figure of the customers who
    churned ("for churners", "of those who left") besides that rate; else None."""
    found = _churned_filter(cat, by)
    if (
        found is None
        or len(measures) < 2
        or found[0] not in measures
        or not re.search(r"\bchurn(?:ers|ed)\b|\bwho (?:churned|left|cancell?ed|quit)\b", q)
        or _COMPARED.search(q)
    ):
        return None
    return found


def _lost_count(cat: Any, q: str, by: list[str]) -> str | None:
    """The churn label's yes-filter when ``q`` counts the customers who were lost ("how many
    custs have we lost in total", "number of churners"); None otherwise."""
    found = _churned_filter(cat, by)
    if (
        found is None
        or not re.search(r"\bhow many\b|\bnumber of\b|\bcount\b|\btotal\b", q)
        or not re.search(r"\b(?:lost|churned|churners|left|cancell?ed|quit)\b", q)
        or _COMPARED.search(q)
    ):
        return None
    return found[1]


def without_columns(cat: Any, q: str) -> str:
    """``q`` with the customers table's column names taken out ("monthly charges",
    "total_charges"): their words are not periods or time grains."""
    from insight_agent.engine.metrics import column_words

    for col in cat.columns.get("customers", []):
        if len(re.findall(r"[a-z0-9]+", col.lower())) > 1:
            q = re.sub(rf"\b{column_words(col)}\b|\b{re.escape(col.lower())}\b", " ", q)
    return q


_NUMBERS = {w: str(i) for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
))}  # fmt: skip
_NUMBER_WORD = re.compile(rf"\b(?:{'|'.join(_NUMBERS)})\b", re.I)


def _levels_named(ctx: ToolContext, cat: Any, q: str) -> dict[str, list[str]]:
    """Per text dimension, the values ``q`` names in any number ("dresses" for Dresses,
    "married", "cellular"); vague values ("yes", "unknown") never count."""
    from insight_agent.analytics.queries import metrics_engine

    try:
        engine = metrics_engine(ctx.ws)
    except Exception:
        return {}
    out: dict[str, list[str]] = {}
    taken: set[str] = set()  # "Jackets" is a category and a subcategory: the category's
    levels: dict[str, list[str]] = {}
    for dim in cat.dimensions.values():
        if dim.source == "time" or dim.numeric or dim.name in NOT_BY_VALUE:
            continue
        try:
            levels[dim.name] = [
                v for v in engine.levels(dim) if v.lower().strip() not in VAGUE_LEVELS
            ]
        except Exception:
            continue
    # a long first word said alone names its value when no other value starts with it
    # ("fiber" for Fiber optic, "electronic" for Electronic check)
    firsts: dict[str, list[str]] = {}
    for values in levels.values():
        for value in values:
            words = value.lower().split()
            if len(words) > 1 and len(words[0]) >= 5 and words[0].isalpha():
                firsts.setdefault(words[0], []).append(value)
    for name, values in levels.items():
        hits = []
        for value in values:
            low = value.lower().strip()
            if len(low) < 3:
                continue
            key = value_key(low)  # "Intimate" and "Intimates": the first column's
            digits = _NUMBER_WORD.sub(lambda m: _NUMBERS[m[0].lower()], value)
            said = (
                mentions(q, value)
                # "month to month" for Month-to-month
                or ("-" in value and mentions(q, value.replace("-", " ")))
                # "2 yr contract" for Two year
                or (digits != value and mentions(q, digits))
                or (firsts.get(low.split()[0], []) == [value] and bool(mentions(q, low.split()[0])))
            )
            if key not in taken and said:
                hits.append(value)
                taken.add(key)
        if hits:
            out[name] = hits
    product = cat.dimensions.get("product")
    if product is not None and not product.numeric and product.source == "fact":
        # products last, and only by their whole name ("beer" for BEERS/ALES): there are
        # many, so a word another column's value took, or a short code, never counts
        try:
            values = engine.levels(product)
        except Exception:
            values = []
        hits = [
            v
            for v in values[:_MAX_PRODUCTS]
            if re.search(r"[a-z]{4}", v.lower())
            and v.lower().strip() not in VAGUE_LEVELS
            and value_key(v) not in taken
            and mentions(q, v)
        ]
        if hits:
            out["product"] = hits
    return out


_MAX_PRODUCTS = 5000  # products matched by name in a question (engine.levels' own cap)


def _without(ctx: ToolContext, cat: Any, q: str) -> str | None:
    """ "dim=No" when ``q`` asks about the customers without a yes/no attribute ("people
    without online security", "custs with no tech support"); None otherwise (and for "with
    and without", which compares both)."""
    if re.search(r"\bwith and without\b|\bvs\.?\b|\bversus\b", q):
        return None
    for dim in _dims_by_name(cat, q):
        said = re.escape(dim.replace("_", " "))
        if not re.search(rf"\b(?:without|with no|w/o|no|lacking|don'?t have|do not have) "
                         rf"(?:an? |any )?{said}\b", q):  # fmt: skip
            continue
        try:
            from insight_agent.analytics.queries import metrics_engine

            values = metrics_engine(ctx.ws).levels(cat.dimensions[dim])
        except Exception:
            return None
        no = [v for v in values if v.strip().lower() == "no"]
        if no:
            return f"{dim}={no[0]}"
    return None


_NEGATED = (
    r"(?:non[- ]?|not\s+|without\s+(?:an?\s+|any\s+)?|with\s+no\s+|no\s+|w/o\s+|"
    r"(?:don'?t|do not|doesn'?t|does not)\s+(?:have|use)\s+(?:an?\s+|any\s+)?)"
)


def flags_said(cat: Any, q: str) -> dict[str, str]:
    """Yes/no attributes (0/1 columns) ``q`` names by their words: "both" when it compares
    the two groups ("seniors vs non seniors", "with and without dependents", "paperless or
    not"), "No" for the group without ("non seniors", "custs without dependents"), "Yes" for
    the group with ("churn for seniors")."""
    from insight_agent.engine.metrics import flag_words

    out: dict[str, str] = {}
    # every column of the table: a word one yes/no column shares with any other is not its
    # name ("service" is phone_service's and internet_service's)
    flag_cols = [*cat.columns.get("customers", [])] or [
        d.column for d in cat.dimensions.values() if d.flag and d.column
    ]
    for dim in cat.dimensions.values():
        if not dim.flag or dim.column is None:
            continue
        said = flag_words(dim.column, flag_cols)
        hits = [bool(h[1]) for h in re.finditer(rf"\b({_NEGATED})?{said}\b", q)]
        if not hits:
            continue
        if (any(hits) and not all(hits)) or re.search(
            rf"\bwith and without\s+(?:an?\s+)?{said}\b|\b{said}\s+(?:or not|vs\.?|versus)\b|"
            # "florence buyers vs non buyers", "… vs the rest"
            rf"\b{said}\b.{{0,30}}\b(?:vs\.?|versus|compared (?:to|with)|against)\s+(?:the\s+)?"
            rf"(?:rest|others|everyone else|everybody else|non[- ]?\w+|not)\b|"
            # "buyers vs non-buyers of florence"
            rf"\b(?:vs\.?|versus)\s+non[- ]?\w+\s+(?:of\s+)?{said}\b",
            q,
        ):
            out[dim.name] = "both"
        else:
            out[dim.name] = "No" if all(hits) else "Yes"
    return out


_MORE = r"(?:>=|=>|>|over|above|more than|greater than|at least|of at least|of over|exceeding)"
_LESS = r"(?:<=|=<|<|under|below|less than|fewer than|at most|of at most|of under)"


# A number as people type it: "300", "1,500", "$2.5k", "100k", "1.2m", "10 thousand"
_AMOUNT = (r"\$?(?P<n>\d[\d,]*(?:\.\d+)?)\s*(?P<mult>k|m|mn|thousand|million)?\b"
           r"(?!\s*%)")  # fmt: skip
_UNITS = r"(?:months?|days?|years?|weeks?|miles?|points?|dollars?|bucks|usd|eur|gbp|\$)"


def _amount(number: str, mult: str | None) -> str:
    """The number "100k" or "1,500" says, written plainly (100000, 1500)."""
    value = float(number.replace(",", ""))
    value *= {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6}.get(mult or "", 1)
    return str(int(value)) if value.is_integer() else repr(value)


def sex_group(flag: str, *, men: bool) -> str:
    """The group of a yes/no column that says which sex it marks (``male``, ``is_female``,
    ``gender_male``) holding men (``men=True``) or women: "Yes" or "No"."""
    marks_men = not re.search(r"(?:^|_)female$", flag)
    return "Yes" if men == marks_men else "No"


def _numeric_filters(cat: Any, q: str) -> list[str]:
    """Filters on numeric customer columns said with a number ("M over 300", "tenure > 24",
    "income below 30000"), or "bought a/any X" for a count column (ArtBks > 0)."""
    from insight_agent.engine.metrics import column_words

    siblings = cat.columns.get("customers", [])
    out: list[str] = []
    for dim in cat.dimensions.values():
        if not dim.numeric or dim.source != "customer" or dim.column is None:
            continue
        said = column_words(dim.column, siblings)
        for op, words in ((">", _MORE), ("<", _LESS)):
            # "balance over 100k", "tenure < 24"; or the number first: "over 100k balance",
            # "less than 12 months tenure"
            m = re.search(rf"\b{said}\s*(?:of\s+|is\s+|was\s+)?{words}\s*{_AMOUNT}", q)
            m = m or re.search(
                rf"\b{words}\s*{_AMOUNT}\s*(?:{_UNITS}\s+)?(?:of\s+|in\s+)?{said}\b", q
            )
            if m:
                value = _amount(m["n"], m["mult"])
                inclusive = re.search(r"least|most|=", m[0])
                out.append(f"{dim.name}{op}{'=' if inclusive else ''}{value}")
        # "3+ transactions", "freq of 5 or more", "10 or fewer bonus trans"
        for op, after in (
            (">=", r"(?:\s*\+|\s*or (?:more|over|above|higher)|\s*and (?:up|over|above))"),
            ("<=", r"\s*or (?:less|fewer|under|below|lower)"),
        ):
            m = re.search(rf"(?<![\d.]){_AMOUNT}{after}\s*(?:{_UNITS}\s+)?(?:of\s+)?{said}\b", q)
            m = m or re.search(rf"\b{said}\s*(?:of\s+|is\s+)?{_AMOUNT}{after}", q)
            if m and not any(f.startswith(dim.name) for f in out):
                out.append(f"{dim.name}{op}{_amount(m['n'], m['mult'])}")
        if dim.column.strip().lower() == "age":  # "older than 60", "under 30s", "aged over 65"
            for op, said_age in (
                (">", r"older than|over the age of|aged (?:over|above)|over|above"),
                ("<", r"younger than|under the age of|aged under|under|below"),
            ):
                m = re.search(rf"\b(?:{said_age})\s+(\d{{2}})\b(?!\s*(?:%|k\b|days?|months?))", q)
                if m and f"{dim.name}{op}{m[1]}" not in out:
                    out.append(f"{dim.name}{op}{m[1]}")  # fmt: skip
        # "bought a cookbook": above 0; not "have a balance over 1000", said with its number
        said_with_number = any(f.startswith(dim.name) for f in out)
        if not said_with_number and re.search(
            rf"\b(?:bought|buy|buys|purchased|ordered|have|has|own)\s+(?:an?|any|at least one|"
            rf"one or more)\s+(?:\w+\s+)?{said}\b",
            q,
        ):
            out.append(f"{dim.name}>0")
    return out


def _dims_by_name(cat: Any, q: str) -> list[str]:
    """Text dimensions whose own name ``q`` says as a word ("loan", "education")."""
    return [
        d.name
        for d in cat.dimensions.values()
        if d.source in ("customer", "fact")
        and (not d.numeric or d.breakdown)
        and d.name not in NOT_BY_VALUE
        and len(d.name) >= 3
        and re.search(rf"\b{re.escape(d.name.replace('_', ' '))}\b", q)
        # a number column by its name only where it is plainly the column ("by rcode",
        # "(rcode)"): "previous" or "age" are words before they are columns
        and (
            not d.numeric
            or re.search(rf"(?:\b(?:by|per|across|each)\s+|\(\s*){re.escape(d.name)}\b", q)
        )
    ]


def _not_a_figure(q: str) -> bool:
    """A persona, or review quotes (search_reviews) rather than a count of them."""
    return bool(re.search(r"\bpersonas?\b", q)) or bool(
        re.search(r"\breviews? (?:about|on|of|mentioning|saying|that)\b", q)
        and not re.search(r"\bhow many\b|\bnumber of\b|\bcount\b", q)
    )


def missing_measures(ctx: ToolContext, question: str) -> list[str]:
    """Built-in measures the question names that this workspace cannot compute ("revenue by
    month" over a reviews-only export): the router declines them with what data is missing,
    instead of answering with some other figure."""
    from insight_agent.analytics.queries import metrics_engine

    q = normalise(question)
    named = [] if _not_a_figure(q) else _named_measures(q)[0]
    if not named:
        return []
    try:
        cat = metrics_engine(ctx.ws).catalogue
    except Exception:
        return []
    if "customers" in named and cat.resolve("customers") is None:
        named = ["active_customers" if m == "customers" else m for m in named]
    return [m for m in dict.fromkeys(named) if cat.resolve(m) is None]


# Attributes marketers break figures down by, as they say them (singular and plural), and the
# dimension names that hold them. A question that asks by one of these where this workspace has
# none is declined with what it has, rather than answered with the figure unbroken.
ATTRIBUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name in answers: (words people say, dimension names that answer them)
    "region": (("region", "regions", "state", "states", "province", "provinces", "territory",
                "territories"), ("region", "state", "province", "territory")),
    "country": (("country", "countries"), ("country",)),
    "city": (("city", "cities"), ("city", "town")),
    "channel": (("channel", "channels"), ("channel", "sales_channel", "contact")),
    "store": (("store", "stores", "branch", "branches"), ("store", "branch", "shop")),
    "gender": (("gender", "genders", "sex"), ("gender", "sex")),
    "age": (("age", "ages", "age group", "age groups", "age band", "age bands"),
            ("age_band", "age")),
    "category": (("category", "categories", "department", "departments"),
                 ("category", "department", "subcategory")),
    "product": (("product", "products", "sku", "skus", "item", "items", "album", "albums",
                 "title", "titles"),
                ("product", "sku", "item", "title", "subcategory")),
    "genre": (("genre", "genres"), ("genre",)),
    "artist": (("artist", "artists"), ("artist",)),
    "brand": (("brand", "brands"), ("brand",)),
    "device": (("device", "devices"), ("device",)),
    "campaign": (("campaign", "campaigns"), ("campaign",)),
    "route": (("route", "routes", "destination", "destinations"), ("route", "destination")),
}  # fmt: skip


def _asked_by(q: str, word: str) -> bool:
    """Whether ``q`` asks for figures by ``word`` (an attribute), not merely mentions it."""
    w = re.escape(word)
    return bool(
        re.search(
            rf"\b(?:by|per|across|each|every|split by|broken down by|breakdown by)\s+"
            rf"(?:the\s+|their\s+|our\s+|customer\s+)?{w}\b"
            rf"|\b(?:which|what)\s+(?:\d+\s+)?{w}\b(?!\s+(?:should|could|would|can|shall|to)\b)"
            rf"|\b{w}(?:\s+(?:and|&)\s+[a-z]+)?\s+(?:mix|split|breakdown|distribution)\b"
            rf"|\b[a-z]+\s+(?:and|&)\s+{w}\s+(?:mix|split|breakdown|distribution)\b"
            rf"|\b(?:top|bottom|best|worst)\s+(?:\d+\s+)?(?:best[- ]?)?(?:selling\s+)?{w}\b"
            rf"|\bbest[- ]?selling\s+{w}\b",
            q,
        )
    )


def missing_dimensions(ctx: ToolContext, question: str) -> list[str]:
    """Attributes the question asks figures by ("revenue by region", "which genres sell
    best", "the age and gender mix") that no column of this workspace holds; empty when there
    is no catalogue to tell from."""
    from insight_agent.analytics.queries import metrics_engine
    from insight_agent.engine.metrics import ALIASES, norm

    try:
        cat = metrics_engine(ctx.ws).catalogue
    except Exception:
        return []
    q = normalise(question)
    held = set(cat.dimensions) | {ALIASES.get(d, d) for d in cat.dimensions}
    columns = {word for name in [*cat.dimensions, *cat.measures] for word in name.split("_")}
    missing = []
    for name, (words, dims) in ATTRIBUTES.items():
        if any(d in held for d in dims) or any(norm(w) in columns for w in words[:1]):
            continue  # held, or a column by that name feeds a measure ("average_campaign")
        if any(_asked_by(q, w) for w in words):
            missing.append(name)
    return missing


# "average loyalty points", "total monthly charges": the thing a figure is asked of, up to the
# words that qualify it (a breakdown, a period, a filter)
_FIGURE_OF = re.compile(
    r"\b(?:average|mean|median|total|sum of|overall)\s+(?:number of\s+|amount of\s+)?"
    r"(?P<x>[a-z][a-z -]{1,40}?)\s*(?=$|[?.!,;:]|\b(?:of|by|per|for|in|across|among|over|"
    r"from|last|this|past|since|each|between|vs|versus|and|or|do|does|did|is|are|was|were|"
    r"has|have|with|without|at|on|to)\b)"
)
# the time between orders: no table or build column holds it (the segments' profiles hold
# each segment's median purchase cycle); "average days between orders" was the order count
_BETWEEN_ORDERS = re.compile(
    r"\b(?:days?|time|weeks?|months?|gaps?|intervals?|how long)\s+(?:\w+\s+){0,2}between\s+"
    r"(?:\w+\s+)?(?:orders|purchases|visits|trips|baskets|transactions|buys)\b"
    r"|\bpurchase (?:cycle|interval|frequency in days)\b|\binter-?purchase\b"
)
# figures of data that exports of orders, customers, campaigns and reviews do not hold:
# marketing spend, stock, web and app analytics, email engagement, surveys, the market
_NOT_HELD = re.compile(
    r"\broi\b|\broas\b|\breturn on (?:ad |marketing |investment|spend)\w*|\bcac\b|"
    r"\bcost per (?:acquisition|click|lead)|\bcpa\b|\bcpc\b|\bcpm\b|"
    r"\bout[- ]of[- ]stocks?\b|\bstock[- ]?outs?\b|\binventory\b|\bstock levels?\b|"
    r"\b(?:web|site|website) ?(?:traffic|visits|visitors|sessions)\b|\bpage ?views\b|"
    r"\bbounce rate\b|\b(?:app )?(?:downloads|installs)\b|\bcart abandon\w*|"
    r"\babandon\w* (?:carts?|baskets?|checkouts?)\b|"
    r"\bopen rates?\b|\bclick[- ]?through\w*|\bctr\b|\bclick rates?\b|\bunsubscrib\w*|"
    r"\bnps\b|\bnet promoter\b|\bcsat\b|\bsatisfaction scores?\b|"
    r"\bfootfall\b|\bfoot traffic\b|\bcompetitors?\W?s?\b|\bmarket share\b|"
    r"\bexit surveys?\b|\bsurvey (?:results|scores|responses|answers)\b|"
    r"\bexit interviews?\b|\bsupport tickets?\b|\b(?:hold|wait|waiting|queue) times?\b|"
    r"\b(?:instagram|insta|facebook|tiktok|twitter|social media|social)\b.{0,20}"
    r"\b(?:engagement|followers|likes|reach|impressions)\b|\bimpressions\b"
)
# words that qualify a figure rather than name it
_FIGURE_FILLER = frozenset((
    "the", "our", "their", "a", "an", "my", "your", "its", "all", "every", "each", "per", "of",
    "customer", "customers", "people", "person", "client", "clients", "user", "users", "member",
    "members", "account", "accounts", "shopper", "shoppers", "buyer", "buyers", "household",
    "households", "value", "values", "figure", "figures", "number", "numbers", "amount",
    "amounts", "level", "levels", "score", "scores", "total", "average", "mean", "median",
    "current", "overall", "typical", "highest", "lowest", "most", "least", "top", "bottom",
    "best", "worst", "biggest", "largest", "smallest", "longest", "shortest", "day", "days",
    "daily", "week", "weeks", "weekly", "month", "months", "monthly", "quarter", "quarters",
    "quarterly", "year", "years", "yearly", "annual", "annually", "today", "yesterday", "ytd",
    "mtd", "last", "this", "past", "next", "since", "ago", "recent", "recently", "so", "far",
    "time", "period",
))  # fmt: skip
# words any workspace with orders, customers, campaigns or reviews answers a figure of
_FIGURE_WORDS = frozenset((
    "spend", "spends", "spent", "spending", "spender", "spenders", "revenue", "sales", "sale",
    "money", "worth", "paid", "pay", "payment", "payments", "order", "orders", "ordered",
    "ordering", "purchase", "purchases", "purchased", "buy", "bought", "buying", "basket",
    "baskets", "ticket", "tickets", "transaction", "transactions", "trip", "trips", "visit",
    "visits", "price", "prices", "item", "items", "unit", "units", "quantity", "product",
    "products", "category", "categories", "clv", "lifetime", "ltv", "churn", "churned",
    "churning", "risk", "probability", "probabilities", "likelihood", "chance", "likely",
    "propensity", "segment", "segments", "review", "reviews", "rating", "ratings", "star",
    "stars", "sentiment", "response", "responses", "responded", "campaign", "campaigns", "send",
    "sends", "return", "returns", "returned", "refund", "refunds", "discount", "discounts",
    "loyal", "frequency", "recency", "repeat", "new", "returning", "active", "inactive",
    "lapsed", "retention", "conversion", "rfm", "decile", "predicted", "expected", "cancel",
    "cancels", "cancelled", "canceled", "cancelling", "canceling", "cancellation",
    "cancellations", "leave", "leaving", "left", "lost", "stay", "stayed",
))  # fmt: skip


def _figure_vocabulary(cat: Any) -> set[str]:
    """Every word this workspace's figures, columns and dimensions are named by, the built-in
    measures' and their phrases' words, and the generic words of :data:`_FIGURE_WORDS`."""
    from insight_agent.engine.metrics import ALIASES, builtin_measures

    words = set(_FIGURE_WORDS)

    def add(text: str) -> None:
        words.update(re.findall(r"[a-z]+", str(text).lower()))

    for measure in [*builtin_measures(), *cat.measures.values()]:
        add(measure.name.replace("_", " "))
        add(measure.label)
        for pattern in measure.words:
            add(pattern)
    for dim in cat.dimensions.values():
        add(dim.name.replace("_", " "))
        add(dim.label)
    for columns in cat.columns.values():
        for column in columns:
            add(re.sub(r"([a-z])([A-Z])", r"\1 \2", column).replace("_", " "))
    names = {m.name for m in builtin_measures()} | set(cat.measures) | set(cat.dimensions)
    for alias, target in ALIASES.items():  # "age" for age_band only where there is one
        if target in names:
            add(alias.replace("_", " "))
    for pattern, _name in _MEASURE_WORDS:
        add(pattern)
    for said, dims in ATTRIBUTES.values():  # "age" only where a column holds it
        if any(d in cat.dimensions for d in dims):
            for word in said:
                add(word)
    return words


def unknown_figure(ctx: ToolContext, question: str) -> str | None:
    """The thing a figure question asks about ("average loyalty points", "top 5 customers by
    monthly charges") when no measure, column or dimension of this workspace, and no figure
    Insight computes, is named by any of its words: the router declines it with what the data
    has, rather than answering with revenue or CLV. None for anything it can answer
    (predictions such as "most likely to churn" are named by known words). Families of data
    no export holds (ROI, stock-outs, web and app analytics, email opens, NPS, surveys) are
    named so unless a column of the workspace is called that."""
    q = normalise(question)
    if _not_a_figure(q):
        return None
    if _BETWEEN_ORDERS.search(q):
        return "time between orders"  # not kept per customer (yet)
    held = _NOT_HELD.search(q)
    if held and re.search(
        r"\b(?:say|says|said|saying|complain\w*|mention\w*|reviews?|reviewers?|feedback|"
        r"comments?|quotes?|talk\w* about|unhappy|happy)\b",
        q,
    ):
        held = None  # what reviews say about stock or the app: review text, not a figure
    asked = [found["x"] for found in _FIGURE_OF.finditer(q)]
    if _RANKS_PEOPLE.search(q):
        by = _RANKED_BY.search(q)
        if by:
            asked.append(by[1])
    if not asked and not held:
        return None
    try:
        from insight_agent.analytics.queries import metrics_engine

        cat = metrics_engine(ctx.ws).catalogue
    except Exception:
        return None
    if held:
        # a kind of data exports of orders, customers and reviews do not have, unless this
        # workspace has a column of that name ("ctr" in an email export)
        own = {
            w
            for cols in cat.columns.values()
            for col in cols
            for w in re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", col).lower())
        }
        said = set(re.findall(r"[a-z]+", held[0])) - _FIGURE_FILLER
        if not said or not said <= own:  # "support tickets" is not tech_support
            return held[0].strip(" '")
    if not asked:
        return None
    # every word of the vocabulary, measure phrases included: a measure named elsewhere in
    # the question ("the avg age of our churners": churn) does not make the thing known
    known = _figure_vocabulary(cat)

    def is_known(word: str) -> bool:
        stem = word[:-1] if word.endswith("s") else word
        return word in known or stem in known or f"{word}s" in known

    for thing in asked:
        content = [w for w in re.findall(r"[a-z]+", thing) if w not in _FIGURE_FILLER]
        if content and not any(is_known(w) for w in content):
            return " ".join(content)
    return None


# Figures people ask for that orders, customers, campaigns and reviews do not hold.
NOT_IN_ORDERS = {
    "profit": "no cost, margin or profit column in its tables (revenue is all it has of money)",
    "margin": "no cost, margin or profit column in its tables (revenue is all it has of money)",
}


def lacking_data(ctx: ToolContext, measure: str) -> str | None:
    """Why this workspace cannot compute a built-in ``measure``, as a DATA_KINDS key ("orders"
    for revenue with no orders, "churn" for a churn probability with no churn model) or, when
    the table is there but a column is not, as words ("no quantity column in its orders");
    None when it can, or for a name Insight does not know."""
    from insight_agent.analytics.queries import metrics_engine
    from insight_agent.engine.metrics import ALIASES, builtin_measures, norm

    key = ALIASES.get(norm(measure), norm(measure))
    found = next((m for m in builtin_measures() if m.name == key), None)
    if found is None and key not in NOT_IN_ORDERS:
        return None
    try:
        cat = metrics_engine(ctx.ws).catalogue
    except Exception:
        return None
    if cat.resolve(key) is not None:
        return None
    if found is None:
        held = [
            f"{col} ({table})"
            for table, cols in cat.columns.items()
            for col in cols
            if re.search(r"profit|margin|cost|cogs", col, re.I)
        ]
        if held:  # a column is there, but not this figure ("margin" beside a Profit column)
            return (f"no {key} measure (a ratio it does not define); it has "
                    f"{', '.join(held)}: ask for its total or average")  # fmt: skip
        return NOT_IN_ORDERS[key]
    if found.table == "scores":
        return "clv" if "clv_12m" in found.needs else "churn"
    if found.table == "returns":
        has_orders = any(m.table == "orders" for m in cat.measures.values())
        return "no returns in its orders (no negative amounts)" if has_orders else "orders"
    table = found.table
    if any(m.table == found.table for m in cat.measures.values()) and found.needs:
        return f"no {' or '.join(found.needs)} column in its {found.table}"
    return table


_PEOPLE = (
    r"(?:customers?|custs?|clients?|households?|shoppers?|buyers?|members?|accounts?|users?|"
    r"subscribers?|spenders?)"
)
_RANKS_PEOPLE = re.compile(
    rf"\b(?:top|bottom|best|worst|biggest|largest|highest|lowest|smallest|heaviest|"
    rf"most valuable|least valuable)\s+(?:\d{{1,3}}\s+)?(?:[a-z]+\s+)?{_PEOPLE}\b"
    # "top 5 customer subtypes" ranks the values of a column, not customers
    rf"(?!\s+(?:sub)?(?:types?|groups?|segments?|categor\w*|attributes?|bands?|classes))"
    rf"|\b(?:which|what)\s+(?:\d{{1,3}}\s+)?{_PEOPLE}\b.{{0,40}}\b(?:the )?(?:most|least)\b"
    rf"|\bwho\s+(?:has\s+|have\s+)?(?:spent|spends?|bought|buys|ordered|orders|paid|pays)\b"
    rf".{{0,30}}\b(?:the )?(?:most|least)\b"
    rf"|\bwho\s+(?:has|have)\s+the\s+(?:highest|lowest|most|biggest|largest|longest)\b"
    rf"|\b(?:rank|ranking|sort|order)\s+(?:our\s+|the\s+|my\s+|all\s+)?{_PEOPLE}\s+by\b",
)
# what a ranking is by, where it names a column rather than a measure ("top 5 customers by
# monthly charges", "who has the highest tenure")
_RANKED_BY = re.compile(
    r"\b(?:by|highest|lowest|most|biggest|largest|longest)\s+(?:their\s+)?"
    r"([a-z][a-z0-9 _-]{1,40}?)\s*(?:[?.!]|$|(?=\s+(?:past|last|this|in|over|during|for|"
    r"since)\b))"
)
# a ranking by a prediction (top_customers), not by a figure of the data
_PREDICTED = re.compile(
    r"\blikel|\bchurn|\brisk|\bprobab|\bpropens|\brespon|\btarget|\bconvert|\blaps|"
    r"\bleav|\bbuy again|\bretain|\bnext\b|\bwin[- ]?back|\breactivat"
)


_PAID_PER = re.compile(
    r"\b(?:pays?|paying|paid|spends?|spending|spent|charged?|billed)\b.{0,25}?"
    r"\b(?:per|a|each|every) (month|year|week)\b"
)


def paid_per_period(ctx: ToolContext, question: str) -> str | None:
    """The customers-table measure of what a customer pays per period ("who pays us the most
    per month": monthly_charges' average, one row each), when the question says it that way
    and the table has such a column; None otherwise (then "per month" is a time grain)."""
    paid = _PAID_PER.search(normalise(question))
    if paid is None:
        return None
    args = route_args(ctx, f"average {paid[1]}ly payment", [])
    measure = (args or {}).get("measures", [None])[0]
    cat = workspace_catalogue(ctx)
    found = cat.measures.get(measure) if cat is not None and measure else None
    return measure if found is not None and found.table == "customers" else None


def customer_ranking(ctx: ToolContext, question: str, segments: list[str]) -> dict[str, Any] | None:
    """``query_metrics`` arguments ranking customers by a figure of the data ("top 10
    households by spend", "who spent the most last month?", "our biggest spenders"): the
    measure named (revenue when none is: spend is what "biggest spenders" and "best
    customers" rank by; CLV for "most valuable"), by customer, the top 10 unless a number is
    given. None for rankings by a prediction ("top 10 customers likely to churn")."""
    q = normalise(question)
    if not _RANKS_PEOPLE.search(q) or _PREDICTED.search(q):
        return None
    cat = workspace_catalogue(ctx)
    if cat is None or "customer" not in cat.dimensions:
        return None
    asked = re.search(r"\b(?:top|bottom|best|worst|biggest|largest|highest|lowest) (\d{1,3})\b", q)
    top = int(asked[1]) if asked else 10
    paid = paid_per_period(ctx, question)
    if paid is not None:  # "who pays us the most per month": each customer's monthly charges
        return {"measures": [paid], "by": ["customer"], "top": top}
    args = route_args(ctx, question, segments)
    by_column = _RANKED_BY.search(q)
    if (args is None or not args.get("by")) and by_column:
        # a customers-table column: each customer's own value ("average" of one row)
        own = route_args(ctx, f"average {by_column[1]}", segments)
        measure = (own or {}).get("measures", [None])[0]
        if measure in cat.measures and cat.measures[measure].table == "customers":
            args = {**(args or {}), "measures": [measure]}
            args.pop("by", None)
    if args is None or args.get("by", ["customer"]) != ["customer"]:
        # "top 10 custs by CLV": each customer's predicted value, not what they spent
        default = (
            "total_clv"
            if re.search(r"\bvaluable\b|\bclv\b|\bltv\b|\blifetime value\b|\bcustomer value\b", q)
            else "revenue"
        )
        if default not in cat.measures:
            return None
        args = route_args(ctx, f"{default.replace('_', ' ')} {question}", segments)
        if args is None:
            return None
    args = {**args, "by": ["customer"]}
    # "which 3 customers ordered most often": each customer is one active customer; the
    # ranking is by their orders. A customers-table column's value per customer is its
    # total (its average over one row is the same number; "top 5 by spending" is a total)
    args["measures"] = [
        "orders"
        if m == "active_customers"
        else f"total_{m.removeprefix('average_')}"
        if m.startswith("average_") and f"total_{m.removeprefix('average_')}" in cat.measures
        else m
        for m in args["measures"]
    ]
    args.setdefault("top", top)
    args.pop("compare", None)  # "this year vs last" per customer is not a ranking
    return args


def route_args(ctx: ToolContext, question: str, segments: list[str]) -> dict[str, Any] | None:
    """Arguments for ``query_metrics`` when ``question`` asks for a descriptive figure (a
    measure word such as revenue, orders, AOV, response rate), else None."""
    q = normalise(question)
    if _not_a_figure(q):
        return None
    try:
        from insight_agent.analytics.queries import metrics_engine

        engine = metrics_engine(ctx.ws)
        cat = engine.catalogue
    except Exception:
        return None
    q = people_words(cat, q)
    measures, said, rest = _named_measures(q)
    # this workspace's own measures ("y rate", "average balance"): the most specific match
    # first ("avg related purchases" is Related Purchase's average, not F's with a filler
    # word), and none over words another already took
    candidates = []
    for measure in cat.measures.values():
        for pattern in measure.words:
            found = re.search(pattern, rest)
            if found is None and measure.name.startswith("share_"):
                # "share of customers on paperless billing": the words that named the
                # built-in head count name the yes/no column's share
                found = re.search(pattern, q)
            if found:
                filler = found.groupdict().get("filler") or ""
                candidates.append((len(found[0]) - len(filler), measure.name, pattern, found))
                break
    taken: list[tuple[int, int]] = []
    for _, name, _pattern, found in sorted(candidates, key=lambda c: -c[0]):
        span = found.span()
        if found.string is rest and any(a < span[1] and span[0] < b for a, b in taken):
            continue
        measures.append(name)
        said.append(found[0])
        if found.string is rest:
            taken.append(span)
    for _, name, pattern, _found in candidates:
        if name in measures:
            rest = re.sub(pattern, " ", rest)
    # the yes/no groups and number filters the question names (all of it: "buyers" in "buyers
    # vs non-buyers of X" named a measure above)
    flags = flags_said(cat, q)
    numeric_where = _numeric_filters(cat, q)
    unknown = [m for m in measures if cat.resolve(m) is None]
    found_levels: list[dict[str, list[str]]] = []

    def named_levels() -> dict[str, list[str]]:
        """:func:`_levels_named` of the question, found once (it reads every level)."""
        if not found_levels:
            found_levels.append(_levels_named(ctx, cat, rest))
        return found_levels[0]

    if unknown:
        # "avg lifetime spend per customer" over a customers table: "spend per customer" is
        # revenue per customer elsewhere, but here the words name a column of its own
        own = [
            m.name
            for m in cat.measures.values()
            if m.name not in measures and any(re.search(p, q) for p in m.words)
        ]
        kept = [m for m in measures if m not in unknown]
        if own and not kept:
            measures = own[:1]
        elif kept and set(unknown) <= {"active_customers"}:
            # "avg spend, florence buyers vs non buyers": "buyers" names a group here, not
            # a count of buying customers (which a customers-only table cannot give)
            measures = kept
        elif (
            unknown == ["active_customers"]
            and "customers" in cat.measures
            and _outcome_group(cat, q) is not None
        ):  # "how many caravan buyers per main type": customers, of the outcome's group
            measures = ["customers"]
        elif (
            unknown == ["active_customers"]
            and "customers" in cat.measures
            and (numeric_where or flags)
        ):  # "how many custs bought a cookbook?": customers with a count column above 0
            measures = ["customers"]
    if (
        not measures
        and (flags or numeric_where)
        and "customers" in cat.measures
        and re.search(r"\bhow many\b|\bnumber of\b|\bcount of\b", q)
    ):  # "how many seniors do we have?", "how many have over 5 bonus trans": customers
        measures = ["customers"]
    if (
        not measures
        and "customers" in cat.measures
        and re.search(r"\bhow many\b", q)
        and any(
            cat.dimensions[d].source == "customer"
            for d, found in named_levels().items()
            if len(found) == 1 and d in cat.dimensions
        )
    ):  # "how many farmers are in the base?": customers with that value of a column
        measures = ["customers"]
    have = re.search(
        r"(?:%|\bpercent\w*|\bshare|\bproportion|\bfraction) of (?:our |the |all )?customers "
        r"(?:who |that )?(?:have|has|own|owns|hold|holds|bought|took|got)\b",
        q,
    )
    if not measures and have and "customers" in cat.measures:
        # "what share of customers have a housing loan?": the head count by that column (each
        # row's share); "what % of our customers have the caravan policy?", where nothing
        # else is named, the customers table's one outcome
        rates = [m.name for m in _outcome_rates(cat)]
        named = flags or numeric_where or _dims_by_name(cat, rest) or named_levels()
        measures = rates if len(rates) == 1 and not named else ["customers"]
    shares = [m for m in measures if m.startswith("share_") and m in cat.measures]
    if (
        shares
        and "customers" in measures
        and any(re.search(r"%|share|percent|proportion|fraction", w) for w in said)
    ):  # "share of customers on paperless billing": the flag's share, not a head count
        measures = [m for m in measures if m != "customers"]
    if not measures and _GROWTH.search(q) and "revenue" in cat.measures:
        measures = ["revenue"]  # "which category is growing fastest?": in sales
    if (
        not measures
        and "response_rate" in cat.measures
        and re.search(r"\bcampaigns?\b|\bsale\b|\bpromo", q)
        and re.search(r"\bbetter\b|\bworse\b|\bperform|\bworked\b|\bsuccess|\bcompar|\bvs\b", q)
    ):  # "did the spring sale do better than black friday?": campaigns compare by response
        measures = ["response_rate"]
    if not measures:
        return None
    if "customers" in measures and "customers" not in cat.measures:
        measures = ["active_customers" if m == "customers" else m for m in measures]
    # through the workspace's aliases: "response rate" is the label's rate where the label
    # is the only outcome
    resolved = [cat.resolve(m) for m in measures]
    if None in resolved:  # a figure these tables cannot give: declined (no_data), never dropped
        return None
    measures = list(dict.fromkeys(m for m in resolved if m is not None))
    args: dict[str, Any] = {"measures": measures[:3]}
    by: list[str] = []
    for pattern, grain in _TIME_WORDS:
        if re.search(pattern, without_columns(cat, q)):
            by.append(grain)
            break
    from insight_agent.engine.metrics import ALIASES, norm

    phrases = [
        m[1]
        for m in re.finditer(
            r"\b(?:by|per|for each|each|across|between|among|split by|broken down by|"
            r"(?:vary|varies|varied|change|changes|differ|differs) (?:with|by|across)|"
            r"depends? on) "
            r"([a-z][a-z0-9_ ]{1,24}?)(?=[?.,!]|$| and | over | in | last | this | for )",
            rest,  # with the measure words taken out: "revenue per customer by segment"
        )
    ]
    # "which campaign had the best …", "top 3 categories by …": the rows are campaigns
    phrases += re.findall(r"\b(?:which|what) ([a-z]+(?: [a-z]+)?) (?:has|had|have|is|was|are|"
                          r"were|gets?|got|brings?|brought|drives?|shows?|with|respond(?:s|ed)?|"
                          r"convert(?:s|ed)?|spends?|spent|buys?|bought|orders?|ordered|"
                          r"performs?|performed|does|did|do|says?|said|gives?|gave|churns?|"
                          r"churned|cancels?|cancell?ed|leaves?|left|loses?|lost|grew|grows?|"
                          r"growing|declined?|declining|rose|rises?|fell|falls?|increased?|"
                          r"dropped|shrank|sold|sells?|moved?|changed?)\b",
                          q)  # fmt: skip
    phrases += re.findall(r"\b(?:top|bottom|best|worst) \d{0,3} ?([a-z]+(?: [a-z]+){0,2})\b", q)
    # "by tech support and contract": the second breakdown too
    phrases += re.findall(
        r"\b(?:by|per|split by|broken down by) [a-z ]{1,24}? and ([a-z][a-z ]{1,24}?)"
        r"(?=[?.,!]|$| over | in | last | this | for )",
        rest,
    )
    phrases += re.findall(r"\b(?:which|what) \d{1,3} ([a-z]+)\b", q)  # "which 3 campaigns"
    for phrase in phrases:
        # as a word: "age" is in "average balance" only as letters
        if any(re.search(rf"\b{re.escape(phrase.split()[0])}\b", w) for w in said):
            continue  # "the worst ratings" named the measure, not a breakdown
        words = phrase.split()
        for n in (3, 2, 1):  # the longest run of words that names a dimension
            key = norm(" ".join(words[:n]))
            if key not in cat.dimensions or not cat.dimensions[key].breakdown:
                key = ALIASES.get(
                    key, key.rstrip("s") if key.rstrip("s") in cat.dimensions else key
                )
            if key not in cat.dimensions:  # "main type" for customer_main_type, if only one
                ends = [d for d, dim in cat.dimensions.items()
                        if dim.breakdown and d.endswith(f"_{key.rstrip('s')}")]  # fmt: skip
                key = ends[0] if len(ends) == 1 and len(key) >= 4 else key
            if key not in cat.dimensions and (n > 1 or re.search(r"\d", key)):
                # "flight miles" for flight_miles_12mo, "cc1" for cc1_miles
                starts = [d for d, dim in cat.dimensions.items()
                          if dim.breakdown and d.startswith(f"{key}_")]  # fmt: skip
                key = starts[0] if len(starts) == 1 else key
            if key in cat.dimensions and cat.dimensions[key].breakdown and key not in by:
                by.append(key)
                break
        else:  # "internet type", "payment": the first word of one dimension's name
            first = [
                d
                for d in cat.dimensions
                if words and len(words[0]) >= 5 and d.split("_")[0] == words[0] and "_" in d
            ]
            if len(first) == 1 and first[0] not in by:
                by.append(first[0])
    levels = named_levels()
    rates = _outcome_rates(cat)
    outcome = rates[0].name.removesuffix("_rate") if rates else None
    if (
        not by
        and outcome in cat.dimensions
        and re.search(
            r"\b(?:yes|no)\s+(?:vs\.?|versus|or|and|compared (?:to|with))\s+(?:yes|no)\b|"
            r"\b(?:subscribed|said yes|converted|responded|signed up)\b.{0,40}\b(?:didn'?t|did not|"
            r"not|said no|never)\b|"
            r"\b(?:churned|churners|cancell?ed|exited|left)\b.{0,40}\b(?:vs\.?|versus|stayed|"
            r"retained|non[- ]?churn\w*|didn'?t|did not|not)\b",
            q,
        )
    ):  # "avg call duration for people who said yes vs no": the outcome splits the figure
        by.append(outcome)  # type: ignore[arg-type]
        if len(args["measures"]) > 1:
            args["measures"] = [m for m in args["measures"] if m != f"{outcome}_rate"]
    for dim, group in flags.items():  # "seniors vs non seniors", "churn for seniors"
        if any(m in args["measures"] for m in (f"share_{dim}", f"{dim}_rate")) or dim in by:
            continue  # the share of that group is the figure asked for
        if group == "both" or (not by and _COMPARES.search(q)):
            # "do ppl with a partner churn less": against the others, so both groups' rows
            by.append(dim)
        else:
            levels[dim] = [group]
    sex = next((d for d in ("gender", "sex", "female", "male", "is_female", "is_male")
                if d in cat.dimensions), None)  # fmt: skip
    sex = sex or next((d for d, dim in cat.dimensions.items()
                       if dim.flag and re.search(r"(?:^|_)(?:fe)?male$", d)), None)  # fmt: skip
    men = re.search(r"\b(?:men|males?|man|guys|gents|gentlemen)\b", q)
    women = re.search(r"\b(?:women|females?|woman|ladies|gals)\b", q)
    if (
        not by
        and sex is not None
        and cat.dimensions[sex].flag
        and sex not in levels
        and bool(men) != bool(women)
        and not re.search(r"\b(?:vs\.?|versus|compared|than|or)\b", q)
    ):  # "purchase rate for women" with a Gender=male flag: its 0 group
        levels[sex] = [sex_group(sex, men=bool(men))]
    if (
        not by
        and sex is not None
        and sex not in levels
        and re.search(r"\b(?:men|women|males?|females?|man|woman|guys|ladies)\b", q)
    ):  # "response men vs women", "avg spend for women": the gender breakdown (a 0/1
        # gender column, or a 'female' flag, does not say which is which; the rows give both)
        by.append(sex)
    lacking = _without(ctx, cat, rest)
    if lacking is not None and lacking.split("=", 1)[0] not in by:
        # "churn for people without online security": the No group of that yes/no column
        levels[lacking.split("=", 1)[0]] = [lacking.split("=", 1)[1]]
    elif not by:
        # "do married people say yes more than single people?", "cellular vs telephone":
        # two values of one attribute compare its values; "with and without a personal
        # loan", "share with a housing loan": the attribute named is the breakdown
        compared = next((d for d, found in levels.items() if len(found) >= 2), None)
        named = next(
            (
                d
                for d in _dims_by_name(cat, rest)
                if len(levels.get(d, [])) != 1
                and not {f"share_{d}", f"{d}_rate"} & set(args["measures"])
            ),
            None,
        )  # not the column whose rate is asked for ("does mcode change the florence rate?")
        if compared or named:
            by.append(compared or named)  # type: ignore[arg-type]
    share_of_total = re.search(
        r"(?:%|\bshare|\bpercent\w*|\bproportion|\bfraction|\bhow much) of (?:our |the |all |"
        r"total )?(?:sales|revenue|orders|units|customers|spend)\b|\b(?:sales|revenue) share\b",
        q,
    )
    named_once = [d for d, found in levels.items() if len(found) == 1 and d not in by]
    if share_of_total and not by and len(named_once) == 1:
        # "what % of our sales is private label": that value's share of the total, read
        # from the breakdown by its column (the answer gives each row's share)
        by.append(named_once[0])
    # "share on paperless billing": not broken down by the column whose share it is
    by = [b for b in by if not {f"share_{b}", f"{b}_rate"} & set(args["measures"])]
    if not _RANKS_PEOPLE.search(q):  # "orders per customer" is an average, not a list of them
        by = [b for b in by if b != "customer"]
    seller = re.search(_BEST_SELLER, q)
    if seller and not by and "revenue" in args["measures"]:
        # "whats the best seller in produce": the products (else categories) ranked, within
        # any category named; one for "the best seller", five for "best sellers"
        within = {d for d, found in levels.items() if len(found) == 1}
        finest = next(
            (d for d in ("product", "subcategory", "category")
             if d in cat.dimensions and cat.dimensions[d].breakdown and d not in within),
            None,
        )  # fmt: skip
        if finest is not None:
            by.append(finest)
            plural = re.search(r"sellers\b|selling|\b(?:products|items|categories)\b", q)
            args.setdefault("top", 5 if plural else 1)
    if by:
        args["by"] = by[:2]
    ranged = day_period(q, cat.data_up_to, dayfirst=getattr(engine, "dayfirst", False))
    found = None if ranged else _PERIOD.search(q)
    same = _SAME_LAST_YEAR.search(q)
    if found and same and same.start() <= found.start() < same.end():
        # "vs the same month last year": the comparison, not the period asked about
        found = _PERIOD.search(q[: same.start()]) or _PERIOD.search(q, same.end())
    paired = _two_periods(cat, q, found)
    if paired:  # "june 98 vs june 97": the later one, compared with the earlier
        args["period"], args["compare"] = paired
    elif found:
        args["period"] = found[1]
    elif ranged:  # "between mar 1 and may 31 2017", "since oct 1 2017"
        args["period"] = ranged
    elif _GROWTH.search(q):  # "which category is growing fastest?": recent months vs before
        args["period"] = GROWTH_PERIOD
        args["compare"] = "previous"
    year_long = found is not None and re.search(r"\byear\b|^(?:19|20)\d\d$", found[1])
    timed_by = any(b in ("day", "week", "month", "quarter", "year") for b in by)
    if paired:
        pass  # the two periods said which comparison
    elif (found or timed_by) and (
        _YEAR_CMP.search(q)
        or (year_long and re.search(r"\bcompar|\bvs\.?\b|\bversus\b|\bthan\b", q))
    ):  # "this year compared to last": the same period a year earlier
        args["compare"] = "year"
    elif _PREV_CMP.search(q) and found:
        args["compare"] = "previous"
    for dim, found in levels.items():
        # "top 5 categories in grocery": the rows are what is inside that category (its
        # subcategories or products), the category a filter
        inside = (
            len(found) == 1
            and dim in by
            and any(
                re.search(r"\b(?:in|within|inside|from|of)\s+(?:the\s+|our\s+)?$", q[:start])
                for start, _end in mentions(q, found[0])
            )
        )
        finer = next(
            (d for d in _FINER.get(dim, ()) if d in cat.dimensions and cat.dimensions[d].breakdown),
            None,
        )
        if inside and finer is not None and finer not in by:
            by[by.index(dim)] = finer
            args["by"] = by[:2]
    where = []
    named_by_measure = segments and any(segments[0].lower() in w for w in said)
    if segments and "segment" not in by and not named_by_measure:
        where.append(f"segment={segments[0]}")
    for dim, found in levels.items():  # one value named: a filter ("share negative for jackets")
        if len(found) == 1 and dim not in by:
            where.append(f"{dim}={found[0]}")
    where += [w for w in numeric_where if w not in where]
    lost = _lost_customers(cat, q, args["measures"], by)
    if lost is not None:  # "avg monthly charges for churners": the label's yes-group
        rate, condition = lost
        args["measures"] = [m for m in args["measures"] if m != rate]
        where.append(condition)
    else:  # "how many custs have we lost?", "number of churners": a count of churned ones
        rate = cat.churn_label_rate()
        counted = args["measures"] == ["customers"] or (
            rate is not None
            and args["measures"] == [rate.name]
            and re.search(r"\bhow many\b|\bnumber of\b|\bcount of\b", q)
        )
        churned = _lost_count(cat, q, by) if counted and "customers" in cat.measures else None
        if churned is not None and churned not in where:
            args["measures"] = ["customers"]
            where.append(churned)
    group = _outcome_group(cat, q) if lost is None else None
    if group is not None:  # "… among caravan owners", "buyers vs the rest" (no orders)
        label, positive, which = group
        rate = f"{label}_rate"
        if which == "both" and label not in by and len(by) < 2:
            by.append(label)
            args["by"] = by
            args["measures"] = [m for m in args["measures"] if m != rate] or args["measures"]
        elif (
            which == "positive"
            and rate not in args["measures"]
            and label not in by
            and not any(w.split("=", 1)[0].rstrip("!<>") == label for w in where)
        ):
            where.append(f"{label}={positive}")
    if where:
        args["where"] = where
    if by and not re.search(r"\d", q) and re.search(r"\b(?:worst|lowest|least|fewest|bottom)\b", q):
        args["ascending"] = True  # "which department gets the worst ratings?": lowest first
    top = re.search(r"\b(?:top|best|highest|largest|biggest) (\d{1,3})\b", q) or re.search(
        r"\b(\d{1,3}) (?:top|best|highest|largest|biggest|strongest)\b", q
    )  # "the 3 best months"
    low = re.search(r"\b(?:bottom|worst|lowest|smallest) (\d{1,3})\b", q) or re.search(
        r"\b(\d{1,3}) (?:bottom|worst|lowest|smallest|weakest)\b", q
    )
    which_n = re.search(r"\b(?:which|what) (\d{1,3}) [a-z]+", q)
    if which_n and not (top or low):  # "which 3 campaigns had the worst response rate"
        worst = re.search(r"\b(?:worst|lowest|least|fewest|bottom|smallest)\b", q)
        low, top = (which_n, None) if worst else (None, which_n)
    if top or low:
        args["top"] = int((top or low)[1])  # type: ignore[index]
        if low:
            args["ascending"] = True
    return args


def day_period(q: str, cutoff: dt.date | None, *, dayfirst: bool = False) -> str | None:
    """A period ``q`` gives by days, as :func:`~insight_agent.engine.periods.parse_period`
    reads it: "between mar 1 and may 31 2017" -> "2017-03-01 to 2017-05-31", "since oct 1
    2017", "until 3/31/2017", "on dec 24"; None when it names no day that way. A day said
    without its year takes the range's other year, else the latest such day up to the
    cutoff."""
    from insight_agent.engine.periods import MONTHS

    days = list(_DAY.finditer(q))
    if not days or cutoff is None:
        return None

    def as_date(m: re.Match[str], year: int | None) -> dt.date | None:
        try:
            if m[1]:
                return dt.date.fromisoformat("-".join(f"{int(p):02d}" for p in m[1].split("-")))
            if m[2]:
                a, b, y = (int(p) for p in m[2].split("/"))
                day, month = (a, b) if dayfirst or a > 12 else (b, a)
                return dt.date(y, month, day)
            month_word, day_text, year_text = (m[3], m[4], m[5]) if m[3] else (m[7], m[6], m[8])
            word = month_word.lower()
            month = MONTHS.get(word) or MONTHS[word[:3]]  # "sept"
            day = int(day_text)
            if year_text:
                return dt.date(int(year_text), month, day)
            if year is None:  # the latest such day up to the cutoff
                year = (
                    cutoff.year if (month, day) <= (cutoff.month, cutoff.day) else cutoff.year - 1
                )
            return dt.date(year, month, day)
        except ValueError:
            return None

    if len(days) >= 2 and re.fullmatch(
        r"\s*(?:to|and|through|thru|until|till|-|–|—)\s*", q[days[0].end() : days[1].start()]
    ):
        end = as_date(days[1], None)
        start = as_date(days[0], end.year if end else None)
        if start is None or end is None:
            return None
        if start > end and not (days[0][1] or days[0][2] or days[0][5] or days[0][8]):
            start = start.replace(year=start.year - 1)  # "dec 15 to jan 15 2018"
        return f"{start.isoformat()} to {end.isoformat()}"
    first = days[0]
    day = as_date(first, None)
    if day is None:
        return None
    before = q[: first.start()]
    if re.search(r"\b(?:since|from|starting(?: from| on)?)\s+(?:the\s+)?$", before):
        return f"since {day.isoformat()}"
    if re.search(r"\bafter\s+(?:the\s+)?$", before):
        return f"since {(day + dt.timedelta(days=1)).isoformat()}"
    if re.search(r"\b(?:until|till|up to|through|thru|before)\s+(?:the\s+)?$", before):
        return f"until {day.isoformat()}" if "before" not in before[-8:] else (
            f"until {(day - dt.timedelta(days=1)).isoformat()}")  # fmt: skip
    if re.search(r"\bon\s+(?:the\s+)?$", before):
        return day.isoformat()
    return None


def _two_periods(cat: Any, q: str, first: Any) -> tuple[str, str] | None:
    """(period, "year" | "previous") when ``q`` names two calendar periods one year or one
    unit apart ("june 98 vs june 97", "Q2 vs Q1 1998"): the later period, compared with the
    earlier; None otherwise."""
    from insight_agent.engine.periods import comparison, parse_period

    second = _PERIOD.search(q, first.end()) if first else None
    if second is None or cat.data_up_to is None:
        return None
    said_first = first[1]
    year = re.search(r"(?:19|20)\d\d", second[1])
    if year and not re.search(r"(?:19|20)\d\d", said_first):
        # "first half vs second half of 2017", "q1 vs q2 2017": the year said once is both's
        said_first = f"{said_first} {year[0]}"
    try:
        a = parse_period(said_first, cat.data_up_to)
        b = parse_period(second[1], cat.data_up_to)
    except Exception:
        return None
    if a.unit is None or a.unit != b.unit or a.start is None or b.start is None:
        return None
    later, earlier, text = (a, b, said_first) if a.start > b.start else (b, a, second[1])
    for how in ("year", "previous"):
        shifted = comparison(later, how)
        if (shifted.start, shifted.end) == (earlier.start, earlier.end):
            return text, how
    return None


SPEC = register(
    ToolSpec(
        "query_metrics",
        "Descriptive business figures computed from the data: revenue, orders, units, average "
        "order value, active / new / returning customers, repeat rate, returns, campaign sends, "
        "responses and response rate, reviews, average rating, share negative, churn "
        "probability and CLV averages — broken down by month/week/quarter/year, category, "
        "product, channel, region, segment, campaign or any customer attribute, over a period, "
        "optionally compared with the previous period or a year earlier. Use for 'revenue last "
        "month', 'sales by channel', 'orders per month', 'response rate by campaign', 'how many "
        "new customers', trends and period-over-period changes.",
        QueryMetricsArgs,
        _run,
        (
            "revenue",
            "sales",
            "orders",
            "order value",
            "aov",
            "trend",
            "over time",
            "per month",
            "by month",
            "monthly",
            "by channel",
            "response rate",
            "repeat rate",
            "new customers",
            "returning",
            "last month",
            "last year",
            "year over year",
            "growth",
            "average rating",
            "how many orders",
        ),
        headline=headline,
        brief=("period", "compared_with", "rows", "notes"),
        summary="Figures from the data (revenue, orders, AOV, customers, new customers, "
        "repeat/response rate, reviews, rating) by month/category/channel/segment/campaign "
        "over a period. Use for 'revenue last month', 'sales by channel', trends.",
        args_for=_args_for,
        answer=answer,
        filter_args=("period", "compare", "top"),
        by_cue_only=True,
    )
)
