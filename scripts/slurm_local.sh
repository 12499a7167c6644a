#!/usr/bin/env bash
# Local single-host Slurm cluster for tests: two fake nodes (node1, node2) on
# this machine, with accounting (slurmdbd + MariaDB) so that `sacct` works.
#
#   scripts/slurm_local.sh start    # install packages if needed, start, wait
#   scripts/slurm_local.sh status   # daemon PIDs + sinfo; non-zero if down
#   scripts/slurm_local.sh env      # prints `export SLURM_CONF=...`
#   scripts/slurm_local.sh stop     # cancel jobs, stop the daemons, remove
#                                   # the state dir
#
# Everything lives in ONE state dir (CONVATTN_SLURM_DIR, default
# /tmp/convattn-slurm): slurm.conf, slurmdbd.conf and task_prolog.sh, made on
# every start from the templates in scripts/slurm/, plus PID files, logs,
# spool dirs, the MariaDB data dir and socket, munge key and socket. Nothing
# outside it is written (no /etc/hosts, no /etc/slurm), and `stop` removes it
# completely; only the Debian packages stay (scripts/install_debian_packages.sh).
#
# Slurm finds its config through SLURM_CONF, so every client needs it:
#   eval "$(scripts/slurm_local.sh env)"   # then sbatch, srun, sacct, squeue,
#                                          # submitit, convattn-train -m ...
# `make test` exports it for pytest. The daemons get it too (and -f where
# they take it); slurmd puts it into every job's environment, so srun and
# `scontrol requeue` inside a job find the cluster as well. Nothing resolves
# a host name: nodes and controller are 127.0.0.1 in slurm.conf, and
# task_prolog.sh gives jobs MASTER_ADDR=127.0.0.1, for which Lightning would
# otherwise look up the first node's name (multi-node DDP).
#
# Needs root: it runs the daemons as root (SlurmUser=root), so that jobs of
# any user can be launched. Run it with `sudo` on a CI runner; pass
# CONVATTN_SLURM_DIR through sudo (`sudo CONVATTN_SLURM_DIR=...
# scripts/slurm_local.sh start`) if you set it. `status` and `env` work
# without root.
#
# Built for Debian 12 (Slurm 22.05, MariaDB 10.11, munge 0.5.15) without
# systemd and without cgroups: process tracking is by /proc, no task plugin.
set -euo pipefail

# sudo and cron strip /usr/sbin from PATH; the daemons live there.
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATE_DIR="$SCRIPTS_DIR/slurm"
# Canonical path: it is also the marker in the daemons' environment, so
# /tmp/x and /tmp/x/ must name the same cluster.
STATE_DIR=$(realpath -m "${CONVATTN_SLURM_DIR:-/tmp/convattn-slurm}")
# The Slurm client tools this script runs must read exactly this cluster's
# config, whatever the caller's SLURM_CONF (e.g. when called from a job).
export SLURM_CONF="$STATE_DIR/slurm.conf"
DBD_CONF="$STATE_DIR/slurmdbd.conf"
# Present in a state dir this script made: the only kind it will remove.
STAMP="$STATE_DIR/.convattn-slurm"
# slurm.conf.in is the one place that names the cluster and its nodes.
CLUSTER=$(sed -n 's/^ClusterName=//p' "$TEMPLATE_DIR/slurm.conf.in")
mapfile -t NODES < <(sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$TEMPLATE_DIR/slurm.conf.in")
# Bounded waits (seconds).
READY_TIMEOUT=${CONVATTN_SLURM_READY_TIMEOUT:-60}
STOP_TIMEOUT=15

# The layout the templates use (@STATE_DIR@/...).
MUNGE_DIR="$STATE_DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
DB_DIR="$STATE_DIR/mysql"
DB_SOCKET="$DB_DIR/mysqld.sock"
PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/log"
SPOOL_DIR="$STATE_DIR/spool"

# Daemons in start order; stop walks this list backwards.
DAEMONS=(munged mariadbd slurmdbd slurmctld "${NODES[@]/#/slurmd-}")

log() { printf 'slurm_local: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes

pid_file() { echo "$PID_DIR/$1.pid"; }

# The executable name a daemon's process must have (/proc/PID/comm).
daemon_comm() {
    case "$1" in
        slurmd-*) echo slurmd ;;
        *) echo "$1" ;;
    esac
}

