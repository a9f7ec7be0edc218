"""Several processes on one emulator state folder: one SQLite file, one key."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import git, nexus_sync_command, run_command

from nexus_sync.emulator.store import Store, fingerprint

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
HELLO = {"content": "Hello", "platforms": ["x"]}
# Processes are spawned, not forked: each starts as a command does, with its
# own interpreter and its own connection to the file.
SPAWN = multiprocessing.get_context("spawn")


def create_with_key(
    database: str,
    held: Any,
    entered: Any,
    release: Any,
    results: Any,
) -> None:
    """A create with key "k"; if `held`, it waits for `release` in the middle."""
    store = Store(database)

    def run() -> tuple[int, dict[str, Any]]:
        if held:
            entered.set()
            release.wait(30)
        return 201, store.create("alice", HELLO, NOW)

    entered.set()
    try:
        status, body, replayed = store.idempotent(
            "alice", "k", fingerprint("POST /messages", HELLO), run
        )
        results.put((held, status, body["id"], replayed))
    except sqlite3.Error as error:
        results.put((held, "error", f"{type(error).__name__}: {error}", None))
    finally:
        store.close()


def test_a_key_used_by_another_process_mid_request_is_replayed_not_run_again(
    tmp_path: Path,
) -> None:
    database = str(tmp_path / "emulator.sqlite3")
    Store(database).close()
    release, results = SPAWN.Event(), SPAWN.Queue()

    # The first process stops after its look-up of the key found nothing and
    # before its create; the second sends the same key meanwhile.
    first_entered, second_entered = SPAWN.Event(), SPAWN.Event()
    first = SPAWN.Process(
        target=create_with_key,
        args=(database, True, first_entered, release, results),
    )
    first.start()
    assert first_entered.wait(60)
    second = SPAWN.Process(
        target=create_with_key,
        args=(database, False, second_entered, release, results),
    )
    second.start()
    assert second_entered.wait(60)
    time.sleep(1)
    release.set()
    answers = sorted(results.get(timeout=60) for _ in range(2))
    first.join(60)
    second.join(60)

    message_id = f"POST|alice|{int(NOW.timestamp() * 1000)}"
    assert answers == [
        (False, 201, message_id, True),
        (True, 201, message_id, False),
    ]
    store = Store(database)
    try:
        page = store.list("alice", NOW, 100, None, None, None)
    finally:
        store.close()
    assert [message["id"] for message in page["messages"]] == [message_id]


def test_two_applies_at_once_on_one_repository_create_each_message_once(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    (repo / "posts").mkdir(parents=True)
    for number in range(1, 301):
        (repo / "posts" / f"local-{number}.md").write_text(
            f"---\nplatforms: [x]\n---\nlocal {number}\n"
        )
    (repo / ".gitignore").write_text(".nexus-sync/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "Test")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "posts")
    first = run_command(["plan", "--local"], repo)
    assert first.code == 0, first.output
    assert "Plan: 300 to create, 0 to update, 0 to delete" in first.stdout

    # Both read the same plan from the same account and send the same keys.
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "GITHUB_"))
    }
    applies = [
        subprocess.Popen(
            [*nexus_sync_command(), "apply", "--local"],
            cwd=repo,
            env={**environment, "NO_COLOR": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [apply.communicate(timeout=300)[0] for apply in applies]

    for apply, output in zip(applies, outputs, strict=True):
        assert "IntegrityError" not in output
        assert apply.returncode == 0, output
    after = run_command(["plan", "--local"], repo)
    assert after.code == 0, after.output
    assert (
        "Plan: 0 to create, 0 to update, 0 to delete, 300 unchanged, 0 unmanaged"
        in after.stdout
    )
