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
from collections.abc import Iterable, Mapping
from typing import Any

from .config import Config
from .errors import InvalidPosts, PlanMismatch, PostError, TooMuchChange
from .inventory import INVENTORY_FILE
from .posts import BLOCK_KEYS, NexusBlock, Post, normalize_content

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

# How a change names a message that no post file manages.
UNMANAGED = "(unmanaged)"

EDITABLE = ("DRAFT", "SCHEDULED", "FAILED")
ADOPTABLE_ANY_AGE = ("DRAFT", "SCHEDULED")
# Statuses a DELETE may remove; a published post stays where it went out.
PRUNABLE = ("DRAFT", "SCHEDULED", "FAILED")


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
    last_attempt_at: str | None = None

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
            last_attempt_at=data.get("lastAttemptAt"),
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
    message: Message | None = dataclasses.field(default=None, compare=False, repr=False)
    note: str | None = None
    replaces: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.action in REMOTE_ACTIONS

    @property
    def where(self) -> str:
        """The file the change is for, as plans and apply name it; a message
        that no file manages (pruned) is `(unmanaged)`."""
        return self.path or UNMANAGED

    def identity(self) -> dict[str, Any]:
        """What the checksum covers: the decision and what it was made from."""
        return {
            "action": self.action,
            "path": self.path,
            "id": self.message_id,
            "fields": [[f.name, f.old, f.new] for f in self.fields],
            "publish": self.publish,
            "body": request_body(self.post) if self.action == CREATE else None,
            "replaces": self.replaces,
        }


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything apply would do, and what the reviewer should know about."""

    changes: tuple[Change, ...]
    unchanged: int
    unmanaged: tuple[Message, ...]
    managed: int
    warnings: tuple[str, ...] = ()
    prune_unmanaged: bool = False

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
        """Messages this plan deletes or patches; creates never count."""
        return self.count(DELETE) + self.count(UPDATE)

    @property
    def pruned(self) -> int:
        """Unmanaged messages deleted because of --prune-unmanaged."""
        return sum(1 for c in self.changes if c.action == DELETE and c.path is None)


def check_apply(
    plan: Plan, config: Config, expected_checksum: str | None, force: bool
) -> None:
    """Refuse a plan that is not the one reviewed, or that changes too much."""
    # An empty expectation (an unset variable in CI, say) is a mismatch too.
    if expected_checksum is not None and expected_checksum != plan.checksum:
        raise PlanMismatch(
            f"the plan changed since it was reviewed (checksum {plan.checksum}, "
            f"expected {expected_checksum}); run `nexus-sync plan` again and "
            "review it"
        )

    # Pruned messages count as managed here, so that pruning a whole account
    # is as visible as deleting every post file.
    base = plan.managed + plan.pruned
    if (
        not force
        and base >= config.min_managed_for_safety
        and plan.risky_count > config.max_change_fraction * base
    ):
        raise TooMuchChange(
            f"this plan deletes or updates {plan.risky_count} of {base} managed "
            f"messages, more than max_change_fraction {config.max_change_fraction:g}"
            f" ({config.max_change_fraction:.0%}, checked from "
            f"min_managed_for_safety {config.min_managed_for_safety}); review it "
            "and run again with --force if it is what you want"
        )


def make_plan(
    posts: Iterable[Post],
    inventory: Mapping[str, str],
    remote: Iterable[Message],
    now: dt.datetime,
    config: Config,
    prune_unmanaged: bool = False,
) -> Plan:
    """Decide what to do so that the account matches the post files."""
    posts = sorted(posts, key=lambda p: p.path)
    remote_by_id = {m.id: m for m in remote}
    problems: list[PostError] = []
    warnings: list[str] = []

    # Which file owns which message: the inventory decides, a file whose id
    # the inventory lacks claims it, and a copy of a file is a new post.
    claims, copies = _claims(posts, inventory, set(remote_by_id), problems, warnings)
    managed_ids = set(inventory) | set(claims.values())

    adoptable = _adoptable(remote_by_id, managed_ids, now, config)
    changes: list[Change] = []
    unchanged = 0

    for post in posts:
        message_id = claims.get(post.path)
        message = remote_by_id.get(message_id) if message_id else None

        if message is not None:
            fields = _field_changes(post, message)
            change = _compare(post, message, fields, inventory, now, config, problems)
            warnings.extend(_warnings(post, message, fields, change))
            if change is None:
                unchanged += 1
            else:
                changes.append(change)
            continue

        if message_id and post.nexus.status == "PUBLISHED":
            warnings.append(
                f"{post.path}: message {message_id} was published and is gone "
                "from Nexus Share; it is not posted again"
            )
            unchanged += 1
            continue

        # A post without a message. An identical unmanaged message is adopted
        # rather than sent again: it may be the create of a crashed apply.
        if message_id:
            note = f"message {message_id} no longer exists in Nexus Share"
        elif post.path in copies:
            note = (
                f"a copy of {copies[post.path]}: a new post; its nexus: block "
                "is replaced"
            )
        else:
            note = None
        twin = _take_twin(adoptable, post)
        if twin is not None:
            changes.append(
                Change(
                    ADOPT,
                    post.path,
                    twin.id,
                    publish=post.publish_now and twin.status in ADOPTABLE_ANY_AGE,
                    post=post,
                    message=twin,
                    note=_join(note, f"adopts the identical message {twin.id}"),
                    replaces=message_id,
                )
            )
        else:
            _check_future(post, now, problems)
            note = _join(note, "creating it again" if message_id else None)
            changes.append(
                Change(
                    CREATE,
                    post.path,
                    publish=post.publish_now,
                    post=post,
                    note=note,
                    replaces=message_id,
                )
            )

    # Messages whose file is gone: cancel what has not gone out, forget the rest.
    claimed = set(claims.values())
    for message_id, path in sorted(inventory.items(), key=lambda item: item[1]):
        if message_id in claimed:
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
    if prune_unmanaged:
        for message in unmanaged:
            if message.status in PRUNABLE:
                changes.append(
                    Change(
                        DELETE,
                        None,
                        message.id,
                        message=message,
                        note="unmanaged; deleted by --prune-unmanaged",
                    )
                )
        unmanaged = tuple(m for m in unmanaged if m.status not in PRUNABLE)

    plan = Plan(
        changes=tuple(changes),
        unchanged=unchanged,
        unmanaged=unmanaged,
        managed=len(managed_ids),
        warnings=tuple(warnings),
        prune_unmanaged=prune_unmanaged,
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
    remote_ids: set[str],
    problems: list[PostError],
    warnings: list[str],
) -> tuple[dict[str, str], dict[str, str]]:
    """Each file's message (path to id), and the files that are copies."""
    by_path = {post.path: post for post in posts}
    claims: dict[str, str] = {}

    # The inventory decides first: a recorded file that is still there keeps
    # its message, also when its nexus: block was removed by hand, or its id
    # edited into one that names no message at all.
    for message_id, path in inventory.items():
        post = by_path.get(path)
        if post is None:
            continue
        named = post.nexus.id
        if named in (None, message_id):
            claims[path] = message_id
        elif named not in inventory and named not in remote_ids:
            claims[path] = message_id
            warnings.append(
                f"{path}: its nexus: id {named!r} names no message; the file keeps "
                f"message {message_id} ({INVENTORY_FILE} says so) and the id is "
                "written back"
            )
    owners = {message_id: path for path, message_id in claims.items()}

    # A file naming a message that another file owns is a copy: a new post.
    # Otherwise it claims the message (renamed, or the inventory was lost),
    # unless a second file claims it too and nothing decides between them.
    copies: dict[str, str] = {}
    claimants: dict[str, list[Post]] = defaultdict(list)
    for post in posts:
        message_id = post.nexus.id
        if post.path in claims or not message_id:
            continue
        if message_id in owners:
            copies[post.path] = owners[message_id]
        else:
            claimants[message_id].append(post)

    for message_id, group in claimants.items():
        first, *others = group
        if not others:
            claims[first.path] = message_id
        for other in others:
            problems.append(
                PostError(
                    other.path,
                    other.line,
                    f"claims message {message_id}, as {first.path} does; keep "
                    "the nexus: block only in the file that owns the message "
                    "and remove it from the copy",
                )
            )
    return claims, copies


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
            created = parse_time(message.created_at)
            if created is None or now - created > window:
                continue
        found[fingerprint_message(message)].append(message)
    return found


