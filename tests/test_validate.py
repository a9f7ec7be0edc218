"""`nexus-sync validate`, and the same checks stopping plan and apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from conftest import DATA, EmulatorServer, make_repo, run_command

GOOD = "---\nplatforms: [x]\nscheduledFor: 2031-01-20T10:00:00Z\n---\nFine.\n"


def manifest(corpus: str) -> dict[str, list[str]]:
    return yaml.safe_load((DATA / corpus / "expected.yaml").read_text("utf-8"))


def corpus_repo(tmp_path: Path, corpus: str) -> Path:
    source = DATA / corpus
    posts = tmp_path / "posts"
    posts.mkdir(parents=True)
    for path in source.glob("*.md"):
        shutil.copy(path, posts / path.name)
    (posts / "good.md").write_text(GOOD)
    repo = make_repo(tmp_path / "repo", posts)
    if (source / "nexus-sync.yaml").exists():
        shutil.copy(source / "nexus-sync.yaml", repo / "nexus-sync.yaml")
    return repo


def expected_lines(corpus: str, command: str = "validate") -> list[str]:
    messages = [line for lines in manifest(corpus).values() for line in lines]
    sent = "" if command == "validate" else "; nothing was sent"
    return [*messages, f"{len(messages)} problem(s) found{sent}."]


def test_validate_lists_all_five_broken_files_and_exits_1(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    posts = repo / "posts"
    (posts / "ok.md").write_text(GOOD)
    (posts / "a.md").write_text("---\nplatforms: [myspace]\n---\nHi\n")
    (posts / "b.md").write_text("---\nplatforms: [x]\ntitle: A\ntitle: B\n---\nHi\n")
    (posts / "c.md").write_text("---\nplatforms: [x]\n---\n" + "x" * 281 + "\n")
    (posts / "sub").mkdir()
    (posts / "sub" / "d.md").write_text("---\nplatforms: [x]\nscheduledFor: 10:30\n")
    (posts / "sub" / "e.md").write_bytes(b"---\nplatforms: [x]\n---\nCaf\xe9\n")

    result = run_command(["validate"], repo)

    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "posts/a.md:2: platforms.0: 'myspace' is not one of "
        "['x', 'linkedin', 'bluesky']",
        "posts/b.md:4: 'title' is given twice (first on line 3); keep one",
        "posts/c.md:4: 281/280 weighted characters for x",
        "posts/sub/d.md:1: the frontmatter opened here never closes; end it with a "
        "'---' line",
        "posts/sub/e.md:4: not UTF-8 text (byte 0xe9 at column 4); save the file "
        "as UTF-8",
        "5 problem(s) found.",
    ]


def test_validate_of_a_good_folder_exits_0(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    (repo / "posts" / "ok.md").write_text(GOOD)

    result = run_command(["validate"], repo)

    assert (result.code, result.stdout, result.stderr) == (
        0,
        "1 post file(s) valid.\n",
        "",
    )


def test_validate_the_whole_bad_corpus_at_once(tmp_path: Path) -> None:
    for corpus in ("bad", "bad-berlin"):
        repo = corpus_repo(tmp_path / corpus, corpus)

        result = run_command(["validate"], repo)

        assert result.code == 1
        assert "Traceback" not in result.output
        assert result.stderr.splitlines() == expected_lines(corpus)


def test_validate_takes_files_and_folders(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    (repo / "posts" / "ok.md").write_text(GOOD)
    (repo / "posts" / "bad.md").write_text("---\nplatforms: []\n---\nHi\n")
    drafts = repo / "drafts"
    drafts.mkdir()
    (drafts / "x.md").write_text("---\ndraft: maybe\nplatforms: [x]\n---\nHi\n")
    (drafts / "notes.txt").write_text("not a post")

    result = run_command(["validate", "posts/ok.md", "drafts", "posts/ok.md"], repo)

    assert result.code == 1
    assert result.stderr.splitlines() == [
        "drafts/x.md:2: draft: expected true or false, got the string 'maybe'",
        "1 problem(s) found.",
    ]
    missing = run_command(["validate", "posts/nothing.md"], repo)
    assert missing.stderr.splitlines()[0] == (
        "posts/nothing.md:1: cannot read the file: No such file or directory"
    )


def test_github_annotations_are_escaped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    (repo / "posts" / "a,b:c.md").write_text(
        "---\nplatforms: [x]\n'100%\\r\\nsure': 1\n---\nHi\n"
    )

    result = run_command(["validate"], repo, env={"GITHUB_ACTIONS": "true"})

    assert result.code == 1
    assert result.stdout.splitlines() == [
        "::error file=posts/a%2Cb%3Ac.md,line=3::100%25\\r\\nsure: unknown key; "
        "the keys are title, platforms, scheduledFor, draft, publish, nexus"
    ]
    (repo / "posts" / "a,b:c.md").write_text(
        '---\nplatforms: [x]\n"100%\\r\\nsure": 1\n---\nHi\n'
    )
    result = run_command(["validate"], repo, env={"GITHUB_ACTIONS": "true"})
    assert result.stdout.splitlines() == [
        # The key is quoted, so its line breaks cannot break the annotation.
        "::error file=posts/a%2Cb%3Ac.md,line=3::'100%25\\r\\nsure': unknown key; "
        "the keys are title, platforms, scheduledFor, draft, publish, nexus"
    ]
    assert result.stderr.splitlines()[-1] == "1 problem(s) found."


def test_no_bad_file_sends_a_request_from_plan_or_apply(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    env = emulator.env("alice")
    emulator.clear_requests()

    for corpus in ("bad", "bad-berlin"):
        repo = corpus_repo(tmp_path / corpus, corpus)
        for command in (["plan"], ["apply"]):
            result = run_command(command, repo, env)

            assert result.code == 1
            assert "Traceback" not in result.output
            assert result.stderr.splitlines() == expected_lines(corpus, command[0])
            assert "nexus:" not in (repo / "posts" / "good.md").read_text()

    assert emulator.requests()["counts"] == {}
    assert emulator.messages("alice") == []


def test_local_times_in_berlin_are_sent_in_utc_whatever_the_machine_zone(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    (repo / "nexus-sync.yaml").write_text("timezone: Europe/Berlin\n")
    (repo / "posts" / "summer.md").write_text(
        "---\nplatforms: [x]\nscheduledFor: 2030-07-01 10:00\n---\nSummer.\n"
    )
    env = {**emulator.env("alice"), "TZ": "Pacific/Auckland"}

    result = run_command(["apply"], repo, env)

    assert result.code == 0, result.output
    [message] = emulator.messages("alice")
    assert message["scheduledFor"] == "2030-07-01T08:00:00Z"
    assert run_command(["plan", "--detailed-exitcode"], repo, env).code == 0
