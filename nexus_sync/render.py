"""A Plan as text for people, JSON for machines, Markdown for pull requests."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any

import click

from . import plan as plans
from .plan import Change, FieldChange, Plan, request_body

# GitHub refuses comments over 65,536 characters; stay clear of it.
MARKDOWN_LIMIT = 65_000
# The last words of a Markdown plan that was cut to fit the limit.
MARKDOWN_CUT = (
    "\n\n_The plan is longer than a comment can hold; `nexus-sync plan` shows "
    "all of it, as does the plan saved as JSON (`--out`; in the GitHub Action, "
    "its `plan-path` output)._\n"
)
FORMAT_VERSION = 1
UNMANAGED_SHOWN = 20

_SYMBOLS = {
    plans.CREATE: ("+", "green"),
    plans.UPDATE: ("~", "yellow"),
    plans.PUBLISH: ("!", "magenta"),
    plans.DELETE: ("-", "red"),
    plans.ADOPT: ("=", "cyan"),
    plans.FORGET: ("=", "cyan"),
    plans.WRITEBACK: ("=", "cyan"),
}
_LABELS = {
    plans.CREATE: "to create",
    plans.UPDATE: "to update",
    plans.PUBLISH: "to publish",
    plans.DELETE: "to delete",
    plans.ADOPT: "to adopt",
    plans.WRITEBACK: "to write back",
    plans.FORGET: "to forget",
}
# Always shown in the summary line, even at zero; the others only when present.
_ALWAYS = (plans.CREATE, plans.UPDATE, plans.DELETE)

Paint = Callable[[str, str | None], str]


def summary(plan: Plan) -> str:
    """`Plan: 2 to create, 1 to update, 1 to delete, 3 unchanged, 4 unmanaged`."""
    parts = [
        f"{plan.count(action)} {label}"
        for action, label in _LABELS.items()
        if action in _ALWAYS or plan.count(action)
    ]
    parts.append(f"{plan.unchanged} unchanged")
    parts.append(f"{len(plan.unmanaged)} unmanaged")
    return "Plan: " + ", ".join(parts)


def _title(change: Change, width: int = 0) -> str:
    title = f"{change.action:<{width}} {change.where}"
    if change.message_id:
        title += f"  ({change.message_id})"
    if change.publish and change.action != plans.PUBLISH:
        title += ", then publish"
    return title


def as_text(plan: Plan, color: bool = False) -> str:
    """The plan as a person reads it in a terminal."""

    def paint(text: str, fg: str | None) -> str:
        return click.style(text, fg=fg) if color and fg else text

    lines = []
    for change in plan.changes:
        symbol, fg = _SYMBOLS[change.action]
        lines.append(paint(f"{symbol} {_title(change, width=9)}", fg))
        if change.note:
            lines.append(f"    {change.note}")
        lines.extend("    " + line for line in _detail_lines(change, paint))

    for warning in plan.warnings:
        lines.append(paint(f"Warning: {warning}", "yellow"))
    if plan.unmanaged:
        lines.append(
            f"{len(plan.unmanaged)} message(s) in the account are not managed by "
            "these files and are left alone (`nexus-sync import` writes files "
            "for them):"
        )
        for message in plan.unmanaged[:UNMANAGED_SHOWN]:
            lines.append(
                f"    {message.id} {message.status}: {_excerpt(message.content)}"
            )
        if len(plan.unmanaged) > UNMANAGED_SHOWN:
            lines.append(
                f"    ...and {len(plan.unmanaged) - UNMANAGED_SHOWN} more "
                "(`--format json` lists all)"
            )
    if not plan.has_changes:
        lines.append(_no_changes(plan, where="above"))
    lines.append(summary(plan))
    lines.append(f"Checksum: {plan.checksum}")
    return "\n".join(lines) + "\n"


def _no_changes(plan: Plan, where: str) -> str:
    """The line a plan without changes prints, `where` its warnings are."""
    if plan.warnings:
        return f"No changes. Nothing is sent; read the warnings {where}."
    return "No changes. The account matches the post files."


def _detail_lines(change: Change, paint: Paint) -> list[str]:
    """What a change sends or writes, field by field."""
    if change.action == plans.CREATE and change.post is not None:
        body = request_body(change.post)
        lines = [
            f"{name}: {show(body[name])}"
            for name in ("title", "platforms", "scheduledFor")
            if name in body
        ]
        lines.append("content:")
        lines.extend(
            "  " + paint(f"+{line}", "green") for line in body["content"].split("\n")
        )
        return lines

    lines = []
    for field in change.fields:
        if field.name != "content":
            lines.append(f"{field.name}: {show(field.old)} -> {show(field.new)}")
            continue
        lines.append("content:")
        for line in _content_diff(field, change):
            fg = "green" if line[:1] == "+" else "red" if line[:1] == "-" else None
            lines.append("  " + paint(line, fg))
    return lines


def _content_diff(field: FieldChange, change: Change) -> list[str]:
    return list(
        difflib.unified_diff(
            (field.old or "").split("\n"),
            (field.new or "").split("\n"),
            fromfile=f"{change.message_id} (Nexus Share)",
            tofile=change.path or "",
            lineterm="",
        )
    )


def show(value: Any) -> str:
    """A field value as the plan prints it."""
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) + "}"
    return str(value)


def _excerpt(content: str, width: int = 60) -> str:
    first = content.split("\n", 1)[0]
    return first if len(first) <= width else first[: width - 3] + "..."


def as_json(plan: Plan) -> str:
    """The plan as stable JSON, described by schema/plan.schema.json."""
    return json.dumps(as_data(plan), indent=2, ensure_ascii=False) + "\n"


def as_data(plan: Plan) -> dict[str, Any]:
    counts = {action: plan.count(action) for action in _LABELS}
    return {
        "format_version": FORMAT_VERSION,
        "checksum": plan.checksum,
        "has_changes": plan.has_changes,
        "options": {"prune_unmanaged": plan.prune_unmanaged},
        "summary": {
            **counts,
            "unchanged": plan.unchanged,
            "unmanaged": len(plan.unmanaged),
            "managed": plan.managed,
        },
        "changes": [_change_data(change) for change in plan.changes],
        "warnings": list(plan.warnings),
        "unmanaged": [
            {
                "id": m.id,
                "status": m.status,
                "title": m.title,
                "platforms": list(m.platforms),
                "scheduledFor": m.scheduled_for,
                "content": m.content,
            }
            for m in plan.unmanaged
        ],
    }


def _change_data(change: Change) -> dict[str, Any]:
    data = {
        "action": change.action,
        "path": change.path,
        "id": change.message_id,
        "publish": change.publish,
        "fields": [{"name": f.name, "old": f.old, "new": f.new} for f in change.fields],
        "note": change.note,
    }
    if change.action == plans.CREATE and change.post is not None:
        data["body"] = request_body(change.post)
    return data


def as_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """The plan for a pull-request comment: summary first, details folded.

    Never longer than `limit` characters: the warnings and changes that do
    not fit are counted instead, with a pointer to the full plan.
    """
    head = [
        "### nexus-sync plan",
        "",
        f"**{summary(plan)}**",
        "",
        f"Checksum: `{plan.checksum}`",
        "",
    ]
    if not plan.has_changes:
        head.append(_no_changes(plan, where="below"))
    tail = []
    if plan.unmanaged:
        tail.append(
            f"{len(plan.unmanaged)} message(s) in the account are not managed by "
            "these files and are left alone."
        )
    warnings = [f"> :warning: {_escape(warning)}" for warning in plan.warnings]
    items = [_markdown_item(change) for change in plan.changes]

    base = len("\n".join(head + tail)) + 2
    needed = _size(warnings) + _size(items)
    if base + needed <= limit:
        return "\n".join(head + warnings + tail) + "\n\n" + _lines(items)

    # Neither list may crowd the other out: the warnings get half the room,
    # or more when the changes need less, and the changes get the rest.
    room = limit - base - _cut_size(len(warnings), len(items))
    shown_warnings = _fit(warnings, max(room // 2, room - _size(items)))
    shown_items = _fit(items, room - _size(warnings[:shown_warnings]))

    left_warnings = len(warnings) - shown_warnings
    if left_warnings:
        warnings = warnings[:shown_warnings] + [_warnings_cut(left_warnings)]
    text = "\n".join(head + warnings + tail) + "\n\n" + _lines(items[:shown_items])
    left_items = len(items) - shown_items
    if left_items:
        text += _changes_cut(left_items)
    return text.rstrip("\n") + MARKDOWN_CUT


def _markdown_item(change: Change) -> str:
    symbol, _ = _SYMBOLS[change.action]
    title = _escape(f"{symbol} {_title(change)}")
    body = _markdown_details(change)
    if body:
        return f"<details><summary>{title}</summary>\n\n{body}\n\n</details>"
    return f"- {title}"


def _warnings_cut(left: int) -> str:
    return f"> _...and {left} more warning(s) not shown here._"


def _changes_cut(left: int) -> str:
    return f"\n_...and {left} more change(s) not shown here._"


def _cut_size(warnings: int, changes: int) -> int:
    """The most the notes of a cut can add, whatever is left out."""
    return (
        len(_warnings_cut(warnings))
        + 1
        + len(_changes_cut(changes))
        + len(MARKDOWN_CUT)
    )


def _size(lines: list[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _fit(lines: list[str], room: int) -> int:
    """How many of the first `lines` fit in `room` characters."""
    used = 0
    for count, line in enumerate(lines):
        used += len(line) + 1
        if used > room:
            return count
    return len(lines)


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _markdown_details(change: Change) -> str:
    parts = []
    if change.note:
        parts.append(_escape(change.note))
    lines = _detail_lines(change, lambda text, fg: text)
    if lines:
        fenced = "\n".join(lines).replace("```", "`\u200b``")
        language = "diff" if change.action in (plans.CREATE, plans.UPDATE) else ""
        parts.append(f"```{language}\n{fenced}\n```")
    return "\n\n".join(parts)


def _escape(text: str) -> str:
    """Text safe to put in Markdown and HTML: no tags, no stray emphasis."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
