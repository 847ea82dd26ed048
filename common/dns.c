/*
 * dns.c — asynchronous MX and address resolution on a libevent loop.
 *
 * Owns one c-ares channel per struct dns and the libevent events that drive
 * it: one persistent event per c-ares socket (created, changed and freed from
 * ARES_OPT_SOCK_STATE_CB) and one timer re-armed from ares_timeout() after
 * every call into c-ares.
 *
 * Returns results through the caller's callbacks, always from the loop: a
 * c-ares callback only records its answer and queues the request; a
 * separate "deliver" event hands queued requests to the caller.  So a
 * c-ares callback that fires synchronously inside ares_query() (bad name,
 * no usable socket) still reaches the caller later, from the loop, and the
 * caller may call dns_free() or start new lookups from inside its callback
 * without re-entering c-ares.
 *
 * Policy (see dns.h for the contract):
 *  - MX: ares_query (never ares_search: a list domain must not be
 *    completed with the host's search domains).  NXDOMAIN -> DNS_NXDOMAIN;
 *    no MX (NODATA) -> A and AAAA of the domain in parallel, any address ->
 *    implicit MX (RFC 5321 5.1), none -> DNS_NO_MAIL; an MX set whose only
 *    usable entry is the root "." -> DNS_NULL_MX (RFC 7505; a null MX with
 *    a preference other than 0 is treated the same: there is no host to
 *    deliver to).  Anything else (SERVFAIL, REFUSED, timeout after c-ares'
 *    own retries) -> DNS_ERROR with the c-ares error text.
 *  - MX host names are lowercased, lose their trailing dot, are sorted by
 *    preference then name and deduplicated (lowest preference wins).  Names
 *    that are not host names (c-ares escapes odd bytes as \DDD) are dropped
 *    with a warning, as Postfix does with malformed MX names.
 *  - Addresses: A and AAAA are asked in parallel, straight from DNS (no
 *    /etc/hosts, as an MTA looks up MX hosts).  IPv4 addresses come first,
 *    then IPv6: a verifier's probing host usually has better IPv4 reputation
 *    and reachability (large providers demand forward-confirmed rDNS for
 *    IPv6 senders and many hosts have no working IPv6 route), so trying
 *    IPv4 first avoids paying a connect timeout per MX on broken IPv6.
 *  - Requests with queries out are bounded by a window, so that a
 *    resolver that is fast gets a small one and one that is slow a large
 *    one.  Where in-flight lookups wait tells which is needed: at a fast
 *    forwarder (dnsmasq on loopback answers in microseconds, one at a time)
 *    they wait in its UDP receive buffer, which holds ~270 datagrams at the
 *    default 208 KiB and drops the rest; at a recursive resolver they wait
 *    for upstream servers inside it, and a thousand cost it nothing.  So:
 *     - The window starts at DNS_WINDOW_START (64).  While it is there,
 *       clean answers measure the resolver's latency at that window (base
 *       RTT, a slow average, trusted after DNS_BASE_SAMPLES answers).  While
 *       base RTT or the current smoothed RTT is under DNS_GROW_RTT_US
 *       (20 ms) the window does not open (both: a loaded machine makes a
 *       fast resolver look slow for a moment):
 *       64 lookups out at a resolver that answers within 20 ms are already
 *       3,200 a second (Little's law), a fast forwarder holding 64 answers
 *       them within a few milliseconds, and it is the kind that drops when
 *       pushed.  A loss is only seen when c-ares retransmits
 *       (DNS_TIMEOUT_MS later), so pushing it would cost every burst a
 *       2-6 s stall (scripts/bench measured `mxsift check` of 1,000
 *       domains at 0.3 s -> 6.1 s to its last verdict with a window that
 *       opened regardless).
 *     - A slower resolver gets a window that grows by one per clean answer
 *       up to DNS_WINDOW_MAX (1,000) while the smoothed RTT stays under
 *       twice the base (past that the extra lookups only queue inside it).
 *     - Losses (answers that needed a retransmission (c-ares' `timeouts`)
 *       or queries that timed out for good) halve it (never below
 *       DNS_WINDOW_MIN) once per round, when a sixteenth of the window's
 *       requests were lost: a few slow domains (a recursive resolver
 *       waiting on dead authoritative servers) say nothing of its room.
 *    The rest wait in FIFO order and start as answers come back.  A burst
 *    of thousands of queries with no bound at all (scripts/bench: 10,000
 *    lookups at once) lost 73% of them to dns_error.  dns_window()
 *    reports the window.
 *  - c-ares retries: 2000 ms first timeout, 3 tries.  With one server c-ares
 *    doubles the timeout per round, so a silent server costs ~14 s per
 *    lookup; a refused port (ICMP unreachable) fails at once.
 *
 * Diagnostics: malformed MX names are logged (warn); c-ares failures only
 * through the result's status and error text.  Allocation failure of a
 * request aborts: every lookup must end in exactly one callback, and there
 * is no way to promise that without memory.
 */
