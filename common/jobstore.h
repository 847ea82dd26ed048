/*
 * jobstore.h — a fleet job's state in Redis: totals, counts and verdicts.
 *
 * Keys per job NAME (NAME: 1..64 of [A-Za-z0-9._-], see jobstore_valid_name):
 *   mxsift:job:NAME:meta      hash  rows, unique, invalid, duplicates, total,
 *                                   domains, tasks, submitted_at, state, file,
 *                                   reused (verdicts copied from earlier jobs
 *                                   by submit --reuse-within; set when submit
 *                                   ends, absent from older jobs)
 *   mxsift:job:NAME:counts    hash  done, status:<status>, reason:<reason>,
 *                                   retried, dead, dead_addresses, backed_off
 *   mxsift:job:NAME:verdicts  hash  field -> serialised mxsift.Verdict (protobuf)
 * and across jobs, per normalised address:
 *   mxsift:last:ADDRESS       string  its last verdict that was not unknown
 *                                    (serialised mxsift.Verdict, with
 *                                    checked_at), expires after
 *                                    JOBSTORE_LAST_TTL_S; set by the verdict
 *                                    script, read by `submit --reuse-within`
 *   mxsift:job:NAME:events    hash  event id -> 1: events already counted
 *   mxsift:dead:counts        hash  dead: dead letters of no known job
 *   mxsift:dead:events        hash  their event ids
 * and per worker process (not per job: a lane is an MX domain, whatever the
 * jobs in it), its lane report, for `mxsift status`:
 *   mxsift:workers            zset  worker id -> unix ms of its last report
 *   mxsift:worker:ID:lanes    hash  "#worker" -> the report's summary, and
 *                                   MX domain -> lane record (see "lane
 *                                   reports" below); expires a few report
 *                                   intervals after it was written, so a
 *                                   worker that died drops out by itself
 *
 * The field of a verdict is the normalised address; an invalid row, which has
 * no address of its own and is never deduplicated, uses "#line:N" (N = its
 * input line), which no valid address can be.  The Verdict itself carries
 * the address (for an invalid row: its trimmed raw text).
 *
 * Every verdict write, from any process, is the same Lua script: HSETNX the
 * verdict and, only if it was new, count it (done, status:, reason:).  The
 * first verdict wins and a re-delivered duplicate changes nothing, so counts
 * stay exact under Kafka's at-least-once delivery.  The script is run with
 * EVALSHA; a NOSCRIPT reply (script cache flushed, new server) is answered
 * with EVAL, which also reloads the cache.
 *
 * The operational counters (retried, dead, ...) are not verdicts and are
 * not part of done; each is counted by a second script, once per event id
 * (HSETNX into the events hash, then HINCRBY), for the same reason.
 * Invariant kept by both scripts: done == sum of status:* == sum of
 * reason:* == number of fields in the verdicts hash.
 *
 * Two APIs: a blocking one (struct jobstore) for the coordinator, `mxsift
 * status` and `mxsift export`, and an asynchronous one (struct
 * jobstore_async) on a libevent loop for the worker, with its own connect and
 * command timeouts (hiredis 0.14 has none), reconnect with backoff, and a
 * completion callback per verdict once Redis has answered — the worker
 * stores a Kafka offset only after that.
 *
 * Diagnostics: functions that fail return -1 (or NULL) and describe the
 * failure in err / jobstore_errstr(); the async API logs (log.h) and retries.
 */
#ifndef MXSIFT_JOBSTORE_H
#define MXSIFT_JOBSTORE_H

#include <stddef.h>
#include <stdint.h>
#include "redis_url.h"
#include "verdict.h"

struct event_base;

#define JOBSTORE_NAME_MAX 64
#define JOBSTORE_LAST_TTL_S 7776000        /* 90 days */
#define JOBSTORE_LAST_TTL_STR "7776000"

/* 1 if name is a usable job name, else 0. */
int jobstore_valid_name(const char *name);

/* The verdicts-hash field of an invalid input row: "#line:N". */
void jobstore_invalid_field(uint64_t line, char *out, size_t outlen);
/* N of such a field; 0 for any other field (an address). */
uint64_t jobstore_invalid_line(const char *field);

