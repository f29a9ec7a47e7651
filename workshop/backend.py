"""The setup cell's logic: choose real Gemini or the offline emulator, say which, once.

Decision, first match wins:
1. ``GOOGLE_GENAI_USE_VERTEXAI=true``: Vertex AI, as google-genai configures it from the
   environment (``GOOGLE_CLOUD_PROJECT``/``GOOGLE_CLOUD_LOCATION`` or an API key).
2. An API key (``GOOGLE_API_KEY`` or ``GEMINI_API_KEY``) with ``GOOGLE_GEMINI_BASE_URL``:
   that endpoint (a proxy, or an emulator started with ``python -m workshop.gemini_emulator``).
3. An API key alone: the real Gemini API.
4. Nothing: start the offline emulator in this process and point the SDK at it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import version

from .gemini_emulator import EmulatorHandle, start_emulator

DEFAULT_MODEL = "gemini-3.5-flash"  # google-adk 2.13's own default for LlmAgent
MODEL_ENV = "WORKSHOP_MODEL"
PLACEHOLDER_KEY = "offline-emulator"  # not a secret: the emulator accepts any key
# The versions every claim in the notebooks was checked against (tests keep these honest).
VERIFIED_VERSIONS = {"google-adk": "2.13.0", "google-genai": "2.34.0"}

_emulator: EmulatorHandle | None = None


@dataclass(frozen=True)
class Backend:
    kind: str  # "emulator" | "gemini" | "custom" | "vertex"
    model: str
    base_url: str | None
    emulator: EmulatorHandle | None = None

    @property
    def offline(self) -> bool:
        return self.kind == "emulator"

    def describe(self) -> str:
        where = {
            "emulator": f"offline Gemini emulator at {self.base_url}",
            "gemini": "real Gemini API (GOOGLE_API_KEY)",
            "custom": f"Gemini-compatible endpoint {self.base_url} (GOOGLE_GEMINI_BASE_URL)",
            "vertex": "Vertex AI (GOOGLE_GENAI_USE_VERTEXAI)"
            + (f" at {self.base_url}" if self.base_url else ""),
        }[self.kind]
        return f"Backend: {where} · model {self.model}"


def model_name() -> str:
    """The one place the model name comes from."""
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def choose_backend() -> Backend:
    """Decide (and, offline, start the emulator) without printing anything."""
    global _emulator
    env = os.environ
    model = model_name()
    base_url = env.get("GOOGLE_GEMINI_BASE_URL")
    if _emulator is not None and _emulator.running and base_url == _emulator.url:
        return Backend("emulator", model, base_url, _emulator)
    if _truthy(env.get("GOOGLE_GENAI_USE_VERTEXAI")):
        return Backend("vertex", model, env.get("GOOGLE_VERTEX_BASE_URL"))
    if env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY"):
        return Backend("custom" if base_url else "gemini", model, base_url)
    _emulator = start_emulator()
    env["GOOGLE_GEMINI_BASE_URL"] = _emulator.url
    env["GOOGLE_API_KEY"] = PLACEHOLDER_KEY
    return Backend("emulator", model, _emulator.url, _emulator)


def versions() -> dict[str, str]:
    return {name: version(name) for name in VERIFIED_VERSIONS}


def setup(*, quiet: bool = False) -> Backend:
    """Call once at the top of a notebook. Never prints a key."""
    # Imported here, not at the top: `python -m workshop.pilot` imports this package first.
    from . import pilot

    pilot.record_setup()  # a facilitator's pilot times the lesson from here; off under tests and CI
    backend = choose_backend()
    if not quiet:
        installed = versions()
        pins = " · ".join(f"{name} {v}" for name, v in installed.items())
        print(f"{backend.describe()} · {pins}")
        drift = [f"{n} {v} (verified with {VERIFIED_VERSIONS[n]})"
                 for n, v in installed.items() if v != VERIFIED_VERSIONS[n]]
        if drift:
            print("  Warning: not the verified versions: " + ", ".join(drift))
        if backend.offline:
            print(f"  Switch: set GOOGLE_API_KEY (or Vertex AI settings) before starting "
                  f"Jupyter for real Gemini; {MODEL_ENV} picks the model.")
    return backend
