"""The messaging activities against the SMTP sink and the SMS sandbox: each send happens once per key, when the
activity runs twice, after a lost answer, and after a worker died between sending and recording; an opted-out
number is never texted; Twilio's 21610 is final and remembered. Also the phone and keyword rules."""

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.outbox
from activities.messaging import MessagingActivities, message_id
from config.settings import Settings
from models.messages import EmailMessage, TextMessage, e164
from models.opt_outs import is_opted_out, keyword_of, record_keyword
from models.outbox import claim, load_outbox, mark_unknown, retry_claim
from sandbox.messaging.admin import MessagingSandboxAdmin
from sandbox.serve import ServerThread
from tests.test_gateway_adapter import until_done


class WorkerDied(Exception):
    """Stands for the worker process dying: nothing after it in the attempt runs."""


@pytest.fixture
def admin(sms_sandbox: ServerThread) -> MessagingSandboxAdmin:
    return MessagingSandboxAdmin(sms_sandbox.url)


@pytest.fixture
def messaging_settings(settings: Settings, admin: MessagingSandboxAdmin) -> Settings:
    """A Twilio account of the test's own (its faults touch no other test) and a short timeout: a dropped
    answer costs half a second, a claim left by a dead worker 1.5."""
    sid, token = f"AC{uuid.uuid4().hex}", uuid.uuid4().hex
    admin.add_account(sid, token)
    return settings.model_copy(update={"messaging_http_timeout_seconds": 0.5, "twilio_account_sid": sid,
                                       "twilio_auth_token": SecretStr(token)})


@pytest.fixture
def messaging(messaging_settings: Settings, engine: Engine) -> MessagingActivities:
    return MessagingActivities(engine, messaging_settings)


def run(fn: Callable[[Any], Any], arg: Any) -> Any:
    return ActivityEnvironment().run(fn, arg)


