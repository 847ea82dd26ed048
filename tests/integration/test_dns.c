/*
 * test_dns.c — common/dns.c against the test world's dnsmasq.
 *
 * Needs MXSIFT_TEST_DNS=HOST:PORT (scripts/services); exits 77 (skip)
 * without it.  Asserts the zone of tests/fixtures/README.md: MX sets and their MX
 * domains, implicit MX, failover order, null MX, NODATA, NXDOMAIN, host
 * addresses (MXSIFT_TEST_MX_IP, default 127.0.0.10); and the module's
 * contract: callbacks only from the loop, dns_free() with lookups in flight
 * (and from inside a callback) calls nothing more, an unreachable resolver
 * ends in DNS_ERROR in bounded time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"

static const char *server;
static const char *mx_ip = "127.0.0.10";    /* MXSIFT_TEST_MX_IP overrides */

/* A deep copy of one MX answer, taken inside the callback. */
struct mx_got {
	int called;
	char domain[256];
	enum dns_status status;
	int implicit;
	size_t nhosts;
	char hosts[8][256];
	unsigned prefs[8];
	char mx_domain[256];
	char error[128];
};

struct addr_got {
	int called;
	enum dns_status status;
	size_t n;
	struct sockaddr_storage addrs[16];
};

static void
on_mx(void *arg, const char *domain, const struct dns_mx_result *r)
{
	struct mx_got *g = arg;

	g->called++;
	snprintf(g->domain, sizeof(g->domain), "%s", domain);
	g->status = r->status;
	g->implicit = r->implicit;
	g->nhosts = r->nhosts;
	for (size_t i = 0; i < r->nhosts && i < 8; i++) {
		snprintf(g->hosts[i], sizeof(g->hosts[i]), "%s", r->hosts[i].name);
		g->prefs[i] = r->hosts[i].preference;
	}
	snprintf(g->mx_domain, sizeof(g->mx_domain), "%s", r->mx_domain);
	snprintf(g->error, sizeof(g->error), "%s", r->error);
}

static void
on_addr(void *arg, const char *host, enum dns_status status,
    const struct sockaddr_storage *addrs, size_t n)
{
	struct addr_got *g = arg;

	g->called++;
	g->status = status;
	g->n = n;
	for (size_t i = 0; i < n && i < 16; i++)
		g->addrs[i] = addrs[i];
}

struct world {
	struct event_base *base;
	struct dns *dns;
};

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char err[256];

	w->base = event_base_new();
	w->dns = dns_new(w->base, server, err, sizeof(err));
	if (w->dns == NULL) {
		fprintf(stderr, "dns_new(%s): %s\n", server, err);
		return -1;
	}
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	dns_free(w->dns);
	event_base_free(w->base);
	free(w);
	return 0;
}

/* Run the loop until nothing is pending (or 30 s pass). */
static void
run(struct world *w)
{
	time_t t0 = time(NULL);

	while (dns_pending(w->dns) > 0 && time(NULL) - t0 < 30)
		event_base_loop(w->base, EVLOOP_ONCE);
	assert_int_equal(dns_pending(w->dns), 0);
}

static void
resolve(struct world *w, const char *domain, struct mx_got *g)
{
	memset(g, 0, sizeof(*g));
	dns_resolve_mx(w->dns, domain, on_mx, g);
	/* never from inside dns_resolve_mx() */
	assert_int_equal(g->called, 0);
	assert_int_equal(dns_pending(w->dns), 1);
	run(w);
	assert_int_equal(g->called, 1);
	assert_string_equal(g->domain, domain);
}

