#!/usr/bin/env bash
# test_fleet_lanes.sh — lanes across a fleet: two mxsift-worker processes on
# the world's Kafka mock, one job over three MX domains, judged by the
# scripted SMTP server's own timestamps (mxsift-smtpd-script in serve mode on
# the world's MX address, port of its own: --smtp-port).
#
# The world's DNS: gamma.test and delta.test share mx.hosting.test (MX
# domain hosting.test), alpha.test and beta.test have their own.  Lane rules
# (--lanes on both workers) allow hosting.test 5 RCPT/s (burst 2) and one
# new connection per second; alpha.test and beta.test 8/s.
#
# Asserts:
#  - every address has its verdict (fleet_check_exact), no 503;
#  - the coordinator keyed every task by its MX domain, and all hosting.test
#    tasks (gamma and delta) sit in one partition;
#  - each MX domain was served by one worker only (its "task done" and
#    "smtp session end" lines are in one worker's log), and both workers
#    had work to do;
#  - from the server's timestamps, per MX domain across the fleet: RCPTs
#    within rate/burst, new connections within conn_rate/conn_burst, and the
#    hosting.test pace near its rule (a lane served twice would go twice as
#    fast; one served by nobody in particular would dawdle).
#
# usage: test_fleet_lanes.sh MXSIFT MXSIFT_WORKER MXSIFT_SMTPD_SCRIPT
set -euo pipefail
mxsift=$1 worker=$2 smtpd=$3
. "$(dirname "$0")/test_fleet_lib.sh"
. "$(dirname "$0")/test_lanes_lib.sh"
fleet_need MXSIFT_TEST_BROKERS MXSIFT_TEST_REDIS MXSIFT_TEST_DNS MXSIFT_TEST_MX_IP
fleet_init

run=$(date +%s)-$$-$RANDOM
job=lanes-$run group=lanes-$run topic=lanes.$run retry_topic=lanes.$run.retry
dead_topic=lanes.$run.dead
brokers=$MXSIFT_TEST_BROKERS redis=$MXSIFT_TEST_REDIS dns=$MXSIFT_TEST_DNS
mx_ip=$MXSIFT_TEST_MX_IP

# ---- addresses: 12 each of gamma and delta (hosting.test), 8 of alpha and beta;
# every fourth unknown
: >"$tmp/users"
echo email >"$tmp/list.csv"
: >"$tmp/expected"
for d in gamma delta alpha beta; do
	n=8
	case $d in gamma | delta) n=12 ;; esac
	for i in $(seq 1 "$n"); do
		a=u$i@$d.test
		echo "$a" >>"$tmp/list.csv"
		if [ $((i % 4)) -eq 0 ]; then
			printf '%s\tundeliverable/mailbox_not_found\n' "$a" >>"$tmp/expected"
		else
			echo "$a" >>"$tmp/users"
			printf '%s\tdeliverable/accepted\n' "$a" >>"$tmp/expected"
		fi
	done
done
sort -o "$tmp/expected" "$tmp/expected"
cat >"$tmp/lanes.conf" <<'EOF'
* rate=8 burst=2 conn_rate=2 conn_burst=1 rcpt_per_session=20
hosting.test rate=5 burst=2 conn_rate=1 conn_burst=1 conns=1 rcpt_per_session=8
EOF

# ---- the scripted server: every connection a small correct SMTP server
cat >"$tmp/serve.scn" <<EOF
timeout 120
pipelining on
users $tmp/users
conn *
serve
EOF
fleet_smtpd_start "$smtpd" "$mx_ip" "$tmp/serve.scn" smtpd -e "$tmp/events"

fleet_worker 1 --lanes "$tmp/lanes.conf" --log-level info
fleet_worker 2 --lanes "$tmp/lanes.conf" --log-level info
fleet_wait_group 1 2
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" "$tmp/list.csv" >"$tmp/submit.out" 2>"$tmp/submit.err" ||
	fail "mxsift submit failed: $(cat "$tmp/submit.err")"
fleet_wait_done 60
fleet_check_exact "$tmp/expected"
fleet_stop_workers
kill -TERM "$spid"
wait "$spid" || fail "the scripted server exited $?: $(cat "$tmp/smtpd.err")"
if grep -q ' ! ' "$tmp/smtpd.transcript"; then
	grep ' ! ' "$tmp/smtpd.transcript" >&2
	fail "the scripted server recorded failures"
