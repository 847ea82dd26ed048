/*
 * plan.h — the front half shared by `mxsift check` and `mxsift submit`:
 * read rows, check and normalise each address, dedupe, resolve each unique
 * domain's MX once, and hand the work out through callbacks.
 *
 *   rows ─► address_parse ─► dedupe ─► group by domain ─► dns_resolve_mx
 *             │ invalid                                     │ NXDOMAIN / null MX / no A
 *             ▼                                             ▼
 *         cb.verdict (invalid_syntax)            cb.verdict (no_mail_server, dns_error)
 *                                                          │ OK
 *                                                          ▼
 *                                                 cb.domain (addresses + MX hosts)
 *
 * Each unique address (and each invalid row) has a uid; every row maps to
 * exactly one uid, so a caller can print one output row per input row.
 * Exactly one of cb.verdict / cb.domain covers every uid.
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

struct plan_addr {
	size_t uid;
	const char *address;     /* normalised; for invalid rows the trimmed raw text */
	uint64_t line;           /* first line it appeared on */
	unsigned flags;          /* VERDICT_F_* (smtputf8, ...) */
};

struct plan_domain {
	const char *domain;                 /* A-label */
	const struct dns_mx_result *mx;     /* status DNS_OK */
	size_t naddrs;
	const struct plan_addr *const *addrs;
};

struct plan_callbacks {
	void (*verdict)(void *arg, const struct plan_addr *a, const struct verdict *v);
	void (*domain)(void *arg, const struct plan_domain *d);
	void (*done)(void *arg);      /* all rows read and every domain handed out */
	void *arg;
};

struct plan_stats {
	uint64_t rows, invalid, duplicates, unique, domains, resolved;
};

struct plan_row {
	uint64_t line;
	const char *input;       /* original text of the address field */
	size_t uid;
};

struct plan *plan_new(struct event_base *base, struct dns *dns, const struct plan_callbacks *cb);
/* Read the whole input, report malformed rows on stderr ("line N: ..."),
 * dedupe, and start MX lookups (answers arrive on the loop).  -1 + err when
 * the input is unusable as a whole (unreadable, no such column). */
int plan_load(struct plan *p, const char *path, const struct intake_opts *opts,
    char *err, size_t errlen);
void plan_get_stats(const struct plan *p, struct plan_stats *out);
size_t plan_row_count(const struct plan *p);
void plan_get_row(const struct plan *p, size_t i, struct plan_row *out);
size_t plan_uid_count(const struct plan *p);
const struct plan_addr *plan_get_addr(const struct plan *p, size_t uid);
void plan_free(struct plan *p);

#endif
