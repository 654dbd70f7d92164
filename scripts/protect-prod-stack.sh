#!/usr/bin/env bash
# Guard rails of the prod stack that `sam deploy` cannot set: termination protection
# (the stack cannot be deleted until it is turned off) and a stack policy that refuses
# any update replacing or deleting a table or the signing-key secret
# (infra/prod-stack-policy.json). Idempotent; run after every prod deploy (the deploy
# workflow does) with credentials allowed cloudformation:UpdateTerminationProtection
# and cloudformation:SetStackPolicy on the stack.
#
#   scripts/protect-prod-stack.sh [STACK] [REGION]    (default chat-prod, $AWS_REGION)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack="${1:-chat-prod}"
region="${2:-${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}}"
py="${SAM_VENV:-$root/.local/venv-sam}/bin/python"
"$py" - "$stack" "$region" "$root/infra/prod-stack-policy.json" <<'PY'
import sys, boto3
stack, region, policy = sys.argv[1:4]
cfn = boto3.client("cloudformation", region_name=region)
cfn.update_termination_protection(StackName=stack, EnableTerminationProtection=True)
cfn.set_stack_policy(StackName=stack, StackPolicyBody=open(policy).read())
st = cfn.describe_stacks(StackName=stack)["Stacks"][0]
body = cfn.get_stack_policy(StackName=stack).get("StackPolicyBody") or ""
if not st.get("EnableTerminationProtection") or "Update:Replace" not in body:
    sys.exit(f"protect-prod-stack: {stack} is not protected (termination protection {st.get('EnableTerminationProtection')}, policy {body[:60]!r})")
print(f"protect-prod-stack: {stack}: termination protection on, stack policy denies replacing/deleting tables and the secret")
PY
