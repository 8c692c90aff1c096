"""The plan format: the shipped plans validate, and a faulty plan gets every fault reported with its file,
step id and field, the way `starter.py plans validate` shows them."""

from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from config.plans import PlanError, PlanFault, load_plan, load_plans, plan_json_schema, validate_plans
from models.plans import TEMPLATE_FIELDS, Plan, PlanType, Reentry, WaitEvent, WaitStep


def plan_data(**change: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1, "id": "test-plan", "version": 1, "name": "Test plan", "type": "connection",
        "steps": [
            {"id": "send-intro", "type": "text", "body": "Hi {{ contact.first_name | fallback('there') }}"},
            {"id": "pause", "type": "wait", "duration": "1d"},
            {"id": "finish", "type": "end"},
        ],
    }
    data.update(change)
    return data


def write(tmp_path: Path, data: dict[str, Any] | str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def where(faults: list[PlanFault]) -> set[tuple[str | None, str]]:
    return {(fault.step_id, fault.field) for fault in faults}


def test_the_shipped_plans_validate() -> None:
    plans, faults = load_plans()
    assert faults == []
    assert {plan_id: plan.type for plan_id, plan in plans.items()} == {
        "web-lead-connection": PlanType.CONNECTION,
        "estimate-follow-up": PlanType.CONVERSION,
        "post-job-retention": PlanType.RETENTION,
    }
    connection = load_plan("web-lead-connection")
    assert connection.settings.next_plan == "estimate-follow-up"
    assert connection.settings.business_hours.end == time(18, 0)
    assert connection.steps[connection.step_index("wait-for-reply")] == WaitStep(
        id="wait-for-reply", until_event=WaitEvent.REPLY, timeout=timedelta(days=1), business_hours=True)
    assert load_plan("estimate-follow-up").settings.reentry is Reentry.ALWAYS


def test_a_plan_travels_as_workflow_input_unchanged() -> None:
    plan = load_plan("post-job-retention")
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert plan.step_index("finish") == len(plan.steps) - 1
    with pytest.raises(KeyError, match="no step nope"):
        plan.step_index("nope")


def test_every_fault_in_one_file_is_reported_with_its_step_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, plan_data(
        settings={"next_plan": "no-such-plan", "quiet_hours": {"start": "07:00"}},
        steps=[
            {"id": "send-intro", "type": "text", "body": "Hi {{ contact.frist_name }}"},
            {"id": "greet", "type": "email", "subject": "Hello {{ contact.first_name }}", "body": "{% if %}"},
            {"id": "ping", "type": "text", "bdy": "typo in the key"},
            {"id": "odd", "type": "fax"},
            {"id": "wait-for-city", "type": "wait", "until_field": "contact.city"},
            {"id": "both", "type": "wait", "duration": "1d", "until_time": "09:00"},
            {"id": "hook", "type": "webhook", "url": "ftp://example.com", "headers": {"X-Key": "{{ acount.id }}"}},
            {"id": "check", "type": "branch", "when": [{"field": "contact.state", "op": "eq", "value": "TX"}],
             "then": "nowhere"},
            {"id": "hand-off", "type": "start_plan", "plan": "missing-plan"},
        ]))
    faults = validate_plans([path])
    assert where(faults) == {
        (None, "settings.quiet_hours.start"),
        (None, "settings.next_plan"),
        ("send-intro", "body"),
        ("greet", "subject"),
        ("greet", "body"),
        ("ping", "body"),
        ("ping", "bdy"),
        ("odd", "type"),
        ("wait-for-city", "until_field"),
        ("both", "until_time"),
        ("hook", "url"),
        ("hook", "headers.X-Key"),
        ("check", "then"),
        ("hand-off", "plan"),
    }
    text = {str(fault) for fault in faults}
    assert f"{path}: step send-intro, body: unknown token contact.frist_name (did you mean contact.first_name?)" \
        in text
    assert f"{path}: step ping, bdy: unknown field" in text
    assert f"{path}: step check, then: no step with id nowhere" in text
    assert f"{path}: step hand-off, plan: no plan with id missing-plan among the loaded plans" in text
    assert f"{path}: settings.next_plan: no plan with id no-such-plan among the loaded plans" in text
    messages = {(fault.step_id, fault.field): fault.message for fault in faults}
    assert messages["greet", "subject"].startswith("contact.first_name may be empty: give a fallback")
    assert messages["greet", "body"].startswith("template line 1:")
    assert messages["wait-for-city", "until_field"].startswith("contact.city is not a date field")
    assert "exactly one of duration, until_time, until_field, until_event (given: duration, until_time)" in \
        messages["both", "until_time"]
    assert "TCPA" in messages[None, "settings.quiet_hours.start"]
    assert "unknown step type 'fax'" in messages["odd", "type"]
    # The webhook's header token is checked even though its URL is refused.
    assert (f"{path}: step hook, headers.X-Key: unknown token acount.id (did you mean account.id?)") in text
    plans, _ = load_plans([path])
    assert plans == {}  # a plan with any fault never runs


