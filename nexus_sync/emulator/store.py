"""The emulator's messages in SQLite, with the service's rules for them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

PLATFORMS = ("x", "linkedin", "bluesky")
STATUSES = ("DRAFT", "SCHEDULED", "DIRECT", "PUBLISHED", "FAILED")
LISTABLE_STATUSES = STATUSES
FROZEN = ("PUBLISHED", "DIRECT")
CREATE_FIELDS = {"content", "platforms", "scheduledFor", "title"}

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
    external_ids TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (user, status, scheduled_for);
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

    def __init__(self, status: int, error: str, details: str) -> None:
        super().__init__(f"{status} {error}: {details}")
        self.status = status
        self.error = error
        self.details = details


def validation(details: str) -> ServiceError:
    return ServiceError(422, "Validation Error", details)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Store:
    """Messages of every user; each call is one transaction."""

    def __init__(self, path: Path | str, seed: int | None = None) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self.random = random.Random(seed)
        self.publish_failure_rate = 0.0

    def close(self) -> None:
        self._db.close()

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
        with self._lock, self._db:
            self._publish_due(user, now)
            after = _decode_token(next_token, user) if next_token else 0
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
        with self._lock, self._db:
            self._publish_due(user, now)
            return _message(self._row(user, message_id))

    # -- writes ------------------------------------------------------------

    def create(self, user: str, body: dict[str, Any], now: dt.datetime) -> dict:
        fields = check_fields(body, now, creating=True)
        with self._lock, self._db:
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
        self, user: str, message_id: str, body: dict[str, Any], now: dt.datetime
    ) -> dict[str, Any]:
        fields = check_fields(body, now, creating=False)
        with self._lock, self._db:
            self._publish_due(user, now)
            row = self._row(user, message_id)
            _refuse_frozen(row, "updated")
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
                "error": None if status != "FAILED" else row["error"],
                "updated_at": iso(now),
            }
            assignments = ", ".join(f"{name} = ?" for name in columns)
            self._db.execute(
                f"UPDATE messages SET {assignments} WHERE id = ?",
                [*columns.values(), message_id],
            )
            return _message(self._row(user, message_id))

    def delete(self, user: str, message_id: str, now: dt.datetime) -> None:
        with self._lock, self._db:
            self._publish_due(user, now)
            row = self._row(user, message_id)
            _refuse_frozen(row, "deleted")
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def publish(self, user: str, message_id: str, now: dt.datetime) -> dict:
        with self._lock, self._db:
            self._publish_due(user, now)
            row = self._row(user, message_id)
            _refuse_frozen(row, "published")
            self._send(row, now)
            return _message(self._row(user, message_id))

    # -- idempotency -------------------------------------------------------

    def replay(
        self, user: str, key: str, fingerprint: str
    ) -> tuple[int, dict[str, Any]] | None:
        """The first answer given to `key`, or None when the key is new."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM idempotency WHERE user = ? AND key = ?", (user, key)
            ).fetchone()
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise ServiceError(
                422,
                "Idempotency Key Reused",
                "This Idempotency-Key was used with a different request",
            )
        return row["status"], json.loads(row["body"])

    def remember(
        self, user: str, key: str, fingerprint: str, status: int, body: dict
    ) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO idempotency VALUES (?,?,?,?,?)",
                (user, key, fingerprint, status, json.dumps(body)),
            )

    # -- internals ---------------------------------------------------------

    def _row(self, user: str, message_id: str) -> sqlite3.Row:
        row = self._db.execute(
            "SELECT * FROM messages WHERE id = ? AND user = ?", (message_id, user)
        ).fetchone()
        if row is None:
            # Another user's message answers exactly like one that never was.
            raise ServiceError(404, "Not Found", f"Message {message_id} not found")
        return row

    def _new_id(self, user: str, now: dt.datetime) -> str:
        millis = int(now.timestamp() * 1000)
        last = self._db.execute(
            "SELECT id FROM messages WHERE user = ? ORDER BY seq DESC LIMIT 1",
            (user,),
        ).fetchone()
        if last is not None:
            millis = max(millis, int(last["id"].rsplit("|", 1)[1]) + 1)
        while self._db.execute(
            "SELECT 1 FROM messages WHERE id = ?", (f"POST|{user}|{millis}",)
        ).fetchone():
            millis += 1
        return f"POST|{user}|{millis}"

    def _publish_due(self, user: str, now: dt.datetime) -> None:
        # The service publishes scheduled messages when their time comes; the
        # emulator does it on every request, from its own clock.
        due = self._db.execute(
            "SELECT * FROM messages WHERE user = ? AND status = 'SCHEDULED' "
            "AND scheduled_for <= ?",
            (user, iso(now)),
        ).fetchall()
        for row in due:
            self._send(row, now)

    def _send(self, row: sqlite3.Row, now: dt.datetime) -> None:
        stamp = iso(now)
        if self.random.random() < self.publish_failure_rate:
            self._db.execute(
                "UPDATE messages SET status='FAILED', error=?, last_attempt_at=?, "
                "updated_at=? WHERE id=?",
                (
                    "Platform rejected the post (emulated failure)",
                    stamp,
                    stamp,
                    row["id"],
                ),
            )
            return
        external = {
            platform: _external_id(platform, self.random)
            for platform in json.loads(row["targets"])
        }
        self._db.execute(
            "UPDATE messages SET status='PUBLISHED', published_at=?, "
            "last_attempt_at=?, updated_at=?, external_ids=?, error=NULL "
            "WHERE id=?",
            (stamp, stamp, stamp, json.dumps(external), row["id"]),
        )


