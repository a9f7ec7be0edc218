"""The reconciler: post files, inventory and remote messages in; a Plan out.

Nothing here reads a file or makes a call. `make_plan` is a pure function of
its arguments, so every rule of the product can be tested by building values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections import defaultdict
from typing import Any, Iterable, Mapping

from .config import Config
from .errors import InvalidPosts, PostError
from .inventory import INVENTORY_FILE
from .posts import NexusBlock, Post, normalize_content

log = logging.getLogger(__name__)

CREATE = "create"
UPDATE = "update"
PUBLISH = "publish"
DELETE = "delete"
ADOPT = "adopt"
FORGET = "forget"
WRITEBACK = "writeback"

# Actions that send a request to the service; the others only edit local files.
REMOTE_ACTIONS = (CREATE, UPDATE, PUBLISH, DELETE)

EDITABLE = ("DRAFT", "SCHEDULED", "FAILED")
ADOPTABLE_ANY_AGE = ("DRAFT", "SCHEDULED")


@dataclasses.dataclass(frozen=True)
class Message:
    """A message as the service returns it, content normalized for comparing."""

    id: str
    status: str
    content: str
    platforms: tuple[str, ...]
    title: str | None = None
    scheduled_for: str | None = None
    created_at: str | None = None
    published_at: str | None = None
    error: str | None = None
    external_ids: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            id=data["id"],
            status=data["status"],
            content=normalize_content(data.get("content") or ""),
            platforms=tuple(t.lower() for t in data.get("targets") or ()),
            title=data.get("title") or None,
            scheduled_for=_instant(data.get("scheduledFor")),
            created_at=data.get("createdAt"),
            published_at=data.get("publishedAt"),
            error=data.get("error"),
            external_ids=tuple(sorted((data.get("externalIds") or {}).items())),
        )


@dataclasses.dataclass(frozen=True)
class FieldChange:
    """One field of a message that differs, with the value to send."""

    name: str
    old: Any
    new: Any


@dataclasses.dataclass(frozen=True)
class Change:
    """One thing apply will do, for one post file or one managed message."""

    action: str
    path: str | None
    message_id: str | None = None
    fields: tuple[FieldChange, ...] = ()
    publish: bool = False
    post: Post | None = dataclasses.field(default=None, compare=False, repr=False)
    message: Message | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    note: str | None = None
    replaces: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.action in REMOTE_ACTIONS

    def identity(self) -> dict[str, Any]:
        """What the checksum covers: the decision, not the moment it was made."""
        return {
            "action": self.action,
            "path": self.path,
            "id": self.message_id,
            "fields": {f.name: f.new for f in self.fields},
            "publish": self.publish,
        }


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything apply would do, and what the reviewer should know about."""

    changes: tuple[Change, ...]
    unchanged: int
    unmanaged: tuple[Message, ...]
    managed: int
    warnings: tuple[str, ...] = ()

    @property
    def checksum(self) -> str:
        canonical = json.dumps(
            [c.identity() for c in self.changes], sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)

    @property
    def risky_count(self) -> int:
        """Managed messages this plan deletes or patches; creates never count."""
        return self.count(DELETE) + self.count(UPDATE)


