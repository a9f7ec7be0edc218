"""The reconciler's rules (DESIGN section 3), each through the real command.

Every test runs `nexus-sync` as a subprocess in a real git repository against
the emulator over HTTP, and checks the files, the inventory and the account.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Completed, EmulatorServer, make_repo, run_command

INVENTORY = "nexus-sync.state.yaml"
FUTURE = "2030-06-01T10:00:00Z"


class Account:
    """One repository and alice's account on the emulator."""

    def __init__(self, repo: Path, emulator: EmulatorServer) -> None:
        self.repo = repo
        self.emulator = emulator

    def run(self, *args: str) -> Completed:
        return run_command(list(args), self.repo, self.emulator.env("alice"))

    def write(self, name: str, front: str, body: str) -> Path:
        path = self.repo / "posts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"---\n{front}---\n{body}\n", encoding="utf-8")
        return path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.emulator.token('alice')}"}
        response = httpx.request(
            method, self.emulator.url + path, headers=headers, **kwargs
        )
        response.raise_for_status()
        return response

    def create_remote(self, **body: Any) -> dict[str, Any]:
        """A message made elsewhere (the web app), not by nexus-sync."""
        return self.api("POST", "/messages", json=body).json()

    def messages(self) -> dict[str, dict[str, Any]]:
        return {m["id"]: m for m in self.emulator.messages("alice")}

    def inventory(self) -> dict[str, str]:
        path = self.repo / INVENTORY
        return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}

    def block(self, name: str) -> dict[str, Any]:
        text = (self.repo / "posts" / name).read_text(encoding="utf-8")
        front = yaml.safe_load(text.split("---\n")[1])
        return front.get("nexus", {})

    def sent(self) -> dict[str, int]:
        """Requests since the last call, by endpoint, without the listing."""
        counts = self.emulator.requests()["counts"]
        self.emulator.clear_requests()
        return {k: v for k, v in counts.items() if k != "GET /messages"}


@pytest.fixture
def account(tmp_path: Path, emulator: EmulatorServer) -> Account:
    return Account(make_repo(tmp_path / "repo", posts=None), emulator)


def applied(account: Account) -> Completed:
    result = account.run("apply")
    assert result.code == 0, result.output
    return result


def assert_plan_empty(account: Account) -> None:
    result = account.run("plan", "--detailed-exitcode")
    assert result.code == 0, result.output
    assert "No changes." in result.stdout


# -- local new file --------------------------------------------------------


def test_new_file_is_created_then_plan_is_empty(account: Account) -> None:
    account.write("a.md", f"platforms: [x]\nscheduledFor: {FUTURE}\n", "Hello")

    result = applied(account)

    message_id = account.block("a.md")["id"]
    assert f"posts/a.md: created {message_id}" in result.stdout
    assert account.messages()[message_id]["content"] == "Hello"
    assert account.messages()[message_id]["status"] == "SCHEDULED"
    assert account.inventory() == {message_id: "posts/a.md"}
    assert_plan_empty(account)


def test_publish_now_creates_then_publishes_and_writes_back_the_ids(
    account: Account,
) -> None:
    account.write("now.md", "platforms: [x, linkedin]\npublish: now\n", "Out now")

    plan = account.run("plan")
    assert "+ create    posts/now.md, then publish" in plan.stdout

    applied(account)
    block = account.block("now.md")
    message = account.messages()[block["id"]]
    assert message["status"] == "PUBLISHED"
    assert block["status"] == "PUBLISHED"
    assert block["externalIds"] == message["externalIds"]
    x_id = message["externalIds"]["x"]
    assert block["urls"] == {
        "x": f"https://x.com/i/web/status/{x_id}",
        "linkedin": "https://www.linkedin.com/feed/update/"
        + message["externalIds"]["linkedin"],
    }
    account.sent()
    assert_plan_empty(account)
    assert account.sent() == {}


def test_new_file_adopts_an_identical_unmanaged_message_without_a_call(
    account: Account,
) -> None:
    twin = account.create_remote(
        content="Same words",
        platforms=["bluesky", "X"],
        scheduledFor=FUTURE,
        title="Twin",
    )
    account.write(
        "twin.md",
        f"title: Twin\nplatforms: [x, bluesky]\nscheduledFor: {FUTURE}\n",
        "\nSame words\n",
    )
    account.sent()

    plan = account.run("plan")
    assert f"= adopt     posts/twin.md  ({twin['id']})" in plan.stdout
    assert "Plan: 0 to create, 0 to update, 0 to delete, 1 to adopt" in plan.stdout

    applied(account)
    assert account.sent() == {}
    assert account.block("twin.md") == {"id": twin["id"], "status": "SCHEDULED"}
    assert account.inventory() == {twin["id"]: "posts/twin.md"}
    assert len(account.messages()) == 1
    assert_plan_empty(account)


