/*
 * plan.c — read a list as a stream, check and dedupe its addresses, resolve
 * each domain's MX once, and hand the work out in batches (see plan.h).
 *
 * Owns: the open input, the dedupe set, one record per unique domain (its
 * name, lookup state, cached MX answer or failure, flags and typo
 * suggestion), and the addresses held while their domain's MX answer is
 * outstanding or their batch is not full yet.  Rows themselves are never
 * kept: each is handed to cb.row and forgotten.
 *
 * Memory bound (what README.md states):
 *   - dedupe (dedupe.c): 12 bytes per slot (64-bit hash + 32-bit uid), at
 *     most 75 % of slots used, so 16..32 bytes per unique address; the set
 *     is split in 256 parts that double one at a time, so growing adds
 *     1/128 of it at most, not a second copy of the whole table;
 *   - per unique domain: its record (~100 bytes + name) and, once
 *     resolved, its MX host names (~30 bytes per host);
 *   - held addresses: at most params.pending_max (~100 bytes each); when
 *     the cap is reached every partial batch of a resolved domain is handed
 *     out early, and if that is not enough (all held addresses wait for DNS)
 *     reading pauses until answers arrive;
 *   - one input row at a time (intake: 64 KiB read buffer, 64 KiB field,
 *     1 MiB JSONL line, libcsv's field buffer).
 * Nothing grows with the number of rows as such: a 10-million-row list of
 * 1 million unique addresses at 10,000 domains needs the same memory as a
 * 1-million-row list of the same addresses.
 *
 * Dedupe key: the normalised address (address_parse(): domain lowercased,
 * A-label) with the local part lowercased when params.fold says so
 * (PLAN_FOLD_AUTO: only for domains in data/case_insensitive.txt).  The set
 * stores a seeded 64-bit hash of the key, not the key: two different
 * addresses collide with probability about n^2 / 2^65 (3e-6 for 10 million
 * unique addresses), in which case the second is counted as a duplicate of
 * the first.  That is the price of not keeping every address in memory.
 * Invalid rows are never deduplicated: each is its own uid.
 *
 * Returns, always from the event loop (never from inside plan_load()):
 *   - cb.row for every row, in input order, as it is read;
 *   - cb.verdict for an invalid row right after its cb.row (invalid_syntax,
 *     detail = the rule broken or intake's problem);
 *   - per unique address, once its domain's MX answer is known: cb.domain
 *     (DNS_OK) with up to params.batch addresses of that domain, or
 *     cb.verdict (no_mail_server with detail nxdomain / null_mx /
 *     no_mx_no_address; dns_error with c-ares' text);
 *   - cb.done once, after the last of those.
 * cb.domain's arrays and MX result live for the call only.
 *
 * MX lookups: one per unique domain per plan, at most params.dns_window in
 * flight (c-ares' 16-bit query ids and real resolvers' rate limits make
 * "every domain at once" a bad idea); dns.c retries timeouts (c-ares tries)
 * and reports DNS_ERROR after them or on SERVFAIL/REFUSED; plan.c then asks
 * again PLAN_DNS_RETRIES times, PLAN_DNS_RETRY_MS apart (doubling), before
 * the domain's addresses get unknown/dns_error.  Answers and final failures
 * are cached, so a domain is never looked up again in one job.
 *
 * Diagnostics on stderr: "line N: invalid address "TEXT": REASON" for each
 * invalid row (TEXT with non-printable bytes escaped as \xNN, cut at
 * PLAN_SHOW_MAX bytes), at most PLAN_REPORT_MAX such lines and then one
 * summary line; every invalid row still gets its verdict.  A row with
 * trouble outside its address (intake_row.warning) is checked as read and
 * reported as "line N: warning: WHAT; the address is checked as read", at
 * most PLAN_REPORT_MAX such lines.
 *
 * Teardown: plan_free() may be called from inside a callback.  With MX
 * lookups still in flight the plan stays allocated (no callback is called
 * any more) until their answers have come back, because dns.h has no
 * cancel; if the dns object is freed first, that remainder leaks, which
 * only happens on an aborted run.
 */
