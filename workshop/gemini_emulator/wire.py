"""The Gemini API's wire format: chunk shapes, JSON style and SSE framing.

Matches recordings of the real API (shared/GEMINI_WIRE.md): ``data: <one line of JSON>``
then ``\\r\\n\\r\\n``; Google's JSON style (``": "`` after keys, no space after commas,
non-ASCII raw); key order candidates, usageMetadata, modelVersion, responseId; one part per
chunk; usageMetadata on every chunk, growing; finishReason on the last chunk only.
gemini-3 models put the thought signature on the function call and end with an empty text
chunk carrying finishReason; gemini-2.5 puts it on the first answer text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from .rules import Reply

THOUGHT_WORDS_PER_CHUNK = 8
STRING_ARG_PIECE = 4  # characters per streamed string-argument piece (Vertex)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ": "))


def sse_frame(obj: Any) -> bytes:
    return f"data: {dumps(obj)}\r\n\r\n".encode()


def pretty(obj: Any) -> bytes:
    """Non-streamed bodies and errors: 2-space indent and a trailing newline."""
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode()


def count_tokens(text: str) -> int:
    """About four characters a token, like the real tokenizer on English."""
    return (len(text) + 3) // 4 if text else 0


def prompt_tokens(request: dict[str, Any]) -> int:
    return max(1, count_tokens(json.dumps(request.get("contents", []), ensure_ascii=False)) // 2)


def _word_chunks(text: str, words: int) -> list[str]:
    pieces = re.findall(r"\s*\S+\s*", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)] or [text]


def _signature(model: str, reply: Reply) -> str:
    seed = f"{model}|{reply.text}|{reply.function_call}".encode()
    return base64.b64encode(hashlib.sha256(seed).digest()[:18]).decode()


def _streamed_call_parts(name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Vertex AI's streamed function-call arguments: name first, then partialArgs."""
    parts: list[dict[str, Any]] = [{"functionCall": {"name": name, "willContinue": True}}]
    for key, value in args.items():
        path = f"$.{key}"
        if isinstance(value, str):
            pieces = [value[i : i + STRING_ARG_PIECE] for i in range(0, len(value), STRING_ARG_PIECE)]
            for i, piece in enumerate(pieces or [""]):
                arg = {"jsonPath": path, "stringValue": piece}
                if i < len(pieces) - 1:
                    arg["willContinue"] = True
                parts.append({"functionCall": {"partialArgs": [arg], "willContinue": True}})
            continue
        if isinstance(value, bool):
            arg = {"jsonPath": path, "boolValue": value}
        elif isinstance(value, int | float):
            arg = {"jsonPath": path, "numberValue": value}
        elif value is None:
            arg = {"jsonPath": path, "nullValue": None}
        else:
            arg = {"jsonPath": path, "stringValue": json.dumps(value)}
        parts.append({"functionCall": {"partialArgs": [arg], "willContinue": True}})
    parts.append({"functionCall": {}})
    return parts


def reply_parts(
    reply: Reply, model: str, *, words_per_chunk: int = 1, stream_arguments: bool = False
) -> list[dict[str, Any]]:
    """The parts of a reply, one per chunk, in the order the model sends them."""
    gemini3 = model.startswith("gemini-3")
    signed = bool(reply.thoughts) or gemini3
    parts: list[dict[str, Any]] = []
    for i, thought in enumerate(reply.thoughts):
        if i < len(reply.thoughts) - 1:
            thought += "\n\n"  # paragraphs stay apart when a client joins the chunks
        parts += [{"text": t, "thought": True} for t in _word_chunks(thought, THOUGHT_WORDS_PER_CHUNK)]
    text_parts = [{"text": t} for t in _word_chunks(reply.text, words_per_chunk)] if reply.text else []
    call = reply.function_call
    if call and stream_arguments:
        call_parts = _streamed_call_parts(call.name, call.args)
    elif call:
        call_parts = [{"functionCall": {"name": call.name, "args": call.args}}]
    else:
        call_parts = []
    ending = [{"text": ""}] if gemini3 or not (parts or text_parts or call_parts) else []
    if signed:
        # gemini-3 signs the call, or else the last part; gemini-2.5 the first answer text.
        carrier = (call_parts or ending) if gemini3 else (text_parts or call_parts)
        if carrier:
            carrier[0]["thoughtSignature"] = _signature(model, reply)
    return parts + text_parts + call_parts + ending


def usage(prompt: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
    thoughts = sum(count_tokens(p.get("text", "")) for p in parts if p.get("thought"))
    candidates = sum(
        count_tokens(p.get("text", "")) + (8 if "functionCall" in p else 0)
        for p in parts
        if not p.get("thought")
    )
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        meta["candidatesTokenCount"] = candidates
    meta["totalTokenCount"] = prompt + candidates + thoughts
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def chunk(
    part: dict[str, Any] | None,
    *,
    model: str,
    response_id: str,
    usage_metadata: dict[str, Any],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One GenerateContentResponse, keys in the real API's order."""
    body: dict[str, Any] = {}
    if part is not None:
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}}
        if finish_reason:
            candidate["finishReason"] = finish_reason
        candidate["index"] = 0
        body["candidates"] = [candidate]
    body["usageMetadata"] = usage_metadata
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def stream_chunks(
    reply: Reply, *, model: str, response_id: str, prompt: int, **part_options: Any
) -> list[dict[str, Any]]:
    """Every chunk of a streamed reply: usage grows, finishReason on the last."""
    if reply.fault and reply.fault.blocked:
        return [blocked_response(model=model, response_id=response_id, prompt=prompt)]
    parts = reply_parts(reply, model, **part_options)
    chunks = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        chunks.append(
            chunk(
                part,
                model=model,
                response_id=response_id,
                usage_metadata=usage(prompt, parts[: i + 1]),
                finish_reason=reply.finish_reason if last else None,
            )
        )
    return chunks


def blocked_response(*, model: str, response_id: str, prompt: int) -> dict[str, Any]:
    return {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
        "modelVersion": model,
        "responseId": response_id,
    }


def whole_response(reply: Reply, *, model: str, response_id: str, prompt: int) -> dict[str, Any]:
    """The non-streamed ``:generateContent`` answer: the same parts, merged."""
    if reply.fault and reply.fault.blocked:
        return blocked_response(model=model, response_id=response_id, prompt=prompt)
    streamed = reply_parts(reply, model)
    merged: list[dict[str, Any]] = []
    for part in streamed:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and "text" in part
            and "text" in previous
            and bool(part.get("thought")) == bool(previous.get("thought"))
            and "thoughtSignature" not in part
        ):
            previous["text"] += part["text"]
        elif part.get("text") == "" and "functionCall" not in part:
            # The streamed empty STOP chunk has nothing to say in one whole answer; its
            # signature, if any, moves to the text before it.
            if previous is not None and "thoughtSignature" in part:
                previous.setdefault("thoughtSignature", part["thoughtSignature"])
        else:
            merged.append(dict(part))
    body = chunk(None, model=model, response_id=response_id, usage_metadata=usage(prompt, streamed))
    candidate = {"content": {"parts": merged, "role": "model"}, "finishReason": reply.finish_reason, "index": 0}
    return {"candidates": [candidate], **body}