def test_published_message_is_adopted_only_inside_the_adoption_window(
    account: Account,
) -> None:
    message = account.create_remote(content="Went out", platforms=["x"])
    account.api("POST", f"/messages/{message['id'].replace('|', '%7C')}/publish")
    account.write("out.md", "platforms: [x]\n", "Went out")

    assert "1 to adopt" in account.run("plan").stdout

    (account.repo / "nexus-sync.yaml").write_text("adoption_window_days: 0\n")
    plan = account.run("plan")
    assert "1 to create" in plan.stdout
    assert "0 to adopt" not in plan.stdout and "to adopt" not in plan.stdout


# -- local file with its id ------------------------------------------------


def test_changed_fields_are_patched_and_only_those(account: Account) -> None:
    path = account.write(
        "p.md", f"title: Old title\nplatforms: [x]\nscheduledFor: {FUTURE}\n", "Body"
    )
    applied(account)
    message_id = account.block("p.md")["id"]
    path.write_text(path.read_text().replace("Old title", "New title"))
    account.sent()

    plan = account.run("plan", "--format", "json")
    change = __import__("json").loads(plan.stdout)["changes"][0]
    assert change["action"] == "update"
    assert change["fields"] == [
        {"name": "title", "old": "Old title", "new": "New title"}
    ]

    applied(account)
    assert account.sent() == {"PATCH /messages/{id}": 1}
    message = account.messages()[message_id]
    assert (message["title"], message["content"]) == ("New title", "Body")
    assert_plan_empty(account)


def test_failed_message_shows_its_error_and_an_edit_patches_it(
    account: Account,
) -> None:
    account.emulator.knobs(publish_failure_rate=1.0)
    path = account.write("f.md", "platforms: [bluesky]\npublish: now\n", "Fails")
    failed = account.run("apply")
    account.emulator.knobs(publish_failure_rate=0.0)
    block = account.block("f.md")
    assert block["status"] == "FAILED"
    assert block["error"] == account.messages()[block["id"]]["error"]
    assert account.inventory() == {block["id"]: "posts/f.md"}

    # The message was made but did not go out: the user has to act.
    assert failed.code == 1, failed.output
    assert failed.stderr.splitlines()[-1] == (
        f"posts/f.md: FAILED: created {block['id']}, but its publish FAILED: "
        "bluesky: the platform rejected the post (emulated failure); fix the "
        "post, then edit it to send it again (a changed post with `publish: now` "
        "goes out again)"
    )
    assert failed.stdout.endswith("\nApply: 0 done, 1 failed, 0 not started.\n")
    assert "published" not in failed.output

    plan = account.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output
    assert f"Warning: posts/f.md: message {block['id']} FAILED: " in plan.stdout

    path.write_text(path.read_text().replace("Fails", "Fixed"))
    applied(account)
    message = account.messages()[block["id"]]
    assert message["content"] == "Fixed"
    assert message["status"] == "PUBLISHED"
    assert account.block("f.md")["status"] == "PUBLISHED"
    assert_plan_empty(account)


def test_published_post_gets_its_ids_written_back_and_an_edit_only_warns(
    account: Account,
) -> None:
    path = account.write("s.md", f"platforms: [x]\nscheduledFor: {FUTURE}\n", "Soon")
    applied(account)
    message_id = account.block("s.md")["id"]
    account.emulator.clock(set="2030-06-01T10:05:00+00:00")
    account.sent()

    plan = account.run("plan")
    assert f"= writeback posts/s.md  ({message_id})" in plan.stdout
    assert "nexus.status: SCHEDULED -> PUBLISHED" in plan.stdout
    applied(account)
    assert account.sent() == {}
    message = account.messages()[message_id]
    assert account.block("s.md") == {
        "id": message_id,
        "status": "PUBLISHED",
        "publishedAt": message["publishedAt"],
        "externalIds": message["externalIds"],
        "urls": {"x": f"https://x.com/i/web/status/{message['externalIds']['x']}"},
    }

    path.write_text(path.read_text().replace("Soon", "Soon, edited"))
    plan = account.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output
    assert (
        f"Warning: posts/s.md: content edited after message {message_id} was "
        "published; a published post cannot change, so nothing is sent"
    ) in plan.stdout
    assert applied(account) and account.sent() == {}


