"""Post files into Post values: the corpora of bad and good files, and each rule."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_sync import posts as posts_module
from nexus_sync.config import Config, load_config
from nexus_sync.plan import Message
from nexus_sync.posts import (
    NexusBlock,
    Post,
    load_post,
    load_posts,
    normalize_content,
    parse_schedule,
)

BAD_CORPORA = ("bad", "bad-berlin")


def corpus_cases() -> list:
    cases = []
    for corpus in BAD_CORPORA:
        manifest = yaml.safe_load((DATA / corpus / "expected.yaml").read_text("utf-8"))
        for name, messages in manifest.items():
            cases.append(pytest.param(corpus, name, messages, id=f"{corpus}/{name}"))
    return cases


def repo_with(tmp_path: Path, config_text: str | None = None) -> Config:
    root = tmp_path / "repo"
    (root / "posts").mkdir(parents=True)
    if config_text is not None:
        (root / "nexus-sync.yaml").write_text(config_text)
    return load_config(root, environ={})


def write_post(config: Config, name: str, data: bytes | str) -> Path:
    path = config.posts_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def problems_of(config: Config, path: Path) -> list[str]:
    found, problems = load_posts(config, [path])
    assert found == []
    return [str(problem) for problem in problems]


def test_the_bad_corpus_has_at_least_40_files_each_recorded() -> None:
    for corpus in BAD_CORPORA:
        files = {path.name for path in (DATA / corpus).glob("*.md")}
        manifest = yaml.safe_load((DATA / corpus / "expected.yaml").read_text("utf-8"))
        assert set(manifest) == files
        assert all(manifest.values())
    assert len(corpus_cases()) >= 40


@pytest.mark.parametrize(("corpus", "name", "messages"), corpus_cases())
def test_each_bad_file_gives_exactly_the_recorded_messages(
    tmp_path: Path, corpus: str, name: str, messages: list[str]
) -> None:
    source = DATA / corpus
    config_file = source / "nexus-sync.yaml"
    config = repo_with(
        tmp_path, config_file.read_text("utf-8") if config_file.exists() else None
    )
    path = write_post(config, name, (source / name).read_bytes())

    assert problems_of(config, path) == messages


def good_config(tmp_path: Path) -> Config:
    root = tmp_path / "repo"
    shutil.copytree(DATA / "good", root / "posts")
    shutil.move(root / "posts" / "nexus-sync.yaml", root / "nexus-sync.yaml")
    return load_config(root, environ={})


def test_every_good_file_loads(tmp_path: Path) -> None:
    config = good_config(tmp_path)

    found, problems = load_posts(config)

    assert problems == []
    assert len(found) == 30


def test_good_files_pass_the_quick_check_without_jsonschema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = good_config(tmp_path)

    def refuse() -> None:
        raise AssertionError("a good file was checked by jsonschema")

    monkeypatch.setattr(posts_module, "_validator", refuse)
    paths = sorted(config.posts_path.rglob("*.md"))
    loaded = [load_post(path, config) for path in paths]

    assert len(loaded) == 30


def test_good_files_mean_what_their_authors_wrote(tmp_path: Path) -> None:
    config = good_config(tmp_path)
    by_name = {post.path.removeprefix("posts/"): post for post in load_posts(config)[0]}

    assert by_name["title-no.md"].title == "No"
    assert by_name["title-no.md"].draft is False
    assert by_name["yes-on-off.md"].title == "yes on off 1:20 0755 2031-01-01"
    assert by_name["nfd.md"].content == unicodedata.normalize(
        "NFC", "Crème brûlée at the café in Zürich, naïve façade."
    )
    assert by_name["upper-case-platforms.md"].platforms == ("x", "bluesky", "linkedin")
    assert by_name["crlf.md"].content == "First line.\n\nSecond paragraph."
    assert by_name["cr-only.md"].content == "Old Mac line endings.\nTwo lines."
    assert by_name["blank-lines-around.md"].content == (
        "Blank lines before and after are not content."
    )
    assert by_name["trailing-spaces.md"].content == (
        "Trailing spaces stay   \nand so does this line, without a final newline."
    )
    assert by_name["markdown-body.md"].content.count("---") == 1
    assert by_name["nested/deeper/deep-post.md"].path == (
        "posts/nested/deeper/deep-post.md"
    )
    assert by_name["nested/publish-now.md"].publish_now is True
    assert by_name["draft-with-time.md"].desired_schedule is None
    assert by_name["draft-with-time.md"].scheduled_for == "2031-04-01T10:00:00Z"
    schedules = {
        "offset-india.md": "2031-03-01T04:00:00Z",
        "offset-pacific.md": "2031-03-01T17:30:00Z",
        "offset-utc-lowercase.md": "2031-03-01T09:30:00Z",
        "offset-fraction.md": "2031-03-01T09:30:00Z",
        "emoji.md": "2031-02-01T03:00:00Z",
        "local-winter.md": "2031-01-15T09:00:00Z",
        "local-summer.md": "2031-07-01T08:00:00Z",
        "cr-only.md": "2031-01-22T13:00:00Z",
    }
    assert {name: by_name[name].scheduled_for for name in schedules} == schedules


PLAIN = (
    "---\n"
    "title: Same post\n"
    "platforms: [x]\n"
    "scheduledFor: 2031-01-20T10:00:00+01:00\n"
    "nexus:\n"
    "  id: POST|alice|1\n"
    "  status: SCHEDULED\n"
    "---\n"
    "\n"
    "Line one\n"
    "Line two\n"
)


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda text: "\ufeff" + text, id="bom"),
        pytest.param(lambda text: text.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda text: "\ufeff" + text.replace("\n", "\r\n"), id="both"),
        pytest.param(lambda text: text.replace("\n", "\r"), id="cr"),
    ],
)
def test_bom_and_line_endings_parse_exactly_like_a_plain_file(
    tmp_path: Path, encode: object
) -> None:
    config = repo_with(tmp_path)
    plain = load_post(write_post(config, "plain.md", PLAIN), config)

    other = load_post(write_post(config, "other.md", encode(PLAIN)), config)

    assert dataclasses.replace(other, path=plain.path) == plain
    assert plain == Post(
        path="posts/plain.md",
        content="Line one\nLine two",
        platforms=("x",),
        title="Same post",
        scheduled_for="2031-01-20T09:00:00Z",
        nexus=NexusBlock(id="POST|alice|1", status="SCHEDULED"),
        scheduled_line=4,
        body_line=10,
    )


def test_problems_keep_their_lines_with_bom_and_crlf(tmp_path: Path) -> None:
    config = repo_with(tmp_path)
    text = "---\ntitle: [a]\nplatforms: [x]\ndraft: yes\n---\nHi\n"
    plain = write_post(config, "a.md", text)
    other = write_post(config, "b.md", "\ufeff" + text.replace("\n", "\r\n"))

    assert problems_of(config, plain) == [
        "posts/a.md:2: title: expected a string, got a list",
        "posts/a.md:4: draft: expected true or false, got the string 'yes'",
    ]
    assert problems_of(config, other) == [
        "posts/b.md:2: title: expected a string, got a list",
        "posts/b.md:4: draft: expected true or false, got the string 'yes'",
    ]


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("\ufeffHello", "Hello"),
        ("a\r\nb\rc\n", "a\nb\nc"),
        ("\n\n  \t\nHello\n\n \n", "Hello"),
        ("Cafe\u0301", "Caf\u00e9"),
        ("  indented first line\n", "  indented first line"),
        ("trailing   \n\ninner blank\n", "trailing   \n\ninner blank"),
        ("\n\n", ""),
    ],
)
def test_normalize_content(text: str, content: str) -> None:
    assert normalize_content(text) == content


def test_remote_content_is_normalized_by_the_same_rule() -> None:
    message = Message.from_api(
        {
            "id": "POST|a|1",
            "status": "DRAFT",
            "content": "\ufeff\r\nCafe\u0301\r\n\r\n",
            "targets": ["x"],
        }
    )

    assert message.content == "Caf\u00e9"


@pytest.fixture
def machine_zone() -> Iterator[object]:
    """Set the process's own time zone, to show that it changes nothing."""
    before = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


