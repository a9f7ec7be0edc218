"""Bearer tokens for the Nexus Share API (static or from Cognito) as httpx.Auth.

Every secret this module sees (a token, a password, a refresh token) is also
registered with `hide`, so that `redact` and `RedactingFormatter` can keep it
out of every line nexus-sync writes, whatever logged it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any
from urllib.parse import quote

import httpx

from .config import AUTH_FLOWS
from .errors import AuthError, ConfigError

log = logging.getLogger(__name__)

USER_PASSWORD_AUTH, USER_SRP_AUTH = AUTH_FLOWS

# Renew this long before the id token expires, so that no request sets out
# with a token that dies on the way.
RENEW_BEFORE = 60.0

HIDDEN = "<hidden>"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def hide(secret: str | None) -> None:
    """Never let `secret` (or its JSON- or URL-escaped form) reach any output."""
    if not secret or len(secret) < 4:
        return
    forms = {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}
    with _secrets_lock:
        _secrets.update(forms)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by <hidden>."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) carry no secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class StaticToken(httpx.Auth):
    """A token given as it is (NEXUS_TOKEN); it is never shown in any output."""

    def __init__(self, token: str) -> None:
        self._token = token.strip()
        hide(self._token)
        if not self._token or any(c.isspace() for c in self._token):
            raise AuthError(
                "NEXUS_TOKEN is empty or has spaces or line breaks inside; "
                "give the id token alone"
            )

    def __repr__(self) -> str:
        return f"StaticToken({HIDDEN})"

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


@dataclasses.dataclass(frozen=True)
class Tokens:
    """What one Cognito login or renewal returned; only `expires_at` is shown."""

    id_token: str = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(repr=False)
    expires_at: float


class CognitoLogin:
    """Logs one user in to a Cognito app client and renews the tokens.

    USER_PASSWORD_AUTH is one InitiateAuth call; USER_SRP_AUTH (pycognito's
    AWSSRP) needs the user pool id as well. Renewal uses the refresh token and
    falls back to the password when Cognito no longer takes it.
    """

    def __init__(
        self,
        user: str,
        password: str,
        client_id: str,
        region: str,
        flow: str = USER_PASSWORD_AUTH,
        user_pool_id: str | None = None,
    ) -> None:
        if flow not in AUTH_FLOWS:
            raise ConfigError(
                f"auth_flow {flow!r} is not one of {', '.join(AUTH_FLOWS)}"
            )
        if flow == USER_SRP_AUTH and not user_pool_id:
            raise ConfigError(
                "auth_flow USER_SRP_AUTH needs user_pool_id in nexus-sync.yaml "
                "(or NEXUS_USER_POOL_ID), e.g. eu-central-1_AbCdEfGhI"
            )
        self.user = user
        self._password = password
        hide(password)
        self.client_id = client_id
        self.region = region
        self.flow = flow
        self.user_pool_id = user_pool_id
        self._cognito: Any = None

    def __repr__(self) -> str:
        return f"CognitoLogin(user={self.user!r}, flow={self.flow!r})"

    def login(self) -> Tokens:
        """Log in with the password; AuthError with Cognito's reason if refused."""
        from botocore.exceptions import BotoCoreError, ClientError
        from pycognito.exceptions import WarrantException

        client = self._client()
        try:
            if self.flow == USER_SRP_AUTH:
                from pycognito.aws_srp import AWSSRP

                srp = AWSSRP(
                    username=self.user,
                    password=self._password,
                    pool_id=self.user_pool_id,
                    client_id=self.client_id,
                    client=client,
                )
                answer = srp.authenticate_user()
            else:
                answer = client.initiate_auth(
                    AuthFlow=USER_PASSWORD_AUTH,
                    ClientId=self.client_id,
                    AuthParameters={"USERNAME": self.user, "PASSWORD": self._password},
                )
        except (BotoCoreError, ClientError, WarrantException) as error:
            raise AuthError(self._refused(error)) from None
        tokens = self._tokens(answer, None)
        log.info("logged in to Cognito as %s (%s)", self.user, self.flow)
        return tokens

    def renew(self, tokens: Tokens | None) -> Tokens:
        """Fresh tokens: from the refresh token if it still works, else a login."""
        from botocore.exceptions import BotoCoreError, ClientError

        if tokens is None or not tokens.refresh_token:
            return self.login()
        try:
            answer = self._client().initiate_auth(
                AuthFlow="REFRESH_TOKEN_AUTH",
                ClientId=self.client_id,
                AuthParameters={"REFRESH_TOKEN": tokens.refresh_token},
            )
        except (BotoCoreError, ClientError) as error:
            log.info(
                "Cognito refused the refresh token (%s); logging in again",
                _reason(error),
            )
            return self.login()
        renewed = self._tokens(answer, tokens.refresh_token)
        log.info("renewed the Cognito id token of %s", self.user)
        return renewed

    def _client(self) -> Any:
        if self._cognito is None:
            # boto3 is slow to import and only needed for a password login.
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config as BotoConfig

            # InitiateAuth takes no AWS credentials: unsigned, nothing is looked
            # up (no instance metadata). AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER
            # still points it elsewhere, as boto3 documents.
            self._cognito = boto3.client(
                "cognito-idp",
                region_name=self.region,
                config=BotoConfig(
                    signature_version=UNSIGNED,
                    retries={"mode": "standard", "max_attempts": 5},
                ),
            )
        return self._cognito

    def _tokens(self, answer: dict[str, Any], refresh_token: str | None) -> Tokens:
        result = answer.get("AuthenticationResult")
        if not result:
            challenge = answer.get("ChallengeName", "an unknown challenge")
            raise AuthError(
                f"Cognito asks {self.user} to answer {challenge} before logging in; "
                "log in once at https://nexus-share.com and try again"
            )
        id_token = result["IdToken"]
        refresh = result.get("RefreshToken") or refresh_token
        for secret in (id_token, refresh, result.get("AccessToken")):
            hide(secret)
        return Tokens(id_token, refresh, _expiry(id_token, result.get("ExpiresIn")))

    def _refused(self, error: Exception) -> str:
        code = _code(error)
        reason = _reason(error)
        if code in ("NotAuthorizedException", "UserNotFoundException"):
            return (
                f"Cognito refused the login of {self.user}: {reason} "
                "Check NEXUS_USER and NEXUS_PASSWORD."
            )
        if code == "UserNotConfirmedException":
            return f"Cognito: {self.user} is not confirmed yet: {reason}"
        if code == "PasswordResetRequiredException":
            return f"Cognito: {self.user} must reset the password first: {reason}"
        return f"could not log in to Cognito ({self.region}) as {self.user}: {reason}"


