# lib.sh — shell helpers shared by scripts/setup, services, test and demo.
# Sourced, never run.  Bash only.
#
# Provides: MXSIFT_ROOT (the checkout), SUDO (empty when root), world_msg,
# world_die, world_pid_alive, world_stop_pid, world_wait_for.

MXSIFT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MXSIFT_BUILD_DIR=${MXSIFT_BUILD_DIR:-$MXSIFT_ROOT/build}
if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi

world_msg() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
world_die() { world_msg "error: $*"; exit 1; }

# world_pid_alive PID: true while PID runs.  A zombie counts as gone: a
# daemon that double-forked away from us (Postfix's master, after `postfix
# stop`) stays a zombie until its new parent reaps it, and kill -0 still
# succeeds on it.
world_pid_alive() {
	local pid=$1 state
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# world_pid_comm PID: the process's command name (/proc/PID/comm).
world_pid_comm() { cat "/proc/$1/comm" 2>/dev/null; }

# world_wait_gone SECONDS PID...: wait until every PID has exited.
world_wait_gone() {
	local tries=$(($1 * 10)) pid left
	shift
	while [ "$tries" -gt 0 ]; do
		left=
		for pid in "$@"; do world_pid_alive "$pid" && left=1; done
		[ -z "$left" ] && return 0
		sleep 0.1
		tries=$((tries - 1))
	done
	return 1
}

# world_stop_pid NAME PID COMM: stop exactly PID with SIGTERM, then SIGKILL
# after 10 s.  COMM guards against a recycled pid: if the process running
# under PID is not COMM, it is left alone.
world_stop_pid() {
	local name=$1 pid=$2 comm=$3 have
	world_pid_alive "$pid" || return 0
	have=$(world_pid_comm "$pid")
	if [ -n "$comm" ] && [ "$have" != "$comm" ]; then
		world_msg "$name: pid $pid is now '$have', not '$comm': not touching it"
		return 0
	fi
	$SUDO kill -TERM "$pid" 2>/dev/null || true
	if ! world_wait_gone 10 "$pid"; then
		world_msg "$name: pid $pid ignored SIGTERM for 10 s, sending SIGKILL"
		$SUDO kill -KILL "$pid" 2>/dev/null || true
		world_wait_gone 5 "$pid" || world_msg "$name: pid $pid survived SIGKILL"
	fi
}

# world_wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds.
world_wait_for() {
	local tries=$(($1 * 10))
	shift
	while [ "$tries" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		tries=$((tries - 1))
	done
	return 1
}

# world_pids_with_env NAME=VALUE: pids of live processes whose environment
# holds exactly NAME=VALUE, other than this shell and its ancestors.  Such a
# mark is inherited by everything a process starts, so it finds exactly the
# processes one of ours started (all of a Postfix instance carries
# MAIL_CONFIG=<its config dir>), with no guessing by program name.
world_pids_with_env() {
	local mark=$1 ancestors=" " p e pid
	p=$$
	while [ "${p:-1}" -gt 1 ]; do
		ancestors+="$p "
		# Field 4 of stat is the parent; cut after the ")" ending the name.
		p=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2)
	done
	# One grep over every environ file: -z splits at NULs, -x matches a
	# whole NAME=VALUE entry.  Unreadable files (kernel threads, processes
	# gone meanwhile) are skipped silently.
	for e in $(grep -lzxF -- "$mark" /proc/[0-9]*/environ 2>/dev/null); do
		pid=${e#/proc/}
		pid=${pid%/environ}
		[[ $ancestors == *" $pid "* ]] && continue
		world_pid_alive "$pid" && echo "$pid"
	done
	return 0
}
