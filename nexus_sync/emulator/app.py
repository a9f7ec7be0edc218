"""The emulator's HTTP face: the documented endpoints, admin knobs and faults."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .store import STATUSES, PLATFORMS, ServiceError, Store, fingerprint, validation
from .tokens import Signer, TokenRejected, Verifier

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


@dataclasses.dataclass
class Knobs:
    """How the emulator misbehaves on purpose. Rates are fractions of requests."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    rate_429: float = 0.0
    retry_after: float = 1.0
    drop_rate: float = 0.0
    drop_endpoints: tuple[str, ...] = ()
    fail_endpoints: tuple[str, ...] = ()
    publish_failure_rate: float = 0.0
    seed: int | None = None


class ConnectionDropped(Exception):
    """Raised after a request committed, so that no answer reaches the client."""


class Emulator:
    """One emulated service: its store, its keys, its clock, its knobs."""

    def __init__(
        self,
        state_dir: Path,
        knobs: Knobs | None = None,
        trusted_jwks: dict[str, Any] | None = None,
        database: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.knobs = knobs or Knobs()
        self.store = Store(database or state_dir / "emulator.sqlite3", self.knobs.seed)
        self.signer = Signer(state_dir)
        self.verifier = Verifier(trusted_jwks or self.signer.jwks())
        self.clock_offset = 0.0
        self.counts: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.apply_knobs({})

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(
            seconds=self.clock_offset
        )

    def mint(self, user: str, ttl: float = 3600) -> str:
        return self.signer.mint(user, ttl, now=self.now().timestamp())

    def apply_knobs(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if not hasattr(self.knobs, name):
                raise validation(f"unknown knob {name!r}")
            if isinstance(getattr(self.knobs, name), tuple):
                value = tuple(value)
            setattr(self.knobs, name, value)
        if "seed" in values:
            self.store.random.seed(values["seed"])
        self.store.publish_failure_rate = self.knobs.publish_failure_rate

    def user_for(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ServiceError(
                401, "Unauthorized", "Missing or malformed Authorization header"
            )
        try:
            return self.verifier.user(token.strip(), self.now().timestamp())
        except TokenRejected as error:
            raise ServiceError(401, "Unauthorized", str(error)) from None


def create_app(emulator: Emulator) -> Callable:
    """The ASGI application of `emulator`, faults included."""

    async def list_messages(request: Request) -> Response:
        user = emulator.user_for(request)
        query = request.query_params
        limit = _limit(query.get("limit", "20"))
        statuses = _statuses(query.get("status"))
        platform = _platform(query.get("platform"))
        page = emulator.store.list(
            user, emulator.now(), limit, query.get("nextToken"), statuses, platform
        )
        return JSONResponse(page)

    async def create_message(request: Request) -> Response:
        user = emulator.user_for(request)
        body = await _json(request)
        return _idempotent(
            request,
            user,
            ("create", body),
            lambda: (201, emulator.store.create(user, body, emulator.now())),
        )

    async def one_message(request: Request) -> Response:
        user = emulator.user_for(request)
        message_id = request.path_params["message_id"]
        now = emulator.now()
        if request.method == "GET":
            return JSONResponse(emulator.store.get(user, message_id, now))
        if request.method == "PATCH":
            body = await _json(request)
            return JSONResponse(emulator.store.update(user, message_id, body, now))
        emulator.store.delete(user, message_id, now)
        return Response(status_code=204)

    async def publish_message(request: Request) -> Response:
        user = emulator.user_for(request)
        message_id = request.path_params["message_id"]
        return _idempotent(
            request,
            user,
            ("publish", message_id),
            lambda: (200, emulator.store.publish(user, message_id, emulator.now())),
        )

    def _idempotent(
        request: Request, user: str, what: tuple, run: Callable[[], tuple[int, dict]]
    ) -> Response:
        key = request.headers.get("idempotency-key")
        if not key:
            status, body = run()
            return JSONResponse(body, status_code=status)
        print_ = fingerprint(*what)
        replayed = emulator.store.replay(user, key, print_)
        if replayed is not None:
            return JSONResponse(replayed[1], status_code=replayed[0])
        status, body = run()
        emulator.store.remember(user, key, print_, status, body)
        return JSONResponse(body, status_code=status)

    async def jwks(request: Request) -> Response:
        return JSONResponse(emulator.signer.jwks())

    async def admin_knobs(request: Request) -> Response:
        if request.method == "PUT":
            emulator.apply_knobs(await _json(request))
        return JSONResponse(dataclasses.asdict(emulator.knobs))

    async def admin_clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            if "set" in body:
                target = dt.datetime.fromisoformat(body["set"])
                emulator.clock_offset = (
                    target - dt.datetime.now(dt.timezone.utc)
                ).total_seconds()
            emulator.clock_offset += float(body.get("advance", 0))
        return JSONResponse({"now": emulator.now().isoformat()})

    async def admin_requests(request: Request) -> Response:
        if request.method == "DELETE":
            emulator.counts.clear()
            emulator.log.clear()
        return JSONResponse({"counts": dict(emulator.counts), "log": emulator.log})

    async def admin_token(request: Request) -> Response:
        body = await _json(request)
        token = emulator.mint(body["user"], float(body.get("ttl", 3600)))
        return JSONResponse({"token": token})

    routes = [
        Route("/messages", list_messages, methods=["GET"]),
        Route("/messages", create_message, methods=["POST"]),
        Route(
            "/messages/{message_id}", one_message, methods=["GET", "PATCH", "DELETE"]
        ),
        Route("/messages/{message_id}/publish", publish_message, methods=["POST"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/_emulator/knobs", admin_knobs, methods=["GET", "PUT"]),
        Route("/_emulator/clock", admin_clock, methods=["GET", "POST"]),
        Route("/_emulator/requests", admin_requests, methods=["GET", "DELETE"]),
        Route("/_emulator/token", admin_token, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ServiceError: _service_error,
            404: _not_found,
            405: _not_allowed,
        },
    )
    return _Faults(app, emulator)


class _Faults:
    """ASGI middleware: counts requests, adds latency, errors, 429s and drops."""

    def __init__(self, app: Callable, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(
            ("/_emulator", "/.well-known")
        ):
            await self.app(scope, receive, send)
            return

        emulator = self.emulator
        knobs = emulator.knobs
        endpoint = _endpoint(scope["method"], scope["path"])
        emulator.counts[endpoint] += 1
        entry = {"endpoint": endpoint, "time": time.time(), "status": None}
        emulator.log.append(entry)
        rng = emulator.store.random

        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)

        applies = not knobs.fail_endpoints or endpoint in knobs.fail_endpoints
        if applies and rng.random() < knobs.rate_429:
            entry["status"] = 429
            await _error(send, 429, "Too Many Requests", "Rate limit exceeded",
                         {"retry-after": _seconds(knobs.retry_after)})
            return
        if applies and rng.random() < knobs.error_rate:
            status = rng.choice(knobs.error_statuses)
            entry["status"] = status
            await _error(send, status, "Service Unavailable", "Emulated failure")
            return

        drop = (not knobs.drop_endpoints or endpoint in knobs.drop_endpoints) and (
            rng.random() < knobs.drop_rate
        )

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                if drop:
                    # The request has committed; the client gets no answer.
                    raise ConnectionDropped(f"{endpoint} dropped after commit")
            await send(message)

        await self.app(scope, receive, record)


def _endpoint(method: str, path: str) -> str:
    if path == "/messages":
        return f"{method} /messages"
    if path.endswith("/publish"):
        return "POST /messages/{id}/publish"
    if path.startswith("/messages/"):
        return f"{method} /messages/{{id}}"
    return f"{method} {path}"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


async def _error(
    send: Send, status: int, error: str, details: str, headers: dict | None = None
) -> None:
    body = json.dumps({"error": error, "details": details}).encode()
    raw = [(b"content-type", b"application/json"),
           (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _service_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    return JSONResponse(
        {"error": error.error, "details": error.details}, status_code=error.status
    )


async def _not_found(request: Request, error: Exception) -> Response:
    return JSONResponse(
        {"error": "Not Found", "details": f"No route for {request.url.path}"},
        status_code=404,
    )


async def _not_allowed(request: Request, error: Exception) -> Response:
    return JSONResponse(
        {"error": "Method Not Allowed", "details": f"{request.method} is not allowed"},
        status_code=405,
    )


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise validation("Request body is not valid JSON") from None


def _limit(raw: str) -> int:
    try:
        limit = int(raw)
    except ValueError:
        raise validation("limit must be an integer between 1 and 100") from None
    if not 1 <= limit <= 100:
        raise validation("limit must be an integer between 1 and 100")
    return limit


def _statuses(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    values = [value.strip().upper() for value in raw.split(",")]
    bad = [value for value in values if value not in STATUSES]
    if bad:
        raise validation(
            f"Invalid status {', '.join(bad)}; valid: {', '.join(STATUSES)}"
        )
    return values


def _platform(raw: str | None) -> str | None:
    if not raw:
        return None
    if raw.lower() not in PLATFORMS:
        raise validation(f"Invalid platform {raw}; valid: X, LINKEDIN, BLUESKY")
    return raw.lower()
