"""What each source posts becomes one normalised lead: names split or joined, phone to 10 digits, email
lower-cased, the source's extra answers kept as details; what identifies the lead or the person is required."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from models.lead_payloads import AngiLead, ContactFormLead, ThumbtackLead
from models.leads import LeadChannel, lead_note_section, phone_digits, split_name


@pytest.mark.parametrize(("given", "digits"), [
    ("(512) 555-0142", "5125550142"), ("+1 512.555.0142", "5125550142"), ("15125550142", "5125550142"),
    ("555-0142", None), ("0125550142", None), ("", None), ("call me", None)])
def test_phones_become_their_ten_digits_or_nothing(given: str, digits: str | None) -> None:
    assert phone_digits(given) == digits


@pytest.mark.parametrize(("name", "parts"), [
    ("Dana Reyes", ("Dana", "Reyes")), ("  Dana   Reyes-Lopez ", ("Dana", "Reyes-Lopez")),
    ("Reyes, Dana", ("Dana", "Reyes")), ("Dana", ("Dana", "")), ("Mary Ann van Dyke", ("Mary", "Ann van Dyke"))])
def test_names_are_split_into_first_and_last(name: str, parts: tuple[str, str]) -> None:
    assert split_name(name) == parts


def test_an_angi_lead_keeps_its_interview_and_is_identified_by_its_lead_oid() -> None:
    lead = AngiLead.model_validate({
        "name": "Dana Reyes", "primaryPhone": "(512) 555-0142", "email": "Dana@Example.COM", "leadOid": 98765,
        "taskName": "Gutter Cleaning", "interview": [{"question": "Stories?", "answer": "2"}], "fee": "24.50",
        "unknownField": "ignored"}).to_lead()
    assert (lead.channel, lead.lead_id, lead.first_name, lead.last_name) == (LeadChannel.ANGI, "98765", "Dana", "Reyes")
    assert (lead.email, lead.phone, lead.smsok) == ("dana@example.com", "5125550142", True)
    assert [(d.question, d.answer) for d in lead.details] == [("Stories?", "2"), ("Lead fee", "24.50")]
    assert lead.identities == ["lead:angi:98765", "email:dana@example.com", "phone:5125550142"]


def test_an_unreadable_phone_is_kept_as_given_not_dropped() -> None:
    lead = AngiLead.model_validate({"name": "Dana", "leadOid": "1", "primaryPhone": "555-01"}).to_lead()
    assert lead.phone is None and [(d.question, d.answer) for d in lead.details] == [("Phone as given", "555-01")]


@pytest.mark.parametrize("missing", ["name", "leadOid"])
def test_an_angi_lead_without_its_name_or_id_is_refused(missing: str) -> None:
    body = {"name": "Dana Reyes", "leadOid": "1"}
    del body[missing]
    with pytest.raises(ValidationError, match=missing):
        AngiLead.model_validate(body)


def test_a_bad_email_is_refused_whole() -> None:
    with pytest.raises(ValidationError, match="not an email address"):
        AngiLead.model_validate({"name": "Dana", "leadOid": "1", "email": "dana@"}).to_lead()


def test_a_thumbtack_lead_reads_its_customer_request_and_unix_timestamp() -> None:
    parsed = ThumbtackLead.model_validate({
        "leadID": "437", "createTimestamp": "1764600000",
        "request": {"title": "Gutter cleaning", "description": "Leaves", "schedule": "Flexible",
                    "location": {"address1": "1 Main St", "address2": "Apt 2", "city": "Austin", "state": "TX",
                                 "zipCode": "78704"}, "details": [{"question": "Size", "answer": "2,000 sq ft"}]},
        "customer": {"customerID": "c1", "name": "Reyes, Dana", "phone": "512-555-0142"},
        "business": {"businessID": "tt-acme-austin"}, "leadType": "ESTIMATION"})
    lead = parsed.to_lead()
    assert parsed.business.businessID == "tt-acme-austin"
    assert (lead.lead_id, lead.first_name, lead.last_name, lead.phone) == ("437", "Dana", "Reyes", "5125550142")
    assert (lead.address, lead.city, lead.zip) == ("1 Main St Apt 2", "Austin", "78704")
    assert lead.summary == "Gutter cleaning"
    details = {d.question: d.answer for d in lead.details}
    assert details["Size"] == "2,000 sq ft" and details["Requested at"] == "2025-12-01T14:40:00+00:00"


def test_a_thumbtack_lead_needs_its_business_to_be_routed() -> None:
    with pytest.raises(ValidationError, match="business"):
        ThumbtackLead.model_validate({"leadID": "1", "customer": {"name": "Dana"}})


def test_a_form_post_joins_fields_keeps_unknown_ones_and_gets_a_stable_id_from_who_sent_it() -> None:
    body = {"web_key": "k", "firstName": " Dana ", "lastName": "Reyes", "email": "DANA@example.com",
            "phone": "5125550142", "smsok": "on", "Project": "Gutter guards", "comments": "Back gate"}
    first = ContactFormLead.model_validate(body).to_lead(LeadChannel.WEB_FORM)
    again = ContactFormLead.model_validate({**body, "Project": "changed"}).to_lead(LeadChannel.WEB_FORM)
    other = ContactFormLead.model_validate({**body, "email": "sam@example.com"}).to_lead(LeadChannel.WEB_FORM)
    assert (first.first_name, first.smsok, first.comments) == ("Dana", True, "Back gate")
    assert [(d.question, d.answer) for d in first.details] == [("Project", "Gutter guards")]
    assert first.lead_id == again.lead_id != other.lead_id


@pytest.mark.parametrize("body", [{"web_key": "k"}, {"web_key": "k", "firstName": "Dana"},
                                  {"web_key": "k", "name": " "}])
def test_a_form_post_needs_a_name_or_both_name_parts(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="name"):
        ContactFormLead.model_validate(body)


def test_the_note_section_says_what_the_lead_asked_for() -> None:
    lead = AngiLead.model_validate({"name": "Dana", "leadOid": "7", "taskName": "Gutters", "comments": "Gate",
                                    "interview": [{"question": "Stories?", "answer": "2"}]}).to_lead()
    text = lead_note_section(lead, "Angi", datetime(2026, 12, 1, 15, 4, tzinfo=UTC))
    assert text.splitlines() == ["Lead 7 from Angi (angi), received 2026-12-01 15:04 UTC", "Request: Gutters",
                                 "Comments: Gate", "- Stories?: 2"]