#include "plan.h"
#include "address.h"
#include "dedupe.h"
#include "lists.h"
#include "log.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PLAN_BATCH_DEFAULT   50
#define PLAN_DNS_WINDOW      1000
#define PLAN_PENDING_MAX     100000
#define PLAN_READ_SLICE      4096     /* rows per loop turn: DNS gets a say */
#define PLAN_REPORT_MAX      1000
#define PLAN_SHOW_MAX        200
#define PLAN_UID_MAX         0xfffffffeu
#define PLAN_DNS_RETRIES     2        /* after the first DNS_ERROR answer */
#define PLAN_DNS_RETRY_MS    500      /* doubled per retry */

/* An address held until its domain is resolved or its batch is full. */
struct plan_pend {
	struct plan_pend *next;
	struct plan_addr a;
	char text[];
};

enum plan_dom_state { DOM_QUEUED, DOM_ASKING, DOM_OK, DOM_FAILED };

struct plan_dom {
	struct plan *p;
	struct plan_dom *qnext;                 /* lookup queue */
	struct plan_dom *pnext, *pprev;         /* resolved, holding addresses */
	struct plan_pend *head, *tail;
	size_t npend;
	unsigned char state, in_partial, ci, tries;
	struct event *retry_ev;                 /* while waiting to ask again */
	enum verdict_reason fail_reason;
	char *fail_detail;
	unsigned flags;                         /* VERDICT_F_DISPOSABLE | _FREE_PROVIDER */
	const char *suggestion;                 /* owned by lists, or "" */
	/* the MX answer, when DOM_OK */
	int implicit;
	char *mx_domain;
	size_t nhosts;
	struct dns_mx_host *hosts;
	char name[];
};

struct plan {
	struct event_base *base;
	struct dns *dns;
	struct plan_callbacks cb;
	struct plan_params prm;
	struct event *read_ev;
	struct intake *in;
	char *tmp;                      /* an invalid row's trimmed text */

	struct dedupe *seen;            /* hashes of the unique addresses -> uid */
	uint64_t seed;

	/* domains: open addressing over pointers */
	struct plan_dom **dslot;
	size_t dmask, dn;

	struct plan_dom *qhead, *qtail;         /* waiting to be looked up */
	struct plan_dom partial;                /* list head (sentinel) */
	const struct plan_addr **batchv;

	struct plan_stats st;
	uint64_t next_uid;
	size_t inflight;
	size_t retrying;                /* domains waiting for a retry timer */
	int loaded, reading, paused, blocked, done_sent;
	int in_cb, dead;
	char error[512];
	char input_error[512];          /* keep_going: why the input ended early */
};

static void plan_destroy(struct plan *);
static void plan_schedule_read(struct plan *);
static void plan_enqueue(struct plan *, struct plan_dom *);

static void
plan_oom(void)
{
	log_error("out of memory", "module=plan");
	abort();
}

/* ---- hashing -------------------------------------------------------- */

static uint64_t
plan_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* 64-bit hash of s[0..n), seeded per plan; 0 is never returned. */
static uint64_t
plan_hash(const char *s, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL), w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		h = plan_mix(h ^ w) + 0x9e3779b97f4a7c15ULL;
	}
	w = 0;
	memcpy(&w, s + i, n - i);
	h = plan_mix(h ^ w ^ ((uint64_t)(n - i) << 56));
	return h != 0 ? h : 1;
}

/* ---- domains -------------------------------------------------------- */

static size_t
plan_dom_slot(const struct plan *p, const char *name)
{
	size_t i = (size_t)plan_hash(name, strlen(name), p->seed) & p->dmask;

	while (p->dslot[i] != NULL && strcmp(p->dslot[i]->name, name) != 0)
		i = (i + 1) & p->dmask;
	return i;
}

