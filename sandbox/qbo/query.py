"""QBO's query language: parse a statement and run it over one company's objects.

SELECT * | COUNT(*) FROM Entity [WHERE a op v [AND ...]] [ORDER[ ]BY f [ASC|DESC]] [STARTPOSITION n]
[MAXRESULTS m]; operators = < > <= >= IN LIKE; no OR, no JOIN; keywords, names and strings compare
case-insensitively; quotes escaped with a backslash.
"""

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.qbo.faults import query_parse_error

NAME_LISTS = {"Customer", "Vendor", "Employee", "Item", "Account", "Class", "Department", "Term", "PaymentMethod"}
DEFAULT_PAGE = 100
MAX_PAGE = 1000

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:\\.|[^'\\])*')
      | (?P<op><=|>=|!=|=|<|>)
      | (?P<punct>[*,()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<number>-?\d+(?:\.\d+)?)
    )""",
    re.VERBOSE,
)


@dataclass
class Condition:
    field: str
    op: str
    value: Any


@dataclass
class Query:
    entity: str
    count: bool = False
    where: list[Condition] = field(default_factory=list)
    order_by: str | None = None
    descending: bool = False
    start_position: int = 1
    max_results: int = DEFAULT_PAGE


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip().rstrip(";")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise query_parse_error(f"Encountered \"{text[pos:pos + 10]}\" at column {pos + 1}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise query_parse_error("Unexpected end of statement")
        self.i += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() in words:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise query_parse_error(f"Expected {word} near token {self.peek()}")

    def expect_punct(self, punct: str) -> None:
        token = self.next()
        if token != ("punct", punct):
            raise query_parse_error(f"Expected '{punct}' but found '{token[1]}'")

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count = False
        if self.keyword("COUNT"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        else:
            self.expect_punct("*")
            while self.peek() == ("punct", ","):  # `SELECT *, Sku`: extra columns are accepted and ignored
                self.next()
                self.next()
        self.expect_keyword("FROM")
        kind, entity = self.next()
        if kind != "word":
            raise query_parse_error(f"Expected an entity name but found '{entity}'")
        query = Query(entity=entity, count=count)
        if self.keyword("WHERE"):
            query.where.append(self.condition())
            while self.keyword("AND"):
                query.where.append(self.condition())
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self._by()):
            query.order_by = self.next()[1]
            if self.keyword("DESC"):
                query.descending = True
            else:
                self.keyword("ASC")
        if self.keyword("STARTPOSITION"):
            query.start_position = self.integer()
        if self.keyword("MAXRESULTS"):
            query.max_results = min(self.integer(), MAX_PAGE)
        if self.peek() is not None:
            raise query_parse_error(f"Unexpected token '{self.peek()[1]}'")  # type: ignore[index]
        return query

    def _by(self) -> bool:
        self.expect_keyword("BY")
        return True

    def integer(self) -> int:
        kind, value = self.next()
        if kind != "number" or not value.isdigit():
            raise query_parse_error(f"Expected a positive integer but found '{value}'")
        return int(value)

    def condition(self) -> Condition:
        kind, name = self.next()
        if kind != "word":
            raise query_parse_error(f"Expected a field name but found '{name}'")
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.value()]
            while self.peek() == ("punct", ","):
                self.next()
                values.append(self.value())
            self.expect_punct(")")
            return Condition(name, "IN", values)
        if self.keyword("LIKE"):
            return Condition(name, "LIKE", self.value())
        kind, op = self.next()
        if kind != "op" or op == "!=":
            raise query_parse_error(f"Unsupported operator '{op}'")
        if name == "Id" and op != "=":
            raise query_parse_error("Id supports only = and IN")
        return Condition(name, op, self.value())

    def value(self) -> Any:
        kind, text = self.next()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            return Decimal(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise query_parse_error(f"Expected a value but found '{text}'")


def parse(text: str) -> Query:
    return _Parser(text).parse()


def _lookup(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        key = next((k for k in value if k.lower() == part.lower()), None)
        if key is None:
            return None
        value = value[key]
    if isinstance(value, dict) and "value" in value:  # Ref fields filter on their value
        value = value["value"]
    return value


def _comparable(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal | int | float):
        return Decimal(str(value))
    text = str(value)
    try:
        return Decimal(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else text.casefold()
    except InvalidOperation:
        return text.casefold()


def _matches(obj: dict[str, Any], cond: Condition) -> bool:
    actual = _comparable(_lookup(obj, cond.field))
    if cond.op == "IN":
        return actual in {_comparable(v) for v in cond.value}
    expected = _comparable(cond.value)
    if cond.op == "LIKE":
        pattern = "^" + ".*".join(re.escape(part) for part in str(expected).split("%")) + "$"
        return actual is not None and re.match(pattern, str(actual), re.DOTALL) is not None
    if actual is None:
        return False
    try:
        return {
            "=": actual == expected,
            "<": actual < expected,
            ">": actual > expected,
            "<=": actual <= expected,
            ">=": actual >= expected,
        }[cond.op]
    except TypeError:
        return False


def run(query: Query, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Filter, order and page; the `QueryResponse` body QBO returns."""
    rows = [o for o in objects if all(_matches(o, c) for c in query.where)]
    if query.entity in NAME_LISTS and not any(c.field.lower() == "active" for c in query.where):
        rows = [o for o in rows if o.get("Active", True)]
    if query.count:
        return {"totalCount": len(rows)}
    if query.order_by:
        order_by = query.order_by

        def sort_key(obj: dict[str, Any]) -> tuple[int, Any]:
            value = _comparable(_lookup(obj, order_by))
            if value is None:
                return (2, "")
            return (0, value) if isinstance(value, Decimal) else (1, str(value))

        rows.sort(key=sort_key, reverse=query.descending)
    else:
        rows.sort(key=lambda o: int(o["Id"]))
    page = rows[query.start_position - 1 : query.start_position - 1 + query.max_results]
    if not page:
        return {}
    return {query.entity: page, "startPosition": query.start_position, "maxResults": len(page)}