def refusal(fn: Callable[[Any], Any], arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        run(fn, arg)
    return raised.value


def email(to: str = "dana@example.com") -> EmailMessage:
    return EmailMessage(idempotency_key=f"plan:acme-austin:C-1:welcome:{uuid.uuid4().hex[:8]}:email-1",
                        account_id="acme-austin", to=to, subject="Your estimate from Acme",
                        text="Hi Dana,\nyour estimate is ready.", html="<p>Hi Dana,</p><p>your estimate is ready.</p>",
                        reply_to="austin@acme.test")


def new_number() -> str:
    return f"+1512{random.randint(2_000_000, 9_999_999)}"


def text(to: str, body: str = "Hi Dana, your estimate is ready. Reply STOP to stop.") -> TextMessage:
    return TextMessage(idempotency_key=f"plan:acme-austin:C-1:welcome:{uuid.uuid4().hex[:8]}:text-1",
                       account_id="acme-austin", to=to, body=body)


def die_once_after_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first attempt's provider call succeeds, then its worker dies before the outbox says `sent`."""
    real = activities.outbox.mark_sent
    calls = iter([True])

    def mark_sent(*args: Any) -> Any:
        if next(calls, False):
            raise WorkerDied
        return real(*args)

    monkeypatch.setattr(activities.outbox, "mark_sent", mark_sent)


# -- email -------------------------------------------------------------------------------------------------
def test_an_email_lands_in_the_sink_once_even_when_the_activity_runs_twice(
        messaging: MessagingActivities, admin: MessagingSandboxAdmin, engine: Engine,
        messaging_settings: Settings) -> None:
    message = email()
    first, again = run(messaging.send_email, message), run(messaging.send_email, message)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert first.provider_id == again.provider_id == message_id(message.idempotency_key, messaging_settings.smtp_from)
    [taken] = admin.emails(idempotency_key=message.idempotency_key)
    assert {k: taken[k] for k in ("mail_from", "rcpt_tos", "from", "to", "reply_to", "subject", "message_id",
                                  "text", "html")} == {
        "mail_from": "no-reply@ledgerflow.local", "rcpt_tos": ["dana@example.com"],
        "from": "Ledgerflow <no-reply@ledgerflow.local>", "to": "dana@example.com", "reply_to": "austin@acme.test",
        "subject": "Your estimate from Acme", "message_id": first.provider_id,
        "text": "Hi Dana,\nyour estimate is ready.\n", "html": "<p>Hi Dana,</p><p>your estimate is ready.</p>\n"}
    assert taken["message_id"].endswith("@ledgerflow.local>")
    row = load_outbox(engine, message.idempotency_key)
    assert row is not None and (row.kind, row.status, row.attempts, row.recipient) == (
        "email", "sent", 1, "dana@example.com")


def test_an_address_the_server_refuses_is_final_and_leaves_no_claim(messaging: MessagingActivities,
                                                                    engine: Engine) -> None:
    message = email(to="reject-nobody@example.com")
    refused = refusal(messaging.send_email, message)
    assert (refused.type, refused.non_retryable) == ("EmailRefused", True)
    assert load_outbox(engine, message.idempotency_key) is None


def test_a_busy_server_is_retried_and_the_email_sent_once(messaging: MessagingActivities,
                                                           admin: MessagingSandboxAdmin, engine: Engine) -> None:
    admin.set_email_faults(["500"])
    message = email()
    sent, attempts = until_done(messaging.send_email, message)
    assert (attempts, sent.duplicate) == (2, False)
    assert len(admin.emails(idempotency_key=message.idempotency_key)) == 1
    row = load_outbox(engine, message.idempotency_key)
    assert row is not None and row.attempts == 1  # the 451 proved it was not taken


def test_a_lost_answer_resends_the_email_with_the_same_message_id(messaging: MessagingActivities,
                                                                   admin: MessagingSandboxAdmin,
                                                                   engine: Engine) -> None:
    """SMTP cannot say whether it took a message whose 250 was lost: it is sent again, as the same message
    (Message-ID and key), which the recipient's mailbox collapses; the outbox counts the second attempt."""
    admin.set_email_faults(["drop"])
    message = email()
    sent, attempts = until_done(messaging.send_email, message)
    assert (attempts, sent.duplicate) == (2, False)
    taken = admin.emails(idempotency_key=message.idempotency_key)
    assert [m["message_id"] for m in taken] == [sent.provider_id] * 2
    row = load_outbox(engine, message.idempotency_key)
    assert row is not None and (row.status, row.attempts) == ("sent", 2)


def test_a_worker_dying_after_the_send_leaves_a_claim_the_retry_waits_out(
        messaging: MessagingActivities, admin: MessagingSandboxAdmin, engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    die_once_after_sending(monkeypatch)
    message = email()
    with pytest.raises(WorkerDied):
        run(messaging.send_email, message)
    row = load_outbox(engine, message.idempotency_key)
    assert row is not None and row.status == "sending"
    in_flight = refusal(messaging.send_email, message)  # that attempt may still be sending: do not race it
    assert (in_flight.type, in_flight.non_retryable) == ("SendInFlight", False)
    assert in_flight.next_retry_delay is not None and 0 < in_flight.next_retry_delay.total_seconds() <= 1.5

    sent, _ = until_done(messaging.send_email, message)
    assert not sent.duplicate
    assert {m["message_id"] for m in admin.emails(idempotency_key=message.idempotency_key)} == {sent.provider_id}
    assert run(messaging.send_email, message).duplicate


# -- texts -------------------------------------------------------------------------------------------------
def test_a_text_is_sent_once_even_when_the_activity_runs_twice(messaging: MessagingActivities,
                                                                admin: MessagingSandboxAdmin,
                                                                messaging_settings: Settings) -> None:
    to = new_number()
    message = text(to)
    first, again = run(messaging.send_text, message), run(messaging.send_text, message)
    assert (first.duplicate, again.duplicate, first.kind) == (False, True, "text")
    [only] = admin.texts(to=to)
    assert (only["sid"], only["from"], only["body"], only["account_sid"]) == (
        first.provider_id, messaging_settings.twilio_from_number, message.body, messaging_settings.twilio_account_sid)
    assert again.provider_id == first.provider_id


def test_a_text_to_an_opted_out_number_is_refused_and_never_reaches_twilio(
        messaging: MessagingActivities, admin: MessagingSandboxAdmin, engine: Engine) -> None:
    to = new_number()
    assert record_keyword(engine, to, "STOP") == "opt_out"
    message = text(to)
    refused = refusal(messaging.send_text, message)
    assert (refused.type, refused.non_retryable) == ("ContactOptedOut", True)
    assert admin.texts(to=to) == []
    assert load_outbox(engine, message.idempotency_key) is None

    assert record_keyword(engine, to, "start") == "opt_in"
    assert not run(messaging.send_text, message).duplicate
    assert len(admin.texts(to=to)) == 1


def test_stop_texted_to_twilio_refuses_the_next_send_and_is_remembered(
        messaging: MessagingActivities, admin: MessagingSandboxAdmin, engine: Engine,
        messaging_settings: Settings) -> None:
    to = new_number()
    admin.inbound_sms(to, messaging_settings.twilio_from_number, "STOP",
                      account_sid=messaging_settings.twilio_account_sid)
    assert not is_opted_out(engine, to)  # the API never heard it (it was down, say): Twilio did
    refused = refusal(messaging.send_text, text(to))
    assert (refused.type, refused.non_retryable) == ("ContactOptedOut", True)
    assert "21610" in refused.message
    assert is_opted_out(engine, to)

    again = refusal(messaging.send_text, text(to))  # refused here now, before Twilio is asked
    assert (again.type, "21610" in again.message) == ("ContactOptedOut", False)
    assert admin.texts(to=to, direction="outbound-api") == []


def test_an_outage_is_retried_and_leaves_no_claim_behind(messaging: MessagingActivities,
                                                         admin: MessagingSandboxAdmin, engine: Engine,
                                                         messaging_settings: Settings) -> None:
    admin.set_sms_faults(messaging_settings.twilio_account_sid, ["500"])
    to = new_number()
    message = text(to)
    failed = refusal(messaging.send_text, message)
    assert (failed.type, failed.non_retryable) == ("TwilioUnavailable", False)
    assert load_outbox(engine, message.idempotency_key) is None
    assert not run(messaging.send_text, message).duplicate
    assert len(admin.texts(to=to)) == 1


def test_a_lost_answer_is_found_at_twilio_and_not_sent_again(messaging: MessagingActivities,
                                                             admin: MessagingSandboxAdmin, engine: Engine,
                                                             messaging_settings: Settings) -> None:
    admin.set_sms_faults(messaging_settings.twilio_account_sid, ["drop"], hold_seconds=1.0)
    to = new_number()
    message = text(to)
    sent, attempts = until_done(messaging.send_text, message)
    assert (attempts, sent.duplicate) == (2, True)  # the second attempt found the first one's text
    [only] = admin.texts(to=to)
    assert only["sid"] == sent.provider_id
    row = load_outbox(engine, message.idempotency_key)
    assert row is not None and (row.status, row.attempts, row.provider_id) == ("sent", 1, only["sid"])


def test_a_worker_dying_between_send_and_record_texts_once(messaging: MessagingActivities,
                                                           admin: MessagingSandboxAdmin,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    die_once_after_sending(monkeypatch)
    to = new_number()
    message = text(to)
    with pytest.raises(WorkerDied):
        run(messaging.send_text, message)
    sent, attempts = until_done(messaging.send_text, message)
    assert attempts == 2  # one wait for the dead attempt's claim to go stale, then found at Twilio
    assert [m["sid"] for m in admin.texts(to=to)] == [sent.provider_id]


def test_only_one_attempt_takes_over_a_claim_of_unknown_outcome(engine: Engine) -> None:
    key = f"cas-{uuid.uuid4().hex}"
    first = claim(engine, key, "text", "acme-austin", "+15125550123")
    assert first is not None and claim(engine, key, "text", "acme-austin", "+15125550123") is None
    mark_unknown(engine, key)
    seen = load_outbox(engine, key)
    assert seen is not None
    taken = retry_claim(engine, seen)
    assert taken is not None and (taken.status, taken.attempts) == ("sending", 2)
    assert retry_claim(engine, seen) is None  # read before the other took it


def test_a_key_reused_for_another_recipient_is_refused(messaging: MessagingActivities) -> None:
    message = text(new_number())
    run(messaging.send_text, message)
    reused = refusal(messaging.send_text, message.model_copy(update={"to": new_number()}))
    assert (reused.type, reused.non_retryable) == ("IdempotencyKeyReused", True)


# -- the rules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    ("(512) 555-0123", "+15125550123"), ("512.555.0123", "+15125550123"), ("1 512 555 0123", "+15125550123"),
    ("+1 512-555-0123", "+15125550123"), ("+442071838750", "+442071838750")])
def test_phone_numbers_become_e164(given: str, expected: str) -> None:
    assert e164(given) == expected
    assert text(given).to == expected


@pytest.mark.parametrize("junk", ["", "555-0123", "0125550123", "+10125550123", "512555012345", "call me",
                                  "5125550123 ext 4", "+0123456789"])
def test_junk_is_not_a_phone_number(junk: str) -> None:
    with pytest.raises(ValueError):
        e164(junk)
    with pytest.raises(ValidationError):
        text(junk)


def test_a_text_is_at_most_1600_characters() -> None:
    assert len(text(new_number(), body="x" * 1600).body) == 1600
    with pytest.raises(ValidationError):
        text(new_number(), body="x" * 1601)


@pytest.mark.parametrize(("body", "keyword"), [
    ("STOP", "opt_out"), ("stop", "opt_out"), ("  Stop. ", "opt_out"), ("STOPALL", "opt_out"),
    ("Unsubscribe", "opt_out"), ("cancel", "opt_out"), ("END", "opt_out"), ("quit!", "opt_out"),
    ("revoke", "opt_out"), ("OPTOUT", "opt_out"), ("START", "opt_in"), ("unstop", "opt_in"), ("Yes", "opt_in"),
    ("HELP", "help"), ("info", "help"), ("please stop", None), ("stop it", None), ("Yes, Tuesday works", None),
    ("", None)])
def test_keywords_are_the_whole_message(body: str, keyword: str | None) -> None:
    assert keyword_of(body) == keyword


def test_help_changes_nothing_and_start_undoes_stop(engine: Engine) -> None:
    phone = new_number()
    assert record_keyword(engine, phone, "HELP") == "help"
    assert not is_opted_out(engine, phone)
    record_keyword(engine, phone, "Stop")
    assert is_opted_out(engine, phone[2:])  # the same number in 10-digit form
    assert record_keyword(engine, phone, "Tuesday works") is None
    assert is_opted_out(engine, phone)
    record_keyword(engine, phone, "UNSTOP")
    assert not is_opted_out(engine, phone)
