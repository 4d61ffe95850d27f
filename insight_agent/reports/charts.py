"""Report charts as PNG bytes: plain data in, byte-identical images out.

Every function takes plain lists and dicts (the facts a tool returned, not pandas objects) and
returns the bytes of a PNG ready for :class:`insight_agent.reports.document.Chart`.

How the output stays identical for identical input, run after run and process after process:

- no pyplot and no global backend switch: a :class:`matplotlib.figure.Figure` is drawn on its
  own ``FigureCanvasAgg``, so other code using matplotlib is not affected;
- the style is matplotlib's built-in defaults plus :data:`_RC`, applied inside
  ``rc_context`` (a user's matplotlibrc or another module's ``rcParams`` changes do not leak in,
  and ours do not leak out);
- the font is DejaVu Sans, which ships inside matplotlib, so no system font is picked up;
- the PNG carries no ``Software`` text chunk (nor any date: matplotlib writes none for PNG).

matplotlib is imported inside the functions (heavy import, see DESIGN.md).
"""

from __future__ import annotations

import contextlib
import io
import math
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from insight_agent.formatting import axis_amount, axis_pct

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Colour-blind-friendly palette shared by all charts (and echoed by the HTML stylesheet).
PALETTE = (
    "#2F5D8A",  # blue: primary series
    "#E08A2E",  # orange: secondary series
    "#3A9D8F",  # teal
    "#C44E52",  # red: risk
    "#8172B3",  # purple
    "#937860",  # brown
    "#D684BD",  # pink
    "#8C8C8C",  # grey: baselines, "other"
)
BLUE, ORANGE, TEAL, RED, PURPLE, BROWN, PINK, GREY = PALETTE

WIDTH_IN = 7.0
HEIGHT_IN = 3.6
DPI = 110
MAX_THEMES = 7  # more themes than this are folded into "Other themes"

_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 10,
    "axes.labelsize": 9,
    "axes.labelcolor": "#333333",
    "axes.edgecolor": "#999999",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.grid": False,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.8,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "text.color": "#222222",
    "text.parse_math": False,  # segment names like "$100+ buyers" are text, not mathtext
}


# --------------------------------------------------------------------------- public charts


def segment_sizes_chart(segments: Sequence[Mapping[str, Any]]) -> bytes:
    """Share of customers and share of revenue per segment, as grouped horizontal bars.

    ``segments``: rows with keys ``name``, ``share_customers`` and ``share_revenue`` (fractions,
    0.25 = 25%), drawn top to bottom in the order given.
    """
    rows = _rows(segments, "segment_sizes_chart", ("name", "share_customers", "share_revenue"))
    names = [str(r["name"]) for r in rows]
    series = [
        ("Customers", [_number(r, "share_customers") for r in rows], BLUE),
        ("Revenue", [_number(r, "share_revenue") for r in rows], ORANGE),
    ]
    with _style():
        fig, ax = _new(height=_bar_height(len(rows)))
        _grouped_hbars(ax, names, series, axis_pct)
        _percent_axis(ax, "x", max(max(v) for _, v, _ in series))
        ax.set_title("Segment size and revenue share")
        ax.set_xlabel("Share of all customers / of all revenue")
        ax.legend(loc="lower right")
        return _png(fig)


def churn_risk_chart(segments: Sequence[Mapping[str, Any]]) -> bytes:
    """Mean churn probability and share of high-risk customers per segment (grouped bars).

    ``segments``: rows with keys ``segment``, ``mean_churn_probability`` and ``share_high_risk``
    (fractions), drawn top to bottom in the order given (the tool sorts by risk).
    """
    rows = _rows(
        segments, "churn_risk_chart", ("segment", "mean_churn_probability", "share_high_risk")
    )
    names = [str(r["segment"]) for r in rows]
    series = [
        ("Mean churn probability", [_number(r, "mean_churn_probability") for r in rows], RED),
        ("Share at high risk", [_number(r, "share_high_risk") for r in rows], ORANGE),
    ]
    with _style():
        fig, ax = _new(height=_bar_height(len(rows)))
        _grouped_hbars(ax, names, series, axis_pct)
        _percent_axis(ax, "x", max(max(v) for _, v, _ in series))
        ax.set_title("Churn risk by segment")
        ax.set_xlabel("Probability / share of the segment's customers")
        ax.legend(loc="lower right")
        return _png(fig)


