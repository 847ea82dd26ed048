#!/usr/bin/env bash
# test_metrics.sh — operating a fleet: configuration file + environment,
# Prometheus scrape of running workers, health and readiness, against the
# test world (Kafka mock, Redis, dnsmasq, Postfix).
#
# Two mxsift-worker processes get everything from one config file (shared
# keys, a [worker] section, a kafka.* property) plus MXSIFT_WORKER_GROUP
# from the environment; `mxsift submit` takes the same file via
# MXSIFT_CONFIG and its [submit] section.  Each worker serves /metrics on a
# kernel-chosen loopback port (--metrics-addr 127.0.0.1:0, read back from
# its "metrics listening" log line).
#
# Asserts, after the job is done and while the workers still run:
#  - /healthz 200 and /readyz 200 on both (and /readyz 503 before the
#    consumer joined is covered by the unit test);
#  - summed over the workers, mxsift_verdicts_total per status/reason equals
#    the job's counts in Redis for every reason the workers decide, and is 0
#    for the reasons the coordinator decides alone (invalid_syntax,
#    no_mail_server);
#  - reply classes: 2xx == accepted, 5xx == mailbox_not_found;
#  - Redis writes: new == verdicts, duplicate == 0, latency histogram count ==
#    verdicts, nothing pending, connected;
#  - tasks done == tasks submitted; bad messages == dead letters == 1 (a junk
#    message), retries 0;
#  - SMTP: connections >= 5 (one per MX host set), RCPTs >= probed
#    addresses, recipients per connection > 1 (reuse), no 503;
#  - Kafka: every partition assigned to one of them, consumer lag 0, lane
#    queue depth 0; ready gauge 1;
#  - a bad value in the config file stops a worker at start with file:line;
#  - every metric the Grafana dashboard (GRAFANA_JSON) queries is in the scrape.
#
# usage: test_metrics.sh MXSIFT MXSIFT_WORKER FIXTURE_CSV [GRAFANA_JSON]
set -euo pipefail
mxsift=$1 worker=$2 fixture=$3 grafana=${4:-}
. "$(dirname "${BASH_SOURCE[0]}")/test_fleet_lib.sh"
fleet_need MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }

run=$(date +%s)-$$-$RANDOM
job=metrics-$run group=metrics-test-$run topic=metrics.test.$run
retry_topic=$topic.retry dead_topic=$topic.dead
brokers=$MXSIFT_TEST_BROKERS redis=$MXSIFT_TEST_REDIS
# Nothing from the caller's environment may leak into the configuration.
unset MXSIFT_CONFIG MXSIFT_REDIS MXSIFT_BROKERS MXSIFT_DNS MXSIFT_HELO MXSIFT_MAIL_FROM \
	MXSIFT_SMTP_PORT MXSIFT_TLS MXSIFT_LOG_LEVEL MXSIFT_LOG_ADDRESSES MXSIFT_TOPIC MXSIFT_GROUP
fleet_init

cat >"$tmp/mxsift.conf" <<EOF
# written by test_metrics.sh
brokers = $MXSIFT_TEST_BROKERS
redis = $MXSIFT_TEST_REDIS
dns = $MXSIFT_TEST_DNS
helo = probe.mxsift.test
mail-from = verify@mxsift.test
smtp-port = ${MXSIFT_TEST_SMTP_PORT:-25}
topic = $topic
kafka.allow.auto.create.topics = true
kafka.session.timeout.ms = 6000
kafka.heartbeat.interval.ms = 500

[worker]
group = overridden-by-the-environment
metrics-addr = 127.0.0.1:0
grace = 20
retry-topic = $retry_topic
dead-topic = $dead_topic

[submit]
batch = 4
EOF

# ---- misconfiguration fails at start, naming the place ---------------------------
printf '[worker]\nmetrics_adr = 127.0.0.1:0\n' >"$tmp/bad.conf"
rc=0
"$worker" --config "$tmp/bad.conf" >"$tmp/bad.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "a bad config key: exit $rc, expected 2"
grep -q "$tmp/bad.conf:2: unknown key 'metrics-adr'" "$tmp/bad.out" ||
	fail "bad config key message: $(cat "$tmp/bad.out")"

