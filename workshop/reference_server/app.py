"""The reference SSE server: ``create_app(settings)`` builds the FastAPI app.

Notebook 05 builds the same endpoint step by step; this module is its runnable, complete
version (keep the two consistent). Run it with ``make serve`` or
``python -m workshop.reference_server``.
"""

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from google.adk.agents import BaseAgent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService, InMemorySessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

from .agent import build_agent
from .auth import TOKENS_ENV, make_current_user, parse_tokens
from .errors import api_error, error_body, install_error_handlers
from .messages import MAX_BODY_BYTES, MessageIn, read_message
from .streaming import in_own_task, sse_frames

STATIC_DIR = Path(__file__).parent / "static"
DEV_USER = "developer"

_PLACEHOLDER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ADK SSE reference server</title></head>
<body><h1>ADK SSE reference server</h1>
<p>The chat page (<code>workshop/reference_server/static/index.html</code>) is not there yet.
The API is: <code>POST /api/sessions</code>, then <code>POST /api/sessions/{id}/messages</code>
with <code>{"text": "..."}</code> and <code>Authorization: Bearer &lt;token&gt;</code>.
See <a href="/docs">/docs</a>.</p></body></html>
"""


def _sse_run_config() -> RunConfig:
    return RunConfig(streaming_mode=StreamingMode.SSE)


@dataclass
class Settings:
    """What the server needs; everything has a default but the tokens.

    ``tokens`` maps a bearer token to a user id. ``session_service`` is where
    conversations live (in memory by default; any ADK ``BaseSessionService``).
    ``agent`` defaults to ``build_agent()``. Tokens never appear in ``repr``.
    """

    tokens: dict[str, str] = field(repr=False)
    app_name: str = "workshop"
    session_service: BaseSessionService = field(default_factory=InMemorySessionService)
    agent: BaseAgent | None = None
    run_config: RunConfig = field(default_factory=_sse_run_config)
    static_dir: Path = STATIC_DIR
    dev_token: str | None = field(default=None, repr=False)  # set when generated for development

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Tokens from WORKSHOP_TOKENS ("tok-a:alice,tok-b:bob"); unset: one random dev token."""
        environ = os.environ if environ is None else environ
        spec = environ.get(TOKENS_ENV, "").strip()
        if spec:
            return cls(tokens=parse_tokens(spec), **overrides)
        dev_token = secrets.token_urlsafe(24)
        return cls(tokens={dev_token: DEV_USER}, dev_token=dev_token, **overrides)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app of the reference server. The environment must already point at a
    model (call ``workshop.setup()`` first; ``python -m workshop.reference_server`` does)."""
    settings = settings or Settings.from_env()
    agent = settings.agent or build_agent()
    session_service = settings.session_service
    app_name = settings.app_name
    runner = Runner(app_name=app_name, agent=agent, session_service=session_service)
    current_user = make_current_user(settings.tokens)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await runner.close()

    app = FastAPI(
        title="ADK SSE reference server",
        summary="An ADK agent streamed over Server-Sent Events (ADK SSE Streaming Workshop).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runner = runner
    install_error_handlers(app)

    async def owned_session(session_id: str, user: Annotated[str, Depends(current_user)]) -> Session:
        """The caller's session, or 404: a foreign id gets the same answer as an unknown one."""
        session = await session_service.get_session(
            app_name=app_name, user_id=user, session_id=session_id,
            config=GetSessionConfig(num_recent_events=0),
        )
        if session is None:
            raise api_error(404, "SESSION_NOT_FOUND", "No such session.")
        return session

    @app.get("/", include_in_schema=False)
    async def index():
        page = settings.static_dir / "index.html"
        if page.is_file():
            return FileResponse(page, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(_PLACEHOLDER_PAGE)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/api/sessions", status_code=201)
    async def create_session(user: Annotated[str, Depends(current_user)]) -> dict:
        session = await session_service.create_session(
            app_name=app_name, user_id=user, session_id=secrets.token_urlsafe(16)
        )
        return {"session_id": session.id}

    @app.post(
        "/api/sessions/{session_id}/messages",
        response_class=EventSourceResponse,
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": MessageIn.model_json_schema()}}}},
        responses={code: {"description": text, "content": {"application/json": {"example": error_body(name, "...")}}}
                   for code, name, text in [
                       (400, "INVALID_JSON", "The body is not JSON"),
                       (401, "UNAUTHENTICATED", "Missing or unknown bearer token"),
                       (404, "SESSION_NOT_FOUND", "No such session (or not yours)"),
                       (413, "PAYLOAD_TOO_LARGE", f"Body over {MAX_BODY_BYTES} bytes"),
                       (422, "INVALID_REQUEST", "JSON of the wrong shape")]},
    )
    async def post_message(
        session: Annotated[Session, Depends(owned_session)],
        message: Annotated[MessageIn, Depends(read_message)],
    ) -> AsyncIterator[ServerSentEvent]:
        """Stream the agent's answer: one frame per ADK event, then ``done`` (or ``error``)."""
        content = types.Content(role="user", parts=[types.Part(text=message.text)])
        run = runner.run_async(
            user_id=session.user_id, session_id=session.id, new_message=content,
            run_config=settings.run_config,
        )
        async for frame in sse_frames(in_own_task(run)):  # a client that leaves closes the model call
            yield frame

    if settings.static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=settings.static_dir), name="static")
    return app