static void
plan_dom_grow(struct plan *p)
{
	struct plan_dom **old = p->dslot;
	size_t ocap = old != NULL ? p->dmask + 1 : 0, cap;

	if (old != NULL && (p->dn + 1) * 2 <= ocap)
		return;
	cap = ocap ? ocap * 2 : 1024;
	if ((p->dslot = calloc(cap, sizeof(*p->dslot))) == NULL)
		plan_oom();
	p->dmask = cap - 1;
	for (size_t i = 0; i < ocap; i++)
		if (old[i] != NULL)
			p->dslot[plan_dom_slot(p, old[i]->name)] = old[i];
	free(old);
}

static struct plan_dom *
plan_dom_get(struct plan *p, const char *name)
{
	struct plan_dom *d;
	size_t i, n = strlen(name);
	const char *s;

	plan_dom_grow(p);
	i = plan_dom_slot(p, name);
	if (p->dslot[i] != NULL)
		return p->dslot[i];
	if ((d = calloc(1, sizeof(*d) + n + 1)) == NULL)
		plan_oom();
	memcpy(d->name, name, n + 1);
	d->p = p;
	d->state = DOM_QUEUED;
	d->suggestion = "";
	if (p->prm.lists != NULL) {
		const struct lists *l = p->prm.lists;

		if (lists_is_disposable(l, name))
			d->flags |= VERDICT_F_DISPOSABLE;
		if (lists_is_free(l, name))
			d->flags |= VERDICT_F_FREE_PROVIDER;
		d->ci = (unsigned char)lists_is_case_insensitive(l, name);
		if ((s = lists_suggest(l, name)) != NULL)
			d->suggestion = s;
	}
	p->dslot[i] = d;
	p->dn++;
	p->st.domains++;
	plan_enqueue(p, d);
	return d;
}

static void
plan_partial_add(struct plan *p, struct plan_dom *d)
{
	if (d->in_partial)
		return;
	d->in_partial = 1;
	d->pnext = &p->partial;
	d->pprev = p->partial.pprev;
	p->partial.pprev->pnext = d;
	p->partial.pprev = d;
}

static void
plan_partial_del(struct plan_dom *d)
{
	if (!d->in_partial)
		return;
	d->in_partial = 0;
	d->pprev->pnext = d->pnext;
	d->pnext->pprev = d->pprev;
	d->pnext = d->pprev = NULL;
}

/* ---- callbacks out -------------------------------------------------- */

/* After a caller callback: 1 if the plan is finished with (and maybe
 * freed), so the caller of plan_after_cb must not touch it. */
static int
plan_after_cb(struct plan *p)
{
	if (!p->dead)
		return 0;
	if (p->in_cb == 0 && p->inflight == 0)
		plan_destroy(p);
	return 1;
}

static int
plan_emit_verdict(struct plan *p, const struct plan_addr *a, enum verdict_reason r,
    const char *detail)
{
	struct verdict v;

	verdict_init(&v, r);
	snprintf(v.detail, sizeof(v.detail), "%s", detail);
	v.flags = a->flags;
	snprintf(v.suggestion, sizeof(v.suggestion), "%s", a->suggestion);
	if (p->cb.verdict != NULL) {
		p->in_cb++;
		p->cb.verdict(p->cb.arg, a, &v);
		p->in_cb--;
	}
	return plan_after_cb(p);
}

static int
plan_emit_row(struct plan *p, const struct intake_row *row, uint64_t uid, int dup)
{
	struct plan_row r = { row->line, row->text, row->len, uid, dup };

	if (p->cb.row == NULL)
		return 0;
	p->in_cb++;
	p->cb.row(p->cb.arg, &r);
	p->in_cb--;
	return plan_after_cb(p);
}

static void
plan_maybe_done(struct plan *p)
{
	if (p->done_sent || p->dead || p->reading || !p->loaded || p->inflight > 0 ||
	    p->retrying > 0 || p->qhead != NULL || p->st.pending > 0 || p->error[0] != '\0')
		return;
	p->done_sent = 1;
	if (p->cb.done != NULL) {
		p->in_cb++;
		p->cb.done(p->cb.arg);
		p->in_cb--;
		(void)plan_after_cb(p);
	}
}

/*
 * Hand out d's held addresses: full batches only, or (all) every one.
 * Returns 1 when the plan died in a callback.
 */
