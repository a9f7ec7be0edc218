"""The apply engine: order, concurrency, stopping, and creates that never double.

In-process tests drive the engine through a scripted network; end-to-end tests
run the real command against the emulator over HTTP with its fault knobs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
from conftest import (
    CognitoPool,
    EmulatorServer,
    make_repo,
    nexus_sync_command,
    run_command,
)
from network import scripted_client

from nexus_sync.apply import Result, apply_plan, idempotency_key
from nexus_sync.config import load_config
from nexus_sync.inventory import load_inventory
from nexus_sync.posts import load_post
from nexus_sync.session import plan_for

ID = re.compile(r"POST\|\w+\|\d+")


def write_posts(repo: Path, bodies: dict[str, str]) -> None:
    for name, text in bodies.items():
        (repo / "posts" / name).write_text(text)


def draft(content: str, platforms: str = "[x]") -> str:
    return f"---\nplatforms: {platforms}\n---\n{content}\n"


def file_id(repo: Path, name: str) -> str | None:
    found = ID.search((repo / "posts" / name).read_text())
    return found.group() if found else None


def stored(emulator) -> list[dict]:
    return emulator.store.list("alice", emulator.now(), 100, None, None, None)[
        "messages"
    ]


def apply_in_process(repo: Path, client, parallelism: int = 1) -> Result:
    config = load_config(repo, environ={})

    async def scenario() -> Result:
        plan, inventory = await plan_for(config, client)
        return await apply_plan(plan, client, config, inventory, parallelism)

    return asyncio.run(scenario())


# -- in process -------------------------------------------------------------


def test_a_lost_create_is_found_and_adopted_even_if_keys_are_ignored(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    write_posts(repo, {f"p{i}.md": draft(f"Post {i}") for i in (1, 2, 3)})
    client, network, emulator = scripted_client(tmp_path, honour_keys=False)
    network.script("POST /messages", "ok", "drop", "ok")

    result = apply_in_process(repo, client)

    messages = stored(emulator)
    assert sorted(m["content"] for m in messages) == ["Post 1", "Post 2", "Post 3"]
    assert network.count("POST /messages") == 3
    # One listing for the plan, one to look for the message of the lost create.
    assert network.count("GET /messages") == 2
    by_content = {m["content"]: m["id"] for m in messages}
    assert [(c.path, what) for c, what in result.done] == [
        ("posts/p1.md", f"created {by_content['Post 1']}"),
        ("posts/p2.md", f"adopted {by_content['Post 2']}"),
        ("posts/p3.md", f"created {by_content['Post 3']}"),
    ]
    assert file_id(repo, "p2.md") == by_content["Post 2"]
    assert load_inventory(repo) == {
        v: f"posts/p{k[-1]}.md" for k, v in by_content.items()
    }


def test_a_file_that_cannot_take_its_block_still_has_its_message_recorded(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    write_posts(repo, {"p1.md": draft("Post 1")})
    client, _, emulator = scripted_client(tmp_path)
    config = load_config(repo, environ={})

    async def scenario() -> Result:
        plan, inventory = await plan_for(config, client)
        # Rewritten between the plan and the write-back, in a layout the
        # write-back cannot extend.
        (repo / "posts" / "p1.md").write_text("---\n{platforms: [x]}\n---\nPost 1\n")
        return await apply_plan(plan, client, config, inventory, 1)

    result = asyncio.run(scenario())

    (message,) = stored(emulator)
    assert not result.ok
    assert load_inventory(repo) == {message["id"]: "posts/p1.md"}
    (repo / "posts" / "p1.md").write_text(draft("Post 1"))
    again = apply_in_process(repo, client)
    assert again.ok
    assert [m["id"] for m in stored(emulator)] == [message["id"]]
    assert file_id(repo, "p1.md") == message["id"]


def test_a_create_answered_503_is_looked_for_then_sent_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    write_posts(repo, {"p1.md": draft("Post 1")})
    client, network, emulator = scripted_client(tmp_path, honour_keys=False)
    network.script("POST /messages", "503")

    result = apply_in_process(repo, client)

    assert result.ok
    assert [m["content"] for m in stored(emulator)] == ["Post 1"]
    assert [s.endpoint for s in network.sent] == [
        "GET /messages",
        "POST /messages",
        "GET /messages",
        "POST /messages",
    ]


def test_twin_posts_whose_creates_are_lost_get_one_message_each(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    write_posts(repo, {"a.md": draft("Same words"), "b.md": draft("Same words")})
    client, network, emulator = scripted_client(tmp_path, honour_keys=False)
    network.script("POST /messages", "drop", "drop")

    result = apply_in_process(repo, client, parallelism=4)

    assert result.ok
    ids = sorted(m["id"] for m in stored(emulator))
    assert len(ids) == 2
    assert sorted([file_id(repo, "a.md"), file_id(repo, "b.md")]) == ids
    assert sorted(load_inventory(repo).values()) == ["posts/a.md", "posts/b.md"]


def test_a_create_that_never_gets_an_answer_gives_up_without_a_duplicate(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    write_posts(repo, {"p1.md": draft("Post 1")})
    client, network, emulator = scripted_client(tmp_path)
    network.script("POST /messages", *["503"] * 6)

    result = apply_in_process(repo, client)

    assert [(c.path, text) for c, text in result.failed] == [
        (
            "posts/p1.md",
            "the create of posts/p1.md went unanswered 6 times and no such message "
            "is on the account; run apply again (a message that appears later is "
            "adopted, not created twice)",
        )
    ]
    assert stored(emulator) == []
    assert network.count("POST /messages") == 6


def test_deletes_run_before_everything_else(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    write_posts(repo, {"old.md": draft("Old"), "keep.md": draft("Keep")})
    client, network, emulator = scripted_client(tmp_path)
    assert apply_in_process(repo, client).ok
    (repo / "posts" / "old.md").unlink()
    write_posts(repo, {"a-new.md": draft("New")})
    network.sent.clear()

    result = apply_in_process(repo, client, parallelism=4)

    assert result.ok
    assert [s.endpoint for s in network.sent] == [
        "GET /messages",
        "DELETE /messages/{id}",
        "POST /messages",
    ]
    assert sorted(m["content"] for m in stored(emulator)) == ["Keep", "New"]


def test_the_first_failure_starts_nothing_new_and_lets_in_flight_work_finish(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    write_posts(repo, {f"p{i}.md": draft(f"Post {i}") for i in range(1, 7)})
    write_posts(repo, {"p2.md": f"---\nplatforms: [x]\nscheduledFor: {soon}\n---\nP\n"})
    # Tomorrow here is the past on the emulator's clock, two days ahead.
    client, _, _ = scripted_client(tmp_path, clock_offset=2 * 86400)

    result = apply_in_process(repo, client, parallelism=2)

    assert [c.path for c, _ in result.done] == ["posts/p1.md"]
    assert [(c.path, text) for c, text in result.failed] == [
        (
            "posts/p2.md",
            "Nexus Share answered 422: Validation Error: scheduledFor must be in "
            "the future",
        )
    ]
    assert [c.path for c in result.not_started] == [
        f"posts/p{i}.md" for i in range(3, 7)
    ]
    assert list(load_inventory(repo).values()) == ["posts/p1.md"]


def test_the_idempotency_key_comes_from_the_post_and_its_content(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", posts=None)
    write_posts(repo, {"p1.md": draft("Post 1"), "p2.md": draft("Post 1 edited")})
    config = load_config(repo, environ={})
    first = load_post(repo / "posts" / "p1.md", config)
    again = load_post(repo / "posts" / "p1.md", config)
    edited = load_post(repo / "posts" / "p2.md", config)

    assert idempotency_key("create", first) == idempotency_key("create", again)
    assert idempotency_key("create", first) != idempotency_key("create", edited)
    assert idempotency_key("create", first) != idempotency_key(
        "create", first, "POST|alice|1"
    )
    assert idempotency_key("create", first) != idempotency_key("publish", first)

    client, network, _ = scripted_client(tmp_path)
    assert apply_in_process(repo, client).ok
    sent = [s.idempotency_key for s in network.sent if s.endpoint == "POST /messages"]
    assert sent == [idempotency_key("create", first), idempotency_key("create", edited)]


# -- end to end: the real command against the emulator over HTTP ----------


def test_300_posts_through_drops_503s_and_429s_end_as_exactly_300_messages(
    empty_repo: Path, emulator: EmulatorServer
) -> None:
    names = [f"post-{i:03}.md" for i in range(1, 301)]
    write_posts(empty_repo, {name: draft(f"Post {name[5:8]}") for name in names})
    env = emulator.env("alice")
    emulator.knobs(
        drop_rate=0.2,
        drop_endpoints=["POST /messages"],
        error_rate=0.1,
        error_statuses=[503],
        rate_429=0.1,
        retry_after=0,
        seed=20261204,
    )

    applied = run_command(["apply", "--parallelism", "8"], empty_repo, env, timeout=300)
    second = run_command(["plan", "--detailed-exitcode"], empty_repo, env)

    log = emulator.requests()["log"]
    emulator.knobs(drop_rate=0, error_rate=0, rate_429=0)
    assert applied.code == 0, applied.output[-3000:]
    assert "Apply: 300 done, 0 failed, 0 not started." in applied.stdout
    messages = emulator.messages("alice")
    assert sorted(m["content"] for m in messages) == [
        f"Post {i:03}" for i in range(1, 301)
    ]
    ids = {m["content"]: m["id"] for m in messages}
    assert {name: file_id(empty_repo, name) for name in names} == {
        name: ids[f"Post {name[5:8]}"] for name in names
    }
    assert load_inventory(empty_repo) == {
        ids[f"Post {name[5:8]}"]: f"posts/{name}" for name in names
    }
    assert second.code == 0, second.output[-3000:]
    assert "No changes." in second.stdout
    # The faults did happen: creates committed without an answer, 503s, 429s.
    creates = [e for e in log if e["endpoint"] == "POST /messages"]
    assert sum(e["dropped"] for e in creates) >= 30
    assert sum(e["status"] == 503 for e in log) >= 20
    assert sum(e["status"] == 429 for e in log) >= 20


def test_apply_waits_as_long_as_retry_after_says(
    empty_repo: Path, emulator: EmulatorServer
) -> None:
    write_posts(empty_repo, {"a.md": draft("First"), "b.md": draft("Second")})
    env = emulator.env("alice")
    emulator.knobs(throttle_every=2, retry_after=2)

    applied = run_command(["apply", "--parallelism", "1"], empty_repo, env)

    log = emulator.requests()["log"]
    emulator.knobs(throttle_every=0)
    assert applied.code == 0, applied.output
    assert sorted(m["content"] for m in emulator.messages("alice")) == [
        "First",
        "Second",
    ]
    assert [(e["endpoint"], e["status"]) for e in log] == [
        ("GET /messages", 200),
        ("POST /messages", 429),
        ("POST /messages", 201),
        ("POST /messages", 429),
        ("POST /messages", 201),
    ]
    for throttled, following in itertools.pairwise(log):
        if throttled["status"] == 429:
            assert following["time"] - throttled["time"] >= 2.0


def test_after_a_429_no_worker_sends_until_retry_after_has_passed(
    empty_repo: Path, emulator: EmulatorServer
) -> None:
    write_posts(empty_repo, {f"p{n:02d}.md": draft(f"Post {n}") for n in range(24)})
    env = emulator.env("alice")
    # Each request takes 100 ms, so four workers that ignored a 429 would keep
    # sending while the throttled one waits its second.
    emulator.knobs(throttle_every=6, retry_after=1, latency_ms=100)

    applied = run_command(["apply", "--parallelism", "4"], empty_repo, env)

    log = emulator.requests()["log"]
    emulator.knobs(throttle_every=0, latency_ms=0)
    assert applied.code == 0, applied.output
    assert len(emulator.messages("alice")) == 24
    throttled = [e["time"] for e in log if e["status"] == 429]
    assert len(throttled) >= 2
    # Requests already on their way when the 429 was answered may arrive just
    # after it; none may start later, until Retry-After has passed.
    early = [
        (round(e["time"] - t, 3), e["endpoint"])
        for t in throttled
        for e in log
        if t + 0.4 < e["time"] < t + 1.0
    ]
    assert early == []


def test_a_publish_that_ends_failed_stops_the_run_and_a_rerun_finishes_it(
    empty_repo: Path, emulator: EmulatorServer
) -> None:
    write_posts(
        empty_repo,
        {
            name: f"---\nplatforms: [x]\npublish: now\n---\nPost {name[0]}\n"
            for name in ("a.md", "b.md", "c.md")
        },
    )
    emulator.knobs(publish_failure_rate=1.0)
    env = emulator.env("alice")

    applied = run_command(["apply", "--parallelism", "1"], empty_repo, env)

    assert applied.code == 1, applied.output
    failed_id = file_id(empty_repo, "a.md")
    failure = (
        f"posts/a.md: FAILED: created {failed_id}, but its publish FAILED: x: the "
        "platform rejected the post (emulated failure); fix the post, then edit "
        "it to send it again (a changed post with `publish: now` goes out again)"
    )
    assert applied.stderr.splitlines()[-3:] == [
        failure,
        "posts/b.md: not started (create)",
        "posts/c.md: not started (create)",
    ]
    assert applied.stdout.endswith("\nApply: 0 done, 1 failed, 2 not started.\n")
    assert load_inventory(empty_repo) == {failed_id: "posts/a.md"}

    emulator.knobs(publish_failure_rate=0.0)
    rerun = run_command(["apply", "--parallelism", "1"], empty_repo, env)

    assert rerun.code == 0, rerun.output
    b_id, c_id = file_id(empty_repo, "b.md"), file_id(empty_repo, "c.md")
    assert rerun.stdout.endswith(
        f"posts/b.md: created {b_id}, published\n"
        f"posts/c.md: created {c_id}, published\n"
        "Apply: 2 done, 0 failed, 0 not started.\n"
    )
    statuses = {m["id"]: m["status"] for m in emulator.messages("alice")}
    assert statuses == {failed_id: "FAILED", b_id: "PUBLISHED", c_id: "PUBLISHED"}


def test_a_422_on_post_5_of_20_stops_the_run_and_a_rerun_finishes_it(
    empty_repo: Path, emulator: EmulatorServer
) -> None:
    names = [f"post-{i:02}.md" for i in range(1, 21)]
    write_posts(empty_repo, {name: draft(f"Post {name[5:7]}") for name in names})
    # Tomorrow here is the past on the emulator's clock, two days ahead.
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    fifth = empty_repo / "posts" / "post-05.md"
    fifth.write_text(f"---\nplatforms: [x]\nscheduledFor: {tomorrow}\n---\nPost 05\n")
    # Issued before the clock moves: the emulator checks `iat` on real time.
    token = emulator.token("alice", ttl=3 * 86400)
    httpx.post(f"{emulator.url}/_emulator/clock", json={"advance": 2 * 86400})
    env = {"NEXUS_API_URL": emulator.url, "NEXUS_TOKEN": token}

    applied = run_command(["apply", "--parallelism", "1"], empty_repo, env)

    assert applied.code == 1
    created = re.findall(
        r"^posts/(post-\d\d\.md): created POST\|alice\|\d+$",
        applied.stdout,
        re.MULTILINE,
    )
    assert created == names[:4]
    assert (
        "posts/post-05.md: FAILED: Nexus Share answered 422: Validation Error: "
        "scheduledFor must be in the future\n" in applied.stderr
    )
    not_started = re.findall(
        r"^posts/(post-\d\d\.md): not started \(create\)$", applied.stderr, re.MULTILINE
    )
    assert not_started == names[5:]
    assert "Apply: 4 done, 1 failed, 15 not started." in applied.stdout
    assert [name for name in names if file_id(empty_repo, name)] == names[:4]
    assert sorted(load_inventory(empty_repo).values()) == [
        f"posts/{name}" for name in names[:4]
    ]
    assert "Traceback" not in applied.output
    assert "Applying" not in applied.stderr  # no progress bar off a terminal

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    fifth.write_text(fifth.read_text().replace(tomorrow, later))
    rerun = run_command(["apply", "--parallelism", "1"], empty_repo, env)

    assert rerun.code == 0, rerun.output
    assert "Apply: 16 done, 0 failed, 0 not started." in rerun.stdout
    listed = httpx.get(
        f"{emulator.url}/messages",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["messages"]
    assert sorted(m["content"] for m in listed) == [
        f"Post {i:02}" for i in range(1, 21)
    ]
    assert all(file_id(empty_repo, name) for name in names)
    assert run_command(["plan", "--detailed-exitcode"], empty_repo, env).code == 0


def test_a_401_in_the_middle_of_an_apply_is_followed_by_one_renewal(
    empty_repo: Path, cognito: CognitoPool, tmp_path: Path
) -> None:
    names = [f"post-{i:02}.md" for i in range(1, 21)]
    write_posts(empty_repo, {name: draft(f"Post {name[5:7]}") for name in names})
    server = EmulatorServer(
        tmp_path / "emulator-state",
        ["--trust-jwks", cognito.jwks_url, "--latency-ms", "250"],
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "GITHUB_"))
    }
    env.update(cognito.env(), NEXUS_API_URL=server.url, NO_COLOR="1")
    try:
        process = subprocess.Popen(
            [*nexus_sync_command(), "-v", "apply", "--parallelism", "1"],
            cwd=empty_repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        clock = f"{server.url}/_emulator/clock"

        # Once the apply has run for a few seconds, move the emulator's clock
        # past the first token's expiry (the login came before the first
        # request); a token issued now is valid there for a few seconds more.
        first = _wait_for_log(server, lambda log: len(log) >= 3)[0]["time"]
        while time.time() < first + 3.5:
            time.sleep(0.05)
        expired = dt.datetime.fromtimestamp(first + 3601, dt.UTC)
        httpx.post(clock, json={"set": expired.isoformat()})

        # After the 401 and its renewal, the clock goes back to real time, so
        # that the fresh token outlives the rest of the apply.
        _wait_for_log(server, lambda log: any(e["status"] == 401 for e in log))
        httpx.post(clock, json={"set": dt.datetime.now(dt.UTC).isoformat()})
        stdout, stderr = process.communicate(timeout=120)
        headers = {"Authorization": f"Bearer {cognito.id_token()}"}
        listed = httpx.get(
            f"{server.url}/messages", params={"limit": 100}, headers=headers
        ).json()["messages"]
    finally:
        if process.poll() is None:
            process.kill()
        log = server.requests()["log"]
        server.stop()

    assert process.returncode == 0, stderr
    assert "Apply: 20 done, 0 failed, 0 not started." in stdout
    assert [e["status"] for e in log].count(401) == 1
    assert stderr.count("Nexus Share refused the id token (401); renewing it once") == 1
    assert stderr.count("renewed the Cognito id token of alice") == 1
    assert stderr.count("logged in to Cognito as alice") == 1
    assert sorted(m["content"] for m in listed) == [
        f"Post {i:02}" for i in range(1, 21)
    ]
    assert sorted(file_id(empty_repo, name) for name in names) == sorted(
        m["id"] for m in listed
    )


def _wait_for_log(server: EmulatorServer, condition) -> list[dict]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = server.requests()["log"]
        if condition(log):
            return log
        time.sleep(0.02)
    raise AssertionError("the emulator never saw the expected requests")


def test_a_progress_bar_shows_on_a_terminal(repo: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    process = subprocess.Popen(
        [*nexus_sync_command(), "apply", "--local"],
        cwd=repo,
        env={**env, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    stdout = process.stdout.read()
    process.wait(timeout=60)

    assert process.returncode == 0, seen
    assert "Apply: 7 done, 0 failed, 0 not started." in stdout
    assert re.search(rb"Applying\s+\[#+\]\s+100%", seen), seen


def test_a_failed_publish_is_tried_anew_even_with_content_tried_before(
    empty_repo: Path, emulator: EmulatorServer
) -> None:
    env = emulator.env("alice")
    post = "---\nplatforms: [x]\npublish: now\n---\n{}\n"
    path = empty_repo / "posts" / "a.md"
    emulator.knobs(publish_failure_rate=1.0)
    path.write_text(post.format("version one"))
    assert run_command(["apply"], empty_repo, env).code == 1
    path.write_text(path.read_text().replace("version one", "version two"))
    assert run_command(["apply"], empty_repo, env).code == 1
    emulator.knobs(publish_failure_rate=0.0)

    # Back to the words of the first attempt: a new attempt, not its replay.
    path.write_text(path.read_text().replace("version two", "version one"))
    applied = run_command(["apply"], empty_repo, env)

    assert applied.code == 0, applied.output
    (message,) = emulator.messages("alice")
    assert (message["status"], message["content"]) == ("PUBLISHED", "version one")
    assert run_command(["plan", "--detailed-exitcode"], empty_repo, env).code == 0
