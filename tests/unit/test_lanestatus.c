/*
 * test_lanestatus.c — which lanes a worker's report holds, and how: every
 * backed-off lane (paused, or slower or faster than its rule) first, up to
 * its cap, then the lanes with work by queue depth, up to top; idle lanes
 * never; the totals count every backed-off lane; fields are copied and the
 * pause becomes a wall-clock end.  And the default worker id is HOST:PID.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lanestatus.h"

#define NOW 1796335868000ll

static struct engine_lane_stats
lane(const char *key, double rate, double rule, size_t queued, unsigned conns,
    uint64_t paused_ms)
{
	struct engine_lane_stats l = { .key = key, .rate = rate, .rule_rate = rule,
		.conns = conns, .max_conns = 1, .queued = queued, .paused_ms = paused_ms };

	if (rate != rule || paused_ms > 0) {
		l.backoff_level = paused_ms > 0 ? 2 : 0;
		l.backoffs = 3;
	}
	return l;
}

static void
test_empty(void **state)
{
	struct jobstore_lane out[4];
	uint64_t bo = 99;

	(void)state;
	assert_int_equal(lanestatus_select(NULL, 0, 20, 200, NOW, out, &bo), 0);
	assert_int_equal(bo, 0);
}

static void
test_selection(void **state)
{
	char names[30][16];
	struct engine_lane_stats ls[40];
	struct jobstore_lane out[3 + 5];
	size_t n = 0, got;
	uint64_t bo;

	(void)state;
	/* 30 lanes with work: queue depth i, some with a session only */
	for (int i = 0; i < 30; i++) {
		snprintf(names[i], sizeof(names[i]), "q%02d.test", i);
		ls[n++] = lane(names[i], 1, 1, (size_t)i, i % 3 == 0, 0);
	}
	ls[n++] = lane("idle1.test", 1, 1, 0, 0, 0);          /* nothing going on */
	ls[n++] = lane("idle2.test", 0, 0, 0, 0, 0);
	ls[n++] = lane("slow-a.test", 0.5, 1, 0, 0, 0);       /* recovering */
	ls[n++] = lane("slow-b.test", 0.25, 1, 7, 1, 12000);  /* paused, 12 s left */
	ls[n++] = lane("slow-c.test", 1, 0, 2, 0, 0);         /* no limit, slowed to 1/s */
	ls[n++] = lane("slow-d.test", 0.1, 1, 0, 0, 0);

	got = lanestatus_select(ls, n, 5, 3, NOW, out, &bo);
	assert_int_equal(bo, 4);          /* every backed-off lane counted */
	assert_int_equal(got, 3 + 5);
	/* backed off first, deepest queue first, then by name */
	assert_string_equal(out[0].mx_domain, "slow-b.test");
	assert_string_equal(out[1].mx_domain, "slow-c.test");
	assert_string_equal(out[2].mx_domain, "slow-a.test");   /* slow-d.test: over the cap */
	assert_true(out[0].rate == 0.25 && out[0].rule_rate == 1);
	assert_int_equal(out[0].queued, 7);
	assert_int_equal(out[0].sessions, 1);
	assert_int_equal(out[0].max_sessions, 1);
	assert_int_equal(out[0].backoff_level, 2);
	assert_int_equal(out[0].backoffs, 3);
	assert_true(out[0].paused_until == NOW + 12000);
	assert_true(out[2].paused_until == 0);
	/* then the top 5 by queue depth */
	for (int i = 0; i < 5; i++) {
		char want[16];

		snprintf(want, sizeof(want), "q%02d.test", 29 - i);
		assert_string_equal(out[3 + i].mx_domain, want);
		assert_int_equal(out[3 + i].queued, 29 - i);
		assert_true(out[3 + i].paused_until == 0);
	}

	/* a big enough top: every lane with work, never the idle ones; a
	 * session alone (q00, queue 0) is work */
	{
		struct jobstore_lane all[40];

		got = lanestatus_select(ls, n, 100, 100, NOW, all, &bo);
		assert_int_equal(got, 4 + 30);
		assert_string_equal(all[got - 1].mx_domain, "q00.test");
		for (size_t i = 0; i < got; i++)
			assert_null(strstr(all[i].mx_domain, "idle"));
	}
}

static void
test_default_id(void **state)
{
	char id[JOBSTORE_WORKER_ID_MAX], host[256], want[400];

	(void)state;
	lanestatus_default_id(id, sizeof(id));
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	snprintf(want, sizeof(want), "%s:%ld", host, (long)getpid());
	assert_string_equal(id, want);
	assert_true(jobstore_valid_worker_id(id));
	/* a small buffer keeps the pid */
	lanestatus_default_id(id, 30);
	assert_non_null(strchr(id, ':'));
	assert_int_equal(atol(strchr(id, ':') + 1), (long)getpid());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_selection),
		cmocka_unit_test(test_default_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
