#!/usr/bin/env bash
# Deploy rehearsal: the commands of docs/deployment.md, run against a local emulator of
# the AWS control plane instead of AWS. No AWS account, no Docker.
#
#   scripts/deploy-rehearsal.sh           # stand-in bootstraps (CI default, ~1-2 min)
#   scripts/deploy-rehearsal.sh --built   # the real arm64 release build (sam build via
#                                         # cargo-lambda; ~30 CPU-min cold, incremental)
#
# What it runs, in a scratch copy of the working tree (so .aws-sam/ of the checkout is
# left alone), with AWS_ENDPOINT_URL pointing every SDK call of the SAM CLI at a local
# endpoint:
#   1. scripts/deploy_checks.py (the named blockers of issue 17, in a second)
#   2. scripts/sam-build.sh  (= sam build --config-env default, as the docs say)
#   3. sam deploy --config-env dev   (--debug: the log must name the BUILT template)
#   4. sam deploy --config-env prod  (answers "y" to its change-set prompt), then
#      scripts/protect-prod-stack.sh (termination protection, stack policy)
#   5. sam deploy --config-env dev with the parameter branches samconfig leaves off
#      (push ARNs set, ConfigureApiGatewayLogsRole=false, AlarmEmail, reserved
#      concurrency, a custom domain with its Route 53 zone) and the flags of
#      .github/workflows/deploy.yml (--role-arn, no prompt); then a domain name without
#      a certificate, which the template's Rules must refuse
#   6. sam deploy of infra/pipeline-bootstrap.yaml (the GitHub OIDC deploy roles)
# The endpoint is moto server (S3, CloudFormation, IAM, Lambda, DynamoDB, SNS, SQS, Logs,
# CloudWatch, Secrets Manager) behind scripts/rehearsal_cfn.py, which does
# CloudFormation's part that moto lacks: the LanguageExtensions transform (eager
# Fn::Select) and the SAM transform (samtranslator) of the template sam deploy sends.
# After each deploy, scripts/rehearsal_verify.py checks every function artifact (zip,
# executable bootstrap at its root, ELF for aarch64, Lambda's size limits) and the
# stack (complete; tables, functions, topics, queues, roles there through their own
# APIs) and LISTS the resource types moto stubs (accepts without creating anything),
# and, since CodeDeploy is stubbed, reads the deployment type each function's alias gets
# from the transformed template (canary on prod, all at once on dev).
#
# In the default mode `sam build` runs for real except the compiler: a `cargo` shim
# first on PATH answers `cargo lambda build --bin X` with a hand-written aarch64 ELF
# (132 bytes, exit(0)) where cargo-lambda would put X's binary; `cargo metadata` goes
# to the real cargo. --built uses the real cargo-lambda build (rustup target
# aarch64-unknown-linux-gnu, zig) with CARGO_TARGET_DIR=target/ of this checkout.
#
# Tools: .local/venv-sam (aws-sam-cli, cfn-lint, cargo-lambda; scripts/lint-template.sh
# --install) and moto server from scripts/install-local-deps.sh ($CHAT_LOCAL_DIR/venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SAM_VENV:-$root/.local/venv-sam}"
local_dir="${CHAT_LOCAL_DIR:-$root/.local}"
mode=standin
case "${1:-}" in
  --built) mode=built ;;
  "") ;;
  *) echo "usage: $0 [--built]" >&2; exit 2 ;;
esac
start=$(date +%s)
say() { echo "rehearsal: $*" >&2; }

"$root/scripts/lint-template.sh" --install
"$root/scripts/install-local-deps.sh"
py="$venv/bin/python"
moto_py="$local_dir/venv/bin/python"

say "1/6 deploy checks"
# REHEARSAL_SKIP_CHECKS=1 skips them, to see the deploy itself fail on a blocker.
if [ "${REHEARSAL_SKIP_CHECKS:-}" != 1 ]; then
  "$py" "$root/scripts/deploy_checks.py"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/chat-rehearsal.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP_REHEARSAL:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A copy of the working tree's tracked (and new, unignored) files: the rehearsal sees