#include "dns.h"
#include "clock.h"
#include "log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <libpsl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DNS_TIMEOUT_MS   2000
#define DNS_TRIES        3
#define DNS_ADDRS_MAX    32      /* per family, per host */
#define DNS_SERVERS_MAX  8
#define DNS_WINDOW_START 64      /* requests with queries out (see above) */
#define DNS_WINDOW_MIN   16
#define DNS_WINDOW_MAX   1000
#define DNS_RCVBUF       (1 << 20)
#define DNS_BASE_SAMPLES 32      /* clean answers before the base RTT counts */
#define DNS_GROW_RTT_US  20000   /* the window opens only past this base RTT */
/* Losses in one round that cut the window: a resolver that drops for want
 * of room drops a burst's worth; one that is slow on a few domains (a
 * recursive resolver waiting on dead authoritative servers) retransmits a
 * few of them, which says nothing of its room. */
#define DNS_LOSS_CUT(w)  ((w) / 16 < 2 ? 2u : (unsigned)((w) / 16))

/* One libevent event per socket c-ares wants watched. */
struct dns_watch {
	struct dns *d;
	ares_socket_t fd;
	short what;
	struct event *ev;
	struct dns_watch *next;
};

enum dns_req_kind { DNS_REQ_MX, DNS_REQ_ADDRS };

/*
 * One caller request.  Lives from dns_resolve_*() until its callback has
 * returned (or dns_free()).  c-ares queries hold a pointer to it; it is
 * never freed while one of them is outstanding, except by dns_free(),
 * which destroys the channel first.
 */
struct dns_req {
	struct dns *d;
	struct dns_req *prev, *next;    /* all live requests */
	struct dns_req *ready_next;     /* delivery queue */
	struct dns_req *wait_next;      /* not started yet (in-flight cap) */
	enum dns_req_kind kind;
	char *name;                     /* as the caller gave it */
	char *qname;                    /* lowercase, no trailing dot */
	int port;
	dns_mx_cb mx_cb;
	dns_addr_cb addr_cb;
	void *arg;
	int outstanding;                /* c-ares queries not yet answered */
	uint64_t started_ms, started_us; /* when its first query went out */

	struct dns_mx_result mx;        /* DNS_REQ_MX */
	int st4, st6;                   /* c-ares status of the A / AAAA query */
	size_t n4, n6;
	struct sockaddr_storage *a4, *a6;
	enum dns_status addr_status;    /* DNS_REQ_ADDRS */
};

struct dns {
	struct event_base *base;
	ares_channel ch;
	struct event *timer;
	struct event *deliver;
	struct dns_watch *watches;
	struct dns_req *live;           /* every undelivered request */
	struct dns_req *ready_head, *ready_tail;
	struct dns_req *wait_head, *wait_tail;  /* waiting for a slot */
	size_t npending;
	unsigned inflight;              /* started, not yet ready */
	double window, ssthresh;        /* in-flight bound (see the header) */
	uint64_t cut_ms;                /* when the window was last halved */
	unsigned round_losses;          /* losses seen since then */
	uint64_t srtt_us;               /* smoothed time to a clean answer */
	uint64_t base_us;               /* smoothed RTT at the start window */
	unsigned base_n;                /* samples in it */
	unsigned inflight_peak;
	int pumping;                    /* inside dns_pump(): no recursion */
	int destroying;                 /* ares_destroy() running: swallow callbacks */
	int delivering;                 /* inside a caller's callback */
	int free_requested;             /* dns_free() called from a callback */
};

static void dns_timer_rearm(struct dns *);
static void dns_destroy(struct dns *);
static void dns_pump(struct dns *);

