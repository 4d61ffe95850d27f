"""The `insight` command line: parse arguments, call one service, render the result.

No business logic lives here, and heavy libraries (pandas, scikit-learn, chromadb, langchain)
are imported inside the commands that need them so that `insight --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.console import Console

    from insight_agent.data.report import ValidationReport
    from insight_agent.workspace import Workspace


def _click_flow() -> tuple[type[BaseException], ...]:
    """Click's own control-flow exceptions, from click and from the copy Typer vendors
    (typer._click, Typer >= 0.2x): a mistyped command or option is a UsageError there, which
    must reach Typer's handler (usage message, closest suggestion, exit 2), not ours."""
    found: list[type[BaseException]] = [typer.Exit, SystemExit]
    mods: list[Any] = [click]
    try:
        from typer import _click as vendored  # type: ignore[attr-defined]

        mods.append(vendored)
    except ImportError:
        pass
    for mod in mods:
        exc = getattr(mod, "exceptions", mod)
        for name in ("Exit", "ClickException", "Abort"):
            if isinstance(getattr(exc, name, None), type):
                found.append(getattr(exc, name))
    return tuple(found)


_CLICK_FLOW = _click_flow()


class _InsightGroup(TyperGroup):
    """Turns Insight's own errors into a message and an exit code instead of a traceback, and
    its warnings (e.g. models built with other library versions) into one clean line each."""

    def invoke(self, ctx: click.Context) -> Any:
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                return self._invoke(ctx)
            finally:
                _print_warnings(caught)

    def _invoke(self, ctx: click.Context) -> Any:
        from insight_agent.errors import InsightError

        try:
            return super().invoke(ctx)
        except InsightError as exc:
            _print_error(exc.message, exc.hint)
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            _print_error("interrupted")
            raise SystemExit(130) from None
        except BrokenPipeError:  # the reader went away (`insight ... | head`): not a bug
            _quiet_broken_pipe()
        except _CLICK_FLOW:  # usage errors, --help, Exit: Typer/Click print them (exit 2)
            raise
        except Exception as exc:  # a bug: say so briefly; INSIGHT_DEBUG=1 shows the traceback
            if os.environ.get("INSIGHT_DEBUG"):
                raise
            _print_error(
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in Insight; rerun with INSIGHT_DEBUG=1 and report it",
            )
            raise SystemExit(1) from None


app = typer.Typer(
    cls=_InsightGroup,
    name="insight",
    help="Insight: ask questions about your customers, offline. Start with `insight doctor`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (has insight.toml). Default: $INSIGHT_WORKSPACE, else the current "
        "folder if it has insight.toml, else the built-in demo workspace.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ChromaOpt = Annotated[
    str | None,
    typer.Option(
        "--chroma-url",
        help="Chroma server for the review index (http://host:port). Default: "
        "vectorstore.chroma_url, else embedded Chroma in .insight/chroma.",
        show_default=False,
    ),
]


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    # soft_wrap: long paths and messages stay on one line (copyable, greppable).
    # emoji=False: a stage or column name like "propensity:label:y" is text, not ":label:"
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def _print_warnings(caught: list[Any]) -> None:
    """Show Insight's own warnings once each; library chatter stays hidden."""
    from rich.markup import escape

    seen: set[str] = set()
    for w in caught:
        text = str(w.message)
        if "insight_agent" in str(w.filename) and text not in seen:
            seen.add(text)
            _console(stderr=True).print(f"[yellow]warning:[/] {escape(text)}")


def _print_error(message: str, hint: str | None = None) -> None:
    from rich.markup import escape

    err = _console(stderr=True)
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")


def _open(
    workspace: Path | None, *, quiet: bool = False, chroma_url: str | None = None
) -> Workspace:
    """Open the workspace for a command; say so when it is the built-in demo.

    ``chroma_url`` (from ``--chroma-url``) overrides the workspace's review-index location.
    """
    from insight_agent.data.bootstrap import open_workspace

    ws = open_workspace(workspace)
    if chroma_url:
        ws.settings.vectorstore.chroma_url = chroma_url
    if ws.source == "built-in demo" and not quiet:
        _console(stderr=True).print(
            f"[dim]Using the built-in demo workspace ({ws.root}). "
            "Run `insight init DIR` to use your own data.[/]"
        )
    return ws


def _version_callback(value: bool) -> None:
    if value:
        from insight_agent import __version__

        typer.echo(f"insight {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
) -> None:
    """Insight: ask questions about your customers, offline."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new workspace.")],
    demo: Annotated[bool, typer.Option("--demo", help="Generate demo data into DIR/data.")] = False,
    customers: Annotated[
        Path | None, typer.Option(help="Customers export (CSV/XLSX/Parquet).")
    ] = None,
    orders: Annotated[Path | None, typer.Option(help="Orders export.")] = None,
    reviews: Annotated[Path | None, typer.Option(help="Reviews export.")] = None,
    campaigns: Annotated[Path | None, typer.Option(help="Campaign sends export.")] = None,
    n_customers: Annotated[
        int | None,
        typer.Option("--customers-count", min=1, help="Demo size (customers); default 5,000."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Demo random seed; default 42.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing insight.toml.")
    ] = False,
) -> None:
    """Create a workspace: DIR/insight.toml pointing at your exports, or demo data with --demo."""
    from insight_agent.data.bootstrap import init_workspace

    sources = {
        k: v
        for k, v in (
            ("customers", customers),
            ("orders", orders),
            ("reviews", reviews),
            ("campaigns", campaigns),
        )
        if v
    }
    result = init_workspace(
        directory, demo=demo, sources=sources, force=force, n_customers=n_customers, seed=seed
    )
    out = _console()
    out.print(f"Created workspace [bold]{result.root}[/]")
    out.print(f"  settings: {result.config}")
    for name, path in result.tables.items():
        rows = f" ({result.demo_rows[name]:,} rows)" if result.demo_rows else ""
        out.print(f"  {name}: {path}{rows}")
    if not result.tables:
        out.print("  no data files yet: add them under [data] in insight.toml (see docs/data.md)")
    out.print(f"Next: [bold]insight validate -w {result.root}[/]")


@app.command()
def validate(
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail if any row would be dropped (ceiling 0%).")
    ] = False,
    max_drop_share: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Override data.max_drop_share for this run (0–1)."),
    ] = None,
    all_rows: Annotated[
        bool, typer.Option("--all", help="List every problem, including notes.")
    ] = False,
) -> None:
    """Check the workspace's data files; list every problem with file, row and column.

    Exit code 0 when the data can be used (problems listed are handled), 2 when it cannot.
    """
    from insight_agent.engine.cache import validate_and_cache

    ws = _open(workspace, quiet=as_json)
    share = 0.0 if strict else max_drop_share
    report = validate_and_cache(ws, max_drop_share=share)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _render_report(report, show_info=all_rows)
    if report.fatal:
        raise typer.Exit(2)


def _render_report(report: ValidationReport, *, show_info: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = _console()
    table = Table(title="Data files", title_justify="left")
    for col in ("table", "file", "read", "kept", "dropped", "returns"):
        numeric = col in ("read", "kept", "dropped", "returns")
        table.add_column(
            col, justify="right" if numeric else "left", overflow="fold", no_wrap=numeric
        )
    for name, tr in report.tables.items():
        file = tr.file + (" [dim](derived)[/]" if tr.derived else "")
        table.add_row(
            name,
            file,
            f"{tr.rows_read:,}",
            f"{tr.rows_kept:,}",
            f"{tr.rows_dropped:,}",
            f"{tr.returns:,}" if tr.returns else "",
        )
    out.print(table)
    style = {"error": "bold red", "warning": "yellow", "info": "dim"}
    shown = [p for p in report.problems if show_info or p.severity != "info"]
    hidden = len(report.problems) - len(shown)
    order = ("info", "warning", "error")  # errors last, next to the verdict
    for problem in sorted(shown, key=lambda p: order.index(p.severity)):
        out.print(f"[{style[problem.severity]}]{problem.severity}[/] {escape(problem.describe())}")
    if hidden:
        out.print(f"[dim]{hidden} note(s) not shown; use --all to see them.[/]")
    if report.fatal:
        out.print(
            f"[bold red]FAILED[/]: {len(report.errors)} fatal problem(s); "
            "nothing can be loaded until they are fixed."
        )
    else:
        out.print(
            "[bold green]OK[/]: the data can be loaded"
            + (" (problems above are handled as described)." if shown else ".")
        )


@app.command()
def doctor(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Check the installation: versions, workspace, LLM provider, embedded model, Chroma."""
    from insight_agent.doctor import diagnose

    ws = _open(workspace, quiet=True)
    report = diagnose(ws)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    from rich.markup import escape

    out = _console()
    for section, rows in report.items():
        out.print(f"[bold]{section}[/]")
        for key, value in rows.items():
            out.print(f"  {key}: {escape(str(value))}")


