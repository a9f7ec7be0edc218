"""The emulator's fault knobs, over real HTTP and in process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from conftest import EmulatorServer

from nexus_sync.emulator import ConnectionDropped, Emulator, Knobs, create_app

BODY = {"content": "Hello", "platforms": ["x"]}


def test_dropped_create_commits_while_the_client_sees_a_broken_connection(
    api: EmulatorServer,
) -> None:
    api.knobs(drop_rate=1.0)

    with api.client(api.new_user()) as client:
        with pytest.raises(httpx.RemoteProtocolError) as raised:
            client.post("/messages", json=BODY)
        api.knobs(drop_rate=0.0)
        listed = client.get("/messages").json()["messages"]

    assert "without sending a response" in str(raised.value)
    assert [(m["content"], m["status"]) for m in listed] == [("Hello", "DRAFT")]
    log = api.requests()["log"]
    assert [(e["endpoint"], e["status"], e["dropped"]) for e in log] == [
        ("POST /messages", 201, True),
        ("GET /messages", 200, False),
    ]


def test_dropped_request_in_process_is_an_httpx_transport_error(
    tmp_path: Path,
) -> None:
    emulator = Emulator(tmp_path, knobs=Knobs(drop_rate=1.0))
    token = emulator.mint("alice")

    async def scenario() -> list[dict]:
        transport = httpx.ASGITransport(app=create_app(emulator))
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://emulator", headers=headers
        ) as client:
            with pytest.raises(httpx.TransportError) as raised:
                await client.post("/messages", json=BODY)
            assert isinstance(raised.value, ConnectionDropped)
            emulator.apply_knobs({"drop_rate": 0.0})
            return (await client.get("/messages")).json()["messages"]

    try:
        listed = asyncio.run(scenario())
    finally:
        emulator.store.close()
    assert [m["content"] for m in listed] == ["Hello"]


def test_throttle_every_answers_each_nth_request_from_when_it_was_set_429(
    api: EmulatorServer,
) -> None:
    with api.client() as client:
        client.get("/messages").raise_for_status()
        api.knobs(throttle_every=3, retry_after=2)
        statuses = [client.get("/messages").status_code for _ in range(6)]
        api.knobs(throttle_every=3)
        again = [client.get("/messages").status_code for _ in range(3)]
        api.knobs(throttle_every=1)
        throttled = client.get("/messages")

    assert statuses == [200, 200, 429, 200, 200, 429]
    assert again == [200, 200, 429]
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "2"
    assert throttled.json() == {
        "error": "Too Many Requests",
        "details": "Rate limit exceeded; retry after the Retry-After seconds",
    }


def test_rate_429_throttles_only_the_endpoints_of_its_filter(
    api: EmulatorServer,
) -> None:
    api.knobs(rate_429=1.0, retry_after=0.5, throttle_endpoints=["GET /messages/{id}"])

    with api.client() as client:
        created = client.post("/messages", json=BODY)
        listed = client.get("/messages")
        one = client.get(f"/messages/{created.json()['id']}")

    assert (created.status_code, listed.status_code) == (201, 200)
    assert one.status_code == 429
    assert one.headers["retry-after"] == "0.5"


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (500, "Internal Server Error"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
    ],
)
def test_error_rate_fails_only_the_endpoints_of_its_filter_with_its_statuses(
    api: EmulatorServer, status: int, phrase: str
) -> None:
    api.knobs(
        error_rate=1.0, error_statuses=[status], error_endpoints=["POST /messages"]
    )

    with api.client(api.new_user()) as client:
        failed = client.post("/messages", json=BODY)
        listed = client.get("/messages")

    assert failed.status_code == status
    assert failed.json() == {"error": phrase, "details": "Emulated failure"}
    assert listed.json()["messages"] == []
    assert api.requests()["counts"] == {"POST /messages": 1, "GET /messages": 1}


@pytest.mark.parametrize(
    ("knobs", "details"),
    [
        (
            {"fail_endpoints": []},
            (
                "unknown knob(s) fail_endpoints; known: drop_endpoints, drop_rate, "
                "error_endpoints, error_rate, error_statuses, latency_ms, "
                "publish_delay_seconds, publish_failure_rate, rate_429, retry_after, "
                "seed, throttle_endpoints, throttle_every"
            ),
        ),
        ({"drop_rate": 2}, "drop_rate must be between 0 and 1, not 2"),
        (
            {"drop_endpoints": ["GET /nothing"]},
            (
                "drop_endpoints: unknown endpoint(s) ['GET /nothing']; known: "
                "POST /messages, GET /messages, GET /messages/{id}, "
                "PATCH /messages/{id}, DELETE /messages/{id}, "
                "POST /messages/{id}/publish"
            ),
        ),
        ({"throttle_every": -1}, "throttle_every must be a whole number >= 0, not -1"),
    ],
)
def test_a_wrong_knob_is_422_and_changes_nothing(
    api: EmulatorServer, knobs: dict, details: str
) -> None:
    before = api.http.get("/_emulator/knobs").json()

    answer = api.http.put("/_emulator/knobs", json={"seed": 9, **knobs})

    assert answer.status_code == 422
    assert answer.json() == {"error": "Validation Error", "details": details}
    assert api.http.get("/_emulator/knobs").json() == before


def test_reset_returns_to_the_knobs_the_server_was_started_with(
    tmp_path: Path,
) -> None:
    flags = ["--throttle-every", "2", "--retry-after", "3", "--seed", "7"]
    server = EmulatorServer(tmp_path / "state", flags)
    try:
        started = server.http.get("/_emulator/knobs").json()
        server.knobs(throttle_every=0, retry_after=1, latency_ms=5, seed=None)
        reset = server.http.post("/_emulator/reset")
        with server.client() as client:
            answers = [client.get("/messages") for _ in range(4)]
    finally:
        server.stop()

    assert started == {
        "latency_ms": 0.0,
        "error_rate": 0.0,
        "error_statuses": [500, 502, 503],
        "error_endpoints": [],
        "rate_429": 0.0,
        "throttle_every": 2,
        "retry_after": 3.0,
        "throttle_endpoints": [],
        "drop_rate": 0.0,
        "drop_endpoints": [],
        "publish_failure_rate": 0.0,
        "publish_delay_seconds": 0.0,
        "seed": 7,
    }
    assert reset.json() == started
    assert [answer.status_code for answer in answers] == [200, 429, 200, 429]
    assert answers[1].headers["retry-after"] == "3"


def test_reset_in_process_returns_to_the_knobs_given_to_the_emulator(
    tmp_path: Path,
) -> None:
    emulator = Emulator(tmp_path, knobs=Knobs(drop_rate=0.5, seed=3))
    emulator.apply_knobs({"drop_rate": 0.0, "latency_ms": 10})

    async def reset() -> dict:
        transport = httpx.ASGITransport(app=create_app(emulator))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://emulator"
        ) as client:
            return (await client.post("/_emulator/reset")).json()

    try:
        knobs = asyncio.run(reset())
    finally:
        emulator.store.close()
    assert (knobs["drop_rate"], knobs["latency_ms"], knobs["seed"]) == (0.5, 0.0, 3)
