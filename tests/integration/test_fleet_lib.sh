# test_fleet_lib.sh — helpers shared by the fleet integration tests
# (sourced, not run).  Every process a test starts is recorded in fleet_pids
# (or started by fleet_redis_start / fleet_kafka_start) and stopped by pid
# at exit; nothing is ever killed by name.
#
# Provides:
#   fleet_need VAR...          skip (exit 77) unless each VAR is set
#   fleet_init                 $tmp, cleanup trap, fail()
#   fleet_redis_start          private redis-server (appendonly, fsync always)
#                              on a free port: sets redis_port, redis (URL)
#   fleet_redis_kill / fleet_redis_restart   kill -9 it / start it again
#                              on the same port and data directory
#   fleet_kafka_start [P]      private mock Kafka (3 brokers, P partitions,
#                              control FIFO): sets brokers, kafka_ctl
#   fleet_kafka_ctl CMD        send a control command, wait for its "ok"
#   fleet_kafka_left ID APIKEY broker-errors still to come (mock's error-count)
#   fleet_worker N [ARGS]      start worker N (log $tmp/wN.log) with the
#                              common options plus ARGS; wpid[N] = pid
#   fleet_wait_group N...      until workers N... split the task topic's
#                              partitions and the group is stable
#   fleet_status               `mxsift status --format json` of $job
#   fleet_wait_done SECONDS    until done == total (or fail)
#   fleet_check_exact EXPECTED check Redis against a sorted "address<TAB>
#                              status/reason" file: one verdict per address,
#                              the expected one, counts exact, totals equal
#   fleet_stop_workers         SIGTERM every worker, each must exit 0
#   fleet_smtpd_start SMTPD ADDR SCRIPT NAME [ARGS]   mxsift-smtpd-script on
#                              ADDR, port 0 (transcript $tmp/NAME.transcript,
#                              stderr $tmp/NAME.err, ARGS e.g. -e EVENTS):
#                              sets spid (also in fleet_pids) and smtp_port;
#                              with smtpd_port=P set, on port P instead of 0
#                              (a new server where running workers connect)
# Variables the caller sets first: mxsift, worker, dns, smtp_port, job and
# (for fleet_worker) group; topic/retry_topic/dead_topic default to mxsift.*.

fleet_need() {
	local v
	for v in "$@"; do
		if [ -z "${!v:-}" ]; then
			echo "SKIP: $v unset (start the test world: scripts/services up DIR)"
			exit 77
		fi
	done
	command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
	command -v kcat >/dev/null || { echo "SKIP: kcat not installed"; exit 77; }
	command -v redis-cli >/dev/null || { echo "SKIP: redis-cli not installed"; exit 77; }
}

fleet_pids=()
declare -A wpid=()
redis_pid= kafka_pid= redis_port= kafka_ctl=
topic=${topic:-mxsift.tasks} retry_topic=${retry_topic:-mxsift.retry} dead_topic=${dead_topic:-mxsift.dead}

