/*
 * test_offsets.c — the stored offset of a partition is one past the
 * contiguous prefix of done messages, never past an unfinished one:
 * in-order and out-of-order completion, gaps in offsets (compacted or
 * transactional topics), duplicates and unknown offsets, rewinds, and a
 * long run through the ring's growth and compaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "offsets.h"

/* Each case: offsets pushed, then done one by one with the expected result
 * of offsets_done(). */
static void
test_table(void **state)
{
	static const struct {
		const char *name;
		int64_t push[8];
		size_t npush;
		struct {
			int64_t off, want;
		} done[8];
		size_t ndone;
		size_t pending;
	} cases[] = {
		{ "in order", { 0, 1, 2 }, 3, { { 0, 1 }, { 1, 2 }, { 2, 3 } }, 3, 0 },
		{ "last first", { 0, 1, 2 }, 3, { { 2, 0 }, { 1, 0 }, { 0, 3 } }, 3, 0 },
		{ "middle first", { 5, 6, 7, 8 }, 4, { { 6, 0 }, { 5, 7 }, { 8, 0 }, { 7, 9 } }, 4, 0 },
		{ "gaps", { 10, 13, 20 }, 3, { { 13, 0 }, { 10, 14 }, { 20, 21 } }, 3, 0 },
		{ "head unfinished", { 0, 1, 2, 3 }, 4, { { 1, 0 }, { 2, 0 }, { 3, 0 } }, 3, 4 },
		{ "twice done", { 0, 1 }, 2, { { 0, 1 }, { 0, -1 }, { 1, 2 } }, 3, 0 },
		{ "not tracked", { 4, 6 }, 2, { { 5, -1 }, { 3, -1 }, { 7, -1 }, { 6, 0 } }, 4, 2 },
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct offsets o = OFFSETS_INIT;

		for (size_t i = 0; i < cases[c].npush; i++)
			assert_int_equal(offsets_push(&o, cases[c].push[i]), 0);
		for (size_t i = 0; i < cases[c].ndone; i++) {
			int64_t got = offsets_done(&o, cases[c].done[i].off);

			if (got != cases[c].done[i].want)
				fail_msg("%s: done(%lld) = %lld, want %lld", cases[c].name,
				    (long long)cases[c].done[i].off, (long long)got,
				    (long long)cases[c].done[i].want);
		}
		if (offsets_pending(&o) != cases[c].pending)
			fail_msg("%s: %zu pending, want %zu", cases[c].name, offsets_pending(&o),
			    cases[c].pending);
		offsets_free(&o);
	}
}

static void
test_rewind(void **state)
{
	struct offsets o = OFFSETS_INIT;

	(void)state;
	assert_int_equal(offsets_push(&o, 7), 0);
	assert_int_equal(offsets_push(&o, 7), -1);   /* the same again */
	assert_int_equal(offsets_push(&o, 3), -1);   /* rewound */
	assert_int_equal(offsets_push(&o, -1), -1);
	assert_int_equal(offsets_done(&o, 7), 8);
	/* even with nothing in flight, a rewind is refused: the owner starts over */
	assert_int_equal(offsets_push(&o, 5), -1);
	assert_int_equal(offsets_push(&o, 8), 0);
	offsets_free(&o);
}

/* Thousands of messages finished in a scrambled order in windows: the
 * stored offset never passes an unfinished message and ends at the end. */
static void
test_scrambled(void **state)
{
	enum { N = 5000, W = 97 };
	struct offsets o = OFFSETS_INIT;
	static unsigned char done[N];
	int64_t stored = 0;
	unsigned seed = 12345;

	(void)state;
	for (int64_t base = 0; base < N; base += W) {
		int64_t end = base + W < N ? base + W : N;
		int64_t order[W];
		size_t k = 0;

		for (int64_t i = base; i < end; i++) {
			assert_int_equal(offsets_push(&o, i), 0);
			order[k++] = i;
		}
		for (size_t i = k; i > 1; i--) {
			size_t j;
			int64_t t;

			seed = seed * 1103515245u + 12345u;
			j = (seed >> 8) % i;
			t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
		/* leave the window's last message for the next round */
		for (size_t i = 0; i < k; i++) {
			int64_t r;

			if (order[i] == end - 1 && end != N)
				continue;
			r = offsets_done(&o, order[i]);
			done[order[i]] = 1;
			assert_true(r >= 0);
			if (r > 0) {
				assert_true(r > stored);
				stored = r;
			}
			for (int64_t x = 0; x < stored; x++)
				if (!done[x])
					fail_msg("stored %lld past unfinished %lld", (long long)stored,
					    (long long)x);
		}
		if (base > 0 && !done[base - 1]) {
			int64_t r = offsets_done(&o, base - 1);
			done[base - 1] = 1;
			assert_true(r >= 0);
			if (r > 0)
				stored = r;
		}
	}
	assert_int_equal(stored, N);
	assert_int_equal(offsets_pending(&o), 0);
	offsets_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_rewind),
		cmocka_unit_test(test_scrambled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
