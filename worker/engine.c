/*
 * engine.c — lanes of SMTP sessions on one event loop (see engine.h).
 *
 * Owns: the lanes (one per MX domain, a sorted array searched by binary
 * search), each lane's FIFO of requests, its connections, its rule, token
 * buckets and backoff state; the lane rules (sorted by MX domain); the
 * catch-all cache (sorted by domain); a connection ("conn") owns one
 * smtp_session at a time and its connect plan (host list, the addresses of
 * the current host, the last failure seen).
 *
 * Flow: engine_submit() queues a request and schedules the lane (never does
 * work inline).  The lane pump hands queued requests to idle sessions
 * connected to one of the request's hosts when the RCPT bucket has a token,
 * and opens a connection (up to the rule's conns, when the connection
 * bucket has a token) for the rest; otherwise it arms the lane's one timer
 * for the moment a token is due, or the pause ends.  A connection walks its
 * plan: hosts by preference, each host's addresses in order (numeric hosts
 * need no DNS), failing over on refused/timed-out connects, 421 greetings
 * and broken handshakes.  When the plan is exhausted, every queued request
 * whose hosts were all tried gets the last failure's verdict (or, when a
 * rate limit ended it, waits for the lane's pause to end and is asked
 * again, up to throttle_retries times).
 *
 * Catch-all detection (engine.h): the first accepted answer for a domain
 * is parked, and an internal request for a random local part of the domain
 * goes to the head of the lane's queue, so the same session asks next, in
 * its own transaction.  With PIPELINING (and no RCPT rate limit on the
 * lane) the probe does not cost a round trip of its own: it goes in one
 * pipelined group with the next request for the same host (conn_feed:
 * RSET MAIL RCPT <random>, RSET MAIL RCPT <address>), and the two results
 * come back in that order.  Its answer decides the domain's cache entry and
 * releases the parked verdicts; later accepted answers of that domain are
 * decided at once from the entry.  Internal requests take the same paths as
 * real ones (failover, requeue, 452 retry, shutdown) but report to the
 * cache, never to the done callback.
 *
 * Sessions are recycled (QUIT, new connection) after the rule's
 * rcpt_per_session RCPTs, max_rejects_per_session rejected RCPTs or max_session_age_s, so we
 * stop before receivers' junk-command limits bite; an idle session is
 * QUIT after idle_close_ms.  A session that failed is never reused.  On a
 * lane without rate rules, a session near its recycle (STANDBY_AHEAD
 * more rejections or RCPTs) gets a standby successor: a
 * connection opened now, so greeting and EHLO overlap its last probes; the
 * standby takes no work while the lane's other sessions are working, and
 * one that fails before it is ready costs no verdict and ends standbys on
 * that lane.
 *
 * Returns verdicts only through the done callback, delivered from a
 * deferred event — exactly one per submitted request.  Diagnostics: debug
 * logs per connection, per verdict and per catch-all answer; warnings for
 * plan failures; info lines "smtp session end" (one per session, see
 * engine.h), "lane backoff" and "lane rate" (every change of a lane's rate)
 * and "lane rules loaded".
 */
#include "engine.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/random.h>

#include <event2/event.h>

#include "classify.h"
#include "clock.h"
#include "log.h"
#include "smtp_session.h"

#define ENGINE_ADDR_MAX 1024  /* bytes; UTF-8 local parts may be long */
#define CA_LOCAL_LEN 20       /* random local part: 26^20 ~ 2^94 */
#define CA_UNKNOWN_TTL_S 300u /* an undecided domain is asked again after */
#define CA_SWEEP_AT 4096      /* entries before expired ones are dropped */
/* RCPT/s a lane without a limit falls back to when told it is too fast */
#define LANE_NOMINAL_RATE 2.0
#define LANE_MIN_RATE 0.05     /* never slower than one RCPT per 20 s */
#define LANE_RATE_STEP 0.1     /* recovery per good answer: a tenth of the rule */
#define LANE_FORGET_MS 600000u /* an idle slowed-down lane is forgotten after */
#define LANE_LEVEL_MAX 16
/* A session this many rejections or RCPTs away from its recycle gets a
 * standby successor: greeting and EHLO take two round trips, and
 * rejections often come in runs (a domain's unknown users one after the
 * other), so one result ahead is too late. */
#define STANDBY_AHEAD 2u

struct lane;

struct ereq {
	TAILQ_ENTRY(ereq) link;
	struct lane *lane;
	char *address;
	char *domain;
	char **hosts;
	size_t nhosts;
	unsigned flags;
	void *tag;
	unsigned attempts;  /* probes started for this request */
	int retried_now;    /* RETRY_NOW used once */
	int requeued;       /* requeued after a dropped reused session */
	int internal;       /* catch-all probe: reports to the cache */
	unsigned throttled; /* asked again after rate-limit answers */
	uint64_t submitted_ms;
	struct verdict v;
};
TAILQ_HEAD(ereq_q, ereq);

enum conn_state {
	CONN_RESOLVING = 0,
	CONN_CONNECTING, /* TCP, greeting, EHLO, TLS */
	CONN_READY,
	CONN_BUSY,
	CONN_CLOSING
};

struct dns_ticket {
	struct conn *c; /* NULL once the conn is gone */
};

struct conn {
	TAILQ_ENTRY(conn) link;
	struct lane *lane;
	struct smtp_session *s;
	enum conn_state st;
	unsigned id;

	/* connect plan */
	char **hosts;
	size_t nhosts;
	size_t host_idx;             /* next host to try */
	char host[VERDICT_HOST_MAX]; /* host of the current attempt */
	struct sockaddr_storage *addrs;
	size_t naddrs;
	size_t addr_idx; /* next address to try */
	struct dns_ticket *ticket;
	struct verdict lastfail;
	int failover;   /* the last attempt failed before READY */
	int plan_fatal; /* a refusal that failover will not fix */
	int notls;      /* "may": handshake failed, retry in plaintext */
	int throttled;  /* the plan ended on a rate-limit answer */
	int standby;    /* opened for a session about to be recycled: no work
	                   while the lane's other sessions are working */

	struct ereq *cur;      /* request being probed (its result comes next) */
	struct ereq *cur_next; /* the one behind it in the same group, or NULL */
	unsigned served;       /* results on this session */
	unsigned rejects;      /* 5xx results on this session */
	uint64_t ready_ms;
	unsigned seen_rcpts, seen_503, seen_replies[6];
	struct event *idle;

	/* the current session, for its end line */
	uint64_t sess_ms;    /* connect started */
	const char *outcome; /* failure class (static string); NULL = none yet */
	const char *why;     /* why we ended it (static string); NULL = not us */
	int end_code;        /* reply that ended it, 0 = none */
};
TAILQ_HEAD(conn_q, conn);

/* A lane rule (engine.h, "Lane rules"). */
struct lane_rule {
	char *key;
	double rate, conn_rate; /* per second; 0 = no limit */
	unsigned burst, conn_burst;
	unsigned conns, rcpt_per_session;
	unsigned set; /* RULE_* given on the line */
};
#define RULE_RATE 0x01u
#define RULE_BURST 0x02u
#define RULE_CONN_RATE 0x04u
#define RULE_CONN_BURST 0x08u
#define RULE_CONNS 0x10u
#define RULE_RCPT 0x20u

/*
 * A token bucket; tokens refill at the lane's rate up to the burst.  It
 * counts in microseconds: a lane held to 40 RCPT/s with a burst of 1 cannot
 * bank the time its wake-up is late, so a millisecond lost to rounding on
 * every token is 4% of its rate.
 */
struct bucket {
	double tokens;
	uint64_t at_us; /* tokens were counted then (may lie in the future) */
};

struct lane {
	struct engine *e;
	char *key;
	struct ereq_q q;
	size_t qlen;
	struct conn_q conns;
	unsigned nconns;
	struct event *kick;

	struct lane_rule rule; /* a copy; key not owned */
	double rate;           /* current RCPT rate: <= rule.rate; 0 = no limit */
	struct bucket rcpt, conn;
	uint64_t paused_until;
	unsigned level; /* consecutive rate-limit answers */
	unsigned long backoffs;
	uint64_t last_ms; /* last activity: a slowed-down idle lane is forgotten */
	struct event *timer;
	uint64_t timer_at; /* when the armed timer fires, us; 0 = not armed */
	int no_standby;    /* a standby connection failed here: no more */
};

/* A domain's catch-all answer (see engine.h). */
enum ca_state { CA_NONE = 0, CA_PENDING, CA_YES, CA_NO, CA_UNKNOWN };

struct ca_entry {
	char *domain;
	enum ca_state st;
	uint64_t until_ms;    /* a decided answer is kept until then */
	struct ereq_q parked; /* accepted, waiting for the answer */
};

struct engine {
	struct event_base *base;
	struct dns *dns;
	engine_done_cb done;
	void *done_arg;

	char *helo;
	char *mail_from;
	char *catch_all_local;
	char *bind_address;
	struct sockaddr_storage bind; /* bind_address, port 0 */
	socklen_t bind_len;           /* 0 = no --bind */
	struct engine_params p;
	struct smtp_session_params sp;
	void *ssl_ctx;

	struct lane **lanes; /* sorted by key */
	size_t nlanes, lanes_cap;
	struct ca_entry **cas; /* sorted by domain */
	size_t ncas, cas_cap;
	struct lane_rule *rules; /* sorted by key; "*" among them */
	size_t nrules;
	uint32_t jitter; /* xorshift state for backoff jitter */

	struct ereq_q doneq;
	struct event *done_ev;
	size_t pending;
	int shutting;
	unsigned conn_ids;
	struct engine_stats stats;
};

static void lane_kick(struct lane *);
static void lane_kick_cb(evutil_socket_t, short, void *);
static void lane_timer_cb(evutil_socket_t, short, void *);
static void lane_settle(struct lane *);
static void conn_next(struct conn *);
static void conn_free(struct conn *);

/* ---- requests and verdicts ----------------------------------------------- */

static void
ereq_free(struct ereq *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	free(r->address);
	free(r->domain);
	free(r);
}

