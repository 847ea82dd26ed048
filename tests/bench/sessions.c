/*
 * sessions.c — mxsift-bench-sessions: how many idle SMTP sessions one
 * engine (the worker's and `mxsift check`'s) holds, and what each costs.
 *
 * It opens N lanes — one MX domain each, s00000.sess.test ..., whose only
 * MX host is mx.<domain> — probes one recipient per lane (ok-I@<domain>,
 * accepted by mxsift-smtp-sink) and, once every verdict is in, leaves the
 * N sessions idle and open (idle_close_ms is set to an hour).  By default
 * all N lanes are submitted at once; --wave W submits W at a time, the next
 * wave when the previous one has its verdicts (earlier sessions stay open).
 * (Before common/dns.c capped its queries in flight, 1,000 lanes at once
 * sent 2,000 A/AAAA queries together, dnsmasq dropped what overflowed its
 * UDP buffer and lanes failed with dns_error after 14 s; now 10,000 lanes
 * at once open in ~1.3 s.)
 * Then it measures:
 *   rss      VmRSS growth from before the first probe, after malloc_trim(0)
 *            (freed DNS and probe buffers go back to the kernel, so what is
 *            left is what the sessions hold)
 *   heap     malloc's bytes in use (mallinfo2) growth: the exact heap share
 * and prints one line of key=value pairs:
 *   sessions=N connections=N sessions_ok=N replies_503=N verdicts=N accepted=N
 *   rss_kib_before=K rss_kib_after=K rss_bytes_per_session=B
 *   heap_bytes_per_session=B setup_s=S
 * Then it holds the
 * sessions until SIGTERM/SIGINT or --hold seconds (so the harness can ask
 * the sink how many it sees), QUITs them all and exits 0.
 * Exit 1 when not every probe was accepted or a 503 was seen, 2 on usage.
 *
 * usage: mxsift-bench-sessions --dns HOST:PORT -n N [--port P] [--hold S]
 *            [--timeout S] [--wave W]
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>

#include "dns.h"
#include "engine.h"
#include "log.h"
#include "verdict.h"

static struct {
	struct event_base *base;
	struct engine *engine;
	unsigned n, wave, submitted, verdicts, accepted, others;
	int measured;
	double t0;
} bs;

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS of this process in KiB (from /proc/self/status), 0 if unknown. */
static unsigned long
bench_rss_kib(void)
{
	char line[256];
	unsigned long kib = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Submit the next wave of lanes: wave probes, one per new MX domain. */
static void
bench_submit_wave(void)
{
	unsigned end = bs.submitted + bs.wave;

	if (end > bs.n)
		end = bs.n;
	for (unsigned i = bs.submitted; i < end; i++) {
		char dom[64], host[80], addr[96];
		struct engine_mx_host h = {host, 10};
		struct probe_req r = {0};

		snprintf(dom, sizeof(dom), "s%05u.sess.test", i);
		snprintf(host, sizeof(host), "mx.%s", dom);
		snprintf(addr, sizeof(addr), "ok-%u@%s", i, dom);
		r.address = addr;
		r.domain = dom;
		r.mx_domain = dom;
		r.hosts = &h;
		r.nhosts = 1;
		engine_submit(bs.engine, &r);
	}
	bs.submitted = end;
}

static void
bench_done_cb(void *arg, void *tag, const char *address, const struct verdict *v)
{
	bs.verdicts++;
	if (v->status == VS_DELIVERABLE)
		bs.accepted++;
	else if (bs.others++ < 5)
		fprintf(stderr, "mxsift-bench-sessions: %s: %s/%s %s\n", address,
		        verdict_status_name(v->status), verdict_reason_name(v->reason), v->detail);
	if (bs.verdicts == bs.n)
		event_base_loopbreak(bs.base);
	else if (bs.verdicts == bs.submitted)
		bench_submit_wave();
}

static void
bench_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(bs.base);
}