# uncommitted edits, and writes .aws-sam/ there, not into the checkout.
repo="$work/repo"
mkdir -p "$repo"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' | tar -cf - -T -) | tar -xf - -C "$repo"

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
moto_port=$(free_port)
proxy_port=$(free_port)
moto_url="http://127.0.0.1:$moto_port"
"$moto_py" "$root/scripts/rehearsal_moto.py" 127.0.0.1 "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
AWS_DEFAULT_REGION=us-east-1 "$py" "$root/scripts/rehearsal_cfn.py" --listen "$proxy_port" --moto "$moto_url" --out "$work/out" >"$work/cfn.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$moto_url/moto-api/" && curl -s -o /dev/null "http://127.0.0.1:$proxy_port/moto-api/" && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$proxy_port/moto-api/" \
  || { cat "$work/moto.log" "$work/cfn.log" >&2; say "FAILED: moto or the CloudFormation front did not start"; exit 1; }

# Every AWS call of the SAM CLI goes to the local endpoint (botocore reads
# AWS_ENDPOINT_URL), with test credentials and path-style S3 addressing.
export AWS_ENDPOINT_URL="http://127.0.0.1:$proxy_port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
printf '[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n' >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
export SAM_CLI_TELEMETRY=0 SAM_CLI_POLL_DELAY=1

say "2/6 sam build ($mode)"
build_start=$(date +%s)
if [ "$mode" = standin ]; then
  shim="$work/shim"
  mkdir -p "$shim"
  real_cargo="$(command -v cargo)"
  "$py" "$root/scripts/rehearsal_verify.py" standin "$work/standin-bootstrap"
  cat >"$shim/cargo" <<EOF
#!/usr/bin/env bash
# Stand-in for the arm64 release build: cargo lambda build ... --bin NAME writes the
# hand-written aarch64 ELF where cargo-lambda puts NAME's bootstrap.
if [ "\${1:-}" = lambda ]; then
  bin=""; prev=""
  for a in "\$@"; do [ "\$prev" = --bin ] && bin="\$a"; prev="\$a"; done
  [ -n "\$bin" ] || { echo "cargo shim: no --bin in: \$*" >&2; exit 1; }
  mkdir -p "\$CARGO_TARGET_DIR/lambda/\$bin"
  cp "$work/standin-bootstrap" "\$CARGO_TARGET_DIR/lambda/\$bin/bootstrap"
  echo "cargo shim: stand-in aarch64 bootstrap for \$bin (\$*)" >&2
  exit 0
fi
exec "$real_cargo" "\$@"
EOF
  chmod +x "$shim/cargo"
  # rustup is not needed for the stand-in; sam-build.sh skips it when absent on PATH.
  (cd "$repo" && PATH="$shim:$PATH" CARGO_TARGET_DIR="$work/target" SAM_VENV="$venv" \
     SKIP_RUSTUP_TARGET=1 scripts/sam-build.sh) >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; say "FAILED: sam build"; exit 1; }
