#!/usr/bin/env bash
# Lints the SAM template offline: `cfn-lint` (CloudFormation schema and best-practice
# rules, after the SAM transform) and `sam validate --lint` (SAM's own translation plus
# cfn-lint). Fails on any finding, warnings included.
#
# Installs its tools on first use into .local/venv-sam (idempotent; ~40 s):
# aws-sam-cli, cfn-lint and cargo-lambda (the last one is for scripts/sam-build.sh; it
# ships zig, which cross-compiles to arm64). Set SAM_VENV to use another virtualenv.
#
#   scripts/lint-template.sh            # lint infra/template.yaml
#   scripts/lint-template.sh --install  # only install the tools
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SAM_VENV:-$root/.local/venv-sam}"
template="$root/infra/template.yaml"

# Pinned so that a new rule release cannot break CI overnight; bump deliberately.
SAM_CLI_VERSION="${SAM_CLI_VERSION:-1.170.0}"
CFN_LINT_VERSION="${CFN_LINT_VERSION:-1.58.0}"
CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"

install_tools() {
  local stamp="$venv/.installed-$SAM_CLI_VERSION-$CFN_LINT_VERSION-$CARGO_LAMBDA_VERSION"
  [ -f "$stamp" ] && return 0
  command -v python3 >/dev/null || { echo "error: python3 is required" >&2; exit 1; }
  echo "installing aws-sam-cli $SAM_CLI_VERSION, cfn-lint $CFN_LINT_VERSION, cargo-lambda $CARGO_LAMBDA_VERSION into $venv ..." >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" >&2
  touch "$stamp"
}

install_tools
[ "${1:-}" = "--install" ] && exit 0

# Both tools work offline; they only need a region to pick their rule set.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0
status=0
echo "cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}') infra/template.yaml" >&2
"$venv/bin/cfn-lint" --non-zero-exit-code informational -- "$template" || status=1
echo "cfn-lint infra/pipeline-bootstrap.yaml (CI/CD bootstrap: GitHub OIDC deploy roles)" >&2
"$venv/bin/cfn-lint" --non-zero-exit-code informational -- "$root/infra/pipeline-bootstrap.yaml" || status=1
echo "sam validate --lint -t infra/template.yaml" >&2
"$venv/bin/sam" validate --lint --template-file "$template" --region "$AWS_DEFAULT_REGION" || status=1
if [ "$status" -ne 0 ]; then
  echo "lint-template: FAILED (see the findings above)" >&2
else
  echo "lint-template: ok" >&2
fi
exit "$status"