static int
ereq_has_host(const struct ereq *r, const char *host)
{
	for (size_t i = 0; i < r->nhosts; i++)
		if (strcmp(r->hosts[i], host) == 0)
			return 1;
	return 0;
}

static void engine_catch_all_resolve(struct engine *, struct ereq *, const struct verdict *);

/* Fill in the request's verdict and its evidence. */
static void
engine_stamp(struct ereq *r, const struct verdict *v, const struct conn *c)
{
	r->v = *v;
	if (c != NULL && r->v.mx_host[0] == '\0')
		snprintf(r->v.mx_host, sizeof(r->v.mx_host), "%s", c->host);
	if (c != NULL && c->s != NULL && r->v.tls == 0)
		r->v.tls = smtp_session_tls(c->s);
	r->v.attempts = r->attempts;
	r->v.duration_ms = clock_mono_ms() - r->submitted_ms;
	r->v.flags |= r->flags;
	if (r->v.checked_at == 0)
		r->v.checked_at = (int64_t)time(NULL);
}

/* Queue a stamped request for the done callback (run from the loop). */
static void
engine_deliver(struct engine *e, struct ereq *r)
{
	log_debug("verdict", "address=%s status=%s reason=%s code=%d mx=%s", r->address,
	          verdict_status_name(r->v.status), verdict_reason_name(r->v.reason),
	          r->v.smtp_code, r->v.mx_host);
	TAILQ_INSERT_TAIL(&e->doneq, r, link);
	event_active(e->done_ev, 0, 1);
}

/* Hand the request its verdict; the done callback runs from the loop.  An
 * internal (catch-all) request decides its domain's entry instead. */
static void
engine_finish(struct engine *e, struct ereq *r, const struct verdict *v, const struct conn *c)
{
	if (r->internal) {
		engine_catch_all_resolve(e, r, v);
		ereq_free(r);
		return;
	}
	engine_stamp(r, v, c);
	engine_deliver(e, r);
}

static void
engine_finish_reason(struct engine *e, struct ereq *r, enum verdict_reason why, const char *detail,
                     const struct conn *c)
{
	struct verdict v;

	verdict_init(&v, why);
	if (detail != NULL)
		snprintf(v.detail, sizeof(v.detail), "%s", detail);
	engine_finish(e, r, &v, c);
}

static void
engine_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	struct ereq *r;

	/* The callback may submit (and even shut down): take one at a time. */
	while ((r = TAILQ_FIRST(&e->doneq)) != NULL) {
		TAILQ_REMOVE(&e->doneq, r, link);
		e->pending--;
		e->done(e->done_arg, r->tag, r->address, &r->v);
		ereq_free(r);
	}
}

/* Verdict for a session failure without a deciding reply. */
static void
engine_failure_verdict(const struct smtp_failure *f, struct verdict *v)
{
	enum verdict_reason why;

	if (f->reply != NULL) {
		verdict_init(v, VR_TEMP_FAILURE);
		(void)classify_reply(f->stage, f->reply, v);
		if (f->kind == SMTP_FAIL_TLS && f->reply->code / 100 != 4) {
			/* STARTTLS refused under "require": the answer is about
			 * TLS, not the mailbox. */
			int code = v->smtp_code;
			char enh[sizeof(v->enhanced)];

			memcpy(enh, v->enhanced, sizeof(enh));
			verdict_init(v, VR_TLS_FAILED);
			v->smtp_code = code;
			memcpy(v->enhanced, enh, sizeof(enh));
			verdict_set_text(v, f->reply->text, f->reply->text_len);
		}
	} else {
		switch (f->kind) {
		case SMTP_FAIL_CONN: why = VR_CONNECTION_FAILED; break;
		case SMTP_FAIL_TIMEOUT: why = VR_TIMEOUT; break;
		case SMTP_FAIL_PROTO: why = VR_PROTOCOL_ERROR; break;
		case SMTP_FAIL_TLS: why = VR_TLS_FAILED; break;
		default: why = VR_TEMP_FAILURE; break;
		}
		verdict_init(v, why);
	}
	if (f->detail != NULL)
		snprintf(v->detail, sizeof(v->detail), "%s", f->detail);
}

/* ---- sorted arrays of pointers (lanes, catch-all entries) ---------------- */

/* First index whose key is not below key; key_at(arr, i) names entry i. */
static size_t
engine_lower_bound(const void *arr, size_t n, const char *key,
                   const char *(*key_at)(const void *, size_t))
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (strcmp(key_at(arr, mid), key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* arr (n entries of size elem, room for *cap) with room for one more:
 * the same or a grown array, NULL without memory (arr is kept then). */
static void *
engine_grow(void *arr, size_t n, size_t *cap, size_t elem)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return arr;
	ncap = *cap ? *cap * 2 : 16;
	if ((p = realloc(arr, ncap * elem)) == NULL)
		return NULL;
	*cap = ncap;
	return p;
}

/* ---- lane rules ----------------------------------------------------------- */

/* Small arithmetic on non-negative doubles (no libm: the engine library
 * links without it). */
static double
dmax(double a, double b)
{
	return a > b ? a : b;
}

static double
dmin(double a, double b)
{
	return a < b ? a : b;
}

static uint64_t
dceil(double x)
{
	uint64_t n = (uint64_t)x;

	return (double)n < x ? n + 1 : n;
}

static void
rules_free(struct lane_rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rules[i].key);
	free(rules);
}

static int
rule_cmp(const void *a, const void *b)
{
	return strcmp(((const struct lane_rule *)a)->key, ((const struct lane_rule *)b)->key);
}

static int
rule_find_cmp(const void *key, const void *b)
{
	return strcmp(key, ((const struct lane_rule *)b)->key);
}

/* Parse one "key=value" of a rule line into r.  Returns 0 or -1. */
static int
rule_set(struct lane_rule *r, const char *tok, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		unsigned bit;
		double max;
	} keys[] = {
	    {"rate", RULE_RATE, 1e6},           {"burst", RULE_BURST, 1e6},
	    {"conn_rate", RULE_CONN_RATE, 1e6}, {"conn_burst", RULE_CONN_BURST, 1e6},
	    {"conns", RULE_CONNS, 1000},        {"rcpt_per_session", RULE_RCPT, 1e6},
	};
	const char *eq = strchr(tok, '=');
	char *end;
	double v;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (eq != NULL && strlen(keys[i].name) == (size_t)(eq - tok) &&
		    strncmp(tok, keys[i].name, (size_t)(eq - tok)) == 0)
			break;
	if (i == sizeof(keys) / sizeof(keys[0])) {
		snprintf(err, errlen, "unknown setting \"%s\"", tok);
		return -1;
	}
	errno = 0;
	v = strtod(eq + 1, &end);
	if (eq[1] == '\0' || *end != '\0' || errno != 0 || !(v >= 0) || v > keys[i].max ||
	    (keys[i].bit != RULE_RATE && keys[i].bit != RULE_CONN_RATE &&
	     v != (double)(uint64_t)v) ||
	    ((keys[i].bit == RULE_CONNS || keys[i].bit == RULE_RCPT) && v < 1)) {
		snprintf(err, errlen, "bad value in \"%s\"", tok);
		return -1;
	}
	if (r->set & keys[i].bit) {
		snprintf(err, errlen, "\"%s\" given twice", keys[i].name);
		return -1;
	}
	r->set |= keys[i].bit;
	switch (keys[i].bit) {
	case RULE_RATE: r->rate = v; break;
	case RULE_BURST: r->burst = (unsigned)v; break;
	case RULE_CONN_RATE: r->conn_rate = v; break;
	case RULE_CONN_BURST: r->conn_burst = (unsigned)v; break;
	case RULE_CONNS: r->conns = (unsigned)v; break;
	default: r->rcpt_per_session = (unsigned)v; break;
	}
	return 0;
}

/* Keys a rule left out: from dflt (the "*" rule, already complete). */
static void
rule_complete(struct lane_rule *r, const struct lane_rule *dflt)
{
	if (!(r->set & RULE_RATE))
		r->rate = dflt->rate;
	if (!(r->set & RULE_BURST))
		r->burst = (r->set & RULE_RATE) || !(dflt->set & RULE_BURST)
		               ? (unsigned)dmax(1.0, (double)dceil(r->rate))
		               : dflt->burst;
	if (!(r->set & RULE_CONN_RATE))
		r->conn_rate = dflt->conn_rate;
	if (!(r->set & RULE_CONN_BURST))
		r->conn_burst = (r->set & RULE_CONN_RATE) || !(dflt->set & RULE_CONN_BURST)
		                    ? (unsigned)dmax(1.0, (double)dceil(r->conn_rate))
		                    : dflt->conn_burst;
	if (!(r->set & RULE_CONNS))
		r->conns = dflt->conns;
	if (!(r->set & RULE_RCPT))
		r->rcpt_per_session = dflt->rcpt_per_session;
}

