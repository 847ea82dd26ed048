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
#    had work to do.  That split is deterministic, not luck: the task topic
#    is auto-created with 4 partitions, the keys land alpha.test -> 0,
#    beta.test -> 1, hosting.test -> 2, and the eager range assignor gives
#    two members 0-1 and 2-3 (whichever member is first), so hosting.test and
#    the other two always go to different workers;
#  - from the server's timestamps, per MX domain across the fleet: RCPTs
#    within rate/burst, new connections within conn_rate/conn_burst, and the
#    hosting.test pace near its rule (a lane served twice would go twice as
#    fast; one served by nobody in particular would dawdle).
#
# Phase 2, SIGHUP: a job of 60 addresses of implicit.test (lane rule rate=3
# burst=1).  Once the server has seen 4 of its RCPTs the rules file says 30/s
# and both workers get SIGHUP; after 16 more, 4/s and SIGHUP; after 5 more,
# 100/s.  Both log "lane rules loaded" each time; the lane's owner logs each
# new rate (msg="lane rate" ... why=reload).  By the server's timestamps,
# between a reload seen in the logs and the next SIGHUP: before the first,
# within 3/s; after it, within 30/s and faster than 3/s allows (the running
# lane sped up); after the second, within 4/s (it slowed down at once).
#
# Phase 3, a 421 storm on two lanes in two workers: the scripted server is
# replaced (same port, the workers keep running) by one that greets every
# connection with "421 4.7.0 Too many connections" for its first 3 s; the
# rules are reloaded to 20/s for alpha.test and hosting.test, and a job of 12
# addresses of alpha.test and 6 each of gamma/delta (hosting.test) is
# submitted.  Each lane backs off in its own worker (alpha.test in one,
# hosting.test in the other), every 421 greeting the server sent is one
# "lane backoff" line in some worker, each lane recovers to its rule
# (why=recover at 20/s), every address ends deliverable, RCPTs stay within
# 20/s burst 2 per MX domain, and `mxsift status` counts the back-offs
# (backed_off >= 2).
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
# phase 2's addresses are users too (the server reads the file at start)
echo email >"$tmp/list2.csv"
: >"$tmp/expected2"
for i in $(seq 1 60); do
	echo "v$i@implicit.test" | tee -a "$tmp/list2.csv" >>"$tmp/users"
	printf 'v%s@implicit.test\tdeliverable/accepted\n' "$i" >>"$tmp/expected2"
done
sort -o "$tmp/expected2" "$tmp/expected2"
# rules IMPLICIT_RULE: the phase 1 rules plus implicit.test's, replaced whole
rules() {
	cat >"$tmp/lanes.new" <<EOF
* rate=8 burst=2 conn_rate=2 conn_burst=1 rcpt_per_session=20
hosting.test rate=5 burst=2 conn_rate=1 conn_burst=1 conns=1 rcpt_per_session=8
implicit.test $1 conns=1 rcpt_per_session=100
EOF
	mv "$tmp/lanes.new" "$tmp/lanes.conf"
}
rules "rate=3 burst=1"

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

# ---- phase 2: SIGHUP while the lane runs ------------------------------------------
job=hup-$run
# irc LINE: RCPTs of implicit.test in the server's log (line-buffered) after LINE
irc() { tail -n +$(($1 + 1)) "$tmp/events" | awk '$4 == "RCPT" && $6 ~ /@implicit\.test>?$/' | wc -l; }
wait_irc() { # FROM_LINE N: until N such RCPTs after FROM_LINE
	for _ in $(seq 1 600); do
		[ "$(irc "$1")" -ge "$2" ] && return 0
		sleep 0.02
	done
	fail "phase 2: the server did not see $2 RCPTs of implicit.test after line $1"
}
# wait_closed EVENTS: until every connection in the server's log has closed
wait_closed() {
	for _ in $(seq 1 100); do
		[ "$(awk '$4 == "connect" { o++ } $4 == "close" { o-- } END { print o + 0 }' "$1")" -eq 0 ] &&
			return 0
		sleep 0.1
	done
	fail "sessions to the scripted server still open after 10 s: $(tail -n 3 "$1")"
}
loads() { grep -c 'msg="lane rules loaded"' "$tmp/w$1.log"; }
# hup_wait N1 N2: until both workers logged a reload beyond N1 and N2 loads
hup_wait() {
	for _ in $(seq 1 250); do
		[ "$(loads 1)" -gt "$1" ] && [ "$(loads 2)" -gt "$2" ] && return 0
		sleep 0.02
	done
	fail "a worker did not log \"lane rules loaded\" after SIGHUP"
}
# hup RULE: new implicit.test rule, SIGHUP both workers, wait for both to
# reload; sets hup_before (server log lines before the SIGHUP) and hup_after
# (lines once both reloads were logged)
hup() {
	local n1 n2
	n1=$(loads 1) n2=$(loads 2)
	hup_before=$(grep -c '' "$tmp/events")
	rules "$1"
	kill -HUP "${wpid[1]}" "${wpid[2]}"
	hup_wait "$n1" "$n2"
	hup_after=$(grep -c '' "$tmp/events")
}
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" "$tmp/list2.csv" >"$tmp/submit2.out" 2>"$tmp/submit2.err" ||
	fail "mxsift submit (phase 2) failed: $(cat "$tmp/submit2.err")"
