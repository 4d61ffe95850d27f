"""Render a :class:`~insight_agent.reports.document.Document` as Markdown or as one HTML file.

Both renderers are pure functions of the document: no clock, no environment, no randomness, so
the same document gives the same bytes. Everything that comes from data (review quotes, segment
names, table cells, captions) is escaped as text. Prose blocks (:class:`Paragraph`,
:class:`Callout`) additionally honour a tiny Markdown subset (``**bold**``, ``*italic*``,
`` `code` ``, ``"- "`` bullets), parsed here and re-emitted, so nothing else in them (raw HTML,
links, images, headings, tables) ever reaches a Markdown or HTML renderer as markup.

Markdown assets: charts are written as separate PNG files next to the ``.md`` (``chart-01.png``,
``chart-02.png``, … in document order) and linked relatively. Base64 data URIs in Markdown are
dropped by common viewers (GitHub among them) and make the file unreadable as text and noisy in
diffs; pass ``embed_images=True`` for a single-file Markdown anyway. The HTML report is always
one self-contained file.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote as url_quote

from insight_agent.reports.document import (
    Callout,
    Chart,
    Document,
    Heading,
    KeyFigures,
    Paragraph,
    Quote,
    Table,
    format_value,
)

# No scripts, no remote anything: only inline styles and data: images.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

# --------------------------------------------------------------------------- the Markdown subset

# One inline token: a code span (any run of backticks, closed by the same run), **strong** or
# *emphasis*. Emphasis needs non-space characters right inside the markers, as in CommonMark.
_INLINE = re.compile(
    r"(?P<tick>`+)(?P<code>.+?)(?P=tick)"
    r"|\*\*(?P<strong>[^\s*](?:.*?[^\s*])?)\*\*"
    r"|\*(?P<em>[^\s*](?:[^*]*?[^\s*])?)\*"
)
_BULLET = re.compile(r"^\s*- (?P<item>.*)$")

# An inline node: ("text", str) | ("code", str) | ("strong", [nodes]) | ("em", [nodes]).
Node = tuple[str, "str | list[Node]"]


def parse_inline(text: str) -> list[Node]:
    """Split one line of prose into text, code, strong and emphasis nodes."""
    nodes: list[Node] = []
    pos = 0
    for m in _INLINE.finditer(text):
        if m.start() > pos:
            nodes.append(("text", text[pos : m.start()]))
        if m.group("tick"):
            nodes.append(("code", m.group("code")))
        elif m.group("strong") is not None:
            nodes.append(("strong", parse_inline(m.group("strong"))))
        else:
            nodes.append(("em", parse_inline(m.group("em"))))
        pos = m.end()
    if pos < len(text):
        nodes.append(("text", text[pos:]))
    return nodes


def parse_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Prose as ``("p", lines)`` paragraphs and ``("ul", items)`` bullet lists.

    Blank lines end a paragraph; lines starting with ``"- "`` are bullet items; an indented line
    right after an item continues it.
    """
    blocks: list[tuple[str, list[str]]] = []
    for raw in _normalise(text).split("\n"):
        line = raw.strip()
        bullet = _BULLET.match(raw)
        current = blocks[-1] if blocks else None
        if not line:
            blocks.append(("", []))  # a break; dropped below
        elif bullet:
            if current and current[0] == "ul":
                current[1].append(bullet.group("item").strip())
            else:
                blocks.append(("ul", [bullet.group("item").strip()]))
        elif current and current[0] == "ul" and raw[:1].isspace():
            current[1][-1] += " " + line
        elif current and current[0] == "p":
            current[1].append(line)
        else:
            blocks.append(("p", [line]))
    return [b for b in blocks if b[0]]


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------- Markdown output

# Characters that can start markup anywhere in a line (emphasis, code, links, raw HTML,
# entities, GFM tables/strikethrough, math on GitHub, heading closers). Escaped with a
# backslash, which CommonMark turns back into the literal character.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~$#])")
# Markup that only counts at the start of a line: block quotes, list items, setext underlines,
# ordered lists ("1." / "1)"), and "+" bullets.
_MD_LINE_START = re.compile(r"^([-+=>])|^(\d+)([.)])")


def md_escape(text: str) -> str:
    """Escape ``text`` for use inside a line (a table cell, a heading after its ``#``, a
    caption between ``*``): Markdown shows it literally. Newlines become spaces.

    Block markers ("1.", "-", "+") only count at the start of a line, which is never where this
    text goes, so they are left alone (``_md_escape_line`` handles whole lines).
    """
    one_line = " ".join(_normalise(text).split("\n")).strip()
    return _MD_SPECIAL.sub(r"\\\1", one_line)