/* Read a rules file into a sorted array that always holds "*". */
static int
rules_load(const struct engine_params *ep, const char *path, struct lane_rule **out,
           size_t *nout, char *err, size_t errlen)
{
	struct lane_rule *rules = NULL, *grown, base = {0}, *star;
	size_t n = 0, cap = 0;
	char *line = NULL, msg[160];
	size_t lcap = 0;
	unsigned lineno = 0;
	FILE *f = NULL;

	/* engine_params are the defaults of the "*" rule */
	base.conns = ep->max_conns_per_lane;
	base.rcpt_per_session = ep->max_rcpt_per_session;
	base.burst = base.conn_burst = 1;
	if (path != NULL && (f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (f != NULL && getline(&line, &lcap, f) >= 0) {
		char *save = NULL, *tok, *hash = strchr(line, '#');
		struct lane_rule r = {0};

		lineno++;
		if (hash != NULL)
			*hash = '\0';
		if ((tok = strtok_r(line, " \t\r\n", &save)) == NULL)
			continue;
		for (char *p = tok; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		while (tok[0] != '\0' && tok[strlen(tok) - 1] == '.')
			tok[strlen(tok) - 1] = '\0';
		if (*tok == '\0' || strchr(tok, '=') != NULL) {
			snprintf(msg, sizeof(msg), "an MX domain (or *) must start the line");
			goto bad;
		}
		for (size_t i = 0; i < n; i++) {
			if (strcmp(rules[i].key, tok) == 0) {
				snprintf(msg, sizeof(msg), "second rule for %s", tok);
				goto bad;
			}
		}
		if ((r.key = strdup(tok)) == NULL) {
			snprintf(msg, sizeof(msg), "out of memory");
			goto bad;
		}
		while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
			if (rule_set(&r, tok, msg, sizeof(msg)) != 0) {
				free(r.key);
				goto bad;
			}
		}
		if ((grown = engine_grow(rules, n, &cap, sizeof(*rules))) == NULL) {
			free(r.key);
			snprintf(msg, sizeof(msg), "out of memory");
			goto bad;
		}
		rules = grown;
		rules[n++] = r;
	}
	/* a read error (a directory: EISDIR) is not an empty file */
	if (f != NULL && ferror(f)) {
		int e = errno;

		fclose(f);
		free(line);
		rules_free(rules, n);
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -1;
	}
	if (f != NULL)
		fclose(f);
	free(line);
	f = NULL;
	line = NULL;
	star = NULL;
	for (size_t i = 0; i < n && star == NULL; i++)
		if (strcmp(rules[i].key, "*") == 0)
			star = &rules[i];
	if (star == NULL) {
		if ((grown = engine_grow(rules, n, &cap, sizeof(*rules))) == NULL) {
			rules_free(rules, n);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rules = grown;
		memset(&rules[n], 0, sizeof(rules[n]));
		if ((rules[n].key = strdup("*")) == NULL) {
			rules_free(rules, n);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		star = &rules[n++];
	}
	rule_complete(star, &base);
	star->set |= RULE_BURST | RULE_CONN_BURST; /* complete: others inherit */
	for (size_t i = 0; i < n; i++)
		if (&rules[i] != star)
			rule_complete(&rules[i], star);
	qsort(rules, n, sizeof(*rules), rule_cmp);
	*out = rules;
	*nout = n;
	return 0;
bad:
	snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
	rules_free(rules, n);
	free(line);
	fclose(f);
	return -1;
}

/* The rule for MX domain key: its own, its closest parent's, or "*". */
static const struct lane_rule *
rules_lookup(const struct engine *e, const char *key)
{
	const struct lane_rule *r;

	for (const char *k = key; k != NULL; k = strchr(k, '.'), k = k != NULL ? k + 1 : NULL) {
		r = bsearch(k, e->rules, e->nrules, sizeof(*e->rules), rule_find_cmp);
		if (r != NULL)
			return r;
	}
	return bsearch("*", e->rules, e->nrules, sizeof(*e->rules), rule_find_cmp);
}

/* ---- pacing: token buckets, backoff, recovery ---------------------------- */

static void
bucket_fill(struct bucket *b, double burst, uint64_t now_us)
{
	b->tokens = burst;
	b->at_us = now_us;
}

/*
 * Take a token.  Returns 0 when granted, else the microseconds until one is
 * there.  rate 0 = no limit.
 */
static uint64_t
bucket_take(struct bucket *b, double rate, unsigned burst, uint64_t now_us)
{
	double cap = burst > 0 ? burst : 1;

	if (rate <= 0)
		return 0;
	if (now_us > b->at_us) {
		b->tokens = dmin(cap, b->tokens + (double)(now_us - b->at_us) * rate / 1e6);
		b->at_us = now_us;
	}
	if (now_us >= b->at_us && b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	return (b->at_us > now_us ? b->at_us - now_us : 0) +
	       (uint64_t)dmax(1.0, (double)dceil((1.0 - b->tokens) * 1e6 / rate));
}

/* Microseconds until the bucket is full again (0 = full, or no limit). */
static uint64_t
bucket_full_in(const struct bucket *b, double rate, unsigned burst, uint64_t now_us)
{
	double have, cap = burst > 0 ? burst : 1;

	if (rate <= 0)
		return 0;
	have = now_us > b->at_us ? b->tokens + (double)(now_us - b->at_us) * rate / 1e6 : b->tokens;
	if (have >= cap && now_us >= b->at_us)
		return 0;
	return (b->at_us > now_us ? b->at_us - now_us : 0) + dceil((cap - have) * 1e6 / rate);
}

/* Wake the lane's pump in us (the earliest of all requests wins). */
static void
lane_wake_in_us(struct lane *l, uint64_t us)
{
	uint64_t at = clock_mono_us() + us;
	struct timeval tv;

	if (l->timer_at != 0 && l->timer_at <= at)
		return;
	l->timer_at = at;
	tv.tv_sec = (time_t)(us / 1000000u);
	tv.tv_usec = (suseconds_t)(us % 1000000u);
	evtimer_add(l->timer, &tv);
}

static void
lane_wake_in(struct lane *l, uint64_t ms)
{
	lane_wake_in_us(l, ms * 1000u);
}

static double
lane_nominal(const struct lane *l)
{
	return l->rule.rate > 0 ? l->rule.rate : LANE_NOMINAL_RATE;
}

static void
lane_log_rate(const struct lane *l, const char *why)
{
	uint64_t now = clock_mono_ms();

	log_info("lane rate", "lane=%s rate=%.3f rule_rate=%.3f level=%u pause_ms=%llu why=%s",
	         l->key, l->rate, l->rule.rate, l->level,
	         (unsigned long long)(l->paused_until > now ? l->paused_until - now : 0), why);
}

/*
 * Is this reply a receiver telling us to slow down?  421 anywhere; Gmail's
 * 4.7.28 and Microsoft's 4.7.65x; other 4xx by their words ("too many
 * connections", "rate limit", "try again later" ...), never greylisting
 * (that is about the message, not our pace) nor 452 / 4.5.x "too many
 * recipients" (a per-transaction limit, handled by a retry in a new
 * transaction); Postfix's anvil "450 4.7.1 ... too many recipients from"
 * is a rate limit.
 */
int
engine_reply_rate_limited(const struct smtp_reply *r)
{
	static const char *const words[] = {"too many",        "rate limit", "rate-limit",
	                                    "throttl",         "exceeded",   "slow down",
	                                    "try again later", "too fast",   NULL};
	char text[VERDICT_TEXT_MAX];
	size_t n;

	if (r == NULL || r->code / 100 != 4)
		return 0;
	if (r->code == 421 || strcmp(r->enhanced, "4.7.28") == 0 ||
	    strncmp(r->enhanced, "4.7.65", 6) == 0)
		return 1;
	if (strcmp(r->enhanced, "4.5.3") == 0)
		return 0;
	n = r->text_len < sizeof(text) - 1 ? r->text_len : sizeof(text) - 1;
	for (size_t i = 0; i < n; i++)
		text[i] = (char)tolower((unsigned char)r->text[i]);
	text[n] = '\0';
	/* "too many recipients" in a 452 or 4.5.x is the per-transaction
	 * limit; as a 4.7.x policy answer it is a rate (Postfix anvil:
	 * "450 4.7.1 Error: too many recipients from [192.0.2.1]"). */
	if (strstr(text, "greylist") != NULL || strstr(text, "graylist") != NULL ||
	    (strstr(text, "too many recipients") != NULL &&
	     (r->code == 452 || strncmp(r->enhanced, "4.5.", 4) == 0)))
		return 0;
	for (size_t i = 0; words[i] != NULL; i++)
		if (strstr(text, words[i]) != NULL)
			return 1;
	return 0;
}

static void conn_quit(struct conn *, const char *);

/* A rate-limit answer: halve the rate, pause with exponential backoff and
 * jitter, close the lane's idle sessions (they would time out meanwhile). */
static void
lane_backoff(struct lane *l, const struct smtp_reply *r)
{
	struct engine *e = l->e;
	uint64_t now = clock_mono_ms(), delay;
	double cur = l->rate > 0 ? l->rate : lane_nominal(l);
	struct conn *c, *next;

	e->stats.backoffs++;
	l->backoffs++;
	l->last_ms = now;
	if (l->paused_until > now)
		return; /* answers to what was under way: one pause is enough */
	l->rate = dmax(LANE_MIN_RATE, cur / 2);
	if (l->level < LANE_LEVEL_MAX)
		l->level++;
	delay = (uint64_t)e->p.backoff_base_ms << (l->level - 1);
	if (delay > e->p.backoff_max_ms)
		delay = e->p.backoff_max_ms;
	/* xorshift32: jitter spreads the workers that were limited together */
	e->jitter ^= e->jitter << 13;
	e->jitter ^= e->jitter >> 17;
	e->jitter ^= e->jitter << 5;
	delay = delay / 2 + (uint64_t)((double)delay * (double)(e->jitter % 1000u) / 1000.0);
	l->paused_until = now + delay;
	/* After the pause: one probe at once, then the new rate. */
	l->rcpt.tokens = l->conn.tokens = 1.0;
	l->rcpt.at_us = l->conn.at_us = l->paused_until * 1000u;
	log_info("lane backoff", "lane=%s code=%d enhanced=%s", l->key, r != NULL ? r->code : 0,
	         r != NULL && r->enhanced[0] != '\0' ? r->enhanced : "-");
	lane_log_rate(l, "backoff");
	for (c = TAILQ_FIRST(&l->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->st == CONN_READY)
			conn_quit(c, "backoff");
	}
	lane_wake_in(l, delay);
}

/* An answer that was not a rate limit: the rate comes back step by step. */
static void
lane_recover(struct lane *l)
{
	l->level = 0;
	l->last_ms = clock_mono_ms();
	if (l->rate == l->rule.rate)
		return;
	l->rate += lane_nominal(l) * LANE_RATE_STEP;
	if (l->rate >= lane_nominal(l) - 1e-9)
		l->rate = l->rule.rate;
	lane_log_rate(l, "recover");
}

/* Take the lane's rule (new lane, or rules reloaded). */
static void
lane_apply_rule(struct lane *l)
{
	const struct lane_rule *r = rules_lookup(l->e, l->key);
	int slowed = l->rate != l->rule.rate;

	l->rule = *r;
	l->rule.key = NULL;
	if (!slowed || l->rule.rate == 0 || l->rate > l->rule.rate)
		l->rate = l->rule.rate;
	if (l->rule.conns == 0)
		l->rule.conns = 1;
}

int
engine_reload_rules(struct engine *e, const char *path, char *err, size_t errlen)
{
	struct lane_rule *rules;
	size_t n;

	if (rules_load(&e->p, path, &rules, &n, err, errlen) != 0)
		return -1;
	rules_free(e->rules, e->nrules);
	e->rules = rules;
	e->nrules = n;
	for (size_t i = 0; i < e->nlanes; i++) {
		double was = e->lanes[i]->rate;

		lane_apply_rule(e->lanes[i]);
		if (e->lanes[i]->rate != was) /* a running lane's new pace, in the log */
			lane_log_rate(e->lanes[i], "reload");
		lane_kick(e->lanes[i]);
	}
	if (path != NULL)
		log_info("lane rules loaded", "file=%s rules=%zu", path, n);
	return 0;
}

int
engine_check_rules(const char *path, char *err, size_t errlen)
{
	const struct engine_params none = { 0 };
	struct lane_rule *rules;
	size_t n;

	if (rules_load(&none, path, &rules, &n, err, errlen) != 0)
		return -1;
	rules_free(rules, n);
	return 0;
}

/* ---- lanes ------------------------------------------------------------- */

static const char *
lane_key_at(const void *arr, size_t i)
{
	return ((struct lane *const *)arr)[i]->key;
}

static struct lane *
engine_lane(struct engine *e, const char *key)
{
	struct lane **grown, *l;
	size_t at = engine_lower_bound(e->lanes, e->nlanes, key, lane_key_at);

	if (at < e->nlanes && strcmp(e->lanes[at]->key, key) == 0)
		return e->lanes[at];
	if ((grown = engine_grow(e->lanes, e->nlanes, &e->lanes_cap, sizeof(*e->lanes))) == NULL)
		return NULL;
	e->lanes = grown;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->e = e;
	l->key = strdup(key);
	l->kick = event_new(e->base, -1, 0, lane_kick_cb, l);
	l->timer = evtimer_new(e->base, lane_timer_cb, l);
	if (l->key == NULL || l->kick == NULL || l->timer == NULL) {
		free(l->key);
		if (l->kick != NULL)
			event_free(l->kick);
		if (l->timer != NULL)
			event_free(l->timer);
		free(l);
		return NULL;
	}
	lane_apply_rule(l);
	l->last_ms = clock_mono_ms();
	bucket_fill(&l->rcpt, l->rule.burst, clock_mono_us());
	bucket_fill(&l->conn, l->rule.conn_burst, clock_mono_us());
	TAILQ_INIT(&l->q);
	TAILQ_INIT(&l->conns);
	memmove(e->lanes + at + 1, e->lanes + at, (e->nlanes - at) * sizeof(*e->lanes));
	e->lanes[at] = l;
	e->nlanes++;
	return l;
}

static void
lane_free(struct lane *l)
{
	struct ereq *r;
	struct conn *c;

	while ((c = TAILQ_FIRST(&l->conns)) != NULL)
		conn_free(c);
	while ((r = TAILQ_FIRST(&l->q)) != NULL) {
		TAILQ_REMOVE(&l->q, r, link);
		ereq_free(r);
	}
	event_free(l->kick);
	event_free(l->timer);
	free(l->key);
	free(l);
}

/* Forget an empty lane (no work, no connections). */
static void
lane_drop(struct lane *l)
{
	struct engine *e = l->e;

	for (size_t i = 0; i < e->nlanes; i++) {
		if (e->lanes[i] == l) {
			memmove(e->lanes + i, e->lanes + i + 1,
			        (e->nlanes - i - 1) * sizeof(*e->lanes));
			e->nlanes--;
			break;
		}
	}
	lane_free(l);
}

static void
lane_push_head(struct lane *l, struct ereq *r)
{
	TAILQ_INSERT_HEAD(&l->q, r, link);
	l->qlen++;
}

static void
lane_remove(struct lane *l, struct ereq *r)
{
	TAILQ_REMOVE(&l->q, r, link);
	l->qlen--;
}

/* ---- catch-all detection ------------------------------------------------- */

static const char *
ca_key_at(const void *arr, size_t i)
{
	return ((struct ca_entry *const *)arr)[i]->domain;
}

static void
ca_free(struct ca_entry *ca)
{
	struct ereq *r;

	while ((r = TAILQ_FIRST(&ca->parked)) != NULL) {
		TAILQ_REMOVE(&ca->parked, r, link);
		ereq_free(r);
	}
	free(ca->domain);
	free(ca);
}

/* Drop decided entries past their time, so a long-lived worker's cache
 * stays the size of its recent domains. */
static void
ca_sweep(struct engine *e)
{
	uint64_t now = clock_mono_ms();
	size_t i, o = 0;

	for (i = 0; i < e->ncas; i++) {
		struct ca_entry *ca = e->cas[i];

		if (ca->st != CA_PENDING && now >= ca->until_ms)
			ca_free(ca);
		else
			e->cas[o++] = ca;
	}
	e->ncas = o;
}

/* The entry of domain, made (CA_NONE) when absent; NULL without memory. */
static struct ca_entry *
ca_get(struct engine *e, const char *domain)
{
	struct ca_entry **grown, *ca;
	size_t at = engine_lower_bound(e->cas, e->ncas, domain, ca_key_at);

	if (at < e->ncas && strcmp(e->cas[at]->domain, domain) == 0) {
		ca = e->cas[at];
		if (ca->st != CA_PENDING && ca->st != CA_NONE && clock_mono_ms() >= ca->until_ms)
			ca->st = CA_NONE;
		return ca;
	}
	if (e->ncas >= CA_SWEEP_AT && e->ncas == e->cas_cap) {
		ca_sweep(e);
		at = engine_lower_bound(e->cas, e->ncas, domain, ca_key_at);
	}
	if ((grown = engine_grow(e->cas, e->ncas, &e->cas_cap, sizeof(*e->cas))) == NULL)
		return NULL;
	e->cas = grown;
	if ((ca = calloc(1, sizeof(*ca))) == NULL || (ca->domain = strdup(domain)) == NULL) {
		free(ca);
		return NULL;
	}
	TAILQ_INIT(&ca->parked);
	memmove(e->cas + at + 1, e->cas + at, (e->ncas - at) * sizeof(*e->cas));
	e->cas[at] = ca;
	e->ncas++;
	return ca;
}

/* An accepted answer on a catch-all domain says nothing about the mailbox. */
static void
engine_mark_catch_all(struct verdict *v)
{
	v->flags |= VERDICT_F_CATCH_ALL;
	v->reason = VR_CATCH_ALL;
	v->status = verdict_reason_status(VR_CATCH_ALL);
	snprintf(v->detail, sizeof(v->detail), "domain accepts any recipient");
}

/* A random local part: lowercase letters from the kernel CSPRNG, unbiased
 * (bytes >= 234 are drawn again).  Returns 0 or -1. */
static int
engine_random_local(char *out, size_t len)
{
	unsigned char buf[64];
	size_t o = 0;

	while (o < len) {
		ssize_t n = getrandom(buf, sizeof(buf), 0);

		if (n <= 0)
			return -1;
		for (ssize_t i = 0; i < n && o < len; i++)
			if (buf[i] < 234)
				out[o++] = (char)('a' + buf[i] % 26);
	}
	out[o] = '\0';
	return 0;
}

/* Queue the catch-all probe for r's domain at the head of r's lane, so the
 * session that accepted r asks it next.  Returns 0 or -1. */
static int
engine_catch_all_start(struct engine *e, const struct ereq *r)
{
	struct ereq *q;
	char local[CA_LOCAL_LEN + 1];
	const char *lp = e->p.catch_all_local;
	size_t n;

	if (lp == NULL || *lp == '\0') {
		if (engine_random_local(local, CA_LOCAL_LEN) != 0)
			return -1;
		lp = local;
	}
	n = strlen(lp) + 1 + strlen(r->domain) + 1;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->internal = 1;
	q->lane = r->lane;
	q->submitted_ms = clock_mono_ms();
	q->address = malloc(n);
	q->domain = strdup(r->domain);
	q->hosts = calloc(r->nhosts, sizeof(*q->hosts));
	if (q->address == NULL || q->domain == NULL || q->hosts == NULL) {
		ereq_free(q);
		return -1;
	}
	snprintf(q->address, n, "%s@%s", lp, r->domain);
	for (size_t i = 0; i < r->nhosts; i++) {
		if ((q->hosts[i] = strdup(r->hosts[i])) == NULL) {
			ereq_free(q);
			return -1;
		}
		q->nhosts++;
	}
	lane_push_head(r->lane, q);
	lane_kick(r->lane);
	return 0;
}

/*
 * r was accepted (v).  Returns 1 when r was parked until its domain's
 * catch-all answer is known, 0 when v is final (marked if the domain is
 * catch-all).
 */
static int
engine_catch_all_gate(struct engine *e, struct ereq *r, struct verdict *v, const struct conn *c)
{
	struct ca_entry *ca;

	if (e->p.catch_all_check == ENGINE_CATCH_ALL_OFF || r->domain[0] == '\0' || e->shutting)
		return 0;
	if ((ca = ca_get(e, r->domain)) == NULL)
		return 0; /* no memory: unknown, leave it unmarked */
	switch (ca->st) {
	case CA_YES: engine_mark_catch_all(v); return 0;
	case CA_NO:
	case CA_UNKNOWN: return 0;
	case CA_NONE:
		if (engine_catch_all_start(e, r) != 0)
			return 0;
		ca->st = CA_PENDING;
		break;
	case CA_PENDING: break;
	}
	engine_stamp(r, v, c);
	TAILQ_INSERT_TAIL(&ca->parked, r, link);
	return 1;
}

/* The catch-all probe q ended with v: decide the domain, release what
 * waited for it. */
static void
engine_catch_all_resolve(struct engine *e, struct ereq *q, const struct verdict *v)
{
	struct ca_entry *ca = ca_get(e, q->domain);
	struct ereq *r;
	uint64_t ttl = (uint64_t)e->p.catch_all_ttl_s * 1000u;

	if (ca == NULL)
		return; /* cannot happen: the entry was made when q was */
	if (v->reason == VR_ACCEPTED) {
		ca->st = CA_YES;
	} else if (v->reason == VR_MAILBOX_NOT_FOUND || strncmp(v->enhanced, "5.1.", 4) == 0) {
		ca->st = CA_NO;
	} else {
		ca->st = CA_UNKNOWN;
		if (ttl > CA_UNKNOWN_TTL_S * 1000u)
			ttl = CA_UNKNOWN_TTL_S * 1000u;
	}
	ca->until_ms = clock_mono_ms() + ttl;
	log_debug("catch-all", "domain=%s answer=%s code=%d enhanced=%s parked_released=%s",
	          ca->domain,
	          ca->st == CA_YES  ? "catch-all"
	          : ca->st == CA_NO ? "not-catch-all"
	                            : "unknown",
	          v->smtp_code, v->enhanced[0] != '\0' ? v->enhanced : "-",
	          TAILQ_EMPTY(&ca->parked) ? "no" : "yes");
	while ((r = TAILQ_FIRST(&ca->parked)) != NULL) {
		TAILQ_REMOVE(&ca->parked, r, link);
		if (ca->st == CA_YES)
			engine_mark_catch_all(&r->v);
		engine_deliver(e, r);
	}
}

/* ---- connections -------------------------------------------------------- */

static void
conn_account(struct conn *c)
{
	struct engine *e = c->lane->e;
	unsigned n;

	if (c->s == NULL)
		return;
	n = smtp_session_rcpts(c->s);
	e->stats.rcpts += n - c->seen_rcpts;
	c->seen_rcpts = n;
	n = smtp_session_503s(c->s);
	e->stats.replies_503 += n - c->seen_503;
	c->seen_503 = n;
	for (int i = 0; i < 6; i++) {
		n = smtp_session_replies(c->s, i);
		e->stats.replies[i] += n - c->seen_replies[i];
		c->seen_replies[i] = n;
	}
}

static void
conn_free(struct conn *c)
{
	struct lane *l = c->lane;

	if (c->ticket != NULL)
		c->ticket->c = NULL; /* the DNS callback frees the ticket */
	if (c->s != NULL) {
		conn_account(c);
		smtp_session_free(c->s);
	}
	/* Requests still on the conn: only at engine_free(), nobody will
	 * hear about them. */
	ereq_free(c->cur);
	ereq_free(c->cur_next);
	if (c->idle != NULL)
		event_free(c->idle);
	for (size_t i = 0; i < c->nhosts; i++)
		free(c->hosts[i]);
	free(c->hosts);
	free(c->addrs);
	TAILQ_REMOVE(&l->conns, c, link);
	l->nconns--;
	free(c);
}

/* End c's session politely; why names the reason in its end line. */
static void
conn_quit(struct conn *c, const char *why)
{
	evtimer_del(c->idle);
	if (c->st != CONN_CLOSING && c->why == NULL)
		c->why = why;
	c->st = CONN_CLOSING;
	if (c->s != NULL)
		smtp_session_quit(c->s);
}

static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->st == CONN_READY && c->lane->qlen == 0) {
		log_debug("smtp idle close", "conn=%u host=%s", c->id, c->host);
		conn_quit(c, "idle");
	}
}

/* A rate-limit answer kept r from an answer: may it be asked again after
 * the pause?  Counts the retry when it may. */
static int
engine_throttle_again(struct engine *e, struct ereq *r)
{
	if (e->shutting || r->throttled >= e->p.throttle_retries)
		return 0;
	r->throttled++;
	e->stats.throttled++;
	return 1;
}

/* Every queued request whose hosts were all in this plan gets the plan's
 * last failure (unless a rate limit ended the plan and the request may be
 * asked again later); then the conn goes. */
static void
conn_plan_failed(struct conn *c)
{
	struct lane *l = c->lane;
	struct engine *e = l->e;
	struct ereq *r, *next;

	if (c->standby) {
		/* Nothing waited for it: the working session goes on. */
		log_debug("standby failed", "conn=%u lane=%s reason=%s", c->id, l->key,
		          verdict_reason_name(c->lastfail.reason));
		l->no_standby = 1;
		conn_free(c);
		lane_kick(l);
		return;
	}
	log_warn("mx hosts failed", "lane=%s host=%s reason=%s detail=\"%s\"", l->key, c->host,
	         verdict_reason_name(c->lastfail.reason), c->lastfail.detail);
	for (r = TAILQ_FIRST(&l->q); r != NULL; r = next) {
		size_t i, j;

		next = TAILQ_NEXT(r, link);
		for (i = 0; i < r->nhosts; i++) {
			for (j = 0; j < c->nhosts; j++)
				if (strcmp(r->hosts[i], c->hosts[j]) == 0)
					break;
			if (j == c->nhosts)
				break;
		}
		if (i < r->nhosts)
			continue;
		if (c->throttled && engine_throttle_again(e, r))
			continue; /* asked again when the lane's pause is over */
		lane_remove(l, r);
		if (r->attempts == 0)
			r->attempts = 1;
		engine_finish(e, r, &c->lastfail, c);
	}
	conn_free(c);
	lane_kick(l);
}

static void conn_session_ready(void *, struct smtp_session *);
static void conn_session_result(void *, struct smtp_session *, const struct smtp_result *);
static void conn_session_failed(void *, struct smtp_session *, const struct smtp_failure *);
static void conn_session_closed(void *, struct smtp_session *);

static const struct smtp_session_cbs conn_session_cbs = {
    .ready = conn_session_ready,
    .result = conn_session_result,
    .failed = conn_session_failed,
    .closed = conn_session_closed,
};

/* Parse a numeric host ("192.0.2.1", "::1", "[::1]") without DNS. */
static int
engine_numeric_host(const char *host, int port, struct sockaddr_storage *ss)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(host);
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
	} else if (n < sizeof(buf)) {
		memcpy(buf, host, n + 1);
	} else {
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return 1;
	}
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return 1;
	}
	return 0;
}

