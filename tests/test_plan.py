"""make_plan as a pure function: values in, a Plan out, no files, no calls."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from nexus_sync import plan as plans
from nexus_sync.config import Config
from nexus_sync.errors import InvalidPosts, PlanMismatch, TooMuchChange
from nexus_sync.plan import Message, check_apply, make_plan
from nexus_sync.posts import NexusBlock, Post

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
CONFIG = Config(root=Path("/repo"))
LATER = "2030-01-01T10:00:00Z"


def post(path: str, content: str = "Hello", **fields: object) -> Post:
    nexus = fields.pop("nexus", None)
    return Post(
        path=f"posts/{path}",
        content=content,
        platforms=fields.pop("platforms", ("x",)),
        nexus=NexusBlock(**nexus) if nexus else NexusBlock(),
        **fields,
    )


def message(
    id: str, content: str = "Hello", status: str = "DRAFT", **fields: object
) -> Message:
    return Message(
        id=id,
        status=status,
        content=content,
        platforms=fields.pop("platforms", ("x",)),
        created_at=fields.pop("created_at", "2026-12-01T00:00:00Z"),
        **fields,
    )


def actions(result: plans.Plan) -> list[tuple[str, str | None, str | None]]:
    return [(c.action, c.path, c.message_id) for c in result.changes]


def test_direct_message_is_left_alone_while_in_flight() -> None:
    posts = [post("a.md", "Edited", nexus={"id": "M1", "status": "DRAFT"})]
    remote = [message("M1", "Hello", status="DIRECT")]

    result = make_plan(posts, {"M1": "posts/a.md"}, remote, NOW, CONFIG)

    assert actions(result) == []
    assert result.unchanged == 1
    assert result.warnings == (
        "posts/a.md: message M1 is being published; nothing is done until it "
        "has finished",
    )


def test_direct_message_of_a_deleted_file_is_neither_deleted_nor_forgotten() -> None:
    result = make_plan(
        [], {"M1": "posts/a.md"}, [message("M1", status="DIRECT")], NOW, CONFIG
    )

    assert actions(result) == []


def test_only_differing_fields_are_patched() -> None:
    posts = [post("a.md", "Hello", title="New", nexus={"id": "M1", "status": "DRAFT"})]
    remote = [message("M1", "Hello", title="Old")]

    result = make_plan(posts, {"M1": "posts/a.md"}, remote, NOW, CONFIG)

    (change,) = result.changes
    assert change.action == plans.UPDATE
    assert plans.patch_body(change) == {"title": "New"}


def test_vanished_id_is_adopted_when_an_identical_unmanaged_message_exists() -> None:
    # A crashed apply created the replacement but never wrote its id back.
    posts = [post("a.md", "Hello", nexus={"id": "OLD", "status": "DRAFT"})]
    remote = [message("NEW", "Hello")]

    result = make_plan(posts, {"OLD": "posts/a.md"}, remote, NOW, CONFIG)

    assert actions(result) == [("adopt", "posts/a.md", "NEW")]
    assert result.changes[0].replaces == "OLD"


def test_copy_is_created_once_and_then_adopted_after_a_crash() -> None:
    original = post("a.md", "Same", nexus={"id": "M1", "status": "DRAFT"})
    copy = post("b.md", "Same", nexus={"id": "M1", "status": "DRAFT"})
    inventory = {"M1": "posts/a.md"}

    first = make_plan([original, copy], inventory, [message("M1", "Same")], NOW, CONFIG)
    assert actions(first) == [("create", "posts/b.md", None)]

    remote = [message("M1", "Same"), message("M2", "Same")]
    again = make_plan([original, copy], inventory, remote, NOW, CONFIG)
    assert actions(again) == [("adopt", "posts/b.md", "M2")]


def test_a_file_named_in_the_inventory_keeps_its_message_without_a_block() -> None:
    posts = [post("a.md", "Hello")]

    result = make_plan(posts, {"M1": "posts/a.md"}, [message("M1")], NOW, CONFIG)

    assert actions(result) == [("writeback", "posts/a.md", "M1")]


def test_renamed_and_copied_in_one_change_is_an_error() -> None:
    posts = [
        post("b.md", nexus={"id": "M1", "status": "DRAFT"}),
        post("c.md", nexus={"id": "M1", "status": "DRAFT"}),
    ]

    with pytest.raises(InvalidPosts) as raised:
        make_plan(posts, {"M1": "posts/a.md"}, [message("M1")], NOW, CONFIG)

    assert [str(p) for p in raised.value.problems] == [
        "posts/c.md:1: claims message M1, as posts/b.md does; keep the nexus: "
        "block only in the file that owns the message and remove it from the copy"
    ]


def test_twins_are_adopted_one_each_and_the_rest_created() -> None:
    posts = [post(f"{n}.md", "Monthly thanks") for n in "abc"]
    remote = [message("M1", "Monthly thanks"), message("M2", "Monthly thanks")]

    result = make_plan(posts, {}, remote, NOW, CONFIG)

    assert actions(result) == [
        ("adopt", "posts/a.md", "M1"),
        ("adopt", "posts/b.md", "M2"),
        ("create", "posts/c.md", None),
    ]


def test_create_in_the_past_is_an_error_at_its_line() -> None:
    posts = [post("a.md", scheduled_for="2020-01-01T00:00:00Z", scheduled_line=3)]

    with pytest.raises(InvalidPosts) as raised:
        make_plan(posts, {}, [], NOW, CONFIG)

    assert [str(p) for p in raised.value.problems] == [
        "posts/a.md:3: scheduledFor 2020-01-01T00:00:00Z is in the past; choose a "
        "later time or remove scheduledFor to keep a draft"
    ]


def test_due_message_with_the_same_time_is_not_an_error() -> None:
    past = "2026-12-04T11:59:00Z"
    posts = [
        post("a.md", scheduled_for=past, nexus={"id": "M1", "status": "SCHEDULED"})
    ]
    remote = [message("M1", status="SCHEDULED", scheduled_for=past)]

    result = make_plan(posts, {"M1": "posts/a.md"}, remote, NOW, CONFIG)

    assert actions(result) == []


def test_failed_message_is_published_again_only_after_an_edit() -> None:
    block = {"id": "M1", "status": "FAILED", "error": "rejected"}
    remote = [message("M1", "Hello", status="FAILED", error="rejected")]
    inventory = {"M1": "posts/a.md"}

    unchanged = make_plan(
        [post("a.md", publish_now=True, nexus=block)], inventory, remote, NOW, CONFIG
    )
    edited = make_plan(
        [post("a.md", "Fixed", publish_now=True, nexus=block)],
        inventory,
        remote,
        NOW,
        CONFIG,
    )

    assert actions(unchanged) == []
    assert unchanged.warnings == (
        "posts/a.md: message M1 FAILED: rejected; fix the post, then edit it to "
        "send it again (a changed post with `publish: now` goes out again)",
    )
    assert [(c.action, c.publish) for c in edited.changes] == [("update", True)]


def test_prune_deletes_unmanaged_drafts_but_never_published_messages() -> None:
    remote = [message("D"), message("P", status="PUBLISHED")]

    result = make_plan([], {}, remote, NOW, CONFIG, prune_unmanaged=True)

    assert actions(result) == [("delete", None, "D")]
    assert [m.id for m in result.unmanaged] == ["P"]


def test_checksum_changes_with_the_content_of_a_create() -> None:
    one = make_plan([post("a.md", "One")], {}, [], NOW, CONFIG)
    two = make_plan([post("a.md", "Two")], {}, [], NOW, CONFIG)
    again = make_plan(
        [post("a.md", "One")], {}, [], NOW + dt.timedelta(hours=1), CONFIG
    )

    assert one.checksum != two.checksum
    assert one.checksum == again.checksum


def test_safety_counts_deletes_and_updates_against_the_managed_messages() -> None:
    inventory = {f"M{n}": f"posts/{n}.md" for n in range(12)}
    remote = [message(f"M{n}", f"Post {n}") for n in range(12)]
    kept = [post(f"{n}.md", f"Post {n}") for n in range(5, 12)]
    result = make_plan(kept, inventory, remote, NOW, CONFIG)

    with pytest.raises(TooMuchChange):
        check_apply(result, CONFIG, None, force=False)
    check_apply(result, CONFIG, None, force=True)
    small = make_plan(
        kept[:3], dict(list(inventory.items())[:4]), remote[:4], NOW, CONFIG
    )
    check_apply(small, CONFIG, None, force=False)


def test_expected_checksum_must_match() -> None:
    result = make_plan([post("a.md")], {}, [], NOW, CONFIG)

    check_apply(result, CONFIG, result.checksum, force=False)
    with pytest.raises(PlanMismatch):
        check_apply(result, CONFIG, "0" * 16, force=False)


def test_published_post_links_bluesky_only_when_the_account_is_configured() -> None:
    published = Message(
        "M1",
        "PUBLISHED",
        "Out",
        ("x", "linkedin", "bluesky"),
        published_at="2026-12-01T00:00:00Z",
        external_ids=(
            ("bluesky", "3mcjqcipyyk2d"),
            ("linkedin", "urn:li:share:7417853116836069377"),
            ("x", "2012087424487219563"),
        ),
    )
    with_handle = Config(root=Path("/repo"), bluesky_handle="nexus.bsky.social")

    assert plans.post_urls(published, CONFIG) == {
        "linkedin": "https://www.linkedin.com/feed/update/urn:li:share:7417853116836069377",
        "x": "https://x.com/i/web/status/2012087424487219563",
    }
    assert plans.post_urls(published, with_handle)["bluesky"] == (
        "https://bsky.app/profile/nexus.bsky.social/post/3mcjqcipyyk2d"
    )


def test_an_id_edited_into_nothing_keeps_the_inventorys_message() -> None:
    posts = [post("a.md", nexus={"id": "garbage", "status": "DRAFT"})]

    result = make_plan(posts, {"M1": "posts/a.md"}, [message("M1")], NOW, CONFIG)

    assert actions(result) == [("writeback", "posts/a.md", "M1")]
    assert result.warnings == (
        "posts/a.md: its nexus: id 'garbage' names no message; the file keeps "
        "message M1 (nexus-sync.state.yaml says so) and the id is written back",
    )
