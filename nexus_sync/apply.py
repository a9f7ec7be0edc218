"""Carries a Plan out through the client, recording each result as it lands."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable

from . import plan as plans
from .auth import redact
from .client import NexusClient
from .config import Config
from .errors import ApiError, NexusSyncError, OutcomeUnknown, PublishFailed
from .inventory import save_inventory
from .plan import Change, Message, Plan, desired_block, patch_body, request_body
from .posts import Post
from .writeback import write_nexus_block

log = logging.getLogger(__name__)

# How often a create whose answer was lost is looked for and sent again.
CREATE_ROUNDS = 6
# A create answered with a message this much older than the apply is a
# replay of an earlier apply's create (same Idempotency-Key), not a new one.
REPLAY_AGE = dt.timedelta(minutes=2)


@dataclasses.dataclass
class Result:
    """What an apply did, what failed and what it never started."""

    done: list[tuple[Change, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[Change, str]] = dataclasses.field(default_factory=list)
    not_started: list[Change] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_started


def idempotency_key(
    action: str,
    post: Post,
    message_id: str | None = None,
    last_attempt: str | None = None,
) -> str:
    """The same post with the same content always sends the same key.

    `message_id` is the message a publish is for, or the vanished message a
    create replaces (so that the new create is not answered with the old one).
    `last_attempt` is when a publish of the message was last tried: after a
    publish that FAILED, the next one is a new attempt, not a replay of it.
    """
    parts = [action, post.path, message_id, plans.request_body(post)]
    if last_attempt is not None:
        parts.append(last_attempt)
    material = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def same_message(post: Post, message: Message) -> bool:
    """Whether `message` is what a create of `post` makes, as the reconciler
    compares them."""
    return plans.fingerprint_post(post) == plans.fingerprint_message(message)


class Applier:
    """Runs the changes of one plan against one account.

    Deletes first, then everything else, `parallelism` at a time. Each result
    is written to its file and to the inventory as soon as it lands. After the
    first failure nothing new starts; what is in flight finishes.
    """

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
        self._known: set[str] = set(inventory)
        self._listings = _Listings(client)
        self._twins: dict[tuple, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._began = dt.datetime.now(dt.UTC)
        self._saving = asyncio.Lock()
        self._version = 0
        self._saved = 0

    async def apply(self, plan: Plan) -> Result:
        result = Result()
        self._began = dt.datetime.now(dt.UTC)

        # Every message the plan saw belongs to someone already: a lost create
        # may only be resolved by a message that appeared after it.
        for change in plan.changes:
            self._known.update(i for i in (change.message_id, change.replaces) if i)
        self._known.update(message.id for message in plan.unmanaged)

        # Deletes go first, so that a file moved to a new schedule never
        # shares the calendar with the message it replaces.
        deletes = [c for c in plan.changes if c.action == plans.DELETE]
        others = [c for c in plan.changes if c.action != plans.DELETE]
        for batch in (deletes, others):
            await self._run_batch(batch, result)
        return result

    async def _run_batch(self, changes: list[Change], result: Result) -> None:
        waiting = collections.deque(changes)

        async def worker() -> None:
            while waiting and not self._stopped:
                await self._run(waiting.popleft(), result)

        workers = min(self.parallelism, len(changes))
        await asyncio.gather(*(worker() for _ in range(workers)))
        result.not_started.extend(waiting)

    async def _run(self, change: Change, result: Result) -> None:
        try:
            summary = await self._apply_one(change)
        except Exception as error:
            self._stopped = True
            if isinstance(error, NexusSyncError):
                text = redact(str(error))
            else:
                log.debug("unexpected failure", exc_info=True)
                text = redact(f"{type(error).__name__}: {error}")
            result.failed.append((change, text))
            log.error("%s %s failed: %s", change.action, change.where, text)
        else:
            result.done.append((change, summary))
            log.info("%s: %s", change.where, summary)
        self.on_progress(change)

    async def _apply_one(self, change: Change) -> str:
        action = change.action
        post = change.post

        if action == plans.DELETE:
            try:
                await self.client.delete_message(change.message_id)
            except ApiError as error:
                if error.status != 404:
                    raise
                # Deleted elsewhere since the plan: what the plan wanted.
                await self._record(change.message_id, None)
                return f"{change.message_id} was already deleted"
            await self._record(change.message_id, None)
            return f"deleted {change.message_id}"

        if action == plans.FORGET:
            await self._record(change.message_id, None)
            return f"forgot {change.message_id}"

        if action in (plans.ADOPT, plans.WRITEBACK):
            if change.replaces:
                await self._record(change.replaces, None)
            await self._write(post, change.message)
            message_id = change.message.id
            verb = f"recorded {message_id}"
        elif action == plans.CREATE:
            message, adopted = await self._create(change)
            if change.replaces:
                await self._record(change.replaces, None)
            await self._write(post, message)
            message_id = message.id
            verb = f"{'adopted' if adopted else 'created'} {message_id}"
        elif action == plans.UPDATE:
            message_id = change.message_id
            data = await self.client.update_message(message_id, patch_body(change))
            await self._write(post, Message.from_api(data))
            verb = f"updated {message_id} ({', '.join(f.name for f in change.fields)})"
        else:
            message_id = change.message_id
            verb = ""

        if change.publish:
            tried = change.message.last_attempt_at if change.message else None
            data = await self.client.publish_message(
                message_id, idempotency_key("publish", post, message_id, tried)
            )
            published = Message.from_api(data)
            await self._write(post, published)
            verb = _published(verb, published)
        return verb

    async def _create(self, change: Change) -> tuple[Message, bool]:
        """The created message, and whether it was found after a lost answer."""
        post = change.post
        body = request_body(post)
        key = idempotency_key("create", post, change.replaces)

        # The listing said the message is gone; a listing may leave some out,
        # so its own address has the last word before anything is sent again.
        if change.replaces and await self._exists(change.replaces):
            raise NexusSyncError(
                f"message {change.replaces} of {post.path} exists after all (the "
                "account's listing did not show it); nothing was sent; run "
                "`nexus-sync plan` again"
            )

        # Two posts that would make the same message never create at once, so
        # that a lost answer can only be resolved by this post's own message.
        # TODO: a create that timed out may still commit after the listing
        # that looked for it; the resend then relies on the Idempotency-Key,
        # and a service that ignores the key would make a second message
        # (shown as unmanaged by the next plan). Waiting out the service's
        # own request timeout before that listing would narrow the gap; the
        # documentation gives no such timeout to wait for.
        async with self._twins[plans.fingerprint_post(post)]:
            for _ in range(CREATE_ROUNDS):
                try:
                    data = await self.client.create_message(body, key)
                except OutcomeUnknown as lost:
                    log.warning(
                        "%s: %s; looking for the message before sending again",
                        post.path,
                        lost,
                    )
                    found = await self._find_created(post)
                    if found is not None:
                        return found, True
                    continue
                message = Message.from_api(data)
                if message.id in self._known or await self._gone(message):
                    # The key was first used by a create of an earlier apply,
                    # and the service answered with that message, which is
                    # another file's or deleted; a key naming it makes anew.
                    log.info(
                        "%s: %s is an earlier create's; creating anew",
                        post.path,
                        message.id,
                    )
                    key = idempotency_key("create", post, message.id)
                    continue
                self._known.add(message.id)
                return message, False

        raise OutcomeUnknown(
            f"the create of {post.path} went unanswered {CREATE_ROUNDS} times and "
            "no such message is on the account; run apply again (a message that "
            "appears later is adopted, not created twice)"
        )

    async def _gone(self, message: Message) -> bool:
        """Whether an answer to a create is an old one, of a deleted message.

        A new message is made at about the time it is asked for; only an
        answer made well before this apply began is checked with a GET.
        """
        created = plans.parse_time(message.created_at)
        if created is None or created > self._began - REPLAY_AGE:
            return False
        return not await self._exists(message.id)

    async def _exists(self, message_id: str) -> bool:
        try:
            await self.client.get_message(message_id)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def _find_created(self, post: Post) -> Message | None:
        """The message a lost create made, if the account has it now."""
        listing = await self._listings.after(asyncio.get_running_loop().time())
        found = [
            m for m in listing if m.id not in self._known and same_message(post, m)
        ]
        if not found:
            log.info("%s: its message is not on the account", post.path)
            return None
        message, *others = sorted(found, key=lambda m: m.id)
        self._known.add(message.id)
        if others:
            log.warning(
                "%s: more than one new message matches it (%s); adopting %s, the "
                "others are left alone and show as unmanaged",
                post.path,
                ", ".join(m.id for m in others),
                message.id,
            )
        log.info(
            "%s: adopting %s, made by a create whose answer was lost",
            post.path,
            message.id,
        )
        return message

    async def _write(self, post: Post, message: Message) -> None:
        # Disk writes (each with an fsync) run beside the event loop, so that
        # they do not hold up the requests of the other changes in flight.
        try:
            await asyncio.to_thread(
                write_nexus_block,
                self.config.root / post.path,
                desired_block(message, self.config),
            )
        finally:
            # The message is the post's even when the file could not take its
            # block: the inventory says so, and the next plan writes it back.
            self._known.add(message.id)
            await self._record(message.id, post.path)

    async def _record(self, message_id: str, path: str | None) -> None:
        if path is None:
            self.inventory.pop(message_id, None)
        else:
            self.inventory[message_id] = path
        self._version += 1
        wanted = self._version

        # One save at a time, of the newest record: changes that land while a
        # save is running are all covered by the next one.
        async with self._saving:
            if self._saved >= wanted:
                return
            version, snapshot = self._version, dict(self.inventory)
            await asyncio.to_thread(save_inventory, self.config.root, snapshot)
            self._saved = version


def _published(verb: str, message: Message) -> str:
    """What a publish did, after what came before it (`verb`, maybe empty).

    A publish that ended FAILED is raised: the message exists, but it did not
    go out, and only the user can say what to send instead.
    """
    if message.status == "FAILED":
        done = f"{verb}, but its publish" if verb else f"the publish of {message.id}"
        raise PublishFailed(
            f"{done} FAILED: {message.error or 'no reason given'}; "
            f"{plans.failed_advice(publish_now=True)}"
        )
    if message.status == "DIRECT":
        if verb:
            return f"{verb}, publish started (DIRECT)"
        return f"publish of {message.id} started (DIRECT)"
    return f"{verb}, published" if verb else f"published {message.id}"


class _Listings:
    """Listings of the account, shared by the lost creates that wait for one.

    A create's answer is looked for in a listing that began after the answer
    was lost; creates that lost theirs before a listing began share it.
    """

    def __init__(self, client: NexusClient) -> None:
        self._client = client
        self._started = float("-inf")
        self._current: asyncio.Future[list[Message]] | None = None

    async def after(self, moment: float) -> list[Message]:
        loop = asyncio.get_running_loop()
        if self._current is None or self._started < moment:
            self._started = loop.time()
            self._current = asyncio.ensure_future(self._list())
        return await asyncio.shield(self._current)

    async def _list(self) -> list[Message]:
        return [Message.from_api(data) for data in await self._client.list_messages()]


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
