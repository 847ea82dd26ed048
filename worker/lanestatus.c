/*
 * lanestatus.c — the worker's periodic lane report (see lanestatus.h).
 *
 * Owns one timer (every second) and a buffer of lane stats reused across
 * ticks.  Each tick copies the engine's lane stats (the worker already does
 * that once a second to count back-offs; an engine holds only lanes with
 * work or slowed down, idle ones are dropped) and reports when the interval
 * is up or when the back-off picture changed: the number of backed-off or
 * paused lanes, or the engine's back-off count.  A report is therefore at
 * most once a second, at least every interval.
 */
#include "lanestatus.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"

#define LANESTATUS_TICK_MS 1000
#define LANESTATUS_TTL_INTERVALS 3   /* a report outlives two missed ones */

struct lanestatus {
	struct engine *engine;
	struct jobstore_async *ja;
	struct event *tick;
	char id[JOBSTORE_WORKER_ID_MAX];
	unsigned interval_ms;
	struct engine_lane_stats *stats;   /* reused */
	size_t stats_cap;
	struct jobstore_lane *out;         /* LANESTATUS_TOP + LANESTATUS_BACKED_OFF_MAX */
	uint64_t last_ms;                  /* monotonic ms of the last report sent */
	int reported;
	/* the back-off picture of the last report */
	uint64_t sig_backed_off, sig_paused, sig_backoffs;
};

static int64_t
lanestatus_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
lanestatus_slowed(const struct engine_lane_stats *l)
{
	return l->paused_ms > 0 || l->rate != l->rule_rate;
}

/* Backed-off lanes first (what an operator looks for), then the deepest
 * queues, then by name (a stable report). */
static int
lanestatus_cmp(const void *pa, const void *pb)
{
	const struct engine_lane_stats *a = pa, *b = pb;

	if (lanestatus_slowed(a) != lanestatus_slowed(b))
		return lanestatus_slowed(b) - lanestatus_slowed(a);
	if (a->queued != b->queued)
		return a->queued < b->queued ? 1 : -1;
	return strcmp(a->key, b->key);
}

size_t
lanestatus_select(struct engine_lane_stats *ls, size_t n, size_t top, size_t backed_off_max,
    int64_t now_ms, struct jobstore_lane *out, uint64_t *backed_off)
{
	size_t nout = 0, nslowed = 0, nother = 0;

	*backed_off = 0;
	if (n > 1)
		qsort(ls, n, sizeof(*ls), lanestatus_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct engine_lane_stats *l = &ls[i];
		struct jobstore_lane *o;

		if (lanestatus_slowed(l)) {
			++*backed_off;
			if (nslowed++ >= backed_off_max)
				continue;
		} else {
			if (l->queued == 0 && l->conns == 0)
				continue;      /* nothing going on: not worth a line */
			if (nother++ >= top)
				continue;
		}
		o = &out[nout++];
		memset(o, 0, sizeof(*o));
		snprintf(o->mx_domain, sizeof(o->mx_domain), "%s", l->key);
		o->rate = l->rate;
		o->rule_rate = l->rule_rate;
		o->queued = l->queued;
		o->sessions = l->conns;
		o->max_sessions = l->max_conns;
		o->backoff_level = l->backoff_level;
		o->backoffs = l->backoffs;
		o->paused_until = l->paused_ms > 0 ? now_ms + (int64_t)l->paused_ms : 0;
	}
	return nout;
}

