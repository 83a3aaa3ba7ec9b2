# Shared parts of the side-by-side benchmarks (sourced, not run): cleanup on
# exit, waiting for a quiet machine, starting atoll (demo) and nginx (+njs) on
# the server CPU, and running the load generator on the load CPU.
#
# The sourcing script sets ROOT, WORK is made here; it may set NGINX_EXTRA
# (more nginx `location` blocks) and NGINX_HTTP_EXTRA (more `http` blocks, such
# as an `upstream`) before calling start_nginx, and ATOLL_EXTRA_ENV (more
# NAME=value settings for atoll) and ATOLL_DEMO_ARGS (more `atoll demo` flags)
# before start_atoll.
# Expects: ATOLL LOADGEN NJS_MODULE SERVER_CPU LOAD_CPU DEVICES CONNECTIONS DURATION WARMUP.
# PROFILE (see `load`) profiles the server during one run.

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
ATOLL_PID="" ATOLL_URL="" APP_KEY="" APP_SECRET="" ADMIN_PASSWORD=""
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
        ${ATOLL_EXTRA_ENV:-} \
        taskset -c "$SERVER_CPU" "$ATOLL" demo --listen 127.0.0.1:0 --data-dir "$data" ${ATOLL_DEMO_ARGS:-} \
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
    ADMIN_PASSWORD=$(sed -n 's/^ *Password  *//p' "$out")
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
    ${NGINX_HTTP_EXTRA:-}
    server {
        listen 127.0.0.1:$port;
        location = /plain { return 200 '{"ok":true}'; }
        ${NGINX_EXTRA:-}
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
    # PROFILE: a command run once the warm-up is over, with SERVER_PID set to the
    # server's pid, e.g. PROFILE='perf record -g -p $SERVER_PID -o /tmp/p.data -- sleep 5';
    # PROFILE_LABEL picks the run (default a-closed).
    local profiler=""
    if [[ -n ${PROFILE:-} && $label == "${PROFILE_LABEL:-a-closed}" ]]; then
        (sleep "$WARMUP"; export SERVER_PID=${SERVER_PIDS[0]}; eval "$PROFILE") >&2 &
        profiler=$!
    fi
    local out
    out=$(ATOLL_BENCH_APP_KEY=$key ATOLL_BENCH_APP_SECRET=$secret \
        taskset -c "$LOAD_CPU" "$LOADGEN" "${flags[@]}")
    [[ -z $profiler ]] || wait "$profiler" || true
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
