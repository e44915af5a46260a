#!/usr/bin/env bash
# Web console figures: each page's transferred size, and the server time to
# render Settings > API Keys with 100 000 keys in the organization.
#
#   bash bench/console.sh            # 100 000 keys, 1 000 prompts, 200 requests per timed page
#   bash bench/console.sh --smoke    # CI: 2 000 keys, 50 prompts, 20 requests per timed page
#
# Builds the release binaries, seeds a temporary SQLite database through the
# store (`scope-seed`), starts `scope serve`, signs in as the bootstrap admin
# with curl, and prints two Markdown tables. "Server time" is curl's
# time-to-first-byte minus its time-to-request-sent, measured sequentially on
# one keep-alive connection, so it is the server's work for the page (query +
# render), not the network's. Exits non-zero when a page does not answer 200.
# Environment overrides: CONSOLE_KEYS, CONSOLE_PROMPTS, CONSOLE_REQUESTS,
# BENCH_KEEP=1 (keep the work directory).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=full
for arg in "$@"; do
    case "$arg" in
        --smoke) MODE=smoke ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *)
            echo "bench/console.sh: unknown argument '$arg' (expected --smoke)" >&2
            exit 2
            ;;
    esac
done
if [[ $MODE == smoke ]]; then
    KEYS=${CONSOLE_KEYS:-2000} PROMPTS=${CONSOLE_PROMPTS:-50} REQUESTS=${CONSOLE_REQUESTS:-20}
else
    KEYS=${CONSOLE_KEYS:-100000} PROMPTS=${CONSOLE_PROMPTS:-1000} REQUESTS=${CONSOLE_REQUESTS:-200}
fi

fail() {
    printf 'bench/console.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
command -v curl >/dev/null || fail "curl is needed"

cargo build --release --locked --quiet -p scope-cli -p scope-bench
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/scope-console.XXXXXX")
SERVER_PID=""
cleanup() {
    [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

URL_DB="sqlite://$WORK/console.db"
"$BIN/scope" --database "$URL_DB" init --org-name "console bench" --admin-email admin@bench.test --json >"$WORK/init.json"
ORG=$(sed -n 's/^ *"org_id": *"\([^"]*\)".*/\1/p' "$WORK/init.json")
PASSWORD=$(sed -n 's/^ *"admin_password": *"\([^"]*\)".*/\1/p' "$WORK/init.json")
"$BIN/scope-seed" --database "$URL_DB" --org "$ORG" --keys "$KEYS" --prompts "$PROMPTS" --sample 16 \
    --out "$WORK/sample" 2>"$WORK/seed.log" || { cat "$WORK/seed.log" >&2; fail "seeding failed"; }

"$BIN/scope" --database "$URL_DB" serve --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    URL=$(sed -n 's/^Scope listening on \(http:[^ ]*\)$/\1/p' "$WORK/server.out")
    [[ -n $URL ]] && break
    sleep 0.1
done
[[ -n ${URL:-} ]] || fail "scope serve did not start"

JAR=$WORK/cookies
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$JAR" --data-urlencode "email=admin@bench.test" \
    --data-urlencode "password=$PASSWORD" "$URL/login")
[[ $code == 303 ]] || fail "sign-in answered $code"

# A key and a prompt to open, and two versions to compare.
KEY=$(awk '$1 == "key" { print $2; exit }' "$WORK/sample")
PROMPT=$(awk '$1 == "prompt" { print $2; exit }' "$WORK/sample")
CSRF=$(curl -s -b "$JAR" "$URL/prompts" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
curl -s -o /dev/null -b "$JAR" --data-urlencode "csrf=$CSRF" --data-urlencode "copy_from=" "$URL/prompts/$PROMPT/versions"
VERSIONS=($(curl -s -b "$JAR" "$URL/prompts/$PROMPT" | grep -o 'version=v_[0-9A-Z]*' | sed 's/version=//' | sort -u | head -2))
CURSOR=$(curl -s -b "$JAR" "$URL/settings/api-keys" | sed -n 's/.*cursor=\(key_[0-9A-Z]*\).*/\1/p' | head -1)

fetch() { # fetch PATH -> "code bytes"
    curl -s -o /dev/null -b "$JAR" -w '%{http_code} %{size_download}\n' "$URL$1"
}
CSS=$(curl -s "$URL/login" | grep -o '/assets/app\.[0-9a-f]*\.css')
JS=$(curl -s "$URL/login" | grep -o '/assets/app\.[0-9a-f]*\.js')

echo
echo "Console pages ($KEYS keys, $PROMPTS prompts; bytes as sent, no compression; assets are cached immutably after the first page)"
echo
echo "| page | status | HTML bytes |"
echo "|---|---:|---:|"
for p in /login /prompts "/prompts/$PROMPT" "/prompts/$PROMPT/diff?from=${VERSIONS[0]:-}&to=${VERSIONS[1]:-}" /prompts/new \
    /settings/api-keys "/settings/api-keys?status=active" "/settings/api-keys/$KEY" /settings/api-keys/new \
    "/settings/api-keys/$KEY/revoke" /settings/users /audit /account/password "$CSS" "$JS"; do
    read -r code bytes < <(fetch "$p")
    [[ $code == 200 ]] || fail "$p answered $code"
    echo "| \`$p\` | $code | $bytes |"
done

# time_page PATH: median and p99 of the server's time for PATH, in ms.
time_page() {
    local path=$1 args=()
    for _ in $(seq 1 "$REQUESTS"); do args+=("$URL$path" -o /dev/null); done
    curl -s -b "$JAR" -w '%{http_code} %{time_pretransfer} %{time_starttransfer}\n' "${args[@]}" >"$WORK/times"
    awk '$1 != 200 { bad++ } { printf "%.3f\n", ($3 - $2) * 1000 } END { if (bad) exit 1 }' "$WORK/times" |
        sort -n >"$WORK/ms" || fail "$path answered non-200"
    local n median p99
    n=$(wc -l <"$WORK/ms")
    median=$(sed -n "$(((n + 1) / 2))p" "$WORK/ms")
    p99=$(sed -n "$(((n * 99 + 99) / 100))p" "$WORK/ms")
    echo "| \`$path\` | $n | $median | $p99 |"
}

echo
echo "Server time to render (sequential, one connection)"
echo
echo "| page | requests | median ms | p99 ms |"
echo "|---|---:|---:|---:|"
time_page /settings/api-keys
time_page "/settings/api-keys?cursor=$CURSOR"
time_page "/settings/api-keys?status=active"
time_page "/settings/api-keys?status=revoked"
time_page /prompts
time_page "/prompts/$PROMPT"
