/*
 * duration.h — durations as users write them, in one syntax for every
 * option that takes one (--max-wait, --retry-schedule, --retry-max-age,
 * the SMTP timeouts).
 *
 * A duration is a whole number with an optional unit: ms, s (the default),
 * m, h or d: "90", "500ms", "30s", "5m", "1h", "2d".  No fractions, no
 * sign, no spaces.
 *
 * Diagnostics: duration_parse_ms() returns -1; duration_parse_timeout()
 * returns what is wrong as text for the caller to put after the option's
 * name ("--greeting-timeout must be more than 0 ...").
 */
#ifndef MXSIFT_DURATION_H
#define MXSIFT_DURATION_H

#include <stdint.h>

/* The longest SMTP timeout an option may set.  RFC 5321 4.5.3.2 asks for
 * 5 minutes at most per step; an hour is a typo, not a policy. */
#define DURATION_TIMEOUT_MAX_MS 3600000u

/* s -> milliseconds.  0, or -1 when s is not a duration (or overflows). */
int duration_parse_ms(const char *s, uint64_t *ms);

/* s as a timeout: 1 ms .. DURATION_TIMEOUT_MAX_MS.  NULL with *ms set, or
 * a static text saying what to fix (starts with "wants" or "must"). */
const char *duration_parse_timeout(const char *s, unsigned *ms);

#endif
