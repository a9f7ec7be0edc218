"""Edits of a post file's `nexus:` block that leave every other byte alone."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

_BOUNDARY = re.compile(r"-{3,}[ \t]*\r?\n?\Z")
_NEXUS_KEY = re.compile(r"nexus[ \t]*:")


def render_block(block: dict[str, Any], newline: str = "\n") -> str:
    """The `nexus:` block as YAML lines; strings that look like numbers quoted."""
    text = yaml.safe_dump(
        {"nexus": block},
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
    return text.replace("\n", newline)


def with_nexus_block(text: str, block: dict[str, Any]) -> str:
    """`text` with its `nexus:` block replaced by (or extended with) `block`."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    lines = text[len(bom) :].splitlines(keepends=True)
    if not lines or not _BOUNDARY.match(lines[0]):
        raise ValueError("the file has no frontmatter")
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"

    close = next(
        (i for i in range(1, len(lines)) if _BOUNDARY.match(lines[i])), None
    )
    if close is None:
        raise ValueError("the frontmatter never closes")

    start = next(
        (i for i in range(1, close) if _NEXUS_KEY.match(lines[i])), None
    )
    if start is None:
        start = end = close
        if not lines[close - 1].endswith("\n"):
            lines[close - 1] += newline
    else:
        # The block is its key line and the indented lines under it; comments
        # and blank lines after its last indented line belong to what follows.
        end = start + 1
        for i in range(start + 1, close):
            stripped = lines[i].strip()
            if lines[i][:1] in (" ", "\t") and stripped and not stripped.startswith("#"):
                end = i + 1
            elif stripped and not stripped.startswith("#"):
                break

    rendered = render_block(block, newline)
    return bom + "".join(lines[:start]) + rendered + "".join(lines[end:])


def write_nexus_block(path: Path, block: dict[str, Any]) -> bool:
    """Replace the file's `nexus:` block atomically; return whether it changed."""
    raw = path.read_bytes().decode("utf-8")
    return replace_atomically(path, with_nexus_block(raw, block), raw)


def replace_atomically(path: Path, text: str, current: str | None = None) -> bool:
    """Write `text` to `path` through a temporary file and a rename."""
    if current is None and path.exists():
        current = path.read_bytes().decode("utf-8")
    if current == text:
        return False

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
