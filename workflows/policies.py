"""Retry policies and time limits shared by the workflows that call QuickBooks, the gateway and the ledger."""

from datetime import timedelta

from temporalio.common import RetryPolicy

# QBO outages delay the work, they never fail it: retry until QBO answers, except for final faults.
QBO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    non_retryable_error_types=["QboValidationError", "QboNotConnected", "QboSetupError"],
)
# The gateway answers a repeated idempotency id with the first transaction, so retrying a charge is safe.
GATEWAY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["GatewayDeclined"],
)
# CRM writes: outages are retried; a refusal (CrmRefused) gets the same answer again, so it is final.
CRM_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                        non_retryable_error_types=["CrmRefused"])
LEDGER_TIMEOUT = timedelta(seconds=30)
