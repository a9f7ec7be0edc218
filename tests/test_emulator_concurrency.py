"""Several processes on one emulator state folder: one SQLite file, one key."""

from __future__ import annotations

import base64
import datetime as dt
import multiprocessing
import os
import queue
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import make_repo, nexus_sync_command, run_command
from cryptography.hazmat.primitives import serialization

from nexus_sync.emulator.store import Store, fingerprint
from nexus_sync.emulator.tokens import KEY_FILE, Signer

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


def first_run(state_dir: str, start: Any, results: Any) -> None:
    """The public key of a Signer made when `start` is set, or the error."""
    start.wait(60)
    try:
        results.put(Signer(Path(state_dir)).jwks()["keys"][0]["n"])
    except ValueError as error:
        results.put(f"{type(error).__name__}: {error}")


def test_processes_that_start_together_on_a_fresh_folder_agree_on_one_key(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / ".nexus-sync"
    start, results = SPAWN.Event(), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=first_run, args=(str(state_dir), start, results))
        for _ in range(6)
    ]
    for process in processes:
        process.start()

    # Spawned interpreters take a while to import; the key is made at the
    # same moment only if all of them are waiting when the start is given.
    time.sleep(3)
    start.set()
    keys = []
    for _ in processes:
        try:
            keys.append(results.get(timeout=60))
        except queue.Empty:
            break
    for process in processes:
        process.join(60)

    on_disk = serialization.load_pem_private_key(
        (state_dir / KEY_FILE).read_bytes(), None
    )
    number = on_disk.public_key().public_numbers().n
    assert len(keys) == 6
    assert set(keys) == {Signer(state_dir).jwks()["keys"][0]["n"]}
    assert int.from_bytes(_base64url(keys[0]), "big") == number
    assert sorted(path.name for path in state_dir.iterdir()) == [KEY_FILE]
    assert (state_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600


def _base64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_two_applies_at_once_on_one_repository_create_each_message_once(
    tmp_path: Path,
) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    for number in range(1, 301):
        (posts / f"local-{number}.md").write_text(
            f"---\nplatforms: [x]\n---\nlocal {number}\n"
        )
    repo = make_repo(tmp_path / "repo", posts=posts)
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
