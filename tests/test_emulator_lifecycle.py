"""Start, stop, pacing, disconnects, speed and the standalone command."""

import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from workshop.gemini_emulator import start_emulator

BODY = {"contents": [{"role": "user", "parts": [{"text": "Count to 20"}]}]}


def stream_url(handle, model="gemini-2.5-flash"):
    return f"{handle.url}/v1beta/models/{model}:streamGenerateContent?alt=sse"


def test_stop_leaves_no_thread_and_no_port():
    before = {t.name for t in threading.enumerate()}
    handle = start_emulator(first_token_s=0, chunk_s=0)
    port = handle.port
    assert httpx.post(stream_url(handle), json=BODY, headers={"x-goog-api-key": "k"}).status_code == 200
    with httpx.Client() as keep_alive:  # an idle kept-alive connection must not block stop()
        keep_alive.post(stream_url(handle), json=BODY, headers={"x-goog-api-key": "k"})
        handle.stop()
    assert not handle.running
    assert {t.name for t in threading.enumerate()} <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_pacing_delays_the_first_token_and_each_chunk():
    body = {"contents": [{"role": "user", "parts": [{"text": "Tell me about streaming in 100 words"}]}]}
    with start_emulator(first_token_s=0.2, chunk_s=0.01) as handle:
        with httpx.stream("POST", stream_url(handle), json=body, headers={"x-goog-api-key": "k"}) as r:
            start = time.perf_counter()
            arrivals = [time.perf_counter() - start for _ in r.iter_lines() if _]
        sent = handle.requests[-1].sent_at
    assert len(arrivals) >= 5 and arrivals[0] >= 0.18
    # Each chunk waits chunk_s before it is sent (the emulator's own clock); a loaded client may
    # read two together, so its arrivals only bound the whole spread, loosely.
    assert all(b - a >= 0.01 * 0.9 for a, b in zip(sent, sent[1:], strict=False)), sent
    assert arrivals[-1] - arrivals[0] >= 0.01 * (len(arrivals) - 1) * 0.5


def test_slow_first_token_fault(emulator):
    body = {"contents": [{"role": "user", "parts": [{"text": "hi [fault:slow-first-token=0.3]"}]}]}
    start = time.perf_counter()
    httpx.post(stream_url(emulator), json=body, headers={"x-goog-api-key": "k"}, timeout=5)
    assert time.perf_counter() - start >= 0.28


def test_emulator_sees_the_client_close_the_stream(emulator):
    emulator.set_pacing(first_token_s=0, chunk_s=0.05)
    with httpx.stream("POST", stream_url(emulator), json=BODY, headers={"x-goog-api-key": "k"}) as r:
        for line in r.iter_lines():
            if line:
                break
    deadline = time.monotonic() + 5
    while emulator.requests[-1].outcome == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    record = emulator.requests[-1]
    assert record.outcome == "client_closed"
    assert record.chunks_sent < 20  # of the answer's many, 0.05 s apart: seen within about 1 s


def test_under_one_millisecond_per_chunk_at_zero_pacing(emulator):
    body = {"contents": [{"role": "user", "parts": [{"text": "Write 2000 words"}]}]}
    with httpx.Client() as client:
        client.post(stream_url(emulator), json=body, headers={"x-goog-api-key": "k"})  # warm up
        start = time.perf_counter()
        response = client.post(stream_url(emulator), json=body, headers={"x-goog-api-key": "k"})
        elapsed = time.perf_counter() - start
    chunks = response.text.count("data: ")
    assert chunks == 2000
    per_chunk_ms = elapsed / chunks * 1000
    sent = emulator.requests[-1].sent_at
    server_ms = (sent[-1] - sent[0]) / (len(sent) - 1) * 1000
    print(f"emulator: {server_ms:.3f} ms per chunk sent, {per_chunk_ms:.3f} ms with the client")
    assert per_chunk_ms < 1.0


def test_standalone_command_serves_on_the_given_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "workshop.gemini_emulator", "--host", "127.0.0.1", "--port", str(port),
         "--first-token-delay", "0", "--chunk-delay", "0"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert f"listening on http://127.0.0.1:{port}" in proc.stdout.readline()
        response = httpx.post(f"http://127.0.0.1:{port}/v1beta/models/gemini-2.5-flash:generateContent",
                              json=BODY, headers={"x-goog-api-key": "k"})
        assert response.json()["candidates"][0]["content"]["parts"][0]["text"].startswith("1, 2, 3")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_whole_answer_takes_as_long_as_streaming_all_of_it():
    with start_emulator(first_token_s=0.05, chunk_s=0.01, words_per_chunk=1) as handle:
        start = time.perf_counter()
        httpx.post(f"{handle.url}/v1beta/models/gemini-2.5-flash:generateContent", json=BODY,
                   headers={"x-goog-api-key": "k"})
        whole = time.perf_counter() - start
        with httpx.stream("POST", stream_url(handle), json=BODY, headers={"x-goog-api-key": "k"}) as r:
            start = time.perf_counter()
            arrivals = [time.perf_counter() - start for line in r.iter_lines() if line]
    # "Count to 20" in one-word chunks: 20 chunks. A lower bound from the pacing (2 % for timer resolution); load only
    # adds to it, whereas comparing with a measured stream would be fragile on a loaded machine.
    assert whole >= (0.05 + 0.01 * 19) * 0.98
    assert arrivals[0] < whole / 2  # streaming's first chunk arrives long before the whole answer