static void
bench_usage(void)
{
	fprintf(stderr, "usage: mxsift-bench-sessions --dns HOST:PORT -n N [--port P] "
	                "[--hold S] [--timeout S] [--wave W]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dns", required_argument, NULL, 'd'},  {"port", required_argument, NULL, 'p'},
	    {"hold", required_argument, NULL, 'H'}, {"timeout", required_argument, NULL, 'T'},
	    {"wave", required_argument, NULL, 'w'}, {NULL, 0, NULL, 0},
	};
	struct engine_params ep = {0};
	struct engine_stats st;
	struct event *sigs[2], *bound;
	struct timeval tv = {0, 0};
	struct mallinfo2 m0, m1;
	const char *dns_server = NULL;
	unsigned long rss0, rss1, hold_s = 0, timeout_s = 300;
	struct rlimit rl;
	struct dns *dns;
	char err[256];
	int ch, port = 25, rc = 0;

	while ((ch = getopt_long(argc, argv, "n:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': dns_server = optarg; break;
		case 'n': bs.n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': port = atoi(optarg); break;
		case 'H': hold_s = strtoul(optarg, NULL, 10); break;
		case 'T': timeout_s = strtoul(optarg, NULL, 10); break;
		case 'w': bs.wave = (unsigned)strtoul(optarg, NULL, 10); break;
		default: bench_usage();
		}
	}
	if (bs.wave == 0)
		bs.wave = bs.n;
	if (dns_server == NULL || bs.n == 0 || bs.n > 1000000 || port <= 0 || port > 65535)
		bench_usage();
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	/* One descriptor per session, plus DNS and slack. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)bs.n + 64)
		fprintf(stderr,
		        "mxsift-bench-sessions: warning: RLIMIT_NOFILE %llu < %u sessions\n",
		        (unsigned long long)rl.rlim_cur, bs.n);

	if ((bs.base = event_base_new()) == NULL)
		return 2;
	if ((dns = dns_new(bs.base, dns_server, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift-bench-sessions: dns: %s\n", err);
		return 2;
	}
	ep.helo_name = "bench.mxsift.test";
	ep.mail_from = "bench@mxsift.test";
	ep.smtp_port = port;
	ep.tls = ENGINE_TLS_OFF;
	ep.idle_close_ms = 3600 * 1000;
	ep.max_session_age_s = 3600;
	if ((bs.engine = engine_new(bs.base, dns, &ep, bench_done_cb, NULL)) == NULL)
		return 2;
	sigs[0] = evsignal_new(bs.base, SIGTERM, bench_stop_cb, NULL);
	sigs[1] = evsignal_new(bs.base, SIGINT, bench_stop_cb, NULL);
	bound = evtimer_new(bs.base, bench_stop_cb, NULL);
	event_add(sigs[0], NULL);
	event_add(sigs[1], NULL);
	tv.tv_sec = (time_t)timeout_s;
	event_add(bound, &tv);

	malloc_trim(0);
	rss0 = bench_rss_kib();
	m0 = mallinfo2();
	bs.t0 = bench_now();
	bench_submit_wave();
	event_base_dispatch(bs.base);
	if (bs.verdicts < bs.n) {
		fprintf(stderr, "mxsift-bench-sessions: only %u of %u verdicts in %lu s\n",
		        bs.verdicts, bs.n, timeout_s);
		rc = 1;
	}
	double setup_s = bench_now() - bs.t0;

	malloc_trim(0);
	rss1 = bench_rss_kib();
	m1 = mallinfo2();
	engine_get_stats(bs.engine, &st);
	printf("sessions=%u connections=%lu sessions_ok=%lu replies_503=%lu verdicts=%u "
	       "accepted=%u rss_kib_before=%lu rss_kib_after=%lu rss_bytes_per_session=%.0f "
	       "heap_bytes_per_session=%.0f setup_s=%.3f\n",
	       bs.n, st.connections, st.sessions_ok, st.replies_503, bs.verdicts, bs.accepted, rss0,
	       rss1, (double)(rss1 > rss0 ? rss1 - rss0 : 0) * 1024.0 / bs.n,
	       (double)(m1.uordblks > m0.uordblks ? m1.uordblks - m0.uordblks : 0) / bs.n, setup_s);
	fflush(stdout);
	if (bs.accepted != bs.n || st.replies_503 != 0)
		rc = 1;

	/* Hold the idle sessions until told to stop (or --hold runs out). */
	if (rc == 0) {
		event_del(bound);
		if (hold_s > 0) {
			tv.tv_sec = (time_t)hold_s;
			event_add(bound, &tv);
		}
		event_base_dispatch(bs.base);
	}
	engine_shutdown(bs.engine);
	/* QUITs go out and 221s come back on the loop: give them a second. */
	tv.tv_sec = 1;
	event_base_loopexit(bs.base, &tv);
	event_base_dispatch(bs.base);
	engine_free(bs.engine);
	dns_free(dns);
	event_free(sigs[0]);
	event_free(sigs[1]);
	event_free(bound);
	event_base_free(bs.base);
	return rc;
}
