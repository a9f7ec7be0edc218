"""RS256 tokens that the emulator mints and accepts, like Cognito id tokens."""

from __future__ import annotations

import json
import logging
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


class TokenRejected(Exception):
    """The bearer token is missing, malformed, badly signed or expired."""


class Signer:
    """The emulator's own key pair, kept in its state folder between runs."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / KEY_FILE
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path.touch(mode=0o600)
            path.write_bytes(pem)
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
        self._keys: dict[str | None, Any] = {}
        if isinstance(jwks, str) and jwks.startswith(("http://", "https://")):
            self._url = jwks
        elif isinstance(jwks, (str, Path)):
            self._keys = _keys(json.loads(Path(jwks).read_text()))
        else:
            self._keys = _keys(jwks)

    def user(self, token: str, now: float) -> str:
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header.get("kid"))
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise TokenRejected(f"invalid token: {error}") from None
        # Expiry is checked here, on the emulator's clock, not the machine's.
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
            raise TokenRejected("token expired")
        user = claims.get("cognito:username")
        if not isinstance(user, str) or not user:
            raise TokenRejected("token names no cognito:username")
        return user

    def _key(self, kid: str | None) -> Any:
        if kid not in self._keys and self._url is not None:
            self._keys = _keys(_fetch(self._url))
        if kid not in self._keys:
            raise TokenRejected("token signed by an unknown key")
        return self._keys[kid]


def _fetch(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as error:
        # A token cannot be checked without the keys; it is refused, not let in.
        log.warning("could not fetch the trusted JWKS %s: %s", url, error)
        return {"keys": []}


def _keys(jwks: dict[str, Any]) -> dict[str | None, Any]:
    return {key.get("kid"): jwt.PyJWK(key).key for key in jwks.get("keys", [])}
