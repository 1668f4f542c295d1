"""Graph's `GET /subscribedSkus` (and one by id): seats, consumption, plans; `$select` only, no `$filter`."""

from __future__ import annotations

from typing import Any

from sandbox.graph_errors import GraphError, not_found
from sandbox.model import Sku
from sandbox.odata import parse_select
from sandbox.router import GraphRequest, GraphResponse, Router
from sandbox.state import SandboxState

SKU_PROPERTIES = [
    "accountId",
    "accountName",
    "appliesTo",
    "capabilityStatus",
    "consumedUnits",
    "id",
    "prepaidUnits",
    "servicePlans",
    "skuId",
    "skuPartNumber",
    "subscriptionIds",
]
SKU_KNOWN = {p.lower(): p for p in SKU_PROPERTIES}
READ = {
    "LicenseAssignment.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}


def register(router: Router, state: SandboxState, graph_url: str) -> None:
    """Add the subscribedSkus operations to the router."""

    def render(sku: Sku, selected: list[str] | None) -> dict[str, Any]:
        tenant = state.tenant
        full: dict[str, Any] = {
            "accountId": tenant.id,
            "accountName": tenant.display_name,
            "appliesTo": sku.applies_to,
            "capabilityStatus": sku.capability_status,
            "consumedUnits": len(sku.holders),
            "id": f"{tenant.id}_{sku.sku_id}",
            "prepaidUnits": dict(sku.prepaid_units),
            "servicePlans": [
                {
                    "servicePlanId": p["servicePlanId"],
                    "servicePlanName": p.get("servicePlanName"),
                    "provisioningStatus": p.get("provisioningStatus", "Success"),
                    "appliesTo": p.get("appliesTo", "User"),
                }
                for p in sku.service_plans
            ],
            "skuId": sku.sku_id,
            "skuPartNumber": sku.sku_part_number,
            "subscriptionIds": list(sku.subscription_ids),
        }
        return full if selected is None else {k: full[k] for k in selected}

    async def list_skus(request: GraphRequest) -> GraphResponse:
        for option in ("$filter", "$top", "$orderby", "$expand", "$search", "$count"):
            if option in request.query:
                raise GraphError(
                    400, "Request_UnsupportedQuery", f"The query option '{option}' is not supported."
                )
        selected = parse_select(request.query, SKU_KNOWN, "subscribedSku")
        return GraphResponse(
            200,
            {
                "@odata.context": f"{graph_url}/$metadata#subscribedSkus",
                "value": [render(s, selected) for s in state.tenant.skus.values()],
            },
        )

    async def get_sku(request: GraphRequest) -> GraphResponse:
        selected = parse_select(request.query, SKU_KNOWN, "subscribedSku")
        key = request.params["id"]
        sku_id = key.rsplit("_", 1)[-1]
        sku = state.tenant.skus.get(sku_id)
        if sku is None or key != f"{state.tenant.id}_{sku_id}":
            raise not_found(key)
        return GraphResponse(
            200, {"@odata.context": f"{graph_url}/$metadata#subscribedSkus/$entity", **render(sku, selected)}
        )

    router.add("GET", "/subscribedSkus", list_skus, permissions=READ, cost=3)
    router.add("GET", "/subscribedSkus/{id}", get_sku, permissions=READ, cost=1)
