#!/usr/bin/env bash
# test_progress.sh — progress output of `mxsift check` on stderr: periodic
# key=value lines when stderr is a file or pipe, a bar redrawn in place on a
# terminal (a pseudo-terminal from util-linux script(1)), the table's colour
# on a terminal and NO_COLOR, --quiet.
#
# The run is made long by mxsift-smtpd-script on the world's MX address: it
# holds the one RCPT's reply for 3.5 s (the other rows need no SMTP: null
# MX, NXDOMAIN, invalid).  MXSIFT_PROGRESS_INTERVAL=1 asks for a line a
# second instead of every 10 s.
#
# Asserts:
#  - pipe, interval 1: every stderr line that is not a row report or the
#    summary is "progress key=value ..." with the documented keys; at
#    least one line before the final one, written while the RCPT was held
#    (verified < 4); the final line has verified == total == 4, eta=0:00;
#  - pipe, the default interval (10 s): the final line only; a bad
#    MXSIFT_PROGRESS_INTERVAL is reported and the default kept;
#  - terminal: the bar is drawn ("\r[" ... "rows/s  ETA") at least twice,
#    the last one full (20 '#', 4/4); no "progress" line; the table's status
#    words are coloured; with NO_COLOR=1 no SGR colour sequence at all;
#  - --quiet: no progress line on a pipe, no bar on a terminal.
#
# usage: test_progress.sh MXSIFT MXSIFT_SMTPD_SCRIPT
set -euo pipefail
mxsift=$1 smtpd=$2
if [ -z "${MXSIFT_TEST_DNS:-}" ] || [ -z "${MXSIFT_TEST_MX_IP:-}" ]; then
	echo "SKIP: test services not running (scripts/services up)"; exit 77
