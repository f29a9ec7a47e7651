"""Bearer tokens that map to users. The user id never comes from the URL or the body.

Two kinds, either or both:

- static tokens (``WORKSHOP_TOKENS="tok-a:alice,tok-b:bob"``), compared in constant time;
- JWTs from your identity provider (``JwtVerifier``; ``WORKSHOP_JWT_ISSUER``,
  ``WORKSHOP_JWT_AUDIENCE``, ``WORKSHOP_JWKS_URL``): signature checked against the issuer's
  published keys (JWKS), issuer, audience and expiry required; the user is the ``sub`` claim.
"""

import asyncio
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Header

from .errors import api_error

TOKENS_ENV = "WORKSHOP_TOKENS"
JWT_ISSUER_ENV = "WORKSHOP_JWT_ISSUER"
JWT_AUDIENCE_ENV = "WORKSHOP_JWT_AUDIENCE"
JWKS_URL_ENV = "WORKSHOP_JWKS_URL"
# Asymmetric only: a verifier that accepted HS256 could be fooled with the public key as the
# shared secret ("algorithm confusion"); "none" is never accepted.
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")


@dataclass
class JwtVerifier:
    """Verifies a JWT against the issuer's JWKS (fetched over HTTPS, keys cached by kid).

    ``jwks_url``: where the issuer publishes its keys (e.g. ``https://issuer/.well-known/jwks.json``).
    Every token must carry ``iss`` == ``issuer``, ``aud`` containing ``audience``, ``exp`` in the
    future (``leeway_s`` of clock skew allowed) and a ``sub``, which becomes the user id.
    Needs PyJWT with its crypto extra (``pip install "pyjwt[crypto]"``).
    """

    issuer: str
    audience: str
    jwks_url: str
    leeway_s: float = 30.0
    refetch_cooldown_s: float = 30.0  # an unknown kid refetches the JWKS at most this often
    algorithms: tuple[str, ...] = JWT_ALGORITHMS
    _client: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        import jwt  # PyJWT: only needed when JWTs are configured

        # Keys cached; an unknown kid triggers one refetch (the issuer rotated its keys), at
        # most one per refetch_cooldown_s, never one per request (a flood of made-up kids must
        # not become a flood of requests to the issuer).
        self._client = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=3600, timeout=10,
                                       cooldown_duration=self.refetch_cooldown_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "JwtVerifier | None":
        names = (JWT_ISSUER_ENV, JWT_AUDIENCE_ENV, JWKS_URL_ENV)
        values = [environ.get(name, "").strip() for name in names]
        if not any(values):
            return None
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            raise ValueError(f"JWT authentication needs {', '.join(missing)} as well")
        return cls(issuer=values[0], audience=values[1], jwks_url=values[2])

    def user(self, token: str) -> str:
        """The ``sub`` of a valid token; ``ValueError`` (without the token) for any other."""
        import jwt

        try:
            signing = self._client.get_signing_key_from_jwt(token)
            if signing.algorithm_name not in self.algorithms:
                raise ValueError("invalid token: key algorithm not allowed")
            # The key's own algorithm only: a token claiming another (ES256 against an RSA key)
            # is refused as such instead of reaching the crypto library with the wrong key type.
            claims = jwt.decode(token, signing.key, algorithms=[signing.algorithm_name],
                                audience=self.audience, issuer=self.issuer, leeway=self.leeway_s,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except (jwt.PyJWTError, jwt.PyJWKClientError, TypeError) as exc:
            raise ValueError(f"invalid token: {type(exc).__name__}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ValueError("invalid token: no subject")
        return subject


def parse_tokens(spec: str) -> dict[str, str]:
    """``"tok-a:alice,tok-b:bob"`` -> ``{"tok-a": "alice", "tok-b": "bob"}`` (token -> user).

    Errors name the entry's position, never the token.
    """
    tokens: dict[str, str] = {}
    for number, entry in enumerate(spec.split(","), start=1):
        if not entry.strip():
            continue
        token, sep, user = (part.strip() for part in entry.partition(":"))
        if not sep or not token or not user:
            raise ValueError(f"{TOKENS_ENV}: entry {number} is not TOKEN:USER")
        if token in tokens:
            raise ValueError(f"{TOKENS_ENV}: entry {number} repeats an earlier token")
        tokens[token] = user
    if not tokens:
        raise ValueError(f"{TOKENS_ENV} is set but holds no TOKEN:USER entry")
    return tokens


def make_current_user(tokens: Mapping[str, str], jwt_verifier: JwtVerifier | None = None):
    """A FastAPI dependency: the user whose token is in ``Authorization: Bearer <token>``.

    Missing, malformed or unknown: 401 with ``WWW-Authenticate: Bearer``. Every known
    token is compared in constant time (``hmac.compare_digest``), and all of them are
    compared, so the answer's timing says nothing about how close a guess was. A token that is
    no static one goes to ``jwt_verifier`` if there is one (off the event loop: the first use
    of a key fetches the JWKS).
    """
    known = [(token.encode(), user) for token, user in tokens.items()]

    async def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise api_error(401, "UNAUTHENTICATED", "Send Authorization: Bearer <token>.",
                            headers={"WWW-Authenticate": "Bearer"})
        presented = token.strip().encode()
        user = None
        for candidate, name in known:
            if hmac.compare_digest(presented, candidate):
                user = name
        if user is None and jwt_verifier is not None and presented.count(b".") == 2:
            try:
                user = await asyncio.to_thread(jwt_verifier.user, token.strip())
            except ValueError:
                user = None
        if user is None:
            raise api_error(401, "UNAUTHENTICATED", "The token is not valid.",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return user

    return current_user
