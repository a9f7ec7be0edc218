"""The emulator's HTTP face: the documented endpoints, admin knobs and faults."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import ConnectionDropped, Faults, KnobError, Knobs, Traffic, check_knobs
from .store import PLATFORMS, STATUSES, ServiceError, Store, fingerprint, validation
from .tokens import Signer, TokenRejected, Verifier

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class Emulator:
    """One emulated service: its store, its keys, its clock, its knobs."""

    def __init__(
        self,
        state_dir: Path,
        knobs: Knobs | None = None,
        trusted_jwks: dict[str, Any] | str | Path | None = None,
        database: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.knobs = knobs or Knobs()
        self.store = Store(database or state_dir / "emulator.sqlite3", self.knobs.seed)
        self.signer = Signer(state_dir)
        self.verifier = Verifier(trusted_jwks or self.signer.jwks())
        self.clock_offset = 0.0
        self.traffic = Traffic()
        self.apply_knobs({})

    @property
    def counts(self) -> Counter[str]:
        return self.traffic.counts

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.traffic.log

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset)

    def mint(self, user: str, ttl: float = 3600) -> str:
        return self.signer.mint(user, ttl, now=self.now().timestamp())

    def apply_knobs(self, values: dict[str, Any]) -> None:
        """Set the given knobs; ServiceError 422 (and no change) if any is wrong."""
        try:
            checked = check_knobs(values)
        except KnobError as error:
            raise validation(str(error)) from None
        for name, value in checked.items():
            setattr(self.knobs, name, value)
        if "throttle_every" in values:
            self.traffic.throttle_count = 0
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
        return JSONResponse(emulator.knobs.as_json())

    async def admin_clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            if "set" in body:
                target = dt.datetime.fromisoformat(body["set"])
                emulator.clock_offset = (
                    target - dt.datetime.now(dt.UTC)
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
    return Faults(
        app, lambda: emulator.knobs, emulator.traffic, lambda: emulator.store.random
    )


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


__all__ = ["ConnectionDropped", "Emulator", "Knobs", "create_app"]
