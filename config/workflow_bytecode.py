"""Bytecode for the workflow modules, so the workflow sandbox does not compile them for every workflow.

The sandbox imports a workflow's module (and the modules beside it that are not passed through) afresh for each
workflow it starts. Python keeps no bytecode when PYTHONDONTWRITEBYTECODE is set, as this machine and many
container images set it, so every start compiled those modules from source: ~20 ms of the worker's interpreter
per proposal workflow (py-spy on bench.proposals). The import system still reads bytecode that exists, so
compiling once when a worker starts is enough."""

import compileall
import sys
from collections.abc import Iterable
from pathlib import Path


def compile_workflow_modules(workflows: Iterable[type]) -> None:
    """Write bytecode beside the source of each workflow's package (skipping what is up to date), where Python
    would have written it itself; a read-only tree leaves the sandbox compiling, as before."""
    folders = {Path(module.__file__).parent for cls in workflows
               if (module := sys.modules.get(cls.__module__)) is not None and module.__file__}
    for folder in sorted(folders):
        compileall.compile_dir(folder, maxlevels=0, quiet=2)