static void
test_mx_alpha(void **state)
{
	struct mx_got g;

	resolve(*state, "alpha.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.implicit, 0);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.hosts[0], "mx1.alpha.test");
	assert_int_equal(g.prefs[0], 10);
	assert_string_equal(g.mx_domain, "alpha.test");
}

/* Case and a trailing dot do not matter; the callback gets the name as
 * given, the hosts are normalised. */
static void
test_mx_case_and_dot(void **state)
{
	struct mx_got g;

	resolve(*state, "Alpha.TEST.", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_string_equal(g.hosts[0], "mx1.alpha.test");
}

static void
test_mx_shared_hosting(void **state)
{
	struct mx_got g, h;

	resolve(*state, "gamma.test", &g);
	resolve(*state, "delta.test", &h);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(h.status, DNS_OK);
	assert_string_equal(g.hosts[0], "mx.hosting.test");
	assert_string_equal(h.hosts[0], "mx.hosting.test");
	assert_string_equal(g.mx_domain, "hosting.test");
	assert_string_equal(h.mx_domain, "hosting.test");
}

static void
test_mx_implicit(void **state)
{
	struct mx_got g;

	resolve(*state, "implicit.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.implicit, 1);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.hosts[0], "implicit.test");
	assert_int_equal(g.prefs[0], 0);
	assert_string_equal(g.mx_domain, "implicit.test");
}

static void
test_mx_failover_order(void **state)
{
	struct mx_got g;

	resolve(*state, "failover.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.nhosts, 2);
	assert_string_equal(g.hosts[0], "mx-dead.failover.test");
	assert_int_equal(g.prefs[0], 10);
	assert_string_equal(g.hosts[1], "mx-live.failover.test");
	assert_int_equal(g.prefs[1], 20);
	assert_string_equal(g.mx_domain, "failover.test");
}

static void
test_mx_null(void **state)
{
	struct mx_got g;

	resolve(*state, "nullmx.test", &g);
	assert_int_equal(g.status, DNS_NULL_MX);
	assert_int_equal(g.nhosts, 0);
	assert_string_equal(g.mx_domain, "");
}

static void
test_mx_nodata(void **state)
{
	struct mx_got g;

	resolve(*state, "nodata.test", &g);
	assert_int_equal(g.status, DNS_NO_MAIL);
	assert_int_equal(g.nhosts, 0);
}

static void
test_mx_nxdomain(void **state)
{
	struct mx_got g;

	resolve(*state, "missing.test", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_int_equal(g.nhosts, 0);
	assert_string_equal(g.mx_domain, "");
}

/* All at once, as plan.c resolves a list: each answer reaches its own arg. */
static void
test_mx_parallel(void **state)
{
	static const struct {
		const char *domain;
		enum dns_status status;
		const char *mx_domain;
	} want[] = {
		{ "alpha.test", DNS_OK, "alpha.test" },
		{ "beta.test", DNS_OK, "beta.test" },
		{ "gamma.test", DNS_OK, "hosting.test" },
		{ "delta.test", DNS_OK, "hosting.test" },
		{ "implicit.test", DNS_OK, "implicit.test" },
		{ "failover.test", DNS_OK, "failover.test" },
		{ "nullmx.test", DNS_NULL_MX, "" },
		{ "nodata.test", DNS_NO_MAIL, "" },
		{ "missing.test", DNS_NXDOMAIN, "" },
	};
	enum { N = sizeof(want) / sizeof(want[0]), ROUNDS = 20 };
	struct world *w = *state;
	struct mx_got *g = calloc(N * ROUNDS, sizeof(*g));

	for (size_t i = 0; i < N * ROUNDS; i++)
		dns_resolve_mx(w->dns, want[i % N].domain, on_mx, &g[i]);
	assert_int_equal(dns_pending(w->dns), N * ROUNDS);
	run(w);
	for (size_t i = 0; i < N * ROUNDS; i++) {
		assert_int_equal(g[i].called, 1);
		assert_string_equal(g[i].domain, want[i % N].domain);
		assert_int_equal(g[i].status, want[i % N].status);
		assert_string_equal(g[i].mx_domain, want[i % N].mx_domain);
	}
	free(g);
}

static void
test_addrs(void **state)
{
	struct world *w = *state;
	struct addr_got g = { 0 };
	const struct sockaddr_in *sin = (const void *)&g.addrs[0];
	char buf[INET_ADDRSTRLEN];

	dns_resolve_addrs(w->dns, "mx1.alpha.test", 2525, on_addr, &g);
	assert_int_equal(g.called, 0);
	run(w);
	assert_int_equal(g.called, 1);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 2525);
	inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
	assert_string_equal(buf, mx_ip);
}

static void
test_addrs_missing(void **state)
{
	struct world *w = *state;
	struct addr_got nx = { 0 }, nd = { 0 };

	dns_resolve_addrs(w->dns, "nosuchhost.missing.test", 25, on_addr, &nx);
	dns_resolve_addrs(w->dns, "nodata.test", 25, on_addr, &nd);
	run(w);
	assert_int_equal(nx.called, 1);
	assert_int_equal(nx.status, DNS_NXDOMAIN);
	assert_int_equal(nx.n, 0);
	assert_int_equal(nd.called, 1);
	assert_int_equal(nd.status, DNS_NO_MAIL);
	assert_int_equal(nd.n, 0);
}

/* dns_free() with lookups in flight: no callback, no leak (ASan). */
static void
test_free_pending(void **state)
{
	struct world *w = *state;
	struct mx_got g[4] = { 0 };
	struct addr_got a = { 0 };

	dns_resolve_mx(w->dns, "alpha.test", on_mx, &g[0]);
	dns_resolve_mx(w->dns, "implicit.test", on_mx, &g[1]);
	dns_resolve_mx(w->dns, "missing.test", on_mx, &g[2]);
	dns_resolve_addrs(w->dns, "mx1.alpha.test", 25, on_addr, &a);
	/* let some answers arrive (and be queued) without draining all */
	event_base_loop(w->base, EVLOOP_NONBLOCK);
	dns_free(w->dns);
	w->dns = NULL;
	event_base_loop(w->base, EVLOOP_NONBLOCK);
	usleep(50000);
	event_base_loop(w->base, EVLOOP_NONBLOCK);
	for (int i = 0; i < 3; i++)
		assert_true(g[i].called <= 1);
	/* nothing may run after dns_free(); the loop has no events left */
	assert_int_equal(event_base_get_num_events(w->base, EVENT_BASE_COUNT_ADDED), 0);
	assert_int_equal(event_base_get_num_events(w->base, EVENT_BASE_COUNT_ACTIVE), 0);
	{
		char err[256];

		w->dns = dns_new(w->base, server, err, sizeof(err));
		assert_non_null(w->dns);
	}
}

/* dns_free() from inside a callback: the other answers never arrive. */
struct free_in_cb {
	struct world *w;
	int calls;
};

static void
on_mx_free(void *arg, const char *domain, const struct dns_mx_result *r)
{
	struct free_in_cb *f = arg;

	f->calls++;
	dns_free(f->w->dns);
	f->w->dns = NULL;
}

static void
test_free_in_callback(void **state)
{
	struct world *w = *state;
	struct free_in_cb f = { w, 0 };
	char err[256];

	for (int i = 0; i < 10; i++)
		dns_resolve_mx(w->dns, i % 2 ? "alpha.test" : "missing.test",
		    on_mx_free, &f);
	while (w->dns != NULL)
		event_base_loop(w->base, EVLOOP_ONCE);
	event_base_loop(w->base, EVLOOP_NONBLOCK);
	assert_int_equal(f.calls, 1);
	w->dns = dns_new(w->base, server, err, sizeof(err));
	assert_non_null(w->dns);
}

/* A lookup started from a callback works (c-ares is not re-entered). */
struct chain {
	struct world *w;
	struct mx_got second;
	int first;
};

static void
on_mx_chain(void *arg, const char *domain, const struct dns_mx_result *r)
{
	struct chain *c = arg;

	c->first++;
	dns_resolve_mx(c->w->dns, "failover.test", on_mx, &c->second);
	assert_int_equal(c->second.called, 0);
}

static void
test_resolve_from_callback(void **state)
{
	struct chain c = { *state, { 0 }, 0 };

	dns_resolve_mx(c.w->dns, "beta.test", on_mx_chain, &c);
	run(c.w);
	assert_int_equal(c.first, 1);
	assert_int_equal(c.second.called, 1);
	assert_int_equal(c.second.nhosts, 2);
}

/* Nothing listens on the port: DNS_ERROR with a text, well before the
 * ~14 s a silent server would cost. */
static void
test_unreachable_server(void **state)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin = { 0 };
	socklen_t slen = sizeof(sin);
	struct mx_got g = { 0 };
	struct addr_got a = { 0 };
	char srv[64], err[256];
	struct dns *d;
	time_t t0;
	int fd;

	/* a UDP port that was free a moment ago */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	close(fd);
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", ntohs(sin.sin_port));

	d = dns_new(base, srv, err, sizeof(err));
	assert_non_null(d);
	t0 = time(NULL);
	dns_resolve_mx(d, "alpha.test", on_mx, &g);
	dns_resolve_addrs(d, "mx1.alpha.test", 25, on_addr, &a);
	while (dns_pending(d) > 0 && time(NULL) - t0 < 30)
		event_base_loop(base, EVLOOP_ONCE);
	assert_true(time(NULL) - t0 < 20);
	assert_int_equal(g.called, 1);
	assert_int_equal(g.status, DNS_ERROR);
	assert_true(g.error[0] != '\0');
	assert_int_equal(a.called, 1);
	assert_int_equal(a.status, DNS_ERROR);
	assert_int_equal(a.n, 0);
	dns_free(d);
	event_base_free(base);
}

/*
 * A resolver on the test's own loop that answers NXDOMAIN to every query
 * delay_ms after it arrived, holding at most cap unanswered queries (the
 * rest are dropped, as a full UDP receive buffer drops them; cap 0: no
 * limit).  It counts what a resolver would see: the most queries it held
 * unanswered at once, and the drops.
 */
#define SLOW_MAX 8192
struct slow_dns {
	int fd;
	struct event *rd, *tick;
	unsigned delay_ms, cap;
	unsigned drop_every;    /* also drop every Nth query that arrives (0: none) */
	struct {
		unsigned char buf[512];
		size_t len;
		struct sockaddr_storage from;
		socklen_t flen;
		uint64_t at;
	} q[SLOW_MAX];
	size_t head, tail;      /* ring of held queries */
	unsigned held_peak, queries, drops;
	char addr[64];
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
slow_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct slow_dns *sd = arg;
	ssize_t n;

	(void)what;
	for (;;) {
		size_t i = sd->tail % SLOW_MAX, held = sd->tail - sd->head;

		sd->q[i].flen = sizeof(sd->q[i].from);
		n = recvfrom(fd, sd->q[i].buf, sizeof(sd->q[i].buf), MSG_DONTWAIT,
		    (struct sockaddr *)&sd->q[i].from, &sd->q[i].flen);
		if (n < 0)
			break;
		if (n < 12)
			continue;
		sd->queries++;
		if ((sd->cap > 0 && held >= sd->cap) || held >= SLOW_MAX ||
		    (sd->drop_every > 0 && sd->queries % sd->drop_every == 0)) {
			sd->drops++;
			continue;
		}
		sd->q[i].len = (size_t)n;
		sd->q[i].at = now_ms();
		sd->tail++;
		if (sd->tail - sd->head > sd->held_peak)
			sd->held_peak = (unsigned)(sd->tail - sd->head);
	}
}

static void
slow_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct slow_dns *sd = arg;
	uint64_t now = now_ms();

	(void)fd;
	(void)what;
	while (sd->head != sd->tail && sd->q[sd->head % SLOW_MAX].at + sd->delay_ms <= now) {
		size_t i = sd->head++ % SLOW_MAX;
		unsigned char *b = sd->q[i].buf;

		b[2] = (unsigned char)(0x80 | (b[2] & 0x79) | 0x04);  /* QR, AA */
		b[3] = (unsigned char)((b[3] & 0x70) | 0x80 | 3);     /* RA, NXDOMAIN */
		memset(b + 6, 0, 6);
		(void)sendto(sd->fd, b, sd->q[i].len, 0, (struct sockaddr *)&sd->q[i].from,
		    sd->q[i].flen);
	}
}

static struct slow_dns *
slow_start(struct event_base *base, unsigned delay_ms, unsigned cap)
{
	struct slow_dns *sd = calloc(1, sizeof(*sd));
	struct sockaddr_in sin = { 0 };
	socklen_t slen = sizeof(sin);
	struct timeval tv = { 0, 1000 };
	int big = 4 << 20;

	assert_non_null(sd);
	sd->delay_ms = delay_ms;
	sd->cap = cap;
	sd->fd = socket(AF_INET, SOCK_DGRAM, 0);
	/* the drops are the cap's, not the kernel's */
	(void)setsockopt(sd->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(sd->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(sd->fd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(sd->addr, sizeof(sd->addr), "127.0.0.1:%d", ntohs(sin.sin_port));
	sd->rd = event_new(base, sd->fd, EV_READ | EV_PERSIST, slow_on_read, sd);
	sd->tick = event_new(base, -1, EV_PERSIST, slow_on_tick, sd);
	event_add(sd->rd, NULL);
	event_add(sd->tick, &tv);
	return sd;
}

static void
slow_stop(struct slow_dns *sd)
{
	event_free(sd->rd);
	event_free(sd->tick);
	close(sd->fd);
	free(sd);
}

struct many {
	unsigned called, nxdomain, errors;
};

static void
on_mx_count(void *arg, const char *domain, const struct dns_mx_result *r)
{
	struct many *m = arg;

	(void)domain;
	m->called++;
	if (r->status == DNS_NXDOMAIN)
		m->nxdomain++;
	else if (r->status == DNS_ERROR)
		m->errors++;
}

/* Resolve n names against sd; returns the dns module's peak in flight. */
static unsigned
slow_resolve(struct event_base *base, struct slow_dns *sd, unsigned n, struct many *m,
    unsigned *window)
{
	struct dns *d;
	char err[256], name[64];
	unsigned peak;
	time_t t0 = time(NULL);

	d = dns_new(base, sd->addr, err, sizeof(err));
	assert_non_null(d);
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "w%05u.test", i);
		dns_resolve_mx(d, name, on_mx_count, m);
	}
	while (dns_pending(d) > 0 && time(NULL) - t0 < 60)
		event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(dns_pending(d), 0);
	dns_window(d, window, &peak);
	dns_free(d);
	return peak;
}

/* A resolver that keeps up (every answer 150 ms later, nothing dropped):
 * the window opens to 1,000 lookups in flight, and never beyond. */
static void
test_window_opens(void **state)
{
	struct event_base *base = event_base_new();
	struct slow_dns *sd = slow_start(base, 150, 0);
	struct many m = { 0 };
	unsigned window, peak;

	(void)state;
	peak = slow_resolve(base, sd, 4000, &m, &window);
	assert_int_equal(m.called, 4000);
	assert_int_equal(m.nxdomain, 4000);
	assert_int_equal(sd->drops, 0);
	assert_int_equal(sd->queries, 4000);    /* no retransmission */
	assert_int_equal(peak, 1000);
	assert_int_equal(sd->held_peak, 1000);
	assert_int_equal(window, 1000);
	slow_stop(sd);
	event_base_free(base);
}

/* A resolver that answers at once (within the 1 ms tick): the window stays
 * at its start, 64, however many lookups wait (a fast forwarder is the
 * kind whose receive buffer overflows when pushed). */
static void
test_window_fast_stays(void **state)
{
	struct event_base *base = event_base_new();
	struct slow_dns *sd = slow_start(base, 0, 0);
	struct many m = { 0 };
	unsigned window, peak;

	(void)state;
	peak = slow_resolve(base, sd, 4000, &m, &window);
	assert_int_equal(m.called, 4000);
	assert_int_equal(m.nxdomain, 4000);
	assert_int_equal(peak, 64);
	assert_int_equal(window, 64);
	assert_true(sd->held_peak <= 64);
	slow_stop(sd);
	event_base_free(base);
}

/* A resolver that loses one query in a hundred (a recursive resolver that
 * does not answer in time for a few dead domains): c-ares asks those again,
 * and the window stays open. */
static void
test_window_few_losses(void **state)
{
	struct event_base *base = event_base_new();
	struct slow_dns *sd = slow_start(base, 20, 0);
	struct many m = { 0 };
	unsigned window, peak;

	(void)state;
	sd->drop_every = 100;
	peak = slow_resolve(base, sd, 4000, &m, &window);
	assert_int_equal(m.called, 4000);
	assert_int_equal(m.nxdomain, 4000);
	assert_true(sd->drops >= 40);           /* the losses happened */
	assert_int_equal(peak, 1000);
	assert_int_equal(window, 1000);
	slow_stop(sd);
	event_base_free(base);
}

/* A resolver that drops what it cannot hold (200 queries, as a small
 * receive buffer does): the window backs off below the drop point and
 * every lookup still ends in its answer, none in DNS_ERROR. */
static void
test_window_backs_off(void **state)
{
	struct event_base *base = event_base_new();
	struct slow_dns *sd = slow_start(base, 40, 200);
	struct many m = { 0 };
	unsigned window, peak;

	(void)state;
	peak = slow_resolve(base, sd, 3000, &m, &window);
	printf("backs off: %u queries, %u dropped, peak in flight %u, window at the end %u\n",
	    sd->queries, sd->drops, peak, window);
	assert_int_equal(m.called, 3000);
	assert_true(sd->drops > 0);             /* the fault bit */
	assert_int_equal(m.errors, 0);
	assert_int_equal(m.nxdomain, 3000);
	assert_true(peak > 200);
	assert_true(window <= 500);
	slow_stop(sd);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_alpha),
		cmocka_unit_test(test_mx_case_and_dot),
		cmocka_unit_test(test_mx_shared_hosting),
		cmocka_unit_test(test_mx_implicit),
		cmocka_unit_test(test_mx_failover_order),
		cmocka_unit_test(test_mx_null),
		cmocka_unit_test(test_mx_nodata),
		cmocka_unit_test(test_mx_nxdomain),
		cmocka_unit_test(test_mx_parallel),
		cmocka_unit_test(test_addrs),
		cmocka_unit_test(test_addrs_missing),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_resolve_from_callback),
		cmocka_unit_test(test_unreachable_server),
		cmocka_unit_test(test_window_opens),
		cmocka_unit_test(test_window_fast_stays),
		cmocka_unit_test(test_window_few_losses),
		cmocka_unit_test(test_window_backs_off),
	};

	server = getenv("MXSIFT_TEST_DNS");
	if (getenv("MXSIFT_TEST_MX_IP") != NULL && *getenv("MXSIFT_TEST_MX_IP") != '\0')
		mx_ip = getenv("MXSIFT_TEST_MX_IP");
	if (server == NULL || *server == '\0') {
		printf("SKIP: MXSIFT_TEST_DNS not set (scripts/services up)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
