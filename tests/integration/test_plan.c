/*
 * test_plan.c — coordinator/plan.c over a real CSV file and the test
 * world's dnsmasq.
 *
 * Needs MXSIFT_TEST_DNS=HOST:PORT (scripts/services); exits 77 (skip)
 * without it.  Asserts: every row maps to one uid, every uid is covered by
 * exactly one cb.verdict / cb.domain, cb.done comes once, last, and from the
 * loop; duplicates (also by domain case and surrounding blanks) share the
 * first row's uid, invalid rows each get their own; each domain's outcome
 * follows its DNS; stats add up; invalid rows are reported on stderr with
 * control bytes escaped; plan_free() from a callback stops everything.
 * Also: reference lists (folding auto/never/always, disposable/role/free
 * flags, typo suggestions), batches and the pending bound on a small list
 * and on a 20,000-row one, and SERVFAIL retried twice before dns_error
 * (against a fake resolver in the test).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "lists.h"
#include "plan.h"

static const char *server;

/* What each data row must come to.  reason VR_ACCEPTED here means "handed
 * to cb.domain" and detail is then the domain; dup is the index of the row
 * whose uid it must share, or -1 for a new uid. */
static const struct {
	const char *field;
	enum verdict_reason reason;
	const char *detail;
	int dup;
	const char *mx_domain;   /* cb.domain rows */
} rows[] = {
	/*  0 */ { "alice@alpha.test", VR_ACCEPTED, "alpha.test", -1, "alpha.test" },
	/*  1 */ { "bob@alpha.test", VR_ACCEPTED, "alpha.test", -1, "alpha.test" },
	/*  2 */ { "alice@ALPHA.TEST", VR_ACCEPTED, "alpha.test", 0, NULL },
	/*  3 */ { "BOB@Alpha.Test", VR_ACCEPTED, "alpha.test", -1, "alpha.test" },
	/*  4 */ { "dave@beta.test", VR_ACCEPTED, "beta.test", -1, "beta.test" },
	/*  5 */ { "gina@gamma.test", VR_ACCEPTED, "gamma.test", -1, "hosting.test" },
	/*  6 */ { "dan@delta.test", VR_ACCEPTED, "delta.test", -1, "hosting.test" },
	/*  7 */ { "gina@GAMMA.test", VR_ACCEPTED, "gamma.test", 5, NULL },
	/*  8 */ { "frank@implicit.test", VR_ACCEPTED, "implicit.test", -1, "implicit.test" },
	/*  9 */ { "gary@failover.test", VR_ACCEPTED, "failover.test", -1, "failover.test" },
	/* 10 */ { "someone@nullmx.test", VR_NO_MAIL_SERVER, "null_mx", -1, NULL },
	/* 11 */ { "other@NullMX.test", VR_NO_MAIL_SERVER, "null_mx", -1, NULL },
	/* 12 */ { "someone@nodata.test", VR_NO_MAIL_SERVER, "no_mx_no_address", -1, NULL },
	/* 13 */ { "someone@missing.test", VR_NO_MAIL_SERVER, "nxdomain", -1, NULL },
	/* 14 */ { "x@MISSING.TEST", VR_NO_MAIL_SERVER, "nxdomain", -1, NULL },
	/* 15 */ { "not-an-address", VR_INVALID_SYNTAX, "no_at", -1, NULL },
	/* 16 */ { "@alpha.test", VR_INVALID_SYNTAX, "local_empty", -1, NULL },
	/* 17 */ { "", VR_INVALID_SYNTAX, "empty", -1, NULL },
	/* 18 */ { "alice@[127.0.0.10]", VR_INVALID_SYNTAX, "ip_literal", -1, NULL },
	/* 19 */ { " carol@alpha.test ", VR_ACCEPTED, "alpha.test", -1, "alpha.test" },
	/* 20 */ { "carol@alpha.test", VR_ACCEPTED, "alpha.test", 19, NULL },
	/* 21 */ { "alice,x@alpha.test", VR_INVALID_SYNTAX, "local_bad_char", -1, NULL },
	/* 22 */ { "bad\001ctl@alpha.test", VR_INVALID_SYNTAX, "control_char", -1, NULL },
	/* 23 */ { "dave@beta.test", VR_ACCEPTED, "beta.test", 4, NULL },
	/* 24 */ { "erin@BETA.TEST", VR_ACCEPTED, "beta.test", -1, "beta.test" },
	/* 25 */ { "two\nlines@alpha.test", VR_INVALID_SYNTAX, "control_char", -1, NULL },
	/* 26 */ { "not-an-address", VR_INVALID_SYNTAX, "no_at", -1, NULL },  /* not deduped */
	/* 27 */ { "alice@alpha", VR_INVALID_SYNTAX, "domain_no_dot", -1, NULL },
	/* 28 */ { "nope@failover.test", VR_ACCEPTED, "failover.test", -1, "failover.test" },
	/* 29 */ { "frank@Implicit.Test", VR_ACCEPTED, "implicit.test", 8, NULL },
	/* 30 */ { "someone@missing.test", VR_NO_MAIL_SERVER, "nxdomain", 13, NULL },
	/* 31 */ { "dan@delta.test", VR_ACCEPTED, "delta.test", 6, NULL },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* per uid: how it was covered */
struct cover {
	int verdicts, domains;
	char address[256];
	uint64_t line;
	unsigned flags;
	char suggestion[256];
	struct verdict v;
	char domain[256];
	char mx_domain[256];
	int implicit_flag;
};

struct seen_row {
	uint64_t line, uid;
	char input[128];
	int dup;
};

struct run {
	struct event_base *base;
	struct dns *dns;
	struct plan *plan;
	struct plan_params prm;
	struct cover cov[64];
	struct seen_row rows[64];
	size_t nrows;
	uint64_t max_pending;      /* largest plan_stats.pending seen in a callback */
	int done, late;            /* late: a callback after done */
	int ndomain_cbs;
	int free_in_cb;            /* plan_free() from the first callback */
	const char *errpath;       /* stderr of the run goes here */
	int count_only;            /* big lists: count coverage, no per-uid table */
	uint64_t covered;
	int calls;
};

static void
note_pending(struct run *r)
{
	struct plan_stats st;

	plan_get_stats(r->plan, &st);
	if (st.pending > r->max_pending)
		r->max_pending = st.pending;
}

static void
cover_addr(struct cover *c, const struct plan_addr *a)
{
	snprintf(c->address, sizeof(c->address), "%s", a->address);
	c->line = a->line;
	c->flags = a->flags;
	snprintf(c->suggestion, sizeof(c->suggestion), "%s", a->suggestion);
}

static void
on_row(void *arg, const struct plan_row *pr)
{
	struct run *r = arg;
	struct seen_row *sr;

	r->late += r->done;
	if (r->count_only)
		return;
	assert_true(r->nrows < 64);
	assert_int_equal(strlen(pr->input), pr->len);
	sr = &r->rows[r->nrows++];
	sr->line = pr->line;
	sr->uid = pr->uid;
	sr->dup = pr->duplicate;
	snprintf(sr->input, sizeof(sr->input), "%s", pr->input);
	/* a uid is introduced before anything covers it */
	if (pr->uid < 64 && !pr->duplicate)
		assert_int_equal(r->cov[pr->uid].verdicts + r->cov[pr->uid].domains, 0);
}

static void
on_verdict(void *arg, const struct plan_addr *a, const struct verdict *v)
{
	struct run *r = arg;

	r->calls++;
	r->late += r->done;
	r->covered++;
	if (r->count_only) {
		note_pending(r);
		return;
	}
	assert_true(a->uid < 64);
	r->cov[a->uid].verdicts++;
	r->cov[a->uid].v = *v;
	cover_addr(&r->cov[a->uid], a);
	note_pending(r);
	if (r->free_in_cb) {
		plan_free(r->plan);
		r->plan = NULL;
		r->free_in_cb = 0;
	}
}

static void
on_domain(void *arg, const struct plan_domain *d)
{
	struct run *r = arg;

	r->calls++;
	r->late += r->done;
	r->ndomain_cbs++;
	note_pending(r);
	assert_int_equal(d->mx->status, DNS_OK);
	assert_true(d->naddrs > 0);
	assert_true(d->naddrs <= (r->prm.batch ? r->prm.batch : 50));
	r->covered += d->naddrs;
	if (r->count_only)
		return;
	for (size_t i = 0; i < d->naddrs; i++) {
		struct cover *c;

		assert_true(d->addrs[i]->uid < 64);
		c = &r->cov[d->addrs[i]->uid];
		c->domains++;
		cover_addr(c, d->addrs[i]);
		snprintf(c->domain, sizeof(c->domain), "%s", d->domain);
		snprintf(c->mx_domain, sizeof(c->mx_domain), "%s", d->mx->mx_domain);
		c->implicit_flag = (d->addrs[i]->flags & VERDICT_F_IMPLICIT_MX) != 0;
		/* the address handed out is the normalised one */
		assert_non_null(strchr(d->addrs[i]->address, '@'));
		assert_string_equal(strchr(d->addrs[i]->address, '@') + 1, d->domain);
	}
	if (r->free_in_cb) {
		plan_free(r->plan);
		r->plan = NULL;
		r->free_in_cb = 0;
	}
}

static void
on_done(void *arg)
{
	struct run *r = arg;

	r->calls++;
	r->done++;
}

static void
csv_write(const char *path)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "email,name\r\n");
	for (size_t i = 0; i < NROWS; i++) {
		fputc('"', f);
		for (const char *s = rows[i].field; *s != '\0'; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fprintf(f, "\",row %zu\r\n", i);
	}
	fclose(f);
}

