/*
 * probe.c — mxsift-probe: drive the probe engine against one SMTP server.
 *
 *   mxsift-probe --host HOST [--host HOST2 ...] --port P [--helo NAME]
 *       [--mail-from ADDR] [--tls may|require|off] [--max-rcpt N]
 *       [--max-rejects N] [--timeout-ms N] [--dns HOST:PORT]
 *       [--no-catch-all] [--catch-all-local NAME] [--lanes FILE] [--lane KEY]
 *       [--backoff-ms N] [--throttle-retries N] [--lane-stats] [--bind ADDR]
 *       [--connect-timeout-ms N] [--max-age-s N] [--normalize] [--debug] ADDR...
 *
 * Every ADDR is probed through the real engine (one lane, MX hosts in the
 * order given: the first is the most preferred).  A numeric HOST needs no
 * DNS at all; a host name needs --dns.  Catch-all detection is on, as in
 * the engine; --catch-all-local fixes its local part (tests want a
 * deterministic transcript; real runs must keep it random).  --lanes gives
 * the lane rules file, --lane the lane's key (MX domain, default
 * "probe.lane"); --backoff-ms the first pause after a rate-limit answer,
 * --throttle-retries how often an address is asked again after one (0:
 * never); --bind the source address of the connections (engine_params
 * bind_address); --timeout-ms sets the connect, greeting and command
 * timeouts, --connect-timeout-ms (after it) the connect one alone;
 * --max-age-s the session age recycle (engine_params max_session_age_s);
 * --normalize sends each ADDR as mxsift check does, through address_parse()
 * (IDN domain as A-label, lowercased; the line printed still shows ADDR as
 * given; an address it refuses is printed "invalid_syntax RULE" and not
 * probed); --lane-stats prints one more line at the end:
 *
 *   lane KEY rate=R rule_rate=R backoffs=N level=N
 * Output on stdout, one line per address in argument order:
 *
 *   ADDR STATUS REASON CODE ENHANCED     (CODE 0 / ENHANCED - when absent)
 *
 * then "stats connections=N rcpts=N replies_503=N".  Logs go to stderr
 * (debug level with --debug).  Exit 0 when it ran (whatever the verdicts),
 * 2 on usage or setup errors.  Used by the transcript tests.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "address.h"
#include "dns.h"
#include "engine.h"
#include "log.h"
#include "verdict.h"

struct probe {
	struct engine *engine;
	struct probe_req *reqs;      /* --stagger-ms: submitted from timers */
	struct event **timers;
	struct verdict *v;
	int *have;
	size_t n, done;
	struct engine_lane_stats ls; /* the lane, as last seen */
};

static void
probe_usage(void)
{
	fprintf(stderr,
	        "usage: mxsift-probe --host HOST [--host HOST2 ...] --port P [--helo NAME] "
	        "[--mail-from ADDR] [--tls may|require|off] [--max-rcpt N] [--max-rejects N] "
	        "[--timeout-ms N] [--dns HOST:PORT] [--no-catch-all] [--catch-all-local NAME] "
	        "[--lanes FILE] [--lane KEY] [--backoff-ms N] [--throttle-retries N] "
	        "[--lane-stats] [--bind ADDR] [--connect-timeout-ms N] [--max-age-s N] "
	        "[--normalize] [--idle-ms N] [--stagger-ms N] [--debug] ADDR...\n"
	        "  --idle-ms N     QUIT a session idle for N ms (engine idle_close_ms)\n"
	        "  --stagger-ms N  submit the i-th address i*N ms after the start\n");
	exit(2);
}

static unsigned
probe_number(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v > 0xffffffffUL)
		probe_usage();
	return (unsigned)v;
}

static void
probe_done(void *arg, void *tag, const char *address, const struct verdict *v)
{
	struct probe *p = arg;
	size_t i = (size_t)(uintptr_t)tag;

	if (i >= p->n || p->have[i])
		return;
	p->v[i] = *v;
	p->have[i] = 1;
	if (engine_get_lane_stats(p->engine, &p->ls, 1) == 0)
		memset(&p->ls, 0, sizeof(p->ls));
	/* All answered: QUIT every session; the loop ends when they close. */
	if (++p->done == p->n)
		engine_shutdown(p->engine);
}

static struct probe *probe_self; /* for the --stagger-ms timers */

