"""Workspace settings: ``insight.toml`` plus environment overrides.

A workspace is a folder with an ``insight.toml``. The file says where the marketer's exports are,
how their columns map onto Insight's data contract (docs/data.md), and which LLM / vector store
to use. Everything has a default, so a minimal file is just the paths of the data files.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insight_agent.errors import ConfigError

CONFIG_NAME = "insight.toml"
TABLES = ("customers", "orders", "reviews", "campaigns")
LLM_PROVIDERS = ("auto", "local", "openai", "none")


@dataclass
class TableSource:
    """Where one table comes from and how its columns map onto the data contract."""

    path: Path
    columns: dict[str, str] = field(default_factory=dict)  # canonical name -> column in file
    sheet: str | int | None = None  # Excel sheet name or index
    # CSV delimiter: one character, "whitespace" (or "\\s+": runs of spaces/tabs) or "fixed"
    # (fixed-width columns, inferred); sniffed when None.
    delimiter: str | None = None
    encoding: str | None = None  # text encoding; UTF-8/UTF-16 by BOM, else detected, when None
    header: bool | None = None  # does the first row name the columns? None: detect
    names: list[str] | None = None  # column names by position ("" = keep as column_N)
    widths: list[int] | None = None  # fixed-width files: characters per column
    date_format: str | None = None  # strptime format of every date column, e.g. "%Y%m%d"


@dataclass
class DataSettings:
    """Data files and the rules applied when loading them."""

    tables: dict[str, TableSource] = field(default_factory=dict)
    max_drop_share: float = 0.05  # refuse to load a table when more rows than this would be dropped
    dayfirst: bool = False  # how to read ambiguous dates such as 03/04/2025
    today: dt.date | None = None  # reference date for "future date" checks; None = today
    max_amount: float = 1e9  # a single order line above this is treated as a data error
    max_review_chars: int = 4000  # longer review texts are truncated (and reported)


@dataclass
class LLMSettings:
    """Which language model answers questions (see `insight doctor`)."""

    provider: str = "auto"
    model: str | None = None
    model_path: Path | None = None
    base_url: str | None = None
    mask_pii: bool | None = None  # None: on for hosted providers, off for the local model
    # Seconds a hosted endpoint may stay silent (before the reply starts, or between streamed
    # chunks), and retries on 429 / 5xx / timeouts: the tries of one call share
    # (max_retries + 1) x timeout = 60 s, with a note before each retry (agent/llm.py).
    timeout: float = 20.0
    max_retries: int = 2


@dataclass
class VectorStoreSettings:
    """Where review embeddings live: embedded Chroma in the workspace, or a Chroma server."""

    chroma_url: str | None = None


ENGINES = ("duckdb", "spark", "pandas")


@dataclass
class EngineSettings:
    """Which engine computes the feature tables (docs/scaling.md): DuckDB on this machine, or
    Spark (local or a cluster, pip install 'customer-insight-agent[spark]' and Java 17)."""

    name: str = "duckdb"  # duckdb | spark | pandas (the slow reference implementation)
    spark_master: str | None = None  # local[2] when None; spark://host:7077, yarn, k8s://...
    spark_conf: dict[str, str] = field(default_factory=dict)  # e.g. spark.executor.memory


@dataclass
class Settings:
    """Everything read from one workspace's insight.toml (plus environment overrides)."""

    root: Path
    name: str = "workspace"
    demo: bool = False
    data: DataSettings = field(default_factory=DataSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    vectorstore: VectorStoreSettings = field(default_factory=VectorStoreSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    analytics: dict[str, Any] = field(default_factory=dict)
    # [reviews.aspects]: aspect name -> seed words, added to (or replacing) the built-in list
    # (vectorstore/aspects.py)
    review_aspects: dict[str, list[str]] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        """Path of the insight.toml these settings were read from."""
        return self.root / CONFIG_NAME


_KNOWN: dict[str, set[str]] = {
    "": {"workspace", "data", "llm", "vectorstore", "engine", "analytics", "reviews"},
    "workspace": {"name", "demo"},
    "data": {"max_drop_share", "dayfirst", "today", "max_amount", "max_review_chars", *TABLES},
    "data.table": {
        "path",
        "columns",
        "sheet",
        "delimiter",
        "encoding",
        "header",
        "names",
        "widths",
        "date_format",
        # the customers table's own outcome columns (analytics/labels.py)
        "label",
        "positive",
        "exclude",
        "keep",
    },
    "llm": {"provider", "model", "model_path", "base_url", "mask_pii", "timeout", "max_retries"},
    "vectorstore": {"chroma_url"},
    "engine": {"name", "spark_master", "spark_conf"},
    "reviews": {"aspects"},
}


def _check_keys(section: dict[str, Any], known_key: str, where: str, cfg: Path) -> None:
    known = _KNOWN[known_key]
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"known keys: {', '.join(sorted(known))}"
            )
            raise ConfigError(f"{cfg}: unknown setting '{where}{key}'", hint=hint)


def _expect(value: Any, kind: type | tuple[type, ...], key: str, cfg: Path) -> Any:
    # bool is an int subclass; reject it where a number is expected.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{cfg}: '{key}' must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{cfg}: '{key}' must be {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        bool: "true or false",
        int: "a number",
        float: "a number",
        dict: "a table",
        list: "a list",
        dt.date: "a date (YYYY-MM-DD)",
    }
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _resolve_path(root: Path, value: str) -> Path:
    path = Path(os.path.expandvars(value)).expanduser()
    return path if path.is_absolute() else root / path


