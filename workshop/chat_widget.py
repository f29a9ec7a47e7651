"""A live chat with an ADK agent inside JupyterLab (ipywidgets 8), built on ``workshop.display``.

    chat = ChatWidget(runner, user_id="learner", session_id=session.id)
    chat                        # shows it: a text box, Send and Stop, the conversation above
    view = await chat.send("What is the capital of France?")   # or drive it from code

How it works, in the kernel of JupyterLab:

- **Send** starts one asyncio task on the kernel's own event loop (the loop a notebook's top-level
  ``await`` runs on) and returns at once, so the kernel stays free to receive the next click.
  The task iterates ``runner.run_async(...)`` inside ``contextlib.aclosing`` and folds each event
  into a ``TurnView`` (notebook 07's display rules); each change sets widget values, which the
  kernel sends to the browser as it happens: the answer grows as partial events arrive.
- Thoughts go in a collapsed ``Accordion``, tool calls show with their arguments as they stream
  and their result once it arrives, the final event's token usage goes under the answer.
- **Stop** cancels that task. The cancellation lands inside ``run_async``, ``aclosing`` closes
  the generator, and the HTTP stream to the model is closed: the model stops generating (the
  offline emulator records the request's outcome as ``client_closed``). ADK has persisted only
  the events that were complete before the stop (never a partial one); see notebook 08.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.runners import Runner
from google.genai import types

from .display import Message, ToolCall, TurnView

__all__ = ["ChatWidget", "TurnResult", "format_usage"]


def format_usage(usage: types.GenerateContentResponseUsageMetadata | None) -> str:
    """One line of token counts from an event's ``usage_metadata``."""
    if usage is None:
        return ""
    fields = [("prompt", usage.prompt_token_count), ("answer", usage.candidates_token_count),
              ("thoughts", usage.thoughts_token_count), ("total", usage.total_token_count)]
    return "tokens: " + " · ".join(f"{name} {n}" for name, n in fields if n)


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class TurnResult:
    """How one turn ended, and what it showed."""

    text: str
    view: TurnView
    status: str = "running"  # running | done | stopped | error
    error: str | None = None
    states: list[dict[str, Any]] = field(default_factory=list)  # rendered states, if recorded


class _TurnBox:
    """The widgets of one turn: the user's message, then one block per shown item."""

    def __init__(self, text: str) -> None:
        self.user = widgets.HTML(f"<b>You:</b> {html.escape(text)}")
        self.body = widgets.VBox()
        self.footer = widgets.HTML()
        self.widget = widgets.VBox([self.user, self.body, self.footer],
                                   layout=widgets.Layout(margin="0 0 12px 0"))
        self._blocks: dict[str, tuple[widgets.Widget, ...]] = {}
        self.status = "running"

    def _message_block(self, message: Message) -> tuple[widgets.Widget, ...]:
        thoughts = widgets.HTML()
        accordion = widgets.Accordion(children=[thoughts], titles=("Thoughts",), selected_index=None,
                                      layout=widgets.Layout(display="none"))
        answer = widgets.HTML()
        return widgets.VBox([accordion, answer]), accordion, thoughts, answer

    def render(self, view: TurnView) -> None:
        new = False
        for item in view.items:
            block = self._blocks.get(item.id)
            if block is None:
                block = (self._message_block(item) if isinstance(item, Message)
                         else (widgets.HTML(),))
                self._blocks[item.id] = block
                new = True
            if isinstance(item, Message):
                _, accordion, thoughts, answer = block
                if item.thoughts:
                    accordion.layout.display = None
                    thoughts.value = _pre(item.thoughts, "color:#666")
                answer.value = _pre(item.text) if item.text else ""
            else:
                block[0].value = _tool_html(item)
        if new:
            self.body.children = tuple(self._blocks[item.id][0] for item in view.items)
        self.footer.value = self._footer(view)

    def _footer(self, view: TurnView) -> str:
        bits = [{"running": "streaming…", "done": "", "stopped": "⏹ stopped", "error": "⚠ error"}
                .get(self.status, self.status)]
        bits += [f"⚠ {html.escape(e)}" for e in view.errors]
        bits.append(html.escape(format_usage(view.usage)))
        return "<small style='color:#888'>" + " · ".join(b for b in bits if b) + "</small>"

    def finish(self, view: TurnView, status: str) -> None:
        self.status = status
        self.render(view)

    def rendered(self) -> dict[str, Any]:
        """What the widgets show now, read back from their values (for tests and recordings)."""
        items = []
        for block in self._blocks.values():
            if len(block) == 4:
                _, accordion, thoughts, answer = block
                items.append({"thoughts": _unpre(thoughts.value) if accordion.layout.display is None
                              else "", "text": _unpre(answer.value)})
            else:
                items.append({"tool": html.unescape(_strip_tags(block[0].value))})
        return {"items": items, "footer": html.unescape(_strip_tags(self.footer.value)),
                "status": self.status}


