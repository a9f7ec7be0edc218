"""The nexus: block write-back: only its own lines change, atomically."""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import DATA, git, make_repo, run_command
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_sync import yamlstrict
from nexus_sync.writeback import replace_atomically, with_nexus_block, write_nexus_block

BLOCK = {"id": "POST|alice|1736853600000", "status": "SCHEDULED"}
PUBLISHED = {
    "id": "POST|alice|1736853600000",
    "status": "PUBLISHED",
    "publishedAt": "2030-01-20T09:00:02Z",
    "externalIds": {"x": "2012087424487219563", "bluesky": "3mcjqcipyyk2d"},
    "urls": {"x": "https://x.com/i/web/status/2012087424487219563"},
}


def frontmatter_of(text: str) -> dict:
    lines = yamlstrict.split_lines(text.removeprefix("\ufeff"))
    close = yamlstrict.closing_line(lines)
    return yamlstrict.construct(yamlstrict.compose("".join(lines[1:close])))


def test_a_new_block_goes_before_the_closing_line_and_nothing_else_moves() -> None:
    text = (
        "---\n"
        "# keep me\n"
        "title: 'Quoted'   # and me\n"
        "platforms: [x,   bluesky]\n"
        "---\n"
        "Body\n"
    )

    assert with_nexus_block(text, BLOCK) == (
        "---\n"
        "# keep me\n"
        "title: 'Quoted'   # and me\n"
        "platforms: [x,   bluesky]\n"
        "nexus:\n"
        "  id: POST|alice|1736853600000\n"
        "  status: SCHEDULED\n"
        "---\n"
        "Body\n"
    )


def test_an_existing_block_is_replaced_in_place_keeping_what_follows() -> None:
    text = (
        "---\n"
        "title: A\n"
        "nexus: {id: 'POST|alice|1', status: DRAFT}\n"
        "# a comment after the block\n"
        "platforms:\n"
        "  - x\n"
        "---\n"
        "Body\n"
    )

    assert with_nexus_block(text, PUBLISHED) == (
        "---\n"
        "title: A\n"
        "nexus:\n"
        "  id: POST|alice|1736853600000\n"
        "  status: PUBLISHED\n"
        "  publishedAt: '2030-01-20T09:00:02Z'\n"
        "  externalIds:\n"
        "    x: '2012087424487219563'\n"
        "    bluesky: 3mcjqcipyyk2d\n"
        "  urls:\n"
        "    x: https://x.com/i/web/status/2012087424487219563\n"
        "# a comment after the block\n"
        "platforms:\n"
        "  - x\n"
        "---\n"
        "Body\n"
    )


def test_ids_that_look_like_numbers_are_written_as_strings() -> None:
    text = with_nexus_block("---\nplatforms: [x]\n---\nBody\n", PUBLISHED)

    assert frontmatter_of(text)["nexus"] == PUBLISHED
    assert yaml.safe_load(text.split("---\n")[1])["nexus"] == PUBLISHED


def test_the_same_values_in_another_style_change_nothing() -> None:
    text = (
        "---\n"
        "platforms: [x]\n"
        "nexus:\n"
        '  id: "POST|alice|1736853600000"   # written by hand\n'
        "  status: SCHEDULED\n"
        "---\n"
        "Body\n"
    )

    assert with_nexus_block(text, BLOCK) == text


def test_bom_and_crlf_are_kept_and_the_block_uses_crlf() -> None:
    text = "\ufeff---\r\nplatforms: [x]\r\n---\r\nBody\r\n"

    assert with_nexus_block(text, BLOCK) == (
        "\ufeff---\r\nplatforms: [x]\r\nnexus:\r\n  id: POST|alice|1736853600000\r\n"
        "  status: SCHEDULED\r\n---\r\nBody\r\n"
    )


def test_a_last_frontmatter_line_without_newline_gets_one() -> None:
    assert with_nexus_block("---\r---\rBody", BLOCK) == (
        "---\rnexus:\r  id: POST|alice|1736853600000\r  status: SCHEDULED\r---\rBody"
    )


@pytest.mark.parametrize("text", ["Body only\n", "---\nplatforms: [x]\nBody\n"])
def test_a_file_without_a_whole_frontmatter_is_not_touched(text: str) -> None:
    with pytest.raises(ValueError):
        with_nexus_block(text, BLOCK)


