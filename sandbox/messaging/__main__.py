"""Run the messaging sandbox alone: `python -m sandbox.messaging --smtp-port 2525 --sms-port 8740
[--inbound-sms-url URL] [--inbound-email-url URL]`. The SMTP sink and the Twilio-shaped API (with both admins)."""

import argparse

import uvicorn

from config.settings import get_settings
from sandbox.messaging.sms import create_app
from sandbox.messaging.smtp_sink import SmtpSink


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=settings.smtp_port)
    parser.add_argument("--sms-port", type=int, default=settings.sms_sandbox_port)
    parser.add_argument("--inbound-sms-url", default=None, help="where contacts' texts are posted (Twilio's "
                                                                 "signed webhook)")
    parser.add_argument("--inbound-email-url", default=None, help="where contacts' email replies are posted (JSON)")
    args = parser.parse_args()
    with SmtpSink(args.host, args.smtp_port) as sink:
        uvicorn.run(create_app(sink=sink, inbound_sms_url=args.inbound_sms_url,
                               inbound_email_url=args.inbound_email_url),
                    host=args.host, port=args.sms_port, log_level="warning")


if __name__ == "__main__":
    main()
