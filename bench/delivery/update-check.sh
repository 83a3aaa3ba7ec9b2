#!/usr/bin/env bash
# Update-check throughput and latency, side by side with nginx peers.
#
# One server at a time, pinned to CPU 1 (the load generator on CPU 0):
#
#   (a) atoll demo: POST /device/v1/updates/check, signed, for DEVICES registered
#       devices (android, app 3.2.1) that report an installed H5 offline package;
#       the demo's releases (H5 1.0 official, 1.1 at 20 %, an app upgrade to
#       testers) are evaluated per device from the in-memory snapshot, with the
#       device's registered context and the app's lists; about 20 % get an offer
#   (b) nginx + njs: the same signature check, then a static answer
#   (c) nginx `return 200` with a static update answer of the same size: the
#       ceiling of answering from memory
#
# Closed-loop maximum throughput, then open-loop latency at OPEN_FRACTION of the
# slowest maximum. Prints a table and the ratios a/b and a/c.
#
# Knobs: CONNECTIONS=64 DURATION=10 WARMUP=2 DEVICES=10000 OPEN_FRACTION=0.5
# QUIET_WAIT=120 BENCH_SKIP_BUILD=1 CARGO_TARGET_DIR.
# Needs: Linux with 2 CPUs, taskset, nginx and libnginx-mod-http-js.
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
DEVICES=${DEVICES:-10000}
OPEN_FRACTION=${OPEN_FRACTION:-0.5}
NJS_MODULE=${NJS_MODULE:-/usr/lib/nginx/modules/ngx_http_js_module.so}
SERVER_CPU=1
LOAD_CPU=0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ATOLL=$TARGET_DIR/release/atoll
LOADGEN=$TARGET_DIR/release/atoll-bench

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'update-check.sh: %s\n' "$*" >&2; exit 1; }

command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v nginx >/dev/null || die "nginx is missing: apt-get install nginx libnginx-mod-http-js"
[[ -f $NJS_MODULE ]] || die "njs is missing ($NJS_MODULE): apt-get install libnginx-mod-http-js"
(( $(nproc --all) >= 2 )) || die "needs 2 CPUs: the server on CPU 1, the load on CPU 0"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building atoll and atoll-bench (release)"
    (cd "$ROOT" && cargo build --release --quiet -p atoll -p atoll-bench)
fi
[[ -x $ATOLL && -x $LOADGEN ]] || die "binaries missing under $TARGET_DIR/release"

CHECK=/device/v1/updates/check
CHECK_BODY=$WORK/check.json
printf '%s' '{"installed":[{"kind":"h5","resource_id":"20000001","version":"1.0.0"}]}' >"$CHECK_BODY"
# What atoll answers a device that gets the H5 1.1 offer (about 1 KB), served
# as is by the nginx ceiling.
STATIC_ANSWER='{"updates":[{"action":"install","kind":"h5","resource_id":"20000001","version":"1.1.0","release_id":"rel_0000000000000000000000","mode":"silent","notes":"Shop pages 1.1.0","download":{"url":"/device/v1/downloads/ak_00000000000000000000/0000000000000000000000000000000000000000000000000000000000000000","size":612,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"},"signed":{"manifest":"{\"app_key\":\"ak_00000000000000000000\",\"kind\":\"h5\",\"resource_id\":\"20000001\",\"platform\":\"android\",\"version\":\"1.1.0\",\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":612,\"web\":{\"id\":\"20000001\",\"version\":\"1.1.0\",\"entry\":\"https://shop.h5.example/index.html\",\"domain\":\"shop.h5.example\",\"files\":[\"index.html\",\"app.js\"]}}","signature":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","key_id":"0000000000000000"}}],"check_interval_secs":600}'
NGINX_EXTRA="location = /static-check { return 200 '${STATIC_ANSWER//\\/\\\\}'; }"

register_devices() { # every bench-device id once, so checks find them registered
    local rate=2000 seconds
    seconds=$(( DEVICES / rate + 3 ))
    log "registering $DEVICES devices"
    ATOLL_BENCH_APP_KEY=$APP_KEY ATOLL_BENCH_APP_SECRET=$APP_SECRET \
        taskset -c "$LOAD_CPU" "$LOADGEN" --url "$ATOLL_URL" --devices "$DEVICES" -c 16 \
        -d "$seconds" --warmup 0 --rate "$rate" --label register >/dev/null
}