DELIMITER_WORDS = {  # data.<table>.delimiter spelled as a word -> what it means
    "whitespace": "whitespace",
    " ": "whitespace",
    "\\s+": "whitespace",
    "space": "whitespace",
    "spaces": "whitespace",
    "fixed": "fixed",
    "fixed-width": "fixed",
    "tab": "\t",
    "\\t": "\t",
}


def _layout_settings(entry: dict[str, Any], key: str, cfg: Path) -> dict[str, Any]:
    """delimiter, header, names, widths and date_format of one [data.<table>] entry."""
    out: dict[str, Any] = {}
    delimiter = _expect(entry.get("delimiter", ""), str, f"{key}.delimiter", cfg) or None
    if delimiter is not None:
        word = DELIMITER_WORDS.get(delimiter.lower(), DELIMITER_WORDS.get(delimiter))
        if word is None and len(delimiter) != 1:
            raise ConfigError(
                f'{cfg}: \'{key}.delimiter\' must be one character, "whitespace" or "fixed", '
                f"got {delimiter!r}"
            )
        delimiter = word or delimiter
    out["delimiter"] = delimiter
    if "header" in entry:
        out["header"] = _expect(entry["header"], bool, f"{key}.header", cfg)
    if "names" in entry:
        names = _expect(entry["names"], list, f"{key}.names", cfg)
        for i, name in enumerate(names):
            _expect(name, str, f"{key}.names[{i}]", cfg)
        named = [n.strip() for n in names if n.strip()]
        dupes = sorted({n for n in named if named.count(n) > 1})
        if dupes:
            raise ConfigError(f"{cfg}: '{key}.names' repeats {', '.join(map(repr, dupes))}")
        if not named:
            raise ConfigError(f"{cfg}: '{key}.names' names no column")
        out["names"] = [n.strip() for n in names]
    if "widths" in entry:
        widths = _expect(entry["widths"], list, f"{key}.widths", cfg)
        for i, width in enumerate(widths):
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ConfigError(
                    f"{cfg}: '{key}.widths[{i}]' must be a whole number of characters (1 or "
                    f"more), got {width!r}"
                )
        if not widths:
            raise ConfigError(f"{cfg}: '{key}.widths' is empty")
        if delimiter not in (None, "fixed"):
            raise ConfigError(
                f"{cfg}: '{key}.widths' is for fixed-width files, but '{key}.delimiter' is "
                f"{delimiter!r}",
                hint="remove one of the two",
            )
        out["widths"] = list(widths)
        out["delimiter"] = "fixed"
    if "date_format" in entry:
        fmt = _expect(entry["date_format"], str, f"{key}.date_format", cfg)
        if "%" not in fmt:
            raise ConfigError(
                f"{cfg}: '{key}.date_format' must be a strftime format such as \"%Y%m%d\" or "
                f'"%d/%m/%Y", got {fmt!r}'
            )
        out["date_format"] = fmt
    return out


