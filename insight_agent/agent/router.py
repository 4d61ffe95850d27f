"""No-LLM answers (``--llm none``): a deterministic router picks a tool and its arguments, and a
template words the answer from the tool's facts.

Routing = keyword hints from each tool's spec + cosine similarity between the question and the
tool's description (local MiniLM embeddings, when available) + a few decisive cues (a customer
id, two segments, an export request). Arguments come from the question: segment names or ids,
the prediction target, "top N", review sentiment words. Same question, same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from insight_agent.names import mentioned, mentions
from insight_agent.tools.registry import (
    ToolContext,
    ToolResult,
    ToolSpec,
    all_tools,
    available_tools,
    call_tool,
    get_tool,
    missing_data,
    why_missing,
    workspace_has,
)

GENERIC = {"customers", "customer", "shoppers", "shopper", "segment", "spend", "value", "the"}
NEGATIVE_CUES = ("complain", "complaint", "problem", "issue", "unhappy", "negative", "bad", "pain",
                 "dislike", "don't like", "do not like", "hate", "annoy", "disappoint",
                 "frustrat", "moan", "gripe", "whin", "grumbl")  # fmt: skip
POSITIVE_CUES = ("love", "praise", "happy", "positive", "like about", "compliment")
REVIEW_CUES = ("review", "say", "said", "complain", "feedback", "quote", "mention", "voice",
               "moan", "gripe", "whin", "grumbl", "comment",
               "dislike", "like about", "love about", "hate about", "think of", "think about",
               "opinion")  # fmt: skip
THEME_CUES = ("theme", "topic", "pain point", "main issue", "most common", "complain about most")
# "what are the main complaints?", "is fit a bigger problem than fabric?", "what do shoppers
# dislike about dresses?": what reviews are about, with its shares (themes), not 3 quotes
_REVIEW_TOOLS = ("review_themes", "search_reviews", "count_reviews")
_THEME_Q = re.compile(
    r"\b(?:main|biggest|top|common|frequent|recurring|key|major)\s+(?:complaints?|problems?|"
    r"issues?|gripes?|praise|compliments?)\b"
    r"|\b(?:bigger|larger|worse|smaller|more common|more frequent)\s+(?:problem|issue|complaint|"
    r"pain point|concern)s?\b"
    r"|\bwhat (?:do|does|did) (?:\w+ ){0,2}(?:like|love|dislike|hate|enjoy|praise|complain)\w*"
    r" (?:about|in|with)\b(?P<tail>.*)",
    re.I,
)


def _asks_themes(ctx: ToolContext, q: str, segments: list[str]) -> bool:
    """Whether ``q`` asks what reviews are about (themes with shares): a theme word, "main
    complaints", "a bigger problem than", or "what do they complain about?" with nothing
    after "about" but a category or segment. With a topic after it ("… about late
    delivery?") it asks for those reviews (a search)."""
    if any(c in q for c in THEME_CUES):
        return True
    m = _THEME_Q.search(q)
    if m is None:
        return False
    tail = re.sub(r"[^a-z0-9 ]+", " ", (m["tail"] or "").lower())
    tail = re.sub(r"\b(?:the|our|their|them|it|its|this|that|these|those|most|mostly|"
                  r"customers?|shoppers?|people|segment|group)\b", " ", tail).strip()  # fmt: skip
    if not tail:
        return True
    category = _review_category_named(ctx, tail)
    rest = tail
    for name in [category, *segments]:
        for start, end in reversed(mentions(rest, name) if name else []):
            rest = rest[:start] + " " + rest[end:]
    for name in segments:  # "lapsing customers" named by a distinctive word
        for word in re.findall(r"[a-z]+", name.lower()):
            rest = re.sub(rf"\b{re.escape(word[:4])}\w*", " ", rest) if len(word) > 3 else rest
    return not rest.strip()


@dataclass
class Route:
    """The router's decision: which tool, with which arguments, and why."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def _segments_in(ctx: ToolContext, question: str) -> list[str]:
    """Segment names mentioned in the question (by id, full name, or a distinctive word)."""
    from insight_agent.analytics.queries import segment_names

    try:
        names = segment_names(ctx.ws)
    except Exception:
        return []
    q = question.lower()
    found: list[tuple[int, str]] = []
    for sid, name in names.items():
        pos = -1
        if re.search(rf"\b{sid.lower()}\b", q):
            pos = re.search(rf"\b{sid.lower()}\b", q).start()  # type: ignore[union-attr]
        elif name.lower() in q:
            pos = q.index(name.lower())
        else:
            words = [w for w in re.findall(r"[a-z]+", name.lower()) if w not in GENERIC]
            # a word by its stem: "lapsing" in "lapsers", "bargain" in "bargainers"
            stems = [w[:4] if len(w) >= 6 else w for w in words if len(w) > 3]
            found_at = [re.search(rf"\b{re.escape(st)}", q) for st in stems]
            hits = [m.start() for m in found_at if m]
            # every distinctive word must appear ("occasional ... higher"), or the only one
            if hits and len(hits) == len([w for w in words if len(w) > 3]):
                pos = min(hits)
            elif words and all(len(w) <= 3 for w in words):
                # a short name word needs its noun: "the new ones", "new buyers"
                short = re.search(rf"\b{re.escape(' '.join(words))}\s+(?:ones|customers|buyers|"
                                  r"shoppers|people|clients|folks|guys)\b", q)  # fmt: skip
                if short:
                    pos = short.start()
        if pos >= 0:
            found.append((pos, name))

    def distinctive(name: str) -> set[str]:
        return {w for w in re.findall(r"[a-z]+", name.lower()) if w not in GENERIC}

    # "the occasional big basket shoppers" says Occasional big-basket shoppers, not also
    # Occasional shoppers: a name whose words all belong to another name found is dropped,
    # unless it is said whole
    kept = [
        (pos, name)
        for pos, name in found
        if name.lower() in q
        or not any(other != name and distinctive(name) < distinctive(other) for _, other in found)
    ]
    return [name for _, name in sorted(kept)]


def _target(ctx: ToolContext, question: str) -> str:
    from insight_agent.engine.metrics import CHURN_LABEL

    q = question.lower()
    labels = _labels(ctx)
    for label in labels:  # a label of the customers table named in the question
        if re.search(rf"\b{re.escape(label.lower())}\b", q):
            return label
    if (
        labels
        and not _base_models(ctx)
        and not re.search(
            r"churn|laps|leav|losing|\blose\b|buy again|purchas|order again|come back", q
        )
        and not (
            re.search(r"respon|campaign|email|offer", q)
            and all(CHURN_LABEL.search(label.lower()) for label in labels)
        )
    ):  # a workspace with only its own labels (churn asked there: declined, no_data)
        return labels[0]
    if labels and not _base_models(ctx) and re.search(r"churn|\bleav|cancel|attrition", q):
        lost = [label for label in labels if CHURN_LABEL.search(label.lower())]
        if lost:  # "who will cancel?" where the churn column is the label
            return lost[0]
    if re.search(r"respon|campaign|email|offer", q):
        return "response"
    if not re.search(r"churn|lapse", q):
        # a category model named ("likeliest gas buyers" for FUEL, "the fuel model")
        named = mentioned(question, _categories(ctx))
        if named:
            return named[0]
    if re.search(r"\bbuy|purchas|order again|come back|shop again", q) and not re.search(
        r"churn|lapse", q
    ):
        return "purchase"
    return "churn"


def _churn_is_a_label(ctx: ToolContext) -> bool:
    """True where "churn" is the customers table's own label: a build with a label model
    of that meaning and no order-based churn model (a telco's churn column)."""
    has = workspace_has(ctx)
    if has is None or "churn" in has:
        return False
    try:
        from insight_agent.analytics.queries import metrics_engine

        return metrics_engine(ctx.ws).catalogue.churn_label_rate() is not None
    except Exception:
        return False


def _labels(ctx: ToolContext) -> list[str]:
    """Label models of the current build (the customers table's own yes/no columns)."""
    from insight_agent.analytics.artifacts import current_build

    try:
        models = current_build(ctx.ws) / "models"
    except Exception:
        return []
    return sorted(p.stem.split("__", 1)[1] for p in models.glob("label__*.json"))


def _base_models(ctx: ToolContext) -> bool:
    from insight_agent.analytics.artifacts import current_build

    try:
        return (current_build(ctx.ws) / "models" / "churn.json").is_file()
    except Exception:
        return False


def _categories(ctx: ToolContext) -> list[str]:
    from insight_agent.analytics.artifacts import current_build

    try:
        models = current_build(ctx.ws) / "models"
    except Exception:
        return []
    return sorted(p.stem.split("__", 1)[1] for p in models.glob("category__*.json"))


def _order_categories(ctx: ToolContext) -> list[str]:
    """The orders' category values (empty when the workspace has none)."""
    try:
        from insight_agent.analytics.queries import metrics_engine

        engine = metrics_engine(ctx.ws)
        dim = engine.catalogue.dimensions.get("category")
        return engine.levels(dim) if dim is not None and "orders" in dim.tables else []
    except Exception:
        return []


# "household 1364", "customer C999999", "customer id 42": a token named as one customer (not
# "number 1" or "#1", which are ranks as often as ids)
_NAMED_ONE = re.compile(
    r"\b(?:customer|cust|client|household|member|shopper|subscriber|account)(?:\s+id)?\s*$"
    r"|\bid\s*$",
    re.I,
)


_NAMED_BEFORE = re.compile(
    r"\b(?:customers?|custs?|clients?|households?|hh|members?|shoppers?|users?|buyers?|"
    r"subscribers?|id|ids|accounts?|no\.?|number|#)\s*#?\s*$",
    re.I,
)
# "is 1019 likely to churn?", "does 1019 usually buy…": a number that is the subject of the
# question is someone (a count or a year is not followed by these)
_SUBJECT_BEFORE = re.compile(r"\b(?:is|does|did|will|has|was|would)\s+$", re.I)
_SUBJECT_AFTER = re.compile(
    r"\s+(?:likely|about|going|still|at|a|an|worth|usually|buy|buying|bought|churn|churning|"
    r"active|loyal|valuable|in|on|expected|predicted|gone|lapsed|lapsing)\b",
    re.I,
)


def _digits_name_one(question: str, m: re.Match[str]) -> bool:
    """Whether the all-digit token ``m`` names one customer: after "customer" / "household" /
    "id" / "#"; with leading zeros ("00004": a count or a year never has them); or as the
    subject of the question ("is 1019 likely to churn?")."""
    before, after = question[: m.start()], question[m.end() :]
    if _NAMED_BEFORE.search(before):
        return True
    if len(m[0]) > 1 and m[0].startswith("0"):
        return True
    return bool(_SUBJECT_BEFORE.search(before) and _SUBJECT_AFTER.match(after))


def _customer_id(ctx: ToolContext, question: str) -> str | None:
    """The id of one customer the question names: one the current build holds, or one it
    named as a customer ("household 1364") that the build does not hold (the profile tool
    then says it is not there, rather than another tool answering about everyone)."""
    from insight_agent.analytics.artifacts import current_build, lookup_customer

    try:
        folder = current_build(ctx.ws)
    except Exception:
        return None
    unknown = None
    for m in re.finditer(r"[A-Za-z0-9_\-]+", question):
        token = m[0]
        if not any(ch.isdigit() for ch in token):
            continue
        if len(token) < 3 and not token.isdigit():
            continue
        if token.isdigit() and not _digits_name_one(question, m):
            continue  # "top 200": a count, though customer 200 exists
        if lookup_customer(folder, token) is not None:
            return token
        if unknown is None and _NAMED_ONE.search(question[: m.start()]):
            unknown = token
    return unknown


# Where the open workspace keeps its optimized copy of the embedding model (set by
# :func:`use_model_cache`): the router then shares the review search's embedder, so a chat
# loads and prepares the model once, not twice.
_MODEL_CACHE: list[Path] = []


def use_model_cache(cache_dir: Path) -> None:
    """Embed questions with the embedder the workspace's review search uses (``cache_dir``:
    its ``.insight/embedder`` folder)."""
    _MODEL_CACHE[:] = [Path(cache_dir)]


def _embedder() -> Any:
    from insight_agent.vectorstore.embedder import shared_embedder

    return shared_embedder(cache_dir=_MODEL_CACHE[0] if _MODEL_CACHE else None)


@lru_cache(maxsize=1)
def _tool_vectors() -> tuple[tuple[str, ...], Any] | None:
    """Embeddings of each tool's description and hints (None when the embedder is missing)."""
    try:
        embedder = _embedder()
        specs = all_tools()
        texts = [f"{s.description} {' '.join(s.keywords)}" for s in specs]
        return tuple(s.name for s in specs), embedder.embed(texts)
    except Exception:
        return None


def _similarities(question: str) -> dict[str, float]:
    found = _tool_vectors()
    if found is None:
        return {}
    names, vectors = found
    q = _embedder().embed([question])[0]
    return {name: float(v @ q) for name, v in zip(names, vectors, strict=True)}


def needs_a_segment() -> frozenset[str]:
    """Tools whose required argument is a segment: never right when no segment was named."""
    return frozenset(s.name for s in all_tools() if s.needs_segment)


def shortlist(
    ctx: ToolContext,
    question: str,
    context: str = "",
    *,
    state: DialogueState | None = None,
    decision: Route | None = None,
) -> list[str] | None:
    """The tools the embedded model may call on the user turn: the one a decisive cue points
    to (a customer id, two segments, "what drives", a profile question...); else, when
    neither the question nor ``context`` (the conversation so far) names a segment, every
    tool but those that need one (asked "which segment brings in the most revenue?", the 1.5B
    model called segment_profile with a segment it made up); else None (any tool). It still
    writes the arguments and the answer. ``state``: the conversation's subject, so "how big
    is it?" after a segment answer is the decisive profile question it is; ``decision``: the
    route already taken for this question (not routed again)."""
    if decision is None:
        decision = route(ctx, question, state)
    if not decision.scores:
        return [decision.tool]
    tools = available_tools(ctx)
    if not mentions_segment(ctx, f"{context}\n{question}"):
        return [s.name for s in tools if not s.needs_segment]
    if len(tools) < len(all_tools()):
        return [s.name for s in tools]  # only what this workspace's data can answer
    return None


def decided_call(decision: Route) -> dict[str, Any] | None:
    """The call a decisive route makes, ``{"name", "args"}`` (None when the route was only
    scored by similarity: the model chooses then)."""
    if decision.scores:
        return None
    return {"name": decision.tool, "args": dict(decision.args)}


def mentions_segment(ctx: ToolContext, text: str) -> bool:
    """Whether ``text`` names a segment: its id, or every distinctive word of its name in any
    form ("new customers", "high value loyal", "a bargain hunter")."""
    from insight_agent.analytics.queries import segment_names

    try:
        names = segment_names(ctx.ws)
    except Exception:
        return True  # cannot tell: restrict nothing
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    stems = {w.rstrip("s") for w in words}
    for sid, name in names.items():
        if sid.lower() in words:
            return True
        core = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in GENERIC]
        if core and all(w in words or w.rstrip("s") in stems for w in core):
            return True
    return False


# --- declines: questions no tool can answer truthfully -------------------------------------

_CODE = re.compile(
    r"\b(?:write|give|gimme|show|generate|create|make|produce|draft)\b.{0,40}?"
    r"\b(?:code|sql|python|script|query|function|regex|pandas|program)\b"
    # "I need a query of revenue" is a figure; "I need python code" is not
    r"|\b(?:need|want|send|provide)\b.{0,40}?\b(?:code|sql|python|script|regex|pandas)\b"
    r"|\b(?:pandas|python|sql|javascript|vba|excel formula|r) (?:code|script|snippet|query)\b"
    r"|\b(?:run|execute|eval)\b.{0,30}?\b(?:sql|code|query|script|command|python)\b"
    r"|\bselect\s+.+\s+from\s+\w+|\bdrop\s+table\b",
    re.I,
)
_CHANGE = re.compile(
    r"^(?:please\s+|can you\s+|could you\s+|go ahead and\s+|now\s+)?"
    r"(?:delete|drop|remove|erase|truncate|wipe|purge|overwrite|modify|edit|update|alter|"
    r"change|rename|insert|add|reset)\b"
    # a noun, not an order: "drop in orders last month?", "change in customers by month"
    r"(?!\s+(?:in|of|off|on|over|from|between|since|vs)\b|-)"
    r".{0,60}?"
    r"\b(?:data|customers?|records?|rows?|tables?|orders?|reviews?|database|db|files?|"
    r"segments?|models?|accounts?|everything|emails?|history|responders|non-?responders|"
    r"churners|transactions)\b",
    re.I,
)
_PROMPT = re.compile(
    r"system prompt|your (?:instructions|prompt|rules|guidelines|configuration)|"
    r"ignore (?:all |your |the )?(?:previous|prior|above|earlier)|jailbreak|developer mode|"
    r"(?:reveal|print|show|repeat|tell me) (?:me )?(?:your|the) (?:hidden |initial )?"
    r"(?:prompt|instructions)",
    re.I,
)
# Words of the domain: a question with none of them, far from every tool, is out of scope.
_DOMAIN = re.compile(
    r"custom|client|shopper|buyer|segment|persona|churn|lapse|loyal|retain|retention|revenue|"
    r"losing|\blose\b|\bleav|moan|gripe|comment|dept|"
    r"sales?\b|sell|order|purchas|bought|buy|spend|spent|value|clv|worth|campaign|email|offer|"
    r"promot|discount|target|audience|respon|review|complain|feedback|rating|stars?\b|say|"
    r"unhappy|happy|satisf|theme|pain|product|categor|basket|cross|recommend|model|predict|"
    r"accura|data|metric|trend|month|week|quarter|year|aov|average|median|total|how many|"
    r"growth|market|brand|channel|region|countr|deliver|shipping|return|price|quality|repeat|"
    r"\brate\b|gmv|units|sold|outcome|driver|\bdrives?\b|likel|probab|conver|subscri|signed up|"
    r"sign-?ups?|upgrade|cancel|renew|attribute|balance|income|"
    r"size|sizing|fit|fabric|material|colou?r|issue|problem|love|hate|dislike|rated|"
    r"support|service|insight|report|household|\bhh\b|\btrips?\b|"
    r"\bmembers?\b|passenger|\bfl[iy]ers?\b|\baccounts?\b|patron|policyholder|subscriber|"
    r"\b(?:take|took|bring|brought) in\b",
    re.I,
)
_FOLLOW_UP = re.compile(r"\b(?:it|they|them|their|that|those|these|this one|what about|how "
                        r"about|and (?:what|how|the))\b", re.I)  # fmt: skip
_ID = re.compile(r"\b[A-Za-z]{1,4}[-_]?\d{3,}\b")  # a customer or review id: C000042
# Plainly off-topic, even mid-conversation.
_OFF_TOPIC = re.compile(
    r"\b(?:weather|forecast|joke|poem|recipe|stock price|share price|bitcoin|crypto|"
    r"world cup|election|capital of|translate|horoscope|lottery|"
    # personal asides, not a business that sells dinners or films
    r"birthday (?:dinner|party|present|gift|ideas?)|vacation|holiday plans|"
    r"my (?:sister|brother|mom|mum|dad|wife|husband|partner|girlfriend|boyfriend|friend|"
    r"kids?|son|daughter)(?:'s)?)\b",
    re.I,
)
# Marketing data Insight never reads (web analytics, ad platforms, competitors, social).
_NOT_IN_DATA = re.compile(
    r"\b(?:website|web ?site|site|web|online) (?:traffic|visits?|visitors|sessions|users)\b"
    r"|\bpage ?views?\b|\bbounce rate\b|\bclick[- ]?through|\bctr\b|\bcpc\b|\bcpm\b"
    r"|\bimpressions\b|\bfollowers\b|\bsocial media\b|\bad ?spend\b|\broas\b|\bseo\b"
    r"|\bcompetitors?\b|\bmarket share\b|\bgoogle analytics\b|\bcart abandon"
    # email engagement: sends and responses are data, opens and subject lines are not
    r"|\bopen rates?\b|\bopens\b|\bsubject lines?\b|\bunsubscrib\w*|\bclicks?\b",
    re.I,
)
OUT_OF_SCOPE_SIMILARITY = 0.25  # below this, no tool's description is near the question
CAN_ANSWER = (
    "revenue, orders, AOV, new customers or response rates over time (e.g. 'revenue by "
    "month last 12 months'); who the segments are; churn risk and who is likely to churn; "
    "customer value (CLV); what customers say in reviews; what to cross-sell"
)


def can_answer(ctx: ToolContext) -> str:
    """What this workspace's data can answer, as a list for a decline ("I can tell you
    about: …"): only what its build holds (a customers table with a yes/no label offers
    no churn or reviews); CAN_ANSWER when there is no build to tell from."""
    has = workspace_has(ctx)
    if has is None:
        return CAN_ANSWER
    from insight_agent.analytics.artifacts import current_build

    key = str(current_build(ctx.ws))  # workspace_has read it: there is a build
    if key not in _CAN:
        _CAN[key] = _can_answer(ctx, has)
    return _CAN[key]


_CAN: dict[str, str] = {}  # per build folder: what it can answer (reads its catalogue, cards)


def _can_answer(ctx: ToolContext, has: frozenset[str]) -> str:
    parts: list[str] = []
    try:
        from insight_agent.analytics.queries import metrics_engine

        cat = metrics_engine(ctx.ws).catalogue
    except Exception:
        cat = None
    if cat is not None and "revenue" in cat.measures:
        lead = CAN_ANSWER.split(";")[0]
        if "response_rate" not in cat.measures:
            lead = lead.replace(" or response rates", " or repeat rates")
        parts.append(lead)
    elif cat is not None and cat.measures:
        rates = [m for m in cat.measures.values() if m.aggregation == "share_of_customers"]
        lead = rates[0] if rates else next(iter(cat.measures.values()))
        shown = [lead.label.lower(), *[m.label.lower() for m in cat.measures.values()
                                       if m is not lead][:2]]  # fmt: skip
        dims = [d for d in cat.dims_for(lead.table) if cat.dimensions[d].source != "time"][:3]
        listed = f"{', '.join(shown[:-1])} or {shown[-1]}" if len(shown) > 1 else shown[0]
        by = f", broken down by {', '.join(dims)}" if dims else ""
        example = f"{lead.name.replace('_', ' ')}{' by ' + dims[-1] if dims else ''}"
        parts.append(f"figures such as {listed}{by} (e.g. '{example}')")
    offers = {  # in the order they are listed; a label model only where there is no churn
        "segments": "who the segments are",
        "churn": "churn risk and who is likely to churn",
        "models": None if "churn" in has else "who is most likely to {outcome}, and what drives it",
        "clv": "customer value (CLV)",
        "reviews": "what customers say in reviews (themes, counts, quotes)",
        "basket": "what to cross-sell",
    }
    for kind, text in offers.items():
        if kind in has and text:
            parts.append(text.format(outcome=_outcome(ctx)) if "{" in text else text)
    return "; ".join(parts) if parts else "an overview of the data (`insight validate`)"


def _outcome(ctx: ToolContext) -> str:
    """The outcome the build's prediction model is about, in words: "have y = yes"."""
    from insight_agent.analytics.artifacts import current_build
    from insight_agent.analytics.queries import label_values

    try:
        labels = label_values(current_build(ctx.ws))
    except Exception:
        labels = {}
    if labels:
        return " or ".join(f"have {k} = {v}" for k, v in sorted(labels.items()))
    categories = _categories(ctx)
    if categories and "response" not in (workspace_has(ctx) or ()):
        return "buy " + " or ".join(categories)  # the category models are all there is
    return "respond to a campaign"


def no_data(ctx: ToolContext, decision: Route, question: str = "") -> Decline | None:
    """A decline for a question only ``decision``'s tool answers when this workspace lacks
    its data ("what do reviewers complain about?" with no reviews), or that asks for figures
    by an attribute no column holds ("revenue by region" with no region): what is missing,
    how to add it, and what the data can answer instead. None when the tool can answer.
    A customer named by an id the build does not hold is said to be missing, in words no
    model can turn into "the model needs retraining"."""
    if decision.tool == "customer_profile" and decision.args.get("customer_id"):
        missing_one = _unknown_customer(ctx, str(decision.args["customer_id"]))
        if missing_one is not None:
            return Decline(
                "unknown_customer", f"{missing_one} I can tell you about: {can_answer(ctx)}."
            )
    if question and decision.tool != "customer_profile":
        from insight_agent.tools.metrics import unknown_figure

        thing = unknown_figure(ctx, question)
        if thing is not None:  # "average loyalty points": not revenue, not CLV
            return Decline(
                "no_data",
                f"I can't answer that from this workspace: it has no column or figure for "
                f'"{thing}". I can tell you about: {can_answer(ctx)}.',
            )
    missing = missing_data(ctx, decision.tool, decision.args)
    if question:
        from insight_agent.tools.metrics import missing_dimensions

        absent = missing_dimensions(ctx, question)
        if absent:
            missing.append(_no_column(ctx, absent))
    if decision.tool == "query_metrics":  # measures this workspace's tables cannot give
        from insight_agent.tools.metrics import lacking_data

        if decision.args.get("period"):
            try:
                from insight_agent.analytics.queries import metrics_engine

                if metrics_engine(ctx.ws).catalogue.data_up_to is None:
                    missing.append("dates")  # a period asked where no table has a date
            except Exception:
                pass
        for measure in decision.args.get("measures", []):
            why = lacking_data(ctx, str(measure))
            if why is not None and why not in missing:
                missing.append(why)
    if not missing:  # the tool can answer, unless it is asked about one category's buyers
        return _not_by_purchase(ctx, decision.tool, question, decision.args) if question else None
    lacks = "; and ".join(why_missing(ctx, kind) for kind in missing)
    return Decline(
        "no_data",
        f"I can't answer that from this workspace: it has {lacks}. "
        f"I can tell you about: {can_answer(ctx)}.",
    )


# What a model tool gives, for the sentence that says it cannot be narrowed to the buyers of a
# category: its scores cover every customer, and its only filter is the segment.
_SCORED_FOR_ALL = {
    "churn_risk_by_segment": "churn risk",
    "top_customers": "the lists of likely buyers and churners",
    "export_audience": "audiences",
    "clv_summary": "customer value",
    "model_quality": "model quality",
}
_BUYER_NOUN = r"(?:buyers?|shoppers?|purchasers?|customers?|households?|hh|members?|users?)"
_BOUGHT_VERB = (
    r"(?:bought|buy|buys|buying|purchased?|purchases|purchasing|ordered|orders?|ordering|"
    r"shop(?:s|ped)? (?:for|in))"
)
_NOT_BOUGHT = re.compile(
    r"\b(?:haven'?t|hasn'?t|hadn'?t|didn'?t|don'?t|doesn'?t|never|not|no longer|stopped)"
    r"(?: (?:ever|yet|recently|been|even))?\s+$"
)
_WHO_BOUGHT = re.compile(
    r"\b(?:who|that|which|have|has|had|did|does|do|already|ever|also|recently)"
    r"(?: (?:ever|also|recently|already))?\s+$"
)


def bought_filter(ctx: ToolContext, question: str) -> tuple[str, bool] | None:
    """The category a question narrows its customers to by what they bought ("fuel buyers",
    "buyers of fuel", "who bought fuel"; ``True`` with it for "haven't bought meat"), or None.
    "likely to buy produce" names a model's target, not who is asked about."""
    q = question.lower()
    for category in _order_categories(ctx):
        for start, end in mentions(q, category):
            before, after = q[:start], q[end:]
            if re.match(rf"\s+{_BUYER_NOUN}\b", after) and not re.search(
                r"\b(?:top|best|biggest|largest|\d+|likel\w*|probable|potential|future|"
                r"prospective|new)\s+(?:\w+\s+)?$",
                before,
            ):  # "fuel buyers" (not "top fuel buyers": spend in it, a metric; not "the 50
                # likeliest gas buyers": the model's target)
                return category, False
            if re.search(rf"\b{_BUYER_NOUN} (?:of|in|for) (?:the )?$", before):
                return category, False
            verb = re.search(rf"\b{_BOUGHT_VERB} (?:any |some |the |from |in )?$", before)
            if verb is None:
                continue
            head = before[: verb.start()]
            if re.search(r"\b(?:to|will|would|might|could|likely)\s+$", head):
                continue  # "likely to buy produce": the target
            if _NOT_BOUGHT.search(head):
                return category, True
            if _WHO_BOUGHT.search(head):
                return category, False
    return None


# Head counts of a category's lines are head counts of its buyers ("how many fuel buyers last
# month"): the line filter gives the figure asked for. Money and rates are not ("the avg
# basket of fuel buyers" is not the average fuel line's basket).
_COUNTS_OF_BUYERS = frozenset(
    {"active_customers", "new_customers", "returning_customers", "customers"}
)


def _not_by_purchase(
    ctx: ToolContext, tool: str, question: str, args: dict[str, Any] | None = None
) -> Decline | None:
    """A decline for a model tool asked about the buyers (or non-buyers) of one category: its
    answer would be about every customer, a related figure, not the one asked for. So for a
    figure of those buyers other than their number ("avg basket size for fuel buyers vs non
    fuel buyers"): a category filter keeps the category's lines, not its buyers' baskets."""
    measures = set((args or {}).get("measures") or [])
    figure = tool == "query_metrics" and measures and not measures <= _COUNTS_OF_BUYERS
    if not figure and tool not in _SCORED_FOR_ALL:
        return None
    found = bought_filter(ctx, question)
    if found is None:
        return None
    category, negated = found
    if figure:
        who = "customers who have not" if negated else "customers who have"
        return Decline(
            "not_supported",
            f"I can't answer that yet: figures can be filtered to {category}'s own order "
            f"lines, not to the whole orders of {who} bought {category}. I can give "
            f"{category}'s own sales, orders and buyers (e.g. '{category.lower()} revenue by "
            f"month', 'how many {category.lower()} buyers last month'), or the same figure for "
            f"everyone or by segment. I can also tell you about: {can_answer(ctx)}.",
        )
    who = f"customers who {'have not' if negated else 'have'} bought {category}"
    return Decline(
        "not_supported",
        f"I can't answer that yet: {_SCORED_FOR_ALL[tool]} cannot be narrowed to {who} "
        "(the models score every customer, and their lists filter by segment only). I can "
        f"give {_SCORED_FOR_ALL[tool]} for all customers or by segment, and {category}'s "
        f"sales and buyers over time (e.g. '{category.lower()} revenue by month'). I can "
        f"also tell you about: {can_answer(ctx)}.",
    )


def _unknown_customer(ctx: ToolContext, customer_id: str) -> str | None:
    """What the profile tool says of an id the current build does not hold; None when it
    holds it (or there is no build to ask)."""
    from insight_agent.analytics.artifacts import current_build, lookup_customer
    from insight_agent.analytics.queries import unknown_customer

    try:
        folder = current_build(ctx.ws)
        if lookup_customer(folder, customer_id) is not None:
            return None
    except Exception:
        return None
    error = unknown_customer(folder, customer_id)
    return f"{error.message[0].upper()}{error.message[1:]}; {error.hint}."


def _no_column(ctx: ToolContext, absent: list[str]) -> str:
    """ "no region column in its tables (figures break down by month, …)"."""
    said = " or ".join(absent)
    from insight_agent.tools.metrics import workspace_catalogue

    catalogue = workspace_catalogue(ctx)
    dims = list(catalogue.dimensions) if catalogue is not None else []
    columns = (
        [c for cols in catalogue.columns.values() for c in cols] if catalogue is not None else []
    )
    by = f" (its figures break down by {', '.join(dims)})" if dims else ""
    # a column by that name that is not a breakdown (an id such as store_id, 150 values)
    near = [c for c in dict.fromkeys(columns) if any(a in c.lower() for a in absent)]
    if near:
        return (
            f"a {' and '.join(near)} column, but figures do not break down by it yet (an id "
            f"or a column of too many values){by}"
        )
    return f"no {said} column in its tables{by}; add one to the export and run `insight build`"


def domain_names(ctx: ToolContext) -> list[str]:
    """Segment names and product categories of this workspace: a question naming one is about
    the business even without a domain word ("what goes well with kitchen stuff?")."""
    from insight_agent.analytics.queries import segment_names

    names: list[str] = []
    try:
        for name in segment_names(ctx.ws).values():
            names += [w for w in re.findall(r"[A-Za-z]+", name) if len(w) > 4]
    except Exception:
        pass
    names += _categories(ctx)
    names += _review_categories(ctx) or []
    try:  # the values of this workspace's attributes: "married", "cellular", "tops"
        from insight_agent.analytics.queries import metrics_engine
        from insight_agent.tools.metrics import NOT_BY_VALUE, VAGUE_LEVELS

        engine = metrics_engine(ctx.ws)
        for dim in engine.catalogue.dimensions.values():
            if dim.source in ("customer", "fact") and not dim.numeric:
                if dim.name not in NOT_BY_VALUE:
                    names += [v for v in engine.levels(dim) if len(v) > 4
                              and v.lower() not in VAGUE_LEVELS]  # fmt: skip
                names.append(dim.name)
            elif dim.source == "customer":  # a number column's words: "miles", "balance"
                names += [w for w in dim.name.split("_") if len(w) > 4 and w.isalpha()]
    except Exception:
        pass
    return sorted({n for n in names if len(n) > 3})


@dataclass
class Decline:
    """Why a question gets no tool call, and the answer that says so."""

    kind: str  # code | change | prompt | out_of_scope
    answer: str


def decline(
    question: str,
    *,
    follow_up: bool = False,
    names: list[str] | None = None,
    can: str = CAN_ANSWER,
) -> Decline | None:
    """A one-sentence refusal with what Insight can answer instead (``can``: what this
    workspace's data answers, :func:`can_answer`), for requests to write or run code/SQL, to
    change or delete data, to reveal the system prompt, and (on a first turn, or a question
    that does not refer back) for questions outside customer analytics."""
    q = question.strip()
    if _PROMPT.search(q):
        return Decline(
            "prompt",
            "I can't share or change my instructions. I can answer questions about your "
            f"customers: {can}.",
        )
    if _CODE.search(q):
        return Decline(
            "code",
            "I don't write or run code or SQL: I answer with Insight's own tools. Ask for the "
            "figure itself (e.g. 'revenue by month last 12 months', or `insight metrics "
            "--list` for every measure), or for: " + can + ".",
        )
    if _CHANGE.search(q):
        return Decline(
            "change",
            "I can't change or delete data: Insight only reads your exports (edit the files "
            "and run `insight build` to update the models). I can tell you about: " + can + ".",
        )
    if _NOT_IN_DATA.search(q):
        return Decline(
            "out_of_scope",
            "I can't answer that: Insight reads your customers, orders, campaigns and reviews, "
            "not web analytics, ad platforms, social media or competitors' data. I can tell you "
            "about: " + can + ".",
        )
    if _OFF_TOPIC.search(q):
        return Decline(
            "out_of_scope",
            "I can't answer that from your customer data. I can tell you about: " + can + ".",
        )
    if _DOMAIN.search(q) or _ID.search(q) or (follow_up and _FOLLOW_UP.search(q)):
        return None
    if names and (
        any(re.search(rf"\b{re.escape(n.lower()[:4])}", q.lower()) for n in names)
        or mentioned(q, names)  # "gas" for FUEL
    ):
        return None  # a segment or category of this workspace ("the bargain hunters")
    from insight_agent.tools.metrics import normalise

    if _DOMAIN.search(normalise(q)):  # "revnue split by age band"
        return None
    if follow_up:
        return None  # mid-conversation ("remind me?"): the conversation gives it a meaning
    sims = _similarities(q)
    if sims and max(sims.values()) >= OUT_OF_SCOPE_SIMILARITY:
        return None
    return Decline(
        "out_of_scope",
        "I can't answer that from your customer data. I can tell you about: " + can + ".",
    )


# --- dialogue state: what a follow-up's "it / they / that segment" refers to ----------------

_REFERS_BACK = re.compile(
    r"\b(?:it|its|they|them|their|those|these|that (?:segment|group)|this (?:segment|group)|"
    r"the segment|same segment|that one|this one)\b",
    re.I,
)


# Words of a facts key naming one segment ("top_revenue_segment", "largest_segment") and the
# question words that ask for it.
_PICK_CUES: dict[str, tuple[str, ...]] = {
    "revenue": ("revenue", "sales", "spend", "money"),
    "largest": ("largest", "biggest", "most customers", "size", "how many customers"),
    "churn": ("churn", "risk", "losing", "leave", "lapse"),
    "value": ("value", "worth", "clv"),
}
_LOW_CUE = re.compile(r"\b(?:least|lowest|smallest|fewest|bottom)\b")


def _picked_segment(results: list[ToolResult], question: str) -> str | None:
    """The segment a one-segment facts key holds when the question asks for exactly that key
    ("the most revenue" -> ``top_revenue_segment``, not the ``largest_segment`` an answer may
    name first); None when no key or several match."""
    q = question.lower()
    found: set[str] = set()
    for r in results:
        for key, value in (r.facts or {}).items():
            if not key.endswith("_segment") or not isinstance(value, str):
                continue
            words = key.split("_")
            if bool({"lowest", "smallest", "least"} & set(words)) != bool(_LOW_CUE.search(q)):
                continue  # "lowest_churn_segment" answers "least likely to churn" only
            if any(cue in q for w in words for cue in _PICK_CUES.get(w, ())):
                found.add(value)
    return found.pop() if len(found) == 1 else None


@dataclass
class DialogueState:
    """The conversation's subject so far: the last segment, customer, prediction target and
    period a turn was about. Kept by the session for every provider."""

    segment: str | None = None
    customer: str | None = None
    target: str | None = None
    period: str | None = None
    subject: str | None = None  # what the last turn was about: "segment" or "customer"
    last: tuple[str, dict[str, Any]] | None = None  # the last successful call
    metrics: dict[str, Any] | None = None  # the last query_metrics arguments

    @property
    def active(self) -> bool:
        """Whether a follow-up has something to refer back to."""
        return any((self.segment, self.customer, self.target, self.period))

    def refers_back(self, ctx: ToolContext, question: str) -> bool:
        """A follow-up that names no segment but points at one ("how big is it?"). Not a
        question that asks which segment itself ("which segment has the highest churn risk,
        and what should we do about it?"): its "it" is the segment it asks for."""
        return bool(
            self.segment
            and _REFERS_BACK.search(question)
            and not _ASKS_WHICH_SEGMENT.search(question)
            and not _segments_in(ctx, question)
        )

    def spell_out(self, ctx: ToolContext, question: str) -> str:
        """``question`` with what it refers back to made explicit, for a model to read."""
        if self.refers_back(ctx, question):
            return f"{question} (they/it = the {self.segment} segment)"
        return question

    def update(
        self, ctx: ToolContext, results: list[ToolResult], answer: str, question: str = ""
    ) -> None:
        """Remember what this turn was about: the segment in the tools' arguments, else the
        segment the question's superlative picks from the facts ("which segment brings in
        the most revenue?" -> ``top_revenue_segment``), else the first segment the answer
        names; the customer, target and period asked for."""
        segment = None
        if results:
            self.subject = None
        ok = [r for r in results if r.ok]
        if ok:
            self.last = (ok[0].name, dict(ok[0].args or {}))
        for r in results:
            args = r.args or {}
            if r.name == "query_metrics" and r.ok:
                self.metrics = dict(args)
            if args.get("segment"):
                segment = _resolved(ctx, str(args["segment"]))
            for flt in args.get("where") or []:
                if str(flt).lower().startswith("segment="):
                    segment = _resolved(ctx, str(flt).split("=", 1)[1])
            if args.get("customer_id"):
                self.customer = str(args["customer_id"])
                self.subject = "customer"
            if args.get("target"):
                self.target = str(args["target"])
            if args.get("period"):
                self.period = str(args["period"])
            if segment:
                break
        if segment is None:
            picked = _picked_segment(ok, question)
            segment = _resolved(ctx, picked) if picked else None
        if segment is None:
            named = _segments_in(ctx, answer.split("\n", 1)[0])
            segment = named[0] if named else None
        if segment:
            self.segment = segment
            self.subject = self.subject or "segment"

    def follow_metrics(
        self,
        ctx: ToolContext,
        question: str,
        segments: list[str],
        fresh: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The last metrics question changed as a follow-up says: "and by channel?", "same
        for the lapsing segment", "what about last year?", "and the median?"; ``fresh``: the
        follow-up's own arguments when it names a measure ("and avg monthly charges for
        those?": that measure, the last breakdown and filters)."""
        from insight_agent.tools.metrics import route_args

        if not self.metrics:
            return None
        old = list(self.metrics.get("measures", []))
        if fresh and fresh.get("measures"):
            old = list(fresh["measures"])
        else:  # "and the median?" / "what about the average?": the other aggregation
            swap = re.search(r"\b(median|average|avg|mean)\b", question.lower())
            if swap:
                want = "median" if swap[1] == "median" else "average"
                other = "average" if want == "median" else "median"
                try:
                    from insight_agent.analytics.queries import metrics_engine

                    known = metrics_engine(ctx.ws).catalogue.measures
                except Exception:
                    known = {}
                old = [
                    f"{want}_{m.removeprefix(other + '_')}"
                    if m.startswith(other + "_")
                    and f"{want}_{m.removeprefix(other + '_')}" in known
                    else m
                    for m in old
                ]
        by_phrase = re.search(r"\bby\s+(.{2,40}?)\s*[?.!]*$", question.lower())
        if "customer" in (self.metrics.get("by") or []) and by_phrase and not fresh:
            # "same for the top 5 by spend" after customers ranked by trips: ranked by spend
            # (but "and by category?" is a breakdown)
            from insight_agent.tools.metrics import customer_ranking

            breakdown = (route_args(ctx, f"revenue {by_phrase[0]}", segments) or {}).get("by")
            ranked = customer_ranking(ctx, f"top customers by {by_phrase[1]}", segments)
            if not breakdown and ranked and ranked.get("measures"):
                old = list(ranked["measures"])
        measures = " and ".join(m.replace("_", " ") for m in old)
        new = route_args(ctx, f"{measures} {question}", segments) or {}
        args = dict(self.metrics)
        args["measures"] = old
        for key in ("by", "period", "compare", "top"):
            if new.get(key):
                args[key] = new[key]
        if new.get("by") and re.search(r"\btoo\b|\bas well\b|\balso\b", question.lower()):
            # "now split that by paperless billing too": a second breakdown, the first kept
            kept = [b for b in self.metrics.get("by") or [] if b not in new["by"]]
            args["by"] = (kept + list(new["by"]))[:2]
        if not new.get("compare") and args.get("period"):  # "and vs the month before?"
            from insight_agent.tools.metrics import compare_said, normalise

            how = compare_said(normalise(question))  # "vs same qtr last yr?"
            if how:
                args["compare"] = how
        where = [w for w in new.get("where") or [] if not str(w).startswith("segment=")]
        flipped = _other_group(question, list(args.get("where") or []))
        if flipped is not None and not where:  # "and for the ones that do have it?"
            where = flipped
        if segments:  # a segment named in the follow-up filters the same figure
            where.append(f"segment={segments[0]}")
        if where:
            args["where"] = where
            # "just grocery" after a breakdown by category: that row, not the breakdown
            filtered = {str(w).split("=", 1)[0].rstrip("!<>") for w in where}
            kept = [b for b in args.get("by") or [] if b not in filtered]
            if kept != list(args.get("by") or []):
                args["by"] = kept
                args.pop("top", None)
        return args


# "how many is that", "how many custs is that": a count of the last figure's customers
_HOW_MANY_THAT = (
    r"^\s*(?:and\s+|so\s+|ok\s+)?how many(?:\s+(?:custs?|customers|people|clients|accounts))?"
    r"\s+(?:is|are|was|were)\s+(?:that|those|them|they|these)\b"
)


_ASKS_WHICH_SEGMENT = re.compile(r"\b(?:which|what) (?:customer )?(?:segment|group)s?\b", re.I)


def _count_of_last(ctx: ToolContext, last: dict[str, Any]) -> dict[str, Any] | None:
    """The head count of the customers the last metrics call was about: its filters and
    breakdown kept, a yes/no share's group ("what share are seniors" → senior_citizen = 1)
    made a filter. None where the workspace counts no customers."""
    from insight_agent.tools.metrics import workspace_catalogue

    cat = workspace_catalogue(ctx)
    if cat is None:
        return None
    count = "customers" if "customers" in cat.measures else "active_customers"
    if count not in cat.measures:
        return None
    args = {k: v for k, v in last.items() if k not in ("measures", "compare", "ascending")}
    where = list(args.get("where") or [])
    for name in last.get("measures") or []:
        measure = cat.measures.get(name)
        if measure is not None and name.startswith("share_") and " = " in measure.label:
            column = name.removeprefix("share_")
            where.append(f"{column}={measure.label.rsplit(' = ', 1)[-1]}")
    if where:
        args["where"] = where
    args["measures"] = [count]
    return args


_YES_NO = {"no": "Yes", "yes": "No", "0": "1", "1": "0", "false": "True", "true": "False"}


def _other_group(question: str, where: list[str]) -> list[str] | None:
    """The last filters with their one yes/no filter turned to the other group, when a
    follow-up asks for it ("and for the ones that do have it?" after tech_support = No,
    "what about those with one" after partner = No); None otherwise."""
    q = question.lower()
    has = re.search(
        r"\b(?:ones?|those|people|ppl|custs?|customers|them)\s+(?:that|who|which)\s+(?:do|does)"
        r"\s+(?:have|has)\b|\b(?:those|ones|people|ppl|custs?|customers)\s+with\s+(?:one|it|them)\b",
        q,
    )
    lacks = re.search(
        r"\b(?:ones?|those|people|ppl|custs?|customers|them)\s+(?:that|who|which)\s+"
        r"(?:do not|don'?t|does not|doesn'?t)\s+(?:have|has)\b|\b(?:those|ones|people|ppl|custs?|"
        r"customers)\s+without\b",
        q,
    )
    if not (has or lacks):
        return None
    flags = [i for i, w in enumerate(where) if str(w).split("=", 1)[-1].lower() in _YES_NO]
    if len(flags) != 1:
        return None
    i = flags[0]
    column, value = str(where[i]).split("=", 1)
    wanted_yes = bool(has)
    if (value.lower() in ("yes", "1", "true")) == wanted_yes:
        return None  # already that group
    out = list(where)
    other = _YES_NO[value.lower()]
    out[i] = f"{column}={other.lower() if value.islower() else other}"
    return out


def _resolved(ctx: ToolContext, text: str) -> str | None:
    from insight_agent.analytics.queries import resolve_segment

    try:
        return resolve_segment(ctx.ws, text)[1]
    except Exception:
        return None


def _their_customers(ctx: ToolContext, question: str) -> str:
    """``question`` with the business's word for its customers ("members", "passengers")
    read as "customers" where no column of the workspace is named by it."""
    from insight_agent.tools.metrics import people_words, workspace_catalogue

    cat = workspace_catalogue(ctx)
    return question if cat is None else people_words(cat, question)


def route(ctx: ToolContext, question: str, state: DialogueState | None = None) -> Route:
    """Pick the tool and arguments for ``question`` (deterministic); ``state`` supplies the
    segment a follow-up refers back to."""
    question = _their_customers(ctx, question)
    q = question.lower()
    named = _segments_in(ctx, question)
    segments = list(named)
    if not segments and state is not None and state.refers_back(ctx, question):
        segments = [state.segment]  # type: ignore[list-item]
    about_reviews = any(c in q for c in REVIEW_CUES)
    sentiment = (
        "negative"
        if any(c in q for c in NEGATIVE_CUES)
        else "positive"
        if any(c in q for c in POSITIVE_CUES)
        else None
    )
    customer = _customer_id(ctx, question)
    if customer:
        return Route("customer_profile", {"customer_id": customer})
    has = workspace_has(ctx)
    if has is not None and "segments" not in has and re.search(r"\bsegments?\b", q):
        return Route("list_segments", {})  # declined: this workspace has no segments
    if has is not None and "clv" not in has and re.search(r"\bclv\b|lifetime value", q):
        return Route("clv_summary", {})  # declined: no CLV (not "reviewers'" reviews)
    undated = _undated_period(ctx, q)
    if undated is not None:  # declined: no dates (and no orders, for "revenue by month")
        from insight_agent.tools.metrics import missing_measures

        return Route("query_metrics", {"measures": missing_measures(ctx, q), "period": undated})
    listed = state.last if state is not None and state.last else None
    if listed and listed[0] == "top_customers":
        more = re.search(r"^\s*(?:ok\s+|now\s+)?(?:show|give|list)?\s*(?:me\s+)?(?:the\s+)?"
                         r"(?:top\s+)?(\d{1,4})\s*(?:of (?:them|those)|more|instead)?\s*[?.!]*$",
                         q)  # fmt: skip
        if more:  # "show me 25": the same list, that long
            return Route("top_customers", {**listed[1], "n": int(more[1])})
    if re.search(r"\b(export|save|download)\b", q) or re.search(r"\bcsv\b", q):
        args: dict[str, Any] = {"target": _target(ctx, question)}
        if (
            listed
            and listed[0] == "top_customers"
            and _REFERS_BACK.search(q)
            and _count(question) is None
        ):  # "ok export those": the list just shown
            args["target"] = listed[1].get("target", args["target"])
            if listed[1].get("n"):
                args["top"] = int(listed[1]["n"])
            if listed[1].get("segment"):
                args["segment"] = listed[1]["segment"]
        if segments:
            args["segment"] = segments[0]
        count = _count(question)
        if count:
            args["top"] = count
        floor = re.search(
            r"(?:\b(?:over|above|more than|at least)\s*|>=?\s*)(\d{1,2}(?:\.\d+)?)\s*%|"
            r"(?:\b(?:over|above|more than|at least)\s*|>=?\s*)(0?\.\d+)\s+"
            r"(?:chance|probability|likelihood)",
            q,
        )
        if floor:  # "everyone with over 60% chance of converting"
            args["min_probability"] = float(floor[1]) / 100 if floor[1] else float(floor[2])
        return Route("export_audience", args)
    if len(segments) == 1 and re.search(r"\bpersonas?\b", q):
        return Route("segment_persona", {"segment": segments[0]})
    if len(segments) == 1 and re.search(
        r"\boffer\b|\bwin (?:them |it )?back\b|\bwin-back\b|\bplaybook\b|\bplan for\b|"
        r"\bwhat should we (?:do|send|offer|say)\b|\bshould we send\b|\bwhat campaign\b|"
        r"\bhow (?:do|can|should) we (?:retain|keep|re-?engage|reach|save)\b",
        q,
    ):
        return Route("segment_playbook", {"segment": segments[0]})
    if (
        state is not None
        and state.subject == "customer"
        and state.customer
        and not named
        and _REFERS_BACK.search(question)
    ):  # "how likely are they to buy again?"
        return Route("customer_profile", {"customer_id": state.customer})
    if (
        state is not None
        and state.segment
        and len(segments) == 1
        and segments[0] != state.segment
        and re.search(r"\bcompar|\bvs\.?\b|\bversus\b|\bdiffer", q)
    ):
        return Route("compare_segments", {"segment_a": state.segment, "segment_b": segments[0]})
    if (
        state is not None
        and state.last
        and re.search(
            r"^\s*(?:(?:and |but )?(?:only|just) )?(?:the )?(negative|positive|neutral)"
            r"(?: ones)?\b",
            q,
        )
    ):
        tool, last_args = state.last  # "only the negative ones": the same, narrowed
        fields = next((s.args.model_fields for s in all_tools() if s.name == tool), {})
        if "sentiment" in fields:
            sentiment = re.search(r"negative|positive|neutral", q)[0]  # type: ignore[index]
            return Route(tool, {**last_args, "sentiment": sentiment})
    if state is not None and state.last and state.last[0] in _REVIEW_TOOLS:
        again = re.search(
            r"^\s*(?:and|what about|how about|same for|now)\s+(?:about\s+|for\s+|on\s+|with\s+)?"
            r"(?:the\s+)?(?P<what>.+?)[?.!]*$",
            q,
        )
        if again:  # "and about tops?" after the dresses' complaints: the same, for tops
            tool, last_args = state.last
            category = _review_category_named(ctx, again["what"])
            args = dict(last_args)
            if category:
                args["category"] = category
            elif segments:
                args["segment"] = segments[0]
            elif tool != "review_themes":
                args["query"] = again["what"]
            else:
                args = {}
            if args:
                return Route(tool, args)
    if state is not None and state.metrics and re.search(_HOW_MANY_THAT, q):
        counted_args = _count_of_last(ctx, state.metrics)
        if counted_args is not None:  # "how many is that": the customers the last figure was of
            return Route("query_metrics", counted_args)
    counted = _count_route(question, segments, _review_category_named(ctx, q))
    if counted is not None:
        return counted
    metrics = _metrics_args(ctx, question, segments)
    follows = (
        state is not None
        and state.metrics
        and re.search(
            r"^\s*(?:so\s+)?(?:and|what about|how about|same|now|ok|also|then|vs\.?|versus|against|"
            r"compared (?:to|with)|by|split by|broken down by|just|only)\b",
            q,
        )
    )
    # "so what's the % change" after "deli rev q3" / "what about q4?": the last figure against
    # the period before it
    change = (
        state is not None
        and state.metrics
        and state.metrics.get("period")
        and metrics is None
        and re.search(
            r"%\s*change|\bpercent(?:age)? change|\b(?:the )?(?:change|difference|delta)\s*[?.!]*$|"
            r"\bup or down\b|\bhow much (?:did it|has it|was it) (?:change|grow|move)",
            q,
        )
    )
    # "repeat rate?" right after "how many hh shopped in q4": that figure for the same period
    # and customers, as a follow-up says it
    bare = (
        state is not None
        and state.metrics
        and metrics is not None
        and not named
        and len(re.findall(r"[a-z%$#]+", q)) <= 3
        and not any(metrics.get(k) for k in ("period", "by", "where", "compare", "top"))
    )
    if (
        state is not None
        and state.metrics
        and (
            # "now by units", "just grocery - how many baskets?": the last figure changed
            follows
            or change
            or bare
            # "whats their churn rate", "and avg monthly charges for those?": a new measure for
            # the same customers (the last figure's filters and breakdown)
            or (metrics is not None and not named and _REFERS_BACK.search(q) and not state.segment)
        )
    ):  # "and for new customers?", "vs the same month last year?": the last figure again
        # a segment named ("and for new customers?") is the filter, not a new measure
        metrics = state.follow_metrics(ctx, question, segments, fresh=None if named else metrics)
        if change and metrics is not None and not metrics.get("compare"):
            metrics["compare"] = "previous"
    if metrics is not None:
        return Route("query_metrics", metrics)
    if re.search(
        r"\bdrive[sn]?\b|\bdrivers?\b|\bfactors?\b|\baccura|\btrust\b|\breliab|"
        r"\bhow (?:good|well)\b.*\bmodel\b"
        r"|\bmodel\b.*\b(?:good|perform|work)|\bmatter(?:s|ed)?\b|\binfluenc|\bmake a difference\b",
        q,
    ):
        return Route("model_quality", {"target": _target(ctx, question)})
    if re.search(r"\bgoes? (?:well )?with\b|\bpair(?:s|ed)? (?:well )?with\b|\bw/", q):
        return Route("basket_rules", _args_for(ctx, "basket_rules", question, segments))
    if len(segments) == 1 and re.search(
        r"\bwho are\b|\blook like\b|\bdescribe\b|\btell me (?:about|abt)\b|\bprofile\b|"
        r"\bhow (?:big|large|many|much|valuable)\b|\bsize\b",
        q,
    ):
        return Route("segment_profile", {"segment": segments[0]})
    if (
        not segments
        and "segments" not in (workspace_has(ctx) or {"segments"})
        and re.search(
            r"\b(?:which|what) (?:groups?|kinds?|types?|sorts?|profiles?)\b.{0,50}\blikel",
            q,
        )
    ):  # no segments: the groups are the model's drivers ("highest for contact = telephone")
        return Route("model_quality", {"target": _target(ctx, question)})
    if (
        re.search(r"\btop\s+\d+\b", q)
        and not _top_of_customers(ctx, q)
        and (metrics := _metrics_args(ctx, question, segments)) is not None
    ):  # "top 2 payment methods by churn rate": a ranking of values, not of customers
        return Route("query_metrics", metrics)
    if re.search(
        r"\b\d{1,4}\s+(?:most\s+)?(?:at[- ]risk|high[- ]risk|likely)\s+(?:customers|custs?|"
        r"clients|people|accounts|churners)\b",
        q,
    ):  # "give me 150 at-risk custs"
        args = _args_for(ctx, "top_customers", question, segments)
        args["n"] = int(re.search(r"\b(\d{1,4})\s+(?:most\s+)?(?:at|high|likely)", q)[1])  # type: ignore[index]
        return Route("top_customers", args)
    if re.search(
        r"\btop\s+\d+\b|\bwhich (?:customers|custs?|clients|accounts)\b(?! groups?)|"
        r"\bwhich of (?:them|those|these)\b|"
        + _WHO_FIRST
        + r"|\b(?:customers|they|them|who)\b.{0,20}\b(?:are|is) (?:the )?most likely\b"
        r"|\bcustomers (?:are |who are )?(?:most )?likely"
        r"|\bwho(?:'s| is| are)(?: the)? (?:most )?likel(?:y|iest)\b|\blikeliest\b"
        r"|\baudience\b|\b(?:give|list|show|find|get|pull|top|best|\d+)\b.{0,20}\bprospects\b",
        q,
    ):
        args = _args_for(ctx, "top_customers", question, segments)
        asked = re.search(r"\b(\d{1,4})\s+(?:\w+\s+)?prospects\b", q)
        if asked and "n" not in args:  # "give me 50 prospects for caravan cover"
            args["n"] = int(asked[1])
        return Route("top_customers", args)
    if (
        not segments
        and not about_reviews
        and re.search(r"\bclv\b|\blifetime value\b|\b(?:customer|future) value\b", q)
        and re.search(r"\bsegments?\b|\bgroups?\b", q)
    ):  # "difference between high clv and low clv segments": value per segment, both ends
        return Route("clv_summary", {})
    if (
        re.search(r"\b(?:which|what) segments?\b|\b(?:biggest|largest|smallest) segments?\b", q)
        and not segments
        and not about_reviews
        and not re.search(
            r"churn|laps|losing|leav|risk|worth|clv|lifetime|customer value|future value|respon", q
        )
    ):
        return Route("list_segments", {})  # sizes and revenue shares of every segment
    if (
        re.search(r"\b(?:losing|lose|leaving|churn\w*)\b", q)
        and re.search(r"\b(?:segments?|groups?|which|where)\b", q)
        and not segments
        and not about_reviews
        and ("segments" in (has or {"segments"}) or re.search(r"\bsegments?\b", q))
    ):
        return Route("churn_risk_by_segment", {})  # "which groups are we losing?"
    if len(segments) >= 2 and (about_reviews or "theme" in q):
        return Route("compare_review_themes", {"segment_a": segments[0], "segment_b": segments[1]})
    if len(segments) >= 2:
        return Route("compare_segments", {"segment_a": segments[0], "segment_b": segments[1]})
    themes = _asks_themes(ctx, q, segments)
    if about_reviews or themes:
        category = _review_category_named(ctx, q)
        if themes:
            args = {"sentiment": sentiment} if sentiment else {}
            if segments:
                args["segment"] = segments[0]
            if category:
                args["category"] = category
            return Route("review_themes", args)
        scope, text = review_scope(ctx, question)
        if category:
            scope["category"] = category
        many = re.search(r"\b(\d{1,3})\s+(?:[a-z-]+\s+)?(?:reviews|quotes|comments)\b", q)
        args = {
            "query": _review_query(text, scope.get("category")),
            "k": min(10, int(many[1])) if many else 3,
            **scope,
        }
        if segments:
            args["segment"] = segments[0]
        if sentiment and "max_rating" not in scope and "min_rating" not in scope:
            args["sentiment"] = sentiment
        return Route("search_reviews", args)

    scores: dict[str, float] = {}
    sims = _similarities(question)
    for spec in all_tools():
        # query_metrics is chosen by its own cues (a measure word) or not at all: its
        # arguments cannot come from similarity alone
        if spec.writes or spec.by_cue_only:
            continue
        hits = sum(1 for k in spec.keywords if k in q)
        scores[spec.name] = round(hits + 2.0 * sims.get(spec.name, 0.0), 3)
    best = max(scores, key=lambda name: (scores[name], name))
    if best in needs_a_segment() and best != "segment_profile" and len(segments) < 2:
        # a tool whose segments nobody named cannot answer: the one named, or all of them
        best = "segment_profile" if segments else "list_segments"
    args = _args_for(ctx, best, question, segments)
    if best in {"list_segments", "dataset_overview"} and segments and "segments" not in q:
        best, args = "segment_profile", {"segment": segments[0]}
    return Route(best, args, scores)


def _top_of_customers(ctx: ToolContext, q: str) -> bool:
    """Whether "top N …" ranks customers ("top 15 customers", "top 20", "top 10 churners")
    rather than the values of a dimension ("top 2 payment methods", "top 3 categories")."""
    found = re.search(r"\btop\s+\d+\s+((?:[a-z-]+\s*){0,3})", q)
    if found is None:
        return True
    said = found[1].strip()
    if not said or re.match(r"(?:customers?|custs?|clients?|people|buyers|shoppers|accounts|"
                            r"users|members|subscribers|churners|spenders|most|at|high|by)\b",
                            said):  # fmt: skip
        return True
    try:
        from insight_agent.analytics.queries import metrics_engine
        from insight_agent.names import mentions

        dims = metrics_engine(ctx.ws).catalogue.dimensions.values()
    except Exception:
        return True
    return not any(
        mentions(said, d.name.replace("_", " ")) or mentions(said, d.label) for d in dims
    )


def _undated_period(ctx: ToolContext, q: str) -> str | None:
    """The period or trend a question asks for when none of the workspace's tables has a
    date ("how have sign ups trended over the last 6 months" on a customers-only export)."""
    try:
        from insight_agent.analytics.queries import metrics_engine
        from insight_agent.tools.metrics import paid_per_period, without_columns

        catalogue = metrics_engine(ctx.ws).catalogue
        if catalogue.data_up_to is not None or paid_per_period(ctx, q):
            return None  # "who pays the most per month": a monthly charges column
        q = without_columns(catalogue, q)  # "avg monthly charges" names a column
    except Exception:
        return None
    from insight_agent.tools.metrics import _PERIOD

    found = _PERIOD.search(q)
    if found:
        return found[1]
    trend = re.search(r"\btrend\w*|\bover time\b|\b(?:by|per|each) (?:day|week|month|quarter|"
                      r"year)\b|\b(?:daily|weekly|monthly|quarterly|yearly)\b|"
                      r"\b(?:day|week|month|quarter|year) (?:over|on|by) (?:day|week|month|"
                      r"quarter|year)\b|\bgoing (?:up|down)\b|\b(?:rising|falling)\b",
                      q)  # fmt: skip
    return trend[0] if trend else None


_GROWING = r"grow\w*|grew|fastest|declin\w*|shrink\w*"  # change over time: a metrics question
# who to act on first: a ranking by a prediction ("which custs should we call first to stop
# them cancelling"), not the outcome's rate
_WHO_FIRST = (
    r"\b(?:should|do|must|can) we (?:call|contact|ring|phone|email|target|reach out to|save|"
    r"prioriti[sz]e|focus on|go after)\b|\b(?:call|contact|target|reach out to) first\b|"
    r"\bprioriti[sz]e\b|\bwho to (?:call|contact|target|save)\b"
)


def _metrics_args(ctx: ToolContext, question: str, segments: list[str]) -> dict[str, Any] | None:
    """query_metrics arguments when the question asks for a descriptive figure; None when it
    does not, or when another tool answers it better: which *segment* is worth or brings the
    most (list_segments' revenue shares), top customers by a prediction."""
    from insight_agent.tools.metrics import customer_ranking, route_args

    ranked = customer_ranking(ctx, question, segments)
    if ranked is not None:  # "top 10 households by spend": customers ranked by a figure
        return ranked
    q = question.lower()
    if re.search(r"\bwhich segments?\b|\bwhat segments?\b", q) and not re.search(
        rf"\b(?:last|past|this|since|month|week|quarter|year|20\d\d|{_GROWING})\b", q
    ):
        return _beyond_segment_list(ctx, question, segments)
    by_attribute = re.search(
        r"\b(?:by|per|across|for each|in each|each) (?!segment)(?:age|gender|region|country|"
        r"channel|categor|month|quarter|year|week|job|income)",
        q,
    )
    if re.search(r"\bclv\b|lifetime value|\bchurn", q) and by_attribute:
        # "avg clv by age band", "high churn risk in each region": a metrics breakdown
        return route_args(ctx, question, segments)
    likely = (
        re.search(r"\blikel(?:y|iest|ihood)\b", q) and not re.search(r"\brate\b", q)
    ) or re.search(_WHO_FIRST, q)
    # where churn is the customers table's own label (no order-based churn model), "churn by
    # contract" is that label's rate broken down: a figure, not a prediction
    churn_word = r"" if _churn_is_a_label(ctx) else r"|\bchurn"
    if likely or re.search(r"\btop\s+\d+\s+customers\b|\bclv\b|lifetime value"
                 + churn_word + r"|\bat[- ]risk\b|\brisk of\b|\bdataset\b|\bdata set\b|"
                 r"\bdrive[sn]?\b|\bdrivers?\b|\bfactors?\b|\baccura\w*|\bmodel\b.{0,30}\b(?:good|"
                 r"perform|work|trust|reliab)|\b(?:good|trust|reliab\w*)\b.{0,30}\bmodel\b",
                 q):  # fmt: skip
        return None  # predictions, their drivers, CLV and the data overview: own tools
    # a period, a time grain or a breakdown by segment makes it a metrics question after all
    timed = bool(
        re.search(
            rf"\b(?:last|past|this|since|month|week|quarter|year|daily|weekly|monthly|trend|"
            rf"20\d\d|{_GROWING})\b|\b(?:by|per|each|across|between|among) (?:the )?segments?\b",
            q,
        )
    )
    if len(segments) >= 2 and not timed:
        return None  # two segments: compare_segments
    if re.search(r"\bsegments?\b", q) and not timed:
        # "what is our largest segment": list_segments
        return _beyond_segment_list(ctx, question, segments)
    if (
        segments
        and not timed
        and re.search(
            r"\blook like\b|\bwho are\b|\bdescribe\b|\btell me (?:about|abt)\b|\bprofile\b", q
        )
    ):
        return None  # "what do new customers look like?" names a segment, not a measure
    # a segment's share of revenue or customers is a segment fact (list_segments, profile)
    # (where there are segments; without them, "share of customers with a housing loan" is
    # a breakdown of customers)
    has_segments = "segments" in (workspace_has(ctx) or {"segments"})
    if (segments or has_segments) and re.search(
        r"\b(?:revenue|customer|spend) share\b|\bshare of (?:revenue|customers)\b", q
    ):
        return None
    args = route_args(ctx, question, segments)
    if args is None:
        from insight_agent.tools.metrics import missing_measures

        lacking = missing_measures(ctx, question)
        if lacking:  # "revenue by month" with no orders: declined by no_data, not re-routed
            return {"measures": lacking}
    return args


# What list_segments tells of every segment (its customers and its revenue), and the figures
# per segment other tools give with more around them (churn risk with the at-risk counts and
# the model's reliability; CLV with P(alive))
_SEGMENT_LIST_MEASURES = frozenset(
    {
        "revenue",
        "active_customers",
        "customers",
        "mean_churn_probability",
        "high_churn_risk_customers",
        "total_clv",
        "mean_clv",
        "median_clv",
    }
)


def _beyond_segment_list(
    ctx: ToolContext, question: str, segments: list[str]
) -> dict[str, Any] | None:
    """query_metrics by segment for a "which segment…" question about a figure the segment
    list does not hold ("which segment has the highest avg spend per household": revenue per
    customer, not revenue share); None when the list answers it."""
    from insight_agent.tools.metrics import route_args

    args = route_args(ctx, question, segments)
    if args is None or args.get("by") != ["segment"] or args.get("where"):
        return None
    if not set(args.get("measures", [])) - _SEGMENT_LIST_MEASURES:
        return None
    return args


def _args_for(ctx: ToolContext, tool: str, question: str, segments: list[str]) -> dict[str, Any]:
    spec: ToolSpec = next(s for s in all_tools() if s.name == tool)
    fields = spec.args.model_fields
    args: dict[str, Any] = {}
    if "segment" in fields and segments:
        args["segment"] = segments[0]
    if "target" in fields:
        args["target"] = _target(ctx, question)
    if "n" in fields:
        count = _count(question)
        if count:
            args["n"] = count  # the tool lists up to its cap and says so
    if "category" in fields:
        # any category of the orders for basket rules ("what do people buy with produce"),
        # a category with a model for predictions; said in any number or regional name
        known = _order_categories(ctx) if tool == "basket_rules" else []
        named = mentioned(question, known or _categories(ctx))
        if named:
            args["category"] = named[0]
    if tool == "segment_profile" and "segment" not in args:
        args["segment"] = ""  # the tool's error lists the segments
    return args


# A small model fills optional filters in from the signature alone ("sentiment": "neutral", a
# January 2023 date range) when the question asked for none, and each one silently narrows
# the result ("0 matching reviews"). A filter is kept only when what the user wrote asks for
# it; the cues are generous on purpose: they only have to catch filters out of thin air.
_SENTIMENT_CUES: dict[str, tuple[str, ...]] = {
    "negative": (*NEGATIVE_CUES, "worst", "angry", "frustrat", "disappoint", "poor", "hate"),
    "positive": (*POSITIVE_CUES, "good", "great", "best", "satisf", "delight", "enjoy"),
    "neutral": ("neutral", "mixed", "so-so", "lukewarm"),
}
_RATING_CUE = re.compile(r"\d|\bstars?\b|\brat(?:ing|ings|ed)\b|\bscor", re.I)
_DATE_CUE = re.compile(
    r"\b(?:19|20)\d\d\b|\b\d{1,2}[/.-]\d{1,2}\b"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
    r"|\b(?:days?|weeks?|months?|years?|quarters?|since|until|before|after|recent(?:ly)?"
    r"|latest|last|past|ago|today|yesterday|ytd|q[1-4])\b",
    re.I,
)
_COUNT_CUE = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty"
    r"|dozen|hundred|few|couple|handful|more|fewer|less|all|every)\b",
    re.I,
)
_TOP_CUE = re.compile(r"\b(?:top|best|highest|largest|biggest|bottom|worst|lowest|smallest|"
                      r"most|least|fewest|leading)\b", re.I)  # fmt: skip
_COMPARE_CUE = re.compile(
    r"compar|\bvs\.?\b|versus|previous|prior|year[- ]over[- ]year|\byoy\b|\bmom\b|"
    r"growth|grew|chang|a year (?:ago|earlier)|last year|up or down|increase|decrease|drop",
    re.I,
)


def _asked(name: str, value: Any, text: str) -> bool:
    """Whether ``text`` (lower case) gives a reason for filter ``name`` = ``value``; with
    ``value`` None, for that filter with any value (a category: cannot tell, so yes)."""
    if name == "sentiment":
        cues = (
            _SENTIMENT_CUES.values()
            if value is None
            else [_SENTIMENT_CUES.get(str(value).lower(), ())]
        )
        return any(cue in text for group in cues for cue in group)
    if name in ("min_rating", "max_rating"):
        return bool(_RATING_CUE.search(text))
    if name in ("since", "until", "period"):
        return bool(_DATE_CUE.search(text))
    if name == "compare":
        return bool(_COMPARE_CUE.search(text))
    if name == "top":
        return bool(_TOP_CUE.search(text))
    return value is None or str(value).lower() in text


def period_as_said(question: str) -> str | None:
    """The period exactly as the user wrote it ("last 6 months", "2025-Q3"), if any: a small
    model paraphrases it ("previous"), and the user's words resolve exactly."""
    from insight_agent.tools.metrics import _PERIOD

    m = _PERIOD.search(question.lower())
    return m[1] if m else None


def _review_categories(ctx: ToolContext) -> list[str] | None:
    """The review categories in the embedded index (None: cannot tell)."""
    from insight_agent.vectorstore.store import indexed_values

    try:
        return indexed_values(ctx.ws.artifacts, "category", ctx.ws.settings.vectorstore.chroma_url)
    except Exception:
        return None


def _review_category_named(ctx: ToolContext, q: str) -> str | None:
    """The indexed review category ``q`` (lower case) names, in any number ("dresses",
    "a dress" for Dresses), else None."""
    named = mentioned(q, _review_categories(ctx) or [])
    return named[0] if named else None


def filters_never_asked(ctx: ToolContext, said: str) -> dict[str, list[str]]:
    """Per tool, the optional filters nothing in ``said`` could ask for, whatever their value
    (no sentiment word, no number or "stars", no date or period, no segment named): the
    embedded model's grammar leaves them out, so it cannot spend tokens writing them (it wrote
    "segment": "All" when it could no longer write dates), nor how many rows to list when no
    number is given (the default serves). A review category is left out when none of the
    indexed ones is named; a basket category is only checked once written
    (:func:`unasked_filters`)."""
    text = said.lower()
    specs = all_tools()
    omit = {
        spec.name: [name for name in spec.filter_args if not _asked(name, None, text)]
        for spec in specs
        if spec.filter_args
    }
    if not _COUNT_CUE.search(text):
        for spec in specs:
            if spec.count_args:
                omit.setdefault(spec.name, []).extend(spec.count_args)
    known = _review_categories(ctx)
    if known is not None and not any(
        re.search(rf"\b{re.escape(c.lower())}\b", text) for c in known
    ):
        # no indexed review category named: "late delivery" is a query, not the category
        # "delivery" (which no review has: the model's filter found nothing)
        omit["search_reviews"].append("category")
        omit["review_themes"].append("category")
    if not mentions_segment(ctx, said):
        for spec in all_tools():
            field = spec.args.model_fields.get("segment")
            if field is not None and not field.is_required():
                omit.setdefault(spec.name, []).append("segment")
    return omit


def unasked_filters(tool: str, args: dict[str, Any], said: str) -> list[str]:
    """The optional filters in ``args`` that nothing in ``said`` (what the user wrote in this
    conversation) asks for: a sentiment without a word for it, ratings without a number or
    "stars", dates without a date, month or period, a category the user never named."""
    text = said.lower()
    try:
        filters = get_tool(tool).filter_args
    except KeyError:  # a name the model made up: validation reports it
        filters = ()
    return [
        name
        for name in filters
        if args.get(name) not in (None, "") and not _asked(name, args[name], text)
    ]


def _count(question: str) -> int | None:
    """How many rows the user asked for: "top 100", "50 customers", "the 200 likeliest"."""
    m = re.search(
        r"\b(?:top|first|best|the)\s+(\d{1,6})\b|\b(\d{1,6})\s+(?:[a-z-]+\s+)?(?:customers|"
        r"people|shoppers|buyers|clients|likeliest|most likely)",
        question.replace(",", "").lower(),
    )
    return int(m.group(1) or m.group(2)) if m else None


_STARS = r"(?P<n>[1-5])(?:\.0)?[- ]?stars?"
_RATING_SCOPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"\b{_STARS}\s+(?:and|or)\s+(?:up|above|higher|more|better|over)\b"), "min"),
    (re.compile(rf"\b{_STARS}\s+(?:and|or)\s+(?:below|under|less|lower|fewer|worse)\b"), "max"),
    (re.compile(rf"\b(?:at least|min(?:imum)?)\s+{_STARS}"), "min"),
    (re.compile(rf"\b(?:at most|max(?:imum)?)\s+{_STARS}"), "max"),
    (re.compile(rf"\b(?:below|under|less than|fewer than)\s+{_STARS}"), "below"),
    (re.compile(rf"\b(?:above|over|more than)\s+{_STARS}"), "above"),
    (re.compile(rf"\b{_STARS}\b"), "exact"),
)


