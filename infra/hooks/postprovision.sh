#!/bin/sh
# azd postprovision hook: creates, once, the secrets infra/main.bicep must not carry, straight into Key Vault,
# and gives the Graph webhook its named function key. Existing secrets are kept (rotation: docs/operations.md).
# Values go through a private temporary file, never through the terminal or a log.
set -eu

: "${AZURE_KEY_VAULT_NAME:?run through azd (azd provision / azd up)}"
: "${AZURE_FUNCTION_APP_NAME:?run through azd}"
: "${AZURE_RESOURCE_GROUP:?run through azd}"

umask 077
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT INT TERM

# A new role assignment (Key Vault Secrets Officer for whoever runs azd) takes a few minutes to apply.
wait_for_vault() {
  tries=0
  until az keyvault secret list --vault-name "$AZURE_KEY_VAULT_NAME" --maxresults 1 -o none 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ]; then
      echo "seatkeeper.vault_unreachable vault=$AZURE_KEY_VAULT_NAME (need Key Vault Secrets Officer)" >&2
      exit 1
    fi
    sleep 15
  done
}

# Writes a fresh random value for secret $1 (format $2: token | whsec) unless the vault already has it.
ensure_secret() {
  name=$1
  if az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name "$name" --query id -o tsv >/dev/null 2>&1; then
    echo "seatkeeper.secret_kept name=$name"
    return
  fi
  python3 - "$2" >"$workdir/value" <<'PY'
import base64, secrets, sys
key = secrets.token_bytes(32)
sys.stdout.write("whsec_" + base64.b64encode(key).decode() if sys.argv[1] == "whsec" else secrets.token_urlsafe(32))
PY
  az keyvault secret set --vault-name "$AZURE_KEY_VAULT_NAME" --name "$name" --file "$workdir/value" \
    --encoding utf-8 -o none
  rm -f "$workdir/value"
  echo "seatkeeper.secret_created name=$name"
}

wait_for_vault
ensure_secret client-state-key token
ensure_secret hr-signing-secret whsec
ensure_secret graph-webhook-key token

# Secrets only an admin can supply, referenced once the azd environment says so: a reference to a missing
# secret stops the app's start, so say it here rather than in a failed health check.
check_supplied() {
  if ! az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name "$1" --query id -o tsv >/dev/null 2>&1; then
    echo "seatkeeper.secret_missing name=$1: $2 (docs/deploy.md), then restart the app" >&2
  fi
}
if [ -n "${SEATKEEPER_GRAPH_CLIENT_ID:-}" ]; then
  check_supplied graph-certificate "create the Graph certificate in the vault"
fi
if [ "${SEATKEEPER_TEAMS_ALERTS:-false}" = "true" ]; then
  check_supplied teams-workflow-url "store the Teams Workflows URL in the vault"
fi

# The webhook URL Graph calls carries this named function key (?code=...); the host must know the same value.
az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name graph-webhook-key --query value -o tsv \
  >"$workdir/key"
az functionapp keys set --name "$AZURE_FUNCTION_APP_NAME" --resource-group "$AZURE_RESOURCE_GROUP" \
  --key-type functionKeys --key-name graph-webhook --key-value "$(cat "$workdir/key")" -o none
echo "seatkeeper.function_key_set name=graph-webhook"

echo "seatkeeper.postprovision_done vault=$AZURE_KEY_VAULT_NAME app=$AZURE_FUNCTION_APP_NAME"
echo "Next: grant Graph permissions (docs/permissions.md); for Teams alerts see docs/deploy.md, step 5."