void
lanestatus_default_id(char *out, size_t outlen)
{
	char host[256];

	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (char *p = host; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			*p = '_';
	/* the pid must survive a long host name */
	snprintf(out, outlen, "%.*s:%ld", (int)(outlen > 24 ? outlen - 24 : 0), host,
	    (long)getpid());
}

/* Copy the engine's lane stats into ls->stats; the count, or 0 for none (or
 * no memory: this report is skipped, the next tick tries again). */
static size_t
lanestatus_fetch(struct lanestatus *ls)
{
	size_t n;

	for (;;) {
		n = engine_get_lane_stats(ls->engine, ls->stats, ls->stats_cap);
		if (n <= ls->stats_cap)
			return n;
		free(ls->stats);
		ls->stats_cap = n + n / 4 + 16;
		if ((ls->stats = calloc(ls->stats_cap, sizeof(*ls->stats))) == NULL) {
			ls->stats_cap = 0;
			return 0;
		}
	}
}

static void
lanestatus_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct lanestatus *ls = arg;
	struct jobstore_lane_report r;
	uint64_t now = clock_mono_ms(), paused = 0, backoffs = 0;
	size_t n;

	(void)fd;
	(void)what;
	memset(&r, 0, sizeof(r));
	n = lanestatus_fetch(ls);
	for (size_t i = 0; i < n; i++) {
		paused += ls->stats[i].paused_ms > 0;
		backoffs += ls->stats[i].backoffs;
	}
	r.updated_at = lanestatus_wall_ms();
	r.n = lanestatus_select(ls->stats, n, LANESTATUS_TOP, LANESTATUS_BACKED_OFF_MAX,
	    r.updated_at, ls->out, &r.backed_off);
	if (ls->reported && now - ls->last_ms < ls->interval_ms &&
	    r.backed_off == ls->sig_backed_off && paused == ls->sig_paused &&
	    backoffs == ls->sig_backoffs)
		return;
	snprintf(r.worker, sizeof(r.worker), "%s", ls->id);
	r.interval_ms = ls->interval_ms;
	r.lanes = n;
	r.lane = ls->out;
	if (jobstore_async_put_lanes(ls->ja, &r, ls->interval_ms * LANESTATUS_TTL_INTERVALS) != 0)
		return;        /* not connected: the next tick tries again */
	ls->reported = 1;
	ls->last_ms = now;
	ls->sig_backed_off = r.backed_off;
	ls->sig_paused = paused;
	ls->sig_backoffs = backoffs;
	log_debug("lane report", "worker=%s lanes=%zu backed_off=%" PRIu64 " shown=%zu", ls->id,
	    n, r.backed_off, r.n);
}

struct lanestatus *
lanestatus_new(struct event_base *base, struct engine *engine, struct jobstore_async *ja,
    const struct lanestatus_params *params)
{
	struct timeval tv = { LANESTATUS_TICK_MS / 1000, (LANESTATUS_TICK_MS % 1000) * 1000 };
	struct lanestatus *ls = calloc(1, sizeof(*ls));

	if (ls == NULL)
		return NULL;
	ls->engine = engine;
	ls->ja = ja;
	ls->interval_ms = params != NULL && params->interval_ms > 0 ? params->interval_ms :
	    LANESTATUS_INTERVAL_MS;
	if (params != NULL && params->worker_id != NULL)
		snprintf(ls->id, sizeof(ls->id), "%s", params->worker_id);
	else
		lanestatus_default_id(ls->id, sizeof(ls->id));
	ls->out = calloc(LANESTATUS_TOP + LANESTATUS_BACKED_OFF_MAX, sizeof(*ls->out));
	ls->tick = event_new(base, -1, EV_PERSIST, lanestatus_on_tick, ls);
	if (!jobstore_valid_worker_id(ls->id) || ls->out == NULL || ls->tick == NULL ||
	    event_add(ls->tick, &tv) == -1) {
		if (ls->tick != NULL)
			event_free(ls->tick);
		free(ls->out);
		free(ls);
		return NULL;
	}
	log_info("lane reports", "worker=%s key=mxsift:worker:%s:lanes interval_ms=%u", ls->id,
	    ls->id, ls->interval_ms);
	return ls;
}

void
lanestatus_free(struct lanestatus *ls)
{
	if (ls == NULL)
		return;
	if (ls->reported)
		(void)jobstore_async_forget_worker(ls->ja, ls->id);
	event_free(ls->tick);
	free(ls->stats);
	free(ls->out);
	free(ls);
}

const char *
lanestatus_worker_id(const struct lanestatus *ls)
{
	return ls->id;
}