/* mxsift.Verdict <-> struct verdict.  pack returns a malloc'd buffer (*len
 * set) or NULL.  unpack returns 0 or -1 (bad bytes, unknown status/reason
 * names); *address is malloc'd and the caller frees it. */
uint8_t *jobstore_verdict_pack(const char *job, const char *address, const struct verdict *v,
    size_t *len);
int jobstore_verdict_unpack(const uint8_t *buf, size_t len, char **address, struct verdict *v);

/* ---- job meta and counts -------------------------------------------- */

struct jobstore_meta {
	uint64_t rows, unique, invalid, duplicates;
	uint64_t total;        /* verdicts expected: unique valid + invalid rows */
	uint64_t domains, tasks;
	uint64_t reused;       /* of total: verdicts copied from earlier jobs */
	int has_reused;        /* reused is in the hash (jobstore_get_meta only) */
	int64_t submitted_at;  /* unix seconds */
	char state[24];        /* planning, submitted, failed */
	char file[256];
};

struct jobstore_counts {
	uint64_t done;
	uint64_t status[VS__COUNT];
	uint64_t reason[VR__COUNT];
	uint64_t retried;          /* addresses sent to the retry topic (per attempt) */
	uint64_t dead;             /* messages of the job sent to the dead-letter topic */
	uint64_t dead_addresses;   /* addresses in those messages */
	uint64_t backed_off;       /* rate-limit back-offs seen while probing it */
};

/* Counter names in the counts hash (and the global dead-letter keys). */
#define JOBSTORE_C_RETRIED        "retried"
#define JOBSTORE_C_DEAD           "dead"
#define JOBSTORE_C_DEAD_ADDRESSES "dead_addresses"
#define JOBSTORE_C_BACKED_OFF     "backed_off"
#define JOBSTORE_DEAD_COUNTS_KEY  "mxsift:dead:counts"
#define JOBSTORE_DEAD_EVENTS_KEY  "mxsift:dead:events"

/* ---- lane reports ------------------------------------------------------ */

/*
 * What a worker's probe engine does per lane (MX domain), as a worker
 * reports it every few seconds: a bounded selection (the backed-off lanes
 * first, then the deepest queues) and the totals.  Each lane is one hash
 * field, its value a line of key=value pairs ("rate=0.5 rule_rate=1
 * queued=12 ..."): readable with redis-cli, and a reader ignores keys it does
 * not know and takes a missing key as 0, so either side can grow fields.
 */
#define JOBSTORE_WORKERS_KEY     "mxsift:workers"
#define JOBSTORE_LANES_SUMMARY   "#worker"     /* no MX domain contains '#' */
#define JOBSTORE_WORKER_ID_MAX   128
#define JOBSTORE_LANE_DOMAIN_MAX 256
/* A worker silent for this long leaves the workers set (its hash expired
 * long before). */
#define JOBSTORE_WORKER_FORGET_MS 86400000

struct jobstore_lane {
	char mx_domain[JOBSTORE_LANE_DOMAIN_MAX];
	double rate;               /* RCPT probes per second now; 0 = no limit */
	double rule_rate;          /* the lane rule's rate; 0 = no limit */
	uint64_t queued;           /* recipients waiting in the lane */
	unsigned sessions, max_sessions;   /* SMTP connections now / the rule's */
	unsigned backoff_level;    /* consecutive rate-limit answers */
	uint64_t backoffs;         /* pauses since the lane was made */
	int64_t paused_until;      /* unix ms the pause ends; 0 = not paused */
};

struct jobstore_lane_report {
	char worker[JOBSTORE_WORKER_ID_MAX];   /* HOST:PID */
	int64_t updated_at;        /* unix ms, the worker's clock */
	unsigned interval_ms;      /* the next report is due after this */
	uint64_t lanes;            /* lanes in the worker's engine, all of them */
	uint64_t backed_off;       /* of those, paused or slower than their rule */
	size_t n;                  /* lanes in lane[] (the selection) */
	struct jobstore_lane *lane;
};

/* 1 if id can name a worker: 1..JOBSTORE_WORKER_ID_MAX-1 printable ASCII
 * characters, no space. */
int jobstore_valid_worker_id(const char *id);
/* 1 when the lane was slowed by rate-limit answers: paused at now_ms (unix
 * ms), or its rate differs from its rule's. */
