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

# --- everything started here is stopped on exit ----------------------------
WORK=$(mktemp -d /tmp/atoll-bench.XXXXXX)
NGINX_PREFIX=""
SHM_DIR=""
PIDS=()
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
    rm -rf "$WORK"
    [[ -n $NGINX_PREFIX ]] && rm -rf "$NGINX_PREFIX"
    [[ -n $SHM_DIR ]] && rm -rf "$SHM_DIR"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

# --- build -----------------------------------------------------------------
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building atoll and atoll-bench (release)"
    (cd "$ROOT" && cargo build --release --quiet -p atoll -p atoll-bench)
fi
[[ -x $ATOLL && -x $LOADGEN ]] || die "binaries missing under $TARGET_DIR/release"

# --- a quiet machine ---------------------------------------------------------
# Other work on the box (a build, a test suite) skews every number. Wait up to
# QUIET_WAIT seconds before each run for a 2-second window in which the CPUs
# are under 10% busy, hypervisor steal aside (the servers are idle between runs).
cpu_busy_percent() { # over 2 seconds, all CPUs
    local a b
    a=$(sed -n 's/^cpu  *//p' /proc/stat)
    sleep 2
    b=$(sed -n 's/^cpu  *//p' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= 8 && i <= n; i++) { t += y[i] - x[i]; if (i == 4 || i == 5 || i == 8) idle += y[i] - x[i] }
        printf "%.0f", (t > 0 ? 100 * (t - idle) / t : 0) }'
}
QUIET=1
wait_for_quiet() {
    local deadline=$((SECONDS + ${QUIET_WAIT:-120})) busy
    QUIET=1
    while :; do
        busy=$(cpu_busy_percent)
        (( busy < 10 )) && return 0
        if (( SECONDS >= deadline )); then
            log "WARNING: the machine is ${busy}% busy with other work; results will be skewed"
            QUIET=0
            return 0
        fi
        log "machine ${busy}% busy with other work; waiting for it to quieten"
    done
}

