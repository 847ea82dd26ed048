# test_lanes_lib.sh — judging lane politeness from a scripted server's event
# log (mxsift-smtpd-script -e FILE: "MS ADDR Cn VERB [CODE [ARG]]" lines, MS
# = ms since the server started).  Sourced, not run.
#
# Provides:
#   lanes_bucket_ok EVENTS EVENT RATE BURST [DOMAIN_RE]
#       every stretch of EVENT lines holds at most BURST + RATE x (its
#       length + 20 ms of timer and scheduling slack): the token bucket's
#       promise.  With DOMAIN_RE only RCPTs whose address domain matches it
#       count (EVENT RCPT), or only connections that sent such an RCPT
#       (EVENT connect): one MX domain's lane among others.  Prints the
#       worst stretch and returns 1 when broken.

lanes_bucket_ok() {
	awk -v ev="$2" -v rate="$3" -v burst="$4" -v dom="${5:-}" '
		function domain_ok(a) { sub(/^</, "", a); sub(/>$/, "", a); sub(/.*@/, "", a)
			return dom == "" || a ~ ("^(" dom ")$") }
		# pass 1: connections that belong to the domain
		FNR == NR { if ($4 == "RCPT" && domain_ok($6)) mine[$3] = 1; next }
		$4 == ev && (dom == "" || (ev == "RCPT" ? domain_ok($6) : ($3 in mine))) { t[n++] = $1 }
		END {
			for (i = 0; i < n; i++)
				for (j = i + 1; j < n; j++)
					if (j - i + 1 > burst + rate * (t[j] - t[i] + 20) / 1000) {
						printf "%d %s in %d ms (%d..%d)\n", j - i + 1, ev, t[j] - t[i], t[i], t[j]
						exit 1
					}
		}' "$1" "$1"
}
