"""Plan templates: what a contact would receive, the faults an admin is told about, and what the sandbox
keeps a template from reaching."""

from datetime import UTC, datetime
from typing import Any

import pytest

from models.plan_context import KNOWN_TOKENS, PlanAccount, PlanContact, PlanContext, PlanUser
from models.plan_templates import (
    TemplateFault,
    render,
    render_step,
    template_fault,
    tokens_used,
    undeclared,
    unguarded,
)
from models.plans import EmailStep, SheetRowStep, TextStep, WebhookStep


def context(user: PlanUser | None = None, account_name: str = "Acme Home Services of Austin",
            **contact: Any) -> PlanContext:
    return PlanContext(contact=PlanContact(id="c-1", **contact), user=user,
                       account=PlanAccount(id="acme-austin", name=account_name, time_zone="America/Chicago"))


ANA = context(first_name="Ana", last_name="Ruiz", phone="5125550100", city="Austin")


def fault(template: str, ctx: PlanContext = ANA, **options: Any) -> str:
    with pytest.raises(TemplateFault) as raised:
        render(template, ctx, **options)
    return raised.value.message


def test_tokens_render_under_both_spellings() -> None:
    assert render("Hi {{ contact.first_name }} {{ contact.last_name }}!", ANA) == "Hi Ana Ruiz!"
    assert render("Hi {{client.firstName}}, {{ contact.fullName }} of {{ contact.city }}", ANA) == \
        "Hi Ana, Ana Ruiz of Austin"
    with_user = context(user=PlanUser(id="u-1", first_name="Sam"), first_name="Ana")
    assert render("{{ user.first_name }} at {{ account.name }}", with_user) == "Sam at Acme Home Services of Austin"


def test_datetimes_render_in_the_contacts_time_zone() -> None:
    ctx = context(appointment_at=datetime(2026, 11, 24, 21, 0, tzinfo=UTC), phone="2125550100")
    assert render("{{ contact.appointment_at.strftime('%A %-I:%M %p') }}", ctx) == "Tuesday 4:00 PM"  # New York


def test_strict_undefined_names_the_token() -> None:
    assert fault("Hi {{ contact.frist_name }}") == "unknown token contact.frist_name"
    assert fault("Hi {{ clinet.first_name }}") == "unknown token clinet"
    assert fault("Hi {{ contact.email }}") == \
        'contact.email is empty here: give a fallback, e.g. {{ contact.email | fallback("...") }}'
    assert fault("From {{ user.first_name }}").startswith("user.first_name is empty here")  # nobody assigned
    assert fault("{% for x in contact.last_name %}{{ x }}{% endfor %}", context()).startswith(
        "contact.last_name is empty here")
    assert fault("Hi {% if %}") == "template line 1: Expected an expression, got 'end of statement block'"
    assert fault("{{ contact.first_name | shout }}") == "template line 1: No filter named 'shout'."
    assert fault("{{ 1 / 0 }}") == "ZeroDivisionError: division by zero"


def test_fallbacks_fill_empty_values_so_hi_comma_cannot_happen() -> None:
    nameless = context()
    assert render('Hi {{ contact.first_name | default("there") }},', nameless) == "Hi there,"
    assert render('Hi {{ contact.first_name | fallback("there") }},', nameless) == "Hi there,"
    blank = context(first_name="   ")  # a CRM field holding spaces: `default` keeps it, `fallback` does not
    assert render('Hi {{ contact.first_name | default("there") }},', blank) == "Hi    ,"
    assert render('Hi {{ contact.first_name | fallback("there") }},', blank) == "Hi there,"
    assert render('Hi {{ contact.first_name | fallback("there") }},', ANA) == "Hi Ana,"
    assert render("Hi{% if contact.first_name %} {{ contact.first_name }}{% endif %},", nameless) == "Hi,"
    assert render("{{ contact.city if contact.city else 'your area' }}", nameless) == "your area"


