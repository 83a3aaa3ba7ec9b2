#!/usr/bin/env bash
# Analytics benchmark: Atoll against DuckDB and chdb on the same synthetic events.
#
#   bench/analytics/run.sh            # 10^7 events (about 3.4 GB of NDJSON)
#   bench/analytics/run.sh --1e8      # 10^8 events (about 34 GB; long)
#
# Steps (each writes into results/<timestamp>/, the last prints the tables):
#   1. generate the dataset once with `atoll-bench events-gen` (seeded, cached in data/);
#   2. peers, ingest: DuckDB read_json and chdb JSONEachRow → MergeTree, one thread,
#      pinned to CPU 1 (rows/s and rows per CPU-second);
#   3. peers, queries: DAU by day, UV, D1-D7 retention, 4-step funnel (24 h), two
#      threads each; per question a fresh process after dropping the page cache:
#      one cold run, then 3 hot runs (best kept);
#   4. Atoll, device ingest: a fresh `atoll demo` pinned to CPU 1, `atoll-bench
#      --event-batch 50` pinned to CPU 0, closed loop (events/s, server CPU/event);
#      then again with neither pinned (the 2-core end-to-end figure);
#   5. Atoll, bulk load: a second fresh `atoll demo` (server CPU 1, loader CPU 0)
#      loads the dataset through the admin backfill API, then waits until the
#      overview counts every event;
#   6. Atoll, queries: per question, restart the server (both CPUs), drop the page
#      cache, one cold run then 3 hot runs of the report API;
#   7. report.py: checks that all answers are equal (exit 1 if not) and prints the
#      tables with ratios.
#
# Environment: ATOLL_BIN (default $CARGO_TARGET_DIR/release/atoll, with
# CARGO_TARGET_DIR default /root/.cache/atoll-target-release), BENCH_BIN (the
# atoll-bench binary; built with cargo if missing), EVENTS, SEED, END_DATE,
# SKIP_PEERS=1, SKIP_ATOLL=1, SKIP_ATOLL_EVENTS=1, KEEP_PEER_DB=1 (reuse loaded
# peer databases and skip the peer ingest), DURATION (seconds of the device
# ingest run, default 15), CONNECTIONS (default 64), BACKFILL_CONNECTIONS (default 8),
# ONLY=ingest (step 4 alone: no dataset, peers, bulk load or queries),
# KEEP_ATOLL_DATA=1 (keep the loaded server's data directory for more queries).
# Benchmarks never gate CI.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EVENTS=${EVENTS:-10000000}
if [[ "${1:-}" == "--1e8" ]]; then EVENTS=100000000; fi
SEED=${SEED:-42}
END_DATE=${END_DATE:-2026-11-27}
DAYS=30
FROM=$(date -u -d "$END_DATE - $((DAYS - 1)) days" +%F)
TO=$END_DATE
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
BACKFILL_CONNECTIONS=${BACKFILL_CONNECTIONS:-8}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/atoll-target-release}
ATOLL_BIN=${ATOLL_BIN:-$CARGO_TARGET_DIR/release/atoll}
BENCH_TARGET_DIR=${BENCH_TARGET_DIR:-/root/.cache/atoll-target-bench}
BENCH_BIN=${BENCH_BIN:-$BENCH_TARGET_DIR/release/atoll-bench}
DATA=$HERE/data
RESULTS=$HERE/results/$(date -u +%Y%m%d-%H%M%S)
PY=$HERE/.venv/bin/python
mkdir -p "$DATA" "$RESULTS"

log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

drop_caches() {
    sync
    if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then COLD=cold; else COLD=lukewarm; fi
}

# --- tools -------------------------------------------------------------------
if [[ ! -x "$BENCH_BIN" ]]; then
    log "building atoll-bench"
    (cd "$ROOT" && CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release -p atoll-bench)
fi
if [[ ! -x "$PY" ]]; then
    log "creating the Python venv (duckdb, chdb)"
    python3 -m venv "$HERE/.venv"
    "$PY" -m pip install -q duckdb chdb
fi
"$PY" -c 'import duckdb, chdb; print("duckdb", duckdb.__version__, "chdb", chdb.__version__, "engine", chdb.engine_version)' > "$RESULTS/versions.txt"

# --- 1. data -----------------------------------------------------------------
FILE=$DATA/events-$EVENTS-s$SEED-$END_DATE.ndjson
if [[ "${ONLY:-}" == ingest ]]; then
    SKIP_PEERS=1
    : > "$RESULTS/gen.txt"
