"""JWT authentication beside the static tokens (reference_server/auth.py): tokens signed with keys
this test generates, verified against a JWKS served over real HTTP, every way a token can be
wrong answered 401."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI

from reference_server.auth import JwtVerifier, make_current_user
from reference_server.errors import install_error_handlers
from workshop.servers import serve_in_background

ISSUER, AUDIENCE = "https://issuer.example", "adk-sse-api"


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer:
    """An identity provider's key set, published as a JWKS over HTTP; counts the fetches."""

    def __init__(self) -> None:
        self.keys = {"k1": _rsa()}
        self.fetches = 0
        app = FastAPI()

        @app.get("/jwks.json")
        async def jwks():
            self.fetches += 1
            return {"keys": [dict(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                                  kid=kid, use="sig", alg="RS256") for kid, k in self.keys.items()]}

        self.server = serve_in_background(app)
        self.jwks_url = f"{self.server.url}/jwks.json"

    def token(self, kid: str = "k1", key=None, algorithm: str = "RS256", **claims) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "dana", "iat": now, "exp": now + 300} | claims
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.keys[kid], algorithm=algorithm, headers={"kid": kid})


@pytest.fixture(scope="module")
def issuer():
    it = Issuer()
    yield it
    it.server.stop()


@pytest.fixture(scope="module")
def api(issuer):
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=issuer.jwks_url)
    app = FastAPI()
    install_error_handlers(app)
    current_user = make_current_user({"tok-static": "alice"}, verifier)

    @app.get("/me")
    async def me(user: str = Depends(current_user)):
        return {"user": user}

    server = serve_in_background(app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def _status(api, token: str) -> tuple[int, dict]:
    r = api.get("/me", headers={"Authorization": f"Bearer {token}"})
    return r.status_code, r.json()


def test_a_valid_token_names_its_subject_and_static_tokens_still_work(api, issuer):
    assert _status(api, issuer.token()) == (200, {"user": "dana"})
    assert _status(api, "tok-static") == (200, {"user": "alice"})


def test_the_key_set_is_fetched_once_not_per_request(api, issuer):
    before = issuer.fetches
    for _ in range(5):
        assert _status(api, issuer.token())[0] == 200
    assert issuer.fetches - before <= 1


@pytest.mark.parametrize("case", [
    "expired", "wrong audience", "wrong issuer", "no subject", "no expiry", "unknown key",
    "alg none", "HS256 with the public key as secret", "ES256 by another key", "garbage",
])
def test_every_wrong_token_is_a_401_with_a_json_reason_and_no_detail(api, issuer, case):
    other = _rsa()
    public_pem = issuer.keys["k1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = {
        "expired": lambda: issuer.token(exp=int(time.time()) - 3600),
        "wrong audience": lambda: issuer.token(aud="another-api"),
        "wrong issuer": lambda: issuer.token(iss="https://evil.example"),
        "no subject": lambda: issuer.token(sub=None),
        "no expiry": lambda: issuer.token(exp=None),
        "unknown key": lambda: issuer.token(kid="k-unknown", key=other),
        "alg none": lambda: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "eve",
                                        "exp": int(time.time()) + 60}, None, algorithm="none",
                                       headers={"kid": "k1"}),
        # algorithm confusion: a verifier accepting HS256 would check this with the public key
        "HS256 with the public key as secret": lambda: _hs256_with(public_pem),
        "ES256 by another key": lambda: issuer.token(key=ec.generate_private_key(ec.SECP256R1()),
                                                     algorithm="ES256"),
        "garbage": lambda: "a.b.c",
    }[case]()
    status, body = _status(api, token)
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    assert token not in json.dumps(body)


def _hs256_with(secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "eve",
                           "exp": int(time.time()) + 60}).encode())
    signature = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + signature).decode()


def test_a_rotated_key_is_picked_up_by_one_refetch(issuer):
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=issuer.jwks_url,
                           refetch_cooldown_s=30)
    assert verifier.user(issuer.token()) == "dana"
    issuer.keys["k-rotated"] = _rsa()
    rotated, other = issuer.token(kid="k-rotated"), issuer.token(kid="k-other", key=_rsa())
    # Past the refetch cooldown, without sleeping through a short one: PyJWT compares
    # time.monotonic() with its last fetch (a 1.5 s cooldown and a paused process on a loaded
    # machine once let CI see a second refetch).
    verifier._client._last_successful_fetch -= 31
    before = issuer.fetches
    assert verifier.user(rotated) == "dana"
    assert issuer.fetches - before == 1
    with pytest.raises(ValueError, match="invalid token"):  # another unknown kid at once: cooldown
        verifier.user(other)
    assert issuer.fetches - before == 1


def test_from_env_needs_all_three_settings_or_none():
    assert JwtVerifier.from_env({}) is None
    with pytest.raises(ValueError, match="WORKSHOP_JWKS_URL"):
        JwtVerifier.from_env({"WORKSHOP_JWT_ISSUER": ISSUER, "WORKSHOP_JWT_AUDIENCE": AUDIENCE})
    made = JwtVerifier.from_env({"WORKSHOP_JWT_ISSUER": ISSUER, "WORKSHOP_JWT_AUDIENCE": AUDIENCE,
                                 "WORKSHOP_JWKS_URL": "http://127.0.0.1:9/jwks.json"})
    assert made.issuer == ISSUER and made.audience == AUDIENCE