def lift_chart(lift_by_decile: Sequence[float], target: str) -> bytes:
    """Lift per score decile (decile 1 = highest predicted score) against the baseline of 1."""
    if not lift_by_decile:
        raise ValueError("lift_chart needs at least one decile value (lift_by_decile is empty)")
    lifts = [_finite(v, f"lift_by_decile[{i}]") for i, v in enumerate(lift_by_decile)]
    target = str(target).strip() or "target"
    deciles = list(range(1, len(lifts) + 1))
    with _style():
        fig, ax = _new()
        colours = [BLUE if v >= 1 else GREY for v in lifts]
        bars = ax.bar(deciles, lifts, color=colours, width=0.7)
        texts = ax.bar_label(bars, labels=[f"{v:.1f}×" for v in lifts], padding=2, fontsize=8)
        for text in texts:  # keep labels legible where they cross the baseline
            text.set_bbox({"facecolor": "white", "edgecolor": "none", "pad": 0.6})
            text.set_zorder(3)
        ax.axhline(1.0, color="#555555", linestyle="--", linewidth=1, zorder=1)
        ax.annotate(
            "baseline (random targeting) = 1",
            xy=(1.0, 1.0),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color="#555555",
        )
        ax.set_xticks(deciles, [str(d) for d in deciles])
        ax.set_ylim(0, max(*lifts, 1.0) * 1.15)
        ax.yaxis.grid(True)
        ax.set_title(f"Lift by score decile: {_short(target, 50)}")
        ax.set_xlabel(f"Decile of predicted {_short(target, 40)} score (1 = highest)")
        ax.set_ylabel("Lift vs. average rate")
        return _png(fig)


def clv_distribution_chart(
    values: Sequence[float], by_segment: Mapping[str, Sequence[float]] | None = None
) -> bytes:
    """Distribution of customer lifetime value, clipped at the 99th percentile.

    Without ``by_segment``: a histogram of ``values`` in which values above the 99th percentile
    are counted in the last bin. With ``by_segment`` (segment name → values): one box per
    segment (box = middle half, line = median, whiskers = 5th to 95th percentile), the axis
    ending at the 99th percentile of all values. The title states the clipping point.
    """
    import numpy as np

    pooled = [_finite(v, f"values[{i}]") for i, v in enumerate(values or [])]
    groups: dict[str, list[float]] = {}
    for name, seg_values in (by_segment or {}).items():
        if not seg_values:
            raise ValueError(f"clv_distribution_chart: segment {name!r} has no values")
        groups[str(name)] = [_finite(v, f"by_segment[{name!r}]") for v in seg_values]
    if not pooled and not groups:
        raise ValueError("clv_distribution_chart needs values (both values and by_segment empty)")
    basis = np.asarray(pooled or [v for vs in groups.values() for v in vs], dtype=float)
    p99 = float(np.percentile(basis, 99))
    low = min(0.0, float(basis.min()))
    title = f"Customer lifetime value{' by segment' if groups else ''}"
    title += f" (top 1% clipped at {axis_amount(p99)})"

    with _style():
        if groups:
            names = list(groups)
            fig, ax = _new(height=_bar_height(len(names), per_row=0.45))
            data = [np.minimum(np.asarray(groups[n]), p99) for n in names]
            # Boxes drawn from percentiles by hand: Axes.boxplot reads every rcParam, which
            # resolves matplotlib's backend through pyplot (a global side effect).
            whisker_ends = []
            for i, arr in enumerate(data, start=1):
                p5, p25, median, p75, p95 = (
                    float(q) for q in np.percentile(arr, [5, 25, 50, 75, 95])
                )
                whisker_ends.append(p95)
                ax.hlines(i, p5, p95, color="#666666", linewidth=1, zorder=2)
                ax.vlines([p5, p95], i - 0.15, i + 0.15, color="#666666", linewidth=1, zorder=2)
                ax.barh(i, p75 - p25, left=p25, height=0.55, color=BLUE, zorder=3)
                ax.vlines(median, i - 0.275, i + 0.275, color="white", linewidth=1.6, zorder=4)
                ax.annotate(
                    f"median {axis_amount(median)}",
                    xy=(p95, i),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color="#333333",
                )
            ax.set_yticks(range(1, len(names) + 1), [_wrap(n) for n in names])
            ax.invert_yaxis()  # first segment on top, like the other charts
            # Room for the longest whisker and its label, never past the clipping point.
            right = min(p99, max(whisker_ends)) * 1.3
            ax.set_xlim(low, right if right > low else low + 1.0)
            ax.xaxis.grid(True)
            ax.set_xlabel("Predicted customer lifetime value (whiskers: 5th–95th percentile)")
        else:
            fig, ax = _new()
            clipped = np.clip(basis, None, p99)
            ax.hist(clipped, bins=40, color=BLUE, edgecolor="white", linewidth=0.5)
            median = float(np.median(basis))
            ax.axvline(median, color=ORANGE, linewidth=1.5)
            ax.annotate(
                f"median {axis_amount(median)}",
                xy=(median, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, -12),
                textcoords="offset points",
                fontsize=8,
                color="#333333",
            )
            ax.yaxis.grid(True)
            ax.set_xlabel("Predicted customer lifetime value")
            ax.set_ylabel("Customers")
        ax.xaxis.set_major_formatter(_tick_formatter(axis_amount))
        ax.set_title(title)
        return _png(fig)


