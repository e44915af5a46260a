#!/usr/bin/env bash
# Load benchmark of `scope serve` (release build, SQLite and PostgreSQL)
# against the limits of this machine. See bench/README.md.
#
#   bash bench/run.sh            # full run: 3 rounds of 8 s per row, 1 000 000 keys / 100 000 prompts
#   bash bench/run.sh --smoke    # CI: 3 rounds of 2 s per row, 1 000 keys / 100 prompts
#
# Builds `scope`, `scope-seed` and `scope-ceiling` in release, seeds two temporary SQLite
# databases through the store (a small one, and a large one for row 4),
# starts `scope serve` on a free port, drives it with wrk at fixed
# concurrency for a fixed time and prints one Markdown table. Row 0 is the
# ceiling: `scope-ceiling`, a bare axum server with one route and no
# middleware, built with the same profile, measured in the same rounds as
# rows 1-3; the goals are shares of it. Exits non-zero
# when the server does not start, a pre-check request does not answer 200,
# or a row has errors or no requests. The performance goals are reported,
# not enforced.
#
# Environment overrides: BENCH_DURATION (s per round), BENCH_ROUNDS,
# BENCH_WARMUP (s), BENCH_CONNECTIONS, BENCH_THREADS (wrk), BENCH_KEYS,
# BENCH_PROMPTS (row 4 database), BENCH_SAMPLE (distinct keys and prompts the
# load cycles through), BENCH_TOKENS (distinct JWTs for the fetch rows),
# BENCH_KEEP=1 (keep the work directory), BENCH_PG_URL (a PostgreSQL server
# `postgres://USER@HOST:PORT` for rows 5a/5b instead of a throwaway cluster
# started here), BENCH_PG=0 (leave the PostgreSQL rows out, said in the output).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
STARTED=$SECONDS

MODE=full
for arg in "$@"; do
    case "$arg" in
        --smoke) MODE=smoke ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *)
            echo "bench/run.sh: unknown argument '$arg' (expected --smoke)" >&2
            exit 2
            ;;
    esac
done

if [[ $MODE == smoke ]]; then
    # Three short rounds, not one: a single 2 s round on a 2-core machine
    # shared with wrk swings by ±15 %, and the median of three is what the
    # shares of the ceiling are read from.
    ROUNDS=${BENCH_ROUNDS:-3}
    DURATION=${BENCH_DURATION:-2}
    WARMUP=${BENCH_WARMUP:-1}
    BIG_KEYS=${BENCH_KEYS:-1000}
    BIG_PROMPTS=${BENCH_PROMPTS:-100}
    SAMPLE=${BENCH_SAMPLE:-64}
else
    ROUNDS=${BENCH_ROUNDS:-3}
    DURATION=${BENCH_DURATION:-8}
    WARMUP=${BENCH_WARMUP:-3}
    BIG_KEYS=${BENCH_KEYS:-1000000}
    BIG_PROMPTS=${BENCH_PROMPTS:-100000}
    SAMPLE=${BENCH_SAMPLE:-256}
fi
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
TOKENS=${BENCH_TOKENS:-32}
((TOKENS > SAMPLE)) && TOKENS=$SAMPLE