BERLIN = Config(root=Path("."), timezone="Europe/Berlin")


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_local_times_are_read_in_the_configured_zone_not_the_machines(
    machine_zone: object, zone: str
) -> None:
    machine_zone(zone)

    assert parse_schedule("2030-07-01 10:00", BERLIN) == "2030-07-01T08:00:00Z"
    assert parse_schedule("2030-01-15T10:00:00", BERLIN) == "2030-01-15T09:00:00Z"
    assert parse_schedule("2030-07-01T10:00:00+05:30", BERLIN) == (
        "2030-07-01T04:30:00Z"
    )
    with pytest.raises(ValueError) as skipped:
        parse_schedule("2030-03-31 02:30", BERLIN)
    assert str(skipped.value) == (
        "scheduledFor 2030-03-31 02:30 does not exist in Europe/Berlin (the clocks "
        "skip it); write 2030-03-31T01:30:00+01:00 (2030-03-31T00:30:00Z) or "
        "2030-03-31T03:30:00+02:00 (2030-03-31T01:30:00Z)"
    )
    with pytest.raises(ValueError) as twice:
        parse_schedule("2030-10-27 02:30", BERLIN)
    assert str(twice.value) == (
        "scheduledFor 2030-10-27 02:30 occurs twice in Europe/Berlin (the clocks "
        "go back); write 2030-10-27T02:30:00+02:00 (2030-10-27T00:30:00Z) or "
        "2030-10-27T02:30:00+01:00 (2030-10-27T01:30:00Z)"
    )


