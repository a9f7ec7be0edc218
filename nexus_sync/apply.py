"""Carries a Plan out through the client, recording each result as it lands."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging

from typing import Callable

from . import plan as plans
from .client import NexusClient
from .config import Config
from .errors import NexusSyncError
from .inventory import save_inventory
from .plan import Change, Message, Plan, desired_block, patch_body, request_body
from .posts import Post
from .writeback import write_nexus_block

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Result:
    """What an apply did, what failed and what it never started."""

    done: list[tuple[Change, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[Change, str]] = dataclasses.field(default_factory=list)
    not_started: list[Change] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_started


def idempotency_key(action: str, post: Post, message_id: str | None = None) -> str:
    """The same post with the same content always sends the same key."""
    material = json.dumps(
        [action, post.path, message_id, plans.request_body(post)], sort_keys=True
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class Applier:
    """Runs the changes of one plan against one account."""

    def __init__(
        self,
        client: NexusClient,
        config: Config,
        inventory: dict[str, str],
        parallelism: int = 4,
        on_progress: Callable[[Change], None] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.inventory = dict(inventory)
        self.parallelism = parallelism
        self.on_progress = on_progress or (lambda change: None)
        self._stopped = False

    async def apply(self, plan: Plan) -> Result:
        result = Result()

        # Deletes go first, so that a file moved to a new schedule never
        # shares the calendar with the message it replaces.
        deletes = [c for c in plan.changes if c.action == plans.DELETE]
        others = [c for c in plan.changes if c.action != plans.DELETE]
        for batch in (deletes, others):
            await self._run_batch(batch, result)
        return result

    async def _run_batch(self, changes: list[Change], result: Result) -> None:
        gate = asyncio.Semaphore(self.parallelism)

        async def run(change: Change) -> None:
            async with gate:
                if self._stopped:
                    result.not_started.append(change)
                    return
                try:
                    summary = await self._apply_one(change)
                except NexusSyncError as error:
                    # Nothing new starts; what is in flight finishes.
                    self._stopped = True
                    result.failed.append((change, str(error)))
                    log.error("%s %s failed: %s", change.action, change.path, error)
                    return
                result.done.append((change, summary))
                self.on_progress(change)

        await asyncio.gather(*(run(change) for change in changes))

    async def _apply_one(self, change: Change) -> str:
        action = change.action
        post = change.post

        if action == plans.DELETE:
            await self.client.delete_message(change.message_id)
            self._record(change.message_id, None)
            return f"deleted {change.message_id}"

        if action == plans.FORGET:
            self._record(change.message_id, None)
            return f"forgot {change.message_id}"

        if action in (plans.ADOPT, plans.WRITEBACK):
            if change.replaces:
                self._record(change.replaces, None)
            self._write(post, change.message)
            message_id = change.message.id
            verb = f"recorded {message_id}"
        elif action == plans.CREATE:
            data = await self.client.create_message(
                request_body(post), idempotency_key("create", post, change.replaces)
            )
            if change.replaces:
                self._record(change.replaces, None)
            self._write(post, Message.from_api(data))
            message_id = data["id"]
            verb = f"created {message_id}"
        elif action == plans.UPDATE:
            message_id = change.message_id
            data = await self.client.update_message(message_id, patch_body(change))
            self._write(post, Message.from_api(data))
            verb = f"updated {message_id} ({', '.join(f.name for f in change.fields)})"
        else:
            message_id = change.message_id
            verb = ""

        if change.publish:
            data = await self.client.publish_message(
                message_id, idempotency_key("publish", post, message_id)
            )
            self._write(post, Message.from_api(data))
            verb = f"{verb}, published" if verb else f"published {message_id}"
        return verb

    def _write(self, post: Post, message: Message) -> None:
        write_nexus_block(
            self.config.root / post.path, desired_block(message, self.config)
        )
        self._record(message.id, post.path)

    def _record(self, message_id: str, path: str | None) -> None:
        if path is None:
            self.inventory.pop(message_id, None)
        else:
            self.inventory[message_id] = path
        save_inventory(self.config.root, self.inventory)


async def apply_plan(
    plan: Plan,
    client: NexusClient,
    config: Config,
    inventory: dict[str, str],
    parallelism: int,
    on_progress: Callable[[Change], None] | None = None,
) -> Result:
    applier = Applier(client, config, inventory, parallelism, on_progress)
    return await applier.apply(plan)