def review_scope(ctx: ToolContext, question: str) -> tuple[dict[str, Any], str]:
    """Star-rating words and dates in a review question as filters, and the question with them
    taken out (they are scope, not what the reviews should be about): "1-star reviews about
    delivery since 2026-01-01" -> min_rating 1, max_rating 1, since 2026-01-01, "reviews about
    delivery"."""
    args: dict[str, Any] = {}
    text = question
    low = question.lower()
    for pattern, how in _RATING_SCOPES:
        m = pattern.search(low)
        if not m:
            continue
        n = int(m["n"])
        if how in ("min", "exact"):
            args["min_rating"] = n
        if how in ("max", "exact"):
            args["max_rating"] = n
        if how == "below":
            args["max_rating"] = n - 1 if n > 1 else 1
        if how == "above":
            args["min_rating"] = min(5, n + 1)
        text = text[: m.start()] + text[m.end() :]
        low = text.lower()
        break
    from insight_agent.tools.metrics import _PERIOD

    m = _PERIOD.search(low)
    if m:
        try:
            from insight_agent.analytics.queries import metrics_engine
            from insight_agent.engine.periods import parse_period

            cat = metrics_engine(ctx.ws).catalogue
            if cat.data_up_to is not None:
                period = parse_period(m[1], cat.data_up_to, first=cat.data_from)
                opened = re.search(r"\b(?:since|from|after|starting)\s*$", low[: m.start(1)])
                if period.start is not None:
                    args["since"] = period.start.isoformat()
                if period.end < cat.data_up_to and not opened:  # "since jan 2026": no end
                    args["until"] = period.end.isoformat()
                text = text[: m.start()] + text[m.end() :]
        except Exception:  # no data to resolve it against: leave the words in the query
            pass
    text = re.sub(r"\s{2,}", " ", text).strip()
    # words left dangling where the scope was: "about sizing from the" -> "about sizing"
    text = re.sub(r"(?:\s+\b(?:from|in|during|over|for|since|of|with|the|on))+\s*([?.!]*)$",
                  r"\1", text)  # fmt: skip
    return args, text


