#!/usr/bin/env bash
# test_redis_url.sh — a Redis URL with a password and a database, and a
# worker's readiness while its Redis goes away and comes back.
#
# A private redis-server (--requirepass, appendonly, its own port: the
# world's Redis is never touched) serves redis://:PASS@127.0.0.1:PORT/3.
# The world's Kafka mock, dnsmasq and Postfix do the rest.
#
# Asserts:
#  - a wrong password, no password, a database out of range: mxsift submit,
#    status and export exit 1 naming AUTH/SELECT and Redis's answer;
#    mxsift-worker exits 2 at start with that message and where to fix it,
#    and never prints the password;
#  - a URL that does not parse (a bad database number or port, a comment
#    after the value in a config file, rediss://), from the flag, MXSIFT_REDIS
#    or a config file: submit, status, export, report and the worker exit 2
#    before any work with one line naming the source (--redis, MXSIFT_REDIS,
#    FILE:LINE) and the URL's syntax, never the password;
#  - submit, one worker, status and export with the URL: the job completes
#    with the expected verdicts; every key of the job (and the worker's lane
#    report) is in database 3, database 0 stays empty;
#  - /readyz 200 and /healthz 200; with the redis-server stopped /readyz is
#    503 "redis not connected" while /healthz stays 200; after the restart
#    /readyz is 200 again and a second job (written after the reconnect,
#    which must AUTH and SELECT again) completes, its keys in database 3.
#
# usage: test_redis_url.sh MXSIFT MXSIFT_WORKER
set -euo pipefail
mxsift=$1 worker=$2
. "$(dirname "${BASH_SOURCE[0]}")/test_fleet_lib.sh"
fleet_need MXSIFT_TEST_BROKERS MXSIFT_TEST_DNS
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
fleet_init
trap 'echo "FAIL: test_redis_url.sh:$LINENO: a command failed (exit $?)" >&2' ERR

run=$(date +%s)-$$-$RANDOM
group=rurl-$run topic=rurl.$run retry_topic=rurl.$run.retry dead_topic=rurl.$run.dead
brokers=$MXSIFT_TEST_BROKERS dns=$MXSIFT_TEST_DNS smtp_port=${MXSIFT_TEST_SMTP_PORT:-25}
pass="pw-$RANDOM-s3cret"