def _take_twin(adoptable: dict[tuple, list[Message]], post: Post) -> Message | None:
    """The oldest unmanaged message identical to `post`, taken from the pool."""
    twins = adoptable.get(fingerprint_post(post))
    return twins.pop(0) if twins else None


def _join(*notes: str | None) -> str | None:
    return "; ".join(note for note in notes if note) or None


def fingerprint_post(post: Post) -> tuple:
    """What makes a message the one a create of `post` would make."""
    return (
        post.content,
        post.title or None,
        frozenset(post.platforms),
        post.desired_schedule,
    )


def fingerprint_message(message: Message) -> tuple:
    """The same as `fingerprint_post`, for a message of the account."""
    return (
        message.content,
        message.title,
        frozenset(message.platforms),
        message.scheduled_for,
    )


def _compare(
    post: Post,
    message: Message,
    fields: list[FieldChange],
    inventory: Mapping[str, str],
    now: dt.datetime,
    config: Config,
    problems: list[PostError],
) -> Change | None:
    block_changes = _block_changes(post.nexus.as_yaml(), desired_block(message, config))
    block_differs = bool(block_changes)
    recorded = inventory.get(message.id) == post.path
    note = None if recorded else f"recorded in {INVENTORY_FILE} for this file"

    if message.status in EDITABLE and fields:
        if any(f.name == "scheduledFor" and f.new for f in fields):
            _check_future(post, now, problems)
        # A failed post is sent again only once it has been edited.
        return Change(
            UPDATE,
            post.path,
            message.id,
            tuple(fields),
            post.publish_now,
            post,
            message,
            note,
        )

    if message.status == "DIRECT" and recorded:
        return None  # in flight: its outcome is written back on a later run

    if message.status in ADOPTABLE_ANY_AGE and post.publish_now:
        return Change(PUBLISH, post.path, message.id, (), True, post, message, note)

    if block_differs or not recorded:
        return Change(
            WRITEBACK,
            post.path,
            message.id,
            block_changes,
            False,
            post,
            message,
            note,
        )
    return None