class CognitoAuth(httpx.Auth):
    """Cognito id tokens as an httpx.Auth: renewed a minute before they expire,
    and once after a 401. Concurrent requests share one renewal."""

    requires_request_body = True

    def __init__(
        self,
        login: CognitoLogin,
        renew_before: float = RENEW_BEFORE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._login = login
        self._renew_before = renew_before
        self._clock = clock
        self._tokens: Tokens | None = None
        self._async_lock = asyncio.Lock()
        self._sync_lock = threading.Lock()
        self.renewals = 0

    def __repr__(self) -> str:
        return f"CognitoAuth({self._login!r})"

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await self._async_refresh(None)
        token = self._id_token()
        response = yield _with_token(request, token)
        if response.status_code == 401:
            await self._async_refresh(token)
            yield _with_token(request, self._id_token())

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        with self._sync_lock:
            self._refresh(None)
        token = self._id_token()
        response = yield _with_token(request, token)
        if response.status_code == 401:
            with self._sync_lock:
                self._refresh(token)
            yield _with_token(request, self._id_token())

    async def _async_refresh(self, refused: str | None) -> None:
        if not self._stale(refused):
            return
        async with self._async_lock:
            # Cognito's client is blocking; the other requests wait for this one
            # renewal instead of starting their own.
            await asyncio.to_thread(self._refresh, refused)

    def _stale(self, refused: str | None) -> bool:
        """Whether to log in or renew; `refused` is a token just answered 401."""
        tokens = self._tokens
        if tokens is None:
            return True
        if refused is not None:
            return refused == tokens.id_token
        return self._clock() >= tokens.expires_at - self._renew_before

    def _refresh(self, refused: str | None) -> None:
        # Checked again under the lock: another request may have renewed.
        if not self._stale(refused):
            return
        if self._tokens is None:
            self._tokens = self._login.login()
            return
        if refused is not None:
            log.info("Nexus Share refused the id token (401); renewing it once")
        else:
            log.info(
                "the id token expires within %g s; renewing it", self._renew_before
            )
        self._tokens = self._login.renew(self._tokens)
        self.renewals += 1

    def _id_token(self) -> str:
        assert self._tokens is not None
        return self._tokens.id_token


def _with_token(request: httpx.Request, token: str) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token}"
    return request


def _expiry(id_token: str, expires_in: Any) -> float:
    # The id token's own `exp` is what the service checks; ExpiresIn (seconds
    # from now) stands in if the token cannot be read.
    # Imported here: PyJWT loads the cryptography package, which a plan with
    # a static token would import for nothing.
    import jwt

    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
        return float(claims["exp"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return time.time() + float(expires_in or 3600)


def _code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return type(error).__name__


def _reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Message"):
        return redact(str(response["Error"]["Message"]))
    return redact(f"{type(error).__name__}: {error}")