def test_draft_true_and_removed_schedule_send_the_message_back_to_draft(
    account: Account,
) -> None:
    one = account.write("one.md", f"platforms: [x]\nscheduledFor: {FUTURE}\n", "One")
    two = account.write("two.md", f"platforms: [x]\nscheduledFor: {FUTURE}\n", "Two")
    applied(account)

    one.write_text(
        one.read_text().replace("platforms: [x]\n", "platforms: [x]\ndraft: true\n")
    )
    two.write_text(two.read_text().replace(f"scheduledFor: {FUTURE}\n", ""))
    plan = account.run("plan")
    assert plan.stdout.count(f"scheduledFor: {FUTURE} -> (none)") == 2

    applied(account)
    statuses = {
        m["content"]: (m["status"], m["scheduledFor"])
        for m in account.messages().values()
    }
    assert statuses == {"One": ("DRAFT", None), "Two": ("DRAFT", None)}
    assert account.block("one.md")["status"] == "DRAFT"
    assert_plan_empty(account)


def test_vanished_message_is_created_again_unless_it_was_published(
    account: Account,
) -> None:
    account.write("gone.md", "platforms: [x]\n", "Gone draft")
    account.write("pub.md", "platforms: [x]\npublish: now\n", "Gone published")
    applied(account)
    gone, published = account.block("gone.md")["id"], account.block("pub.md")["id"]
    account.api("DELETE", f"/messages/{gone.replace('|', '%7C')}")
    # The web app can delete what went out; the emulator refuses, so the
    # message is removed the way the web app's backend would, in its store.
    account.emulator.forget_message(published)

    plan = account.run("plan")
    assert (
        f"+ create    posts/gone.md\n    message {gone} no longer exists in Nexus Share; creating it again"
        in plan.stdout
    )
    assert (
        f"Warning: posts/pub.md: message {published} was published and is gone "
        "from Nexus Share; it is not posted again"
    ) in plan.stdout

    applied(account)
    contents = [m["content"] for m in account.messages().values()]
    assert contents == ["Gone draft"]
    new_id = account.block("gone.md")["id"]
    assert new_id != gone
    assert account.inventory() == {new_id: "posts/gone.md", published: "posts/pub.md"}
    assert_plan_empty(account)


# -- inventory id whose file is gone ---------------------------------------


def test_deleted_file_cancels_its_message_and_published_ones_are_forgotten(
    account: Account,
) -> None:
    account.write("draft.md", "platforms: [x]\n", "Draft")
    account.write("sched.md", f"platforms: [x]\nscheduledFor: {FUTURE}\n", "Sched")
    account.write("pub.md", "platforms: [x]\npublish: now\n", "Published")
    account.emulator.knobs(publish_failure_rate=0.0)
    applied(account)
    ids = {
        name: account.block(name)["id"] for name in ("draft.md", "sched.md", "pub.md")
    }
    for name in ids:
        (account.repo / "posts" / name).unlink()
    account.sent()

    plan = account.run("plan")
    assert f"- delete    posts/draft.md  ({ids['draft.md']})" in plan.stdout
    assert f"- delete    posts/sched.md  ({ids['sched.md']})" in plan.stdout
    assert f"= forget    posts/pub.md  ({ids['pub.md']})" in plan.stdout

    applied(account)
    assert account.sent() == {"DELETE /messages/{id}": 2}
    assert list(account.messages()) == [ids["pub.md"]]
    assert account.inventory() == {}
    assert_plan_empty(account)


