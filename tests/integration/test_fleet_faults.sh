#!/usr/bin/env bash
# test_fleet_faults.sh — fault injection on the fleet: a job of several
# hundred addresses (four MX lanes) is submitted to a private mock Kafka
# cluster (3 brokers, control FIFO) and worked by two or three mxsift-worker
# processes against mxsift-smtp-sink (a fast SMTP server with a fixed reply
# latency, on the world's MX address and a port of its own) and a private
# redis-server (appendonly, fsync always), while one fault is injected
# mid-job:
#
#   kill9        kill -9 of a worker; a third worker takes over
#   broker       two of the three brokers down for 4 s, then up again
#   kafka_errors Produce errors during submit, Fetch and OffsetCommit errors
#                mid-job, then a graceful stop of one worker (its last
#                commit meets the errors) and a new worker
#   redis        redis-server killed (kill -9) mid-job and restarted 3 s later
#                on the same port with the same data; the workers must pause
#   submit_kill  the coordinator killed (kill -9) mid-submit (broker latency
#                keeps it in flight), then re-run with --resume
#   caps         no fault: workers with --max-tasks 2 --max-inflight 15 must
#                pause and resume consumption, and their high-water marks stay
#                within the caps (tasks) and one message past them (recipients
#                plus unwritten verdicts)
#   sessions     no fault: workers with --max-sessions 1 work on one MX domain
#                at a time (peak_lanes 1); SMTP connections per worker stay at
#                1 plus one being recycled (QUIT overlapping its successor), so
#                the SMTP server never sees more than 4 at once
#
# Every scenario asserts: the job completes; every address has exactly one
# verdict and it is the expected one (ok-* accepted, the rest unknown
# mailboxes, missing.test no mail server); done == total == the number of
# fields in Redis; the counts per status and reason are exact and add up;
# every worker still running stops with exit 0 on SIGTERM.
#
# usage: test_fleet_faults.sh SCENARIO MXSIFT MXSIFT_WORKER MXSIFT_SMTP_SINK
set -euo pipefail
scenario=$1 mxsift=$2 worker=$3 sink=$4
. "$(dirname "$0")/test_fleet_lib.sh"
fleet_need MXSIFT_TEST_DNS MXSIFT_TEST_MX_IP
command -v redis-server >/dev/null || { echo "SKIP: redis-server not installed"; exit 77; }
fleet_init

run=$(date +%s)-$$-$RANDOM
group=faults-$run job=faults-$scenario-$run
dns=$MXSIFT_TEST_DNS
naddr=${MXSIFT_FAULT_ADDRESSES:-480}

fleet_redis_start
fleet_kafka_start 4

# ---- the SMTP side: every RCPT costs one 15 ms round trip --------------------
"$sink" -l "$MXSIFT_TEST_MX_IP:0" -d 15 -a ok- -T 120 -s "$tmp/sink.stats" \
	>"$tmp/sink.out" 2>"$tmp/sink.err" &
fleet_pids+=($!)
smtp_port=
for _ in $(seq 1 100); do
	smtp_port=$(sed -n 's/^listen .*:\([0-9]*\)$/\1/p' "$tmp/sink.out" | head -n 1)
	[ -n "$smtp_port" ] && grep -q '^ready' "$tmp/sink.out" && break
	sleep 0.05
done
[ -n "$smtp_port" ] || fail "the SMTP sink did not start: $(cat "$tmp/sink.err")"

# ---- the list and what each address must end as --------------------------------
domains=(alpha.test beta.test gamma.test delta.test implicit.test)
{
	echo email
	for i in $(seq 1 "$naddr"); do
		d=${domains[$((i % ${#domains[@]}))]}
		if [ $((i % 3)) -eq 0 ]; then echo "ok-$i@$d"; else echo "no-$i@$d"; fi
	done
	echo "x1@missing.test"
	echo "x2@missing.test"
} >"$tmp/list.csv"
tail -n +2 "$tmp/list.csv" | awk '{
	if ($0 ~ /@missing\.test$/) v = "undeliverable/no_mail_server"
	else if ($0 ~ /^ok-/) v = "deliverable/accepted"
	else v = "undeliverable/mailbox_not_found"
	print $0 "\t" v }' | sort >"$tmp/expected"
total=$(wc -l <"$tmp/expected")

submit() {
	"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
		--batch 10 --quiet "$@" "$tmp/list.csv"
}

wargs=()
[ "$scenario" = caps ] && wargs=(--max-tasks 2 --max-inflight 15)
[ "$scenario" = sessions ] && wargs=(--max-sessions 1)
fleet_worker 1 "${wargs[@]}"
fleet_worker 2 "${wargs[@]}"
fleet_wait_group 1 2

case $scenario in
kill9)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_progress $((total / 5)) 30
	kill -KILL "${wpid[1]}"
	wait "${wpid[1]}" 2>/dev/null || true
	unset 'wpid[1]'
	d=$(jq .done <<<"$(fleet_status)")
	[ "$d" -lt "$total" ] || fail "the job was done before the kill: raise MXSIFT_FAULT_ADDRESSES"
	echo "killed worker 1 at $d of $total"
	fleet_worker 3
	fleet_wait_done 50
	;;
caps | sessions)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_done 50
	;;
broker)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_progress $((total / 5)) 30
	fleet_kafka_ctl broker-down 1
	fleet_kafka_ctl broker-down 2
	d=$(jq .done <<<"$(fleet_status)")
	echo "brokers 1 and 2 down at $d of $total"
	sleep 4
	fleet_kafka_ctl broker-up 1
	fleet_kafka_ctl broker-up 2
	fleet_wait_done 50
	;;
kafka_errors)
	# API keys: Produce 0, Fetch 1, OffsetCommit 8; errors 7
	# REQUEST_TIMED_OUT and 6 NOT_LEADER_FOR_PARTITION (both retriable)
	fleet_kafka_ctl push-errors 0 7 3
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_progress $((total / 5)) 30
	fleet_kafka_ctl push-errors 1 6 5
	fleet_kafka_ctl push-errors 8 7 5
	kill -TERM "${wpid[2]}"
	rc=0
	wait "${wpid[2]}" || rc=$?
	unset 'wpid[2]'
	[ "$rc" -eq 0 ] || fail "worker 2 exited $rc after SIGTERM"
	fleet_worker 3
	fleet_wait_done 50
	;;
