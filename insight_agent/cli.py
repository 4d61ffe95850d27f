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


class _InsightGroup(TyperGroup):
    """Turns Insight's own errors into a message and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from insight_agent.errors import InsightError

        try:
            return super().invoke(ctx)
        except InsightError as exc:
            _print_error(exc.message, exc.hint)
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            _print_error("interrupted")
            raise SystemExit(130) from None
        except (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
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


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    # soft_wrap: long paths and messages stay on one line (copyable, greppable).
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _print_error(message: str, hint: str | None = None) -> None:
    from rich.markup import escape

    err = _console(stderr=True)
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")


def _open(workspace: Path | None, *, quiet: bool = False) -> Workspace:
    """Open the workspace for a command; say so when it is the built-in demo."""
    from insight_agent.data.bootstrap import open_workspace

    ws = open_workspace(workspace)
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
    from insight_agent.data.load import validate as run_validate

    ws = _open(workspace, quiet=as_json)
    share = 0.0 if strict else max_drop_share
    report = run_validate(ws.settings, max_drop_share=share, display=ws.display)
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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # during argument parsing or rendering
        _print_error("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
