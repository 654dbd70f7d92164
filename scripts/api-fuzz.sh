#!/usr/bin/env bash
# Fuzzes the REST API against its contract, docs/openapi.yaml, with schemathesis:
# generated requests (valid and invalid, every documented operation) go to a local
# stack (`chat-local up --in-memory`, the real functions behind the local API Gateway,
# on free ports); every response must be no 5xx, have a documented status, content
# type and headers, and match the documented schema. The fuzz user, its token and
# real ids come from scripts/api_fuzz_hooks.py. `POST /auth/logout-all` runs last,
# on its own (it revokes the token the rest uses).
#
#   scripts/api-fuzz.sh --quick          # CI: 30 examples per operation (~2 min)
#   scripts/api-fuzz.sh                  # 300 examples per operation, plus the
#                                        # coverage phase (~20-30 min)
#   scripts/api-fuzz.sh --examples N [--seed S]
#
# Installs schemathesis (pinned) into .local/venv-fuzz on first use, and the local
# backend (scripts/install-local-deps.sh). Reports (JUnit, NDJSON) go to
# target/api-fuzz/. Results of the runs so far: docs/reliability.md, "Hostile input".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${FUZZ_VENV:-$root/.local/venv-fuzz}"
# Pinned so that new checks in a release cannot break CI overnight; bump deliberately.
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"

examples=300
phases="examples,coverage,fuzzing"
seed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) examples=30; phases="examples,fuzzing" ;;
    --examples) examples="$2"; shift ;;
    --seed) seed="$2"; shift ;;
    *) echo "usage: scripts/api-fuzz.sh [--quick] [--examples N] [--seed S]" >&2; exit 2 ;;
  esac
  shift
done

stamp="$venv/.installed-schemathesis-$SCHEMATHESIS_VERSION"
if [ ! -f "$stamp" ]; then
  command -v python3 >/dev/null || { echo "error: python3 is required" >&2; exit 1; }
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv ..." >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" >&2
  touch "$stamp"
fi

scripts/install-local-deps.sh
cargo build --quiet -p chat-local --bin chat-local
chat_local="${CARGO_TARGET_DIR:-$root/target}/debug/chat-local"

out="${CARGO_TARGET_DIR:-$root/target}/api-fuzz"
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/api-fuzz.XXXXXX")"
up_pid=""
stop() {
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The whole stack on free ports, in memory, without the web client.
LOG_LEVEL="${LOG_LEVEL:-warn}" "$chat_local" up --in-memory --prefix "fuzz$$" --data-dir "$work" \
  --dynamodb-port 0 --moto-port 0 --http-port 0 --ws-port 0 --web-port 0 \
  --web-dir "$work/no-web-client" --ready-file "$work/ready.json" >"$out/stack.log" 2>&1 &
up_pid=$!
deadline=$((SECONDS + 180))
while [ ! -s "$work/ready.json" ]; do
  if ! kill -0 "$up_pid" 2>/dev/null; then
    echo "error: chat-local up did not start; its log:" >&2
    cat "$out/stack.log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "error: chat-local up was not ready within 180 s" >&2
    exit 1
  fi
  sleep 0.2
done
http_url="$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["httpUrl"])' "$work/ready.json")"
echo "api-fuzz: $http_url, $examples examples per operation, phases $phases" >&2

export API_FUZZ_URL="$http_url" API_FUZZ_STATE="$out/state.json"
export SCHEMATHESIS_HOOKS="$root/scripts/api_fuzz_hooks.py"
checks="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"
run() {
  local name="$1"; shift
  # From target/api-fuzz: schemathesis keeps a cache in ./.schemathesis.
  (cd "$out" && API_FUZZ_STATS="$out/$name.statuses.json" "$venv/bin/schemathesis" run "$root/docs/openapi.yaml" --url "$http_url" \
    --checks "$checks" --max-examples "$examples" --phases "$phases" \
    --workers 2 --request-timeout 60 ${seed:+--seed "$seed"} \
    --suppress-health-check all --output-truncate true \
    --generation-database "$out/examples.db" \
    --report junit,ndjson --report-junit-path "$out/$name.junit.xml" \
    --report-ndjson-path "$out/$name.ndjson" "$@")
}
status=0
run main --exclude-operation-id logoutAll || status=$?
run logout-all --include-operation-id logoutAll || status=$?
# What the API answered, per operation (a fuzzer that only ever saw 404s proves little).
"$venv/bin/python" - "$out/main.statuses.json" "$out/logout-all.statuses.json" <<'PY' >&2 || true
import json, sys
total = 0
for path in sys.argv[1:]:
    for op, statuses in json.load(open(path)).items():
        total += sum(statuses.values())
        print(f"  {op:45} " + " ".join(f"{s}:{n}" for s, n in sorted(statuses.items())))
print(f"  {total} requests")
PY
if [ "$status" -ne 0 ]; then
  echo "api-fuzz: FAILED (findings above; stack log: $out/stack.log)" >&2
else
  echo "api-fuzz: ok" >&2
fi
exit "$status"