def _build_engine(engine: str, spark_master: str | None) -> str:
    """The build's engine name, checked before any work starts (Spark: pyspark and Java)."""
    from insight_agent.config import ENGINES
    from insight_agent.errors import ConfigError

    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'", hint=f"use one of: {', '.join(ENGINES)}")
    if spark_master and engine != "spark":
        raise ConfigError("--spark-master is for the Spark engine", hint="add --engine spark")
    if engine == "spark":
        from insight_agent.engine.backend import SPARK_INSTALL_HINT, spark_missing

        reason = spark_missing()
        if reason:
            raise ConfigError(reason, hint=SPARK_INSTALL_HINT)
    return engine


@app.command()
def build(
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
    k: Annotated[
        int | None, typer.Option("--k", min=2, max=20, help="Force the number of segments.")
    ] = None,
    horizon: Annotated[
        int,
        typer.Option(
            min=7, max=730, help="Propensity horizon in days (labels: what happens next H days)."
        ),
    ] = 90,
    seed: Annotated[int, typer.Option(help="Random seed (segments are stable for a seed).")] = 0,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Threads for model fitting (default: analytics.threads, else 1)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Propensity models trained at the same time (default: analytics.workers, "
            "else one per core, up to 4); above 1, CLV and basket rules run beside them.",
        ),
    ] = None,
    chroma_url: ChromaOpt = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="A yes/no column of the customers table to model (repeatable), e.g. "
            "responded. Default: analytics.label in insight.toml.",
        ),
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option(help="The label's positive value (default: yes/true/1, else the rarer)."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="A column never to use as a feature.")
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="A column to use although the leakage guard flags it."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="What computes the feature tables: duckdb (this machine), spark (local or a "
            "cluster; needs the spark extra and Java 17) or pandas (the slow reference). "
            "Default: engine.name in insight.toml, else duckdb.",
        ),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master",
            help="Spark master URL for --engine spark, e.g. spark://host:7077, yarn, "
            "local[4] (default: engine.spark_master, else local[2]).",
        ),
    ] = None,
) -> None:
    """Build segments, propensity models, CLV and basket rules from the workspace's data.

    Writes a versioned build under .insight/builds/ (the previous build stays until the new one
    is complete). Stages that the data cannot support are skipped with the reason; with no
    orders, the customers table's own labels and the review index are still built.
    """
    from insight_agent.analytics.build import BuildOptions, run_build

    ws = _open(workspace, quiet=as_json, chroma_url=chroma_url)
    threads = threads or int(ws.settings.analytics.get("threads", 1))
    a = ws.settings.analytics

    def listed(value: Any) -> tuple[str, ...]:
        return tuple(value) if isinstance(value, list) else ((value,) if value else ())

    clv_period = str(a.get("clv_period", "week"))
    if clv_period not in ("day", "week"):
        from insight_agent.errors import ConfigError

        raise ConfigError(
            f'analytics.clv_period must be "day" or "week", got {clv_period!r}',
            hint="set it in insight.toml under [analytics]",
        )
    engine = _build_engine(engine or ws.settings.engine.name, spark_master)
    options = BuildOptions(
        engine=engine,
        spark_master=spark_master or ws.settings.engine.spark_master,
        spark_conf=dict(ws.settings.engine.spark_conf),
        k=k,
        clv_period=clv_period,
        horizon_days=horizon,
        seed=seed,
        threads=threads,
        workers=workers or (int(a["workers"]) if a.get("workers") else None),
        labels=tuple(label or ()) or listed(a.get("label")),
        positive=positive or a.get("positive"),
        exclude=tuple(exclude or ()) or listed(a.get("exclude")),
        keep=tuple(keep or ()) or listed(a.get("keep")),
    )
    if as_json:
        manifest = run_build(ws, options)
        typer.echo(json.dumps(manifest, indent=2, default=str))
        return
    from rich.markup import escape

    out = _console()
    err = _console(stderr=True)
    with err.status("building…") as status:

        def progress(stage: str, message: str) -> None:
            if message.startswith("running"):  # "running · about 2 min left"
                left = message.removeprefix("running").strip(" ·")
                status.update(f"[bold]{escape(stage)}[/]…" + (f" ({escape(left)})" if left else ""))
            elif message.startswith("embedding "):  # live review-ingest progress: rate, ETA
                status.update(f"[bold]{escape(stage)}[/]: {escape(message)}")
            else:
                done = message.startswith(("ok", "resumed"))
                mark = "[green]✓[/]" if done else "[yellow]–[/]"
                err.print(f"{mark} {escape(stage)}: {escape(message)}")

        manifest = run_build(ws, options, progress)
    out.print(
        f"Build [bold]{manifest['build_id']}[/] in {manifest['seconds']:.1f} s "
        f"(data up to {manifest['data']['cutoff'] or 'n/a'})"
    )
    for name, card in manifest.get("models", {}).items():
        out.print(f"  {name}: ROC-AUC {card['roc_auc']:.2f} ({card['family']})")
        if card.get("excluded"):
            out.print(
                f"    [yellow]excluded (leakage guard):[/] {escape(', '.join(card['excluded']))}"
                " — see the model card; --keep COLUMN to use one"
            )
    if "segments" in manifest:
        names = ", ".join(sorted(manifest["segments"]["names"].values()))
        out.print(f"  {manifest['segments']['k']} segments: {escape(names)}")
    skipped: dict[str, list[str]] = {}
    for stage in manifest["stages"]:
        if stage["status"] == "skipped":  # one line per reason: "features, segments, …: …"
            skipped.setdefault(stage["message"], []).append(stage["name"])
    for reason, names in skipped.items():
        out.print(f"  [yellow]skipped[/] {', '.join(names)}: {escape(reason)}")
    out.print("Next: " + " · ".join(_next_steps(manifest)))


