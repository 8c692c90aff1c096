"""The franchise network file: validated with clear paths, installed idempotently, steps mapped to stages."""

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, select

from config.network import install_network, load_network
from config.settings import Settings
from models.accounts import Franchisee
from models.proposals import Stage, stage_for_step


def test_example_network_installs_once(settings: Settings, engine: Engine) -> None:
    install_network(engine, load_network(settings.network_file))  # a second time: nothing changes
    with Session(engine) as session:
        franchisees = session.exec(select(Franchisee).order_by(Franchisee.account_id)).all()
    assert [f.account_id for f in franchisees] == ["acme-austin", "acme-denver"]
    assert franchisees[1].royalty_rate == Decimal("0.055")
    assert franchisees[0].sales_cycle["Proposal Sent"] == "proposal"


def write_network(tmp_path: Path, settings: Settings, **change: object) -> Path:
    data = yaml.safe_load(settings.network_file.read_text())
    data["franchisees"][0].update(change)
    path = tmp_path / "network.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("change", "where"), [
    ({"time_zone": "Mars/Olympus"}, ("franchisees", 0, "time_zone")),
    ({"royalty_rate": "1.5"}, ("franchisees", 0, "royalty_rate")),
    ({"sales_cycle": {"Won": "invoiced"}}, ("franchisees", 0, "sales_cycle", "Won")),
    ({"royalty": "0.06"}, ("franchisees", 0, "royalty")),
    ({"account_id": "acme:austin"}, ("franchisees", 0, "account_id")),  # would collide in workflow ids
    ({"account_id": "acme/austin"}, ("franchisees", 0, "account_id")),
])
def test_bad_network_names_the_faulty_field(tmp_path: Path, settings: Settings, change: dict[str, object],
                                            where: tuple[object, ...]) -> None:
    with pytest.raises(ValidationError) as raised:
        load_network(write_network(tmp_path, settings, **change))
    assert where in {tuple(error["loc"]) for error in raised.value.errors()}


def test_stage_for_step() -> None:
    mapping = {"Proposal Sent": "proposal", "Job Complete": "job_complete"}
    assert stage_for_step(mapping, "proposal sent ") is Stage.PROPOSAL
    assert stage_for_step(mapping, "JOB COMPLETE") is Stage.JOB_COMPLETE
    assert stage_for_step(mapping, "Left Voicemail") is None
