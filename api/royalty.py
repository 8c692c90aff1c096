"""The royalty report over HTTP: HTML (with its chart drawn here, as inline SVG, so the page works offline),
CSV and JSON of the same rows. A franchisor's key reads the franchisor's report and each franchisee's; a
franchisee's key reads only its own. A charge outside what the key may read is a 404, never a hint."""

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.datastructures import URL

from api.auth import AUTH_RESPONSES, AccountReader, FranchisorReader
from models.api_keys import ApiKey
from models.money import cents
from models.royalty_report import (
    ChargeDetail,
    DayTotals,
    RoyaltyReport,
    charge_detail,
    royalty_report,
    write_charges_csv,
    write_items_csv,
)

router = APIRouter(tags=["royalty"])
T = TypeVar("T")


def _money(value: Decimal) -> str:
    return f"{cents(value):,.2f}"


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters.update(money=_money, percent=_percent)
templates = Jinja2Templates(env=_env)

Start = Annotated[date | None, Query(description="the first business date to include (YYYY-MM-DD)")]
End = Annotated[date | None, Query(description="the last business date to include (YYYY-MM-DD)")]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}, "description": "CSV, one row each"}}
HTML_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {}}, "description": "the page"}}


# -- the chart ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bar:
    x: Decimal
    width: Decimal
    royalty_y: Decimal
    royalty_height: Decimal
    marketing_y: Decimal
    marketing_height: Decimal
    day: DayTotals
    labelled: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    bottom: int  # the y of the zero line
    ticks: list[tuple[Decimal, Decimal]]  # (y, amount)
    bars: list[Bar]


def _nice_ceiling(value: Decimal) -> Decimal:
    """The axis top: the smallest 1, 2, 2.5 or 5 times a power of ten at or above `value`."""
    if value <= 0:
        return Decimal(1)
    power = Decimal(1).scaleb(value.adjusted())
    return next(step * power for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))
                if value <= step * power)


def royalty_chart(days: list[DayTotals], width: int = 720, height: int = 260) -> Chart:
    """Royalty (and marketing stacked on it) due per business date, as bar geometry in SVG units."""
    left, right, top, bottom = 72, 16, 16, height - 36
    top_value = _nice_ceiling(max((d.total_due for d in days), default=Decimal(0)))
    slot = Decimal(width - left - right) / max(len(days), 1)
    bar_width = min(slot * Decimal("0.7"), Decimal(48))
    every = math.ceil(len(days) / 8) or 1
    scale = Decimal(bottom - top) / top_value
    one = Decimal("0.1")
    bars = []
    for n, day in enumerate(days):
        royalty_height, marketing_height = day.royalty_due * scale, day.marketing_due * scale
        bars.append(Bar(x=(left + slot * n + (slot - bar_width) / 2).quantize(one), width=bar_width.quantize(one),
                        royalty_y=(bottom - royalty_height).quantize(one), royalty_height=royalty_height.quantize(one),
                        marketing_y=(bottom - royalty_height - marketing_height).quantize(one),
                        marketing_height=marketing_height.quantize(one), day=day,
                        labelled=n % every == 0 or n == len(days) - 1))
    ticks = [((bottom - amount * scale).quantize(one), amount) for amount in (Decimal(0), top_value / 2, top_value)]
    return Chart(width=width, height=height, left=left, top=top, bottom=bottom, ticks=ticks, bars=bars)


# -- reading and rendering ------------------------------------------------------------------------------
def _checked(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and start > end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be on or before end")


def _franchisor_of(caller: ApiKey) -> str | None:
    """A franchisor's key reads a franchisee only as far as its own runs charged it."""
    return caller.account_id if caller.scope == "franchisor" else None


def _account_report(request: Request, account_id: str, caller: ApiKey, start: date | None,
                    end: date | None) -> RoyaltyReport:
    _checked(start, end)
    return royalty_report(request.app.state.engine, _franchisor_of(caller), account_id, start, end)


def _franchisor_report(request: Request, franchisor_id: str, start: date | None, end: date | None) -> RoyaltyReport:
    _checked(start, end)
    return royalty_report(request.app.state.engine, franchisor_id, None, start, end)


def _detail(request: Request, account_id: str, charge_id: int, caller: ApiKey) -> ChargeDetail:
    detail = charge_detail(request.app.state.engine, account_id, charge_id, _franchisor_of(caller))
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no royalty charge {charge_id} in account {account_id!r}")
    return detail


def _csv(write: Callable[[T, io.StringIO], None], data: T, filename: str) -> Response:
    out = io.StringIO()
    write(data, out)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{safe}"'})


def _report_name(report: RoyaltyReport) -> str:
    who = report.account_id or report.franchisor_id or "royalty"
    return f"royalty-{who}-{report.start or 'start'}-{report.end or 'end'}.csv"


def _links(request: Request, route: str, start: date | None, end: date | None, **path: str) -> dict[str, str]:
    """The CSV and JSON of the page, the same date range kept."""
    query = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v is not None}
    return {kind: _href(request.url_for(f"{route}_{kind}", **path).include_query_params(**query))
            for kind in ("csv", "json")}


