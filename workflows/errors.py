"""What a workflow says about a failed activity or child: the innermost cause, and its type."""

from temporalio.exceptions import ActivityError, ApplicationError


def cause_message(error: BaseException) -> str:
    """The innermost failure's message: what went wrong, not the chain of wrappers around it."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error)


def cause_type(error: ActivityError) -> str | None:
    """The ApplicationError type the activity raised (its `type=`), if it raised one."""
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None