def load_settings(root: Path) -> Settings:
    """Read ``root/insight.toml`` into :class:`Settings`, with environment overrides applied.

    Raises :class:`ConfigError` naming the file and key for anything it cannot use.
    """
    root = root.resolve()
    cfg = root / CONFIG_NAME
    try:
        raw = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{root} is not an Insight workspace (no {CONFIG_NAME})",
            hint=f"run `insight init {root}` to create one",
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg}: not valid TOML: {exc}") from exc
    return settings_from_dict(raw, root)


def settings_from_dict(raw: dict[str, Any], root: Path) -> Settings:
    """Build :class:`Settings` from parsed TOML (``root`` anchors relative paths)."""
    cfg = root / CONFIG_NAME
    _check_keys(raw, "", "", cfg)
    settings = Settings(root=root)

    ws = _expect(raw.get("workspace", {}), dict, "workspace", cfg)
    _check_keys(ws, "workspace", "workspace.", cfg)
    settings.name = _expect(ws.get("name", root.name), str, "workspace.name", cfg)
    settings.demo = _expect(ws.get("demo", False), bool, "workspace.demo", cfg)

    data = _expect(raw.get("data", {}), dict, "data", cfg)
    _check_keys(data, "data", "data.", cfg)
    ds = settings.data
    if "max_drop_share" in data:
        share = float(_expect(data["max_drop_share"], (int, float), "data.max_drop_share", cfg))
        if not 0 <= share <= 1:
            raise ConfigError(f"{cfg}: 'data.max_drop_share' must be between 0 and 1, got {share}")
        ds.max_drop_share = share
    ds.dayfirst = _expect(data.get("dayfirst", False), bool, "data.dayfirst", cfg)
    if "today" in data:
        today = data["today"]
        if isinstance(today, dt.datetime):
            today = today.date()
        ds.today = _expect(today, dt.date, "data.today", cfg)
    if "max_amount" in data:
        ds.max_amount = float(_expect(data["max_amount"], (int, float), "data.max_amount", cfg))
    if "max_review_chars" in data:
        ds.max_review_chars = _expect(data["max_review_chars"], int, "data.max_review_chars", cfg)
    for table in TABLES:
        if table not in data:
            continue
        entry = data[table]
        if isinstance(entry, str):  # shorthand: orders = "exports/orders.csv"
            entry = {"path": entry}
        entry = _expect(entry, dict, f"data.{table}", cfg)
        _check_keys(entry, "data.table", f"data.{table}.", cfg)
        if "path" not in entry:
            raise ConfigError(f"{cfg}: 'data.{table}' needs a 'path'")
        columns = _expect(entry.get("columns", {}), dict, f"data.{table}.columns", cfg)
        for canon, src in columns.items():
            _expect(src, str, f"data.{table}.columns.{canon}", cfg)
        sheet = entry.get("sheet")
        if sheet is not None:
            _expect(sheet, (str, int), f"data.{table}.sheet", cfg)
        labels = {k: entry[k] for k in ("label", "positive", "exclude", "keep") if k in entry}
        if labels and table != "customers":
            raise ConfigError(
                f"{cfg}: 'data.{table}.{next(iter(labels))}': labels belong to the customers table",
                hint='set it under [data.customers], e.g. label = "responded"',
            )
        for key, value in labels.items():  # read by `insight build` with [analytics] label
            kind = str if key in ("label", "positive") else list
            if key == "label" and isinstance(value, list):
                kind = list
            _expect(value, kind, f"data.{table}.{key}", cfg)
            settings.analytics.setdefault(key, value)
        ds.tables[table] = TableSource(
            path=_resolve_path(root, _expect(entry["path"], str, f"data.{table}.path", cfg)),
            columns=dict(columns),
            sheet=sheet,
            encoding=_expect(entry.get("encoding", ""), str, f"data.{table}.encoding", cfg) or None,
            **_layout_settings(entry, f"data.{table}", cfg),
        )

    llm = _expect(raw.get("llm", {}), dict, "llm", cfg)
    _check_keys(llm, "llm", "llm.", cfg)
    settings.llm.provider = _expect(llm.get("provider", "auto"), str, "llm.provider", cfg)
    settings.llm.model = _expect(llm.get("model", ""), str, "llm.model", cfg) or None
    model_path = _expect(llm.get("model_path", ""), str, "llm.model_path", cfg)
    settings.llm.model_path = _resolve_path(root, model_path) if model_path else None
    settings.llm.base_url = _expect(llm.get("base_url", ""), str, "llm.base_url", cfg) or None
    if "mask_pii" in llm:
        settings.llm.mask_pii = _expect(llm["mask_pii"], bool, "llm.mask_pii", cfg)
    if "timeout" in llm:
        settings.llm.timeout = float(_expect(llm["timeout"], (int, float), "llm.timeout", cfg))
    if "max_retries" in llm:
        settings.llm.max_retries = _expect(llm["max_retries"], int, "llm.max_retries", cfg)

    vs = _expect(raw.get("vectorstore", {}), dict, "vectorstore", cfg)
    _check_keys(vs, "vectorstore", "vectorstore.", cfg)
    settings.vectorstore.chroma_url = (
        _expect(vs.get("chroma_url", ""), str, "vectorstore.chroma_url", cfg) or None
    )
    eng = _expect(raw.get("engine", {}), dict, "engine", cfg)
    _check_keys(eng, "engine", "engine.", cfg)
    settings.engine.name = _expect(eng.get("name", "duckdb"), str, "engine.name", cfg)
    settings.engine.spark_master = (
        _expect(eng.get("spark_master", ""), str, "engine.spark_master", cfg) or None
    )
    conf = _expect(eng.get("spark_conf", {}), dict, "engine.spark_conf", cfg)
    for key, value in conf.items():
        _expect(value, (str, int, float, bool), f"engine.spark_conf.{key}", cfg)
        settings.engine.spark_conf[str(key)] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    rv = _expect(raw.get("reviews", {}), dict, "reviews", cfg)
    _check_keys(rv, "reviews", "reviews.", cfg)
    aspects = _expect(rv.get("aspects", {}), dict, "reviews.aspects", cfg)
    for name, words in aspects.items():
        key = f"reviews.aspects.{name}"
        words = _expect(words, list, key, cfg)
        if not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ConfigError(
                f"{cfg}: '{key}' must be a list of words, got {words!r}",
                hint=f'e.g. "{name}" = ["word", "another word"]',
            )
        settings.review_aspects[str(name)] = [w.strip().lower() for w in words]
    given = dict(_expect(raw.get("analytics", {}), dict, "analytics", cfg))
    settings.analytics = {**settings.analytics, **given}  # [analytics] wins over [data.customers]

    _apply_env(settings)
    return settings


