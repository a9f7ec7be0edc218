"""A Plan as text for people, JSON for machines, Markdown for pull requests."""

from __future__ import annotations

import difflib
import json
from typing import Any

import click

from . import plan as plans
from .plan import Change, Plan

MARKDOWN_LIMIT = 65_000
_SYMBOLS = {
    plans.CREATE: ("+", "green"),
    plans.UPDATE: ("~", "yellow"),
    plans.PUBLISH: ("!", "magenta"),
    plans.DELETE: ("-", "red"),
    plans.ADOPT: ("=", "cyan"),
    plans.FORGET: ("=", "cyan"),
    plans.WRITEBACK: ("=", "cyan"),
}
_ORDER = [
    (plans.CREATE, "to create"),
    (plans.UPDATE, "to update"),
    (plans.PUBLISH, "to publish"),
    (plans.DELETE, "to delete"),
    (plans.ADOPT, "to adopt"),
    (plans.WRITEBACK, "to write back"),
    (plans.FORGET, "to forget"),
]


def summary(plan: Plan) -> str:
    """`Plan: 2 to create, 1 to update, 1 to delete, 3 unchanged, 4 unmanaged`."""
    parts = [f"{plan.count(plans.CREATE)} to create"]
    parts.append(f"{plan.count(plans.UPDATE)} to update")
    for action, label in _ORDER[2:]:
        if action == plans.DELETE or plan.count(action):
            parts.append(f"{plan.count(action)} {label}")
    parts.append(f"{plan.unchanged} unchanged")
    parts.append(f"{len(plan.unmanaged)} unmanaged")
    return "Plan: " + ", ".join(parts)


def as_text(plan: Plan, color: bool = False) -> str:
    """The plan as a person reads it in a terminal."""

    def paint(text: str, fg: str) -> str:
        return click.style(text, fg=fg) if color else text

    lines = []
    for change in plan.changes:
        symbol, fg = _SYMBOLS[change.action]
        head = f"{symbol} {change.action:<9} {change.path}"
        if change.message_id:
            head += f"  ({change.message_id})"
        if change.publish and change.action != plans.PUBLISH:
            head += "  then publish"
        lines.append(paint(head, fg))
        if change.note:
            lines.append(f"    {change.note}")
        for field in change.fields:
            lines.extend(_field_lines(field, change, paint))
    for warning in plan.warnings:
        lines.append(paint(f"Warning: {warning}", "yellow"))
    if plan.unmanaged:
        lines.append(
            f"{len(plan.unmanaged)} message(s) in the account are not managed "
            "by these files and are left alone (see `nexus-sync import`)."
        )
    if not plan.has_changes:
        lines.append("No changes. The account matches the post files.")
    lines.append(summary(plan))
    lines.append(f"Checksum: {plan.checksum}")
    return "\n".join(lines) + "\n"


def _field_lines(field: plans.FieldChange, change: Change, paint: Any) -> list[str]:
    if field.name != "content":
        return [f"    {field.name}: {_show(field.old)} -> {_show(field.new)}"]
    diff = difflib.unified_diff(
        (field.old or "").splitlines(),
        (field.new or "").splitlines(),
        fromfile=f"{change.message_id} (Nexus Share)",
        tofile=change.path or "",
        lineterm="",
    )
    lines = ["    content:"]
    for line in diff:
        fg = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        lines.append("      " + (paint(line, fg) if fg else line))
    return lines


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return str(value)


def as_json(plan: Plan) -> str:
    """The plan as stable JSON, described by schema/plan.schema.json."""
    return json.dumps(as_data(plan), indent=2, ensure_ascii=False) + "\n"


def as_data(plan: Plan) -> dict[str, Any]:
    counts = {action: plan.count(action) for action, _ in _ORDER}
    return {
        "format_version": 1,
        "checksum": plan.checksum,
        "has_changes": plan.has_changes,
        "summary": {
            **counts,
            "unchanged": plan.unchanged,
            "unmanaged": len(plan.unmanaged),
            "managed": plan.managed,
        },
        "changes": [_change_data(change) for change in plan.changes],
        "warnings": list(plan.warnings),
        "unmanaged": [
            {"id": m.id, "status": m.status, "content": m.content[:80]}
            for m in plan.unmanaged
        ],
    }


def _change_data(change: Change) -> dict[str, Any]:
    return {
        "action": change.action,
        "path": change.path,
        "id": change.message_id,
        "publish": change.publish,
        "fields": [
            {"name": f.name, "old": f.old, "new": f.new} for f in change.fields
        ],
        "note": change.note,
    }


def as_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """The plan for a pull-request comment: summary first, details folded."""
    head = [
        "### nexus-sync plan",
        "",
        f"**{summary(plan)}**",
        "",
        f"Checksum: `{plan.checksum}`",
        "",
    ]
    if not plan.has_changes:
        head.append("No changes. The account matches the post files.")
    for warning in plan.warnings:
        head.append(f"> :warning: {warning}")

    details = []
    for change in plan.changes:
        symbol, _ = _SYMBOLS[change.action]
        title = f"{symbol} {change.action} `{change.path}`"
        if change.message_id:
            title += f" ({change.message_id})"
        body = _markdown_fields(change)
        if body:
            details.append(
                f"<details><summary>{title}</summary>\n\n{body}\n\n</details>"
            )
        else:
            details.append(f"- {title}")

    text = "\n".join(head) + "\n\n"
    cut = (
        "\n\n_The plan is longer than a comment can hold; the full plan is in "
        "the job summary and in the JSON plan of this run._\n"
    )
    for index, item in enumerate(details):
        if len(text) + len(item) + len(cut) + 1 > limit:
            left = len(details) - index
            return text + f"\n_...and {left} more change(s)._" + cut
        text += item + "\n"
    return text


def _markdown_fields(change: Change) -> str:
    parts = []
    for field in change.fields:
        if field.name == "content":
            diff = "\n".join(
                difflib.unified_diff(
                    (field.old or "").splitlines(),
                    (field.new or "").splitlines(),
                    lineterm="",
                )
            )
            fenced = diff.replace("```", "`\u200b``")
            parts.append(f"```diff\n{fenced}\n```")
        else:
            parts.append(f"- `{field.name}`: {_show(field.old)} → {_show(field.new)}")
    if change.note:
        parts.append(change.note)
    return "\n".join(parts)
