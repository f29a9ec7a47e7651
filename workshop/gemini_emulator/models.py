"""Which model names the emulator answers for, and how each family behaves on the wire.

A name answers only if it is a current Gemini API model for ``generateContent``
(optionally with a ``-preview``, dated or ``-NNN`` suffix); retired ids, unknown names and
Live-only models answer 404 as the real API does. The list is data, not a prediction:
update it when Google's model page changes.
"""

from __future__ import annotations

import re
from typing import Any

CURRENT = (
    "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro",
    "gemini-3-pro-preview", "gemini-3-flash-preview",
    "gemini-3.1-pro-preview", "gemini-3.1-flash-lite-preview",
    "gemini-3.5-flash", "gemini-3.5-pro",
    "gemini-flash-latest", "gemini-flash-lite-latest", "gemini-pro-latest",
)
# Shut down: the real API answers 404 for them (shared/ERRATA.md, row 4). Kept apart so
# /v1beta/models does not list them and a test can show they are refused.
RETIRED = (
    "gemini-pro", "gemini-pro-vision", "gemini-1.0-pro", "gemini-1.0-pro-vision",
    "gemini-1.5-pro", "gemini-1.5-flash", "gemini-1.5-flash-8b",
    "gemini-2.0-flash", "gemini-2.0-flash-lite", "gemini-2.0-flash-exp", "gemini-2.0-pro-exp",
)
_SUFFIX_RE = re.compile(r"(-preview)?(-\d{2}-\d{2,4}|-\d{3})?")
# Live API models (bidirectional audio/video) have no generateContent at all.
LIVE_ONLY_RE = re.compile(r"^gemini-live-|native-audio|-live-")


def is_live_only(model: str) -> bool:
    return LIVE_ONLY_RE.search(model) is not None


def is_known(model: str) -> bool:
    """A current model, possibly with a version suffix (gemini-2.5-flash-preview-09-2025)."""
    if is_live_only(model):
        return False
    for name in CURRENT:
        if model == name or (model.startswith(name) and _SUFFIX_RE.fullmatch(model[len(name):])):
            return True
        stem = name.removesuffix("-preview")
        if stem != name and model.startswith(stem) and _SUFFIX_RE.fullmatch(model[len(stem):]):
            return True
    return False


def not_found_message(model: str, version: str) -> str:
    """The real API's wording, the same for unknown, retired and Live-only names."""
    return (
        f"models/{model} is not found for API version {version}, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods."
    )


def is_gemini3(model: str) -> bool:
    """gemini-3.x (and the -latest aliases, which point at it): the call carries the
    signature and an id, and the stream ends with an empty text chunk."""
    return model.startswith("gemini-3") or model.endswith("-latest")


def _get(d: dict[str, Any] | None, *names: str) -> Any:
    for name in names:
        if d and name in d:
            return d[name]
    return None


def thinks(model: str, request: dict[str, Any]) -> bool:
    """gemini-2.5 and 3.x think by default, whether or not thoughts are requested; a
    thinking budget of 0 turns it off, and flash-lite thinks only when given a budget."""
    config = _get(request, "generationConfig", "generation_config") or {}
    thinking = _get(config, "thinkingConfig", "thinking_config") or {}
    budget = _get(thinking, "thinkingBudget", "thinking_budget")
    if budget == 0:
        return False
    if "flash-lite" in model:
        return bool(budget) or bool(_get(thinking, "includeThoughts", "include_thoughts"))
    return model.startswith(("gemini-2.5", "gemini-3")) or model.endswith("-latest")


def model_list() -> dict[str, Any]:
    """``GET /v1beta/models``: the current models, in the real listing's shape."""
    models = []
    for name in CURRENT:
        models.append({
            "name": f"models/{name}",
            "version": "001",
            "displayName": name,
            "description": "Answered by the workshop's offline Gemini emulator.",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent",
                                           "batchGenerateContent"],
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
            "thinking": True,
        })
    return {"models": models}
