"""What an ADK event may show a client: ADK's own ``/run_sse`` rules, applied before sending.

ADK 2.13's ``/run_sse`` (``google/adk/cli/api_server.py``) sends each event as::

    pydantic_core.to_json(_redact_credential_secrets(
        public_event(event).model_dump(exclude_none=True, by_alias=True, mode="json")))

- ``public_event`` drops ``custom_metadata`` keys starting ``__adk_internal_`` (ADK's own
  bookkeeping, never for callers).
- ``_redact_credential_secrets`` removes credential secrets (client secret, access, refresh and
  id tokens, passwords, API keys, auth codes, private keys...) from whatever carries an auth
  config: the ``adk_request_credential`` function call ADK makes when a tool calls
  ``tool_context.request_credential(...)``, an event's ``actions.requestedAuthConfigs``, and any
  dict with an ``authType``. Without it, a tool that asks the user to sign in sends the
  OAuth access token it was configured with to the browser (tests/test_reference_server_security.py
  shows it on a real tool).

``event_json(event)`` gives the same bytes (``event_dict(event)`` the same as a dict, for a JSON
response such as a session's history). ADK's two functions are used when they can be
imported (they are private, so a later ADK may move them); otherwise the copies below, which
follow the same rules: a test runs both over the same events and fails if they ever differ.
The redaction walks every dict of the event, so it runs only on an event whose JSON names one of
the keys it acts on (``_CARRIERS``); every other event is sent as ``model_dump_json`` gives it,
which is the same text (tested too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core
from google.adk.auth import AuthCredentialTypes
from google.adk.events import Event

INTERNAL_METADATA_PREFIX = "__adk_internal_"
REQUEST_CREDENTIAL = "adk_request_credential"  # the function call a credential request becomes

# Keys removed from an auth config (ADK: auth/auth_credential.py, _CREDENTIAL_SECRET_KEYS).
CREDENTIAL_SECRET_KEYS = frozenset({
    "password", "token", "additionalHeaders", "additional_headers", "clientSecret",
    "client_secret", "authResponseUri", "auth_response_uri", "authCode", "auth_code",
    "accessToken", "access_token", "refreshToken", "refresh_token", "idToken", "id_token",
    "codeVerifier", "code_verifier", "privateKeyId", "private_key_id", "privateKey",
    "private_key", "apiKey", "api_key",
})
# The values of ``authType`` that mark a dict as a credential: every spelling of a credential
# type (its value, NAME and name).
AUTH_TYPES = frozenset(spelling for t in AuthCredentialTypes
                       for spelling in (t.value, t.name, t.name.lower()))
_AUTH_CONFIG_FIELDS = ("rawAuthCredential", "raw_auth_credential",
                       "exchangedAuthCredential", "exchanged_auth_credential")
# Where a redaction rule can change anything: a dict with one of these keys, or whose "name" is
# REQUEST_CREDENTIAL. Every event has ``"requestedAuthConfigs":{}`` (nothing to strip in an empty
# dict), so that key counts only with a value that has content. JSON text (compact, as pydantic
# writes it) containing none of these comes out of the redaction unchanged.
_CARRIERS = ("authType", "auth_type", REQUEST_CREDENTIAL, '"requestedAuthConfigs":{"',
             '"requestedAuthConfigs":[', "requested_auth_configs", *_AUTH_CONFIG_FIELDS)


def _strip_secrets(value: Any) -> Any:
    """An auth config subtree without its secret keys (ADK: _redact_auth_config_secrets)."""
    if isinstance(value, dict):
        return {k: _strip_secrets(v) for k, v in value.items() if k not in CREDENTIAL_SECRET_KEYS}
    if isinstance(value, list):
        return [_strip_secrets(item) for item in value]
    return value


def _redact_credential_secrets(value: Any) -> Any:
    """The same rules as ADK's ``_redact_credential_secrets`` (auth/auth_credential.py)."""
    if isinstance(value, dict):
        for key in ("authType", "auth_type"):
            auth_type = value.get(key)
            if isinstance(auth_type, str) and auth_type in AUTH_TYPES:
                return _strip_secrets(value)
        if value.get("name") == REQUEST_CREDENTIAL:
            result = {}
            for key, val in value.items():
                if key == "args" and isinstance(val, dict):
                    args = dict(val)
                    for auth_key in ("authConfig", "auth_config"):
                        if auth_key in args:
                            args[auth_key] = _strip_secrets(args[auth_key])
                    result[key] = args
                elif key == "response":
                    result[key] = _strip_secrets(val)
                else:
                    result[key] = _redact_credential_secrets(val)
            return result
        for fields in (("requestedAuthConfigs", "requested_auth_configs"), _AUTH_CONFIG_FIELDS):
            if any(k in value for k in fields):
                return {k: _strip_secrets(v) if k in fields else _redact_credential_secrets(v)
                        for k, v in value.items()}
        return {key: _redact_credential_secrets(val) for key, val in value.items()}
    if isinstance(value, list):
        return [_redact_credential_secrets(item) for item in value]
    return value


def _public_event(event: Event) -> Event:
    """The same rule as ADK's ``public_event`` (events/_internal_metadata.py)."""
    metadata = event.custom_metadata
    if not isinstance(metadata, Mapping) or not any(
            isinstance(k, str) and k.startswith(INTERNAL_METADATA_PREFIX) for k in metadata):
        return event
    kept = {k: v for k, v in metadata.items()
            if not (isinstance(k, str) and k.startswith(INTERNAL_METADATA_PREFIX))}
    return event.model_copy(update={"custom_metadata": kept or None})


try:  # ADK's own, where this ADK has them
    from google.adk.auth.auth_credential import (
        _redact_credential_secrets as redact_credential_secrets,
    )
    from google.adk.events._internal_metadata import public_event
    ADK_RULES = True
except ImportError:  # pragma: no cover - a later ADK moved them: the copies above
    redact_credential_secrets = _redact_credential_secrets
    public_event = _public_event
    ADK_RULES = False


def may_carry_credentials(text: str) -> bool:
    """The event's JSON holds something the credential redaction acts on (else it is a no-op)."""
    for carrier in _CARRIERS:  # a loop, not any(): this runs for every event
        if carrier in text:
            return True
    return False


def event_dict(event: Event) -> dict:
    """The event as ADK's own routes show it, as a dict (e.g. for a JSON history response):
    internal metadata dropped, credential secrets removed, camelCase, no nulls."""
    return redact_credential_secrets(
        public_event(event).model_dump(exclude_none=True, by_alias=True, mode="json"))


def event_json(event: Event) -> str:
    """The event as ADK's ``/run_sse`` sends it: ``event_dict`` as JSON text, made without the
    dict (the same text) when nothing in it is a credential."""
    text = public_event(event).model_dump_json(exclude_none=True, by_alias=True)
    if not may_carry_credentials(text):
        return text
    return pydantic_core.to_json(event_dict(event)).decode()