def check_fields(body: Any, now: dt.datetime, creating: bool) -> dict[str, Any]:
    """The documented validation of a create or patch body, normalized."""
    if not isinstance(body, dict):
        raise validation("Request body must be a JSON object")
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise validation(f"Unknown field(s): {', '.join(unknown)}")
    if creating:
        for name in ("content", "platforms"):
            if name not in body:
                raise validation(f"{name} is required")

    fields: dict[str, Any] = {}
    if "content" in body:
        content = body["content"]
        if not isinstance(content, str) or not 1 <= len(content) <= 10000:
            raise validation("Content must be between 1 and 10000 characters")
        fields["content"] = content
    if "title" in body:
        title = body["title"]
        if title is not None and (not isinstance(title, str) or len(title) > 500):
            raise validation("Title must be a string of at most 500 characters")
        fields["title"] = title or None
    if "platforms" in body:
        fields["platforms"] = _platforms(body["platforms"])
    if "scheduledFor" in body:
        value = body["scheduledFor"]
        if value is None and not creating:
            fields["scheduledFor"] = None
        elif value is not None:
            fields["scheduledFor"] = _schedule(value, now)
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
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise validation(
            "scheduledFor must be an ISO 8601 timestamp with a UTC offset"
        ) from None
    if moment.tzinfo is None:
        raise validation("scheduledFor must include a UTC offset")
    if moment <= now:
        raise validation("scheduledFor must be in the future")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _external_id(platform: str, rng: random.Random) -> str:
    if platform == "x":
        return str(rng.randrange(10**18, 10**19))
    if platform == "linkedin":
        return f"urn:li:share:{rng.randrange(10**18, 10**19)}"
    return "3" + "".join(
        rng.choice("234567abcdefghijklmnopqrstuvwxyz") for _ in range(12)
    )


def _encode_token(seq: int, user: str) -> str:
    raw = json.dumps({"after": seq, "u": _user_tag(user)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, user: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        if data["u"] != _user_tag(user):
            raise ValueError
        return int(data["after"])
    except (ValueError, KeyError, TypeError):
        raise validation("nextToken is not a token this API returned") from None


def _user_tag(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()[:8]


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


__all__ = ["ServiceError", "Store", "check_fields", "fingerprint"]
