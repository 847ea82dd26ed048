#!/usr/bin/env bash
# test_fleet_greylist.sh — greylisting and other temporary answers through
# the retry topic, with two mxsift-worker processes on the world's Kafka
# mock and Redis, against the scripted SMTP server (mxsift-smtpd-script)
# listening where the world's DNS sends alpha.test and beta.test (the
# world's MX address, on a port of its own: --smtp-port).
#
# Phase 1, "greylisted, then deliverable": connection 1 answers RCPT with
# postgrey's 450 4.7.1, connection 2 (the retry, 3 s later) with 250.
# Asserts: the verdict is deliverable/accepted, written once; the job's
# retried counter is 1; the server saw exactly two RCPTs for the address,
# one per connection; the retry went through the retry topic (attempt=1
# task done line) while the first task finished at once (attempt=0).
#
# Phase 0, `mxsift check --max-wait`: the same schedule in-process.  With
# --max-wait 20s the greylisted address is asked again after 3 s and is
# deliverable; with --max-wait 2s the next attempt would start too late and
# the greylisting is the final answer (one connection, one RCPT).
#
# Phase 2, "temporary to the end": every connection answers 450.  The retry
# message is duplicated on the topic (a producer retry or a redone message
# does exactly that).  Asserts: after the last attempt of the schedule
# (3s,3s: three attempts) the verdict is final unknown/greylisted with
# "final after 3 attempts", done == total == 1, and retried == 2 (one per
# (address, attempt), the duplicate counted nowhere).
#
# Phase 3, "rate limited": connection 1 answers RCPT with 421 4.7.0 "try
# again later" (a rate limit: the engine pauses the lane and asks again),
# connection 2 with 250.  The worker's lane rule allows 4 RCPT/s.  Asserts:
# deliverable, and the job's backed_off counter (and `mxsift status`) shows
# the back-off; the worker's lane report (`mxsift status`, text and JSON)
# shows alpha.test under this worker's HOST:PID backed off, its rate below
# the rule's 4/s, and the report is gone once the worker has stopped.
#
# Then a Task of the job without a domain (two addresses) goes to the
# dead-letter topic: dead_lettered 1 (2 addresses).
#
# Every phase: the text status shows the retried, dead_lettered and
# backed_off lines with the JSON's numbers.
#
# Last, a big lane report seeded with redis-cli: the text status shows its
# paused and slowed lanes first, then the 20 deepest queues; JSON all.
#
# usage: test_fleet_greylist.sh MXSIFT MXSIFT_WORKER MXSIFT_SMTPD_SCRIPT
set -euo pipefail
mxsift=$1 worker=$2 smtpd=$3
. "$(dirname "$0")/test_fleet_lib.sh"
fleet_need MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS MXSIFT_TEST_MX_IP
fleet_init

run=$(date +%s)-$$-$RANDOM
group=grey-$run topic=grey.$run retry_topic=grey.$run.retry dead_topic=grey.$run.dead
brokers=$MXSIFT_TEST_BROKERS redis=$MXSIFT_TEST_REDIS dns=$MXSIFT_TEST_DNS
mx_ip=$MXSIFT_TEST_MX_IP

# start_server SCRIPT NAME: the scripted server on the MX address, port 0
start_server() {
	"$smtpd" -a "$mx_ip" -p 0 -T 50 -t "$tmp/$2.transcript" "$1" >"$tmp/$2.port" \
		2>"$tmp/$2.err" &
	spid=$!
	fleet_pids+=("$spid")
	smtp_port=
	for _ in $(seq 1 100); do
		smtp_port=$(awk '$1 == "port" { print $2 }' "$tmp/$2.port" 2>/dev/null) || true
		[ -n "$smtp_port" ] && return 0
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	fail "scripted server did not start: $(cat "$tmp/$2.err")"
}

# stop_server: SIGTERM, wait (the transcript is written at exit)
stop_server() {
	kill -TERM "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
}

