"""Reversible PII masking: customer details never reach a hosted model in the clear.

When ``llm.mask_pii`` is on (the default for hosted providers), everything sent to the model
(the question, tool outputs, review quotes) goes through :meth:`Redactor.mask`, and everything
the model says comes back through :meth:`Redactor.unmask` before the user sees it.

What is masked
    * ``<EMAIL_n>``: e-mail addresses.
    * ``<PHONE_n>``: phone numbers, international (``+44 7700 900123``, ``+1 (555) 123-4567``)
      and local (``07700 900123``, ``(020) 7946 0958``, ``555-123-4567``, ``555 123 4567``)
      with spaces, dashes, dots or parentheses. A local number must start with ``0`` or ``(``
      or follow the North-American 3-3-4 shape (with spaces only when the area code starts
      with 2-9), and have 9 to 12 digits; so order amounts (``1,234.56``), dates
      (``2026-11-24``, ``24.11.2026``) and ids (``C000042``) are left alone.
    * ``<CARD_n>``: payment card numbers: 13 to 19 digits, run together or in groups split by
      one kind of separator (``4111 1111 1111 1111``, ``3782-822463-10005``), that pass the
      Luhn check. A 16-digit order number that fails it stays.
    * ``<IBAN_n>``: IBANs, with or without spaces (``GB82 WEST 1234 5698 7654 32``), 15 to 34
      characters, that pass the ISO 13616 mod-97 check.
    * ``<ADDRESS_n>``: street addresses: a house number (``12``, ``221B``, ``12-14``), one to
      four capitalised words (or an ordinal: ``5th``) and a street word (``Street``/``St``,
      ``Road``/``Rd``, ``Avenue``/``Ave``, ``Lane``, ``Drive``, ``Boulevard``, ``Close``,
      ``Way``...), with a trailing compass suffix (``1600 Pennsylvania Ave NW``). Amounts,
      dates, percentages and ids have no street word after them, so they stay.
    * ``<CUSTOMER_n>``: customer ids, either known ids (whole tokens, case-insensitive) or
      matches of ``id_pattern`` (whole tokens). All-digit known ids shorter than 6 digits are
      only masked right after "customer"/"client" (``customer 4217``): elsewhere they are
      indistinguishable from counts and amounts.
    * ``<PERSON_n>``: person names. Known names (the customer table's names) with two or more
      words match as whole words in any case; one-word known names only when capitalised and
      not a common English word (``Grace``, ``Max``, ``Will`` and ``May`` stay, because "grace
      period" and "Max spend" are not people). Context patterns find other names: 1 to 3
      capitalised words after "my name is", "Mr/Mrs/Ms/Miss/Mx/Dr", "ask(ed) for",
      "speak/spoke/talked to", "signed", "regards", "sincerely". :func:`names_in_table` finds
      the known names in a customers table under any name-like header ("First Name",
      "last_name", "Full Name", "Customer Name", "Contact", "NAME"...), first and last names
      of a row also as one full name.

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

KINDS = ("EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "PERSON", "CUSTOMER", "TEXT")

# Any placeholder-shaped text: used to restore, and to escape look-alikes found in data.
_PLACEHOLDER_ANY = re.compile(rf"<\s*({'|'.join(KINDS)})_(\d{{1,9}})\s*>", re.I)

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
      | [2-9]\d{{2}}\ \d{{3}}\ \d{{4}}                                        # 555 123 4567
    )
    (?![\w<>])(?![.,:/\-]\d)
    """,
    re.VERBOSE,
)
_DATE_LIKE = re.compile(r"\d{1,4}([./\-])\d{1,2}\1\d{1,4}")

# Card numbers: digits run together, or groups with one kind of separator (checked in code,
# with the digit count and Luhn). Not glued to a word, an amount or a longer number.
_CARD = re.compile(
    r"(?<![\w$€£¥.,/:+\-<>])(?:\d{13,19}|\d{2,6}(?:[ \-]\d{1,7}){1,6})(?![\w<>])(?![.,:/\-]\d)"
)
# IBANs: country, check digits, then up to 30 letters/digits, in groups of four or not.
_IBAN = re.compile(r"(?<![\w<>])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{1,4}){3,8}(?![\w<>])")
_IBAN_COUNTRY_LENGTHS = range(15, 35)

# Street addresses: house number, 1-4 capitalised (or ordinal) words, a street word.
_STREET_WORDS = (
    "Street|St|Road|Rd|Avenue|Ave|Av|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|"
    "Square|Sq|Terrace|Terr|Close|Crescent|Cres|Gardens|Grove|Parkway|Pkwy|Highway|Hwy|"
    "Way|Row|Mews|Walk|Circle|Cir|Alley|Broadway|Quay|Wharf|Embankment|Hill"
)
_ADDRESS = re.compile(
    rf"""
    (?<![\w$€£¥.,/:+\-<>#])
    \d{{1,5}}[A-Za-z]?(?:[\-/]\d{{1,5}}[A-Za-z]?)?,?[ ]      # 12 / 221B / 12-14
    (?:(?:[A-Z][\w'’\-]*\.?|\d{{1,3}}(?:st|nd|rd|th))[ ]){{1,4}}?  # Baker / 5th
    (?i:{_STREET_WORDS})\b                                    # Street / St
    (?:[ ](?:NE|NW|SE|SW|N|S|E|W)\b)?                          # NW
    """,
    re.VERBOSE,
)

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


