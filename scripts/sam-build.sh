#!/usr/bin/env bash
# Builds every function of infra/template.yaml for Lambda (provided.al2023, arm64)
# with `sam build` (build method rust-cargolambda: cargo-lambda cross-compiles with
# zig, in release mode), then reports each function's zipped size, zipped the way
# `sam package`/`sam deploy` zip a function (deflate of the bootstrap binary).
#
#   scripts/sam-build.sh                # build into .aws-sam/build
#   SAM_CONFIG_ENV=prod scripts/sam-build.sh
#   scripts/sam-build.sh --report-only  # only the size table of the last build
#
# Tools come from scripts/lint-template.sh's virtualenv (.local/venv-sam: aws-sam-cli,
# cargo-lambda and the ziglang it depends on). cargo-lambda adds the rustup target
# aarch64-unknown-linux-gnu on first use. CARGO_TARGET_DIR (default: target/ of this
# checkout) keeps the arm64 build incremental; SAM's --target-dir is not used because
# SAM would then copy the whole target directory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SAM_VENV:-$root/.local/venv-sam}"
report_only=false
[ "${1:-}" = "--report-only" ] && report_only=true
if $report_only; then
  [ -d "$root/.aws-sam/build" ] || { echo "no .aws-sam/build: run scripts/sam-build.sh first" >&2; exit 3; }
else
  "$root/scripts/lint-template.sh" --install
fi
export PATH="$venv/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
command -v cargo >/dev/null || { echo "error: cargo (rustup) is required" >&2; exit 1; }
# SKIP_RUSTUP_TARGET=1: the deploy rehearsal's stand-in build compiles nothing.
if [ -z "${SKIP_RUSTUP_TARGET:-}" ] && command -v rustup >/dev/null; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null
fi

cd "$root"
start=$(date +%s)
if ! $report_only; then
  sam build --config-file samconfig.toml --config-env "${SAM_CONFIG_ENV:-default}" \
    --template-file infra/template.yaml --build-dir .aws-sam/build
fi
elapsed=$(( $(date +%s) - start ))

python3 - "$root/.aws-sam/build" "$elapsed" <<'PY'
import io, os, sys, zipfile
build, elapsed = sys.argv[1], sys.argv[2]
rows = []
for fn in sorted(os.listdir(build)):
    boot = os.path.join(build, fn, "bootstrap")
    if not os.path.isfile(boot):
        continue
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(boot, "rb") as f:
            z.writestr(info, f.read())
    rows.append((fn, os.path.getsize(boot), len(buf.getvalue())))
if not rows:
    sys.exit("no bootstrap binaries under " + build)
print(f"\n{'function':<24}{'bootstrap':>14}{'zipped':>14}")
for fn, raw, zipped in rows:
    print(f"{fn:<24}{raw/1e6:>11.2f} MB{zipped/1e6:>11.2f} MB")
print(f"\nsam build took {elapsed} s; artifacts in {build}")
PY
