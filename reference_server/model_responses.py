"""Close the model's HTTP responses that a turn leaves open.

Found in the workshop (google-adk 2.13, google-genai 2.34): when ADK stops a run between two
chunks of a streamed answer (an abort, a cancelled task, a client gone), it closes
google-genai's stream generator, but google-genai never closes the inner generator that reads
the HTTP response (``HttpResponse.segment_iterator``). That generator and the response sit in
a reference cycle, so the connection stays open, the model keeps generating (and billing),
until Python's cyclic garbage collector happens to run. Whether the stop lands "between two
chunks" depends on timing: rare with a plain agent on an idle machine, every time with an
agent whose ``after_model_callback`` awaits anything (tests/test_production_server.py shows
both).

The fix here does not depend on timing: every model response the httpx client opens is
remembered by the turn that caused it (a context variable, inherited by ADK's tasks), and the
turn closes whatever is still open when it ends::

    Gemini(model=..., client_kwargs=model_client_kwargs())   # remember the responses
    async with closing_model_responses():                     # around one turn's run
        async for event in runner.run_async(...): ...

The hook is httpx's. google-genai picks aiohttp instead of httpx whenever ``aiohttp`` can be
imported (``google-genai[aiohttp]``, or any package that pulls it in), unless its httpx client is
given a transport: ``model_client_kwargs()`` gives it one (``httpx.AsyncHTTPTransport()``, or the
one you pass), so the fix holds with aiohttp installed too (tests/test_reference_server_security.py
runs it both ways). It refuses to start (RuntimeError) where google-genai would use httpx2
(``GOOGLE_GENAI_HTTP_CLIENT=httpx2``), which this hook does not cover. One case it cannot see:
Vertex AI with an mTLS client certificate and aiohttp installed, where google-genai builds an
authorized aiohttp session of its own; pass ``transport=httpx.AsyncHTTPTransport(verify=ctx)``
with your certificate in ``ctx``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import AsyncIterator

import httpx
from google.genai import types

_responses: contextvars.ContextVar[list[httpx.Response] | None] = contextvars.ContextVar(
    "workshop_model_responses", default=None)


async def _remember(response: httpx.Response) -> None:
    """httpx response hook: runs when the model's response headers arrive."""
    responses = _responses.get()
    if responses is not None:
        responses.append(response)


def model_client_kwargs(transport: httpx.AsyncBaseTransport | None = None) -> dict:
    """``Gemini(client_kwargs=...)`` that lets ``closing_model_responses`` see the responses.

    The transport (default: httpx's own, which reads ``SSL_CERT_FILE``/``SSL_CERT_DIR`` and the
    proxy variables) is what keeps google-genai on httpx when aiohttp is installed.
    """
    if os.environ.get("GOOGLE_GENAI_HTTP_CLIENT", "").strip().lower() == "httpx2":
        raise RuntimeError("model_responses closes the model's responses through httpx; "
                           "GOOGLE_GENAI_HTTP_CLIENT=httpx2 would bypass it: unset it")
    return {"http_options": types.HttpOptions(async_client_args={
        "event_hooks": {"response": [_remember]},
        "transport": transport or httpx.AsyncHTTPTransport(),  # httpx, even with aiohttp installed
    })}


@contextlib.asynccontextmanager
async def closing_model_responses() -> AsyncIterator[list[httpx.Response]]:
    """Within this block, the model responses opened (by this task and the tasks it starts) are
    collected; on exit, any still open is closed. Yields that list (for tests)."""
    responses: list[httpx.Response] = []
    token = _responses.set(responses)
    try:
        yield responses
    finally:
        _responses.reset(token)
        for response in responses:
            if not response.is_closed:
                await response.aclose()