elif [[ ! -s "$FILE" ]]; then
    log "generating $EVENTS events into $FILE"
    "$BENCH_BIN" events-gen --events "$EVENTS" --seed "$SEED" --days "$DAYS" --end-date "$END_DATE" --out "$FILE.tmp" 2> "$RESULTS/gen.txt"
    mv "$FILE.tmp" "$FILE"
    cp "$RESULTS/gen.txt" "$FILE.gen.txt"
else
    cp "$FILE.gen.txt" "$RESULTS/gen.txt" 2>/dev/null || true
fi
DEVICES=$(grep -o 'devices=[0-9]*' "$RESULTS/gen.txt" | head -1 | cut -d= -f2 || true)
cat > "$RESULTS/meta.json" <<EOF
{"events": $EVENTS, "devices": "${DEVICES:-?}", "seed": $SEED, "from": "$FROM", "to": "$TO",
 "date": "$(date -u +%F)", "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)", "cores": $(nproc)}
EOF

# --- 2-3. peers ----------------------------------------------------------------
if [[ "${SKIP_PEERS:-0}" != 1 ]]; then
    for engine in duckdb chdb; do
        DB=$DATA/$engine-$EVENTS-s$SEED
        if [[ "${KEEP_PEER_DB:-0}" == 1 && -s "$DB.ingest.json" ]]; then
            log "$engine: reusing $DB and its ingest figures"
            cp "$DB.ingest.json" "$RESULTS/ingest-$engine.json"
        else
            rm -rf "$DB"
            drop_caches
            log "$engine: ingest (1 thread, CPU 1)"
            taskset -c 1 "$PY" "$HERE/peers.py" ingest --engine "$engine" --file "$FILE" --dir "$DB" --threads 1 > "$RESULTS/ingest-$engine.json"
            cp "$RESULTS/ingest-$engine.json" "$DB.ingest.json"
            cat "$RESULTS/ingest-$engine.json" >&2
        fi
        for query in dau uv retention funnel; do
            drop_caches
            log "$engine: $query ($COLD + 3 hot, 2 threads)"
            "$PY" "$HERE/peers.py" query --engine "$engine" --dir "$DB" --query "$query" --from "$FROM" --to "$TO" --threads 2 --runs 3 > "$RESULTS/query-$engine-$query.json"
        done
    done
fi

# --- 4-6. Atoll ------------------------------------------------------------------
SERVER_PID=
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 600); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
trap stop_server EXIT

# start_server DATA_DIR LOG CPU_LIST: starts `atoll demo`, waits for its URL.
start_server() {
    local dir=$1 logfile=$2 cpus=$3
    mkdir -p "$dir"
    ATOLL_DEMO_DEVICES=0 ATOLL_LOG_LEVEL=${ATOLL_LOG_LEVEL:-warn} \
    ATOLL_DEVICE_RATE_PER_APP_PER_SEC=100000000 ATOLL_DEVICE_RATE_BURST_PER_APP=100000000 \
    ATOLL_DEVICE_NONCE_CAPACITY=20000000 \
        taskset -c "$cpus" "$ATOLL_BIN" demo --listen 127.0.0.1:0 --data-dir "$dir" > "$logfile" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 1200); do
        if grep -q '^listening on http://' "$logfile"; then
            URL=$(grep -m1 '^listening on http://' "$logfile" | sed 's/^listening on //')
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logfile" >&2; die "atoll exited"; }
        sleep 0.1
    done
    die "atoll did not start (see $logfile)"
}

