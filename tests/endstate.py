"""The promises checked after a crash or a soak: what the account and files hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nexus_sync.config import load_config
from nexus_sync.inventory import load_inventory
from nexus_sync.plan import Message
from nexus_sync.posts import Post, load_posts

Fingerprint = tuple[str, str | None, tuple[str, ...], str | None]


def post_fingerprint(post: Post) -> Fingerprint:
    return (
        post.content,
        post.title or None,
        tuple(sorted(post.platforms)),
        post.desired_schedule,
    )


def message_fingerprint(message: Message) -> Fingerprint:
    return (
        message.content,
        message.title,
        tuple(sorted(message.platforms)),
        message.scheduled_for,
    )


def expected_status(post: Post) -> str:
    if post.publish_now:
        return "PUBLISHED"
    return "SCHEDULED" if post.desired_schedule else "DRAFT"


def end_state_problems(root: Path, account: Iterable[dict[str, Any]]) -> list[str]:
    """Every way the files, the inventory and the account disagree; [] if none."""
    config = load_config(root, environ={})
    posts, problems = load_posts(config)
    found = [f"does not parse: {problem}" for problem in problems]
    messages = [Message.from_api(data) for data in account]
    by_id = {message.id: message for message in messages}

    # Exactly the desired messages, each once: the two multisets are equal.
    desired = Counter(post_fingerprint(post) for post in posts)
    actual = Counter(message_fingerprint(message) for message in messages)
    for fingerprint, count in sorted((desired - actual).items()):
        found.append(f"missing from the account ({count}x): {fingerprint}")
    for fingerprint, count in sorted((actual - desired).items()):
        found.append(f"in the account {count}x too many: {fingerprint}")
    if len(by_id) != len(messages):
        found.append("the account lists one id twice")

    owners: dict[str, str] = {}
    for post in posts:
        message = by_id.get(post.nexus.id or "")
        if message is None:
            found.append(f"{post.path}: nexus.id {post.nexus.id!r} not in the account")
            continue
        if post.nexus.id in owners:
            found.append(
                f"{post.path}: shares {post.nexus.id} with {owners[post.nexus.id]}"
            )
        owners[post.nexus.id] = post.path
        if message_fingerprint(message) != post_fingerprint(post):
            found.append(f"{post.path}: {message.id} differs from the file")
        if message.status != expected_status(post):
            found.append(
                f"{post.path}: {message.id} is {message.status}, "
                f"expected {expected_status(post)}"
            )
        if post.nexus.status != message.status:
            found.append(
                f"{post.path}: file says {post.nexus.status}, account {message.status}"
            )

    inventory = load_inventory(root)
    if inventory != owners:
        extra = sorted(set(inventory.items()) - set(owners.items()))
        lacking = sorted(set(owners.items()) - set(inventory.items()))
        found.append(f"inventory differs: extra {extra}, lacking {lacking}")
    return found
