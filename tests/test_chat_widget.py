"""The chat widget (workshop.chat_widget), driven from code: rendered states, Stop, and a real kernel."""

import asyncio
import contextlib
import logging
import time

import pytest
from google.adk.agents import Agent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.genai import types

from workshop.chat_widget import ChatWidget, format_usage
from workshop.display import part_kinds

THINKING = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))


class Spy:
    """Wraps runner.run_async to keep each generator it hands out."""

    def __init__(self, runner):
        self.generators = []
        self._run_async = runner.run_async
        runner.run_async = self

    def __call__(self, **kwargs):
        generator = self._run_async(**kwargs)
        self.generators.append(generator)
        return generator


@pytest.fixture
def tool_log():
    return {"started": [], "finished": [], "delay": 0.0}


@pytest.fixture
async def chat(emulator, tool_log):
    async def get_weather(city: str) -> dict:
        """Get the current weather in a city."""
        tool_log["started"].append(city)
        await asyncio.sleep(tool_log["delay"])
        tool_log["finished"].append(city)
        return {"city": city, "forecast": "sunny"}

    agent = Agent(name="assistant", model="gemini-3.5-flash", tools=[get_weather],
                  generate_content_config=THINKING)
    sessions = InMemorySessionService()
    runner = Runner(app_name="t", agent=agent, session_service=sessions)
    session = await sessions.create_session(app_name="t", user_id="u")
    widget = ChatWidget(runner, user_id="u", session_id=session.id, record=True)
    widget.spy = Spy(runner)
    widget.sessions = sessions
    yield widget
    if widget.running:
        widget.stop()
        await widget.wait()


async def stored(chat):
    session = await chat.sessions.get_session(app_name="t", user_id="u", session_id=chat.session_id)
    return session.events


async def until(predicate, seconds=10.0):
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_turn_renders_growing_text_thoughts_tools_and_usage(chat, tool_log):
    result = await chat.send("Explain how you check the weather in Paris")
    assert result.status == "done" and tool_log["finished"] == ["Paris"]
    texts = ["".join(item.get("text", "") for item in state["items"]) for state in result.states]
    assert len(set(texts)) > 10  # the answer grew in many steps
    assert all(len(b) >= len(a) for a, b in zip(texts, texts[1:], strict=False))  # never shrank
    last = result.states[-1]
    messages = [item for item in last["items"] if "text" in item]
    assert [m["text"] for m in messages] == [
        "Let me look that up with get_weather.",
        "According to get_weather: city is Paris, forecast is sunny."]
    assert all(m["thoughts"].startswith("**Reading the request**") for m in messages)
    assert not any("Reading the request" in m["text"] for m in messages)  # thoughts apart
    [tool] = [item["tool"] for item in last["items"] if "tool" in item]
    assert tool == '✅ get_weather({"city": "Paris"}) → {"city": "Paris", "forecast": "sunny"}'
    assert last["footer"] == format_usage(result.view.usage) and "total" in last["footer"]
    # the call was shown while it ran, before its result
    shown = [item.get("tool", "") for state in result.states for item in state["items"]]
    assert any(line.endswith("… running") for line in shown)
    assert chat.send_button.disabled is False and chat.stop_button.disabled is True


async def test_the_accordion_holds_the_thoughts_collapsed(chat):
    await chat.send("What is the capital of France?")
    box = chat.history.children[-1]
    accordion, answer = box.children[1].children[0].children
    assert accordion.selected_index is None  # collapsed
    assert "Reading the request" in accordion.children[0].value
    assert "Paris" in answer.value and "Reading" not in answer.value


