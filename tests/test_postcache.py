"""The record of post files already checked: used only while it holds the truth."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from conftest import DATA, EXAMPLE_POSTS, make_repo, run_command

from nexus_sync import posts as posts_module
from nexus_sync.config import Config, load_config
from nexus_sync.postcache import PostCache, cache_folder
from nexus_sync.posts import _fingerprint, fingerprint_of, load_posts

LOCAL_POST = "---\nplatforms: [x]\nscheduledFor: 2031-07-01 10:00\n---\nSummer\n"


@pytest.fixture(autouse=True)
def own_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache"


def repo_of(tmp_path: Path, posts: Path, config_text: str = "") -> Config:
    root = tmp_path / "repo"
    shutil.copytree(posts, root / "posts")
    (root / "nexus-sync.yaml").write_text(config_text)
    return load_config(root, environ={})


def cache_files() -> list[Path]:
    return sorted(cache_folder().glob("*.json"))


def stored(config: Config) -> dict:
    (path,) = cache_files()
    return json.loads(path.read_text("utf-8"))["files"]


def test_a_second_reading_gives_the_same_posts_from_the_cache(tmp_path: Path) -> None:
    config = repo_of(tmp_path, DATA / "real-posts" / "nodejs")

    assert cache_files() == []
    first, problems = load_posts(config)
    assert problems == []
    again, _ = load_posts(config)

    assert again == first
    assert len(first) == len(list(config.posts_path.rglob("*.md")))
    assert set(stored(config)) == {post.path for post in first}


def test_the_cache_is_what_an_unchanged_file_is_read_from(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    first = {post.path: post for post in load_posts(config)[0]}
    (cache,) = cache_files()

    # A record planted for the file's bytes is believed: this is why the
    # cache lives outside the repository, where a pull request cannot write.
    data = json.loads(cache.read_text("utf-8"))
    name = sorted(first)[0]
    data["files"][name][1]["content"] = "planted"
    cache.write_text(json.dumps(data), "utf-8")

    posts = {post.path: post for post in load_posts(config)[0]}
    assert posts[name].content == "planted"
    assert {n: p for n, p in posts.items() if n != name} == {
        n: p for n, p in first.items() if n != name
    }


def test_an_edited_file_is_read_anew(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    load_posts(config)
    path = sorted(config.posts_path.glob("*.md"))[0]
    path.write_text(path.read_text("utf-8").rstrip("\n") + "\n\nOne more line.\n")

    posts = {post.path: post for post in load_posts(config)[0]}

    assert posts[f"posts/{path.name}"].content.endswith("\n\nOne more line.")


def test_records_of_another_version_of_nexus_sync_are_dropped(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    first = load_posts(config)[0]
    (cache,) = cache_files()
    data = json.loads(cache.read_text("utf-8"))
    for entry in data["files"].values():
        entry[1]["content"] = "from an older nexus-sync"
    data["fingerprint"] = "another"
    cache.write_text(json.dumps(data), "utf-8")

    assert load_posts(config)[0] == first
    assert json.loads(cache.read_text("utf-8"))["fingerprint"] == _fingerprint()


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b"\xff\xfe\x00", b"[]", b'{"layout": 1, "files": []}'],
)
def test_a_damaged_cache_is_rebuilt(tmp_path: Path, damage: bytes) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    first = load_posts(config)[0]
    (cache,) = cache_files()
    cache.write_bytes(damage)

    assert load_posts(config) == (first, [])
    assert set(stored(config)) == {post.path for post in first}


def test_a_cache_folder_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    (tmp_path / "user-cache").write_text("a file where the folder would be")

    first = load_posts(config)

    assert first[1] == []
    assert load_posts(config) == first


def test_a_file_with_problems_is_not_recorded_and_told_each_time(
    tmp_path: Path,
) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    (config.posts_path / "bad.md").write_text("---\nplatforms: [myspace]\n---\nHi\n")

    messages = [[str(p) for p in load_posts(config)[1]] for _ in range(2)]

    assert (
        messages[0]
        == messages[1]
        == [
            "posts/bad.md:2: platforms.0: 'myspace' is not one of "
            "['x', 'linkedin', 'bluesky']"
        ]
    )
    assert "posts/bad.md" not in stored(config)


def test_a_deleted_file_leaves_the_cache(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    load_posts(config)
    gone = sorted(config.posts_path.glob("*.md"))[0]
    gone.unlink()

    load_posts(config)

    assert f"posts/{gone.name}" not in stored(config)
    assert len(stored(config)) == len(list(config.posts_path.rglob("*.md")))


def test_reading_some_files_keeps_the_records_of_the_others(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    load_posts(config)
    every = set(stored(config))

    load_posts(config, sorted(config.posts_path.glob("*.md"))[:1])

    assert set(stored(config)) == every


def test_a_local_time_is_read_again_in_the_zone_configured_now(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS, "timezone: Europe/Berlin\n")
    (config.posts_path / "summer.md").write_text(LOCAL_POST)
    summer = {p.path: p for p in load_posts(config)[0]}["posts/summer.md"]
    assert summer.scheduled_for == "2031-07-01T08:00:00Z"

    (config.root / "nexus-sync.yaml").write_text("timezone: America/New_York\n")
    config = load_config(config.root, environ={})
    summer = {p.path: p for p in load_posts(config)[0]}["posts/summer.md"]
    assert summer.scheduled_for == "2031-07-01T14:00:00Z"

    (config.root / "nexus-sync.yaml").write_text("")
    config = load_config(config.root, environ={})
    assert [str(p) for p in load_posts(config)[1]] == [
        "posts/summer.md:3: scheduledFor 2031-07-01 10:00 has no UTC offset; add "
        "one (e.g. 2031-07-01T10:00:00+01:00 or 2031-07-01T10:00:00Z) or set timezone "
        "in nexus-sync.yaml"
    ]


def test_each_repository_has_its_own_cache(tmp_path: Path) -> None:
    one = repo_of(tmp_path / "one", EXAMPLE_POSTS)
    other = repo_of(tmp_path / "other", EXAMPLE_POSTS)
    load_posts(one)
    load_posts(other)

    assert len(cache_files()) == 2
    assert PostCache.open(one.root, "x").path != PostCache.open(other.root, "x").path


def test_a_plan_after_an_edit_sees_it_though_the_cache_is_warm(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert run_command(["apply", "--local"], repo).code == 0
    assert run_command(["plan", "--local", "--detailed-exitcode"], repo).code == 0
    path = sorted((repo / "posts").glob("*.md"))[0]
    text = path.read_text("utf-8")
    body_start = text.index("\n---\n") + len("\n---\n")
    path.write_text(text[:body_start] + "A new text for this post.\n", "utf-8")

    plan = run_command(["plan", "--local", "--detailed-exitcode"], repo)

    assert plan.code == 2, plan.output
    assert f"posts/{path.name}" in plan.stdout
    assert "A new text for this post." in plan.stdout


PUBLISHED = """---
title: Out there
platforms: [x, bluesky]
publish: now
nexus:
  id: POST|alice|1
  status: FAILED
  publishedAt: '2030-01-01T10:00:00Z'
  error: 'bluesky: rejected'
  externalIds:
    x: '1871234567890123456'
    bluesky: at://did:plc:abc/app.bsky.feed.post/3k
  urls:
    x: https://x.com/i/web/status/1871234567890123456
