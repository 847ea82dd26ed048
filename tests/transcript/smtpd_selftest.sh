#!/usr/bin/env bash
# smtpd_selftest.sh — tests of mxsift-smtpd-script itself, with bash's
# /dev/tcp as a deliberately misbehaving client.  The transcript scenarios
# trust the server to notice early data, pipelining without PIPELINING,
# bare LF, a missing line end, a failed expect and a client that vanished;
# this checks that it does, and that it sends exactly what the script says.
#
# usage: smtpd_selftest.sh SMTPD      exit 0 when every check passed
set -u
smtpd=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/mxsift-smtpd-selftest.XXXXXX") || exit 2
spid=
pass=0 fail=0
trap 'if [ -n "$spid" ]; then kill -KILL "$spid" 2>/dev/null; fi; rm -rf "$work"' EXIT

# start SCRIPT-TEXT [OPTION...]: start the server on a free port; sets
# $port, $spid
start() {
	printf '%s\n' "$1" >"$work/s.scn"
	shift
	: >"$work/port"
	"$smtpd" -T 10 -t "$work/t" "$@" "$work/s.scn" >"$work/port" 2>"$work/err" &
	spid=$!
	port=
	for _ in $(seq 1 100); do
		port=$(awk '$1 == "port" { print $2 }' "$work/port")
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	echo "server did not start: $(cat "$work/err")"
	return 1
}

# finish: wait for the server (it exits after max-conns); sets $src
finish() {
	local i
	for i in $(seq 1 100); do
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	kill -TERM "$spid" 2>/dev/null
	wait "$spid"
	src=$?
	spid=
}

# check NAME COND-DESCRIPTION: record the result of the last test command
check() {
	if [ "$1" -eq 0 ]; then
		pass=$((pass + 1))
		echo "ok   $2"
	else
		fail=$((fail + 1))
		echo "FAIL $2"
		echo "---- transcript:"
		cat "$work/t" 2>/dev/null
		echo "----"
	fi
}

has() { grep -qxF -- "$1" "$work/t"; }

# 1. A clean exchange: exact bytes out (trickle, split, escapes), exit 0.
start 'max-conns 1
conn 1
trickle 2 10 220 hi\r\n
expect EHLO
split 20 3,9 250-a\r\n250 b\r\n
expect QUIT
reply 221 bye
close' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
printf 'EHLO x\r\n' >&3
IFS= read -r -t 3 l1 <&3
IFS= read -r -t 3 l2 <&3
printf 'QUIT\r\n' >&3
IFS= read -r -t 3 l3 <&3
exec 3>&-
finish
[ "$g" = $'220 hi\r' ] && [ "$l1" = $'250-a\r' ] && [ "$l2" = $'250 b\r' ] &&
	[ "$l3" = $'221 bye\r' ]
check $? "trickle/split deliver the exact bytes"
[ "$src" -eq 0 ] && has "C1> EHLO x" && has "C1> QUIT" && [ "$(wc -l <"$work/t")" -eq 2 ]
check $? "clean exchange: exit 0, two lines recorded"

# 2. Talking before the greeting is complete.
start 'max-conns 1
conn 1
send 220-wait\r\n
pause 300
reply 220 ok
expect EHLO
reply 250 ok
close' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'EHLO early\r\n' >&3
sleep 0.5
exec 3>&-
finish
[ "$src" -eq 1 ] && has "C1 ! early data: client sent before the server's reply was complete" &&
	has "C1> EHLO early"
check $? "early data before the end of a multi-line greeting"

# 3. Line endings: bare LF, escapes, bytes without a line end at EOF.
start 'max-conns 1
conn 1
reply 220 ok
pause 500
close' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
printf 'EHLO a\nMAIL\001 \\\r\nQUI' >&3
exec 3>&-
finish
has "C1>lf EHLO a" && has 'C1> MAIL\x01 \\' && has "C1>eof QUI"
check $? "bare LF, control bytes, backslash and a missing line end are marked"

# 4. Pipelining while the connection is strict.
start 'max-conns 1
conn 1
strict 100
reply 220 ok
expect MAIL
reply 250 ok
expect RCPT
reply 250 ok
close' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
printf 'MAIL FROM:<>\r\n' >&3
sleep 0.02
printf 'RCPT TO:<a@b>\r\n' >&3
sleep 0.5
exec 3>&-
finish
[ "$src" -eq 1 ] &&
	has "C1 ! pipelining without PIPELINING: line sent before the previous command was answered"
check $? "strict: a command sent before the previous reply is caught"

# 5. An expect that does not match, and a client that leaves early.
start 'max-conns 1
conn 1
reply 220 ok
expect HELO
reply 250 ok
expect QUIT
reply 221 bye
close' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
printf 'EHLO x\r\n' >&3
IFS= read -r -t 3 l1 <&3
exec 3>&-
finish
has 'C1 ! script line 4: expected "HELO..."' &&
	grep -q '^C1 ! client closed while the script still expected a line (script line 6: "QUIT")' "$work/t"
check $? "expect mismatch and a vanished client are failures"

