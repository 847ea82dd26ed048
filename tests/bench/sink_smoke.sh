#!/usr/bin/env bash
# shellcheck disable=SC2154  # PID_<name> variables are set by start_sink through eval
# sink_smoke.sh — mxsift-smtp-sink does what scripts/bench relies on:
#  - listens on every address of a loopback range (ports chosen by the
#    kernel here, so the test never collides with a world on port 25) and
#    refuses a non-loopback address;
#  - the dialogue: greeting, EHLO with/without PIPELINING, RCPT accepted by
#    local-part prefix (ok-), 550 5.1.1 otherwise, catch-all, 503 for MAIL before
#    EHLO, 221 and close on QUIT;
#  - per-reply latency on timers: a command waits -d MS for its reply, a
#    pipelined group is answered after one delay, not three;
#  - counters (SIGUSR1 and at exit): connections, commands by verb, turns,
#    503s, peak concurrent sessions (200 held open at once).
#
# usage: sink_smoke.sh MXSIFT_SMTP_SINK
set -euo pipefail
sink=$1
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# start_sink NAME ARGS...: run the sink, wait for "ready", set PID_<NAME>.
start_sink() {
	local name=$1
	shift
	"$sink" -T 60 -s "$tmp/$name.stats" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids+=($!)
	eval "PID_$name=$!"
	for _ in $(seq 1 50); do grep -q '^ready ' "$tmp/$name.out" && return 0; sleep 0.1; done
	cat "$tmp/$name.err" >&2
	fail "sink $name did not get ready"
}
# port NAME IP: the kernel-chosen port of the sink NAME on IP.
port() { awk -v ip="$2" '$1 == "listen" { split($2, a, ":"); if (a[1] == ip) print a[2] }' "$tmp/$1.out"; }
stat_of() { sed -n "s/^$2=//p" "$tmp/$1.stats"; }
# stop NAME: SIGTERM, wait, counters are in $tmp/NAME.stats
stop() {
	local pid_var=PID_$1
	kill -TERM "${!pid_var}"
	wait "${!pid_var}" || fail "sink $1 exited non-zero"
}

# chat IP PORT 'CMDS' : send CMDS (with \r\n escapes) in one write after the
# greeting, print every reply line until the server closes.
chat() {
	timeout 10 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
		IFS= read -r g <&3; printf "%s\n" "${g%$'"'"'\r'"'"'}"
		printf -v m "$2"; printf "%s" "$m" >&3    # one write: printf "$2" writes per line
		while IFS= read -r l <&3; do printf "%s\n" "${l%$'"'"'\r'"'"'}"; done' "$1" "$2" "$3"
}
now_ms() { date +%s%3N; }

# ---- a range of listeners; loopback only -------------------------------------
start_sink a -l 127.0.0.45-127.0.0.54:0
[ "$(grep -c '^listen 127\.0\.0\.' "$tmp/a.out")" -eq 10 ] || fail "expected 10 listeners: $(cat "$tmp/a.out")"
grep -qx 'ready 10' "$tmp/a.out" || fail "ready line: $(tail -1 "$tmp/a.out")"
if "$sink" -T 1 -l 10.0.0.1:0 >/dev/null 2>"$tmp/bad.err"; then fail "a non-loopback address was accepted"; fi
grep -q 'only loopback' "$tmp/bad.err" || fail "no reason given: $(cat "$tmp/bad.err")"

# ---- dialogue ------------------------------------------------------------------
p=$(port a 127.0.0.50)
out=$(chat 127.0.0.50 "$p" 'EHLO t\r\nMAIL FROM:<>\r\nRCPT TO:<ok-1@x.test>\r\nRSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<nobody@x.test>\r\nQUIT\r\n')
expected='220 sink.mxsift.test ESMTP mxsift-smtp-sink
250-sink.mxsift.test
250-PIPELINING
250-SIZE 10240000
250-8BITMIME
250 ENHANCEDSTATUSCODES
250 2.1.0 Ok
250 2.1.5 Ok
250 2.0.0 Ok
250 2.1.0 Ok
550 5.1.1 <nobody@x.test>: Recipient address rejected: User unknown
221 2.0.0 Bye'
[ "$out" = "$expected" ] || fail "dialogue differs:
$out"
out=$(chat 127.0.0.45 "$(port a 127.0.0.45)" 'MAIL FROM:<>\r\nHELO t\r\nRCPT TO:<ok-@x.test>\r\nQUIT\r\n')
grep -q '^503 5.5.1' <<<"$out" || fail "MAIL before HELO not answered 503: $out"
[ "$(grep -c '^503 ' <<<"$out")" -eq 2 ] || fail "RCPT without MAIL not answered 503: $out"
kill -USR1 "$PID_a"
for _ in $(seq 1 20); do [ -s "$tmp/a.stats" ] && break; sleep 0.1; done
[ "$(stat_of a connections)" = 2 ] || fail "connections $(stat_of a connections), expected 2"
[ "$(stat_of a replies_503)" = 2 ] || fail "replies_503 $(stat_of a replies_503), expected 2"
[ "$(stat_of a cmd_rcpt)" = 3 ] || fail "cmd_rcpt $(stat_of a cmd_rcpt), expected 3"
[ "$(stat_of a rcpt_ok)" = 1 ] && [ "$(stat_of a rcpt_rejected)" = 1 ] || fail "rcpt_ok/rejected"
[ "$(stat_of a quit_missing)" = 0 ] || fail "quit_missing $(stat_of a quit_missing)"

