"""Benchmarks of nexus-sync against the emulator over HTTP; prints a table.

    python benchmarks/run.py                 # the full run recorded in BENCHMARKS.md
    python benchmarks/run.py --sizes 1000 --creates 200   # a quick look
    python benchmarks/run.py --profile       # also where a 10,000-post plan spends time

It measures, for each size n (posts in files, and as many messages remote):
the wall time and peak memory of `nexus-sync plan` when nothing changed (with
an empty post cache, then with the cache a run left; the fastest of three of
each), next to a floor that only reads the same files and parses their frontmatter with
PyYAML's C loader; the API requests of that plan, read from the emulator's
request counts (the floor is one list call per 100 messages); and the time and
peak memory of `nexus-sync apply` creating posts with emulator latency at
several parallelisms. It asserts nothing: the targets are in BENCHMARKS.md.
Everything runs on 127.0.0.1 in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The tests' emulator server and command, so that both drive the same thing.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import EmulatorServer, nexus_sync_command

PLATFORMS = (["x"], ["x", "bluesky"], ["linkedin"], ["x", "linkedin", "bluesky"])


# The peak memory of a process forked from this one would count the pages it
# shares with this (big) process, so each measured command is started by a
# small launcher that reports its child's wall time and peak memory.
LAUNCHER = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
seconds = time.perf_counter() - started
print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def measured(
    command: list[str], cwd: Path, env: dict[str, str]
) -> tuple[float, float, int]:
    """Wall seconds, peak resident memory in MB, and exit status of one process."""
    with tempfile.TemporaryFile() as errors:
        done = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            check=True,
        )
        seconds, peak_kb, code = done.stdout.split()
        if code != "0":
            errors.seek(0)
            sys.stderr.write(errors.read().decode()[-2000:])
    return float(seconds), int(peak_kb) / 1024, int(code)


def post_text(number: int, scheduled: bool) -> str:
    lines = ["---", f"title: Benchmark post {number}"]
    lines.append(f"platforms: [{', '.join(PLATFORMS[number % 4])}]")
    if scheduled:
        lines.append(
            f"scheduledFor: 2033-{number % 12 + 1:02d}-{number % 28 + 1:02d}"
            f"T{number % 24:02d}:{number % 60:02d}:00Z"
        )
    body = (
        f"Benchmark message {number}: a paragraph of ordinary length, with a link "
        f"https://example.com/posts/{number} and a few words more to read."
    )
    lines += ["---", body, ""]
    return "\n".join(lines)


def request_body(number: int, scheduled: bool) -> dict:
    text = post_text(number, scheduled)
    body = {
        "content": text.split("---\n")[2].strip(),
        "title": f"Benchmark post {number}",
        "platforms": PLATFORMS[number % 4],
    }
    for line in text.splitlines():
        if line.startswith("scheduledFor: "):
            body["scheduledFor"] = line.removeprefix("scheduledFor: ")
    return body


def applied_world(root: Path, state_dir: Path, count: int, user: str) -> None:
    """`count` posts as after an apply: files with their block, messages, inventory."""
    from nexus_sync.config import load_config
    from nexus_sync.emulator.store import Store
    from nexus_sync.inventory import save_inventory
    from nexus_sync.plan import Message, desired_block
    from nexus_sync.writeback import with_nexus_block

    config = load_config(root, environ={})
    store = Store(state_dir / "emulator.sqlite3")
    now = dt.datetime.now(dt.UTC)
    inventory = {}
    try:
        for number in range(count):
            scheduled = number % 3 != 0
            path = root / "posts" / f"{number // 500:03d}" / f"post-{number:05d}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = store.create(user, request_body(number, scheduled), now)
            block = desired_block(Message.from_api(data), config)
            path.write_text(with_nexus_block(post_text(number, scheduled), block))
            inventory[data["id"]] = path.relative_to(root).as_posix()
    finally:
        store.close()
    save_inventory(root, inventory)


def new_posts(root: Path, count: int) -> None:
    for number in range(count):
        path = root / "posts" / f"{number // 500:03d}" / f"new-{number:05d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(post_text(number, scheduled=number % 2 == 0))


# The floor: only read every post file and parse its frontmatter with PyYAML's
# C loader, in a process that imports nothing else.
FLOOR = """
import pathlib, sys, yaml
parsed = 0
for path in sorted(pathlib.Path(sys.argv[1], "posts").rglob("*.md")):
    front = path.read_text("utf-8").split("---\\n", 2)[1]
    parsed += len(yaml.load(front, Loader=yaml.CSafeLoader))