wait_irc 0 4
hup "rate=30 burst=1"
a_end=$hup_before b_start=$hup_after
wait_irc "$b_start" 16
hup "rate=4 burst=1"
b_end=$hup_before c_start=$hup_after
wait_irc "$c_start" 5
hup "rate=100 burst=5"
c_end=$hup_before
fleet_wait_done 60
fleet_check_exact "$tmp/expected2"
# window FROM TO: the server log's lines FROM+1..TO
window() { sed -n "$(($1 + 1)),$2p" "$tmp/events"; }
window 0 "$a_end" >"$tmp/ev.a"
window "$b_start" "$b_end" >"$tmp/ev.b"
# the third window from its second RCPT: one sent just before the reload may
# be logged after it was seen
window "$c_start" "$c_end" | awk '$4 == "RCPT" && $6 ~ /@implicit\.test>?$/ && !n++ { next } 1' >"$tmp/ev.c"
for w in a b c; do
	awk '$4 == "RCPT" && $6 ~ /@implicit\.test>?$/ { if (!n++) s = $1; e = $1 }
		END { print n + 0, e - s }' "$tmp/ev.$w"
done | xargs >"$tmp/ev.spans"
read -r na sa nb sb nc sc <"$tmp/ev.spans"
[ "$na" -ge 4 ] && [ "$nb" -ge 15 ] && [ "$nc" -ge 4 ] ||
	fail "phase 2: too few RCPTs per window (count span ...): $(cat "$tmp/ev.spans")"
lanes_bucket_ok "$tmp/ev.a" RCPT 3 1 'implicit\.test' || fail "phase 2: above rate=3 before the first SIGHUP"
lanes_bucket_ok "$tmp/ev.b" RCPT 30 1 'implicit\.test' || fail "phase 2: above rate=30 after the first SIGHUP"
lanes_bucket_ok "$tmp/ev.b" RCPT 3 1 'implicit\.test' >/dev/null &&
	fail "phase 2: $nb RCPT in $sb ms after the reload to 30/s are within 3/s: the running lane kept its old rate"
lanes_bucket_ok "$tmp/ev.c" RCPT 4 1 'implicit\.test' ||
	fail "phase 2: above rate=4 after the second SIGHUP: the running lane kept 30/s"
# the lane's owner logged each new rate; the other worker has no such lane
f=$(grep -l 'msg="lane rate" lane=implicit.test rate=30.000 rule_rate=30.000 .*why=reload' \
	"$tmp/w1.log" "$tmp/w2.log" || true)
[ "$(wc -w <<<"$f")" -eq 1 ] || fail "phase 2: workers logging implicit.test's reload to 30/s: '$f' (want one)"
[ "$(sed -n 's/.*msg="lane rate" lane=implicit.test rate=\([0-9.]*\) .*why=reload.*/\1/p' "$f" | xargs)" = \
	"30.000 4.000 100.000" ] || fail "phase 2: the owner's reload lines: $(grep 'lane=implicit.test' "$f")"
echo "ok   SIGHUP: implicit.test $na RCPT in $sa ms at 3/s, $nb in $sb ms after the reload to 30/s, $nc in $sc ms after the one to 4/s (owner ${f##*/})"

# the workers stay: let their idle sessions end (2 s) before the server does
wait_closed "$tmp/events"
kill -TERM "$spid"
wait "$spid" || fail "the scripted server exited $?: $(cat "$tmp/smtpd.err")"
if grep -q ' ! ' "$tmp/smtpd.transcript"; then
	grep ' ! ' "$tmp/smtpd.transcript" >&2
	fail "the scripted server recorded failures"
fi
grep -q ' stats .* replies_503=0$' "$tmp/events" || fail "a 503: $(tail -n 1 "$tmp/events")"

# ---- phase 3: a 421 storm met by two lanes in two workers ---------------------------
job=storm-$run
echo email >"$tmp/list3.csv"
: >"$tmp/expected3"
: >"$tmp/users3"
for d in alpha gamma delta; do
	n=6
	[ "$d" = alpha ] && n=12
	for i in $(seq 1 "$n"); do
		echo "s$i@$d.test" | tee -a "$tmp/list3.csv" >>"$tmp/users3"
		printf 's%s@%s.test\tdeliverable/accepted\n' "$i" "$d" >>"$tmp/expected3"
	done
done
sort -o "$tmp/expected3" "$tmp/expected3"
cat >"$tmp/storm.scn" <<EOF
timeout 120
storm 3000 421 4.7.0 Too many connections, try again later
pipelining on
users $tmp/users3
conn *
serve
EOF
n1=$(loads 1) n2=$(loads 2)
printf '%s\n' '* rate=8 burst=2' 'alpha.test rate=20 burst=2 conns=1' \
	'hosting.test rate=20 burst=2 conns=1' >"$tmp/lanes.new"