# ---- two workers from the config file ---------------------------------------------
start_worker() {
	MXSIFT_WORKER_GROUP=$group "$worker" --config "$tmp/mxsift.conf" >"$tmp/w$1.log" 2>&1 &
	wpid[$1]=$!
}
port_of() {
	sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$tmp/w$1.log" | head -n 1
}
partitions_of() {
	kcat -b "$brokers" -L -t "$1" 2>/dev/null |
		sed -n 's/.*with \([0-9]*\) partitions.*/\1/p' | head -n 1
}
start_worker 1
start_worker 2
fleet_wait_group 1 2
nparts=$(partitions_of "$topic")
grep -q "msg=\"worker started\" group=$group topic=$topic" "$tmp/w1.log" ||
	fail "the worker did not take group (environment) and topic (file) from the configuration"
p1=$(port_of 1) p2=$(port_of 2)
[ -n "$p1" ] && [ -n "$p2" ] || fail "no 'metrics listening' port in the worker logs"
sleep 1

printf 'not a Task\377' | kcat -b "$brokers" -P -t "$topic" -k junk 2>/dev/null ||
	fail "kcat could not produce"

# ---- submit with the same file -------------------------------------------------------
MXSIFT_CONFIG=$tmp/mxsift.conf "$mxsift" submit --job "$job" "$fixture" \
	>"$tmp/submit.out" 2>"$tmp/submit.err" ||
	{ cat "$tmp/submit.err" >&2; fail "mxsift submit (configured by MXSIFT_CONFIG) failed"; }
tasks=$(sed -n 's/.* \([0-9]*\) tasks (.*/\1/p' "$tmp/submit.out")
[ -n "$tasks" ] || fail "no task count in: $(cat "$tmp/submit.out")"
fleet_wait_done 60
s=$(MXSIFT_CONFIG=$tmp/mxsift.conf "$mxsift" status --job "$job" --format json) ||
	fail "mxsift status (configured by MXSIFT_CONFIG) failed"
# the last verdict write's Lua reply can land a moment before the task's count
sleep 0.5

# ---- scrape -------------------------------------------------------------------------
for i in 1 2; do
	port=$(port_of $i)
	curl -sf "http://127.0.0.1:$port/metrics" -o "$tmp/m$i.txt" -D "$tmp/h$i.txt" ||
		fail "scrape of worker $i failed"
	grep -qi '^content-type: text/plain; version=0.0.4' "$tmp/h$i.txt" ||
		fail "worker $i: /metrics content type"
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ] ||
		fail "worker $i: /healthz not 200"
	code=$(curl -s -o "$tmp/ready$i" -w '%{http_code}' "http://127.0.0.1:$port/readyz")
	[ "$code" = 200 ] || fail "worker $i: /readyz $code: $(cat "$tmp/ready$i")"
done
# sum NAME{LABELS} over both workers ("" when neither has the series)
sum() {
	awk -v s="$1" 'index($0, s " ") == 1 { v += $NF; seen = 1 } END { if (seen) printf "%.0f\n", v }' \
		"$tmp/m1.txt" "$tmp/m2.txt"
}
expect() {   # expect SERIES VALUE WHAT
	local got
	got=$(sum "$1")
	[ "$got" = "$2" ] || fail "$3: $1 = '${got}', expected $2"
}
echo "job: $(jq -c '{total, done, status, reason}' <<<"$s")"
grep -E '^mxsift_(verdicts_total|smtp|redis_writes|tasks|bad|kafka_consumer_lag_all|lane|ready)' \
	"$tmp/m1.txt" | grep -v ' 0$' | sed 's/^/worker1: /'

# verdicts by status and reason == job counts (reasons decided by workers)
worker_sum=0
for pair in $(jq -r '.reason | to_entries[] | .key + "=" + (.value | tostring)' <<<"$s"); do
	r=${pair%%=*} n=${pair#*=}
	st=$(grep -o "mxsift_verdicts_total{status=\"[a-z]*\",reason=\"$r\"}" "$tmp/m1.txt" | head -n 1)
	[ -n "$st" ] || fail "no mxsift_verdicts_total series for reason $r"
	case "$r" in
	invalid_syntax|no_mail_server) want=0 ;;   # written by the coordinator
	*) want=$n; worker_sum=$((worker_sum + n)) ;;
	esac
	expect "$st" "$want" "verdicts by reason"
