/*
 * metrics.h — the worker's Prometheus metrics and health endpoints.
 *
 * One registry per process (a worker is one process with one loop): the
 * daemon's code counts through the small API below from wherever the event
 * happens, and libevent's HTTP server (evhttp, on the worker's own loop)
 * serves, on --metrics-addr (default 127.0.0.1:9464, loopback so nothing is
 * exposed unless the operator says so; "off" disables it):
 *
 *   GET /metrics   Prometheus text exposition format 0.0.4
 *   GET /healthz   200 "ok" while the loop runs (liveness)
 *   GET /readyz    200 "ready" when the Kafka consumer has joined its group,
 *                  Redis is connected and the worker is not stopping; else
 *                  503 with the reason (readiness)
 *
 * Counters kept here (counted by metrics_* calls): verdicts by status and
 * reason, the SMTP reply class that decided each verdict, tasks done, bad
 * messages, retries scheduled, dead letters, Redis writes (new/duplicate) and
 * their latency (histogram).  Values read at scrape time from the attached
 * objects (metrics_attach): engine_get_stats() (connections opened, sessions
 * established, RCPTs, 503s), engine_pending() (recipients queued in lanes),
 * jobstore_async_pending()/connected(), and per assigned partition the
 * consumer lag (high watermark - position, librdkafka's cached values; no
 * broker round trip; before anything was consumed, librdkafka's statistics'
 * consumer_lag, which counts from the committed offset).  Metric names and
 * help texts are in metrics.c; the Grafana dashboard
 * deploy/grafana-mxsift.json uses them.
 *
 * Diagnostics: metrics_start() returns -1 with err for a bad address or a
 * port in use.  Every other call is cheap, cannot fail and is a no-op on
 * missing sources; the counters work without the HTTP server.
 */
#ifndef MXSIFT_METRICS_H
#define MXSIFT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "jobstore.h"
#include "verdict.h"

struct event_base;
struct evbuffer;
struct engine;

#define METRICS_DEFAULT_ADDR "127.0.0.1:9464"

enum metrics_counter {
	METRICS_TASKS_DONE = 0,       /* Task messages finished (offset storable) */
	METRICS_BAD_MESSAGES,         /* undecodable messages skipped */
	METRICS_RETRIES_SCHEDULED,    /* work handed to the retry topic */
	METRICS_DEAD_LETTERS,         /* messages handed to the dead-letter topic */
	METRICS_ADDRESSES_SKIPPED,    /* addresses with a verdict in Redis already */
	METRICS__COUNT
};

enum metrics_flag {
	METRICS_KAFKA_JOINED = 0,     /* the consumer got its (first) assignment */
	METRICS_STOPPING,             /* shutdown started: not ready any more */
	METRICS_FLAG__COUNT
};

void metrics_inc(enum metrics_counter c, uint64_t n);
void metrics_set_flag(enum metrics_flag f, int on);
/* One verdict produced by this worker (before it is written). */
void metrics_verdict(const struct verdict *v);

/* Sources read at scrape time; borrowed, any may be NULL.  Call again with
 * NULLs before freeing them. */
void metrics_attach(struct engine *e, struct jobstore_async *ja, rd_kafka_t *rk);

/*
 * jobstore_async_put_verdict() with the write timed: cb fires exactly as it
 * would (same result), after the latency and the new/duplicate outcome
 * are counted.  Returns what jobstore_async_put_verdict returns.
 */
int metrics_put_verdict(struct jobstore_async *ja, const char *job, const char *field,
    const char *address, const struct verdict *v, jobstore_write_cb cb, void *arg);

/* Serve on addr ("HOST:PORT", "[V6]:PORT"; port 0 = any free port; "off" =
 * no server, returns 0).  0 or -1 with err. */
int metrics_start(struct event_base *base, const char *addr, char *err, size_t errlen);
/* The port actually bound (after metrics_start), 0 when not serving. */
int metrics_port(void);
void metrics_stop(void);

/*
 * librdkafka's statistics callback (rd_kafka_conf_set_stats_cb, with
 * statistics.interval.ms set): keeps each partition's consumer_lag, which
 * librdkafka counts from the committed offset while nothing was consumed
 * from it, for the lag of partitions that have no position yet.  Returns 0
 * (librdkafka frees json).
 */
int metrics_kafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque);
/* The scan behind it (tests): cb for every topics.T.partitions.N.consumer_lag
 * number with N >= 0.  The count of them, or -1 when json is not JSON. */
typedef void (*metrics_lag_cb)(void *arg, const char *topic, int32_t partition, int64_t lag);
int metrics_stats_scan(const char *json, size_t len, metrics_lag_cb cb, void *arg);

/* The exposition text as served on /metrics (tests, debugging). */
void metrics_render(struct evbuffer *out);
/* 1 when ready; *why says what is missing otherwise. */
int metrics_ready(const char **why);
/* Zero every counter and detach (tests). */
void metrics_reset(void);

#endif
