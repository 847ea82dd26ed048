#!/usr/bin/env bash
# test_timeouts.sh — the SMTP timeouts as a user sets them: --connect-timeout,
# --greeting-timeout, --command-timeout on `mxsift check` and `mxsift-worker`,
# from flags, the configuration file and MXSIFT_* variables.
#
#  1. Usage errors, before any work: 0, a negative, garbage, a fraction,
#     empty, over 1h, for every flag of both commands, from a flag, the file
#     and the environment: exit 2 and a message naming the option (or the
#     FILE:LINE / variable) and what to write instead.
#  2. A greeting 3 s late (a tarpitting receiver): --greeting-timeout 1s
#     gives unknown/timeout ("timeout in GREETING") in well under 3 s;
#     --greeting-timeout 10s waits for it and the address is deliverable.
#     The same 1 s from a shared key in the file and from
#     MXSIFT_GREETING_TIMEOUT; a flag beats the file.
#  3. An RCPT reply 3 s late: --command-timeout 1s gives unknown/timeout
#     ("timeout in RCPT") in well under 3 s.
#  4. An RCPT reply dripped a byte every 250 ms (each byte far inside any
#     idle timeout; the whole reply would take 10 s): --command-timeout 2s
#     ends it 2 s after the RCPT, not 2 s after the last byte.
#
# Each scripted server (tests/tools/smtpd_script.c) listens on the world's MX
# address (MXSIFT_TEST_MX_IP, the MX of alpha.test) on a port of its own;
# check is pointed at it with --smtp-port.  Needs the test world's DNS.
#
# usage: test_timeouts.sh MXSIFT MXSIFT_WORKER SMTPD_SCRIPT
set -euo pipefail
mxsift=$1 worker=$2 smtpd=$3
if [ -z "${MXSIFT_TEST_DNS:-}" ]; then
	echo "SKIP: test services not running (scripts/services up)"; exit 77
fi
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
mx_ip=${MXSIFT_TEST_MX_IP:-127.0.0.10}

