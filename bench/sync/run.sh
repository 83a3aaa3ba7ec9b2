#!/usr/bin/env bash
# The device connection (GET /device/v1/connect) side by side with nats-server's
# WebSocket listener: idle density, fan-out and connect churn.
#
# One server at a time on CPU 1, the load generator (`atoll-bench ws`, one
# process, our own WebSocket client for both) on CPU 0. Every measurement
# starts its server afresh, so ΔVmRSS is that of the connections alone:
#
#   (a) atoll demo: signed upgrade (HMAC, timestamp window, single-use nonce),
#       the device looked up, a `subscribe` frame for the global biz type FEED
#       (device dimension, persistent, global orders allowed), answered
#       `subscribed`; fan-out is one global sync order through the admin API,
#       stored once, delivered to every subscriber and acknowledged by each
#   (b) nats-server 2.9 (Debian), `websocket { no_tls: true }`, no JetStream,
#       no auth: CONNECT + SUB feed + PING, answered PONG; fan-out is one
#       `PUB feed` (16 B) from a plain TCP client
#
# Idle: N connections over the source addresses $SOURCE_IPS (about 28k ports
# per source address and server port otherwise), opened half and then half,
# held $HOLD s; server VmRSS before/after (ΔRSS/N) and what the second half
# added per connection (the marginal cost, without caches that fill once and
# stay bounded), kernel memory (/proc/net/sockstat, slab), connect
# rate, failures. Fan-out: N subscribers, $MESSAGES messages one at a time,
# time from the send until every subscriber has it, and per-subscriber p50/p99.
# Churn: $CHURN_LOOPS loops of connect → subscribe → answer → close.
#
# Knobs: SIZES="10000 50000 100000" FANOUT_SIZES="10000 100000" MESSAGES=5
# HOLD=10 CHURN_LOOPS=64 CHURN_DURATION=10 SOURCE_IPS=127.0.0.2-127.0.0.6
# IN_FLIGHT=500 QUIET_WAIT=120 NATS=/usr/sbin/nats-server
# ATOLL_ENV="NAME=value …" (extra environment for atoll, e.g. an allocator experiment)
# ATOLL=… LOADGEN=… (default: release builds under $CARGO_TARGET_DIR/release,
# built unless BENCH_SKIP_BUILD=1 or both are given).
# Needs: Linux with 2 CPUs, taskset, curl, nats-server; root (or CAP_SYS_RESOURCE)
# for `ulimit -n` beyond the hard limit, and writable sysctls.
set -euo pipefail

SIZES=${SIZES:-"10000 50000 100000"}
FANOUT_SIZES=${FANOUT_SIZES:-"10000 100000"}
MESSAGES=${MESSAGES:-5}
HOLD=${HOLD:-10}
CHURN_LOOPS=${CHURN_LOOPS:-64}
CHURN_DURATION=${CHURN_DURATION:-10}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.2-127.0.0.6}
IN_FLIGHT=${IN_FLIGHT:-500}
NATS=${NATS:-/usr/sbin/nats-server}
SERVER_CPU=1
LOAD_CPU=0
BIZ=FEED
SUBJECT=feed

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BUILD=1
[[ -n ${ATOLL:-} && -n ${LOADGEN:-} ]] && BUILD=0
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] && BUILD=0
ATOLL=${ATOLL:-$TARGET_DIR/release/atoll}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/atoll-bench}

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'sync/run.sh: %s\n' "$*" >&2; exit 1; }

command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v curl >/dev/null || die "curl is missing"
[[ -x $NATS ]] || die "nats-server is missing ($NATS): apt-get install nats-server"
(( $(nproc --all) >= 2 )) || die "needs 2 CPUs: the server on CPU 1, the load on CPU 0"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if [[ $BUILD == 1 ]]; then
    log "building atoll and atoll-bench (release)"
    (cd "$ROOT" && cargo build --release --quiet -p atoll -p atoll-bench)
fi
[[ -x $ATOLL && -x $LOADGEN ]] || die "binaries missing: $ATOLL $LOADGEN"