---
Every field of a block, through the cache and back.
"""


def test_every_field_of_a_post_and_its_block_comes_back_from_the_cache(
    tmp_path: Path,
) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS, "timezone: Europe/Berlin\n")
    (config.posts_path / "published.md").write_text(PUBLISHED)
    (config.posts_path / "summer.md").write_text(LOCAL_POST)
    first, problems = load_posts(config)
    assert problems == []

    again, _ = load_posts(config)

    assert again == first
    by_path = {post.path: post for post in again}
    published = by_path["posts/published.md"]
    assert published.nexus.external_ids == (
        ("bluesky", "at://did:plc:abc/app.bsky.feed.post/3k"),
        ("x", "1871234567890123456"),
    )
    assert published.publish_now is True
    assert by_path["posts/summer.md"].scheduled_for == "2031-07-01T08:00:00Z"


@pytest.mark.parametrize(
    "damage",
    [
        {"platforms": "xb"},
        {"draft": "no"},
        {"content": 5},
        {"nexus": {"id": 7}},
        {"line": None},
        {"extra": True},
    ],
)
def test_a_damaged_record_is_not_believed(tmp_path: Path, damage: dict) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    first = load_posts(config)[0]
    (cache,) = cache_files()
    data = json.loads(cache.read_text("utf-8"))
    for entry in data["files"].values():
        entry[1].update(damage)
    cache.write_text(json.dumps(data), "utf-8")

    assert load_posts(config) == (first, [])


def test_the_cache_is_the_users_alone(tmp_path: Path) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    load_posts(config)

    (cache,) = cache_files()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700


def test_without_a_fingerprint_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = repo_of(tmp_path, EXAMPLE_POSTS)
    monkeypatch.setattr(posts_module, "_fingerprint", lambda: None)

    first = load_posts(config)

    assert first[1] == []
    assert cache_files() == []
    assert load_posts(config) == first


def test_the_fingerprint_follows_code_schema_and_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "package"
    (package / "schema").mkdir(parents=True)
    (package / "posts.py").write_text("RULE = 1\n")
    (package / "schema" / "post.schema.json").write_text("{}")
    library = tmp_path / "site" / "checker"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    def fingerprint() -> str:
        return fingerprint_of(package, ["checker"])

    seen = [fingerprint()]
    assert fingerprint() == seen[0]
    (package / "posts.py").write_text("RULE = 2\n")
    seen.append(fingerprint())
    (package / "schema" / "post.schema.json").write_text('{"type": "object"}')
    seen.append(fingerprint())
    # An upgrade replaces the library's files, which moves its folder's time.
    (library / "_new.py").write_text("")
    os.utime(library, ns=(1, 1))
    seen.append(fingerprint())

    assert len(set(seen)) == 4