mv "$tmp/lanes.new" "$tmp/lanes.conf"
kill -HUP "${wpid[1]}" "${wpid[2]}"
hup_wait "$n1" "$n2"
m1=$(grep -c '' "$tmp/w1.log") m2=$(grep -c '' "$tmp/w2.log")
smtpd_port=$smtp_port fleet_smtpd_start "$smtpd" "$mx_ip" "$tmp/storm.scn" storm -e "$tmp/storm.events"
"$mxsift" submit --job "$job" --brokers "$brokers" --redis "$redis" --dns "$dns" \
	--topic "$topic" "$tmp/list3.csv" >"$tmp/submit3.out" 2>"$tmp/submit3.err" ||
	fail "mxsift submit (phase 3) failed: $(cat "$tmp/submit3.err")"
fleet_wait_done 60
fleet_check_exact "$tmp/expected3"
s=$(fleet_status)
[ "$(jq .backed_off <<<"$s")" -ge 2 ] || fail "phase 3: backed_off $(jq .backed_off <<<"$s"), want >= 2 (one per lane)"
tail -n +$((m1 + 1)) "$tmp/w1.log" >"$tmp/w1.storm"
tail -n +$((m2 + 1)) "$tmp/w2.log" >"$tmp/w2.storm"
for md in alpha.test hosting.test; do
	o=$(grep -l "msg=\"lane backoff\" lane=$md code=421" "$tmp/w1.storm" "$tmp/w2.storm" || true)
	[ "$(wc -w <<<"$o")" -eq 1 ] || fail "phase 3: $md backed off in workers '$o' (want one)"
	grep -q "msg=\"lane rate\" lane=$md rate=20.000 rule_rate=20.000 .*why=recover" "$o" ||
		fail "phase 3: $md did not recover to 20/s"
	eval "own_${md%%.*}=\$o"
done
[ "$own_alpha" != "$own_hosting" ] || fail "phase 3: both lanes backed off in the same worker"
wait_closed "$tmp/storm.events"
kill -TERM "$spid"
wait "$spid" || fail "the storm server exited $?: $(cat "$tmp/storm.err")"
if grep -q ' ! ' "$tmp/storm.transcript"; then
	grep ' ! ' "$tmp/storm.transcript" >&2
	fail "the storm server recorded failures"
fi
grep -q ' stats .* replies_503=0$' "$tmp/storm.events" || fail "phase 3: a 503"
storms=$(awk '$4 == "storm"' "$tmp/storm.events" | wc -l)
backoffs=$(cat "$tmp/w1.storm" "$tmp/w2.storm" | grep -c 'msg="lane backoff" lane=[a-z.]* code=421' || true)
[ "$storms" -ge 2 ] && [ "$backoffs" -eq "$storms" ] ||
	fail "phase 3: the server sent $storms 421 greetings, the workers logged $backoffs backoffs"
for d in 'alpha\.test' 'gamma\.test|delta\.test'; do
	lanes_bucket_ok "$tmp/storm.events" RCPT 20 2 "$d" || fail "phase 3: $d RCPT above 20/s burst 2"
done
echo "ok   storm: $storms 421 greetings, $backoffs backoffs (alpha.test in ${own_alpha##*/}, hosting.test in ${own_hosting##*/}), both lanes back at 20/s"
fleet_stop_workers

# ---- one partition per MX domain (the coordinator's keys)
kcat -b "$brokers" -C -t "$topic" -o beginning -e -q -f '%k %p\n' 2>/dev/null | sort -u >"$tmp/keys"
[ "$(awk '$1 == "hosting.test"' "$tmp/keys" | wc -l)" -eq 1 ] ||
	fail "hosting.test tasks not in exactly one partition: $(cat "$tmp/keys")"
[ "$(cut -d' ' -f1 "$tmp/keys" | sort -u | xargs)" = "alpha.test beta.test hosting.test implicit.test" ] ||
	fail "task keys are not the MX domains: $(cat "$tmp/keys")"

# ---- one worker per MX domain
for n in 1 2; do
	sed -n 's/.*msg="task done" .* mx_domain=\([^ ]*\) domain=\([^ ]*\) .*/\1 \2/p' "$tmp/w$n.log" |
		sort -u >"$tmp/w$n.domains"
	sed -n 's/.*msg="smtp session end" .* mx_domain=\([^ ]*\) .*/\1/p' "$tmp/w$n.log" |
		sort -u >"$tmp/w$n.lanes"
done
# (phase 1's MX domains; implicit.test and phase 3 come from the same keys)
grep -Eq '^(alpha|beta|hosting)\.test ' "$tmp/w1.domains" &&
	grep -Eq '^(alpha|beta|hosting)\.test ' "$tmp/w2.domains" ||
	fail "one worker got every MX domain (keys and partitions: $(xargs <"$tmp/keys")); with 4 partitions and the range assignor hosting.test and alpha/beta.test go to different workers"
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
