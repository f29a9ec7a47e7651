"""Faults on demand, for the reliability lessons.

One grammar, three ways to ask (the first that applies wins):

- a request header ``x-emulator-fault: SPEC`` (set through google-genai's
  ``HttpOptions(headers=...)``),
- a fault armed on the emulator for its next requests: ``handle.arm_fault(SPEC, count=1)``
  in process, or ``POST /emulator/faults {"fault": SPEC, "count": 1}``,
- a trigger ``[fault:SPEC]`` anywhere in the latest user message, so a fault can travel
  through any agent and any server unchanged.

SPEC is one of:

==============================  =====================================================
``429`` ``500`` ``503``         answer with that HTTP error before any byte of the
``400`` ``404``                 stream (real status names, messages and details);
                                ``503*2``: only the first 2 identical requests fail
``cut-after=N``                 send N chunks, then drop the connection (no end of body)
``error-after=N``               send N chunks, then an error inside the 200, as the real
                                API sends it: pretty-printed JSON over several lines,
                                outside SSE framing (500; ``error-after=N:503`` picks it)
``slow-first-token=S``          wait S seconds before the first chunk
``finish=MAX_TOKENS``           the answer cut about halfway; its last chunk carries
                                MAX_TOKENS
``finish=MAX_TOKENS:thinking``  the limit reached while thinking: one candidate with
                                ``content: {"role": "model"}`` and no ``parts``
``finish=SAFETY``               half the answer, then ``content: {}`` with SAFETY and
                                ``safetyRatings`` (one ``blocked: true``); other block
                                reasons (RECITATION, OTHER, ...) the same, without ratings
``finish=MALFORMED_FUNCTION_CALL``  one candidate without content
``finish=STOP``                 the whole answer, then a last chunk holding only
                                finishReason and usage
``blocked``                     a prompt blocked: ``promptFeedback.blockReason`` SAFETY
                                and no candidates; ``blocked=PROHIBITED_CONTENT`` (or
                                another reason) picks the reason
==============================  =====================================================

A refused API key needs no fault: any key that starts with ``invalid`` (e.g.
``GOOGLE_API_KEY=invalid-key``) gets the real 400 ``API_KEY_INVALID``.
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
    finish_variant: str = ""
    blocked: bool = False
    block_reason: str = "SAFETY"

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
                reason, _, variant = value.partition(":")
                if variant not in ("", "thinking"):
                    raise ValueError(f"no finish variant {variant!r} (only 'thinking')")
                return cls(spec, trigger, finish_reason=reason.upper(), finish_variant=variant)
            if key == "blocked":
                return cls(spec, trigger, blocked=True, block_reason=(value or "SAFETY").upper())
        except ValueError as exc:
            raise FaultSpecError(f"bad fault spec {spec!r}: {exc}") from exc
        raise FaultSpecError(f"unknown fault spec {spec!r} (see workshop.gemini_emulator.faults)")


def find_fault(text: str) -> Fault | None:
    """The fault a ``[fault:SPEC]`` trigger in the user's text asks for, if any."""
    match = TRIGGER_RE.search(text or "")
    return Fault.parse(match.group(1), trigger=match.group(0)) if match else None


QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
API_KEY_INVALID = "API key not valid. Please pass a valid API key."


def error_body(status: int, message: str | None = None, *, model: str = "gemini-3.5-flash") -> dict:
    """The real API's error object: code, message, status, and for 429 the details a
    client reads (Help, QuotaFailure, RetryInfo)."""
    name, default = STATUS.get(status, ("UNKNOWN", "Unknown error."))
    error: dict = {"code": status, "message": message or default, "status": name}
    if status == 429:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                {"description": "Learn more about Gemini API quotas",
                 "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaMetric": QUOTA_METRIC,
                 "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                 "quotaDimensions": {"location": "global", "model": model},
                 "quotaValue": "10"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"},
        ]
    return {"error": error}


def api_key_invalid_body() -> dict:
    """400, not 401/403: what the real API answers a key it does not know."""
    return {"error": {
        "code": 400,
        "message": API_KEY_INVALID,
        "status": "INVALID_ARGUMENT",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com",
             "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": API_KEY_INVALID},
        ],
    }}