_SAYERS = r"(?:reviews?|reviewers|customers|people|shoppers|buyers|comments|users)"
_SAYING = (
    r"(?:say|says|said|saying|mention\w*|complain\w*|talk\w*(?: about)?|write|wrote|"
    r"report\w*|call\w*|note\w*|think|find|found|feel|felt)"
)
_COUNT_Q = re.compile(
    r"(?:\b(?:how many|what (?:share|percentage|proportion|fraction|percent|part)|"
    r"how (?:often|common|frequent(?:ly)?))\b|\bwhat ?%).*?\b"
    + _SAYERS
    + r"\b.*?\b"
    + _SAYING
    + r"\b"
    r"\s*(?:that\s+|about\s+|of\s+|it'?s\s+|the\s+)?(?P<what>.+?)[?.!]*$",
    re.I,
)
_BY_WORDS = r"category|categories|department|departments|dept|product|segment|month|rating"
_MOST_Q = re.compile(
    rf"\b(?:which|what) (?P<by>{_BY_WORDS})\b"
    r".*?\b(?:most|fewest|least|highest|lowest|more|biggest)\b.*?"
    r"\b(?P<kind>complain\w*|mention\w*|reviews?|comments?|praise)\b\s*"
    r"(?:about|of|mentioning|saying|that say|on)\s+(?:the\s+)?(?P<what>.+?)[?.!]*$"
    # "which dept gets the most 'too tight' comments?"
    rf"|\b(?:which|what) (?P<by2>{_BY_WORDS})\b.*?\b(?:most|fewest|least|more)\s+"
    r"['\"‘“](?P<what2>[^'\"’”]{3,60})['\"’”]\s*(?P<kind2>complain\w*|mentions?|reviews?|comments?)",
    re.I,
)
# "reviews mentioning sending it back - count by star rating"
_COUNT_BY = re.compile(
    r"^(?:reviews?|comments?)\s+(?:mentioning|saying|about|that say)\s+(?P<what>.+?)\s*[-–,:]?\s*"
    r"(?:count(?:ed)?|tally|number)\s+(?:by|per)\s+(?:star\s+)?(?P<by>rating|category|department|"
    r"month|segment|sentiment)s?\b",
    re.I,
)