def test_yaml_syntax_faults_give_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "schema_version: 1\nid: broken\nsteps:\n  - id: a\n    type: end\n   bad: [\n")
    [fault] = validate_plans([path])
    assert fault.step_id is None
    assert str(fault).startswith(f"{path}: YAML syntax, line ")


def test_a_key_given_twice_is_a_fault_not_an_overwrite(tmp_path: Path) -> None:
    text = yaml.safe_dump(plan_data(), sort_keys=False).replace("type: text\n", "type: text\n  body: first\n", 1)
    [fault] = validate_plans([write(tmp_path, text)])
    assert "key 'body' is given twice" in fault.message and "line 10" in fault.message


def test_times_written_bare_in_yaml_are_times(tmp_path: Path) -> None:
    """YAML 1.1 reads 21:00 as the base-60 integer 1260; a plan means nine in the evening."""
    text = yaml.safe_dump(plan_data(), sort_keys=False) + "settings:\n  quiet_hours: {start: 08:30, end: 21:00}\n"
    plans, faults = load_plans([write(tmp_path, text)])
    assert faults == []
    assert plans["test-plan"].settings.quiet_hours.end == time(21, 0)


def test_duplicate_ids_are_named(tmp_path: Path) -> None:
    steps = plan_data()["steps"] + [{"id": "pause", "type": "end"}]
    first = write(tmp_path, plan_data(steps=steps), "first.yaml")
    second = write(tmp_path, plan_data(), "second.yaml")
    faults = validate_plans([first, second])
    assert [str(fault) for fault in faults] == [
        f"{first}: step pause, id: duplicate step id pause (also step 2)",
        f"{second}: id: plan id test-plan is also the id of {first}",
    ]


def test_steps_are_named_by_position_when_they_have_no_id(tmp_path: Path) -> None:
    skip = {"id": "skip", "type": "branch", "when": [{"field": "contact.city", "op": "empty"}], "then": "finish"}
    steps = [skip, *plan_data()["steps"], {"type": "text", "body": "{{ contact.cty }}"}]
    faults = validate_plans([write(tmp_path, plan_data(steps=steps))])
    assert [str(fault).split(": ", 1)[1] for fault in faults] == [
        "step #5, id: required", "step #5, body: unknown token contact.cty (did you mean contact.city?)"]


def test_a_jump_back_without_a_wait_is_refused(tmp_path: Path) -> None:
    steps = [{"id": "nag", "type": "text", "body": "{{ account.name }} again"},
             {"id": "again", "type": "branch", "when": [{"field": "contact.smsok", "op": "eq", "value": "true"}],
              "then": "nag"}]
    [fault] = validate_plans([write(tmp_path, plan_data(steps=steps))])
    assert (fault.step_id, fault.field) == ("again", "then")
    assert "no wait in between" in fault.message


@pytest.mark.parametrize(("wait", "field", "message"), [
    ({"duration": "1d", "until_event": "reply"}, "until_event", "exactly one of"),
    ({}, "", "given: none"),
    ({"duration": "1d", "timeout": "2d"}, "timeout", "applies only to until_event"),
    ({"duration": "1d", "offset": "-1d"}, "offset", "applies only to until_field"),
    ({"duration": "-1h"}, "duration", "must be positive"),
])
def test_a_wait_takes_exactly_one_kind(wait: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        WaitStep.model_validate({"id": "w", "type": "wait", **wait})
    [error] = raised.value.errors()
    assert ".".join(map(str, error["loc"])) == field
    assert message in error["msg"]


@pytest.mark.parametrize(("written", "meant"), [
    ("2h30m", timedelta(hours=2, minutes=30)), ("1w", timedelta(weeks=1)), ("3d", timedelta(days=3)),
    ("P3DT4H", timedelta(days=3, hours=4)), (90, timedelta(seconds=90)),
])
def test_durations_read_as_admins_write_them(written: object, meant: timedelta) -> None:
    assert WaitStep.model_validate({"id": "w", "duration": written}).duration == meant
    assert WaitStep.model_validate({"id": "w", "until_field": "contact.appointment_at", "offset": "-1d"}).offset \
        == timedelta(days=-1)


def test_load_plan_refuses_a_faulty_or_unknown_plan(tmp_path: Path) -> None:
    path = write(tmp_path, plan_data(steps=[{"id": "hi", "type": "text", "body": "{{ contact.nope }}"}]))
    with pytest.raises(PlanError, match=r"plan test-plan does not validate:\n.*step hi, body: unknown token"):
        load_plan("test-plan", [path])
    with pytest.raises(PlanError, match="no plan with id other"):
        load_plan("other", [path])


def test_the_json_schema_has_every_step_type() -> None:
    schema = plan_json_schema()
    mapping = schema["properties"]["steps"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(TEMPLATE_FIELDS) == {
        "email", "text", "notify_user", "assign_user", "wait", "set_step", "webhook", "sheet_row",
        "mailbox_power", "clubready_push", "branch", "end", "start_plan"}
    assert schema["$defs"]["WaitStep"]["additionalProperties"] is False
    assert "duration" in schema["$defs"]["WaitStep"]["properties"]["duration"]["anyOf"][0]["description"]
