/*
 * plan.c — read a list, check and dedupe its addresses, resolve each
 * domain's MX once, and hand the work out (see plan.h).
 *
 * Owns: every row read (line, original text, uid), one record per uid (a
 * unique valid address or an invalid row), one record per unique domain,
 * and the strings behind them (kept in a chunked arena: a million rows
 * must not mean millions of small allocations).  Dedupe and grouping use
 * open-addressing hash tables, so loading is linear in the input.
 *
 * Returns, always from the event loop (never from inside plan_load()):
 *   - cb.verdict for each invalid row (invalid_syntax, detail = the rule
 *     broken or intake's problem), delivered first, in input order;
 *   - per domain, as its MX answer arrives: cb.domain (DNS_OK) with all its
 *     addresses, or cb.verdict for each of them (no_mail_server with detail
 *     nxdomain / null_mx / no_mx_no_address; dns_error with c-ares' text);
 *   - cb.done once, after the last of those.
 * Exactly one of cb.verdict / cb.domain covers each uid.  cb.domain's
 * addrs array and mx result live for the call; the plan_addr records (and
 * rows) until plan_free().
 *
 * Dedupe key: the normalised address (address_parse(): domain lowercased,
 * local part kept as given, so "Bob@x" and "bob@x" are two addresses).
 * Invalid rows are never deduplicated: each is its own uid.
 *
 * MX lookups start at the end of plan_load(), at most PLAN_DNS_WINDOW at a
 * time (more are started as answers arrive): c-ares' 16-bit query ids and
 * real resolvers' rate limits make "every domain of a million-row list at
 * once" a bad idea, while a few thousand in flight keeps lookups from being
 * the bottleneck.
 *
 * Diagnostics on stderr: "line N: invalid address "TEXT": REASON" for each
 * invalid row (TEXT with non-printable bytes escaped as \xNN, cut at
 * PLAN_SHOW_MAX bytes), at most PLAN_REPORT_MAX such lines and then one
 * summary line; every invalid row still gets its verdict.
 *
 * Teardown: plan_free() may be called from inside a callback.  With MX
 * lookups still in flight the plan stays allocated (no callback is called
 * any more) until their answers have come back, because dns.h has no
 * cancel; if the dns object is freed first, that remainder leaks, which
 * only happens on an aborted run.
 */
#include "plan.h"
#include "address.h"
#include "log.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_DNS_WINDOW  1000
#define PLAN_REPORT_MAX  1000
#define PLAN_SHOW_MAX    200
#define PLAN_CHUNK       (256 * 1024)
#define PLAN_NONE        ((size_t)-1)

/* One uid: an address's public face plus plan's bookkeeping. */
struct plan_uid {
	struct plan_addr a;
	size_t dom;                     /* domain index; PLAN_NONE when invalid */
	size_t next;                    /* next uid of the same domain */
	const char *detail;             /* invalid rows: the rule broken */
};

struct plan_dom {
	struct plan *p;
	const char *name;
	size_t head, tail, n;           /* uids, in order of first appearance */
};

struct plan_chunk {
	struct plan_chunk *next;
	size_t used, size;
	char data[];
};

/* Open addressing; a slot holds index + 1, 0 = empty. */
struct plan_tab {
	size_t *slot;
	size_t mask;
	size_t n;
};

struct plan {
	struct event_base *base;
	struct dns *dns;
	struct plan_callbacks cb;
	struct event *kick;

	struct plan_row *rows;
	size_t nrows, rows_cap;
	struct plan_uid *uids;
	size_t nuids, uids_cap;
	struct plan_dom *doms;
	size_t ndoms, doms_cap;
	struct plan_tab addr_tab, dom_tab;
	struct plan_chunk *arena;

	struct plan_stats st;
	size_t next_dom;                /* next domain to look up */
	size_t inflight;                /* MX lookups not yet answered */
	int loaded, invalid_done, done_sent;
	int in_cb;                      /* depth of caller callbacks */
	int dead;                       /* plan_free() called */
};

static void plan_destroy(struct plan *);

static void
plan_oom(void)
{
	log_error("out of memory", "module=plan");
	abort();
}

/* ---- storage -------------------------------------------------------- */

static const char *
plan_strndup(struct plan *p, const char *s, size_t len)
{
	struct plan_chunk *c = p->arena;
	char *out;

	if (c == NULL || c->size - c->used < len + 1) {
		size_t size = len + 1 > PLAN_CHUNK ? len + 1 : PLAN_CHUNK;

		if ((c = malloc(sizeof(*c) + size)) == NULL)
			plan_oom();
		c->size = size;
		c->used = 0;
		if (p->arena != NULL && size > PLAN_CHUNK) {
			/* an oversized string: keep the current chunk in front */
			c->next = p->arena->next;
			p->arena->next = c;
		} else {
			c->next = p->arena;
			p->arena = c;
		}
	}
	out = c->data + c->used;
	memcpy(out, s, len);
	out[len] = '\0';
	c->used += len + 1;
	return out;
}

