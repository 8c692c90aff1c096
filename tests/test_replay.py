"""Recorded histories must replay on today's workflow code: a change that would break running workflows
fails here. Record new ones with `python -m tests.record_histories`."""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
TEXTS = {path: path.read_text() for path in HISTORIES}


def test_every_workflow_has_recorded_histories() -> None:
    recorded = {path.name.split("_")[0] for path in HISTORIES}
    for workflow_class in WORKFLOWS:
        prefix = workflow_class.__name__.removesuffix("Workflow").lower()
        assert prefix in recorded, f"no recorded history for {workflow_class.__name__} in tests/histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, TEXTS[path])
    result = await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history, raise_on_replay_failure=True)
    assert result.replay_failure is None
