#!/usr/bin/env bash
# test_world.sh — smoke test of the test world itself (scripts/services), so
# that a broken fixture shows up here and not as a puzzling failure elsewhere.
#
# Asserts, against the running services named by MXSIFT_TEST_*:
#  - dnsmasq answers every record of the zone in tests/fixtures/README.md, over UDP and
#    TCP: MX sets, A records, implicit MX (A, no MX), null MX (MX 0 .),
#    NODATA (nodata.test), NXDOMAIN (missing.test, unknown *.test names);
#  - Postfix on MX_IP:SMTP_PORT greets, answers EHLO, accepts known
#    mailboxes (250), rejects unknown users with 550 5.1.1, refuses relaying
#    (554 5.7.1), refuses DATA, and logs the session summary;
#  - nothing listens on the dead MX (DEAD_IP, default 127.0.0.11, port 25);
#  - redis answers PING;
#  - the Kafka mock serves Metadata with the three topics, and its control
#    FIFO acknowledges a command.
# Exit 0 pass, 1 fail, 77 skip (services not running).
set -uo pipefail
if [ -z "${MXSIFT_TEST_DNS:-}" ] || [ -z "${MXSIFT_TEST_REDIS:-}" ] ||
	[ -z "${MXSIFT_TEST_BROKERS:-}" ] || [ -z "${MXSIFT_TEST_POSTFIX_LOG:-}" ]; then
	echo "SKIP: test services not running (scripts/services up DIR; . DIR/env)"
	exit 77
