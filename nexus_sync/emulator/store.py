"""The emulator's messages in SQLite, with the service's rules for them."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rfc3339_validator import validate_rfc3339

PLATFORMS = ("x", "linkedin", "bluesky")
STATUSES = ("DRAFT", "SCHEDULED", "DIRECT", "PUBLISHED", "FAILED")
LISTABLE_STATUSES = STATUSES
FROZEN = ("PUBLISHED", "DIRECT")
CREATE_FIELDS = ("content", "platforms", "scheduledFor", "title")
MAX_CONTENT = 10000
MAX_TITLE = 500
MAX_IDEMPOTENCY_KEY = 255
# How long a request waits for another process's transaction on the same file.
BUSY_TIMEOUT_SECONDS = 30.0
# What the application passes for a body that does not parse, so that the
# store can answer 404 or 409 before it judges the body.
INVALID_JSON = object()
PUBLISH_ERROR = "{platform}: the platform rejected the post (emulated failure)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL,
    status TEXT NOT NULL,
    content TEXT NOT NULL,
    targets TEXT NOT NULL,
    title TEXT,
    scheduled_for TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_attempt_at TEXT,
    published_at TEXT,
    error TEXT,
    external_ids TEXT,
    attempt_ends_at TEXT
);
CREATE INDEX IF NOT EXISTS messages_user ON messages (user, seq);
CREATE TABLE IF NOT EXISTS issued_ids (
    user TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    user TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (user, key)
);
"""


