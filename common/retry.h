/*
 * retry.h — when a temporary answer (greylisting, 4xx, timeout, refused
 * connection) is asked again, and a timer queue that holds work until then.
 *
 * Shared by mxsift-worker (which sends such addresses to the retry topic
 * with a not-before time and holds retry messages until due) and `mxsift
 * check --max-wait` (which resubmits in-process).  Both use one schedule:
 * the delay before attempt 2, 3, ... counted from the previous attempt,
 * "1m,5m,15m,1h" by default, plus a maximum age counted from the first
 * attempt.  After the last step, or when the next attempt would start past
 * the maximum age, the temporary verdict is final.
 *
 * Durations: a number with an optional unit: ms, s (default), m, h, d
 * ("90", "1.5s" is not accepted: whole numbers only).
 *
 * Diagnostics: parsers return -1 and write a message to err.
 */
#ifndef MXSIFT_RETRY_H
#define MXSIFT_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "verdict.h"

struct event_base;

#define RETRY_MAX_STEPS       16
#define RETRY_DEFAULT_SCHEDULE "1m,5m,15m,1h"
#define RETRY_DEFAULT_MAX_AGE  "3h"

struct retry_policy {
	uint64_t delay_ms[RETRY_MAX_STEPS];  /* before attempt i+2 */
	size_t nsteps;                       /* 0: never retry */
	uint64_t max_age_ms;                 /* from the first attempt; 0 = no limit */
};

/* "90", "500ms", "30s", "5m", "1h", "2d" -> milliseconds.  0 or -1. */
int retry_parse_duration(const char *s, uint64_t *ms);

/* "1m,5m,15m,1h" -> p->delay_ms/nsteps (max_age_ms untouched); "" or
 * "none" means no retries.  0, or -1 with err set. */
int retry_parse_schedule(const char *s, struct retry_policy *p, char *err, size_t errlen);

/* The defaults above. */
void retry_policy_default(struct retry_policy *p);

/* 1 when v is a temporary answer worth asking again later: unknown with
 * reason greylisted, temp_failure, timeout or connection_failed, or any
 * unknown verdict carrying a 4xx reply.  Everything else is final. */
int retry_verdict_temporary(const struct verdict *v);

/*
 * attempt: the attempt that just gave a temporary answer, 0 for the first.
 * first_ms, now_ms: when the first attempt started and now (same clock).
 * Returns 1 and sets *due_ms (now + the step's delay) when another attempt
 * is allowed; 0 when the temporary answer is final.
 */
int retry_next(const struct retry_policy *p, unsigned attempt, uint64_t first_ms,
    uint64_t now_ms, uint64_t *due_ms);

/* ---- a timer queue of opaque items on a libevent loop ------------------ */

struct retry_timer;

/* due(arg, item) is called from the loop once per item, in due order; the
 * item then belongs to the callee again. */
typedef void (*retry_due_cb)(void *arg, void *item);

struct retry_timer *retry_timer_new(struct event_base *base, retry_due_cb due, void *arg);
/* Hold item until due_ms on the CLOCK_REALTIME millisecond clock (a time
 * in the past fires on the next loop turn).  0, or -1 (no memory). */
int retry_timer_add(struct retry_timer *t, void *item, uint64_t due_ms);
size_t retry_timer_count(const struct retry_timer *t);
/* Remove every item for which match(arg, item) is non-zero; each removed
 * item is passed to drop(arg, item).  Returns how many were removed. */
size_t retry_timer_remove_if(struct retry_timer *t, int (*match)(void *arg, void *item),
    void (*drop)(void *arg, void *item), void *arg);
/* Free the queue; drop (may be NULL) gets every item still held. */
void retry_timer_free(struct retry_timer *t, void (*drop)(void *arg, void *item), void *arg);

/* Milliseconds since the epoch (CLOCK_REALTIME): not-before times travel
 * between hosts, so they are wall-clock times. */
uint64_t retry_wall_ms(void);

#endif