redis)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_progress $((total / 5)) 30
	fleet_redis_kill
	sleep 3
	# Both workers noticed and stopped consuming; none has given up.
	for n in 1 2; do
		kill -0 "${wpid[$n]}" 2>/dev/null || fail "worker $n died while Redis was down"
		grep -q 'msg="pausing consumption".*redis_connected=0' "$tmp/w$n.log" ||
			fail "worker $n did not pause consumption while Redis was down"
	done
	fleet_redis_restart
	fleet_wait_done 50
	for n in 1 2; do
		grep -q 'msg="resuming consumption"' "$tmp/w$n.log" ||
			fail "worker $n did not resume consumption after Redis came back"
	done
	;;
submit_kill)
	# 300 ms per broker response keeps the coordinator in flight for seconds.
	fleet_kafka_ctl broker-rtt -1 300
	submit >"$tmp/submit1.out" 2>"$tmp/submit1.err" &
	spid=$!
	fleet_pids+=("$spid")
	port=${redis#redis://127.0.0.1:}
	for _ in $(seq 1 200); do
		[ "$(redis-cli -p "$port" hget "mxsift:job:$job:meta" state)" = planning ] && break
		sleep 0.02
	done
	sleep 0.5
	kill -KILL "$spid" 2>/dev/null || fail "the coordinator finished before it could be killed"
	wait "$spid" 2>/dev/null || true
	state=$(redis-cli -p "$port" hget "mxsift:job:$job:meta" state)
	[ "$state" = planning ] || fail "the killed coordinator left state '$state'"
	fleet_kafka_ctl broker-rtt -1 0
	# Without --resume the name is refused; with it the job is finished.
	submit >/dev/null 2>"$tmp/submit2.err" && fail "a second submit without --resume was accepted"
	submit --resume >"$tmp/submit3.out" 2>"$tmp/submit3.err" ||
		fail "mxsift submit --resume failed: $(cat "$tmp/submit3.err")"
	fleet_wait_done 50
	;;
*)
	echo "unknown scenario $scenario" >&2
	exit 2
	;;
esac

fleet_check_exact "$tmp/expected"
s=$(fleet_status)
[ "$(jq .dead <<<"$s")" -eq 0 ] || fail "dead letters: $s"
fleet_stop_workers
grep -h 'msg="worker stopped"' "$tmp"/w*.log | grep -v 'replies_503=0' && fail "a 503 reply"
if [ "$scenario" = caps ]; then
	for n in 1 2; do
		grep -q 'msg="pausing consumption" tasks=' "$tmp/w$n.log" &&
			grep -q 'msg="resuming consumption"' "$tmp/w$n.log" ||
			fail "worker $n never paused and resumed under --max-tasks 2"
		line=$(grep 'msg="worker stopped"' "$tmp/w$n.log")
		pt=$(sed 's/.* peak_tasks=\([0-9]*\).*/\1/' <<<"$line")
		pi=$(sed 's/.* peak_inflight=\([0-9]*\).*/\1/' <<<"$line")
		echo "worker $n: peak_tasks=$pt peak_inflight=$pi"
		[ "$pt" -le 2 ] || fail "worker $n had $pt tasks in progress (cap 2)"
		# one message (--batch 10) may arrive after the check that pauses
		[ "$pi" -le 25 ] || fail "worker $n had $pi recipients/verdicts in flight (cap 15 + 10)"
	done
fi
if [ "$scenario" = sessions ]; then
	for n in 1 2; do
		line=$(grep 'msg="worker stopped"' "$tmp/w$n.log")
		ps=$(sed 's/.* peak_sessions=\([0-9]*\).*/\1/' <<<"$line")
		pl=$(sed 's/.* peak_lanes=\([0-9]*\).*/\1/' <<<"$line")
		echo "worker $n: peak_sessions=$ps peak_lanes=$pl"
		[ "$pl" -eq 1 ] || fail "worker $n worked on $pl MX domains at once (cap 1)"
		[ "$ps" -le 2 ] || fail "worker $n had $ps SMTP sessions (cap 1, + 1 recycling)"
	done
	kill -USR1 "${fleet_pids[0]}"
	sleep 0.5
	peak=$(sed -n 's/^sessions_peak=//p' "$tmp/sink.stats")
	echo "SMTP server: sessions_peak=$peak"
	[ -n "$peak" ] && [ "$peak" -le 4 ] ||
		fail "the SMTP server saw $peak sessions at once (2 workers x (1 + 1 recycling))"
fi
echo "PASS: $scenario: $total verdicts exact, job complete"