# --- limits ------------------------------------------------------------------------
# One process holds every client socket and one every server socket.
largest=$CHURN_LOOPS
for n in $SIZES $FANOUT_SIZES; do (( n > largest )) && largest=$n; done
want_fds=$((largest + 10000))
if (( $(ulimit -Hn) < want_fds )); then
    ulimit -Hn "$want_fds" 2>/dev/null || log "WARNING: cannot raise the hard open-file limit ($(ulimit -Hn)) to $want_fds (needs CAP_SYS_RESOURCE)"
fi
ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
log "open-file limit $FD_LIMIT"
set_sysctl() { # name value: raise only
    local name=$1 value=$2 path=/proc/sys/${1//.//}
    [[ -w $path ]] || { log "WARNING: $name is not writable (now: $(cat "$path" 2>/dev/null))"; return 0; }
    echo "$value" >"$path" 2>/dev/null || log "WARNING: cannot set $name to $value"
}
set_sysctl net.ipv4.ip_local_port_range "1024 65535"
set_sysctl net.core.somaxconn 65535
set_sysctl net.ipv4.tcp_max_syn_backlog 65535
fits() { # connections: both ends fit in the open-file limit?
    (( $1 + 1000 <= FD_LIMIT ))
}

# --- servers ---------------------------------------------------------------------------
# Atoll: idle connections are never closed during a run (the default idle
# timeout is 90 s and clients do not ping), no demo analytics. Upgraded device
# connections do not count against the HTTP connection cap (checked: 500
# connections with ATOLL_HTTP_MAX_CONNECTIONS=100), so it stays at its default.
ATOLL_EXTRA_ENV="ATOLL_SYNC_IDLE_TIMEOUT_SECS=3600 ${ATOLL_ENV:-}"
ATOLL_DEMO_ARGS="--demo-devices 0"
ATOLL_DATA=$WORK/atoll
TOKEN=""
atoll_login() {
    TOKEN=$(curl -fsS -H 'content-type: application/json' \
        -d "{\"email\":\"admin@demo.atoll\",\"password\":\"$ADMIN_PASSWORD\"}" \
        "$ATOLL_URL/api/v1/auth/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
    [[ -n $TOKEN ]] || die "could not log in to atoll"
}

NATS_PID="" NATS_WS_URL="" NATS_ADDR=""
start_nats() {
    local dir=$WORK/nats port ws_port
    mkdir -p "$dir"
    port=$(free_port)
    ws_port=$(free_port)
    cat >"$dir/nats.conf" <<EOF
host: 127.0.0.1
port: $port
max_connections: 10000000
websocket {
    host: 127.0.0.1
    port: $ws_port
    no_tls: true
}
EOF
    taskset -c "$SERVER_CPU" "$NATS" -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
    NATS_PID=$!
    PIDS+=("$NATS_PID")
    SERVER_PIDS=("$NATS_PID")
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$ws_port") 2>/dev/null && break
        kill -0 "$NATS_PID" 2>/dev/null || die "nats-server exited: $(cat "$dir/nats.log")"
        sleep 0.1
    done
    NATS_WS_URL=ws://127.0.0.1:$ws_port
    NATS_ADDR=127.0.0.1:$port
    log "nats-server on $NATS_ADDR, websocket $NATS_WS_URL (pid $NATS_PID)"
}
stop_nats() {
    stop_pid "$NATS_PID"
    forget_pid "$NATS_PID"
    NATS_PID=""
}

# --- load ----------------------------------------------------------------------------------
# label target mode [flags…]: against the server running now.
wsrun() {
    local label=$1 target=$2 mode=$3
    shift 3
    local flags=(--target "$target" --label "$label" --source-ips "$SOURCE_IPS"
        --in-flight "$IN_FLIGHT" --server-pid "${SERVER_PIDS[0]}")
    if [[ $target == atoll ]]; then
        flags+=(--url "$ATOLL_URL" --biz "$BIZ")
    else
        flags+=(--url "$NATS_WS_URL" --subject "$SUBJECT")
    fi
    wait_for_quiet
    local out status=0
    out=$(ATOLL_BENCH_APP_KEY=$APP_KEY ATOLL_BENCH_APP_SECRET=$APP_SECRET ATOLL_BENCH_TOKEN=$TOKEN \
        taskset -c "$LOAD_CPU" "$LOADGEN" ws "$mode" "${flags[@]}" "$@") || status=$?
    printf '%s\n\n' "$out" | grep -v '^RESULT ' >&2
    local after
    after=$(cpu_busy_percent)
    if (( after >= 10 )); then
        log "WARNING: the machine was ${after}% busy right after $label: skewed"
        QUIET=0
    fi
    if (( status != 0 )) || ! grep -q '^RESULT ' <<<"$out"; then
        log "WARNING: $label failed (exit $status)"
        RESULT[$label]="RESULT label=$label failed=1 quiet=$QUIET"
        return 0
    fi
    RESULT[$label]="$(grep '^RESULT ' <<<"$out") quiet=$QUIET"
}
# label mode [flags…]: a fresh atoll, then the run.
atoll_run() {
    start_atoll "$ATOLL_DATA"
    atoll_login
    wsrun "$1" atoll "${@:2}"
    stop_atoll
}
nats_run() {
    start_nats
    wsrun "$1" nats "${@:2}"
    stop_nats
}

# --- setup: the biz type and the devices ------------------------------------------------
ALL_LABELS=()
start_atoll "$ATOLL_DATA"
atoll_login
code=$(curl -sS -o "$WORK/biz.out" -w '%{http_code}' -X POST \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"id\":\"$BIZ\",\"description\":\"benchmark feed\",\"dimension\":\"device\",\"global_allowed\":true}" \
    "$ATOLL_URL/api/v1/workspaces/demo/apps/$APP_KEY/sync/biz-types")
[[ $code == 201 || $code == 409 ]] || die "creating the biz type got $code: $(cat "$WORK/biz.out")"
log "registering $largest devices (bench-dev-0 …)"
ATOLL_BENCH_APP_KEY=$APP_KEY ATOLL_BENCH_APP_SECRET=$APP_SECRET \
    taskset -c "$LOAD_CPU" "$LOADGEN" ws register --url "$ATOLL_URL" --devices "$largest" >/dev/null
stop_atoll

# --- idle density -----------------------------------------------------------------------------
for n in $SIZES; do
    if ! fits "$n"; then
        log "SKIPPED idle $n: needs $((n + 1000)) open files, the limit is $FD_LIMIT"
        continue
    fi
    log "idle: $n connections, held ${HOLD}s"
    atoll_run "a-idle-$n" idle --connections "$n" --hold "$HOLD"
    nats_run "n-idle-$n" idle --connections "$n" --hold "$HOLD"
    ALL_LABELS+=("a-idle-$n" "n-idle-$n")
done

# --- fan-out ----------------------------------------------------------------------------------
for n in $FANOUT_SIZES; do
    if ! fits "$n"; then
        log "SKIPPED fan-out $n: needs $((n + 1000)) open files, the limit is $FD_LIMIT"
        continue
    fi
    log "fan-out: $n subscribers, $MESSAGES messages"
    atoll_run "a-fanout-$n" fanout --connections "$n" --messages "$MESSAGES"
    start_nats
    wsrun "n-fanout-$n" nats fanout --connections "$n" --messages "$MESSAGES" --nats-addr "$NATS_ADDR"
    stop_nats
    ALL_LABELS+=("a-fanout-$n" "n-fanout-$n")
done

# --- churn ---------------------------------------------------------------------------------------
log "churn: $CHURN_LOOPS loops, ${CHURN_DURATION}s"
atoll_run a-churn churn --connections "$CHURN_LOOPS" --duration "$CHURN_DURATION"
nats_run n-churn churn --connections "$CHURN_LOOPS" --duration "$CHURN_DURATION"
ALL_LABELS+=(a-churn n-churn)

# --- report ---------------------------------------------------------------------------------------
num() { [[ $1 =~ ^-?[0-9.]+$ ]] && echo "$1" || echo "-"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f×", a / b }'; }
msec() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.1f", v / 1000 }'; }
row() { # name atoll nats better (no ratio when empty)
    local r=-
    [[ -n $4 ]] && r=$(ratio "$2" "$3")
    printf '| %-52s | %12s | %12s | %10s | %-6s |\n' "$1" "$2" "$3" "$r" "$4"
}
mark() { # labels…: (*) when the machine was busy around any of them
    local label
    for label in "$@"; do
        [[ $(field "$label" quiet) == 1 ]] || { printf ' (*)'; return; }
    done
}
echo
echo "Sync device connection vs nats-server $("$NATS" --version 2>/dev/null | sed 's/.*v//') WebSocket; server on CPU $SERVER_CPU, load generator on CPU $LOAD_CPU"
echo "source addresses $SOURCE_IPS, $IN_FLIGHT connects in flight, idle hold ${HOLD}s, fan-out $MESSAGES messages of 16 B, churn $CHURN_LOOPS loops × ${CHURN_DURATION}s"
echo
printf '| %-52s | %12s | %12s | %10s | %-6s |\n' measure atoll nats atoll/nats better
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "--------------" "--------------" "------------" "--------"
for n in $SIZES; do
    a=a-idle-$n b=n-idle-$n
    [[ -n ${RESULT[$a]:-} ]] || continue
    row "idle $n: server RSS B/conn$(mark "$a" "$b")" "$(num "$(field "$a" server_bytes_per_conn)")" "$(num "$(field "$b" server_bytes_per_conn)")" lower
    row "idle $n: server RSS B/conn, 2nd half (marginal)" "$(num "$(field "$a" server_marginal_bytes_per_conn)")" "$(num "$(field "$b" server_marginal_bytes_per_conn)")" lower
    row "idle $n: kernel slab B/conn (both ends)" "$(num "$(field "$a" slab_bytes_per_conn)")" "$(num "$(field "$b" slab_bytes_per_conn)")" lower
    row "idle $n: connects/s while filling" "$(num "$(field "$a" conn_per_s)")" "$(num "$(field "$b" conn_per_s)")" higher
    row "idle $n: connect+subscribe p99 ms" "$(msec "$(field "$a" setup_p99_us)")" "$(msec "$(field "$b" setup_p99_us)")" lower
    row "idle $n: ready / failed / dropped" "$(field "$a" ready)/$(field "$a" failed)/$(field "$a" dropped)" "$(field "$b" ready)/$(field "$b" failed)/$(field "$b" dropped)" ""
done
for n in $FANOUT_SIZES; do
    a=a-fanout-$n b=n-fanout-$n
    [[ -n ${RESULT[$a]:-} ]] || continue
    row "fan-out $n: best ms to all$(mark "$a" "$b")" "$(msec "$(field "$a" best_us)")" "$(msec "$(field "$b" best_us)")" lower
    row "fan-out $n: msgs/s (best)" "$(num "$(field "$a" best_msgs_per_s)")" "$(num "$(field "$b" best_msgs_per_s)")" higher
    row "fan-out $n: msgs/s (median)" "$(num "$(field "$a" median_msgs_per_s)")" "$(num "$(field "$b" median_msgs_per_s)")" higher
    row "fan-out $n: p50 ms (median message)" "$(msec "$(field "$a" p50_us)")" "$(msec "$(field "$b" p50_us)")" lower
    row "fan-out $n: p99 ms (median message)" "$(msec "$(field "$a" p99_us)")" "$(msec "$(field "$b" p99_us)")" lower
    row "fan-out $n: server CPU ms per message" "$(num "$(field "$a" server_cpu_ms)")" "$(num "$(field "$b" server_cpu_ms)")" lower
    row "fan-out $n: complete / messages" "$(field "$a" complete)/$(field "$a" messages)" "$(field "$b" complete)/$(field "$b" messages)" ""
    row "fan-out $n: subscribers ready / failed / dropped" "$(field "$a" ready)/$(field "$a" failed)/$(field "$a" dropped)" "$(field "$b" ready)/$(field "$b" failed)/$(field "$b" dropped)" ""
done
row "churn: connects/s$(mark a-churn n-churn)" "$(num "$(field a-churn connects_per_s)")" "$(num "$(field n-churn connects_per_s)")" higher
row "churn: p99 ms" "$(msec "$(field a-churn p99_us)")" "$(msec "$(field n-churn p99_us)")" lower
row "churn: server CPU us per connect" "$(num "$(field a-churn server_us_per_connect)")" "$(num "$(field n-churn server_us_per_connect)")" lower
row "churn: failed" "$(field a-churn failed)" "$(field n-churn failed)" ""
echo
echo "(*) = other work on the machine before or after the run. Ratios are atoll/nats; 'better' says which way."
echo "Atoll's fan-out stores the datum, tracks and saves every subscriber's acknowledgement; NATS core does neither."
echo
echo "Raw results:"
for label in "${ALL_LABELS[@]}"; do echo "  ${RESULT[$label]:-RESULT label=$label missing=1}"; done
