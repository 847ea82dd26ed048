/*
 * plan.h — the front half shared by `mxsift check` and `mxsift submit`:
 * read rows, check and normalise each address, dedupe, resolve each unique
 * domain's MX once, and hand the work out through callbacks — streaming,
 * in memory bounded by unique addresses, unique domains and a window of
 * in-flight work, never by rows.
 *
 *   rows ─► address_parse ─► dedupe ─► per domain ─► dns_resolve_mx (once)
 *    │        │ invalid        │ dup      │ pending       │ NXDOMAIN / null MX / no A
 *    ▼        ▼                ▼          ▼               ▼
 *  cb.row  cb.verdict      (row only)  batches ≤ N   cb.verdict (no_mail_server, dns_error)
 *                                         │ MX known
 *                                         ▼
 *                                     cb.domain (≤ batch addresses of one domain + MX)
 *
 * Each unique address (and each invalid row) has a uid, numbered from 0 in
 * order of first appearance; every row maps to exactly one uid, and
 * cb.row says which, so a caller can print one output row per input row.
 * Exactly one of cb.verdict / cb.domain covers every uid, always after the
 * cb.row that introduced the uid.
 *
 * Memory (see plan.c for the numbers): the dedupe set keeps a 64-bit hash
 * and a 32-bit uid per unique address; each unique domain keeps its name
 * and MX answer; addresses waiting for their domain's MX answer or for a
 * full batch are held up to params.pending_max, after which partial batches
 * are handed out early and then reading pauses until DNS answers arrive.
 */
#ifndef MXSIFT_PLAN_H
#define MXSIFT_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include "dns.h"
#include "verdict.h"
#include "intake.h"

struct event_base;
struct plan;
struct lists;

/* Local-part case folding for dedupe (the domain is always folded). */
enum plan_fold {
	PLAN_FOLD_AUTO = 0,     /* fold when the domain is a listed case-insensitive provider */
	PLAN_FOLD_ALWAYS,
	PLAN_FOLD_NEVER
};

/* "auto", "always", "never" -> enum plan_fold; -1 when unknown. */
int plan_fold_parse(const char *name);

struct plan_params {
	unsigned batch;          /* max addresses per cb.domain call; 0 = 50 */
	size_t dns_window;       /* MX lookups in flight; 0 = 1000 */
	size_t pending_max;      /* addresses held before handing out / pausing; 0 = 100000 */
	enum plan_fold fold;
	const struct lists *lists;   /* flags, folding and typo data; NULL = none */
	int quiet;               /* no "line N: invalid address" reports on stderr */
	/* A read error after plan_load() (a truncated gzip stream, a read
	 * failure) ends the input as if it ended there: every row read before
	 * it is finished and cb.done is called; plan_input_error() says what
	 * happened.  0 (submit): the error is fatal, see plan_error(). */
	int keep_going;
};

struct plan_addr {
	uint64_t uid;
	const char *address;     /* normalised; for invalid rows the trimmed raw text */
	uint64_t line;           /* first line it appeared on */
	unsigned flags;          /* VERDICT_F_* (smtputf8, disposable, role, ...) */
	const char *suggestion;  /* typo suggestion for the domain, or "" */
};

struct plan_domain {
	const char *domain;                 /* A-label */
	const struct dns_mx_result *mx;     /* status DNS_OK */
	size_t naddrs;                      /* 1 .. batch */
	const struct plan_addr *const *addrs;
};

struct plan_row {
	uint64_t line;
	const char *input;       /* original text of the address field */
	size_t len;
	uint64_t uid;
	int duplicate;           /* the uid was introduced by an earlier row */
};

struct plan_callbacks {
	void (*row)(void *arg, const struct plan_row *r);    /* may be NULL */
	void (*verdict)(void *arg, const struct plan_addr *a, const struct verdict *v);
	void (*domain)(void *arg, const struct plan_domain *d);
	void (*done)(void *arg);      /* all rows read and every uid covered */
	void *arg;
};

struct plan_stats {
	uint64_t rows, invalid, duplicates, unique;
	uint64_t domains, resolved;     /* unique domains seen / MX answers in */
	uint64_t batches;               /* cb.domain calls */
	uint64_t dns_failed;            /* addresses given no_mail_server / dns_error */
	uint64_t domains_dns_error;     /* domains whose MX lookup failed for good with a
	                                   resolver error (timeout, SERVFAIL, refused) */
	uint64_t warnings;              /* rows with intake_row.warning */
	uint64_t pending;               /* addresses held right now */
	uint64_t input_done, input_size;  /* file bytes consumed / file size (0 = unknown) */
	int reading;                    /* 1 until the input is exhausted */
};

/* params may be NULL (defaults). */
struct plan *plan_new(struct event_base *base, struct dns *dns, const struct plan_callbacks *cb,
    const struct plan_params *params);
/* Open the input and start reading it from the loop.  -1 + err when the
 * input is unusable as a whole (unreadable, no such column); a read error
 * later on is reported through plan_error() after cb.done is NOT called. */
int plan_load(struct plan *p, const char *path, const struct intake_opts *opts,
    char *err, size_t errlen);
/* Stop / restart handing out work (the caller's own backpressure): reading
 * pauses; answers already in flight are still delivered. */
void plan_pause(struct plan *p);
void plan_resume(struct plan *p);
/* A fatal read error after plan_load() (the loop is broken out of); NULL if none. */
const char *plan_error(const struct plan *p);
/* With params.keep_going: the read error that ended the input early (every
 * row before it was handled normally); NULL if the input ended normally. */
const char *plan_input_error(const struct plan *p);
void plan_get_stats(const struct plan *p, struct plan_stats *out);
/* Number of uids handed out so far (unique + invalid). */
uint64_t plan_uid_count(const struct plan *p);
void plan_free(struct plan *p);

#endif