static struct dns *
dns_or_fail(struct event_base *base, const char *srv)
{
	char err[256];
	struct dns *d = dns_new(base, srv, err, sizeof(err));

	if (d == NULL)
		fail_msg("dns_new(%s): %s", srv, err);
	return d;
}

/* Load path with stderr captured into errpath; 0 or -1 as plan_load. */
static int
load_capture(struct run *r, const char *path, const char *errpath)
{
	const struct plan_callbacks cb = { on_row, on_verdict, on_domain, on_done, r };
	char err[256];
	int saved, fd, rc;

	r->nrows = 0;
	r->max_pending = 0;
	r->plan = plan_new(r->base, r->dns, &cb, &r->prm);
	assert_non_null(r->plan);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	r->errpath = errpath;
	rc = plan_load(r->plan, path, NULL, err, sizeof(err));
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	if (rc == -1)
		fprintf(stderr, "plan_load: %s\n", err);
	/* nothing may be called from inside plan_load() */
	assert_int_equal(r->calls, 0);
	assert_int_equal(r->nrows, 0);
	return rc;
}

static void
run_loop(struct run *r)
{
	time_t t0 = time(NULL);
	int fd, saved;

	/* invalid rows are reported on stderr from the loop: keep it quiet */
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(r->errpath, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	while (!r->done && time(NULL) - t0 < 60)
		event_base_loop(r->base, EVLOOP_ONCE);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	/* a little longer: nothing may follow done */
	event_base_loop(r->base, EVLOOP_NONBLOCK);
	assert_int_equal(r->done, 1);
	assert_int_equal(r->late, 0);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	static char buf[65536];
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static char tmpdir[] = "/tmp/test_plan.XXXXXX";

static void
path_in_tmp(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmpdir, name);
}

static void
test_plan_world(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct plan_stats st;
	const struct seen_row *row;
	char csv[256], errs[256], want[256];
	size_t uid_of[NROWS], nuids;
	uint64_t line = 2;
	const char *stderr_text;
	size_t unique = 0, invalid = 0, dups = 0;

	path_in_tmp(csv, sizeof(csv), "world.csv");
	path_in_tmp(errs, sizeof(errs), "world.err");
	csv_write(csv);
	r->base = event_base_new();
	r->dns = dns_or_fail(r->base, server);
	assert_int_equal(load_capture(r, csv, errs), 0);
	run_loop(r);

	/* rows: one per data row, line numbers where each row starts */
	assert_int_equal(r->nrows, NROWS);
	nuids = plan_uid_count(r->plan);
	for (size_t i = 0; i < NROWS; i++) {
		row = &r->rows[i];
		assert_int_equal(row->line, line);
		assert_string_equal(row->input, rows[i].field);
		assert_true(row->uid < nuids);
		assert_int_equal(row->dup, rows[i].dup >= 0);
		uid_of[i] = row->uid;
		for (const char *s = rows[i].field; *s != '\0'; s++)
			line += *s == '\n';
		line++;
		if (rows[i].dup >= 0) {
			assert_int_equal(row->uid, uid_of[rows[i].dup]);
			dups++;
		} else {
			for (size_t j = 0; j < i; j++)
				if (uid_of[j] == row->uid)
					fail_msg("row %zu shares uid %zu with row %zu", i,
					    (size_t)row->uid, j);
			if (rows[i].reason == VR_INVALID_SYNTAX)
				invalid++;
			else
				unique++;
		}
	}

	/* every uid covered exactly once, the way its row says */
	for (size_t u = 0; u < nuids; u++)
		if (r->cov[u].verdicts + r->cov[u].domains != 1)
			fail_msg("uid %zu (%s): %d verdicts, %d domains", u, r->cov[u].address,
			    r->cov[u].verdicts, r->cov[u].domains);
	for (size_t i = 0; i < NROWS; i++) {
		const struct cover *c = &r->cov[uid_of[i]];

		if (rows[i].reason == VR_ACCEPTED) {
			if (c->domains != 1)
				fail_msg("row %zu (%s): not handed out as a domain", i,
				    rows[i].field);
			assert_string_equal(c->domain, rows[i].detail);
			if (rows[i].mx_domain != NULL)
				assert_string_equal(c->mx_domain, rows[i].mx_domain);
			assert_int_equal(c->implicit_flag,
			    strcmp(rows[i].detail, "implicit.test") == 0);
		} else {
			if (c->verdicts != 1)
				fail_msg("row %zu (%s): no verdict", i, rows[i].field);
			assert_int_equal(c->v.reason, rows[i].reason);
			assert_int_equal(c->v.status, VS_UNDELIVERABLE);
			if (strcmp(c->v.detail, rows[i].detail) != 0)
				fail_msg("row %zu (%s): detail %s, want %s", i,
				    rows[i].field, c->v.detail, rows[i].detail);
		}
		/* first line it appeared on */
		assert_int_equal(c->line,
		    r->rows[rows[i].dup >= 0 ? (size_t)rows[i].dup : i].line);
	}
	/* normalised address and trimmed invalid text */
	assert_string_equal(r->cov[uid_of[2]].address, "alice@alpha.test");
	assert_string_equal(r->cov[uid_of[3]].address, "BOB@alpha.test");
	assert_string_equal(r->cov[uid_of[19]].address, "carol@alpha.test");
	assert_string_equal(r->cov[uid_of[15]].address, "not-an-address");
	assert_string_equal(r->rows[19].input, " carol@alpha.test ");

	/* 6 domains resolved OK, each handed out once */
	assert_int_equal(r->ndomain_cbs, 6);

	plan_get_stats(r->plan, &st);
	assert_int_equal(st.rows, NROWS);
	assert_int_equal(st.invalid, invalid);
	assert_int_equal(st.duplicates, dups);
	assert_int_equal(st.unique, unique);
	assert_int_equal(st.rows, st.unique + st.invalid + st.duplicates);
	assert_int_equal(nuids, st.unique + st.invalid);
	/* alpha beta gamma delta implicit failover nullmx nodata missing */
	assert_int_equal(st.domains, 9);
	assert_int_equal(st.resolved, 9);

	/* stderr: one line per invalid row, control bytes escaped */
	stderr_text = slurp(errs);
	for (size_t i = 0, l = 2; i < NROWS; i++) {
		row = &r->rows[i];
		snprintf(want, sizeof(want), "line %llu: invalid address \"",
		    (unsigned long long)row->line);
		if ((strstr(stderr_text, want) != NULL) !=
		    (rows[i].reason == VR_INVALID_SYNTAX))
			fail_msg("stderr and row %zu (line %zu) disagree:\n%s", i, l,
			    stderr_text);
	}
	assert_non_null(strstr(stderr_text, "invalid address \"bad\\x01ctl@alpha.test\""));
	assert_non_null(strstr(stderr_text, "invalid address \"two\\x0alines@alpha.test\""));
	assert_non_null(strstr(stderr_text, "(no_at)\n"));
	for (const char *s = stderr_text; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 && *s != '\n')
			fail_msg("raw control byte 0x%02x on stderr", *s);

	plan_free(r->plan);
	dns_free(r->dns);
	event_base_free(r->base);
	free(r);
}

/* No valid address at all: done still comes, from the loop. */
static void
test_plan_no_domains(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	char path[256], errs[256];
	FILE *f;
	struct plan_stats st;

	path_in_tmp(path, sizeof(path), "bad.txt");
	path_in_tmp(errs, sizeof(errs), "bad.err");
	f = fopen(path, "w");
	fprintf(f, "not-an-address\nalso bad@\n");
	fclose(f);
	r->base = event_base_new();
	r->dns = dns_or_fail(r->base, server);
	assert_int_equal(load_capture(r, path, errs), 0);
	assert_int_equal(r->done, 0);
	run_loop(r);
	assert_int_equal(r->cov[0].verdicts, 1);
	assert_int_equal(r->cov[1].verdicts, 1);
	plan_get_stats(r->plan, &st);
	assert_int_equal(st.rows, 2);
	assert_int_equal(st.invalid, 2);
	assert_int_equal(st.domains, 0);
	plan_free(r->plan);

	/* an empty file too */
	memset(r->cov, 0, sizeof(r->cov));
	r->done = r->calls = 0;
	f = fopen(path, "w");
	fclose(f);
	assert_int_equal(load_capture(r, path, errs), 0);
	run_loop(r);
	assert_int_equal(r->nrows, 0);
	assert_int_equal(plan_uid_count(r->plan), 0);
	plan_free(r->plan);

	dns_free(r->dns);
	event_base_free(r->base);
	free(r);
}

/* A resolver that answers every query with SERVFAIL, counting them. */
struct servfail {
	int fd;
	struct event *ev;
	int queries;
};

static void
servfail_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct servfail *sf = arg;
	unsigned char buf[512];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	ssize_t n;

	while ((n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
	    &flen)) >= 12) {
		sf->queries++;
		buf[2] = (unsigned char)(0x80 | (buf[2] & 0x79));   /* QR, keep opcode/RD */
		buf[3] = (unsigned char)((buf[3] & 0x70) | 0x80 | 2); /* RA, RCODE 2 */
		memset(buf + 6, 0, 6);                                  /* no records */
		(void)sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
		flen = sizeof(from);
	}
}

