"""No token, password or refresh token in any output, log, file, error or repr."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import click
from conftest import CognitoPool, Completed, EmulatorServer, make_repo, run_command

from nexus_sync.auth import (
    CognitoAuth,
    CognitoLogin,
    RedactingFormatter,
    StaticToken,
    Tokens,
    hide,
    redact,
)
from nexus_sync.cli import main
from nexus_sync.config import load_config

SENTINEL_PASSWORD = 'Sentinel-Pa55word-4242!"\\'
JWT = re.compile(r"eyJ[\w-]+\.")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Arguments for the commands that need some; every other command of the CLI
# runs without any, so that a command added later is covered too.
ARGUMENTS = {
    "plan": [["--out", "plan.json"]],
    "apply": [["plan.json"]],
}
# `emulator token` prints a token on purpose (for the emulator, never the
# user's), and `emulator serve` runs until stopped; neither reads credentials.
SKIPPED_GROUPS = {"emulator"}


# plan writes the plan.json that apply then reads.
FIRST = ("validate", "plan", "apply")


def every_command_line() -> list[list[str]]:
    names = [*FIRST, *sorted(set(main.commands) - set(FIRST))]
    lines = []
    for name in names:
        if isinstance(main.commands[name], click.Group):
            assert name in SKIPPED_GROUPS, f"no secret test for the group {name}"
            continue
        for arguments in ARGUMENTS.get(name, [[]]):
            lines.append([name, *arguments])
    return lines


def run_lines(
    repo: Path, env: dict[str, str], lines: list[list[str]]
) -> list[Completed]:
    return [run_command(["-vv", *line], repo, env) for line in lines]


def written_text(repo: Path) -> str:
    return "".join(
        path.read_text(errors="replace")
        for path in sorted(repo.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(repo).parts
    )


def assert_nothing_shows(results: list[Completed], repo: Path, *secrets: str) -> None:
    everything = "".join(r.stdout + r.stderr for r in results) + written_text(repo)
    for secret in secrets:
        assert secret not in everything
    assert not JWT.search(everything), JWT.search(everything)
    assert not UUID.search(everything), UUID.search(everything)


def test_a_token_accepted_or_refused_is_never_shown(
    repo: Path, emulator: EmulatorServer
) -> None:
    token = emulator.token("alice")
    refused = "sentinel-token-that-the-service-refuses-0123456789"
    env = {"NEXUS_API_URL": emulator.url, "NEXUS_TOKEN": token}

    accepted = run_lines(repo, env, [["apply"]])
    rejected = run_lines(repo, {**env, "NEXUS_TOKEN": refused}, [["plan"]])

    assert accepted[0].code == 0, accepted[0].output
    assert "Apply: 7 done, 0 failed, 0 not started." in accepted[0].stdout
    assert "DEBUG httpcore" in accepted[0].stderr
    assert rejected[0].code == 1
    assert "Error: Nexus Share refused the credentials" in rejected[0].stderr
    assert_nothing_shows([*accepted, *rejected], repo, token, refused)


def test_every_command_logged_in_with_a_password_shows_no_secret_at_debug_level(
    tmp_path: Path, cognito: CognitoPool
) -> None:
    from conftest import _cognito_admin

    _cognito_admin(cognito.url).admin_set_user_password(
        UserPoolId=cognito.pool_id,
        Username=cognito.user,
        Password=SENTINEL_PASSWORD,
        Permanent=True,
    )
    repo = make_repo(tmp_path / "repo")
    server = EmulatorServer(
        tmp_path / "emulator-state", ["--trust-jwks", cognito.jwks_url]
    )
    try:
        env = {"NEXUS_API_URL": server.url, **cognito.env(SENTINEL_PASSWORD)}
        results = run_lines(repo, env, every_command_line())
        wrong = run_command(
            ["-vv", "plan"], repo, {**env, "NEXUS_PASSWORD": "Wr0ng-Passw0rd"}
        )
    finally:
        server.stop()

    assert [r.code for r in results[:3]] == [0, 0, 0], results
    assert "logged in to Cognito as alice" in results[2].stderr
    assert "Apply: 7 done, 0 failed, 0 not started." in results[2].stdout
    assert wrong.code == 1
    assert "Incorrect username or password." in wrong.stderr
    # Any JWT (the id, access or refresh token) or UUID would show as well.
    assert_nothing_shows([*results, wrong], repo, SENTINEL_PASSWORD)


def test_reprs_and_errors_hide_every_secret(tmp_path: Path) -> None:
    config = load_config(
        tmp_path, environ={"NEXUS_TOKEN": "tok-123456", "NEXUS_PASSWORD": "pw-123456"}
    )
    login = CognitoLogin("alice", "pw-123456", "client", "eu-central-1")
    tokens = Tokens("id-token-123456", "refresh-123456", 12.0)

    shown = " ".join(
        [
            repr(config),
            repr(login),
            repr(CognitoAuth(login)),
            repr(StaticToken("tok-123456")),
            repr(tokens),
        ]
    )

    assert "123456" not in shown
    assert repr(tokens) == "Tokens(expires_at=12.0)"
    assert repr(login) == "CognitoLogin(user='alice', flow='USER_PASSWORD_AUTH')"


def test_the_log_formatter_replaces_registered_secrets() -> None:
    hide('s3cret-"value"')
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "x",
        logging.DEBUG,
        __file__,
        1,
        "body %s",
        ('{"p": "s3cret-\\"value\\""}',),
        None,
    )

    assert formatter.format(record) == 'DEBUG body {"p": "<hidden>"}'
    assert redact("a s3cret-%22value%22 b") == "a <hidden> b"
