/*
 * offsets.c — the contiguous done prefix of a partition (see offsets.h).
 *
 * A ring of (offset, done) in ascending offset order: push appends, done
 * finds its slot by binary search and then pops done slots off the head.
 * Memory is bounded by the messages in flight, which the worker bounds.
 */
#include "offsets.h"

#include <stdlib.h>
#include <string.h>

int
offsets_push(struct offsets *o, int64_t offset)
{
	if (offset < 0 || (o->last >= 0 && offset <= o->last))
		return -1;
	if (o->head + o->n == o->cap) {
		if (o->head > 0) {
			memmove(o->ring, o->ring + o->head, o->n * sizeof(*o->ring));
			o->head = 0;
		}
		if (o->n == o->cap) {
			size_t cap = o->cap ? o->cap * 2 : 64;
			struct offsets_slot *r = realloc(o->ring, cap * sizeof(*r));

			if (r == NULL)
				return -1;
			o->ring = r;
			o->cap = cap;
		}
	}
	o->ring[o->head + o->n].offset = offset;
	o->ring[o->head + o->n].done = 0;
	o->n++;
	o->last = offset;
	return 0;
}

int64_t
offsets_done(struct offsets *o, int64_t offset)
{
	size_t lo = o->head, hi = o->head + o->n;
	int64_t last = -1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (o->ring[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == o->head + o->n || o->ring[lo].offset != offset || o->ring[lo].done)
		return -1;
	o->ring[lo].done = 1;
	while (o->n > 0 && o->ring[o->head].done) {
		last = o->ring[o->head].offset;
		o->head++;
		o->n--;
	}
	if (o->n == 0)
		o->head = 0;
	return last >= 0 ? last + 1 : 0;
}

size_t
offsets_pending(const struct offsets *o)
{
	return o->n;
}

void
offsets_free(struct offsets *o)
{
	free(o->ring);
	o->ring = NULL;
	o->head = o->n = o->cap = 0;
	o->last = -1;
}