# True if PID is a live process (not a zombie: PID 1 may reap late, and
# `kill -0` succeeds on zombies) with the expected name and our marker in its
# environment, so that a recycled PID or another cluster's daemon is never
# mistaken for ours. Non-root callers (`status` from a test) cannot read a
# root process's environment and settle for the name.
is_ours() {
    local pid=$1 comm=$2 stat env
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
    if env=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ"); then
        grep -qxF "CONVATTN_SLURM_OWNER=$STATE_DIR" <<<"$env"
    else
        ((EUID != 0))
    fi
}

# PID of a running daemon we started, or failure.
daemon_pid() {
    local pid
    pid=$(cat "$(pid_file "$1")" 2>/dev/null) || return 1
    is_ours "$pid" "$(daemon_comm "$1")" || return 1
    echo "$pid"
}

# Start one daemon in the foreground mode of the program, detached into its
# own session, and record its PID ourselves (no reliance on the daemon's own
# PID file, which is written late and removed on exit). `env -i` gives it a
# clean environment (nothing of the caller's SLURM_*/CUDA_* leaks into the
# daemons) plus SLURM_CONF and the ownership marker that is_ours() and stop
# look for. In a non-interactive shell a background job is not a
# process-group leader, so setsid execs without forking and $! is the daemon
# itself.
launch() {
    local name=$1; shift
    env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 SLURM_CONF="$SLURM_CONF" \
        CONVATTN_SLURM_OWNER="$STATE_DIR" MYSQL_UNIX_PORT="$DB_SOCKET" \
        setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 &
    echo $! >"$(pid_file "$name")"
}

# Last lines of a daemon's logs, for error messages.
show_logs() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "----- tail $f" >&2
        tail -n 25 "$f" >&2
    done
}

# A daemon's own log if it got that far, else its captured stdout/stderr
# (early fatal errors); Slurm daemons in -D mode write both, so not both.
show_daemon_log() {
    local name=$1 logfile=$2
    if [[ -s $logfile ]]; then
        show_logs "$logfile"
    else
        show_logs "$LOG_DIR/$name.out"
    fi
}

# Poll a readiness check for a daemon; fail fast (with its log) if the
# daemon exits, and give up after READY_TIMEOUT.
wait_daemon() {
    local name=$1 what=$2 logfile=$3; shift 3
    local deadline=$((SECONDS + READY_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ! daemon_pid "$name" >/dev/null; then
            show_daemon_log "$name" "$logfile"
            die "$name exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            show_daemon_log "$name" "$logfile"
            die "timed out after ${READY_TIMEOUT}s waiting for $what"
        fi
        sleep 0.2
    done
}

# SIGTERM, bounded wait, then SIGKILL.
terminate() {
    local pid=$1 comm=$2 name=$3 deadline
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + STOP_TIMEOUT))
    while is_ours "$pid" "$comm"; do
        if ((SECONDS >= deadline)); then
            log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            return 0
        fi
        sleep 0.2
    done
}

# Every live process carrying our marker with one of the daemon names:
# catches slurmstepd (forked by slurmd, so it inherits the marker) and
# daemons whose PID file was lost.
stray_pids() {
    local p comm
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
        case "$comm" in
            slurmstepd | slurmscriptd | slurmd | slurmctld | slurmdbd | munged | mariadbd)
                is_ours "$p" "$comm" && echo "$p $comm" ;;
        esac
    done
    return 0
}

# ----------------------------------------------------------------- config

