#!/usr/bin/env bash
# test_readme.sh — what README.md shows can be copied as it is.
#
#  - every ```ini block of README.md (the configuration example) is a
#    configuration file that every command accepts: mxsift check, submit,
#    status, export, report and mxsift-worker read it with --config and stop
#    at --help, not at an error (a comment after a value, a section line
#    with a comment, an unknown key or a bad Redis URL would stop them with
#    FILE:LINE, exit 2);
#  - there is at least one such block, so a renamed fence fails here instead
#    of passing with nothing checked.
#
# usage: test_readme.sh MXSIFT MXSIFT_WORKER README
set -euo pipefail
mxsift=$1 worker=$2 readme=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset MXSIFT_CONFIG
while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(MXSIFT_[A-Z0-9_]*\)=.*/\1/p')

# block N goes to $tmp/block-N.conf, named after its first line in README.md
awk -v dir="$tmp" '
	/^```ini[ \t]*$/ { n++; f = dir "/block-" n ".conf"; print NR > (dir "/block-" n ".line"); in_b = 1; next }
	in_b && /^```/ { in_b = 0; close(f); next }
	in_b { print > f }' "$readme"
n=$(find "$tmp" -name 'block-*.conf' | wc -l)
[ "$n" -ge 1 ] || fail "$readme has no \`\`\`ini block (the configuration example)"
for conf in "$tmp"/block-*.conf; do
	line=$(cat "${conf%.conf}.line")
	for cmd in check submit status export report worker; do
		rc=0
		if [ "$cmd" = worker ]; then
			"$worker" --config "$conf" --help >/dev/null 2>"$tmp/err" || rc=$?
		else
			"$mxsift" "$cmd" --config "$conf" --help >/dev/null 2>"$tmp/err" || rc=$?
		fi
		[ "$rc" -eq 0 ] || fail "$readme:$line: the configuration example is refused by" \
			"${cmd/#worker/mxsift-worker} (exit $rc):" \
			"$(sed "s|$conf:\([0-9]*\)|line \1 of the block|" "$tmp/err")"
	done
done
echo "PASS: $n configuration example(s) of $readme accepted by every command"
