"""End-to-end: the real `nexus-sync` command on real repositories."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from conftest import EmulatorServer, git, make_repo, run_command

ID = re.compile(r"POST\|local\|\d+")


def local_messages(repo: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(repo / ".nexus-sync" / "emulator.sqlite3") as db:
        return db.execute("SELECT id, status, content FROM messages").fetchall()


def test_apply_local_creates_every_example_post_and_writes_back_only_the_block(
    repo: Path,
) -> None:
    posts = sorted((repo / "posts").rglob("*.md"))
    before = {path: path.read_text() for path in posts}

    result = run_command(["apply", "--local"], repo)

    assert result.code == 0, result.output
    assert f"Apply: {len(posts)} done, 0 failed, 0 not started." in result.stdout
    for path in posts:
        relative = path.relative_to(repo).as_posix()
        assert re.search(
            rf"{re.escape(relative)}: created POST\|local\|\d+", result.stdout
        )
        diff = git(repo, "diff", "-U0", "--", relative)
        added = [
            l
            for l in diff.splitlines()
            if l.startswith("+") and not l.startswith("+++")
        ]
        removed = [
            l
            for l in diff.splitlines()
            if l.startswith("-") and not l.startswith("---")
        ]
        assert removed == []
        assert added[0] == "+nexus:"
        assert re.fullmatch(r"\+  id: POST\|local\|\d+", added[1])
        assert added[2] in ("+  status: SCHEDULED", "+  status: DRAFT")
        assert len(added) == 3
        assert path.read_text().startswith(before[path].split("---\n")[0])

    status = git(repo, "status", "--porcelain")
    assert "?? nexus-sync.state.yaml" in status
    assert ".nexus-sync" not in status
    inventory = (repo / "nexus-sync.state.yaml").read_text()
    assert len(ID.findall(inventory)) == len(posts)
    assert len(local_messages(repo)) == len(posts)


def test_plan_after_apply_is_empty_with_exit_code_0(repo: Path) -> None:
    assert run_command(["apply", "--local"], repo).code == 0

    result = run_command(["plan", "--local", "--detailed-exitcode"], repo)

    assert result.code == 0, result.output
    assert "No changes." in result.stdout
    assert "Plan: 0 to create, 0 to update, 0 to delete, 7 unchanged, 0 unmanaged" in (
        result.stdout
    )


def test_edit_then_delete_round_trip(repo: Path) -> None:
    assert run_command(["apply", "--local"], repo).code == 0
    tip = repo / "posts" / "2030-03-10-short-tip.md"
    tip.write_text(
        tip.read_text().replace("The plan is the review.", "Review the plan.")
    )

    plan = run_command(["plan", "--local", "--detailed-exitcode"], repo)

    assert plan.code == 2, plan.output
    assert "~ update    posts/2030-03-10-short-tip.md" in plan.stdout
    assert "-Tip: run `nexus-sync plan` before you merge. The plan is the review." in (
        plan.stdout
    )
    assert (
        "+Tip: run `nexus-sync plan` before you merge. Review the plan." in plan.stdout
    )
    assert "title:" not in plan.stdout and "platforms:" not in plan.stdout
    assert "Plan: 0 to create, 1 to update, 0 to delete" in plan.stdout

    assert run_command(["apply", "--local"], repo).code == 0
    contents = {content for _, _, content in local_messages(repo)}
    assert "Tip: run `nexus-sync plan` before you merge. Review the plan." in contents
    assert run_command(["plan", "--local", "--detailed-exitcode"], repo).code == 0

    message_id = ID.search(tip.read_text()).group()
    tip.unlink()
    plan = run_command(["plan", "--local", "--detailed-exitcode"], repo)
    assert plan.code == 2
    assert f"- delete    posts/2030-03-10-short-tip.md  ({message_id})" in plan.stdout
    assert "0 to create, 0 to update, 1 to delete" in plan.stdout

    assert run_command(["apply", "--local"], repo).code == 0
    assert message_id not in [m for m, _, _ in local_messages(repo)]
    assert message_id not in (repo / "nexus-sync.state.yaml").read_text()
    assert run_command(["plan", "--local", "--detailed-exitcode"], repo).code == 0


def test_same_flow_over_real_http(repo: Path, emulator: EmulatorServer) -> None:
    env = emulator.env("alice")

    applied = run_command(["apply"], repo, env)
    assert applied.code == 0, applied.output
    assert len(emulator.messages("alice")) == 7
    assert emulator.messages("bob") == []

    plan = run_command(["plan", "--detailed-exitcode"], repo, env)
    assert plan.code == 0, plan.output

    (repo / "posts" / "draft-hiring.md").unlink()
    assert run_command(["apply"], repo, env).code == 0
    assert len(emulator.messages("alice")) == 6
    assert run_command(["plan", "--detailed-exitcode"], repo, env).code == 0


def test_token_from_the_token_command_is_accepted(
    repo: Path, emulator: EmulatorServer
) -> None:
    token = run_command(
        [
            "emulator",
            "token",
            "--user",
            "alice",
            "--state-dir",
            str(emulator.state_dir),
        ],
        repo,
    )
    assert token.code == 0
    env = {"NEXUS_API_URL": emulator.url, "NEXUS_TOKEN": token.stdout.strip()}

    result = run_command(["plan"], repo, env)

    assert result.code == 0, result.output
    assert "7 to create" in result.stdout


def test_schema_error_stops_plan_and_apply_before_any_request(
    repo: Path, emulator: EmulatorServer
) -> None:
    bad = repo / "posts" / "myspace.md"
    bad.write_text("---\ntitle: Old times\nplatforms: [myspace]\n---\nHello\n")
    env = emulator.env("alice")
    emulator.clear_requests()

    for command in (["plan"], ["apply"]):
        result = run_command(command, repo, env)
        assert result.code == 1
        assert (
            "posts/myspace.md:3: platforms.0: 'myspace' is not one of "
            "['x', 'linkedin', 'bluesky']" in result.stderr
        )
        assert "Traceback" not in result.output
    assert emulator.requests()["counts"] == {}
    assert emulator.messages("alice") == []
    assert "nexus:" not in (repo / "posts" / "draft-hiring.md").read_text()


def test_markdown_plan_of_many_warnings_fits_in_a_comment(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    # Long names make long warnings: 250 of them are over 80,000 characters.
    names = [f"{'published-and-edited-' * 10}{n:03}.md" for n in range(250)]
    for name in names:
        (repo / "posts" / name).write_text(
            f"---\nplatforms: [x]\npublish: now\n---\nPost {name[-6:-3]}\n"
        )
    applied = run_command(["apply", "--local"], repo)
    assert applied.code == 0, applied.output
    for name in names:
        path = repo / "posts" / name
        path.write_text(path.read_text().replace("\nPost ", "\nEdited post "))

    result = run_command(["plan", "--local", "--format", "markdown"], repo)

    assert result.code == 0, result.output
    markdown = result.stdout
    assert len(markdown) <= 65_000
    lines = markdown.splitlines()
    assert lines[6] == "No changes. Nothing is sent; read the warnings below."
    assert lines[7].startswith(f"> :warning: posts/{names[0]}: content edited ")
    shown = markdown.count("> :warning: posts/")
    assert 0 < shown < 250
    assert f"> _...and {250 - shown} more warning(s) not shown here._" in lines
    assert lines[-1] == (
        "_The plan is longer than a comment can hold; `nexus-sync plan` shows all "
        "of it, as does the plan saved as JSON (`--out`; in the GitHub Action, "
        "its `plan-path` output)._"
    )
