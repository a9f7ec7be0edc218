"""The emulator's API over real HTTP: every status, every rule, exact bodies."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import jwt
import moto.cognitoidp
import pytest
from conftest import EmulatorServer, run_command
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from nexus_sync.emulator import Emulator, create_app
from nexus_sync.emulator.store import X_EPOCH_MS
from nexus_sync.emulator.tokens import KEY_FILE, KEY_ID

NOW = "2030-01-01T00:00:00Z"
NOW_MS = "2030-01-01T00:00:00.000Z"
HELLO = {"content": "Hello", "platforms": ["x"]}


def call(
    api: EmulatorServer, user: str, method: str, path: str, **options: Any
) -> httpx.Response:
    headers = {**api.bearer(user), **options.pop("headers", {})}
    return api.http.request(method, path, headers=headers, **options)


def path_of(message_id: str, suffix: str = "") -> str:
    return f"/messages/{quote(message_id, safe='')}{suffix}"


def create(api: EmulatorServer, user: str, **body: Any) -> dict[str, Any]:
    answer = call(api, user, "POST", "/messages", json={**HELLO, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def error(response: httpx.Response) -> tuple[int, dict[str, str]]:
    return response.status_code, response.json()


def validation(details: str) -> tuple[int, dict[str, str]]:
    return 422, {"error": "Validation Error", "details": details}


def frozen(api: EmulatorServer, at: str = NOW) -> None:
    api.clock(set=at, frozen=True)


# -- success statuses and the message's life ---------------------------------


def test_create_is_201_with_the_documented_message_object(api: EmulatorServer) -> None:
    frozen(api)
    user = api.new_user()

    answer = call(
        api,
        user,
        "POST",
        "/messages",
        json={"content": "Hi", "platforms": ["X", "LinkedIn"], "title": "T"},
    )

    assert answer.status_code == 201
    body = answer.json()
    assert re.fullmatch(rf"POST\|{user}\|\d{{13}}", body["id"])
    assert body == {
        "id": body["id"],
        "status": "DRAFT",
        "scheduledFor": None,
        "content": "Hi",
        "targets": ["x", "linkedin"],
        "title": "T",
        "createdAt": NOW_MS,
        "updatedAt": NOW_MS,
        "lastAttemptAt": None,
        "publishedAt": None,
        "error": None,
        "externalIds": None,
    }
    assert body["id"] == f"POST|{user}|1893456000000"


def test_create_with_scheduled_for_is_scheduled_in_utc(api: EmulatorServer) -> None:
    frozen(api)
    user = api.new_user()

    body = create(api, user, scheduledFor="2030-01-20T10:00:00+01:00")

    assert (body["status"], body["scheduledFor"]) == (
        "SCHEDULED",
        "2030-01-20T09:00:00Z",
    )


def test_get_patch_delete_answer_200_200_204(api: EmulatorServer) -> None:
    frozen(api)
    user = api.new_user()
    message = create(api, user)

    got = call(api, user, "GET", path_of(message["id"]))
    api.clock(advance=60)
    patched = call(
        api,
        user,
        "PATCH",
        path_of(message["id"]),
        json={"content": "Changed", "platforms": ["bluesky"], "title": None},
    )
    deleted = call(api, user, "DELETE", path_of(message["id"]))
    again = call(api, user, "GET", path_of(message["id"]))

    assert (got.status_code, got.json()) == (200, message)
    assert patched.status_code == 200
    assert patched.json() == {
        **message,
        "content": "Changed",
        "targets": ["bluesky"],
        "updatedAt": "2030-01-01T00:01:00.000Z",
    }
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert error(again) == (
        404,
        {"error": "Not Found", "details": f"Message {message['id']} not found"},
    )


def test_scheduled_for_null_turns_a_scheduled_message_back_into_a_draft(
    api: EmulatorServer,
) -> None:
    frozen(api)
    user = api.new_user()
    message = create(api, user, scheduledFor="2030-02-01T00:00:00Z")

    draft = call(
        api, user, "PATCH", path_of(message["id"]), json={"scheduledFor": None}
    )
    scheduled = call(
        api,
        user,
        "PATCH",
        path_of(message["id"]),
        json={"scheduledFor": "2030-03-01T12:00:00Z"},
    )

    assert (draft.json()["status"], draft.json()["scheduledFor"]) == ("DRAFT", None)
    assert (scheduled.json()["status"], scheduled.json()["scheduledFor"]) == (
        "SCHEDULED",
        "2030-03-01T12:00:00Z",
    )


def assert_external_ids(ids: dict[str, str], published_at: str) -> None:
    assert re.fullmatch(r"[0-9]{19}", ids["x"])
    assert re.fullmatch(r"urn:li:share:[0-9]{19}", ids["linkedin"])
    assert re.fullmatch(r"[234567a-j][234567a-z]{12}", ids["bluesky"])
    # X ids are snowflakes: their top bits are the time the post was made.
    moment = dt.datetime.fromisoformat(published_at)
    assert (int(ids["x"]) >> 22) + X_EPOCH_MS == int(moment.timestamp() * 1000)


def test_publish_is_200_published_with_each_platforms_id_format(
    api: EmulatorServer,
) -> None:
    frozen(api)
    user = api.new_user()
    message = create(api, user, platforms=["x", "linkedin", "bluesky"])
    api.clock(advance=5)

    answer = call(api, user, "POST", path_of(message["id"], "/publish"))

    assert answer.status_code == 200
    body = answer.json()
    assert body == {
        **message,
        "status": "PUBLISHED",
        "updatedAt": "2030-01-01T00:00:05.000Z",
        "lastAttemptAt": "2030-01-01T00:00:05.000Z",
        "publishedAt": "2030-01-01T00:00:05.000Z",
        "externalIds": body["externalIds"],
    }
    assert sorted(body["externalIds"]) == ["bluesky", "linkedin", "x"]
    assert_external_ids(body["externalIds"], body["publishedAt"])


def test_a_scheduled_message_is_published_when_the_clock_passes_its_time(
    api: EmulatorServer,
) -> None:
    frozen(api)
    user = api.new_user()
    message = create(
        api,
        user,
        scheduledFor="2030-01-01T00:10:00Z",
        platforms=["x", "linkedin", "bluesky"],
    )

    api.clock(advance=599)
    before = call(api, user, "GET", path_of(message["id"])).json()
    api.clock(advance=3600)
    after = call(api, user, "GET", path_of(message["id"])).json()

    assert before["status"] == "SCHEDULED"
    assert (after["status"], after["lastAttemptAt"], after["publishedAt"]) == (
        "PUBLISHED",
        "2030-01-01T00:10:00.000Z",
        "2030-01-01T00:10:00.000Z",
    )
    assert_external_ids(after["externalIds"], after["publishedAt"])


def test_publish_delay_keeps_a_message_direct_then_published(
    api: EmulatorServer,
) -> None:
    frozen(api)
    api.knobs(publish_delay_seconds=30)
    user = api.new_user()
    message = create(api, user)

    direct = call(api, user, "POST", path_of(message["id"], "/publish")).json()
    listed = call(api, user, "GET", "/messages?status=DIRECT").json()["messages"]
    api.clock(advance=30)
    done = call(api, user, "GET", path_of(message["id"])).json()

    assert (direct["status"], direct["lastAttemptAt"], direct["publishedAt"]) == (
        "DIRECT",
        NOW_MS,
        None,
    )
    assert [m["id"] for m in listed] == [message["id"]]
    assert (done["status"], done["lastAttemptAt"], done["publishedAt"]) == (
        "PUBLISHED",
        NOW_MS,
        "2030-01-01T00:00:30.000Z",
    )


def test_a_failed_publish_is_failed_with_an_error_and_can_be_retried(
    api: EmulatorServer,
) -> None:
    frozen(api)
    api.knobs(publish_failure_rate=1.0)
    user = api.new_user()
    message = create(api, user)

    failed = call(api, user, "POST", path_of(message["id"], "/publish")).json()
    api.knobs(publish_failure_rate=0.0)
    api.clock(advance=10)
    retried = call(api, user, "POST", path_of(message["id"], "/publish")).json()

    assert (failed["status"], failed["error"], failed["publishedAt"]) == (
        "FAILED",
        "x: the platform rejected the post (emulated failure)",
        None,
    )
    assert failed["lastAttemptAt"] == NOW_MS
    assert (retried["status"], retried["error"], retried["lastAttemptAt"]) == (
        "PUBLISHED",
        None,
        "2030-01-01T00:00:10.000Z",
    )


def test_a_failed_message_can_be_patched_and_deleted(api: EmulatorServer) -> None:
    api.knobs(publish_failure_rate=1.0)
    user = api.new_user()
    message = create(api, user)
    call(api, user, "POST", path_of(message["id"], "/publish"))

    patched = call(api, user, "PATCH", path_of(message["id"]), json={"content": "B"})
    deleted = call(api, user, "DELETE", path_of(message["id"]))

    assert (patched.status_code, patched.json()["status"]) == (200, "FAILED")
    assert deleted.status_code == 204


# -- 401 and 403 -------------------------------------------------------------


def other_key_token(claims: dict[str, Any], kid: str = KEY_ID) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, "RS256", headers={"kid": kid})


def own_key_token(api: EmulatorServer, claims: dict[str, Any]) -> str:
    key = (api.state_dir / KEY_FILE).read_bytes()
    return jwt.encode(claims, key, "RS256", headers={"kid": KEY_ID})


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"cognito:username": "alice", "token_use": "id", "exp": now + 600} | extra


@pytest.mark.parametrize(
    ("authorization", "details"),
    [
        (None, "Missing or malformed Authorization header"),
        ("Basic YWxpY2U6c2VjcmV0", "Missing or malformed Authorization header"),
        ("Bearer", "Missing or malformed Authorization header"),
        ("Bearer not-a-jwt", "Token is malformed"),
        (lambda api: other_key_token(claims()), "Token signature is invalid"),
        (lambda api: other_key_token(claims(), kid="other"), "Token is not signed by a trusted key"),
        (lambda api: api.token("alice", ttl=-1), "Token has expired"),
        (lambda api: own_key_token(api, claims(exp=None)), "Token has no expiry"),
        (
            lambda api: own_key_token(api, {"token_use": "id", "exp": claims()["exp"]}),
            "Token names no cognito:username",
        ),
    ],
)  # fmt: skip
def test_a_bad_token_is_401(
    api: EmulatorServer, authorization: Any, details: str
) -> None:
    if callable(authorization):
        authorization = f"Bearer {authorization(api)}"
    headers = {"Authorization": authorization} if authorization else {}

    for method, path in [("GET", "/messages"), ("POST", "/messages/x/publish")]:
        answer = httpx.request(method, api.url + path, headers=headers, json=HELLO)
        assert error(answer) == (401, {"error": "Unauthorized", "details": details})


def test_a_token_expires_on_the_emulator_clock(api: EmulatorServer) -> None:
    headers = {"Authorization": f"Bearer {api.token('alice', ttl=3600)}"}
    fresh = httpx.get(f"{api.url}/messages", headers=headers)

    api.clock(advance=3600)
    expired = httpx.get(f"{api.url}/messages", headers=headers)

    assert fresh.status_code == 200
    assert error(expired) == (
        401,
        {"error": "Unauthorized", "details": "Token has expired"},
    )


def test_an_access_token_is_403(api: EmulatorServer) -> None:
    token = own_key_token(api, claims(token_use="access"))

    answer = httpx.get(
        f"{api.url}/messages", headers={"Authorization": f"Bearer {token}"}
    )

    assert error(answer) == (
        403,
        {"error": "Forbidden", "details": "Token is not an id token"},
    )


# -- 422: every validation rule -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "details"),
    [
        (b"{not json", "Request body is not valid JSON"),
        (b"", "Request body is not valid JSON"),
        (["Hello"], "Request body must be a JSON object"),
        ({**HELLO, "tags": ["a"]}, "Unknown field(s): tags"),
        ({"platforms": ["x"]}, "content is required"),
        ({"content": "Hello"}, "platforms is required"),
        ({**HELLO, "content": ""}, "Content must be between 1 and 10000 characters"),
        ({**HELLO, "content": "a" * 10001}, "Content must be between 1 and 10000 characters"),
        ({**HELLO, "content": 5}, "Content must be between 1 and 10000 characters"),
        ({**HELLO, "title": "t" * 501}, "Title must be a string of at most 500 characters"),
        ({**HELLO, "title": 7}, "Title must be a string of at most 500 characters"),
        ({**HELLO, "platforms": []}, "platforms must be a non-empty array"),
        ({**HELLO, "platforms": "x"}, "platforms must be a non-empty array"),
        (
            {**HELLO, "platforms": ["x", "myspace"]},
            "Invalid platform 'myspace'; valid platforms: x, linkedin, bluesky",
        ),
        (
            {**HELLO, "scheduledFor": "2030-01-20T10:00:00"},
            "scheduledFor must be an ISO 8601 timestamp with a UTC offset",
        ),
        (
            {**HELLO, "scheduledFor": "next tuesday"},
            "scheduledFor must be an ISO 8601 timestamp with a UTC offset",
        ),
        ({**HELLO, "scheduledFor": "2029-12-31T23:59:59Z"}, "scheduledFor must be in the future"),
        ({**HELLO, "scheduledFor": NOW}, "scheduledFor must be in the future"),
    ],
)  # fmt: skip
def test_an_invalid_create_is_422_and_creates_nothing(
    api: EmulatorServer, body: Any, details: str
) -> None:
    frozen(api)
    user = api.new_user()
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    answer = call(api, user, "POST", "/messages", content=content)

    assert error(answer) == validation(details)
    assert api.messages(user) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**HELLO, "content": "a" * 10000}, "DRAFT"),
        ({**HELLO, "title": "t" * 500}, "DRAFT"),
        ({**HELLO, "platforms": ["X", "LINKEDIN", "Bluesky", "x"]}, "DRAFT"),
        ({**HELLO, "scheduledFor": "2030-01-01T00:00:01Z"}, "SCHEDULED"),
        ({**HELLO, "scheduledFor": None}, "DRAFT"),
    ],
)
def test_the_limits_themselves_are_accepted(
    api: EmulatorServer, body: dict[str, Any], status: str
) -> None:
    frozen(api)

    created = create(api, api.new_user(), **body)

    assert created["status"] == status
    assert created["content"] == body["content"]


def test_platform_names_are_case_insensitive_and_answered_in_lower_case(
    api: EmulatorServer,
) -> None:
    created = create(api, api.new_user(), platforms=["X", "LINKEDIN", "Bluesky", "x"])

    assert created["targets"] == ["x", "linkedin", "bluesky"]


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({}, "Request body must set at least one of content, platforms, scheduledFor, title"),
        ({"status": "PUBLISHED"}, "Unknown field(s): status"),
        ({"content": None}, "Content must be between 1 and 10000 characters"),
        ({"platforms": None}, "platforms must be a non-empty array"),
        ({"scheduledFor": "2029-01-01T00:00:00Z"}, "scheduledFor must be in the future"),
    ],
)  # fmt: skip
def test_an_invalid_patch_is_422_and_changes_nothing(
    api: EmulatorServer, body: dict[str, Any], details: str
) -> None:
    frozen(api)
    user = api.new_user()
    message = create(api, user)

    answer = call(api, user, "PATCH", path_of(message["id"]), json=body)

    assert error(answer) == validation(details)
    assert api.messages(user) == [message]


@pytest.mark.parametrize(
    ("query", "details"),
    [
        ("limit=0", "limit must be an integer between 1 and 100"),
        ("limit=101", "limit must be an integer between 1 and 100"),
        ("limit=ten", "limit must be an integer between 1 and 100"),
        ("limit=", "limit must be an integer between 1 and 100"),
        (
            "status=DRAFT,BOGUS",
            "Invalid status 'BOGUS'; valid: DRAFT, SCHEDULED, DIRECT, PUBLISHED, FAILED",
        ),
        ("status=", "Invalid status ''; valid: DRAFT, SCHEDULED, DIRECT, PUBLISHED, FAILED"),
        ("platform=myspace", "Invalid platform 'myspace'; valid: X, LINKEDIN, BLUESKY"),
        ("nextToken=garbage", "nextToken is not a token this API returned"),
        ("page=2", "Unknown query parameter(s): page"),
    ],
)  # fmt: skip
def test_an_invalid_list_query_is_422(
    api: EmulatorServer, query: str, details: str
) -> None:
    answer = call(api, api.new_user(), "GET", f"/messages?{query}")

    assert error(answer) == validation(details)


def test_limit_1_and_100_are_accepted(api: EmulatorServer) -> None:
    user = api.new_user()
    create(api, user)
    create(api, user)

    one = call(api, user, "GET", "/messages?limit=1").json()
    hundred = call(api, user, "GET", "/messages?limit=100").json()

    assert (len(one["messages"]), one["pagination"]["hasMore"]) == (1, True)
    assert hundred["pagination"] == {"limit": 100, "nextToken": None, "hasMore": False}
    assert len(hundred["messages"]) == 2


def test_status_is_a_comma_list_and_platform_filters_case_insensitively(
    api: EmulatorServer,
) -> None:
    frozen(api)
    user = api.new_user()
    draft = create(api, user, platforms=["x"])
    scheduled = create(
        api, user, platforms=["bluesky"], scheduledFor="2030-06-01T00:00:00Z"
    )
    published = create(api, user, platforms=["linkedin", "x"])
    call(api, user, "POST", path_of(published["id"], "/publish"))

    def ids(query: str) -> list[str]:
        answer = call(api, user, "GET", f"/messages?{query}")
        assert answer.status_code == 200, answer.text
        return [message["id"] for message in answer.json()["messages"]]

    assert ids("status=DRAFT") == [draft["id"]]
    assert ids("status=DRAFT,PUBLISHED") == [draft["id"], published["id"]]
    assert ids("status=FAILED") == []
    assert ids("platform=X") == [draft["id"], published["id"]]
    assert ids("platform=linkedin") == [published["id"]]
    assert ids("platform=BlueSky&status=SCHEDULED") == [scheduled["id"]]


# -- 404, 405, 409 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"content": "x"}),
        ("DELETE", "", None),
        ("POST", "/publish", None),
    ],
)
def test_an_unknown_id_is_404(
    api: EmulatorServer, method: str, suffix: str, body: Any
) -> None:
    answer = call(
        api, api.new_user(), method, path_of("POST|nobody|1", suffix), json=body
    )

    assert error(answer) == (
        404,
        {"error": "Not Found", "details": "Message POST|nobody|1 not found"},
    )


def test_an_unknown_path_is_404_and_a_wrong_method_405(api: EmulatorServer) -> None:
    user = api.new_user()

    unknown = call(api, user, "GET", "/posts")
    wrong = call(api, user, "PUT", "/messages")

    assert error(unknown) == (
        404,
        {"error": "Not Found", "details": "No route for /posts"},
    )
    assert error(wrong) == (
        405,
        {"error": "Method Not Allowed", "details": "PUT is not allowed on /messages"},
    )
    assert wrong.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("knobs", [{}, {"publish_delay_seconds": 60}])
def test_patch_delete_and_publish_of_a_published_or_direct_message_are_409(
    api: EmulatorServer, knobs: dict[str, Any]
) -> None:
    frozen(api)
    api.knobs(**knobs)
    user = api.new_user()
    message = create(api, user)
    sent = call(api, user, "POST", path_of(message["id"], "/publish")).json()
    status = sent["status"]

    patch = call(api, user, "PATCH", path_of(message["id"]), json={"content": "B"})
    bad_patch = call(api, user, "PATCH", path_of(message["id"]), json={"bad": 1})
    delete = call(api, user, "DELETE", path_of(message["id"]))
    publish = call(api, user, "POST", path_of(message["id"], "/publish"))

    assert status == ("DIRECT" if knobs else "PUBLISHED")
    for answer, verb in [(patch, "updated"), (bad_patch, "updated"),
                         (delete, "deleted"), (publish, "published")]:  # fmt: skip
        assert error(answer) == (
            409,
            {
                "error": "Conflict",
                "details": f"Message {message['id']} is {status} and cannot be {verb}",
            },
        )
    assert api.messages(user) == [sent]


# -- isolation between users ----------------------------------------------------


def test_bob_never_sees_or_changes_a_message_of_alice(api: EmulatorServer) -> None:
    alice, bob = api.new_user("alice"), api.new_user("bob")
    message = create(api, alice, content="Alice's")
    first_page = call(api, alice, "GET", "/messages?limit=1")
    create(api, alice)
    token = call(api, alice, "GET", "/messages?limit=1").json()["pagination"][
        "nextToken"
    ]
    not_found = (
        404,
        {"error": "Not Found", "details": f"Message {message['id']} not found"},
    )

    assert call(api, bob, "GET", "/messages").json()["messages"] == []
    assert error(call(api, bob, "GET", path_of(message["id"]))) == not_found
    patched = call(api, bob, "PATCH", path_of(message["id"]), json={"content": "Bob's"})
    assert error(patched) == not_found
    assert error(call(api, bob, "DELETE", path_of(message["id"]))) == not_found
    assert (
        error(call(api, bob, "POST", path_of(message["id"], "/publish"))) == not_found
    )
    assert error(call(api, bob, "GET", f"/messages?nextToken={token}")) == validation(
        "nextToken is not a token this API returned"
    )
    assert first_page.json()["messages"] == [message]
    assert call(api, alice, "GET", path_of(message["id"])).json() == message


# -- pagination -------------------------------------------------------------------


def pages(api: EmulatorServer, user: str, between: Any = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query = "/messages?limit=20"
    answers = []
    while True:
        page = call(api, user, "GET", query).json()
        answers.append(page)
        found.extend(page["messages"])
        token = page["pagination"]["nextToken"]
        assert page["pagination"]["hasMore"] is (token is not None)
        if token is None:
            return answers
        if between is not None:
            between(len(answers), found)
        query = f"/messages?limit=20&nextToken={token}"


def test_45_messages_come_back_once_each_over_3_pages_of_20(
    api: EmulatorServer,
) -> None:
    user = api.new_user()
    created = [create(api, user, content=f"post {n}")["id"] for n in range(45)]

    answers = pages(api, user)

    assert [len(page["messages"]) for page in answers] == [20, 20, 5]
    assert [page["pagination"]["limit"] for page in answers] == [20, 20, 20]
    assert [m["id"] for page in answers for m in page["messages"]] == created


def test_pages_stay_right_while_messages_are_created_and_deleted_between_them(
    api: EmulatorServer,
) -> None:
    user = api.new_user()
    originals = [create(api, user, content=f"post {n}")["id"] for n in range(45)]
    extra: list[str] = []

    def meddle(page_number: int, seen: list[dict[str, Any]]) -> None:
        # Delete some already listed, create new ones, delete one of those.
        for message in seen[-3:]:
            assert call(api, user, "DELETE", path_of(message["id"])).status_code == 204
        extra.extend(create(api, user, content=f"new {n}")["id"] for n in range(4))
        assert call(api, user, "DELETE", path_of(extra.pop(0))).status_code == 204

    answers = pages(api, user, meddle)
    listed = [m["id"] for page in answers for m in page["messages"]]

    assert len(listed) == len(set(listed))
    assert [i for i in listed if i in originals] == originals
    assert set(listed) - set(originals) <= set(extra)


# -- Idempotency-Key ----------------------------------------------------------------


def test_two_publishes_with_one_key_publish_once_and_answer_the_same(
    api: EmulatorServer,
) -> None:
    user = api.new_user()
    message = create(api, user, platforms=["x", "bluesky"])
    api.clear_requests()
    key = {"Idempotency-Key": "7f1c1b8e-publish"}

    first = call(api, user, "POST", path_of(message["id"], "/publish"), headers=key)
    second = call(api, user, "POST", path_of(message["id"], "/publish"), headers=key)
    unkeyed = call(api, user, "POST", path_of(message["id"], "/publish"))

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()
    assert first.json()["status"] == "PUBLISHED"
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert unkeyed.status_code == 409
    traffic = api.requests()
    assert traffic["counts"] == {"POST /messages/{id}/publish": 3}
    assert traffic["publishes"] == 1
    assert [(e["status"], e["replayed"]) for e in traffic["log"]] == [
        (200, False),
        (200, True),
        (409, False),
    ]
    assert api.messages(user) == [first.json()]


def test_two_creates_with_one_key_create_once(api: EmulatorServer) -> None:
    user = api.new_user()
    key = {"Idempotency-Key": "create-1"}

    first = call(api, user, "POST", "/messages", json=HELLO, headers=key)
    second = call(api, user, "POST", "/messages", json=HELLO, headers=key)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert api.messages(user) == [first.json()]


def test_one_key_with_another_request_is_422_and_changes_nothing(
    api: EmulatorServer,
) -> None:
    user = api.new_user()
    key = {"Idempotency-Key": "k-1"}
    first = call(api, user, "POST", "/messages", json=HELLO, headers=key).json()
    other = create(api, user)

    another_body = call(
        api, user, "POST", "/messages", json={**HELLO, "content": "B"}, headers=key
    )
    another_operation = call(
        api, user, "POST", path_of(other["id"], "/publish"), headers=key
    )

    reused = (
        422,
        {
            "error": "Idempotency Key Reused",
            "details": "This Idempotency-Key was used with a different request",
        },
    )
    assert error(another_body) == reused
    assert error(another_operation) == reused
    assert api.messages(user) == [first, other]


def test_a_refused_request_does_not_use_up_its_key(api: EmulatorServer) -> None:
    user = api.new_user()
    key = {"Idempotency-Key": "k-2"}

    refused = call(api, user, "POST", "/messages", json={"content": ""}, headers=key)
    accepted = call(api, user, "POST", "/messages", json=HELLO, headers=key)

    assert refused.status_code == 422
    assert accepted.status_code == 201


def test_keys_belong_to_one_user(api: EmulatorServer) -> None:
    alice, bob = api.new_user("alice"), api.new_user("bob")
    key = {"Idempotency-Key": "shared"}

    first = call(api, alice, "POST", "/messages", json=HELLO, headers=key).json()
    second = call(api, bob, "POST", "/messages", json=HELLO, headers=key).json()

    assert first["id"] != second["id"]
    assert api.messages(bob) == [second]


@pytest.mark.parametrize(
    ("key", "details"),
    [
        ("", "Idempotency-Key must not be empty"),
        ("k" * 256, "Idempotency-Key must be at most 255 characters"),
    ],
)
def test_an_empty_or_long_key_is_422(
    api: EmulatorServer, key: str, details: str
) -> None:
    user = api.new_user()

    answer = call(
        api, user, "POST", "/messages", json=HELLO, headers={"Idempotency-Key": key}
    )

    assert error(answer) == validation(details)
    assert api.messages(user) == []


# -- admin endpoints and the token command -------------------------------------------


def test_the_clock_is_set_and_advanced(api: EmulatorServer) -> None:
    set_to = httpx.post(f"{api.url}/_emulator/clock", json={"set": NOW, "frozen": True})
    advanced = httpx.post(f"{api.url}/_emulator/clock", json={"advance": 90.5})
    bad = httpx.post(f"{api.url}/_emulator/clock", json={"set": "soon"})

    assert set_to.json() == {"now": "2030-01-01T00:00:00+00:00", "frozen": True}
    assert advanced.json() == {
        "now": "2030-01-01T00:01:30.500000+00:00",
        "frozen": True,
    }
    assert error(bad) == validation(
        "set must be an ISO 8601 timestamp with a UTC offset"
    )


def test_the_request_log_has_endpoint_method_path_time_and_status(
    api: EmulatorServer,
) -> None:
    user = api.new_user()
    token = api.token(user)
    api.clear_requests()
    before = time.time()

    httpx.get(f"{api.url}/messages", headers={"Authorization": f"Bearer {token}"})
    httpx.get(f"{api.url}/messages/POST%7Cx%7C1", headers={"Authorization": "Bearer x"})
    httpx.get(f"{api.url}/_emulator/knobs")
    traffic = api.requests()

    assert traffic["counts"] == {"GET /messages": 1, "GET /messages/{id}": 1}
    assert [{k: v for k, v in e.items() if k != "time"} for e in traffic["log"]] == [
        {"endpoint": "GET /messages", "method": "GET", "path": "/messages",
         "status": 200, "dropped": False, "replayed": False},
        {"endpoint": "GET /messages/{id}", "method": "GET",
         "path": "/messages/POST|x|1", "status": 401, "dropped": False,
         "replayed": False},
    ]  # fmt: skip
    times = [entry["time"] for entry in traffic["log"]]
    assert before <= times[0] <= times[1] <= time.time()


def test_the_token_command_mints_tokens_the_server_accepts_or_expired_ones(
    api: EmulatorServer, tmp_path: Path
) -> None:
    made = run_command(
        ["emulator", "token", "--user", "dora", "--state-dir", str(api.state_dir)],
        tmp_path,
    )
    expired = run_command(
        ["emulator", "token", "--user", "dora", "--ttl", "-5",
         "--state-dir", str(api.state_dir)],
        tmp_path,
    )  # fmt: skip

    assert made.code == 0 and expired.code == 0
    good = httpx.get(
        f"{api.url}/messages",
        headers={"Authorization": f"Bearer {made.stdout.strip()}"},
    )
    old = httpx.get(
        f"{api.url}/messages",
        headers={"Authorization": f"Bearer {expired.stdout.strip()}"},
    )
    assert good.status_code == 200
    assert error(old) == (
        401,
        {"error": "Unauthorized", "details": "Token has expired"},
    )
    assert (
        jwt.decode(made.stdout.strip(), options={"verify_signature": False})[
            "cognito:username"
        ]
        == "dora"
    )


# -- trusting another JWKS ------------------------------------------------------------


def test_serve_flags_set_knobs_and_trust_another_jwks_file_instead_of_its_own(
    tmp_path: Path,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [{**public, "kid": "pool-key-1", "alg": "RS256"}]})
    )
    pool_token = jwt.encode(
        {"cognito:username": "carol", "token_use": "id", "exp": int(time.time()) + 600,
         "iss": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_test"},
        key,
        "RS256",
        headers={"kid": "pool-key-1"},
    )  # fmt: skip
    flags = [
        "--throttle-every", "4",
        "--retry-after", "3",
        "--drop-rate", "0.25",
        "--drop-endpoint", "POST /messages/{id}/publish",
        "--error-status", "502",
        "--error-status", "504",
        "--publish-delay-seconds", "2.5",
        "--seed", "7",
    ]  # fmt: skip
    server = EmulatorServer(tmp_path / "state", ["--trust-jwks", str(jwks), *flags])
    try:
        knobs = httpx.get(f"{server.url}/_emulator/knobs").json()
        created = httpx.post(
            f"{server.url}/messages",
            json=HELLO,
            headers={"Authorization": f"Bearer {pool_token}"},
        )
        own = httpx.get(
            f"{server.url}/messages",
            headers={"Authorization": f"Bearer {server.token('carol')}"},
        )
    finally:
        server.stop()

    assert knobs == {
        "latency_ms": 0.0,
        "error_rate": 0.0,
        "error_statuses": [502, 504],
        "error_endpoints": [],
        "rate_429": 0.0,
        "throttle_every": 4,
        "retry_after": 3.0,
        "throttle_endpoints": [],
        "drop_rate": 0.25,
        "drop_endpoints": ["POST /messages/{id}/publish"],
        "publish_failure_rate": 0.0,
        "publish_delay_seconds": 2.5,
        "seed": 7,
    }
    assert created.status_code == 201
    assert created.json()["id"].startswith("POST|carol|")
    assert error(own) == (
        401,
        {"error": "Unauthorized", "details": "Token is not signed by a trusted key"},
    )


def test_trusting_a_jwks_url_fetches_it_when_first_needed(
    api: EmulatorServer, tmp_path: Path
) -> None:
    # The shared emulator stands in for a user pool: it serves a JWKS over HTTP.
    server = EmulatorServer(
        tmp_path / "state", ["--trust-jwks", f"{api.url}/.well-known/jwks.json"]
    )
    try:
        answer = httpx.post(
            f"{server.url}/messages",
            json=HELLO,
            headers={"Authorization": f"Bearer {api.token('erin')}"},
        )
    finally:
        server.stop()

    assert answer.status_code == 201
    assert answer.json()["id"].startswith("POST|erin|")


def test_cognito_id_tokens_of_a_trusted_pool_name_the_user_and_access_tokens_are_403(
    tmp_path: Path,
) -> None:
    # moto stands in for the Cognito user pool, and its JWKS for the pool's.
    public = Path(moto.cognitoidp.__file__).parent / "resources" / "jwks-public.json.gz"
    jwks = tmp_path / "pool-jwks.json"
    jwks.write_bytes(gzip.decompress(public.read_bytes()))
    with mock_aws():
        cognito = boto3.client("cognito-idp", region_name="eu-central-1")
        pool = cognito.create_user_pool(PoolName="nexus")["UserPool"]["Id"]
        client = cognito.create_user_pool_client(
            UserPoolId=pool, ClientName="cli", ExplicitAuthFlows=["USER_PASSWORD_AUTH"]
        )["UserPoolClient"]["ClientId"]
        cognito.admin_create_user(UserPoolId=pool, Username="dave")
        cognito.admin_set_user_password(
            UserPoolId=pool, Username="dave", Password="Secret-123456", Permanent=True
        )
        tokens = cognito.initiate_auth(
            ClientId=client,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "dave", "PASSWORD": "Secret-123456"},
        )["AuthenticationResult"]

    emulator = Emulator(tmp_path / "state", trusted_jwks=jwks)
    app = create_app(emulator)

    async def send(token: str) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://emulator"
        ) as client:
            return await client.post(
                "/messages", json=HELLO, headers={"Authorization": f"Bearer {token}"}
            )

    try:
        with_id = asyncio.run(send(tokens["IdToken"]))
        with_access = asyncio.run(send(tokens["AccessToken"]))
    finally:
        emulator.store.close()
    assert with_id.status_code == 201
    assert with_id.json()["id"].startswith("POST|dave|")
    assert error(with_access) == (
        403,
        {"error": "Forbidden", "details": "Token is not an id token"},
    )


def test_an_id_is_never_given_again_after_its_message_was_deleted(
    tmp_path: Path,
) -> None:
    from nexus_sync.emulator import Emulator

    emulator = Emulator(tmp_path / "state")
    store, now = emulator.store, emulator.now()
    try:
        first = store.create("alice", {"content": "a", "platforms": ["x"]}, now)
        store.delete("alice", first["id"], now)
        second = store.create("alice", {"content": "a", "platforms": ["x"]}, now)
    finally:
        store.close()

    assert second["id"] != first["id"]


def test_serve_on_a_port_in_use_says_so_and_keeps_its_state_out_of_git(
    api: EmulatorServer, tmp_path: Path
) -> None:
    assert (api.state_dir / ".gitignore").read_text() == "*\n"

    busy = run_command(
        ["emulator", "serve", "--port", str(api.port), "--state-dir", "other"],
        tmp_path,
    )

    assert busy.code == 1
    assert busy.stdout == ""
    assert busy.stderr == (
        f"Error: cannot listen on 127.0.0.1:{api.port}: Address already in use; "
        "choose another --port\n"
    )


def test_the_token_command_refuses_a_folder_without_an_emulator(
    tmp_path: Path,
) -> None:
    made = run_command(["emulator", "token", "--user", "dora"], tmp_path)

    assert made.code == 1
    assert made.stderr == (
        "Error: no emulator in .nexus-sync/ (it has no emulator-key.pem): run this "
        "where `nexus-sync emulator serve` runs, or give the --state-dir it uses\n"
    )
    assert not (tmp_path / ".nexus-sync").exists()