static void
dns_oom(void)
{
	log_error("out of memory", "module=dns");
	abort();
}

/* ---- loop glue ------------------------------------------------------ */

static void
dns_on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct dns_watch *w = arg;
	struct dns *d = w->d;

	/* w may be freed by the sock state callback inside ares_process_fd(). */
	ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_rearm(d);
}

static void
dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	/* Both sockets BAD: c-ares only checks its timeouts. */
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_rearm(d);
}

static void
dns_timer_rearm(struct dns *d)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(d->ch, NULL, &tv);
	if (tvp == NULL)
		evtimer_del(d->timer);
	else
		evtimer_add(d->timer, tvp);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_watch **wp, *w;
	short what;

	for (wp = &d->watches; *wp != NULL; wp = &(*wp)->next)
		if ((*wp)->fd == fd)
			break;
	w = *wp;
	if (!readable && !writable) {
		if (w != NULL) {
			/* Safe from inside w's own callback: libevent does not
			 * touch an event after its callback has been called. */
			*wp = w->next;
			event_free(w->ev);
			free(w);
		}
		return;
	}
	what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (w != NULL) {
		if (w->what == what)
			return;
		event_del(w->ev);
		if (event_assign(w->ev, d->base, fd, what, dns_on_watch, w) == -1)
			dns_oom();
	} else {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			dns_oom();
		w->d = d;
		w->fd = fd;
		if ((w->ev = event_new(d->base, fd, what, dns_on_watch, w)) == NULL)
			dns_oom();
		w->next = d->watches;
		d->watches = w;
	}
	w->what = what;
	if (event_add(w->ev, NULL) == -1)
		log_error("event_add failed", "module=dns fd=%d", (int)fd);
}

/* ---- requests ------------------------------------------------------- */

static void
dns_req_free(struct dns_req *r)
{
	for (size_t i = 0; i < r->mx.nhosts; i++)
		free(r->mx.hosts[i].name);
	free(r->mx.hosts);
	free(r->a4);
	free(r->a6);
	free(r->name);
	free(r->qname);
	free(r);
}

static void
dns_req_unlink(struct dns_req *r)
{
	struct dns *d = r->d;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		d->live = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	d->npending--;
}

static struct dns_req *
dns_req_new(struct dns *d, enum dns_req_kind kind, const char *name)
{
	struct dns_req *r;
	size_t len;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		dns_oom();
	if ((r->name = strdup(name)) == NULL || (r->qname = strdup(name)) == NULL)
		dns_oom();
	for (char *p = r->qname; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	len = strlen(r->qname);
	if (len > 1 && r->qname[len - 1] == '.')
		r->qname[len - 1] = '\0';
	r->d = d;
	r->kind = kind;
	r->st4 = r->st6 = ARES_ENODATA;
	r->next = d->live;
	if (d->live != NULL)
		d->live->prev = r;
	d->live = r;
	d->npending++;
	return r;
}

/* Queue a finished request; the deliver event hands it to the caller. */
static void
dns_req_ready(struct dns_req *r)
{
	struct dns *d = r->d;

	r->ready_next = NULL;
	d->inflight--;
	dns_pump(d);
	if (d->ready_tail != NULL)
		d->ready_tail->ready_next = r;
	else
		d->ready_head = r;
	d->ready_tail = r;
	event_active(d->deliver, EV_TIMEOUT, 0);
}

static void
dns_req_call(struct dns_req *r)
{
	struct sockaddr_storage *all = NULL;
	size_t n;

	if (r->kind == DNS_REQ_MX) {
		r->mx_cb(r->arg, r->name, &r->mx);
		return;
	}
	n = r->n4 + r->n6;
	if (n > 0) {
		if ((all = calloc(n, sizeof(*all))) == NULL)
			dns_oom();
		if (r->n4 > 0)
			memcpy(all, r->a4, r->n4 * sizeof(*all));
		if (r->n6 > 0)
			memcpy(all + r->n4, r->a6, r->n6 * sizeof(*all));
	}
	r->addr_cb(r->arg, r->name, r->addr_status, all, n);
	free(all);
}

static void
dns_on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	struct dns_req *r, *last = d->ready_tail;
	int was_last = 0;

	/* Deliver what is queued now; requests a callback completes
	 * synchronously wait for the next round, so the loop stays fair. */
	while (!was_last && (r = d->ready_head) != NULL) {
		was_last = r == last;
		d->ready_head = r->ready_next;
		if (d->ready_head == NULL)
			d->ready_tail = NULL;
		dns_req_unlink(r);
		d->delivering = 1;
		dns_req_call(r);
		d->delivering = 0;
		dns_req_free(r);
		if (d->free_requested) {
			dns_destroy(d);
			return;
		}
	}
	if (d->ready_head != NULL)
		event_active(d->deliver, EV_TIMEOUT, 0);
}

