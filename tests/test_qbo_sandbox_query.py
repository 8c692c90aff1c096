"""The sandbox's query language follows QBO's grammar and rules."""

from decimal import Decimal
from typing import Any

import pytest

from sandbox.qbo import query
from sandbox.qbo.faults import QboFault

CUSTOMERS: list[dict[str, Any]] = [
    {"Id": "1", "DisplayName": "O'Brien Plumbing", "Active": True, "Balance": Decimal("10.00")},
    {"Id": "2", "DisplayName": "dana whitfield", "Active": True, "Balance": Decimal("250.50")},
    {"Id": "3", "DisplayName": "Old Customer", "Active": False, "Balance": Decimal("0")},
    {"Id": "10", "DisplayName": "Zed", "Active": True, "Balance": Decimal("5"),
     "MetaData": {"LastUpdatedTime": "2026-11-20T10:00:00-08:00"}},
]


def ids(statement: str) -> list[str]:
    response = query.run(query.parse(statement), CUSTOMERS)
    return [row["Id"] for row in response.get("Customer", [])]


def test_equality_is_case_insensitive_and_keywords_too() -> None:
    assert ids("select * from Customer where DisplayName = 'Dana WHITFIELD'") == ["2"]


def test_escaped_quote() -> None:
    assert ids("SELECT * FROM Customer WHERE DisplayName = 'O\\'Brien Plumbing'") == ["1"]


def test_inactive_records_hidden_unless_asked_for() -> None:
    assert ids("SELECT * FROM Customer ") == ["1", "2", "10"]
    assert ids("SELECT * FROM Customer WHERE Active IN (true, false)") == ["1", "2", "3", "10"]


def test_operators_like_in_and_dotted_fields() -> None:
    assert ids("SELECT * FROM Customer WHERE Balance > '9.99' ORDERBY Balance DESC") == ["2", "1"]
    assert ids("SELECT * FROM Customer WHERE DisplayName LIKE '%plumb%'") == ["1"]
    assert ids("SELECT * FROM Customer WHERE Id in ('2', '10')") == ["2", "10"]
    assert ids("SELECT * FROM Customer WHERE MetaData.LastUpdatedTime >= '2026-11-01'") == ["10"]


def test_count_and_paging() -> None:
    assert query.run(query.parse("SELECT COUNT(*) FROM Customer"), CUSTOMERS) == {"totalCount": 3}
    page = query.run(query.parse("SELECT * FROM Customer ORDER BY Id STARTPOSITION 2 MAXRESULTS 1"), CUSTOMERS)
    assert [r["Id"] for r in page["Customer"]] == ["2"] and page["startPosition"] == 2
    assert query.run(query.parse("SELECT * FROM Customer STARTPOSITION 50"), CUSTOMERS) == {}


@pytest.mark.parametrize("statement", [
    "SELECT * FROM Customer WHERE DisplayName = 'a' OR Id = '1'",
    "SELECT DisplayName FROM Customer",
    "SELECT * FROM Customer WHERE Id > '3'",
    "DELETE FROM Customer",
])
def test_unsupported_statements_are_parse_errors(statement: str) -> None:
    with pytest.raises(QboFault) as raised:
        query.parse(statement)
    assert raised.value.code == "4000"