static void
conn_dns_cb(void *arg, const char *host, enum dns_status status,
            const struct sockaddr_storage *addrs, size_t n)
{
	struct dns_ticket *t = arg;
	struct conn *c = t->c;

	free(t);
	if (c == NULL)
		return;
	c->ticket = NULL;
	free(c->addrs);
	c->addrs = NULL;
	c->naddrs = c->addr_idx = 0;
	if (status == DNS_OK && n > 0 && (c->addrs = calloc(n, sizeof(*addrs))) != NULL) {
		memcpy(c->addrs, addrs, n * sizeof(*addrs));
		c->naddrs = n;
	} else {
		/* An MX host without an address is a broken (maybe only
		 * for now) DNS setup, not proof that the mailbox is gone. */
		verdict_init(&c->lastfail, VR_DNS_ERROR);
		snprintf(c->lastfail.detail, sizeof(c->lastfail.detail), "no address for %s", host);
		snprintf(c->lastfail.mx_host, sizeof(c->lastfail.mx_host), "%s", host);
	}
	conn_next(c);
}

/* Try the next address, then the next host; the plan fails when empty. */
static void
conn_next(struct conn *c)
{
	struct engine *e = c->lane->e;
	struct sockaddr_storage *ss;
	socklen_t len;

	for (;;) {
		if (e->shutting || c->plan_fatal) {
			conn_plan_failed(c);
			return;
		}
		if (c->addr_idx < c->naddrs) {
			ss = &c->addrs[c->addr_idx++];
			len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
			                                : sizeof(struct sockaddr_in);
			if (e->bind_len > 0 && ss->ss_family != e->bind.ss_family) {
				/* The source address decides the family we can
				 * speak: try the host's other addresses. */
				verdict_init(&c->lastfail, VR_CONNECTION_FAILED);
				snprintf(c->lastfail.detail, sizeof(c->lastfail.detail),
				         "no source address for IPv%d (--bind %s)",
				         ss->ss_family == AF_INET6 ? 6 : 4, e->bind_address);
				snprintf(c->lastfail.mx_host, sizeof(c->lastfail.mx_host), "%s",
				         c->host);
				continue;
			}
			struct smtp_session_params sp = e->sp;

			sp.host_name = c->host;
			if (c->notls)
				sp.tls = SMTP_TLS_NEVER; /* even if a 530 asks */
			c->s = smtp_session_new(e->base, &sp, &conn_session_cbs, c);
			if (c->s == NULL) {
				verdict_init(&c->lastfail, VR_TEMP_FAILURE);
				snprintf(c->lastfail.detail, sizeof(c->lastfail.detail),
				         "cannot create session");
				c->plan_fatal = 1;
				continue;
			}
			c->seen_rcpts = c->seen_503 = 0;
			memset(c->seen_replies, 0, sizeof(c->seen_replies));
			c->failover = 0;
			if (smtp_session_connect(c->s, (struct sockaddr *)ss, len) != 0) {
				int err = errno;

				smtp_session_free(c->s);
				c->s = NULL;
				verdict_init(&c->lastfail, VR_CONNECTION_FAILED);
				snprintf(c->lastfail.detail, sizeof(c->lastfail.detail),
				         "connect failed: %s", strerror(err));
				continue;
			}
			c->sess_ms = clock_mono_ms();
			c->outcome = c->why = NULL;
			c->end_code = 0;
			e->stats.connections++;
			c->st = CONN_CONNECTING;
			log_debug("smtp connect", "conn=%u lane=%s host=%s", c->id, c->lane->key,
			          c->host);
			return;
		}
		if (c->host_idx >= c->nhosts) {
			conn_plan_failed(c);
			return;
		}
		snprintf(c->host, sizeof(c->host), "%s", c->hosts[c->host_idx++]);
		c->notls = 0;
		free(c->addrs);
		c->addrs = NULL;
		c->naddrs = c->addr_idx = 0;
		if ((c->addrs = calloc(1, sizeof(*c->addrs))) == NULL) {
			c->plan_fatal = 1;
			continue;
		}
		if (engine_numeric_host(c->host, e->p.smtp_port, c->addrs)) {
			c->naddrs = 1;
			continue;
		}
		if (e->dns == NULL) {
			verdict_init(&c->lastfail, VR_DNS_ERROR);
			snprintf(c->lastfail.detail, sizeof(c->lastfail.detail), "no resolver");
			continue;
		}
		if ((c->ticket = calloc(1, sizeof(*c->ticket))) == NULL) {
			c->plan_fatal = 1;
			continue;
		}
		c->ticket->c = c;
		c->st = CONN_RESOLVING;
		dns_resolve_addrs(e->dns, c->host, e->p.smtp_port, conn_dns_cb, c->ticket);
		return;
	}
}

