"""nexus_sync.action's decisions, event by event, without a runner around it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nexus_sync.action import BOT_EMAIL, Event, Inputs, Runner, run

REPOSITORY = {"full_name": "octo/posts", "default_branch": "main"}


def event(name: str, ref: str = "refs/heads/main", **payload: Any) -> Event:
    return Event(name, {"repository": REPOSITORY, **payload}, ref, "octo/posts")


def pull(head_repo: dict | None) -> dict:
    return {
        "number": 3,
        "head": {"repo": head_repo, "sha": "a" * 40},
        "base": {"repo": {"full_name": "octo/posts"}},
    }


@pytest.mark.parametrize(
    ("name", "ref", "command"),
    [
        ("pull_request", "refs/pull/3/merge", "plan"),
        ("push", "refs/heads/main", "apply"),
        ("push", "refs/heads/feature", "plan"),
        ("push", "refs/tags/v1", "plan"),
        ("workflow_dispatch", "refs/heads/main", "apply"),
        ("schedule", "refs/heads/main", "refresh"),
    ],
)
def test_auto_picks_the_command_from_the_event(
    name: str, ref: str, command: str
) -> None:
    assert event(name, ref).command() == command


def test_a_fork_is_told_apart_from_a_branch_of_the_repository() -> None:
    own = event("pull_request", pull_request=pull({"full_name": "octo/posts"}))
    fork = event("pull_request", pull_request=pull({"full_name": "mallory/posts"}))
    gone = event("pull_request", pull_request=pull(None))

    assert (own.fork, fork.fork, gone.fork) == (None, "mallory/posts", "a deleted fork")
    assert event("push").fork is None


def commit(message: str, email: str) -> dict:
    return {"message": message, "author": {"email": email}}


def test_only_a_push_of_write_back_commits_by_the_bot_is_its_own() -> None:
    own = commit("nexus-sync: write back after apply [skip ci]", BOT_EMAIL)
    person = commit("nexus-sync: write back after apply [skip ci]", "bob@example.com")
    other = commit("Fix a typo", "bob@example.com")

    assert event("push", commits=[own]).is_own_writeback
    assert event("push", commits=[own, own]).is_own_writeback
    assert not event("push", commits=[own, other]).is_own_writeback
    assert not event("push", commits=[person]).is_own_writeback
    assert not event("push", commits=[]).is_own_writeback
    assert not event("schedule").is_own_writeback


def environ(tmp_path: Path, **values: str) -> dict[str, str]:
    (tmp_path / "event.json").write_text(json.dumps({"repository": REPOSITORY}))
    (tmp_path / "output").write_text("")
    return {
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **values,
    }


def test_secrets_are_masked_line_by_line_before_an_input_is_even_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        environ(
            tmp_path,
            INPUT_COMMAND="deploy",
            INPUT_TOKEN="tok-123",
            INPUT_PASSWORD="first line\nsecond line",
        )
    )

    assert code == 1
    assert capsys.readouterr().out.splitlines() == [
        "::add-mask::tok-123",
        "::add-mask::first line",
        "::add-mask::second line",
        (
            "::error::input command: 'deploy' is not one of auto, validate, plan, "
            "apply, refresh"
        ),
    ]
    assert (tmp_path / "output").read_text() == (
        "has-changes=false\nchecksum=\nplan-path=\n"
    )


def test_apply_without_credentials_says_which_inputs_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(environ(tmp_path, INPUT_COMMAND="apply", INPUT_USER="alice"))

    assert code == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "::error::apply needs Nexus Share credentials: set the input token, or user "
        "and password, from the repository's secrets"
    )


def test_a_pull_request_without_secrets_is_validated_and_says_why(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = environ(tmp_path, GITHUB_EVENT_NAME="pull_request")
    Path(values["GITHUB_EVENT_PATH"]).write_text(
        json.dumps({"pull_request": pull({"full_name": "octo/posts"})})
    )
    values["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary")
    monkeypatch.chdir(repo)

    assert run(values) == 0
    assert (tmp_path / "summary").read_text() == (
        "### nexus-sync\n\nOnly validated the files: no Nexus Share credentials "
        "were given (the input token, or user and password). Pass them from the "
        "repository's secrets to see a plan.\n\nEvery post file is valid.\n\n"
    )


def test_workflow_commands_escape_what_would_end_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Runner({}).command("error", "50% done\nnext", file="a:b,c.md")

    assert capsys.readouterr().out == "::error file=a%3Ab%2Cc.md::50%25 done%0Anext\n"


def test_credentials_in_the_jobs_env_count_and_inputs_win() -> None:
    from_env = Inputs.from_environ({"NEXUS_USER": "alice", "NEXUS_PASSWORD": "pw"})
    both = Inputs.from_environ({"NEXUS_TOKEN": "old", "INPUT_TOKEN": "new"})

    assert from_env.has_credentials
    assert from_env.nexus_environment() == {
        "NEXUS_USER": "alice",
        "NEXUS_PASSWORD": "pw",
    }
    assert both.nexus_environment() == {"NEXUS_TOKEN": "new"}
    assert "pw" not in repr(from_env) and "new" not in repr(both)
    assert not Inputs.from_environ({"INPUT_USER": "alice"}).has_credentials
