"""infra/ agrees with the code: every setting, queue, connection, table and timer the code uses exists in
the Bicep, every secret is a Key Vault reference, and host.json / .funcignore say what docs/deploy.md says."""

from __future__ import annotations

import json
import re

import pytest

from seatkeeper import settings
from seatkeeper.core.messages import QUEUES
from tests.unit.test_infra_sources import (
    ALERTS_BICEP,
    FUNCTION_APP_BICEP,
    INFRA,
    MAIN_BICEP,
    ROOT,
    SETTINGS_OBJECTS,
    DeclaredFunction,
    bicep_app_settings,
    bicep_object,
    bicep_queue_properties,
    bicep_string_array,
    declared_functions,
    json_list,
    setting_references,
    table_names,
)

# Secret settings that have no place in Azure: the deployment uses the identity-based alternative.
NOT_IN_AZURE = {
    settings.CLIENT_SECRET: "the managed identity replaces a client secret",
    settings.CLIENT_CERTIFICATE_PASSWORD: "the managed identity replaces a certificate",
    settings.SERVICE_BUS_CONNECTION: "Service Bus is reached by identity (ServiceBusConnection__*)",
    settings.STATE_CONNECTION: "Table Storage is reached by identity (StateStorage__*)",
}
# Settings Seatkeeper reads that Bicep leaves unset, each with the reason (the other direction of the check).
LEFT_UNSET_IN_AZURE = {
    **NOT_IN_AZURE,
    settings.CLIENT_CERTIFICATE_PATH: "a Key Vault reference yields content: SEATKEEPER_CLIENT_CERTIFICATE",
    settings.MANAGED_IDENTITY: "the identity is user-assigned (SEATKEEPER_MANAGED_IDENTITY_CLIENT_ID)",
    settings.GRAPH_URL: "the default is Graph's global endpoint (sovereign clouds: set it)",
    settings.AUTHORITY_HOST: "the default is Entra's global sign-in host (sovereign clouds: set it)",
    settings.GRAPH_TIMEOUT_SECONDS: "the default (30 s) fits inside the retry budget",
    settings.PUBLIC_BASE_URL: "derived from WEBSITE_HOSTNAME, which Azure sets",
    settings.WEBSITE_HOSTNAME: "set by the platform",
    settings.SANDBOX_READY_FILE: "sandbox mode only",
    settings.DATA_DIR: "embedded queue and store of local runs only",
    settings.LOG_LEVEL: "the default (INFO) keeps every incident log",
}
# What a tenant deployment cannot run without (seatkeeper/settings.py: load_settings).
REQUIRED_IN_AZURE = (
    settings.TENANT_ID,
    settings.CLIENT_STATE_KEY,
    settings.HR_SIGNING_SECRET,
    settings.SERVICE_BUS_NAMESPACE,
    settings.STATE_TABLE_URI,
)
# Settings the Functions platform and SDKs read, not Seatkeeper's settings module.
_PLATFORM = re.compile(
    r"^(AzureWebJobsStorage__\w+|APPLICATIONINSIGHTS_\w+|AZURE_CLIENT_ID|\w+__(credential|clientId))$"
)


def _functions_with(trigger_type: str) -> list[DeclaredFunction]:
    """The declared functions with this trigger; skips (visibly) while function_app.py declares none."""
    found = [f for f in declared_functions() if f.trigger.get("type") == trigger_type]
    if not found:
        pytest.skip(f"function_app.py declares no {trigger_type} yet: nothing to check")
    return found


def alert_url_settings() -> set[str]:
    """App settings the shipped policies name for alert channel URLs (`alerts.routes[].url_setting`)."""
    import yaml

    names: set[str] = set()
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        policy = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        routes = (policy.get("alerts") or {}).get("routes") or []
        names |= {str(route["url_setting"]) for route in routes if "url_setting" in route}
    return names


def secret_settings_outside_settings_py() -> set[str]:
    """Secrets read by name from elsewhere: the Graph webhook key the local host sets as Azure would, and
    the alert URLs the policies name."""
    from seatkeeper.localhost.host import WEBHOOK_KEY_VARIABLE

    return {WEBHOOK_KEY_VARIABLE} | alert_url_settings()


def bicep_settings_problems(bicep: set[str], code: set[str], unset: set[str]) -> list[str]:
    """Drift between the app settings Bicep sets and the settings the code reads, in both directions."""
    invented = sorted(f"set but never read: {n}" for n in bicep - code if not _PLATFORM.match(n))
    forgotten = sorted(f"read but never set: {n}" for n in code - bicep - unset)
    stale = sorted(f"listed as unset but set: {n}" for n in unset & bicep)
    return invented + forgotten + stale