/* Open a connection for the lane, planned from request r's hosts (a
 * standby when standby is set).  Returns 0, or -1 without memory. */
static int
conn_start(struct lane *l, const struct ereq *r, int standby)
{
	struct engine *e = l->e;
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->hosts = calloc(r->nhosts, sizeof(*c->hosts))) == NULL ||
	    (c->idle = evtimer_new(e->base, conn_idle_cb, c)) == NULL) {
		if (c != NULL) {
			free(c->hosts);
			free(c);
		}
		return -1;
	}
	for (size_t i = 0; i < r->nhosts; i++) {
		if ((c->hosts[i] = strdup(r->hosts[i])) == NULL)
			break;
		c->nhosts++;
	}
	c->lane = l;
	c->id = ++e->conn_ids;
	c->standby = standby;
	c->st = CONN_RESOLVING;
	verdict_init(&c->lastfail, VR_CONNECTION_FAILED);
	TAILQ_INSERT_TAIL(&l->conns, c, link);
	l->nconns++;
	conn_next(c);
	return 0;
}

static void
conn_session_ready(void *tag, struct smtp_session *s)
{
	struct conn *c = tag;

	c->lane->e->stats.sessions_ok++;
	c->st = CONN_READY;
	c->ready_ms = clock_mono_ms();
	log_debug("smtp ready", "conn=%u host=%s tls=%d ext=0x%x", c->id, c->host,
	          smtp_session_tls(s), smtp_session_extensions(s));
	lane_kick(c->lane);
}

