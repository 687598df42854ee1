"""The type stubs describe exactly the extension module's public surface."""

from __future__ import annotations

import ast
import pathlib

import argen
from argen import _argen

STUB = pathlib.Path(__file__).resolve().parents[1] / "argen" / "_argen.pyi"


def stub_names():
    tree = ast.parse(STUB.read_text())
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    names.discard("ArrayLike")
    return names, members


def test_stub_lists_every_public_name():
    names, _ = stub_names()
    public = {n for n in dir(_argen) if not n.startswith("_")} | {"__version__"}
    assert names == public


def test_stub_lists_every_method():
    _, members = stub_names()
    for cls, methods in members.items():
        real = {n for n in dir(getattr(_argen, cls)) if not n.startswith("_")}
        assert methods - {"__init__", "__eq__", "__hash__"} == real, cls


def test_everything_is_documented():
    for name in dir(_argen):
        obj = getattr(_argen, name)
        if name.startswith("_") or isinstance(obj, (int, str)):
            continue
        assert obj.__doc__, name
        if isinstance(obj, type):
            for m in dir(obj):
                if not m.startswith("_"):
                    assert getattr(obj, m).__doc__, f"{name}.{m}"
    assert argen.__doc__ and argen.errors.__doc__
    for cls in argen.errors.__all__:
        assert getattr(argen.errors, cls).__doc__, cls
