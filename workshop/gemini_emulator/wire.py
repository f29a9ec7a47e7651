"""The Gemini API's wire format: chunk shapes, JSON style and SSE framing.

Matches recordings of the real API (shared/GEMINI_WIRE.md): ``data: <one line of JSON>``
then ``\\r\\n\\r\\n``; Google's JSON style (``": "`` after keys, no space after commas,
non-ASCII raw); key order candidates, usageMetadata, modelVersion, responseId; one part per
chunk; usageMetadata on every chunk, growing; finishReason on the last chunk only.

Chunk sizes are the real API's by default: about ``chunk_chars`` characters of answer per
chunk (the first one smaller), cut before a space, and each thought paragraph whole.
``words_per_chunk > 0`` gives word-sized chunks instead (tests that want many chunks).

gemini-3 models sign the function call, give it an ``id``, and end with an empty text chunk
carrying finishReason; gemini-2.5 signs the first answer text when thoughts are shown, and
its function calls always. Thinking models report ``thoughtsTokenCount`` whether or not the
thoughts are sent.

An ending other than a plain STOP has the real shape, not a relabelled complete answer
(``ending_chunks``): MAX_TOKENS cuts the answer, or leaves a candidate without ``parts``
when the limit falls while thinking; SAFETY and other blocks end with ``content: {}``;
MALFORMED_FUNCTION_CALL is a candidate without content; ``finish=STOP`` adds the bare final
chunk (finishReason and usage only) that some real streams end with.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from .models import is_gemini3, thinks
from .rules import Reply, count_tokens

CHUNK_CHARS = 80  # about 20 tokens, as the real API sends them
THOUGHT_WORDS_PER_CHUNK = 8  # word mode only; the realistic mode sends whole paragraphs
STRING_ARG_PIECE = 4  # characters per streamed string-argument piece (Vertex)
CALL_FINISH_MESSAGE = "Model generated function call(s)."
SAFETY_CATEGORIES = ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_HATE_SPEECH",
                     "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_DANGEROUS_CONTENT")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ": "))


def sse_frame(obj: Any) -> bytes:
    return f"data: {dumps(obj)}\r\n\r\n".encode()


def pretty(obj: Any) -> bytes:
    """Non-streamed bodies and errors: 2-space indent and a trailing newline."""
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode()


def prompt_tokens(request: dict[str, Any]) -> int:
    return max(1, count_tokens(json.dumps(request.get("contents", []), ensure_ascii=False)) // 2)


def _word_chunks(text: str, words: int) -> list[str]:
    pieces = re.findall(r"\s*\S+\s*", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)] or [text]


def _sized_chunks(text: str, chars: int) -> list[str]:
    """About ``chars`` characters a chunk, the first a third of that (the real API's first
    chunk is small), each cut before a space as token boundaries fall."""
    words = re.findall(r"\s*\S+", text)
    tail = text[len("".join(words)):]
    chunks, current, target = [], "", max(1, chars // 3)
    for word in words:
        current += word
        if len(current) >= target:
            chunks.append(current)
            current, target = "", chars
    if current:
        chunks.append(current)
    if not chunks:
        return [text]
    chunks[-1] += tail
    return chunks


def text_chunks(text: str, *, words_per_chunk: int = 0, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    if words_per_chunk > 0:
        return _word_chunks(text, words_per_chunk)
    return _sized_chunks(text, chunk_chars)


def _signature(model: str, reply: Reply) -> str:
    seed = f"{model}|{reply.text}|{reply.function_call}".encode()
    return base64.b64encode(hashlib.sha256(seed).digest()[:18]).decode()


def call_id(seed: str) -> str:
    """A short model-given call id, like gemini-3.x's ("96c1su3s")."""
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[(digest >> (5 * i)) % 36] for i in range(8))


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
    reply: Reply, model: str, *, words_per_chunk: int = 0, chunk_chars: int = CHUNK_CHARS,
    stream_arguments: bool = False, thinking: bool | None = None, seed: str = "",
) -> list[dict[str, Any]]:
    """The parts of a reply, one per chunk, in the order the model sends them.

    ``thinking``: whether the model thinks (signatures); by default, when thoughts are shown.
    ``seed``: makes gemini-3's call ids differ between responses."""
    gemini3 = is_gemini3(model)
    thinking = bool(reply.thoughts) if thinking is None else thinking or bool(reply.thoughts)
    parts: list[dict[str, Any]] = []
    for i, thought in enumerate(reply.thoughts):
        if i < len(reply.thoughts) - 1:
            thought += "\n\n"  # paragraphs stay apart when a client joins the chunks
        pieces = _word_chunks(thought, THOUGHT_WORDS_PER_CHUNK) if words_per_chunk > 0 else [thought]
        parts += [{"text": t, "thought": True} for t in pieces]
    text_parts = [{"text": t} for t in text_chunks(
        reply.text, words_per_chunk=words_per_chunk, chunk_chars=chunk_chars)] if reply.text else []
    call = reply.function_call
    if call and stream_arguments:
        call_parts = _streamed_call_parts(call.name, call.args)
    elif call:
        body: dict[str, Any] = {"name": call.name, "args": call.args}
        if gemini3:
            body["id"] = call_id(f"{seed}|{call.name}|{call.args}")
        call_parts = [{"functionCall": body}]
    else:
        call_parts = []
    ending = [{"text": ""}] if gemini3 or not (parts or text_parts or call_parts) else []
    if gemini3:
        carrier = call_parts or ending  # gemini-3 signs the call, or else the last part
    elif reply.thoughts:
        carrier = text_parts or call_parts  # gemini-2.5: the first answer text
    else:
        carrier = call_parts if thinking else []  # 2.5 signs calls even with thoughts hidden
    if carrier and (thinking or gemini3):
        carrier[0]["thoughtSignature"] = _signature(model, reply)
    return parts + text_parts + call_parts + ending