def _count_route(question: str, segments: list[str], category: str | None = None) -> Route | None:
    """ "how many reviews say it runs small?", "what share of customers complain about the
    zipper?", "which category gets the most complaints about sizing?": counted, not quoted."""
    text = question.strip()
    most = _MOST_Q.search(text) or _COUNT_BY.search(text)
    m = most or _COUNT_Q.search(text)
    if m is None:
        return None
    found = m.groupdict()
    what = re.sub(
        r"^(?:it|they|that it|that they|the|its|their)\s+",
        "",
        (found.get("what") or found.get("what2") or "").strip(),
        flags=re.I,
    )
    if len(what) < 3:
        return None
    args: dict[str, Any] = {"query": what}
    if most is not None:
        by = (found.get("by") or found.get("by2") or "").lower()
        grouped = {"categories": "category", "department": "category", "departments": "category",
                   "dept": "category"}  # fmt: skip
        args["by"] = grouped.get(by, by)
    said = (
        (found.get("kind") or found.get("kind2") or "") if most is not None else m.group(0)
    ).lower()
    if re.search(r"complain", said):
        args["tone"] = "negative"
    elif re.search(r"prais", said):
        args["tone"] = "positive"
    if "by" not in args:  # "…, and which category gets that the most?", "broken down by dept"
        grouped = re.search(
            r"\bwhich (category|department|dept|segment|rating|month)\b|\b(?:broken down|split|"
            r"grouped|count(?:ed)?|break(?:ing)? (?:it )?down) (?:it )?by (?:star )?(category|"
            r"department|dept|segment|rating|month|sentiment)s?\b",
            text,
            re.I,
        )
        if grouped:
            by = (grouped[1] or grouped[2]).lower()
            args["by"] = "category" if by in ("department", "dept") else by
            args["query"] = re.sub(r"[,;]?\s*(?:and )?(?:which|broken|split|grouped|count|break)"
                                   r"\b.*$", "", what, flags=re.I).strip() or what  # fmt: skip
    if segments:
        args["segment"] = segments[0]
    if category:
        args["category"] = category
    return Route("count_reviews", args)


