#!/usr/bin/env bash
# Gateway throughput and added latency, side by side with nginx peers.
#
# The upstream is nginx `return 200` with a 1 KB JSON body, pinned to CPU 0
# with the load generator. One proxy at a time runs on CPU 1:
#
#   (a) atoll demo: POST /gw/v1 with `operation-type: com.bench.echo.call`,
#       signed (HMAC, timestamp window, single-use nonce), routed by operation
#       type through the app's snapshot, rate-limit buckets looked up (none
#       set), the bound user looked up (cached), forwarded over pooled
#       keep-alive connections with the identity headers and the gateway's own
#       HMAC signature; access log off, as for nginx
#   (b) nginx proxy_pass with upstream keep-alive (no checks at all)
#   (c) nginx + njs: the same device signature check in JavaScript, then a
#       subrequest to the same proxy_pass location
#
# Closed-loop maximum throughput, then open-loop latency at OPEN_FRACTION of the
# slowest maximum, for each proxy and for the upstream directly; the added
# latency is the proxy's p50/p99 minus the direct p50/p99. BODY_SIZE is the
# request body (200 B by default; 4096 for the large case).
#
# Knobs: CONNECTIONS=64 DURATION=10 WARMUP=2 DEVICES=10000 OPEN_FRACTION=0.5
# BODY_SIZE=200 QUIET_WAIT=120 BENCH_SKIP_BUILD=1 CARGO_TARGET_DIR; ONLY=atoll
# skips the nginx proxies (a and d only, for iterating on atoll; no ratios);
# ATOLL_EXTRA_ENV adds settings to atoll's; PROFILE profiles atoll's closed-loop
# run (bench/lib.sh).
# Needs: Linux with 2 CPUs, taskset, curl, nginx and libnginx-mod-http-js.
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
DEVICES=${DEVICES:-10000}
OPEN_FRACTION=${OPEN_FRACTION:-0.5}
BODY_SIZE=${BODY_SIZE:-200}
NJS_MODULE=${NJS_MODULE:-/usr/lib/nginx/modules/ngx_http_js_module.so}
SERVER_CPU=1
LOAD_CPU=0
OPERATION=com.bench.echo.call

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ATOLL=$TARGET_DIR/release/atoll
LOADGEN=$TARGET_DIR/release/atoll-bench

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'gateway/run.sh: %s\n' "$*" >&2; exit 1; }

command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v curl >/dev/null || die "curl is missing"
command -v nginx >/dev/null || die "nginx is missing: apt-get install nginx libnginx-mod-http-js"
[[ -f $NJS_MODULE ]] || die "njs is missing ($NJS_MODULE): apt-get install libnginx-mod-http-js"
(( $(nproc --all) >= 2 )) || die "needs 2 CPUs: the proxy on CPU 1, the load and upstream on CPU 0"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building atoll and atoll-bench (release)"
    (cd "$ROOT" && cargo build --release --quiet -p atoll -p atoll-bench)
fi
[[ -x $ATOLL && -x $LOADGEN ]] || die "binaries missing under $TARGET_DIR/release"

# --- the upstream: nginx return 200, 1 KB, on the load CPU --------------------
UPSTREAM_PREFIX=$(mktemp -d /tmp/atoll-bench-upstream.XXXXXX)
UPSTREAM_PORT=$(free_port)
UPSTREAM_BODY=$(printf '{"ok":true,"pad":"%s"}' "$(head -c 1000 /dev/zero | tr '\0' x)")
mkdir -p "$UPSTREAM_PREFIX/logs" "$UPSTREAM_PREFIX/tmp"
cat >"$UPSTREAM_PREFIX/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $UPSTREAM_PREFIX/nginx.pid;
error_log $UPSTREAM_PREFIX/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $UPSTREAM_PREFIX/tmp/body;
    proxy_temp_path $UPSTREAM_PREFIX/tmp/proxy;
    fastcgi_temp_path $UPSTREAM_PREFIX/tmp/fastcgi;
    uwsgi_temp_path $UPSTREAM_PREFIX/tmp/uwsgi;
    scgi_temp_path $UPSTREAM_PREFIX/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_buffer_size 64k;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / { default_type application/json; return 200 '$UPSTREAM_BODY'; }
    }
}
EOF
run_as=()
if [[ $(id -u) == 0 ]]; then
    chown -R 65534:65534 "$UPSTREAM_PREFIX"
    run_as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