# Headers of customer-table columns that hold a person's name, with case, spaces, dashes and
# underscores removed ("First Name", "first_name", "FIRSTNAME" are all "firstname").
_NAME_HEADERS = _wordset(
    """
    name names fullname customername clientname contactname personname accountname
    firstname givenname forename forenames middlename lastname surname familyname
    customerfirstname customerlastname customerfullname billingname shippingname
    """
)
_FIRST_HEADERS = _wordset("firstname givenname forename forenames customerfirstname")
_LAST_HEADERS = _wordset("lastname surname familyname customerlastname")
# Headers that hold a name only sometimes ("Contact" may be "Email" / "SMS"): their column
# counts when most of its values look like a full name (two or more words, letters only).
_MAYBE_NAME_HEADERS = _wordset("contact contactperson primarycontact owner")
_NAME_VALUE = re.compile(r"[^\W\d_]+(?:['’.\-]?[ ]?[^\W\d_]+)*\.?")


def header_key(header: object) -> str:
    """A column header without case, spaces or punctuation: ``"First Name"`` -> ``firstname``."""
    return re.sub(r"[\W_]+", "", str(header)).casefold()


def is_name_header(header: object) -> bool:
    """Whether a customers-table column with this header holds people's names."""
    return header_key(header) in _NAME_HEADERS


def names_in_table(frame: Any) -> list[str]:
    """Known names for :class:`Redactor` from a customers table (a pandas DataFrame): the
    values of every name-like column (:func:`is_name_header`, and "Contact"-like columns whose
    values mostly look like full names), plus each row's first and last name joined, so
    ``"Jane Doe"`` is known when the table has ``First Name`` and ``Last Name``. Values with
    digits or ``@`` (a phone or e-mail in the wrong column) are left to the other rules."""
    names: list[str] = []
    firsts: list[Any] = []
    lasts: list[Any] = []
    for column in frame.columns:
        key = header_key(column)
        values = [str(v).strip() for v in frame[column].tolist() if _is_value(v)]
        looks = [v for v in values if _NAME_VALUE.fullmatch(v)]
        if key in _MAYBE_NAME_HEADERS:
            full = [v for v in looks if len(v.split()) > 1]
            if len(full) * 2 >= len(values):
                names += full  # one-word values here are as likely "Email" as "Priya"
            continue
        if key not in _NAME_HEADERS:
            continue
        names += looks
        if key in _FIRST_HEADERS:
            firsts.append(frame[column].tolist())
        elif key in _LAST_HEADERS:
            lasts.append(frame[column].tolist())
    if firsts and lasts:
        for first, last in zip(firsts[0], lasts[0], strict=False):
            if _is_value(first) and _is_value(last):
                full = f"{str(first).strip()} {str(last).strip()}"
                if _NAME_VALUE.fullmatch(full):
                    names.append(full)
    return list(dict.fromkeys(names))


def _is_value(value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):  # None / NaN
        return False
    return bool(str(value).strip())


def _norm_word(word: str) -> str:
    return word.replace("’", "'").casefold()


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(compact: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1."""
    if len(compact) not in _IBAN_COUNTRY_LENGTHS or not compact[2:4].isdigit():
        return False
    rotated = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rotated)) % 97 == 1


def _valid_card(candidate: str) -> int | None:
    """Length of the longest prefix of ``candidate`` (cut at a group) that is a card number."""
    while candidate:
        seps = set(re.findall(r"\D", candidate))
        digits = re.sub(r"\D", "", candidate)
        if len(seps) <= 1 and 13 <= len(digits) <= 19 and _luhn_ok(digits):
            return len(candidate)
        cut = re.search(r"[ \-]\d+$", candidate)
        if not cut:
            return None
        candidate = candidate[: cut.start()]
    return None


def _valid_iban(candidate: str) -> int | None:
    """Length of the longest prefix of ``candidate`` (cut at a group) that is an IBAN."""
    while candidate:
        if _iban_ok(candidate.replace(" ", "")):
            return len(candidate)
        cut = re.search(r" ?[A-Z0-9]{1,4}$", candidate)
        if not cut or cut.start() < 4:
            return None
        candidate = candidate[: cut.start()]
    return None


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
        hits.extend(_find_checked(text, _IBAN, _valid_iban, "IBAN", 1))
        hits.extend(_find_checked(text, _CARD, _valid_card, "CARD", 1))
        hits.extend(self._find_ids(text))
        hits.extend(self._find_phones(text))
        hits.extend(_Hit(*m.span(), "ADDRESS", 3) for m in _ADDRESS.finditer(text))
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


def _find_checked(
    text: str, pattern: re.Pattern[str], valid: Any, kind: str, priority: int
) -> Iterable[_Hit]:
    for m in pattern.finditer(text):
        span = valid(m.group(0))
        if span:
            yield _Hit(m.start(), m.start() + span, kind, priority)


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
