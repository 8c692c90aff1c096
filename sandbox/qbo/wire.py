"""QBO's JSON on the wire: amounts as JSON numbers, never through a lossy path."""

import json
from decimal import Decimal
from typing import Any


class QboJSON(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        # A cents amount has at most 15 significant digits, so its float repr round-trips exactly.
        if isinstance(o, Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


def dumps(body: Any) -> str:
    return json.dumps(body, cls=QboJSON)


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)
