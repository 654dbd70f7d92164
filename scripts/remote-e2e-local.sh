#!/usr/bin/env bash
# The remote mode of the end-to-end suite, tested on every change (.ci/run): starts
# `chat-local up --process` (the functions as their built binaries behind the Lambda
# Runtime API, in-memory backend, free ports) as a separate process, then runs
# `./dev test --remote HTTP_URL WS_URL` against its URLs, i.e. only through the public
# HTTP and WebSocket APIs; tests that need table or emulator access skip themselves
# and the binary prints how many ("N skipped: need backend access").
# Extra arguments go to the test binary (a filter, e.g. `realtime::`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

scripts/install-local-deps.sh
# chat-local and every function binary (`up --process` runs them from target/debug).
cargo build --quiet -p chat-local --bin chat-local
cargo build --quiet --workspace --bins

work="$(mktemp -d "${TMPDIR:-/tmp}/chat-remote-e2e.XXXXXX")"
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

ready="$work/ready.json"
LOG_LEVEL="${LOG_LEVEL:-warn}" "$target_dir/debug/chat-local" up --process --in-memory \
  --prefix "rmt$$" --data-dir "$work" \
  --dynamodb-port 0 --moto-port 0 --http-port 0 --ws-port 0 --web-port 0 \
  --ready-file "$ready" >"$work/up.log" 2>&1 &
up_pid=$!
# Wait for the condition "up wrote its ready file" (or for it to die), 3 minutes at most.
deadline=$((SECONDS + 180))
while [ ! -s "$ready" ]; do
  if ! kill -0 "$up_pid" 2>/dev/null; then
    echo "error: chat-local up exited before it was ready:" >&2
    tail -n 50 "$work/up.log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "error: chat-local up was not ready within 180 s:" >&2
    tail -n 50 "$work/up.log" >&2
    exit 1
  fi
  sleep 0.2
done
url_of() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ready" "$1"
}
http_url="$(url_of httpUrl)"
ws_url="$(url_of wsUrl)"

status=0
./dev test --remote "$http_url" "$ws_url" -- "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- chat-local up (last 50 lines) ---" >&2
  tail -n 50 "$work/up.log" >&2
fi
exit "$status"