def test_the_sandbox_keeps_templates_out_of_python() -> None:
    assert "unsafe" in fault("{{ ''.__class__ }}")
    assert "unsafe" in fault("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert "unsafe" in fault("{{ contact.__class__.__init__.__globals__ }}")
    assert "unsafe" in fault("{{ cycler.__init__.__globals__.os }}")
    assert fault("{% set names = [] %}{{ names.append(1) }}").startswith("not allowed in a template")
    assert fault("{{ contact.update(first_name='x') }}").startswith("not allowed in a template")
    assert "unsafe" in fault("{{ contact._root }}")
    assert "unsafe" in fault("{{ contact._root }}", blank_missing=True)  # not blanked in data steps either


def test_html_escapes_only_in_html() -> None:
    ctx = context(first_name="<b>Ana</b>", account_name="Smith & Sons")
    template = "Hi {{ contact.first_name }} from {{ account.name }}"
    assert render(template, ctx, html=True) == "Hi &lt;b&gt;Ana&lt;/b&gt; from Smith &amp; Sons"
    assert render(template, ctx) == "Hi <b>Ana</b> from Smith & Sons"
    email = render_step(EmailStep(id="e", subject=template, body=template), ctx)
    assert (email.subject, email.body) == ("Hi <b>Ana</b> from Smith & Sons",  # type: ignore[union-attr]
                                           "Hi &lt;b&gt;Ana&lt;/b&gt; from Smith &amp; Sons")
    plain = render_step(EmailStep(id="e", subject="x", body=template, html=False), ctx)
    assert plain.body == "Hi <b>Ana</b> from Smith & Sons"  # type: ignore[union-attr]
    assert render_step(TextStep(id="t", body=template), ctx).body == "Hi <b>Ana</b> from Smith & Sons"  # type: ignore[union-attr]


def test_data_steps_send_an_empty_value_blank_and_messages_refuse_it() -> None:
    nameless = context(phone="5125550100")
    row = render_step(SheetRowStep(id="s", spreadsheet_id="sheet", sheet="Leads",
                                   columns={"Name": "{{ contact.full_name }}", "Phone": "{{ contact.phone }}",
                                            "Status": "New"}), nameless)
    assert row.columns == {"Name": "", "Phone": "5125550100", "Status": "New"}  # type: ignore[union-attr]
    hook = render_step(WebhookStep(id="h", url="https://hooks.example.com/{{ account.id }}?email={{ contact.email }}",
                                   headers={"X-Contact": "{{ contact.id }}"}), nameless)
    assert hook.url == "https://hooks.example.com/acme-austin?email="  # type: ignore[union-attr]
    assert hook.headers == {"X-Contact": "c-1"}  # type: ignore[union-attr]
    with pytest.raises(TemplateFault, match=r"unknown token contact\.nope"):
        render_step(WebhookStep(id="h", url="https://x.example.com", body={"a": "{{ contact.nope }}"}), nameless)
    with pytest.raises(TemplateFault, match=r"contact\.full_name is empty here"):
        render_step(TextStep(id="t", body="Hi {{ contact.full_name }}"), nameless)


def test_tokens_used_finds_dotted_names() -> None:
    template = """Hi {{ contact.first_name | fallback("there") }} {{ client.lastName }}
{% if contact.appointment_at %}See you {{ contact.appointment_at.strftime('%A') }}{% endif %}
{% for line in ['a', 'b'] %}{{ line.upper() }}{% endfor %}{% set office = account.name %}{{ office }}
{{ user['first_name'] }} {{ contact[account.id] }} {{ 'x' if contact.city else account.phone }}"""
    assert tokens_used(template) == {
        "contact.first_name", "client.lastName", "contact.appointment_at", "account.name", "user.first_name",
        "contact", "account.id", "contact.city", "account.phone"}
    assert undeclared(template) == {"contact"}  # a computed field cannot be checked
    assert undeclared("{{ contact.frist_name }} {{ acount.name }}") == {"contact.frist_name", "acount.name"}
    assert tokens_used("No tokens at all.") == set()


def test_unguarded_finds_empty_tokens_with_no_fallback() -> None:
    assert unguarded("Hi {{ contact.first_name }} from {{ account.name }}, {{ contact.id }}") == {"contact.first_name"}
    assert unguarded("Hi {{ contact.first_name | fallback('there') }}, {{ contact.email | d('') }}") == set()
    assert unguarded("{% if contact.city %}in {{ contact.city }}{% else %}{{ contact.state }}{% endif %}") == \
        {"contact.state"}
    assert unguarded("{{ contact.city if contact.city else contact.zip }}") == {"contact.zip"}
    assert unguarded("{{ user.first_name | fallback(contact.first_name) }}") == {"contact.first_name"}


def test_syntax_faults_are_found_before_rendering() -> None:
    assert template_fault("Hi {{ contact.first_name ") is not None
    assert template_fault("{{ contact.first_name | nope }}") == "template line 1: No filter named 'nope'."
    assert template_fault("Hi {{ contact.first_name | fallback('there') }}") is None
    with pytest.raises(TemplateFault, match="template line 2"):
        tokens_used("ok\n{% endif %}")


def test_known_tokens_cover_every_field_in_both_spellings() -> None:
    for name in PlanContact.model_fields:
        assert f"contact.{name}" in KNOWN_TOKENS and f"client.{name}" in KNOWN_TOKENS
    assert {"contact.firstName", "client.appointmentAt", "user.fullName", "account.timeZone"} <= KNOWN_TOKENS
    assert "contact.frist_name" not in KNOWN_TOKENS
