/*
 * hash.h — FNV-1a over bytes: the string hash of the project's small
 * in-memory tables (reports, reference lists, export's spellings).  Not for
 * anything an adversary picks to collide at scale: the dedupe set of a
 * list's addresses uses plan.c's seeded hash.
 */
#ifndef MXSIFT_HASH_H
#define MXSIFT_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t
hash_fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

#endif
