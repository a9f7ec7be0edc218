"""What an earlier run learnt from each post file, so that a file is checked once.

Checking a file (the strict YAML loader, the schema, lengths) costs several
times reading it, and on most runs almost every file is one that an earlier
run found good. The record of each good file is kept with a digest of its
bytes; a file whose bytes and nexus-sync's code are unchanged is not checked
again. A file with problems is never recorded, so its messages are always
fresh.

The cache lives in the user's cache folder, not in the repository: a record
read from a pull request's own files could make a plan show one post while
the file says another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import platformdirs

from .writeback import replace_atomically

log = logging.getLogger(__name__)

# Written into every cache file; a file of another layout is ignored.
LAYOUT = 1


def cache_folder() -> Path:
    """Where the caches of all repositories are kept."""
    return platformdirs.user_cache_path("nexus-sync") / "posts"


class PostCache:
    """The records of one repository's good post files, by path."""

    def __init__(
        self, path: Path | None, fingerprint: str | None, entries: dict[str, list]
    ) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self._entries: dict[str, list] = entries
        self._seen: set[str] = set()
        self._changed = False

    @classmethod
    def open(cls, root: Path, fingerprint: str | None) -> PostCache:
        """The cache of the repository at `root`; empty when there is none yet.

        `fingerprint` names everything besides a file's bytes that its record
        depends on (nexus-sync's code, Python, the libraries); records made
        under another fingerprint are dropped. Without one, nothing is kept.
        """
        if fingerprint is None:
            return cls(None, None, {})
        key = hashlib.sha256(os.fsencode(os.path.abspath(root))).hexdigest()[:32]
        path = cache_folder() / f"{key}.json"
        try:
            stored = json.loads(path.read_bytes())
        except FileNotFoundError:
            stored = None
        except (OSError, ValueError) as error:
            # A cache that cannot be read is rebuilt, never an error.
            log.debug("ignoring the post cache %s: %s", path, error)
            stored = None
        entries = {}
        if (
            isinstance(stored, dict)
            and stored.get("layout") == LAYOUT
            and stored.get("fingerprint") == fingerprint
            and isinstance(stored.get("files"), dict)
        ):
            entries = stored["files"]
        return cls(path, fingerprint, entries)

    def get(self, name: str, data: bytes) -> dict[str, Any] | None:
        """The record of the file `name` if it was made from these bytes."""
        self._seen.add(name)
        entry = self._entries.get(name)
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and entry[0] == _digest(data)
            and isinstance(entry[1], dict)
        ):
            return entry[1]
        return None

    def put(self, name: str, data: bytes, record: dict[str, Any]) -> None:
        """Keep `record` for the file `name` as long as its bytes are `data`."""
        self._seen.add(name)
        self._entries[name] = [_digest(data), record]
        self._changed = True

    def save(self, prune: bool) -> None:
        """Write the cache if it changed; `prune` drops files not read this run."""
        if prune and not self._entries.keys() <= self._seen:
            self._entries = {
                name: entry
                for name, entry in self._entries.items()
                if name in self._seen
            }
            self._changed = True
        if not self._changed or self.path is None:
            return
        stored = {"layout": LAYOUT, "fingerprint": self.fingerprint}
        stored["files"] = self._entries
        text = json.dumps(stored, ensure_ascii=False, separators=(",", ":"))
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # It holds the text of posts not yet published: the user's alone.
            replace_atomically(self.path, text, mode=0o600)
        except OSError as error:
            # Without a cache the next run only checks every file again.
            log.info("cannot save the post cache %s: %s", self.path, error)
        self._changed = False


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()