"${run_as[@]}" taskset -c "$LOAD_CPU" nginx -e "$UPSTREAM_PREFIX/logs/error.log" -p "$UPSTREAM_PREFIX" -c "$UPSTREAM_PREFIX/nginx.conf" &
UPSTREAM_PID=$!
PIDS+=("$UPSTREAM_PID")
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$UPSTREAM_PORT") 2>/dev/null && break
    sleep 0.1
done
UPSTREAM=127.0.0.1:$UPSTREAM_PORT
log "upstream nginx on $UPSTREAM (CPU $LOAD_CPU)"
trap 'cleanup; rm -rf "$UPSTREAM_PREFIX"' EXIT

LOAD_FLAGS=(--body-size "$BODY_SIZE" --header "operation-type: $OPERATION" --signed-path "/gw/v1/$OPERATION")

# --- nginx peers --------------------------------------------------------------
NGINX_HTTP_EXTRA="upstream backend { server $UPSTREAM; keepalive 64; }"
NGINX_EXTRA="
        location = /gw/v1 {
            set \$atoll_app_key \"$PEER_KEY\";
            set \$atoll_app_secret \"$PEER_SECRET\";
            js_content device_auth.proxy;
        }
        location = /plain-proxy {
            proxy_pass http://backend/echo;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
        location = /_upstream {
            internal;
            proxy_pass http://backend/echo;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }"

log "closed loop: $CONNECTIONS connections, ${DURATION}s (+${WARMUP}s warm-up) each, ${BODY_SIZE} B bodies"
SERVER_PIDS=()
load d-closed "http://$UPSTREAM" /echo "$PEER_KEY" "$PEER_SECRET" 0 "${LOAD_FLAGS[@]}"
PEERS=1
[[ ${ONLY:-} == atoll ]] && PEERS=0
if (( PEERS )); then
    start_nginx
    load b-closed "$NGINX_URL" /plain-proxy "$PEER_KEY" "$PEER_SECRET" 0 "${LOAD_FLAGS[@]}"
    load c-closed "$NGINX_URL" /gw/v1 "$PEER_KEY" "$PEER_SECRET" 0 "${LOAD_FLAGS[@]}"
    stop_nginx
fi

# --- atoll: a group for the upstream and one API -------------------------------
ATOLL_EXTRA_ENV="ATOLL_GATEWAY_ALLOWED_BACKENDS=$UPSTREAM ATOLL_GATEWAY_ACCESS_LOG=false ${ATOLL_EXTRA_ENV:-}"
# No demo analytics: flushing and compacting a seeded week of events would run
# on the proxy's CPU during the measurement.
ATOLL_DEMO_ARGS="--demo-devices 0"
start_atoll "$WORK/atoll"
TOKEN=$(curl -fsS -H 'content-type: application/json' \
    -d "{\"email\":\"admin@demo.atoll\",\"password\":\"$ADMIN_PASSWORD\"}" \
    "$ATOLL_URL/api/v1/auth/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || die "could not log in to atoll"
admin() { # method path body
    curl -fsS -X "$1" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d "$3" "$ATOLL_URL/api/v1/workspaces/demo/apps/$APP_KEY/gateway/$2" >/dev/null
}
admin POST groups "{\"name\":\"bench\",\"base_url\":\"http://$UPSTREAM\"}"
admin POST apis "{\"operation_type\":\"$OPERATION\",\"group\":\"bench\",\"method\":\"POST\",\"path\":\"/echo\",\"enabled\":true}"
load a-closed "$ATOLL_URL" /gw/v1 "$APP_KEY" "$APP_SECRET" 0 "${LOAD_FLAGS[@]}"
slowest=$(printf '%s\n' "$(field a-closed rps)" "$(field b-closed rps)" "$(field c-closed rps)" | grep . | sort -g | head -1)
RATE=$(awk -v s="$slowest" -v f="$OPEN_FRACTION" 'BEGIN { r = int(s * f); if (r < 1) r = 1; print r }')
log "open loop at $RATE req/s ($OPEN_FRACTION of the slowest maximum, $slowest req/s)"
load a-open "$ATOLL_URL" /gw/v1 "$APP_KEY" "$APP_SECRET" "$RATE" "${LOAD_FLAGS[@]}"
stop_atoll

if (( PEERS )); then
    start_nginx
    load b-open "$NGINX_URL" /plain-proxy "$PEER_KEY" "$PEER_SECRET" "$RATE" "${LOAD_FLAGS[@]}"
    load c-open "$NGINX_URL" /gw/v1 "$PEER_KEY" "$PEER_SECRET" "$RATE" "${LOAD_FLAGS[@]}"
    stop_nginx
fi
SERVER_PIDS=()
load d-open "http://$UPSTREAM" /echo "$PEER_KEY" "$PEER_SECRET" "$RATE" "${LOAD_FLAGS[@]}"

ms() { awk -v v="$1" 'BEGIN { printf "%.3f", v / 1000 }'; }
added() { awk -v p="$1" -v d="$2" 'BEGIN { printf "%.3f", (p - d) / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }'; }
echo
echo "Gateway, ${BODY_SIZE} B requests, 1 KB answers, $CONNECTIONS connections, proxy on CPU $SERVER_CPU, load + upstream on CPU $LOAD_CPU"
echo "closed loop ${DURATION}s; open loop at $RATE req/s (latency from the due time); added = proxy minus direct upstream"
echo
printf '| %-44s | %9s | %8s | %8s | %8s | %10s | %10s | %5s |\n' system "max req/s" "us/req" "p50 ms" "p99 ms" "added p50" "added p99" "bad"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "-----------" "----------" "----------" "----------" "------------" "------------" "-------"
row() {
    local name=$1 closed=$2-closed open=$2-open
    [[ -n ${RESULT[$closed]:-} ]] || return 0
    [[ $(field "$closed" quiet) == 1 && $(field "$open" quiet) == 1 ]] || name="$name (*)"
    printf '| %-44s | %9.0f | %8.0f | %8s | %8s | %10s | %10s | %5s |\n' "$name" \
        "$(field "$closed" rps)" "$(field "$closed" server_us_per_req)" \
        "$(ms "$(field "$open" p50_us)")" "$(ms "$(field "$open" p99_us)")" \
        "$(added "$(field "$open" p50_us)" "$(field d-open p50_us)")" \
        "$(added "$(field "$open" p99_us)" "$(field d-open p99_us)")" \
        "$(( $(field "$closed" unexpected) + $(field "$closed" errors) + $(field "$open" unexpected) + $(field "$open" errors) ))"
}
row "(a) atoll gateway (signature, routing, signed forward)" a
row "(b) nginx proxy_pass, upstream keep-alive" b
row "(c) nginx + njs HMAC check, then proxy_pass" c
row "(d) upstream directly" d
echo
echo "(*) = other work on the machine before or after a run of this row."
a_added99=$(added "$(field a-open p99_us)" "$(field d-open p99_us)")
b_added99=$(added "$(field b-open p99_us)" "$(field d-open p99_us)")
printf 'Ratios: a/b req/s %s (target ≥ 1.0×);  a/c req/s %s (target ≥ 2×);  added p99 a/b %s (target ≤ 1.2×)\n' \
    "$(ratio "$(field a-closed rps)" "$(field b-closed rps)")" \
    "$(ratio "$(field a-closed rps)" "$(field c-closed rps)")" \
    "$(ratio "$a_added99" "$b_added99")"
echo
echo "Raw results:"
for label in d-closed b-closed c-closed a-closed a-open b-open c-open d-open; do
    [[ -z ${RESULT[$label]:-} ]] || echo "  ${RESULT[$label]}"
done
