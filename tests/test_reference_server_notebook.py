"""Notebook 05 builds the reference endpoint step by step; the package is its runnable version.

The code a reader copies from the notebook and the package's code must stay the same: this test
compares their syntax trees (docstrings aside), definition by definition.
"""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "solutions" / "05_fastapi_sse_endpoint.ipynb"
PACKAGE = ROOT / "reference_server"

SHARED = {
    "errors.py": ["STREAM_ERRORS", "ERROR_CODE_CLASSES", "classify_error_code", "classify_exception",
                  "error_body", "error_frame", "api_error"],
    "messages.py": ["MAX_BODY_BYTES", "MessageIn", "read_message"],
    "streaming.py": ["_END", "in_own_task", "sse_frames"],
    "auth.py": ["make_current_user"],
    "agent.py": ["FORECASTS", "get_weather"],
}


def _strip_docstrings(node: ast.AST) -> ast.AST:
    for child in ast.walk(node):
        body = getattr(child, "body", None)
        if (isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            child.body = body[1:] or [ast.Pass()]
    return node


def _definitions(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = ast.dump(_strip_docstrings(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = ast.dump(node.value)
    return found


def notebook_definitions() -> dict[str, str]:
    found: dict[str, str] = {}
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            tree = compile(source, "<cell>", "exec",
                           flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            found.update(_definitions(tree))  # a later definition wins, as when run
    return found


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in SHARED.items() for n in names])
def test_notebook_and_package_define_the_same_code(module, name):
    package = _definitions(ast.parse((PACKAGE / module).read_text()))
    notebook = notebook_definitions()
    assert name in notebook, f"notebook 05 no longer defines {name}"
    assert notebook[name] == package[name], (
        f"{name}: notebook 05 and reference_server/{module} differ; change both together")
