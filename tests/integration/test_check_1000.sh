#!/usr/bin/env bash
# test_check_1000.sh — `mxsift check` over a 1,000-address scripted world.
#
# The world is made here, at run time, and owned by this test alone:
#  - 20 domains d01.test .. d20.test, two per mail provider: dNN's MX host is
#    mx.pKK.test (KK = ceil(NN/2)), so 10 MX domains p01.test .. p10.test,
#    each on its own loopback address (A record) and one shared port;
#  - one mxsift-smtpd-script in serve mode listening on those 10 addresses
#    (PIPELINING advertised on five of them, not on the others: there a
#    client that pipelines is caught), answering like Postfix: users from a
#    file get 250, "grey*" 450 4.2.0, d19/d20 accept anything else
#    (catch-all: even the unknown users there are risky/catch_all),
#    everything else 550 5.1.1; any sequence error gets a 503 and is counted;
#  - its own dnsmasq on a free port (stopped by pid);
#  - MX failover with IPv6: where lo has ::1, mx.p10.test has an A record on
#    which nothing listens and an AAAA ::1 on which the server does, so every
#    p10 session is reached after a refused IPv4 connect (dns.c tries IPv4
#    first); without ::1, p10 is an ordinary IPv4 host.
# 50 addresses per domain: per provider 100 addresses, of which 4 unknown
# users and 2 greylisted, so a session never reaches the engine's reject
# limit (8) and the only recycling is by RCPT count (100 per session).
#
# Asserts: exactly one output row per input address, each with the verdict
# its generator intended (no protocol_error, no verdict caused by our own
# sequencing); zero 503 replies on both sides (mxsift's summary and the
# server's count); per MX domain exactly 102 RCPT (100 addresses + one
# catch-all probe per domain) over exactly 2 connections; no DATA; the
# server saw no pipelining where it was not advertised.
#
# usage: test_check_1000.sh MXSIFT SMTPD_SCRIPT
set -euo pipefail
mxsift=$1 smtpd=$2
command -v dnsmasq >/dev/null || { echo "SKIP: dnsmasq not installed"; exit 77; }
command -v dig >/dev/null || { echo "SKIP: dig not installed"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }

tmp=$(mktemp -d)
spid= dpid=
cleanup() {
	[ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	[ -n "$dpid" ] && kill -TERM "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Loopback addresses of our own, away from the shared world's 127.0.0.x.
net=127.$((100 + $$ % 100)).$(($$ / 100 % 250 + 1))
providers=10 per_domain=50

# ---- the list, the users file and the expected verdicts ----------------------
{
	echo "email"
	for d in $(seq 1 20); do
		dom=$(printf 'd%02d.test' "$d")
		for i in $(seq 1 $per_domain); do
			if [ "$i" -le 2 ]; then
				echo "nobody$i@$dom"
			elif [ "$i" -le 3 ]; then
				echo "grey$i@$dom"
			else
				echo "user$i@$dom"
			fi
		done
	done
} >"$tmp/list.csv"
tail -n +2 "$tmp/list.csv" | grep '^user' >"$tmp/users"
tail -n +2 "$tmp/list.csv" | awk -F@ '{
	if ($1 ~ /^grey/) v = "unknown/greylisted"
	else if ($2 ~ /^d(19|20)\.test$/) v = "risky/catch_all"
	else if ($1 ~ /^nobody/) v = "undeliverable/mailbox_not_found"
	else v = "deliverable/accepted"
	print $0 "\t" v }' | sort >"$tmp/expected"
[ "$(wc -l <"$tmp/expected")" -eq 1000 ] || fail "generator made $(wc -l <"$tmp/expected") addresses"

# ---- the scripted MX hosts ---------------------------------------------------
addrs=() pipe=()
ipv6=0
grep -q 'inet6 ::1/' <<<"$(ip -6 addr show lo 2>/dev/null)" && ipv6=1
for k in $(seq 1 $providers); do
	if [ "$k" -eq $providers ] && [ "$ipv6" -eq 1 ]; then
		addrs+=(-a ::1)   # $net.$k stays unbound: connections are refused
	else
		addrs+=(-a "$net.$k")
	fi
	[ "$k" -le 5 ] && pipe+=("$net.$k")
done
cat >"$tmp/server.scn" <<EOF
pipelining ${pipe[*]}
users $tmp/users
rcpt ^grey 450 4.2.0 <\$0>: Recipient address rejected: Greylisted
rcpt @d(19|20)\.test\$ 250 2.1.5 Ok
conn *
serve
EOF
port=
for _ in 1 2 3 4 5; do
	"$smtpd" -T 110 "${addrs[@]}" -t "$tmp/transcript" -e "$tmp/events" "$tmp/server.scn" \
		>"$tmp/port" 2>"$tmp/smtpd.err" &
	spid=$!
	for _ in $(seq 1 100); do
		port=$(awk '$1 == "port" { print $2 }' "$tmp/port" 2>/dev/null) || true
		[ -n "$port" ] && break
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$port" ] && break
	wait "$spid" 2>/dev/null || true   # a port taken on one address: try again
	spid=
done
[ -n "$port" ] || { cat "$tmp/smtpd.err" >&2; fail "the scripted server did not start"; }

# ---- DNS: our own dnsmasq ------------------------------------------------------
{
	echo "local=/test/"
	for d in $(seq 1 20); do
		k=$(((d + 1) / 2))
		printf 'mx-host=d%02d.test,mx.p%02d.test,10\n' "$d" "$k"
	done
	for k in $(seq 1 $providers); do
		if [ "$k" -eq $providers ] && [ "$ipv6" -eq 1 ]; then
			printf 'host-record=mx.p%02d.test,%s.%d,::1\n' "$k" "$net" "$k"
		else
			printf 'host-record=mx.p%02d.test,%s.%d\n' "$k" "$net" "$k"
		fi
	done
} >"$tmp/zone.conf"
dport=
for _ in 1 2 3 4 5; do
	p=$((20000 + RANDOM % 12000))
	dnsmasq --keep-in-foreground --port "$p" --listen-address=127.0.0.1 --bind-interfaces \
		--no-resolv --no-hosts --no-poll --pid-file= --conf-file="$tmp/zone.conf" \
		--log-facility=- </dev/null >/dev/null 2>"$tmp/dnsmasq.log" &
	dpid=$!
	for _ in $(seq 1 50); do
		if grep -q p01 <<<"$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$p" MX d01.test 2>/dev/null)"; then
			dport=$p
			break
		fi
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$dport" ] && break
	kill -TERM "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null || true
	dpid=