def _href(url: URL) -> str:
    """A link without scheme and host: right behind any proxy that keeps the path."""
    return url.path + (f"?{url.query}" if url.query else "")


def _report_page(request: Request, report: RoyaltyReport, links: dict[str, str]) -> HTMLResponse:
    return templates.TemplateResponse(request, "royalty_report.html", {
        "report": report, "chart": royalty_chart(report.days) if report.days else None, "links": links})


# -- a franchisor's report ------------------------------------------------------------------------------
@router.get("/franchisors/{franchisor_id}/royalty.csv", response_class=Response,
            responses={**AUTH_RESPONSES, **CSV_RESPONSE})
def franchisor_royalty_csv(franchisor_id: str, request: Request, _caller: FranchisorReader, start: Start = None,
                           end: End = None) -> Response:
    """Every charge of the franchisor's runs as CSV, one row per franchisee and business date."""
    report = _franchisor_report(request, franchisor_id, start, end)
    return _csv(write_charges_csv, report.charges, _report_name(report))


@router.get("/franchisors/{franchisor_id}/royalty.json", responses=AUTH_RESPONSES)
def franchisor_royalty_json(franchisor_id: str, request: Request, _caller: FranchisorReader, start: Start = None,
                            end: End = None) -> RoyaltyReport:
    """The franchisor's report as JSON; amounts are decimal strings."""
    return _franchisor_report(request, franchisor_id, start, end)


@router.get("/franchisors/{franchisor_id}/royalty", response_class=HTMLResponse,
            responses={**AUTH_RESPONSES, **HTML_RESPONSE})
def franchisor_royalty_html(franchisor_id: str, request: Request, _caller: FranchisorReader, start: Start = None,
                            end: End = None) -> HTMLResponse:
    """The franchisor's royalty: totals per franchisee and per day, a chart, the runs and their failures, and
    every charge. Only the franchisor's own key reads it."""
    report = _franchisor_report(request, franchisor_id, start, end)
    return _report_page(request, report, _links(request, "franchisor_royalty", start, end,
                                                franchisor_id=franchisor_id))


# -- one franchisee's report ----------------------------------------------------------------------------
@router.get("/accounts/{account_id}/royalty.csv", response_class=Response,
            responses={**AUTH_RESPONSES, **CSV_RESPONSE})
def account_royalty_csv(account_id: str, request: Request, caller: AccountReader, start: Start = None,
                        end: End = None) -> Response:
    """The franchisee's charges as CSV."""
    report = _account_report(request, account_id, caller, start, end)
    return _csv(write_charges_csv, report.charges, _report_name(report))


@router.get("/accounts/{account_id}/royalty.json", responses=AUTH_RESPONSES)
def account_royalty_json(account_id: str, request: Request, caller: AccountReader, start: Start = None,
                         end: End = None) -> RoyaltyReport:
    """The franchisee's report as JSON."""
    return _account_report(request, account_id, caller, start, end)


@router.get("/accounts/{account_id}/royalty", response_class=HTMLResponse,
            responses={**AUTH_RESPONSES, **HTML_RESPONSE})
def account_royalty_html(account_id: str, request: Request, caller: AccountReader, start: Start = None,
                         end: End = None) -> HTMLResponse:
    """The franchisee's royalty: its charges, totals per day, a chart, and its result in each run."""
    report = _account_report(request, account_id, caller, start, end)
    return _report_page(request, report, _links(request, "account_royalty", start, end, account_id=account_id))


# -- a charge and the payments it covered ---------------------------------------------------------------
@router.get("/accounts/{account_id}/royalty/charges/{charge_id}.csv", response_class=Response,
            responses={**AUTH_RESPONSES, **CSV_RESPONSE})
def royalty_charge_csv(account_id: str, charge_id: int, request: Request, caller: AccountReader) -> Response:
    """The payments the charge covered and the refunds it credited, as CSV."""
    detail = _detail(request, account_id, charge_id, caller)
    return _csv(write_items_csv, detail, f"royalty-{account_id}-charge-{charge_id}.csv")


@router.get("/accounts/{account_id}/royalty/charges/{charge_id}.json", responses=AUTH_RESPONSES)
def royalty_charge_json(account_id: str, charge_id: int, request: Request, caller: AccountReader) -> ChargeDetail:
    """The charge and every payment and refund it covered, as JSON."""
    return _detail(request, account_id, charge_id, caller)


@router.get("/accounts/{account_id}/royalty/charges/{charge_id}", response_class=HTMLResponse,
            responses={**AUTH_RESPONSES, **HTML_RESPONSE})
def royalty_charge_html(account_id: str, charge_id: int, request: Request, caller: AccountReader) -> HTMLResponse:
    """The charge: how its amounts were worked out, and every payment it covered and refund it credited."""
    detail = _detail(request, account_id, charge_id, caller)
    links = {kind: _href(request.url_for(f"royalty_charge_{kind}", account_id=account_id, charge_id=str(charge_id)))
             for kind in ("csv", "json")}
    links["report"] = _href(request.url_for("account_royalty_html", account_id=account_id))
    return templates.TemplateResponse(request, "royalty_charge.html", {"detail": detail, "links": links})