/* ---- answers -------------------------------------------------------- */

static void
dns_set_error(struct dns_req *r, const char *what, int status)
{
	r->mx.status = DNS_ERROR;
	snprintf(r->mx.error, sizeof(r->mx.error), "%s: %s", what,
	    ares_strerror(status));
}

/* A host name as an MX target may be: LDH labels (plus '_', seen in the
 * wild), 1..63 octets each, 253 in all.  Lowercases in place. */
static int
dns_host_ok(char *s)
{
	size_t len = 0, label = 0;

	for (char *p = s; *p != '\0'; p++, len++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return 0;
		*p = (char)tolower(c);
		if (++label > 63)
			return 0;
	}
	return len > 0 && len <= 253 && label > 0;
}

static int
dns_host_cmp(const void *a, const void *b)
{
	const struct dns_mx_host *x = a, *y = b;

	if (x->preference != y->preference)
		return x->preference < y->preference ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
dns_mx_fallback(struct dns_req *);

static void
dns_mx_finish_ok(struct dns_req *r)
{
	dns_mx_domain(r->mx.hosts[0].name, r->mx.mx_domain,
	    sizeof(r->mx.mx_domain));
	r->mx.status = DNS_OK;
}

static void
dns_mx_parse(struct dns_req *r, unsigned char *abuf, int alen)
{
	struct ares_mx_reply *mx = NULL, *m;
	size_t n = 0, k;
	int status, nullmx = 0;

	status = ares_parse_mx_reply(abuf, alen, &mx);
	if (status == ARES_ENODATA) {
		/* e.g. a CNAME whose target has no MX */
		dns_mx_fallback(r);
		return;
	}
	if (status != ARES_SUCCESS) {
		dns_set_error(r, "MX reply", status);
		dns_req_ready(r);
		return;
	}
	for (m = mx; m != NULL; m = m->next)
		n++;
	if ((r->mx.hosts = calloc(n, sizeof(*r->mx.hosts))) == NULL)
		dns_oom();
	for (m = mx; m != NULL; m = m->next) {
		char *h = m->host;
		size_t len = strlen(h);

		if (len > 0 && h[len - 1] == '.')
			h[--len] = '\0';
		if (len == 0) {
			nullmx = 1;
			continue;
		}
		if (!dns_host_ok(h)) {
			log_warn("malformed MX host ignored", "domain=%s",
			    r->qname);
			continue;
		}
		if ((h = strdup(h)) == NULL)
			dns_oom();
		r->mx.hosts[r->mx.nhosts].name = h;
		r->mx.hosts[r->mx.nhosts].preference = m->priority;
		r->mx.nhosts++;
	}
	ares_free_data(mx);

	if (r->mx.nhosts == 0) {
		if (nullmx)
			r->mx.status = DNS_NULL_MX;
		else {
			r->mx.status = DNS_ERROR;
			snprintf(r->mx.error, sizeof(r->mx.error),
			    "MX reply: no valid host name");
		}
		dns_req_ready(r);
		return;
	}
	qsort(r->mx.hosts, r->mx.nhosts, sizeof(*r->mx.hosts), dns_host_cmp);
	/* Same host under two preferences: keep the first (lowest). */
	for (size_t i = k = 0; i < r->mx.nhosts; i++) {
		int dup = 0;

		for (size_t j = 0; j < k; j++)
			if (strcmp(r->mx.hosts[j].name, r->mx.hosts[i].name) == 0)
				dup = 1;
		if (dup)
			free(r->mx.hosts[i].name);
		else
			r->mx.hosts[k++] = r->mx.hosts[i];
	}
	r->mx.nhosts = k;
	dns_mx_finish_ok(r);
	dns_req_ready(r);
}

/*
 * Adjust the in-flight window for one query's outcome (see the header).
 * Losses cut the window once per round, when there are DNS_LOSS_CUT of
 * them: losses of requests started before the last cut were sent under
 * the old window and say nothing about the new one.  A clean answer
 * measures the RTT and may open the window.
 */
static void
dns_window_note(struct dns_req *r, int status, int timeouts)
{
	struct dns *d = r->d;
	uint64_t rtt;

	if (timeouts > 0 || status == ARES_ETIMEOUT) {
		if (r->started_ms >= d->cut_ms && ++d->round_losses >= DNS_LOSS_CUT(d->window)) {
			uint64_t now = clock_mono_ms();

			d->round_losses = 0;
			d->ssthresh = d->window / 2 < DNS_WINDOW_MIN ? DNS_WINDOW_MIN : d->window / 2;
			d->window = d->ssthresh;
			d->cut_ms = now + 1;  /* later than any start so far */
		}
		return;
	}
	if (status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND)
		return;         /* SERVFAIL, REFUSED: answered, says nothing of loss */
	rtt = clock_mono_us() - r->started_us;
	d->srtt_us = d->srtt_us == 0 ? rtt : (7 * d->srtt_us + rtt) / 8;
	if (d->window <= DNS_WINDOW_START) {
		/* the resolver's latency at the start window, slowly */
		d->base_us = d->base_n == 0 ? rtt : (31 * d->base_us + rtt) / 32;
		if (d->base_n < DNS_BASE_SAMPLES) {
			d->base_n++;
			return;
		}
	}
	if (d->base_us < DNS_GROW_RTT_US || d->srtt_us < DNS_GROW_RTT_US ||
	    d->srtt_us > 2 * d->base_us)
		return;         /* fast resolver, or lookups queueing inside it */
	if (d->window < d->ssthresh)
		d->window += 1.0;
	else
		d->window += 1.0 / d->window;
	if (d->window > DNS_WINDOW_MAX)
		d->window = DNS_WINDOW_MAX;
}

static void
dns_on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_req *r = arg;

	if (status == ARES_EDESTRUCTION)
		return;         /* dns_free(): r is freed by the caller of ares_destroy */
	dns_window_note(r, status, timeouts);
	r->outstanding--;
	switch (status) {
	case ARES_SUCCESS:
		dns_mx_parse(r, abuf, alen);
		break;
	case ARES_ENODATA:
		dns_mx_fallback(r);
		break;
	case ARES_ENOTFOUND:
		r->mx.status = DNS_NXDOMAIN;
		dns_req_ready(r);
		break;
	default:
		dns_set_error(r, "MX", status);
		dns_req_ready(r);
		break;
	}
}