def _apply_env(settings: Settings) -> None:
    """Environment variables win over insight.toml (handy in CI and one-off runs)."""
    env = os.environ
    if env.get("INSIGHT_LLM"):
        settings.llm.provider = env["INSIGHT_LLM"]
    if env.get("INSIGHT_MODEL"):
        settings.llm.model = env["INSIGHT_MODEL"]
    if env.get("INSIGHT_CHROMA_URL"):
        settings.vectorstore.chroma_url = env["INSIGHT_CHROMA_URL"]
    if env.get("INSIGHT_ENGINE"):
        settings.engine.name = env["INSIGHT_ENGINE"]
    if env.get("INSIGHT_SPARK_MASTER"):
        settings.engine.spark_master = env["INSIGHT_SPARK_MASTER"]
    if settings.engine.name not in ENGINES:
        raise ConfigError(
            f"unknown engine '{settings.engine.name}'",
            hint=f"use one of: {', '.join(ENGINES)} (engine.name or INSIGHT_ENGINE)",
        )
    if settings.llm.provider not in LLM_PROVIDERS:
        raise ConfigError(
            f"unknown LLM provider '{settings.llm.provider}'",
            hint=f"use one of: {', '.join(LLM_PROVIDERS)} (llm.provider or INSIGHT_LLM)",
        )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)


