"""Crash at every step: `nexus-sync apply` killed with SIGKILL after its k-th request.

A repository of 30 posts, first applied in part, then edited so that the next
apply creates, patches, deletes and publishes. For every k from 1 to the
number of requests of a clean run, and in two ways:

- held: request k is committed by the emulator and its answer never arrives;
- delivered: request k is answered and handled, and request k+1 never reaches
  the emulator;

apply is killed, run again to the end, and then the account must hold exactly
the desired messages (none twice), every file must parse, the inventory must
match, and `plan --detailed-exitcode` must exit 0.

The killed runs are the real entry point in forked processes (see
crashserver.py); `test_real_command_killed_midway` does one case with the
installed console script to show that nothing differs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, make_repo, nexus_sync_command
from crashserver import DELIVERED, HELD, CliProcesses, HoldingServer, copy_tree
from endstate import end_state_problems

APPLY = ["apply", "--force", "--parallelism", "1"]
DELETED = 4
PATCHED = 8
CREATED = 6
PUBLISHED = 2  # one new post and one existing draft carry `publish: now`
FIRST_APPLIED = 28

# Held answers are tried at every k. Delivered answers are tried at every odd k
# to keep the default run within its time budget; NEXUS_SYNC_CRASH_FULL=1
# tries every k for both.
FULL = os.environ.get("NEXUS_SYNC_CRASH_FULL") == "1"


def post_text(number: int, *, scheduled: bool, title: bool = True) -> str:
    platforms = ["[x]", "[x, bluesky]", "[linkedin]", "[x, linkedin, bluesky]"]
    lines = ["---"]
    if title:
        lines.append(f"title: Post number {number}")
    lines.append(f"platforms: {platforms[number % len(platforms)]}")
    if scheduled:
        lines.append(
            f"scheduledFor: 2031-{number % 12 + 1:02d}-{number % 27 + 1:02d}"
            "T09:30:00+01:00"
        )
    lines += ["---", f"Post {number}: notes from the calendar, item {number * 7}.", ""]
    return "\n".join(lines)


def build_world(root: Path, server: HoldingServer, cli: CliProcesses) -> None:
    """A repository applied once, then edited; and the emulator state to match."""
    repo = make_repo(root / "repo", posts=None)
    posts = repo / "posts"
    for number in range(FIRST_APPLIED):
        folder = posts / ("2031" if number % 3 == 0 else "")
        folder.mkdir(exist_ok=True)
        (folder / f"post-{number:02d}.md").write_text(
            post_text(number, scheduled=number % 2 == 0, title=number % 5 != 0)
        )
    server.use(root / "state")
    first = cli.run(APPLY, repo, server.env())
    assert first.code == 0, first.output
    server.close_emulator()

    files = sorted(posts.rglob("*.md"))
    for path in files[:DELETED]:
        path.unlink()
    edits = files[DELETED : DELETED + PATCHED]
    for index, path in enumerate(edits):
        text = path.read_text()
        if index < 4:
            text = text.replace("notes from the calendar", "notes, edited")
        elif index < 6:
            if "title: " in text:
                text = text.replace("title: Post number", "title: Renamed post", 1)
            else:
                text = text.replace("platforms:", "title: A new title\nplatforms:", 1)
        elif "scheduledFor" in text:
            text = text.replace("T09:30:00+01:00", "T18:45:00+01:00")
        else:
            text = text.replace(
                "platforms:", "scheduledFor: 2032-02-02T08:00:00Z\nplatforms:", 1
            )
        path.write_text(text)
    draft = next(
        path
        for path in files[DELETED + PATCHED :]
        if "scheduledFor" not in path.read_text()
    )
    draft.write_text(
        draft.read_text().replace("platforms:", "publish: now\nplatforms:", 1)
    )
    for number in range(100, 100 + CREATED):
        text = post_text(number, scheduled=number % 2 == 1)
        if number == 100:
            text = text.replace("platforms:", "publish: now\nplatforms:", 1)
        (posts / f"new-{number}.md").write_text(text)
    assert len(list(posts.rglob("*.md"))) == FIRST_APPLIED - DELETED + CREATED == 30
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "edits")


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = HoldingServer()
        self.cli = CliProcesses(root / "logs")
        (root / "logs").mkdir()
        build_world(root / "base", self.server, self.cli)
        self.cases = 0

    def fresh_case(self) -> tuple[Path, dict[str, str]]:
        """A copy of the edited repository and of the emulator state behind it."""
        self.cases += 1
        case = self.root / f"case-{self.cases}"
        repo = copy_tree(self.root / "base" / "repo", case / "repo")
        state = copy_tree(self.root / "base" / "state", case / "state")
        self.server.use(state)
        return repo, self.server.env()

    def finish_and_check(self, repo: Path, env: dict[str, str]) -> list[str]:
        """Apply to the end, then every promise; the broken ones, as text."""
        self.server.disarm_counting()
        problems = []
        rerun = self.cli.run(APPLY, repo, env)
        if rerun.code != 0:
            problems.append(
                f"apply after the crash exited {rerun.code}:\n{rerun.output}"
            )
        problems += end_state_problems(repo, self.server.messages())
        plan = self.cli.run(["plan", "--detailed-exitcode"], repo, env)
        if plan.code != 0:
            problems.append(f"plan after the rerun exited {plan.code}:\n{plan.output}")
        return problems


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    instance = World(tmp_path_factory.mktemp("crash"))
    yield instance
    instance.server.stop()


@pytest.fixture(scope="module")
def clean_run(world: World) -> list[str]:
    """The endpoints a clean apply of the edited repository calls, in order."""
    repo, env = world.fresh_case()
    world.server.disarm_counting()
    result = world.cli.run(APPLY, repo, env)
    assert result.code == 0, result.output
    endpoints = list(world.server.endpoints)
    assert end_state_problems(repo, world.server.messages()) == []
    return endpoints


def test_clean_run_sends_one_request_per_change(clean_run: list[str]) -> None:
    kinds = Counter(
        f"{endpoint.split()[0]} {'publish' if endpoint.endswith('/publish') else ''}".strip()
        for endpoint in clean_run
    )
    assert kinds == {
        "GET": 1,
        "DELETE": DELETED,
        "PATCH": PATCHED,
        "POST": CREATED,
        "POST publish": PUBLISHED,
    }
    assert clean_run[0] == "GET /messages"
    assert all(e.startswith("DELETE") for e in clean_run[1 : 1 + DELETED])


@pytest.mark.parametrize("mode", [HELD, DELIVERED])
def test_crash_after_every_request(
    world: World, clean_run: list[str], mode: str
) -> None:
    broken: dict[str, list[str]] = {}
    stride = 1 if FULL or mode == HELD else 2
    for k in range(1, len(clean_run) + 1, stride):
        repo, env = world.fresh_case()
        reached = world.server.arm(k, mode)
        process, _ = world.cli.start(APPLY, repo, env)
        deadline = time.monotonic() + 60
        while not reached.wait(0.01) and process.is_alive():
            assert time.monotonic() < deadline, (
                f"k={k}: apply neither stopped nor ended"
            )
        process.kill()
        process.join()
        world.server.release()

        problems = world.finish_and_check(repo, env)
        if problems:
            broken[f"k={k} ({clean_run[k - 1]}, {mode})"] = problems

    assert broken == {}


def test_real_command_killed_midway(world: World, clean_run: list[str]) -> None:
    """One held case with the installed console script, killed by SIGKILL."""
    repo, env = world.fresh_case()
    k = len(clean_run) // 2
    reached = world.server.arm(k, HELD)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("NEXUS_")
    }
    process = subprocess.Popen(
        [*nexus_sync_command(), *APPLY],
        cwd=repo,
        env={**environment, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert reached.wait(60), "apply never reached the k-th request"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        world.server.release()

    assert process.returncode == -signal.SIGKILL
    assert world.finish_and_check(repo, env) == []
