"""The committed record of which message belongs to which post file."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import yaml

from . import yamlstrict
from .errors import NexusSyncError
from .posts import conflict_line
from .writeback import replace_atomically

log = logging.getLogger(__name__)

INVENTORY_FILE = "nexus-sync.state.yaml"

_HEADER = (
    "# Written by nexus-sync: the messages it manages, as `id: post file`.\n"
    "# Commit this file; it is how a deleted or renamed post is recognised.\n"
)


def load_inventory(root: Path) -> dict[str, str]:
    """The id-to-path record, empty when the repository has none yet."""
    path = root / INVENTORY_FILE
    if not path.exists():
        return {}
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise NexusSyncError(
            f"{INVENTORY_FILE}: cannot be read ({reason}); restore it from git"
        ) from None
    line = conflict_line(text)
    if line is not None:
        raise NexusSyncError(
            f"{INVENTORY_FILE}:{line}: a merge conflict; keep the lines of both "
            "sides (each is one message) and remove the conflict markers"
        )
    try:
        data = _as_written(text)
        if data is None:
            # Read by hand-edit rules: a message listed twice is an error,
            # not a quiet choice of one of its two files.
            data = yamlstrict.load(text)[1] or {}
    except yaml.YAMLError as error:
        line, message = yamlstrict.yaml_problem(error, 1, text)
        raise NexusSyncError(
            f"{INVENTORY_FILE}:{line}: {message}; correct it, or restore it from git"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise NexusSyncError(
            f"{INVENTORY_FILE}: expected lines of `id: path`; restore it from git"
        )
    return data


def _as_written(text: str) -> dict[str, str] | None:
    """The record read quickly when it is as nexus-sync wrote it, else None.

    Each line that render_inventory writes, `"id": "path"`, is also a JSON
    object member, read faster as JSON and exactly (YAML would take a U+2028
    or NEL in a path for a line break). A file edited by hand is read as YAML.
    """
    members = [line for line in text.split("\n") if line and line[0] != "#"]
    if not all(_MEMBER.fullmatch(line) for line in members):
        return None
    try:
        data = json.loads("{" + ",".join(members) + "}")
    except ValueError:
        return None
    return data if len(data) == len(members) else None


# Two JSON strings as json.dumps writes them: no raw control characters, and
# no escaped surrogates (which YAML could not read back).
_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4})*"'
_MEMBER = re.compile(f"{_STRING}: {_STRING}")


def render_inventory(inventory: dict[str, str]) -> str:
    lines = [
        f"{json.dumps(message_id, ensure_ascii=False)}: "
        f"{json.dumps(path, ensure_ascii=False)}\n"
        for message_id, path in sorted(inventory.items())
    ]
    return _HEADER + "".join(lines)


def save_inventory(root: Path, inventory: dict[str, str]) -> bool:
    """Write the record atomically; return whether the file changed."""
    changed = replace_atomically(root / INVENTORY_FILE, render_inventory(inventory))
    if changed:
        log.debug("inventory saved with %d message(s)", len(inventory))
    return changed
