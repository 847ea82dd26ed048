/*
 * progress.h — progress of a plan on stderr, for `mxsift check` and
 * `mxsift submit`: rows read, invalid rows, unique domains, MX answers,
 * work handed out / finished, rate and ETA.
 *
 * On a terminal: one bar line redrawn in place (no colour, so NO_COLOR has
 * nothing to switch off).  Otherwise: one plain line every
 * PROGRESS_LINE_SECS, parsable as key=value pairs; the environment variable
 * MXSIFT_PROGRESS_INTERVAL=SECONDS (0.1 to 86400, fractions allowed)
 * changes the interval, for log collectors that want more or fewer lines
 * (and for tests that cannot wait 10 s).  Off with --quiet.
 */
#ifndef MXSIFT_PROGRESS_H
#define MXSIFT_PROGRESS_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "plan.h"

#define PROGRESS_LINE_SECS 10

enum progress_mode { PROGRESS_OFF = 0, PROGRESS_BAR, PROGRESS_LINES };

struct progress {
	enum progress_mode mode;
	FILE *out;
	struct timespec start;
	double last_line;
	double interval;       /* seconds between lines (PROGRESS_LINES) */
	const char *work;      /* what work_done counts: "verified", "tasks" */
};

/* mode from quiet and isatty(fileno(out)); interval from
 * MXSIFT_PROGRESS_INTERVAL (a bad value is reported on out once and the
 * default kept). */
void progress_init(struct progress *pg, FILE *out, int quiet, const char *work);
/*
 * work_done of work_total (0 = unknown) makes the bar's fraction and the ETA
 * once reading is over.  A line's total= is the verdicts expected so far,
 * unique + invalid (the job's total in `mxsift status`), whatever the work
 * counts: for check the same as work_total, for submit (work: tasks, whose
 * number is known only at the end) not.  final: print whatever the
 * interval, end the bar.
 */
void progress_show(struct progress *pg, const struct plan_stats *st, uint64_t work_done,
    uint64_t work_total, int final);
/* "1:02:03" / "4:05" / "-" for unknown; for tests. */
void progress_format_eta(double secs, char *out, size_t outlen);

#endif
