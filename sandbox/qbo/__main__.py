"""Run the QBO sandbox alone: `python -m sandbox.qbo --port 8710`."""

import argparse
from pathlib import Path

import uvicorn

from config.settings import get_settings
from sandbox.qbo.app import QboSandbox, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=get_settings().qbo_sandbox_port)
    parser.add_argument("--state-file", type=Path, default=None,
                        help="keep the companies in this JSON file across restarts")
    args = parser.parse_args()
    app = create_app(QboSandbox(args.state_file))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
