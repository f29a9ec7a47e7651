"""The reference server's agent: one assistant with one deterministic tool."""

from __future__ import annotations

import os

from google.adk.agents import Agent
from google.adk.models import BaseLlm

DEFAULT_MODEL = "gemini-3.5-flash"  # google-adk 2.13's own default for LlmAgent
MODEL_ENV = "WORKSHOP_MODEL"


def model_name() -> str:
    """The model the server asks for: ``WORKSHOP_MODEL``, else google-adk's default."""
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL

INSTRUCTION = (
    "You are a helpful assistant. Answer clearly and briefly. "
    "When the user asks about the weather somewhere, call get_weather."
)

FORECASTS = {
    "paris": ("Sunny", 21),
    "london": ("Light rain", 14),
    "tokyo": ("Cloudy", 18),
    "new york": ("Clear", 16),
}


def get_weather(city: str) -> dict:
    """Get today's weather forecast for a city.

    Args:
        city: The city's name, e.g. "Paris".

    Returns:
        The city, a short forecast and the temperature in degrees Celsius.
    """
    forecast, temperature_c = FORECASTS.get(city.strip().lower(), ("Partly cloudy", 19))
    return {"city": city, "forecast": forecast, "temperature_c": temperature_c}


def build_agent(model: str | BaseLlm | None = None) -> Agent:
    """The agent the reference server serves.

    ``model``: a model name, or a model object such as ``Gemini(model=..., retry_options=...)``
    (the reference server passes one with its retry options)."""
    return Agent(
        name="assistant",
        model=model or model_name(),
        instruction=INSTRUCTION,
        tools=[get_weather],
    )
