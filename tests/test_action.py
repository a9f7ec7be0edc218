"""The GitHub Action end to end: action.yml's steps run as the runner runs them,
against a bare git repository as the remote, the emulator as the service and a
local fake of GitHub's comment API."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml
from action_harness import ActionRun, run_action
from conftest import EmulatorServer, git, make_repo, run_command
from fake_github import FakeGitHub, LocalServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from nexus_sync.action import BOT_EMAIL, BOT_NAME

PROJECT = Path(__file__).resolve().parent.parent
REPOSITORY = "octo/posts"
EXAMPLE_COUNT = 7
NEW_POST = """---
title: Pull request post
platforms: [bluesky]
scheduledFor: 2031-05-01T09:00:00Z
---
Written on a branch, reviewed in a pull request.
"""


class GitHubSide:
    """A repository on "GitHub": the bare remote, a developer's clone, checkouts."""

    def __init__(
        self, tmp: Path, emulator: EmulatorServer, fake_github: FakeGitHub
    ) -> None:
        self.tmp = tmp
        self.emulator = emulator
        # One emulator serves the session; each test is its own user there.
        self.user = emulator.new_user()
        self.fake_github = fake_github
        self.nexus_token = emulator.token(self.user)
        self.remote = tmp / "remote.git"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(self.remote))
        self.developer = make_repo(tmp / "developer")
        git(self.developer, "remote", "add", "origin", self.remote.as_uri())
        git(self.developer, "push", "-q", "origin", "main")
        self._runs = itertools.count(1)
        self.last: ActionRun | None = None

    @property
    def secrets(self) -> list[str]:
        return [self.nexus_token, self.fake_github.token]

    def checkout(self, branch: str) -> Path:
        """What actions/checkout leaves: a shallow clone with `origin`."""
        workspace = self.tmp / f"workspace-{next(self._runs)}"
        subprocess.run(
            [
                "git",
                "clone",
                "-q",
                "--depth",
                "1",
                "--branch",
                branch,
                self.remote.as_uri(),
                str(workspace),
            ],
            check=True,
        )
        return workspace

    def push(self, branch: str, files: dict[str, str], message: str) -> str:
        git(self.developer, "fetch", "-q", "origin")
        if branch in git(self.developer, "branch", "-r"):
            git(self.developer, "checkout", "-q", "-B", branch, f"origin/{branch}")
        else:
            git(self.developer, "checkout", "-q", "-B", branch, "origin/main")
        for path, text in files.items():
            (self.developer / path).write_text(text)
        git(self.developer, "add", "-A")
        git(self.developer, "commit", "-q", "-m", message)
        git(self.developer, "push", "-q", "origin", branch)
        return self.sha(branch)

    def sha(self, branch: str) -> str:
        return git(self.remote, "rev-parse", branch).strip()

    def history(self, branch: str = "main") -> list[tuple[str, str, str]]:
        """(author email, committer email, subject) of each commit, newest first."""
        lines = git(self.remote, "log", "--format=%ae%x09%ce%x09%s", branch)
        return [tuple(line.split("\t")) for line in lines.splitlines()]

    def act(
        self,
        event_name: str,
        event: dict[str, Any],
        ref: str,
        workspace: Path,
        **inputs: str,
    ) -> ActionRun:
        credentials = {"api-url": self.emulator.url, "token": self.nexus_token}
        run = run_action(
            workspace,
            event_name,
            event,
            ref,
            {**credentials, **inputs},
            {
                "token": self.fake_github.token,
                "repository": REPOSITORY,
                "api_url": self.fake_github.url,
            },
            self.tmp / f"runner-{workspace.name}",
        )
        self.last = run
        return run

    def messages(self) -> list[dict[str, Any]]:
        return self.emulator.messages(self.user)

    def act_on_pull_request(
        self, branch: str, head_repository: str = REPOSITORY, **inputs: str
    ) -> ActionRun:
        """The run for pull request #12 from `branch` of `head_repository`."""
        return self.act(
            "pull_request",
            pull_request_event(self, branch, head_repository),
            "refs/pull/12/merge",
            self.checkout(branch),
            **inputs,
        )

    def act_on_push(
        self, before: str, after: str, workspace: Path | None = None, **inputs: str
    ) -> ActionRun:
        """The run for a push to main of the commits after `before`."""
        return self.act(
            "push",
            push_event(self, before, after),
            "refs/heads/main",
            workspace or self.checkout("main"),
            **inputs,
        )

    def everything_captured(self) -> str:
        """What a person or a log collector could read after the runs."""
        recorded = [f"{r.method} {r.path} {r.body}" for r in self.fake_github.requests]
        commits = git(self.remote, "log", "--all", "-p", "--format=%an %ae %B")
        return "\n".join([*recorded, commits])