def _review_query(question: str, category: str | None = None) -> str:
    """What the reviews should be about: the words after "about" ("abt"), without a lead-in
    ("regarding", "the") or the category already applied as a filter ("tops being
    see-through" -> "see-through")."""
    m = re.search(r"\b(?:about|abt)\s+(.+?)[?.!]*$", question.strip(), re.I)
    if m and category:
        topic = re.sub(r"^the\s+", "", m[1], flags=re.I)
        said = mentions(topic, category)
        if said and said[0][0] == 0:
            after = topic[said[0][1] :]
            verb = r"^\s+(?:being|is|are|that (?:are|is)|which (?:are|is))\s+"
            rest = re.sub(verb, "", after, flags=re.I)
            if rest != after and len(rest) > 2:
                return rest
    if not m or len(m.group(1)) <= 2:
        return question.strip().rstrip("?")
    # "about regarding late delivery" / "about the jeans": the topic, not its lead-in
    topic = re.sub(
        r"^(?:(?:regarding|concerning|re|with|the|their|our|its)\s+)+", "", m[1], flags=re.I
    )
    return topic if len(topic) > 2 else m[1]


# --- answers ---------------------------------------------------------------------------------


def render(tool: str, facts: dict[str, Any]) -> str:
    """A short templated answer from a tool's facts (figures quoted as the facts give them):
    the tool's own ``answer`` (ToolSpec), else its plain scalar facts."""
    try:
        answer = get_tool(tool).answer
    except KeyError:
        answer = None
    if answer is not None:
        return answer(facts)
    return ", ".join(f"{k}: {v}" for k, v in facts.items() if not isinstance(v, list | dict))


