"""Create workspaces (`insight init`) and open the one a command should use.

Lives in the data layer because a demo workspace needs the demo generator; ``workspace.py`` only
knows paths and settings.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from insight_agent.config import CONFIG_NAME, TABLES, render_config
from insight_agent.errors import ConfigError
from insight_agent.workspace import (
    ARTIFACT_DIR,
    Location,
    Workspace,
    atomic_write_text,
    file_lock,
    locate,
)


@dataclass
class InitResult:
    """What `insight init` did."""

    root: Path
    config: Path
    tables: dict[str, Path]
    demo_rows: dict[str, int] | None = None


def init_workspace(
    root: Path,
    *,
    demo: bool = False,
    sources: dict[str, Path] | None = None,
    force: bool = False,
    n_customers: int | None = None,
    seed: int | None = None,
    name: str | None = None,
) -> InitResult:
    """Write ``root/insight.toml`` (and with ``demo`` the generated demo data under ``data/``).

    ``sources`` maps table names to existing export files; they are referenced, not copied.
    Refuses to overwrite an existing insight.toml unless ``force``.
    """
    root = Path(root).expanduser().resolve()
    sources = dict(sources or {})
    for table in sources:
        if table not in TABLES:
            raise ConfigError(f"unknown table '{table}'", hint=f"tables: {', '.join(TABLES)}")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a folder")
    config = root / CONFIG_NAME
    if config.exists() and not force:
        raise ConfigError(f"{config} already exists", hint="pass --force to overwrite it")
    if demo and sources:
        raise ConfigError("--demo generates its own data; leave out the table files")
    for table, path in sources.items():
        if not Path(path).expanduser().is_file():
            raise ConfigError(f"{table} file not found: {path}")
    root.mkdir(parents=True, exist_ok=True)
    (root / ARTIFACT_DIR).mkdir(exist_ok=True)

    tables: dict[str, Path] = {}
    demo_rows = None
    if demo:
        from insight_agent.data.demo import DemoConfig, generate_frames, write_demo

        kwargs = {}
        if n_customers is not None:
            kwargs["n_customers"] = n_customers
        if seed is not None:
            kwargs["seed"] = seed
        frames = generate_frames(DemoConfig(**kwargs))
        written = write_demo(frames, root / "data")
        tables = {t: written[t] for t in TABLES if t in written}
        demo_rows = {t: len(getattr(frames, t)) for t in TABLES}
    else:
        tables = {t: Path(path).expanduser().resolve() for t, path in sources.items()}

    rel = {t: _relative(path, root) for t, path in tables.items()}
    # insight.toml is written last and atomically: its presence marks a complete workspace.
    atomic_write_text(config, render_config(name=name or root.name, demo=demo, tables=rel))
    _write_gitignore(root)
    return InitResult(root, config, tables, demo_rows)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _write_gitignore(root: Path) -> None:
    ignore = root / ARTIFACT_DIR / ".gitignore"
    if not ignore.exists():
        atomic_write_text(ignore, "# Insight artifacts: models, indexes, runs. Rebuildable.\n*\n")


def open_workspace(explicit: Path | None = None) -> Workspace:
    """Open the workspace a command should use (see :func:`insight_agent.workspace.locate`).

    The built-in demo workspace is created on first use, under a lock so that two commands
    started together do not both generate it.
    """
    location = locate(explicit)
    if location.is_builtin_demo and not location.exists:
        _create_builtin_demo(location)
    return Workspace.open(location)


def _create_builtin_demo(location: Location) -> None:
    location.root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(location.root.parent / ".demo-workspace.lock", timeout=600):
        if location.exists:  # another process made it while we waited
            return
        if location.root.exists():  # a half-made folder from an interrupted first run
            shutil.rmtree(location.root)
        tmp = location.root.with_name(location.root.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        init_workspace(tmp, demo=True, name="demo")
        # Paths in insight.toml are relative, so the finished folder can be moved into place.
        os.replace(tmp, location.root)
