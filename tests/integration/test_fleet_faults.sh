#!/usr/bin/env bash
# test_fleet_faults.sh — fault injection on the fleet: a job of several
# hundred addresses (four MX lanes) is submitted to a private mock Kafka
# cluster (3 brokers, control FIFO) and worked by two or three mxsift-worker
# processes against mxsift-smtp-sink (a fast SMTP server with a fixed reply
# latency, on the world's MX address and a port of its own) and a private
# redis-server (appendonly, fsync always), while one fault is injected
# mid-job:
#
#   kill9        kill -9 of a worker; a third worker takes over.  The fault
#                must bite: some task message is done twice (by the killed
#                worker, its offset not committed, and again by its
#                successor), and the successor finds the verdicts the killed
#                worker wrote (Redis lookup before probing: "addresses already
#                answered") instead of probing them again
#   replay       no fault: the job done, a worker of a new consumer group
#                reads the task topic from the start (auto.offset.reset
#                earliest): every task message is done again with every
#                address skipped, and the SMTP server sees no new RCPT
#   broker       two of the three brokers down for 4 s, then up again
#   kafka_errors Produce errors during submit, Fetch and OffsetCommit errors
#                mid-job, then a graceful stop of one worker (its last
#                commit meets the errors) and a new worker.  Errors are
#                pushed per broker and the mock's error-count must show that
#                each kind was returned at least once
#   redis        redis-server killed (kill -9) mid-job and restarted 3 s later
#                on the same port with the same data; the workers must pause
#   redis_bound  the same outage with --max-inflight 20: Redis is killed just
#                after worker 1 resumed consuming, so it fills its buffer to
#                the bound during the outage (a pause at inflight >= 20 and no
#                resume until Redis is back); every worker logs the outage
#                and the held verdicts written when Redis returns; the
#                high-water mark stays within the bound plus one message
#   drain        SIGTERM drain: one worker (--grace 1, one task per address,
#                a 100 ms SMTP server) alone; SIGTERM mid-job.  Verdicts of
#                probes under way are written by that worker after its
#                "stopping" line (in Redis before anyone else runs), the
#                grace runs out with work left ("abandoning"), then a second
#                worker: it probes none of the addresses the first one wrote
#                (their offsets were stored), redoes the rest, and the SMTP
#                server sees one RCPT per address plus at most the one that
#                was in flight when the grace ran out
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
sink_ms=15
[ "$scenario" = drain ] && sink_ms=100
"$sink" -l "$MXSIFT_TEST_MX_IP:0" -d "$sink_ms" -a ok- -T 120 -s "$tmp/sink.stats" \
	>"$tmp/sink.out" 2>"$tmp/sink.err" &
fleet_pids+=($!)
smtp_port=
for _ in $(seq 1 100); do
	smtp_port=$(sed -n 's/^listen .*:\([0-9]*\)$/\1/p' "$tmp/sink.out" | sed -n 1p)
	[ -n "$smtp_port" ] && grep -q '^ready' "$tmp/sink.out" && break
	sleep 0.05
done
[ -n "$smtp_port" ] || fail "the SMTP sink did not start: $(cat "$tmp/sink.err")"
sink_pid=${fleet_pids[0]}
# sink_stat KEY: one of the sink's counters, now (SIGUSR1 rewrites the file)
sink_stat() {
	local before
	before=$(stat -c %Y%N "$tmp/sink.stats" 2>/dev/null || true)
	kill -USR1 "$sink_pid"
	for _ in $(seq 1 100); do
		[ "$(stat -c %Y%N "$tmp/sink.stats" 2>/dev/null || true)" != "$before" ] && break
		sleep 0.02
	done
	sleep 0.1
	sed -n "s/^$1=//p" "$tmp/sink.stats"
}

# ---- the list and what each address must end as --------------------------------
domains=(alpha.test beta.test gamma.test delta.test implicit.test)
# drain: one lane, one task per address, few enough to redo in seconds
[ "$scenario" = drain ] && { domains=(alpha.test); naddr=40; }
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

smtp_total=$(grep -vc '@missing\.test' <"$tmp/expected")
batch=10
[ "$scenario" = drain ] && batch=1
submit() {
	"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
		--batch "$batch" --quiet "$@" "$tmp/list.csv"
}

# rline N PATTERN: number of the last line of worker N's log matching PATTERN
rline() { grep -n -- "$2" "$tmp/w$1.log" | tail -n 1 | cut -d: -f1; }
# verdict_addrs N [FROM_LINE]: addresses worker N logged verdicts for (--log-addresses)
verdict_addrs() {
	tail -n +"${2:-1}" "$tmp/w$1.log" |
		sed -n "s/.*msg=\"verdict\" job=$job address=\"\([^\"]*\)\".*/\1/p" | sort
}

