"""Loads and validates action plans (config/plans/*.yaml). Validation reports every fault at once, each with
its file, step id and field: YAML syntax, the schema, template syntax, unknown tokens, empty tokens with no
fallback in a message, branch targets, waits on fields that are not dates, and plans that name other plans
not loaded. A plan with any fault is not loaded: it never runs half-checked."""

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.plan_context import DATE_TOKENS, KNOWN_TOKENS
from models.plan_templates import DATA_STEP_TYPES, TemplateFault, template_fault, undeclared, unguarded
from models.plans import REFERENCE_FAULT, Plan, reference_faults, step_templates

PLANS_DIR = Path(__file__).parent / "plans"


@dataclass(frozen=True)
class PlanFault:
    file: str
    step_id: str | None  # None for a fault outside the steps (header, settings, the file itself)
    field: str  # within the step, or within the plan when step_id is None; "" for the whole file or step
    message: str

    def __str__(self) -> str:
        where = [f"step {self.step_id}"] if self.step_id else []
        where += [self.field] if self.field else []
        return f"{self.file}: {', '.join(where)}: {self.message}" if where else f"{self.file}: {self.message}"


class PlanError(ValueError):
    """A plan that cannot be loaded: not found, or with faults (all of them in the message)."""


class _PlanLoader(yaml.SafeLoader):
    """YAML as admins mean it: 21:00 is a time (YAML 1.1 would read a base-60 integer, 1260) and a key given
    twice is a fault, not a silent overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str | int] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError("while reading a mapping", node.start_mark,
                                                        f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_PlanLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_PlanLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789"))
_PlanLoader.add_implicit_resolver(_FLOAT, re.compile(r"^[-+]?[0-9]*\.[0-9]+([eE][-+]?[0-9]+)?$"),
                                  list("-+0123456789."))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _field(location: Iterable[str | int]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _raw_id(raw: Any) -> str | None:
    step_id = raw.get("id") if isinstance(raw, dict) else None
    return step_id if isinstance(step_id, str) and step_id else None


def _raw_step_id(raw: Any, position: int) -> str:
    """A step's id for a fault, even when the step itself is faulty: its id if it has one, else its position."""
    return _raw_id(raw) or f"#{position + 1}"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        return f"unknown step type {error['input'].get('type')!r}; one of: {error['ctx']['expected_tags']}"
    if kind == "union_tag_not_found":
        return "a step needs a type"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _schema_faults(file: str, raw: dict[str, Any], error: ValidationError) -> Iterator[PlanFault]:
    """Pydantic's errors as plan faults: those within steps named by the step's id, without the type tag."""
    raw_steps = raw.get("steps") if isinstance(raw.get("steps"), list) else []
    for item in error.errors():
        if item["type"] == REFERENCE_FAULT:
            continue  # found on the steps as written, with those of plans the schema refused
        location = list(item["loc"])
        if len(location) >= 2 and location[0] == "steps" and isinstance(location[1], int):
            position = location[1]
            raw_step = raw_steps[position] if position < len(raw_steps) else None
            rest = location[2:]
            if rest and isinstance(raw_step, dict) and rest[0] == raw_step.get("type"):
                rest = rest[1:]
            if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
                rest = ["type"]
            yield PlanFault(file, _raw_step_id(raw_step, position), _field(rest), _message(item))
        else:
            yield PlanFault(file, None, _field(location), _message(item))


def _suggest(token: str) -> str:
    if "." not in token:
        return f"{token} is not a token: name one of its fields, e.g. {token}.first_name"
    close = difflib.get_close_matches(token, sorted(KNOWN_TOKENS), n=1)
    return f"unknown token {token}" + (f" (did you mean {close[0]}?)" if close else "")


def _template_faults(file: str, step_id: str, step: dict[str, Any]) -> Iterator[PlanFault]:
    for location, template in step_templates(step):
        field = _field(location)
        fault = template_fault(template)
        if fault is not None:
            yield PlanFault(file, step_id, field, fault)
            continue
        try:
            for token in sorted(undeclared(template)):
                yield PlanFault(file, step_id, field, _suggest(token))
            if step["type"] in DATA_STEP_TYPES:
                continue
            for token in sorted(unguarded(template)):
                yield PlanFault(file, step_id, field, f'{token} may be empty: give a fallback, e.g. '
                                                      f'{{{{ {token} | fallback("...") }}}}, or test it with '
                                                      f'{{% if {token} %}}')
        except TemplateFault as error:
            yield PlanFault(file, step_id, field, error.message)


def _token_faults(file: str, step_id: str, step: dict[str, Any]) -> Iterator[PlanFault]:
    """Tokens named outside templates: a wait's date field and a branch's fields."""
    until_field = step.get("until_field")
    if step["type"] == "wait" and isinstance(until_field, str) and until_field not in DATE_TOKENS:
        message = (f"{until_field} is not a date field; one of: {', '.join(sorted(DATE_TOKENS))}"
                   if until_field in KNOWN_TOKENS else _suggest(until_field))
        yield PlanFault(file, step_id, "until_field", message)
    conditions = step.get("when")
    if step["type"] == "branch" and isinstance(conditions, list):
        for position, condition in enumerate(conditions):
            field = condition.get("field") if isinstance(condition, dict) else None
            if isinstance(field, str) and field not in KNOWN_TOKENS:
                yield PlanFault(file, step_id, f"when[{position}].field", _suggest(field))


