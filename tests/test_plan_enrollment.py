"""Enrolling contacts (dispatch.enroll_contact) on the time-skipping test server: the plan file as it is now
travels with each enrollment, so an edit leaves running ones on their version; the re-entry policies `once`
and `one_active` (`always` restarts a run, which tests/test_plan_e2e.py checks on the dev server); a plan
that does not validate is never started."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from config.settings import Settings
from dispatch import Dispatched, PlanNotEnrollable, enroll_contact
from models.enrollments import EnrollmentResult
from tests.plan_stubs import PlanWorld, contact
from workflows.action_plan import ActionPlanWorkflow


def write_plan(directory: Path, version: int, greeting: str, **settings: Any) -> None:
    (directory / "check-in.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "check-in", "version": version, "name": "Check-in", "type": "retention",
        "settings": settings, "steps": [
            {"id": "hello", "type": "email", "subject": greeting, "body": "<p>Hello</p>"},
            {"id": "a-day", "type": "wait", "duration": "1d"},
            {"id": "again", "type": "email", "subject": f"{greeting}, again", "body": "<p>Hello again</p>"}]}))


class Enrollments:
    def __init__(self, env: WorkflowEnvironment, settings: Settings, engine: Engine, world: PlanWorld) -> None:
        self.env, self.settings, self.engine, self.world = env, settings, engine, world
        self.account = "acme-austin"

    def worker(self) -> Worker:
        return Worker(self.env.client, task_queue=self.settings.task_queue, workflows=[ActionPlanWorkflow],
                      activities=self.world.activities(), activity_executor=ThreadPoolExecutor(max_workers=10))

    async def enroll(self, contact_id: str, trigger: str | None = None) -> Dispatched:
        return await enroll_contact(self.env.client, self.settings, self.engine, self.account, contact_id,
                                    "check-in", "test", trigger=trigger)

    async def finished(self, dispatched: Dispatched) -> EnrollmentResult:
        """The enrollment's result, the test server's clock skipping meanwhile (a handle got by id, unlike one
        from start_workflow, does not unlock it by itself)."""
        assert dispatched.workflow_id is not None
        handle = self.env.client.get_workflow_handle(dispatched.workflow_id, run_id=dispatched.run_id,
                                                     result_type=EnrollmentResult)
        async with self.env.time_skipping_unlocked():  # type: ignore[attr-defined]
            return await handle.result()

    def subjects(self) -> list[str]:
        return [message.subject for message in self.world.of("email")]


@pytest.fixture
def enrollments(time_skipping_env: WorkflowEnvironment, settings: Settings, engine: Engine,
                tmp_path: Path) -> Enrollments:
    settings = settings.model_copy(update={"plans_dir": tmp_path})
    world = PlanWorld(engine, settings)
    for _ in range(4):
        person = contact(f"C-{uuid.uuid4().hex[:8]}")
        world.contacts[person.id] = person
    return Enrollments(time_skipping_env, settings, engine, world)


def contacts(enrollments: Enrollments) -> list[str]:
    return list(enrollments.world.contacts)


async def test_an_edited_plan_applies_to_new_enrollments_only(enrollments: Enrollments) -> None:
    first, second = contacts(enrollments)[:2]
    write_plan(enrollments.settings.plans_dir, 1, "Welcome")
    async with enrollments.worker():
        running = await enrollments.enroll(first)
        write_plan(enrollments.settings.plans_dir, 2, "Hello from version 2")  # edited while `first` runs
        later = await enrollments.enroll(second)
        old, new = await enrollments.finished(running), await enrollments.finished(later)
    assert (old.plan_version, new.plan_version) == (1, 2)
    assert sorted(enrollments.subjects()) == sorted(["Welcome", "Welcome, again", "Hello from version 2",
                                                     "Hello from version 2, again"])


async def test_one_active_ignores_a_second_enrollment_while_one_runs(enrollments: Enrollments) -> None:
    who = contacts(enrollments)[0]
    write_plan(enrollments.settings.plans_dir, 1, "Welcome", reentry="one_active")
    async with enrollments.worker():
        first = await enrollments.enroll(who)
        second = await enrollments.enroll(who)
        assert (first.status, second.status) == ("accepted", "ignored")
        await enrollments.finished(first)
        third = await enrollments.enroll(who)  # the first has ended: a new run
        await enrollments.finished(third)
    assert third.status == "accepted" and enrollments.subjects().count("Welcome") == 2


async def test_once_never_enrolls_the_contact_again(enrollments: Enrollments) -> None:
    who = contacts(enrollments)[0]
    write_plan(enrollments.settings.plans_dir, 1, "Welcome", reentry="once")
    async with enrollments.worker():
        await enrollments.finished(await enrollments.enroll(who))
        again = await enrollments.enroll(who)
    assert again.status == "ignored" and "once" in (again.reason or "")
    assert enrollments.subjects() == ["Welcome", "Welcome, again"]


async def test_a_plan_that_does_not_validate_is_never_started(enrollments: Enrollments) -> None:
    (enrollments.settings.plans_dir / "check-in.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "check-in", "version": 1, "name": "Check-in", "type": "retention",
        "steps": [{"id": "hello", "type": "email", "subject": "Hi {{ contact.frist_name }}", "body": "x"}]}))
    with pytest.raises(PlanNotEnrollable, match=r"contact\.frist_name"):
        await enrollments.enroll(contacts(enrollments)[0])
    with pytest.raises(PlanNotEnrollable, match="no plan with id check-in"):
        (enrollments.settings.plans_dir / "check-in.yaml").unlink()
        await enrollments.enroll(contacts(enrollments)[0])
