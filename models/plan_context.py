"""What a plan's templates and waits read about the contact, their assigned user and the account, the token
names plans may use, and the time zone a contact's texts are timed in."""

import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from models.area_codes import AREA_CODE_ZONES
from models.time_zones import TimeZoneName


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _phone_digits(value: Any) -> Any:
    """CRMs store phones as typed ("(512) 555-0100"): keep the digits (and a leading +)."""
    return re.sub(r"[\s().-]", "", value) if isinstance(value, str) else value


Phone = Annotated[str, BeforeValidator(_phone_digits), Field(pattern=r"^(\d{10}|\+[1-9]\d{7,14})$")]


class PlanContact(_Shape):
    id: str = Field(min_length=1)
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    phone: Phone | None = None  # 10 digits (US) or E.164
    smsok: bool = False  # the contact agreed to texts (ClientTether's "OK to SMS")
    address: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    time_zone: TimeZoneName | None = None  # IANA, when the CRM knows it
    lead_source: str = ""
    sales_cycle_step: str = ""
    assigned_user_id: str | None = None
    created_at: AwareDatetime | None = None
    appointment_at: AwareDatetime | None = None


class PlanUser(_Shape):
    id: str = Field(min_length=1)
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    phone: Phone | None = None


class PlanAccount(_Shape):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    phone: str = ""
    website: str = ""
    time_zone: TimeZoneName


class PlanContext(_Shape):
    contact: PlanContact
    user: PlanUser | None = None  # the assigned user; None when nobody is assigned
    account: PlanAccount

    def time_zone(self) -> str:
        return contact_time_zone(self.contact, self.account.time_zone)

    def tokens(self) -> dict[str, Any]:
        """The plain dict templates render from. Roots: `contact` (also `client`, ClientTether's name),
        `user` and `account`; each field under its snake_case name and its camelCase alias (first_name and
        firstName), plus full_name/fullName for the contact and user. Datetimes are in the contact's time zone.
        An empty value (None or "") is left out, so it is undefined: `default` and `fallback` fill it, and a
        bare use fails to render instead of sending "Hi ,"."""
        zone = ZoneInfo(self.time_zone())
        contact = _Tokens.of("contact", self.contact, zone)
        return {"contact": contact, "client": contact.renamed("client"),
                "user": _Tokens.of("user", self.user, zone), "account": _Tokens.of("account", self.account, zone)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class _Tokens(dict[str, Any]):
    """One root's values; knows its root's name so an undefined token is reported as `contact.first_name`."""

    _root: str

    @classmethod
    def of(cls, root: str, shape: BaseModel | None, zone: ZoneInfo) -> "_Tokens":
        tokens = cls()
        tokens._root = root
        if shape is None:
            return tokens
        values = shape.model_dump()
        if "first_name" in values:
            values["full_name"] = f"{values['first_name']} {values['last_name']}".strip()
        for name, value in values.items():
            if value is None or value == "":
                continue
            if isinstance(value, datetime):
                value = value.astimezone(zone)
            tokens[name] = tokens[_camel(name)] = value
        return tokens

    def renamed(self, root: str) -> "_Tokens":
        tokens = _Tokens(self)
        tokens._root = root
        return tokens


def _names(root: str, shape: type[BaseModel], derived: tuple[str, ...] = ()) -> set[str]:
    fields = (*shape.model_fields, *derived)
    return {f"{root}.{name}" for field in fields for name in (field, _camel(field))}


_PERSON = ("full_name",)
KNOWN_TOKENS: frozenset[str] = frozenset(
    _names("contact", PlanContact, _PERSON) | _names("client", PlanContact, _PERSON)
    | _names("user", PlanUser, _PERSON) | _names("account", PlanAccount))
# The tokens a wait may wait until.
DATE_TOKENS: frozenset[str] = frozenset(
    token for token in KNOWN_TOKENS if token.split(".")[1] in {"created_at", "createdAt", "appointment_at",
                                                                "appointmentAt"})
# The tokens every context has a value for; any other may be empty, so a message using it needs a fallback.
ALWAYS_PRESENT: frozenset[str] = frozenset({"contact.id", "client.id", "contact.smsok", "client.smsok", "account.id",
                                            "account.name", "account.time_zone", "account.timeZone"})


def token_value(context: PlanContext, token: str) -> Any:
    """A token's value ("contact.appointment_at"), None when empty: what waits and branches read."""
    root, name = token.split(".", 1)
    return context.tokens()[root].get(name)


def _area_code(phone: str | None) -> str | None:
    if phone is None:
        return None
    if len(phone) == 10 and phone.isdigit():
        return phone[:3]
    if phone.startswith("+1") and len(phone) == 12:
        return phone[2:5]
    return None


def contact_time_zone(contact: PlanContact, account_time_zone: str) -> str:
    """Where the contact is: their own zone when the CRM knows it, else their US phone's area code's, else
    the account's. TCPA hours are the called party's, not the server's nor always the account's."""
    if contact.time_zone:
        return contact.time_zone
    return AREA_CODE_ZONES.get(_area_code(contact.phone) or "", account_time_zone)