/* Both address queries answered: decide for an MX fallback or an address
 * request. */
static void
dns_addrs_done(struct dns_req *r)
{
	enum dns_status st;
	int bad = 0;

	if (r->n4 + r->n6 > 0)
		st = DNS_OK;
	else {
		if (r->st4 != ARES_ENODATA && r->st4 != ARES_ENOTFOUND &&
		    r->st4 != ARES_SUCCESS)
			bad = r->st4;
		else if (r->st6 != ARES_ENODATA && r->st6 != ARES_ENOTFOUND &&
		    r->st6 != ARES_SUCCESS)
			bad = r->st6;
		if (bad)
			st = DNS_ERROR;
		else if (r->st4 == ARES_ENOTFOUND && r->st6 == ARES_ENOTFOUND)
			st = DNS_NXDOMAIN;
		else
			st = DNS_NO_MAIL;
	}
	if (r->kind == DNS_REQ_ADDRS) {
		r->addr_status = st;
	} else if (st == DNS_OK) {
		if ((r->mx.hosts = calloc(1, sizeof(*r->mx.hosts))) == NULL ||
		    (r->mx.hosts[0].name = strdup(r->qname)) == NULL)
			dns_oom();
		r->mx.nhosts = 1;
		r->mx.implicit = 1;
		dns_mx_finish_ok(r);
	} else if (st == DNS_ERROR) {
		dns_set_error(r, bad == r->st4 ? "A" : "AAAA", bad);
	} else
		r->mx.status = st;
	dns_req_ready(r);
}

