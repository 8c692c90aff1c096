"""The royalty report over HTTP, behind per-account keys, over a ledger the real royalty workflow wrote (see
tests/test_royalty_report.py): who sees what, the totals to the cent, the CSV, the drill-down, the page."""

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config.settings import Settings
from models.accounts import Franchisee
from models.api_keys import create_api_key
from models.royalty_report import royalty_report
from sandbox.serve import ServerThread
from tests.test_royalty_report import NEXT, NIGHT, REFUSED, write_ledger
from tests.test_royalty_workflow import AUSTIN, DENVER, Network

D = Decimal
AUSTIN_NAME, DENVER_NAME = "Acme Home Services of Austin", "Acme Home Services of Denver"


@pytest.fixture
def royalty_api(settings: Settings, engine: Engine, time_skipping_env: WorkflowEnvironment) -> Iterator[ServerThread]:
    """The API on a free port; the report reads only the database, so the time-skipping server will do."""
    target = time_skipping_env.client.service_client.config.target_host
    with ServerThread(create_app(settings.model_copy(update={"temporal_address": target}))) as server:
        yield server


@pytest.fixture
async def ledger(time_skipping_env: WorkflowEnvironment, engine: Engine, franchisor_id: str) -> Network:
    network = Network(time_skipping_env, engine, franchisor_id)
    await write_ledger(network)
    return network


@pytest.fixture
def charges(ledger: Network) -> dict[tuple[str, date], int]:
    """Each charge's id by (account, business date)."""
    return {(c.account_id, c.business_date): c.charge_id for c in royalty_report(ledger.engine, ledger.franchisor_id)
            .charges}


async def get(api: ServerThread, path: str, key: str | None = None, **params: Any) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        return await http.get(path, headers=headers, params=params)


def assert_refused(response: httpx.Response, code: int) -> None:
    """Refused with only a reason: no name, no account, no amount, no error of anyone's."""
    assert response.status_code == code, response.text
    assert set(response.json()) == {"detail"}
    for secret in (AUSTIN_NAME, DENVER_NAME, "36.18", "22.00", "Denver", REFUSED):
        assert secret not in response.text


async def test_the_franchisor_key_sees_every_franchisee_to_the_cent(royalty_api: ServerThread,
                                                                    ledger: Network) -> None:
    key = create_api_key(ledger.engine, ledger.franchisor_id, "head office")
    base = f"/franchisors/{ledger.franchisor_id}/royalty"

    report = (await get(royalty_api, f"{base}.json", key)).json()
    page = await get(royalty_api, base, key)

    assert {f["account_id"]: (f["royalty_due"], f["marketing_due"], f["total_due"], f["outstanding"])
            for f in report["franchisees"]} == {AUSTIN: ("36.18", "12.06", "48.24", "0.00"),
                                                DENVER: ("22.00", "6.00", "28.00", "7.00")}
    assert [(d["business_date"], d["royalty_due"], d["total_due"]) for d in report["days"]] == [
        ("2026-11-21", "34.68", "45.24"), ("2026-11-22", "23.50", "31.00")]
    assert report["total"]["total_due"] == "76.24"
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert AUSTIN_NAME in html and DENVER_NAME in html
    for amount in ("36.18", "22.00", "34.68", "23.50", "76.24"):
        assert amount in html
    assert "<script" not in html and "<link" not in html  # nothing to fetch: the page works offline
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert svg.count('fill="#2f5fa7"') == 3  # a royalty bar per business date, and the legend
    heights = [D(h) for h in re.findall(r'height="([\d.]+)" fill="#2f5fa7"', svg)][:2]
    assert heights[0] > heights[1] > 0  # 34.68 on the 21st, 23.50 on the 22nd
    runs = html[html.index("<h2>Runs</h2>"):html.index("<h2>Charges</h2>")]
    assert "1 failed" in runs and DENVER_NAME in runs and REFUSED in runs


