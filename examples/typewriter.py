"""A typewriter for an ADK agent: print the answer as it streams from ``runner.run_async``.

    pip install google-adk                       # verified with google-adk 2.13.0
    export GOOGLE_API_KEY=...                    # or GOOGLE_GEMINI_BASE_URL for another endpoint
    python typewriter.py "Tell me a story about a lighthouse"

Only the answer goes to stdout, each piece once, as soon as it arrives; tool calls and how the
turn ended go to stderr. The model is ``WORKSHOP_MODEL`` (default ``gemini-3.5-flash``).

The rule that keeps text from printing twice: with ``StreamingMode.SSE`` ADK yields partial
events (pieces of text), then one non-partial event with the *whole* text of that model
response, under the same ``event.id``. Print the pieces; of the whole, print only what the
pieces did not already show (nothing, usually; all of it when a response arrives in one piece,
such as a reply written by a callback).
"""

import asyncio
import os
import sys

from google.adk.agents import Agent
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

MODEL = os.environ.get("WORKSHOP_MODEL") or "gemini-3.5-flash"  # google-adk 2.13's default


def answer_text(event) -> str:
    """The text of an event's answer parts (thoughts are the model's reasoning, not the answer)."""
    parts = event.content.parts if event.content and event.content.parts else []
    return "".join(part.text for part in parts if part.text and not part.thought)


async def typewrite(runner: Runner, user_id: str, session_id: str, text: str) -> str:
    """Stream one turn to stdout; return the answer as printed."""
    # [snippet: typewriter-loop]
    shown: dict[str, str] = {}  # event id -> the text printed for it so far
    printed = []
    message = types.Content(role="user", parts=[types.Part(text=text)])
    # [snippet: run-config-sse]
    run = runner.run_async(user_id=user_id, session_id=session_id, new_message=message,
                           run_config=RunConfig(streaming_mode=StreamingMode.SSE))
    # [end snippet]
    async for event in run:
        text = answer_text(event)
        before = shown.get(event.id, "")
        if event.partial:
            new = text
        elif text.startswith(before):  # the whole response: only what its pieces did not show
            new = text[len(before):]
        else:  # never happens with ADK 2.13; if it ever does, print nothing rather than twice
            new = ""
        if new:
            print(new, end="", flush=True)
            printed.append(new)
            shown[event.id] = before + new
        for call in event.get_function_calls() if not event.partial else []:
            print(f"\n[tool call] {call.name}({call.args})", file=sys.stderr, flush=True)
        if event.error_code:
            print(f"\n[error] {event.error_code}", file=sys.stderr, flush=True)
    # [end snippet]
    print(flush=True)
    return "".join(printed)


async def main(text: str) -> None:
    agent = Agent(name="assistant", model=MODEL,
                  instruction="You are a helpful assistant. Answer clearly and briefly.")
    sessions = InMemorySessionService()
    runner = Runner(app_name="typewriter", agent=agent, session_service=sessions)
    session = await sessions.create_session(app_name="typewriter", user_id="me")
    await typewrite(runner, "me", session.id, text)


if __name__ == "__main__":
    try:
        asyncio.run(main(" ".join(sys.argv[1:]) or "Tell me a story about a lighthouse"))
    except Exception as exc:  # e.g. the model answered 429 or 503 even after retries
        sys.exit(f"\n[failed] {type(exc).__name__}: {exc}")
