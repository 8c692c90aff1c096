"""Run the messaging sandbox alone: `python -m sandbox.messaging --smtp-port 2525 --sms-port 8740
[--inbound-sms-url URL] [--inbound-email-url URL] [--capture-url URL]`. The SMTP sink and the Twilio-shaped API
(with both admins); with a capture URL the sink relays mail to the capture addresses there, as CapturedMail."""

import argparse

import uvicorn

from config.settings import get_settings
from sandbox.delivery import WebhookDelivery
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
    parser.add_argument("--capture-url", default=None,
                        help=f"where mail to capture+{{account}}@{settings.email_capture_domain} is posted (signed "
                             "CapturedMail JSON)")
    args = parser.parse_args()
    delivery = WebhookDelivery()  # one queue for every webhook, so /admin/deliveries lists the captures too
    secret = settings.inbound_email_secret.get_secret_value()
    with SmtpSink(args.host, args.smtp_port, capture_domain=settings.email_capture_domain,
                  capture_url=args.capture_url, capture_secret=secret, delivery=delivery) as sink:
        uvicorn.run(create_app(sink=sink, inbound_sms_url=args.inbound_sms_url,
                               inbound_email_url=args.inbound_email_url, delivery=delivery,
                               inbound_email_secret=secret),
                    host=args.host, port=args.sms_port, log_level="warning")


if __name__ == "__main__":
    main()