def retry_with_listed_name(
    ctx: ToolContext, tool: str, args: dict[str, Any], result: ToolResult
) -> ToolResult | None:
    """When a tool says a name does not exist and lists the names that do ("no segment
    'lapsers' (segments: S1 High-value loyal, S2 Lapsing customers …)"), call it once more
    with the closest listed name (similarity >= 0.7 to the name or one of its words); None
    when there is nothing close enough to retry with."""
    import difflib

    err = result.error or ""
    bad = re.search(r"\bno (?:[a-z ]+ )?'([^']+)'", err)
    listed = re.search(r"(?:segments|values|categories|available|indexed):\s*(.+)$", err)
    if result.ok or not bad or not listed:
        return None
    given = bad[1].strip()
    keys = [k for k, v in args.items() if isinstance(v, str) and v.strip() == given]
    keys += [k for k, v in args.items() if isinstance(v, list) and any(given in str(x) for x in v)]
    text = re.sub(r";.*$|\)\s*$", "", listed[1])
    names = [re.sub(r"^S\d+\s+", "", n.strip()) for n in re.split(r",\s+(?![^(]*\))", text)]
    names = [n for n in names if n and "…" not in n]

    def score(name: str) -> float:
        words = [w for w in re.findall(r"[a-z]+", name.lower()) if len(w) >= 4]
        whole = difflib.SequenceMatcher(None, given.lower(), name.lower()).ratio()
        parts = [difflib.SequenceMatcher(None, given.lower(), w).ratio() for w in words]
        # a shared stem: "lapsers" for "lapsing", "bargainers" for "bargain"
        parts += [0.75 for w in words if len(given) >= 6 and w[:4] == given.lower()[:4]]
        return max([whole, *parts])

    ranked = sorted(names, key=lambda n: (-score(n), n))
    if not keys or not ranked or score(ranked[0]) < 0.7:
        return None
    chosen = ranked[0]
    fixed = dict(args)
    for key in keys:
        value = fixed[key]
        fixed[key] = (
            [str(x).replace(given, chosen) for x in value] if isinstance(value, list) else chosen
        )
    again = call_tool(ctx, tool, fixed)
    if again.ok and again.facts is not None:
        again.facts = {**again.facts, "note_on_names": f"'{given}' read as '{chosen}'"}
        return again
    return None


def route_and_answer(
    ctx: ToolContext,
    question: str,
    state: DialogueState | None = None,
    *,
    declines_checked: bool = False,
    decision: Route | None = None,
) -> tuple[str, list[ToolResult]]:
    """Route, call the tool, render the answer (or the tool's error); a question no tool can
    answer gets a decline and no call. ``decision``: the route already taken, if any."""
    declined = None
    if not declines_checked:  # the session has checked already, knowing the conversation
        declined = decline(
            question,
            follow_up=state is not None and state.active,
            names=domain_names(ctx),
            can=can_answer(ctx),
        )
    if declined is not None:
        return declined.answer, []
    if decision is None:
        decision = route(ctx, question, state)
    lacking = no_data(ctx, decision, question)
    if lacking is not None:
        return lacking.answer, []
    result = call_tool(ctx, decision.tool, decision.args)
    retried = retry_with_listed_name(ctx, decision.tool, decision.args, result)
    if retried is not None:
        result = retried
    if result.facts is None:
        return f"I could not answer that with {decision.tool}: {result.error}", [result]
    return render(decision.tool, result.facts), [result]
