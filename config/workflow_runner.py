"""The workflow sandbox as the SDK ships it, without the round trips into it that our data converter makes idle.

For every payload of every activation the SDK asks the sandbox which serialization context applies (and which
external-storage context), each time entering the sandbox's importer and compiling a line of source: 14% of
the worker's interpreter on the proposal benchmark (py-spy, 2026-12-03), more than the workflow code itself.
The answer only matters to a converter that changes with the context or stores payloads elsewhere; ours (the
pydantic converter, no codec) does neither, so the runner answers without going in. The sandbox's
restrictions, its imports and the workflow code it runs are untouched."""

from dataclasses import dataclass
from functools import lru_cache
from types import CodeType
from typing import Any

from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    WorkflowSerializationContext,
)
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance

_PROBES: list[SerializationContext] = [
    WorkflowSerializationContext(namespace="probe", workflow_id="probe"),
    ActivitySerializationContext(namespace="probe", activity_id="probe", activity_type="probe",
                                 activity_task_queue="probe", workflow_id="probe", workflow_type="probe",
                                 is_local=False),
]


def ignores_context(converter: DataConverter) -> bool:
    """Whether `converter` serializes the same whatever the context: each context gives back the converter
    itself, and nothing goes to external storage."""
    return converter.external_storage is None and all(converter.with_context(p) is converter for p in _PROBES)


@lru_cache(maxsize=256)
def _compiled(code: str) -> CodeType:
    """The sandbox runs a handful of fixed source lines; compile each once, not at every call."""
    return compile(code, "<workflow sandbox>", "exec")


class _ContextFreeInstance(_Instance):
    def _run_code(self, code: str, **extra_globals: Any) -> None:
        super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]  # exec takes code objects

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        return None  # the context-free converter, which is what any context would give

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)  # no external storage to pass it to


@dataclass(frozen=True)
class ContextFreeSandboxRunner(SandboxedWorkflowRunner):
    """The sandboxed runner for a worker whose data converter `ignores_context`."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(det, self.runner_class, self.restrictions)


def workflow_runner(converter: DataConverter) -> SandboxedWorkflowRunner:
    """The runner for a worker with this converter: the shortcut only when it changes nothing."""
    return ContextFreeSandboxRunner() if ignores_context(converter) else SandboxedWorkflowRunner()
