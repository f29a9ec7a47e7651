"""workshop.setup(): the right backend for the environment, one clear line, no key echoed."""

import re
from importlib.metadata import version
from pathlib import Path

import pytest

import workshop
from workshop import backend as backend_module

ROOT = Path(__file__).resolve().parents[1]
ENV = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI",
       "GOOGLE_VERTEX_BASE_URL", "WORKSHOP_MODEL")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV:
        # setenv first so monkeypatch records the original state: setup() writes os.environ
        # directly, and a bare delenv of an absent variable would not undo that afterwards.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(backend_module, "_emulator", None)
    yield monkeypatch
    if backend_module._emulator is not None:
        backend_module._emulator.stop()


def test_no_key_starts_the_emulator_and_points_the_sdk_at_it(clean_env, capsys):
    backend = workshop.setup()
    out = capsys.readouterr().out
    assert backend.kind == "emulator" and backend.offline and backend.emulator.running
    import os
    assert os.environ["GOOGLE_GEMINI_BASE_URL"] == backend.base_url == backend.emulator.url
    assert os.environ["GOOGLE_API_KEY"] == backend_module.PLACEHOLDER_KEY
    assert "offline Gemini emulator" in out and "GOOGLE_API_KEY" in out
    assert f"google-adk {version('google-adk')}" in out and f"google-genai {version('google-genai')}" in out
    again = workshop.setup(quiet=True)
    assert again.emulator is backend.emulator  # re-running the setup cell reuses it


def test_a_key_means_real_gemini_and_is_never_printed(clean_env, capsys):
    clean_env.setenv("GOOGLE_API_KEY", "AIza-secret-value")
    backend = workshop.setup()
    out = capsys.readouterr().out
    assert backend.kind == "gemini" and backend.emulator is None and backend_module._emulator is None
    assert "secret" not in out and "real Gemini API" in out


def test_a_key_with_a_base_url_is_a_custom_endpoint(clean_env, capsys):
    clean_env.setenv("GEMINI_API_KEY", "k")
    clean_env.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:8089")
    backend = workshop.setup()
    assert backend.kind == "custom" and backend.base_url == "http://127.0.0.1:8089"
    assert "http://127.0.0.1:8089" in capsys.readouterr().out


def test_vertex_settings_mean_vertex(clean_env):
    clean_env.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    assert workshop.setup(quiet=True).kind == "vertex"


def test_the_model_name_comes_from_one_place(clean_env):
    assert workshop.model_name() == workshop.DEFAULT_MODEL
    clean_env.setenv("WORKSHOP_MODEL", "gemini-2.5-pro")
    clean_env.setenv("GOOGLE_API_KEY", "k")
    assert workshop.setup(quiet=True).model == "gemini-2.5-pro"


def requirement_lines(path: Path = ROOT / "requirements.txt") -> list[str]:
    """The requirement lines of ``path`` and of the files it includes (``-r``), comments dropped."""
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def test_installed_versions_are_the_pinned_and_verified_ones():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", "\n".join(requirement_lines()), re.MULTILINE))
    for name, verified in workshop.VERIFIED_VERSIONS.items():
        assert pins[name] == verified, f"requirements.txt pins {name}=={pins[name]}, notebooks verified with {verified}"
        assert version(name) == verified, f"installed {name} {version(name)} is not the pinned {verified}"


def test_every_direct_requirement_is_pinned_exactly():
    for line in requirement_lines():
        if not line.startswith("-e"):
            assert re.fullmatch(r"[A-Za-z0-9_.\[\],-]+==[\w.]+", line), f"not pinned with ==: {line}"