async def test_every_charge_on_the_page_links_to_its_payments(royalty_api: ServerThread, ledger: Network,
                                                              charges: dict[tuple[str, date], int]) -> None:
    key = create_api_key(ledger.engine, ledger.franchisor_id)
    html = (await get(royalty_api, f"/franchisors/{ledger.franchisor_id}/royalty", key)).text

    links = re.findall(r'href="(/accounts/[^"]+/royalty/charges/\d+)"', html)
    assert sorted(links) == sorted(f"/accounts/{a}/royalty/charges/{c}" for (a, _d), c in charges.items())
    for link in links:  # the franchisor's key follows each one
        assert (await get(royalty_api, link, key)).status_code == 200


async def test_a_franchisee_key_sees_only_itself(royalty_api: ServerThread, ledger: Network,
                                                 charges: dict[tuple[str, date], int]) -> None:
    key = create_api_key(ledger.engine, AUSTIN)

    own = (await get(royalty_api, f"/accounts/{AUSTIN}/royalty.json", key)).json()
    page = await get(royalty_api, f"/accounts/{AUSTIN}/royalty", key)

    assert {c["account_id"] for c in own["charges"]} == {AUSTIN} and own["total"]["total_due"] == "48.24"
    assert [[o["account_id"] for o in run["outcomes"]] for run in own["runs"]] == [[AUSTIN], [AUSTIN]]
    assert page.status_code == 200 and "48.24" in page.text
    for text in (str(own), page.text):
        assert DENVER not in text and DENVER_NAME not in text and REFUSED not in text and "22.00" not in text

    denver_charge = charges[(DENVER, NEXT)]
    for path in (f"/franchisors/{ledger.franchisor_id}/royalty", f"/franchisors/{ledger.franchisor_id}/royalty.csv",
                 f"/franchisors/{ledger.franchisor_id}/royalty.json", f"/accounts/{DENVER}/royalty",
                 f"/accounts/{DENVER}/royalty.csv", f"/accounts/{DENVER}/royalty.json",
                 f"/accounts/{DENVER}/royalty/charges/{denver_charge}",
                 f"/accounts/{DENVER}/royalty/charges/{denver_charge}.csv"):
        assert_refused(await get(royalty_api, path, key), 403)
    for suffix in ("", ".csv", ".json"):  # Denver's charge asked for as if it were Austin's: not there at all
        assert_refused(await get(royalty_api, f"/accounts/{AUSTIN}/royalty/charges/{denver_charge}{suffix}", key),
                       404)


async def test_another_franchisors_key_is_403(royalty_api: ServerThread, ledger: Network) -> None:
    key = create_api_key(ledger.engine, "acme")  # the example franchisor, no longer these franchisees'
    assert_refused(await get(royalty_api, f"/franchisors/{ledger.franchisor_id}/royalty", key), 403)
    assert_refused(await get(royalty_api, f"/accounts/{AUSTIN}/royalty.csv", key), 403)
    own = (await get(royalty_api, "/franchisors/acme/royalty.json", key)).json()
    assert own["charges"] == [] and own["franchisees"] == []


@pytest.mark.parametrize("path", ["/franchisors/{f}/royalty", "/franchisors/{f}/royalty.csv",
                                  "/accounts/acme-austin/royalty", "/accounts/acme-austin/royalty.json",
                                  "/accounts/acme-austin/royalty/charges/1", "/franchisors/nobody/royalty"])
