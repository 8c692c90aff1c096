"""docker-compose.temporal.yml, the production shape, must stay valid and register our search attributes.
Validated by Debian's docker-compose, which needs no engine (.ci/run installs it)."""

import shutil
import subprocess
from pathlib import Path

import yaml

from models import search_attributes

COMPOSE = Path(__file__).parent.parent / "docker-compose.temporal.yml"


def test_compose_file_validates() -> None:
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is missing: `apt-get install docker-compose` (.ci/run does)"
    result = subprocess.run([docker_compose, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_compose_registers_every_search_attribute() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    setup = "".join(services["temporal-setup"]["command"])
    for key in search_attributes.ALL:
        assert key.name in setup, f"{key.name} is not created by the temporal-setup service"
    assert {"temporal", "temporal-ui", "temporal-postgresql", "ledgerflow-postgresql"} <= set(services)