def make_plan(
    posts: Iterable[Post],
    inventory: Mapping[str, str],
    remote: Iterable[Message],
    now: dt.datetime,
    config: Config,
) -> Plan:
    """Decide what to do so that the account matches the post files."""
    posts = sorted(posts, key=lambda p: p.path)
    remote_by_id = {m.id: m for m in remote}
    by_path = {p.path: p for p in posts}
    problems: list[PostError] = []
    warnings: list[str] = []

    # Which file owns which message: the inventory decides, a file whose id
    # the inventory lacks claims it, and a copy of a file is a new post.
    claims = _claims(posts, inventory, by_path, problems)
    managed_ids = set(inventory) | set(claims.values())

    adoptable = _adoptable(remote_by_id, managed_ids, now, config)
    changes: list[Change] = []
    unchanged = 0

    for post in posts:
        message_id = claims.get(post.path)
        message = remote_by_id.get(message_id) if message_id else None

        if message_id and message is None:
            if post.nexus.status == "PUBLISHED":
                warnings.append(
                    f"{post.path}: message {message_id} was published and is gone "
                    "from Nexus Share; it is not posted again"
                )
                unchanged += 1
                continue
            note = f"message {message_id} no longer exists; creating it again"
            changes.append(_create(post, now, problems, note, replaces=message_id))
            continue

        if message is None:
            twin = adoptable.pop(_fingerprint_post(post), None)
            if twin:
                message = twin.pop(0)
                if twin:
                    adoptable[_fingerprint_post(post)] = twin
                changes.append(
                    Change(ADOPT, post.path, message.id, post=post, message=message)
                )
                continue
            changes.append(_create(post, now, problems))
            continue

        change = _compare(post, message, inventory, now, config, problems, warnings)
        if change is None:
            unchanged += 1
        else:
            changes.append(change)

    # Messages whose file is gone: cancel what has not gone out, forget the rest.
    for message_id, path in sorted(inventory.items(), key=lambda item: item[1]):
        if message_id in claims.values():
            continue
        message = remote_by_id.get(message_id)
        if message is not None and message.status in ADOPTABLE_ANY_AGE:
            changes.append(Change(DELETE, path, message_id, message=message))
        elif message is None or message.status != "DIRECT":
            changes.append(Change(FORGET, path, message_id, message=message))

    if problems:
        raise InvalidPosts(problems)

    adopted = {c.message_id for c in changes if c.action == ADOPT}
    unmanaged = tuple(
        m
        for m in sorted(remote_by_id.values(), key=lambda m: m.id)
        if m.id not in managed_ids and m.id not in adopted
    )
    for change in changes:
        if change.message and change.message.status == "FAILED":
            warnings.append(
                f"{change.path}: message {change.message_id} FAILED: "
                f"{change.message.error or 'no reason given'}"
            )
    plan = Plan(
        changes=tuple(changes),
        unchanged=unchanged,
        unmanaged=unmanaged,
        managed=len(managed_ids),
        warnings=tuple(warnings),
    )
    log.info(
        "plan: %d change(s), %d unchanged, %d unmanaged",
        len(changes),
        unchanged,
        len(unmanaged),
    )
    return plan


def desired_block(message: Message, config: Config) -> dict[str, Any]:
    """The `nexus:` block a file should carry for `message`."""
    published = message.status == "PUBLISHED"
    block = NexusBlock(
        id=message.id,
        status=message.status,
        published_at=message.published_at if published else None,
        error=message.error if message.status == "FAILED" else None,
        external_ids=message.external_ids if published else (),
        urls=tuple(post_urls(message, config).items()) if published else (),
    )
    return block.as_yaml()


def post_urls(message: Message, config: Config) -> dict[str, str]:
    """Links to the published post on each platform that can be linked."""
    urls = {}
    for platform, external_id in message.external_ids:
        if platform == "x":
            urls["x"] = f"https://x.com/i/web/status/{external_id}"
        elif platform == "linkedin":
            urls["linkedin"] = f"https://www.linkedin.com/feed/update/{external_id}"
        elif platform == "bluesky" and config.bluesky_handle:
            urls["bluesky"] = (
                f"https://bsky.app/profile/{config.bluesky_handle}/post/{external_id}"
            )
    return urls


def request_body(post: Post) -> dict[str, Any]:
    """The body of a create for `post`."""
    body: dict[str, Any] = {"content": post.content, "platforms": list(post.platforms)}
    if post.title:
        body["title"] = post.title
    if post.desired_schedule:
        body["scheduledFor"] = post.desired_schedule
    return body


def patch_body(change: Change) -> dict[str, Any]:
    return {field.name: field.new for field in change.fields}


def _claims(
    posts: list[Post],
    inventory: Mapping[str, str],
    by_path: Mapping[str, Post],
    problems: list[PostError],
) -> dict[str, str]:
    claims: dict[str, str] = {}
    unrecorded: dict[str, list[Post]] = defaultdict(list)
    recorded_for = {path: message_id for message_id, path in inventory.items()}
    for post in posts:
        message_id = post.nexus.id
        if not message_id:
            # A file whose nexus: block was removed by hand keeps its message.
            if post.path in recorded_for:
                claims[post.path] = recorded_for[post.path]
            continue
        owner = inventory.get(message_id)
        if owner is None:
            unrecorded[message_id].append(post)
        elif owner == post.path:
            claims[post.path] = message_id
        else:
            other = by_path.get(owner)
            if other is None or other.nexus.id != message_id:
                claims[post.path] = message_id  # renamed, or taken over
            # else: a copy of another file; it becomes a new post

    for message_id, claimants in unrecorded.items():
        if len(claimants) > 1:
            first, *rest = claimants
            for other in rest:
                problems.append(
                    PostError(
                        other.path,
                        1,
                        f"claims message {message_id}, as {first.path} does; "
                        "remove the nexus: block from the file that is a copy",
                    )
                )
        else:
            claims[claimants[0].path] = message_id
    return claims