else
  (cd "$repo" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" SAM_VENV="$venv" scripts/sam-build.sh) \
    2>&1 | tee "$work/build.log" >&2
fi
build_secs=$(( $(date +%s) - build_start ))
grep -E "MB|sam build took" "$work/build.log" >&2 || true

deploy() {
  local env="$1" stack="$2"
  shift 2
  say "sam deploy --config-env $env $* (stack $stack)"
  local log="$work/deploy-$stack.log"
  if ! (cd "$repo" && "$@" "$venv/bin/sam" deploy --config-env "$env" --debug) >"$log" 2>&1; then
    grep -vE "^(DEBUG|[0-9-]+ [0-9:,]+ )" "$log" | tail -40 >&2
    tail -20 "$work/cfn.log" >&2
    say "FAILED: sam deploy --config-env $env (log: $log)"
    return 1
  fi
  "$py" "$root/scripts/rehearsal_verify.py" deploy-log "$log"
  "$py" "$root/scripts/rehearsal_verify.py" artifacts "$work/out" "$stack" "$moto_url"
  "$py" "$root/scripts/rehearsal_verify.py" stack "$work/out" "$stack" "$moto_url" "$moto_py"
  "$py" "$root/scripts/rehearsal_verify.py" releases "$work/out" "$stack"
}

stack_name() { "$py" -c 'import sys,tomllib; print(tomllib.load(open(sys.argv[1],"rb"))[sys.argv[2]]["global"]["parameters"]["stack_name"])' "$repo/samconfig.toml" "$1"; }

say "3/6 deploy dev"
deploy dev "$(stack_name dev)" env
say "4/6 deploy prod (confirming the change set as an operator would)"
yes_pipe() { (set +o pipefail; yes y | "$@"); }
deploy prod "$(stack_name prod)" yes_pipe

# The branches samconfig's environments leave off: both push platforms set, and an
# account whose API Gateway logging role already exists. parameter_overrides given on
# the command line replace samconfig's list, so the list is passed whole.
say "   prod guard rails (scripts/protect-prod-stack.sh, as the deploy workflow runs it)"
"$root/scripts/protect-prod-stack.sh" "$(stack_name prod)" us-east-1

say "5/6 deploy dev with push ARNs set, ConfigureApiGatewayLogsRole=false, an alarm e-mail, reserved concurrency and a custom domain in a Route 53 zone"
# The hosted zone the domain's alias records go into (it exists before the stack).
zone_id="$("$moto_py" - "$moto_url" <<'PY'
import sys, boto3
r53 = boto3.client("route53", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
z = r53.create_hosted_zone(Name="chat.example.com.", CallerReference="rehearsal")
print(z["HostedZone"]["Id"].rsplit("/", 1)[-1])
PY
)"
mapfile -t variant < <("$py" - "$root/scripts" "$zone_id" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import deploy_checks as d
o = d.overrides("dev")
o.update(d.SAMPLE_PUSH_ARNS)
o["ConfigureApiGatewayLogsRole"] = "false"
o["AlarmEmail"] = "oncall@example.com"
o["AsyncReservedConcurrency"] = "5"
o.update(d.SAMPLE_DOMAIN)
o["DomainHostedZoneId"] = sys.argv[2]
for k, v in o.items():
    print(f"{k}={v}")
PY
)
# ... deployed as .github/workflows/deploy.yml does it (--role-arn, no prompt, no bar).
with_variant() {
  "$@" --stack-name chat-rehearsal-push --s3-prefix chat-rehearsal-push --parameter-overrides "${variant[@]}" \
    --region us-east-1 --role-arn arn:aws:iam::123456789012:role/chat-pipeline-CloudFormationExecutionRole \
    --no-confirm-changeset --no-progressbar
}
deploy dev chat-rehearsal-push with_variant
"$py" - "$work/out/transformed-chat-rehearsal-push.json" "$root/scripts" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
import deploy_checks as d
t = json.load(open(sys.argv[1]))
resources = []
for pol in t["Resources"]["PushNotifierFunctionRole"]["Properties"]["Policies"]:
    for st in pol["PolicyDocument"]["Statement"]:
        try:
            resources.append(d.evaluate(t, st["Resource"], {}))
        except d.Unresolved:
            pass
text = json.dumps(resources)
for want in ("arn:aws:sns:us-east-1:123456789012:endpoint/APNS/chat-apns/*",
             "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/chat-fcm/*"):
    if want not in text:
        sys.exit(f"PUSH POLICY: the push notifier may not publish to {want}")
print("  push notifier may publish to the APNs and FCM endpoints of the given applications")
import os
out = os.path.dirname(sys.argv[1])
given = json.load(open(os.path.join(out, "parameters-chat-rehearsal-push.json")))
pv = d.parameter_values(json.load(open(os.path.join(out, "received-chat-rehearsal-push.json"))), given)
for fn in ("PushNotifierFunction", "AccountPurgerFunction", "ThumbnailerFunction"):
    got = d.evaluate(t, t["Resources"][fn]["Properties"].get("ReservedConcurrentExecutions"), pv)
    if str(got) != "5":
        sys.exit(f"GUARD RAILS: {fn} ReservedConcurrentExecutions is {got!r}, expected 5")
sub = t["Resources"].get("AlarmEmailSubscription", {}).get("Properties", {})
if d.evaluate(t, sub.get("Endpoint"), pv) != "oncall@example.com" or sub.get("Protocol") != "email":
    sys.exit(f"GUARD RAILS: no e-mail subscription to AlarmTopic: {sub}")
print("  async functions reserve 5 each; AlarmTopic has the e-mail subscription")
PY
# The custom domain: both names in moto's API Gateway v2, their alias records in the
# zone, and the URL outputs naming them (and the execute-api URLs without a domain).
"$moto_py" - "$moto_url" "$zone_id" "$(stack_name dev)" <<'PY'
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
cfn, r53, apigw = (boto3.client(s, **kw) for s in ("cloudformation", "route53", "apigatewayv2"))
def outputs(stack):
    return {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}
got = outputs("chat-rehearsal-push")
want = {"HttpApiUrl": "https://chat.example.com", "WebSocketUrl": "wss://ws.chat.example.com"}
for k, v in want.items():
    if got.get(k) != v:
        sys.exit(f"CUSTOM DOMAIN: output {k} is {got.get(k)!r}, expected {v!r}")
names = {d["DomainName"] for d in apigw.get_domain_names()["Items"]}
if not {"chat.example.com", "ws.chat.example.com"} <= names:
    sys.exit(f"CUSTOM DOMAIN: API Gateway domain names {sorted(names)}")
records = {r["Name"].rstrip("."): r for r in r53.list_resource_record_sets(HostedZoneId=sys.argv[2])["ResourceRecordSets"] if r["Type"] == "A"}
for name, out in (("chat.example.com", "HttpDomainTarget"), ("ws.chat.example.com", "WebSocketDomainTarget")):
    target = records.get(name, {}).get("AliasTarget", {}).get("DNSName", "").rstrip(".")
    if not target or target != got.get(out):
        sys.exit(f"CUSTOM DOMAIN: no A alias {name} -> {got.get(out)} in the zone: {records}")
dev = outputs(sys.argv[3])
if not dev.get("HttpApiUrl", "").endswith(".execute-api.us-east-1.amazonaws.com/dev") or "HttpDomainTarget" in dev:
    sys.exit(f"CUSTOM DOMAIN: without DomainName the outputs are {dev}")
print(f"  custom domain: {got['HttpApiUrl']} and {got['WebSocketUrl']}, A aliases in zone {sys.argv[2]} -> {got['HttpDomainTarget']}, {got['WebSocketDomainTarget']}; without it: {dev['HttpApiUrl']}")
PY

# A domain name without its certificate: the template's Rules refuse the change set.
say "   a custom domain without a certificate must be refused"
if (cd "$repo" && "$venv/bin/sam" deploy --config-env dev --stack-name chat-rehearsal-rules \
      --s3-prefix chat-rehearsal-rules --region us-east-1 --no-confirm-changeset --no-progressbar \
      --parameter-overrides Environment=dev StageName=dev DomainName=chat.example.com) \
      >"$work/deploy-rules.log" 2>&1; then
  say "FAILED: DomainName without DomainCertificateArn deployed (log: $work/deploy-rules.log)"
  exit 1
fi
grep -q "CustomDomainNeedsCertificate" "$work/deploy-rules.log" \
  || { tail -20 "$work/deploy-rules.log" >&2; say "FAILED: the refusal does not name the rule"; exit 1; }
echo "  refused: $(grep -o "Template rules \[[^]]*\] failed" "$work/deploy-rules.log" | head -1)" >&2

