"""Run the payment gateway sandbox alone: `python -m sandbox.gateway --port 8730 [--state-file gateway.json]`.

A merchant's surcharge rate and webhook URL are set through its admin API (`PUT /admin/merchants/{id}/settings`,
GatewaySandboxAdmin.set_settings); webhooks go out from a background thread, retried until answered."""

import argparse
from pathlib import Path

import uvicorn

from config.settings import get_settings
from sandbox.gateway.app import create_app
from sandbox.gateway.store import GatewayStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=get_settings().gateway_sandbox_port)
    parser.add_argument("--state-file", type=Path, default=None,
                        help="keep merchants (keys, settings) and transactions in this JSON file across restarts "
                             "(default: in memory)")
    args = parser.parse_args()
    uvicorn.run(create_app(GatewayStore(args.state_file)), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