# ---- a private redis-server with a password ----------------------------------------
mkdir -p "$tmp/redis"
redis_spawn() {
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes \
		--appendfsync always --dir "$tmp/redis" --logfile "$tmp/redis.log" \
		--requirepass "$pass" --daemonize no >/dev/null 2>&1 &
	redis_pid=$!
	for _ in $(seq 1 100); do
		[ "$(REDISCLI_AUTH=$pass redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
		kill -0 "$redis_pid" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}
for _ in 1 2 3; do
	redis_port=$(fleet_free_port) || fail "no free port"
	redis_spawn && break
	redis_port=
done
[ -n "$redis_port" ] || fail "redis-server did not start"
rcli() { REDISCLI_AUTH=$pass redis-cli -p "$redis_port" "$@"; }
url=redis://:$pass@127.0.0.1:$redis_port/3
redis=$url   # fleet_status, fleet_worker

# ---- refused URLs ---------------------------------------------------------------------
# check_exact EXPECTED: export (JSONL) == the sorted "address<TAB>status/reason"
# file; the verdicts hash in database 3 holds exactly that many fields
check_exact() {
	local n
	n=$(grep -c '' "$1")
	"$mxsift" export --job "$job" --redis "$url" --format jsonl -o "$tmp/export.jsonl" ||
		fail "mxsift export --format jsonl failed"
	jq -r '[.address, .status + "/" + .reason] | @tsv' "$tmp/export.jsonl" | sort >"$tmp/have"
	diff -u "$1" "$tmp/have" || fail "job $job: verdicts differ"
	[ "$(rcli -n 3 hlen "mxsift:job:$job:verdicts")" = "$n" ] ||
		fail "job $job: the verdicts hash in database 3 does not hold $n fields"
	[ "$(jq .done <<<"$(fleet_status)")" = "$n" ] || fail "job $job: done is not $n"
}
printf 'email\nalice@alpha.test\n' >"$tmp/one.csv"
# refused WHAT URL PATTERN: each command exits 1 with PATTERN on stderr
refused() {
	local what=$1 u=$2 pat=$3 cmd rc
	for cmd in submit status export; do
		rc=0
		case $cmd in
		submit) "$mxsift" submit --job "refused-$run" --brokers "$brokers" --redis "$u" \
			--dns "$dns" --topic "$topic" "$tmp/one.csv" >"$tmp/r.out" 2>"$tmp/r.err" || rc=$? ;;
		*) "$mxsift" "$cmd" --job "refused-$run" --redis "$u" >"$tmp/r.out" 2>"$tmp/r.err" || rc=$? ;;
		esac
		[ "$rc" -eq 1 ] || fail "$what: mxsift $cmd exited $rc, expected 1: $(cat "$tmp/r.err")"
		grep -Eq "^mxsift $cmd: redis 127\.0\.0\.1:$redis_port: $pat" "$tmp/r.err" ||
			fail "$what: mxsift $cmd said: $(cat "$tmp/r.err")"
	done
	rc=0
	"$worker" --brokers "$brokers" --redis "$u" --group "$group-refused" --topic "$topic" \
		--metrics-addr off >"$tmp/r.out" 2>"$tmp/r.err" || rc=$?
	[ "$rc" -eq 2 ] || fail "$what: mxsift-worker exited $rc, expected 2: $(cat "$tmp/r.err")"
	grep -Eq "^mxsift-worker: redis 127\.0\.0\.1:$redis_port: $pat.* \(fix the password or database of the Redis URL: --redis" \
		"$tmp/r.err" || fail "$what: mxsift-worker said: $(cat "$tmp/r.err")"
	grep -q "msg=\"worker started\"" "$tmp/r.err" && fail "$what: the worker started anyway"
	grep -qF "$pass" "$tmp/r.err" && fail "$what: the password is in the worker's message"
	return 0
}
refused "a wrong password" "redis://:wrong-$pass@127.0.0.1:$redis_port/3" 'AUTH: WRONGPASS'
refused "no password" "redis://127.0.0.1:$redis_port/3" 'SELECT: NOAUTH'
refused "database out of range" "redis://:$pass@127.0.0.1:$redis_port/99" 'SELECT: ERR DB index is out of range'
# malformed WHERE URL PATTERN: a URL that does not parse is a usage error of every
# command that takes one, exit 2 before any work, the message naming where it came
# from (WHERE: flag, env or file) and never the password
malformed() {
	local where=$1 u=$2 pat=$3 cmd rc src args
	for cmd in submit status export report worker; do
		args=(--job "malformed-$run")
		case $cmd in
		submit) args+=(--brokers "$brokers" --dns "$dns" --topic "$topic" "$tmp/one.csv") ;;
		worker) args=(--brokers "$brokers" --group "$group-malformed" --topic "$topic"
			--metrics-addr off) ;;
		esac
		case $where in
		flag) src=--redis; args+=(--redis "$u") ;;
		env) src=MXSIFT_REDIS ;;
		file) src="$tmp/bad-url.conf:2"; printf '# a copied example\nredis = %s\n' "$u" \
			>"$tmp/bad-url.conf" ;;
		esac
		rc=0
		if [ "$cmd" = worker ]; then
			set -- "$worker" "${args[@]}"
			prog=mxsift-worker
		else
			set -- "$mxsift" "$cmd" "${args[@]}"
			prog="mxsift $cmd"
		fi
		case $where in
		flag) "$@" >"$tmp/m.out" 2>"$tmp/m.err" || rc=$? ;;
		env) MXSIFT_REDIS=$u "$@" >"$tmp/m.out" 2>"$tmp/m.err" || rc=$? ;;
		file) MXSIFT_CONFIG=$tmp/bad-url.conf "$@" >"$tmp/m.out" 2>"$tmp/m.err" || rc=$? ;;
		esac
		[ "$rc" -eq 2 ] ||
			fail "$where '$u': $prog exited $rc, expected 2: $(cat "$tmp/m.err")"
		grep -qF "$prog: $src: redis: $pat" "$tmp/m.err" || grep -qF "$prog: $src: $pat" "$tmp/m.err" ||
			fail "$where '$u': $prog said: $(cat "$tmp/m.err")"
		grep -qF 'redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]' "$tmp/m.err" ||
			fail "$where '$u': $prog does not show the URL's syntax: $(cat "$tmp/m.err")"
		grep -qF "$pass" "$tmp/m.err" && fail "$where: the password is in $prog's message"
		[ "$(grep -c '' "$tmp/m.err")" -eq 1 ] ||
			fail "$where '$u': $prog printed more than its message: $(cat "$tmp/m.err")"
	done
	return 0
}
malformed file "redis://127.0.0.1:$redis_port/x" 'bad database number in redis URL'
malformed flag "redis://:$pass@127.0.0.1:$redis_port/3x" 'bad database number in redis URL'
malformed env "redis://:$pass@127.0.0.1:99999/3" 'bad port in redis URL'
# a comment after the value (the format has none) is part of the value
malformed file "redis://:$pass@127.0.0.1:$redis_port/3   # database 3" \
	'bad database number in redis URL'