wargs=()
[ "$scenario" = caps ] && wargs=(--max-tasks 2 --max-inflight 15)
[ "$scenario" = sessions ] && wargs=(--max-sessions 1)
[ "$scenario" = redis_bound ] && wargs=(--max-inflight 20)
[ "$scenario" = kill9 ] && wargs=(--no-catch-all)
# kill9: worker 1 commits no offset before it is killed (auto-commit every
# 5 s could commit all it had done in the moment before the kill)
w1args=()
[ "$scenario" = kill9 ] && w1args=(-X auto.commit.interval.ms=600000)
[ "$scenario" = drain ] && wargs=(--no-catch-all --grace 1 --log-addresses)
fleet_worker 1 "${wargs[@]}" ${w1args[@]+"${w1args[@]}"}
if [ "$scenario" = drain ]; then
	fleet_wait_group 1   # alone: what is written before worker 2 starts is worker 1's
else
	fleet_worker 2 "${wargs[@]}"
	fleet_wait_group 1 2
fi

case $scenario in
kill9)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_progress $((total / 5)) 30
	# and worker 1 has done a task of its own: on a loaded machine the
	# other worker's lanes can reach a fifth of the job before worker 1
	# has fetched anything (seen: killed at 119 of 482 with nothing done)
	for _ in $(seq 1 600); do
		grep -q "msg=\"task done\" job=$job " "$tmp/w1.log" && break
		sleep 0.05
	done
	grep -q "msg=\"task done\" job=$job " "$tmp/w1.log" || fail "worker 1 did no task in 30 s"
	kill -KILL "${wpid[1]}"
	wait "${wpid[1]}" 2>/dev/null || true
	unset 'wpid[1]'
	d=$(jq .done <<<"$(fleet_status)")
	[ "$d" -lt "$total" ] || fail "the job was done before the kill: raise MXSIFT_FAULT_ADDRESSES"
	echo "killed worker 1 at $d of $total"
	fleet_worker 3 "${wargs[@]}"
	fleet_wait_done 50
	# The kill must have cost something: a task message that worker 1 had
	# done (verdicts written, offset stored but not yet committed) was
	# delivered again and done by another worker, and its addresses were
	# probed again (the SMTP server's count, one RCPT per probe).
	for n in 1 2 3; do
		sed -n "s/.*msg=\"task done\" job=$job topic=$topic partition=\([0-9]*\) offset=\([0-9]*\) .*/\1:\2/p" \
			"$tmp/w$n.log" | sort -u >"$tmp/done$n"
	done
	again=$(sort "$tmp/done2" "$tmp/done3" | uniq | comm -12 "$tmp/done1" - | wc -l)
	[ "$again" -gt 0 ] || fail "no task done by worker 1 was redelivered after kill -9"
	# What worker 1 had written was looked up, not probed again: every
	# task message it finished is done again with all its addresses
	# skipped (its offset was never committed; its verdicts are in Redis).
	skipped=$(cat "$tmp/w2.log" "$tmp/w3.log" |
		sed -n "s/.*msg=\"addresses already answered\" job=$job .* skipped=\([0-9]*\) .*/\1/p" |
		awk '{ s += $1 } END { print s + 0 }')
	w1_addrs=$(sed -n "s/.*msg=\"task done\" job=$job .* addresses=\([0-9]*\) .*/\1/p" "$tmp/w1.log" |
		awk '{ s += $1 } END { print s + 0 }')
	[ "$skipped" -ge "$w1_addrs" ] ||
		fail "worker 1 finished tasks of $w1_addrs addresses; its successors skipped only $skipped"
	rcpts=$(sink_stat cmd_rcpt)
	[ "$rcpts" -ge "$smtp_total" ] || fail "the SMTP server saw $rcpts RCPT for $smtp_total addresses"
	echo "redelivered after kill -9: $again task messages; $skipped addresses found in Redis, not probed again ($w1_addrs in worker 1's finished tasks); $rcpts RCPT for $smtp_total addresses"
	;;
