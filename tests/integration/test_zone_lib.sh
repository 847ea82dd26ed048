# test_zone_lib.sh — a private DNS zone for an integration test (sourced, not
# run): a dnsmasq of the test's own, authoritative for the names in a zone
# file, on 127.0.0.1 and a free port, stopped by pid.  For tests that build
# their own loopback world (their own MX addresses) instead of the shared one.
#
# Provides:
#   zone_dnsmasq_start CONF NAME LOG   start dnsmasq with zone file CONF (lines
#                              as in dnsmasq.conf: local=/test/, mx-host=,
#                              host-record=, ...); ready when an MX query for
#                              NAME answers; up to five ports are tried.  Sets
#                              zone_port and zone_pid; returns 1 (LOG holds
#                              dnsmasq's complaint) when it did not start
#   zone_dnsmasq_stop          stop it (by pid), if it runs
# Needs dnsmasq and dig (the caller skips without them).

zone_port= zone_pid=

zone_dnsmasq_start() {
	local conf=$1 name=$2 log=$3 p
	zone_port= zone_pid=
	for _ in 1 2 3 4 5; do
		p=$((20000 + RANDOM % 12000))
		dnsmasq --keep-in-foreground --port "$p" --listen-address=127.0.0.1 --bind-interfaces \
			--no-resolv --no-hosts --no-poll --pid-file= --conf-file="$conf" \
			--log-facility=- </dev/null >/dev/null 2>"$log" &
		zone_pid=$!
		for _ in $(seq 1 50); do
			if [ -n "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$p" MX "$name" 2>/dev/null)" ]; then
				zone_port=$p
				return 0
			fi
			kill -0 "$zone_pid" 2>/dev/null || break
			sleep 0.1
		done
		zone_dnsmasq_stop   # the port was taken, or it never answered: next port
	done
	return 1
}

zone_dnsmasq_stop() {
	if [ -n "$zone_pid" ]; then
		kill -TERM "$zone_pid" 2>/dev/null
		wait "$zone_pid" 2>/dev/null || true
	fi
	zone_pid=
}
