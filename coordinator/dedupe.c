/*
 * dedupe.c — the set of seen address hashes with their first ids (see
 * dedupe.h).
 *
 * Owns: DEDUPE_PARTS open-addressing tables (linear probing, hash 0 = empty
 * slot), each a hash array and an id array of a power-of-two size.  The top
 * 8 bits of a hash pick its part and the low bits its home slot, so the two
 * choices are independent.
 *
 * Why parts: one table doubling from 2^23 to 2^24 slots holds 100 MB of old
 * and 200 MB of new arrays at once (10 million unique addresses: the
 * coordinator's peak RSS was 359 MiB, the target 300 MB).  Parts fill at the
 * same pace and double one after another, each with only its own two arrays
 * live, so the peak is the set plus 1/128 of it.
 *
 * Returns: found (dedupe_find), added or out of memory (dedupe_add); a key
 * stays until dedupe_free().
 */
#include "dedupe.h"

#include <stdlib.h>

/* 256 slots per part at first: 65,536 in all, 768 KiB of (mostly
 * untouched) calloc'd memory for a small list. */
#define DEDUPE_PART_MIN 256

struct dedupe_part {
	uint64_t *hash;
	uint32_t *id;
	size_t mask, n;
};

struct dedupe {
	struct dedupe_part part[DEDUPE_PARTS];
	size_t n;
};

static size_t
dedupe_slot(const struct dedupe_part *t, uint64_t h)
{
	size_t i = (size_t)h & t->mask;

	while (t->hash[i] != 0 && t->hash[i] != h)
		i = (i + 1) & t->mask;
	return i;
}

/* Double t (or give it its first arrays); -1 with t unchanged. */
static int
dedupe_grow(struct dedupe_part *t)
{
	struct dedupe_part o = *t;
	size_t cap = o.hash != NULL ? (o.mask + 1) * 2 : DEDUPE_PART_MIN, i, j;

	t->hash = calloc(cap, sizeof(*t->hash));
	t->id = malloc(cap * sizeof(*t->id));
	if (t->hash == NULL || t->id == NULL) {
		free(t->hash);
		free(t->id);
		*t = o;
		return -1;
	}
	t->mask = cap - 1;
	for (i = 0; o.hash != NULL && i <= o.mask; i++)
		if (o.hash[i] != 0) {
			j = dedupe_slot(t, o.hash[i]);
			t->hash[j] = o.hash[i];
			t->id[j] = o.id[i];
		}
	free(o.hash);
	free(o.id);
	return 0;
}

struct dedupe *
dedupe_new(void)
{
	struct dedupe *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	for (size_t k = 0; k < DEDUPE_PARTS; k++)
		if (dedupe_grow(&d->part[k]) != 0) {
			dedupe_free(d);
			return NULL;
		}
	return d;
}

void
dedupe_free(struct dedupe *d)
{
	if (d == NULL)
		return;
	for (size_t k = 0; k < DEDUPE_PARTS; k++) {
		free(d->part[k].hash);
		free(d->part[k].id);
	}
	free(d);
}

int
dedupe_find(const struct dedupe *d, uint64_t h, uint32_t *first)
{
	const struct dedupe_part *t = &d->part[h >> 56];
	size_t i = dedupe_slot(t, h);

	if (t->hash[i] == 0)
		return 0;
	*first = t->id[i];
	return 1;
}

int
dedupe_add(struct dedupe *d, uint64_t h, uint32_t id)
{
	struct dedupe_part *t = &d->part[h >> 56];
	size_t i;

	/* at most 3/4 full: linear probing stays short */
	if ((t->n + 1) * 4 > (t->mask + 1) * 3 && dedupe_grow(t) != 0)
		return -1;
	i = dedupe_slot(t, h);
	t->hash[i] = h;
	t->id[i] = id;
	t->n++;
	d->n++;
	return 0;
}

size_t
dedupe_count(const struct dedupe *d)
{
	return d->n;
}

size_t
dedupe_bytes(const struct dedupe *d)
{
	size_t b = 0;

	for (size_t k = 0; k < DEDUPE_PARTS; k++)
		b += (d->part[k].mask + 1) * (sizeof(uint64_t) + sizeof(uint32_t));
	return b;
}