def test_deleted_file_of_a_failed_message_forgets_it_and_leaves_the_message(
    account: Account,
) -> None:
    account.emulator.knobs(publish_failure_rate=1.0)
    account.write("f.md", "platforms: [bluesky]\npublish: now\n", "Fails")
    failed = account.run("apply")
    account.emulator.knobs(publish_failure_rate=0.0)
    message_id = account.block("f.md")["id"]
    assert failed.code == 1, failed.output
    assert (
        f"posts/f.md: FAILED: created {message_id}, but its publish FAILED: "
        "bluesky: the platform rejected the post (emulated failure)"
    ) in failed.stderr
    assert account.block("f.md")["status"] == "FAILED"
    assert account.inventory() == {message_id: "posts/f.md"}
    (account.repo / "posts" / "f.md").unlink()
    account.sent()

    plan = account.run("plan")
    assert f"= forget    posts/f.md  ({message_id})" in plan.stdout
    assert (
        "Plan: 0 to create, 0 to update, 0 to delete, 1 to forget, 0 unchanged, "
        "0 unmanaged"
    ) in plan.stdout

    applied(account)
    assert account.sent() == {}
    message = account.messages()[message_id]
    assert (message["status"], message["content"]) == ("FAILED", "Fails")
    assert account.inventory() == {}
    assert_plan_empty(account)


def test_unmanaged_messages_are_counted_listed_and_left_alone(
    account: Account,
) -> None:
    other = account.create_remote(content="From the web app", platforms=["x"])
    account.write("mine.md", "platforms: [linkedin]\n", "Mine")

    plan = account.run("plan")
    assert (
        "Plan: 1 to create, 0 to update, 0 to delete, 0 unchanged, 1 unmanaged"
        in plan.stdout
    )
    assert f"    {other['id']} DRAFT: From the web app" in plan.stdout

    applied(account)
    assert account.messages()[other["id"]] == other
    assert other["id"] not in account.inventory()

    pruned = account.run("-v", "apply", "--prune-unmanaged")
    assert pruned.code == 0, pruned.output
    assert f"- delete    (unmanaged)  ({other['id']})" in pruned.stdout
    assert f"\n(unmanaged): deleted {other['id']}\n" in pruned.stdout
    assert f"INFO nexus_sync.apply: (unmanaged): deleted {other['id']}\n" in (
        pruned.stderr
    )
    assert "None" not in pruned.output
    assert other["id"] not in account.messages()
    assert_plan_empty(account)


# -- inventory rules -------------------------------------------------------


def test_renamed_file_keeps_its_message(account: Account) -> None:
    account.write("old.md", "platforms: [x]\n", "Moving")
    applied(account)
    message_id = account.block("old.md")["id"]
    (account.repo / "posts" / "sub").mkdir()
    shutil.move(
        account.repo / "posts" / "old.md", account.repo / "posts" / "sub" / "new.md"
    )
    account.sent()

    plan = account.run("plan")
    assert "0 to create, 0 to update, 0 to delete, 1 to write back" in plan.stdout

    applied(account)
    assert account.sent() == {}
    assert list(account.messages()) == [message_id]
    assert account.inventory() == {message_id: "posts/sub/new.md"}
    assert_plan_empty(account)


def test_copied_file_becomes_a_new_post_with_its_own_block(account: Account) -> None:
    original = account.write("orig.md", "platforms: [x]\n", "Original")
    applied(account)
    original_id = account.block("orig.md")["id"]
    copy = account.repo / "posts" / "copy.md"
    copy.write_text(original.read_text().replace("Original", "The copy"))

    plan = account.run("plan")
    assert (
        "+ create    posts/copy.md\n    a copy of posts/orig.md: a new post"
        in plan.stdout
    )

    applied(account)
    copy_id = account.block("copy.md")["id"]
    assert copy_id != original_id
    assert account.block("orig.md")["id"] == original_id
    assert {m["content"] for m in account.messages().values()} == {
        "Original",
        "The copy",
    }
    assert account.inventory() == {
        original_id: "posts/orig.md",
        copy_id: "posts/copy.md",
    }
    assert_plan_empty(account)


def test_lost_inventory_is_rebuilt_from_the_files(account: Account) -> None:
    account.write("a.md", "platforms: [x]\n", "A")
    account.write("b.md", "platforms: [x]\n", "B")
    applied(account)
    before = account.inventory()
    (account.repo / INVENTORY).unlink()
    account.sent()

    plan = account.run("plan")
    assert "0 to create, 0 to update, 0 to delete, 2 to write back" in plan.stdout
    applied(account)
    assert account.sent() == {}
    assert account.inventory() == before
    assert_plan_empty(account)


