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
#  - SMTP, against Postfix's own log once the workers have stopped:
#    connections opened == Postfix's "connect from" lines + the attempts at
#    the dead first MX of failover.test (its "smtp session end" lines, 1);
#    RCPTs == the RCPTs of Postfix's disconnect summaries; recipients per
#    connection == RCPTs / connections on each worker (> 1: reuse);
#    sessions open == connections - sessions ended on each worker; no 503;
#  - Kafka: every partition assigned to one of them, consumer lag 0, lane
#    queue depth 0; ready gauge 1;
#  - a bad value in the config file stops a worker at start with file:line;
#  - every metric the Grafana dashboard (GRAFANA_JSON) queries is in the scrape.
#
# Phase 2, a held lane (worker 3, its own group and topic, --max-tasks 1,
# lane rule alpha.test rate=5 rcpt_per_session=1, retry schedule 1s)
# against mxsift-smtpd-script on the world's MX address: connection 1 holds
# the first RCPT's reply for 6 s; the other connections serve (one address
# always greylisted with 450).  Four tasks of one address each.  While the
# RCPT is held: sessions open 1, the lane's connections 1, its current rate
# and its rule's rate 5, lane queue depth 1, consumer lag >= 1 (tasks
# waiting behind --max-tasks 1).  After the job: retries scheduled
# 1 (the greylisted address, asked once more, then final), verdicts as
# expected, lag 0, connections opened == the server's own connection count,
# sessions open 0 once the idle sessions closed.
#
# usage: test_metrics.sh MXSIFT MXSIFT_WORKER FIXTURE_CSV GRAFANA_JSON SMTPD_SCRIPT
set -euo pipefail
mxsift=$1 worker=$2 fixture=$3 grafana=${4:-} smtpd=${5:-}
. "$(dirname "${BASH_SOURCE[0]}")/test_fleet_lib.sh"
fleet_need MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS MXSIFT_TEST_POSTFIX_LOG \
	MXSIFT_TEST_MX_IP
[ -x "$smtpd" ] || { echo "usage: test_metrics.sh MXSIFT WORKER FIXTURE GRAFANA_JSON SMTPD_SCRIPT" >&2; exit 2; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }

run=$(date +%s)-$$-$RANDOM
job=metrics-$run group=metrics-test-$run topic=metrics.test.$run
retry_topic=$topic.retry dead_topic=$topic.dead
brokers=$MXSIFT_TEST_BROKERS redis=$MXSIFT_TEST_REDIS
# Nothing from the caller's environment may leak into the configuration.
unset MXSIFT_CONFIG MXSIFT_REDIS MXSIFT_BROKERS MXSIFT_DNS MXSIFT_HELO MXSIFT_MAIL_FROM \
	MXSIFT_SMTP_PORT MXSIFT_TLS MXSIFT_LOG_LEVEL MXSIFT_LOG_ADDRESSES MXSIFT_TOPIC MXSIFT_GROUP
fleet_init
# set -e ends the test at a failed command: say where
trap 'echo "FAIL: test_metrics.sh:$LINENO: a command failed (exit $?)" >&2' ERR

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

# Postfix's log from here on is this test's (RESOURCE_LOCK postfix)
maillog=$MXSIFT_TEST_POSTFIX_LOG
logstart=$(($(stat -c %s "$maillog" 2>/dev/null || echo 0) + 1))

