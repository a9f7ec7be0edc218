"""Fault soak: 1,000 changes applied while the emulator errs, throttles and drops.

The real `nexus-sync apply` against the real emulator server, with every fault
knob on (seeded): 5xx answers, 429 with Retry-After, and requests that commit
and then lose their answer. One apply must bring the account to exactly the
files, with nothing twice, every file parseable, the inventory right and the
plan empty.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from conftest import EmulatorServer, git, make_repo, run_command
from endstate import end_state_problems

from nexus_sync.config import load_config
from nexus_sync.emulator.store import Store
from nexus_sync.inventory import save_inventory
from nexus_sync.plan import Message, desired_block
from nexus_sync.writeback import with_nexus_block

# How many changes of each kind; they add up to 1,000 (set
# NEXUS_SYNC_SOAK_SCALE=0.1 for a quick look at a tenth of that).
SCALE = float(os.environ.get("NEXUS_SYNC_SOAK_SCALE", "1"))
CREATES = int(540 * SCALE)
PATCHES = int(250 * SCALE)
DELETES = int(150 * SCALE)
PUBLISHES = int(60 * SCALE)
UNCHANGED = int(140 * SCALE)
NEW_AND_PUBLISHED = int(10 * SCALE)  # of the creates

FAULTS = {
    "error_rate": 0.05,
    "error_statuses": [502, 503, 504],
    "rate_429": 0.05,
    "retry_after": 0,
    "drop_rate": 0.05,
    "seed": 20261204,
}
PLATFORMS = ["[x]", "[x, bluesky]", "[linkedin]", "[x, linkedin, bluesky]"]


def post_text(number: int, scheduled: bool) -> str:
    lines = ["---", f"title: Soak post {number}"]
    lines.append(f"platforms: {PLATFORMS[number % len(PLATFORMS)]}")
    if scheduled:
        lines.append(
            f"scheduledFor: 2032-{number % 12 + 1:02d}-{number % 28 + 1:02d}"
            f"T{number % 24:02d}:{number % 60:02d}:00Z"
        )
    lines += ["---", f"Soak message {number}, with its own words.", ""]
    return "\n".join(lines)


def existing_world(repo: Path, state_dir: Path, count: int) -> list[Path]:
    """`count` posts already applied: files with ids, messages, an inventory."""
    config = load_config(repo, environ={})
    store = Store(state_dir / "emulator.sqlite3")
    now = dt.datetime.now(dt.UTC)
    inventory = {}
    files = []
    try:
        for number in range(count):
            path = repo / "posts" / f"{number // 100:02d}" / f"old-{number:04d}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            # Every fourth old post is a draft, so that some can be published.
            text = post_text(number, scheduled=number % 4 != 0)
            data = store.create("alice", _body_of(number, text), now)
            block = desired_block(Message.from_api(data), config)
            path.write_text(with_nexus_block(text, block))
            inventory[data["id"]] = path.relative_to(repo).as_posix()
            files.append(path)
    finally:
        store.close()
    save_inventory(repo, inventory)
    return files


def _body_of(number: int, text: str) -> dict:
    body = {
        "content": f"Soak message {number}, with its own words.",
        "title": f"Soak post {number}",
        "platforms": PLATFORMS[number % len(PLATFORMS)].strip("[]").split(", "),
    }
    for line in text.splitlines():
        if line.startswith("scheduledFor: "):
            body["scheduledFor"] = line.removeprefix("scheduledFor: ")
    return body


def edit_world(repo: Path, files: list[Path]) -> None:
    drafts = [path for path in files if "scheduledFor" not in path.read_text()]
    scheduled = [path for path in files if path not in drafts]
    for path in drafts[:PUBLISHES]:
        path.write_text(
            path.read_text().replace("platforms:", "publish: now\nplatforms:")
        )
    for path in scheduled[:DELETES]:
        path.unlink()
    for index, path in enumerate(scheduled[DELETES : DELETES + PATCHES]):
        text = path.read_text()
        if index % 3 == 0:
            text = text.replace("with its own words", "with new words")
        elif index % 3 == 1:
            text = text.replace("title: Soak post", "title: Renamed soak post")
        else:
            text = text.replace(":00Z\n", ":30Z\n", 1)
        path.write_text(text)
    for number in range(10_000, 10_000 + CREATES):
        text = post_text(number, scheduled=number % 2 == 0)
        if number - 10_000 < NEW_AND_PUBLISHED:
            text = post_text(number, scheduled=False).replace(
                "platforms:", "publish: now\nplatforms:"
            )
        path = repo / "posts" / "new" / f"new-{number}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)


def test_one_thousand_changes_under_every_fault(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    state_dir = tmp_path / "emulator-state"
    state_dir.mkdir()
    files = existing_world(repo, state_dir, PUBLISHES + DELETES + PATCHES + UNCHANGED)
    edit_world(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a thousand changes")

    server = EmulatorServer(state_dir)
    try:
        env = server.env("alice")
        plan = run_command(["plan"], repo, env)
        assert plan.code == 0, plan.output
        assert (
            f"Plan: {CREATES} to create, {PATCHES} to update, {PUBLISHES} to publish, "
            f"{DELETES} to delete, {UNCHANGED} unchanged, 0 unmanaged"
        ) in plan.stdout
        server.knobs(**FAULTS)
        server.clear_requests()

        applied = run_command(
            ["apply", "--force", "--parallelism", "8"], repo, env, timeout=600
        )

        server.knobs(error_rate=0, rate_429=0, drop_rate=0)
        counts = server.requests()["counts"]
        assert applied.code == 0, applied.output[-3000:]
        assert end_state_problems(repo, server.messages("alice")) == []
        after = run_command(["plan", "--detailed-exitcode"], repo, env)
        assert after.code == 0, after.output
        assert "No changes." in after.stdout
        # The faults really happened: more requests than changes.
        assert sum(counts.values()) > 1000 * SCALE
    finally:
        server.stop()
