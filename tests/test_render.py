"""One plan, three renderings: text, JSON (with its schema) and Markdown."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema

from nexus_sync import render
from nexus_sync.config import Config
from nexus_sync.plan import Message, make_plan
from nexus_sync.posts import NexusBlock, Post

PROJECT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
CONFIG = Config(root=Path("/repo"))


def a_plan_of_every_kind():
    posts = [
        Post(
            "posts/new.md",
            "New <b>post</b>\nline two",
            ("x", "bluesky"),
            title="T",
            scheduled_for="2030-01-01T10:00:00Z",
            publish_now=False,
        ),
        Post("posts/edit.md", "After", ("x",), nexus=NexusBlock("M1", "DRAFT")),
        Post("posts/twin.md", "Twin", ("x",)),
        Post("posts/pub.md", "Out", ("x",), nexus=NexusBlock("M3", "SCHEDULED")),
        Post(
            "posts/now.md",
            "Now",
            ("linkedin",),
            publish_now=True,
            nexus=NexusBlock("M5", "DRAFT"),
        ),
    ]
    inventory = {
        "M1": "posts/edit.md",
        "M2": "posts/gone.md",
        "M3": "posts/pub.md",
        "M4": "posts/old.md",
        "M5": "posts/now.md",
    }
    remote = [
        Message("M1", "DRAFT", "Before", ("x",)),
        Message(
            "M2", "SCHEDULED", "Gone", ("x",), scheduled_for="2030-01-01T10:00:00Z"
        ),
        Message(
            "M3",
            "PUBLISHED",
            "Out",
            ("x",),
            published_at="2026-12-01T00:00:00Z",
            external_ids=(("x", "2012087424487219563"),),
        ),
        Message("M4", "PUBLISHED", "Old", ("x",)),
        Message("M5", "DRAFT", "Now", ("linkedin",)),
        Message("T1", "DRAFT", "Twin", ("x",)),
        Message(
            "U1",
            "FAILED",
            "Web app",
            ("x",),
            error="nope",
            created_at="2020-01-01T00:00:00Z",
        ),
    ]
    return make_plan(posts, inventory, remote, NOW, CONFIG)


def test_json_plan_validates_against_its_schema_and_names_every_change() -> None:
    plan = a_plan_of_every_kind()
    schema = json.loads((PROJECT / "schema" / "plan.schema.json").read_text())

    data = json.loads(render.as_json(plan))

    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(data)
    assert [(c["action"], c["path"]) for c in data["changes"]] == [
        ("update", "posts/edit.md"),
        ("create", "posts/new.md"),
        ("publish", "posts/now.md"),
        ("writeback", "posts/pub.md"),
        ("adopt", "posts/twin.md"),
        ("delete", "posts/gone.md"),
        ("forget", "posts/old.md"),
    ]
    assert data["changes"][1]["body"] == {
        "content": "New <b>post</b>\nline two",
        "platforms": ["x", "bluesky"],
        "title": "T",
        "scheduledFor": "2030-01-01T10:00:00Z",
    }
    assert data["summary"] == {
        "create": 1,
        "update": 1,
        "publish": 1,
        "delete": 1,
        "adopt": 1,
        "writeback": 1,
        "forget": 1,
        "unchanged": 0,
        "unmanaged": 1,
        "managed": 5,
    }
    assert data["checksum"] == plan.checksum


def test_text_plan_shows_diffs_and_the_summary_line() -> None:
    text = render.as_text(a_plan_of_every_kind())

    assert "~ update    posts/edit.md  (M1)\n    content:\n" in text
    assert "      -Before\n      +After\n" in text
    assert "    nexus.status: SCHEDULED -> PUBLISHED\n" in text
    assert "    U1 FAILED: Web app\n" in text
    assert (
        "Plan: 1 to create, 1 to update, 1 to publish, 1 to delete, 1 to adopt, "
        "1 to write back, 1 to forget, 0 unchanged, 1 unmanaged\n"
    ) in text
    assert "\x1b[" not in text
    assert "\x1b[32m+ create" in render.as_text(a_plan_of_every_kind(), color=True)


def test_markdown_of_2000_changes_stays_under_the_comment_limit() -> None:
    posts = [
        Post(f"posts/p{n:04}.md", f"Post number {n}\n" + "words " * 40, ("x",))
        for n in range(2000)
    ]
    plan = make_plan(posts, {}, [], NOW, CONFIG)

    markdown = render.as_markdown(plan)

    assert len(markdown) < 65_000
    assert markdown.startswith(
        "### nexus-sync plan\n\n**Plan: 2000 to create, 0 to update, 0 to delete"
    )
    assert "not shown here._" in markdown
    assert (
        "`nexus-sync plan` shows all of it, as does the plan saved as JSON"
    ) in markdown
    shown = markdown.count("<details>")
    assert f"_...and {2000 - shown} more change(s) not shown here._" in markdown


def test_markdown_escapes_html_in_paths_and_notes() -> None:
    plan = a_plan_of_every_kind()

    markdown = render.as_markdown(plan)

    assert "<b>" not in markdown.replace("```diff", "").split("```")[0]
    assert "<details><summary>+ create posts/new.md</summary>" in markdown


def published_posts_edited(count: int) -> tuple[list[Post], list[Message]]:
    """Posts whose messages went out and whose files were edited since: each
    one is a warning, none is a change."""
    posts = [
        Post(
            f"posts/p{n:04}.md",
            f"Edited post {n}",
            ("x",),
            nexus=NexusBlock(f"M{n}", "PUBLISHED"),
        )
        for n in range(count)
    ]
    remote = [Message(f"M{n}", "PUBLISHED", f"Post {n}", ("x",)) for n in range(count)]
    return posts, remote


def test_markdown_of_1500_warnings_stays_under_the_comment_limit() -> None:
    posts, remote = published_posts_edited(1500)
    inventory = {f"M{n}": f"posts/p{n:04}.md" for n in range(1500)}
    plan = make_plan(posts, inventory, remote, NOW, CONFIG)
    assert len(plan.warnings) == 1500

    markdown = render.as_markdown(plan)

    assert len(markdown) <= 65_000
    shown = markdown.count("> :warning: posts/")
    assert 0 < shown < 1500
    assert f"_...and {1500 - shown} more warning(s) not shown here._" in markdown
    assert markdown.endswith(
        "_The plan is longer than a comment can hold; `nexus-sync plan` shows all "
        "of it, as does the plan saved as JSON (`--out`; in the GitHub Action, "
        "its `plan-path` output)._\n"
    )


def test_markdown_cuts_warnings_and_changes_and_shows_some_of_each() -> None:
    posts, remote = published_posts_edited(1500)
    inventory = {f"M{n}": f"posts/p{n:04}.md" for n in range(1500)}
    posts += [
        Post(f"posts/new{n:04}.md", f"New post {n}\n" + "words " * 40, ("x",))
        for n in range(2000)
    ]
    plan = make_plan(posts, inventory, remote, NOW, CONFIG)

    markdown = render.as_markdown(plan)

    assert len(markdown) <= 65_000
    warnings = markdown.count("> :warning: posts/")
    changes = markdown.count("<details>")
    assert 0 < warnings < 1500 and 0 < changes < 2000
    assert f"_...and {1500 - warnings} more warning(s) not shown here._" in markdown
    assert f"_...and {2000 - changes} more change(s) not shown here._" in markdown
    assert markdown.count("The plan is longer than a comment can hold") == 1


def test_markdown_without_changes_points_down_to_its_warnings() -> None:
    posts, remote = published_posts_edited(2)
    plan = make_plan(
        posts, {"M0": "posts/p0000.md", "M1": "posts/p0001.md"}, remote, NOW, CONFIG
    )

    markdown = render.as_markdown(plan)

    assert markdown == (
        "### nexus-sync plan\n"
        "\n"
        "**Plan: 0 to create, 0 to update, 0 to delete, 2 unchanged, 0 unmanaged**\n"
        "\n"
        f"Checksum: `{plan.checksum}`\n"
        "\n"
        "No changes. Nothing is sent; read the warnings below.\n"
        "> :warning: posts/p0000.md: content edited after message M0 was "
        "published; a published post cannot change, so nothing is sent\n"
        "> :warning: posts/p0001.md: content edited after message M1 was "
        "published; a published post cannot change, so nothing is sent\n"
        "\n"
    )
    assert "read the warnings above." in render.as_text(plan)