def test_a_local_time_needs_a_configured_zone() -> None:
    with pytest.raises(ValueError) as raised:
        parse_schedule("2030-07-01 10:00", Config(root=Path(".")))

    assert str(raised.value) == (
        "scheduledFor 2030-07-01 10:00 has no UTC offset; add one (e.g. "
        "2030-07-01T10:00:00+01:00 or 2030-07-01T10:00:00Z) or set timezone in "
        "nexus-sync.yaml"
    )


NO_ZONE = Config(root=Path("."))
WRITE_IT_LIKE = "write it like 2030-01-20T10:00:00+01:00"


@pytest.mark.parametrize(
    ("value", "config", "message"),
    [
        (
            "2030-02-30T10:00:00Z",
            NO_ZONE,
            "scheduledFor 2030-02-30T10:00:00Z names day 30 of February 2030, "
            f"which has 28 days; {WRITE_IT_LIKE}",
        ),
        (
            "2028-02-30T10:00:00+01:00",
            NO_ZONE,
            "scheduledFor 2028-02-30T10:00:00+01:00 names day 30 of February "
            f"2028, which has 29 days; {WRITE_IT_LIKE}",
        ),
        (
            "2030-04-31 10:00",
            BERLIN,
            "scheduledFor 2030-04-31 10:00 names day 31 of April 2030, which has "
            f"30 days; {WRITE_IT_LIKE}",
        ),
        (
            "2030-01-00T10:00:00Z",
            NO_ZONE,
            "scheduledFor 2030-01-00T10:00:00Z names day 00 of January 2030, "
            f"which has 31 days; {WRITE_IT_LIKE}",
        ),
        (
            "2030-13-01T10:00:00Z",
            NO_ZONE,
            "scheduledFor 2030-13-01T10:00:00Z names month 13; months run from 01 "
            f"to 12; {WRITE_IT_LIKE}",
        ),
        (
            "0000-01-01T10:00:00Z",
            NO_ZONE,
            "scheduledFor 0000-01-01T10:00:00Z names year 0000; years start at "
            f"0001; {WRITE_IT_LIKE}",
        ),
        (
            "2030-01-01T25:00:00Z",
            NO_ZONE,
            "scheduledFor 2030-01-01T25:00:00Z names hour 25; hours run from 00 "
            f"to 23; {WRITE_IT_LIKE}",
        ),
        (
            "2030-01-01T24:00",
            BERLIN,
            "scheduledFor 2030-01-01T24:00 names hour 24; hours run from 00 to "
            f"23; {WRITE_IT_LIKE}",
        ),
        (
            "2030-01-01T10:60:00Z",
            NO_ZONE,
            "scheduledFor 2030-01-01T10:60:00Z names minute 60; minutes run from "
            f"00 to 59; {WRITE_IT_LIKE}",
        ),
        (
            "2030-06-30T23:59:60Z",
            NO_ZONE,
            "scheduledFor 2030-06-30T23:59:60Z names second 60; seconds run from "
            f"00 to 59; {WRITE_IT_LIKE}",
        ),
        (
            "2030-01-01T10:00:00+25:00",
            NO_ZONE,
            "scheduledFor 2030-01-01T10:00:00+25:00 has the UTC offset +25:00; "
            f"offsets run from -23:59 to +23:59; {WRITE_IT_LIKE}",
        ),
        (
            "2030-01-01T10:00:00-05:60",
            NO_ZONE,
            "scheduledFor 2030-01-01T10:00:00-05:60 has the UTC offset -05:60; "
            f"offsets run from -23:59 to +23:59; {WRITE_IT_LIKE}",
        ),
        (
            "2030-01-01 10:00:00+01:00",
            BERLIN,
            "scheduledFor 2030-01-01 10:00:00+01:00 has a space between the date "
            "and the time; a time with a UTC offset needs a T between them: write "
            "2030-01-01T10:00:00+01:00",
        ),
        (
            "2030-01-01T10:00+01:00",
            NO_ZONE,
            "scheduledFor 2030-01-01T10:00+01:00 has no seconds; a time with a "
            "UTC offset needs seconds: write 2030-01-01T10:00:00+01:00",
        ),
        (
            "2030-01-01 10:00z",
            NO_ZONE,
            "scheduledFor 2030-01-01 10:00z has a space between the date and the "
            "time and no seconds; a time with a UTC offset needs a T between them "
            "and seconds: write 2030-01-01T10:00:00z",
        ),
        (
            "next tuesday",
            NO_ZONE,
            f"scheduledFor 'next tuesday' is not a valid time; {WRITE_IT_LIKE}",
        ),
    ],
)
def test_a_time_that_does_not_exist_is_named_by_its_wrong_part(
    value: str, config: Config, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        parse_schedule(value, config)

    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2028-02-29T10:00:00Z", "2028-02-29T10:00:00Z"),
        ("2030-01-01t10:00:00.25+05:30", "2030-01-01T04:30:00Z"),
        ("2030-12-31T23:59:59-23:59", "2031-01-01T23:58:59Z"),
        ("2030-01-01T00:00:00+23:59", "2029-12-31T00:01:00Z"),
        ("2030-01-01T10:00:00-00:00", "2030-01-01T10:00:00Z"),
    ],
)
def test_every_real_time_with_an_offset_is_taken(value: str, utc: str) -> None:
    assert parse_schedule(value, NO_ZONE) == utc


