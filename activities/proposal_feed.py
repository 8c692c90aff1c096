"""Hands what reconciliation read from the CRM to the proposal workflows, through the same signal-with-start
as the webhooks: a lost webhook delays a change, it never loses it."""

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from config.settings import Settings
from dispatch import send_proposal_synced
from models.accounts import Franchisee
from models.reconcile import FeedInput

# Signals in flight at once: enough to feed a page quickly, few enough to be gentle with the server.
CONCURRENT_SIGNALS = 10


class ProposalFeedActivities:
    def __init__(self, client: Client, settings: Settings, engine: Engine) -> None:
        self.client = client
        self.settings = settings
        self.engine = engine

    @activity.defn
    async def feed_proposals(self, input: FeedInput) -> int:
        """Signal-with-start each proposal's workflow; returns how many were fed. Repeating it is harmless:
        each snapshot's event id is fixed by the CRM's own change time."""
        with Session(self.engine) as session:
            franchisee = session.get(Franchisee, input.account_id)
        if franchisee is None:
            raise ApplicationError(f"unknown account {input.account_id}", type="UnknownAccount", non_retryable=True)
        gate = asyncio.Semaphore(CONCURRENT_SIGNALS)

        async def feed(index: int) -> None:
            async with gate:
                await send_proposal_synced(self.client, self.settings, franchisee, input.proposals[index])
                activity.heartbeat(index)

        await asyncio.gather(*(feed(i) for i in range(len(input.proposals))))
        return len(input.proposals)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.feed_proposals]