done
[ -n "$dport" ] || { cat "$tmp/dnsmasq.log" >&2; fail "dnsmasq did not start"; }

# ---- the run -----------------------------------------------------------------------
start=$(date +%s)
"$mxsift" check "$tmp/list.csv" --format jsonl -o "$tmp/out.jsonl" --dns "127.0.0.1:$dport" \
	--helo probe.mxsift.test --mail-from verify@mxsift.test --smtp-port "$port" --tls off \
	2>"$tmp/check.err" || { cat "$tmp/check.err" >&2; fail "mxsift check exited $?"; }
elapsed=$(($(date +%s) - start))
kill -TERM "$spid"
src=0
wait "$spid" || src=$?
spid=
kill -TERM "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=
tail -n 1 "$tmp/check.err"

# exactly one verdict per address, the intended one
[ "$(wc -l <"$tmp/out.jsonl")" -eq 1000 ] || fail "$(wc -l <"$tmp/out.jsonl") rows for 1000 addresses"
jq -r '[.address, .status + "/" + .reason] | @tsv' "$tmp/out.jsonl" | sort >"$tmp/have"
[ "$(cut -f1 "$tmp/have" | sort -u | wc -l)" -eq 1000 ] || fail "an address has no or two verdicts"
diff -u "$tmp/expected" "$tmp/have" | sed -n 1,20p || true
cmp -s "$tmp/expected" "$tmp/have" || fail "verdicts differ from the intended ones"

# zero 503, both sides
# p10 over IPv6: each of its 2 sessions cost one refused IPv4 connect first
want_conns=20
[ "$ipv6" -eq 1 ] && want_conns=22
grep -q " ($want_conns SMTP connections, 1020 RCPT, 0 503 replies)\$" "$tmp/check.err" ||
	fail "mxsift summary: $(tail -n 1 "$tmp/check.err") (want $want_conns connections, 1020 RCPT, 0 503)"
grep -q ' stats connections=20 commands=[0-9]* replies_503=0$' "$tmp/events" ||
	fail "server stats: $(tail -n 1 "$tmp/events") (want 20 connections, no 503)"
bad=$(awk '$4 != "connect" && $5 == 503' "$tmp/events")
[ -z "$bad" ] || fail "503 replies on the wire: $(sed -n 1,5p <<<"$bad")"
[ -z "$(awk '$4 == "DATA"' "$tmp/events")" ] || fail "DATA was sent"
# the server's own failures (pipelining where not advertised, DATA, ...)
bad=$(grep ' ! ' "$tmp/transcript" || true)
[ -z "$bad" ] || fail "the scripted server recorded failures: $(sed -n 1,5p <<<"$bad")"
[ "$src" -eq 0 ] || fail "the scripted server exited $src"
[ -s "$tmp/smtpd.err" ] && { cat "$tmp/smtpd.err" >&2; fail "scripted server stderr"; }

# per MX domain: 102 RCPT over 2 connections
for k in $(seq 1 $providers); do
	a=$net.$k
	[ "$k" -eq $providers ] && [ "$ipv6" -eq 1 ] && a=::1
	c=$(awk -v a="$a" '$2 == a && $4 == "connect"' "$tmp/events" | wc -l)
	r=$(awk -v a="$a" '$2 == a && $4 == "RCPT"' "$tmp/events" | wc -l)
	[ "$c" -eq 2 ] || fail "MX p$k ($a): $c connections, want 2 (100 RCPT per session)"
	[ "$r" -eq 102 ] || fail "MX p$k ($a): $r RCPT, want 102 (100 addresses + 2 catch-all probes)"
done
echo "PASS: 1000 addresses, 10 MX domains x 2 connections x 102 RCPT, no 503, ipv6=$ipv6, ${elapsed}s"