static void
dns_on_addr(struct dns_req *r, int family, int status, unsigned char *abuf,
    int alen)
{
	struct sockaddr_storage **out = family == AF_INET ? &r->a4 : &r->a6;
	size_t *nout = family == AF_INET ? &r->n4 : &r->n6;
	int n = DNS_ADDRS_MAX;

	r->outstanding--;
	if (status == ARES_SUCCESS) {
		struct ares_addrttl t4[DNS_ADDRS_MAX];
		struct ares_addr6ttl t6[DNS_ADDRS_MAX];

		if (family == AF_INET)
			status = ares_parse_a_reply(abuf, alen, NULL, t4, &n);
		else
			status = ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n);
		if (status == ARES_SUCCESS && n > 0) {
			if ((*out = calloc((size_t)n, sizeof(**out))) == NULL)
				dns_oom();
			for (int i = 0; i < n; i++) {
				if (family == AF_INET) {
					struct sockaddr_in *sin = (void *)&(*out)[i];
					sin->sin_family = AF_INET;
					sin->sin_port = htons((uint16_t)r->port);
					memcpy(&sin->sin_addr, &t4[i].ipaddr,
					    sizeof(sin->sin_addr));
				} else {
					struct sockaddr_in6 *s6 = (void *)&(*out)[i];
					s6->sin6_family = AF_INET6;
					s6->sin6_port = htons((uint16_t)r->port);
					memcpy(&s6->sin6_addr, &t6[i].ip6addr,
					    sizeof(s6->sin6_addr));
				}
			}
			*nout = (size_t)n;
		} else if (status == ARES_SUCCESS)
			status = ARES_ENODATA;
	}
	if (family == AF_INET)
		r->st4 = status;
	else
		r->st6 = status;
	if (r->outstanding == 0)
		dns_addrs_done(r);
}

static void
dns_on_a(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	if (status == ARES_EDESTRUCTION)
		return;
	dns_window_note(arg, status, timeouts);
	dns_on_addr(arg, AF_INET, status, abuf, alen);
}

static void
dns_on_aaaa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	if (status == ARES_EDESTRUCTION)
		return;
	dns_window_note(arg, status, timeouts);
	dns_on_addr(arg, AF_INET6, status, abuf, alen);
}

/* Ask A and AAAA of r->qname.  outstanding is set before either query
 * starts: either may answer synchronously. */
static void
dns_query_addrs(struct dns_req *r)
{
	r->outstanding = 2;
	ares_query(r->d->ch, r->qname, ns_c_in, ns_t_a, dns_on_a, r);
	ares_query(r->d->ch, r->qname, ns_c_in, ns_t_aaaa, dns_on_aaaa, r);
}

/* No MX: RFC 5321 5.1 implicit MX, the domain's own address records. */
static void
dns_mx_fallback(struct dns_req *r)
{
	dns_query_addrs(r);
}

/* Send the first query (or pair) of a request. */
static void
dns_req_start(struct dns_req *r)
{
	if (r->kind == DNS_REQ_MX) {
		r->outstanding = 1;
		ares_query(r->d->ch, r->qname, ns_c_in, ns_t_mx, dns_on_mx, r);
	} else {
		dns_query_addrs(r);
	}
}

/* Start waiting requests while there is room.  A request that fails
 * synchronously inside ares_query() frees its slot through dns_req_ready()
 * -> dns_pump(): the guard turns that recursion into this loop. */
static void
dns_pump(struct dns *d)
{
	struct dns_req *r;

	if (d->pumping || d->destroying)
		return;
	d->pumping = 1;
	while (d->inflight < (unsigned)d->window && (r = d->wait_head) != NULL) {
		d->wait_head = r->wait_next;
		if (d->wait_head == NULL)
			d->wait_tail = NULL;
		if (++d->inflight > d->inflight_peak)
			d->inflight_peak = d->inflight;
		r->started_us = clock_mono_us();
		r->started_ms = r->started_us / 1000u;
		dns_req_start(r);
	}
	d->pumping = 0;
}

static void
dns_req_submit(struct dns_req *r)
{
	struct dns *d = r->d;

	r->wait_next = NULL;
	if (d->wait_tail != NULL)
		d->wait_tail->wait_next = r;
	else
		d->wait_head = r;
	d->wait_tail = r;
	dns_pump(d);
	dns_timer_rearm(d);
}