def _md_escape_line(line: str) -> str:
    # Leading spaces are dropped: rendered Markdown collapses them anyway, and four of them
    # would turn the line into a code block.
    return _escape_line_start(_MD_SPECIAL.sub(r"\\\1", line.lstrip()))


def _escape_line_start(line: str) -> str:
    """Backslash-escape a block marker at the start of an already escaped line."""
    return _MD_LINE_START.sub(
        lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), line
    )


def _md_code(code: str) -> str:
    """A code span holding ``code`` literally (fence longer than any backtick run inside)."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if code.startswith(("`", " ")) or code.endswith(("`", " ")) else ""
    return f"{fence}{pad}{code}{pad}{fence}"


def _md_inline(nodes: list[Node]) -> str:
    out = []
    for kind, value in nodes:
        if kind == "text":
            out.append(_MD_SPECIAL.sub(r"\\\1", str(value)))
        elif kind == "code":
            out.append(_md_code(str(value)))
        elif kind == "strong":
            out.append(f"**{_md_inline(value)}**")  # type: ignore[arg-type]
        else:
            out.append(f"*{_md_inline(value)}*")  # type: ignore[arg-type]
    return "".join(out)


def _md_prose_line(line: str) -> str:
    """One line of prose: the inline subset re-emitted, everything else escaped."""
    # Block markup at the start of the line ("# ", "> ", "1. ", "---") stays literal.
    return _escape_line_start(_md_inline(parse_inline(line.lstrip())))


def _md_prose(text: str) -> str:
    parts = []
    for kind, lines in parse_blocks(text):
        if kind == "ul":
            parts.append("\n".join(f"- {_md_prose_line(item)}" for item in lines))
        else:
            parts.append("\n".join(_md_prose_line(line) for line in lines))
    return "\n\n".join(parts)


def _md_table(table: Table) -> str:
    def cell(value: object) -> str:
        return format_value(value).replace("\n", " ").strip()

    marks = {"left": ":---", "right": "---:", "center": ":---:"}
    lines = []
    if table.caption:
        lines += [f"*{md_escape(table.caption)}*", ""]
    lines.append("| " + " | ".join(md_escape(c) for c in table.columns) + " |")
    lines.append("| " + " | ".join(marks[a] for a in table.alignments()) + " |")
    for row in table.rows:
        lines.append("| " + " | ".join(md_escape(cell(v)) for v in row) + " |")
    if not table.rows:
        lines += ["", "*No rows.*"]
    return "\n".join(lines)


def _md_quote(quote: Quote) -> str:
    lines = []
    raw = _normalise(quote.text).strip().split("\n")
    for i, line in enumerate(raw):
        escaped = _md_escape_line(line.rstrip())
        # A trailing backslash is a hard line break, so the review keeps its own line breaks.
        hard_break = escaped and i + 1 < len(raw) and raw[i + 1].strip()
        lines.append(f"> {escaped}\\" if hard_break else f"> {escaped}".rstrip())
    attribution = f"— review {_md_code(str(quote.review_id))}"
    if quote.meta:
        attribution += f" · {md_escape(quote.meta)}"
    return "\n".join([*lines, ">", f"> {attribution}"])


def _md_callout(callout: Callout) -> str:
    label = "Warning" if callout.kind == "warning" else "Note"
    body = _md_prose(callout.text)
    lines = [f"**{label}:** {line}" if i == 0 else line for i, line in enumerate(body.split("\n"))]
    return "\n".join(f"> {line}".rstrip() for line in lines)


def _md_key_figures(figures: KeyFigures) -> str:
    labels = [md_escape(label) for label, _ in figures.items]
    values = [md_escape(format_value(value)) for _, value in figures.items]
    values = [f"**{v}**" if v else "" for v in values]
    return "\n".join(
        [
            "| " + " | ".join(labels) + " |",
            "| " + " | ".join(":---:" for _ in labels) + " |",
            "| " + " | ".join(values) + " |",
        ]
    )


def chart_filename(index: int) -> str:
    """File name of the ``index``-th chart (1-based) of a Markdown report: ``chart-01.png``."""
    return f"chart-{index:02d}.png"


def render_markdown(
    doc: Document,
    assets_dir: Path | None = None,
    assets_prefix: str = "",
    *,
    embed_images: bool = False,
) -> tuple[str, dict[str, bytes]]:
    """The document as Markdown text, plus its chart PNGs by file name.

    ``assets_prefix`` is the folder the links point into, relative to the ``.md`` (``"r_files"``
    or ``"r_files/"``: a missing ``/`` is added; ``""`` means next to the ``.md``): charts are
    linked as ``r_files/chart-01.png``, ``r_files/chart-02.png``… in document order. The
    returned dict holds those files by name; when ``assets_dir`` is given they are also written
    there, atomically (so the caller need not). With ``embed_images=True`` charts become
    ``data:`` URIs instead and the dict is empty.
    """
    if assets_prefix and not assets_prefix.endswith("/"):
        assets_prefix += "/"
    out = [f"# {md_escape(doc.title)}"]
    if doc.subtitle:
        out.append(f"*{md_escape(doc.subtitle)}*")
    files: dict[str, bytes] = {}
    for block in doc.blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + md_escape(block.text))
        elif isinstance(block, Paragraph):
            text = _md_prose(block.text)
            if text:
                out.append(text)
        elif isinstance(block, Table):
            out.append(_md_table(block))
        elif isinstance(block, Chart):
            if embed_images:
                target = "data:image/png;base64," + base64.b64encode(block.png).decode("ascii")
            else:
                name = chart_filename(len(files) + 1)
                files[name] = bytes(block.png)
                target = url_quote(assets_prefix + name, safe="/")
            figure = f"![{md_escape(block.alt)}]({target})"
            if block.caption:
                figure += f"\n\n*{md_escape(block.caption)}*"
            out.append(figure)
        elif isinstance(block, Quote):
            out.append(_md_quote(block))
        elif isinstance(block, Callout):
            out.append(_md_callout(block))
        elif isinstance(block, KeyFigures):
            out.append(_md_key_figures(block))
    if doc.footer:
        out += ["---", f"*{md_escape(doc.footer)}*"]
    if assets_dir is not None and files:
        from insight_agent.workspace import atomic_write_bytes

        for name, data in files.items():
            atomic_write_bytes(Path(assets_dir) / name, data)
    return "\n\n".join(out) + "\n", files


# --------------------------------------------------------------------------- HTML output


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_inline(nodes: list[Node]) -> str:
    out = []
    for kind, value in nodes:
        if kind == "text":
            out.append(_esc(str(value)))
        elif kind == "code":
            out.append(f"<code>{_esc(str(value))}</code>")
        elif kind == "strong":
            out.append(f"<strong>{_html_inline(value)}</strong>")  # type: ignore[arg-type]
        else:
            out.append(f"<em>{_html_inline(value)}</em>")  # type: ignore[arg-type]
    return "".join(out)


def _html_prose(text: str) -> str:
    parts = []
    for kind, lines in parse_blocks(text):
        if kind == "ul":
            items = "".join(f"<li>{_html_inline(parse_inline(item))}</li>\n" for item in lines)
            parts.append(f"<ul>\n{items}</ul>")
        else:
            body = "\n".join(_html_inline(parse_inline(line)) for line in lines)
            parts.append(f"<p>{body}</p>")
    return "\n".join(parts)


def _html_table(table: Table) -> str:
    classes = {"left": "", "right": ' class="num"', "center": ' class="center"'}
    aligns = [classes[a] for a in table.alignments()]
    out = ['<div class="table-wrap">', "<table>"]
    if table.caption:
        out.append(f"<caption>{_esc(table.caption)}</caption>")
    head = "".join(
        f'<th scope="col"{cls}>{_esc(name)}</th>'
        for name, cls in zip(table.columns, aligns, strict=True)
    )
    out += ["<thead>", f"<tr>{head}</tr>", "</thead>", "<tbody>"]
    for row in table.rows:
        cells = "".join(
            f"<td{cls}>{_esc(format_value(v))}</td>" for v, cls in zip(row, aligns, strict=True)
        )
        out.append(f"<tr>{cells}</tr>")
    if not table.rows:
        out.append(f'<tr><td class="empty" colspan="{len(table.columns)}">No rows.</td></tr>')
    out += ["</tbody>", "</table>", "</div>"]
    return "\n".join(out)


def _html_chart(chart: Chart) -> str:
    width, height = chart.size()
    data = base64.b64encode(chart.png).decode("ascii")
    size = f' width="{width}" height="{height}"' if width and height else ""
    out = [
        '<figure class="chart">',
        f'<img src="data:image/png;base64,{data}" alt="{_esc(chart.alt)}"{size}>',
    ]
    if chart.caption:
        out.append(f"<figcaption>{_esc(chart.caption)}</figcaption>")
    out.append("</figure>")
    return "\n".join(out)


def _html_quote(quote: Quote) -> str:
    # The review is shown exactly as written: escaped, no Markdown, line breaks kept by CSS
    # (white-space: pre-line), so no markup is added inside the blockquote.
    text = _esc(_normalise(quote.text).strip())
    caption = f'Review <span class="review-id">{_esc(str(quote.review_id))}</span>'
    if quote.meta:
        caption += f' <span class="meta">· {_esc(quote.meta)}</span>'
    return (
        '<figure class="quote">\n'
        f"<blockquote>{text}</blockquote>\n"
        f"<figcaption>{caption}</figcaption>\n"
        "</figure>"
    )


def _html_callout(callout: Callout) -> str:
    label = "Warning" if callout.kind == "warning" else "Note"
    return (
        f'<aside class="callout callout-{callout.kind}">\n'
        f'<p class="callout-label">{label}</p>\n'
        f"{_html_prose(callout.text)}\n"
        "</aside>"
    )


def _html_key_figures(figures: KeyFigures) -> str:
    cards = "".join(
        f'<div class="card"><dt>{_esc(label)}</dt><dd>{_esc(format_value(value))}</dd></div>\n'
        for label, value in figures.items
    )
    return f'<dl class="key-figures">\n{cards}</dl>'


_HTML_BLOCKS: dict[type, Callable[..., str]] = {
    Heading: lambda b: f"<h{b.level}>{_esc(b.text)}</h{b.level}>",
    Paragraph: lambda b: _html_prose(b.text),
    Table: _html_table,
    Chart: _html_chart,
    Quote: _html_quote,
    Callout: _html_callout,
    KeyFigures: _html_key_figures,
}


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page.

    Inline CSS (with a print stylesheet for A4), charts as ``data:`` URIs, no JavaScript, no
    external resources, and a Content-Security-Policy that forbids scripts and remote loads.
    """
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_esc(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="insight">',
        f"<title>{_esc(doc.title)}</title>",
        f"<style>\n{STYLESHEET}</style>",
        "</head>",
        "<body>",
        '<main class="report">',
        '<header class="report-header">',
        f"<h1>{_esc(doc.title)}</h1>",
    ]
    if doc.subtitle:
        out.append(f'<p class="subtitle">{_esc(doc.subtitle)}</p>')
    out.append("</header>")
    for block in doc.blocks:
        rendered = _HTML_BLOCKS[type(block)](block)
        if rendered:
            out.append(rendered)
    if doc.footer:
        out.append(f'<footer class="report-footer"><p>{_esc(doc.footer)}</p></footer>')
    out += ["</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- writing files


def write_html(doc: Document, path: Path) -> Path:
    """Render ``doc`` as HTML and write it to ``path`` atomically."""
    from insight_agent.workspace import atomic_write_text

    atomic_write_text(Path(path), render_html(doc))
    return Path(path)


def write_markdown(doc: Document, path: Path, *, embed_images: bool = False) -> list[Path]:
    """Write ``doc`` as Markdown to ``path``, charts in a ``<stem>-files/`` folder beside it.

    Returns every path written (charts first, the ``.md`` last, so a reader never sees a
    report whose images are missing).
    """
    from insight_agent.workspace import atomic_write_text

    path = Path(path)
    folder = path.with_name(f"{path.stem}-files")
    text, files = render_markdown(doc, folder, f"{folder.name}/", embed_images=embed_images)
    atomic_write_text(path, text)
    return [*(folder / name for name in files), path]


# --------------------------------------------------------------------------- stylesheet

# Kept here rather than in a package-data file so the wheel needs no extra manifest entry.
# Colours follow insight_agent.reports.charts.PALETTE. System fonts only (no downloads).
STYLESHEET = """\
:root {
  --ink: #1f2328; --muted: #5b6470; --line: #d8dde3; --zebra: #f5f7fa;
  --accent: #2f5d8a; --accent-soft: #eaf1f8; --warn: #b0561a; --warn-soft: #fdf1e6;
  --paper: #ffffff; --page: #f2f4f7;
}
* { box-sizing: border-box; }
html { font-size: 16px; -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--page); color: var(--ink);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "Liberation Sans", sans-serif;
  line-height: 1.55;
}
main.report {
  max-width: 880px; margin: 2rem auto; padding: 2.5rem 3rem; background: var(--paper);
  border: 1px solid var(--line); border-radius: 10px;
}
.report-header {
  border-bottom: 3px solid var(--accent); padding-bottom: 0.8rem; margin-bottom: 1.6rem;
}
h1 { font-size: 1.9rem; line-height: 1.2; margin: 0; letter-spacing: -0.01em; }
.subtitle { color: var(--muted); margin: 0.35rem 0 0; font-size: 1.05rem; }
h2 { font-size: 1.35rem; margin: 2.2rem 0 0.7rem; color: var(--accent); }
h3 { font-size: 1.12rem; margin: 1.6rem 0 0.5rem; }
h4, h5, h6 { font-size: 1rem; margin: 1.3rem 0 0.4rem; }
p, ul { margin: 0 0 0.9rem; }
ul { padding-left: 1.4rem; }
li { margin: 0.2rem 0; }
code {
  font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
  font-size: 0.88em; background: var(--zebra); padding: 0.08em 0.3em; border-radius: 4px;
}
.table-wrap { overflow-x: auto; margin: 1rem 0 1.4rem; }
table {
  border-collapse: collapse; width: 100%; font-size: 0.92rem; font-variant-numeric: tabular-nums;
}
caption {
  caption-side: top; text-align: left; color: var(--muted); font-size: 0.88rem;
  padding-bottom: 0.4rem;
}
th, td { padding: 0.45rem 0.7rem; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); font-weight: 600; white-space: nowrap; }
tbody td { border-bottom: 1px solid var(--line); }
tbody tr:nth-child(even) { background: var(--zebra); }
th.num, td.num { text-align: right; white-space: nowrap; }
th.center, td.center { text-align: center; }
td.empty { color: var(--muted); font-style: italic; text-align: center; }
figure { margin: 1.2rem 0 1.6rem; }
figure.chart img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 0.45rem; }
figure.chart figcaption { text-align: center; }
figure.quote { margin: 1rem 0 1.2rem; padding: 0.9rem 1.1rem; border-left: 4px solid var(--accent);
  background: var(--accent-soft); border-radius: 0 8px 8px 0; }
figure.quote blockquote {
  margin: 0; white-space: pre-line; overflow-wrap: anywhere; font-size: 1.02rem;
}
figure.quote blockquote::before, figure.quote blockquote::after {
  color: var(--accent); font-weight: 700;
}
figure.quote blockquote::before { content: "\\201C"; margin-right: 0.1em; }
figure.quote blockquote::after { content: "\\201D"; margin-left: 0.1em; }
figure.quote figcaption { margin-top: 0.5rem; }
.review-id {
  font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 0.85em;
}
.callout { margin: 1rem 0 1.3rem; padding: 0.75rem 1rem; border: 1px solid var(--line);
  border-left: 4px solid var(--accent); border-radius: 6px; background: var(--accent-soft); }
.callout-warning { border-left-color: var(--warn); background: var(--warn-soft); }
.callout > :last-child { margin-bottom: 0; }
.callout-label { font-weight: 700; font-size: 0.78rem; text-transform: uppercase;
  letter-spacing: 0.06em; margin: 0 0 0.25rem; color: var(--accent); }
.callout-warning .callout-label { color: var(--warn); }
.key-figures { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 1.2rem 0 1.6rem; padding: 0; }
.key-figures .card { flex: 1 1 150px; padding: 0.8rem 1rem; border: 1px solid var(--line);
  border-top: 4px solid var(--accent); border-radius: 8px; background: var(--paper); }
.key-figures dt { color: var(--muted); font-size: 0.82rem; }
.key-figures dd { margin: 0.15rem 0 0; font-size: 1.55rem; font-weight: 700;
  font-variant-numeric: tabular-nums; line-height: 1.2; overflow-wrap: anywhere; }
.report-footer { margin-top: 2.5rem; padding-top: 0.8rem; border-top: 1px solid var(--line);
  color: var(--muted); font-size: 0.85rem; }
@media (max-width: 640px) {
  main.report { margin: 0; padding: 1.2rem; border: 0; border-radius: 0; }
}
@page { size: A4; margin: 16mm 14mm 18mm; }
@media print {
  html { font-size: 10.5pt; }
  body { background: none; }
  main.report { max-width: none; margin: 0; padding: 0; border: 0; }
  h2, h3, h4, h5, h6 { break-after: avoid; page-break-after: avoid; }
  .table-wrap { overflow: visible; }
  table, figure, .callout, .key-figures, .card, tr {
    break-inside: avoid; page-break-inside: avoid;
  }
  thead { display: table-header-group; }
  tbody tr:nth-child(even), figure.quote, .callout, .callout-warning, code { background: none; }
  figure.chart img { max-height: 120mm; width: auto; }
  a { color: inherit; }
}
"""