# Copy a template to the state dir, replacing each @NAME@ by the value of a
# NAME=value argument; a placeholder left without a value is an error.
render() {
    local template=$1 out=$2 mode=$3 text kv name; shift 3
    text=$(<"$template")
    for kv in "$@"; do
        name=${kv%%=*}
        text=${text//"@$name@"/"${kv#*=}"}
    done
    if [[ $text =~ @[A-Z_]+@ ]]; then
        die "$template: no value for ${BASH_REMATCH[0]}"
    fi
    printf '%s\n' "$text" >"$out"
    chmod "$mode" "$out"
}

render_configs() {
    local mem_mb
    # Each fake node claims half the host's memory, so --mem requests that
    # fit the node also fit the machine.
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 / 2)}' /proc/meminfo)
    render "$TEMPLATE_DIR/slurm.conf.in" "$SLURM_CONF" 644 \
        STATE_DIR="$STATE_DIR" CTLD_HOST="$(hostname -s)" MEM_MB="$mem_mb"
    render "$TEMPLATE_DIR/slurmdbd.conf.in" "$DBD_CONF" 600 STATE_DIR="$STATE_DIR"
    install -m 755 "$TEMPLATE_DIR/task_prolog.sh" "$STATE_DIR/task_prolog.sh"
}

# The state dir's contents go, but only if this script made it: never rm -rf
# a directory someone pointed CONVATTN_SLURM_DIR at by mistake.
remove_state_dir() {
    [[ -e $STATE_DIR ]] || return 0
    if [[ ! -e $STAMP && -n $(ls -A "$STATE_DIR") ]]; then
        die "$STATE_DIR is not empty and was not made by this script; not touching it" \
            "(set CONVATTN_SLURM_DIR to a new directory)"
    fi
    rm -rf "$STATE_DIR"
}

# ---------------------------------------------------------------- daemons

start_munged() {
    mkdir -p "$MUNGE_DIR"
    # munged checks that its key and socket dirs are not writable by others.
    chmod 755 "$MUNGE_DIR"
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        mungekey --create --keyfile="$MUNGE_DIR/munge.key" >/dev/null 2>&1 ||
            dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$MUNGE_DIR/munge.key"
    # A killed munged leaves its socket behind; --force lets it replace it.
    launch munged munged --foreground --force \
        --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$STATE_DIR/run/munged.pid" --seed-file="$MUNGE_DIR/munged.seed" \
        --num-threads=4
    # In the foreground munged logs to stderr, i.e. to munged.out.
    wait_daemon munged "munged socket" "$LOG_DIR/munged.out" \
        bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
}

start_mariadbd() {
    mkdir -p "$DB_DIR"
    if [[ ! -d $DB_DIR/data/mysql ]]; then
        log "initialising MariaDB data dir"
        rm -rf "$DB_DIR/data"
        # --no-defaults: ignore /etc/mysql so a system server's settings
        # (port, socket, datadir) cannot leak in.
        mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG_DIR/mariadb-install-db.log" 2>&1 ||
            { show_logs "$LOG_DIR/mariadb-install-db.log"; die "mariadb-install-db failed"; }
    fi
    # A killed server leaves a socket file; the new one would refuse to bind.
    rm -f "$DB_SOCKET" "$DB_SOCKET.lock"
    # Unix socket only; small buffers, relaxed durability (test data).
    launch mariadbd mariadbd --no-defaults --user=root \
        --datadir="$DB_DIR/data" --socket="$DB_SOCKET" --skip-networking \
        --pid-file="$STATE_DIR/run/mariadbd.pid" --log-error="$LOG_DIR/mariadbd.log" \
        --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        --innodb-flush-log-at-trx-commit=0 \
        --skip-log-bin --skip-name-resolve
    wait_daemon mariadbd "MariaDB socket" "$LOG_DIR/mariadbd.log" \
        mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping
}