malformed flag "rediss://127.0.0.1:$redis_port" 'rediss:// (TLS) is not supported'
[ "$(rcli -n 3 dbsize)" = 0 ] && [ "$(rcli -n 0 dbsize)" = 0 ] ||
	fail "a refused command wrote something"

# ---- one worker, a job, all in database 3 ----------------------------------------------
fleet_worker 1
fleet_wait_group 1
mport=$(sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$tmp/w1.log" | sed -n 1p)
[ -n "$mport" ] || fail "no metrics port in the worker's log"
code() { curl -s -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$mport/$1"; }
# until CODE: wait_code PATH CODE SECONDS
wait_code() {
	for _ in $(seq 1 $(($3 * 10))); do
		[ "$(code "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "/$1 not $2 within $3 s: $(code "$1") $(cat "$tmp/body")"
}
wait_code readyz 200 10
[ "$(code healthz)" = 200 ] || fail "/healthz not 200"

# submit_job JOB FILE: submit with the URL, wait until complete, check the export
submit_job() {
	job=$1
	"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$url" --dns "$dns" \
		--topic "$topic" "$2" >"$tmp/submit-$job.out" 2>"$tmp/submit-$job.err" ||
		fail "mxsift submit $job failed: $(cat "$tmp/submit-$job.err")"
	fleet_wait_done 30
	"$mxsift" export --job "$job" --redis "$url" --format csv -o "$tmp/$job.csv" ||
		fail "mxsift export $job failed"
	"$mxsift" status --job "$job" --redis "$url" >"$tmp/$job.status" ||
		fail "mxsift status $job failed"
	grep -Eq '^state +complete' "$tmp/$job.status" || fail "status $job: $(cat "$tmp/$job.status")"
	# every key of the job in database 3, none in database 0
	[ -n "$(rcli -n 3 --scan --pattern "mxsift:job:$job:*")" ] || fail "job $job: no keys in database 3"
	[ -z "$(rcli -n 0 --scan --pattern "mxsift:*")" ] || fail "job $job: keys in database 0"
}
printf 'email\nalice@alpha.test\nnobody@alpha.test\ndave@beta.test\nnot-an-address\n' >"$tmp/list1.csv"
submit_job "rurl1-$run" "$tmp/list1.csv"
printf 'alice@alpha.test\tdeliverable/accepted\ndave@beta.test\tdeliverable/accepted\nnobody@alpha.test\tundeliverable/mailbox_not_found\nnot-an-address\tundeliverable/invalid_syntax\n' |
	sort >"$tmp/exp1"
check_exact "$tmp/exp1"
# the worker's lane report (written every 5 s) lands there too
for _ in $(seq 1 70); do
	[ -n "$(rcli -n 3 --scan --pattern 'mxsift:worker:*')" ] && break
	sleep 0.1
done
[ -n "$(rcli -n 3 --scan --pattern 'mxsift:worker:*')" ] || fail "no worker lane report in database 3"
[ "$(rcli -n 0 dbsize)" = 0 ] || fail "database 0 is not empty: $(rcli -n 0 --scan | sed -n 1,5p)"

# ---- readiness while Redis is away --------------------------------------------------------
kill -TERM "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
redis_pid=
wait_code readyz 503 15
grep -qx 'redis not connected' "$tmp/body" || fail "/readyz 503 body: $(cat "$tmp/body")"
[ "$(code healthz)" = 200 ] || fail "/healthz not 200 while Redis is away"
curl -sf "http://127.0.0.1:$mport/metrics" -o "$tmp/metrics" || fail "scrape failed"
grep -qx 'mxsift_ready 0' "$tmp/metrics" || fail "mxsift_ready not 0: $(grep '^mxsift_ready' "$tmp/metrics")"
redis_spawn || fail "redis-server did not restart on port $redis_port"
wait_code readyz 200 20
[ "$(code healthz)" = 200 ] || fail "/healthz not 200 after the restart"
printf 'email\nbob@alpha.test\nzed@beta.test\n' >"$tmp/list2.csv"
submit_job "rurl2-$run" "$tmp/list2.csv"
printf 'bob@alpha.test\tdeliverable/accepted\nzed@beta.test\tundeliverable/mailbox_not_found\n' |
	sort >"$tmp/exp2"
check_exact "$tmp/exp2"
[ "$(rcli -n 0 dbsize)" = 0 ] || fail "database 0 is not empty after the reconnect"
fleet_stop_workers

echo "PASS: redis://:***@127.0.0.1:$redis_port/3: refused URLs exit 1 (CLI) / 2 (worker), malformed ones 2 naming their source; two jobs in database 3; /readyz 503 without Redis, 200 after its restart, /healthz 200 throughout"