def test_write_is_atomic_keeps_the_mode_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "post.md"
    path.write_bytes(b"---\r\nplatforms: [x]\r\n---\r\nBody\r\n")
    path.chmod(0o640)
    inode = path.stat().st_ino

    assert write_nexus_block(path, BLOCK) is True

    assert path.read_bytes() == (
        b"---\r\nplatforms: [x]\r\nnexus:\r\n  id: POST|alice|1736853600000\r\n"
        b"  status: SCHEDULED\r\n---\r\nBody\r\n"
    )
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.stat().st_ino != inode
    assert os.listdir(tmp_path) == ["post.md"]

    before = path.stat()
    assert write_nexus_block(path, BLOCK) is False
    assert path.stat().st_ino == before.st_ino
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "post.md"
    path.write_text("old")

    with pytest.raises(UnicodeEncodeError):
        replace_atomically(path, "new \ud800")

    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["post.md"]


_LINE_ENDINGS = st.sampled_from(["\n", "\r\n"])
_VALUE = st.one_of(
    st.sampled_from(["2012087424487219563", "No", "1:20", "0755", "true", "x: y"]),
    st.text(alphabet="abcXYZ019|:#'\" -é🚀", min_size=1, max_size=12),
)
_OTHER_LINES = st.lists(
    st.sampled_from(
        [
            "title: 'Quoted: yes'  # comment",
            "platforms: [x,bluesky]",
            "publish:\n  # between\n  now",
            "# a comment",
            "",
            "draft: false",
            'scheduledFor: "2031-01-01T10:00:00Z"',
        ]
    ),
    unique=True,
    max_size=7,
)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    others=_OTHER_LINES,
    split=st.integers(min_value=0, max_value=7),
    old_block=st.booleans(),
    newline=_LINE_ENDINGS,
    bom=st.booleans(),
    values=st.fixed_dictionaries(
        {"id": _VALUE, "status": st.sampled_from(["DRAFT", "PUBLISHED"])},
        optional={"externalIds": st.dictionaries(st.sampled_from("xb"), _VALUE)},
    ),
)
def test_only_the_block_changes_and_writing_again_changes_nothing(
    others: list[str],
    split: int,
    old_block: bool,
    newline: str,
    bom: bool,
    values: dict,
) -> None:
    values = {k: v for k, v in values.items() if v != {}}
    old = ["nexus:", "  id: OLD", "  status: DRAFT"] if old_block else []
    front = "\n".join([*others[:split], *old, *others[split:]]).strip("\n")
    text = ("\ufeff" if bom else "") + (
        f"---\n{front}\n---\nBody line\n\nlast".replace("\n", newline)
        if front
        else "---\n---\nBody".replace("\n", newline)
    )

    written = with_nexus_block(text, values)

    assert frontmatter_of(written)["nexus"] == values
    assert with_nexus_block(written, values) == written
    unchanged = [line for line in text.splitlines(keepends=True)]
    kept = [
        line
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(
            a=unchanged, b=written.splitlines(keepends=True), autojunk=False
        ).get_opcodes()
        if tag == "equal"
        for line in unchanged[i1:i2]
    ]
    removed = [line for line in unchanged if line not in kept]
    assert all(
        line.startswith(("nexus:", "  id: OLD", "  status: DRAFT")) for line in removed
    )


def added_lines_only(before: bytes, after: bytes) -> list[bytes]:
    """The lines `after` adds to `before`, failing if it changes any other."""
    old = before.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    added = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        a=old, b=new, autojunk=False
    ).get_opcodes():
        assert tag in ("equal", "insert"), (tag, old[i1:i2], new[j1:j2])
        if tag == "insert":
            added.extend(new[j1:j2])
    return added