/* ---- public --------------------------------------------------------- */

/* Parse "host[:port]", "[v6]:port", "v6" (no port) into node. */
static int
dns_parse_server(const char *s, size_t len, struct ares_addr_port_node *node)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL, *h = s;
	size_t hlen = len;
	long pnum = 53;

	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL)
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		if ((size_t)(close + 1 - s) < len) {
			if (close[1] != ':')
				return -1;
			port = close + 2;
		}
	} else {
		const char *c = memchr(s, ':', len);

		/* exactly one ':' = IPv4 (or name) with port; more = bare IPv6 */
		if (c != NULL && memchr(c + 1, ':', len - (size_t)(c + 1 - s)) == NULL) {
			hlen = (size_t)(c - s);
			port = c + 1;
		}
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (port != NULL) {
		size_t plen = len - (size_t)(port - s);

		if (plen == 0 || plen > 5)
			return -1;
		pnum = 0;
		for (size_t i = 0; i < plen; i++) {
			if (port[i] < '0' || port[i] > '9')
				return -1;
			pnum = pnum * 10 + (port[i] - '0');
		}
		if (pnum < 1 || pnum > 65535)
			return -1;
	}
	memset(node, 0, sizeof(*node));
	if (inet_pton(AF_INET, host, &node->addr.addr4) == 1)
		node->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &node->addr.addr6) == 1)
		node->family = AF_INET6;
	else
		return -1;
	node->udp_port = node->tcp_port = (int)pnum;
	return 0;
}

struct dns *
dns_new(struct event_base *base, const char *server, char *err, size_t errlen)
{
	struct ares_addr_port_node nodes[DNS_SERVERS_MAX];
	struct ares_options o;
	struct dns *d;
	size_t nnodes = 0;
	int rc;

	if (server != NULL) {
		/* A comma-separated list is accepted too. */
		for (const char *p = server; ; ) {
			const char *end = strchr(p, ',');
			size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

			if (nnodes == DNS_SERVERS_MAX ||
			    dns_parse_server(p, len, &nodes[nnodes]) == -1) {
				snprintf(err, errlen, "bad DNS server \"%s\": want "
				    "IP, IP:PORT or [IPv6]:PORT", server);
				return NULL;
			}
			if (nnodes > 0)
				nodes[nnodes - 1].next = &nodes[nnodes];
			nnodes++;
			if (end == NULL)
				break;
			p = end + 1;
		}
	}
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		ares_library_cleanup();
		return NULL;
	}
	d->base = base;
	d->window = DNS_WINDOW_START;
	d->ssthresh = DNS_WINDOW_MAX;
	d->timer = evtimer_new(base, dns_on_timer, d);
	d->deliver = event_new(base, -1, 0, dns_on_deliver, d);
	if (d->timer == NULL || d->deliver == NULL) {
		snprintf(err, errlen, "cannot create events");
		goto fail;
	}

	memset(&o, 0, sizeof(o));
	o.timeout = DNS_TIMEOUT_MS;
	o.tries = DNS_TRIES;
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = d;
	o.lookups = (char *)"b";
	/* a window's worth of answers can arrive in one burst: the default
	 * 208 KiB holds ~270 of them (the kernel caps this at rmem_max) */
	o.socket_receive_buffer_size = DNS_RCVBUF;
	rc = ares_init_options(&d->ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_RCVBUF);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		d->ch = NULL;
		goto fail;
	}
	if (nnodes > 0 &&
	    (rc = ares_set_servers_ports(d->ch, nodes)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares servers \"%s\": %s", server,
		    ares_strerror(rc));
		goto fail;
	}
	return d;
fail:
	dns_destroy(d);
	return NULL;
}

/* Tear everything down; no caller callback runs. */
static void
dns_destroy(struct dns *d)
{
	struct dns_req *r, *next;
	struct dns_watch *w, *wnext;

	d->destroying = 1;
	if (d->ch != NULL)
		ares_destroy(d->ch);        /* ARES_EDESTRUCTION callbacks: ignored */
	for (r = d->live; r != NULL; r = next) {
		next = r->next;
		dns_req_free(r);
	}
	for (w = d->watches; w != NULL; w = wnext) {
		wnext = w->next;
		event_free(w->ev);
		free(w);
	}
	if (d->timer != NULL)
		event_free(d->timer);
	if (d->deliver != NULL)
		event_free(d->deliver);
	free(d);
	ares_library_cleanup();
}