def _next_steps(manifest: dict[str, Any]) -> list[str]:
    """Commands that have something to show after this build (nothing that would fail)."""
    steps = []
    if "segments" in manifest:
        steps.append("insight segments")
    models = list(manifest.get("models", {}))
    if models:
        first = "churn" if "churn" in models else models[0].split(":", 1)[-1]
        steps += [
            f"insight model-card {first}",
            f"insight audience -t {first} --top 100 -o {first}-top100.csv",
        ]
    if "segments" in manifest or models:
        steps.append("insight score --customer ID")
    if manifest.get("reviews"):
        steps += ["insight reviews themes", 'insight reviews count "..."']
    steps.append("insight metrics --list")
    steps.append('insight ask "..."')
    return steps


@app.command()
def segments(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Customer segments of the current build: size, revenue, behaviour, rules."""
    from insight_agent.analytics.queries import segments_summary

    ws = _open(workspace, quiet=as_json)
    summary = segments_summary(ws)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"{summary['k']} segments (data up to {summary['cutoff']})", title_justify="left"
    )
    table.add_column("id")
    table.add_column("name", min_width=14, overflow="fold")
    for col in ("customers", "% cust", "% rev", "last order", "orders", "spend", "AOV"):
        table.add_column(col, justify="right", no_wrap=True)
    for seg in summary["segments"]:
        table.add_row(
            seg["id"],
            escape(seg["name"]),
            f"{seg['customers']:,}",
            f"{seg['share_customers']:.0%}",
            f"{seg['share_revenue']:.0%}",
            f"{seg['median_recency_days']:,.0f}d",
            f"{seg['median_orders']:,.0f}",
            f"{seg['median_total_spend']:,.0f}",
            f"{seg['median_order_value']:,.0f}",
        )
    out = _console()
    out.print(table)
    out.print(
        "[dim]Medians per segment (AOV = average order value). Top categories by spend, and the "
        f"rule that best describes each segment (decision tree, fidelity "
        f"{summary['tree_fidelity']:.0%}):[/]"
    )
    for seg in summary["segments"]:
        cats = ", ".join(f"{c} {share:.0%}" for c, share in seg["top_categories"][:3])
        out.print(f"  [bold]{seg['id']} {escape(seg['name'])}[/]: {escape(cats)}")
        for rule in seg["rules"][:1]:
            out.print(
                f"     {escape(rule['rule'])} [dim]({rule['coverage']:.0%} of the segment)[/]"
            )


@app.command()
def metrics(
    measures: Annotated[
        list[str] | None,
        typer.Argument(
            help="Measures, e.g. revenue orders average_order_value response_rate "
            "(`insight metrics --list` shows this workspace's).",
            show_default=False,
        ),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option("--by", "-b", help="Break down by: month, week, category, segment, …"),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            "-p",
            help="'last 12 months', 'last month', '2025-Q3', 'since 2025-01-01', … (relative "
            "to the data's last date). Default: all data.",
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option("--compare", help="previous (the period before) or year (a year earlier)."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="Filter: DIMENSION=VALUE (also !=, <, >=; A|B for several)."),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option("--top", min=1, help="Keep the N highest rows (by the first measure)."),
    ] = None,
    ascending: Annotated[bool, typer.Option("--asc", help="With --top: the N lowest.")] = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Also draw the first measure to this PNG file.")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the measures and dimensions.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Descriptive metrics (revenue, orders, AOV, response rate, …) by month, category,
    segment or any customer attribute — computed by DuckDB over the validated data."""
    from insight_agent.analytics.queries import metrics_engine, query_metrics

    ws = _open(workspace, quiet=as_json)
    if compare and compare not in ("previous", "year"):
        raise typer.BadParameter("use previous or year", param_hint="--compare")
    if list_ or not measures:
        catalogue = metrics_engine(ws).catalogue.to_dict()
        if as_json:
            typer.echo(json.dumps(catalogue, indent=2, default=str))
            return
        _print_catalogue(catalogue)
        if not list_:
            raise typer.Exit(2)
        return
    facts = query_metrics(
        ws, measures, by=by, period=period, compare=compare, where=where, top=top,
        ascending=ascending,
    )  # fmt: skip
    if chart is not None:
        from insight_agent.reports.charts import metric_chart
        from insight_agent.workspace import atomic_write_bytes

        atomic_write_bytes(chart, metric_chart(facts))
        facts["chart"] = str(chart)
    if as_json:
        typer.echo(json.dumps(facts, indent=2, default=str))
        return
    _print_metrics(facts)


def _print_catalogue(catalogue: dict[str, Any]) -> None:
    from rich.markup import escape

    out = _console()
    out.print(f"[bold]Measures[/] (data up to {catalogue['data_up_to']}):")
    for m in catalogue["measures"]:
        out.print(f"  [bold]{m['name']}[/] — {escape(m['meaning'])} [dim]({m['aggregation']})[/]")
    out.print("[bold]Dimensions[/] (--by, --where):")
    for d in catalogue["dimensions"]:
        kind = {"yes/no": " (yes/no)", "number": " (number)"}.get(d.get("kind", ""), "")
        only = (
            ", in bands (many values)"
            if d.get("banded")
            else ""
            if d.get("breakdown", True)
            else ", filters only (many values)"
        )
        out.print(f"  [bold]{d['name']}[/]{kind} [dim]for {', '.join(d['applies_to'])}{only}[/]")
    for note in catalogue.get("notes", []):
        out.print(f"[dim]note: {escape(note)}[/]")
    names = [m["name"] for m in catalogue.get("measures", [])]
    dims = [d["name"] for d in catalogue.get("dimensions", [])]
    if "revenue" in names and "month" in dims:
        out.print("[dim]e.g. insight metrics revenue --by month --period 'last 12 months'[/]")
    elif names:  # an example this workspace can run
        by = f" --by {dims[0]}" if dims else ""
        out.print(f"[dim]e.g. insight metrics {names[0]}{by}[/]")


def _metric_cell(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if unit in ("share", "probability"):
        return f"{value:.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}"


def _print_metrics(facts: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    period = facts["period"]
    title = period["label"]
    if period.get("end"):
        title += f": {period['start'] or '…'} to {period['end']}"
    if facts.get("compared_with"):
        c = facts["compared_with"]
        title += f" vs {c['start']} to {c['end']}"
    columns: list[tuple[str, str, str]] = [(d, "", d) for d in facts["by"]]
    for m in facts["measures"]:
        columns.append((m["name"], m["unit"], m["name"].replace("_", " ")))
        if facts.get("compared_with"):
            columns.append((f"{m['name']}_previous", m["unit"], "before"))
            columns.append((f"{m['name']}_change_pct", "share", "change"))
    rows = [
        [
            escape(str(row[name])) if name in facts["by"] else _metric_cell(row.get(name), unit)
            for name, unit, _ in columns
        ]
        for row in facts["rows"]
    ]
    # Cells keep their full width (a figure cut to "223,00…" is worse than a wide table).
    table = Table(title=escape(title), title_justify="left")
    for i, (name, _, head) in enumerate(columns):
        width = max([len(r[i]) for r in rows] + [4])
        table.add_column(head, justify="left" if name in facts["by"] else "right", min_width=width)
    for cells in rows:
        table.add_row(*cells)
    out = _console()
    out.print(table)
    for m in facts["measures"]:
        out.print(f"[dim]{m['name']}: {escape(m['meaning'])}[/]")
    if facts.get("filters"):
        out.print(f"[dim]filters: {escape(', '.join(facts['filters']))}[/]")
    shown = len(facts["rows"])
    if facts["rows_total"] > shown:
        out.print(f"[dim]{shown} of {facts['rows_total']} rows shown[/]")
    for note in facts.get("notes", []):
        out.print(f"[dim]note: {escape(note)}[/]")
    if facts.get("chart"):
        out.print(f"Chart: {facts['chart']}")


clv_app = typer.Typer(
    help="Check the CLV model the way lifetimes users do: calibration vs holdout.",
    no_args_is_help=True,
)
app.add_typer(clv_app, name="clv")


@clv_app.command("check")
def clv_check_cmd(
    calibration_end: Annotated[
        str, typer.Option("--calibration-end", help="Last day of the fitting period (YYYY-MM-DD).")
    ],
    holdout_end: Annotated[
        str | None,
        typer.Option("--holdout-end", help="Last day of the holdout (default: the data's end)."),
    ] = None,
    period: Annotated[
        str, typer.Option(help="What one purchase occasion is: day or week.")
    ] = "day",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """BG/NBD fitted up to --calibration-end: its fitted parameters, and actual vs predicted
    repeat purchases in the holdout, in total and by calibration frequency."""
    from insight_agent.analytics.queries import clv_check

    ws = _open(workspace, quiet=as_json)
    result = clv_check(ws, calibration_end, holdout_end, period=period)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    from rich.table import Table

    out = _console()
    cal, hold = result["calibration"], result["holdout"]
    params = ", ".join(f"{k} = {v}" for k, v in result["params"].items())
    out.print(f"BG/NBD ({result['period']}s) fitted on {cal['start']} to {cal['end']}: {params}")
    err = result["error"]
    out.print(
        f"holdout {hold['start']} to {hold['end']}: {result['actual_repeat_purchases']:,.0f} "
        f"actual vs {result['predicted_repeat_purchases']:,.0f} predicted repeat purchases"
        + (f" ({err:+.1%})" if err is not None else "")
    )
    table = Table(title="By repeat purchases in the calibration period", title_justify="left")
    for col in (
        "frequency",
        "customers",
        "actual",
        "predicted",
        "per customer: actual",
        "predicted",
    ):
        table.add_column(col, justify="right")
    for r in result["by_frequency"]:
        table.add_row(
            r["frequency"],
            f"{r['customers']:,}",
            f"{r['actual']:,.0f}",
            f"{r['predicted']:,.0f}",
            f"{r['actual_per_customer']:.2f}",
            f"{r['predicted_per_customer']:.2f}",
        )
    out.print(table)


@app.command("model-card")
def model_card_cmd(
    target: Annotated[
        str, typer.Argument(help="churn, purchase, response, or a category name (e.g. Footwear).")
    ],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How good a propensity model is (held-out window), and what drives it."""
    from insight_agent.analytics.queries import model_card

    ws = _open(workspace, quiet=as_json)
    card = model_card(ws, target)
    if as_json:
        typer.echo(json.dumps(card, indent=2, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    m = card["metrics"]
    out = _console()
    out.print(f"[bold]{escape(card['target'])}[/]: {escape(card['meaning'])}")
    out.print(f"model: {card['family']} (calibrated); reliability: {card['reliability']}")
    if card.get("targeting"):
        out.print(f"targeting: {escape(card['targeting'])}")
    window = m["eval_window"]
    where = window if isinstance(window, str) else f"held-out window {window[0]} – {window[1]}"
    out.print(f"{where}: {m['n']:,} customers, {m['positives']:,} positive ({m['base_rate']:.1%})")
    if "cv_folds" in m:  # a customers table's label: cross-validated
        spread = (
            f"CV ROC-AUC {m['cv_roc_auc_mean']:.3f} ± {m['cv_roc_auc_std']:.3f} "
            f"({m['cv_folds']} folds)"
        )
    else:  # an order-history model: one held-out window, with DeLong's interval
        lo, hi = m["roc_auc_ci95"]
        spread = f"95% interval of the ROC-AUC {lo:.3f}–{hi:.3f}"
    out.print(
        f"ROC-AUC {m['roc_auc']:.3f} · PR-AUC {m['pr_auc']:.3f} · Brier {m['brier']:.3f} · "
        + spread
    )
    out.print(
        f"at threshold {m['threshold']:.2f}: precision {m['precision']:.2f}, recall "
        f"{m['recall']:.2f}, F1 {m['f1']:.2f}"
    )
    compared = ", ".join(f"{k} {v['roc_auc']:.3f}" for k, v in card["comparison"].items())
    out.print(f"compared (ROC-AUC, {'CV' if isinstance(window, str) else 'held-out'}): {compared}")
    for item in card.get("leakage", []):
        out.print(f"[yellow]left out:[/] {escape(item['column'])} — {escape(item['action'])}")
    for column, reason in card.get("dropped_columns", {}).items():
        if not any(x["column"] == column for x in card.get("leakage", [])):
            out.print(f"[dim]not used: {escape(column)} ({escape(reason)})[/]")
    table = Table(title="Lift by decile (1 = highest scores)", title_justify="left")
    table.add_column("decile")
    table.add_column("lift", justify="right")
    table.add_column("cumulative capture", justify="right")
    for i, (lift, cap) in enumerate(
        zip(m["lift_by_decile"], m["capture_by_decile"], strict=True), start=1
    ):
        table.add_row(str(i), f"{lift:.2f}x", f"{cap:.0%}")
    out.print(table)
    out.print("[bold]drivers[/] (permutation importance):")
    for d in card["drivers"][:8]:
        out.print(f"  {escape(d['label'])}: {d['importance']:.3f} ({d['direction']})")


@app.command()
def score(
    customer: Annotated[
        str | None, typer.Option("--customer", "-c", help="A customer id of the build.")
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="JSON: a new customer (or a list), the customers file's columns plus an "
            "optional 'orders' list; scored by the saved models.",
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="CSV of new customers to score.")
    ] = None,
    orders: Annotated[
        Path | None, typer.Option("--orders", help="With --file: their orders (CSV).")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One customer's segment, propensity scores with reasons, and 12-month CLV; or new
    customers (--record / --file) scored in real time by the build's saved models."""
    from insight_agent.analytics.queries import customer_score

    ws = _open(workspace, quiet=True)
    if sum(x is not None for x in (customer, record, file)) != 1:
        raise typer.BadParameter("give one of --customer, --record or --file")
    if record is not None or file is not None:
        _score_new(ws, record, file, orders, as_json)
        return
    assert customer is not None
    row = customer_score(ws, customer)
    if as_json:
        typer.echo(json.dumps(row, indent=2, default=str))
        return
    from rich.markup import escape

    out = _console()
    out.print(
        f"[bold]{escape(str(row['customer_id']))}[/] — "
        f"{escape(str(row.get('segment_name') or 'no segment'))}"
        + (f" (RFM {row['rfm']})" if row.get("rfm") else "")
    )
    if row.get("recency_days") is not None:  # a build without orders has no RFM
        out.print(
            f"  last order {row['recency_days']:,.0f} days ago · {row['frequency']:,.0f} "
            f"orders · {row['monetary_total']:,.2f} spent · average order "
            f"{row['avg_order_value']:,.2f}"
        )
    for key, value in row.items():
        if key.startswith("p_") and key != "p_alive" and value is not None:
            base = key[2:]
            decile = row.get(f"{base}_decile")
            line = f"  {base.replace('cat_', 'buys ').replace('label_', '')}: {value:.1%}"
            if decile:
                line += f" (decile {decile})"
            reasons = row.get(f"{base}_reasons") or []
            if reasons:
                line += " — " + "; ".join(reasons)
            out.print(escape(line))
    if row.get("clv_12m") is not None:
        out.print(f"  12-month CLV {row['clv_12m']:,.2f} · P(alive) {row['p_alive']:.0%}")
    if row.get("clv_note"):  # e.g. one-time buyers: P(alive) is 1 by construction
        out.print(f"  [dim]{escape(str(row['clv_note']))}[/]")
    if row.get("next_best_category"):
        out.print(f"  next best category: {escape(str(row['next_best_category']))}")
    from insight_agent.analytics.queries import customer_attributes

    attributes = customer_attributes(ws, str(row["customer_id"]))
    if attributes:  # their own columns (a label's value among them), contact details left out
        shown = " · ".join(f"{c} {v}" for c, v in attributes.items())
        out.print(f"  [dim]{escape(shown)}[/]")


def _score_new(
    ws: Workspace, record: Path | None, file: Path | None, orders: Path | None, as_json: bool
) -> None:
    from insight_agent.analytics.scoring import read_records, read_table, score_new

    if record is not None:
        people, their_orders = read_records(record)
    else:
        assert file is not None
        people = read_table(file, "customers")
        their_orders = read_table(orders, "orders") if orders is not None else None
    rows = score_new(ws, people, their_orders)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.markup import escape

    out = _console()
    for row in rows:
        out.print(f"[bold]{escape(str(row['customer_id']))}[/] (not in the build; saved models)")
        for target, s in row["scores"].items():
            why = f" — {'; '.join(s['reasons'])}" if s["reasons"] else ""
            out.print(f"  {escape(target)}: {s['probability']:.1%}{escape(why)}")
        if not row["scores"]:
            out.print("  [dim]no model could score it (order-based models need --orders)[/]")


@app.command()
def audience(
    target: Annotated[
        str, typer.Option("--target", "-t", help="churn, purchase, response or a category.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
    top: Annotated[int, typer.Option(min=1, help="How many customers.")] = 500,
    segment: Annotated[str | None, typer.Option(help="Only this segment (id or name).")] = None,
    min_probability: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the customers most likely to churn / buy / respond, with reasons, as CSV."""
    from insight_agent.analytics.queries import audience as build_audience
    from insight_agent.analytics.queries import write_audience

    ws = _open(workspace, quiet=as_json)
    frame = build_audience(ws, target, top=top, segment=segment, min_probability=min_probability)
    path = write_audience(frame, output)
    summary = {
        "path": str(path),
        "rows": len(frame),
        "target": target,
        "mean_probability": round(float(frame["probability"].mean()), 3) if len(frame) else None,
        "build_id": frame.attrs.get("build_id"),
    }
    already = frame.attrs.get("already_positive")
    if already:  # the label's positives are not prospects: say who was left out
        summary["left_out"] = already
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _console().print(
            f"Wrote {summary['rows']:,} customers to {path} "
            f"(mean probability {summary['mean_probability'] or 0:.0%})"
            + (
                f"; left out {already['customers']:,} who already have {already['label']}"
                if already
                else ""
            )
        )


reviews_app = typer.Typer(
    cls=_InsightGroup, help="Customer reviews: semantic search with filters.", no_args_is_help=True
)
app.add_typer(reviews_app, name="reviews")


@reviews_app.command("search")
def reviews_search(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    segment: Annotated[str | None, typer.Option(help="Segment id (S2) or name.")] = None,
    min_rating: Annotated[float | None, typer.Option(min=0, max=5)] = None,
    max_rating: Annotated[float | None, typer.Option(min=0, max=5)] = None,
    sentiment: Annotated[
        str | None, typer.Option(help="positive, neutral, negative or unrated.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Reviews on or after YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Reviews on or before YYYY-MM-DD.")] = None,
    product: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
    contains: Annotated[str | None, typer.Option(help="Word the text must contain.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many reviews.")] = 5,
    diverse: Annotated[
        bool,
        typer.Option(
            help="Diversify quotes (MMR) instead of the k nearest (whole-review search only)."
        ),
    ] = True,
    full: Annotated[
        bool, typer.Option("--full", help="Print whole reviews (default: ~300 characters).")
    ] = False,
    workspace: WorkspaceOpt = None,
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find reviews by meaning, with filters; every quote comes with its review id.

    Ranked by the sentence or clause that matches best (negations and opposites such as "runs
    large" for "runs small" rank lower; a complaint ranks negative statements first); the
    matching part is highlighted."""
    from insight_agent.vectorstore.queries import review_search

    _leaves_nothing_to_finalize()  # read-only (what a first search saves, it saves at once)
    ws = _open(workspace, quiet=as_json, chroma_url=chroma_url)
    result = review_search(
        ws,
        query,
        k=k,
        segment=segment,
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
        since=since,
        until=until,
        product=product,
        category=category,
        contains=contains,
        diverse=diverse,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    from rich.markup import escape

    out = _console()
    if not result["hits"]:
        out.print("No reviews match these filters.")
        return
    from insight_agent.vectorstore.units import excerpt

    for hit in result["hits"]:
        stars = f"{hit['rating']:.0f}★" if hit["rating"] is not None else "unrated"
        where = " · ".join(str(v) for v in (hit["date"], hit["segment"], hit["category"]) if v)
        out.print(f"[bold]{escape(hit['review_id'])}[/] {stars} [dim]{escape(where)}[/]")
        text = str(hit["text"] or "")
        if "span" in hit:
            before, unit, after = excerpt(text, *hit["span"], width=len(text) if full else 320)
            out.print(f"  “{escape(before)}[bold]{escape(unit)}[/]{escape(after)}”")
        elif full or len(text) <= 320:
            out.print(f"  “{escape(text)}”")
        else:
            before, _, _ = excerpt(text, 300, 300, width=300)
            out.print(f"  “{escape(before.rstrip())} …”")


@reviews_app.command("count")
def reviews_count(
    query: Annotated[str, typer.Argument(help='What reviews say, e.g. "runs small".')],
    by: Annotated[
        str | None,
        typer.Option(help="Group: category, product, segment, rating, month or sentiment."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Match score a sentence needs (default: calibrated on this data)."),
    ] = None,
    tone: Annotated[
        str | None,
        typer.Option(
            help="negative: only sentences not scored positive (complaints); positive: only "
            "sentences not scored negative; neutral."
        ),
    ] = None,
    segment: Annotated[str | None, typer.Option(help="Segment id (S2) or name.")] = None,
    min_rating: Annotated[float | None, typer.Option(min=0, max=5)] = None,
    max_rating: Annotated[float | None, typer.Option(min=0, max=5)] = None,
    sentiment: Annotated[
        str | None, typer.Option(help="positive, neutral, negative or unrated.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Reviews on or after YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Reviews on or before YYYY-MM-DD.")] = None,
    product: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
    contains: Annotated[str | None, typer.Option(help="Word the text must contain.")] = None,
    export: Annotated[
        Path | None, typer.Option(help="Write the matching reviews (ids, sentence) to a CSV.")
    ] = None,
    phrase: Annotated[
        bool,
        typer.Option("--phrase", help="Match the words as a phrase even when they name an aspect."),
    ] = False,
    workspace: WorkspaceOpt = None,
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How many reviews say something, as a share of the reviews in scope, optionally by group.

    Every sentence of every review is compared with the query (exact, not a sample): a review
    counts when one of its sentences scores at least the threshold (see docs/reviews.md). A
    query that only names an aspect ("returns", "the fabric") counts the reviews talking about
    it, by the same rule as `insight reviews themes`; --phrase matches the words instead."""
    from insight_agent.vectorstore.queries import review_count

    ws = _open(workspace, quiet=as_json, chroma_url=chroma_url)
    result = review_count(
        ws,
        query,
        by=by,
        threshold=threshold,
        tone=tone,
        segment=segment,
        min_rating=min_rating,
        max_rating=max_rating,
        sentiment=sentiment,
        since=since,
        until=until,
        product=product,
        category=category,
        contains=contains,
        phrase=phrase,
    )
    matches = result.pop("matches")
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
        matches.to_csv(export, index=False)
        result["exported"] = str(export)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    out = _console()
    scope = ", ".join(f"{k}={v}" for k, v in result["filters"].items())
    if result.get("aspect"):
        what = f"talk about {escape(result['aspect'])}"
        rule = "[dim]· a sentence in the theme (seed words or similar wording)[/]"
    else:
        what = f"say “{escape(query)}”"
        rule = f"[dim]· match score ≥ {result['threshold']:.3f}[/]"
    out.print(
        f"[bold]{result['matching_reviews']:,}[/] of {result['reviews_in_scope']:,} reviews "
        f"({result['share']:.1%}) {what}"
        + (f" [dim](sentences leaning {result['tone']})[/]" if result.get("tone") else "")
        + (f" [dim]({escape(scope)})[/]" if scope else "")
        + f" {rule}"
    )
    if result.get("groups"):
        table = Table(box=None, header_style="bold")
        for name in (result["by"], "reviews", "matching", "share"):
            table.add_column(name, justify="left" if name == result["by"] else "right")
        for row in result["groups"]:
            table.add_row(
                escape(str(row[result["by"]])),
                f"{row['reviews']:,}",
                f"{row['matching']:,}",
                f"{row['share']:.1%}",
            )
        out.print(table)
    for example in result["examples"]:
        out.print(f"  [bold]{escape(example['review_id'])}[/] “{escape(example['matching_unit'])}”")
    if export is not None:
        out.print(f"Wrote {len(matches):,} matching reviews to {export}")


@reviews_app.command("model-card")
def reviews_model_card(
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The review sentiment model: what it learned from, its cross-validated AUC, the lexicon's
    AUC on the same reviews, thresholds and the words that weigh most."""
    from insight_agent.vectorstore.textmodel import load_text_model

    ws = _open(workspace, quiet=as_json)
    model = load_text_model(ws.artifacts / "reviews")
    if model is None:
        card: dict[str, Any] = {
            "model": "none",
            "note": "no sentiment model: fewer than 200 rated reviews with text (or one class "
            "only), or no build yet; unrated text is scored with the VADER lexicon",
        }
    else:
        card = model.card()
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    out = _console()
    if model is None:
        out.print(card["note"])
        return
    out.print(f"[bold]Review sentiment model[/]: {card['model']}")
    out.print(
        f"  target {card['target']} · trained on {card['trained_on']:,} rated reviews "
        f"({card['positive_share']:.0%} positive)"
    )
    lex = card["lexicon_auc"]
    out.print(
        f"  5-fold CV AUC {card['cv_auc']:.3f}"
        + (f" (the VADER lexicon on the same reviews: {lex:.3f})" if lex is not None else "")
    )
    t = card["thresholds"]
    out.print(
        f"  a sentence is negative below P(positive) {t['negative_below']}, positive from "
        f"{t['positive_from']}"
    )
    out.print("  negative words: " + ", ".join(card["top_terms"]["negative"]))
    out.print("  positive words: " + ", ".join(card["top_terms"]["positive"]))


@reviews_app.command("quotes")
def reviews_quotes(
    segment: Annotated[str, typer.Option(help="Segment id (S2) or name.")],
    k: Annotated[int, typer.Option("-k", min=1, max=20, help="How many quotes.")] = 3,
    sentiment: Annotated[
        str | None, typer.Option(help="Only positive, neutral, negative or unrated reviews.")
    ] = None,
    workspace: WorkspaceOpt = None,
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Quotes that stand for a segment's reviews (nearest their centroid), with review ids."""
    from insight_agent.vectorstore.queries import segment_quotes

    ws = _open(workspace, quiet=as_json, chroma_url=chroma_url)
    result = segment_quotes(ws, segment, k=k, sentiment=sentiment)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    from rich.markup import escape

    out = _console()
    out.print(f"[bold]{escape(str(result['segment']))}[/]: {result['reviews']:,} reviews")
    for quote in result["quotes"]:
        out.print(f"  [bold]{escape(quote['review_id'])}[/] “{escape(quote['text'])}”")


@reviews_app.command("themes")
def reviews_themes(
    segment: Annotated[str | None, typer.Option(help="Only this segment (id or name).")] = None,
    compare: Annotated[
        str | None,
        typer.Option(help="Compare theme shares with this other segment (needs --segment)."),
    ] = None,
    sentiment: Annotated[
        str | None, typer.Option(help="Only positive, neutral, negative or unrated reviews.")
    ] = None,
    min_rating: Annotated[float | None, typer.Option(min=0, max=5)] = None,
    max_rating: Annotated[float | None, typer.Option(min=0, max=5)] = None,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="Theme × group table with tests: category, product, segment, rating, month."
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option("-k", min=1, max=50, help="Cluster whole reviews into k themes instead."),
    ] = None,
    whole_reviews: Annotated[
        bool, typer.Option("--whole-reviews", help="Cluster whole reviews (the older method).")
    ] = False,
    workspace: WorkspaceOpt = None,
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What reviews talk about: aspect themes (sizing, fabric, price...) over sentences, with
    the share of reviews and sentences, sentiment, rating and quotes; --by adds a table."""
    from rich.markup import escape

    ws = _open(workspace, quiet=as_json, chroma_url=chroma_url)
    if compare:
        from insight_agent.vectorstore.queries import compare_segment_themes

        if not segment:
            from insight_agent.errors import ConfigError

            raise ConfigError("--compare needs --segment (the first of the two segments)")
        result = compare_segment_themes(ws, segment, compare, k=k)
        if as_json:
            typer.echo(json.dumps(result, indent=2, default=str))
            return
        _print_theme_comparison(result)
        return
    from insight_agent.vectorstore.queries import review_themes

    result = review_themes(
        ws,
        segment=segment,
        sentiment=sentiment,
        min_rating=min_rating,
        max_rating=max_rating,
        category=category,
        k=k,
        by=by,
        whole_reviews=whole_reviews,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    out = _console()
    scope = ", ".join(f"{key} {value}" for key, value in result.get("filters", {}).items())
    units = result.get("units")
    out.print(
        f"[bold]{result['reviews']:,} reviews[/]{' (' + escape(scope) + ')' if scope else ''}"
        + (f", {units:,} sentences" if units else "")
        + f" in {result['k']} themes"
    )
    for theme in result["themes"]:
        rating = "–" if theme.get("avg_rating") is None else f"{theme['avg_rating']:.2f}★"
        negative = f"{theme['share_negative']:.0%} negative"
        if units:
            negative = f"{theme['share_negative']:.0%} of its sentences negative"
        out.print(
            f"\n[bold]{escape(theme['theme'])} {escape(theme['label'])}[/]  "
            f"{theme['share']:.1%} of reviews · {rating} · {negative}"
        )
        out.print(f"  [dim]keywords: {escape(', '.join(theme.get('keywords', [])[:8]))}[/]")
        cats = ", ".join(f"{c['category']} ×{c['lift']}" for c in theme.get("top_categories", []))
        if cats:
            out.print(f"  [dim]most over-represented in: {escape(cats)}[/]")
        for quote in theme.get("quotes", [])[:3]:
            out.print(f"  [bold]{escape(quote['review_id'])}[/] “{escape(quote['text'])}”")
    if result.get("by"):
        key = result["by"]
        notable = result.get("notable") or []
        out.print(f"\n[bold]Themes by {escape(key)}[/] (Holm-adjusted p < 0.05, above the rest)")
        if not notable:
            out.print("  no theme is mentioned significantly more in one group than in the rest")
        for c in notable:
            out.print(
                f"  {escape(c['label'])} · {escape(str(c[key]))}: {c['share']:.1%} of "
                f"{c['reviews']:,} reviews vs {c['share_elsewhere']:.1%} elsewhere "
                f"(p = {c['p_holm']:.2g})"
            )


def _print_theme_comparison(result: dict[str, Any]) -> None:
    from rich.markup import escape

    out = _console()
    a, b = escape(str(result["segment_a"])), escape(str(result["segment_b"]))
    chi = result.get("chi_square") or {}
    out.print(
        f"[bold]{a}[/] ({result['reviews_a']:,} reviews) vs [bold]{b}[/] "
        f"({result['reviews_b']:,} reviews), {result['k']} themes · overall chi-square "
        f"p = {chi.get('p_value')}"
    )
    for row in result.get("themes", []):
        mark = " [yellow]significant[/]" if row.get("significant") else ""
        out.print(
            f"  {escape(row['theme'])} {escape(str(row['label']))}: {row['share_a']:.1%} vs "
            f"{row['share_b']:.1%} (Holm-adjusted p = {row['p_adjusted']}){mark}"
        )
    out.print(f"[dim]{escape(result.get('method', ''))}[/]")


# --- the agent: ask and chat ------------------------------------------------------------------

LlmOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="local (embedded model), openai (any OpenAI-compatible endpoint) or none "
        "(no LLM: templated answers). Default: llm.provider, else auto (see `insight doctor`).",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", help="Model name at the OpenAI-compatible endpoint.", show_default=False
    ),
]
ModelPathOpt = Annotated[
    Path | None,
    typer.Option(
        "--model-path",
        help="Run this GGUF file with the embedded runtime instead.",
        show_default=False,
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option("--strict", help="Ask the model once to fix figures not found in tool output."),
]
MaskOpt = Annotated[
    bool | None,
    typer.Option(
        "--mask-pii/--no-mask-pii",
        help="Replace emails, phones, names and customer ids before text reaches the model "
        "(default: on for openai, off for the local model).",
        show_default=False,
    ),
]


def _tool_line(result: Any) -> str:
    from rich.markup import escape

    args = ", ".join(f"{k}={v!r}" for k, v in result.args.items())
    status = "[red]error[/]" if result.error else "ok"
    return f"[dim]→ {escape(result.name)}({escape(args)}) {status} {result.seconds:.2f}s[/]"


def _session(
    workspace: Path | None,
    *,
    llm: str | None,
    model: str | None,
    model_path: Path | None,
    strict: bool,
    mask_pii: bool | None,
    confirm: Any,
    on_event: Any,
    quiet: bool,
) -> Any:
    from insight_agent.agent.session import SessionOptions, open_session

    ws = _open(workspace, quiet=quiet)
    if model_path is not None and not model_path.is_file():
        from insight_agent.errors import ConfigError

        raise ConfigError(f"--model-path: no file {model_path}")
    return open_session(
        ws,
        llm="local" if model_path is not None and not llm else llm,
        model=model,
        model_path=model_path,
        options=SessionOptions(strict=strict, mask_pii=mask_pii),
        confirm=confirm,
        on_event=on_event,
    )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A question about your customers.")],
    llm: LlmOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    strict: StrictOpt = False,
    mask_pii: MaskOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Allow the export tool to write without asking.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer one question (for scripts). --json adds tool calls, verification, timings, tokens.

    Exit code 4 when --strict is given and figures or quotes remain unverified.
    """
    err = _console(stderr=True)
    out = _console()

    def on_event(kind: str, payload: Any) -> None:
        if as_json:
            return
        if kind == "tool":
            err.print(_tool_line(payload))
        elif kind == "status":
            err.print(f"[dim]{payload}[/]")

    session = _session(
        workspace,
        llm=llm,
        model=model,
        model_path=model_path,
        strict=strict,
        mask_pii=mask_pii,
        confirm=lambda prompt: yes,
        on_event=on_event,
        quiet=as_json,
    )
    result = session.ask(question)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        from rich.markup import escape

        out.print(escape(result.answer))
        _print_table(out, result)
        _print_quotes(out, result.quotes)
        for note in result.notes:
            err.print(f"[dim]({escape(note)})[/]")
    if strict and not result.grounding.get("ok", True):
        raise typer.Exit(4)


def _print_table(out: Any, result: Any) -> None:
    """The table behind a model's answer (the first tool result's list, up to 10 rows), so a
    list the answer only summarises is there to read. The `none` provider's answer already
    lists the rows."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from insight_agent.agent.session import turn_table

    found = turn_table(result.tool_calls) if result.provider != "none" else None
    if found is None:
        return
    shown, total = len(found["rows"]), found["total"]
    rows = f"{total} rows" if shown == total else f"the first {shown} of {total} rows"
    table = Table(
        box=box.SIMPLE_HEAD,
        caption=escape(f"{found['tool']}: {found['name']}, {rows}"),
        caption_justify="left",
        pad_edge=False,
    )
    for column in found["columns"]:
        table.add_column(escape(column.replace("_", " ")), overflow="fold")
    for row in found["rows"]:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


def _print_quotes(out: Any, quotes: list[dict[str, Any]]) -> None:
    """The review quotes behind an answer, verbatim, one per line, with their review ids."""
    from rich.markup import escape

    from insight_agent.agent.session import quote_line

    for quote in quotes:
        out.print(f"  [italic]{escape(quote_line(quote))}[/]")


CHAT_HELP = """[bold]Commands[/]
  /help           this help
  /tools          the tools the assistant can use
  /reset          forget the conversation
  /usage          tokens and turns so far
  /save FILE      save the conversation (JSONL with tool calls)
  /quit           leave (or Ctrl-D)"""


@app.command()
def chat(
    llm: LlmOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    strict: StrictOpt = False,
    mask_pii: MaskOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Chat about your customers: answers stream in, each tool call is shown with its time."""
    from rich.markup import escape

    out = _console()
    streamed: list[str] = []

    def on_event(kind: str, payload: Any) -> None:
        if kind == "tool":
            out.print(_tool_line(payload))
        elif kind == "status":
            out.print(f"[dim]{escape(str(payload))}[/]")
        elif kind == "token":
            streamed.append(payload)
            out.print(escape(payload), end="")

    def confirm(prompt: str) -> bool:
        return typer.confirm(prompt, default=False)

    session = _session(
        workspace,
        llm=llm,
        model=model,
        model_path=model_path,
        strict=strict,
        mask_pii=mask_pii,
        confirm=confirm,
        on_event=on_event,
        quiet=False,
    )
    _enable_history()
    model = f" ({escape(str(session.model_name))})" if session.model_name else ""
    out.print(
        f"[bold]Insight[/] · {escape(session.ctx.ws.settings.name)} · provider "
        f"{session.choice.name}{model} · /help for commands"
    )
    turns: list[dict[str, Any]] = []
    while True:
        try:
            line = input("\nyou> ").strip()
        except EOFError:
            out.print()
            break
        except KeyboardInterrupt:
            out.print()
            break
        if not line:
            continue
        if line.startswith("/"):
            command, _, arg = line.partition(" ")
            if command in ("/quit", "/exit", "/q"):
                break
            if command == "/help":
                out.print(CHAT_HELP)
            elif command == "/tools":
                from insight_agent.tools.registry import all_tools

                for spec in all_tools():
                    out.print(f"[bold]{spec.name}[/] — {escape(spec.description)}")
            elif command == "/reset":
                session.reset()
                out.print("[dim]conversation cleared[/]")
            elif command == "/usage":
                u = session.usage
                out.print(
                    f"{u['turns']} turns · {u['input']:,} input tokens · "
                    f"{u['output']:,} output tokens"
                )
            elif command == "/save":
                if not arg.strip():
                    out.print("[red]usage: /save FILE[/]")
                    continue
                from insight_agent.workspace import atomic_write_text

                target = Path(arg.strip()).expanduser()
                atomic_write_text(
                    target,
                    "".join(json.dumps(t, ensure_ascii=False, default=str) + "\n" for t in turns),
                )
                out.print(f"[dim]saved {len(turns)} turns to {escape(str(target))}[/]")
            else:
                out.print(f"[red]unknown command {escape(command)}[/] (/help)")
            continue
        streamed.clear()
        try:
            result = session.ask(line)
        except KeyboardInterrupt:
            out.print("\n[dim]interrupted[/]")
            continue
        except Exception as exc:  # provider down, bad key...: say so and keep chatting
            from insight_agent.errors import InsightError

            if isinstance(exc, InsightError):
                _print_error(exc.message, exc.hint)
                continue
            raise
        turns.append(result.to_dict())
        if not streamed:
            out.print(escape(result.answer), end="")
        elif result.answer != "".join(streamed).strip():
            # what was streamed differs from the final answer (a fix, or flags): show it
            flags = [ln for ln in result.answer.split("\n") if ln.startswith("unverified")]
            if result.fixed:
                out.print("\n" + escape(result.answer), end="")
            elif flags:
                out.print("\n" + escape("\n".join(flags)), end="")
        out.print()
        _print_table(out, result)
        _print_quotes(out, result.quotes)
        for note in result.notes:
            out.print(f"[dim]({escape(note)})[/]")
        if not result.grounding.get("ok", True):
            out.print(
                "[yellow]some figures or quotes could not be verified against the tools' output[/]"
            )
    out.print(f"[dim]transcript: {escape(str(session.transcript_path))}[/]")


# --- personas and reports --------------------------------------------------------------------


@app.command()
def persona(
    segment: Annotated[
        str | None, typer.Argument(help="Segment id (S2), name, or part of a name.")
    ] = None,
    all_segments: Annotated[bool, typer.Option("--all", help="One persona per segment.")] = False,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="md, json or html.", show_default=True)
    ] = "md",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file.")
    ] = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write a segment persona grounded in the data (--llm none: a data-only persona card)."""
    from insight_agent.errors import ConfigError

    if fmt not in ("md", "json", "html"):
        raise ConfigError(f"unknown --format '{fmt}'", hint="md, json or html")
    if bool(segment) == all_segments:
        raise ConfigError("name one segment, or use --all", hint="see `insight segments`")
    from insight_agent.reports.persona import make_personas, render_personas

    ws = _open(workspace, quiet=output is None)
    err = _console(stderr=True)
    personas = make_personas(
        ws,
        [segment] if segment else None,
        llm="local" if model_path is not None and not llm else llm,
        model=model,
        model_path=model_path,
        say=lambda msg: err.print(f"[dim]{msg}[/]"),
    )
    text = render_personas(personas, fmt)
    if output is None:
        typer.echo(text, nl=False)
        return
    from insight_agent.workspace import atomic_write_text

    atomic_write_text(output, text)
    flagged = sum(len(p.grounding.get("unverified") or []) for p in personas)
    _console().print(
        f"Wrote {len(personas)} persona{'s' if len(personas) != 1 else ''} to {output}"
        + (f" ({flagged} unverified figures flagged)" if flagged else "")
    )


@app.command()
def report(
    spec: Annotated[Path, typer.Argument(help="Report spec (YAML); see examples/reports/.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="OUT.html or OUT.md (both are written).")
    ],
    llm: LlmOpt = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ask the LLM again instead of reusing answers.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render a scripted report (Markdown + self-contained HTML + manifest), reproducibly."""
    from insight_agent.reports.runner import run_report, write_report
    from insight_agent.reports.spec import load_spec

    parsed = load_spec(spec)  # validated before any work starts
    ws = _open(workspace, quiet=as_json)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=_console(stderr=True),
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("report", total=len(parsed.sections))

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label[:60])

        run = run_report(ws, parsed, llm=llm, use_cache=not no_cache, progress=progress)
    paths = write_report(run, output)
    if as_json:
        typer.echo(
            json.dumps(
                {**{k: str(v) for k, v in paths.items()}, "unverified": run.unverified}, indent=2
            )
        )
        return
    out = _console()
    out.print(f"HTML:     {paths['html']}")
    out.print(f"Markdown: {paths['markdown']}")
    out.print(f"Manifest: {paths['manifest']}")
    if run.unverified:
        out.print(f"[yellow]unverified figures flagged: {', '.join(run.unverified)}[/]")


def _enable_history() -> None:
    """Up-arrow history across chat sessions (readline, where the platform has it)."""
    try:
        import atexit
        import readline

        from insight_agent.workspace import user_data_dir

        path = user_data_dir() / "chat_history"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(path)
        readline.set_history_length(1000)
        atexit.register(readline.write_history_file, path)
    except (ImportError, OSError):
        pass


def _quiet_broken_pipe() -> None:
    """End the command quietly when stdout's reader has gone (``insight ... | head``): no
    message, exit status 1 as Click and Rich use for the same case. Standard output is
    pointed at /dev/null first, so Python's own flush at exit does not complain again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (captured): nothing left to flush
        pass
    raise SystemExit(1) from None


_nothing_to_finalize = False  # see _leaves_nothing_to_finalize


def _leaves_nothing_to_finalize() -> None:
    """Mark the running command as one whose objects need no clean-up when the process
    ends (it wrote what it writes, and holds no store open for writing). The console
    script then stops the cyclic garbage collector before Python's shutdown, which would
    otherwise walk every object once more: about 60 ms of a 0.6 s cold ``insight reviews
    search`` (bench/cli_startup.py). Objects are still freed as usual; only cycles are left
    to the end of the process. In-process callers (tests, CliRunner) are not affected."""
    global _nothing_to_finalize
    _nothing_to_finalize = True


def main() -> None:
    """Console-script entry point."""
    global _nothing_to_finalize
    _nothing_to_finalize = False
    try:
        app()
    except KeyboardInterrupt:  # during argument parsing or rendering
        _print_error("interrupted")
        sys.exit(130)
    except BrokenPipeError:  # outside a command (help, --version): as inside one
        _quiet_broken_pipe()
    finally:
        if _nothing_to_finalize:
            import gc

            gc.freeze()  # the shutdown's collections skip every object made so far


if __name__ == "__main__":
    main()
