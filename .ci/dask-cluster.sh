#!/usr/bin/env bash
# Start or stop a real Dask cluster for the tests: one scheduler and two single-threaded
# workers, as separate processes on 127.0.0.1, started with Dask's own command-line tools.
#
#   .ci/dask-cluster.sh start [DIR]   starts it and prints the scheduler address on stdout
#   .ci/dask-cluster.sh stop  [DIR]   stops it (SIGTERM, then SIGKILL) and removes DIR
#
# DIR (default: $ANYPOOL_DASK_DIR or /tmp/anypool-dask-cluster) holds the pid files, the
# scheduler file and the logs. DASK names the `dask` CLI to use (default: the one beside
# $PYTHON, else the first on PATH). Use it as:
#   export ANYPOOL_DASK_ADDRESS="$(.ci/dask-cluster.sh start)"; pytest ...; .ci/dask-cluster.sh stop
set -euo pipefail

cmd=${1:-}
dir=${2:-${ANYPOOL_DASK_DIR:-/tmp/anypool-dask-cluster}}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
dask=${DASK:-$(dirname "$(command -v "$python")")/dask}
[ -x "$dask" ] || dask=$(command -v dask)
start_timeout=60

log() { echo "dask-cluster: $*" >&2; }

stop_one() {  # stop_one NAME: SIGTERM its process group, SIGKILL what is left after 15 s
    local pidfile=$dir/$1.pid pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop() {
    stop_one workers
    stop_one scheduler
    rm -rf "$dir"
}

start() {
    if [ -f "$dir/scheduler.pid" ]; then
        if kill -0 "$(cat "$dir/scheduler.pid")" 2>/dev/null; then
            log "a cluster is already running from $dir; stop it first"
            exit 1
        fi
        # a run that was killed before it could stop its cluster leaves its pid files
        # behind; the processes are gone, so the directory is only debris
        log "removing the stale cluster directory $dir"
        stop
    fi
    mkdir -p "$dir"
    # workers import the test modules by name to unpickle test functions
    export PYTHONPATH="$repo/tests/contract:$repo/tests/backends:$repo/tests:$repo/src${PYTHONPATH:+:$PYTHONPATH}"
    # setsid: each gets its own process group, so stop() reaches nannies and workers too
    setsid "$dask" scheduler --host 127.0.0.1 --port 0 --no-dashboard \
        --dashboard-address 127.0.0.1:0 --scheduler-file "$dir/scheduler.json" \
        >"$dir/scheduler.log" 2>&1 </dev/null &
    echo $! >"$dir/scheduler.pid"
    for _ in $(seq $((start_timeout * 10))); do
        [ -s "$dir/scheduler.json" ] && break
        sleep 0.1
    done
    if [ ! -s "$dir/scheduler.json" ]; then
        log "the scheduler did not start; its log:"; cat "$dir/scheduler.log" >&2; stop; exit 1
    fi
    address=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["address"])' \
        "$dir/scheduler.json")
    setsid "$dask" worker "$address" --nworkers 2 --nthreads 1 --host 127.0.0.1 \
        --no-dashboard --death-timeout 60 >"$dir/workers.log" 2>&1 </dev/null &
    echo $! >"$dir/workers.pid"
    if ! "$python" - "$address" "$start_timeout" <<'EOF' >&2; then
import sys
from distributed import Client
with Client(sys.argv[1], timeout=float(sys.argv[2]), set_as_default=False) as client:
    client.wait_for_workers(2, timeout=float(sys.argv[2]))
EOF
        log "the workers did not connect; their log:"; cat "$dir/workers.log" >&2; stop; exit 1
    fi
    echo "$address"
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
