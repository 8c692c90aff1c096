"""QBO's fault bodies and statuses, exactly as the real service sends them."""

from typing import Any

# A throttled request gets XML, even when JSON was asked for.
THROTTLE_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2026-01-01T00:00:00.000-08:00">'
    '<Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; '
    "statusCode=429</Message><Detail>The request limit was reached.  Try again later</Detail></Error></Fault>"
    "</IntuitResponse>"
)


class QboFault(Exception):
    """A validation or system fault: HTTP 400 (or 500 for SystemFault) with QBO's capitalised Fault body."""

    def __init__(
        self, code: str, message: str, detail: str = "", element: str = "", fault_type: str = "ValidationFault"
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.fault_type = fault_type

    @property
    def status(self) -> int:
        return 500 if self.fault_type == "SystemFault" else 400

    def body(self, now: str) -> dict[str, Any]:
        error = {"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}
        return {"Fault": {"Error": [error], "type": self.fault_type}, "time": now}


def duplicate_name(existing_id: str) -> QboFault:
    return QboFault(
        "6240",
        "Duplicate Name Exists Error",
        f"The name supplied already exists. : Id={existing_id}",
    )


def unsupported_property(element: str, problem: str) -> QboFault:
    return QboFault("2010", "Request has invalid or unsupported property",
                    f"Property Name:{element} {problem}", element)


def duplicate_doc_number(doc_number: str) -> QboFault:
    return QboFault("6140", "Duplicate Document Number Error",
                    f"Duplicate Document Number Error : You must specify a different number. "
                    f"This number has already been used. DocNumber={doc_number}")


def not_found(entity: str, object_id: str) -> QboFault:
    return QboFault(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. Check the fields with "
        f"accounts, customers, items, vendors or employees. ({entity} {object_id})",
    )


def invalid_reference(element: str, value: str) -> QboFault:
    return QboFault("2500", "Invalid Reference Id", f"Invalid Reference Id : {element} {value}", element)


def required_missing(element: str) -> QboFault:
    return QboFault("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {element} is missing in the request", element)


def stale_object() -> QboFault:
    return QboFault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and another user were working on the same thing. The other user finished "
        "before you did, so your work was not saved.",
    )


def query_parse_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def business_validation(detail: str) -> QboFault:
    return QboFault("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}")


def amount_calculation(detail: str) -> QboFault:
    return QboFault("6070", "Amount calculation incorrect", detail)


def auth_failure_body(detail: str = "Token expired") -> dict[str, Any]:
    """401 bodies use a different, lower-case shape."""
    return {
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
                    "code": "3200",
                }
            ],
            "type": "AUTHENTICATION",
        }
    }