/* SERVFAIL: plan asks again (twice) before unknown/dns_error. */
static void
test_plan_servfail_retry(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct servfail sf = { 0 };
	struct sockaddr_in sin = { 0 };
	socklen_t slen = sizeof(sin);
	char path[256], errs[256], srv[64];
	FILE *f;

	r->base = event_base_new();
	sf.fd = socket(AF_INET, SOCK_DGRAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(sf.fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(sf.fd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", ntohs(sin.sin_port));
	sf.ev = event_new(r->base, sf.fd, EV_READ | EV_PERSIST, servfail_on_read, &sf);
	event_add(sf.ev, NULL);

	path_in_tmp(path, sizeof(path), "servfail.txt");
	path_in_tmp(errs, sizeof(errs), "servfail.err");
	f = fopen(path, "w");
	fprintf(f, "alice@alpha.test\nbob@alpha.test\n");
	fclose(f);
	r->dns = dns_or_fail(r->base, srv);
	assert_int_equal(load_capture(r, path, errs), 0);
	run_loop(r);
	for (size_t u = 0; u < 2; u++) {
		assert_int_equal(r->cov[u].verdicts, 1);
		assert_int_equal(r->cov[u].v.reason, VR_DNS_ERROR);
	}
	/* one domain: the first lookup and two retries, whatever c-ares
	 * itself repeats per lookup */
	assert_true(sf.queries >= 3);
	assert_int_equal(sf.queries % 3, 0);
	plan_free(r->plan);
	dns_free(r->dns);
	event_free(sf.ev);
	close(sf.fd);
	event_base_free(r->base);
	free(r);
}

/* Resolver unreachable: every address gets unknown/dns_error with text. */
static void
test_plan_dns_error(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sockaddr_in sin = { 0 };
	socklen_t slen = sizeof(sin);
	char path[256], errs[256], srv[64];
	FILE *f;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	close(fd);
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", ntohs(sin.sin_port));

	path_in_tmp(path, sizeof(path), "err.txt");
	path_in_tmp(errs, sizeof(errs), "err.err");
	f = fopen(path, "w");
	fprintf(f, "alice@alpha.test\nbob@beta.test\ncarol@alpha.test\n");
	fclose(f);
	r->base = event_base_new();
	r->dns = dns_or_fail(r->base, srv);
	assert_int_equal(load_capture(r, path, errs), 0);
	run_loop(r);
	for (size_t u = 0; u < 3; u++) {
		assert_int_equal(r->cov[u].verdicts, 1);
		assert_int_equal(r->cov[u].v.status, VS_UNKNOWN);
		assert_int_equal(r->cov[u].v.reason, VR_DNS_ERROR);
		assert_true(r->cov[u].v.detail[0] != '\0');
	}
	assert_int_equal(r->ndomain_cbs, 0);
	plan_free(r->plan);
	dns_free(r->dns);
	event_base_free(r->base);
	free(r);
}

/* plan_free() from inside the first callback (an invalid row's verdict,
 * then with valid rows only a domain): nothing more is called, and nothing
 * is touched after (ASan). */
static void
free_in_callback(const char *name, int with_invalid)
{
	struct run *r = calloc(1, sizeof(*r));
	char path[256], errs[256];
	time_t t0;
	FILE *f;

	path_in_tmp(path, sizeof(path), name);
	path_in_tmp(errs, sizeof(errs), "free.err");
	if (with_invalid)
		csv_write(path);
	else {
		f = fopen(path, "w");
		fprintf(f, "alice@alpha.test\ndave@beta.test\ngina@gamma.test\n"
		    "x@missing.test\nfrank@implicit.test\n");
		fclose(f);
	}
	r->base = event_base_new();
	r->dns = dns_or_fail(r->base, server);
	assert_int_equal(load_capture(r, path, errs), 0);
	r->free_in_cb = 1;
	t0 = time(NULL);
	/* let every lookup come back so the plan's remainder is released */
	while ((dns_pending(r->dns) > 0 || r->calls == 0) && time(NULL) - t0 < 30)
		event_base_loop(r->base, EVLOOP_ONCE);
	event_base_loop(r->base, EVLOOP_NONBLOCK);
	assert_null(r->plan);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->done, 0);
	if (!with_invalid)
		assert_int_equal(r->ndomain_cbs + r->cov[3].verdicts, 1);
	dns_free(r->dns);
	event_base_free(r->base);
	free(r);
}

static void
test_plan_free_in_callback(void **state)
{
	free_in_callback("free1.csv", 1);
	free_in_callback("free2.txt", 0);
}


/* Write name in dir with the given lines. */
static void
write_list(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "# test list\n%s", text);
	fclose(f);
}

/* Reference lists, local-part folding, flags, typo suggestions, batches
 * and the pending bound, against the test world. */
static void
test_plan_lists(void **state)
{
	static const char *const input[] = {
		/* 0 */ "Alice@alpha.test",
		/* 1 */ "alice@ALPHA.test",       /* dup of 0 when alpha.test folds */
		/* 2 */ "bob@alpha.test",
		/* 3 */ "carol@alpha.test",
		/* 4 */ "Dave@beta.test",         /* disposable */
		/* 5 */ "dave@beta.test",         /* not folded: a new address */
		/* 6 */ "PostMaster+x@gamma.test", /* role, free provider */
		/* 7 */ "x@alpah.test",           /* NXDOMAIN, "did you mean" */
	};
	static const struct {
		enum plan_fold fold;
		int dup1, dup5;
	} modes[] = {
		{ PLAN_FOLD_AUTO, 1, 0 },
		{ PLAN_FOLD_NEVER, 0, 0 },
		{ PLAN_FOLD_ALWAYS, 1, 1 },
	};
	char dir[256], path[256], errs[256], err[256];
	struct lists *l;
	FILE *f;

	path_in_tmp(dir, sizeof(dir), "data");
	assert_int_equal(mkdir(dir, 0700), 0);
	write_list(dir, "case_insensitive.txt", "alpha.test\n");
	write_list(dir, "disposable_domains.txt", "beta.test\n");
	write_list(dir, "role_locals.txt", "postmaster\n");
	write_list(dir, "free_providers.txt", "gamma.test\n");
	write_list(dir, "popular_domains.txt", "alpha.test\nimplicit.test\n");
	l = lists_open(dir, err, sizeof(err));
	if (l == NULL)
		fail_msg("lists_open: %s", err);

	path_in_tmp(path, sizeof(path), "lists.txt");
	path_in_tmp(errs, sizeof(errs), "lists.err");
	f = fopen(path, "w");
	for (size_t i = 0; i < sizeof(input) / sizeof(input[0]); i++)
		fprintf(f, "%s\n", input[i]);
	fclose(f);

	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		struct run *r = calloc(1, sizeof(*r));
		const struct cover *c;

		r->prm.batch = 2;
		r->prm.pending_max = 3;
		r->prm.dns_window = 1;
		r->prm.fold = modes[m].fold;
		r->prm.lists = l;
		r->base = event_base_new();
		r->dns = dns_or_fail(r->base, server);
		assert_int_equal(load_capture(r, path, errs), 0);
		run_loop(r);
		assert_int_equal(r->nrows, 8);
		assert_int_equal(r->rows[1].dup, modes[m].dup1);
		assert_int_equal(r->rows[5].dup, modes[m].dup5);
		for (size_t u = 0; u < plan_uid_count(r->plan); u++)
			assert_int_equal(r->cov[u].verdicts + r->cov[u].domains, 1);
		/* the first spelling is the one probed */
		assert_string_equal(r->cov[r->rows[0].uid].address, "Alice@alpha.test");
		/* flags */
		c = &r->cov[r->rows[4].uid];
		assert_true(c->flags & VERDICT_F_DISPOSABLE);
		assert_false(c->flags & (VERDICT_F_ROLE | VERDICT_F_FREE_PROVIDER));
		c = &r->cov[r->rows[6].uid];
		assert_int_equal(c->flags & (VERDICT_F_ROLE | VERDICT_F_FREE_PROVIDER |
		    VERDICT_F_DISPOSABLE), VERDICT_F_ROLE | VERDICT_F_FREE_PROVIDER);
		assert_false(r->cov[r->rows[2].uid].flags &
		    (VERDICT_F_ROLE | VERDICT_F_FREE_PROVIDER | VERDICT_F_DISPOSABLE));
		/* suggestion: reported in the verdict, the domain left alone */
		c = &r->cov[r->rows[7].uid];
		assert_int_equal(c->verdicts, 1);
		assert_int_equal(c->v.reason, VR_NO_MAIL_SERVER);
		assert_string_equal(c->v.suggestion, "alpha.test");
		assert_string_equal(c->address, "x@alpah.test");
		assert_string_equal(r->cov[r->rows[2].uid].suggestion, "");
		/* batches of at most 2 (on_domain asserts), the bound held */
		assert_true(r->ndomain_cbs >= 3);
		assert_true(r->max_pending <= 3);
		plan_free(r->plan);
		dns_free(r->dns);
		event_base_free(r->base);
		free(r);
	}
	lists_close(l);
}