def theme_shares_chart(shares: Mapping[str, Mapping[str, float]]) -> bytes:
    """Review themes per segment as stacked horizontal bars (segment → theme label → share).

    Shares are fractions of each segment's reviews. Themes keep one colour across segments;
    beyond the :data:`MAX_THEMES` largest overall, the rest are folded into "Other themes".
    """
    if not shares:
        raise ValueError("theme_shares_chart needs at least one segment (shares is empty)")
    table: dict[str, dict[str, float]] = {}
    for seg, themes in shares.items():
        if not isinstance(themes, Mapping):
            raise ValueError(f"theme_shares_chart: shares[{seg!r}] must map theme → share")
        table[str(seg)] = {str(t): _finite(v, f"shares[{seg!r}][{t!r}]") for t, v in themes.items()}
    totals: dict[str, float] = {}
    for themes in table.values():
        for t, v in themes.items():
            totals[t] = totals.get(t, 0.0) + v
    if not totals:
        raise ValueError("theme_shares_chart: no segment has any theme share")
    order = sorted(totals, key=lambda t: (-totals[t], t))
    kept = order if len(order) <= MAX_THEMES + 1 else order[:MAX_THEMES]
    other = [t for t in order if t not in kept]
    labels = kept + (["Other themes"] if other else [])
    colours = list(PALETTE[: len(kept)]) + ([GREY] if other else [])

    names = list(table)
    matrix = [
        [table[s].get(t, 0.0) for t in kept]
        + ([sum(table[s].get(t, 0.0) for t in other)] if other else [])
        for s in names
    ]
    with _style():
        fig, ax = _new(height=_bar_height(len(names), per_row=0.42, extra=1.7))
        ys = list(range(len(names)))
        left = [0.0] * len(names)
        for j, (label, colour) in enumerate(zip(labels, colours, strict=True)):
            widths = [row[j] for row in matrix]
            bars = ax.barh(
                ys, widths, left=left, height=0.62, color=colour, label=_short(label, 28)
            )
            # Value labels only where the slice is wide enough to hold them.
            ax.bar_label(
                bars,
                labels=[axis_pct(w) if w >= 0.06 else "" for w in widths],
                label_type="center",
                fontsize=7.5,
                color="white",
            )
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_yticks(ys, [_wrap(n) for n in names])
        ax.invert_yaxis()
        _percent_axis(ax, "x", max(max(left), 1.0), headroom=1.0)
        ax.set_title("Review themes by segment")
        ax.set_xlabel("Share of the segment's reviews")
        fig.legend(loc="outside lower center", ncols=min(4, len(labels)), fontsize=8)
        return _png(fig)