/* Time to end this session before the receiver's limits bite? */
static int
conn_worn_out(const struct conn *c)
{
	const struct engine_params *p = &c->lane->e->p;

	return smtp_session_rcpts(c->s) >= c->lane->rule.rcpt_per_session ||
	       c->rejects >= p->max_rejects_per_session ||
	       clock_mono_ms() - c->ready_ms >= (uint64_t)p->max_session_age_s * 1000u;
}

static void
conn_session_result(void *tag, struct smtp_session *s, const struct smtp_result *res)
{
	struct conn *c = tag;
	struct lane *l = c->lane;
	struct engine *e = l->e;
	struct ereq *r = c->cur;
	struct verdict v;
	enum classify_action act;
	int limited;

	conn_account(c);
	/* Results come in the order the group was sent. */
	c->cur = c->cur_next;
	c->cur_next = NULL;
	/* A conn told to QUIT meanwhile (shutdown, retry_fresh) stays
	 * closing; with more of its group due it is not ready yet. */
	if (c->st != CONN_CLOSING)
		c->st = res->more > 0 ? CONN_BUSY : CONN_READY;
	c->served++;
	verdict_init(&v, VR_TEMP_FAILURE);
	act = classify_reply(res->stage, res->reply, &v);
	/* The catch-all probe asks for a mailbox that should not exist: its
	 * 5.1.x is the expected answer, not the receiver's opinion of us, and
	 * counting it recycled sessions twice as often on lists with unknown
	 * users (bench: 5 connections per lane instead of 1). */
	if (res->reply->code >= 500 &&
	    !(r != NULL && r->internal &&
	      (v.reason == VR_MAILBOX_NOT_FOUND || strncmp(v.enhanced, "5.1.", 4) == 0)))
		c->rejects++;
	limited = engine_reply_rate_limited(res->reply);
	if (limited)
		lane_backoff(l, res->reply); /* also QUITs c */
	else
		lane_recover(l);
	if (r != NULL) {
		if (limited && engine_throttle_again(e, r)) {
			lane_push_head(l, r);
		} else if (act == CLASSIFY_RETRY_NOW && !r->retried_now) {
			/* Not about the mailbox: ask again on a fresh session. */
			r->retried_now = 1;
			lane_push_head(l, r);
			conn_quit(c, "retry_fresh");
		} else if (r->internal || v.reason != VR_ACCEPTED ||
		           !engine_catch_all_gate(e, r, &v, c)) {
			engine_finish(e, r, &v, c);
		}
	}
	if (c->st == CONN_READY && (e->shutting || conn_worn_out(c)))
		conn_quit(c, e->shutting ? "shutdown" : "recycle");
	else if (c->st == CONN_READY && l->paused_until > clock_mono_ms())
		conn_quit(c, "backoff"); /* was busy when the lane paused */
	lane_kick(l);
}

/* The outcome word of a failed session in its end line. */
static const char *
conn_outcome_name(enum smtp_fail kind)
{
	switch (kind) {
	case SMTP_FAIL_CONN: return "conn_error";
	case SMTP_FAIL_TIMEOUT: return "timeout";
	case SMTP_FAIL_PROTO: return "proto_error";
	case SMTP_FAIL_RESP: return "rejected";
	case SMTP_FAIL_TLS: return "tls_error";
	default: return "internal_error";
	}
}

/*
 * The one info line per SMTP session: where, how much, how it ended.  No
 * recipient addresses (privacy; they are at debug).  outcome: quit (we
 * ended it politely; why says for what), or the failure class; code is the
 * reply that ended it (a 421, a 554 greeting ...).
 */
static void
conn_log_end(const struct conn *c, const struct smtp_session *s)
{
	log_info(
	    "smtp session end",
	    "conn=%u mx_domain=%s host=%s peer=%s tls=%d rcpts=%u rejects=%u "
	    "duration_ms=%llu outcome=%s why=%s code=%d",
	    c->id, c->lane->key, c->host,
	    *smtp_session_peer(s) != '\0' ? smtp_session_peer(s) : "-", smtp_session_tls(s),
	    smtp_session_rcpts(s), c->rejects, (unsigned long long)(clock_mono_ms() - c->sess_ms),
	    c->outcome != NULL ? c->outcome : "quit", c->why != NULL ? c->why : "-", c->end_code);
}

/* r was on c's session when it failed (f, verdict v): ask again or finish. */
static void
conn_lost(struct conn *c, struct ereq *r, const struct smtp_failure *f, const struct verdict *v,
          int limited)
{
	struct engine *e = c->lane->e;

	if (limited && engine_throttle_again(e, r)) {
		lane_push_head(c->lane, r);
	} else if (f->kind == SMTP_FAIL_CONN && c->served > 0 && !r->requeued) {
		/* A reused connection the server dropped, maybe idle for
		 * too long: try once more on a fresh one. */
		r->requeued = 1;
		lane_push_head(c->lane, r);
	} else {
		engine_finish(e, r, v, c);
	}
}

static void
conn_session_failed(void *tag, struct smtp_session *s, const struct smtp_failure *f)
{
	struct conn *c = tag;
	struct engine *e = c->lane->e;
	struct ereq *r = c->cur;
	struct verdict v;
	int limited;

	conn_account(c);
	c->outcome = conn_outcome_name(f->kind);
	c->end_code = f->reply != NULL ? f->reply->code : 0;
	if (c->st == CONN_CONNECTING && c->standby && f->reply != NULL) {
		/*
		 * A second session refused by the server (a 421 "too many
		 * connections" is the likely one) says nothing about the
		 * lane's work nor its pace: no failover, no backoff, no
		 * verdict; just no more standbys on this lane.  A connect
		 * that failed without a reply (refused, timed out) is the
		 * address's, and fails over as any connection does.
		 */
		c->lane->no_standby = 1;
		c->st = CONN_CLOSING;
		return;
	}
	engine_failure_verdict(f, &v);
	snprintf(v.mx_host, sizeof(v.mx_host), "%s", c->host);
	limited = engine_reply_rate_limited(f->reply);
	if (limited)
		lane_backoff(c->lane, f->reply);
	if (c->st == CONN_CONNECTING) {
		/*
		 * Before the session was usable.  Another address or host may
		 * do better after a refused/timed-out connect, a 421 or a
		 * broken handshake; a 5xx refusal of us will not change.
		 */
		c->lastfail = v;
		c->throttled = limited;
		if (f->reply != NULL && f->reply->code >= 500 && f->kind != SMTP_FAIL_TLS)
			c->plan_fatal = 1;
		if (f->kind == SMTP_FAIL_TLS && f->reply == NULL && e->sp.tls == SMTP_TLS_MAY &&
		    !c->notls && c->addr_idx > 0) {
			/* Opportunistic TLS that breaks (old ciphers, broken
			 * server): the same address once more, in plaintext. */
			c->notls = 1;
			c->addr_idx--;
		}
		c->failover = 1;
	} else if (r != NULL) {
		/* Every result still due is lost; the last of the group first,
		 * so requeued ones keep their order at the lane's head. */
		struct ereq *lost[2] = {r, c->cur_next};

		c->cur = c->cur_next = NULL;
		for (int i = 1; i >= 0; i--)
			if (lost[i] != NULL)
				conn_lost(c, lost[i], f, &v, limited);
	}
	c->st = CONN_CLOSING;
}

static void
conn_session_closed(void *tag, struct smtp_session *s)
{
	struct conn *c = tag;
	struct lane *l = c->lane;
	struct engine *e = l->e;

	conn_account(c);
	e->stats.sessions_ended++;
	conn_log_end(c, s);
	/* Closed with a probe outstanding and no failure (QUIT during
	 * shutdown): report it rather than lose it. */
	if (c->cur != NULL)
		engine_finish_reason(e, c->cur, VR_TEMP_FAILURE, "session closed", c);
	if (c->cur_next != NULL)
		engine_finish_reason(e, c->cur_next, VR_TEMP_FAILURE, "session closed", c);
	c->cur = c->cur_next = NULL;
	smtp_session_free(c->s); /* deferred: we are inside its callback */
	c->s = NULL;
	if (c->failover) {
		c->failover = 0;
		conn_next(c);
		return;
	}
	conn_free(c);
	lane_kick(l);
}