log() { printf '[bench %3ds] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
fail() {
    printf 'bench/run.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

# ---- tools -----------------------------------------------------------------------------

need_pkg() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get install -y -qq "$2" >/dev/null 2>&1 ||
        { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq "$2" >/dev/null 2>&1; } ||
        fail "cannot install $2 (apt-get install -y $2)"
    command -v "$1" >/dev/null 2>&1 || fail "$1 not found after installing $2"
}
need_pkg wrk wrk
need_pkg curl curl

log "building release binaries (scope, scope-seed, scope-ceiling)"
cargo build --release --locked --quiet -p scope-cli -p scope-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
[[ -x $BIN/scope && -x $BIN/scope-seed && -x $BIN/scope-ceiling ]] || fail "release binaries not found under $BIN"

# ---- work directory, cleanup -------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/scope-bench.XXXXXX")
SERVER_PID=""
CEILING_PID=""
cleanup() {
    local pid
    for pid in "$SERVER_PID" "$CEILING_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    stop_pg
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "bench work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# ---- PostgreSQL (rows 5a/5b) ----------------------------------------------------------------

PG=${BENCH_PG:-1}
PG_DIR=""
PG_BIN=""
stop_pg() {
    [[ -n $PG_DIR ]] || return 0
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    else
        "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    PG_DIR=""
}
# start_pg: a throwaway cluster on a free port (as the postgres user when
# root: initdb refuses root), trust auth on 127.0.0.1 only; sets PG_URL.
start_pg() {
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -x $PG_BIN/initdb ]] || fail "PostgreSQL is not installed (apt-get install -y postgresql), or run with BENCH_PG=0"
    if [[ -n ${BENCH_PG_URL:-} ]]; then
        PG_URL=$BENCH_PG_URL
        return 0
    fi
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/scope-bench-pg.XXXXXX")
    local port run=()
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres "$PG_DIR"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$PG_BIN/initdb" -A trust -U postgres -D "$PG_DIR/data" >"$WORK/pg.init.log" 2>&1 ||
        { cat "$WORK/pg.init.log" >&2; fail "initdb failed"; }
    "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB" start >/dev/null ||
        { cat "$PG_DIR/log" >&2; fail "PostgreSQL did not start"; }
    PG_URL="postgres://postgres@127.0.0.1:$port"
}

# ---- databases -----------------------------------------------------------------------------

declare -A DBURL

# setup_db NAME KEYS PROMPTS [URL]: creates the NAME database (an SQLite file
# $WORK/NAME.db unless URL is given) with one organization (`scope init`),
# then seeds KEYS keys and PROMPTS published prompts through the store; the
# sample goes to $WORK/NAME.sample.
setup_db() {
    local name=$1 keys=$2 prompts=$3
    local url=${4:-"sqlite://$WORK/$name.db"}
    DBURL[$name]=$url
    "$BIN/scope" --database "$url" init --org-name "bench $name" \
        --admin-email "bench-$name@example.test" --json >"$WORK/$name.init.json" ||
        fail "scope init failed for the $name database"
    local org
    org=$(sed -n 's/^ *"org_id": *"\([^"]*\)".*/\1/p' "$WORK/$name.init.json")
    [[ -n $org ]] || fail "no org_id in the output of scope init"
    "$BIN/scope-seed" --database "$url" --org "$org" --keys "$keys" --prompts "$prompts" \
        --sample "$SAMPLE" --out "$WORK/$name.sample" 2>"$WORK/$name.seed.log" ||
        { cat "$WORK/$name.seed.log" >&2; fail "seeding the $name database failed"; }
    log "$name database: $(cat "$WORK/$name.seed.log")"
}

SMALL_N=$SAMPLE
log "seeding the small database ($SMALL_N keys, $SMALL_N prompts)"
setup_db small "$SMALL_N" "$SMALL_N"
log "seeding the large database ($BIG_KEYS keys, $BIG_PROMPTS prompts)"
setup_db large "$BIG_KEYS" "$BIG_PROMPTS"
if [[ $PG == 1 ]]; then
    start_pg
    "$PG_BIN/psql" -q -d "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS scope_bench" -c "CREATE DATABASE scope_bench" >/dev/null ||
        fail "cannot create the scope_bench database on $PG_URL"
    log "seeding the PostgreSQL database ($SMALL_N keys, $SMALL_N prompts)"
    setup_db pg "$SMALL_N" "$SMALL_N" "$PG_URL/scope_bench"
fi

# ---- server ----------------------------------------------------------------------------------

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }

