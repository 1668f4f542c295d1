#!/bin/sh
# azd prepackage hook (azd up, azd deploy, azd package): refuses to package the app without a policy file
# that passes `seatkeeper policy check`, since the policy is deployed with the code and the app cannot start
# without it. The file is SEATKEEPER_POLICY_FILE of the azd environment (default policies/policy.yaml),
# relative to the repository root; infra/main.bicep points the app at the same path.
set -eu

policy="${SEATKEEPER_POLICY_FILE:-policies/policy.yaml}"
example="policies/example.yaml"

refuse() {
  echo "seatkeeper.policy_refused file=$policy" >&2
  printf '%s\n' "$@" >&2
  exit 1
}

case "$policy" in
  /* | ../* | */../*) refuse "The policy file must be inside this folder (it is deployed with the app): $policy" ;;
esac

if [ ! -f "$policy" ]; then
  refuse "No policy file at $policy: nothing would tell Seatkeeper which groups to manage." \
    "Copy the annotated example, fill in your licensing groups, and check it:" \
    "  cp $example $policy && \$EDITOR $policy" \
    "  .venv/bin/seatkeeper policy check $policy" \
    "(docs/deploy.md, step 2). Then run azd again."
fi

if [ -f "$example" ] && cmp -s "$policy" "$example"; then
  refuse "$policy is the unmodified example: its groups are placeholders, not yours." \
    "Edit it (docs/deploy.md, step 2), check it with: .venv/bin/seatkeeper policy check $policy"
fi

if [ -x .venv/bin/python ]; then
  python=.venv/bin/python
else
  python=${PYTHON:-python3}
fi
if ! "$python" -c "import seatkeeper" >/dev/null 2>&1; then
  refuse "Cannot run the policy check: run 'make install' once (it creates .venv with the seatkeeper command)."
fi

if ! "$python" -m seatkeeper policy check "$policy" >&2; then
  refuse "$policy does not pass 'seatkeeper policy check' (problems above): fix it, then run azd again."
fi
echo "seatkeeper.policy_checked file=$policy"
