"""The worker's workflow runner: the SDK's sandbox, answering the serialization-context questions itself only
for a data converter that ignores the answer; workflows run and are restricted as in the plain sandbox."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec, SerializationContext, WithSerializationContext
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError, SandboxedWorkflowRunner

from config.workflow_runner import ContextFreeSandboxRunner, ignores_context, workflow_runner


class Order(BaseModel):
    number: str
    lines: list[str]


@activity.defn
def count_lines(order: Order) -> Order:
    return Order(number=order.number, lines=[*order.lines, f"{len(order.lines)} lines"])


@workflow.defn(sandboxed=True)
class OrderWorkflow:
    @workflow.run
    async def run(self, order: Order) -> dict[str, Any]:
        counted = await workflow.execute_activity(count_lines, order, start_to_close_timeout=timedelta(seconds=10))
        try:
            open("/etc/hostname")  # noqa: SIM115, ASYNC230  # the sandbox must refuse I/O
            refused = False
        except RestrictedWorkflowAccessError:
            refused = True
        return {"order": counted, "io_refused": refused}


@dataclass(frozen=True)
class ContextCodec(PayloadCodec, WithSerializationContext):
    """A codec that would encrypt per workflow: it needs the context."""

    context: SerializationContext | None = None

    async def encode(self, payloads: Any) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Any) -> list[Payload]:
        return list(payloads)

    def with_context(self, context: SerializationContext) -> "ContextCodec":
        return ContextCodec(context)


def test_the_shortcut_is_taken_only_for_a_converter_that_ignores_the_context() -> None:
    assert ignores_context(pydantic_data_converter)
    assert isinstance(workflow_runner(pydantic_data_converter), ContextFreeSandboxRunner)
    context_aware = DataConverter(payload_converter_class=pydantic_data_converter.payload_converter_class,
                                  payload_codec=ContextCodec())
    assert not ignores_context(context_aware)
    assert type(workflow_runner(context_aware)) is SandboxedWorkflowRunner


async def test_a_workflow_runs_through_the_runner_with_its_models_and_the_sandbox_still_refuses_io(
        time_skipping_env: WorkflowEnvironment) -> None:
    env = time_skipping_env
    queue = f"runner-{uuid.uuid4()}"
    with ThreadPoolExecutor(max_workers=2) as executor:
        async with Worker(env.client, task_queue=queue, workflows=[OrderWorkflow], activities=[count_lines],
                          activity_executor=executor, workflow_runner=workflow_runner(env.client.data_converter)):
            result = await env.client.execute_workflow(
                OrderWorkflow.run, Order(number="1001", lines=["gutters", "windows"]), id=f"order-{uuid.uuid4()}",
                task_queue=queue, result_type=dict)
    assert Order.model_validate(result["order"]) == Order(number="1001", lines=["gutters", "windows", "2 lines"])
    assert result["io_refused"] is True