def _pre(text: str, style: str = "") -> str:
    return f"<div style='white-space:pre-wrap;{style}'>{html.escape(text)}</div>"


def _strip_tags(value: str) -> str:
    return re.sub(r"<[^>]+>", "", value)


def _unpre(value: str) -> str:
    return html.unescape(_strip_tags(value))


def _tool_html(tool: ToolCall) -> str:
    icon = {"streaming": "⏳", "called": "🔧", "done": "✅"}.get(tool.status, "🔧")
    line = f"{icon} {html.escape(str(tool.name))}({html.escape(_pretty(tool.args))})"
    if tool.status == "done":
        line += f" → {html.escape(_pretty(tool.result))}"
    elif tool.status == "called":
        line += " … running"
    return f"<code style='white-space:pre-wrap'>{line}</code>"


class ChatWidget:
    """A text box, Send and Stop, and the conversation: one ADK session in JupyterLab."""

    def __init__(self, runner: Runner, *, user_id: str, session_id: str,
                 run_config: RunConfig | None = None, record: bool = False) -> None:
        self.runner = runner
        self.user_id = user_id
        self.session_id = session_id
        self.run_config = run_config or RunConfig(streaming_mode=StreamingMode.SSE)
        self.record = record  # keep every rendered state of each turn (tests, demos)
        self.input = widgets.Text(placeholder="Ask something, then press Send",
                                  layout=widgets.Layout(flex="1 1 auto"))
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", disabled=True)
        self.history = widgets.VBox()
        self.widget = widgets.VBox([self.history,
                                    widgets.HBox([self.input, self.send_button, self.stop_button])])
        self.send_button.on_click(lambda _button: self.start(self.input.value))
        self.stop_button.on_click(lambda _button: self.stop())
        self.turns: list[TurnResult] = []
        self.task: asyncio.Task[TurnResult] | None = None
        self._stopping = False

    # -- showing it ----------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    # -- driving it ----------------------------------------------------------------------------
    def start(self, text: str) -> asyncio.Task[TurnResult] | None:
        """Start a turn in the background (what Send does); None if busy or the text is empty.

        The turn's block and its ``TurnResult`` (``self.turns[-1]``) exist when this returns.
        """
        text = text.strip()
        if not text or self.running:
            return None
        self.input.value = ""
        box = _TurnBox(text)
        self.history.children = (*self.history.children, box.widget)
        result = TurnResult(text="", view=TurnView())
        self.turns.append(result)
        self._stopping = False
        self.send_button.disabled, self.stop_button.disabled = True, False
        self.task = asyncio.get_running_loop().create_task(self._run_turn(text, box, result))
        self.task.add_done_callback(lambda task: self._ended(task, box, result))
        return self.task

    async def send(self, text: str) -> TurnResult:
        """Run one turn and wait for it (Stop still works meanwhile)."""
        if self.start(text) is None:
            raise RuntimeError("a turn is already running, or the message is empty")
        return await self.wait()

    def stop(self) -> bool:
        """Cancel the running turn (what Stop does). True if there was one to cancel."""
        if not self.running:
            return False
        self._stopping = True
        self.task.cancel()
        return True

    async def wait(self) -> TurnResult | None:
        """Wait for the current turn, if any, and return how it ended (stopped included)."""
        if self.task is None:
            return None
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self.task.cancelled() and not (me and me.cancelling()):
                return self.turns[-1]  # the turn was stopped, not the caller
            raise

    async def _run_turn(self, text: str, box: _TurnBox, result: TurnResult) -> TurnResult:
        view = result.view

        def show(status: str | None = None) -> None:
            if status is None:
                box.render(view)
            else:
                box.finish(view, status)
            result.text = view.answer
            if self.record:
                result.states.append(box.rendered())

        message = types.Content(role="user", parts=[types.Part(text=text)])
        try:
            async with contextlib.aclosing(self.runner.run_async(
                user_id=self.user_id, session_id=self.session_id, new_message=message,
                run_config=self.run_config,
            )) as events:
                async for event in events:
                    if view.apply(event):
                        show()
            result.status = "done"
        except asyncio.CancelledError:  # Stop: the generator and the model's stream are closed
            result.status = "stopped"
            raise
        except Exception as exc:  # shown in the chat, not lost in a background task
            result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
            view.errors.append(result.error)
        finally:
            show(result.status)
        return result

    def _ended(self, task: asyncio.Task, box: _TurnBox, result: TurnResult) -> None:
        """Runs when the turn's task is over, however it ended (even cancelled before it began)."""
        if result.status == "running":
            result.status = "stopped" if task.cancelled() else "error"
            box.finish(result.view, result.status)
        self.send_button.disabled, self.stop_button.disabled = False, True