async def test_stop_cancels_the_run_and_closes_the_stream(chat, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    task = chat.start("Tell me a story about a river")
    assert chat.turns[-1].status == "running" and chat.stop_button.disabled is False
    await until(lambda: len(chat.turns[-1].text) > 20)
    shown = len(chat.turns[-1].text)
    assert chat.stop()
    result = await chat.wait()
    assert result.status == "stopped" and task.cancelled()
    assert shown <= len(result.text) < 200  # the story is longer; it stopped part-way
    assert result.states[-1]["status"] == "stopped" and "stopped" in result.states[-1]["footer"]
    generator = chat.spy.generators[-1]
    assert generator.ag_frame is None  # run_async's generator is closed
    await until(lambda: emulator.requests[-1].outcome != "running", 10)
    assert emulator.requests[-1].outcome == "client_closed"
    events = await stored(chat)
    assert [(e.author, part_kinds(e)) for e in events] == [("user", ("text",))]
    after = await chat.send("What is the capital of France?")  # the session still works
    assert after.status == "done" and after.text == "The capital of France is Paris."


async def test_stop_while_a_tool_runs_keeps_the_complete_call_only(chat, emulator, tool_log):
    tool_log["delay"] = 5.0
    chat.start("Explain how you check the weather in Paris")
    await until(lambda: tool_log["started"])
    chat.stop()
    result = await chat.wait()
    assert result.status == "stopped" and tool_log["finished"] == []
    events = await stored(chat)
    assert [(e.author, part_kinds(e)) for e in events] == [
        ("user", ("text",)), ("assistant", ("thought", "text", "call"))]
    assert not events[-1].partial
    tool_log["delay"] = 0.0
    adk = logging.getLogger("google_adk")
    with _captured(adk) as records:
        after = await chat.send("What is the capital of France?")
    assert after.status == "done"
    assert any("Dropping function calls" in r.getMessage() for r in records)
    sent = emulator.requests[-1].body["contents"]
    assert not any("functionCall" in part for content in sent for part in content["parts"])


@contextlib.contextmanager
def _captured(logger):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


async def test_stop_right_after_start(chat, emulator):
    task = chat.start("Tell me a story about a river")
    chat.stop()  # before the task ever ran
    result = await chat.wait()
    assert task.cancelled() and result.status == "stopped"
    assert chat.send_button.disabled is False and chat.stop_button.disabled is True
    assert "stopped" in chat.history.children[-1].children[-1].value


async def test_the_buttons_drive_it(chat, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    chat.input.value = "Tell me a story about a river"
    chat.send_button.click()  # what a click in the browser runs
    assert chat.running and chat.input.value == ""
    assert chat.start("another message") is None  # one turn at a time
    with pytest.raises(RuntimeError):
        await chat.send("another message")
    await until(lambda: chat.turns[-1].text)
    chat.stop_button.click()
    result = await chat.wait()
    assert result.status == "stopped"
    assert chat.stop() is False  # nothing left to stop
    chat.input.value = "   "
    chat.send_button.click()
    assert not chat.running and len(chat.turns) == 1  # an empty message sends nothing


async def test_a_model_error_is_shown_in_the_chat(chat):
    result = await chat.send("Hello [fault:429]")
    assert result.status == "error" and "429" in result.error
    assert "429" in result.states[-1]["footer"] or "RESOURCE_EXHAUSTED" in result.states[-1]["footer"]
    assert chat.send_button.disabled is False


async def test_cancelling_the_caller_is_not_mistaken_for_stop(chat, emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.02)
    waiter = asyncio.ensure_future(chat.send("Tell me a story about a river"))
    await until(lambda: chat.turns and chat.turns[-1].text)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert chat.running  # the turn itself goes on: only Stop stops it
    chat.stop()
    assert (await chat.wait()).status == "stopped"


# -- in a real Jupyter kernel, with the messages a browser sends --------------------------------
# A cell prefix that waits (at most 10 s) for the stopped turn to settle: the task done and the
# emulator told of the closed request (a loaded machine takes its time; an idle one, milliseconds).
SETTLED = """import asyncio as _asyncio
for _ in range(200):
    if chat.task.done() and emulator.requests[-1].outcome != "running":
        break
    await _asyncio.sleep(0.05)
"""

KERNEL_SETUP = """
import os
from workshop.gemini_emulator import start_emulator
emulator = start_emulator(first_token_s=0, chunk_s=0.03)
os.environ["GOOGLE_GEMINI_BASE_URL"] = emulator.url
os.environ["GOOGLE_API_KEY"] = "test-key"
from google.adk.agents import Agent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from workshop.chat_widget import ChatWidget
sessions = InMemorySessionService()
runner = Runner(app_name="t", agent=Agent(name="a", model="gemini-3.5-flash"), session_service=sessions)
session = await sessions.create_session(app_name="t", user_id="u")
chat = ChatWidget(runner, user_id="u", session_id=session.id)
display(chat)
print(chat.input.model_id, chat.send_button.model_id, chat.stop_button.model_id)
"""


class Kernel:
    def __init__(self):
        from ipykernel.kernelspec import make_ipkernel_cmd
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.kernel_spec.argv = make_ipkernel_cmd()  # this venv's interpreter
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def execute(self, code, timeout=60, wait=True):
        msg_id = self.client.execute(code)
        return self.reply(msg_id, timeout) if wait else msg_id

    def reply(self, msg_id, timeout=60):
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError(f"{msg['content']['ename']}: {msg['content']['evalue']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
        raise TimeoutError(f"no reply to {msg_id} within {timeout} s")

    def comm(self, comm_id, data):
        self.client.shell_channel.send(
            self.client.session.msg("comm_msg", content={"comm_id": comm_id, "data": data}))

    def click(self, comm_id):
        self.comm(comm_id, {"method": "custom", "content": {"event": "click"}})

    def updates(self, seconds, until=None):
        """Widget state updates the kernel sends to the browser for ``seconds`` (or ``until`` them)."""
        found, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until(found)):
            try:
                msg = self.client.get_iopub_msg(timeout=0.05)
            except Exception:
                continue
            data = msg["content"].get("data", {}) if msg["msg_type"] == "comm_msg" else {}
            if data.get("method") == "update":
                found.append(data["state"])
        return found

    def close(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel():
    kernel = Kernel()
    try:
        yield kernel
    finally:
        kernel.close()


@pytest.mark.notebook
def test_in_a_kernel_send_streams_updates_and_stop_closes_the_request(kernel):
    text_box, send, stop = kernel.execute(KERNEL_SETUP).split()
    kernel.comm(text_box, {"method": "update", "state": {"value": "Tell me a story about a river"},
                           "buffer_paths": []})
    kernel.click(send)

    def answers(updates):
        return [u["value"] for u in updates if "Once upon" in u.get("value", "")]

    # the kernel is idle: these updates come from the turn's background task
    updates = kernel.updates(20, until=lambda found: len(answers(found)) > 3)
    assert len(answers(updates)) > 3
    assert len(answers(updates)[-1]) > len(answers(updates)[0])  # the answer grew live
    kernel.click(stop)
    out = kernel.execute(SETTLED + "print(chat.turns[-1].status, chat.task.cancelled(), "
                                   "emulator.requests[-1].outcome)")
    assert out.split() == ["stopped", "True", "client_closed"]


@pytest.mark.notebook
def test_in_a_kernel_stop_works_while_a_cell_awaits_the_turn(kernel):
    _, _, stop = kernel.execute("print(chat.input.model_id, chat.send_button.model_id, "
                                "chat.stop_button.model_id)").split()
    msg_id = kernel.execute(
        "result = await chat.send('Tell me a story about a mountain')\nprint(result.status)",
        wait=False)
    kernel.updates(20, until=lambda found: any("Once upon" in u.get("value", "") for u in found))
    kernel.click(stop)  # while the cell is still running
    assert kernel.reply(msg_id, timeout=30).split() == ["stopped"]
    out = kernel.execute(SETTLED + "print(emulator.requests[-1].outcome)")
    assert out.split() == ["client_closed"]
