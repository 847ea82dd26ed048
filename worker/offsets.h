/*
 * offsets.h — which Kafka offset of a partition may be stored: the
 * contiguous prefix of done messages.
 *
 * The worker finishes messages out of order (one lane is fast, another
 * waits for a slow server or holds a retry until it is due).  Storing the
 * offset of a done message while an earlier one is unfinished would commit
 * past the earlier one, and a crash would then lose it.  So each partition
 * keeps its in-flight offsets in consumption order (a ring) and the stored
 * offset only ever moves to one past the last message of the done prefix.
 *
 * Pure bookkeeping: no Kafka calls, no logging.  Diagnostics: return values.
 */
#ifndef MXSIFT_OFFSETS_H
#define MXSIFT_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct offsets {
	struct offsets_slot {
		int64_t offset;
		int done;
	} *ring;
	size_t head, n, cap;      /* live slots: ring[head .. head+n) */
	int64_t last;             /* last offset pushed, -1 before the first */
};

#define OFFSETS_INIT { NULL, 0, 0, 0, -1 }

/* Track a consumed message.  Offsets must ascend: 0; -1 when offset is not
 * above the last one pushed (the partition was rewound: start over with a
 * fresh struct) or on no memory. */
int offsets_push(struct offsets *o, int64_t offset);

/* Mark offset done.  Returns the offset to store (one past the end of the
 * done prefix) when the prefix moved, 0 when it did not (an earlier message
 * is unfinished; 0 is never a position to store after a done message), -1
 * when offset is not tracked. */
int64_t offsets_done(struct offsets *o, int64_t offset);

/* Messages tracked and not yet part of the stored prefix. */
size_t offsets_pending(const struct offsets *o);

void offsets_free(struct offsets *o);

#endif