# text_counts: the text status's retried, dead_lettered and backed_off
# lines agree with the JSON's counters
text_counts() {
	local s t
	s=$(fleet_status) || fail "mxsift status --format json failed"
	t=$("$mxsift" status --job "$job" --redis "$redis") || fail "mxsift status failed"
	grep -Eq "^retried +$(jq .retried <<<"$s")\$" <<<"$t" &&
		grep -Eq "^dead_lettered +$(jq .dead <<<"$s") \($(jq .dead_addresses <<<"$s") addresses\)\$" <<<"$t" &&
		grep -Eq "^backed_off +$(jq .backed_off <<<"$s")\$" <<<"$t" ||
		fail "text status counters differ from JSON: $t"
}

# ---- phase 1: greylisted, then deliverable ------------------------------------
cat >"$tmp/grey.scn" <<'EOF'
max-conns 2
timeout 50
conn 1
reply 220 mx1.alpha.test ESMTP greylisting test
expect EHLO
reply 250-mx1.alpha.test\r\n250 ENHANCEDSTATUSCODES
expect MAIL FROM:
reply 250 2.1.0 Ok
expect RCPT TO:<grey@alpha.test>
reply 450 4.7.1 <grey@alpha.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/alpha.test.html
expect QUIT
reply 221 2.0.0 Bye
close
conn 2
reply 220 mx1.alpha.test ESMTP greylisting test
expect EHLO
reply 250-mx1.alpha.test\r\n250 ENHANCEDSTATUSCODES
expect MAIL FROM:
reply 250 2.1.0 Ok
expect RCPT TO:<grey@alpha.test>
reply 250 2.1.5 Ok
# the engine's catch-all check (a random local part) on the same session
expect RSET
reply 250 2.0.0 Ok
expect MAIL FROM:
reply 250 2.1.0 Ok
expect RCPT TO:
reply 550 5.1.1 Recipient address rejected: User unknown
expect QUIT
reply 221 2.0.0 Bye
close
EOF
# ---- phase 0: mxsift check --max-wait ------------------------------------------
printf 'email\ngrey@alpha.test\n' >"$tmp/grey0.csv"
# check_grey NAME MAX_WAIT: mxsift check against a fresh greylisting server
check_grey() {
	start_server "$tmp/grey.scn" "$1"
	"$mxsift" check "$tmp/grey0.csv" --format jsonl -o "$tmp/$1.jsonl" --dns "$dns" \
		--helo probe.mxsift.test --mail-from verify@mxsift.test --smtp-port "$smtp_port" \
		--max-wait "$2" --retry-schedule 3s --quiet 2>"$tmp/$1.err" ||
		fail "mxsift check --max-wait $2 failed: $(cat "$tmp/$1.err")"
	stop_server
}
check_grey check 20s
jq -e 'select(.address == "grey@alpha.test" and .status == "deliverable" and .smtp_code == 250)' \
	"$tmp/check.jsonl" >/dev/null || fail "check --max-wait: not deliverable on retry: $(cat "$tmp/check.jsonl")"
[ "$(grep -c 'RCPT TO:<grey@alpha.test>' "$tmp/check.transcript")" -eq 2 ] ||
	fail "check --max-wait: expected 2 RCPTs: $(cat "$tmp/check.transcript")"
check_grey check2 2s
jq -e 'select(.status == "unknown" and .reason == "greylisted" and .smtp_code == 450)' \
	"$tmp/check2.jsonl" >/dev/null || fail "check --max-wait 2s: not final greylisted: $(cat "$tmp/check2.jsonl")"
[ "$(grep -c 'RCPT TO:' "$tmp/check2.transcript")" -eq 1 ] ||
	fail "check --max-wait 2s: asked again: $(cat "$tmp/check2.transcript")"

start_server "$tmp/grey.scn" grey

# Retry delays above the engine's idle close (2 s): each attempt is a new
# connection, as it is with real greylisting delays.
fleet_worker 1 --retry-schedule 3s,3s
fleet_worker 2 --retry-schedule 3s,3s
fleet_wait_group 1 2

job=grey1-$run
printf 'email\ngrey@alpha.test\n' >"$tmp/grey1.csv"
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" "$tmp/grey1.csv" >"$tmp/submit1.out" 2>"$tmp/submit1.err" ||
	fail "mxsift submit (phase 1) failed"
