"""The client: what it repeats, what it never repeats, and what it reports."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from network import scripted_client

from nexus_sync.auth import StaticToken
from nexus_sync.client import NexusClient, _retry_after
from nexus_sync.errors import (
    ApiError,
    AuthError,
    OutcomeUnknown,
    ServiceUnreachable,
)

BODY = {"content": "Hello", "platforms": ["x"]}


def run(coroutine):
    return asyncio.run(coroutine)


def test_get_is_repeated_after_502_503_504_429_and_a_refused_connection(
    tmp_path: Path,
) -> None:
    client, network, _ = scripted_client(tmp_path)
    network.script("GET /messages", "502", "503", "504", "429:0", "refuse")

    async def scenario() -> list:
        async with client:
            await client.create_message(BODY, "key-1")
            return await client.list_messages()

    messages = run(scenario())

    assert [m["content"] for m in messages] == ["Hello"]
    assert [s.fault for s in network.sent if s.endpoint == "GET /messages"] == [
        "502",
        "503",
        "504",
        "429:0",
        "refuse",
        "ok",
    ]


def test_500_is_not_repeated(tmp_path: Path) -> None:
    client, network, _ = scripted_client(tmp_path)
    network.script("GET /messages", "500")

    with pytest.raises(ApiError) as raised:
        run(client.list_messages())

    assert raised.value.status == 500
    assert network.count("GET /messages") == 1


def test_retries_are_bounded_and_end_with_the_last_answer(tmp_path: Path) -> None:
    client, network, _ = scripted_client(tmp_path, attempts=3)
    network.script("GET /messages", "503", "503", "503", "503")

    with pytest.raises(ApiError) as raised:
        run(client.list_messages())

    assert str(raised.value) == (
        "Nexus Share answered 503: Service Unavailable: scripted"
    )
    assert network.count("GET /messages") == 3


def test_lost_connections_end_as_service_unreachable(tmp_path: Path) -> None:
    client, network, _ = scripted_client(tmp_path, attempts=2)
    network.script("GET /messages", "refuse", "refuse")

    with pytest.raises(ServiceUnreachable) as raised:
        run(client.list_messages())

    assert str(raised.value) == (
        "no answer from Nexus Share at http://emulator.test for GET /messages "
        "after 2 attempt(s): ConnectError: [Errno 111] Connection refused"
    )


def test_a_service_out_of_reach_is_a_warning_once_and_its_retries_are_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, network, _ = scripted_client(tmp_path, wait_jitter=0.0)
    network.script("GET /messages", *["refuse"] * 10)
    caplog.set_level(logging.INFO, logger="nexus_sync.client")

    with pytest.raises(ServiceUnreachable) as raised:
        run(client.list_messages())

    said = [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "nexus_sync.client"
    ]
    line = "GET /messages: ConnectError: [Errno 111] Connection refused, retrying"
    assert said == [("WARNING", line)] + [("INFO", line)] * 9
    assert str(raised.value) == (
        "no answer from Nexus Share at http://emulator.test for GET /messages "
        "after 10 attempt(s): ConnectError: [Errno 111] Connection refused"
    )


@pytest.mark.parametrize("fault", ["drop", "timeout", "503", "502", "504"])
def test_a_create_is_never_sent_again_once_it_may_have_happened(
    tmp_path: Path, fault: str
) -> None:
    client, network, emulator = scripted_client(tmp_path)
    network.script("POST /messages", fault)

    with pytest.raises(OutcomeUnknown) as raised:
        run(client.create_message(BODY, "key-1"))

    assert network.count("POST /messages") == 1
    committed = fault in ("drop", "timeout")
    page = emulator.store.list("alice", emulator.now(), 100, None, None, None)
    assert len(page["messages"]) == (1 if committed else 0)
    assert "POST /messages" in str(raised.value)


def test_a_create_is_sent_again_with_its_key_when_it_surely_did_not_happen(
    tmp_path: Path,
) -> None:
    client, network, emulator = scripted_client(tmp_path)
    network.script("POST /messages", "429:0", "refuse")

    created = run(client.create_message(BODY, "key-1"))

    assert [s.fault for s in network.sent] == ["429:0", "refuse", "ok"]
    assert [s.idempotency_key for s in network.sent] == ["key-1"] * 3
    page = emulator.store.list("alice", emulator.now(), 100, None, None, None)
    assert [m["id"] for m in page["messages"]] == [created["id"]]


def test_patch_is_repeated_with_the_same_body(tmp_path: Path) -> None:
    client, network, _ = scripted_client(tmp_path)

    async def scenario() -> dict:
        async with client:
            created = await client.create_message(BODY, "key-1")
            network.script("PATCH /messages/{id}", "drop", "503")
            return await client.update_message(created["id"], {"content": "Bye"})

    updated = run(scenario())

    assert updated["content"] == "Bye"
    assert network.count("PATCH /messages/{id}") == 3


def test_a_delete_whose_answer_was_lost_is_done_when_the_retry_finds_nothing(
    tmp_path: Path,
) -> None:
    client, network, emulator = scripted_client(tmp_path)

    async def scenario() -> None:
        async with client:
            created = await client.create_message(BODY, "key-1")
            network.script("DELETE /messages/{id}", "drop")
            await client.delete_message(created["id"])

    run(scenario())

    assert network.count("DELETE /messages/{id}") == 2
    assert (
        emulator.store.list("alice", emulator.now(), 100, None, None, None)["messages"]
        == []
    )


def test_a_delete_of_a_missing_message_at_the_first_attempt_is_an_error(
    tmp_path: Path,
) -> None:
    client, _, _ = scripted_client(tmp_path)

    with pytest.raises(ApiError) as raised:
        run(client.delete_message("POST|alice|1"))

    assert str(raised.value) == (
        "Nexus Share answered 404 for POST|alice|1: Not Found: "
        "Message POST|alice|1 not found"
    )


def test_a_publish_whose_answer_was_lost_is_not_published_twice(
    tmp_path: Path,
) -> None:
    # The server ignores the key here: the retry meets a 409, and the client
    # asks the message itself whether the first attempt went out.
    client, network, _ = scripted_client(tmp_path, honour_keys=False)

    async def scenario() -> dict:
        async with client:
            created = await client.create_message(BODY, "key-1")
            network.script("POST /messages/{id}/publish", "drop")
            return await client.publish_message(created["id"], "key-2")

    published = run(scenario())

    assert published["status"] == "PUBLISHED"
    assert network.count("POST /messages/{id}/publish") == 2
    assert network.count("GET /messages/{id}") == 1


def test_a_publish_409_at_the_first_attempt_is_an_error(tmp_path: Path) -> None:
    client, _, _ = scripted_client(tmp_path)

    async def scenario() -> None:
        async with client:
            created = await client.create_message(BODY, "key-1")
            await client.publish_message(created["id"], "key-2")
            await client.publish_message(created["id"], "key-3")

    with pytest.raises(ApiError) as raised:
        run(scenario())

    assert raised.value.status == 409


def test_a_refused_token_is_an_auth_error_that_says_what_to_do(
    tmp_path: Path,
) -> None:
    client, _, emulator = scripted_client(tmp_path)
    emulator.clock_offset = 7200

    with pytest.raises(AuthError) as raised:
        run(client.list_messages())

    assert str(raised.value) == (
        "Nexus Share refused the credentials (Token has expired); set a fresh "
        "NEXUS_TOKEN, or NEXUS_USER and NEXUS_PASSWORD"
    )


def test_retry_after_in_seconds_or_as_a_date_is_capped() -> None:
    def answer(value: str | None) -> httpx.Response:
        headers = {"Retry-After": value} if value is not None else {}
        return httpx.Response(429, headers=headers)

    in_ten = email.utils.formatdate(time.time() + 10.4, usegmt=True)
    assert _retry_after(answer("2"), cap=60) == 2.0
    assert _retry_after(answer("0.5"), cap=60) == 0.5
    assert _retry_after(answer("120"), cap=60) == 60.0
    assert _retry_after(answer("-3"), cap=60) == 0.0
    assert 9 <= _retry_after(answer(in_ten), cap=60) <= 10.4
    assert _retry_after(answer(in_ten), cap=5) == 5.0
    assert _retry_after(answer("soon"), cap=60) is None
    for not_a_number in ("NaN", "nan", "inf", "-inf", "1e3", "+2", "1_000"):
        assert _retry_after(answer(not_a_number), cap=60) is None, not_a_number
    assert _retry_after(answer(None), cap=60) is None


def test_the_client_repr_names_only_the_url() -> None:
    from nexus_sync.auth import StaticToken

    auth = StaticToken("sentinel-token-value")
    client = NexusClient("https://nexus-share.com/api", auth)

    assert repr(client) == "NexusClient('https://nexus-share.com/api')"
    assert repr(auth) == "StaticToken(<hidden>)"
    run(client.close())


def mocked_service(
    answer: Callable[[httpx.Request], httpx.Response],
) -> NexusClient:
    """A client of a service no emulator plays: `answer` gives each response."""
    return NexusClient(
        "https://nexus.example",
        StaticToken("a.b.c"),
        transport=httpx.MockTransport(answer),
    )


def test_a_listing_whose_cursor_comes_back_stops_instead_of_looping() -> None:
    # No emulator misbehaves like this; a transport plays the broken service.
    def answer(request: httpx.Request) -> httpx.Response:
        page = {"messages": [], "pagination": {"nextToken": "same", "hasMore": True}}
        return httpx.Response(200, json=page)

    client = mocked_service(answer)

    async def scenario() -> None:
        async with client:
            await client.list_messages()

    with pytest.raises(ApiError, match="the listing returned a nextToken twice"):
        run(scenario())


def test_a_listing_sends_each_cursor_back_exactly_as_the_service_gave_it() -> None:
    # The documentation calls nextToken a cursor and says nothing of its
    # form: the client must never read or build one, only return it.
    tokens = ["eyJwayI6IlVTRVIjLCJzayI6IlBPU1QifQ==", "not base64 | +/=&?", None]
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(dict(request.url.params))
        token = tokens[len(sent) - 1]
        page = {
            "messages": [{"id": f"POST|a|{len(sent)}"}],
            "pagination": {"limit": 100, "nextToken": token, "hasMore": bool(token)},
        }
        return httpx.Response(200, json=page)

    client = mocked_service(answer)

    async def scenario() -> list:
        async with client:
            return await client.list_messages()

    listed = run(scenario())
    assert [message["id"] for message in listed] == [
        "POST|a|1",
        "POST|a|2",
        "POST|a|3",
    ]
    assert sent == [
        {"limit": "100"},
        {"limit": "100", "nextToken": "eyJwayI6IlVTRVIjLCJzayI6IlBPU1QifQ=="},
        {"limit": "100", "nextToken": "not base64 | +/=&?"},
    ]