static int
plan_flush_dom(struct plan *p, struct plan_dom *d, int all)
{
	struct dns_mx_result mx;
	struct plan_domain pd;
	size_t n, i;

	/* Called for every address of a resolved domain: most calls hand
	 * nothing out, and building the MX result (memset + copy) for them
	 * was 11% of `mxsift submit`'s instructions. */
	if (d->npend < p->prm.batch && !(all && d->npend > 0)) {
		if (d->npend == 0)
			plan_partial_del(d);
		else
			plan_partial_add(p, d);
		return 0;
	}
	memset(&mx, 0, sizeof(mx));
	mx.status = DNS_OK;
	mx.implicit = d->implicit;
	mx.nhosts = d->nhosts;
	mx.hosts = d->hosts;
	snprintf(mx.mx_domain, sizeof(mx.mx_domain), "%s", d->mx_domain);
	while (d->npend >= p->prm.batch || (all && d->npend > 0)) {
		struct plan_pend *batch = d->head, *e, *next;

		n = d->npend < p->prm.batch ? d->npend : p->prm.batch;
		for (i = 0, e = d->head; i < n; i++, e = e->next) {
			if (d->implicit)
				e->a.flags |= VERDICT_F_IMPLICIT_MX;
			p->batchv[i] = &e->a;
		}
		d->head = e;
		if (e == NULL)
			d->tail = NULL;
		d->npend -= n;
		p->st.pending -= n;
		p->st.batches++;
		pd.domain = d->name;
		pd.mx = &mx;
		pd.naddrs = n;
		pd.addrs = p->batchv;
		if (p->cb.domain != NULL) {
			p->in_cb++;
			p->cb.domain(p->cb.arg, &pd);
			p->in_cb--;
		}
		for (e = batch, i = 0; i < n; i++, e = next) {
			next = e->next;
			free(e);
		}
		if (plan_after_cb(p))
			return 1;
	}
	if (d->npend == 0)
		plan_partial_del(d);
	else
		plan_partial_add(p, d);
	return 0;
}

/* Too many held addresses: hand out every partial batch now. */
static int
plan_relieve(struct plan *p)
{
	while (p->partial.pnext != &p->partial)
		if (plan_flush_dom(p, p->partial.pnext, 1))
			return 1;
	return 0;
}

/* ---- MX answers ----------------------------------------------------- */

static void plan_pump(struct plan *);
static void plan_maybe_done(struct plan *);

static void
plan_enqueue(struct plan *p, struct plan_dom *d)
{
	d->state = DOM_QUEUED;
	d->qnext = NULL;
	if (p->qtail != NULL)
		p->qtail->qnext = d;
	else
		p->qhead = d;
	p->qtail = d;
}

static void
plan_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct plan_dom *d = arg;
	struct plan *p = d->p;

	event_free(d->retry_ev);
	d->retry_ev = NULL;
	p->retrying--;
	if (p->dead)
		return;
	plan_enqueue(p, d);
	plan_pump(p);
}

/* A timeout or SERVFAIL after c-ares' own tries: ask again later, a few
 * times, before the addresses get unknown/dns_error.  1 when retrying. */
static int
plan_retry(struct plan *p, struct plan_dom *d)
{
	struct timeval tv;
	unsigned ms;

	if (d->tries >= PLAN_DNS_RETRIES)
		return 0;
	ms = PLAN_DNS_RETRY_MS << d->tries;
	d->tries++;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if ((d->retry_ev = evtimer_new(p->base, plan_on_retry, d)) == NULL ||
	    evtimer_add(d->retry_ev, &tv) != 0)
		plan_oom();
	d->state = DOM_ASKING;
	p->retrying++;
	return 1;
}