int jobstore_lane_backed_off(const struct jobstore_lane *l, int64_t now_ms);
/* One lane's hash value / the summary's.  The length written, or -1 when
 * outlen is too small (256 bytes always suffice). */
int jobstore_lane_format(const struct jobstore_lane *l, char *out, size_t outlen);
int jobstore_lane_summary_format(const struct jobstore_lane_report *r, char *out,
    size_t outlen);
/* Parse them back (mx_domain is the field name; the report's worker, lane
 * and n are left alone).  0, or -1 for a value that is not key=value pairs
 * or a number that is not one, or a domain too long; unknown keys are
 * skipped. */
int jobstore_lane_parse(const char *mx_domain, const char *value, struct jobstore_lane *l);
int jobstore_lane_summary_parse(const char *value, struct jobstore_lane_report *r);

/* ---- blocking API ----------------------------------------------------- */

struct jobstore;

/* Connect (timeout_ms for the connect and for every command, 0 = 5000),
 * AUTH, SELECT, and load the verdict script.  NULL + err on failure. */
struct jobstore *jobstore_connect(const char *url, unsigned timeout_ms, char *err, size_t errlen);
void jobstore_close(struct jobstore *js);
/* Last error of js, for messages. */
const char *jobstore_errstr(const struct jobstore *js);

/* 1 exists, 0 not, -1 error. A job exists once its meta hash does. */
int jobstore_job_exists(struct jobstore *js, const char *job);
/* Write every field of m (HSET). 0 / -1. */
int jobstore_put_meta(struct jobstore *js, const char *job, const struct jobstore_meta *m);
/* Set one meta field. 0 / -1. */
int jobstore_set_meta(struct jobstore *js, const char *job, const char *field, const char *value);
/* 1 found, 0 no such job, -1 error. Missing fields read as 0 / "". */
int jobstore_get_meta(struct jobstore *js, const char *job, struct jobstore_meta *m);
/* 0 / -1. A job without verdicts yet has all-zero counts. */
int jobstore_get_counts(struct jobstore *js, const char *job, struct jobstore_counts *c);

/* Dead letters that belong to no known job (field dead). 0 / -1. */
int jobstore_get_dead_global(struct jobstore *js, uint64_t *messages);
/* Add incr to counter of job (NULL: the global dead-letter counts) unless
 * event was counted before: 1 counted, 0 already counted, -1 error. */
int jobstore_count_once(struct jobstore *js, const char *job, const char *event,
    const char *counter, uint64_t incr);

/* Write one verdict now: 1 new (counted), 0 already there, -1 error. */
int jobstore_put_verdict(struct jobstore *js, const char *job, const char *field,
    const char *address, const struct verdict *v);
/* Pipelined writes for bulk producers: queue one, sent in batches; call
 * jobstore_flush() at the end.  0 / -1 (an error fails the whole batch). */
int jobstore_queue_verdict(struct jobstore *js, const char *job, const char *field,
    const char *address, const struct verdict *v);
int jobstore_flush(struct jobstore *js);
/* Verdicts written by this handle that were new / already present. */
void jobstore_get_written(const struct jobstore *js, uint64_t *fresh, uint64_t *dup);

/* The last verdicts of n addresses (one MGET): found[i] = 1 and out[i]
 * filled when mxsift:last:addresses[i] holds one, else found[i] = 0.
 * 0 / -1 (err in jobstore_errstr). */
int jobstore_get_last(struct jobstore *js, const char *const *addresses, size_t n,
    struct verdict *out, int *found);

/* The verdicts of job under n fields (addresses, or "#line:N" of invalid
 * rows; one HMGET): found[i] = 1 with out[i] and addresses[i] (malloc'd,
 * the caller frees it) filled when the job has that field and it decodes,
 * else found[i] = 0 and addresses[i] = NULL.  0 / -1 (err in
 * jobstore_errstr). */
int jobstore_get_verdicts(struct jobstore *js, const char *job, const char *const *fields,
    size_t n, struct verdict *out, char **addresses, int *found);