class ServiceError(Exception):
    """An answer of the documented error form `{"error", "details"}`."""

    def __init__(
        self,
        status: int,
        error: str,
        details: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {details}")
        self.status = status
        self.error = error
        self.details = details
        self.headers = headers


def validation(details: str) -> ServiceError:
    return ServiceError(422, "Validation Error", details)


def not_found(message_id: str) -> ServiceError:
    return ServiceError(404, "Not Found", f"Message {message_id} not found")


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


class Store:
    """Messages of every user; each call is one transaction.

    `publish_failure_rate` and `publish_delay_seconds` follow the emulator's
    knobs; `publishes` counts the publish attempts made (sends to platforms).
    """

    def __init__(self, path: Path | str, seed: int | None = None) -> None:
        # Another process on the same file (two `--local` commands at once)
        # holds the write lock only for one request; waiting is the answer.
        self._db = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._upgrade()
        self._lock = threading.RLock()
        self.random = random.Random(seed)
        self.publish_failure_rate = 0.0
        self.publish_delay_seconds = 0.0
        self.publishes = 0

    def close(self) -> None:
        self._db.close()

    def _upgrade(self) -> None:
        # State folders made by an older emulator lack the newer columns.
        columns = {
            row["name"] for row in self._db.execute("PRAGMA table_info(messages)")
        }
        if "attempt_ends_at" not in columns:
            self._db.execute("ALTER TABLE messages ADD COLUMN attempt_ends_at TEXT")
        # Every request first looks for messages that are due; without these
        # each one would read all of the user's messages.
        self._db.executescript(
            "CREATE INDEX IF NOT EXISTS messages_due "
            "ON messages (user, status, scheduled_for);"
            "CREATE INDEX IF NOT EXISTS messages_ending "
            "ON messages (user, status, attempt_ends_at);"
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # One call is one transaction, and the idempotent calls run another
        # call inside theirs: only the outermost begins and ends it. It takes
        # the write lock when it begins (IMMEDIATE), not at its first write,
        # so that no other process can change what it has read: the threading
        # lock keeps out other threads, SQLite's lock other processes.
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()

    # -- reads -------------------------------------------------------------

    def list(
        self,
        user: str,
        now: dt.datetime,
        limit: int,
        next_token: str | None,
        statuses: list[str] | None,
        platform: str | None,
    ) -> dict[str, Any]:
        # The cursor is the creation sequence of the last message returned, so
        # creates (always later) and deletes between pages move nothing.
        after = _decode_token(next_token, user) if next_token is not None else 0
        with self._transaction():
            self._advance(user, now)
            query = "SELECT * FROM messages WHERE user = ? AND seq > ?"
            args: list[Any] = [user, after]
            if statuses:
                query += f" AND status IN ({','.join('?' * len(statuses))})"
                args.extend(statuses)
            if platform:
                query += " AND targets LIKE ?"
                args.append(f'%"{platform}"%')
            query += " ORDER BY seq LIMIT ?"
            rows = self._db.execute(query, [*args, limit + 1]).fetchall()

        more = len(rows) > limit
        rows = rows[:limit]
        token = _encode_token(rows[-1]["seq"], user) if more else None
        return {
            "messages": [_message(row) for row in rows],
            "pagination": {"limit": limit, "nextToken": token, "hasMore": more},
        }

    def get(self, user: str, message_id: str, now: dt.datetime) -> dict[str, Any]:
        with self._transaction():
            self._advance(user, now)
            return _message(self._row(user, message_id))

    # -- writes ------------------------------------------------------------

    def create(self, user: str, body: Any, now: dt.datetime) -> dict[str, Any]:
        fields = check_fields(body, now, creating=True)
        with self._transaction():
            message_id = self._new_id(user, now)
            stamp = iso(now)
            self._db.execute(
                "INSERT INTO messages (id, user, status, content, targets, title, "
                "scheduled_for, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    message_id,
                    user,
                    "SCHEDULED" if fields.get("scheduledFor") else "DRAFT",
                    fields["content"],
                    json.dumps(fields["platforms"]),
                    fields.get("title"),
                    fields.get("scheduledFor"),
                    stamp,
                    stamp,
                ),
            )
            return _message(self._row(user, message_id))

    def update(
        self, user: str, message_id: str, body: Any, now: dt.datetime
    ) -> dict[str, Any]:
        with self._transaction():
            self._advance(user, now)
            # Which message, then whether it may change, then how: 404, 409, 422.
            row = self._row(user, message_id)
            _refuse_frozen(row, "updated")
            fields = check_fields(body, now, creating=False)
            status = row["status"]
            if "scheduledFor" in fields:
                status = "SCHEDULED" if fields["scheduledFor"] else "DRAFT"
            columns = {
                "content": fields.get("content", row["content"]),
                "targets": json.dumps(fields["platforms"])
                if "platforms" in fields
                else row["targets"],
                "title": fields["title"] if "title" in fields else row["title"],
                "scheduled_for": fields["scheduledFor"]
                if "scheduledFor" in fields
                else row["scheduled_for"],
                "status": status,
                "error": row["error"] if status == "FAILED" else None,
                "updated_at": iso(now),
            }
            assignments = ", ".join(f"{name} = ?" for name in columns)
            self._db.execute(
                f"UPDATE messages SET {assignments} WHERE id = ?",
                [*columns.values(), message_id],
            )
            return _message(self._row(user, message_id))

    def delete(self, user: str, message_id: str, now: dt.datetime) -> None:
        with self._transaction():
            self._advance(user, now)
            row = self._row(user, message_id)
            _refuse_frozen(row, "deleted")
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def publish(self, user: str, message_id: str, now: dt.datetime) -> dict[str, Any]:
        with self._transaction():
            self._advance(user, now)
            row = self._row(user, message_id)
            _refuse_frozen(row, "published")
            self._start_attempt(row["id"], now)
            self._advance(user, now)
            return _message(self._row(user, message_id))

    # -- idempotency -------------------------------------------------------

    def idempotent(
        self,
        user: str,
        key: str,
        fingerprint: str,
        run: Callable[[], tuple[int, dict[str, Any]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """The first answer given to `key`, or run and remember the answer.

        Returns (status, body, replayed). Only successes are remembered: a
        refused request changed nothing, so trying again with the same key is
        a new request.
        """
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise validation(
                f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters"
            )
        with self._transaction():
            row = self._db.execute(
                "SELECT * FROM idempotency WHERE user = ? AND key = ?", (user, key)
            ).fetchone()
            if row is not None:
                if row["fingerprint"] != fingerprint:
                    raise ServiceError(
                        422,
                        "Idempotency Key Reused",
                        "This Idempotency-Key was used with a different request",
                    )
                return row["status"], json.loads(row["body"]), True
            status, body = run()
            self._db.execute(
                "INSERT INTO idempotency VALUES (?,?,?,?,?)",
                (user, key, fingerprint, status, json.dumps(body)),
            )
            return status, body, False

    # -- internals ---------------------------------------------------------

    def _row(self, user: str, message_id: str) -> sqlite3.Row:
        row = self._db.execute(
            "SELECT * FROM messages WHERE id = ? AND user = ?", (message_id, user)
        ).fetchone()
        if row is None:
            # Another user's message answers exactly like one that never was.
            raise not_found(message_id)
        return row

    def _new_id(self, user: str, now: dt.datetime) -> str:
        # An id is never given twice, not even after its message was deleted:
        # a client that still holds the old id must not find a stranger there.
        millis = int(now.timestamp() * 1000)
        issued = self._db.execute(
            "SELECT last FROM issued_ids WHERE user = ?", (user,)
        ).fetchone()
        last = self._db.execute(
            "SELECT id FROM messages WHERE user = ? ORDER BY seq DESC LIMIT 1",
            (user,),
        ).fetchone()
        if issued is not None:
            millis = max(millis, issued["last"] + 1)
        if last is not None:
            millis = max(millis, int(last["id"].rsplit("|", 1)[1]) + 1)
        self._db.execute(
            "INSERT INTO issued_ids VALUES (?, ?) "
            "ON CONFLICT (user) DO UPDATE SET last = excluded.last",
            (user, millis),
        )
        return f"POST|{user}|{millis}"

    def _advance(self, user: str, now: dt.datetime) -> None:
        # The service publishes a scheduled message when its time comes, and a
        # publish takes a while (DIRECT) before it is PUBLISHED or FAILED. The
        # emulator catches up on both lazily, on each request, from its clock:
        # an attempt starts at the scheduled time, not at the request.
        stamp = iso(now)
        due = self._db.execute(
            "SELECT id, scheduled_for FROM messages WHERE user = ? "
            "AND status = 'SCHEDULED' AND scheduled_for <= ?",
            (user, stamp),
        ).fetchall()
        for row in due:
            self._start_attempt(row["id"], parse_iso(row["scheduled_for"]))
        ending = self._db.execute(
            "SELECT id, targets, attempt_ends_at FROM messages WHERE user = ? "
            "AND status = 'DIRECT' AND attempt_ends_at <= ? ORDER BY seq",
            (user, stamp),
        ).fetchall()
        for row in ending:
            self._end_attempt(row, parse_iso(row["attempt_ends_at"]))

    def _start_attempt(self, message_id: str, start: dt.datetime) -> None:
        self.publishes += 1
        ends = start + dt.timedelta(seconds=self.publish_delay_seconds)
        self._db.execute(
            "UPDATE messages SET status='DIRECT', last_attempt_at=?, updated_at=?, "
            "attempt_ends_at=?, error=NULL WHERE id=?",
            (iso(start), iso(start), iso(ends), message_id),
        )

    def _end_attempt(self, row: sqlite3.Row, end: dt.datetime) -> None:
        stamp = iso(end)
        targets = json.loads(row["targets"])
        if self.random.random() < self.publish_failure_rate:
            error = PUBLISH_ERROR.format(platform=self.random.choice(targets))
            self._db.execute(
                "UPDATE messages SET status='FAILED', error=?, updated_at=?, "
                "attempt_ends_at=NULL WHERE id=?",
                (error, stamp, row["id"]),
            )
            return
        external = {
            platform: external_id(platform, end, self.random) for platform in targets
        }
        self._db.execute(
            "UPDATE messages SET status='PUBLISHED', published_at=?, updated_at=?, "
            "external_ids=?, error=NULL, attempt_ends_at=NULL WHERE id=?",
            (stamp, stamp, json.dumps(external), row["id"]),
        )


def check_fields(body: Any, now: dt.datetime, creating: bool) -> dict[str, Any]:
    """The documented validation of a create or patch body, normalized."""
    if body is INVALID_JSON:
        raise validation("Request body is not valid JSON")
    if not isinstance(body, dict):
        raise validation("Request body must be a JSON object")
    unknown = sorted(set(body) - set(CREATE_FIELDS))
    if unknown:
        raise validation(f"Unknown field(s): {', '.join(unknown)}")
    if creating:
        for name in ("content", "platforms"):
            if name not in body:
                raise validation(f"{name} is required")
    elif not body:
        raise validation(
            f"Request body must set at least one of {', '.join(CREATE_FIELDS)}"
        )

    fields: dict[str, Any] = {}
    if "content" in body:
        content = body["content"]
        if (
            not isinstance(content, str)
            or not 1 <= len(content) <= MAX_CONTENT
            or not _is_text(content)
        ):
            raise validation(f"Content must be between 1 and {MAX_CONTENT} characters")
        fields["content"] = content
    if "title" in body:
        title = body["title"]
        if title is not None and (
            not isinstance(title, str) or len(title) > MAX_TITLE or not _is_text(title)
        ):
            raise validation(
                f"Title must be a string of at most {MAX_TITLE} characters"
            )
        fields["title"] = title or None
    if "platforms" in body:
        fields["platforms"] = _platforms(body["platforms"])
    if "scheduledFor" in body and body["scheduledFor"] is not None:
        fields["scheduledFor"] = _schedule(body["scheduledFor"], now)
    elif "scheduledFor" in body and not creating:
        fields["scheduledFor"] = None
    return fields


def _platforms(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise validation("platforms must be a non-empty array")
    platforms: list[str] = []
    for item in value:
        name = item.lower() if isinstance(item, str) else None
        if name not in PLATFORMS:
            raise validation(
                f"Invalid platform {item!r}; valid platforms: x, linkedin, bluesky"
            )
        if name not in platforms:
            platforms.append(name)
    return platforms


def _schedule(value: Any, now: dt.datetime) -> str:
    if not isinstance(value, str) or not validate_rfc3339(value):
        raise validation("scheduledFor must be an ISO 8601 timestamp with a UTC offset")
    try:
        moment = dt.datetime.fromisoformat(value.upper()).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        # RFC 3339 allows a leap second (:60), and offsets that carry a time
        # out of the years 1-9999; no calendar holds those.
        raise validation(
            "scheduledFor must be an ISO 8601 timestamp with a UTC offset"
        ) from None
    if moment <= now:
        raise validation("scheduledFor must be in the future")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_text(value: str) -> bool:
    # JSON can carry lone surrogates ("\ud800"), which are no text to post.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_frozen(row: sqlite3.Row, verb: str) -> None:
    if row["status"] in FROZEN:
        raise ServiceError(
            409,
            "Conflict",
            f"Message {row['id']} is {row['status']} and cannot be {verb}",
        )


def _message(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "scheduledFor": row["scheduled_for"],
        "content": row["content"],
        "targets": json.loads(row["targets"]),
        "title": row["title"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "lastAttemptAt": row["last_attempt_at"],
        "publishedAt": row["published_at"],
        "error": row["error"],
        "externalIds": json.loads(row["external_ids"]) if row["external_ids"] else None,
    }


# X's snowflake epoch (2010-11-04T01:42:54.657Z), in milliseconds.
X_EPOCH_MS = 1288834974657
# Bluesky record keys are TIDs: 64 bits in a sortable base32, 13 characters.
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def external_id(platform: str, moment: dt.datetime, rng: random.Random) -> str:
    """A post id as each platform makes them, for a post made at `moment`."""
    millis = int(moment.timestamp() * 1000)
    if platform == "x":
        # A snowflake: milliseconds since X's epoch, then 22 bits of machine
        # and sequence.
        return str((max(0, millis - X_EPOCH_MS) << 22) | rng.getrandbits(22))
    if platform == "linkedin":
        # LinkedIn share ids are snowflake-like 19-digit numbers in a URN.
        return f"urn:li:share:{rng.randrange(7 * 10**18, 8 * 10**18)}"
    # A TID: microseconds since 1970 (53 bits), then a 10-bit clock id.
    micros = max(0, int(moment.timestamp() * 1_000_000))
    value = ((micros & (2**53 - 1)) << 10) | rng.getrandbits(10)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _encode_token(seq: int, user: str) -> str:
    raw = json.dumps({"after": seq, "u": _user_tag(user)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, user: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        if data["u"] != _user_tag(user):
            raise ValueError
        after = data["after"]
        if isinstance(after, bool) or not isinstance(after, int):
            raise TypeError
        return after
    except (ValueError, KeyError, TypeError):
        raise validation("nextToken is not a token this API returned") from None


def _user_tag(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()[:8]


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


__all__ = ["ServiceError", "Store", "check_fields", "fingerprint"]