def test_two_files_claiming_one_unrecorded_id_is_an_error_naming_both(
    account: Account,
) -> None:
    first = account.write("first.md", "platforms: [x]\n", "First")
    applied(account)
    (account.repo / INVENTORY).unlink()
    shutil.copy(first, account.repo / "posts" / "second.md")
    message_id = account.block("first.md")["id"]
    account.sent()

    for command in ("plan", "apply"):
        result = account.run(command)
        assert result.code == 1
        assert (
            f"posts/second.md:1: claims message {message_id}, as posts/first.md "
            "does; keep the nexus: block only in the file that owns the message "
            "and remove it from the copy"
        ) in result.stderr
        assert "Traceback" not in result.output
    assert account.sent() == {}


# -- safety, saved plans ---------------------------------------------------


def test_plan_deleting_5_of_12_is_refused_without_force(account: Account) -> None:
    for number in range(12):
        account.write(f"p{number:02}.md", "platforms: [x]\n", f"Post {number}")
    applied(account)
    for number in range(5):
        (account.repo / "posts" / f"p{number:02}.md").unlink()
    account.sent()

    refused = account.run("apply")
    assert refused.code == 1
    assert "- delete    posts/p00.md" in refused.stdout
    assert (
        "Error: this plan deletes or updates 5 of 12 managed messages, more than "
        "max_change_fraction 0.3 (30%, checked from min_managed_for_safety 10); "
        "review it and run again with --force if it is what you want"
    ) in refused.stderr
    assert account.sent() == {}
    assert len(account.messages()) == 12

    forced = account.run("apply", "--force")
    assert forced.code == 0, forced.output
    assert len(account.messages()) == 7
    assert_plan_empty(account)


def test_saved_plan_is_refused_after_the_remote_changed(account: Account) -> None:
    account.write("a.md", "platforms: [x]\n", "A")
    applied(account)
    path = account.repo / "posts" / "a.md"
    path.write_text(path.read_text().replace("\nA\n", "\nA, edited\n"))
    saved = account.run("plan", "--out", "plan.json")
    checksum = re.search(r"Checksum: (\w+)", saved.stdout).group(1)
    message_id = account.block("a.md")["id"]
    account.api(
        "PATCH", f"/messages/{message_id.replace('|', '%7C')}", json={"title": "Web"}
    )

    refused = account.run("apply", "plan.json")
    assert refused.code == 1
    assert (
        f"expected {checksum}); run `nexus-sync plan` again and review it"
    ) in refused.stderr
    assert account.messages()[message_id]["content"] == "A"

    fresh = account.run("plan", "--out", "plan.json")
    expected = re.search(r"Checksum: (\w+)", fresh.stdout).group(1)
    assert account.run("apply", "--expect-checksum", expected).code == 0
    assert_plan_empty(account)


# -- import and refresh ----------------------------------------------------


def test_import_writes_a_file_per_unmanaged_message_that_then_plans_clean(
    account: Account,
) -> None:
    draft = account.create_remote(
        content="Web draft 🎉", platforms=["x"], title="Launch: day one"
    )
    scheduled = account.create_remote(
        content="Web scheduled", platforms=["linkedin", "bluesky"], scheduledFor=FUTURE
    )
    account.sent()

    result = account.run("import")

    assert result.code == 0, result.output
    assert account.sent() == {}
    created_day = draft["createdAt"][:10]
    assert (
        f"posts/{created_day}-launch-day-one.md: imported {draft['id']} (DRAFT)"
        in result.stdout
    )
    assert (
        f"posts/2030-06-01-web-scheduled.md: imported {scheduled['id']} (SCHEDULED)"
        in result.stdout
    )
    assert (account.repo / "posts" / "2030-06-01-web-scheduled.md").read_text() == (
        "---\nplatforms: [linkedin, bluesky]\nscheduledFor: 2030-06-01T10:00:00Z\n"
        f"nexus:\n  id: {scheduled['id']}\n  status: SCHEDULED\n---\nWeb scheduled\n"
    )
    assert account.inventory() == {
        draft["id"]: f"posts/{created_day}-launch-day-one.md",
        scheduled["id"]: "posts/2030-06-01-web-scheduled.md",
    }
    plan = account.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output
    assert "2 unchanged, 0 unmanaged" in plan.stdout