def test_the_date_time_format_is_really_checked() -> None:
    # Without rfc3339-validator, jsonschema skips "format" without a word.
    assert "date-time" in jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers
    validator = posts_module._validator()

    assert validator.is_valid(
        {"platforms": ["x"], "scheduledFor": "2030-01-20T10:00:00Z"}
    )
    assert not validator.is_valid(
        {"platforms": ["x"], "nexus": {"publishedAt": "2030-02-30T10:00:00Z"}}
    )
    assert not validator.is_valid(
        {"platforms": ["x"], "nexus": {"publishedAt": "2030-01-20T25:00:00Z"}}
    )
    # scheduledFor's form only is the schema's: parse_schedule names the part
    # of a time that does not exist.
    assert validator.is_valid(
        {"platforms": ["x"], "scheduledFor": "2030-02-30T10:00:00Z"}
    )


def test_the_schema_is_built_once() -> None:
    assert posts_module._validator() is posts_module._validator()


def test_files_too_large_are_refused_without_reading_them(tmp_path: Path) -> None:
    config = repo_with(tmp_path)
    path = write_post(config, "big.md", "---\nplatforms: [x]\n---\n" + "a" * 1_000_000)

    assert problems_of(config, path) == [
        "posts/big.md:1: the file has 1000023 bytes; a post file has at most "
        "1000000 (1 MB)"
    ]