static void *
plan_grow(void *v, size_t *cap, size_t n, size_t size)
{
	size_t ncap;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : 1024;
	if ((v = realloc(v, ncap * size)) == NULL)
		plan_oom();
	*cap = ncap;
	return v;
}

/* FNV-1a: local input, no need for a keyed hash. */
static size_t
plan_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)(h ^ (h >> 32));
}

typedef const char *(*plan_key_fn)(const struct plan *, size_t);

static const char *
plan_addr_key(const struct plan *p, size_t i)
{
	return p->uids[i].a.address;
}

static const char *
plan_dom_key(const struct plan *p, size_t i)
{
	return p->doms[i].name;
}

/* The slot for key: holding it, or the empty one where it would go. */
static size_t *
plan_tab_slot(const struct plan *p, const struct plan_tab *t, const char *key,
    plan_key_fn fn)
{
	size_t i = plan_hash(key) & t->mask;

	while (t->slot[i] != 0 && strcmp(fn(p, t->slot[i] - 1), key) != 0)
		i = (i + 1) & t->mask;
	return &t->slot[i];
}

static void
plan_tab_grow(struct plan *p, struct plan_tab *t, plan_key_fn fn)
{
	struct plan_tab old = *t;
	size_t cap = old.slot ? (old.mask + 1) * 2 : 1024;

	/* load factor <= 1/2 keeps probe chains short */
	if (old.slot != NULL && (t->n + 1) * 2 <= old.mask + 1)
		return;
	if ((t->slot = calloc(cap, sizeof(*t->slot))) == NULL)
		plan_oom();
	t->mask = cap - 1;
	for (size_t i = 0; old.slot != NULL && i <= old.mask; i++)
		if (old.slot[i] != 0)
			*plan_tab_slot(p, t, fn(p, old.slot[i] - 1), fn) = old.slot[i];
	free(old.slot);
}

/* ---- reading -------------------------------------------------------- */

/* Quote raw text for a diagnostic: printable ASCII and well-formed UTF-8
 * (U+00A0 and above) as is; everything else, '"' and '\' escaped. */