log "closed loop: $CONNECTIONS connections, ${DURATION}s (+${WARMUP}s warm-up) each"
start_nginx
load c-closed "$NGINX_URL" /static-check "$PEER_KEY" "$PEER_SECRET" 0
load b-closed "$NGINX_URL" "$CHECK" "$PEER_KEY" "$PEER_SECRET" 0 --body-file "$CHECK_BODY"
stop_nginx

# One demo device's analytics only: flushing and compacting the default week of
# 2,000 devices' events would run on the server CPU during the measurement (the
# delivery demo data is seeded whenever there are demo devices).
ATOLL_DEMO_ARGS="--demo-devices 1"
start_atoll "$WORK/atoll"
register_devices
load a-closed "$ATOLL_URL" "$CHECK" "$APP_KEY" "$APP_SECRET" 0 --body-file "$CHECK_BODY"
slowest=$(printf '%s\n' "$(field a-closed rps)" "$(field b-closed rps)" "$(field c-closed rps)" | sort -g | head -1)
RATE=$(awk -v s="$slowest" -v f="$OPEN_FRACTION" 'BEGIN { r = int(s * f); if (r < 1) r = 1; print r }')
log "open loop at $RATE req/s ($OPEN_FRACTION of the slowest maximum, $slowest req/s)"
load a-open "$ATOLL_URL" "$CHECK" "$APP_KEY" "$APP_SECRET" "$RATE" --body-file "$CHECK_BODY"
stop_atoll

start_nginx
load b-open "$NGINX_URL" "$CHECK" "$PEER_KEY" "$PEER_SECRET" "$RATE" --body-file "$CHECK_BODY"
load c-open "$NGINX_URL" /static-check "$PEER_KEY" "$PEER_SECRET" "$RATE"
stop_nginx

ms() { awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }'; }
echo
echo "Update check, $CONNECTIONS connections, $DEVICES devices, server on CPU $SERVER_CPU, load on CPU $LOAD_CPU"
echo "closed loop ${DURATION}s; open loop at $RATE req/s (latency from the due time)"
echo
printf '| %-40s | %9s | %8s | %9s | %9s | %9s | %5s |\n' system "max req/s" "us/req" "p50 ms" "p99 ms" "max ms" "bad"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "-----------" "----------" "-----------" "-----------" "-----------" "-------"
row() {
    local name=$1 closed=$2-closed open=$2-open
    [[ $(field "$closed" quiet) == 1 && $(field "$open" quiet) == 1 ]] || name="$name (*)"
    printf '| %-40s | %9.0f | %8.0f | %9s | %9s | %9s | %5s |\n' "$name" \
        "$(field "$closed" rps)" "$(field "$closed" server_us_per_req)" \
        "$(ms "$(field "$open" p50_us)")" "$(ms "$(field "$open" p99_us)")" "$(ms "$(field "$open" max_us)")" \
        "$(( $(field "$closed" unexpected) + $(field "$closed" errors) + $(field "$open" unexpected) + $(field "$open" errors) ))"
}
row "(a) atoll update check" a
row "(b) nginx + njs HMAC check, static answer" b
row "(c) nginx return 200 (static answer)" c
echo
echo "(*) = other work on the machine before or after a run of this row."
printf 'Ratios: a/b req/s %s cpu/req %s p99 %s;  a/c req/s %s cpu/req %s p99 %s\n' \
    "$(ratio "$(field a-closed rps)" "$(field b-closed rps)")" \
    "$(ratio "$(field a-closed server_us_per_req)" "$(field b-closed server_us_per_req)")" \
    "$(ratio "$(field a-open p99_us)" "$(field b-open p99_us)")" \
    "$(ratio "$(field a-closed rps)" "$(field c-closed rps)")" \
    "$(ratio "$(field a-closed server_us_per_req)" "$(field c-closed server_us_per_req)")" \
    "$(ratio "$(field a-open p99_us)" "$(field c-open p99_us)")"
echo
echo "Raw results:"
for label in c-closed b-closed a-closed a-open b-open c-open; do echo "  ${RESULT[$label]}"; done
