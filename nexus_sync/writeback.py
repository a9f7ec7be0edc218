"""Edits of a post file's `nexus:` block that leave every other byte alone."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from . import yamlstrict
from .errors import WriteBackError

# The key as people write it: plain, or in either kind of quotes.
_NEXUS_KEY = re.compile(r"""(?:nexus|"nexus"|'nexus')[ \t]*:(?:[ \t]|\r?\n|\r|\Z)""")
# Its line when the values are on the lines below, with perhaps a comment.
_BARE_KEY = re.compile(r"""(?:nexus|"nexus"|'nexus')[ \t]*:(?:[ \t]+#.*|[ \t]*)""")
_CANNOT_REPLACE = (
    "its nexus: block could not be replaced safely; write it as a plain "
    "`nexus:` key with the values indented below it"
)


def render_block(block: dict[str, Any], newline: str = "\n") -> str:
    """The `nexus:` block as YAML lines; strings that look like numbers quoted."""
    return yamlstrict.dump({"nexus": block}).replace("\n", newline)


def with_nexus_block(text: str, block: dict[str, Any]) -> str:
    """`text` with its `nexus:` block replaced by (or extended with) `block`.

    Only the block's own lines change; when the block already holds these
    values, in whatever style, `text` comes back unchanged.
    """
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    lines = yamlstrict.split_lines(text[len(bom) :])
    close = yamlstrict.closing_line(lines)
    if close is None:
        raise ValueError("the file has no frontmatter")
    if close == -1:
        raise ValueError("the frontmatter never closes")
    newline = lines[0][len(lines[0].rstrip("\r\n")) :] or "\n"

    node, before = _frontmatter(lines)
    start = _nexus_line(lines, close, node)
    if start is None:
        start = end = close
        if not lines[close - 1].endswith(("\n", "\r")):
            lines[close - 1] += newline
    else:
        end = _block_end(lines, start, close)
        if _holds(lines[start:end], block):
            return text

    rendered = render_block(block, newline)
    key_line = lines[start].rstrip("\r\n") if start < close else ""
    if _BARE_KEY.fullmatch(key_line):
        # A comment on the key's own line stays with it.
        rendered = key_line + newline + rendered.split(newline, 1)[1]
    edited = bom + "".join(lines[:start]) + rendered + "".join(lines[end:])

    # The edit is made on lines, so it is checked on meaning: the block must
    # read back as written and every other key as it was, or nothing is written.
    after = _frontmatter(yamlstrict.split_lines(edited[len(bom) :]))[1]
    before.pop("nexus", None)
    written = after.pop("nexus", None)
    if written != block or before != after:
        if start == close:
            raise ValueError(
                "a nexus: block could not be added at the end of its frontmatter "
                "without changing another value; write the frontmatter as plain "
                "`key: value` lines"
            )
        raise ValueError(_CANNOT_REPLACE)
    return edited


def _frontmatter(lines: list[str]) -> tuple[yaml.Node | None, dict[str, Any]]:
    """The node and the keys of the frontmatter of a file split into `lines`;
    no node and no keys when it is not YAML."""
    close = yamlstrict.closing_line(lines)
    try:
        node, data = yamlstrict.load("".join(lines[1:close]))
    except yaml.YAMLError:
        node, data = None, None
    return node, data if isinstance(data, dict) else {}


def _nexus_line(lines: list[str], close: int, node: yaml.Node | None) -> int | None:
    """The line of the frontmatter's `nexus:` key (`node` is the frontmatter),
    None when there is none.

    The key is found by YAML, not by its look: a line of a quoted value may
    start with `nexus:` too.
    """
    if not isinstance(node, yaml.MappingNode):
        # The safety check after the edit has the last word.
        return next((i for i in range(1, close) if _NEXUS_KEY.match(lines[i])), None)
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "nexus":
            line = 1 + key.start_mark.line
            if key.start_mark.column or not _NEXUS_KEY.match(lines[line]):
                raise ValueError(_CANNOT_REPLACE)
            return line
    return None


def _block_end(lines: list[str], start: int, close: int) -> int:
    # The block is its key line and the indented lines under it; comments
    # and blank lines after its last indented line belong to what follows.
    end = start + 1
    for index in range(start + 1, close):
        stripped = lines[index].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if lines[index][:1] not in (" ", "\t"):
            break
        end = index + 1
    return end


def _holds(lines: list[str], block: dict[str, Any]) -> bool:
    try:
        current = yamlstrict.load("".join(lines))[1]
    except yaml.YAMLError:
        return False
    return isinstance(current, dict) and current.get("nexus") == block


def write_nexus_block(path: Path, block: dict[str, Any]) -> bool:
    """Replace the file's `nexus:` block atomically; return whether it changed."""
    raw = path.read_bytes().decode("utf-8")
    try:
        edited = with_nexus_block(raw, block)
    except ValueError as error:
        raise WriteBackError(str(error)) from None
    return replace_atomically(path, edited, raw)


def replace_atomically(
    path: Path, text: str, current: str | None = None, mode: int | None = None
) -> bool:
    """Write `text` to `path` through a temporary file and a rename.

    A reader (or a crash) sees the old file or the new one, never half of one.
    The file keeps its mode unless `mode` is given; a new one gets 0o644.
    """
    data = text.encode("utf-8")
    if current is None:
        unchanged = path.exists() and path.read_bytes() == data
    else:
        unchanged = current == text
    if unchanged:
        return False

    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