# --- servers -----------------------------------------------------------------
SERVER_PIDS=()
ATOLL_PID="" ATOLL_URL="" APP_KEY="" APP_SECRET=""
start_atoll() { # data_dir
    local data=$1 out=$WORK/atoll-$RANDOM.out
    mkdir -p "$data"
    # Raise the per-app rate limit (default 1000/s with a 2000 burst: beyond it
    # devices get 429) and the nonce memory, so the benchmark measures the path,
    # not the policy. Nothing else is changed from the defaults.
    (cd "$WORK" && exec env \
        ATOLL_DEVICE_RATE_PER_APP_PER_SEC=100000000 \
        ATOLL_DEVICE_RATE_BURST_PER_APP=100000000 \
        ATOLL_DEVICE_NONCE_CAPACITY=20000000 \
        taskset -c "$SERVER_CPU" "$ATOLL" demo --listen 127.0.0.1:0 --data-dir "$data" \
        >"$out" 2>"$out.log") &
    ATOLL_PID=$!
    PIDS+=("$ATOLL_PID")
    SERVER_PIDS=("$ATOLL_PID")
    for _ in $(seq 1 300); do
        grep -q '^listening on ' "$out" 2>/dev/null && break
        kill -0 "$ATOLL_PID" 2>/dev/null || { cat "$out.log" >&2; die "atoll exited"; }
        sleep 0.1
    done
    ATOLL_URL=$(sed -n 's/^listening on //p' "$out")
    APP_KEY=$(sed -n 's/^ *app_key *= *"\(.*\)"$/\1/p' "$out")
    APP_SECRET=$(sed -n 's/^ *app_secret *= *"\(.*\)"$/\1/p' "$out")
    [[ -n $ATOLL_URL && -n $APP_KEY && -n $APP_SECRET ]] || die "could not read atoll's demo output"
    [[ $ATOLL_URL == http://127.0.0.1:* ]] || die "atoll listens on $ATOLL_URL, not 127.0.0.1"
    log "atoll on $ATOLL_URL (pid $ATOLL_PID, data in $data)"
}
stop_atoll() {
    stop_pid "$ATOLL_PID"
    forget_pid "$ATOLL_PID"
    ATOLL_PID=""
}

NGINX_PID="" NGINX_URL=""
PEER_KEY="ak_$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PEER_SECRET="sk_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
start_nginx() {
    # Its own folder (not inside $WORK, which only this user may enter).
    [[ -n $NGINX_PREFIX ]] || NGINX_PREFIX=$(mktemp -d /tmp/atoll-bench-nginx.XXXXXX)
    local prefix=$NGINX_PREFIX port
    chmod 755 "$prefix"
    port=$(free_port)
    mkdir -p "$prefix/logs" "$prefix/tmp"
    cp "$ROOT/bench/nginx/device_auth.js" "$prefix/"
    cat >"$prefix/nginx.conf" <<EOF
load_module $NJS_MODULE;
daemon off;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 1024; }
http {
    # One log line per request, like atoll's default (info) request log.
    access_log $prefix/logs/access.log;
    default_type application/json;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    js_path "$prefix";
    js_import device_auth from device_auth.js;
    server {
        listen 127.0.0.1:$port;
        location = /plain { return 200 '{"ok":true}'; }
        location /device/v1/ {
            set \$atoll_app_key "$PEER_KEY";
            set \$atoll_app_secret "$PEER_SECRET";
            js_content device_auth.verify;
        }
    }
}
EOF
    # Unprivileged: as root, drop to nobody for the whole instance.
    local run=()
    if [[ $(id -u) == 0 ]]; then
        chown -R 65534:65534 "$prefix"
        run=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    fi
    "${run[@]}" nginx -q -t -e "$prefix/logs/error.log" -p "$prefix" -c "$prefix/nginx.conf" >/dev/null
    "${run[@]}" taskset -c "$SERVER_CPU" nginx -e "$prefix/logs/error.log" -p "$prefix" -c "$prefix/nginx.conf" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(cat "$prefix/logs/error.log")"
        sleep 0.1
    done
    NGINX_URL=http://127.0.0.1:$port
    local worker=""
    for _ in $(seq 1 100); do
        worker=$(pgrep -P "$NGINX_PID" || true)
        [[ -n $worker ]] && break
        sleep 0.1
    done
    [[ -n $worker ]] || die "nginx started no worker"
    # shellcheck disable=SC2206 # one pid per word
    SERVER_PIDS=("$NGINX_PID" $worker)
    log "nginx on $NGINX_URL (pid $NGINX_PID)"
}
stop_nginx() {
    stop_pid "$NGINX_PID"
    forget_pid "$NGINX_PID"
    NGINX_PID=""
}

# --- load --------------------------------------------------------------------
declare -A RESULT
# label url path key secret rate [extra loadgen flags...]
load() {
    local label=$1 url=$2 path=$3 key=$4 secret=$5 rate=$6
    shift 6
    local flags=(--url "$url" --path "$path" --devices "$DEVICES" -c "$CONNECTIONS"
        -d "$DURATION" --warmup "$WARMUP" --label "$label" "$@")
    local pid
    for pid in "${SERVER_PIDS[@]}"; do flags+=(--server-pid "$pid"); done
    [[ $rate == 0 ]] || flags+=(--rate "$rate")
    wait_for_quiet
    local out
    out=$(ATOLL_BENCH_APP_KEY=$key ATOLL_BENCH_APP_SECRET=$secret \
        taskset -c "$LOAD_CPU" "$LOADGEN" "${flags[@]}")
    printf '%s\n\n' "$out" | grep -v '^RESULT ' >&2
    # Other work that started during the run is usually still running after it.
    local after
    after=$(cpu_busy_percent)
    if (( after >= 10 )); then
        log "WARNING: the machine was ${after}% busy right after $label: skewed"
        QUIET=0
    fi
    RESULT[$label]="$(grep '^RESULT ' <<<"$out") quiet=$QUIET"
}
# field label key
field() { tr ' ' '\n' <<<"${RESULT[$1]}" | sed -n "s/^$2=//p"; }

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
