#!/usr/bin/env bash
# Property-based API testing (issue 9): schemathesis (PyPI, pinned) reads the
# live OpenAPI document (GET /api/v1/openapi.json), generates requests for
# every operation (valid and invalid), sends them with an admin token to a
# real `scope serve` on a fresh SQLite database, and checks each answer:
# no 5xx, status code, content type and body as documented. Exits non-zero on
# any failure. The server and its temporary directory are removed at exit.
#
#   scripts/schemathesis.sh                       # CI budget (~4 min)
#   SCHEMATHESIS_MAX_TIME=1800 SCHEMATHESIS_MAX_EXAMPLES=500 scripts/schemathesis.sh
#   SCHEMATHESIS_ARGS="--seed 1 --include-path /api/v1/prompts" scripts/schemathesis.sh
#
# Reports (JUnit, and the run's NDJSON events) and the replay cache go to
# target/schemathesis/ (`cd target/schemathesis && ../schemathesis-venv/bin/st replay ID`).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
MAX_TIME=${SCHEMATHESIS_MAX_TIME:-240}
VENV=target/schemathesis-venv
REPORTS=target/schemathesis
SCOPE_BIN=${SCOPE_BIN:-target/debug/scope}

if [ -z "${SCOPE_BIN_PREBUILT:-}" ]; then
    cargo build --quiet -p scope-cli --bin scope
fi

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

DIR=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT

DB="sqlite://$DIR/scope.db"
"$SCOPE_BIN" --database "$DB" init --org-name Schemathesis --admin-email admin@schemathesis.test --json >"$DIR/init.json"
# Tokens outlive the run however long it is set to be.
SCOPE_TOKEN_TTL=$((MAX_TIME + 3600)) "$SCOPE_BIN" --database "$DB" serve --listen 127.0.0.1:0 >"$DIR/serve.log" 2>&1 &
SERVER_PID=$!
URL=""
for _ in $(seq 300); do
    URL=$(sed -n 's/^Scope listening on //p' "$DIR/serve.log" | head -n 1)
    [ -n "$URL" ] && break
    sleep 0.1
done
if [ -z "$URL" ]; then
    echo "scope serve did not start:" >&2
    cat "$DIR/serve.log" >&2
    exit 1
fi

# The admin key from `scope init`, exchanged for a token (SPEC §4).
TOKEN=$(python3 - "$URL" "$DIR/init.json" <<'EOF'
import json, sys, urllib.request
url, init = sys.argv[1], json.load(open(sys.argv[2]))
body = json.dumps({"account_id": init["org_id"], "key_id": init["api_key"]["key_id"],
                   "key_secret": init["api_key"]["secret"]}).encode()
req = urllib.request.Request(url + "/v1/auth/sdk-token", body, {"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["access_token"])
EOF
)

mkdir -p "$REPORTS"
echo "schemathesis $SCHEMATHESIS_VERSION against $URL: at most $MAX_EXAMPLES cases per operation, $MAX_TIME s"
status=0
# `/api/v1/events` is an endless event stream: not a request/response pair.
# The hooks keep the run from revoking or rotating its own key. Run from the
# reports folder: schemathesis keeps its replay cache (`.schemathesis/`, for
# `st replay ID`) in the working directory.
KEY_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_key"]["key_id"])' "$DIR/init.json")
ROOT=$(pwd)
# shellcheck disable=SC2086
(cd "$REPORTS" && SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis_hooks.py" SCOPE_PROTECTED_KEY_ID="$KEY_ID" \
"$ROOT/$VENV/bin/schemathesis" run "$URL/api/v1/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /api/v1/events \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --request-timeout 10 \
    --workers 1 \
    --suppress-health-check filter_too_much \
    --report junit,ndjson --report-dir . \
    ${SCHEMATHESIS_ARGS:-}) || status=$?

if grep -E 'panicked|internal error' "$DIR/serve.log" >/dev/null 2>&1; then
    echo "the server logged a panic or an internal error:" >&2
    grep -E 'panicked|internal error' "$DIR/serve.log" | head -n 20 >&2
    status=1
fi
if [ "$status" != 0 ]; then
    echo "schemathesis: FAILED (status $status); reports in $REPORTS" >&2
fi
exit "$status"