static void
plan_on_mx(void *arg, const char *domain, const struct dns_mx_result *r)
{
	struct plan_dom *d = arg;
	struct plan *p = d->p;
	const char *detail = NULL;
	struct plan_pend *e, *next;

	p->inflight--;
	if (plan_after_cb(p))
		return;
	p->st.resolved++;
	switch (r->status) {
	case DNS_OK:
		d->state = DOM_OK;
		d->implicit = r->implicit;
		d->nhosts = r->nhosts;
		if ((d->mx_domain = strdup(r->mx_domain[0] ? r->mx_domain :
		    d->name)) == NULL ||
		    (d->hosts = calloc(r->nhosts ? r->nhosts : 1,
		    sizeof(*d->hosts))) == NULL)
			plan_oom();
		for (size_t i = 0; i < r->nhosts; i++) {
			d->hosts[i].preference = r->hosts[i].preference;
			if ((d->hosts[i].name = strdup(r->hosts[i].name)) == NULL)
				plan_oom();
		}
		if (plan_flush_dom(p, d, !p->reading))
			return;
		break;
	case DNS_NXDOMAIN:
		detail = "nxdomain";
		break;
	case DNS_NULL_MX:
		detail = "null_mx";
		break;
	case DNS_NO_MAIL:
		detail = "no_mx_no_address";
		break;
	case DNS_ERROR:
	default:
		if (plan_retry(p, d)) {
			p->st.resolved--;       /* not an answer yet */
			plan_pump(p);
			return;
		}
		d->fail_reason = VR_DNS_ERROR;
		p->st.domains_dns_error++;
		detail = r->error[0] != '\0' ? r->error : "dns_error";
		break;
	}
	if (detail != NULL) {
		d->state = DOM_FAILED;
		if (r->status != DNS_ERROR)
			d->fail_reason = VR_NO_MAIL_SERVER;
		if ((d->fail_detail = strdup(detail)) == NULL)
			plan_oom();
		for (e = d->head; e != NULL; e = next) {
			next = e->next;
			d->head = next;
			d->npend--;
			p->st.pending--;
			p->st.dns_failed++;
			if (plan_emit_verdict(p, &e->a, d->fail_reason, d->fail_detail)) {
				free(e);
				return;
			}
			free(e);
		}
		d->tail = NULL;
	}
	plan_pump(p);
	if (p->blocked) {
		if (p->st.pending >= p->prm.pending_max && plan_relieve(p))
			return;
		if (p->st.pending < p->prm.pending_max) {
			p->blocked = 0;
			plan_schedule_read(p);
		}
	}
	plan_maybe_done(p);
}

static void
plan_pump(struct plan *p)
{
	while (p->inflight < p->prm.dns_window && p->qhead != NULL) {
		struct plan_dom *d = p->qhead;

		p->qhead = d->qnext;
		if (p->qhead == NULL)
			p->qtail = NULL;
		d->qnext = NULL;
		d->state = DOM_ASKING;
		p->inflight++;
		dns_resolve_mx(p->dns, d->name, plan_on_mx, d);
	}
}

/* ---- reading -------------------------------------------------------- */

/* Quote raw text for a diagnostic: printable ASCII and well-formed UTF-8
 * (U+00A0 and above) as is; everything else, '"' and '\' escaped. */
static void
plan_show(char *out, size_t outlen, const char *s, size_t len)
{
	size_t o = 0, i = 0;

	while (i < len && o + 8 < outlen) {
		unsigned char c = (unsigned char)s[i], c1;
		size_t n = 0;

		if (i >= PLAN_SHOW_MAX) {
			o += (size_t)snprintf(out + o, outlen - o, "...");
			break;
		}
		if (c >= 0x20 && c < 0x7f) {
			if (c == '"' || c == '\\')
				out[o++] = '\\';
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 2;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4;
		if (n > 0 && i + n <= len) {
			size_t k;

			for (k = 1; k < n; k++)
				if (((unsigned char)s[i + k] & 0xc0) != 0x80)
					break;
			/* C1 controls U+0080..U+009F are C2 80..C2 9F; RFC 3629
			 * also rules out overlong forms (E0 80..9F, F0 80..8F),
			 * surrogates (ED A0..BF) and code points above U+10FFFF
			 * (F4 90..BF): those bytes are escaped, not written raw. */
			c1 = (unsigned char)s[i + 1];
			if (k == n && !(c == 0xc2 && c1 < 0xa0) &&
			    !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 > 0x9f) &&
			    !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 > 0x8f) &&
			    o + n < outlen) {
				memcpy(out + o, s + i, n);
				o += n;
				i += n;
				continue;
			}
		}
		o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		i++;
	}
	out[o < outlen ? o : outlen - 1] = '\0';
}