fi
command -v script >/dev/null || { echo "SKIP: script (util-linux) not installed"; exit 77; }
tmp=$(mktemp -d)
spid=
cleanup() {
	[ -n "$spid" ] && { kill -TERM "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; }
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
unset NO_COLOR MXSIFT_PROGRESS_INTERVAL

cat >"$tmp/hold.scn" <<'EOF'
max-conns 1
timeout 30
conn 1
reply 220 mx1.alpha.test ESMTP slow
expect EHLO
reply 250-mx1.alpha.test\r\n250 ENHANCEDSTATUSCODES
expect MAIL FROM:
reply 250 2.1.0 Ok
expect RCPT TO:<slow@alpha.test>
pause 3500
reply 250 2.1.5 Ok
expect QUIT
reply 221 2.0.0 Bye
close
EOF
printf 'email\nslow@alpha.test\ninfo@nullmx.test\nsomeone@missing.test\nnot-an-address\n' >"$tmp/list.csv"

# start the scripted server (one connection per run): sets spid, port
start_server() {
	# the old port file must go first: the child truncates it only after
	# the fork, and the loop below could read the last run's port
	rm -f "$tmp/port"
	"$smtpd" -a "$MXSIFT_TEST_MX_IP" -p 0 -T 30 -t "$tmp/hold.transcript" "$tmp/hold.scn" \
		>"$tmp/port" 2>"$tmp/smtpd.err" &
	spid=$!
	port=
	for _ in $(seq 1 100); do
		port=$(awk '$1 == "port" { print $2 }' "$tmp/port" 2>/dev/null) || true
		[ -n "$port" ] && return 0
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	fail "scripted server did not start: $(cat "$tmp/smtpd.err")"
}
stop_server() {
	kill -TERM "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	spid=
}
args() {
	printf '%s\n' check "$tmp/list.csv" --dns "$MXSIFT_TEST_DNS" --smtp-port "$port" \
		--helo probe.mxsift.test --mail-from verify@mxsift.test --no-catch-all
}
# on_pipe NAME [MXSIFT ARGS]: a held run, stderr to NAME.err
on_pipe() {
	local name=$1
	shift
	start_server
	mapfile -t a < <(args)
	"$mxsift" "${a[@]}" -o "$tmp/$name.csv" "$@" 2>"$tmp/$name.err" ||
		fail "$name: mxsift check failed: $(cat "$tmp/$name.err")"
	stop_server
	grep -q '^2,.*"slow@alpha.test","deliverable","accepted",250' "$tmp/$name.csv" ||
		fail "$name: slow@alpha.test not deliverable: $(cat "$tmp/$name.csv")"
}
# on_tty NAME [ENV=VALUE...] -- [MXSIFT ARGS]: a held run on a
# pseudo-terminal (stdout and stderr), what the terminal got in NAME.tty
on_tty() {
	local name=$1 envs=() cmd
	shift
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	start_server
	mapfile -t a < <(args)
	cmd=$(printf '%q ' env TERM=xterm "${envs[@]}" "$mxsift" "${a[@]}" --format table "$@")
	script -q -e -c "$cmd" /dev/null </dev/null >"$tmp/$name.tty" 2>"$tmp/$name.script-err" ||
		fail "$name: mxsift check on a terminal failed: $(cat "$tmp/$name.tty" "$tmp/$name.script-err")"
	stop_server
	grep -Eq 'slow@alpha\.test .*deliverable' "$tmp/$name.tty" ||
		fail "$name: no table row for slow@alpha.test: $(cat -v "$tmp/$name.tty") server: $(cat "$tmp/smtpd.err" "$tmp/port")"
}
# progress_lines FILE: its progress lines; anything else but the row reports
# and the summary line fails the test
progress_lines() {
	local other
	other=$(grep -Ev '^(progress |line [0-9]+: |checked [0-9]+ addresses: )' "$1" || true)
	[ -z "$other" ] || fail "unexpected stderr line: $other"
	grep '^progress' "$1" || true
}

# ---- a pipe, a line a second --------------------------------------------------------------
MXSIFT_PROGRESS_INTERVAL=1 on_pipe lines
progress_lines "$tmp/lines.err" >"$tmp/lines.progress"
bad=$(grep -Ev '^progress rows=[0-9]+ invalid=[0-9]+ duplicates=[0-9]+ unique=[0-9]+ domains=[0-9]+ resolved=[0-9]+ verified=[0-9]+ total=[0-9]+ rate=[0-9]+/s eta=[-0-9:]+( reading)?$' \
	"$tmp/lines.progress" || true)
[ -z "$bad" ] || fail "not a progress key=value line: $bad"
n=$(grep -c '' "$tmp/lines.progress")
# ticks come a second apart, each prints once a second has passed since
# the last line: 3.5 s give one line or more before the final one
[ "$n" -ge 2 ] || fail "$n progress lines in a run of 3.5 s or more at 1 a second: $(cat "$tmp/lines.progress")"
grep -Eq '^progress rows=4 invalid=1 .* verified=4 total=4 .* eta=0:00$' <<<"$(tail -n 1 "$tmp/lines.progress")" ||
	fail "the final progress line: $(tail -n 1 "$tmp/lines.progress")"
grep -q ' verified=[0-3] total=4 ' <<<"$(sed -n 1p "$tmp/lines.progress")" ||
	fail "the first line was not written while the RCPT was held: $(head -n 1 "$tmp/lines.progress")"

# ---- a pipe, the default interval: the final line only --------------------------------------
on_pipe default
progress_lines "$tmp/default.err" >"$tmp/default.progress"
[ "$(grep -c '' "$tmp/default.progress")" -eq 1 ] ||
	fail "default interval (10 s): expected the final line only: $(cat "$tmp/default.progress")"
grep -q '^progress rows=4 .* verified=4 total=4 ' "$tmp/default.progress" ||
	fail "default interval: $(cat "$tmp/default.progress")"
# a bad interval: said, and the default kept (no SMTP needed for this list)
printf 'email\nnot-an-address\n' >"$tmp/bad.csv"
MXSIFT_PROGRESS_INTERVAL=soon "$mxsift" check "$tmp/bad.csv" -o "$tmp/bad.out" 2>"$tmp/bad.err" ||
	fail "check with a bad MXSIFT_PROGRESS_INTERVAL failed"
grep -q "^warning: MXSIFT_PROGRESS_INTERVAL='soon' ignored: it wants seconds from 0.1 to 86400" \
	"$tmp/bad.err" || fail "no warning for a bad interval: $(cat "$tmp/bad.err")"

# ---- --quiet on a pipe ------------------------------------------------------------------------
on_pipe quiet --quiet
[ -z "$(progress_lines "$tmp/quiet.err")" ] || fail "--quiet printed: $(cat "$tmp/quiet.err")"

# ---- a terminal: the bar and the colours ------------------------------------------------------
on_tty bar --
grep -q '^progress ' "$tmp/bar.tty" && fail "a progress line on a terminal"
# each redraw starts with CR; 250 ms apart over 3.5 s
tr '\r' '\n' <"$tmp/bar.tty" | grep -E '^\[[#.]{20}\] (reading|working) rows [0-9]+ .* rows/s  ETA ' \
	>"$tmp/bars" || true
[ "$(grep -c '' "$tmp/bars")" -ge 2 ] || fail "the bar was not redrawn: $(cat -v "$tmp/bar.tty")"
grep -Eq '^\[#{20}\] working rows 4  invalid 1  .* verified 4/4 ' <<<"$(tail -n 1 "$tmp/bars")" ||
	fail "the last bar is not full: $(tail -n 1 "$tmp/bars" | cat -v)"
grep -q $'\033\\[[0-9;]*mdeliverable' "$tmp/bar.tty" || fail "no colour on the terminal: $(cat -v "$tmp/bar.tty")"
on_tty nocolor NO_COLOR=1 --
grep -q $'\033\\[[0-9;]*m' "$tmp/nocolor.tty" && fail "NO_COLOR=1: colour sequences: $(cat -v "$tmp/nocolor.tty")"
tr '\r' '\n' <"$tmp/nocolor.tty" >"$tmp/nocolor.lines"
grep -Eq '^\[#{20}\] working rows 4 ' "$tmp/nocolor.lines" ||
	fail "NO_COLOR=1: no bar (it has no colour to switch off): $(cat -v "$tmp/nocolor.tty")"
on_tty tquiet -- --quiet
grep -q '^progress \|\[[#.]\{20\}\]' "$tmp/tquiet.tty" && fail "--quiet on a terminal: $(cat -v "$tmp/tquiet.tty")"

echo "PASS: $n progress lines at 1 s on a pipe, 1 at the default; $(grep -c '' "$tmp/bars") bars on a terminal; NO_COLOR and --quiet honoured"
