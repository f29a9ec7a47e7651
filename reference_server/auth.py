"""Bearer tokens that map to users. The user id never comes from the URL or the body."""


import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Header

from .errors import api_error

TOKENS_ENV = "WORKSHOP_TOKENS"


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


def make_current_user(tokens: Mapping[str, str]):
    """A FastAPI dependency: the user whose token is in ``Authorization: Bearer <token>``.

    Missing, malformed or unknown: 401 with ``WWW-Authenticate: Bearer``. Every known
    token is compared in constant time (``hmac.compare_digest``), and all of them are
    compared, so the answer's timing says nothing about how close a guess was.
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
        if user is None:
            raise api_error(401, "UNAUTHENTICATED", "The token is not valid.",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return user

    return current_user