def metric_chart(facts: Mapping[str, Any]) -> bytes:
    """A metrics result (``query_metrics`` facts) as a chart: a line over time when broken down
    by a time grain (with the comparison period dashed), else horizontal bars (first 15 rows).

    Charts the first measure; shares and probabilities on a percent axis.
    """
    measures = facts.get("measures") or []
    rows = list(facts.get("rows") or [])
    if not measures or not rows:
        raise ValueError("metric_chart needs a result with at least one measure and one row")
    m = measures[0]
    name, by = m["name"], list(facts.get("by") or [])
    percent = m.get("unit") in ("share", "probability")
    fmt = axis_pct if percent else axis_amount
    period = facts.get("period") or {}
    title = f"{m.get('label', name)}"
    if by:
        title += f" by {by[0].replace('_', ' ')}"
    span = f"{period.get('start') or '…'} to {period.get('end')}"
    with _style():
        if by and by[0] in ("day", "week", "month", "quarter", "year"):
            fig, ax = _new()
            xs = [str(r[by[0]]) for r in rows]
            ys = [float("nan") if r.get(name) is None else float(r[name]) for r in rows]
            ax.plot(xs, ys, color=BLUE, marker="o", markersize=3, label=period.get("label"))
            prev = f"{name}_previous"
            if any(r.get(prev) is not None for r in rows):
                ps = [float("nan") if r.get(prev) is None else float(r[prev]) for r in rows]
                label = (facts.get("compared_with") or {}).get("label", "comparison")
                ax.plot(xs, ps, color=GREY, linestyle="--", marker="o", markersize=3, label=label)
                ax.legend(loc="best")
            step = max(1, len(xs) // 12)
            ax.set_xticks(range(0, len(xs), step), xs[::step], rotation=45, ha="right")
            ax.yaxis.grid(True)
            ax.yaxis.set_major_formatter(_tick_formatter(fmt))
            ax.set_ylim(bottom=min(0.0, *[y for y in ys if y == y]))
        else:
            shown = rows[:15]
            names = [" / ".join(str(r[d]) for d in by) or m.get("label", name) for r in shown]
            values = [0.0 if r.get(name) is None else float(r[name]) for r in shown]
            fig, ax = _new(height=_bar_height(len(shown)))
            _grouped_hbars(ax, names, [(m.get("label", name), values, BLUE)], fmt)
            if percent:
                _percent_axis(ax, "x", max(values) if values else 1.0)
            else:
                ax.xaxis.set_major_formatter(_tick_formatter(fmt))
                ax.set_xlim(0, max(max(values), 0.0) * 1.18 or 1.0)
        ax.set_title(_short(title, 70))
        ax.set_xlabel(_short(f"{period.get('label', '')}: {span}", 90) if by else "")
        return _png(fig)


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """matplotlib's built-in defaults plus :data:`_RC`, restored afterwards."""
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # ignore any matplotlibrc / rcParams set elsewhere
        matplotlib.rcParams.update(_RC)
        matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=list(PALETTE))
        yield


def _new(height: float = HEIGHT_IN) -> tuple[Figure, Axes]:
    """A figure on its own Agg canvas (no pyplot, no global backend) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # "Software" is the only text chunk matplotlib adds to a PNG; dropping it keeps the bytes
    # independent of the matplotlib version.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _bar_height(n: int, per_row: float = 0.55, extra: float = 1.3) -> float:
    """Figure height that keeps bars readable as the number of rows grows."""
    return max(HEIGHT_IN, round(n * per_row + extra, 2))


def _grouped_hbars(
    ax: Axes,
    names: list[str],
    series: list[tuple[str, list[float], str]],
    fmt: Any,
) -> None:
    """Horizontal bars, one group per name (first name on top), labelled with ``fmt(value)``."""
    height = 0.8 / len(series)
    for k, (label, values, colour) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * height
        ys = [i + offset for i in range(len(names))]
        bars = ax.barh(ys, values, height=height * 0.92, color=colour, label=label)
        ax.bar_label(bars, labels=[fmt(v) for v in values], padding=3, fontsize=8)
    ax.set_yticks(range(len(names)), [_wrap(n) for n in names])
    ax.invert_yaxis()
    ax.xaxis.grid(True)


def _percent_axis(ax: Axes, which: str, top: float, headroom: float = 1.18) -> None:
    from matplotlib.ticker import PercentFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    limit = max(top * headroom, 0.05)
    if which == "x":
        ax.set_xlim(0, limit)
    else:
        ax.set_ylim(0, limit)


def _tick_formatter(fmt: Any) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: fmt(v))


def _rows(
    rows: Sequence[Mapping[str, Any]], chart: str, keys: tuple[str, ...]
) -> list[Mapping[str, Any]]:
    if not rows:
        raise ValueError(f"{chart} needs at least one segment row (got none)")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{chart}: row {i + 1} must be a dict with keys {', '.join(keys)}")
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"{chart}: row {i + 1} has no {', '.join(missing)}")
    return list(rows)


def _number(row: Mapping[str, Any], key: str) -> float:
    return _finite(row[key], key)


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return number


def _wrap(text: str, width: int = 22) -> str:
    return "\n".join(textwrap.wrap(text, width, max_lines=2, placeholder="…")) or text


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