fi
MX_IP=${MXSIFT_TEST_MX_IP:-127.0.0.10}
DEAD_IP=${MXSIFT_TEST_DEAD_IP:-127.0.0.11}
SMTP_PORT=${MXSIFT_TEST_SMTP_PORT:-25}
DNS_HOST=${MXSIFT_TEST_DNS%:*} DNS_PORT=${MXSIFT_TEST_DNS##*:}
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# ------------------------------------------------------------------ DNS
# dns_check PROTO NAME TYPE STATUS ANSWER: ANSWER is the sorted +short output
# joined by "|" ("" for none).
dns_check() {
	local proto=$1 name=$2 type=$3 want_status=$4 want=$5 out status answer
	out=$(dig @"$DNS_HOST" -p "$DNS_PORT" +time=2 +tries=2 $proto +noall +comments +answer \
		"$name" "$type" 2>&1)
	status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
	answer=$(awk '!/^;/ && NF >= 5 { $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); print }' \
		<<<"$out" | sort | paste -sd'|')
	if [ "$status" = "$want_status" ] && [ "$answer" = "$want" ]; then
		pass "dns $proto $name $type -> $status [$answer]"
	else
		fail "dns $proto $name $type: want $want_status [$want], got ${status:-no answer} [$answer]"
	fi
}
for proto in +notcp +tcp; do
	dns_check $proto alpha.test MX NOERROR "10 mx1.alpha.test."
	dns_check $proto mx1.alpha.test A NOERROR "$MX_IP"
	dns_check $proto mx1.alpha.test AAAA NOERROR ""
	dns_check $proto beta.test MX NOERROR "10 mx.beta.test."
	dns_check $proto mx.beta.test A NOERROR "$MX_IP"
	dns_check $proto gamma.test MX NOERROR "10 mx.hosting.test."
	dns_check $proto delta.test MX NOERROR "10 mx.hosting.test."
	dns_check $proto mx.hosting.test A NOERROR "$MX_IP"
	dns_check $proto implicit.test MX NOERROR ""
	dns_check $proto implicit.test A NOERROR "$MX_IP"
	dns_check $proto failover.test MX NOERROR "10 mx-dead.failover.test.|20 mx-live.failover.test."
	dns_check $proto mx-dead.failover.test A NOERROR "$DEAD_IP"
	dns_check $proto mx-live.failover.test A NOERROR "$MX_IP"
	dns_check $proto nullmx.test MX NOERROR "0 ."
	dns_check $proto nullmx.test A NOERROR ""
	dns_check $proto nodata.test MX NOERROR ""
	dns_check $proto nodata.test A NOERROR ""
	dns_check $proto nodata.test AAAA NOERROR ""
	dns_check $proto missing.test MX NXDOMAIN ""
	dns_check $proto missing.test A NXDOMAIN ""
	dns_check $proto nosuchhost.alpha.test A NXDOMAIN ""
done

# ------------------------------------------------------------------ SMTP
# One reply: lines "NNN-..." until "NNN ..." or "NNN".  Sets CODE and TEXT.
smtp_reply() {
	local line
	CODE= TEXT=
	while IFS= read -r -t 10 line <&3; do
		line=${line%$'\r'}
		TEXT+="$line"$'\n'
		if [[ $line =~ ^[0-9]{3}( |$) ]]; then
			CODE=${line:0:3}
			return 0
		fi
		[[ $line =~ ^[0-9]{3}- ]] || { CODE=bad; return 1; }
	done
	CODE=timeout
	return 1
}
# expect CMD CODE [TEXT-REGEX]: send CMD (or read the greeting if CMD is
# empty), one command per reply: no pipelining.
expect() {
	local cmd=$1 code=$2 re=${3:-}
	[ -n "$cmd" ] && printf '%s\r\n' "$cmd" >&3
	smtp_reply
	if [ "$CODE" = "$code" ] && { [ -z "$re" ] || [[ $TEXT =~ $re ]]; }; then
		pass "smtp ${cmd:-<greeting>} -> $(head -n 1 <<<"$TEXT")"
	else
		fail "smtp ${cmd:-<greeting>}: want $code ${re:+/$re/}, got: ${TEXT:-$CODE}"
	fi
}

log_start=$(($(stat -c %s "$MXSIFT_TEST_POSTFIX_LOG" 2>/dev/null || echo 0) + 1))
if exec 3<>"/dev/tcp/$MX_IP/$SMTP_PORT"; then
	expect "" 220 "ESMTP"
	expect "EHLO world.probe.test" 250 "250[ -]PIPELINING"
	expect "MAIL FROM:<verify@probe.test>" 250
	expect "RCPT TO:<alice@alpha.test>" 250 "2\.1\.5"
	expect "RCPT TO:<nobody@alpha.test>" 550 "5\.1\.1 .*User unknown in virtual mailbox table"
	expect "RCPT TO:<Dan@DELTA.test>" 250 "2\.1\.5"
	expect "RCPT TO:<gina@delta.test>" 550 "5\.1\.1"
	expect "RCPT TO:<x@example.com>" 554 "5\.7\.1 .*Relay access denied"
	expect "RCPT TO:<x@nullmx.test>" 554 "5\.7\.1"
	expect "RSET" 250 "2\.0\.0"
	expect "MAIL FROM:<verify@probe.test>" 250
	for u in bob@alpha.test carol@alpha.test dave@beta.test erin@beta.test \
		gina@gamma.test frank@implicit.test gary@failover.test; do
		expect "RCPT TO:<$u>" 250
	done
	expect "DATA" 554 "5\.7\.1"
	expect "QUIT" 221
	exec 3>&-
else
	fail "cannot connect to Postfix at $MX_IP:$SMTP_PORT"
fi
# postlogd writes asynchronously.
summary=
for _ in $(seq 1 50); do
	summary=$(tail -c +"$log_start" "$MXSIFT_TEST_POSTFIX_LOG" |
		grep 'postfix/smtpd\[[0-9]*\]: disconnect from .* ehlo=1 mail=2 ' | tail -n 1)
	[ -n "$summary" ] && break
	sleep 0.1
done
if [[ $summary == *"ehlo=1 mail=2 rcpt=9/13 data=0/1 rset=1 quit=1"* ]]; then
	pass "postfix log: $summary"
else
	fail "postfix log summary: want 'ehlo=1 mail=2 rcpt=9/13 data=0/1 rset=1 quit=1', got '$summary'"
	tail -c +"$log_start" "$MXSIFT_TEST_POSTFIX_LOG" | tail -n 20
fi
if timeout 3 bash -c 'exec 3<>/dev/tcp/'"$DEAD_IP"'/25' 2>/dev/null; then
	fail "something listens on the dead MX $DEAD_IP:25"
else
	pass "dead MX $DEAD_IP:25 refuses connections"
fi

# ------------------------------------------------------------------ Redis
pong=$(redis-cli -u "$MXSIFT_TEST_REDIS" ping 2>&1)
[ "$pong" = PONG ] && pass "redis PING" || fail "redis PING: $pong"

# ------------------------------------------------------------------ Kafka
meta=$(kcat -b "$MXSIFT_TEST_BROKERS" -m 5 -L 2>&1)
for t in mxsift.tasks mxsift.retry mxsift.dead; do
	if grep -Eq "topic \"$t\" with [0-9]+ partitions" <<<"$meta"; then
		pass "kafka topic $t: $(grep -o "topic \"$t\" with [0-9]* partitions" <<<"$meta")"
	else
		fail "kafka topic $t missing from Metadata"
	fi
done
nb=$(sed -n 's/^ *\([0-9]*\) brokers:$/\1/p' <<<"$meta")
[ "${nb:-0}" -ge 1 ] && pass "kafka brokers: $nb" || fail "kafka Metadata: no brokers: $meta"
if [ -n "${MXSIFT_TEST_KAFKA_CTL:-}" ] && [ -p "$MXSIFT_TEST_KAFKA_CTL" ]; then
	before=$(grep -c '^ok ping$' "$MXSIFT_TEST_KAFKA_OUT" || true)
	echo ping >"$MXSIFT_TEST_KAFKA_CTL"
	acked=
	for _ in $(seq 1 30); do
		[ "$(grep -c '^ok ping$' "$MXSIFT_TEST_KAFKA_OUT" || true)" -gt "$before" ] && acked=1 && break
		sleep 0.1
	done
	[ -n "$acked" ] && pass "kafka control FIFO acknowledges" || fail "kafka control FIFO: no ack"
fi

if [ "$failures" -ne 0 ]; then
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS: test world answers as the brief says"
