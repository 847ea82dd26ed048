#!/usr/bin/env bash
# run.sh — run one transcript scenario (tests/transcript/*.scn).
#
# usage: run.sh SMTPD PROBE SCENARIO.scn
#   SMTPD  = path to mxsift-smtpd-script, PROBE = path to mxsift-probe.
#
# A scenario file has sections, each opened by a line "[name]":
#   [description]  free text (printed on failure)
#   [listen]       optional: the addresses the server listens on, one a line,
#                  all on one port (default 127.0.0.1); the first is the
#                  probe's last --host, the others are for a scenario's own
#                  --host options (MX failover between hosts).  "::1" needs
#                  IPv6 on lo, else the scenario is skipped with exit 77
#   [args]         mxsift-probe arguments (whitespace-separated, any number of
#                  lines; "" is an empty argument; printf %b escapes such as
#                  \r \n \x20 are expanded); --port and --catch-all-local
#                  catchallprobeqzx are added before them, --host LISTEN after
#                  them (so a scenario's own --host options come first: MX
#                  hosts to fail over from)
#   [server]       the mxsift-smtpd-script script (see smtpd_script.c)
#   [transcript]   the exact lines the client must send, as the server records
#                  them ("C1> EHLO probe.mxsift.test", "C1 * tls", ...)
#   [verdicts]     the exact mxsift-probe output lines (bytes outside printable
#                  ASCII written as \xHH)
#   [log]          optional: POSIX extended regexes, one a line, each of which
#                  must match a line of the probe's log (stderr, info level):
#                  what the wire cannot show (a connect that timed out rather
#                  than was refused)
# Blank lines in [transcript] and [verdicts] are ignored.
# Catch-all detection is on (as in production): after the first accepted
# address of a domain the transcript shows one more RSET/MAIL/RCPT for
# catchallprobeqzx@DOMAIN, and the stats line counts that RCPT.
#
# The server gets a free port (port 0), the probe runs against it bounded by
# MXSIFT_SCN_TIMEOUT seconds (default 15), then the server is stopped with
# SIGTERM and both outputs are diffed.  Exit 0 on a match, 1 on a mismatch
# (unified diffs on stdout), 2 when the scenario cannot be run, 77 when it
# needs IPv6 and ::1 is missing.
# MXSIFT_SCN_DEBUG=1 passes --debug to the probe and shows its stderr;
# MXSIFT_SCN_KEEP=1 keeps the work directory.
set -u

