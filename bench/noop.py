"""The ceiling benchmarks compare against: a workflow running N activities in sequence that do nothing. Kept
in a module of its own, importing only temporalio, so the workflow sandbox loads it cleanly."""

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
