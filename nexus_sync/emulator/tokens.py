"""RS256 tokens that the emulator mints and accepts, like Cognito id tokens."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger(__name__)

KEY_FILE = "emulator-key.pem"
ISSUER = "nexus-sync-emulator"
KEY_ID = "nexus-sync-emulator-1"
REFETCH_SECONDS = 30


class TokenRejected(Exception):
    """The bearer token is missing, malformed, badly signed or expired (401)."""


class TokenForbidden(Exception):
    """A good token that does not grant the API, e.g. an access token (403)."""


class Signer:
    """The emulator's own key pair, kept in its state folder between runs."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / KEY_FILE
        if not path.exists():
            _create_key(path)
        self._key = serialization.load_pem_private_key(path.read_bytes(), None)

    def mint(self, user: str, ttl: float = 3600, now: float | None = None) -> str:
        """An id token for `user` that expires `ttl` seconds after `now`."""
        issued = time.time() if now is None else now
        claims = {
            "sub": user,
            "cognito:username": user,
            "token_use": "id",
            "iss": ISSUER,
            "iat": int(issued),
            "exp": int(issued + ttl),
        }
        return jwt.encode(claims, self._key, "RS256", headers={"kid": KEY_ID})

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key())
        key = json.loads(public)
        key.update({"kid": KEY_ID, "use": "sig", "alg": "RS256"})
        return {"keys": [key]}


class Verifier:
    """Checks a bearer token against a JWKS: the emulator's own, or a pool's.

    The JWKS is a mapping, a file, or an http(s) URL that is fetched when a
    token first needs it (and again when a token names a key it lacks, as
    Cognito rotates keys).
    """

    def __init__(self, jwks: dict[str, Any] | str | Path) -> None:
        self._url: str | None = None
        self._fetched: float | None = None
        self._keys: dict[str | None, Any] = {}
        if isinstance(jwks, str) and jwks.startswith(("http://", "https://")):
            self._url = jwks
        elif isinstance(jwks, (str, Path)):
            self._keys = _keys(json.loads(Path(jwks).read_text()))
        else:
            self._keys = _keys(jwks)

    def user(self, token: str, now: float) -> str:
        """The user a token is for, or TokenRejected saying what is wrong."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("Token is malformed") from None
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                # Times are checked below on the emulator's clock, which a
                # test may have moved away from the machine's.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenRejected("Token signature is invalid") from None
        except jwt.PyJWTError:
            raise TokenRejected("Token is malformed") from None

        # Expiry is checked on the emulator's clock, not the machine's.
        expires = claims.get("exp")
        if isinstance(expires, bool) or not isinstance(expires, (int, float)):
            raise TokenRejected("Token has no expiry")
        if expires <= now:
            raise TokenRejected("Token has expired")
        if claims.get("token_use", "id") != "id":
            raise TokenForbidden("Token is not an id token")
        user = claims.get("cognito:username")
        if not isinstance(user, str) or not user:
            raise TokenRejected("Token names no cognito:username")
        return user

    def _key(self, kid: str | None) -> Any:
        # A token naming an unknown key fetches the keys again, but not more
        # often than REFETCH_SECONDS: a stream of bad tokens is no stream of
        # fetches.
        due = (
            self._fetched is None or time.monotonic() - self._fetched > REFETCH_SECONDS
        )
        if kid not in self._keys and self._url is not None and due:
            self._fetched = time.monotonic()
            self._keys = _keys(_fetch(self._url))
        if kid not in self._keys:
            raise TokenRejected("Token is not signed by a trusted key")
        return self._keys[kid]


def _create_key(path: Path) -> None:
    # Commands started together on a fresh repository each find no key. Each
    # writes a whole key to a file of its own, then links it into place only
    # if no key is there yet: a reader never sees half a key, and every
    # process goes on with the one key that was linked first.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            log.debug("another process created %s first; using its key", path)
    finally:
        os.unlink(temporary)


def _fetch(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as error:
        # A token cannot be checked without the keys; it is refused, not let in.
        log.warning("could not fetch the trusted JWKS %s: %s", url, error)
        return {"keys": []}


def _keys(jwks: Any) -> dict[str | None, Any]:
    keys: dict[str | None, Any] = {}
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        try:
            keys[entry.get("kid")] = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, AttributeError, TypeError, ValueError) as error:
            # One unusable key (another algorithm, a typo) must not hide the rest.
            log.warning("ignoring a key of the trusted JWKS: %s", error)
    return keys
