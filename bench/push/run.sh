#!/usr/bin/env bash
# Push: broadcast throughput through a vendor channel and over Atoll's own
# connection, and send-API latency under load, side by side with the ceiling.
#
# No gorush-style peer can be installed here (Debian has none; only crates.io,
# PyPI, npm and Debian packages are reachable), so the peer is the ceiling: the
# same N notifications sent straight to the same fake vendor with the same
# client code (`atoll-bench push ceiling`: atoll-push-vendors' HMS client, K
# requests in flight, no queue, no storage, no fan-out). Atoll's number is a
# broadcast to N registered devices with HMS tokens: expand the audience from
# the device table in pages, write N deliveries, claim them with leases, send
# K at a time, write every result — timed from the API call until the task
# counts all N as sent. ratio = atoll / ceiling.
#
# Own connection: N devices connected to /device/v1/connect (`atoll-bench ws
# fanout --push`), one broadcast per round, timed until every device has the
# push frame (and acknowledges it).
#
# Send-API latency: simple pushes to one random device each (whose delivery
# goes to the fake vendor), open loop at RATE/s for LAT_DURATION s.
#
# CPU 1: atoll (or the ceiling's client); CPU 0: the fake vendor and the load.
# Knobs: DEVICES=100000 CONNECTED=10000 CONCURRENCY=64 RATE=200 LAT_DURATION=20
# ROUNDS=3 SOURCE_IPS=127.0.0.2-127.0.0.6 IN_FLIGHT=500 QUIET_WAIT=120
# ATOLL=… LOADGEN=… FAKES=… (default: release builds under $CARGO_TARGET_DIR,
# built unless BENCH_SKIP_BUILD=1).
set -euo pipefail

DEVICES=${DEVICES:-100000}
CONNECTED=${CONNECTED:-10000}
CONCURRENCY=${CONCURRENCY:-64}
RATE=${RATE:-200}
LAT_DURATION=${LAT_DURATION:-20}
ROUNDS=${ROUNDS:-3}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.2-127.0.0.6}
IN_FLIGHT=${IN_FLIGHT:-500}
SERVER_CPU=1
LOAD_CPU=0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ATOLL=${ATOLL:-$TARGET_DIR/release/atoll}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/atoll-bench}
FAKES=${FAKES:-$TARGET_DIR/release/atoll-push-fakes}

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'push/run.sh: %s\n' "$*" >&2; exit 1; }

command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v curl >/dev/null || die "curl is missing"
command -v python3 >/dev/null || die "python3 is missing"
(( $(nproc --all) >= 2 )) || die "needs 2 CPUs: the server on CPU 1, the load on CPU 0"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building atoll, atoll-bench and atoll-push-fakes (release)"
    (cd "$ROOT" && cargo build --release --quiet -p atoll -p atoll-bench -p atoll-push-fakes)
fi
[[ -x $ATOLL && -x $LOADGEN && -x $FAKES ]] || die "binaries missing: $ATOLL $LOADGEN $FAKES"

ulimit -n "$(ulimit -Hn)"
(( CONNECTED + 1000 <= $(ulimit -n) )) || die "CONNECTED=$CONNECTED does not fit the open-file limit $(ulimit -n)"

declare -A RESULT
field() { # label key
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"${RESULT[$1]:-}"
}
run_load() { # label cpu command…
    local label=$1 cpu=$2 out status=0
    shift 2
    wait_for_quiet
    out=$(taskset -c "$cpu" "$@") || status=$?
    printf '%s\n' "$out" | grep -v '^RESULT ' >&2 || true
    (( status == 0 )) && grep -q '^RESULT ' <<<"$out" || die "$label failed (exit $status): $out"
    RESULT[$label]="$(grep '^RESULT ' <<<"$out" | tail -1) quiet=$QUIET"
    log "${RESULT[$label]}"
}

# --- the fake vendors on the load CPU -------------------------------------------------
taskset -c "$LOAD_CPU" "$FAKES" >"$WORK/fakes.json" 2>"$WORK/fakes.log" &
PIDS+=("$!")
for _ in $(seq 1 100); do [[ -s $WORK/fakes.json ]] && break; sleep 0.1; done
[[ -s $WORK/fakes.json ]] || die "the fakes did not start: $(cat "$WORK/fakes.log")"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); json.dump(d["hms"]["credentials"], open(sys.argv[2],"w"))' \
    "$WORK/fakes.json" "$WORK/hms.json"

