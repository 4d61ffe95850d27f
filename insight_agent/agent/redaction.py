"""Reversible PII masking: customer details never reach a hosted model in the clear.

When ``llm.mask_pii`` is on (the default for hosted providers), everything sent to the model
(the question, tool outputs, review quotes) goes through :meth:`Redactor.mask`, and everything
the model says comes back through :meth:`Redactor.unmask` before the user sees it.

What is masked
    * ``<EMAIL_n>``: e-mail addresses.
    * ``<PHONE_n>``: phone numbers, international (``+44 7700 900123``, ``+1 (555) 123-4567``)
      and local (``07700 900123``, ``(020) 7946 0958``, ``555-123-4567``) with spaces, dashes,
      dots or parentheses. A local number must start with ``0`` or ``(`` or follow the
      North-American 3-3-4 shape, and have 9 to 12 digits; so order amounts (``1,234.56``),
      dates (``2026-11-24``, ``24.11.2026``) and ids (``C000042``) are left alone.
    * ``<CUSTOMER_n>``: customer ids, either known ids (whole tokens, case-insensitive) or
      matches of ``id_pattern`` (whole tokens). All-digit known ids shorter than 6 digits are
      only masked right after "customer"/"client" (``customer 4217``): elsewhere they are
      indistinguishable from counts and amounts.
    * ``<PERSON_n>``: person names. Known names (the customer table's names) with two or more
      words match as whole words in any case; one-word known names only when capitalised and
      not a common English word (``Grace``, ``Max``, ``Will`` and ``May`` stay, because "grace
      period" and "Max spend" are not people). Context patterns find other names: 1 to 3
      capitalised words after "my name is", "Mr/Mrs/Ms/Miss/Mx/Dr", "ask(ed) for",
      "speak/spoke/talked to", "signed", "regards", "sincerely".

Placeholders
    The same exact string always gets the same placeholder within one :class:`Redactor`
    (``"Jane Doe"`` twice is ``<PERSON_1>`` twice; ``"JANE DOE"`` is another placeholder, so
    unmasking restores the text exactly). Text that already looks like a placeholder but was not
    issued by this Redactor (a review that literally says ``<EMAIL_1>``) is itself masked as
    ``<TEXT_n>``, so it cannot collide with a real one and round-trips unchanged. Placeholders
    this Redactor issued are left alone, which makes masking idempotent.

    :meth:`Redactor.unmask` also restores placeholders the model wrote inside other text
    (``<PERSON_1>'s order``), in another case or with spaces (``< person_1 >``). Dict keys are
    not masked (they are field names chosen by tools), only values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("EMAIL", "PHONE", "PERSON", "CUSTOMER", "TEXT")

# Any placeholder-shaped text: used to restore, and to escape look-alikes found in data.
_PLACEHOLDER_ANY = re.compile(r"<\s*(EMAIL|PHONE|PERSON|CUSTOMER|TEXT)_(\d{1,9})\s*>", re.I)

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w@-])"
)

_SEP = r"[ .\-]?"
_PHONE = re.compile(
    rf"""
    (?<![\w$€£¥.,/:+\-<>()])        # not inside a word, amount, date, number or placeholder
    (?:
        \+\d{{1,3}}(?:{_SEP}\(0?\d{{1,4}}\))?(?:{_SEP}\d{{1,6}}){{1,6}}     # +44 7700 900123
      | \(0?\d{{2,5}}\){_SEP}\d{{2,6}}(?:{_SEP}\d{{2,6}}){{0,3}}           # (020) 7946 0958
      | 0\d{{1,5}}(?:{_SEP}\d{{2,6}}){{1,5}}                                # 07700 900123
      | \d{{3}}[.\-]\d{{3}}[.\-]\d{{4}}                                     # 555-123-4567
    )
    (?![\w<>])(?![.,:/\-]\d)
    """,
    re.VERBOSE,
)
_DATE_LIKE = re.compile(r"\d{1,4}([./\-])\d{1,2}\1\d{1,4}")

# A token that might be a customer id: letters, digits, and inner dots, dashes or underscores.
_ID_TOKEN = re.compile(r"(?<![\w<>])\w(?:[\w.\-]*\w)?(?![\w<>])")
_ID_CONTEXT = re.compile(r"\b(?:customer|client)(?:\s+(?:id|no\.?|number|#))?\s*[:#]?\s*$", re.I)

# Words: letters with inner apostrophes or hyphens (O'Brien, Mary-Jane).
_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_NAME_CUE = re.compile(
    r"""
    \b(?:
        my\ name\ is | my\ name's | ask(?:ed)?\ for | (?:speak|spoke|talked|talking)\ to
      | signed,? | regards, | sincerely, | (?-i:Mr|Mrs|Ms|Miss|Mx|Dr)\b\.?
    )[ \t]*(?:\r?\n[ \t]*)?
    """,
    re.I | re.VERBOSE,
)


def _wordset(words: str) -> frozenset[str]:
    """A set from a whitespace-separated word list (easier to read than a list literal)."""
    return frozenset(words.split())


# Capitalised words that follow a cue but are not names.
_NOT_NAMES = _wordset(
    """
    a an the i im i'm it this that we you he she they my our your their his her
    customer customers service support help team manager staff store shop someone anyone
    refund refunds return returns exchange delivery order orders sales the and or but
    """
)
# One-word names that are also everyday words; masked only through a context cue.
_COMMON_WORDS = _wordset(
    """
    will may max grace hope rose lily mark bill joy june april august summer dawn faith art
    guy rich page hill wood brown green white black young king long best bell hall walker
    turner cook baker moore mason miller carter hunter ray drew frank ivy holly amber ruby
    pearl jack harry grant lane chase rob pat sue don penny sandy sky river autumn dean
    """
)


def _norm_word(word: str) -> str:
    return word.replace("’", "'").casefold()


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    kind: str
    priority: int  # lower wins when hits overlap


class Redactor:
    """Masks customer PII with stable placeholders and restores it.

    ``known_ids`` and ``known_names`` come from the customer table; ``id_pattern`` is a regular
    expression for customer ids (matched as a whole token), e.g. ``r"C\\d{6}"``.
    """

    def __init__(
        self,
        known_ids: Iterable[str] = (),
        known_names: Iterable[str] = (),
        id_pattern: str | None = None,
    ) -> None:
        self._ids: set[str] = set()
        self._short_numeric_ids: set[str] = set()
        odd_ids: list[str] = []
        for raw in known_ids:
            value = str(raw).strip()
            if not value:
                continue
            if value.isdigit() and len(value) < 6:
                self._short_numeric_ids.add(value)
            elif _ID_TOKEN.fullmatch(value):
                self._ids.add(value.casefold())
            else:
                odd_ids.append(value)
        # Ids with other characters ("ACME:42") are rare: a small alternation handles them.
        self._odd_ids = (
            re.compile(
                r"(?<![\w<>])(?:"
                + "|".join(re.escape(v) for v in sorted(odd_ids, key=len, reverse=True))
                + r")(?![\w<>])",
                re.I,
            )
            if odd_ids
            else None
        )
        self._id_pattern = (
            re.compile(rf"(?<![\w<>])(?:{id_pattern})(?![\w<>])") if id_pattern else None
        )
        # Known names indexed by first word, as tuples of normalised words.
        self._names: dict[str, list[tuple[str, ...]]] = {}
        self._single_names: set[str] = set()
        for raw in known_names:
            words = tuple(_norm_word(w) for w in _WORD.findall(str(raw)))
            if not words:
                continue
            if len(words) == 1:
                if words[0] not in _COMMON_WORDS and len(words[0]) > 1:
                    self._single_names.add(words[0])
                continue
            self._names.setdefault(words[0], []).append(words)
        for options in self._names.values():
            options.sort(key=len, reverse=True)  # longest name first
        self._to_placeholder: dict[str, str] = {}
        self._to_value: dict[str, str] = {}
        self._counters: dict[str, int] = dict.fromkeys(KINDS, 0)

    # --- public API -------------------------------------------------------------------------

    @property
    def mapping(self) -> dict[str, str]:
        """Placeholder -> original text for everything masked so far (a copy)."""
        return dict(self._to_value)

    def mask(self, text: str) -> str:
        """``text`` with PII replaced by placeholders (see the module docstring)."""
        if not text:
            return text
        issued = set(self._to_value)  # placeholders issued before this call are "already masked"
        # Replacing one value can expose another ("a@b.co.C000042": the id only stands alone
        # once the e-mail is a placeholder), so repeat until nothing changes; this is what
        # makes masking idempotent. Each pass only masks text outside placeholders.
        for _ in range(8):
            masked = self._mask_once(text, issued)
            if masked == text:
                break
            text = masked
            issued = set(self._to_value)
        return text

    def _mask_once(self, text: str, issued: set[str]) -> str:
        hits = self._find(text, issued)
        out: list[str] = []
        pos = 0
        for hit in hits:
            out.append(text[pos : hit.start])
            if hit.kind == "OWN":
                out.append(text[hit.start : hit.end])
            else:
                out.append(self._placeholder(hit.kind, text[hit.start : hit.end]))
            pos = hit.end
        out.append(text[pos:])
        return "".join(out)

    def unmask(self, text: str) -> str:
        """``text`` with every placeholder this Redactor issued replaced by its original."""
        if not text or not self._to_value:
            return text

        def restore(m: re.Match[str]) -> str:
            key = f"<{m.group(1).upper()}_{int(m.group(2))}>"
            return self._to_value.get(key, m.group(0))

        return _PLACEHOLDER_ANY.sub(restore, text)

    def mask_obj(self, obj: Any) -> Any:
        """A copy of a JSON-like object with every string value masked (keys are kept)."""
        return _map_strings(obj, self.mask)

    def unmask_obj(self, obj: Any) -> Any:
        """A copy of a JSON-like object with every string value unmasked."""
        return _map_strings(obj, self.unmask)

    # --- internals ---------------------------------------------------------------------------

    def _placeholder(self, kind: str, value: str) -> str:
        key = f"{kind}\0{value}"
        found = self._to_placeholder.get(key)
        if found:
            return found
        self._counters[kind] += 1
        placeholder = f"<{kind}_{self._counters[kind]}>"
        self._to_placeholder[key] = placeholder
        self._to_value[placeholder] = value
        return placeholder

    def _find(self, text: str, issued: set[str]) -> list[_Hit]:
        """All PII spans in ``text``, overlaps resolved, in text order."""
        hits: list[_Hit] = []
        for m in _PLACEHOLDER_ANY.finditer(text):
            own = m.group(0) in issued
            hits.append(_Hit(m.start(), m.end(), "OWN" if own else "TEXT", 0))
        hits.extend(_Hit(*m.span(), "EMAIL", 1) for m in _EMAIL.finditer(text))
        hits.extend(self._find_ids(text))
        hits.extend(self._find_phones(text))
        hits.extend(self._find_names(text))
        # Greedy: higher priority first, then longer, then earlier; drop overlapping losers.
        hits.sort(key=lambda h: (h.priority, -(h.end - h.start), h.start))
        taken: list[_Hit] = []
        for hit in hits:
            if all(hit.end <= t.start or hit.start >= t.end for t in taken):
                taken.append(hit)
        taken.sort(key=lambda h: h.start)
        return taken

    def _find_ids(self, text: str) -> Iterable[_Hit]:
        if self._ids or self._short_numeric_ids:
            for m in _ID_TOKEN.finditer(text):
                token = m.group(0)
                short = token in self._short_numeric_ids and _ID_CONTEXT.search(
                    text, max(0, m.start() - 40), m.start()
                )
                if token.casefold() in self._ids or short:
                    yield _Hit(*m.span(), "CUSTOMER", 2)
        for pattern in (self._odd_ids, self._id_pattern):
            if pattern is not None:
                for m in pattern.finditer(text):
                    if m.end() > m.start():
                        yield _Hit(*m.span(), "CUSTOMER", 2)

    def _find_phones(self, text: str) -> Iterable[_Hit]:
        for m in _PHONE.finditer(text):
            span = _valid_phone(m.group(0))
            if span:
                yield _Hit(m.start(), m.start() + span, "PHONE", 3)

    def _find_names(self, text: str) -> Iterable[_Hit]:
        words = list(_WORD.finditer(text))
        norm = [_norm_word(w.group(0)) for w in words]
        for i, word in enumerate(words):
            options = self._names.get(norm[i])
            if options:
                for name in options:
                    end = i + len(name)
                    if (
                        end <= len(words)
                        and tuple(norm[i:end]) == name
                        and all(
                            text[words[j].end() : words[j + 1].start()].isspace()
                            for j in range(i, end - 1)
                        )
                        and _word_edges_ok(text, word.start(), words[end - 1].end())
                    ):
                        yield _Hit(word.start(), words[end - 1].end(), "PERSON", 4)
                        break
            if (
                norm[i] in self._single_names
                and word.group(0)[0].isupper()
                and _word_edges_ok(text, word.start(), word.end())
            ):
                yield _Hit(word.start(), word.end(), "PERSON", 4)
        for cue in _NAME_CUE.finditer(text):
            span = _name_after(text, cue.end())
            if span:
                yield _Hit(*span, "PERSON", 4)


def _word_edges_ok(text: str, start: int, end: int) -> bool:
    """A name is a whole word: no letter, digit or placeholder bracket glued to it."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or before in "_<>") and not (after.isalnum() or after in "_<>")