start_slurmdbd() {
    launch slurmdbd slurmdbd -D
    # First start creates the accounting tables, which takes a few seconds.
    wait_daemon slurmdbd "slurmdbd" "$LOG_DIR/slurmdbd.log" \
        sacctmgr -n show cluster
}

# The cluster must exist in the accounting DB before slurmctld registers;
# adding a cluster also creates the root account and root user. Users other
# than root are not required to have an association (no
# AccountingStorageEnforce), but the sudo caller gets one so its jobs carry
# an account.
register_accounting() {
    if ! sacctmgr -n -P show cluster format=cluster | grep -qxF "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    local u=${SUDO_USER:-}
    if [[ -n $u && $u != root ]] &&
        ! sacctmgr -n -P show user "$u" format=user | grep -qxF "$u"; then
        sacctmgr -i add user "$u" account=root cluster="$CLUSTER" >/dev/null
    fi
}

start_slurmctld() {
    mkdir -p "$SPOOL_DIR/slurmctld"
    launch slurmctld slurmctld -D -f "$SLURM_CONF"
    wait_daemon slurmctld "slurmctld" "$LOG_DIR/slurmctld.log" \
        bash -c 'scontrol ping | grep -q "is UP"'
}

start_slurmd() {
    local node=$1
    mkdir -p "$SPOOL_DIR/slurmd-$node"
    launch "slurmd-$node" slurmd -D -f "$SLURM_CONF" -N "$node"
}

node_states() {
    sinfo -h -N -o '%N %T' 2>/dev/null | sort -u
}

# Both nodes registered and schedulable.
nodes_idle() {
    local states
    states=$(node_states) || return 1
    [[ $(grep -cE ' idle$' <<<"$states") == "${#NODES[@]}" ]]
}

# Nodes drained in an earlier run (the controller keeps DRAIN across
# restarts) would never become idle: resume them once they have registered.
resume_drained() {
    local node state
    while read -r node state; do
        case "$state" in
            *drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
        esac
    done < <(node_states)
}

