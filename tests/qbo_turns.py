"""QBO calls a test makes outside any activity, as an operator's tool would: through the real limiter, which
lets such a call wait in place only briefly, so a company kept busy by running workflows turns it away with
`RealmBusy`. The caller waits the delay it names and asks again. And QBO activities a test runs by itself,
retried as Temporal would retry them."""

import time
from collections.abc import Callable
from typing import Any, TypeVar

from quickbooks import QuickBooks
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.qbo_client import QboConnector
from activities.qbo_limits import RealmBusy

T = TypeVar("T")


def call_in_turn(connector: QboConnector, realm_id: str, fn: Callable[[QuickBooks], T], tries: int = 200,
                 on_busy: Callable[[RealmBusy], None] | None = None) -> T:
    """`connector.call`, retried on `RealmBusy` after its `next_retry_delay`; `on_busy` sees each refusal."""
    for _ in range(tries):
        try:
            return connector.call(realm_id, fn)
        except RealmBusy as busy:
            if on_busy:
                on_busy(busy)
            time.sleep(busy.next_retry_delay.total_seconds() if busy.next_retry_delay else 0.05)
    raise AssertionError(f"QBO company {realm_id} had no room in {tries} tries")


def with_retries(fn: Callable[[Any], T], arg: Any, attempts: int = 40,
                 retry_on: tuple[type[ApplicationError], ...] = (ApplicationError,)) -> T:
    """Run an activity as Temporal would: again after every retryable failure (of the `retry_on` kinds: only
    `RealmBusy` to see any other failure at once), after the delay it asks for."""
    for _ in range(attempts):
        try:
            return ActivityEnvironment().run(fn, arg)
        except ApplicationError as error:
            if error.non_retryable or not isinstance(error, retry_on):
                raise
            time.sleep(error.next_retry_delay.total_seconds() if error.next_retry_delay else 0.05)
    raise AssertionError(f"{fn.__name__} did not succeed in {attempts} attempts")