fleet_wait_done 30
printf 'grey@alpha.test\tdeliverable/accepted\n' >"$tmp/exp1"
fleet_check_exact "$tmp/exp1"
s=$(fleet_status)
[ "$(jq .retried <<<"$s")" -eq 1 ] || fail "phase 1: retried $(jq .retried <<<"$s"), expected 1"
[ "$(jq .dead <<<"$s")" -eq 0 ] || fail "phase 1: a dead letter"
text_counts
jq -e 'select(.smtp_code == 250 and .enhanced_code == "2.1.5")' "$tmp/export.jsonl" >/dev/null ||
	fail "phase 1: the verdict lacks the 250 2.1.5 evidence"
stop_server
grep 'RCPT TO' "$tmp/grey.transcript" >"$tmp/grey.rcpts" || true
[ "$(grep -c 'RCPT TO:<grey@alpha.test>' "$tmp/grey.rcpts")" -eq 2 ] ||
	fail "phase 1: expected 2 RCPTs for the address: $(cat "$tmp/grey.transcript")"
grep -q '^C1> RCPT TO:<grey@alpha.test>' "$tmp/grey.rcpts" &&
	grep -q '^C2> RCPT TO:<grey@alpha.test>' "$tmp/grey.rcpts" ||
	fail "phase 1: the retry did not come on a second connection: $(cat "$tmp/grey.transcript")"
cat "$tmp"/w*.log >"$tmp/workers.log"
grep -q "msg=\"task done\" job=$job topic=$topic .*attempt=0 .*retried=1" "$tmp/workers.log" ||
	fail "phase 1: no first attempt that sent the address to the retry topic"
grep -q "msg=\"task done\" job=$job topic=$retry_topic .*attempt=1 .*deliverable=1" \
	"$tmp/workers.log" || fail "phase 1: no retry task from $retry_topic that found it deliverable"

# ---- phase 2: temporary to the end, with a duplicated retry message --------------
# Every connection the same: RCPT gets 450; a second probe on the same
# session (RSET) or the QUIT gets 250 (the client closes either way).
{
	echo "max-conns 20"
	echo "timeout 50"
	echo "conn *"
	echo "reply 220 mx.beta.test ESMTP"
	echo "expect EHLO"
	echo 'reply 250-mx.beta.test\r\n250 ENHANCEDSTATUSCODES'
	for _ in 1 2 3 4; do
		echo "expect MAIL FROM:"
		echo "reply 250 2.1.0 Ok"
		echo "expect RCPT TO:"
		echo "reply 450 4.2.0 <gone@beta.test>: Recipient address rejected: Greylisted"
		echo "expect"
		echo "reply 250 2.0.0 Ok"
	done
} >"$tmp/temp.scn"
start_server "$tmp/temp.scn" temp
# the workers keep their --smtp-port: start two new ones on the new port
fleet_stop_workers
# new topics too: a new group would read phase 1's messages again
group=grey2-$run topic=grey2.$run retry_topic=grey2.$run.retry dead_topic=grey2.$run.dead
fleet_worker 3 --retry-schedule 3s,3s
fleet_worker 4 --retry-schedule 3s,3s
fleet_wait_group 3 4

job=grey2-$run
printf 'email\ngone@beta.test\n' >"$tmp/grey2.csv"
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" "$tmp/grey2.csv" >"$tmp/submit2.out" 2>"$tmp/submit2.err" ||
	fail "mxsift submit (phase 2) failed"
# Duplicate the first retry message (attempt 1) as soon as it is on the topic.
# It is the one made from the task topic's message (mxsift-source): on a
# slow machine attempt 2 (made from the retry topic's) may be there already.
dup=
for _ in $(seq 1 100); do
	if kcat -b "$brokers" -C -t "$retry_topic" -o beginning -e -q -f '%h\n' 2>/dev/null |
		grep -q "mxsift-job=$job"; then
		kcat -b "$brokers" -C -t "$retry_topic" -o beginning -e -q -f '%k\t%p\t%o\t%h\n' \
			>"$tmp/retry.idx" 2>/dev/null
		read -r key part off _ < <(grep -F "mxsift-job=$job" "$tmp/retry.idx" |
			grep -F "mxsift-source=$topic/" | sed -n 1p)
		[ -n "$off" ] || fail "phase 2: no attempt-1 retry message: $(cat "$tmp/retry.idx")"
		kcat -b "$brokers" -C -t "$retry_topic" -p "$part" -o "$off" -c 1 -e -q -D '' \
			-f '%s' >"$tmp/retry.msg" 2>/dev/null
		kcat -b "$brokers" -P -t "$retry_topic" -k "$key" -p "$part" "$tmp/retry.msg" ||
			fail "cannot duplicate the retry message"
		dup=1
		break
	fi
	sleep 0.1
