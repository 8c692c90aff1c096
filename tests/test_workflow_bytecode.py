"""A worker leaves bytecode for its workflow modules, so the workflow sandbox, which imports them afresh for each
workflow, loads them instead of compiling them every time (PYTHONDONTWRITEBYTECODE keeps Python from writing it)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from config.workflow_bytecode import compile_workflow_modules


def load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_bytecode_is_written_for_every_module_beside_a_workflow_and_then_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "policies.py").write_text("TIMEOUT = 30\n")
    (folder / "greeting.py").write_text("class GreetingWorkflow:\n    pass\n")
    module = load(folder / "greeting.py", "flows_greeting", monkeypatch)
    cached = [Path(importlib.util.cache_from_source(str(folder / f))) for f in ("greeting.py", "policies.py")]
    assert not any(c.exists() for c in cached)  # the flag held: the import wrote nothing

    compile_workflow_modules([module.GreetingWorkflow])  # type: ignore[attr-defined]

    assert all(c.exists() for c in cached)
    # The import system takes that bytecode instead of compiling the source.
    loader = importlib.machinery.SourceFileLoader("flows_greeting", str(folder / "greeting.py"))
    monkeypatch.setattr(loader, "source_to_code", lambda *a, **k: pytest.fail("compiled from source"))
    assert loader.get_code("flows_greeting") is not None


def test_a_tree_it_cannot_write_to_is_left_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "locked.py").write_text("class LockedWorkflow:\n    pass\n")
    module = load(folder / "locked.py", "flows_locked", monkeypatch)
    (folder / "__pycache__").write_text("")  # a file where the cache folder would go: nothing can be written

    compile_workflow_modules([module.LockedWorkflow])  # type: ignore[attr-defined]

    assert (folder / "__pycache__").read_text() == ""
