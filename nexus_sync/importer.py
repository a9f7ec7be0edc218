"""Remote messages that no file manages, written out as new post files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from slugify import slugify

from . import yamlstrict
from .config import Config
from .inventory import save_inventory
from .plan import Message, desired_block
from .writeback import render_block, replace_atomically

log = logging.getLogger(__name__)

SLUG_LENGTH = 50


def post_file_text(message: Message, block: dict[str, Any]) -> str:
    """A post file that plans as "no change" against `message`."""
    front: dict[str, Any] = {}
    if message.title:
        front["title"] = message.title
    front["platforms"] = list(message.platforms)
    # The dumper of the write-back, so that what is written reads back the same.
    text = yaml.dump(
        front,
        Dumper=yamlstrict.StrictDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=1_000_000,
    )
    # PyYAML would quote a time; the strict loader reads it as text anyway.
    if message.scheduled_for:
        text += f"scheduledFor: {message.scheduled_for}\n"
    return f"---\n{text}{render_block(block)}---\n{message.content}\n"


def file_name(message: Message) -> str:
    """`2030-01-15-launch-day.md`: the day it goes out (or was made), and a slug."""
    day = (message.scheduled_for or message.created_at or "")[:10] or "undated"
    words = message.title or message.content
    slug = slugify(words, max_length=SLUG_LENGTH, word_boundary=True) or "post"
    return f"{day}-{slug}.md"


def import_messages(
    messages: list[Message], config: Config, inventory: dict[str, str]
) -> list[tuple[str, Message]]:
    """Write a file for each message and record it; return (path, message) pairs."""
    written = []
    folder = config.posts_path
    folder.mkdir(parents=True, exist_ok=True)
    for message in messages:
        path = _free_path(folder, file_name(message))
        replace_atomically(
            path, post_file_text(message, desired_block(message, config))
        )
        relative = path.relative_to(config.root).as_posix()
        inventory[message.id] = relative

        # Recorded at once, like apply: an interrupted import leaves no file
        # that the inventory does not know.
        save_inventory(config.root, inventory)
        log.debug("imported %s as %s", message.id, relative)
        written.append((relative, message))
    log.info("imported %d message(s)", len(written))
    return written


def _free_path(folder: Path, name: str) -> Path:
    path = folder / name
    stem = path.stem
    number = 2
    while path.exists():
        path = folder / f"{stem}-{number}.md"
        number += 1
    return path