def _adoptable(
    remote: Mapping[str, Message],
    managed: set[str],
    now: dt.datetime,
    config: Config,
) -> dict[tuple, list[Message]]:
    window = dt.timedelta(days=config.adoption_window_days)
    found: dict[tuple, list[Message]] = defaultdict(list)
    for message in sorted(remote.values(), key=lambda m: m.id):
        if message.id in managed:
            continue
        if message.status not in ADOPTABLE_ANY_AGE:
            created = _parse(message.created_at)
            if created is None or now - created > window:
                continue
        found[_fingerprint_message(message)].append(message)
    return found


def _fingerprint_post(post: Post) -> tuple:
    return (
        post.content,
        post.title or None,
        frozenset(post.platforms),
        post.desired_schedule,
    )


def _fingerprint_message(message: Message) -> tuple:
    return (
        message.content,
        message.title,
        frozenset(message.platforms),
        message.scheduled_for,
    )


def _create(
    post: Post,
    now: dt.datetime,
    problems: list[PostError],
    note: str | None = None,
    replaces: str | None = None,
) -> Change:
    _check_future(post, now, problems)
    return Change(
        CREATE,
        post.path,
        publish=post.publish_now,
        post=post,
        note=note,
        replaces=replaces,
    )


def _compare(
    post: Post,
    message: Message,
    inventory: Mapping[str, str],
    now: dt.datetime,
    config: Config,
    problems: list[PostError],
    warnings: list[str],
) -> Change | None:
    fields = _field_changes(post, message)
    block_differs = post.nexus.as_yaml() != desired_block(message, config)
    recorded = inventory.get(message.id) == post.path
    note = None if recorded else f"recorded in {INVENTORY_FILE} for this file"

    if message.status in EDITABLE and fields:
        if any(f.name == "scheduledFor" and f.new for f in fields):
            _check_future(post, now, problems)
        publish = post.publish_now and message.status != "FAILED"
        return Change(
            UPDATE, post.path, message.id, tuple(fields), publish, post, message, note
        )

    if message.status in ADOPTABLE_ANY_AGE and post.publish_now:
        return Change(PUBLISH, post.path, message.id, (), True, post, message, note)

    if fields and message.status in ("PUBLISHED", "DIRECT"):
        names = ", ".join(f.name for f in fields)
        warnings.append(
            f"{post.path}: {names} edited after message {message.id} was "
            f"{message.status.lower()}; published posts cannot change, so nothing "
            "is sent"
        )

    if block_differs or not recorded:
        return Change(WRITEBACK, post.path, message.id, (), False, post, message, note)
    return None


def _field_changes(post: Post, message: Message) -> list[FieldChange]:
    changes = []
    if post.content != message.content:
        changes.append(FieldChange("content", message.content, post.content))
    if (post.title or None) != message.title:
        changes.append(FieldChange("title", message.title, post.title or None))
    if frozenset(post.platforms) != frozenset(message.platforms):
        changes.append(
            FieldChange("platforms", list(message.platforms), list(post.platforms))
        )
    if post.desired_schedule != message.scheduled_for:
        changes.append(
            FieldChange("scheduledFor", message.scheduled_for, post.desired_schedule)
        )
    return changes


def _check_future(post: Post, now: dt.datetime, problems: list[PostError]) -> None:
    moment = _parse(post.desired_schedule)
    if moment is not None and moment <= now:
        problems.append(
            PostError(
                post.path,
                post.scheduled_line,
                f"scheduledFor {post.desired_schedule} is in the past; choose a "
                "later time or remove scheduledFor to keep a draft",
            )
        )


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


def _instant(value: str | None) -> str | None:
    moment = _parse(value)
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
