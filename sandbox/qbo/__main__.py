"""Run the QBO sandbox alone: `python -m sandbox.qbo --port 8710 [--state-file books.sqlite]`."""

import argparse
from pathlib import Path

import uvicorn

from config.settings import get_settings
from sandbox.qbo.app import QboSandbox, create_app
from sandbox.qbo.webhooks import WebhookSender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=get_settings().qbo_sandbox_port)
    parser.add_argument("--state-file", type=Path, default=None,
                        help="keep the companies in this SQLite file across restarts (default: in memory)")
    parser.add_argument("--webhook-url", help="POST signed CloudEvents here after every write")
    parser.add_argument("--webhook-verifier", default="sandbox-verifier-token",
                        help="the verifier token that signs webhooks (intuit-signature)")
    args = parser.parse_args()
    webhooks = WebhookSender(args.webhook_url, args.webhook_verifier) if args.webhook_url else None
    app = create_app(QboSandbox(args.state_file, webhooks=webhooks))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