# 6. max-conns: the second connection is refused and the server exits.
start 'max-conns 1
conn *
reply 220 ok
close' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
exec 3>&-
sleep 0.2
( exec 4<>"/dev/tcp/127.0.0.1/$port" ) 2>/dev/null
refused=$?
finish
[ "$refused" -ne 0 ] && [ "$src" -eq 0 ]
check $? "max-conns: further connections refused, server exits by itself"

# 7. A connection without a script, and quiet periods.
start 'max-conns 2
conn 1
reply 220 ok
quiet 300
close' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
printf 'NOOP\r\n' >&3
sleep 0.4
exec 3>&-
exec 3<>"/dev/tcp/127.0.0.1/$port"
sleep 0.2
exec 3>&-
finish
grep -q '^C1 ! client sent data during a quiet period' "$work/t" &&
	has "C2 ! unexpected connection (no script for it)"
check $? "quiet periods and unexpected connections are failures"

# 8. Only loopback addresses are served.
"$smtpd" -a 192.0.2.1 -p 0 "$work/s.scn" >/dev/null 2>"$work/err"
[ $? -eq 2 ] && grep -q "not a loopback address" "$work/err"
check $? "refuses to listen on a non-loopback address"

# 9. Serve mode: Postfix-like answers, 503 for bad sequences (counted in
#    the event log), users file and rcpt rules, DATA recorded as a failure.
printf 'alice@x.test\n' >"$work/users"
start "users $work/users
rcpt ^grey@ 450 4.2.0 Greylisted
max-conns 1
conn *
serve" -e "$work/ev" || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
r=()
say() { printf '%s\r\n' "$1" >&3; local l; while IFS= read -r -t 3 l <&3; do
	r+=("${l%$'\r'}"); [ "${l:3:1}" = " " ] && break; done; }
IFS= read -r -t 3 g <&3
say 'MAIL FROM:<>'; say 'EHLO c'; say 'RCPT TO:<alice@x.test>'; say 'MAIL FROM:<>'
say 'MAIL FROM:<>'; say 'RCPT TO:<Alice@X.test>'; say 'RCPT TO:<bob@x.test>'
say 'RCPT TO:<grey@x.test>'; say 'DATA'; say 'VRFY x'; say 'RSET'; say 'QUIT'
exec 3>&-
finish
codes=$(printf '%s\n' "${r[@]}" | grep -v '^250-' | cut -c1-3 | tr '\n' ' ')
[ "$codes" = "503 250 503 250 503 250 550 450 554 502 250 221 " ] &&
	[ "$src" -eq 1 ] && has "C1 ! DATA sent (a verifier must never send DATA)" &&
	grep -q ' stats connections=1 commands=12 replies_503=3$' "$work/ev" &&
	grep -q '^[0-9]* 127.0.0.1 C1 RCPT 250 Alice@X.test$' "$work/ev"
check $? "serve: sequence errors get 503 and are counted; users, rules, DATA, 502 ($codes)"

# 10. starttls-garbage: the "handshake" is answered with a plaintext line,
#     the client's bytes after STARTTLS are not recorded.
start 'max-conns 1
conn 1
reply 220 ok
expect STARTTLS
reply 220 go ahead
starttls-garbage
expect-close 2000' || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
printf 'STARTTLS\r\n' >&3
IFS= read -r -t 3 l1 <&3
printf '\026\003\001 not a real ClientHello\r\n' >&3
IFS= read -r -t 3 l2 <&3
exec 3>&-
finish
[ "$l1" = $'220 go ahead\r' ] && [ "$l2" = $'220 this is not TLS\r' ] && [ "$src" -eq 0 ] &&
	has "C1 * tls-garbage" && ! grep -q ClientHello "$work/t" && [ "$(wc -l <"$work/t")" -eq 2 ]
check $? "starttls-garbage answers the handshake with plaintext, records none of it"

# 11. blackhole: a connect to it neither succeeds nor is refused (it times
#     out), while the real listener on the same port serves.
start 'max-conns 1
blackhole 127.0.0.2
conn 1
reply 220 ok
close' || exit 1
timeout 1 bash -c "exec 4<>/dev/tcp/127.0.0.2/$port" 2>/dev/null
bh=$?
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 3 g <&3
exec 3>&-
finish
[ "$bh" -eq 124 ] && [ "$g" = $'220 ok\r' ] && [ "$src" -eq 0 ]
check $? "blackhole: connect times out (rc $bh), the listener beside it serves"

# 12. local: which address the client connected to.
start 'max-conns 2
conn 1
local 127.0.0.1
reply 220 ok
close
conn 2
local 127.0.0.2
reply 220 ok
close' -a 127.0.0.1 -a 127.0.0.3 || exit 1
for a in 127.0.0.1 127.0.0.3; do
	exec 3<>"/dev/tcp/$a/$port"
	IFS= read -r -t 3 g <&3
	exec 3>&-
done
finish
[ "$src" -eq 1 ] && ! grep -q '^C1 !' "$work/t" &&
	has "C2 ! script line 7: connection to 127.0.0.3, want 127.0.0.2"
check $? "local: a connection to another address than the script's is a failure"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
