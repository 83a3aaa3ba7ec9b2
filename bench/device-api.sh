#!/usr/bin/env bash
# Benchmark of the signed device API hot path, side by side with nginx peers.
#
# Builds atoll and the load generator (bench/loadgen) in release mode, then, one
# server at a time, each pinned to CPU 1 (the load generator on CPU 0):
#
#   (a)  atoll demo: POST /device/v1/register (signature, nonce, rate limit, JSON,
#        then an SQLite upsert in WAL mode with synchronous=FULL: one fsync per
#        request); the data folder on the disk, as shipped
#   (a') the same with the data folder on tmpfs (/dev/shm): fsync costs nothing,
#        so this shows the storage work without the disk flush
#   (a") atoll, signature path only: register with a signed body of the same size
#        that the handler refuses (400, unknown field) after the signature, nonce
#        and rate limit checks passed, so no storage at all
#   (b)  nginx + njs: the same signature check (headers, window, canonical string,
#        SHA-256 of the body, HMAC-SHA256), 200 with a small JSON body
#   (c)  nginx `return 200`: the HTTP ceiling
#
# For each: closed-loop maximum throughput, then open-loop latency at one fixed
# rate for all (OPEN_FRACTION of the slowest maximum among a, b and c), measured
# from each request's due time. Prints a table and the ratios a/b and a/c.
#
# Only 127.0.0.1 is used. Everything started here is stopped on exit.
#
# Knobs (environment): CONNECTIONS=64 DURATION=10 WARMUP=2 DEVICES=10000
# OPEN_FRACTION=0.5 OPEN_RATE= (a fixed open-loop rate instead) QUIET_WAIT=120
# BENCH_SKIP_BUILD=1 (reuse built binaries) CARGO_TARGET_DIR.
# Needs: Linux with at least 2 CPUs, taskset, nginx and libnginx-mod-http-js
# (apt-get install nginx libnginx-mod-http-js).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
DEVICES=${DEVICES:-10000}
OPEN_FRACTION=${OPEN_FRACTION:-0.5}
NJS_MODULE=${NJS_MODULE:-/usr/lib/nginx/modules/ngx_http_js_module.so}
SERVER_CPU=1
LOAD_CPU=0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ATOLL=$TARGET_DIR/release/atoll
LOADGEN=$TARGET_DIR/release/atoll-bench

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'device-api.sh: %s\n' "$*" >&2; exit 1; }

# --- preconditions ---------------------------------------------------------
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v nginx >/dev/null || die "nginx is missing: apt-get install nginx libnginx-mod-http-js"
[[ -f $NJS_MODULE ]] || die "njs is missing ($NJS_MODULE): apt-get install libnginx-mod-http-js"
(( $(nproc --all) >= 2 )) || die "needs 2 CPUs: the server on CPU 1, the load on CPU 0"

# --- servers, load and cleanup: shared with the other benchmarks ------------
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- build -----------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building atoll and atoll-bench (release)"
    (cd "$ROOT" && cargo build --release --quiet -p atoll -p atoll-bench)
fi
[[ -x $ATOLL && -x $LOADGEN ]] || die "binaries missing under $TARGET_DIR/release"


REGISTER=/device/v1/register
# The signature-only run sends a body as long as the default register body,
# with a field the handler refuses after the checks.
DEFAULT_BODY_BYTES=160

log "closed loop: $CONNECTIONS connections, ${DURATION}s (+${WARMUP}s warm-up) each"
start_nginx
load c-closed "$NGINX_URL" /plain "$PEER_KEY" "$PEER_SECRET" 0
load b-closed "$NGINX_URL" "$REGISTER" "$PEER_KEY" "$PEER_SECRET" 0
stop_nginx

start_atoll "$WORK/atoll-disk"
load a-closed "$ATOLL_URL" "$REGISTER" "$APP_KEY" "$APP_SECRET" 0
slowest=$(printf '%s\n' "$(field a-closed rps)" "$(field b-closed rps)" "$(field c-closed rps)" | sort -g | head -1)
RATE=$(awk -v s="$slowest" -v f="$OPEN_FRACTION" 'BEGIN { r = int(s * f); if (r < 1) r = 1; print r }')
if [[ -n ${OPEN_RATE:-} ]]; then
    RATE=$OPEN_RATE
    log "open loop at $RATE req/s (OPEN_RATE)"
else
    log "open loop at $RATE req/s ($OPEN_FRACTION of the slowest maximum, $slowest req/s)"
fi
load a-open "$ATOLL_URL" "$REGISTER" "$APP_KEY" "$APP_SECRET" "$RATE"
stop_atoll

SHM_DIR=$(mktemp -d /dev/shm/atoll-bench.XXXXXX)
start_atoll "$SHM_DIR/data"
load a-tmpfs-closed "$ATOLL_URL" "$REGISTER" "$APP_KEY" "$APP_SECRET" 0
load a-tmpfs-open "$ATOLL_URL" "$REGISTER" "$APP_KEY" "$APP_SECRET" "$RATE"
stop_atoll