# Stop one pid: SIGTERM, up to 10 s, then SIGKILL; reap it.
fleet_stop_pid() {
	local p=$1 i
	kill -TERM "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
	for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

fleet_cleanup() {
	local p
	set +e     # best effort: a process that is already gone is fine
	for p in "${wpid[@]}" "${fleet_pids[@]}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
	for p in "${wpid[@]}" "${fleet_pids[@]}"; do [ -n "$p" ] && fleet_stop_pid "$p"; done
	[ -n "$kafka_pid" ] && fleet_stop_pid "$kafka_pid"
	[ -n "$redis_pid" ] && { kill -KILL "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; }
	if [ "${MXSIFT_KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
	return 0   # an EXIT trap's last status would become the script's
}

fleet_init() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/mxsift-fleet.XXXXXX")
	trap fleet_cleanup EXIT
}

fail() {
	local f
	echo "FAIL: $*" >&2
	for f in "$tmp"/w*.log "$tmp"/submit*.err "$tmp"/redis.log "$tmp"/kafka.err; do
		[ -f "$f" ] && { echo "--- $f"; grep -v 'msg="task done"' "$f" | tail -n 25; } >&2
	done
	exit 1
}

# A TCP port in 20000-31999 that nothing listens on (a race stays possible:
# callers check that their server came up).
fleet_free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
	done
	return 1
}

# Appendonly with fsync on every write: a kill -9 loses nothing Redis has
# acknowledged, which is what the workers rely on (they store a Kafka offset
# once Redis answered).  The world's redis runs with no persistence at all,
# so tests that restart Redis bring their own.
fleet_redis_spawn() {
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes \
		--appendfsync always --dir "$tmp/redis" --logfile "$tmp/redis.log" --daemonize no \
		>/dev/null 2>&1 &
	redis_pid=$!
	for _ in $(seq 1 100); do
		[ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
		kill -0 "$redis_pid" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

fleet_redis_start() {
	mkdir -p "$tmp/redis"
	for _ in 1 2 3; do
		redis_port=$(fleet_free_port) || fail "no free port"
		fleet_redis_spawn && { redis=redis://127.0.0.1:$redis_port; return 0; }
	done
	fail "redis-server did not start"
}

fleet_redis_kill() {
	kill -KILL "$redis_pid"
	wait "$redis_pid" 2>/dev/null || true
	redis_pid=
}

fleet_redis_restart() {
	fleet_redis_spawn || fail "redis-server did not restart on port $redis_port"
}

fleet_kafka_start() {
	local parts=${1:-4} mock=${MXSIFT_MOCK_KAFKA:-$(dirname "$worker")/../tests/tools/mxsift-mock-kafka}
	[ -x "$mock" ] || fail "no mock Kafka at $mock"
	kafka_ctl=$tmp/kafka.ctl
	mkfifo "$kafka_ctl"
	"$mock" -b 3 -p "$parts" -c "$kafka_ctl" >"$tmp/kafka.out" 2>"$tmp/kafka.err" &
	kafka_pid=$!
	for _ in $(seq 1 100); do
		brokers=$(head -n 1 "$tmp/kafka.out" 2>/dev/null)
		[ -n "$brokers" ] && return 0
		kill -0 "$kafka_pid" 2>/dev/null || break
		sleep 0.05
	done
	fail "mock Kafka did not start"
}

# Send one control command; its acknowledgement must follow within 5 s.
fleet_kafka_ctl() {
	local n
	n=$(grep -c '' "$tmp/kafka.out")
	printf '%s\n' "$*" >"$kafka_ctl"
	for _ in $(seq 1 100); do
		if [ "$(grep -c '' "$tmp/kafka.out")" -gt "$n" ]; then
			grep -q "^ok $*" <<<"$(tail -n +$((n + 1)) "$tmp/kafka.out")" && return 0
			fail "mock Kafka refused '$*': $(tail -n 1 "$tmp/kafka.out")"
		fi
		sleep 0.05
	done
	fail "mock Kafka did not answer '$*'"
}

# How many errors pushed with "broker-errors" are still waiting (a test that
# injects errors asserts they were met: fewer left than pushed).
fleet_kafka_left() {
	fleet_kafka_ctl error-count "$1" "$2"
	grep "^ok error-count $1 $2 left=" "$tmp/kafka.out" | tail -n 1 | sed 's/.*left=//'
}

# Session timeout 6 s: a killed member's partitions move within seconds
# instead of the default 45.
fleet_worker() {
	local n=$1
	shift
	"$worker" --brokers "$brokers" --redis "$redis" --group "$group" --topic "$topic" \
		--retry-topic "$retry_topic" --dead-topic "$dead_topic" --dns "$dns" \
		--helo probe.mxsift.test --mail-from verify@mxsift.test --smtp-port "$smtp_port" \
		--metrics-addr 127.0.0.1:0 -X allow.auto.create.topics=true \
		-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 "$@" \
		>>"$tmp/w$n.log" 2>&1 &
	wpid[$n]=$!
}

# Task-topic partitions in worker N's last assignment (0 after a revoke).
fleet_assigned() {
	awk -v t="$topic/" '/msg="partitions (assigned|revoked)"/ { n = 0; s = $0
		if ($0 ~ /revoked/) next
		while ((i = index(s, t)) > 0) { n++; s = substr(s, i + length(t)) } }
		END { print n + 0 }' "$tmp/w$1.log"
}

fleet_wait_group() {
	local nparts=0 sum n ok
	for _ in $(seq 1 300); do
		for n in "$@"; do
			kill -0 "${wpid[$n]}" 2>/dev/null || fail "worker $n died at startup"
		done
		if [ "$nparts" -eq 0 ]; then
			nparts=$(kcat -b "$brokers" -L -t "$topic" 2>/dev/null |
				sed -n 's/.*with \([0-9]*\) partitions.*/\1/p' | sed -n 1p)
			nparts=${nparts:-0}
		fi
		sum=0 ok=1
		for n in "$@"; do
			a=$(fleet_assigned "$n")
			[ "$a" -gt 0 ] || ok=0
			sum=$((sum + a))
		done
		[ "$ok" = 1 ] && [ "$nparts" -gt 0 ] && [ "$sum" -eq "$nparts" ] && return 0
		sleep 0.2
	done
	fail "workers $* did not share the $nparts partitions of $topic"
}

fleet_status() {
	"$mxsift" status --job "$job" --redis "$redis" --format json 2>/dev/null
}

fleet_wait_done() {
	local limit=$1 s d t
	for _ in $(seq 1 $((limit * 10))); do
		s=$(fleet_status) || s=
		if [ -n "$s" ]; then
			d=$(jq .done <<<"$s") t=$(jq .total <<<"$s")
			[ "$(jq -r .state <<<"$s")" = complete ] && [ "$d" -eq "$t" ] && return 0
		fi
		sleep 0.1
	done
	fail "job $job not complete after ${limit}s: $s"
}

# Wait until at least N verdicts are done (for faults injected mid-job).
fleet_wait_progress() {
	local want=$1 limit=$2 s
	for _ in $(seq 1 $((limit * 20))); do
		s=$(fleet_status) || s=
		[ -n "$s" ] && [ "$(jq .done <<<"$s")" -ge "$want" ] && return 0
		sleep 0.05
	done
	fail "job $job did not reach $want verdicts within ${limit}s: $s"
}

fleet_check_exact() {
	local expected=$1 s total port=${redis#redis://127.0.0.1:}
	s=$(fleet_status) || fail "mxsift status failed"
	total=$(wc -l <"$expected")
	[ "$(jq .total <<<"$s")" -eq "$total" ] || fail "total $(jq .total <<<"$s"), expected $total"
	[ "$(jq .done <<<"$s")" -eq "$total" ] || fail "done $(jq .done <<<"$s"), expected $total"
	[ "$(jq '[.status[]] | add' <<<"$s")" -eq "$total" ] || fail "status counts do not add up: $s"
	[ "$(jq '[.reason[]] | add' <<<"$s")" -eq "$total" ] || fail "reason counts do not add up: $s"
	[ "$(redis-cli -p "${port%%/*}" hlen "mxsift:job:$job:verdicts")" -eq "$total" ] ||
		fail "the verdicts hash does not hold exactly $total fields"
	"$mxsift" export --job "$job" --redis "$redis" --format jsonl -o "$tmp/export.jsonl" ||
		fail "mxsift export failed"
	jq -r '[.address, .status + "/" + .reason] | @tsv' "$tmp/export.jsonl" | sort >"$tmp/have"
	diff -u "$expected" "$tmp/have" >"$tmp/have.diff" ||
		fail "verdicts differ from the expected ones: $(head -n 20 "$tmp/have.diff")"
	# counts per status/reason equal those of the expected verdicts
	cut -f2 "$expected" | sed 's|/.*||' | sort | uniq -c | awk '{ print $2, $1 }' >"$tmp/exp.st"
	jq -r '.status | to_entries[] | select(.value > 0) | .key + " " + (.value | tostring)' \
		<<<"$s" | sort >"$tmp/have.st"
	diff -u "$tmp/exp.st" "$tmp/have.st" || fail "status counts differ"
	cut -f2 "$expected" | sed 's|.*/||' | sort | uniq -c | awk '{ print $2, $1 }' >"$tmp/exp.re"
	jq -r '.reason | to_entries[] | .key + " " + (.value | tostring)' <<<"$s" | sort >"$tmp/have.re"
	diff -u "$tmp/exp.re" "$tmp/have.re" || fail "reason counts differ"
}

fleet_stop_workers() {
	local n p rc
	for n in "${!wpid[@]}"; do kill -TERM "${wpid[$n]}" 2>/dev/null || true; done
	for n in "${!wpid[@]}"; do
		p=${wpid[$n]} rc=0
		for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$p" 2>/dev/null && fail "worker $n did not stop within 30 s of SIGTERM"
		wait "$p" || rc=$?
		[ "$rc" -eq 0 ] || fail "worker $n exited $rc after SIGTERM"
		unset "wpid[$n]"
	done
}

fleet_smtpd_start() {
	local smtpd=$1 addr=$2 script=$3 name=$4
	shift 4
	"$smtpd" -a "$addr" -p "${smtpd_port:-0}" -T 120 -t "$tmp/$name.transcript" "$@" "$script" \
		>"$tmp/$name.port" 2>"$tmp/$name.err" &
	spid=$!
	fleet_pids+=("$spid")
	smtp_port=
	for _ in $(seq 1 100); do
		smtp_port=$(awk '$1 == "port" { print $2 }' "$tmp/$name.port" 2>/dev/null) || true
		[ -n "$smtp_port" ] && return 0
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	fail "scripted server did not start: $(cat "$tmp/$name.err")"
}