static void
plan_report(struct plan *p, uint64_t line, const char *text, size_t len,
    const char *why)
{
	char shown[PLAN_SHOW_MAX * 4 + 16];

	if (p->prm.quiet || p->st.invalid > PLAN_REPORT_MAX)
		return;
	plan_show(shown, sizeof(shown), text, len);
	fprintf(stderr, "line %llu: invalid address \"%s\": %s\n",
	    (unsigned long long)line, shown, why);
}

static void
plan_warn(struct plan *p, const struct intake_row *row)
{
	p->st.warnings++;
	if (p->prm.quiet || p->st.warnings > PLAN_REPORT_MAX)
		return;
	fprintf(stderr, "line %llu: warning: %s; the address is checked as read\n",
	    (unsigned long long)row->line, row->warning);
}

static uint64_t
plan_new_uid(struct plan *p)
{
	if (p->next_uid > PLAN_UID_MAX) {
		snprintf(p->error, sizeof(p->error), "more than %u unique addresses "
		    "in one list", PLAN_UID_MAX);
		return UINT64_MAX;
	}
	return p->next_uid++;
}

/* 1 when the plan died in a callback. */
static int
plan_invalid(struct plan *p, const struct intake_row *row, const char *detail,
    const char *why)
{
	const char *s = row->text;
	size_t len = row->len;
	struct plan_addr a;
	uint64_t uid;

	if ((uid = plan_new_uid(p)) == UINT64_MAX)
		return 0;
	p->st.invalid++;
	plan_report(p, row->line, row->text, row->len, why);
	if (plan_emit_row(p, row, uid, 0))
		return 1;
	while (len > 0 && isspace((unsigned char)*s))
		s++, len--;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	memcpy(p->tmp, s, len);
	p->tmp[len] = '\0';
	a.uid = uid;
	a.address = p->tmp;
	a.line = row->line;
	a.flags = 0;
	a.suggestion = "";
	return plan_emit_verdict(p, &a, VR_INVALID_SYNTAX, detail);
}

/* One row.  1 when the plan died in a callback. */
static int
plan_add_row(struct plan *p, const struct intake_row *row)
{
	struct address addr;
	enum addr_err e;
	struct plan_dom *d;
	struct plan_pend *pe;
	char key[sizeof(addr.full)], why[256];
	size_t klen, llen;
	uint64_t h, uid;
	uint32_t first;
	unsigned flags;

	p->st.rows++;
	if (row->problem != NULL)
		return plan_invalid(p, row, row->problem, row->problem);
	if (row->warning != NULL)
		plan_warn(p, row);
	if ((e = address_parse(row->text, row->len, &addr)) != ADDR_OK) {
		/* "The address has no '@' sign (no_at)" */
		snprintf(why, sizeof(why), "%s", address_err_text(e));
		if (why[0] != '\0' && why[strlen(why) - 1] == '.')
			why[strlen(why) - 1] = '\0';
		snprintf(why + strlen(why), sizeof(why) - strlen(why), " (%s)",
		    address_err_name(e));
		return plan_invalid(p, row, address_err_name(e), why);
	}

	d = plan_dom_get(p, addr.domain);
	klen = strlen(addr.full);
	memcpy(key, addr.full, klen + 1);
	if (p->prm.fold == PLAN_FOLD_ALWAYS || (p->prm.fold == PLAN_FOLD_AUTO && d->ci)) {
		llen = strlen(addr.local);
		for (size_t i = 0; i < llen; i++)
			if (key[i] >= 'A' && key[i] <= 'Z')
				key[i] = (char)(key[i] + 32);
	}
	h = plan_hash(key, klen, p->seed);
	if (dedupe_find(p->seen, h, &first)) {
		p->st.duplicates++;
		return plan_emit_row(p, row, first, 1);
	}
	if ((uid = plan_new_uid(p)) == UINT64_MAX)
		return 0;
	if (dedupe_add(p->seen, h, (uint32_t)uid) != 0)
		plan_oom();
	p->st.unique++;
	if (plan_emit_row(p, row, uid, 0))
		return 1;

	flags = d->flags;
	if (addr.flags & ADDR_F_SMTPUTF8)
		flags |= VERDICT_F_SMTPUTF8;
	if (p->prm.lists != NULL && lists_is_role(p->prm.lists, addr.local))
		flags |= VERDICT_F_ROLE;
	if ((pe = malloc(sizeof(*pe) + klen + 1)) == NULL)
		plan_oom();
	memcpy(pe->text, addr.full, klen + 1);
	pe->next = NULL;
	pe->a.uid = uid;
	pe->a.address = pe->text;
	pe->a.line = row->line;
	pe->a.flags = flags;
	pe->a.suggestion = d->suggestion;

	if (d->state == DOM_FAILED) {
		int dead;

		p->st.dns_failed++;
		dead = plan_emit_verdict(p, &pe->a, d->fail_reason, d->fail_detail);
		free(pe);
		return dead;
	}
	if (d->tail != NULL)
		d->tail->next = pe;
	else
		d->head = pe;
	d->tail = pe;
	d->npend++;
	p->st.pending++;
	if (d->state == DOM_OK && plan_flush_dom(p, d, 0))
		return 1;
	if (p->st.pending >= p->prm.pending_max) {
		if (plan_relieve(p))
			return 1;
		if (p->st.pending >= p->prm.pending_max)
			p->blocked = 1;
	}
	plan_pump(p);
	return 0;
}