async def test_no_key_is_401(royalty_api: ServerThread, ledger: Network, path: str) -> None:
    response = await get(royalty_api, path.format(f=ledger.franchisor_id))
    assert_refused(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_franchisor_or_bad_dates(royalty_api: ServerThread, ledger: Network) -> None:
    key = create_api_key(ledger.engine, ledger.franchisor_id)
    assert (await get(royalty_api, "/franchisors/nobody/royalty", key)).status_code == 404
    base = f"/franchisors/{ledger.franchisor_id}/royalty"
    assert (await get(royalty_api, base, key, start="2026-11-23", end="2026-11-22")).status_code == 422
    assert (await get(royalty_api, base, key, start="yesterday")).status_code == 422
    assert (await get(royalty_api, f"/accounts/{AUSTIN}/royalty/charges/one", key)).status_code == 422


async def test_the_csv_parses_back_to_the_same_amounts(royalty_api: ServerThread, ledger: Network) -> None:
    key = create_api_key(ledger.engine, ledger.franchisor_id)
    base = f"/franchisors/{ledger.franchisor_id}/royalty"

    response = await get(royalty_api, f"{base}.csv", key)
    report = (await get(royalty_api, f"{base}.json", key)).json()
    second_night = await get(royalty_api, f"{base}.csv", key, start=NEXT.isoformat(), end=NEXT.isoformat())

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(rf'attachment; filename="royalty-{ledger.franchisor_id}-start-end\.csv"',
                        response.headers["content-disposition"])
    rows = list(csv.DictReader(io.StringIO(response.text)))
    for totals in report["franchisees"]:
        mine = [r for r in rows if r["account_id"] == totals["account_id"]]
        for column in ("royalty_due", "marketing_due", "total_due"):
            assert sum(D(r[column]) for r in mine) == D(totals[column])
    assert sum(D(r["total_due"]) for r in rows) == D("76.24")
    assert [(r["account_id"], r["total_due"]) for r in csv.DictReader(io.StringIO(second_night.text))] == [
        (AUSTIN, "24.00"), (DENVER, "7.00")]
    assert 'filename="royalty-acme-' in second_night.headers["content-disposition"]


async def test_the_drill_down_lists_the_payments_and_the_refund_credited(
        royalty_api: ServerThread, ledger: Network, charges: dict[tuple[str, date], int]) -> None:
    key = create_api_key(ledger.engine, AUSTIN)
    path = f"/accounts/{AUSTIN}/royalty/charges/{charges[(AUSTIN, NEXT)]}"

    detail = (await get(royalty_api, f"{path}.json", key)).json()
    page = await get(royalty_api, path, key)
    items = list(csv.DictReader(io.StringIO((await get(royalty_api, f"{path}.csv", key)).text)))
    first = (await get(royalty_api, f"/accounts/{AUSTIN}/royalty/charges/{charges[(AUSTIN, NIGHT)]}.json",
                       key)).json()

    assert [(i["kind"], i["crm_payment_id"], i["basis"]) for i in detail["items"]] == [
        ("charge", "a3", "500.00"), ("credit", "a2", "200.00")]
    assert (detail["charge"]["royalty_due"], detail["charge"]["marketing_due"]) == ("18.00", "6.00")
    assert [(i["kind"], i["crm_payment_id"], i["basis"]) for i in items] == [
        ("charge", "a3", "500.00"), ("credit", "a2", "200.00")]
    assert sorted(i["crm_payment_id"] for i in first["items"]) == ["a1", "a2"]  # never a-late, in its waiting period
    assert page.status_code == 200
    assert "refund credited" in page.text and "-200.00" in page.text and "a3" in page.text
    assert "a-late" not in page.text and "300.00" in page.text  # the net basis


async def test_a_failed_check_shows_on_its_charge(royalty_api: ServerThread, ledger: Network,
                                                  charges: dict[tuple[str, date], int]) -> None:
    key = create_api_key(ledger.engine, DENVER)
    page = await get(royalty_api, f"/accounts/{DENVER}/royalty/charges/{charges[(DENVER, NEXT)]}", key)
    assert page.status_code == 200 and "check due" in page.text and REFUSED in page.text
    assert ">d3<" in page.text and ">d1<" not in page.text


async def test_everything_on_the_page_is_escaped(royalty_api: ServerThread, ledger: Network,
                                                 charges: dict[tuple[str, date], int]) -> None:
    with Session(ledger.engine) as session:
        franchisee = session.get(Franchisee, AUSTIN)
        assert franchisee is not None
        franchisee.name = "<script>alert('x')</script> & Co"
        session.add(franchisee)
        session.commit()
    key = create_api_key(ledger.engine, ledger.franchisor_id)
    for path in (f"/franchisors/{ledger.franchisor_id}/royalty", f"/accounts/{AUSTIN}/royalty",
                 f"/accounts/{AUSTIN}/royalty/charges/{charges[(AUSTIN, NIGHT)]}"):
        html = (await get(royalty_api, path, key)).text
        assert "<script>" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in html