done
[ -n "$dup" ] || fail "phase 2: no retry message for $job on $retry_topic"
fleet_wait_done 40
# Both copies run their whole course (the copy may have been made after the
# original's attempt 2 started): two attempt-2 tasks done, then the counts.
for _ in $(seq 1 300); do
	n2=$(cat "$tmp"/w3.log "$tmp"/w4.log |
		grep -c "msg=\"task done\" job=$job topic=$retry_topic .*attempt=2 " || true)
	[ "$n2" -ge 2 ] && break
	sleep 0.1
done
[ "$n2" -ge 2 ] || fail "phase 2: the duplicated retry message did not run its course"
printf 'gone@beta.test\tunknown/greylisted\n' >"$tmp/exp2"
fleet_check_exact "$tmp/exp2"
s=$(fleet_status)
[ "$(jq .retried <<<"$s")" -eq 2 ] || fail "phase 2: retried $(jq .retried <<<"$s"), expected 2"
text_counts
jq -e 'select(.detail == "final after 3 attempts" and .smtp_code == 450)' \
	"$tmp/export.jsonl" >/dev/null || fail "phase 2: not a final 450 after 3 attempts: $(cat "$tmp/export.jsonl")"
# Both copies were worked on: the duplicate changed no count.
cat "$tmp"/w3.log "$tmp"/w4.log >"$tmp/workers2.log"
[ "$(grep -c "msg=\"task done\" job=$job topic=$retry_topic .*attempt=1 " "$tmp/workers2.log")" -ge 2 ] ||
	fail "phase 2: the duplicated retry message was not processed twice"
fleet_stop_workers
stop_server

# ---- phase 3: a rate limit backs the lane off -----------------------------------
# connection 1: 421 and the server closes; connection 2 as in phase 1
{
	cat <<'EOF'
max-conns 2
timeout 50
conn 1
reply 220 mx1.alpha.test ESMTP rate limit test
expect EHLO
reply 250-mx1.alpha.test\r\n250 ENHANCEDSTATUSCODES
expect MAIL FROM:
reply 250 2.1.0 Ok
expect RCPT TO:<grey@alpha.test>
reply 421 4.7.0 mx1.alpha.test Error: too many connections, try again later
close
EOF
	sed -n '/^conn 2$/,$p' "$tmp/grey.scn"
} >"$tmp/rate.scn"
start_server "$tmp/rate.scn" rate
group=grey3-$run topic=grey3.$run retry_topic=grey3.$run.retry dead_topic=grey3.$run.dead
printf '* rate=4 burst=4\n' >"$tmp/rate.lanes"
fleet_worker 5 --lanes "$tmp/rate.lanes"
fleet_wait_group 5
wid=$(hostname):${wpid[5]}
job=grey3-$run
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" "$tmp/grey1.csv" >"$tmp/submit3.out" 2>"$tmp/submit3.err" ||
	fail "mxsift submit (phase 3) failed"
fleet_wait_done 30
printf 'grey@alpha.test\tdeliverable/accepted\n' >"$tmp/exp3"
fleet_check_exact "$tmp/exp3"
s=$(fleet_status)
[ "$(jq .backed_off <<<"$s")" -ge 1 ] || fail "phase 3: backed_off $(jq .backed_off <<<"$s"), expected >= 1"
grep -Eq '^backed_off +[1-9]' <<<"$("$mxsift" status --job "$job" --redis "$redis")" ||
	fail "phase 3: text status does not show the back-off"