static void
plan_show(char *out, size_t outlen, const char *s, size_t len)
{
	size_t o = 0, i = 0;

	while (i < len && o + 8 < outlen) {
		unsigned char c = (unsigned char)s[i];
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
			/* C1 controls U+0080..U+009F are C2 80..C2 9F */
			if (k == n && !(c == 0xc2 && (unsigned char)s[i + 1] < 0xa0) &&
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

	if (p->st.invalid > PLAN_REPORT_MAX)
		return;
	plan_show(shown, sizeof(shown), text, len);
	fprintf(stderr, "line %llu: invalid address \"%s\": %s\n",
	    (unsigned long long)line, shown, why);
}

static size_t
plan_new_uid(struct plan *p, const char *address, uint64_t line, unsigned flags)
{
	struct plan_uid *u;

	p->uids = plan_grow(p->uids, &p->uids_cap, p->nuids, sizeof(*p->uids));
	u = &p->uids[p->nuids];
	memset(u, 0, sizeof(*u));
	u->a.uid = p->nuids;
	u->a.address = address;
	u->a.line = line;
	u->a.flags = flags;
	u->dom = PLAN_NONE;
	u->next = PLAN_NONE;
	return p->nuids++;
}

static size_t
plan_invalid(struct plan *p, const struct intake_row *row, const char *detail,
    const char *why)
{
	const char *s = row->text;
	size_t len = row->len, uid;

	p->st.invalid++;
	plan_report(p, row->line, row->text, row->len, why);
	while (len > 0 && isspace((unsigned char)*s))
		s++, len--;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	uid = plan_new_uid(p, plan_strndup(p, s, len), row->line, 0);
	p->uids[uid].detail = detail;
	return uid;
}

static size_t
plan_domain_of(struct plan *p, const char *domain)
{
	struct plan_dom *d;
	size_t *slot;

	plan_tab_grow(p, &p->dom_tab, plan_dom_key);
	slot = plan_tab_slot(p, &p->dom_tab, domain, plan_dom_key);
	if (*slot != 0)
		return *slot - 1;
	p->doms = plan_grow(p->doms, &p->doms_cap, p->ndoms, sizeof(*p->doms));
	d = &p->doms[p->ndoms];
	d->p = p;
	d->name = plan_strndup(p, domain, strlen(domain));
	d->head = d->tail = PLAN_NONE;
	d->n = 0;
	p->dom_tab.n++;
	*slot = ++p->ndoms;
	return p->ndoms - 1;
}

/* One row: its uid, new or the first occurrence's. */
static size_t
plan_add_row(struct plan *p, const struct intake_row *row, const char **input)
{
	struct address addr;
	enum addr_err e;
	struct plan_dom *d;
	size_t *slot, uid, di;
	char why[256];

	if (row->problem != NULL) {
		uid = plan_invalid(p, row, plan_strndup(p, row->problem,
		    strlen(row->problem)), row->problem);
		*input = plan_strndup(p, row->text, row->len);
		return uid;
	}
	if ((e = address_parse(row->text, row->len, &addr)) != ADDR_OK) {
		/* "The address has no '@' sign (no_at)" */
		snprintf(why, sizeof(why), "%s", address_err_text(e));
		if (why[0] != '\0' && why[strlen(why) - 1] == '.')
			why[strlen(why) - 1] = '\0';
		snprintf(why + strlen(why), sizeof(why) - strlen(why), " (%s)",
		    address_err_name(e));
		uid = plan_invalid(p, row, address_err_name(e), why);
		*input = plan_strndup(p, row->text, row->len);
		return uid;
	}

	plan_tab_grow(p, &p->addr_tab, plan_addr_key);
	slot = plan_tab_slot(p, &p->addr_tab, addr.full, plan_addr_key);
	if (*slot != 0) {
		uid = *slot - 1;
		p->st.duplicates++;
		/* the common case: the row is exactly the address, share it */
		if (strcmp(row->text, p->uids[uid].a.address) == 0)
			*input = p->uids[uid].a.address;
		else
			*input = plan_strndup(p, row->text, row->len);
		return uid;
	}
	p->st.unique++;
	uid = plan_new_uid(p, plan_strndup(p, addr.full, strlen(addr.full)),
	    row->line, (addr.flags & ADDR_F_SMTPUTF8) ? VERDICT_F_SMTPUTF8 : 0);
	p->addr_tab.n++;
	*slot = uid + 1;
	*input = strcmp(row->text, addr.full) == 0 ? p->uids[uid].a.address :
	    plan_strndup(p, row->text, row->len);

	di = plan_domain_of(p, addr.domain);
	d = &p->doms[di];
	p->uids[uid].dom = di;
	if (d->tail == PLAN_NONE)
		d->head = uid;
	else
		p->uids[d->tail].next = uid;
	d->tail = uid;
	d->n++;
	return uid;
}

/* ---- answers -------------------------------------------------------- */

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

static void
plan_maybe_done(struct plan *p)
{
	if (p->done_sent || !p->invalid_done || p->st.resolved < p->st.domains)
		return;
	p->done_sent = 1;
	if (p->cb.done != NULL) {
		p->in_cb++;
		p->cb.done(p->cb.arg);
		p->in_cb--;
		(void)plan_after_cb(p);
	}
}

static int
plan_verdict(struct plan *p, struct plan_uid *u, enum verdict_reason r,
    const char *detail, unsigned flags)
{
	struct verdict v;

	verdict_init(&v, r);
	snprintf(v.detail, sizeof(v.detail), "%s", detail);
	v.flags = u->a.flags | flags;
	if (p->cb.verdict != NULL) {
		p->in_cb++;
		p->cb.verdict(p->cb.arg, &u->a, &v);
		p->in_cb--;
	}
	return plan_after_cb(p);
}

static void
plan_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct plan *p = arg;

	for (size_t i = 0; i < p->nuids; i++) {
		struct plan_uid *u = &p->uids[i];

		if (u->dom == PLAN_NONE &&
		    plan_verdict(p, u, VR_INVALID_SYNTAX, u->detail, 0))
			return;
	}
	p->invalid_done = 1;
	plan_maybe_done(p);
}

static void plan_pump(struct plan *);

static void
plan_on_mx(void *arg, const char *domain, const struct dns_mx_result *r)
{
	struct plan_dom *d = arg;
	struct plan *p = d->p;
	const char *detail = NULL;
	enum verdict_reason reason = VR_NO_MAIL_SERVER;
	size_t uid;

	p->inflight--;
	if (plan_after_cb(p))
		return;
	p->st.resolved++;
	switch (r->status) {
	case DNS_OK: {
		const struct plan_addr **addrs;
		struct plan_domain pd;
		size_t i = 0;

		if ((addrs = calloc(d->n, sizeof(*addrs))) == NULL)
			plan_oom();
		for (uid = d->head; uid != PLAN_NONE; uid = p->uids[uid].next) {
			if (r->implicit)
				p->uids[uid].a.flags |= VERDICT_F_IMPLICIT_MX;
			addrs[i++] = &p->uids[uid].a;
		}
		pd.domain = d->name;
		pd.mx = r;
		pd.naddrs = d->n;
		pd.addrs = addrs;
		if (p->cb.domain != NULL) {
			p->in_cb++;
			p->cb.domain(p->cb.arg, &pd);
			p->in_cb--;
		}
		free(addrs);
		if (plan_after_cb(p))
			return;
		break;
	}
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
		reason = VR_DNS_ERROR;
		detail = r->error[0] != '\0' ? r->error : "dns_error";
		break;
	}
	if (detail != NULL)
		for (uid = d->head; uid != PLAN_NONE; uid = p->uids[uid].next)
			if (plan_verdict(p, &p->uids[uid], reason, detail, 0))
				return;
	plan_pump(p);
	plan_maybe_done(p);
}

static void
plan_pump(struct plan *p)
{
	while (p->inflight < PLAN_DNS_WINDOW && p->next_dom < p->ndoms) {
		struct plan_dom *d = &p->doms[p->next_dom++];

		p->inflight++;
		dns_resolve_mx(p->dns, d->name, plan_on_mx, d);
	}
}

/* ---- public --------------------------------------------------------- */

struct plan *
plan_new(struct event_base *base, struct dns *dns, const struct plan_callbacks *cb)
{
	struct plan *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->base = base;
	p->dns = dns;
	p->cb = *cb;
	if ((p->kick = event_new(base, -1, 0, plan_on_kick, p)) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

int
plan_load(struct plan *p, const char *path, const struct intake_opts *opts,
    char *err, size_t errlen)
{
	struct intake *in;
	struct intake_row row;
	struct plan_row *pr;
	int rc;

	if (p->loaded) {
		snprintf(err, errlen, "plan_load: already loaded");
		return -1;
	}
	p->loaded = 1;
	if ((in = intake_open(path, opts, err, errlen)) == NULL)
		return -1;
	while ((rc = intake_next(in, &row, err, errlen)) == 1) {
		p->rows = plan_grow(p->rows, &p->rows_cap, p->nrows, sizeof(*p->rows));
		pr = &p->rows[p->nrows++];
		pr->line = row.line;
		pr->uid = plan_add_row(p, &row, &pr->input);
		p->st.rows++;
	}
	intake_close(in);
	if (rc == -1)
		return -1;
	if (p->st.invalid > PLAN_REPORT_MAX)
		fprintf(stderr, "%llu more invalid addresses not listed here "
		    "(each has its own output row)\n",
		    (unsigned long long)(p->st.invalid - PLAN_REPORT_MAX));
	/* The address table is not needed past this point. */
	free(p->addr_tab.slot);
	memset(&p->addr_tab, 0, sizeof(p->addr_tab));
	free(p->dom_tab.slot);
	memset(&p->dom_tab, 0, sizeof(p->dom_tab));

	p->st.domains = p->ndoms;
	/* Invalid verdicts and (with no domains) done come from the loop. */
	event_active(p->kick, EV_TIMEOUT, 0);
	plan_pump(p);
	return 0;
}

void
plan_get_stats(const struct plan *p, struct plan_stats *out)
{
	*out = p->st;
}

size_t
plan_row_count(const struct plan *p)
{
	return p->nrows;
}

void
plan_get_row(const struct plan *p, size_t i, struct plan_row *out)
{
	if (i >= p->nrows) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = p->rows[i];
}

size_t
plan_uid_count(const struct plan *p)
{
	return p->nuids;
}

const struct plan_addr *
plan_get_addr(const struct plan *p, size_t uid)
{
	return uid < p->nuids ? &p->uids[uid].a : NULL;
}

static void
plan_destroy(struct plan *p)
{
	struct plan_chunk *c, *next;

	if (p->kick != NULL)
		event_free(p->kick);
	for (c = p->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(p->addr_tab.slot);
	free(p->dom_tab.slot);
	free(p->rows);
	free(p->uids);
	free(p->doms);
	free(p);
}

void
plan_free(struct plan *p)
{
	if (p == NULL)
		return;
	p->dead = 1;
	/* no more caller callbacks from here on */
	if (p->kick != NULL) {
		event_free(p->kick);
		p->kick = NULL;
	}
	if (p->in_cb == 0 && p->inflight == 0)
		plan_destroy(p);
}