/* A list much larger than the pending bound: every uid is covered, the
 * bound holds, and stats add up. */
static void
test_plan_bound(void **state)
{
	static const char *const doms[] = { "alpha.test", "beta.test", "gamma.test",
		"delta.test", "implicit.test", "missing.test", "nullmx.test" };
	const size_t nrows = 20000;
	struct run *r = calloc(1, sizeof(*r));
	struct plan_stats st;
	char path[256], errs[256];
	FILE *f;

	path_in_tmp(path, sizeof(path), "big.txt");
	path_in_tmp(errs, sizeof(errs), "big.err");
	f = fopen(path, "w");
	for (size_t i = 0; i < nrows; i++) {
		if (i % 97 == 0)
			fprintf(f, "broken-%zu\n", i);
		else
			fprintf(f, "user%zu@%s\n", i % 5000, doms[i % 7]);
	}
	fclose(f);
	r->count_only = 1;
	r->prm.batch = 10;
	r->prm.pending_max = 100;
	r->prm.dns_window = 2;
	r->prm.quiet = 1;
	r->base = event_base_new();
	r->dns = dns_or_fail(r->base, server);
	assert_int_equal(load_capture(r, path, errs), 0);
	run_loop(r);
	plan_get_stats(r->plan, &st);
	assert_int_equal(st.rows, nrows);
	assert_int_equal(st.rows, st.unique + st.invalid + st.duplicates);
	assert_int_equal(r->covered, st.unique + st.invalid);
	assert_int_equal(plan_uid_count(r->plan), st.unique + st.invalid);
	assert_int_equal(st.domains, 7);
	assert_int_equal(st.resolved, 7);
	assert_int_equal(st.pending, 0);
	assert_true(r->max_pending <= 100);
	plan_free(r->plan);
	dns_free(r->dns);
	event_base_free(r->base);
	free(r);
}

static int
setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_world),
		cmocka_unit_test(test_plan_no_domains),
		cmocka_unit_test(test_plan_dns_error),
		cmocka_unit_test(test_plan_servfail_retry),
		cmocka_unit_test(test_plan_free_in_callback),
		cmocka_unit_test(test_plan_lists),
		cmocka_unit_test(test_plan_bound),
	};

	server = getenv("MXSIFT_TEST_DNS");
	if (server == NULL || *server == '\0') {
		printf("SKIP: MXSIFT_TEST_DNS not set (scripts/services up)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