wait_nodes_idle() {
    local deadline=$((SECONDS + READY_TIMEOUT)) node
    until nodes_idle; do
        resume_drained
        for node in "${NODES[@]}"; do
            if ! daemon_pid "slurmd-$node" >/dev/null; then
                show_daemon_log "slurmd-$node" "$LOG_DIR/slurmd-$node.log"
                die "slurmd for $node exited during startup"
            fi
        done
        if ((SECONDS >= deadline)); then
            node_states >&2 || true
            show_logs "$LOG_DIR/slurmctld.log"
            local n
            for n in "${NODES[@]}"; do show_logs "$LOG_DIR/slurmd-$n.log"; done
            die "nodes not idle after ${READY_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

# -------------------------------------------------------------- commands

running_daemons() {
    local d
    for d in "${DAEMONS[@]}"; do
        daemon_pid "$d" >/dev/null && echo "$d"
    done
    return 0
}

cmd_start() {
    [[ $(id -u) == 0 ]] || die "must run as root (try: sudo $0 start)"
    local running
    running=$(running_daemons | wc -l)
    if ((running == ${#DAEMONS[@]})); then
        log "already running (state in $STATE_DIR)"
        env_hint
        return 0
    fi
    if ((running > 0)) || [[ -n $(stray_pids) ]]; then
        # Half a cluster (e.g. one daemon crashed), or job step daemons left
        # by a killed run: clean up first rather than mix two generations.
        log "partially running or leftovers of a killed run; cleaning up first"
        stop_daemons
    fi
    # Every start is a fresh cluster: what a failed start kept (its logs) or
    # a killed run left goes now.
    remove_state_dir
    local t0=$SECONDS
    # A failed start stops whatever it got running, so no half cluster
    # lingers (a retry would clean it up anyway); the state dir and its logs
    # stay until the next start or stop.
    trap 'start_failed' EXIT
    "$SCRIPTS_DIR/install_debian_packages.sh" slurm
    mkdir -p "$STATE_DIR" "$PID_DIR" "$LOG_DIR" "$SPOOL_DIR" "$STATE_DIR/run"
    touch "$STAMP"
    # munged rejects a socket dir that others can write to; /tmp itself is
    # fine only because of its sticky bit.
    chmod 755 "$STATE_DIR"
    render_configs

    start_munged
    start_mariadbd
    start_slurmdbd
    register_accounting
    start_slurmctld
    local node
    for node in "${NODES[@]}"; do start_slurmd "$node"; done
    wait_nodes_idle
    trap - EXIT
    log "up in $((SECONDS - t0))s: nodes ${NODES[*]} idle (state in $STATE_DIR)"
    env_hint
}

env_hint() {
    log "clients need: export SLURM_CONF=$SLURM_CONF   (or: eval \"\$($0 env)\")"
}

start_failed() {
    local rc=$?
    ((rc == 0)) && return 0
    log "start failed; stopping what it started (logs stay in $LOG_DIR)"
    stop_daemons >/dev/null 2>&1 || true
    exit "$rc"
}

# Stop the cluster's processes; the state dir stays.
stop_daemons() {
    # Cancel jobs first while controller, slurmds and slurmdbd are all up,
    # so that the jobs end as CANCELLED in accounting instead of being
    # recovered (or lost) on the next start.
    if daemon_pid slurmctld >/dev/null; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || jobs=""
        if [[ -n ${jobs// /} ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086 # one argument per job id
            scancel $jobs 2>/dev/null || true
            local deadline=$((SECONDS + STOP_TIMEOUT))
            while [[ -n $(squeue -h -o %A 2>/dev/null) ]] && ((SECONDS < deadline)); do
                sleep 0.2
            done
        fi
    fi
    local i d pid stopped=()
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        d=${DAEMONS[i]}
        if pid=$(daemon_pid "$d"); then
            terminate "$pid" "$(daemon_comm "$d")" "$d"
            stopped+=("$pid")
        fi
        rm -f "$(pid_file "$d")"
    done
    # Anything still carrying our marker (job step daemons, a daemon whose
    # PID file was lost): same treatment, by PID.
    local comm
    while read -r pid comm; do
        [[ -n $pid ]] || continue
        log "stopping leftover $comm (pid $pid)"
        terminate "$pid" "$comm" "$comm"
        stopped+=("$pid")
    done < <(stray_pids)
    if ((${#stopped[@]} == 0)); then
        log "not running"
        return 0
    fi
    # The daemons were re-parented to PID 1, which may reap them only after
    # a while; wait briefly so that a `pgrep` right after stop is clean.
    local deadline=$((SECONDS + 5))
    for pid in "${stopped[@]}"; do
        while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
    done
    log "stopped"
}

cmd_stop() {
    [[ $(id -u) == 0 ]] || die "must run as root (try: sudo $0 stop)"
    stop_daemons
    if [[ -e $STATE_DIR ]]; then
        remove_state_dir
        log "removed $STATE_DIR"
    fi
}

cmd_env() {
    printf 'export SLURM_CONF=%q\n' "$SLURM_CONF"
}

cmd_status() {
    local d pid up=1
    for d in "${DAEMONS[@]}"; do
        if pid=$(daemon_pid "$d"); then
            printf '%-14s running  pid %s\n' "$d" "$pid"
        else
            printf '%-14s stopped\n' "$d"
            up=0
        fi
    done
    if ((up)) && scontrol ping 2>/dev/null | grep -q 'is UP'; then
        sinfo -N -l
        # Up means usable: every node registered and not down or drained.
        local usable
        usable=$(node_states | grep -cE ' (idle|mixed|allocated|completing)$' || true)
        if ((usable == ${#NODES[@]})); then
            return 0
        fi
        echo "cluster is not up: not all nodes are usable (state dir $STATE_DIR)"
        return 1
    fi
    echo "cluster is not up (state dir $STATE_DIR)"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 {start|stop|status|env}" >&2
        exit 2
        ;;
esac
