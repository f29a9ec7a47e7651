"""The reference server read by the real JavaScript client libraries: node's test runner runs
tests/js/*.test.mjs against a server on loopback (the ``reference_server`` fixture, talking to
the ``emulator`` fixture), with the URLs in environment variables.

The packages come from tests/js/package-lock.json (``npm ci`` there; .ci/run does it). Without
node or tests/js/node_modules these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workshop.testing import REFERENCE_TOKENS

JS_DIR = Path(__file__).parent / "js"


def node_ready() -> str:
    """The node executable, or skip (fail under CI)."""
    node = shutil.which("node")
    missing = ("node is not installed" if node is None else
               None if (JS_DIR / "node_modules" / "ai").is_dir() else
               "tests/js/node_modules is missing: run `npm ci` in tests/js")
    if missing is None:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"{missing} (.ci/run installs it)")
    pytest.skip(missing)


def run_node_tests(node: str, test_file: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", "--test-concurrency=1", test_file],
        cwd=JS_DIR, env={**os.environ, **env}, capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_ai_sdk_client_reads_api_chat(reference_server, emulator):
    """DefaultChatTransport + readUIMessageStream against POST /api/chat: text grows once, a
    tool call and its result as one tool part, thoughts as reasoning, an error mid-stream,
    409, sessions by chat id, regenerate() with AbstractChat (useChat's core), Stop (abort)
    cancels the turn, 401."""
    node = node_ready()
    # Paced like a model (word by word) so that a long answer is still running when the
    # client aborts; the short ones still end in well under a second.
    emulator.set_pacing(first_token_s=0.05, chunk_s=0.02)
    token = next(iter(REFERENCE_TOKENS))
    output = run_node_tests(node, "ai_sdk_chat.test.mjs", {
        "CHAT_API": f"{reference_server.url}/api/chat", "CHAT_TOKEN": token,
        "EMULATOR_URL": emulator.url})
    print(output)
    requests = emulator.requests
    # The abort test: the server closed the model's stream (not read to the end)
    assert any(r.outcome == "client_closed" for r in requests)
    # The chat id kept the conversation: the second message's model request holds the first
    second = next(r for r in requests if "And what did I just ask?" in json.dumps(r.body))
    assert "What is the capital of France?" in json.dumps(second.body["contents"][0])
    # regenerate(): the answer made again was asked with the same history as the first one (the
    # old answer rewound, not in what the model sees)
    asked = [[(c["role"], "".join(p.get("text", "") for p in c["parts"])) for c in r.body["contents"]]
             for r in requests if r.body and "Count to 5" in json.dumps(r.body)]
    assert asked == 2 * [[("user", "Count to 3"), ("model", "1, 2, 3."), ("user", "Count to 5")]], asked
    assert not reference_server.errors, reference_server.errors
