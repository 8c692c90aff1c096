"""What a benchmark's runs spent their time on, read back from their Temporal histories: activities by name,
attempts and the errors retried, and how long each workflow task and activity waited to start and ran. A
benchmark prints it beside its figures, so a slow ratio says where it is slow."""

import asyncio
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

WORKFLOW_TASK = "workflow task"


@dataclass
class Shape:
    runs: int = 0
    activities: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # retried attempts by error type
    waited: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # seconds, by task name
    ran: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # the last attempt's


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(values: list[float]) -> str:
    """"p50/p95" in milliseconds."""
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f}/{percentile(values, 0.95) * 1000:.0f}"


async def read_shape(client: Client, runs: Iterable[tuple[str, str | None]], concurrency: int = 16) -> Shape:
    """The runs (workflow id, run id or None for the latest) as their histories tell it."""
    runs = list(runs)
    shape, gate = Shape(runs=len(runs)), asyncio.Semaphore(concurrency)

    async def read(workflow_id: str, run_id: str | None) -> None:
        async with gate:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        names: dict[int, str] = {}
        scheduled: dict[int, float] = {}
        started: dict[int, float] = {}
        for event in history.events:
            at = event.event_time.ToDatetime().timestamp()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = at
                shape.activities[names[event.event_id]] += 1
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                shape.attempts += attributes.attempt
                if attributes.attempt > 1:  # the failures of earlier attempts are in last_failure only
                    failure = attributes.last_failure
                    shape.failures[failure.application_failure_info.type or failure.message[:60]] += \
                        attributes.attempt - 1
                started[attributes.scheduled_event_id] = at
                shape.waited[names[attributes.scheduled_event_id]].append(at - scheduled[attributes.scheduled_event_id])
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                done = event.activity_task_completed_event_attributes.scheduled_event_id
                shape.ran[names[done]].append(at - started[done])
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                scheduled[event.event_id] = at
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                task = event.workflow_task_started_event_attributes.scheduled_event_id
                started[event.event_id] = at
                shape.waited[WORKFLOW_TASK].append(at - scheduled[task])
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                began = started[event.workflow_task_completed_event_attributes.started_event_id]
                shape.ran[WORKFLOW_TASK].append(at - began)

    await asyncio.gather(*(read(w, r) for w, r in runs))
    return shape


def timings(label: str, shape: Shape) -> str:
    """One line: each task's waiting-to-start and running p50/p95 in ms."""
    return f"    {label}: " + "   ".join(f"{name} {ms(shape.waited[name])} | {ms(shape.ran[name])}"
                                          for name in shape.ran)
