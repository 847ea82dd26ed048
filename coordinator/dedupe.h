/*
 * dedupe.h — the set of addresses already seen in one list, kept as 64-bit
 * hashes with the id of the first row that had each.
 *
 * The caller hashes (seeded, never 0) and decides what the key is; this
 * module only stores.  Memory: 12 bytes per slot, at most 3/4 of the slots
 * used, so 16..32 bytes per key.  The table is split into DEDUPE_PARTS parts
 * by the hash's top bits, each doubling on its own, so growing costs one
 * part's old and new arrays at once (1/128 of the set), not the whole table
 * twice over as one doubling table would.
 *
 * Diagnostics: none.  Out of memory: dedupe_new() returns NULL and
 * dedupe_add() -1.
 */
#ifndef MXSIFT_DEDUPE_H
#define MXSIFT_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#define DEDUPE_PARTS 256

struct dedupe;

struct dedupe *dedupe_new(void);
void dedupe_free(struct dedupe *d);

/* h: the key's hash, never 0.  1 when h is in the set (*first = the id it
 * was added with), else 0. */
int dedupe_find(const struct dedupe *d, uint64_t h, uint32_t *first);
/* Add h, which must not be in the set yet, with id: 0, or -1 out of memory
 * (the set unchanged). */
int dedupe_add(struct dedupe *d, uint64_t h, uint32_t id);

/* Keys in the set; bytes the set's arrays take. */
size_t dedupe_count(const struct dedupe *d);
size_t dedupe_bytes(const struct dedupe *d);

#endif