/*
 * The request to send in one pipelined group behind r (queued, for c's
 * host), or NULL.  Only a catch-all probe takes a companion: it is the
 * extra RCPT of a domain, and riding with the next request (any domain of
 * the lane) saves its round trip without adding an RCPT that would not be
 * sent anyway.  Not without PIPELINING (one command per reply), not on a
 * lane with an RCPT rate (there the tokens, not the round trips, set the
 * pace, and a group would take two at once), and not when the pair would
 * pass the session's rcpt_per_session.
 */
static struct ereq *
conn_companion(const struct conn *c, struct ereq *r)
{
	const struct lane *l = c->lane;
	struct ereq *n;

	if (!r->internal || !(smtp_session_extensions(c->s) & SMTP_EXT_PIPELINING) || l->rate > 0 ||
	    smtp_session_rcpts(c->s) + 2 > l->rule.rcpt_per_session)
		return NULL;
	for (n = TAILQ_NEXT(r, link); n != NULL; n = TAILQ_NEXT(n, link))
		if (ereq_has_host(n, c->host))
			return n;
	return NULL;
}

static void
conn_arm_idle(struct conn *c)
{
	unsigned ms = c->lane->e->p.idle_close_ms;
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->idle, &tv);
}

/* Sessions of l that work or will (not standbys, not closing). */
static unsigned
lane_working(const struct lane *l)
{
	const struct conn *c;
	unsigned n = 0;

	TAILQ_FOREACH(c, &l->conns, link)
	if (!c->standby && c->st != CONN_CLOSING)
		n++;
	return n;
}

/*
 * Is c's session near its recycle: STANDBY_AHEAD more rejections or RCPTs
 * would end it?  Not before its first one (with limits of 1 or 2 every
 * session would start with a standby, mostly wasted).  Age is not
 * foreseen: it recycles one session in max_session_age_s.
 */
static int
conn_near_worn(const struct conn *c)
{
	const struct lane *l = c->lane;
	unsigned n = c->s != NULL ? smtp_session_rcpts(c->s) : 0;

	return (c->st == CONN_READY || c->st == CONN_BUSY) && !c->standby && c->s != NULL &&
	       ((c->rejects > 0 && c->rejects + STANDBY_AHEAD >= l->e->p.max_rejects_per_session) ||
	        (n > 0 && n + STANDBY_AHEAD >= l->rule.rcpt_per_session));
}

/* Give queued work to c; returns when c is busy or nothing fits. */
static void
conn_feed(struct conn *c)
{
	struct lane *l = c->lane;
	struct engine *e = l->e;
	struct ereq *r, *r2;
	enum smtp_probe_rc rc;
	uint64_t wait;

	while (c->st == CONN_READY) {
		if (!smtp_session_reusable(c->s) || conn_worn_out(c)) {
			conn_quit(c, smtp_session_reusable(c->s) ? "recycle" : "unusable");
			return;
		}
		if (c->standby) {
			if (lane_working(l) >= l->rule.conns) {
				/* Its predecessor still works: wait (and go
				 * when the lane runs out of work). */
				conn_arm_idle(c);
				return;
			}
			c->standby = 0;
		}
		TAILQ_FOREACH(r, &l->q, link)
		if (ereq_has_host(r, c->host))
			break;
		if (r == NULL) {
			if (l->qlen > 0) {
				/* Work for other hosts: make room for it. */
				conn_quit(c, "other_hosts");
			} else {
				conn_arm_idle(c);
			}
			return;
		}
		if ((wait = bucket_take(&l->rcpt, l->rate, l->rule.burst, clock_mono_us())) != 0) {
			/* Too soon for this lane: the timer brings us back. */
			evtimer_del(c->idle);
			lane_wake_in_us(l, wait);
			return;
		}
		evtimer_del(c->idle);
		if ((r2 = conn_companion(c, r)) != NULL) {
			const char *group[2] = {r->address, r2->address};

			if (smtp_session_probe_group(c->s, group, 2) == SMTP_PROBE_STARTED) {
				lane_remove(l, r);
				lane_remove(l, r2);
				r->attempts++;
				r2->attempts++;
				c->cur = r;
				c->cur_next = r2;
				c->st = CONN_BUSY;
				return;
			}
			/* One of them cannot go (bad argument, SMTPUTF8):
			 * nothing was sent; each goes on its own. */
		}
		lane_remove(l, r);
		r->attempts++;
		rc = smtp_session_probe(c->s, r->address);
		switch (rc) {
		case SMTP_PROBE_STARTED:
			c->cur = r;
			c->st = CONN_BUSY;
			return;
		case SMTP_PROBE_SMTPUTF8_UNSUPPORTED:
			engine_finish_reason(e, r, VR_SMTPUTF8_UNSUPPORTED,
			                     "server does not offer SMTPUTF8", c);
			break;
		case SMTP_PROBE_BAD_ARG:
			engine_finish_reason(e, r, VR_INVALID_SYNTAX, "refused to send", c);
			break;
		case SMTP_PROBE_BUSY:
		default:
			r->attempts--;
			lane_push_head(l, r);
			conn_quit(c, "unusable");
			return;
		}
	}
}

/* ---- the lane pump ------------------------------------------------------- */

/*
 * A lane whose rule limits neither RCPTs nor connections: a session saying
 * QUIT need not hold its successor back for the 221 (a round trip per
 * recycle), so it does not count toward rule.conns (at most rule.conns of
 * them linger).  Under a rate rule conns stays a hard cap: a receiver that
 * counts concurrent connections (Postfix anvil) would see one too many.
 */
static int
lane_unruled(const struct lane *l)
{
	return l->rule.rate == 0 && l->rule.conn_rate == 0;
}

static void
lane_pump(struct lane *l)
{
	struct engine *e = l->e;
	struct conn *c, *next;
	struct ereq *r;
	unsigned opening, quitting;
	int standby;
	uint64_t now = clock_mono_ms(), wait;

	/* Work requeued after engine_shutdown() (a dropped session, a 452
	 * retry) would wait for a connection that is never opened. */
	while (e->shutting && (r = TAILQ_FIRST(&l->q)) != NULL) {
		lane_remove(l, r);
		engine_finish_reason(e, r, VR_TEMP_FAILURE, "shutting down", NULL);
	}
	if (l->paused_until > now && !e->shutting) {
		/* Backing off: nothing goes out until the timer ends the pause. */
		lane_wake_in(l, l->paused_until - now);
	} else {
		for (c = TAILQ_FIRST(&l->conns); c != NULL; c = next) {
			next = TAILQ_NEXT(c, link);
			if (c->st == CONN_READY)
				conn_feed(c);
		}
		for (;;) {
			/* A session about to be recycled counts as quitting
			 * when a group's worth of work waits behind it: its
			 * successor opens now, as a standby. */
			int ahead = lane_unruled(l) && !l->no_standby && l->qlen >= SMTP_GROUP_MAX;

			opening = quitting = 0;
			TAILQ_FOREACH(c, &l->conns, link)
			if (c->st == CONN_RESOLVING || c->st == CONN_CONNECTING)
				opening++;
			else if (lane_unruled(l) && ((c->st == CONN_CLOSING && !c->failover) ||
			                             (ahead && conn_near_worn(c))))
				quitting++;
			if (e->shutting || l->qlen <= opening || l->nconns - quitting >= l->rule.conns ||
			    l->nconns >= 2 * l->rule.conns)
				break;
			wait = bucket_take(&l->conn, l->rule.conn_rate, l->rule.conn_burst, clock_mono_us());
			if (wait != 0) {
				lane_wake_in_us(l, wait);
				break;
			}
			standby = lane_working(l) >= l->rule.conns;
			if (conn_start(l, TAILQ_FIRST(&l->q), standby) != 0)
				break; /* no memory now; a later kick tries again */
		}
	}
	if (l->qlen == 0 && l->nconns == 0)
		lane_settle(l);
}

/*
 * An empty lane goes when forgetting it changes nothing: its buckets are
 * full again (a new lane starts full: dropping it earlier would let a
 * burst through too soon) and it is not slowed down (a slowed lane keeps
 * its state until LANE_FORGET_MS after its last rate-limit or answer).
 */
static void
lane_settle(struct lane *l)
{
	uint64_t now = clock_mono_ms(), wait, w2;

	if (l->e->shutting) {
		lane_drop(l);
		return;
	}
	if (l->rate != l->rule.rate || l->paused_until > now) {
		if (now - l->last_ms >= LANE_FORGET_MS)
			lane_drop(l);
		else
			lane_wake_in(l, LANE_FORGET_MS - (now - l->last_ms));
		return;
	}
	wait = bucket_full_in(&l->rcpt, l->rate, l->rule.burst, clock_mono_us());
	w2 = bucket_full_in(&l->conn, l->rule.conn_rate, l->rule.conn_burst, clock_mono_us());
	if (w2 > wait)
		wait = w2;
	if (wait == 0)
		lane_drop(l);
	else
		lane_wake_in_us(l, wait);
}

static void
lane_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lane *l = arg;

	l->timer_at = 0;
	lane_pump(l);
}

static void
lane_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	lane_pump(arg);
}

static void
lane_kick(struct lane *l)
{
	event_active(l->kick, 0, 1);
}

/* ---- public -------------------------------------------------------------- */

/* addr (numeric IPv4/IPv6) as a socket address with port 0; 0 or -1. */
static int
engine_parse_bind(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

int
engine_check_bind(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, rc = 0;

	if (addr == NULL || engine_parse_bind(addr, &ss, &len) != 0) {
		snprintf(err, errlen, "--bind %s: not a numeric IPv4 or IPv6 address",
		         addr != NULL ? addr : "(null)");
		return -1;
	}
	/* Bind once now (any port), so a typo or an address this host does
	 * not have stops the program at start, not each connection later. */
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&ss, len) == -1) {
		snprintf(err, errlen, "--bind %s: %s (it must be an address of this host)", addr,
		         strerror(errno));
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	return rc;
}

struct event_base *
engine_event_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