def test_symbolic_links_must_stay_inside_the_posts_folder(tmp_path: Path) -> None:
    config = repo_with(tmp_path)
    outside = tmp_path / "secret.md"
    outside.write_text("---\nplatforms: [x]\n---\nHi\n")
    (config.posts_path / "outside.md").symlink_to(outside)
    write_post(config, "real.md", "---\nplatforms: [x]\n---\nInside\n")
    (config.posts_path / "inside.md").symlink_to(config.posts_path / "real.md")
    (config.posts_path / "dangling.md").symlink_to(config.posts_path / "gone.md")
    (config.posts_path / "folder.md").mkdir()

    found, problems = load_posts(config)

    assert sorted(post.path for post in found) == ["posts/real.md"]
    assert [str(problem) for problem in problems] == [
        "posts/dangling.md:1: cannot read the file: No such file or directory",
        "posts/inside.md:1: symbolic link to posts/real.md; a post must be a file "
        "of its own (a link to a post would post it twice); copy the file instead",
        f"posts/outside.md:1: symbolic link to {outside.resolve()}, outside the "
        "posts folder posts/; copy the file instead",
    ]


def test_a_file_that_is_not_regular_is_refused(tmp_path: Path) -> None:
    config = repo_with(tmp_path)
    fifo = config.posts_path / "pipe.md"
    os.mkfifo(fifo)

    assert problems_of(config, fifo) == ["posts/pipe.md:1: not a regular file"]


def test_all_problems_of_a_file_come_at_once_in_line_order(tmp_path: Path) -> None:
    config = repo_with(tmp_path)
    path = write_post(
        config,
        "many.md",
        "---\nplatforms: [x, bluesky, myspace]\nfoo: 1\nscheduledFor: 2030-01-01T10:00"
        "\n---\n" + "é" * 301 + "\n",
    )

    assert problems_of(config, path) == [
        "posts/many.md:2: platforms.2: 'myspace' is not one of "
        "['x', 'linkedin', 'bluesky']",
        "posts/many.md:3: foo: unknown key; the keys are title, platforms, "
        "scheduledFor, draft, publish, nexus",
        "posts/many.md:4: scheduledFor 2030-01-01T10:00 has no UTC offset; add one "
        "(e.g. 2030-01-01T10:00:00+01:00 or 2030-01-01T10:00:00Z) or set timezone in "
        "nexus-sync.yaml",
        "posts/many.md:6: 301/280 weighted characters for x",
        "posts/many.md:6: 301/300 graphemes for bluesky",
    ]


_ANY_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.floats(allow_nan=False, width=16),
        st.sampled_from(
            [
                "x",
                "X",
                "bluesky",
                "linkedin",
                "myspace",
                "now",
                "later",
                "DRAFT",
                "PUBLISHED",
                "2030-01-20T10:00:00Z",
                "2030-01-20t10:00:00+01:00",
                "2030-02-30T10:00:00Z",
                "2030-01-20 10:00",
                "2030-01-20T10:00:00.5",
                "10:30",
                "",
                "t" * 501,
            ]
        ),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["x", "id", "status", "k"]), children, max_size=3
        ),
    ),
    max_leaves=6,
)
_KEYS = st.sampled_from(
    ["title", "platforms", "scheduledFor", "draft", "publish", "nexus", "extra"]
)
_NEXUS_KEYS = st.sampled_from(
    ["id", "status", "publishedAt", "error", "externalIds", "urls", "other"]
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.dictionaries(_KEYS, _ANY_VALUE, max_size=6),
    st.dictionaries(_NEXUS_KEYS, _ANY_VALUE, max_size=4),
    st.lists(st.sampled_from(["x", "bluesky", "linkedin", "X", "tiktok"]), max_size=4),
)
def test_the_quick_schema_check_agrees_with_jsonschema(
    data: dict, nexus: dict, platforms: list
) -> None:
    data = {**data, "platforms": platforms}
    if "nexus" in data:
        data["nexus"] = nexus

    assert posts_module._quick_check()(data) == posts_module._validator().is_valid(data)


def test_a_folder_that_cannot_be_read_is_a_problem_not_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = repo_with(tmp_path)
    write_post(config, "open.md", "---\nplatforms: [x]\n---\nHi\n")
    write_post(config, "private/closed.md", "---\nplatforms: [x]\n---\nHi\n")
    private = str(config.posts_path / "private")
    real_scandir = os.scandir

    # The tests run as root, whom no folder mode keeps out: the refusal is
    # made by hand, as a folder of another user would make it.
    def scandir(path: str) -> Iterator[os.DirEntry]:
        if os.fspath(path) == private:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found, problems = load_posts(config)

    assert [post.path for post in found] == ["posts/open.md"]
    assert [str(problem) for problem in problems] == [
        "posts/private:1: cannot read the folder: Permission denied"
    ]