replay)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_done 50
	rcpt1=$(sink_stat cmd_rcpt)
	ntasks=$(cat "$tmp/w1.log" "$tmp/w2.log" | grep -c "msg=\"task done\" job=$job topic=$topic ")
	# a new group: its worker reads mxsift.tasks from the start
	group_old=$group group=$group-replay
	fleet_worker 3 "${wargs[@]}"
	group=$group_old
	for _ in $(seq 1 600); do
		[ "$(grep -c "msg=\"task done\" job=$job topic=$topic " "$tmp/w3.log")" -ge "$ntasks" ] && break
		sleep 0.05
	done
	n3=$(grep -c "msg=\"task done\" job=$job topic=$topic " "$tmp/w3.log" || true)
	[ "$n3" -ge "$ntasks" ] || fail "the new group's worker did $n3 of $ntasks task messages in 30 s"
	grep "msg=\"task done\" job=$job topic=$topic " "$tmp/w3.log" |
		awk '{ a = $0; s = $0; sub(/.* addresses=/, "", a); sub(/ .*/, "", a)
			sub(/.* skipped=/, "", s); sub(/ .*/, "", s); if (a != s) bad++ }
			END { exit bad > 0 }' || fail "a replayed task was probed: $(grep 'task done' "$tmp/w3.log" | sed -n 1,3p)"
	rcpt2=$(sink_stat cmd_rcpt)
	[ "$rcpt2" -eq "$rcpt1" ] || fail "the replay sent $((rcpt2 - rcpt1)) RCPT (every address had its verdict)"
	# and its metrics say so: every address it was handed, skipped
	mport=$(sed -n 's/.*msg="metrics listening" addr=127.0.0.1 port=\([0-9]*\).*/\1/p' "$tmp/w3.log" | sed -n 1p)
	handed=$(grep "msg=\"task done\" job=$job topic=$topic " "$tmp/w3.log" |
		sed 's/.* addresses=\([0-9]*\) .*/\1/' | awk '{ s += $1 } END { print s + 0 }')
	m=$(curl -fsS "http://127.0.0.1:$mport/metrics" | awk '$1 == "mxsift_addresses_skipped_total" { print $2 }')
	[ "$m" = "$handed" ] || fail "mxsift_addresses_skipped_total $m, expected $handed"
	echo "replay by a new group: $n3 task messages done again, every address skipped; RCPT $rcpt1 -> $rcpt2"
	;;