def test_apply_then_plan_of_the_good_and_real_corpora_shows_no_change(
    tmp_path: Path,
) -> None:
    posts = tmp_path / "posts"
    shutil.copytree(DATA / "good", posts / "good")
    shutil.move(posts / "good" / "nexus-sync.yaml", tmp_path / "nexus-sync.yaml")
    shutil.copytree(DATA / "real-posts" / "nodejs", posts / "nodejs")
    (posts / "nodejs" / "LICENSE").unlink()
    repo = make_repo(tmp_path / "repo", posts)
    shutil.copy(tmp_path / "nexus-sync.yaml", repo / "nexus-sync.yaml")
    files = sorted((repo / "posts").rglob("*.md"))
    before = {path: path.read_bytes() for path in files}
    assert len(files) == 30 + 55

    validated = run_command(["validate"], repo)
    assert (validated.code, validated.stdout) == (0, "85 post file(s) valid.\n")

    applied = run_command(["apply", "--local"], repo)
    assert applied.code == 0, applied.output
    assert "Apply: 85 done, 0 failed, 0 not started." in applied.stdout

    planned = run_command(["plan", "--local", "--detailed-exitcode"], repo)
    assert planned.code == 0, planned.output
    assert "No changes." in planned.stdout
    assert "0 to create, 0 to update, 0 to delete, 85 unchanged" in planned.stdout

    for path in files:
        after = path.read_bytes()
        added = added_lines_only(before[path], after)
        newline = b"\r\n" if b"\r\n" in before[path] else b"\n"
        if path.name == "cr-only.md":
            # With CR line endings the whole frontmatter is one "line" to
            # splitlines(); compare the frontmatters' lines instead.
            added = added_lines_only(
                before[path].replace(b"\r", b"\n"), after.replace(b"\r", b"\n")
            )
            newline = b"\n"
        block = yaml.safe_load(b"".join(added).decode("utf-8"))
        assert list(block) == ["nexus"], path
        assert added[0] == b"nexus:" + newline, path
        assert all(line.endswith(newline) for line in added), path
        assert block["nexus"]["status"] in ("DRAFT", "SCHEDULED", "PUBLISHED"), path
        if path.name != "cr-only.md":
            numstat = git(repo, "diff", "--numstat", "--", str(path))
            assert numstat.split("\t")[:2] == [str(len(added)), "0"], path


def test_a_quoted_nexus_key_is_replaced_not_given_twice() -> None:
    text = '---\nplatforms: [x]\n"nexus": {id: "POST|a|1", status: DRAFT}\n---\nHi\n'

    edited = with_nexus_block(text, {"id": "POST|a|2", "status": "DRAFT"})

    assert edited == (
        "---\nplatforms: [x]\nnexus:\n  id: POST|a|2\n  status: DRAFT\n---\nHi\n"
    )


def test_a_block_that_cannot_be_found_safely_is_not_written(tmp_path) -> None:
    from nexus_sync.errors import WriteBackError
    from nexus_sync.writeback import write_nexus_block

    path = tmp_path / "a.md"
    text = "---\nplatforms: [x]\n? nexus\n: {id: x}\n---\nHi\n"
    path.write_text(text)

    with pytest.raises(WriteBackError) as raised:
        write_nexus_block(path, {"id": "POST|a|2", "status": "DRAFT"})
    assert path.read_text() == text
    assert str(raised.value) == (
        "its nexus: block could not be replaced safely; write it as a plain "
        "`nexus:` key with the values indented below it"
    )


@pytest.mark.parametrize(
    "text",
    [
        "---\n{platforms: [x]}\n---\nHi\n",
        "---\n  platforms: [x]\n---\nHi\n",
        "---\nplatforms: [x]\n...\n---\nHi\n",
    ],
)
def test_a_frontmatter_that_cannot_take_a_block_is_left_alone(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        with_nexus_block(text, {"id": "POST|a|2", "status": "DRAFT"})

    assert str(raised.value).startswith("a nexus: block could not be added")


def test_a_block_in_a_form_it_cannot_replace_says_how_to_write_it() -> None:
    text = "---\nplatforms: [x]\nnexus: {id: a,\nstatus: DRAFT}\n---\nHi\n"

    with pytest.raises(ValueError) as raised:
        with_nexus_block(text, {"id": "POST|a|2", "status": "DRAFT"})

    assert str(raised.value) == (
        "its nexus: block could not be replaced safely; write it as a plain "
        "`nexus:` key with the values indented below it"
    )


def test_a_line_of_a_quoted_value_that_starts_with_nexus_is_not_the_block() -> None:
    text = '---\ntitle: "Why we moved\nnexus: a story"\nplatforms: [x]\n---\nHi\n'

    edited = with_nexus_block(text, {"id": "POST|a|2", "status": "DRAFT"})

    assert edited == (
        '---\ntitle: "Why we moved\nnexus: a story"\nplatforms: [x]\n'
        "nexus:\n  id: POST|a|2\n  status: DRAFT\n---\nHi\n"
    )


def test_a_comment_on_the_nexus_line_is_kept() -> None:
    text = (
        "---\nplatforms: [x]\nnexus:    # written by nexus-sync; leave it\n"
        "  id: POST|a|1\n  status: DRAFT\n---\nHi\n"
    )

    edited = with_nexus_block(text, {"id": "POST|a|1", "status": "SCHEDULED"})

    assert edited == (
        "---\nplatforms: [x]\nnexus:    # written by nexus-sync; leave it\n"
        "  id: POST|a|1\n  status: SCHEDULED\n---\nHi\n"
    )