def _name_after(text: str, pos: int) -> tuple[int, int] | None:
    """Span of 1-3 capitalised words starting at ``pos`` (single spaces between them)."""
    start = end = None
    for m in _WORD.finditer(text, pos):
        gap = text[end if end is not None else pos : m.start()]
        if (end is None and gap) or (end is not None and gap != " "):
            break
        word = m.group(0)
        if not word[0].isupper() or _norm_word(word) in _NOT_NAMES or len(word) < 2:
            break
        if not _word_edges_ok(text, m.start(), m.end()):
            break
        start = m.start() if start is None else start
        end = m.end()
        if len(_WORD.findall(text[start:end])) == 3:
            break
    return (start, end) if start is not None and end is not None else None


def _valid_phone(candidate: str) -> int | None:
    """Length of the longest prefix of ``candidate`` that is a plausible phone number."""
    while candidate:
        digits = sum(c.isdigit() for c in candidate)
        international = candidate.startswith("+")
        low, high = (8, 15) if international else (9, 12)
        if low <= digits <= high and not _DATE_LIKE.fullmatch(candidate):
            return len(candidate)
        if digits < low:
            return None
        # Too many digits: drop the last group ("+44 7700 900123 2026" -> "+44 7700 900123").
        cut = re.search(r"[ .\-]?\(?\d+\)?$", candidate)
        if not cut or cut.start() == 0:
            return None
        candidate = candidate[: cut.start()]
    return None


def _map_strings(obj: Any, fn: Any) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {key: _map_strings(value, fn) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_map_strings(item, fn) for item in obj)
    return obj
