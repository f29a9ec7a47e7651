"""The same agent over AG-UI (CopilotKit and other AG-UI clients): ``create_ag_ui_app()``.

Built with the ``ag-ui-adk`` package (not a hand-written imitation): ``POST /api/ag-ui`` takes
AG-UI's ``RunAgentInput`` (``threadId``, ``runId``, ``messages``) and answers with SSE events
(``RUN_STARTED``, ``TEXT_MESSAGE_START``/``CONTENT``/``END``, ``TOOL_CALL_*``,
``RUN_FINISHED`` or ``RUN_ERROR``). The bearer token is checked as on the other endpoints.

An optional extra, in an environment of its own: ``ag-ui-adk`` requires ``aiohttp``, and with
``aiohttp`` importable google-genai sends every model request through aiohttp instead of httpx,
where the reference server's fix for model responses left open (``model_responses.py``, an httpx
hook) does nothing. ``make agui-env`` makes ``.venv-agui`` (the main environment's packages plus
``requirements-agui.txt``); ``make test-agui`` runs tests/test_ag_ui.py there. The main
environment never imports this module.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from google.adk.agents import BaseAgent

from .agent import build_agent
from .auth import make_current_user
from .errors import install_error_handlers

AG_UI_PATH = "/api/ag-ui"


def create_ag_ui_app(tokens: dict[str, str], agent: BaseAgent | None = None,
                     app_name: str = "workshop-ag-ui") -> FastAPI:
    """A FastAPI app with the AG-UI endpoint at ``/api/ag-ui`` (bearer tokens as ``tokens``).

    Sessions are ag-ui-adk's (keyed by AG-UI's ``threadId``), not the reference server's: one
    user id for the app, so put it behind per-user auth you trust, or give each user an app."""
    from ag_ui_adk import ADKAgent, add_adk_fastapi_endpoint

    app = FastAPI(title="ADK agent over AG-UI")
    install_error_handlers(app)
    current_user = make_current_user(tokens)
    adk_agent = ADKAgent(adk_agent=agent or build_agent(), app_name=app_name, user_id="ag-ui",
                         use_in_memory_services=True)
    add_adk_fastapi_endpoint(app, adk_agent, path=AG_UI_PATH, dependencies=[Depends(current_user)])
    return app
