"""The HTTP face of Ledgerflow: CRM webhooks, inbound texts and email, enrollments, reports; lead posts as
they arrive."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import (
    audit,
    crm_events,
    email_capture,
    gateway_webhooks,
    health,
    inbound,
    lead_monitor,
    leads,
    openapi,
    payments,
    plans,
    proposals,
    receivables,
    royalty,
    temporal_errors,
)
from api.access_log import mask_secret_paths
from api.limits import BodySizeLimit
from config.settings import Settings, get_settings
from config.temporal import connect
from models.db import create_tables, get_engine


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    mask_secret_paths()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = get_engine(settings.database_url)
        create_tables(engine)
        app.state.settings = settings
        app.state.engine = engine
        app.state.temporal = await connect(settings)
        yield

    app = FastAPI(title="Ledgerflow", lifespan=lifespan,
                  description="CRM webhooks in, durable workflows out. Every POST is authenticated.")
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.include_router(crm_events.router)
    app.include_router(health.router)
    app.include_router(audit.router)
    app.include_router(proposals.router)
    app.include_router(royalty.router)
    app.include_router(plans.router)
    app.include_router(inbound.router)
    app.include_router(email_capture.router)
    app.include_router(leads.router)
    app.include_router(lead_monitor.router)
    app.include_router(payments.router)
    app.include_router(receivables.router)
    app.include_router(gateway_webhooks.router)
    openapi.install(app)
    temporal_errors.install(app)
    return app


app = create_app()