def test_bicep_settings_and_settings_py_agree_both_ways() -> None:
    """Bicep sets only settings the code reads (or the platform's); every setting the code reads is set
    by Bicep or listed in LEFT_UNSET_IN_AZURE with a reason."""
    problems = bicep_settings_problems(
        set(bicep_app_settings()), set(settings.SETTINGS), set(LEFT_UNSET_IN_AZURE)
    )
    assert problems == []


def test_the_drift_check_catches_drift_in_each_direction() -> None:
    """An invented Bicep name, a forgotten setting and a stale exception are each reported."""
    problems = bicep_settings_problems(
        {"SEATKEEPER_INVENTED", "SEATKEEPER_LOG_LEVEL", "AzureWebJobsStorage__accountName"},
        {"SEATKEEPER_LOG_LEVEL", "SEATKEEPER_FORGOTTEN"},
        {"SEATKEEPER_LOG_LEVEL"},
    )
    assert problems == [
        "set but never read: SEATKEEPER_INVENTED",
        "read but never set: SEATKEEPER_FORGOTTEN",
        "listed as unset but set: SEATKEEPER_LOG_LEVEL",
    ]


def test_alert_url_settings_of_the_shipped_policies_are_settings() -> None:
    """Every `url_setting` a shipped policy names is a documented secret setting (so Bicep can wire it)."""
    names = alert_url_settings()
    assert names
    assert sorted(n for n in names if n not in settings.SETTINGS or not settings.SETTINGS[n].secret) == []


def test_exactly_one_graph_credential_is_wired() -> None:
    """The managed identity or the app registration's certificate from Key Vault, never both, never none."""
    identity = bicep_object("managedIdentitySettings")
    certificate = bicep_object("certificateSettings")
    assert set(identity) == {settings.MANAGED_IDENTITY_CLIENT_ID}
    assert set(certificate) == {settings.CLIENT_ID, settings.CLIENT_CERTIFICATE}
    assert "${kvRef}graph-certificate/)" in certificate[settings.CLIENT_CERTIFICATE]
    assert not set(identity) & set(bicep_object("appSettings"))
    assert not set(certificate) & set(bicep_object("appSettings"))


def test_site_settings_union_every_settings_object() -> None:
    """The site gets `siteSettings`, which unions every object the readers check, choosing one credential."""
    text = FUNCTION_APP_BICEP.read_text(encoding="utf-8")
    union = re.search(r"^var siteSettings = union\((.*)\)$", text, re.MULTILINE)
    assert union
    assert [name for name in SETTINGS_OBJECTS if name not in union.group(1)] == []
    assert "empty(graphClientId) ? managedIdentitySettings : certificateSettings" in union.group(1)
    assert "items(siteSettings)" in text


def test_webhook_key_and_alert_urls_are_key_vault_references() -> None:
    """The Graph webhook key and every alert URL setting the policies name come from Key Vault."""
    names = secret_settings_outside_settings_py()
    assert len(names) >= 2
    app_settings = bicep_app_settings()
    assert sorted(n for n in names if "${kvRef}" not in app_settings.get(n, "")) == []


def test_settings_a_tenant_deployment_needs_are_set() -> None:
    """The tenant id, the clientState key, the HR secret, the queue and state endpoints: always set."""
    missing = sorted(set(REQUIRED_IN_AZURE) - bicep_object("appSettings").keys())
    assert missing == []


def test_every_secret_setting_is_a_key_vault_reference() -> None:
    """A secret setting is a Key Vault reference in Bicep, or documented above as not used in Azure."""
    app_settings = bicep_app_settings()
    secrets = [name for name, info in settings.SETTINGS.items() if info.secret]
    assert secrets
    problems = [
        name for name in secrets if name not in NOT_IN_AZURE and "${kvRef}" not in app_settings.get(name, "")
    ]
    assert problems == [], "wire these as Key Vault references in infra/modules/functionapp.bicep"


