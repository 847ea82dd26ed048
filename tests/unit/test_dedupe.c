/*
 * test_dedupe.c — coordinator/dedupe.c, the seen-address set: every key
 * added once is found again with its first id, across the growth of its
 * part; keys crowded into one part or onto one home slot (long probe runs
 * that wrap at the end of the array); and the memory bound the README
 * states (16..32 bytes per key once past the initial size).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dedupe.h"

static uint64_t
test_mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	x ^= x >> 33;
	return x != 0 ? x : 1;
}

/* Add keys[0..n) with ids 1000 + i, then find each again. */
static void
test_dedupe_keys(const uint64_t *keys, size_t n)
{
	struct dedupe *d = dedupe_new();
	uint32_t first;

	assert_non_null(d);
	for (size_t i = 0; i < n; i++) {
		first = 0;
		if (dedupe_find(d, keys[i], &first) != 0)
			fail_msg("key %zu (%016llx) reported seen before it was added", i,
			    (unsigned long long)keys[i]);
		assert_int_equal(dedupe_add(d, keys[i], (uint32_t)(1000 + i)), 0);
		/* at once again: the duplicate of the row just added */
		assert_int_equal(dedupe_find(d, keys[i], &first), 1);
		assert_int_equal(first, 1000 + i);
	}
	assert_int_equal(dedupe_count(d), n);
	for (size_t i = 0; i < n; i++) {
		first = 0;
		if (dedupe_find(d, keys[i], &first) != 1 || first != 1000 + i)
			fail_msg("key %zu lost or its id changed (%u)", i, first);
	}
	assert_int_equal(dedupe_count(d), n);
	dedupe_free(d);
}

static void
test_dedupe_random(void **state)
{
	size_t n = 300000;
	uint64_t *k = malloc(n * sizeof(*k));

	(void)state;
	assert_non_null(k);
	for (size_t i = 0; i < n; i++)
		k[i] = test_mix(i + 1);
	test_dedupe_keys(k, n);
	free(k);
}

/* One part takes every key: it doubles many times while the others stay. */
static void
test_dedupe_one_part(void **state)
{
	size_t n = 50000;
	uint64_t *k = malloc(n * sizeof(*k));

	(void)state;
	assert_non_null(k);
	for (size_t i = 0; i < n; i++)
		k[i] = (0xabULL << 56) | (test_mix(i + 1) >> 8);
	test_dedupe_keys(k, n);
	free(k);
}

/* One home slot: every key probes past all the others, and the run wraps
 * from the last slot of the array to the first. */
static void
test_dedupe_one_slot(void **state)
{
	uint64_t k[150];

	(void)state;
	for (size_t i = 0; i < 150; i++)
		k[i] = (0x11ULL << 56) | ((uint64_t)(i + 1) << 32) | 0xffffffffULL;
	test_dedupe_keys(k, 150);
}

/* The README's bound: 12-byte slots at most 3/4 full, doubling, so 16..32
 * bytes per key (past the initial 65,536 slots), at every size. */
static void
test_dedupe_bytes(void **state)
{
	struct dedupe *d = dedupe_new();
	size_t n = 0, b;

	(void)state;
	assert_non_null(d);
	assert_int_equal(dedupe_bytes(d), 65536 * 12);
	while (n < 1000000) {
		assert_int_equal(dedupe_add(d, test_mix(n + 1), (uint32_t)n), 0);
		n++;
		if (n % 50000 != 0 || n * 3 < 65536 * 4)
			continue;
		b = dedupe_bytes(d);
		if (b < 16 * n || b > 32 * n + 32 * 65536 / 256 * 2)
			fail_msg("%zu keys in %zu bytes: %.1f per key", n, b, (double)b / n);
	}
	dedupe_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedupe_random),
		cmocka_unit_test(test_dedupe_one_part),
		cmocka_unit_test(test_dedupe_one_slot),
		cmocka_unit_test(test_dedupe_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