tmp=$(mktemp -d)
spids=()
cleanup() {
	local p
	for p in "${spids[@]}"; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
cd "$tmp"
# No configuration from the machine or the caller's environment.
unset MXSIFT_CONFIG
for v in $(env | awk -F= '/^MXSIFT_/ && !/^MXSIFT_TEST_/ { print $1 }'); do unset "$v"; done
export MXSIFT_CONFIG=/dev/null

# ---- 1. usage errors ---------------------------------------------------------------
# usage_err NAME WANT_TEXT CMD...: exit 2, WANT_TEXT in stderr, nothing on stdout
usage_err() {
	local name=$1 want=$2 rc=0
	shift 2
	timeout 20 "$@" >"$name.out" 2>"$name.err" </dev/null || rc=$?
	[ "$rc" -eq 2 ] || { cat "$name.err" >&2; fail "$name: exit $rc, want 2"; }
	grep -qF -- "$want" "$name.err" || fail "$name: want '$want' in: $(cat "$name.err")"
	[ ! -s "$name.out" ] || fail "$name: output on stdout: $(head -c 200 "$name.out")"
}
printf 'email\nalice@alpha.test\n' >list.csv
for opt in connect-timeout greeting-timeout command-timeout; do
	for prog in check worker; do
		if [ $prog = check ]; then cmd=("$mxsift" check list.csv); else cmd=("$worker"); fi
		usage_err "$prog-$opt-zero" "--$opt must be more than 0" "${cmd[@]}" --$opt 0
		usage_err "$prog-$opt-0s" "--$opt must be more than 0" "${cmd[@]}" --$opt=0s
		usage_err "$prog-$opt-neg" "--$opt wants a duration such as 30s" "${cmd[@]}" --$opt -5s
		usage_err "$prog-$opt-junk" "not 'soon'" "${cmd[@]}" --$opt soon
		usage_err "$prog-$opt-frac" "--$opt wants a duration" "${cmd[@]}" --$opt 1.5s
		usage_err "$prog-$opt-empty" "--$opt wants a duration" "${cmd[@]}" --$opt=
		usage_err "$prog-$opt-big" "--$opt must be at most 1h" "${cmd[@]}" --$opt 2h
	done
done
# The file and the environment name the place to fix.
printf '# timeouts\ngreeting-timeout = 0\n' >zero.conf
usage_err file-shared "zero.conf:2: greeting-timeout must be more than 0" \
	"$mxsift" check --config zero.conf list.csv
usage_err file-shared-worker "zero.conf:2: greeting-timeout must be more than 0" \
	"$worker" --config zero.conf
printf '[check]\ncommand-timeout = 10 s\n' >space.conf
usage_err file-section "space.conf:2: command-timeout wants a duration" \
	"$mxsift" check --config space.conf list.csv
usage_err env-shared "MXSIFT_CONNECT_TIMEOUT: connect-timeout wants a duration" \
	env MXSIFT_CONNECT_TIMEOUT=-1 "$mxsift" check list.csv
usage_err env-section "MXSIFT_WORKER_COMMAND_TIMEOUT: command-timeout must be more than 0" \
	env MXSIFT_WORKER_COMMAND_TIMEOUT=0ms "$worker"
# --help of both documents the three flags with their defaults.
"$mxsift" check --help >check.help
"$worker" --help >worker.help
for f in "--connect-timeout DUR" "--greeting-timeout DUR" "--command-timeout DUR" \
	"TCP connect to one MX address (default 30s)" "from the connect (default" \
	"(default 60s; RSET and TLS 30s); QUIT waits at most"; do
	grep -qF -- "$f" check.help || fail "check --help lacks '$f'"
	grep -qF -- "$f" worker.help || fail "mxsift-worker --help lacks '$f'"
done

# ---- scripted servers -------------------------------------------------------------
# server NAME: start NAME.scr on $mx_ip, port 0; sets $port
server() {
	local name=$1 i
	"$smtpd" -a "$mx_ip" -p 0 -T 110 -t "$name.transcript" "$name.scr" \
		>"$name.port" 2>"$name.err" &
	spids+=($!)
	port=
	for i in $(seq 1 100); do
		port=$(awk '$1 == "port" { print $2 }' "$name.port" 2>/dev/null) || true
		[ -n "$port" ] && return 0
		kill -0 "${spids[-1]}" 2>/dev/null || break
		sleep 0.05
	done
	fail "$name: the scripted server did not start: $(cat "$name.err")"
}
echo alice@alpha.test >users
# A greeting 3 s after the connect, then a correct server.
printf 'users %s/users\nconn *\npause 3000\nserve\n' "$tmp" >greet.scr
server greet
greet_port=$port
# An RCPT reply 3 s after the RCPT.
cat >rcpt.scr <<'EOF'
conn *
reply 220 slow-rcpt.test ESMTP
expect EHLO
reply 250 slow-rcpt.test
expect MAIL FROM:
reply 250 2.1.0 Ok
expect RCPT TO:
pause 3000
reply 250 2.1.5 Ok
expect-close 5000
EOF
server rcpt
rcpt_port=$port
# An RCPT reply of 40 bytes, one every 250 ms: 10 s for the whole line.
cat >drip.scr <<'EOF'
conn *
reply 220 drip.test ESMTP
expect EHLO
reply 250 drip.test
expect MAIL FROM:
reply 250 2.1.0 Ok
expect RCPT TO:
trickle 1 250 250 2.1.5 Ok, one byte a quarter second\r\n
expect-close 5000
EOF
server drip
drip_port=$port

# run NAME PORT ARGS...: check list.csv against the server on PORT; sets
# $ms (wall time) and $got ("status/reason detail").  Extra ARGS go last.
run() {
	local name=$1 p=$2 rc=0 t0
	shift 2
	t0=$(now_ms)
	timeout 60 "$mxsift" check list.csv --format jsonl -o "$name.jsonl" --quiet \
		--dns "$MXSIFT_TEST_DNS" --smtp-port "$p" --tls off --lanes none \
		--helo probe.mxsift.test --mail-from verify@mxsift.test "$@" 2>"$name.err" || rc=$?
	ms=$(($(now_ms) - t0))
	[ "$rc" -eq 0 ] || { cat "$name.err" >&2; fail "$name: exit $rc"; }
	[ "$(wc -l <"$name.jsonl")" -eq 1 ] || fail "$name: $(wc -l <"$name.jsonl") rows, want 1"
	got=$(jq -r '.status + "/" + .reason + " " + .detail' "$name.jsonl")
	times+=" $name=${ms}ms"
}
times=
# timed_out NAME STATE MAX_MS: unknown/timeout in STATE, within MAX_MS
timed_out() {
	[[ "$got" == "unknown/timeout timeout in $2"* ]] || fail "$1: got '$got', want unknown/timeout in $2"
	[ "$ms" -lt "$3" ] || fail "$1: took $ms ms, want < $3 ms"
}

# ---- 2. the greeting ------------------------------------------------------------------
run greet_1s "$greet_port" --greeting-timeout 1s
timed_out greet_1s GREETING 2800
run greet_10s "$greet_port" --greeting-timeout 10s
[[ "$got" == deliverable/accepted* ]] ||
	fail "greet_10s: got '$got', want deliverable/accepted"
[ "$ms" -ge 2900 ] || fail "greet_10s: $ms ms: the greeting came after 3 s"
printf 'greeting-timeout = 1s\n' >one.conf
run greet_file "$greet_port" --config one.conf
timed_out greet_file GREETING 2800
MXSIFT_GREETING_TIMEOUT=1000ms run greet_env "$greet_port"
timed_out greet_env GREETING 2800
run greet_flag_wins "$greet_port" --config one.conf --greeting-timeout 10s
[[ "$got" == deliverable/accepted* ]] || fail "greet_flag_wins: got '$got' (the file's 1s won over the flag)"

# ---- 3. a command -------------------------------------------------------------------
run rcpt_1s "$rcpt_port" --command-timeout 1s
timed_out rcpt_1s RCPT 2800

# ---- 4. a reply that drips ------------------------------------------------------------
run drip_2s "$drip_port" --command-timeout 2s --connect-timeout 5s
timed_out drip_2s RCPT 4000
[ "$ms" -ge 1900 ] || fail "drip_2s: $ms ms, before the 2 s deadline"

# The servers saw nothing after the RCPT that timed out (no command in the
# middle of a reply: the session was dropped).  Transcripts are written
# when a server exits.
for p in "${spids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
spids=()
for s in rcpt drip; do
	last=$(grep '^C[0-9]*>' "$s.transcript" | tail -n 1)
	[ "$last" = 'C1> RCPT TO:<alice@alpha.test>' ] || fail "$s: last line from the client: '$last'"
done
echo "PASS: timeouts: usage errors (flags, file, env), greeting 1s/10s, RCPT 1s, dripping RCPT 2s;$times"