start_atoll "$WORK/atoll-sig"
load a-sig-closed "$ATOLL_URL" "$REGISTER" "$APP_KEY" "$APP_SECRET" 0 \
    --body-size "$DEFAULT_BODY_BYTES" --expect-status 400
load a-sig-open "$ATOLL_URL" "$REGISTER" "$APP_KEY" "$APP_SECRET" "$RATE" \
    --body-size "$DEFAULT_BODY_BYTES" --expect-status 400
stop_atoll

start_nginx
load b-open "$NGINX_URL" "$REGISTER" "$PEER_KEY" "$PEER_SECRET" "$RATE"
load c-open "$NGINX_URL" /plain "$PEER_KEY" "$PEER_SECRET" "$RATE"
stop_nginx

# --- report ------------------------------------------------------------------
ms() { awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }'; }

echo
echo "Signed device API, $CONNECTIONS connections, server on CPU $SERVER_CPU, load on CPU $LOAD_CPU"
echo "closed loop ${DURATION}s; open loop at $RATE req/s (latency from the due time)"
echo
printf '| %-42s | %9s | %8s | %6s | %6s | %9s | %9s | %9s | %9s | %5s |\n' \
    system "max req/s" "us/req" "cpu1 %" "cpu0 %" "p50 ms" "p90 ms" "p99 ms" "max ms" "bad"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' \
    "$(printf -- '-%.0s' {1..44})" "-----------" "----------" "--------" "--------" \
    "-----------" "-----------" "-----------" "-----------" "-------"
row() { # name label-prefix
    local closed=$2-closed open=$2-open name=$1
    if [[ $(field "$closed" quiet) != 1 || $(field "$open" quiet) != 1 ]] ||
        awk -v a="$(field "$closed" steal0)" -v b="$(field "$closed" steal1)" \
            -v c="$(field "$open" steal0)" -v d="$(field "$open" steal1)" \
            'BEGIN { exit !(a > 5 || b > 5 || c > 5 || d > 5) }'; then
        name="$name (*)"
    fi
    printf '| %-42s | %9.0f | %8.0f | %6.0f | %6.0f | %9s | %9s | %9s | %9s | %5s |\n' "$name" \
        "$(field "$closed" rps)" "$(field "$closed" server_us_per_req)" \
        "$(field "$closed" cpu1)" "$(field "$closed" cpu0)" \
        "$(ms "$(field "$open" p50_us)")" "$(ms "$(field "$open" p90_us)")" \
        "$(ms "$(field "$open" p99_us)")" "$(ms "$(field "$open" max_us)")" \
        "$(( $(field "$closed" unexpected) + $(field "$closed" errors) + $(field "$open" unexpected) + $(field "$open" errors) ))"
}
row "(a) atoll register, fsync per request" a
row "(a') atoll register, data on tmpfs" a-tmpfs
row "(a\") atoll signature path only (400)" a-sig
row "(b) nginx + njs HMAC check" b
row "(c) nginx return 200" c
echo
echo "max req/s, us/req (server CPU microseconds per answered request) and cpu %: closed loop."
echo "p50 … max: open loop at $RATE req/s, from each request's due time."
echo "bad = unexpected statuses + transport errors (closed + open runs)."
echo "(*) = skewed: other work on the machine before or after a run of this row, or"
echo "      over 5% of a CPU stolen by the hypervisor during one (see steal0/steal1 below)."
echo
echo "Ratios atoll / peer (req/s: higher is better for atoll; CPU per request and latency: lower is)"
for variant in a a-tmpfs a-sig; do
    printf '  %-8s vs (b): req/s %s  cpu/req %s  p50 %s  p99 %s   vs (c): req/s %s  cpu/req %s  p50 %s  p99 %s\n' "$variant" \
        "$(ratio "$(field "$variant-closed" rps)" "$(field b-closed rps)")" \
        "$(ratio "$(field "$variant-closed" server_us_per_req)" "$(field b-closed server_us_per_req)")" \
        "$(ratio "$(field "$variant-open" p50_us)" "$(field b-open p50_us)")" \
        "$(ratio "$(field "$variant-open" p99_us)" "$(field b-open p99_us)")" \
        "$(ratio "$(field "$variant-closed" rps)" "$(field c-closed rps)")" \
        "$(ratio "$(field "$variant-closed" server_us_per_req)" "$(field c-closed server_us_per_req)")" \
        "$(ratio "$(field "$variant-open" p50_us)" "$(field c-open p50_us)")" \
        "$(ratio "$(field "$variant-open" p99_us)" "$(field c-open p99_us)")"
done
echo
echo "Raw results:"
for label in c-closed b-closed a-closed a-open a-tmpfs-closed a-tmpfs-open a-sig-closed a-sig-open b-open c-open; do
    echo "  ${RESULT[$label]}"
done