fi
grep -q ' stats .* replies_503=0$' "$tmp/events" || fail "a 503: $(tail -n 1 "$tmp/events")"

# ---- one partition per MX domain (the coordinator's keys)
kcat -b "$brokers" -C -t "$topic" -o beginning -e -q -f '%k %p\n' 2>/dev/null | sort -u >"$tmp/keys"
[ "$(awk '$1 == "hosting.test"' "$tmp/keys" | wc -l)" -eq 1 ] ||
	fail "hosting.test tasks not in exactly one partition: $(cat "$tmp/keys")"
[ "$(cut -d' ' -f1 "$tmp/keys" | sort -u | xargs)" = "alpha.test beta.test hosting.test" ] ||
	fail "task keys are not the MX domains: $(cat "$tmp/keys")"

# ---- one worker per MX domain
for n in 1 2; do
	sed -n 's/.*msg="task done" .* mx_domain=\([^ ]*\) domain=\([^ ]*\) .*/\1 \2/p' "$tmp/w$n.log" |
		sort -u >"$tmp/w$n.domains"
	sed -n 's/.*msg="smtp session end" .* mx_domain=\([^ ]*\) .*/\1/p' "$tmp/w$n.log" |
		sort -u >"$tmp/w$n.lanes"
done
[ -s "$tmp/w1.domains" ] && [ -s "$tmp/w2.domains" ] ||
	echo "note: one worker got every MX domain (partition hash); the fleet split is untested this run"
for md in alpha.test beta.test hosting.test; do
	owners=$(grep -l "^$md " "$tmp/w1.domains" "$tmp/w2.domains" | wc -l)
	[ "$owners" -eq 1 ] || fail "$md tasks were done by $owners workers"
	owners=$(grep -lx "$md" "$tmp/w1.lanes" "$tmp/w2.lanes" | wc -l)
	[ "$owners" -eq 1 ] || fail "$md sessions ran in $owners workers"
done
grep -q '^hosting.test gamma.test$' "$tmp/w1.domains" "$tmp/w2.domains" &&
	grep -q '^hosting.test delta.test$' "$tmp/w1.domains" "$tmp/w2.domains" ||
	fail "gamma.test and delta.test did not both go through hosting.test"

# ---- rates per MX domain across the fleet, by the server's clock
lanes_bucket_ok "$tmp/events" RCPT 5 2 'gamma\.test|delta\.test' ||
	fail "hosting.test: RCPT rate above rate=5 burst=2 across the fleet"
lanes_bucket_ok "$tmp/events" connect 1 1 'gamma\.test|delta\.test' ||
	fail "hosting.test: connection rate above conn_rate=1 conn_burst=1 across the fleet"
for d in alpha beta; do
	lanes_bucket_ok "$tmp/events" RCPT 8 2 "$d\\.test" || fail "$d.test: RCPT rate above rate=8 burst=2"
	lanes_bucket_ok "$tmp/events" connect 2 1 "$d\\.test" || fail "$d.test: connection rate above the rule"
done
# 24 addresses + 2 catch-all probes at 5/s after a burst of 2: about 4.8 s
awk '$4 == "RCPT" && $6 ~ /@(gamma|delta)\.test>?$/ { if (!n++) s = $1; e = $1 }
	END { print n, e - s }' "$tmp/events" >"$tmp/span"
read -r hr hspan <"$tmp/span"
[ "$hr" -eq 26 ] || fail "hosting.test: the server saw $hr RCPT, want 26 (24 + 2 catch-all probes)"
[ "$hspan" -ge 4500 ] && [ "$hspan" -le 15000 ] || fail "hosting.test: $hr RCPT took $hspan ms (want 4.5..15 s)"
echo "ok   hosting.test: $hr RCPT in $hspan ms from one worker; owners: w1 $(cut -d' ' -f1 "$tmp/w1.domains" | sort -u | xargs) / w2 $(cut -d' ' -f1 "$tmp/w2.domains" | sort -u | xargs)"
echo "PASS: fleet lanes"