if [ $# -ne 3 ]; then
	echo "usage: $0 SMTPD PROBE SCENARIO" >&2
	exit 2
fi
smtpd=$1 probe=$2 scn=$3
name=$(basename "$scn" .scn)
bound=${MXSIFT_SCN_TIMEOUT:-15}
work=$(mktemp -d "${TMPDIR:-/tmp}/mxsift-scn-$name.XXXXXX") || exit 2
spid=

cleanup() {
	if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
		kill -KILL "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
	fi
	if [ "${MXSIFT_SCN_KEEP:-0}" = 1 ]; then
		echo "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# section NAME: the lines of section [NAME]
section() {
	awk -v h="[$1]" '$0 == h { on = 1; next } /^\[[a-z-]+\]$/ { on = 0; next } on' "$scn"
}

for s in args server transcript verdicts; do
	if ! grep -qx "\[$s\]" "$scn"; then
		echo "$scn: missing section [$s]" >&2
		exit 2
	fi
done
mapfile -t listens < <(section listen | sed 's/[[:space:]]//g; /^$/d')
[ ${#listens[@]} -eq 0 ] && listens=(127.0.0.1)
listen=${listens[0]}
sargs=()
for a in "${listens[@]}"; do
	if [ "$a" = "::1" ] && ! grep -q 'inet6 ::1/' <<<"$(ip -6 addr show lo 2>/dev/null)"; then
		echo "SKIP transcript.$name: no ::1 on lo"
		exit 77
	fi
	sargs+=(-a "$a")
done
section transcript | sed '/^[[:space:]]*$/d' >"$work/expected.transcript"
section verdicts | sed '/^[[:space:]]*$/d' >"$work/expected.verdicts"

args=()
set -f
while IFS= read -r line; do
	case $line in \#*) continue ;; esac
	for tok in $line; do
		[ "$tok" = '""' ] && tok=
		# \r \n \xHH ... let a scenario pass hostile bytes
		printf -v tok '%b' "$tok"
		args+=("$tok")
	done
done < <(section args)
set +f
# The catch-all probe's local part is random in real runs; here it is fixed
# so that transcripts are exact.  A scenario's own [args] may override it
# (later options win) or turn the check off (--no-catch-all).
args=(--catch-all-local catchallprobeqzx "${args[@]}")
[ "${MXSIFT_SCN_DEBUG:-0}" = 1 ] && args=(--debug "${args[@]}")

"$smtpd" "${sargs[@]}" -T $((bound + 10)) -t "$work/transcript" "$scn" >"$work/port" 2>"$work/smtpd.err" &
spid=$!
port=
for _ in $(seq 1 100); do
	port=$(awk '$1 == "port" { print $2 }' "$work/port")
	[ -n "$port" ] && break
	kill -0 "$spid" 2>/dev/null || break
	sleep 0.05
done
if [ -z "$port" ]; then
	echo "$name: the scripted server did not start:" >&2
	cat "$work/smtpd.err" >&2
	exit 2
fi

start=$(date +%s%N)
timeout -k 2 "$bound" "$probe" --port "$port" "${args[@]}" --host "$listen" \
	>"$work/verdicts.raw" 2>"$work/probe.err"
prc=$?
# Bytes outside printable ASCII in the output (an address given with
# control characters) are compared as \xHH, as the transcript writes them.
perl -pe 's/([^\x20-\x7e\n])/sprintf("\\x%02X", ord($1))/ge' \
	<"$work/verdicts.raw" >"$work/verdicts"
elapsed=$((($(date +%s%N) - start) / 1000000))

kill -TERM "$spid" 2>/dev/null
wait "$spid"
src=$?
spid=
if [ "$src" -eq 2 ]; then
	echo "$name: the scripted server failed:" >&2
	cat "$work/smtpd.err" >&2
	exit 2
fi

fail=0
if ! diff -u --label "expected transcript" --label "client sent" \
	"$work/expected.transcript" "$work/transcript" >"$work/transcript.diff"; then
	fail=1
fi
if ! diff -u --label "expected verdicts" --label "probe printed" \
	"$work/expected.verdicts" "$work/verdicts" >"$work/verdicts.diff"; then
	fail=1
fi
if [ "$prc" -eq 124 ] || [ "$prc" -eq 137 ]; then
	echo "probe did not finish within ${bound}s (killed)" >>"$work/verdicts.diff"
	fail=1
elif [ "$prc" -ne 0 ]; then
	# mxsift-probe exits 0 whenever it ran; anything else is a crash,
	# a usage error or a sanitizer report.
	echo "probe exited with status $prc" >>"$work/verdicts.diff"
	fail=1
fi
while IFS= read -r pat; do
	if ! grep -Eq -- "$pat" "$work/probe.err"; then
		echo "probe log has no line matching: $pat" >>"$work/verdicts.diff"
		fail=1
	fi
done < <(section log | sed '/^[[:space:]]*$/d')
# The server writes to stderr only when something went wrong with it
# (a sanitizer report included).
if [ -s "$work/smtpd.err" ]; then
	{ echo "--- scripted server stderr"; cat "$work/smtpd.err"; } >>"$work/transcript.diff"
	fail=1
fi

if [ "$fail" -eq 0 ]; then
	echo "PASS transcript.$name (${elapsed} ms)"
	[ "${MXSIFT_SCN_DEBUG:-0}" = 1 ] && cat "$work/probe.err"
	exit 0
fi
echo "FAIL transcript.$name (${elapsed} ms, probe exit $prc)"
section description | sed 's/^/  | /'
cat "$work/transcript.diff" "$work/verdicts.diff"
if [ -s "$work/probe.err" ]; then
	echo "--- probe stderr (last 30 lines)"
	tail -n 30 "$work/probe.err"
fi
exit 1
