"""The committed id-to-path record: as nexus-sync writes it, and as people edit it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_sync.errors import NexusSyncError
from nexus_sync.inventory import (
    INVENTORY_FILE,
    load_inventory,
    render_inventory,
    save_inventory,
)

RECORD = {
    "msg_1|2030-01-01T00:00:00Z": "posts/launch.md",
    "msg_2|2030-01-02T00:00:00Z": 'posts/été/café "crème".md',
    "msg_3|2030-01-03T00:00:00Z": "posts/a: b # not a comment.md",
}


def test_what_is_saved_is_read_back(tmp_path: Path) -> None:
    assert save_inventory(tmp_path, RECORD) is True
    assert save_inventory(tmp_path, RECORD) is False

    assert load_inventory(tmp_path) == RECORD


def test_ids_and_paths_beyond_ascii_and_with_odd_line_breaks_come_back(
    tmp_path: Path,
) -> None:
    record = {
        "POST|ünïcode😀|1": "posts/smile 😀.md",
        "POST|a|2": "posts/line\u2028separator.md",
        "POST|a|3": "posts/next\x85line.md",
        "POST|a|4": "posts/del\x7fete.md",
    }
    save_inventory(tmp_path, record)

    assert load_inventory(tmp_path) == record
    assert "😀" in (tmp_path / INVENTORY_FILE).read_text("utf-8")


def test_no_file_is_an_empty_record(tmp_path: Path) -> None:
    assert load_inventory(tmp_path) == {}


@pytest.mark.parametrize(
    "text",
    [
        # Resolved by hand after a merge conflict: plain YAML, no quotes.
        "msg_1: posts/a.md\nmsg_2: posts/b.md\n",
        # Escapes a person may type, which YAML reads as JSON would.
        '"msg_\\u0031": "posts/a.md"\n"msg_2": "posts\\/b.md"\n',
        # A comment and a blank line added by a person.
        '# ours\n\n"msg_1": "posts/a.md"  # launch\n"msg_2": "posts/b.md"\n',
    ],
)
def test_a_record_edited_by_hand_is_read_as_yaml(tmp_path: Path, text: str) -> None:
    (tmp_path / INVENTORY_FILE).write_text(text)

    assert load_inventory(tmp_path) == {"msg_1": "posts/a.md", "msg_2": "posts/b.md"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '"msg_1": "posts/a.md\n',
            "nexus-sync.state.yaml:1: invalid YAML: while scanning a quoted scalar",
        ),
        (
            '"msg_1": ["posts/a.md"]\n',
            "nexus-sync.state.yaml: expected lines of `id: path`; restore it from git",
        ),
        (
            '"msg_1": "posts/a.md"\n"msg_2":"posts/b.md"\n',
            "nexus-sync.state.yaml:2: invalid YAML",
        ),
        (
            # A line repeated by a merge: which file is the message's is unknown.
            '"msg_1": "posts/old.md"\n"msg_1": "posts/a.md"\n',
            "nexus-sync.state.yaml:2: 'msg_1' is given twice (first on line 1); "
            "keep one; correct it, or restore it from git",
        ),
        (
            '"msg_1": "posts/a.md"\n<<<<<<< HEAD\n"msg_2": "posts/b.md"\n'
            '=======\n"msg_3": "posts/c.md"\n>>>>>>> theirs\n',
            "nexus-sync.state.yaml:2: a merge conflict; keep the lines of both "
            "sides (each is one message) and remove the conflict markers",
        ),
        (
            '"msg_1": 7\n',
            "nexus-sync.state.yaml: expected lines of `id: path`; restore it from git",
        ),
    ],
)
def test_a_broken_record_is_an_error_that_says_what_to_do(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / INVENTORY_FILE).write_text(text)

    with pytest.raises(NexusSyncError) as raised:
        load_inventory(tmp_path)

    assert str(raised.value).startswith(message)


def test_the_record_is_one_sorted_line_per_message() -> None:
    lines = render_inventory(RECORD).splitlines()

    assert lines[2:] == [
        '"msg_1|2030-01-01T00:00:00Z": "posts/launch.md"',
        '"msg_2|2030-01-02T00:00:00Z": "posts/été/café \\"crème\\".md"',
        '"msg_3|2030-01-03T00:00:00Z": "posts/a: b # not a comment.md"',
    ]