def failed_advice(publish_now: bool) -> str:
    """How to send a post again whose message FAILED."""
    # The file may say `publish: now` already: then an edit is what sends it.
    if publish_now:
        return (
            "fix the post, then edit it to send it again (a changed post with "
            "`publish: now` goes out again)"
        )
    return "fix the post, then give it a new scheduledFor or `publish: now` to send it again"


def _warnings(
    post: Post, message: Message, fields: list[FieldChange], change: Change | None
) -> list[str]:
    """What the reviewer should know about a post that has its message."""
    if message.status == "FAILED" and (change is None or change.action != UPDATE):
        return [
            f"{post.path}: message {message.id} FAILED: "
            f"{message.error or 'no reason given'}; {failed_advice(post.publish_now)}"
        ]
    if message.status == "DIRECT":
        return [
            f"{post.path}: message {message.id} is being published; nothing is "
            "done until it has finished"
        ]
    if message.status == "PUBLISHED" and fields:
        names = ", ".join(f.name for f in fields)
        return [
            f"{post.path}: {names} edited after message {message.id} was "
            "published; a published post cannot change, so nothing is sent"
        ]
    return []


def _block_changes(
    current: Mapping[str, Any], desired: Mapping[str, Any]
) -> tuple[FieldChange, ...]:
    """The keys of the nexus: block that a write-back changes, in file order."""
    return tuple(
        FieldChange(f"nexus.{key}", current.get(key), desired.get(key))
        for key in BLOCK_KEYS
        if current.get(key) != desired.get(key)
    )


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
    moment = parse_time(post.desired_schedule)
    if moment is not None and moment <= now:
        problems.append(
            PostError(
                post.path,
                post.scheduled_line,
                f"scheduledFor {post.desired_schedule} is in the past; choose a "
                "later time or remove scheduledFor to keep a draft",
            )
        )


def parse_time(value: str | None) -> dt.datetime | None:
    """An ISO 8601 time of the service (UTC when it names no offset)."""
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def _instant(value: str | None) -> str | None:
    moment = parse_time(value)
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
