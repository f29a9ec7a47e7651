"""The reference server is product: copied alone into a fresh project, it must work with pip
packages only. Nothing in it may import the workshop (the harness: emulator, setup, checks)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reference_server"
# Run first in a child interpreter: any import of the workshop package then fails.
BLOCK_WORKSHOP = "import sys; sys.modules['workshop'] = None\n"


def test_no_module_of_the_server_imports_the_workshop():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                          for name in names if name.split(".")[0] == "workshop"]
    assert offenders == []


def _copy_alone(tmp_path: Path) -> Path:
    """The package copied into an empty folder outside the repository, as a reader copies it."""
    project = tmp_path / "my_service"
    shutil.copytree(PACKAGE, project / "reference_server",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return project


def test_every_module_imports_with_the_workshop_blocked(tmp_path):
    project = _copy_alone(tmp_path)
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    code = BLOCK_WORKSHOP + "import importlib, reference_server\n" + "".join(
        f"importlib.import_module('reference_server.{name}')\n" for name in modules) + (
        "print(reference_server.__file__)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(project)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(project / "reference_server" / "__init__.py")


def test_the_copy_alone_serves_a_streamed_turn(tmp_path, emulator):
    """``python -m reference_server`` from the copy (the workshop blocked), pointed at a
    Gemini-compatible endpoint (here the emulator): a session, a streamed answer, ``done``."""
    project = _copy_alone(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(project), "PORT": "0", "PYTHONUNBUFFERED": "1",
           "WORKSHOP_TOKENS": "tok-copy:carol", "DATABASE_URL": f"sqlite:///{tmp_path}/s.db",
           "LOG_LEVEL": "info"}
    code = BLOCK_WORKSHOP + "import runpy; runpy.run_module('reference_server', run_name='__main__')"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if found := re.search(r"Uvicorn running on (http://\S+)", line):
                url = found.group(1)
        assert url, "".join(lines)
        auth = {"Authorization": "Bearer tok-copy"}
        with httpx.Client(base_url=url, timeout=30) as client:
            session_id = client.post("/api/sessions", headers=auth).json()["session_id"]
            with client.stream("POST", f"/api/sessions/{session_id}/messages", headers=auth,
                               json={"text": "Count to 5"}) as response:
                assert response.status_code == 200
                body = response.read().decode()
        assert "event: done" in body and "1, 2, 3, 4, 5" in body.replace("\r", "")
        assert (tmp_path / "s.db").exists()  # sessions went where DATABASE_URL said
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
