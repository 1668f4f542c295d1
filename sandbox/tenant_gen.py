"""Deterministic tenant generators: the committed default tenant (about 200 users with every licensing
situation worth testing) and large tenants for benchmarks (`python -m sandbox generate`).

Ids are derived from a seed so regenerating gives byte-identical files. Service-plan ids other than those
in graph-facts §C are illustrative (see sandbox/README.md).
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from sandbox.model import COPILOT_SKU_ID

TENANT_ID = "5f1c7e2a-9b3d-4c6e-8a1f-2d4b6c8e0a13"
DEFAULT_APP_ID = "0a5e3c1b-7d9f-4e2a-b6c8-1f3d5a7b9c02"
MI_APP_ID = "0a5e3c1b-7d9f-4e2a-b6c8-1f3d5a7b9c03"
READONLY_APP_ID = "0a5e3c1b-7d9f-4e2a-b6c8-1f3d5a7b9c04"
SERVICE_ROLES = [
    "Group.Read.All",
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "LicenseAssignment.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "Mail.Send",
    "LifecycleWorkflows.ReadWrite.All",
    "SynchronizationData-User.Upload",
]

# Service plans. The conflict pairs below (Exchange Online plans) are illustrative, not Entra's list: Entra's
# "resolve group license assignment problems" page says Exchange Online Plan 1 and Plan 2 now allow
# duplication. They give the default tenant a MutuallyExclusiveViolation case (see sandbox/README.md).
EXO_P1 = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"
EXO_P2 = "efb87545-963c-4e0d-99df-69c6916d9eb0"
EXO_KIOSK = "4a82b400-a79f-41a4-b4e2-e94f5787b113"
TEAMS = "57ff2da0-773e-42df-b2af-ffb7a2317929"
SHAREPOINT_P2 = "5dbe027f-2339-4123-9542-606e4d348a72"
SHAREPOINT_P1 = "c7699d2e-19aa-44de-8edf-1736da088ca1"
OFFICE_APPS = "43de0ff5-c92c-492b-9116-175376d08c38"
ARCHIVE = "176a09a6-7ec5-4039-ac02-b2791c6ba793"
COPILOT_CHAT = "3f30311c-6b1e-48a4-ab79-725b469da960"

SPE_E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
SPE_E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"
SPB = "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46"
O365_E1 = "18181a46-0d4e-45cd-891e-60aabd171b4e"
O365_E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
SPE_F3 = "66b55226-6b4f-492c-910c-a3b7a3c9d993"
ARCHIVE_SKU = "ee02fd1b-340e-4a4b-b355-4a514e4c8943"

DEPARTMENTS = [
    "Sales",
    "Engineering",
    "Marketing",
    "Finance",
    "Human Resources",
    "Legal",
    "Support",
    "Operations",
]
TITLES = {
    "Sales": ["Account Executive", "Sales Manager", "Sales Director"],
    "Engineering": ["Software Engineer", "Senior Software Engineer", "Engineering Manager"],
    "Marketing": ["Marketing Specialist", "Content Lead", "Marketing Director"],
    "Finance": ["Accountant", "Financial Analyst", "Finance Director"],
    "Human Resources": ["HR Partner", "Recruiter", "HR Director"],
    "Legal": ["Counsel", "Paralegal", "General Counsel"],
    "Support": ["Support Engineer", "Support Lead", "Field Technician"],
    "Operations": ["Operations Analyst", "Store Associate", "Operations Manager"],
}
COUNTRIES = {
    "US": ("United States", "Americas"),
    "CA": ("Canada", "Americas"),
    "BR": ("Brazil", "Americas"),
    "GB": ("United Kingdom", "EMEA"),
    "DE": ("Germany", "EMEA"),
    "FR": ("France", "EMEA"),
    "NL": ("Netherlands", "EMEA"),
    "JP": ("Japan", "APAC"),
    "AU": ("Australia", "APAC"),
    "IN": ("India", "APAC"),
}
GIVEN = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Femi",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Yara",
    "Zoe",
]
FAMILY = [
    "Adams",
    "Berg",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hoang",
    "Ito",
    "Jansen",
    "Khan",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Patel",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Varga",
    "Weber",
    "Young",
]


def _plan(plan_id: str, name: str) -> dict[str, Any]:
    return {
        "servicePlanId": plan_id,
        "servicePlanName": name,
        "provisioningStatus": "Success",
        "appliesTo": "User",
    }


def skus(copilot_seats: int, scale: int = 1) -> list[dict[str, Any]]:
    """The SKUs of a generated tenant (`scale` multiplies base seat counts)."""

    def sku(
        sku_id: str,
        part: str,
        plans: list[dict[str, Any]],
        enabled: int,
        *,
        status: str = "Enabled",
        suspended: int = 0,
        prohibited: list[str] | None = None,
    ) -> dict[str, Any]:
        return {
            "skuId": sku_id,
            "skuPartNumber": part,
            "appliesTo": "User",
            "capabilityStatus": status,
            "prepaidUnits": {"enabled": enabled, "suspended": suspended, "warning": 0, "lockedOut": 0},
            "servicePlans": plans,
            "subscriptionIds": [str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-subscription/{sku_id}"))],
            "prohibitedUsageLocations": prohibited or [],
        }

    return [
        sku(
            SPE_E3,
            "SPE_E3",
            [
                _plan(EXO_P2, "EXCHANGE_S_ENTERPRISE"),
                _plan(TEAMS, "TEAMS1"),
                _plan(SHAREPOINT_P2, "SHAREPOINTENTERPRISE"),
                _plan(OFFICE_APPS, "OFFICESUBSCRIPTION"),
            ],
            110 * scale,
        ),
        sku(
            SPE_E5,
            "SPE_E5",
            [
                _plan(EXO_P2, "EXCHANGE_S_ENTERPRISE"),
                _plan(TEAMS, "TEAMS1"),
                _plan(SHAREPOINT_P2, "SHAREPOINTENTERPRISE"),
                _plan(OFFICE_APPS, "OFFICESUBSCRIPTION"),
            ],
            30 * scale,
        ),
        sku(
            SPB,
            "SPB",
            [
                _plan(EXO_P1, "EXCHANGE_S_STANDARD"),
                _plan(TEAMS, "TEAMS1"),
                _plan(SHAREPOINT_P1, "SHAREPOINTSTANDARD"),
                _plan(OFFICE_APPS, "OFFICESUBSCRIPTION"),
            ],
            30 * scale,
        ),
        sku(
            O365_E1,
            "STANDARDPACK",
            [
                _plan(EXO_P1, "EXCHANGE_S_STANDARD"),
                _plan(TEAMS, "TEAMS1"),
                _plan(SHAREPOINT_P1, "SHAREPOINTSTANDARD"),
            ],
            20 * scale,
        ),
        sku(
            O365_E3,
            "ENTERPRISEPACK",
            [
                _plan(EXO_P2, "EXCHANGE_S_ENTERPRISE"),
                _plan(TEAMS, "TEAMS1"),
                _plan(SHAREPOINT_P2, "SHAREPOINTENTERPRISE"),
            ],
            0,
            status="Suspended",
            suspended=10 * scale,
        ),
        sku(SPE_F3, "SPE_F1", [_plan(EXO_KIOSK, "EXCHANGE_S_DESKLESS"), _plan(TEAMS, "TEAMS1")], 25 * scale),
        sku(ARCHIVE_SKU, "EXCHANGEARCHIVE_ADDON", [_plan(ARCHIVE, "EXCHANGE_S_ARCHIVE_ADDON")], 5 * scale),
        sku(
            COPILOT_SKU_ID,
            "Microsoft_365_Copilot",
            [_plan(COPILOT_CHAT, "M365_COPILOT_BUSINESS_CHAT")],
            copilot_seats,
            prohibited=["RU", "BY", "CU", "IR", "KP", "SY"],
        ),
    ]


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def base_document(copilot_seats: int, scale: int = 1) -> dict[str, Any]:
    """Tenant, apps, SKUs and plan rules of every generated tenant (no users or groups yet)."""
    return {
        "tenant": {
            "id": TENANT_ID,
            "displayName": "Contoso (sandbox)",
            "defaultDomain": "contoso.example",
            "usageLocation": "US",
        },
        "apps": [
            {
                "clientId": DEFAULT_APP_ID,
                "displayName": "Seatkeeper",
                "generateSecret": True,
                "roles": SERVICE_ROLES,
                "default": True,
            },
            {
                "clientId": MI_APP_ID,
                "displayName": "Seatkeeper (managed identity)",
                "roles": SERVICE_ROLES,
                "managedIdentity": True,
            },
            {
                "clientId": READONLY_APP_ID,
                "displayName": "Read-only reporter",
                "generateSecret": True,
                "roles": ["User.Read.All"],
            },
        ],
        "skus": skus(copilot_seats, scale),
        "servicePlanConflicts": [[EXO_P1, EXO_P2], [EXO_KIOSK, EXO_P2], [EXO_KIOSK, EXO_P1]],
        "servicePlanDependencies": {ARCHIVE: [EXO_P1, EXO_P2, EXO_KIOSK]},
    }


def default_tenant() -> dict[str, Any]:
    """The committed default tenant: ~200 users and every situation Seatkeeper must handle."""
    rng = random.Random(20261203)  # noqa: S311 - deterministic fixture data, not security
    doc = base_document(copilot_seats=30)
    users: list[dict[str, Any]] = []
    seen: set[str] = set()
    codes = list(COUNTRIES)
    for n in range(200):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        nick = f"{given}.{family}".lower()
        while nick in seen:
            nick = f"{given}.{family}{rng.randint(2, 99)}".lower()
        seen.add(nick)
        dept = DEPARTMENTS[n % len(DEPARTMENTS)]
        country = codes[rng.randrange(len(codes))]
        users.append(
            {
                "id": _id(rng),
                "userPrincipalName": f"{nick}@contoso.example",
                "mail": f"{nick}@contoso.example",
                "mailNickname": nick,
                "displayName": f"{given} {family}",
                "givenName": given,
                "surname": family,
                "department": dept,
                "jobTitle": rng.choice(TITLES[dept]),
                "companyName": "Contoso",
                "country": COUNTRIES[country][0],
                "usageLocation": country,
                "accountEnabled": True,
                "employeeId": f"E{10000 + n}",
                "userType": "Member",
                "createdDateTime": f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}T09:00:00Z",
                "businessPhones": [],
                "assignedLicenses": [],
            }
        )
    # Who holds what (index ranges keep the file readable and the cases findable).
    e3_group_members = [u["id"] for u in users[0:100]]
    for u in users[100:125]:
        u["assignedLicenses"] = [{"skuId": SPE_E5, "disabledPlans": []}]
    for u in users[125:150]:
        u["assignedLicenses"] = [{"skuId": SPB, "disabledPlans": []}]
    for u in users[150:158]:  # base SKU suspended
        u["assignedLicenses"] = [{"skuId": O365_E3, "disabledPlans": []}]
    for u in users[158:178]:
        u["assignedLicenses"] = [{"skuId": SPE_F3, "disabledPlans": []}]
    for u in users[178:182]:  # E1 direct *and* in the E3 group: conflicting Exchange plans
        u["assignedLicenses"] = [{"skuId": O365_E1, "disabledPlans": []}]
        e3_group_members.append(u["id"])
    for u in users[182:200]:  # no base license at all
        u["assignedLicenses"] = []
    for u in users[120:123]:  # E5 with Exchange Online disabled
        u["assignedLicenses"] = [{"skuId": SPE_E5, "disabledPlans": [EXO_P2]}]
    # The archive add-on held directly, its Exchange prerequisite only through the E3 group: removing this
    # user from that group gives DependencyViolation.
    users[3]["assignedLicenses"] = [{"skuId": ARCHIVE_SKU, "disabledPlans": []}]
    for u in (users[5], users[60], users[130], users[190], users[17]):  # no usage location
        u.pop("usageLocation")
    users[17]["assignedLicenses"] = []
    for u in (users[9], users[41], users[133], users[171], users[195], users[88]):
        u["accountEnabled"] = False
    users[33]["usageLocation"] = "RU"  # Copilot not sold there
    users[33]["country"] = "Russia"

    def region(u: dict[str, Any]) -> str:
        loc = u.get("usageLocation")
        return COUNTRIES[loc][1] if loc in COUNTRIES else "Americas"

    copilot_groups: dict[str, dict[str, Any]] = {}
    for name in ("Americas", "EMEA", "APAC"):
        members = [
            u["id"] for u in users[:150] if region(u) == name and u["department"] in ("Sales", "Engineering")
        ][:8]
        copilot_groups[name] = {
            "id": _id(rng),
            "displayName": f"Copilot - {name}",
            "description": f"Microsoft 365 Copilot for {name} (group-based licensing)",
            "groupTypes": [],
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": f"copilot-{name.lower()}",
            "members": members,
            "assignedLicenses": [{"skuId": COPILOT_SKU_ID, "disabledPlans": []}],
        }
    copilot_groups["EMEA"]["members"].append(users[33]["id"])
    groups = [
        {
            "id": _id(rng),
            "displayName": "Licensing - Microsoft 365 E3",
            "description": "Base licence by group",
            "groupTypes": [],
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "lic-m365-e3",
            "members": e3_group_members,
            "assignedLicenses": [{"skuId": SPE_E3, "disabledPlans": []}],
        },
        *copilot_groups.values(),
        {
            "id": _id(rng),
            "displayName": "Copilot Pilots",
            "description": "Nested: holds the EMEA Copilot group (nested members get no licence)",
            "groupTypes": [],
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "copilot-pilots",
            "members": [copilot_groups["EMEA"]["id"], users[1]["id"]],
        },
        {
            "id": _id(rng),
            "displayName": "Sales (dynamic)",
            "description": "Everyone in Sales",
            "groupTypes": ["DynamicMembership"],
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "sales-dynamic",
            "membershipRule": '(user.department -eq "Sales") -and (user.accountEnabled -eq true)',
            "membershipRuleProcessingState": "On",
            "members": [],
        },
        {
            "id": _id(rng),
            "displayName": "Finance Team",
            "description": "Mail-enabled security group (members managed in Exchange)",
            "groupTypes": [],
            "securityEnabled": True,
            "mailEnabled": True,
            "mailNickname": "finance-team",
            "mail": "finance-team@contoso.example",
            "members": [u["id"] for u in users if u["department"] == "Finance"][:10],
        },
        {
            "id": _id(rng),
            "displayName": "Licensing - Archive add-on",
            "description": "Add-on with its prerequisite in the same group (E3 with only Exchange Online)",
            "groupTypes": [],
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": "lic-archive",
            "members": [users[2]["id"]],
            "assignedLicenses": [
                {"skuId": SPE_E3, "disabledPlans": [TEAMS, SHAREPOINT_P2, OFFICE_APPS]},
                {"skuId": ARCHIVE_SKU, "disabledPlans": []},
            ],
        },
    ]
    doc["users"] = users
    doc["groups"] = groups
    return doc


def large_tenant(users: int, groups: int, seed: int = 1) -> dict[str, Any]:
    """A benchmark tenant: `users` users (E3 by one group) and `groups` groups, Copilot on the first ones."""
    rng = random.Random(seed)  # noqa: S311 - deterministic fixture data, not security
    scale = max(1, users // 100)
    doc = base_document(copilot_seats=max(1, users // 10), scale=scale)
    codes = list(COUNTRIES)
    people: list[dict[str, Any]] = []
    for n in range(users):
        dept = DEPARTMENTS[n % len(DEPARTMENTS)]
        country = codes[n % len(codes)]
        nick = f"user{n:06d}"
        people.append(
            {
                "id": _id(rng),
                "userPrincipalName": f"{nick}@contoso.example",
                "mail": f"{nick}@contoso.example",
                "displayName": f"User {n:06d}",
                "department": dept,
                "jobTitle": TITLES[dept][n % 3],
                "country": COUNTRIES[country][0],
                "usageLocation": country,
                "accountEnabled": True,
                "employeeId": f"E{n:07d}",
            }
        )
    out_groups: list[dict[str, Any]] = []
    for g in range(groups):
        members = [p["id"] for p in people[g::groups]]
        group: dict[str, Any] = {
            "id": _id(rng),
            "displayName": f"Group {g:02d}",
            "groupTypes": [],
            "securityEnabled": True,
            "mailEnabled": False,
            "mailNickname": f"group-{g:02d}",
            "members": members,
        }
        if g == 0:
            group["displayName"] = "Licensing - Microsoft 365 E3"
            group["members"] = [p["id"] for p in people]
            group["assignedLicenses"] = [{"skuId": SPE_E3, "disabledPlans": []}]
        elif g <= 3:
            group["displayName"] = f"Copilot - region {g}"
            group["members"] = members[: users // 40]
            group["assignedLicenses"] = [{"skuId": COPILOT_SKU_ID, "disabledPlans": []}]
        out_groups.append(group)
    doc["users"] = people
    doc["groups"] = out_groups
    return doc