# start_server NAME: starts `scope serve` on a free port; sets SERVER_PID, URL.
start_server() {
    local name=$1
    # Created here, not by the background job's redirection, which may run
    # after the first read below.
    : >"$WORK/$name.server.out"
    "$BIN/scope" --database "${DBURL[$name]}" serve --listen 127.0.0.1:0 \
        >"$WORK/$name.server.out" 2>"$WORK/$name.server.log" &
    SERVER_PID=$!
    local addr="" i
    for ((i = 0; i < 300; i++)); do
        addr=$(sed -n 's|^Scope listening on http://\(.*\)$|\1|p' "$WORK/$name.server.out")
        [[ -n $addr ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$WORK/$name.server.log" >&2
            SERVER_PID=""
            fail "scope serve exited before listening ($name database)"
        fi
        sleep 0.1
    done
    [[ -n $addr ]] || fail "scope serve did not print its address within 30 s"
    URL="http://$addr"
    sleep 1
}

# start_ceiling: starts `scope-ceiling` on a free port; sets CEILING_PID,
# CEILING_URL.
start_ceiling() {
    : >"$WORK/ceiling.out"
    "$BIN/scope-ceiling" 127.0.0.1:0 >"$WORK/ceiling.out" 2>"$WORK/ceiling.log" &
    CEILING_PID=$!
    local addr="" i
    for ((i = 0; i < 100; i++)); do
        addr=$(sed -n 's|^Scope listening on http://\(.*\)$|\1|p' "$WORK/ceiling.out")
        [[ -n $addr ]] && break
        kill -0 "$CEILING_PID" 2>/dev/null || fail "scope-ceiling exited before listening"
        sleep 0.1
    done
    [[ -n $addr ]] || fail "scope-ceiling did not print its address within 10 s"
    CEILING_URL="http://$addr"
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# ---- request specs (one request a line: METHOD TAB PATH TAB TOKEN|- TAB BODY|-) -------------

login_body() { printf '{"account_id":"%s","client_id":"%s","client_secret":"%s"}' "$1" "$2" "$3"; }

# write_specs NAME: exchange and fetch specs for the NAME database's sample;
# the fetch spec needs the server of that database running (it exchanges
# TOKENS keys for JWTs first).
write_specs() {
    local name=$1 sample=$WORK/$1.sample org
    org=$(awk '$1 == "org" { print $2 }' "$sample")
    awk -v org="$org" '$1 == "key" {
        printf "POST\t/v1/auth/applications/login\t-\t{\"account_id\":\"%s\",\"client_id\":\"%s\",\"client_secret\":\"%s\"}\n", org, $2, $3
    }' "$sample" >"$WORK/$name.exchange.spec"
    local tokens=() key secret token
    while read -r key secret; do
        token=$(curl -sS -f -X POST "$URL/v1/auth/applications/login" -H 'content-type: application/json' \
            -d "$(login_body "$org" "$key" "$secret")" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p') ||
            fail "token exchange for the fetch rows failed"
        [[ -n $token ]] || fail "no access_token in the exchange response"
        tokens+=("$token")
    done < <(awk '$1 == "key" { print $2, $3 }' "$sample" | head -n "$TOKENS")
    ((${#tokens[@]} > 0)) || fail "no sampled keys in $sample"
    local i=0 prompt
    : >"$WORK/$name.fetch.spec"
    while read -r prompt; do
        printf 'GET\t/api/v1/prompts/%s/production\t%s\t-\n' "$prompt" "${tokens[i % ${#tokens[@]}]}" >>"$WORK/$name.fetch.spec"
        i=$((i + 1))
    done < <(awk '$1 == "prompt" { print $2 }' "$sample")
    [[ -s $WORK/$name.fetch.spec ]] || fail "no sampled prompts in $sample"
}

# precheck SPEC [URL]: the first request of SPEC must answer 200.
precheck() {
    local method path token body code args=() url=${2:-$URL}
    IFS=$'\t' read -r method path token body <"$1"
    [[ $token != - ]] && args+=(-H "authorization: Bearer $token")
    [[ $body != - ]] && args+=(-H 'content-type: application/json' --data "$body")
    code=$(curl -s -o "$WORK/precheck.body" -w '%{http_code}' -X "$method" "${args[@]}" "$url$path") || code=000
    [[ $code == 200 ]] || { cat "$WORK/precheck.body" >&2; echo >&2; fail "pre-check $method $path answered $code"; }
}

# ---- rows --------------------------------------------------------------------------------------

# CPU accounting, in clock ticks: the server's own time, and the busy time of
# the whole machine (so that what other processes took can be shown).
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
machine_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

declare -A SCENARIO DBNAME IDLE ROW_PID ROW_URL
ORDER=()

# warm ID SCENARIO DATABASE SPEC IDLE_RSS: registers a row, pre-checks its
# first request and warms the server up with its load.
warm() {
    local id=$1 spec=$4
    SCENARIO[$id]=$2
    DBNAME[$id]=$3
    IDLE[$id]=$5
    # The server a row loads: `scope serve` (SERVER_PID, URL) unless the
    # caller set ROW_SERVER_PID/ROW_SERVER_URL (the ceiling row).
    ROW_PID[$id]=${ROW_SERVER_PID:-$SERVER_PID}
    ROW_URL[$id]=${ROW_SERVER_URL:-$URL}
    ORDER+=("$id")
    precheck "$spec" "${ROW_URL[$id]}"
    log "row $id: ${SCENARIO[$id]} ($3 database): warm-up ${WARMUP} s"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 5s -s "$ROOT/bench/wrk.lua" "${ROW_URL[$id]}" -- "$spec" >/dev/null 2>&1 || true
}

# measure ID SPEC ROUND: one round of DURATION seconds; appends
# id|requests|duration_us|p50_us|p99_us|errors|rss_after|cpu_us_per_req|other_pct
# to $WORK/rounds.
measure() {
    local id=$1 spec=$2 round=$3
    local pid=${ROW_PID[$id]} url=${ROW_URL[$id]}
    log "row $id, round $round/$ROUNDS: ${DURATION} s at $CONNECTIONS connections"
    local srv0 busy0 srv1 busy1 wrk_ticks
    srv0=$(proc_ticks "$pid")
    busy0=$(machine_busy_ticks)
    local TIMEFORMAT="%U %S"
    { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$ROOT/bench/wrk.lua" "$url" -- "$spec" >"$WORK/wrk.out" 2>&1; } 2>"$WORK/wrk.time" ||
        { cat "$WORK/wrk.out" >&2; fail "wrk failed on row $id"; }
    srv1=$(proc_ticks "$pid")
    busy1=$(machine_busy_ticks)
    wrk_ticks=$(awk -v hz="$CLK_TCK" '{ printf "%d", ($1 + $2) * hz }' "$WORK/wrk.time")
    kill -0 "$pid" 2>/dev/null || fail "the server died during row $id"
    local result
    result=$(grep '^WRK_RESULT ' "$WORK/wrk.out" | tail -n 1)
    [[ -n $result ]] || { cat "$WORK/wrk.out" >&2; fail "no result from wrk on row $id"; }
    # WRK_RESULT requests duration_us p50_us p99_us status connect read write timeout
    local f
    read -r -a f <<<"$result"
    local requests=${f[1]} duration=${f[2]} p50=${f[3]} p99=${f[4]}
    local errors=$((f[5] + f[6] + f[7] + f[8] + f[9]))
    # Server CPU µs per request, and the share of the machine's CPU taken by
    # neither the server nor wrk (other processes: noise).
    local srv_ticks=$((srv1 - srv0)) busy_ticks=$((busy1 - busy0))
    local cpu_us other_pct
    cpu_us=$(awk -v t="$srv_ticks" -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    other_pct=$(awk -v b="$busy_ticks" -v s="$srv_ticks" -v w="$wrk_ticks" -v ncpu="$(nproc)" -v hz="$CLK_TCK" -v d="$duration" \
        'BEGIN { o = b - s - w; if (o < 0) o = 0; printf "%.0f", (d > 0 ? 100 * o / (ncpu * hz * d / 1e6) : 0) }')
    echo "$id|$requests|$duration|$p50|$p99|$errors|$(rss_mb "$pid")|$cpu_us|$other_pct" >>"$WORK/rounds"
}

# rounds ID SPEC [ID SPEC ...]: ROUNDS rounds, the rows taking turns, so
# that a slow drift of the machine touches every row alike.
rounds() {
    local r i
    local args=("$@")
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < ${#args[@]}; i += 2)); do
            measure "${args[i]}" "${args[i + 1]}" "$r"
        done
    done
}

: >"$WORK/rounds"
log "starting scope-ceiling (bare axum) and scope serve on the small database"
start_ceiling
start_server small
IDLE_SMALL=$(rss_mb "$SERVER_PID")
printf 'GET\t/healthz\t-\t-\n' >"$WORK/healthz.spec"
write_specs small
ROW_SERVER_PID=$CEILING_PID ROW_SERVER_URL=$CEILING_URL \
    warm 0 "ceiling: bare axum, GET /healthz, no middleware" none "$WORK/healthz.spec" "$(rss_mb "$CEILING_PID")"
warm 1 "baseline: GET /healthz" small "$WORK/healthz.spec" "$IDLE_SMALL"
warm 2 "GET /api/v1/prompts/{name}/production (JWT)" small "$WORK/small.fetch.spec" "$IDLE_SMALL"
warm 3 "POST /v1/auth/applications/login" small "$WORK/small.exchange.spec" "$IDLE_SMALL"
rounds 0 "$WORK/healthz.spec" 1 "$WORK/healthz.spec" 2 "$WORK/small.fetch.spec" 3 "$WORK/small.exchange.spec"
stop_server
kill -TERM "$CEILING_PID" 2>/dev/null || true
wait "$CEILING_PID" 2>/dev/null || true
CEILING_PID=""

log "starting scope serve on the large database"
start_server large
IDLE_LARGE=$(rss_mb "$SERVER_PID")
write_specs large
warm 4a "GET /api/v1/prompts/{name}/production (JWT)" large "$WORK/large.fetch.spec" "$IDLE_LARGE"
warm 4b "POST /v1/auth/applications/login" large "$WORK/large.exchange.spec" "$IDLE_LARGE"
rounds 4a "$WORK/large.fetch.spec" 4b "$WORK/large.exchange.spec"
stop_server

if [[ $PG == 1 ]]; then
    log "starting scope serve on the PostgreSQL database"
    start_server pg
    IDLE_PG=$(rss_mb "$SERVER_PID")
    write_specs pg
    warm 5a "GET /api/v1/prompts/{name}/production (JWT)" pg "$WORK/pg.fetch.spec" "$IDLE_PG"
    warm 5b "POST /v1/auth/applications/login" pg "$WORK/pg.exchange.spec" "$IDLE_PG"
    rounds 5a "$WORK/pg.fetch.spec" 5b "$WORK/pg.exchange.spec"
    stop_server
else
    log "PostgreSQL rows left out (BENCH_PG=0)"
fi

# Per row: the round with the median requests/s (its latencies, CPU and
# noise figures), errors and requests summed over all rounds, the largest RSS.
: >"$WORK/rows"
for id in "${ORDER[@]}"; do
    awk -F'|' -v id="$id" '$1 == id { print ($3 > 0 ? $2 / ($3 / 1e6) : 0) "|" $0 }' "$WORK/rounds" | sort -t'|' -k1,1g >"$WORK/row.$id"
    n=$(wc -l <"$WORK/row.$id")
    ((n > 0)) || fail "no rounds measured for row $id"
    median=$(sed -n "$(((n + 1) / 2))p" "$WORK/row.$id")
    totals=$(awk -F'|' '{ req += $3; err += $7; if ($8 > rss) rss = $8 } END { print req "|" err "|" rss }' "$WORK/row.$id")
    IFS='|' read -r rps _ _ _ p50 p99 _ _ cpu other <<<"$median"
    IFS='|' read -r total_req total_err max_rss <<<"$totals"
    # id|scenario|db|rps|p50|p99|errors|idle|after|cpu|other|total requests
    echo "$id|${SCENARIO[$id]}|${DBNAME[$id]}|$rps|$p50|$p99|$total_err|${IDLE[$id]}|$max_rss|$cpu|$other|$total_req" >>"$WORK/rows"
done

# ---- table -----------------------------------------------------------------------------------

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo
echo "Scope load benchmark ($MODE): $(nproc) CPUs ($CPU), wrk -t$THREADS -c$CONNECTIONS;"
echo "each row: ${WARMUP} s warm-up, then $ROUNDS round(s) of ${DURATION} s (rows taking turns), the median round shown;"
echo "small database: $SMALL_N keys + $SMALL_N prompts (SQLite, and PostgreSQL for rows 5a/5b); large: $BIG_KEYS keys + $BIG_PROMPTS prompts; load cycles through $SAMPLE keys / $SAMPLE prompts ($TOKENS JWTs)."
echo
awk -F'|' -v small_desc="$SMALL_N keys, $SMALL_N prompts" -v large_desc="$BIG_KEYS keys, $BIG_PROMPTS prompts" \
    -v pg_desc="PostgreSQL: $SMALL_N keys, $SMALL_N prompts" '
    function fmt_ms(us) { return sprintf("%.2f ms", us / 1000) }
    {
        id[NR] = $1; sc[NR] = $2; db[NR] = $3; r[NR] = $4; p50[NR] = $5; p99[NR] = $6
        err[NR] = $7; idle[NR] = $8; after[NR] = $9; cpu[NR] = $10; other[NR] = $11
        if ($1 == "0") base = $4
    }
    END {
        print "| # | scenario | database | requests/s | p50 | p99 | errors | server RSS idle → after | server CPU/req | other load | vs ceiling |"
        print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= NR; i++) {
            d = (db[i] == "small") ? small_desc : (db[i] == "pg") ? pg_desc : (db[i] == "none") ? "none" : large_desc
            printf "| %s | %s | %s | %.0f | %s | %s | %d | %s → %s MB | %s µs | %s%% | %.2f |\n", \
                id[i], sc[i], d, r[i], fmt_ms(p50[i]), fmt_ms(p99[i]), err[i], idle[i], after[i], cpu[i], other[i], \
                (base > 0 ? r[i] / base : 0)
        }
    }' "$WORK/rows"
echo
echo "errors: HTTP status >= 400 plus socket errors (connect, read, write, timeout > 5 s) as counted by wrk, summed over all rounds."
echo "server CPU/req: the server's user+system CPU time during the round divided by its requests."
echo "other load: share of the machine's CPU used by processes other than the server and wrk during the round (noise)."

echo
echo "Goals (reported, not enforced):"
awk -F'|' '
    { rps[$1] = $4; p99[$1] = $6; idle[$1] = $8 }
    function check(ok, text) { printf "  %s %s\n", (ok ? "[met]   " : "[missed]"), text }
    END {
        c = rps["0"]; b = rps["1"]; bp = p99["1"]
        check(rps["1"] >= 0.85 * c, sprintf("GET /healthz >= 85%% of the ceiling (row 0) req/s: %.0f%%", 100 * rps["1"] / c))
        check(rps["2"] >= 0.60 * c, sprintf("prompt fetch >= 60%% of the ceiling req/s: %.0f%%", 100 * rps["2"] / c))
        check(rps["3"] >= 0.30 * c, sprintf("token exchange >= 30%% of the ceiling req/s: %.0f%%", 100 * rps["3"] / c))
        check(p99["2"] <= 2 * bp, sprintf("prompt fetch p99 <= 2x baseline p99: %.2f ms vs %.2f ms", p99["2"] / 1000, bp / 1000))
        check(p99["3"] <= 2 * bp, sprintf("token exchange p99 <= 2x baseline p99: %.2f ms vs %.2f ms", p99["3"] / 1000, bp / 1000))
        check(rps["4a"] >= 0.80 * rps["2"], sprintf("large-database fetch within 20%% of row 2: %.0f%%", 100 * rps["4a"] / rps["2"]))
        check(rps["4b"] >= 0.80 * rps["3"], sprintf("large-database exchange within 20%% of row 3: %.0f%%", 100 * rps["4b"] / rps["3"]))
        if ("5a" in rps) {
            check(rps["5a"] >= 0.80 * rps["2"], sprintf("PostgreSQL fetch within 20%% of SQLite (row 2): %.0f%%", 100 * rps["5a"] / rps["2"]))
            printf "  [info]    PostgreSQL exchange vs SQLite (row 3): %.0f%%\n", 100 * rps["5b"] / rps["3"]
        }
        check(idle["1"] < 40 && idle["4a"] < 40, sprintf("idle RSS < 40 MB: %s MB (small), %s MB (large)", idle["1"], idle["4a"]))
    }' "$WORK/rows"
echo
echo "Total time: $((SECONDS - STARTED)) s"

# ---- verdict: errors or empty rows fail the run ---------------------------------------------

bad=$(awk -F'|' '$7 != 0 || $12 == 0 { printf "row %s (%s requests, %s errors); ", $1, $12, $7 }' "$WORK/rows")
[[ -z $bad ]] || fail "$bad"
