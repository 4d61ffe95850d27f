"""Workspace location, artifact paths, atomic writes and the build lock.

Resolution order for the workspace a command works on:

1. ``--workspace/-w DIR``
2. ``INSIGHT_WORKSPACE``
3. the current directory, when it holds an ``insight.toml``
4. the built-in demo workspace in the user data directory (created on first use by the data
   layer, see :func:`insight_agent.data.bootstrap.open_workspace`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from insight_agent.config import CONFIG_NAME, Settings, load_settings
from insight_agent.errors import ConfigError, WorkspaceBusy

ARTIFACT_DIR = ".insight"


def user_data_dir() -> Path:
    """Insight's per-user folder (``INSIGHT_HOME`` overrides the platform default)."""
    if os.environ.get("INSIGHT_HOME"):
        return Path(os.environ["INSIGHT_HOME"]).expanduser()
    from platformdirs import user_data_dir as _platform_dir

    return Path(_platform_dir("insight", appauthor=False))


def default_demo_dir() -> Path:
    """Where the built-in demo workspace lives."""
    return user_data_dir() / "demo-workspace"


@dataclass(frozen=True)
class Location:
    """A workspace folder and how it was chosen (shown to the user by `insight doctor`)."""

    root: Path
    source: str  # "--workspace", "INSIGHT_WORKSPACE", "current directory", "built-in demo"

    @property
    def is_builtin_demo(self) -> bool:
        """True when falling back to the demo workspace in the user data directory."""
        return self.source == "built-in demo"

    @property
    def exists(self) -> bool:
        """True when the folder already holds an insight.toml."""
        return (self.root / CONFIG_NAME).is_file()


def locate(explicit: Path | None = None, cwd: Path | None = None) -> Location:
    """Decide which workspace folder a command uses, without creating anything."""
    if explicit is not None:
        return Location(Path(explicit).expanduser().resolve(), "--workspace")
    env = os.environ.get("INSIGHT_WORKSPACE")
    if env:
        return Location(Path(env).expanduser().resolve(), "INSIGHT_WORKSPACE")
    here = (cwd or Path.cwd()).resolve()
    if (here / CONFIG_NAME).is_file():
        return Location(here, "current directory")
    return Location(default_demo_dir().resolve(), "built-in demo")


class Workspace:
    """An opened workspace: its settings and the ``.insight/`` artifact folder."""

    def __init__(self, settings: Settings, source: str = "--workspace") -> None:
        self.settings = settings
        self.source = source

    @classmethod
    def open(cls, location: Location) -> Workspace:
        """Open an existing workspace (raises :class:`ConfigError` if it has no insight.toml)."""
        if not location.root.exists():
            raise ConfigError(
                f"workspace folder {location.root} does not exist (from {location.source})",
                hint=f"run `insight init {location.root}` or pass --workspace DIR",
            )
        return cls(load_settings(location.root), location.source)

    @property
    def root(self) -> Path:
        """The workspace folder."""
        return self.settings.root

    @property
    def artifacts(self) -> Path:
        """``.insight/`` inside the workspace: every artifact Insight writes goes here."""
        return self.root / ARTIFACT_DIR

    def artifact_path(self, *parts: str) -> Path:
        """A path under ``.insight/``; parent folders are created."""
        path = self.artifacts.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def lock(self, name: str = "build", timeout: float = 0.0) -> contextlib.AbstractContextManager:
        """Exclusive lock so two builds cannot write the same artifacts at once."""
        return file_lock(self.artifact_path(f"{name}.lock"), timeout=timeout)

    def display(self, path: Path) -> str:
        """``path`` relative to the workspace when inside it (shorter messages), else absolute."""
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except ValueError:
            return str(path)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold an inter-process lock on ``path``; raise :class:`WorkspaceBusy` after ``timeout`` s."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise WorkspaceBusy(
            f"another Insight process is using this workspace (lock {path})",
            hint="wait for it to finish; if none is running, delete the lock file",
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically.

    If the block raises (or the process dies), ``target`` keeps its previous content and the
    temporary file is removed (or, after a hard crash, left as an ignorable ``.tmp`` file).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; written files get normal permissions
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (temp file + rename)."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``target`` atomically (temp file + rename)."""
    atomic_write_bytes(target, text.encode("utf-8"))