def test_no_secret_is_a_parameter_or_an_output() -> None:
    """Templates carry no secret: no parameter or output named like one (deployment history keeps them)."""
    secretish = re.compile(r"(secret|password|key|token|sig)\b", re.IGNORECASE)
    offenders = []
    for path in sorted(INFRA.rglob("*.bicep")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^(param|output) (\w+) ", line)
            if match and secretish.search(match.group(2)):
                offenders.append(f"{path.name}: {line.strip()}")
    assert offenders == []
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert not [name for name in params if secretish.search(name)]


def test_queues_in_bicep_are_the_queues_of_the_design() -> None:
    """The four queues of design §3, no more, no less."""
    assert sorted(bicep_string_array(MAIN_BICEP, "queueNames")) == sorted(QUEUES)


def test_queue_properties_give_sessions_duplicate_detection_and_dead_lettering() -> None:
    """Sessions and duplicate detection on, a delivery limit, dead-lettering, the longest lock."""
    properties = bicep_queue_properties()
    expected = {
        "requiresSession": "true",
        "requiresDuplicateDetection": "true",
        "deadLetteringOnMessageExpiration": "true",
        "lockDuration": "'PT5M'",
    }
    assert {key: properties.get(key) for key in expected} == expected
    assert 1 < int(properties["maxDeliveryCount"]) <= 20


def test_lock_outlasts_the_graph_retry_budget() -> None:
    """A message lock (5 min, renewed by the host) must outlast a Graph operation's whole retry budget."""
    budget = bicep_app_settings()[settings.GRAPH_RETRY_BUDGET_SECONDS].strip("'")
    default = settings.SETTINGS[settings.GRAPH_RETRY_BUDGET_SECONDS].default
    lock_seconds = 5 * 60
    assert float(budget) < lock_seconds
    assert float(default) < lock_seconds


def service_bus_problems(
    functions: list[DeclaredFunction], app_settings: dict[str, str], queues: set[str]
) -> list[str]:
    """What is wrong with the queue triggers: unprovisioned queue, connection not configured, no sessions."""
    problems = []
    for function in functions:
        binding = function.trigger
        queue = str(binding.get("queueName", ""))
        if queue not in queues:
            problems.append(f"{function.name}: queue {queue!r} is not provisioned")
        connection = str(binding.get("connection", ""))
        if f"{connection}__fullyQualifiedNamespace" not in app_settings:
            problems.append(f"{function.name}: connection {connection!r} has no identity-based settings")
        if binding.get("isSessionsEnabled") is not True:
            problems.append(f"{function.name}: every queue requires sessions; set is_sessions_enabled=True")
    return problems


def unresolved_references(functions: list[DeclaredFunction], app_settings: dict[str, str]) -> list[str]:
    """Every `%Name%` of a binding that no app setting in Bicep resolves."""
    return sorted(
        {
            f"{function.name}: %{name}%"
            for function in functions
            for binding in function.bindings
            for name in setting_references(binding)
            if name not in app_settings
        }
    )


def test_every_service_bus_trigger_uses_a_provisioned_queue_connection_and_sessions() -> None:
    """Each queue trigger names a queue Bicep creates, an identity connection it configures, sessions on."""
    triggers = _functions_with("serviceBusTrigger")
    queues = set(bicep_string_array(MAIN_BICEP, "queueNames"))
    assert service_bus_problems(triggers, bicep_app_settings(), queues) == []


def test_every_binding_setting_reference_is_an_app_setting() -> None:
    """Every `%Name%` in a binding resolves in Azure: Bicep sets it."""
    functions = declared_functions()
    if not functions:
        pytest.skip("function_app.py declares no function yet: nothing to check")
    assert unresolved_references(functions, bicep_app_settings()) == []


def test_the_binding_checks_catch_a_wrong_trigger() -> None:
    """The checks above fail on a trigger with an unknown queue, connection and setting, sessions off."""
    wrong = DeclaredFunction(
        "wrong",
        (
            {
                "type": "serviceBusTrigger",
                "queueName": "nowhere",
                "connection": "OtherBus",
                "isSessionsEnabled": False,
            },
            {"type": "timer", "schedule": "%NOT_SET%"},
        ),
    )
    app_settings = bicep_app_settings()
    queues = set(bicep_string_array(MAIN_BICEP, "queueNames"))
    assert len(service_bus_problems([wrong], app_settings, queues)) == 3
    assert unresolved_references([wrong], app_settings) == ["wrong: %NOT_SET%"]


def test_heartbeat_alert_watches_the_upkeep_and_reconciliation_timers() -> None:
    """The heartbeat alert names real timer functions, and every upkeep/reconcile timer is watched."""
    timers = {f.name for f in _functions_with("timerTrigger")}
    watched = set(json_list("heartbeat-functions.json"))
    heartbeat_timers = {name for name in timers if re.search("upkeep|reconcil", name, re.IGNORECASE)}
    if not heartbeat_timers:
        pytest.skip("function_app.py declares no upkeep or reconciliation timer yet: nothing to check")
    assert watched == heartbeat_timers


def test_state_tables_are_provisioned() -> None:
    """Every `*_TABLE` the code declares exists in infra/state-tables.json, and no other."""
    assert sorted(json_list("state-tables.json")) == sorted(table_names()), "update infra/state-tables.json"


def test_throttling_alert_queries_events_the_graph_client_logs() -> None:
    """The throttling alert searches log events that seatkeeper/adapters/graph really writes."""
    query_events = set(re.findall(r"graph\.[a-z_]+", ALERTS_BICEP.read_text(encoding="utf-8")))
    assert query_events
    client_source = "".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "seatkeeper/adapters/graph").glob("*.py")
    )
    assert sorted(e for e in query_events if f'"{e}"' not in client_source) == []