print(parsed)
"""


def environment(server: EmulatorServer, user: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    # The post cache of the runs is kept in the scratch folder, not the user's.
    cache = server.state_dir.parent / "user-cache"
    return {**base, **server.env(user), "NO_COLOR": "1", "XDG_CACHE_HOME": str(cache)}


def request_count(server: EmulatorServer) -> int:
    return sum(server.requests()["counts"].values())


def make_repo(path: Path) -> Path:
    (path / "posts").mkdir(parents=True)
    (path / "nexus-sync.yaml").write_text("max_change_fraction: 1\n")
    return path


# Each plan and floor is timed this many times and the fastest kept: on a
# shared machine, the slower runs measure the neighbours.
REPEATS = 3


def noop_plan_rows(scratch: Path, sizes: list[int], profile: bool) -> list[list[str]]:
    rows = []
    for count in sizes:
        root = make_repo(scratch / f"plan-{count}")
        state = scratch / f"state-{count}"
        state.mkdir()
        applied_world(root, state, count, "bench")
        server = EmulatorServer(state)
        try:
            env = environment(server, "bench")
            cache = Path(env["XDG_CACHE_HOME"])
            floor_command = [sys.executable, "-c", FLOOR, str(root)]
            measured(floor_command, root, env)  # warm the page cache
            floor_seconds, floor_memory, _ = min(
                measured(floor_command, root, env) for _ in range(REPEATS)
            )
            plan_command = [*nexus_sync_command(), "plan", "--detailed-exitcode"]
            # Cold: the first plan on a machine (a CI runner), which checks
            # every file; warm: the next one, which reads the post cache.
            for kind in ("cold", "warm"):
                runs = []
                for _ in range(REPEATS):
                    if kind == "cold":
                        shutil.rmtree(cache, ignore_errors=True)
                    server.clear_requests()
                    runs.append(
                        (*measured(plan_command, root, env), request_count(server))
                    )
                seconds, memory, code, requests = min(runs)
                rows.append(
                    [
                        f"no-op plan, {count:,} posts, post cache {kind}",
                        f"{seconds:.2f} s (exit {code})",
                        f"{floor_seconds:.2f} s",
                        f"{seconds / floor_seconds:.1f}x",
                        f"{requests} (floor {math.ceil(count / 100)})",
                        f"{memory:.0f} MB (floor {floor_memory:.0f} MB)",
                    ]
                )
            if profile and count == max(sizes):
                print_profile(root, env, scratch / f"plan-{count}.prof")
        finally:
            server.stop()
    return rows


def print_profile(root: Path, env: dict[str, str], out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "nexus_sync", "plan"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    print(f"\nWhere `nexus-sync plan` of {root.name} spends its time (cProfile):")
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(25)


def apply_rows(
    scratch: Path, creates: int, latency_ms: float, parallelisms: list[int]
) -> list[list[str]]:
    state = scratch / "apply-state"
    state.mkdir()
    server = EmulatorServer(state)
    rows = []
    baseline = None
    try:
        server.knobs(latency_ms=latency_ms)
        for parallelism in parallelisms:
            root = make_repo(scratch / f"apply-{parallelism}")
            new_posts(root, creates)
            env = environment(server, f"bench-p{parallelism}")
            seconds, memory, code = measured(
                [*nexus_sync_command(), "apply", "--parallelism", str(parallelism)],
                root,
                env,
            )
            baseline = baseline or seconds
            rows.append(
                [
                    f"apply {creates:,} creates, {latency_ms:g} ms, parallelism {parallelism}",
                    f"{seconds:.2f} s (exit {code})",
                    f"{creates * latency_ms / 1000 / parallelism:.2f} s",
                    f"{baseline / seconds:.1f}x faster than the first",
                    "",
                    f"{memory:.0f} MB",
                ]
            )
    finally:
        server.stop()
    return rows


def print_table(rows: list[list[str]]) -> None:
    head = ["what", "time", "floor", "ratio", "API requests", "peak memory"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--parallelism", default="1,4,8")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    startup, startup_memory, _ = measured(
        [*nexus_sync_command(), "--version"], Path.cwd(), dict(os.environ)
    )
    scratch = Path(tempfile.mkdtemp(prefix="nexus-sync-bench-"))
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
        rows = noop_plan_rows(scratch, sizes, args.profile)
        parallelisms = [int(value) for value in args.parallelism.split(",")]
        rows += apply_rows(scratch, args.creates, args.latency_ms, parallelisms)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPU(s); "
        f"`nexus-sync --version` alone: {startup:.2f} s, {startup_memory:.0f} MB\n"
    )
    print_table(rows)


if __name__ == "__main__":
    main()
