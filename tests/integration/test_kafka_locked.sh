#!/usr/bin/env bash
# test_kafka_locked.sh — -X may pass any librdkafka property, but not the
# ones the delivery guarantee rests on, nor a second way to say --group or
# --brokers: `mxsift submit` and `mxsift-worker` stop with exit 2 and one
# line naming the property, before Redis or Kafka is touched.  Before, the
# worker's -X group.id silently joined another group (which reads every
# topic from its start) while its log said --group's, and submit took
# -X acks=0, so a task could be lost unacknowledged.  The values the
# guarantee wants (acks=all, enable.idempotence=true ...) are still taken.
#
# No services: brokers and Redis are unreachable loopback ports on purpose.
#
# usage: test_kafka_locked.sh MXSIFT MXSIFT_WORKER
set -euo pipefail
mxsift=$1 worker=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }
unset MXSIFT_CONFIG
export MXSIFT_CONFIG=/dev/null
printf 'a@missing.test\n' >list.txt
wargs=(--brokers 127.0.0.1:1 --redis redis://127.0.0.1:1 --metrics-addr off)
sargs=(--job locked --brokers 127.0.0.1:1 --redis redis://127.0.0.1:1)

# refused PROG PROPERTY WHY: exit 2, the first stderr line names it
refused() {
	local prog=$1 kv=$2 why=$3 rc=0 first
	if [ "$prog" = worker ]; then
		timeout 20 "$worker" "${wargs[@]}" -X "$kv" >out 2>err || rc=$?
		first="mxsift-worker: -X ${kv%%=*} cannot be changed here: $why"
	else
		timeout 20 "$mxsift" submit "${sargs[@]}" -X "$kv" list.txt >out 2>err || rc=$?
		first="mxsift submit: -X ${kv%%=*} cannot be changed here: $why"
	fi
	[ "$rc" -eq 2 ] || { cat err >&2; fail "$prog -X $kv: exit $rc, want 2"; }
	[ "$(sed -n 1p err)" = "$first" ] || fail "$prog -X $kv: '$(sed -n 1p err)', want '$first'"
}
refused worker group.id=other "use --group"
refused worker bootstrap.servers=127.0.0.1:2 "use --brokers"
refused worker metadata.broker.list=127.0.0.1:2 "use --brokers"
refused worker enable.auto.offset.store=true "at-least-once delivery depends on it"
refused worker acks=0 "every task must be acknowledged by all in-sync replicas"
refused worker enable.idempotence=false "a retried produce must not write a task twice"
refused submit acks=1 "every task must be acknowledged by all in-sync replicas"
refused submit request.required.acks=0 "every task must be acknowledged by all in-sync replicas"
refused submit enable.idempotence=false "a retried produce must not write a task twice"
refused submit bootstrap.servers=127.0.0.1:2 "use --brokers"

# the values the guarantee wants pass the check: submit goes on to Redis
# (refused there: exit 1, not 2), and so does a property nobody locks
for kv in acks=all acks=-1 enable.idempotence=true linger.ms=20; do
	rc=0
	timeout 20 "$mxsift" submit "${sargs[@]}" -X "$kv" list.txt >out 2>err || rc=$?
	[ "$rc" -eq 1 ] && grep -q 'redis 127.0.0.1:1' err ||
		{ cat err >&2; fail "submit -X $kv: exit $rc, want 1 at Redis"; }
done
# ... and the worker starts (it then waits for Redis and Kafka: stopped by SIGTERM)
timeout -s TERM 3 "$worker" "${wargs[@]}" -X enable.auto.offset.store=false -X acks=all \
	-X enable.idempotence=true >out 2>err || rc=$?
grep -q 'cannot be changed' err && fail "worker refused a value the guarantee wants: $(cat err)"
grep -q 'msg="worker stopped"' err || { cat err >&2; fail "the worker did not start and stop"; }
echo "PASS: test_kafka_locked.sh (10 refused, the guarantee's own values taken)"
