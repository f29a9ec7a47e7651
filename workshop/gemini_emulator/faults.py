"""Faults on demand, for the reliability lessons.

One grammar, three ways to ask (the first that applies wins):

- a request header ``x-emulator-fault: SPEC`` (set through google-genai's
  ``HttpOptions(headers=...)``),
- a fault armed on the emulator for its next requests: ``handle.arm_fault(SPEC, count=1)``
  in process, or ``POST /emulator/faults {"fault": SPEC, "count": 1}``,
- a trigger ``[fault:SPEC]`` anywhere in the latest user message, so a fault can travel
  through any agent and any server unchanged.

SPEC is one of:

=========================  ===========================================================
``429`` ``500`` ``503``    answer with that HTTP error before any byte of the stream
``400`` ``404``            (real status names and messages); ``503*2``: only the first
                           2 identical requests fail, the next succeeds (retry demos)
``cut-after=N``            send N chunks, then drop the connection (no end of body)
``error-after=N``          send N chunks, then an in-stream ``{"error": ...}`` (500;
                           ``error-after=N:503`` picks the status)
``slow-first-token=S``     wait S seconds before the first chunk
``finish=REASON``          end with that ``finishReason`` (SAFETY, MAX_TOKENS, ...)
``blocked``                a prompt blocked by safety: ``promptFeedback``, no candidates
=========================  ===========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRIGGER_RE = re.compile(r"\[fault:([^\]\s]+)\]")

# Real status names and messages of the Gemini API (see shared/GEMINI_WIRE.md).
STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: (
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    ),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in 2.0s.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


class FaultSpecError(ValueError):
    """A fault SPEC the grammar above does not describe."""


@dataclass(frozen=True)
class Fault:
    spec: str
    trigger: str = ""
    status: int | None = None
    times: int | None = None
    cut_after: int | None = None
    error_after: int | None = None
    error_status: int = 500
    first_token_delay: float | None = None
    finish_reason: str | None = None
    blocked: bool = False

    @classmethod
    def parse(cls, spec: str, trigger: str = "") -> Fault:
        spec = spec.strip()
        try:
            if re.fullmatch(r"\d{3}(\*\d+)?", spec):
                status, _, times = spec.partition("*")
                if int(status) not in STATUS:
                    raise FaultSpecError(f"no such status in the emulator: {status}")
                return cls(spec, trigger, status=int(status), times=int(times) if times else None)
            key, _, value = spec.partition("=")
            if key == "cut-after":
                return cls(spec, trigger, cut_after=int(value))
            if key == "error-after":
                count, _, status = value.partition(":")
                return cls(spec, trigger, error_after=int(count), error_status=int(status or 500))
            if key == "slow-first-token":
                return cls(spec, trigger, first_token_delay=float(value))
            if key == "finish" and value:
                return cls(spec, trigger, finish_reason=value.upper())
            if key == "blocked":
                return cls(spec, trigger, blocked=True)
        except ValueError as exc:
            raise FaultSpecError(f"bad fault spec {spec!r}: {exc}") from exc
        raise FaultSpecError(f"unknown fault spec {spec!r} (see workshop.gemini_emulator.faults)")


def find_fault(text: str) -> Fault | None:
    """The fault a ``[fault:SPEC]`` trigger in the user's text asks for, if any."""
    match = TRIGGER_RE.search(text or "")
    return Fault.parse(match.group(1), trigger=match.group(0)) if match else None


def error_body(status: int, message: str | None = None) -> dict:
    name, default = STATUS.get(status, ("UNKNOWN", "Unknown error."))
    error = {"code": status, "message": message or default, "status": name}
    if status == 429:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"},
        ]
    return {"error": error}