def _part_tokens(part: dict[str, Any]) -> tuple[int, int]:
    """(thought tokens, answer tokens) of one part."""
    tokens = count_tokens(part.get("text", "")) + (8 if "functionCall" in part else 0)
    return (tokens, 0) if part.get("thought") else (0, tokens)


def usage(prompt: int, parts: list[dict[str, Any]], hidden_thoughts: int = 0) -> dict[str, Any]:
    """Token counts after ``parts``: thoughts grow as they are sent, or are all counted from
    the first chunk when they are hidden (the model thought before answering)."""
    counted = [_part_tokens(p) for p in parts]
    return _usage(prompt, hidden_thoughts + sum(t for t, _ in counted), sum(a for _, a in counted))


def _usage(prompt: int, thoughts: int, candidates: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        meta["candidatesTokenCount"] = candidates
    meta["totalTokenCount"] = prompt + candidates + thoughts
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def candidate(
    part: dict[str, Any] | None,
    *,
    finish_reason: str | None = None,
    content: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One candidate, keys in the real API's order: content, finishReason, index, then
    finishMessage / safetyRatings. ``content`` replaces the usual one-part content (the
    shapes without parts); ``content={"omit": True}`` leaves it out."""
    body: dict[str, Any] = {}
    if content is None:
        body["content"] = {"parts": [part], "role": "model"}
    elif not content.get("omit"):
        body["content"] = content
    if finish_reason:
        body["finishReason"] = finish_reason
    body["index"] = 0
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def chunk(
    cand: dict[str, Any] | None,
    *,
    model: str,
    response_id: str,
    usage_metadata: dict[str, Any],
) -> dict[str, Any]:
    """One GenerateContentResponse, keys in the real API's order."""
    body: dict[str, Any] = {}
    if cand is not None:
        body["candidates"] = [cand]
    body["usageMetadata"] = usage_metadata
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def _safety_ratings() -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = [{"category": c, "probability": "NEGLIGIBLE"} for c in SAFETY_CATEGORIES]
    ratings[-1] = {"category": SAFETY_CATEGORIES[-1], "probability": "HIGH", "blocked": True}
    return ratings


def _truncated(reply: Reply) -> Reply:
    """The answer cut about halfway (at a space), as when the output limit falls mid-text."""
    text = reply.text
    cut = text.rfind(" ", 0, max(1, len(text) // 2) + 1)
    return Reply(text=text[: cut if cut > 0 else max(1, len(text) // 2)], thoughts=reply.thoughts,
                 thinking_tokens=reply.thinking_tokens)


def stream_chunks(
    reply: Reply, *, model: str, response_id: str, prompt: int, request: dict[str, Any] | None = None,
    **part_options: Any,
) -> list[dict[str, Any]]:
    """Every chunk of a streamed reply: usage grows, finishReason on the last."""
    fault = reply.fault
    if fault and fault.blocked:
        return [blocked_response(model=model, response_id=response_id, prompt=prompt,
                                 reason=fault.block_reason)]
    thinking = thinks(model, request or {}) or bool(reply.thoughts)
    hidden = reply.thinking_tokens if thinking and not reply.thoughts else 0
    finish = fault.finish_reason if fault and fault.finish_reason else reply.finish_reason
    options = dict(part_options, thinking=thinking, seed=response_id)

    def make(parts, last_candidate=None):
        out, thoughts, answer = [], hidden, 0
        for i, part in enumerate(parts):
            is_last = i == len(parts) - 1 and last_candidate is None
            extra = {}
            if is_last and finish == "STOP" and reply.function_call and thinking:
                extra["finishMessage"] = CALL_FINISH_MESSAGE
            cand = candidate(part, finish_reason=finish if is_last else None, **extra)
            more_thoughts, more_answer = _part_tokens(part)  # usage grows: a running sum
            thoughts, answer = thoughts + more_thoughts, answer + more_answer
            out.append(chunk(cand, model=model, response_id=response_id,
                             usage_metadata=_usage(prompt, thoughts, answer)))
        if last_candidate is not None:
            out.append(chunk(last_candidate, model=model, response_id=response_id,
                             usage_metadata=_usage(prompt, thoughts, answer)))
        return out

    variant = fault.finish_variant if fault else ""
    if not (fault and fault.finish_reason):
        return make(reply_parts(reply, model, **options))
    if finish == "STOP":
        # The complete answer, then a last chunk with only finishReason and usage.
        parts = reply_parts(reply, model, **options)
        if len(parts) > 1 and parts[-1].get("text") == "" and "functionCall" not in parts[-2]:
            # gemini-3's empty text chunk becomes the bare one; its signature moves back.
            signature = parts.pop().get("thoughtSignature")
            if signature:
                parts[-1].setdefault("thoughtSignature", signature)
        elif len(parts) > 1 and parts[-1].get("text") == "":
            parts.pop()
        extra = {"finishMessage": CALL_FINISH_MESSAGE} if reply.function_call and thinking else {}
        return make(parts, candidate(None, finish_reason="STOP", content={"omit": True}, **extra))
    thoughts_only = Reply(thoughts=reply.thoughts, thinking_tokens=reply.thinking_tokens)
    thought_parts = [p for p in reply_parts(thoughts_only, model, **options) if p.get("thought")]
    if finish == "MALFORMED_FUNCTION_CALL":
        return make(thought_parts, candidate(None, finish_reason=finish, content={"omit": True}))
    if finish == "MAX_TOKENS" and (variant == "thinking" or not reply.text):
        # The limit fell while the model was still thinking: no answer part at all.
        return make(thought_parts, candidate(None, finish_reason=finish, content={"role": "model"}))
    cut = _truncated(reply)
    # No empty closing chunk: the stream stops where the text was cut.
    parts = [p for p in reply_parts(cut, model, **options) if p.get("text") != "" or p.get("thought")]
    if finish == "MAX_TOKENS":
        return make(parts)  # the cut text's last chunk carries MAX_TOKENS
    extra = {"safetyRatings": _safety_ratings()} if finish == "SAFETY" else {}
    return make(parts, candidate(None, finish_reason=finish, content={}, **extra))


def blocked_response(*, model: str, response_id: str, prompt: int, reason: str = "SAFETY") -> dict[str, Any]:
    return {
        "promptFeedback": {"blockReason": reason},
        "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]},
        "modelVersion": model,
        "responseId": response_id,
    }


def whole_response(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed ``:generateContent`` answer: the streamed chunks' parts merged into
    one candidate, with the last chunk's ending and usage."""
    last = chunks[-1]
    if "candidates" not in last:
        return last
    merged: list[dict[str, Any]] = []
    for body in chunks:
        for part in body["candidates"][0].get("content", {}).get("parts", []):
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
                # signature, if any, moves to the part before it.
                if previous is not None and "thoughtSignature" in part:
                    previous.setdefault("thoughtSignature", part["thoughtSignature"])
            else:
                merged.append(dict(part))
    ending = dict(last["candidates"][0])
    if merged:
        ending["content"] = {"parts": merged, "role": "model"}
    cand = {"content": ending.pop("content")} if "content" in ending else {}
    cand.update(ending)
    return {"candidates": [cand], **{k: v for k, v in last.items() if k != "candidates"}}
