/*
 * spool.h — an append-only temporary file with random reads, for output
 * that must come out in input order without keeping every row in memory.
 *
 * The file is created in $TMPDIR (or /tmp) and unlinked at once, so it
 * disappears with the process whatever happens.  Appends go through a
 * write buffer; reads are served from that buffer, from a read cache, or
 * with pread(2) — a reader may read anything appended so far.
 */
#ifndef MXSIFT_SPOOL_H
#define MXSIFT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* NULL + err on failure. */
struct spool *spool_new(char *err, size_t errlen);
/* Append len bytes; *off (may be NULL) gets their offset.  0 / -1 (errno). */
int spool_append(struct spool *s, const void *data, size_t len, uint64_t *off);
/* Read len bytes at off (must lie within what was appended).  0 / -1. */
int spool_read(struct spool *s, uint64_t off, void *buf, size_t len);
/* Bytes appended so far. */
uint64_t spool_size(const struct spool *s);
void spool_free(struct spool *s);

#endif