text_counts
# The lane report: alpha.test, this worker, slower than its rule (halved
# to 2/s by the 421, a step back up per answer since), within a report
# interval (5 s; a change is reported within a second).
lane=
for _ in $(seq 1 100); do
	lane=$(fleet_status | jq -c --arg w "$wid" \
		'.workers[]? | select(.id == $w) | .lanes[] | select(.mx_domain == "alpha.test")') || lane=
	[ -n "$lane" ] && break
	sleep 0.1
done
[ -n "$lane" ] || fail "phase 3: no lane report for alpha.test from $wid: $(fleet_status)"
jq -e '.rule_rate == 4 and .rate > 0 and .rate < 4 and .backoffs >= 1 and
	(.state == "paused" or .state == "slowed") and .max_sessions == 1' <<<"$lane" >/dev/null ||
	fail "phase 3: lane report not backed off below the rule: $lane"
"$mxsift" status --job "$job" --redis "$redis" >"$tmp/status3.txt" || fail "phase 3: status failed"
grep -Eq '^workers +[1-9]' "$tmp/status3.txt" && grep -Eq '^lanes +[1-9][0-9]* \([1-9][0-9]* backed off' "$tmp/status3.txt" ||
	fail "phase 3: text status has no workers/lanes lines: $(cat "$tmp/status3.txt")"
# the row: WORKER MX_DOMAIN RATE RULE QUEUED SESSIONS BACKOFF
awk -v w="$wid" '$1 == w && $2 == "alpha.test" && $4 == "4/s" && $3 ~ /\/s$/ && $3 + 0 < 4 &&
	($7 == "slowed," || $7 == "paused") { ok = 1 } END { exit !ok }' "$tmp/status3.txt" ||
	fail "phase 3: text status does not show alpha.test backed off below 4/s: $(cat "$tmp/status3.txt")"