# credentials LOG: APP_KEY, APP_SECRET, TOKEN from a first start's output.
credentials() {
    local logfile=$1
    APP_KEY=$(grep -m1 'app_key    = "' "$logfile" | sed 's/.*= "\(.*\)"/\1/')
    APP_SECRET=$(grep -m1 'app_secret = "' "$logfile" | sed 's/.*= "\(.*\)"/\1/')
    local password email
    password=$(grep -m1 '  Password  ' "$logfile" | awk '{print $2}')
    email=$(grep -m1 '  Login     ' "$logfile" | awk '{print $2}')
    email=${email:-admin@demo.atoll}
    [[ -n "$APP_KEY" && -n "$APP_SECRET" && -n "$password" ]] || die "no demo credentials in $logfile"
    TOKEN=$(curl -sf -X POST "$URL/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"$password\"}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])') \
        || die "login failed"
}

if [[ "${SKIP_ATOLL:-0}" != 1 ]]; then
    [[ -x "$ATOLL_BIN" ]] || die "no atoll binary at $ATOLL_BIN (set ATOLL_BIN)"
    WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/atoll-analytics-bench.XXXXXX")
    log "Atoll data under $WORK"

    if [[ "${SKIP_ATOLL_EVENTS:-0}" != 1 ]]; then
        start_server "$WORK/ingest" "$RESULTS/atoll-ingest-server.log" 1
        credentials "$RESULTS/atoll-ingest-server.log"
        log "atoll: device ingest, 50 events/batch, $CONNECTIONS connections, ${DURATION}s (server CPU 1, loadgen CPU 0)"
        ATOLL_BENCH_APP_KEY=$APP_KEY ATOLL_BENCH_APP_SECRET=$APP_SECRET taskset -c 0 "$BENCH_BIN" \
            --url "$URL" --event-batch 50 --devices 2000 -c "$CONNECTIONS" -d "$DURATION" --warmup 3 \
            --label atoll-events --server-pid "$SERVER_PID" | tee "$RESULTS/atoll-events.txt" >&2
        stop_server
        rm -rf "$WORK/ingest"
        start_server "$WORK/ingest" "$RESULTS/atoll-ingest-server-2cpu.log" 0,1
        credentials "$RESULTS/atoll-ingest-server-2cpu.log"
        log "atoll: device ingest again, server and loadgen on both CPUs (end to end on the machine)"
        ATOLL_BENCH_APP_KEY=$APP_KEY ATOLL_BENCH_APP_SECRET=$APP_SECRET "$BENCH_BIN" \
            --url "$URL" --event-batch 50 --devices 2000 -c "$CONNECTIONS" -d "$DURATION" --warmup 3 \
            --label atoll-events-2cpu --server-pid "$SERVER_PID" | tee "$RESULTS/atoll-events-2cpu.txt" >&2
        stop_server
        rm -rf "$WORK/ingest"
    fi
    if [[ "${ONLY:-}" == ingest ]]; then
        rm -rf "$WORK"
        log "results in $RESULTS (ingest only)"
        exit 0
    fi

    start_server "$WORK/history" "$RESULTS/atoll-server.log" 1
    credentials "$RESULTS/atoll-server.log"
    echo "$URL $APP_KEY" > "$RESULTS/atoll-target.txt"
    log "atoll: backfill of $EVENTS events, $BACKFILL_CONNECTIONS connections (server CPU 1, loader CPU 0)"
    # Bodies are prepared on both CPUs (untimed), then the loader moves to CPU 0.
    ATOLL_BENCH_TOKEN=$TOKEN "$BENCH_BIN" backfill --url "$URL" --app "$APP_KEY" --send-cpus 0 \
        --file "$FILE" -c "$BACKFILL_CONNECTIONS" --server-pid "$SERVER_PID" --label atoll-backfill \
        | tee "$RESULTS/atoll-backfill.txt" >&2
    # Queryable: the overview counts every event of the range.
    waited=0
    while :; do
        counted=$(ATOLL_BENCH_TOKEN=$TOKEN "$PY" "$HERE/peers.py" atoll-query --url "$URL" --app "$APP_KEY" \
            --query overview --from "$FROM" --to "$TO" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["totals"]["events"])')
        [[ "$counted" == "$EVENTS" ]] && break
        (( waited < 600 )) || die "after 600 s the overview counts $counted of $EVENTS events"
        sleep 1; waited=$((waited + 1))
    done
    log "atoll: all $EVENTS events queryable ${waited}s after the last backfill answer"
    echo "$waited" > "$RESULTS/atoll-queryable-after-s.txt"
    for query in dau uv retention funnel; do
        stop_server
        drop_caches
        start_server "$WORK/history" "$RESULTS/atoll-server-$query.log" 0,1
        log "atoll: $query ($COLD after restart + 3 hot)"
        ATOLL_BENCH_TOKEN=$TOKEN "$PY" "$HERE/peers.py" atoll-query --url "$URL" --app "$APP_KEY" \
            --query "$query" --from "$FROM" --to "$TO" --runs 3 > "$RESULTS/query-atoll-$query.json"
    done
    stop_server
    du -sb "$WORK/history" | cut -f1 > "$RESULTS/atoll-bytes-on-disk.txt"
    if [[ "${KEEP_ATOLL_DATA:-0}" == 1 ]]; then
        log "atoll: loaded data kept in $WORK/history (credentials in $RESULTS/atoll-server.log)"
    else
        rm -rf "$WORK"
    fi
fi

# --- 7. report ---------------------------------------------------------------------
set +e
"$PY" "$HERE/report.py" "$RESULTS" | tee "$RESULTS/report.md"
status=${PIPESTATUS[0]}
set -e
log "results in $RESULTS"
if [[ $status != 0 ]]; then
    log "ANSWERS DIFFER between engines — see above"
    exit 1
fi