# --- atoll with the HMS channel and DEVICES devices -----------------------------------
ATOLL_EXTRA_ENV="ATOLL_PUSH_VENDOR_CONCURRENCY=$CONCURRENCY ATOLL_SYNC_IDLE_TIMEOUT_SECS=3600"
ATOLL_DEMO_ARGS="--demo-devices 0"
start_atoll "$WORK/atoll"
TOKEN=$(curl -fsS -H 'content-type: application/json' \
    -d "{\"email\":\"admin@demo.atoll\",\"password\":\"$ADMIN_PASSWORD\"}" \
    "$ATOLL_URL/api/v1/auth/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || die "could not log in to atoll"
python3 -c 'import json,sys; print(json.dumps({"credentials": json.load(open(sys.argv[1]))}))' "$WORK/hms.json" >"$WORK/channel.json"
code=$(curl -sS -o "$WORK/channel.out" -w '%{http_code}' -X PUT -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' --data @"$WORK/channel.json" \
    "$ATOLL_URL/api/v1/workspaces/demo/apps/$APP_KEY/push/channels/hms")
[[ $code == 200 ]] || die "the HMS channel got $code: $(cat "$WORK/channel.out")"
export ATOLL_BENCH_APP_KEY=$APP_KEY ATOLL_BENCH_APP_SECRET=$APP_SECRET ATOLL_BENCH_TOKEN=$TOKEN
log "registering $DEVICES devices with HMS tokens"
taskset -c "$LOAD_CPU" "$LOADGEN" push register --url "$ATOLL_URL" -n "$DEVICES" -c 32 >&2

# --- the ceiling: straight to the fake, from the server's CPU -------------------------
run_load ceiling "$SERVER_CPU" "$LOADGEN" push ceiling --credentials "$WORK/hms.json" \
    -n "$DEVICES" -c "$CONCURRENCY"

# --- atoll: a broadcast to every device through HMS -----------------------------------
run_load broadcast "$LOAD_CPU" "$LOADGEN" push broadcast --url "$ATOLL_URL" -n "$DEVICES" \
    --label broadcast
ATOLL_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$ATOLL_PID/status")

# --- send-API latency under load -------------------------------------------------------
run_load latency "$LOAD_CPU" "$LOADGEN" push latency --url "$ATOLL_URL" -n "$DEVICES" \
    -r "$RATE" -d "$LAT_DURATION" -c 32
stop_atoll

# --- own connection: CONNECTED devices online, broadcasts over /device/v1/connect ------
start_atoll "$WORK/atoll-ws"
TOKEN=$(curl -fsS -H 'content-type: application/json' \
    -d "{\"email\":\"admin@demo.atoll\",\"password\":\"$ADMIN_PASSWORD\"}" \
    "$ATOLL_URL/api/v1/auth/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
export ATOLL_BENCH_APP_KEY=$APP_KEY ATOLL_BENCH_APP_SECRET=$APP_SECRET ATOLL_BENCH_TOKEN=$TOKEN
curl -fsS -o /dev/null -X POST -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"id":"FEED","dimension":"device","global_allowed":true}' \
    "$ATOLL_URL/api/v1/workspaces/demo/apps/$APP_KEY/sync/biz-types"
log "registering $CONNECTED devices for the connection"
taskset -c "$LOAD_CPU" "$LOADGEN" ws register --url "$ATOLL_URL" --devices "$CONNECTED" >&2
run_load connection "$LOAD_CPU" "$LOADGEN" ws fanout --target atoll --push --url "$ATOLL_URL" \
    --biz FEED --label connection --source-ips "$SOURCE_IPS" --in-flight "$IN_FLIGHT" \
    --server-pid "$ATOLL_PID" -c "$CONNECTED" --messages "$ROUNDS"
stop_atoll

# --- report --------------------------------------------------------------------------
ceiling_rate=$(field ceiling per_sec)
broadcast_rate=$(field broadcast per_sec)
ratio=$(awk -v a="$broadcast_rate" -v b="$ceiling_rate" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
cat <<EOF

push benchmark, $(date -u +%Y-%m-%d), $(nproc) CPUs, $DEVICES devices with HMS tokens, $CONCURRENCY vendor requests in flight
| run | figure |
|---|---|
| ceiling: client → fake HMS, no queue | $(field ceiling seconds) s, $ceiling_rate msg/s |
| atoll broadcast → fake HMS (accepted in $(field broadcast accepted_ms) ms) | $(field broadcast seconds) s, $broadcast_rate msg/s, sent $(field broadcast sent), failed $(field broadcast failed), peak RSS $((ATOLL_RSS / 1024)) MB |
| ratio atoll / ceiling | $ratio× |
| send API, $RATE/s open loop, $LAT_DURATION s | p50 $(field latency p50_ms) ms, p99 $(field latency p99_ms) ms, max $(field latency max_ms) ms, errors $(field latency errors) |
| own connection, $CONNECTED online | ${RESULT[connection]:-} |
EOF