static void
plan_end_input(struct plan *p)
{
	intake_progress(p->in, &p->st.input_done, &p->st.input_size);
	intake_close(p->in);
	p->in = NULL;
	p->reading = 0;
	p->st.reading = 0;
	if (p->st.invalid > PLAN_REPORT_MAX && !p->prm.quiet)
		fprintf(stderr, "%llu more invalid addresses not listed here "
		    "(each has its own output row)\n",
		    (unsigned long long)(p->st.invalid - PLAN_REPORT_MAX));
	if (p->st.warnings > PLAN_REPORT_MAX && !p->prm.quiet)
		fprintf(stderr, "%llu more warnings not listed here\n",
		    (unsigned long long)(p->st.warnings - PLAN_REPORT_MAX));
}

static void
plan_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct plan *p = arg;
	struct intake_row row;
	int rc;

	for (int n = 0; n < PLAN_READ_SLICE; n++) {
		if (p->dead || p->paused || p->blocked || !p->reading)
			return;
		rc = intake_next(p->in, &row, p->error, sizeof(p->error));
		if (rc < 0 && p->prm.keep_going) {
			/* The input ends here; what was read is finished. */
			memcpy(p->input_error, p->error, sizeof(p->error));
			p->error[0] = '\0';
			rc = 0;
		}
		if (rc == 0) {
			plan_end_input(p);
			/* Everything is read: no batch can grow any more. */
			if (plan_relieve(p))
				return;
			plan_maybe_done(p);
			return;
		}
		if (rc < 0 || plan_add_row(p, &row))
			break;
		if (p->error[0] != '\0')
			break;
	}
	if (p->dead)
		return;
	if (p->error[0] != '\0') {
		plan_end_input(p);
		event_base_loopbreak(p->base);
		return;
	}
	intake_progress(p->in, &p->st.input_done, &p->st.input_size);
	plan_schedule_read(p);
}

static void
plan_schedule_read(struct plan *p)
{
	static const struct timeval now = { 0, 0 };

	/* A timer, not event_active(): the loop polls sockets (DNS answers)
	 * between two slices. */
	if (p->reading && !p->paused && !p->blocked && !p->dead)
		event_add(p->read_ev, &now);
}

/* ---- public --------------------------------------------------------- */