# ---- two workers from the config file ---------------------------------------------
start_worker() {
	MXSIFT_WORKER_GROUP=$group "$worker" --config "$tmp/mxsift.conf" >"$tmp/w$1.log" 2>&1 &
	wpid[$1]=$!
}
port_of() {
	sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$tmp/w$1.log" | sed -n 1p
}
partitions_of() {
	kcat -b "$brokers" -L -t "$1" 2>/dev/null |
		sed -n 's/.*with \([0-9]*\) partitions.*/\1/p' | sed -n 1p
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
	st=$(grep -o "mxsift_verdicts_total{status=\"[a-z]*\",reason=\"$r\"}" "$tmp/m1.txt" | sed -n 1p)
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
[ "$rcpts" -ge $((accepted + notfound)) ] || fail "RCPTs $rcpts < probed $((accepted + notfound))"
[ "$rcpts" -gt "$conns" ] || fail "RCPTs $rcpts not above connections $conns: no reuse?"
# per worker: the reuse ratio is its RCPTs over its connections, and the
# sessions open are its connections not yet ended
for i in 1 2; do
	awk -v w="worker $i" '
		$1 == "mxsift_smtp_rcpt_total" { r = $2 }
		$1 == "mxsift_smtp_connections_opened_total" { c = $2 }
		$1 == "mxsift_smtp_sessions_ended_total" { e = $2 }
		$1 == "mxsift_smtp_sessions_open" { o = $2; seen_o = 1 }
		$1 == "mxsift_smtp_recipients_per_connection" { q = $2; seen_q = 1 }
		END {
			if (!seen_q || !seen_o) { print w ": no recipients per connection or sessions open"; exit 1 }
			want = c > 0 ? r / c : 0; d = q - want
			if (d < -1e-9 || d > 1e-9) {
				printf "%s: recipients per connection %s, RCPTs/connections = %d/%d\n", w, q, r, c; exit 1 }
			if (o != c - e) { printf "%s: sessions open %s, connections %d - ended %d\n", w, o, c, e; exit 1 }
		}' "$tmp/m$i.txt" >"$tmp/ratio$i" || fail "$(cat "$tmp/ratio$i")"
done
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
grep 'level=info' "$tmp"/w1.log "$tmp"/w2.log | grep '@' >/dev/null && fail "an address in an info-level log line"

# ---- the scrape against Postfix's own log ----------------------------------------------
# Every session is over (the workers QUIT at shutdown); postlogd writes
# asynchronously: wait until every connect has its disconnect.
pc=0 pd=0
for _ in $(seq 1 50); do
	tail -c +"$logstart" "$maillog" >"$tmp/maillog"
	pc=$(grep -c 'smtpd\[[0-9]*\]: connect from' "$tmp/maillog" || true)
	pd=$(grep -c 'smtpd\[[0-9]*\]: disconnect from' "$tmp/maillog" || true)
	[ "$pc" -gt 0 ] && [ "$pc" -eq "$pd" ] && break
	sleep 0.1
done
[ "$pc" -gt 0 ] && [ "$pc" -eq "$pd" ] || fail "Postfix's log: $pc connects, $pd disconnects"
dead=$(grep -h 'msg="smtp session end"' "$tmp/w1.log" "$tmp/w2.log" |
	grep -c ' host=mx-dead\.failover\.test ' || true)
[ "$dead" -eq 1 ] || fail "attempts at failover.test's dead first MX: $dead, expected 1 (one failover session)"
[ "$conns" -eq $((pc + dead)) ] ||
	fail "connections opened $conns, Postfix saw $pc connections (+ $dead to the dead MX)"
# "rcpt=N" (all accepted) or "rcpt=ACCEPTED/SENT"
prcpt=$(grep 'disconnect from' "$tmp/maillog" | grep -o ' rcpt=[0-9/]*' | sed 's|.*[=/]||' |
	awk '{ n += $1 } END { print n + 0 }') || true
[ "$rcpts" -eq "$prcpt" ] || fail "RCPTs $rcpts, Postfix's disconnect lines count $prcpt"

# ---- phase 2: a held lane, a greylisted address -----------------------------------------
job2=metrics2-$run group2=metrics2-test-$run topic2=metrics2.test.$run
printf 'held@alpha.test\na2@alpha.test\na3@alpha.test\n' >"$tmp/users"
{
	echo "max-conns 20"
	echo "timeout 90"
	echo "users $tmp/users"
	echo 'rcpt ^grey@alpha\.test$ 450 4.7.1 <grey@alpha.test>: Recipient address rejected: Greylisted'
	echo "conn 1"
	echo "reply 220 mx1.alpha.test ESMTP holding"
	echo "expect EHLO"
	echo 'reply 250-mx1.alpha.test\r\n250 ENHANCEDSTATUSCODES'
	echo "expect MAIL FROM:"
	echo "reply 250 2.1.0 Ok"
	echo "expect RCPT TO:<held@alpha.test>"
	echo "pause 6000"
	echo "reply 250 2.1.5 Ok"
	echo "expect QUIT"
	echo "reply 221 2.0.0 Bye"
	echo "close"
	echo "conn *"
	echo "serve"
} >"$tmp/hold.scn"
printf 'alpha.test rate=5 rcpt_per_session=1\n' >"$tmp/lanes.conf"
fleet_smtpd_start "$smtpd" "$MXSIFT_TEST_MX_IP" "$tmp/hold.scn" hold -e "$tmp/hold.events"
MXSIFT_WORKER_GROUP=$group2 "$worker" --config "$tmp/mxsift.conf" --topic "$topic2" \
	--retry-topic "$topic2.retry" --dead-topic "$topic2.dead" --smtp-port "$smtp_port" \
	--lanes "$tmp/lanes.conf" --max-tasks 1 --no-catch-all --retry-schedule 1s \
	>"$tmp/w3.log" 2>&1 &
wpid[3]=$!
topic=$topic2 fleet_wait_group 3
p3=$(port_of 3)
[ -n "$p3" ] || fail "worker 3: no metrics port"
printf 'email\nheld@alpha.test\ngrey@alpha.test\na2@alpha.test\na3@alpha.test\n' >"$tmp/list2.csv"
MXSIFT_CONFIG=$tmp/mxsift.conf "$mxsift" submit --job "$job2" --topic "$topic2" --batch 1 \
	"$tmp/list2.csv" >"$tmp/submit2.out" 2>"$tmp/submit2.err" ||
	fail "mxsift submit (phase 2) failed: $(cat "$tmp/submit2.err")"
grep -q ' 4 tasks (' "$tmp/submit2.out" || fail "phase 2: not 4 tasks: $(cat "$tmp/submit2.out")"
# val SERIES FILE: the value of one series of a scrape ("none" when absent)
val() { awk -v s="$1" 'index($0, s " ") == 1 { print $NF; f = 1 } END { if (!f) print "none" }' "$2"; }
scrape3() { curl -sf "http://127.0.0.1:$p3/metrics" -o "$tmp/m3.txt" || fail "scrape of worker 3 failed"; }
expect3() {   # expect3 SERIES VALUE WHAT
	local got
	got=$(val "$1" "$tmp/m3.txt")
	[ "$got" = "$2" ] || fail "phase 2, $3: $1 = '$got', expected $2"
}
# until the first session is up with its recipient (the server holds the
# RCPT's reply for 6 s; RCPTs are counted as their replies come)
for _ in $(seq 1 200); do
	scrape3
	[ "$(val mxsift_smtp_sessions_open "$tmp/m3.txt")" = 1 ] &&
		[ "$(val mxsift_lane_queue_depth "$tmp/m3.txt")" = 1 ] && break
	sleep 0.05
done
grep -E '^mxsift_(smtp_sessions_open|smtp_rcpt_total|lane|kafka_consumer_lag_all)' "$tmp/m3.txt" |
	sed 's/^/held: /' || true
expect3 mxsift_smtp_sessions_open 1 "RCPT held"
expect3 mxsift_smtp_rcpt_total 0 "RCPT held (not answered yet)"
expect3 mxsift_lanes 1 "RCPT held"
expect3 'mxsift_lane_connections{mx_domain="alpha.test"}' 1 "RCPT held"
expect3 'mxsift_lane_rate{mx_domain="alpha.test"}' 5 "RCPT held: the lane's current rate"
expect3 'mxsift_lane_rule_rate{mx_domain="alpha.test"}' 5 "RCPT held"
expect3 mxsift_lane_queue_depth 1 "RCPT held"
lag=$(val mxsift_kafka_consumer_lag_all "$tmp/m3.txt")
[ "$lag" != none ] && [ "$lag" -ge 1 ] && [ "$lag" -le 3 ] ||
	fail "phase 2: consumer lag '$lag' while 3 tasks wait behind --max-tasks 1, expected 1..3"
job=$job2 fleet_wait_done 40
s2=$(job=$job2 fleet_status)
[ "$(jq -c '.reason' <<<"$s2")" = '{"accepted":3,"greylisted":1}' ] ||
	fail "phase 2 verdicts: $(jq -c . <<<"$s2")"
[ "$(jq .retried <<<"$s2")" -eq 1 ] || fail "phase 2: retried $(jq .retried <<<"$s2"), expected 1"
# idle sessions close after 2 s; by then the last Redis answer is in too
for _ in $(seq 1 100); do
	scrape3
	[ "$(val mxsift_smtp_sessions_open "$tmp/m3.txt")" = 0 ] && break
	sleep 0.1
done
expect3 mxsift_smtp_sessions_open 0 "idle sessions closed"
expect3 mxsift_retries_scheduled_total 1 "after the job"
expect3 'mxsift_verdicts_total{status="unknown",reason="greylisted"}' 1 "after the job"
expect3 'mxsift_verdicts_total{status="deliverable",reason="accepted"}' 3 "after the job"
expect3 mxsift_kafka_consumer_lag_all 0 "after the job"
expect3 mxsift_lane_queue_depth 0 "after the job"
c3=$(val mxsift_smtp_connections_opened_total "$tmp/m3.txt")
fleet_stop_workers
# the server writes its events at exit
kill -TERM "$spid" 2>/dev/null || true
wait "$spid" 2>/dev/null || true
sconns=$(grep -c ' connect$' "$tmp/hold.events" || true)
[ "$c3" = "$sconns" ] || fail "phase 2: connections opened $c3, the server accepted $sconns"
[ "$sconns" -ge 5 ] || fail "phase 2: $sconns connections, expected >= 5 (one RCPT per session)"
grep -q ' stats connections='"$sconns"' .* replies_503=0$' "$tmp/hold.events" ||
	fail "phase 2: the server's stats: $(tail -n 1 "$tmp/hold.events")"

# ---- phase 3: a fresh worker on a finished topic has no lag ---------------------------------
# Nothing is left to consume, so it consumes nothing: its partitions have no
# position.  The lag then counts from the group's committed offset, which
# librdkafka's statistics give; it counted from the low watermark before,
# and this worker reported every message ever written to topic2 as lag.
MXSIFT_WORKER_GROUP=$group2 "$worker" --config "$tmp/mxsift.conf" --topic "$topic2" \
	--retry-topic "$topic2.retry" --dead-topic "$topic2.dead" -X statistics.interval.ms=300 \
	>"$tmp/w4.log" 2>&1 &
wpid[4]=$!
topic=$topic2 fleet_wait_group 4
p4=$(port_of 4)
[ -n "$p4" ] || fail "worker 4: no metrics port"
series=0
for _ in $(seq 1 100); do
	curl -sf "http://127.0.0.1:$p4/metrics" -o "$tmp/m4.txt" || fail "scrape of worker 4 failed"
	lag4=$(val mxsift_kafka_consumer_lag_all "$tmp/m4.txt")
	[ "$lag4" = 0 ] || fail "phase 3: a fresh worker on a finished topic reports lag $lag4: $(grep '^mxsift_kafka_consumer_lag' "$tmp/m4.txt")"
	series=$(grep -c "^mxsift_kafka_consumer_lag{topic=\"$topic2\",partition=\"[0-9]*\"} 0$" "$tmp/m4.txt" || true)
	[ "$series" -eq "$(partitions_of "$topic2")" ] && break
	sleep 0.1
done
[ "$series" -eq "$(partitions_of "$topic2")" ] ||
	fail "phase 3: $series of $(partitions_of "$topic2") partitions of $topic2 have a lag series (from the statistics): $(grep '^mxsift_kafka_consumer_lag' "$tmp/m4.txt")"
grep -q 'msg="task done"' "$tmp/w4.log" && fail "phase 3: worker 4 did a task on a finished topic"
fleet_stop_workers

echo "PASS: metrics of 2 workers match job $job ($worker_sum worker verdicts, $tasks tasks," \
	"$conns connections = Postfix's $pc + $dead at the dead MX, $rcpts RCPTs); held lane:" \
	"rate 5, lag $lag, 1 retry scheduled, $c3 connections; a fresh worker: lag 0 on $series partitions"