void
dns_window(const struct dns *d, unsigned *window, unsigned *peak)
{
	*window = (unsigned)d->window;
	*peak = d->inflight_peak;
}

void
dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	if (!d->free_requested)
		log_debug("dns window", "window=%u peak_in_flight=%u base_rtt_ms=%.1f srtt_ms=%.1f",
		    (unsigned)d->window, d->inflight_peak, (double)d->base_us / 1000.0,
		    (double)d->srtt_us / 1000.0);
	if (d->delivering) {
		/* Called from a caller's callback: finish after it returns. */
		d->free_requested = 1;
		return;
	}
	dns_destroy(d);
}

void
dns_resolve_mx(struct dns *d, const char *domain, dns_mx_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(d, DNS_REQ_MX, domain);

	r->mx_cb = cb;
	r->arg = arg;
	dns_req_submit(r);
}

void
dns_resolve_addrs(struct dns *d, const char *host, int port, dns_addr_cb cb,
    void *arg)
{
	struct dns_req *r = dns_req_new(d, DNS_REQ_ADDRS, host);

	r->addr_cb = cb;
	r->arg = arg;
	r->port = port;
	dns_req_submit(r);
}

size_t
dns_pending(const struct dns *d)
{
	return d->npending;
}

/* ---- MX domain ------------------------------------------------------ */

static const psl_ctx_t *dns_psl;
static pthread_once_t dns_psl_once = PTHREAD_ONCE_INIT;

/*
 * MX hosts repeat: a list of millions of domains points at a few thousand
 * MX hosts, and psl_registrable_domain() costs ~7,400 instructions a call
 * (scripts/bench, callgrind: 8% of `mxsift submit` on 100,000 domains).
 * So the last answers are kept, one per slot, slot chosen by a hash of the
 * lowercased host; a mutex because the list is shared by every thread.
 */
#define DNS_MXD_SLOTS 128
static struct {
	char host[256];
	char reg[256];
} dns_mxd_cache[DNS_MXD_SLOTS];
static pthread_mutex_t dns_mxd_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned
dns_mxd_slot(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % DNS_MXD_SLOTS;
}

static void
dns_psl_load(void)
{
	/* The system's list file when it is newer than the built-in one. */
	dns_psl = psl_latest(NULL);
	if (dns_psl == NULL)
		dns_psl = psl_builtin();
}

void
dns_mx_domain(const char *host, char *out, size_t outlen)
{
	char buf[256];
	const char *reg = NULL;
	size_t len;
	unsigned slot;
	unsigned char a[sizeof(struct in6_addr)];

	if (outlen == 0)
		return;
	snprintf(buf, sizeof(buf), "%s", host);
	for (char *p = buf; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	len = strlen(buf);
	if (len > 1 && buf[len - 1] == '.')
		buf[--len] = '\0';
	slot = dns_mxd_slot(buf);
	pthread_mutex_lock(&dns_mxd_lock);
	if (dns_mxd_cache[slot].host[0] != '\0' && strcmp(dns_mxd_cache[slot].host, buf) == 0) {
		snprintf(out, outlen, "%s", dns_mxd_cache[slot].reg);
		pthread_mutex_unlock(&dns_mxd_lock);
		return;
	}
	pthread_mutex_unlock(&dns_mxd_lock);
	/* An address is its own "domain" (the PSL would cut 1.2.3.4 to 3.4). */
	if (inet_pton(AF_INET, buf, a) != 1 && inet_pton(AF_INET6, buf, a) != 1) {
		pthread_once(&dns_psl_once, dns_psl_load);
		if (dns_psl != NULL)
			reg = psl_registrable_domain(dns_psl, buf);
	}
	/* NULL: host is itself a public suffix (or no list): key on it. */
	snprintf(out, outlen, "%s", reg != NULL ? reg : buf);
	pthread_mutex_lock(&dns_mxd_lock);
	memcpy(dns_mxd_cache[slot].host, buf, len + 1);
	snprintf(dns_mxd_cache[slot].reg, sizeof(dns_mxd_cache[slot].reg), "%s",
	    reg != NULL ? reg : buf);
	pthread_mutex_unlock(&dns_mxd_lock);
}
