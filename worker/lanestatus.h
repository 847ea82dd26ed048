/*
 * lanestatus.h — the worker's lane report in Redis, for `mxsift status`.
 *
 * Every few seconds (and within a second of a lane backing off, pausing or
 * resuming) the worker writes what its probe engine does per lane (MX
 * domain): current and configured rate, backoff level and pause end,
 * recipients queued, sessions open.  The report is bounded: every
 * backed-off lane (paused or slower than its rule) up to a cap, then the
 * lanes with the deepest queues; the totals say how many there are in all.
 * It goes through the worker's asynchronous Redis client
 * (jobstore_async_put_lanes: one script call, never blocking the loop,
 * never queued behind or ahead of verdict writes) into
 * mxsift:worker:ID:lanes, which expires after three intervals, so a worker
 * that dies drops out of `mxsift status` by itself; one that stops
 * withdraws its report (lanestatus_free).
 *
 * ID is HOST:PID (gethostname, getpid), logged once at start ("lane
 * reports" info line) so an operator can find the worker's logs and
 * metrics.  The engine is only read (engine_get_lane_stats), never changed.
 */
#ifndef MXSIFT_LANESTATUS_H
#define MXSIFT_LANESTATUS_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "jobstore.h"

struct event_base;
struct lanestatus;

#define LANESTATUS_INTERVAL_MS 5000      /* a report at least this often */
#define LANESTATUS_TOP 20                /* lanes not backed off, deepest queues */
#define LANESTATUS_BACKED_OFF_MAX 200    /* backed-off lanes in one report */

struct lanestatus_params {
	const char *worker_id;        /* NULL = HOST:PID */
	unsigned interval_ms;         /* 0 = LANESTATUS_INTERVAL_MS */
};

/* Starts reporting (the first report within a second).  engine and ja are
 * borrowed and must outlive it.  NULL for no memory or a bad worker id. */
struct lanestatus *lanestatus_new(struct event_base *base, struct engine *engine,
    struct jobstore_async *ja, const struct lanestatus_params *params);
/* Stop reporting and withdraw the report (sent if Redis is connected; the
 * loop must run a moment longer to flush it).  NULL is fine. */
void lanestatus_free(struct lanestatus *ls);
/* The id reports are written under. */
const char *lanestatus_worker_id(const struct lanestatus *ls);

/*
 * The selection, pure (tests): sorts ls[0..n) (backed-off lanes first, then
 * the deepest queues, then by name), converts the first ones into out —
 * at most backed_off_max backed-off lanes and top others that have work
 * (queued recipients or sessions) — and returns how many.  now_ms is the
 * wall clock (unix ms) the pauses are counted from; *backed_off gets the
 * number of backed-off lanes among all n.  out has room for
 * backed_off_max + top entries.
 */
size_t lanestatus_select(struct engine_lane_stats *ls, size_t n, size_t top,
    size_t backed_off_max, int64_t now_ms, struct jobstore_lane *out, uint64_t *backed_off);

/* HOST:PID of this process into out ("localhost" when gethostname fails;
 * characters a worker id cannot hold become '_'). */
void lanestatus_default_id(char *out, size_t outlen);

#endif