def test_refresh_writes_back_published_posts_and_changes_nothing_else(
    account: Account,
) -> None:
    account.write("s.md", f"platforms: [x]\nscheduledFor: {FUTURE}\n", "Soon")
    edited = account.write("e.md", "platforms: [x]\n", "Draft")
    applied(account)
    edited.write_text(edited.read_text().replace("Draft", "Draft, edited"))
    account.write("new.md", "platforms: [x]\n", "Not yet sent")
    account.emulator.clock(set="2030-06-01T10:05:00+00:00")
    message_id = account.block("s.md")["id"]
    before_edit = edited.read_text()
    account.sent()

    result = account.run("refresh")

    assert result.code == 0, result.output
    message = account.messages()[message_id]
    x_id = message["externalIds"]["x"]
    assert (
        f"posts/s.md: status PUBLISHED, publishedAt {message['publishedAt']}, "
        f"externalIds {{x: {x_id}}}, urls {{x: https://x.com/i/web/status/{x_id}}}"
    ) in result.stdout
    assert "Refresh: 1 post file(s) updated." in result.stdout
    assert account.sent() == {}
    assert account.block("s.md")["status"] == "PUBLISHED"
    assert account.block("s.md")["id"] == message_id
    assert edited.read_text() == before_edit
    assert "nexus:" not in (account.repo / "posts" / "new.md").read_text()
    assert len(account.messages()) == 2
    plan = account.run("plan")
    assert "1 to create, 1 to update" in plan.stdout


def test_a_post_written_again_after_its_message_was_deleted_is_created_anew(
    account: Account,
) -> None:
    # Its create sends the Idempotency-Key of the first create, and the
    # emulator, like a service that keeps keys for long, answers with the
    # deleted message; apply sees that it is gone and creates a new one.
    day_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    account.emulator.clock(set=day_ago.isoformat())
    path = account.write("again.md", "platforms: [x]\n", "Said twice")
    original_text = path.read_text()
    applied(account)
    first = account.block("again.md")["id"]
    account.emulator.clock(set=dt.datetime.now(dt.UTC).isoformat())
    path.unlink()
    applied(account)
    assert first not in account.messages()

    path.write_text(original_text)
    applied(account)

    second = account.block("again.md")["id"]
    assert second != first
    assert list(account.messages()) == [second]
    assert account.inventory() == {second: "posts/again.md"}
    assert_plan_empty(account)


def test_a_message_being_published_is_left_alone_until_it_is_done(
    account: Account,
) -> None:
    account.emulator.knobs(publish_delay_seconds=3600)
    path = account.write("slow.md", "platforms: [x]\npublish: now\n", "Going out")
    gone = account.write("gone.md", "platforms: [x]\npublish: now\n", "Also going")
    first = applied(account)
    slow_id, gone_id = account.block("slow.md")["id"], account.block("gone.md")["id"]
    assert account.messages()[slow_id]["status"] == "DIRECT"
    assert f"posts/slow.md: created {slow_id}, publish started (DIRECT)\n" in (
        first.stdout
    )
    path.write_text(path.read_text().replace("Going out", "Going out, edited"))
    gone.unlink()
    account.sent()

    plan = account.run("plan", "--detailed-exitcode")

    assert plan.code == 0, plan.output
    assert (
        f"Warning: posts/slow.md: message {slow_id} is being published; nothing is "
        "done until it has finished"
    ) in plan.stdout
    assert applied(account) and account.sent() == {}
    assert account.inventory()[gone_id] == "posts/gone.md"

    account.emulator.clock(advance=3700)
    applied(account)
    assert account.block("slow.md")["status"] == "PUBLISHED"
    assert gone_id not in account.inventory()


def test_the_json_plan_of_the_command_follows_its_schema(account: Account) -> None:
    import json

    import jsonschema

    account.write("a.md", "title: A\nplatforms: [x]\n", "A")
    account.write("b.md", "platforms: [x]\n", "B")
    applied(account)
    (account.repo / "posts" / "b.md").unlink()
    account.write("c.md", f"platforms: [bluesky]\nscheduledFor: {FUTURE}\n", "C")
    account.create_remote(content="Web", platforms=["x"])
    schema = json.loads(
        (Path(__file__).parent.parent / "schema" / "plan.schema.json").read_text()
    )

    result = account.run("plan", "--format", "json", "--detailed-exitcode")

    assert result.code == 2, result.output
    plan = json.loads(result.stdout)
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(plan)
    assert [(c["action"], c["path"]) for c in plan["changes"]] == [
        ("create", "posts/c.md"),
        ("delete", "posts/b.md"),
    ]
    assert plan["summary"]["unmanaged"] == 1
