"""Shared by the bench scripts: run one child process per size, so each size gets a fresh
interpreter (clean imports, its own peak RSS) and a fresh temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator


def per_size(
    script: str, sizes: str, extra: list[str], keep: str | None = None
) -> Iterator[tuple[int, dict | None, str]]:
    """For each comma-separated size run ``script --child N --root TMP *extra``.

    ``keep``: use ``KEEP/size-N`` as the root instead of a temporary folder, and leave it
    there (a later run can reuse what the child built). Yields (size, the child's last stdout
    line parsed as JSON, "") or (size, None, stderr tail) when the child failed.
    """
    for n in (int(s) for s in sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = tmp
            if keep:
                root = f"{keep}/size-{n}"
                os.makedirs(root, exist_ok=True)
            proc = subprocess.run(
                [sys.executable, script, "--child", str(n), "--root", root, *extra],
                capture_output=True,
                text=True,
            )
        if proc.returncode:
            yield n, None, proc.stderr[-2000:]
        else:
            yield n, json.loads(proc.stdout.strip().splitlines()[-1]), ""