def _step_faults(file: str, raw_steps: list[Any]) -> Iterator[PlanFault]:
    """The faults of each step as written that the schema cannot see, whether or not the step is valid."""
    for position, raw in enumerate(raw_steps):
        if isinstance(raw, dict) and isinstance(raw.get("type"), str):
            step_id = _raw_step_id(raw, position)
            yield from _template_faults(file, step_id, raw)
            yield from _token_faults(file, step_id, raw)


@dataclass
class _Loaded:
    """One file as far as it could be read: its plan id (even if faulty) and, when it had no fault, its plan."""

    file: str
    plan_id: str | None
    raw: dict[str, Any]
    plan: Plan | None
    faults: list[PlanFault]


def _read(path: Path) -> _Loaded:
    file = _display(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_PlanLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return _Loaded(file, None, {}, None, [PlanFault(file, None, "", f"YAML syntax, {where}{error.problem}")])
    except (OSError, yaml.YAMLError) as error:
        return _Loaded(file, None, {}, None, [PlanFault(file, None, "", f"cannot read the plan: {error}")])
    if not isinstance(raw, dict):
        return _Loaded(file, None, {}, None, [PlanFault(file, None, "", "a plan file holds one mapping: "
                                                                        "schema_version, id, version, name, type, "
                                                                        "settings, steps")])
    faults: list[PlanFault] = []
    plan: Plan | None = None
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as error:
        faults.extend(_schema_faults(file, raw, error))
    raw_steps = raw["steps"] if isinstance(raw.get("steps"), list) else []
    faults.extend(_reference_faults(file, raw_steps))
    faults.extend(_step_faults(file, raw_steps))
    positions = {_raw_step_id(step, position): position for position, step in enumerate(raw_steps)}
    faults.sort(key=lambda fault: -1 if fault.step_id is None else positions.get(fault.step_id, len(positions)))
    return _Loaded(file, _raw_id(raw), raw, plan if not faults else None, faults)


def _reference_faults(file: str, raw_steps: list[Any]) -> Iterator[PlanFault]:
    """Duplicate step ids and branch targets, checked on the steps as written so a faulty step hides none."""
    written = [raw if isinstance(raw, dict) else {} for raw in raw_steps]
    for location, message in reference_faults(written):
        position = int(location[1])
        yield PlanFault(file, _raw_step_id(raw_steps[position], position), _field(location[2:]), message)


def _plan_references(loaded: _Loaded, plan_ids: set[str]) -> Iterator[PlanFault]:
    settings = loaded.raw.get("settings")
    next_plan = settings.get("next_plan") if isinstance(settings, dict) else None
    if isinstance(next_plan, str) and next_plan not in plan_ids:
        yield PlanFault(loaded.file, None, "settings.next_plan", f"no plan with id {next_plan} among the loaded plans")
    raw_steps = loaded.raw.get("steps")
    for position, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        target = raw.get("plan") if isinstance(raw, dict) and raw.get("type") == "start_plan" else None
        if isinstance(target, str) and target not in plan_ids:
            yield PlanFault(loaded.file, _raw_step_id(raw, position), "plan",
                            f"no plan with id {target} among the loaded plans")


def plan_files() -> list[Path]:
    return sorted(PLANS_DIR.glob("*.yaml"))


def _load_all(paths: Iterable[Path]) -> list[_Loaded]:
    """Every plan in `paths`, read and checked once for as long as no file changes: an enrollment loads its
    plan on every call, and reading and checking the plans costs ~90 ms of CPU each time."""
    return _load_unchanged(tuple(_fingerprint(path) for path in paths))


def _fingerprint(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return str(path), -1, -1  # read (and reported) as unreadable
    return str(path), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=32)
def _load_unchanged(files: tuple[tuple[str, int, int], ...]) -> list[_Loaded]:
    loaded = [_read(Path(path)) for path, _, _ in files]
    first: dict[str, str] = {}
    for entry in loaded:
        if entry.plan_id is None:
            continue
        if entry.plan_id in first:
            entry.faults.append(PlanFault(entry.file, None, "id", f"plan id {entry.plan_id} is also the id of "
                                                                  f"{first[entry.plan_id]}"))
        else:
            first[entry.plan_id] = entry.file
    for entry in loaded:
        entry.faults.extend(_plan_references(entry, set(first)))
        if entry.faults:
            entry.plan = None
    return loaded


def load_plans(paths: Iterable[Path] | None = None) -> tuple[dict[str, Plan], list[PlanFault]]:
    """Every plan in `paths` (default: the shipped plans) that has no fault, by id, and every fault found."""
    loaded = _load_all(plan_files() if paths is None else paths)
    plans = {entry.plan.id: entry.plan for entry in loaded if entry.plan is not None}
    return plans, [fault for entry in loaded for fault in entry.faults]


def validate_plans(paths: Iterable[Path] | None = None) -> list[PlanFault]:
    return load_plans(paths)[1]


def load_plan(plan_id: str, paths: Iterable[Path] | None = None) -> Plan:
    """One plan, checked against the others it may name. Raises PlanError listing all its faults."""
    loaded = _load_all(plan_files() if paths is None else paths)
    entry = next((entry for entry in loaded if entry.plan_id == plan_id), None)
    if entry is None:
        known = ", ".join(sorted(e.plan_id for e in loaded if e.plan_id)) or "none"
        raise PlanError(f"no plan with id {plan_id} (plans: {known})")
    if entry.plan is None:
        raise PlanError(f"plan {plan_id} does not validate:\n" + "\n".join(str(f) for f in entry.faults))
    return entry.plan


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of a plan file, for editors (YAML language servers read it)."""
    return Plan.model_json_schema()