def test_every_checkov_skip_gives_a_reason() -> None:
    """`checkov:skip=ID:reason` only: a skip without a reason hides a finding."""
    skips = [
        line.strip()
        for path in INFRA.rglob("*.bicep")
        for line in path.read_text(encoding="utf-8").splitlines()
        if "checkov:skip=" in line
    ]
    assert skips
    assert [s for s in skips if not re.search(r"checkov:skip=CKV2?_[A-Z]+_\d+:\S.{10,}", s)] == []


def test_host_json_keeps_incident_logs_and_uses_bundle_v4() -> None:
    """Extension bundle v4; traces, exceptions and requests never sampled; a function timeout set."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert {"Trace", "Exception", "Request"} <= set(sampling["excludedTypes"].split(";"))
    assert host["logging"]["logLevel"]["Function"] == "Information"
    hours, minutes, _ = (int(part) for part in host["functionTimeout"].split(":"))
    assert 0 < hours * 60 + minutes <= 30


def test_service_bus_host_settings_renew_locks_for_the_whole_timeout() -> None:
    """The host renews a message lock for as long as a function may run; prefetch off (locks would lapse)."""
    service_bus = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["serviceBus"]
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert service_bus["maxAutoLockRenewalDuration"] >= host["functionTimeout"]
    assert service_bus["prefetchCount"] == 0
    assert service_bus["maxConcurrentSessions"] >= 1


@pytest.mark.parametrize("kept_out", ["tests/", "sandbox/", "bench/", "infra/", ".venv/", "node_modules/"])
def test_funcignore_keeps_non_runtime_folders_out_of_the_package(kept_out: str) -> None:
    """The deployed package holds the service only."""
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert kept_out in lines


@pytest.mark.parametrize(
    "deployed", ["seatkeeper/", "handlers/", "function_app.py", "host.json", "requirements.txt"]
)
def test_funcignore_keeps_the_service_in_the_package(deployed: str) -> None:
    """What the host needs is never ignored."""
    lines = {line.strip() for line in (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()}
    assert deployed not in lines
    assert deployed.rstrip("/") not in lines


def test_requirements_are_exact_pins() -> None:
    """Every runtime requirement is pinned exactly, so the deployed package is the tested one."""
    lines = [
        line.split("#")[0].strip()
        for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    ]
    requirements = [line for line in lines if line]
    assert requirements
    assert [
        line for line in requirements if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", line)
    ] == []


def test_azure_yaml_deploys_this_folder_as_a_python_function_app_from_infra() -> None:
    """`azd up` provisions infra/main.bicep and deploys the repository root as the Function App."""
    import yaml

    project = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert project["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert project["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    hook = project["hooks"]["postprovision"]["posix"]["run"]
    assert (ROOT / hook).is_file()
    assert "azd-service-name': 'api'" in (INFRA / "main.bicep").read_text(encoding="utf-8")


def test_ci_workflow_builds_bicep_and_previews_provisioning() -> None:
    """The users' pipeline compiles the templates and runs `azd provision --preview`, deploying nothing."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github/workflows/infra.yml").read_text(encoding="utf-8"))
    commands = [str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("az bicep build --file infra/main.bicep" in c for c in commands)
    assert any("azd provision --preview" in c for c in commands)
    assert not any(re.search(r"azd (up|deploy)\b|azd provision(?! --preview)", c) for c in commands)


def test_heartbeat_alert_window_matches_the_local_heartbeat_watch() -> None:
    """The Azure Monitor rule and the local heartbeat watch call a timer overdue after the same time."""
    from handlers.heartbeat import OVERDUE_AFTER

    match = re.search(r"param heartbeatWindow string = 'PT(\d+)H'", ALERTS_BICEP.read_text(encoding="utf-8"))
    assert match
    assert int(match.group(1)) * 3600 == OVERDUE_AFTER.total_seconds()


def test_azd_parameters_map_to_main_bicep_params_and_documented_variables() -> None:
    """Each mapping in main.parameters.json names a real parameter; each azd variable it reads is in
    docs/deploy.md (azd's own AZURE_* variables aside)."""
    text = MAIN_BICEP.read_text(encoding="utf-8")
    params = set(re.findall(r"^param (\w+) ", text, re.MULTILINE))
    mapping = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert sorted(set(mapping) - params) == []
    variables = set(re.findall(r"\$\{(\w+)", json.dumps(mapping)))
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert sorted(v for v in variables if not v.startswith("AZURE_") and v not in deploy) == []
