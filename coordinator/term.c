/*
 * term.c — whether to colour, and the colours of the four statuses.
 *
 * Decided on every call (getenv and one isatty ioctl): cheap next to the
 * write it decorates, and nothing to go stale.
 */
#include "term.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const term_colors[VS__COUNT] = {
	[VS_DELIVERABLE] = "\033[32m",      /* green */
	[VS_UNDELIVERABLE] = "\033[31m",    /* red */
	[VS_RISKY] = "\033[33m",            /* yellow */
	[VS_UNKNOWN] = "\033[90m",          /* bright black: grey */
};

int
term_color(FILE *f)
{
	const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
	int fd = fileno(f);

	return fd >= 0 && isatty(fd) && (no == NULL || *no == '\0') && term != NULL &&
	    *term != '\0' && strcmp(term, "dumb") != 0;
}

const char *
term_status_color(FILE *f, enum verdict_status s)
{
	if ((unsigned)s >= VS__COUNT || !term_color(f))
		return "";
	return term_colors[s];
}

const char *
term_reset(FILE *f)
{
	return term_color(f) ? TERM_RESET : "";
}