struct engine *
engine_new(struct event_base *base, struct dns *dns, const struct engine_params *params,
           engine_done_cb done, void *arg)
{
	struct engine *e;
	char host[256], err[256];

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->base = base;
	e->dns = dns;
	e->done = done;
	e->done_arg = arg;
	if (params != NULL)
		e->p = *params;
	if (e->p.helo_name == NULL || *e->p.helo_name == '\0') {
		if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		e->helo = strdup(host);
	} else {
		e->helo = strdup(e->p.helo_name);
	}
	e->mail_from = strdup(e->p.mail_from != NULL ? e->p.mail_from : "");
	e->p.helo_name = e->helo;
	e->p.mail_from = e->mail_from;
	if (e->p.smtp_port <= 0)
		e->p.smtp_port = 25;
	if (e->p.max_rcpt_per_session == 0)
		e->p.max_rcpt_per_session = 100;
	if (e->p.max_rejects_per_session == 0)
		e->p.max_rejects_per_session = 8;
	if (e->p.max_session_age_s == 0)
		e->p.max_session_age_s = 300;
	if (e->p.idle_close_ms == 0)
		e->p.idle_close_ms = 2000;
	if (e->p.max_conns_per_lane == 0)
		e->p.max_conns_per_lane = 1;
	if (e->p.catch_all_check == ENGINE_CATCH_ALL_DEFAULT)
		e->p.catch_all_check = ENGINE_CATCH_ALL_ON;
	if (e->p.catch_all_ttl_s == 0)
		e->p.catch_all_ttl_s = 3600;
	if (e->p.backoff_base_ms == 0)
		e->p.backoff_base_ms = 2000;
	if (e->p.backoff_max_ms == 0)
		e->p.backoff_max_ms = 600000;
	if (e->p.backoff_max_ms < e->p.backoff_base_ms)
		e->p.backoff_max_ms = e->p.backoff_base_ms;
	if (e->p.throttle_retries == 0)
		e->p.throttle_retries = 5;
	else if (e->p.throttle_retries == ENGINE_THROTTLE_RETRIES_NONE)
		e->p.throttle_retries = 0;
	e->jitter = (uint32_t)clock_mono_ms() ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
	if (e->jitter == 0)
		e->jitter = 1;
	if (e->p.catch_all_local != NULL &&
	    (e->catch_all_local = strdup(e->p.catch_all_local)) == NULL) {
		engine_free(e);
		return NULL;
	}
	e->p.catch_all_local = e->catch_all_local;
	if (e->p.bind_address != NULL && *e->p.bind_address != '\0') {
		snprintf(err, sizeof(err), "out of memory");
		if (engine_check_bind(e->p.bind_address, err, sizeof(err)) != 0 ||
		    (e->bind_address = strdup(e->p.bind_address)) == NULL) {
			log_error("source address", "error=\"%s\"", err);
			engine_free(e);
			return NULL;
		}
		(void)engine_parse_bind(e->bind_address, &e->bind, &e->bind_len);
		e->sp.source = (struct sockaddr *)&e->bind;
		e->sp.source_len = e->bind_len;
	}
	e->p.bind_address = e->bind_address;

	e->sp.helo_name = e->helo;
	e->sp.mail_from = e->mail_from;
	e->sp.tls = e->p.tls == ENGINE_TLS_REQUIRE ? SMTP_TLS_REQUIRE
	            : e->p.tls == ENGINE_TLS_OFF   ? SMTP_TLS_OFF
	                                           : SMTP_TLS_MAY;
	e->sp.timeout_ms[SMTP_S_CONNECTING] = e->p.connect_timeout_ms;
	e->sp.timeout_ms[SMTP_S_GREETING] = e->p.greeting_timeout_ms;
	if (e->p.command_timeout_ms != 0) {
		static const enum smtp_state cmd_states[] = {
		    SMTP_S_EHLO, SMTP_S_HELO, SMTP_S_STARTTLS, SMTP_S_TLS_HANDSHAKE,
		    SMTP_S_RSET, SMTP_S_MAIL, SMTP_S_RCPT,     SMTP_S_QUIT};

		for (size_t i = 0; i < sizeof(cmd_states) / sizeof(cmd_states[0]); i++)
			e->sp.timeout_ms[cmd_states[i]] = e->p.command_timeout_ms;
		if (e->p.command_timeout_ms > SMTP_TIMEOUT_QUIT_MS)
			e->sp.timeout_ms[SMTP_S_QUIT] = SMTP_TIMEOUT_QUIT_MS;
	}
	if (e->sp.tls != SMTP_TLS_OFF)
		e->ssl_ctx = e->sp.ssl_ctx = smtp_tls_ctx_new();
	TAILQ_INIT(&e->doneq);
	e->done_ev = event_new(base, -1, 0, engine_deliver_cb, e);
	if (engine_reload_rules(e, e->p.lanes_file, err, sizeof(err)) != 0) {
		log_error("lane rules", "error=\"%s\"", err);
		engine_free(e);
		return NULL;
	}
	e->p.lanes_file = NULL; /* borrowed: not kept */
	if (e->helo == NULL || e->mail_from == NULL || e->done_ev == NULL ||
	    (e->sp.tls != SMTP_TLS_OFF && e->ssl_ctx == NULL)) {
		engine_free(e);
		return NULL;
	}
	return e;
}

static int
engine_addr_ok(const char *a)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)a; *p; p++, n++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return n > 0 && n <= ENGINE_ADDR_MAX;
}

int
engine_submit(struct engine *e, const struct probe_req *req)
{
	struct ereq *r;
	struct lane *l = NULL;
	const char *key;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1; /* cannot even remember it */
	r->submitted_ms = clock_mono_ms();
	r->tag = req->tag;
	r->flags = req->flags;
	r->address = strdup(req->address != NULL ? req->address : "");
	r->domain = strdup(req->domain != NULL ? req->domain : "");
	e->pending++;
	if (r->address == NULL || r->domain == NULL) {
		engine_finish_reason(e, r, VR_TEMP_FAILURE, "out of memory", NULL);
		return -1;
	}
	if (!engine_addr_ok(r->address)) {
		engine_finish_reason(e, r, VR_INVALID_SYNTAX, "unusable address", NULL);
		return -1;
	}
	if (req->nhosts == 0 || req->hosts == NULL) {
		engine_finish_reason(e, r, VR_DNS_ERROR, "no mail hosts given", NULL);
		return -1;
	}
	if (e->shutting) {
		engine_finish_reason(e, r, VR_TEMP_FAILURE, "shutting down", NULL);
		return -1;
	}
	if ((r->hosts = calloc(req->nhosts, sizeof(*r->hosts))) == NULL) {
		engine_finish_reason(e, r, VR_TEMP_FAILURE, "out of memory", NULL);
		return -1;
	}
	for (size_t i = 0; i < req->nhosts; i++) {
		if (req->hosts[i].name == NULL || *req->hosts[i].name == '\0' ||
		    !engine_addr_ok(req->hosts[i].name)) {
			engine_finish_reason(e, r, VR_DNS_ERROR, "bad mail host name", NULL);
			return -1;
		}
		if ((r->hosts[i] = strdup(req->hosts[i].name)) == NULL) {
			engine_finish_reason(e, r, VR_TEMP_FAILURE, "out of memory", NULL);
			return -1;
		}
		r->nhosts++;
	}
	key = req->mx_domain != NULL && *req->mx_domain != '\0' ? req->mx_domain : r->hosts[0];
	if ((l = engine_lane(e, key)) == NULL) {
		engine_finish_reason(e, r, VR_TEMP_FAILURE, "out of memory", NULL);
		return -1;
	}
	r->lane = l;
	TAILQ_INSERT_TAIL(&l->q, r, link);
	l->qlen++;
	lane_kick(l);
	return 0;
}

size_t
engine_pending(const struct engine *e)
{
	return e->pending;
}

void
engine_shutdown(struct engine *e)
{
	struct ereq *r;
	struct conn *c, *next;

	e->shutting = 1;
	for (size_t i = 0; i < e->nlanes; i++) {
		struct lane *l = e->lanes[i];

		while ((r = TAILQ_FIRST(&l->q)) != NULL) {
			lane_remove(l, r);
			engine_finish_reason(e, r, VR_TEMP_FAILURE, "shutting down", NULL);
		}
		for (c = TAILQ_FIRST(&l->conns); c != NULL; c = next) {
			next = TAILQ_NEXT(c, link);
			if (c->st == CONN_RESOLVING || c->s == NULL)
				conn_free(c);
			else
				conn_quit(c, "shutdown");
		}
		lane_kick(l);
	}
}

void
engine_free(struct engine *e)
{
	struct ereq *r;

	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nlanes; i++)
		lane_free(e->lanes[i]);
	free(e->lanes);
	for (size_t i = 0; i < e->ncas; i++)
		ca_free(e->cas[i]);
	free(e->cas);
	rules_free(e->rules, e->nrules);
	while ((r = TAILQ_FIRST(&e->doneq)) != NULL) {
		TAILQ_REMOVE(&e->doneq, r, link);
		ereq_free(r);
	}
	if (e->done_ev != NULL)
		event_free(e->done_ev);
	if (e->ssl_ctx != NULL)
		smtp_tls_ctx_free(e->ssl_ctx);
	free(e->helo);
	free(e->mail_from);
	free(e->catch_all_local);
	free(e->bind_address);
	free(e);
}

void
engine_get_stats(const struct engine *e, struct engine_stats *out)
{
	*out = e->stats;
	out->lanes = e->nlanes;
	for (size_t i = 0; i < e->nlanes; i++) {
		const struct conn *c;

		out->queued += e->lanes[i]->qlen;
		TAILQ_FOREACH(c, &e->lanes[i]->conns, link)
		if (c->s != NULL)
			out->sessions_open++;
	}
}

size_t
engine_get_lane_stats(const struct engine *e, struct engine_lane_stats *out, size_t max)
{
	uint64_t now = clock_mono_ms();

	for (size_t i = 0; i < e->nlanes && i < max; i++) {
		const struct lane *l = e->lanes[i];

		out[i].key = l->key;
		out[i].rate = l->rate;
		out[i].rule_rate = l->rule.rate;
		out[i].conns = l->nconns;
		out[i].max_conns = l->rule.conns;
		out[i].queued = l->qlen;
		out[i].backoff_level = l->level;
		out[i].backoffs = l->backoffs;
		out[i].paused_ms = l->paused_until > now ? l->paused_until - now : 0;
	}
	return e->nlanes;
}