/* Every live worker's lane report (those whose hash has not expired), in
 * the workers set's order (oldest report first); *out is malloc'd, free it
 * with jobstore_lane_reports_free().  Unparsable lanes are skipped with a
 * log_warn.  0 / -1. */
int jobstore_get_lane_reports(struct jobstore *js, struct jobstore_lane_report **out,
    size_t *n);
void jobstore_lane_reports_free(struct jobstore_lane_report *r, size_t n);

/* HSCAN every verdict of job; cb gets each decoded verdict (valid during the
 * call) and may return non-zero to stop.  0 done, -1 error (undecodable
 * entries are reported through log_warn and skipped, counted in *bad). */
typedef int (*jobstore_scan_cb)(void *arg, const char *field, const char *address,
    const struct verdict *v);
int jobstore_scan_verdicts(struct jobstore *js, const char *job, jobstore_scan_cb cb, void *arg,
    uint64_t *bad);

/* ---- asynchronous API (libevent) -------------------------------------- */

struct jobstore_async;

struct jobstore_async_params {
	unsigned connect_timeout_ms;   /* default 5000 */
	unsigned command_timeout_ms;   /* oldest unanswered write; default 10000 */
	unsigned backoff_min_ms;       /* first reconnect delay, default 100 */
	unsigned backoff_max_ms;       /* cap, default 5000 */
};

/* result: 1 the verdict was new, 0 it was already there.  Both mean the
 * verdict is durable in Redis.  Never called from inside put_verdict. */
typedef void (*jobstore_write_cb)(void *arg, int result);

/* Parses url and starts connecting; NULL + err only for a bad url or no
 * memory (an unreachable server is retried, not an error). */
struct jobstore_async *jobstore_async_new(struct event_base *base, const char *url,
    const struct jobstore_async_params *params, char *err, size_t errlen);
/* Queue a verdict write; everything is copied.  It is retried across
 * reconnects until Redis answers, then cb fires once.  0, or -1 (bad job
 * name, no memory: cb will not fire). */
int jobstore_async_put_verdict(struct jobstore_async *ja, const char *job, const char *field,
    const char *address, const struct verdict *v, jobstore_write_cb cb, void *arg);
/* jobstore_count_once(), queued like a verdict write: cb(arg, 1|0) once
 * Redis has answered.  0, or -1 (bad arguments, no memory: no cb). */
int jobstore_async_count_once(struct jobstore_async *ja, const char *job, const char *event,
    const char *counter, uint64_t incr, jobstore_write_cb cb, void *arg);
/* have[i] = 1 when fields[i] has a verdict; have is NULL when there was no
 * answer (connection lost or dropped, lookup timed out, an error reply). */
typedef void (*jobstore_have_cb)(void *arg, const unsigned char *have, size_t n);
/* Which of fields already have a verdict in job (HMGET on the verdicts
 * hash: only presence is used).  Best effort: sent only on an established
 * connection, never resent; a lookup unanswered for command_timeout_ms
 * drops the connection like a write would.  cb fires once, never from
 * inside this call and never after jobstore_async_free().  0 sent, 1 not
 * connected (no cb), -1 bad arguments or no memory (no cb). */
int jobstore_async_have_verdicts(struct jobstore_async *ja, const char *job,
    const char *const *fields, size_t n, jobstore_have_cb cb, void *arg);
/* Replace worker r->worker's lane report (the hash, its expiry ttl_ms, its
 * place in the workers set) in one script call.  Best effort, unlike the
 * writes above: sent only when connected, never queued or resent (the next
 * report supersedes it) and not counted in jobstore_async_pending().
 * 0 sent, 1 not connected (dropped), -1 bad worker id or no memory. */
int jobstore_async_put_lanes(struct jobstore_async *ja, const struct jobstore_lane_report *r,
    unsigned ttl_ms);
/* Withdraw worker's report (a worker stopping); best effort as above. */
int jobstore_async_forget_worker(struct jobstore_async *ja, const char *worker);
/* Writes queued or sent and not yet answered. */
size_t jobstore_async_pending(const struct jobstore_async *ja);
/* 1 when connected and authenticated. */
int jobstore_async_connected(const struct jobstore_async *ja);
/* Close; callbacks of unfinished writes are NOT called. */
void jobstore_async_free(struct jobstore_async *ja);

#endif
