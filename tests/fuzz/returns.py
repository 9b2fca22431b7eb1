"""A returns desk for the fuzz tests: processes/ deployed, an order imported, and
returns brought to the user task a test fuzzes, a fresh one whenever one is used up."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL
from support import PROCESSES, T0

from engine import Engine, FixedClock
from engine.views import TaskView
from handlers import desk
from handlers.store import Folders, services_factory

OWNER = "owner"
CS, CS2, INSPECTOR = "cs-ann", "cs-bob", "insp-ivy"

ORDER: dict[str, Any] = {
    "order_number": "SO-1",
    "channel": "online_shop",
    "jurisdiction": "CN",
    "currency": "CNY",
    "sold_at": "2026-10-28",
    "delivered_at": "2026-10-30",
    "payment_method": "alipay",
    "payer": "Li Wei",
    "customer": {
        "name": "Li Wei",
        "email": "li.wei@example.com",
        "locale": "en",
        "address": "88 Huaihai Road, Shanghai",
    },
    "artworks": [
        {
            "artwork_id": "SO-1-W",
            "title": "Autumn Pond",
            "artist": "Lin Feng",
            "category": "painting",
            "price": "1200",
            "flags": {},
            "condition": {"grade": "excellent", "accessories": []},
        }
    ],
}


class Returns:
    """One engine on one database, kept for a whole test (as a worker keeps its own)."""

    def __init__(self, url: str | URL, root: Path) -> None:
        self.root = root
        self.folders = Folders(root / "data")
        self.engine = Engine(url, clock=FixedClock(T0), services=services_factory(self.folders))
        self.engine.init()
        self.engine.deploy([PROCESSES], OWNER)
        path = root / "orders.json"
        path.write_text(json.dumps([ORDER]), encoding="utf-8")
        desk.import_orders(self.engine, self.folders, path, actor=OWNER)
        self.photo = root / "photo.jpg"
        self.photo.write_bytes(b"a photograph of a crack")
        self.parcels = 0  # each parcel has its own tracking number

    def close(self) -> None:
        self.engine.db.dispose()

    def apply(self, evidence: bool = True) -> str:
        result = desk.apply(
            self.engine,
            self.folders,
            order_number="SO-1",
            artwork_ids=["SO-1-W"],
            request_type="return",
            reason="defective",
            description="Cracked glaze.",
            evidence=[self.photo] if evidence else [],
            actor=CS,
        )
        assert result.instance.business_key is not None
        return result.instance.business_key

    def open_task(self, rma: str, step: str) -> TaskView:
        [task] = [t for t in self.engine.tasks(instance=rma) if t.bpmn_id == step]
        return task

    # -- returns waiting at a step, by the step's id -----------------------------------

    def at_missing_information(self) -> str:
        return self.apply(evidence=False)

    def at_approval(self) -> str:
        return self.apply()

    def at_inspection(self) -> str:
        rma = self.at_approval()
        task = self.open_task(rma, "approve_return")
        self.engine.complete(task.id, {"decision": "approve", "note": "ok"}, actor=CS2)
        self.parcels += 1
        parcel = {"carrier": "SF Express", "tracking_number": f"SF{77000 + self.parcels}"}
        self.engine.message(rma, "return_shipped", parcel, actor=CS)
        self.engine.message(rma, "return_received", {}, actor=CS)
        return rma


#: The steps fuzzed, who completes them, and how a return is brought to each.
STEPS: dict[str, tuple[str, Callable[[Returns], str]]] = {
    "record_missing_information": (CS, Returns.at_missing_information),
    "approve_return": (CS2, Returns.at_approval),
    "inspect_work": (INSPECTOR, Returns.at_inspection),
}