def pull_request_event(
    side: GitHubSide, branch: str, head_repository: str = REPOSITORY
) -> dict[str, Any]:
    return {
        "action": "synchronize",
        "number": 12,
        "pull_request": {
            "number": 12,
            "head": {
                "ref": branch,
                "sha": side.sha(branch) if head_repository == REPOSITORY else "f" * 40,
                "repo": {"full_name": head_repository},
            },
            "base": {"ref": "main", "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


def push_event(side: GitHubSide, before: str, after: str) -> dict[str, Any]:
    lines = git(
        side.remote, "log", "--format=%H%x09%ae%x09%B%x00", f"{before}..{after}"
    )
    commits = []
    for entry in filter(str.strip, lines.split("\x00")):
        sha, email, message = entry.strip("\n").split("\t", 2)
        commits.append({"id": sha, "message": message, "author": {"email": email}})
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "commits": commits,
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }


@pytest.fixture
def side(tmp_path: Path, api: EmulatorServer, fake_github: FakeGitHub) -> GitHubSide:
    return GitHubSide(tmp_path, api, fake_github)


def assert_secrets_hidden(side: GitHubSide, *runs: ActionRun) -> None:
    for run in runs:
        # Masked first, and never printed even before the runner would mask it.
        assert sorted(run.masks) == sorted(side.secrets)
        plan_path = run.outputs["plan-path"]
        saved = Path(plan_path).read_text() if plan_path else ""
        for secret in side.secrets:
            assert secret not in run.captured() + saved
    for secret in side.secrets:
        assert secret not in side.everything_captured()


def test_action_yml_matches_githubs_action_metadata_schema() -> None:
    done = subprocess.run(
        [
            *_check_jsonschema(),
            "--builtin-schema",
            "vendor.github-actions",
            str(PROJECT / "action.yml"),
        ],
        check=False,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_the_workflow_example_matches_githubs_workflow_schema() -> None:
    path = PROJECT / "docs" / "github-workflow.yml"
    done = subprocess.run(
        [
            *_check_jsonschema(),
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
        check=False,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    # The README shows the example as it is.
    assert f"```yaml\n{path.read_text()}```" in (PROJECT / "README.md").read_text()
    workflow = yaml.safe_load(path.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true.
    assert set(triggers) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert workflow["permissions"] == {}
    plan, apply = workflow["jobs"]["plan"], workflow["jobs"]["apply"]
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert apply["permissions"] == {"contents": "write"}
    assert apply["concurrency"] == {
        "group": "nexus-sync-apply-${{ github.repository }}",
        "cancel-in-progress": False,
    }


def _check_jsonschema() -> list[str]:
    script = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "check_jsonschema"]


def test_a_pull_request_gets_one_plan_comment_updated_on_the_next_push(
    side: GitHubSide,
) -> None:
    side.push("feature", {"posts/pull-request.md": NEW_POST}, "add a post")

    first = side.act_on_pull_request("feature")

    assert first.code == 0, first.log
    assert first.skipped == ["actions/setup-python@v5", "install"]
    assert first.outputs["has-changes"] == "true"
    saved = json.loads(Path(first.outputs["plan-path"]).read_text())
    assert first.outputs["checksum"] == saved["checksum"]
    assert (
        "**Plan: 8 to create, 0 to update, 0 to delete, 0 unchanged, 0 unmanaged**"
        in (first.summary)
    )
    [body] = side.fake_github.bodies(REPOSITORY, 12)
    assert body.startswith("<!-- nexus-sync plan: . -->\n### nexus-sync plan\n")
    assert "<summary>+ create posts/pull-request.md</summary>" in body
    assert f"Commit {side.sha('feature')[:7]}." in body

    side.push(
        "feature",
        {
            "posts/pull-request.md": NEW_POST.replace("[bluesky]", "[bluesky, x]"),
            "posts/second.md": NEW_POST.replace("Written", "Also written"),
        },
        "another post",
    )
    second = side.act_on_pull_request("feature")

    assert second.code == 0, second.log
    [body] = side.fake_github.bodies(REPOSITORY, 12)
    assert (
        "**Plan: 9 to create, 0 to update, 0 to delete, 0 unchanged, 0 unmanaged**"
        in (body)
    )
    assert "<summary>+ create posts/second.md</summary>" in body
    assert f"Commit {side.sha('feature')[:7]}." in body
    assert [(r.method, r.path) for r in side.fake_github.requests] == [
        ("GET", f"/repos/{REPOSITORY}/issues/12/comments"),
        ("POST", f"/repos/{REPOSITORY}/issues/12/comments"),
        ("GET", f"/repos/{REPOSITORY}/issues/12/comments"),
        ("PATCH", f"/repos/{REPOSITORY}/issues/comments/1001"),
    ]
    # A plan changes nothing: not the account, not the branch.
    assert side.messages() == []
    assert len(side.history("feature")) == 3
    assert_secrets_hidden(side, first, second)


def test_a_token_that_may_not_comment_warns_and_keeps_the_plan_in_the_summary(
    side: GitHubSide,
) -> None:
    side.push("feature", {"posts/pull-request.md": NEW_POST}, "add a post")
    side.fake_github.deny_writes = True

    run = side.act_on_pull_request("feature")

    assert run.code == 0, run.log
    assert (
        "warning",
        (
            "The plan comment was not posted: GitHub answered 403 to commenting on "
            "#12: Resource not accessible by integration; the workflow needs "
            "`permissions: pull-requests: write` (pull requests from forks get a "
            "read-only token)"
        ),
    ) in run.annotations
    assert "**Plan: 8 to create," in run.summary
    assert side.fake_github.bodies(REPOSITORY, 12) == []
    assert_secrets_hidden(side, run)


def test_a_merge_applies_pushes_one_write_back_and_its_own_run_does_nothing(
    side: GitHubSide,
) -> None:
    before = side.sha("main")
    after = side.push("main", {"posts/pull-request.md": NEW_POST}, "Merge #12")

    applied = side.act_on_push(before, after)

    assert applied.code == 0, applied.log
    assert applied.outputs["has-changes"] == "true"
    assert len(side.messages()) == EXAMPLE_COUNT + 1
    assert side.history() == [
        (BOT_EMAIL, BOT_EMAIL, "nexus-sync: write back after apply [skip ci]"),
        ("test@example.com", "test@example.com", "Merge #12"),
        ("test@example.com", "test@example.com", "posts"),
    ]
    assert git(side.remote, "log", "-1", "--format=%an").strip() == BOT_NAME
    changed = git(side.remote, "diff", "--name-only", after, "main").split()
    assert "nexus-sync.state.yaml" in changed
    assert len(changed) == EXAMPLE_COUNT + 2
    assert all(p.startswith("posts/") for p in changed if p != "nexus-sync.state.yaml")
    assert "Write-back commit" in applied.summary

    # The branch now says what the account holds: an empty plan.
    clone = side.checkout("main")
    plan = run_command(
        ["plan", "--detailed-exitcode"],
        clone,
        env={"NEXUS_API_URL": side.emulator.url, "NEXUS_TOKEN": side.nexus_token},
    )
    assert plan.code == 0, plan.output
    assert "No changes." in plan.stdout

    side.emulator.clear_requests()
    writeback = side.sha("main")
    again = side.act_on_push(after, writeback, clone)

    assert again.code == 0, again.log
    assert (
        "notice",
        "This push holds only nexus-sync's own write-back commit: nothing to do.",
    ) in again.annotations
    assert side.emulator.requests()["counts"] == {}
    assert side.sha("main") == writeback
    assert_secrets_hidden(side, applied, again)


class Relay:
    """Forwards every request to the emulator, after asking `on_request(method,
    path)` (run in a thread, so it may take its time): a response it returns is
    sent instead. Lets a test act at a known moment in the middle of an apply."""

    def __init__(self, target: str, on_request: Any) -> None:
        self.target = target
        self.on_request = on_request
        self._server = LocalServer(self._forward)
        self.url = self._server.url

    async def _forward(self, scope: dict, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await asyncio.to_thread(
            self.on_request, request.method, request.url.path
        )
        if response is None:
            headers = {k: v for k, v in request.headers.items() if k != "host"}
            async with httpx.AsyncClient(base_url=self.target) as client:
                answer = await client.request(
                    request.method,
                    request.url.path,
                    params=request.query_params,
                    headers=headers,
                    content=await request.body(),
                )
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k not in ("content-length", "content-encoding", "transfer-encoding")
            }
            response = Response(answer.content, answer.status_code, kept)
        await response(scope, receive, send)

    def stop(self) -> None:
        self._server.stop()


def merge_with_a_push_during_the_apply(
    side: GitHubSide, edit: Callable[[Path], str]
) -> tuple[Any, list[int]]:
    """Merge a new post and apply it; when the apply sends its first create,
    Bob's clone makes `edit` (which returns the commit message) and pushes.

    Returns the run and how many messages the account held at Bob's push.
    """
    before = side.sha("main")
    after = side.push("main", {"posts/pull-request.md": NEW_POST}, "Merge #12")
    workspace = side.checkout("main")
    other = side.tmp / "other"
    subprocess.run(["git", "clone", "-q", side.remote.as_uri(), str(other)], check=True)
    seen_at_push: list[int] = []
    lock = threading.Lock()

    def push_once(method: str, path: str) -> None:
        if (method, path) != ("POST", "/messages"):
            return
        # The creates in flight wait here until the push has landed.
        with lock:
            if seen_at_push:
                return
            seen_at_push.append(len(side.messages()))
            subject = edit(other)
            git(other, "add", "--all")
            bob = ["-c", "user.name=Bob", "-c", "user.email=bob@example.com"]
            git(other, *bob, "commit", "-q", "-m", subject)
            git(other, "push", "-q", "origin", "main")

    relay = Relay(side.emulator.url, push_once)
    try:
        run = side.act_on_push(before, after, workspace, **{"api-url": relay.url})
    finally:
        relay.stop()
    return run, seen_at_push


def test_a_push_landing_during_the_apply_is_rebased_onto_and_the_write_back_lands(
    side: GitHubSide,
) -> None:
    def add_notes(other: Path) -> str:
        (other / "NOTES.md").write_text("a note\n")
        return "Notes from Bob"

    run, seen_at_push = merge_with_a_push_during_the_apply(side, add_notes)

    assert run.code == 0, run.log
    assert seen_at_push == [0]
    assert "main moved during the run; rebasing the write-back (try 2)." in run.log
    assert [subject for _, _, subject in side.history()] == [
        "nexus-sync: write back after apply [skip ci]",
        "Notes from Bob",
        "Merge #12",
        "posts",
    ]
    tip = side.checkout("main")
    assert (tip / "NOTES.md").read_text() == "a note\n"
    assert "nexus:" in (tip / "posts" / "pull-request.md").read_text()
    assert len(side.messages()) == EXAMPLE_COUNT + 1
    assert_secrets_hidden(side, run)


def test_a_push_that_conflicts_with_the_write_back_still_lands_the_inventory(
    side: GitHubSide,
) -> None:
    def move_the_post(other: Path) -> str:
        # The line the nexus: block lands beside is edited on the branch.
        post = other / "posts" / "pull-request.md"
        post.write_text(post.read_text().replace("09:00:00Z", "10:00:00Z"))
        return "Later, says Bob"

    run, _ = merge_with_a_push_during_the_apply(side, move_the_post)

    assert run.code == 0, run.log
    assert "committing the inventory alone" in run.log
    tip = side.checkout("main")
    assert "10:00:00Z" in (tip / "posts" / "pull-request.md").read_text()
    assert "nexus:" not in (tip / "posts" / "pull-request.md").read_text()
    assert "posts/pull-request.md" in (tip / "nexus-sync.state.yaml").read_text()
    assert len(side.messages()) == EXAMPLE_COUNT + 1

    # The next plan keeps the message: it moves its time, it does not post again.
    plan = run_command(
        ["plan"],
        tip,
        env={"NEXUS_API_URL": side.emulator.url, "NEXUS_TOKEN": side.nexus_token},
    )
    assert "0 to create, 1 to update" in plan.stdout, plan.output
    assert_secrets_hidden(side, run)


def test_a_failed_apply_still_commits_the_ids_of_what_it_created(
    side: GitHubSide,
) -> None:
    before = side.sha("main")
    # One change at a time, so that the second create is the one that fails.
    after = side.push("main", {"nexus-sync.yaml": "parallelism: 1\n"}, "settings")
    creates: list[str] = []

    def refuse_the_second_create(method: str, path: str) -> JSONResponse | None:
        if (method, path) != ("POST", "/messages"):
            return None
        creates.append(path)
        if len(creates) == 2:
            body = {"error": "Unprocessable Entity", "details": "refused by the test"}
            return JSONResponse(body, status_code=422)
        return None

    relay = Relay(side.emulator.url, refuse_the_second_create)
    try:
        run = side.act_on_push(before, after, **{"api-url": relay.url})
    finally:
        relay.stop()

    assert run.code == 1
    [message] = side.messages()
    assert side.history()[0][2] == "nexus-sync: write back after apply [skip ci]"
    tip = side.checkout("main")
    inventory = yaml.safe_load((tip / "nexus-sync.state.yaml").read_text())
    written = [p for p in (tip / "posts").rglob("*.md") if "nexus:" in p.read_text()]
    assert [path.relative_to(tip).as_posix() for path in written] == list(
        inventory.values()
    )
    assert list(inventory) == [message["id"]]
    assert f"  id: {message['id']}\n" in written[0].read_text()
    assert_secrets_hidden(side, run)


def test_a_branch_that_keeps_moving_fails_after_three_pushes(side: GitHubSide) -> None:
    before = side.sha("main")
    after = side.push("main", {"posts/pull-request.md": NEW_POST}, "Merge #12")
    workspace = side.checkout("main")
    other = side.tmp / "other"
    subprocess.run(["git", "clone", "-q", side.remote.as_uri(), str(other)], check=True)
    # Every push of the action finds one more commit on the branch.
    _hook(
        workspace,
        "pre-push",
        f"""
cd {other}
git pull -q origin main
date +%s%N >> RACE.md
git add RACE.md
git -c user.name=Bob -c user.email=bob@example.com commit -q -m "Bob again"
git push -q origin HEAD:main
""",
    )

    run = side.act_on_push(before, after, workspace)

    assert run.code == 1
    assert (
        "error",
        (
            "could not push the write-back: main moved 3 times during the "
            "run; run the workflow again to write the ids back"
        ),
    ) in run.annotations
    assert [subject for _, _, subject in side.history()][:3] == ["Bob again"] * 3
    assert_secrets_hidden(side, run)


def test_a_pull_request_from_a_fork_is_only_validated(side: GitHubSide) -> None:
    bad = NEW_POST.replace("[bluesky]", "[myspace]")
    side.push("feature", {"posts/pull-request.md": bad}, "add a post")

    def act_as_fork() -> ActionRun:
        # A fork's workflow gets empty secrets, and a read-only GitHub token.
        return side.act_on_pull_request(
            "feature", "mallory/posts", token="", **{"api-url": ""}
        )

    failed = act_as_fork()

    assert failed.code == 1
    assert "::error file=posts/pull-request.md,line=3::platforms.0:" in failed.log
    assert (
        "error",
        "platforms.0: 'myspace' is not one of ['x', 'linkedin', 'bluesky']",
    ) in failed.annotations

    side.push("feature", {"posts/pull-request.md": NEW_POST}, "fix the post")
    passed = act_as_fork()

    assert passed.code == 0, passed.log
    assert passed.outputs == {"has-changes": "false", "checksum": "", "plan-path": ""}
    [(kind, message)] = passed.annotations
    assert kind == "notice"
    assert message.startswith(
        "nexus-sync only validated the files: this pull request comes from the "
        "fork mallory/posts."
    )
    assert "8 post file(s) valid." in passed.log
    assert "Only validated the files: this pull request comes from the fork" in (
        passed.summary
    )
    assert side.fake_github.requests == []
    assert side.emulator.requests()["counts"] == {}
    for run in (failed, passed):
        assert run.masks == [side.fake_github.token]
        assert side.fake_github.token not in run.captured()


def _hook(workspace: Path, name: str, body: str) -> None:
    hook = workspace / ".git" / "hooks" / name
    hook.write_text(
        "#!/bin/sh\nset -e\nunset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n" + body
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def test_a_scheduled_run_refreshes_and_commits_what_was_published(
    side: GitHubSide,
) -> None:
    # Tokens expire by the service's clock, which jumps to 2030 below.
    side.nexus_token = side.emulator.token(side.user, ttl=200_000_000)
    # Applied by hand before, as a person may do, and the write-back pushed.
    env = {"NEXUS_API_URL": side.emulator.url, "NEXUS_TOKEN": side.nexus_token}
    assert run_command(["apply"], side.developer, env=env).code == 0
    git(side.developer, "add", "-A")
    git(side.developer, "commit", "-q", "-m", "ids")
    git(side.developer, "push", "-q", "origin", "main")
    before = side.sha("main")
    # The first post's time passes: the service publishes it.
    side.emulator.clock(set="2030-01-15T09:00:00+00:00")
    event = {
        "schedule": "17 * * * *",
        "repository": {"full_name": REPOSITORY, "default_branch": "main"},
    }

    run = side.act("schedule", event, "refs/heads/main", side.checkout("main"))

    assert run.code == 0, run.log
    assert "nexus-sync: refresh (event schedule)" in run.log
    assert run.outputs["has-changes"] == "true"
    assert [subject for _, _, subject in side.history()][:2] == [
        "nexus-sync: write back after refresh [skip ci]",
        "ids",
    ]
    changed = git(side.remote, "diff", "--name-only", before, "main").split()
    assert changed == ["posts/2030-01-15-hello-world.md"]
    tip = side.checkout("main")
    text = (tip / "posts" / "2030-01-15-hello-world.md").read_text()
    assert "  status: PUBLISHED\n" in text
    assert_secrets_hidden(side, run)
