/*
 * duration.c — parse durations (see duration.h).
 *
 * Owns nothing; no diagnostics besides return values.
 */
#include "duration.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
duration_parse_ms(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 },
	};
	unsigned long long v;
	char *end;

	/* strtoull would take "-5" (and wrap it) and " 5": digits first. */
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].mult)
			return -1;
		*ms = (uint64_t)v * units[i].mult;
		return 0;
	}
	return -1;
}

const char *
duration_parse_timeout(const char *s, unsigned *ms)
{
	uint64_t v;

	if (duration_parse_ms(s, &v) == -1)
		return "wants a duration such as 30s, 500ms or 2m (a whole number; unit ms, s, "
		       "m or h; no unit = seconds)";
	/* 0 would give up before the server could answer at all. */
	if (v == 0)
		return "must be more than 0 (e.g. 30s)";
	if (v > DURATION_TIMEOUT_MAX_MS)
		return "must be at most 1h";
	*ms = (unsigned)v;
	return NULL;
}
