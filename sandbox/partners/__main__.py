"""Run the partners sandbox alone: `python -m sandbox.partners --port 8750`. It accepts the keys in settings."""

import argparse

import uvicorn

from config.settings import get_settings
from sandbox.partners.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=get_settings().partners_sandbox_port)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