# ---- 200 sessions at once ---------------------------------------------------------
fds=()
for i in $(seq 1 200); do
	ip=127.0.0.$((45 + i % 10))
	exec {fd}<>"/dev/tcp/$ip/$(port a "$ip")" || fail "connect $i"
	fds+=("$fd")
done
sleep 0.3
kill -USR1 "$PID_a"
sleep 0.3
[ "$(stat_of a sessions_open)" -eq 200 ] || fail "sessions_open $(stat_of a sessions_open), expected 200"
for fd in "${fds[@]}"; do exec {fd}>&-; done
stop a
[ "$(stat_of a sessions_peak)" -ge 200 ] || fail "sessions_peak $(stat_of a sessions_peak)"
[ "$(stat_of a connections)" -eq 202 ] || fail "connections $(stat_of a connections), expected 202"
[ "$(stat_of a quit_missing)" -eq 200 ] || fail "quit_missing $(stat_of a quit_missing), expected 200"

# ---- no PIPELINING, catch-all, latency ---------------------------------------------
start_sink b -l 127.0.0.45:0 -P -C -d 200
p=$(port b 127.0.0.45)
t0=$(now_ms)
out=$(chat 127.0.0.45 "$p" 'EHLO t\r\nMAIL FROM:<>\r\nRCPT TO:<anyone@x.test>\r\nQUIT\r\n')
t1=$(now_ms)
grep -q '^250 2.1.5' <<<"$out" || fail "catch-all did not accept: $out"
grep -q PIPELINING <<<"$out" && fail "-P still advertises PIPELINING"
# greeting (200) + one pipelined group (200): about 400 ms, never 1000 (five delays)
el=$((t1 - t0))
[ "$el" -ge 390 ] && [ "$el" -lt 900 ] || fail "latency model: $el ms for greeting + one group at 200 ms"
stop b
[ "$(stat_of b pipelining_violations)" -eq 3 ] || fail "pipelining_violations $(stat_of b pipelining_violations), expected 3 (commands sent ahead of a reply)"

# ---- turns: one per client round trip -------------------------------------------------
start_sink c -l 127.0.0.45:0 -d 20
p=$(port c 127.0.0.45)
timeout 10 bash -c 'exec 3<>"/dev/tcp/$0/$1"
	rd() { while IFS= read -r l <&3; do [[ ${l:3:1} == " " ]] && return 0; done; return 1; }
	# one write per call (a group in two writes would meet Nagle on the
	# client side and arrive as two turns)
	w() { printf -v m "$1"; printf "%s" "$m" >&3; }
	rd                                        # greeting
	w "EHLO t\r\n"; rd                        # turn 1
	w "MAIL FROM:<>\r\nRCPT TO:<ok-a@x>\r\n"; rd; rd   # turn 2
	w "RSET\r\n"; rd                          # turn 3
	w "MAIL FROM:<>\r\n"; rd                  # turn 4
	w "RCPT TO:<ok-2@x>\r\n"; rd               # turn 5
	w "QUIT\r\n"; rd                          # turn 6' 127.0.0.45 "$p" || fail "turns client"
stop c
[ "$(stat_of c turns)" -eq 6 ] || fail "turns $(stat_of c turns), expected 6"
[ "$(stat_of c cmd_quit)" -eq 1 ] && [ "$(stat_of c quit_missing)" -eq 0 ] || fail "QUIT counters"
[ "$(stat_of c bytes_in)" -gt 60 ] && [ "$(stat_of c bytes_out)" -gt 100 ] || fail "byte counters"

echo "PASS: sink listeners, dialogue, counters, 200 sessions, latency, turns"