done
[ "$worker_sum" -gt 0 ] || fail "the job has no worker-decided verdicts: fixture?"
for st in deliverable undeliverable risky unknown; do
	have=$(awk -v p="mxsift_verdicts_total{status=\"$st\"," 'index($0, p) == 1 { v += $NF } END { print v + 0 }' \
		"$tmp/m1.txt" "$tmp/m2.txt")
	want=$(jq ".status.$st" <<<"$s")
	[ "$st" = undeliverable ] && want=$((want - $(jq '(.reason.invalid_syntax // 0) + (.reason.no_mail_server // 0)' <<<"$s")))
	[ "$have" -eq "$want" ] || fail "verdicts with status $st: $have, expected $want"
done

accepted=$(jq '.reason.accepted // 0' <<<"$s") notfound=$(jq '.reason.mailbox_not_found // 0' <<<"$s")
expect 'mxsift_smtp_replies_total{class="2xx"}' "$accepted" "reply classes"
expect 'mxsift_smtp_replies_total{class="5xx"}' "$notfound" "reply classes"
expect 'mxsift_redis_writes_total{result="new"}' "$worker_sum" "Redis writes"
expect 'mxsift_redis_writes_total{result="duplicate"}' 0 "Redis writes"
expect 'mxsift_redis_write_duration_seconds_count' "$worker_sum" "Redis latency histogram"
expect 'mxsift_redis_write_duration_seconds_bucket{le="+Inf"}' "$worker_sum" "Redis latency histogram"
expect 'mxsift_redis_pending_writes' 0 "Redis"
expect 'mxsift_redis_connected' 2 "Redis"
expect 'mxsift_tasks_done_total' "$tasks" "tasks"
expect 'mxsift_bad_messages_total' 1 "bad messages"
expect 'mxsift_dead_letters_total' 1 "dead letters (the junk message)"
expect 'mxsift_retries_scheduled_total' 0 "retries (no temporary answers in the fixture)"
expect 'mxsift_smtp_replies_503_total' 0 "503 replies"
expect 'mxsift_kafka_consumer_lag_all' 0 "consumer lag"
rparts=$(partitions_of "$topic.retry")
expect 'mxsift_kafka_assigned_partitions' "$((nparts + ${rparts:-0}))" "assigned partitions (tasks + retry)"
expect 'mxsift_lane_queue_depth' 0 "lane queue depth"
expect 'mxsift_ready' 2 "ready gauge"
conns=$(sum mxsift_smtp_connections_opened_total) rcpts=$(sum mxsift_smtp_rcpt_total)
[ "$conns" -ge 5 ] || fail "connections opened $conns, expected >= 5 (one per MX host set)"
[ "$rcpts" -ge $((accepted + notfound)) ] || fail "RCPTs $rcpts < probed $((accepted + notfound))"
[ "$rcpts" -gt "$conns" ] || fail "RCPTs $rcpts not above connections $conns: no reuse?"
awk '/^mxsift_smtp_recipients_per_connection / && $2 > 0 { ok = 1 } END { exit !ok }' \
	"$tmp/m1.txt" "$tmp/m2.txt" || fail "recipients per connection not reported"
# per-partition lag series carry the topic
grep -q "^mxsift_kafka_consumer_lag{topic=\"$topic\",partition=\"[0-9]*\"} 0$" "$tmp/m1.txt" ||
	fail "no per-partition lag series"

# the dashboard shows only what a worker exports
if [ -n "$grafana" ]; then
	for name in $(jq -r '.panels[].targets[].expr' "$grafana" | grep -oE 'mxsift_[a-z0-9_]+' |
		sed -E 's/_bucket$//' | sort -u); do
		grep -q "^# TYPE $name " "$tmp/m1.txt" || fail "dashboard queries $name, not in the scrape"
	done
fi

# ---- stop: graceful, exit 0; no addresses at info level ------------------------------
fleet_stop_workers
grep 'level=info' "$tmp"/w*.log | grep -q '@' && fail "an address in an info-level log line"

echo "PASS: metrics of 2 workers match job $job ($worker_sum worker verdicts, $tasks tasks, $conns connections, $rcpts RCPTs)"