drain)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_progress 8 30
	kill -TERM "${wpid[1]}"
	rc=0
	wait "${wpid[1]}" || rc=$?
	unset 'wpid[1]'
	[ "$rc" -eq 0 ] || fail "worker 1 exited $rc after SIGTERM"
	stop_at=$(rline 1 'msg="stopping" reason=SIGTERM')
	[ -n "$stop_at" ] || fail "worker 1 did not log its stop"
	grep -q 'msg="grace period over: abandoning unfinished tasks"' "$tmp/w1.log" ||
		fail "worker 1 finished everything within --grace 1: nothing was left to redo"
	verdict_addrs 1 >"$tmp/w1.all"
	verdict_addrs 1 "$stop_at" >"$tmp/w1.grace"
	[ -s "$tmp/w1.grace" ] || fail "worker 1 wrote no verdict after SIGTERM (probes under way were dropped)"
	# Only worker 1 has run: what Redis holds now is its work, the drain's included.
	port=${redis#redis://127.0.0.1:}
	redis-cli -p "${port%%/*}" hkeys "mxsift:job:$job:verdicts" | sort >"$tmp/redis1"
	missing=$(comm -23 "$tmp/w1.grace" "$tmp/redis1" | sed -n 1,3p)
	[ -z "$missing" ] || fail "verdicts logged during the drain are not in Redis: $missing"
	d1=$(wc -l <"$tmp/redis1")
	[ "$d1" -lt "$total" ] || fail "the job was done within the grace period: raise the list"
	rcpt1=$(sink_stat cmd_rcpt)
	echo "worker 1: $(wc -l <"$tmp/w1.all") verdicts, $(wc -l <"$tmp/w1.grace") during the drain; $d1 of $total in Redis; $rcpt1 RCPT"
	fleet_worker 2 "${wargs[@]}"
	fleet_wait_group 2
	fleet_wait_done 40
	verdict_addrs 2 >"$tmp/w2.all"
	[ -s "$tmp/w2.all" ] || fail "worker 2 redid nothing"
	twice=$(comm -12 "$tmp/w1.all" "$tmp/w2.all" | { grep -v '@missing\.test' || true; } | sed -n 1,3p)
	[ -z "$twice" ] || fail "worker 2 probed addresses worker 1 had written (offsets not stored): $twice"
	rcpts=$(sink_stat cmd_rcpt)
	[ "$rcpts" -ge "$smtp_total" ] && [ "$rcpts" -le $((smtp_total + 1)) ] ||
		fail "the SMTP server saw $rcpts RCPT for $smtp_total addresses (want each once, + 1 in flight at the abandon)"
	echo "worker 2: redid $(wc -l <"$tmp/w2.all") addresses; $rcpts RCPT for $smtp_total addresses"
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
	# Per broker (3 brokers), so the mock can say how many were returned.
	fleet_kafka_ctl broker-errors -1 0 7 3
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	left=$(fleet_kafka_left -1 0)
	[ "$left" -lt 9 ] || fail "submit met none of the 9 Produce errors"
	fleet_wait_progress $((total / 5)) 30
	fleet_kafka_ctl broker-errors -1 1 6 5
	fleet_kafka_ctl broker-errors -1 8 7 5
	kill -TERM "${wpid[2]}"
	rc=0
	wait "${wpid[2]}" || rc=$?
	unset 'wpid[2]'
	[ "$rc" -eq 0 ] || fail "worker 2 exited $rc after SIGTERM"
	fleet_worker 3
	fleet_wait_done 50
	# The errors bit: each kind was returned to a client at least once.
	# (OffsetCommit goes to the group coordinator only: 10 of the 15 stay.)
	fetch_left=$(fleet_kafka_left -1 1) commit_left=$(fleet_kafka_left -1 8)
	echo "errors returned: Produce $((9 - left))/9, Fetch $((15 - fetch_left))/15, OffsetCommit $((15 - commit_left))/15"
	[ "$fetch_left" -lt 15 ] || fail "no consumer met the Fetch errors"
	[ "$commit_left" -lt 15 ] || fail "no consumer met the OffsetCommit errors"
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
redis_bound)
	submit >"$tmp/submit.out" 2>"$tmp/submit.err" || fail "mxsift submit failed"
	fleet_wait_progress $((total / 5)) 30
	# Kill Redis right after worker 1 resumed: it consumes up to the bound
	# while nothing can be written.
	r0=$(rline 1 'msg="resuming consumption"')
	for _ in $(seq 1 500); do
		r=$(rline 1 'msg="resuming consumption"')
		[ "${r:-0}" -gt "${r0:-0}" ] && break
		sleep 0.01
	done
	[ "${r:-0}" -gt "${r0:-0}" ] || fail "worker 1 never resumed consuming (is the bound of 20 ever reached?)"
	fleet_redis_kill
	d=$(grep -c '' "$tmp/w1.log")
	sleep 3
	for n in 1 2; do
		kill -0 "${wpid[$n]}" 2>/dev/null || fail "worker $n died while Redis was down"
		grep -q 'msg="redis unreachable: holding verdicts, consumption paused"' "$tmp/w$n.log" ||
			fail "worker $n did not pause consumption while Redis was down"
	done
	# worker 1 filled its buffer to the bound after that resume and stopped there
	tail -n +"$r" "$tmp/w1.log" | grep 'msg="pausing consumption"' | sed -n 1p >"$tmp/bound"
	bi=$(sed -n 's/.* inflight=\([0-9]*\) max_inflight=20 .*/\1/p' "$tmp/bound")
	[ -n "$bi" ] && [ "$bi" -ge 20 ] ||
		fail "worker 1 did not reach its bound of 20 during the outage: $(cat "$tmp/bound")"
	grep -q 'msg="resuming consumption"' <<<"$(tail -n +$((r + 1)) "$tmp/w1.log")" &&
		fail "worker 1 resumed consuming while Redis was down"
	echo "worker 1 paused at inflight=$bi (bound 20) with Redis down (log line $d)"
	fleet_redis_restart
	fleet_wait_done 50
	for n in 1 2; do
		o=$(rline "$n" 'msg="redis unreachable: holding verdicts')
		tail -n +"$o" "$tmp/w$n.log" >"$tmp/after$n"
		grep 'msg="redis reachable again: writing held verdicts"' "$tmp/after$n" | sed -n 1p >"$tmp/back$n"
		[ -s "$tmp/back$n" ] && grep -q 'msg="resuming consumption"' "$tmp/after$n" ||
			fail "worker $n did not write its held verdicts and resume after Redis came back"
		grep -q ' held_max=[1-9]' "$tmp/back$n" || fail "worker $n held no verdict during the outage"
		echo "worker $n: $(sed 's/.*msg=//' "$tmp/back$n")"
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
if [ "$scenario" = redis_bound ]; then
	for n in 1 2; do
		pi=$(sed -n 's/.*msg="worker stopped" .* peak_inflight=\([0-9]*\).*/\1/p' "$tmp/w$n.log")
		echo "worker $n: peak_inflight=$pi"
		# one message (--batch 10) may arrive after the check that pauses
		[ "$pi" -le 30 ] || fail "worker $n held $pi recipients/verdicts (bound 20 + 10)"
	done
fi
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