say "6/6 deploy the CI/CD bootstrap (infra/pipeline-bootstrap.yaml), as docs/deployment.md says"
if ! (cd "$repo" && "$venv/bin/sam" deploy --template-file infra/pipeline-bootstrap.yaml \
       --stack-name chat-pipeline --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
       --region us-east-1 --parameter-overrides GitHubRepository=example/chat) >"$work/deploy-pipeline.log" 2>&1; then
  tail -30 "$work/deploy-pipeline.log" >&2
  say "FAILED: the CI/CD bootstrap stack"
  exit 1
fi
"$moto_py" - "$moto_url" <<'PY'
import sys, boto3
from moto.cloudformation.parsing import get_model_map
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
cfn, iam = boto3.client("cloudformation", **kw), boto3.client("iam", **kw)
st = cfn.describe_stacks(StackName="chat-pipeline")["Stacks"][0]
if st["StackStatus"] != "CREATE_COMPLETE":
    sys.exit(f"PIPELINE: chat-pipeline is {st['StackStatus']}")
res = cfn.list_stack_resources(StackName="chat-pipeline")["StackResourceSummaries"]
roles = [r for r in res if r["ResourceType"] == "AWS::IAM::Role"]
for r in roles:
    doc = iam.get_role(RoleName=r["PhysicalResourceId"])["Role"]["AssumeRolePolicyDocument"]
    print(f"  {r['LogicalResourceId']}: trusts {[s.get('Condition', {}).get('StringEquals', {}).get('token.actions.githubusercontent.com:sub') or s['Principal'] for s in doc['Statement']]}")
if len(roles) != 3:
    sys.exit(f"PIPELINE: expected 3 roles, moto created {len(roles)}")
stubbed = sorted({t for t in ["AWS::IAM::OIDCProvider"] if t not in get_model_map()})
print(f"  stack chat-pipeline: {st['StackStatus']}; STUBBED by moto: {', '.join(stubbed) or 'none'}")
PY

say "ok in $(( $(date +%s) - start )) s (sam build $build_secs s, $mode)"