# A Task of this job that cannot be processed (no domain), hand-encoded
# protobuf: job = 1, addresses = 5 (each an Address, address = 1).
pb() { printf "\\x$(printf %02x "$1")\\x$(printf %02x "${#2}")%s" "$2"; }
{
	pb 10 "$job"
	pb 42 "$(pb 10 a@alpha.test)"
	pb 42 "$(pb 10 b@alpha.test)"
} >"$tmp/nodomain.msg"
kcat -b "$brokers" -P -t "$topic" -k alpha.test "$tmp/nodomain.msg" || fail "cannot produce the bad Task"
for _ in $(seq 1 100); do
	[ "$(fleet_status | jq .dead)" -ge 1 ] && break
	sleep 0.1
done
s=$(fleet_status)
[ "$(jq .dead <<<"$s")" -eq 1 ] && [ "$(jq .dead_addresses <<<"$s")" -eq 2 ] ||
	fail "phase 3: the bad Task is not counted as 1 dead letter of 2 addresses: $s"
text_counts
grep -q '^dead_lettered  1 (2 addresses)$' <<<"$("$mxsift" status --job "$job" --redis "$redis")" ||
	fail "phase 3: text status does not show the dead letter"
fleet_stop_workers
# a stopped worker withdraws its report
[ "$(fleet_status | jq --arg w "$wid" '[.workers[]? | select(.id == $w)] | length')" -eq 0 ] ||
	fail "phase 3: the stopped worker's lane report is still there: $(fleet_status)"

# ---- how status shows a big report ------------------------------------------------
# A report as a worker writes it (redis-cli): 25 lanes with work, one paused
# for another minute, one slowed.  Text: both backed-off lanes first, then
# the 20 deepest queues; JSON: all 27.  The lanes line says why the others
# are not shown: idle (a report of one idle lane lists none), or idle or past
# the 20 deepest queues.
rport=${redis#redis://127.0.0.1:} rport=${rport%%/*} fake=fake-$run:1
now=$(date +%s%3N)
args=()
for i in $(seq 1 25); do
	args+=("q$i.test" "rate=1 rule_rate=1 queued=$i sessions=1 max_sessions=1")
done
args+=(outlook.com "rate=0.125 rule_rate=0.5 queued=40 max_sessions=1 level=2 backoffs=3 paused_until=$((now + 60000))")
args+=(slow.test "rate=1.4 rule_rate=0 max_sessions=1 backoffs=1")
redis-cli -p "$rport" hset "mxsift:worker:$fake:lanes" '#worker' \
	"updated_at=$now interval_ms=5000 lanes=40 backed_off=2 shown=27" "${args[@]}" >/dev/null &&
	redis-cli -p "$rport" pexpire "mxsift:worker:$fake:lanes" 30000 >/dev/null &&
	redis-cli -p "$rport" zadd mxsift:workers "$now" "$fake" >/dev/null || fail "cannot seed a lane report"
"$mxsift" status --job "$job" --redis "$redis" | awk -v w="$fake" '$1 == w' >"$tmp/fake.rows"
nj=$(fleet_status | jq --arg w "$fake" '.workers[] | select(.id == $w) | .lanes | length')
redis-cli -p "$rport" del "mxsift:worker:$fake:lanes" >/dev/null
redis-cli -p "$rport" zrem mxsift:workers "$fake" >/dev/null
[ "$nj" = 27 ] || fail "status --format json: $nj lanes of the seeded report, want 27"
awk '{ print $2 }' "$tmp/fake.rows" | xargs >"$tmp/fake.order"
[ "$(cat "$tmp/fake.order")" = "outlook.com slow.test $(seq 25 -1 6 | sed 's/.*/q&.test/' | xargs)" ] ||
	fail "status rows: backed off first, then the 20 deepest queues: $(cat "$tmp/fake.order")"
grep -Eq '^ +[^ ]+ +outlook\.com +0\.125/s +0\.5/s +40 +0/1 +paused until [0-9:]{8}Z \((5[0-9]|60)s\), level 2, 3 pauses$' \
	"$tmp/fake.rows" || fail "status: the paused lane's row: $(cat "$tmp/fake.rows")"
grep -Eq '^ +[^ ]+ +slow\.test +1\.4/s +unlimited +0 +0/1 +slowed, 1 pause$' "$tmp/fake.rows" ||
	fail "status: the slowed lane's row: $(cat "$tmp/fake.rows")"
# The lanes line says why lanes are not shown.  In a database of its own (11),
# so that the lanes of other tests' workers on the world's Redis do not count:
# a worker with one idle lane (its report lists none), then the big report.
db11() { redis-cli -p "$rport" -n 11 "$@" >/dev/null; }
db11 hset "mxsift:job:lanes-$run:meta" total 0 state submitted
db11 hset "mxsift:worker:$fake:lanes" '#worker' "updated_at=$now interval_ms=5000 lanes=1 backed_off=0 shown=0"
db11 zadd mxsift:workers "$now" "$fake"
"$mxsift" status --job "lanes-$run" --redis "redis://127.0.0.1:$rport/11" >"$tmp/idle.status" ||
	fail "status of the idle lane's database failed"
grep -qx 'lanes          1 (0 backed off, 0 shown, 1 idle: nothing queued, no session)' "$tmp/idle.status" ||
	fail "status: the lanes line of one idle lane: $(grep '^lanes' "$tmp/idle.status")"
db11 hset "mxsift:worker:$fake:lanes" '#worker' \
	"updated_at=$now interval_ms=5000 lanes=40 backed_off=2 shown=27" "${args[@]}"
"$mxsift" status --job "lanes-$run" --redis "redis://127.0.0.1:$rport/11" >"$tmp/big.status" ||
	fail "status of the big report's database failed"
grep -qx 'lanes          40 (2 backed off, 22 shown; the others are idle or past the 20 deepest queues)' \
	"$tmp/big.status" || fail "status: the lanes line of the big report: $(grep '^lanes' "$tmp/big.status")"
redis-cli -p "$rport" -n 11 flushdb >/dev/null
stop_server
# (phase 3's bad Task is one, and only one)
[ "$(grep -c 'level=error msg="undecodable task" .*reason="no domain"' "$tmp/w5.log")" -eq 1 ] ||
	fail "phase 3: the bad Task was not reported once"
grep 'level=error' "$tmp"/w*.log | grep -v 'msg="undecodable task" .*reason="no domain"' &&
	fail "error lines in the worker logs"
echo "PASS: greylisted address deliverable on retry; temporary answer final after 3 attempts; duplicate retry counted once; status shows the backed-off lane below its rule and the dead letter"
