"""The ceilings benchmarks compare against: a workflow running N activities in sequence that do nothing, and a
parent fanning out such workflows as children with bounded concurrency (the royalty run's shape). Kept in a
module of its own, importing only temporalio, so the workflow sandbox loads it cleanly."""

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def noop_step(n: int) -> int:
    return n


@workflow.defn
class NoopWorkflow:
    @workflow.run
    async def run(self, steps: int) -> int:
        for n in range(steps):
            await workflow.execute_activity(noop_step, n, start_to_close_timeout=timedelta(seconds=30))
        return steps


@dataclass(frozen=True)
class FanOut:
    """The shape of a fan-out: `children` child workflows, at most `concurrency` at a time, each running
    `child_steps` activities; the parent runs `steps_before` activities before the fan-out and `steps_after`
    after it (a royalty run: load the plan, then save the run)."""

    children: int
    concurrency: int
    child_steps: int
    steps_before: int = 1
    steps_after: int = 1


@workflow.defn
class NoopFanOutWorkflow:
    """A royalty run's shape with nothing in it: the same bounded fan-out of child workflows, each a
    NoopWorkflow, started the way RoyaltyRunWorkflow starts its children."""

    def __init__(self) -> None:
        self._running = 0

    @workflow.run
    async def run(self, shape: FanOut) -> int:
        for n in range(shape.steps_before):
            await workflow.execute_activity(noop_step, n, start_to_close_timeout=timedelta(seconds=30))
        children = []
        for n in range(shape.children):
            await workflow.wait_condition(lambda: self._running < shape.concurrency)
            self._running += 1
            children.append(asyncio.create_task(self._child(n, shape.child_steps)))
        await asyncio.gather(*children)
        for n in range(shape.steps_after):
            await workflow.execute_activity(noop_step, n, start_to_close_timeout=timedelta(seconds=30))
        return shape.children

    async def _child(self, n: int, steps: int) -> None:
        try:
            await workflow.execute_child_workflow(NoopWorkflow.run, steps, id=f"{workflow.info().workflow_id}:{n}")
        finally:
            self._running -= 1


@workflow.defn
class NoopTimerWorkflow:
    """An enrollment's shape with nothing in it: `steps` no-op activities, then a timer of `days`."""

    @workflow.run
    async def run(self, steps: int, days: int) -> int:
        for n in range(steps):
            await workflow.execute_activity(noop_step, n, start_to_close_timeout=timedelta(seconds=30))
        await workflow.sleep(timedelta(days=days))
        return steps
