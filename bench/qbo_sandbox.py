"""How the QBO sandbox's writes scale with the size of a company: the time per write (a proposal's customer,
estimate, invoice and two payments, each followed by the save the HTTP surface does) in a company of 50
objects and in one of 5,000, in the same run, with and without a state file. Flat is the goal: the printed
ratio is the time per write at the large size over the time per write at the small one.

    .venv/bin/python -m bench.qbo_sandbox [--sizes 50 5000] [--proposals 4]

The companies are seeded from a synthetic snapshot (restored, then saved whole), so growing them is not
timed and does not depend on how fast the sandbox writes."""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.result import BenchResult, Target, add_json_option, finish
from sandbox.qbo.app import QboSandbox
from sandbox.qbo.company import Company

OBJECTS_PER_PROPOSAL = 5  # customer, estimate, invoice, two payments
STAMP = "2025-01-01T00:00:00+00:00"
HEADLINE = "state file"  # the figure the report shows: the sandbox as `make run` serves it, saving to its file
RATIO_BASIS = ("large/small company time per write, the state-file sandbox: no no-op ceiling, the small company "
               "measured in the same run is the baseline (1.0 = flat, the goal; above 1 = slower as books grow)")


def _sales_lines(amount: Decimal) -> list[dict[str, Any]]:
    return [{"Amount": amount, "DetailType": "SalesItemLineDetail", "LineNum": 1, "Id": "1",
             "SalesItemLineDetail": {"ItemRef": {"value": "5", "name": "Services"}}},
            {"Amount": amount, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]


def books(realm_id: str, objects: int) -> dict[str, Any]:
    """A snapshot of a company holding about `objects` objects: a new company's, then whole proposals."""
    snapshot = Company(realm_id, f"Bench {realm_id}").snapshot()
    next_id, doc = snapshot["next_id"], snapshot["next_doc_number"]
    held = sum(len(of_entity) for of_entity in snapshot["objects"].values())
    for n in range(max(0, (objects - held) // OBJECTS_PER_PROPOSAL)):
        ids = [str(i) for i in range(next_id, next_id + OBJECTS_PER_PROPOSAL)]
        customer, estimate, invoice, first, second = ids
        next_id += OBJECTS_PER_PROPOSAL
        amount = Decimal(100 + n % 900) + Decimal("0.25")
        common = {"SyncToken": "0", "MetaData": {"CreateTime": STAMP, "LastUpdatedTime": STAMP}, "domain": "QBO",
                  "sparse": False}
        on = {"CustomerRef": {"value": customer}, "TxnDate": "2025-01-01"}
        snapshot["objects"]["Customer"][customer] = {
            "DisplayName": f"Bench customer {n}", "Active": True, "FullyQualifiedName": f"Bench customer {n}",
            "Id": customer, **common}
        snapshot["objects"]["Estimate"][estimate] = {
            **on, "Line": _sales_lines(amount), "TotalAmt": amount, "DocNumber": str(doc), "TxnStatus": "Closed",
            "Id": estimate, **common}
        snapshot["objects"]["Invoice"][invoice] = {
            **on, "Line": _sales_lines(amount), "TotalAmt": amount, "DocNumber": str(doc + 1), "DueDate": "2025-01-01",
            "LinkedTxn": [{"TxnId": estimate, "TxnType": "Estimate"}], "Id": invoice, **common}
        for payment, paid in ((first, amount - 50), (second, Decimal(50))):
            snapshot["objects"]["Payment"][payment] = {
                **on, "TotalAmt": paid, "Id": payment, **common,
                "Line": [{"Amount": paid, "LinkedTxn": [{"TxnId": invoice, "TxnType": "Invoice"}]}]}
        doc += 2
    snapshot["next_id"], snapshot["next_doc_number"] = next_id, doc
    return snapshot


def proposal(sandbox: QboSandbox, company: Company, n: int, timed: Callable[[Callable[[], Any]], Any]) -> None:
    """One proposal's five writes, each timed with the save that follows it."""
    def write(entity: str, body: dict[str, Any]) -> dict[str, Any]:
        def one() -> dict[str, Any]:
            with company.lock:
                result = sandbox.write(company, entity, body, None, None)
                sandbox.saved(company.realm_id)
                return result
        return dict(timed(one))

    line = {"Amount": "300.00", "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "5"}, "Qty": 3, "UnitPrice": "100.00"}}
    customer = write("Customer", {"DisplayName": f"Timed customer {company.realm_id} {n}"})
    ref = {"value": customer["Id"]}
    estimate = write("Estimate", {"CustomerRef": ref, "Line": [line]})
    invoice = write("Invoice", {"CustomerRef": ref, "Line": [line],
                                "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    for paid in ("200.00", "100.00"):
        write("Payment", {"CustomerRef": ref, "TotalAmt": paid,
                          "Line": [{"Amount": paid, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})


def time_per_write(sandbox: QboSandbox, realm_id: str, objects: int, proposals: int) -> float:
    """Seconds per write in a company of `objects` objects (median over `proposals` proposals' writes)."""
    company = Company.restore(books(realm_id, objects))
    sandbox.companies[realm_id] = company
    if sandbox.state is not None:
        sandbox.state.save_company(realm_id, company.snapshot())
    took: list[float] = []

    def timed(call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = call()
        took.append(time.perf_counter() - start)
        return result

    proposal(sandbox, company, -1, lambda call: call())  # warm-up, untimed
    for n in range(proposals):
        proposal(sandbox, company, n, timed)
    return statistics.median(took)


def run(small: int = 50, large: int = 5000, proposals: int = 4) -> BenchResult:
    """The time per write at both sizes, in memory and with a state file: the figures and the lines the CLI prints
    (the CLI and `python -m bench` both). There is no no-op here: the small company is the baseline."""
    out = BenchResult(name="qbo_sandbox", sizes={"small": small, "large": large, "proposals": proposals},
                      unit="ms/write", ratio_basis=RATIO_BASIS)
    with tempfile.TemporaryDirectory() as tmp:
        for label, sandbox in (("in memory", QboSandbox()),
                               ("state file", QboSandbox(state_file=Path(tmp) / "books.sqlite"))):
            per_write = {size: time_per_write(sandbox, f"bench-{size}", size, proposals) for size in (small, large)}
            out.extra[label] = {"small_ms": per_write[small] * 1e3, "large_ms": per_write[large] * 1e3,
                                "ratio": per_write[large] / per_write[small]}
            out.text.append(f"{label:>10}: {per_write[small] * 1e3:8.3f} ms/write at {small} objects, "
                            f"{per_write[large] * 1e3:8.3f} ms/write at {large} objects, "
                            f"ratio {per_write[large] / per_write[small]:6.2f}")
    headline = out.extra[HEADLINE]
    out.real_rate, out.noop_rate, out.ratio = headline["large_ms"], headline["small_ms"], headline["ratio"]
    out.targets = [Target("flat: time per write independent of the company's size (no number stated)", None)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[50, 5000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--proposals", type=int, default=4, help="proposals timed per company (5 writes each)")
    add_json_option(parser)
    args = parser.parse_args()
    small, large = args.sizes
    sys.exit(finish(run(small, large, args.proposals), args.json))


if __name__ == "__main__":
    main()