def render_config(
    *,
    name: str,
    demo: bool,
    tables: dict[str, str],
    columns: dict[str, dict[str, str]] | None = None,
) -> str:
    """Text of a new insight.toml: the given table paths plus commented defaults."""
    lines = [
        "# Insight workspace settings. See docs/data.md (data) and the README (everything else).",
        "[workspace]",
        f"name = {_toml_value(name)}",
        f"demo = {_toml_value(demo)}",
        "",
        "[data]",
        "# Refuse to load a table when more than this share of its rows would be dropped.",
        "max_drop_share = 0.05",
        "# Read ambiguous dates like 03/04/2025 as day/month (true) or month/day (false).",
        "dayfirst = false",
        '# today = "2026-01-31"   # reference date for future-date checks (default: today)',
        "",
    ]
    columns = columns or {}
    for table in TABLES:
        if table in tables:
            lines.append(f"[data.{table}]")
            lines.append(f"path = {_toml_value(tables[table])}")
            mapping = columns.get(table)
            if mapping:
                lines.append(f"[data.{table}.columns]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in mapping.items())
            else:
                lines.append(
                    f"# [data.{table}.columns]   # only needed when names are not recognised"
                )
                lines.append('# customer_id = "Client Number"')
            lines.append("")
        else:
            lines.append(f'# [data.{table}]\n# path = "exports/{table}.csv"\n')
    lines += [
        "[llm]",
        "# auto: openai when OPENAI_API_KEY / OPENAI_BASE_URL is set, else the embedded local",
        "# model when installed, else none (no LLM: templated answers). See `insight doctor`.",
        'provider = "auto"',
        '# model = "gpt-4o-mini"          # hosted model name (or INSIGHT_MODEL)',
        '# model_path = "my-model.gguf"   # any GGUF file for the embedded runtime',
        "# mask_pii = true               # default: on for hosted endpoints, off for local",
        "",
        "[vectorstore]",
        '# chroma_url = "http://127.0.0.1:8000"   # default: embedded Chroma in .insight/',
        "",
        "[engine]",
        "# what computes the build's feature tables (docs/scaling.md): duckdb on this machine,",
        "# or spark (pip install 'customer-insight-agent[spark]' and a Java 17 runtime)",
        'name = "duckdb"',
        '# spark_master = "spark://host:7077"   # default local[2]; or yarn, k8s://...',
        '# spark_conf = { "spark.executor.memory" = "8g" }',
        "",
        "[reviews.aspects]",
        "# aspects review themes map onto, with their seed words (adds to the built-in list:",
        "# sizing/fit, material/fabric, colour, quality/durability, price/value, shipping/",
        "# delivery, returns/refunds, customer service, packaging, style/look)",
        '# "battery life" = ["battery", "charge", "charging"]',
        "",
    ]
    return "\n".join(lines)
