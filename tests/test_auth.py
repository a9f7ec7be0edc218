"""Logging in to Cognito (moto's), renewing tokens, and using them as httpx.Auth."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import jwt
import pytest
from conftest import CognitoPool, EmulatorServer, run_command

from nexus_sync.auth import CognitoAuth, CognitoLogin, Tokens
from nexus_sync.emulator import Emulator, create_app
from nexus_sync.errors import AuthError, ConfigError


@pytest.fixture
def login(cognito: CognitoPool, monkeypatch: pytest.MonkeyPatch) -> CognitoLogin:
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", cognito.url)
    return CognitoLogin(
        cognito.user, cognito.password, cognito.client_id, "eu-central-1"
    )


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_the_right_password_gives_an_id_token_of_the_user(
    login: CognitoLogin,
) -> None:
    tokens = login.login()

    assert claims(tokens.id_token)["cognito:username"] == "alice"
    assert claims(tokens.id_token)["token_use"] == "id"
    assert tokens.expires_at == claims(tokens.id_token)["exp"]
    assert tokens.refresh_token
    assert repr(tokens) == f"Tokens(expires_at={tokens.expires_at!r})"


def test_a_wrong_password_is_refused_with_cognitos_reason(
    cognito: CognitoPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", cognito.url)
    wrong = CognitoLogin("alice", "not-the-password", cognito.client_id, "eu-central-1")

    with pytest.raises(AuthError) as raised:
        wrong.login()

    assert str(raised.value) == (
        "Cognito refused the login of alice: Incorrect username or password. "
        "Check NEXUS_USER and NEXUS_PASSWORD."
    )
    assert "not-the-password" not in repr(wrong)


def test_renewal_uses_the_refresh_token(login: CognitoLogin) -> None:
    first = login.login()

    renewed = login.renew(first)

    assert renewed.id_token != first.id_token
    assert claims(renewed.id_token)["cognito:username"] == "alice"
    assert renewed.refresh_token == first.refresh_token


def test_renewal_logs_in_again_when_the_refresh_token_is_refused(
    login: CognitoLogin,
) -> None:
    stale = Tokens("not-a-token", "revoked-refresh-token", 0.0)

    renewed = login.renew(stale)

    assert claims(renewed.id_token)["cognito:username"] == "alice"
    assert renewed.refresh_token != "revoked-refresh-token"


def test_srp_login_with_the_pool_id(
    cognito: CognitoPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", cognito.url)
    srp = CognitoLogin(
        cognito.user,
        cognito.password,
        cognito.client_id,
        "eu-central-1",
        "USER_SRP_AUTH",
        cognito.pool_id,
    )

    assert claims(srp.login().id_token)["cognito:username"] == "alice"


def test_srp_without_a_pool_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        CognitoLogin("alice", "pw-pw-pw", "client", "eu-central-1", "USER_SRP_AUTH")

    assert str(raised.value) == (
        "auth_flow USER_SRP_AUTH needs user_pool_id in nexus-sync.yaml "
        "(or NEXUS_USER_POOL_ID), e.g. eu-central-1_AbCdEfGhI"
    )


def trusting_emulator(tmp_path: Path, cognito: CognitoPool) -> Emulator:
    """An in-process emulator that accepts the pool's tokens, as the service does."""
    return Emulator(tmp_path / "state", trusted_jwks=httpx.get(cognito.jwks_url).json())


def test_concurrent_requests_refused_with_401_share_one_renewal(
    tmp_path: Path, cognito: CognitoPool, login: CognitoLogin
) -> None:
    emulator = trusting_emulator(tmp_path, cognito)
    auth = CognitoAuth(login)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=create_app(emulator))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://emulator.test", auth=auth
        ) as client:
            assert (await client.get("/messages")).status_code == 200
            first_expiry = int(auth._tokens.expires_at)

            # On the emulator's clock the first token has just expired; a token
            # issued a second or more later is still valid there.
            while time.time() < first_expiry - 3600 + 2:
                await asyncio.sleep(0.05)
            emulator.clock_offset = first_expiry - time.time()
            # All eight are sent before the first answer (and the renewal) comes.
            emulator.apply_knobs({"latency_ms": 200})

            answers = await asyncio.gather(*(client.get("/messages") for _ in range(8)))
            return [answer.status_code for answer in answers]

    assert asyncio.run(scenario()) == [200] * 8
    assert auth.renewals == 1
    statuses = [entry["status"] for entry in emulator.traffic.log]
    assert statuses.count(401) == 8
    assert statuses.count(200) == 9


def test_the_token_is_renewed_a_minute_before_it_expires(
    tmp_path: Path, cognito: CognitoPool, login: CognitoLogin
) -> None:
    emulator = trusting_emulator(tmp_path, cognito)
    shift = 0.0
    auth = CognitoAuth(login, clock=lambda: time.time() + shift)

    async def scenario() -> None:
        nonlocal shift
        transport = httpx.ASGITransport(app=create_app(emulator))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://emulator.test", auth=auth
        ) as client:
            assert (await client.get("/messages")).status_code == 200
            assert auth.renewals == 0
            shift = auth._tokens.expires_at - time.time() - 30
            assert (await client.get("/messages")).status_code == 200

    asyncio.run(scenario())

    assert auth.renewals == 1
    assert [entry["status"] for entry in emulator.traffic.log] == [200, 200]


def test_the_command_logs_in_with_the_right_password(
    empty_repo: Path, cognito: CognitoPool, tmp_path: Path
) -> None:
    server = EmulatorServer(
        tmp_path / "emulator-state", ["--trust-jwks", cognito.jwks_url]
    )
    try:
        env = {"NEXUS_API_URL": server.url, **cognito.env()}

        result = run_command(["-v", "plan"], empty_repo, env)
    finally:
        server.stop()

    assert result.code == 0, result.output
    assert "No changes." in result.stdout
    assert "logged in to Cognito as alice (USER_PASSWORD_AUTH)" in result.stderr


def test_the_command_says_clearly_that_the_password_is_wrong(
    empty_repo: Path, cognito: CognitoPool
) -> None:
    env = {"NEXUS_API_URL": "http://127.0.0.1:9", **cognito.env("Wrong-Passw0rd")}

    result = run_command(["plan"], empty_repo, env)

    assert result.code == 1
    assert result.stderr == (
        "Error: Cognito refused the login of alice: Incorrect username or "
        "password. Check NEXUS_USER and NEXUS_PASSWORD.\n"
    )
    assert result.stdout == ""


def test_a_user_without_a_password_is_a_config_error(empty_repo: Path) -> None:
    env = {"NEXUS_API_URL": "http://127.0.0.1:9", "NEXUS_USER": "alice"}

    result = run_command(["plan"], empty_repo, env)

    assert result.code == 1
    assert result.stderr == (
        "Error: NEXUS_PASSWORD is not set: a Cognito login needs both NEXUS_USER "
        "and NEXUS_PASSWORD (or set NEXUS_TOKEN instead)\n"
    )
