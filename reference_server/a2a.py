"""The same agent over A2A (agent-to-agent), with ADK's own ``to_a2a``: ``create_a2a_app()``.

A2A is for another *agent* calling this one, not for a browser. ``to_a2a`` builds a Starlette
app of its own: the agent card at ``/.well-known/agent-card.json`` and one JSON-RPC endpoint at
``/``; a streaming call (``SendStreamingMessage`` in A2A 1.0, the method ``message/stream`` of
A2A 0.3) answers with SSE: the task (``submitted``), status updates (``working``, one per ADK
event with text or a tool call), an artifact with the answer, then ``completed`` (or
``failed``). Progressive per model response, not per word: ``to_a2a``'s executor runs the agent
without ``StreamingMode.SSE``, so each model response arrives whole (tests/test_a2a.py). The conversation is the A2A ``contextId``; ``tasks/cancel`` stops a task.

It runs as a separate app on its own port, not mounted in ``create_app``'s: ``to_a2a`` adds
its routes in its own lifespan, which Starlette does not run for a mounted app. And
``to_a2a`` checks no credentials (the card may *describe* security schemes, nothing enforces
them): put it behind a proxy or a gateway that does. Needs ``a2a-sdk[http-server]``
(``pip install "google-adk[a2a]"``), which does not bring in aiohttp.
"""

from __future__ import annotations

import warnings
from typing import Any

from google.adk.agents import BaseAgent
from google.adk.models import Gemini

from .agent import build_agent, model_name
from .model_responses import model_client_kwargs


def create_a2a_app(host: str = "127.0.0.1", port: int = 8001, agent: BaseAgent | None = None) -> Any:
    """The agent as an A2A server (a Starlette app). ``host``/``port``: where clients reach it
    (written into the agent card). ``agent``: default, the reference server's agent."""
    from google.adk.a2a.utils.agent_to_a2a import to_a2a  # imports a2a-sdk: only when used

    agent = agent or build_agent(Gemini(model=model_name(), client_kwargs=model_client_kwargs()))
    with warnings.catch_warnings():  # ADK marks its A2A support experimental, on every call
        warnings.filterwarnings("ignore", message=r"\[EXPERIMENTAL\]")
        return to_a2a(agent, host=host, port=port)
