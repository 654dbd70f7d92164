#!/usr/bin/env bash
# The web client's tests: unit tests of web/lib (web/test/unit/) and the browser
# end-to-end test (web/test/e2e.test.mjs), from a fresh
# machine: installs Debian's chromium (and an emoji font) if missing, playwright-core
# from web/package-lock.json, DynamoDB Local + moto (scripts/install-local-deps.sh),
# builds chat-local, and runs the test. It starts `chat-local up` itself on free ports.
# Screenshots: target/e2e-screenshots/ (or $E2E_SCREENSHOTS).
# Needs: node >= 18 with npm, cargo, apt-get (as root, or chromium already installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $CHROMIUM is missing; install Debian's 'chromium' package (or set CHROMIUM)" >&2
    exit 1
  fi
  echo "installing chromium (apt) ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi

(cd web && npm ci --no-audit --no-fund --loglevel=error)
scripts/install-local-deps.sh
cargo build --quiet -p chat-local --bin chat-local
export CHAT_LOCAL="${CARGO_TARGET_DIR:-$root/target}/debug/chat-local"

cd web
exec node --test --test-reporter=spec test/