struct plan *
plan_new(struct event_base *base, struct dns *dns, const struct plan_callbacks *cb,
    const struct plan_params *params)
{
	struct plan *p;
	struct timespec ts;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->base = base;
	p->dns = dns;
	p->cb = *cb;
	if (params != NULL)
		p->prm = *params;
	if (p->prm.batch == 0)
		p->prm.batch = PLAN_BATCH_DEFAULT;
	if (p->prm.dns_window == 0)
		p->prm.dns_window = PLAN_DNS_WINDOW;
	if (p->prm.pending_max == 0)
		p->prm.pending_max = PLAN_PENDING_MAX;
	if (p->prm.pending_max < p->prm.batch)
		p->prm.pending_max = p->prm.batch;
	p->partial.pnext = p->partial.pprev = &p->partial;
	/* A per-run seed: hash flooding by a crafted list would only slow
	 * one run down, and collisions differ from run to run. */
	clock_gettime(CLOCK_REALTIME, &ts);
	p->seed = plan_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
	    ((uint64_t)getpid() << 40));
	if ((p->read_ev = evtimer_new(base, plan_on_read, p)) == NULL ||
	    (p->seen = dedupe_new()) == NULL ||
	    (p->batchv = calloc(p->prm.batch, sizeof(*p->batchv))) == NULL ||
	    (p->tmp = malloc(1u << 17)) == NULL) {
		if (p->read_ev != NULL)
			event_free(p->read_ev);
		dedupe_free(p->seen);
		free(p->batchv);
		free(p);
		return NULL;
	}
	return p;
}

int
plan_load(struct plan *p, const char *path, const struct intake_opts *opts,
    char *err, size_t errlen)
{
	if (p->loaded) {
		snprintf(err, errlen, "plan_load: already loaded");
		return -1;
	}
	if ((p->in = intake_open(path, opts, err, errlen)) == NULL)
		return -1;
	p->loaded = 1;
	p->reading = 1;
	p->st.reading = 1;
	plan_schedule_read(p);
	return 0;
}

void
plan_pause(struct plan *p)
{
	p->paused = 1;
}

void
plan_resume(struct plan *p)
{
	if (!p->paused)
		return;
	p->paused = 0;
	plan_schedule_read(p);
}

int
plan_fold_parse(const char *name)
{
	if (strcmp(name, "auto") == 0)
		return PLAN_FOLD_AUTO;
	if (strcmp(name, "always") == 0)
		return PLAN_FOLD_ALWAYS;
	if (strcmp(name, "never") == 0)
		return PLAN_FOLD_NEVER;
	return -1;
}

const char *
plan_error(const struct plan *p)
{
	return p->error[0] != '\0' ? p->error : NULL;
}

const char *
plan_input_error(const struct plan *p)
{
	return p->input_error[0] != '\0' ? p->input_error : NULL;
}

void
plan_get_stats(const struct plan *p, struct plan_stats *out)
{
	*out = p->st;
}

uint64_t
plan_uid_count(const struct plan *p)
{
	return p->next_uid;
}

static void
plan_destroy(struct plan *p)
{
	for (size_t i = 0; p->dslot != NULL && i <= p->dmask; i++) {
		struct plan_dom *d = p->dslot[i];
		struct plan_pend *e, *next;

		if (d == NULL)
			continue;
		for (e = d->head; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
		if (d->retry_ev != NULL)
			event_free(d->retry_ev);
		for (size_t h = 0; h < d->nhosts; h++)
			free(d->hosts[h].name);
		free(d->hosts);
		free(d->mx_domain);
		free(d->fail_detail);
		free(d);
	}
	if (p->read_ev != NULL)
		event_free(p->read_ev);
	intake_close(p->in);
	free(p->dslot);
	dedupe_free(p->seen);
	free(p->batchv);
	free(p->tmp);
	free(p);
}

void
plan_free(struct plan *p)
{
	if (p == NULL)
		return;
	p->dead = 1;
	/* no more caller callbacks from here on */
	if (p->read_ev != NULL) {
		event_free(p->read_ev);
		p->read_ev = NULL;
	}
	if (p->in_cb == 0 && p->inflight == 0)
		plan_destroy(p);
}