static void
probe_submit_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)engine_submit(probe_self->engine, arg);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"helo", required_argument, NULL, 'e'},
	    {"mail-from", required_argument, NULL, 'f'},
	    {"tls", required_argument, NULL, 't'},
	    {"max-rcpt", required_argument, NULL, 'r'},
	    {"max-rejects", required_argument, NULL, 'j'},
	    {"timeout-ms", required_argument, NULL, 'T'},
	    {"dns", required_argument, NULL, 'd'},
	    {"debug", no_argument, NULL, 'D'},
	    {"no-catch-all", no_argument, NULL, 'C'},
	    {"catch-all-local", required_argument, NULL, 'L'},
	    {"lanes", required_argument, NULL, 'R'},
	    {"lane", required_argument, NULL, 'K'},
	    {"backoff-ms", required_argument, NULL, 'B'},
	    {"throttle-retries", required_argument, NULL, 'Y'},
	    {"lane-stats", no_argument, NULL, 'S'},
	    {"bind", required_argument, NULL, 'b'},
	    {"connect-timeout-ms", required_argument, NULL, 'c'},
	    {"max-age-s", required_argument, NULL, 'A'},
	    {"normalize", no_argument, NULL, 'N'},
	    {"idle-ms", required_argument, NULL, 'I'},
	    {"stagger-ms", required_argument, NULL, 'G'},
	    {NULL, 0, NULL, 0},
	};
	struct engine_params ep = {0};
	struct engine_stats st;
	struct engine_mx_host mx[8];
	size_t nmx = 0;
	struct probe p = {0};
	struct event_base *base;
	struct dns *dns = NULL;
	const char *dns_server = NULL, *lane = "probe.lane";
	int lane_stats = 0, normalize = 0;
	unsigned stagger_ms = 0;
	struct address *na = NULL;
	enum addr_err *nerr = NULL;
	char err[256];
	int ch;

	ep.helo_name = "probe.mxsift.test";
	ep.mail_from = "";
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			if (nmx == sizeof(mx) / sizeof(mx[0]))
				probe_usage();
			mx[nmx].name = optarg;
			mx[nmx].preference = (unsigned)nmx * 10;
			nmx++;
			break;
		case 'C': ep.catch_all_check = ENGINE_CATCH_ALL_OFF; break;
		case 'L': ep.catch_all_local = optarg; break;
		case 'R': ep.lanes_file = optarg; break;
		case 'K': lane = optarg; break;
		case 'B': ep.backoff_base_ms = probe_number(optarg); break;
		case 'Y':
			ep.throttle_retries = probe_number(optarg);
			if (ep.throttle_retries == 0)
				ep.throttle_retries = ENGINE_THROTTLE_RETRIES_NONE;
			break;
		case 'S': lane_stats = 1; break;
		case 'c': ep.connect_timeout_ms = probe_number(optarg); break;
		case 'A': ep.max_session_age_s = probe_number(optarg); break;
		case 'N': normalize = 1; break;
		case 'I': ep.idle_close_ms = probe_number(optarg); break;
		case 'G': stagger_ms = probe_number(optarg); break;
		case 'b':
			if (engine_check_bind(optarg, err, sizeof(err)) != 0) {
				fprintf(stderr, "mxsift-probe: %s\n", err);
				return 2;
			}
			ep.bind_address = optarg;
			break;
		case 'p': ep.smtp_port = (int)probe_number(optarg); break;
		case 'e': ep.helo_name = optarg; break;
		case 'f': ep.mail_from = optarg; break;
		case 't':
			if (strcmp(optarg, "may") == 0)
				ep.tls = ENGINE_TLS_MAY;
			else if (strcmp(optarg, "require") == 0)
				ep.tls = ENGINE_TLS_REQUIRE;
			else if (strcmp(optarg, "off") == 0)
				ep.tls = ENGINE_TLS_OFF;
			else
				probe_usage();
			break;
		case 'r': ep.max_rcpt_per_session = probe_number(optarg); break;
		case 'j': ep.max_rejects_per_session = probe_number(optarg); break;
		case 'T':
			ep.connect_timeout_ms = ep.greeting_timeout_ms = ep.command_timeout_ms =
			    probe_number(optarg);
			break;
		case 'd': dns_server = optarg; break;
		case 'D': log_set_level(LOG_DEBUG); break;
		default: probe_usage();
		}
	}
	if (nmx == 0 || ep.smtp_port <= 0 || ep.smtp_port > 65535 || optind >= argc)
		probe_usage();
	p.n = (size_t)(argc - optind);
	p.v = calloc(p.n, sizeof(*p.v));
	p.have = calloc(p.n, sizeof(*p.have));
	na = calloc(p.n, sizeof(*na));
	nerr = calloc(p.n, sizeof(*nerr));
	p.reqs = calloc(p.n, sizeof(*p.reqs));
	p.timers = calloc(p.n, sizeof(*p.timers));
	if (p.v == NULL || p.have == NULL || na == NULL || nerr == NULL || p.reqs == NULL ||
	    p.timers == NULL ||
	    (base = event_base_new()) == NULL) {
		fprintf(stderr, "mxsift-probe: out of memory\n");
		return 2;
	}
	if (dns_server != NULL && (dns = dns_new(base, dns_server, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift-probe: dns: %s\n", err);
		return 2;
	}
	probe_self = &p;
	if ((p.engine = engine_new(base, dns, &ep, probe_done, &p)) == NULL) {
		fprintf(stderr, "mxsift-probe: cannot create engine\n");
		return 2;
	}
	for (size_t i = 0; i < p.n; i++) {
		const char *addr = argv[optind + (int)i];
		const char *at;
		struct probe_req req;

		if (normalize) {
			nerr[i] = address_parse(addr, strlen(addr), &na[i]);
			if (nerr[i] != ADDR_OK) {
				p.done++;
				continue;
			}
			addr = na[i].full;
		}
		at = strrchr(addr, '@');
		req = (struct probe_req){
		    .address = addr,
		    .domain = at != NULL ? at + 1 : "",
		    .mx_domain = lane,
		    .hosts = mx,
		    .nhosts = nmx,
		    .tag = (void *)(uintptr_t)i,
		};

		for (const unsigned char *c = (const unsigned char *)addr; *c; c++)
			if (*c >= 0x80)
				req.flags |= VERDICT_F_SMTPUTF8;
		if (stagger_ms > 0 && i > 0) {
			struct timeval tv = {(time_t)((uint64_t)stagger_ms * i / 1000),
			                     (suseconds_t)((uint64_t)stagger_ms * i % 1000 * 1000)};

			p.reqs[i] = req;
			p.timers[i] = evtimer_new(base, probe_submit_later, &p.reqs[i]);
			if (p.timers[i] == NULL || evtimer_add(p.timers[i], &tv) != 0) {
				fprintf(stderr, "mxsift-probe: cannot arm a timer\n");
				return 2;
			}
			continue;
		}
		(void)engine_submit(p.engine, &req);
	}
	if (p.done == p.n)
		engine_shutdown(p.engine);
	event_base_dispatch(base);

	for (size_t i = 0; i < p.n; i++) {
		const struct verdict *v = &p.v[i];

		if (normalize && nerr[i] != ADDR_OK) {
			printf("%s undeliverable invalid_syntax %s\n", argv[optind + (int)i],
			       address_err_name(nerr[i]));
			continue;
		}
		if (!p.have[i]) {
			printf("%s unknown temp_failure 0 -\n", argv[optind + (int)i]);
			continue;
		}
		printf("%s %s %s %d %s\n", argv[optind + (int)i], verdict_status_name(v->status),
		       verdict_reason_name(v->reason), v->smtp_code,
		       v->enhanced[0] != '\0' ? v->enhanced : "-");
	}
	engine_get_stats(p.engine, &st);
	printf("stats connections=%lu rcpts=%lu replies_503=%lu\n", st.connections, st.rcpts,
	       st.replies_503);
	if (lane_stats) {
		/* The lanes are gone after the shutdown: what is printed is the
		 * last state the lane had, kept by probe_done(). */
		printf("lane %s rate=%.3f rule_rate=%.3f backoffs=%lu level=%u\n", lane, p.ls.rate,
		       p.ls.rule_rate, p.ls.backoffs, p.ls.backoff_level);
	}
	fflush(stdout);
	engine_free(p.engine);
	for (size_t i = 0; i < p.n; i++)
		if (p.timers[i] != NULL)
			event_free(p.timers[i]);
	free(p.timers);
	free(p.reqs);
	dns_free(dns);
	event_base_free(base);
	free(p.v);
	free(p.have);
	free(na);
	free(nerr);
	return 0;
}
