# Shared by the benchmark scripts (source it): logging, CPU accounting, building the C
# tools, the one-benchmark-at-a-time lock, and processes started by a bench, recorded with
# their start time in $PIDS_FILE so that only they are ever signalled, and never a process
# that later reused the PID.

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }
calc() { awk "BEGIN{ $1 }" </dev/null; }
now() { date +%s.%N; }
HZ=$(getconf CLK_TCK)

cpu_ticks() { # utime+stime of SW_PIDS, all threads
    local t=0 p v
    for p in $SW_PIDS; do
        v=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + ${v:-0}))
    done
    echo $t
}
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

take_lock() { # WAIT_S: fd 9 on $RUN/lock, waiting at most WAIT_S for another benchmark
    exec 9>"$RUN/lock"
    flock -n 9 && return 0
    log "another benchmark holds $RUN/lock: waiting for it (at most ${1}s)"
    flock -w "$1" 9 || die "still locked after ${1}s; never run two benchmarks at once"
}

build_tools() { # NAME...: bench/bin/NAME from bench/NAME.c, when missing or older than the .c
    local t
    for t in "$@"; do
        if [ ! -x "$HERE/bin/$t" ] || [ "$HERE/$t.c" -nt "$HERE/bin/$t" ]; then
            mkdir -p "$HERE/bin"
            log "compiling $HERE/bin/$t"
            gcc -O2 -Wall -Wextra -pthread -o "$HERE/bin/$t" "$HERE/$t.c" || die "cannot compile $t.c"
        fi
    done
}

proc_start() { awk '{sub(/^.*\) /, ""); print $20}' "/proc/$1/stat" 2>/dev/null; }

remember_pid() { # PID: record it (with its start time, so a reused PID is never hit)
    local st; st=$(proc_start "$1") || return 0
    [ -n "$st" ] && echo "$1 $st" >>"$PIDS_FILE"
}

ours_alive() { [ -n "$1" ] && [ "$(proc_start "$1")" = "$2" ]; }

stop_pid() { # PID [GRACE_S=5]: SIGTERM, then SIGKILL after GRACE_S (only a PID we recorded)
    local pid=$1 grace=${2:-5} st
    st=$(awk -v p="$pid" '$1 == p { s = $2 } END { print s }' "$PIDS_FILE" 2>/dev/null)
    [ -n "$st" ] && ours_alive "$pid" "$st" || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq $((grace * 20))); do
        ours_alive "$pid" "$st" || return 0
        sleep 0.05
    done
    log "pid $pid did not exit within ${grace}s of SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    return 0
}

kill_ours() { # every process recorded in PIDS_FILE, newest first
    [ -s "$PIDS_FILE" ] || return 0
    local pid st alive
    while read -r pid st; do
        ours_alive "$pid" "$st" && kill -TERM "$pid" 2>/dev/null
    done < <(tac "$PIDS_FILE")
    for _ in $(seq 100); do                    # 5 s grace for all of them
        alive=0
        while read -r pid st; do ours_alive "$pid" "$st" && alive=1; done <"$PIDS_FILE"
        [ $alive = 0 ] && break
        sleep 0.05
    done
    while read -r pid st; do
        if ours_alive "$pid" "$st"; then
            log "pid $pid still alive 5 s after SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    done <"$PIDS_FILE"
    : >"$PIDS_FILE"
}
