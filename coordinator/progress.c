/*
 * progress.c — progress lines and bar on stderr (see progress.h).
 *
 * Rate is rows read per second since the start.  ETA: while the input is
 * being read and its size is known (a regular file), from the fraction of
 * file bytes consumed (compressed bytes for gzip, so the estimate holds for
 * .gz too); once everything is read, from the work still outstanding at the
 * rate work has been finishing so far.  Unknown is shown as "-".
 */
#include "progress.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double
progress_elapsed(const struct progress *pg)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - pg->start.tv_sec) +
	    (double)(now.tv_nsec - pg->start.tv_nsec) / 1e9;
}

void
progress_init(struct progress *pg, FILE *out, int quiet, const char *work)
{
	memset(pg, 0, sizeof(*pg));
	pg->out = out;
	pg->work = work;
	clock_gettime(CLOCK_MONOTONIC, &pg->start);
	pg->interval = PROGRESS_LINE_SECS;
	if (quiet)
		pg->mode = PROGRESS_OFF;
	else
		pg->mode = isatty(fileno(out)) ? PROGRESS_BAR : PROGRESS_LINES;
	if (pg->mode == PROGRESS_LINES) {
		const char *v = getenv("MXSIFT_PROGRESS_INTERVAL");
		char *end;
		double d;

		if (v != NULL && *v != '\0') {
			d = strtod(v, &end);
			if (end != v && *end == '\0' && d >= 0.1 && d <= 86400)
				pg->interval = d;
			else
				fprintf(out, "warning: MXSIFT_PROGRESS_INTERVAL='%s' ignored: it wants "
				    "seconds from 0.1 to 86400 (e.g. 2 or 0.5); a line every %d s\n", v,
				    PROGRESS_LINE_SECS);
		}
	}
}

void
progress_format_eta(double secs, char *out, size_t outlen)
{
	unsigned long s;

	if (secs < 0 || secs > 360000.0 * 24) {
		snprintf(out, outlen, "-");
		return;
	}
	s = (unsigned long)(secs + 0.5);
	if (s >= 3600)
		snprintf(out, outlen, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(out, outlen, "%lu:%02lu", s / 60, s % 60);
}

void
progress_show(struct progress *pg, const struct plan_stats *st, uint64_t work_done,
    uint64_t work_total, int final)
{
	double el = progress_elapsed(pg), rate, frac = -1, eta = -1;
	char etas[32];

	if (pg->mode == PROGRESS_OFF)
		return;
	if (pg->mode == PROGRESS_LINES && !final && el - pg->last_line < pg->interval)
		return;
	pg->last_line = el;
	rate = el > 0 ? (double)st->rows / el : 0;
	if (st->reading) {
		if (st->input_size > 0) {
			frac = (double)st->input_done / (double)st->input_size;
			if (frac > 0.001)
				eta = el / frac - el;
		}
	} else if (work_total > 0) {
		frac = (double)work_done / (double)work_total;
		if (work_done > 0)
			eta = el / frac - el;
	}
	if (final)
		eta = 0;
	progress_format_eta(eta, etas, sizeof(etas));
	if (pg->mode == PROGRESS_BAR) {
		char bar[32], work[64];
		int width = 20, fill = frac < 0 ? 0 : (int)(frac * width);

		if (fill > width)
			fill = width;
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(width - fill));
		bar[width] = '\0';
		if (work_total > 0)
			snprintf(work, sizeof(work), "%llu/%llu", (unsigned long long)work_done,
			    (unsigned long long)work_total);
		else
			snprintf(work, sizeof(work), "%llu", (unsigned long long)work_done);
		/* \033[K clears what a longer previous line left (no colour) */
		fprintf(pg->out, "\r[%s] %s rows %llu  invalid %llu  domains %llu/%llu  "
		    "%s %s  %.0f rows/s  ETA %s\033[K", bar,
		    st->reading ? "reading" : "working",
		    (unsigned long long)st->rows, (unsigned long long)st->invalid,
		    (unsigned long long)st->resolved, (unsigned long long)st->domains,
		    pg->work, work, rate, etas);
		if (final)
			fputc('\n', pg->out);
	} else
		fprintf(pg->out, "progress rows=%llu invalid=%llu duplicates=%llu unique=%llu "
		    "domains=%llu resolved=%llu %s=%llu total=%llu rate=%.0f/s eta=%s%s\n",
		    (unsigned long long)st->rows, (unsigned long long)st->invalid,
		    (unsigned long long)st->duplicates, (unsigned long long)st->unique,
		    (unsigned long long)st->domains, (unsigned long long)st->resolved,
		    pg->work, (unsigned long long)work_done,
		    (unsigned long long)(st->unique + st->invalid), rate, etas,
		    st->reading ? " reading" : "");
	fflush(pg->out);
}
