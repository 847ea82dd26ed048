/*
 * report.h — a job's verdicts as one self-contained HTML file for people.
 *
 * Used by `mxsift report` (a fleet job read back from Redis) and
 * `mxsift check --report FILE`.  Collect verdicts with report_add(), then
 * report_write_html() writes one file: inline CSS, inline SVG charts drawn
 * here, no script and nothing fetched from the network, so it can be mailed
 * or attached to a ticket as is.  Sections: totals per status, reasons,
 * results per MX domain (registrable domain of the MX host that answered,
 * dns.h), SMTP reply codes, and throughput over time (from each verdict's
 * checked_at).
 *
 * Counts are per verdict added: the fleet and `check` both have one verdict
 * per unique address plus one per invalid row, so the totals equal
 * `mxsift status`.  Elements carrying the numbers have stable ids
 * (total, status-<status>, reason-<reason>) for scripts and tests.
 * Everything taken from the data (host names, titles) is HTML-escaped.
 *
 * Diagnostics: report_add() returns -1 when out of memory;
 * report_write_html() returns -1 on a write error (errno set).
 */
#ifndef MXSIFT_REPORT_H
#define MXSIFT_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "verdict.h"

struct report;

/* A label/value line shown under the title (e.g. "rows read", "1204"). */
struct report_fact {
	const char *label;
	const char *value;
};

struct report *report_new(void);
void report_free(struct report *r);
/* Count one verdict (copied as far as the report needs it).  0 / -1. */
int report_add(struct report *r, const struct verdict *v);
/* Verdicts added so far. */
size_t report_count(const struct report *r);

/* Write the HTML document.  title is shown as is (escaped); facts may be
 * NULL.  0, or -1 on a write error. */
int report_write_html(const struct report *r, const char *title,
    const struct report_fact *facts, size_t nfacts, FILE *out);

#endif
