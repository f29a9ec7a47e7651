"""How the AI SDK's client reads a UI message stream: the assistant message it builds.

``read_with_ai_sdk(chunks)`` asks the real client: node runs the ``ai`` package pinned in
tests/js (``npm ci`` there) over the chunks as SSE bytes, through ``DefaultChatTransport``'s own
parser (it validates every chunk against the package's schema) and ``readUIMessageStream``
(how ``useChat`` builds the message). ``read_in_python(chunks)`` follows the same rules for
the chunk types the reference server sends, for a machine without node: the notebook and its
check say which one read.

Both return ``{"message": {...} | None, "errors": [...]}``: the last snapshot of the message
(``parts``: ``text``, ``reasoning``, ``tool-<name>`` with ``state``, ``input``, ``output``) and
the errors the client reported (an ``error`` chunk, or a stream it could not read).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parent.parent / "tests" / "js"

_READER = """
import { readFileSync } from "node:fs";
import { DefaultChatTransport, readUIMessageStream } from "ai";
const chunks = JSON.parse(readFileSync(0, "utf8"));
const sse = chunks.map((c) => `data: ${JSON.stringify(c)}\\n\\n`).join("") + "data: [DONE]\\n\\n";
const stream = new DefaultChatTransport().processResponseStream(new Response(sse).body);
const errors = [];
let message = null;
try {
  for await (const m of readUIMessageStream({ stream, onError: (e) => errors.push(String(e?.message ?? e)) })) {
    message = m;
  }
} catch (e) {
  errors.push(String(e?.message ?? e));
}
process.stdout.write(JSON.stringify({ message, errors }));
"""


def ai_sdk_available() -> bool:
    """node and the pinned ``ai`` package (tests/js/node_modules) are there."""
    return shutil.which("node") is not None and (JS_DIR / "node_modules" / "ai").is_dir()


def read_with_ai_sdk(chunks: list[dict], timeout_s: float = 30) -> dict[str, Any]:
    """The real client's reading of ``chunks`` (node + the ``ai`` package)."""
    result = subprocess.run(["node", "--input-type=module", "-e", _READER], cwd=JS_DIR,
                            input=json.dumps(chunks), capture_output=True, text=True,
                            timeout=timeout_s)
    if result.returncode != 0:
        raise RuntimeError(f"node failed: {result.stderr.strip()[-500:]}")
    reading = json.loads(result.stdout)
    # zod's schema errors run to pages: the first lines say what failed
    reading["errors"] = [error[:400] for error in reading["errors"]]
    reading["message"] = reading["message"] or {"id": "", "role": "assistant", "parts": []}
    return reading


def read(chunks: list[dict]) -> tuple[dict[str, Any], str]:
    """``(reading, reader)``: the real client's if it is installed, else ``read_in_python``."""
    if ai_sdk_available():
        return read_with_ai_sdk(chunks), "the ai package (node)"
    return read_in_python(chunks), "read_in_python (node or tests/js/node_modules missing)"


def read_in_python(chunks: list[dict]) -> dict[str, Any]:
    """``processUIMessageStream``'s rules (ai 6.0) for start, text, reasoning, tool, error,
    finish and abort chunks: a delta or an end needs its start first, a tool output needs its
    call; the first broken rule ends the reading with an error, as in the client."""
    message: dict[str, Any] = {"id": "", "role": "assistant", "parts": []}
    active: dict[str, dict] = {}  # "text:<id>" / "reasoning:<id>" -> part
    tools: dict[str, dict] = {}
    errors: list[str] = []
    required = {"text-start": ["id"], "text-delta": ["id", "delta"], "text-end": ["id"],
                "reasoning-start": ["id"], "reasoning-delta": ["id", "delta"],
                "reasoning-end": ["id"], "tool-input-start": ["toolCallId", "toolName"],
                "tool-input-available": ["toolCallId", "toolName"],
                "tool-output-available": ["toolCallId"], "error": ["errorText"],
                "start": [], "finish": [], "abort": [], "start-step": [], "finish-step": []}
    try:
        for chunk in chunks:
            kind = chunk.get("type") if isinstance(chunk, dict) else None
            if kind not in required:
                raise ValueError(f"Type validation failed: unknown chunk {json.dumps(chunk)[:80]}")
            missing = [f for f in required[kind] if not isinstance(chunk.get(f), str)]
            if missing:
                raise ValueError(f"Type validation failed: {kind} needs {missing}")
            if kind in ("text-start", "reasoning-start"):
                base = kind.split("-")[0]
                part = {"type": base, "text": "", "state": "streaming"}
                active[f"{base}:{chunk['id']}"] = part
                message["parts"].append(part)
            elif kind in ("text-delta", "reasoning-delta", "text-end", "reasoning-end"):
                base, step = kind.split("-")
                part = active.get(f"{base}:{chunk['id']}")
                if part is None:
                    raise ValueError(f'Received {kind} for missing {base} part with ID "{chunk["id"]}". '
                                     f'Ensure a "{base}-start" chunk is sent before any "{kind}" chunk.')
                if step == "delta":
                    part["text"] += chunk["delta"]
                else:
                    part["state"] = "done"
                    del active[f"{base}:{chunk['id']}"]
            elif kind in ("tool-input-start", "tool-input-available"):
                part = tools.get(chunk["toolCallId"])
                if part is None:
                    part = tools[chunk["toolCallId"]] = {"type": f"tool-{chunk['toolName']}",
                                                         "toolCallId": chunk["toolCallId"]}
                    message["parts"].append(part)
                part["type"] = f"tool-{chunk['toolName']}"
                part["state"] = "input-streaming" if kind == "tool-input-start" else "input-available"
                part["input"] = chunk.get("input")
            elif kind == "tool-output-available":
                part = tools.get(chunk["toolCallId"])
                if part is None:
                    raise ValueError(f'No tool invocation found for tool call ID "{chunk["toolCallId"]}".')
                part["state"], part["output"] = "output-available", chunk.get("output")
            elif kind == "start" and chunk.get("messageId"):
                message["id"] = chunk["messageId"]
            elif kind == "error":
                errors.append(chunk["errorText"])
            elif kind == "finish-step":
                active.clear()
    except ValueError as error:
        errors.append(str(error))
    return {"message": message, "errors": errors}
