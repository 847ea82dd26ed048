/*
 * test_retry.c — the retry schedule (durations, schedules, which verdicts
 * are temporary, when the next attempt is due or the answer is final) and
 * the timer queue (due order, ties, items added from a callback, removal,
 * free with items held).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "duration.h"
#include "retry.h"

static void
test_duration(void **state)
{
	static const struct {
		const char *s;
		int ok;
		uint64_t ms;
	} cases[] = {
		{ "0", 1, 0 },
		{ "90", 1, 90000 },
		{ "500ms", 1, 500 },
		{ "30s", 1, 30000 },
		{ "5m", 1, 300000 },
		{ "1h", 1, 3600000 },
		{ "2d", 1, 172800000 },
		{ "", 0, 0 },
		{ "m", 0, 0 },
		{ "-1s", 0, 0 },
		{ " 5s", 0, 0 },
		{ "5 s", 0, 0 },
		{ "1.5s", 0, 0 },
		{ "5x", 0, 0 },
		{ "5sm", 0, 0 },
		{ "99999999999999999999", 0, 0 },
		{ "9999999999999999d", 0, 0 },
		{ NULL, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 12345;
		int rc = retry_parse_duration(cases[i].s, &ms);

		if (rc != (cases[i].ok ? 0 : -1))
			fail_msg("'%s': rc %d", cases[i].s ? cases[i].s : "(null)", rc);
		if (cases[i].ok && ms != cases[i].ms)
			fail_msg("'%s': %llu ms, want %llu", cases[i].s, (unsigned long long)ms,
			    (unsigned long long)cases[i].ms);
	}
}

/* SMTP timeouts: 1 ms .. 1 h; 0 and garbage are refused with a reason. */
static void
test_timeout(void **state)
{
	static const struct {
		const char *s;
		unsigned ms;      /* 0 = refused */
		const char *why;  /* prefix of the reason */
	} cases[] = {
		{ "1ms", 1, NULL },
		{ "90", 90000, NULL },
		{ "30s", 30000, NULL },
		{ "5m", 300000, NULL },
		{ "3600s", 3600000, NULL },
		{ "1h", 3600000, NULL },
		{ "3601s", 0, "must be at most 1h" },
		{ "1d", 0, "must be at most 1h" },
		{ "99999999999999999999", 0, "wants a duration" },
		{ "0", 0, "must be more than 0" },
		{ "0ms", 0, "must be more than 0" },
		{ "-1s", 0, "wants a duration" },
		{ "", 0, "wants a duration" },
		{ "soon", 0, "wants a duration" },
		{ "2.5s", 0, "wants a duration" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned ms = 7;
		const char *why = duration_parse_timeout(cases[i].s, &ms);

		if (cases[i].ms != 0) {
			if (why != NULL)
				fail_msg("'%s': refused: %s", cases[i].s, why);
			if (ms != cases[i].ms)
				fail_msg("'%s': %u ms, want %u", cases[i].s, ms, cases[i].ms);
		} else {
			if (why == NULL || strncmp(why, cases[i].why, strlen(cases[i].why)) != 0)
				fail_msg("'%s': reason '%s', want '%s...'", cases[i].s,
				    why ? why : "(none)", cases[i].why);
			if (ms != 7)
				fail_msg("'%s': refused but *ms changed", cases[i].s);
		}
	}
}

static void
test_schedule(void **state)
{
	struct retry_policy p;
	char err[128];
	char many[256] = "1s";

	(void)state;
	retry_policy_default(&p);
	assert_int_equal(p.nsteps, 4);
	assert_int_equal(p.delay_ms[0], 60000);
	assert_int_equal(p.delay_ms[1], 300000);
	assert_int_equal(p.delay_ms[2], 900000);
	assert_int_equal(p.delay_ms[3], 3600000);
	assert_int_equal(p.max_age_ms, 3 * 3600000);

	assert_int_equal(retry_parse_schedule("2s, 4s,8s", &p, err, sizeof(err)), 0);
	assert_int_equal(p.nsteps, 3);
	assert_int_equal(p.delay_ms[1], 4000);
	assert_int_equal(retry_parse_schedule("none", &p, err, sizeof(err)), 0);
	assert_int_equal(p.nsteps, 0);
	assert_int_equal(retry_parse_schedule("", &p, err, sizeof(err)), 0);
	assert_int_equal(p.nsteps, 0);
	assert_int_equal(retry_parse_schedule("1m,soon", &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "soon"));
	assert_int_equal(retry_parse_schedule(",", &p, err, sizeof(err)), -1);
	for (int i = 1; i <= RETRY_MAX_STEPS; i++)
		strcat(many, ",1s");
	assert_int_equal(retry_parse_schedule(many, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "steps"));
}

static void
test_temporary(void **state)
{
	static const struct {
		enum verdict_reason r;
		int code;
		int temp;
	} cases[] = {
		{ VR_GREYLISTED, 450, 1 },
		{ VR_TEMP_FAILURE, 451, 1 },
		{ VR_TIMEOUT, 0, 1 },
		{ VR_CONNECTION_FAILED, 0, 1 },
		{ VR_BLOCKED, 421, 1 },        /* "try again later" */
		{ VR_BLOCKED, 554, 0 },        /* a policy refusal stays */
		{ VR_PROTOCOL_ERROR, 0, 0 },
		{ VR_TLS_FAILED, 0, 0 },
		{ VR_DNS_ERROR, 0, 0 },
		{ VR_ACCEPTED, 250, 0 },
		{ VR_MAILBOX_NOT_FOUND, 550, 0 },
		{ VR_MAILBOX_FULL, 452, 0 },   /* risky, not unknown: final */
		{ VR_CATCH_ALL, 250, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct verdict v;

		verdict_init(&v, cases[i].r);
		v.smtp_code = cases[i].code;
		if (retry_verdict_temporary(&v) != cases[i].temp)
			fail_msg("case %zu (%s %d): want %d", i, verdict_reason_name(cases[i].r),
			    cases[i].code, cases[i].temp);
	}
}

static void
test_next(void **state)
{
	struct retry_policy p = { .delay_ms = { 1000, 5000, 15000 }, .nsteps = 3,
		.max_age_ms = 20000 };
	static const struct {
		unsigned attempt;
		uint64_t first, now;
		int retry;
		uint64_t due;
	} cases[] = {
		{ 0, 100, 100, 1, 1100 },
		{ 1, 100, 1200, 1, 6200 },
		{ 2, 100, 6300, 0, 0 },       /* 6300+15000-100 > 20000: too old */
		{ 2, 100, 5000, 1, 20000 },   /* exactly at the max age: allowed */
		{ 3, 100, 7000, 0, 0 },       /* schedule exhausted */
		{ 7, 0, 0, 0, 0 },
		{ 0, 5000, 100, 1, 1100 },    /* clock went back: no age check */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t due = 0;
		int rc = retry_next(&p, cases[i].attempt, cases[i].first, cases[i].now, &due);

		if (rc != cases[i].retry || (rc && due != cases[i].due))
			fail_msg("case %zu: rc %d due %llu", i, rc, (unsigned long long)due);
	}
	p.max_age_ms = 0;     /* no limit */
	assert_int_equal(retry_next(&p, 2, 0, 1000000000, &(uint64_t){ 0 }), 1);
	p.nsteps = 0;
	assert_int_equal(retry_next(&p, 0, 0, 0, &(uint64_t){ 0 }), 0);
}

/* ---- timer queue ------------------------------------------------------ */

struct fired {
	struct event_base *base;
	struct retry_timer *t;
	int order[16];
	int n;
	int readd;          /* item id to add again once (from the callback) */
	int dropped[16];
	int ndropped;
};

static int ids[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };

static void
on_due(void *arg, void *item)
{
	struct fired *f = arg;
	int id = *(int *)item;

	f->order[f->n++] = id;
	if (id == f->readd) {
		f->readd = -1;
		assert_int_equal(retry_timer_add(f->t, &ids[7], retry_wall_ms()), 0);
	}
	if (retry_timer_count(f->t) == 0)
		event_base_loopbreak(f->base);
}

static int
match_odd(void *arg, void *item)
{
	(void)arg;
	return *(int *)item % 2 == 1;
}

static void
on_drop(void *arg, void *item)
{
	struct fired *f = arg;

	f->dropped[f->ndropped++] = *(int *)item;
}

static void
test_timer_order(void **state)
{
	struct fired f = { .readd = 2 };
	struct timeval limit = { 5, 0 };
	uint64_t now = retry_wall_ms(), t0;

	(void)state;
	f.base = event_base_new();
	f.t = retry_timer_new(f.base, on_due, &f);
	assert_non_null(f.t);
	/* due order 3 (past), 1 and 4 (tie: insertion order), 2, 0 */
	assert_int_equal(retry_timer_add(f.t, &ids[0], now + 150), 0);
	assert_int_equal(retry_timer_add(f.t, &ids[1], now + 40), 0);
	assert_int_equal(retry_timer_add(f.t, &ids[2], now + 80), 0);
	assert_int_equal(retry_timer_add(f.t, &ids[3], now - 1000), 0);
	assert_int_equal(retry_timer_add(f.t, &ids[4], now + 40), 0);
	assert_int_equal(retry_timer_count(f.t), 5);
	t0 = retry_wall_ms();
	event_base_loopexit(f.base, &limit);
	event_base_dispatch(f.base);
	assert_int_equal(f.n, 6);
	assert_int_equal(f.order[0], 3);
	assert_int_equal(f.order[1], 1);
	assert_int_equal(f.order[2], 4);
	assert_int_equal(f.order[3], 2);
	assert_int_equal(f.order[4], 7);   /* added by the callback, due at once */
	assert_int_equal(f.order[5], 0);
	/* nothing fired early: the last one waited for its time */
	assert_true(retry_wall_ms() - t0 >= 100);
	retry_timer_free(f.t, NULL, NULL);
	event_base_free(f.base);
}

static void
test_timer_remove_and_free(void **state)
{
	struct fired f = { .readd = -1 };
	struct timeval limit = { 5, 0 };
	uint64_t now = retry_wall_ms();

	(void)state;
	f.base = event_base_new();
	f.t = retry_timer_new(f.base, on_due, &f);
	for (int i = 0; i < 6; i++)
		assert_int_equal(retry_timer_add(f.t, &ids[i], now + 30 + 10 * (5 - i)), 0);
	assert_int_equal(retry_timer_remove_if(f.t, match_odd, on_drop, &f), 3);
	assert_int_equal(f.ndropped, 3);
	assert_int_equal(retry_timer_count(f.t), 3);
	event_base_loopexit(f.base, &limit);
	event_base_dispatch(f.base);
	/* what is left still fires in due order: 4, 2, 0 */
	assert_int_equal(f.n, 3);
	assert_int_equal(f.order[0], 4);
	assert_int_equal(f.order[1], 2);
	assert_int_equal(f.order[2], 0);
	/* free hands back what is held */
	f.ndropped = 0;
	assert_int_equal(retry_timer_add(f.t, &ids[5], now + 100000), 0);
	assert_int_equal(retry_timer_add(f.t, &ids[6], now + 200000), 0);
	retry_timer_free(f.t, on_drop, &f);
	assert_int_equal(f.ndropped, 2);
	event_base_free(f.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_schedule),
		cmocka_unit_test(test_temporary),
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_timer_remove_and_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
