"""RS256 tokens that the emulator mints and accepts, like Cognito id tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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
    """Checks a bearer token against a JWKS: the emulator's own, or a pool's."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self._keys = {
            key.get("kid"): jwt.PyJWK(key).key for key in jwks.get("keys", [])
        }

    def user(self, token: str, now: float) -> str:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid"))
            if key is None:
                raise TokenRejected("token signed by an unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise TokenRejected(f"invalid token: {error}") from None
        if "exp" not in claims or claims["exp"] <= now:
            raise TokenRejected("token expired")
        user = claims.get("cognito:username") or claims.get("username")
        if not user:
            raise TokenRejected("token names no cognito:username")
        return str(user)
