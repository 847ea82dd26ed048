/*
 * main.c — mxsift-worker, the fleet's probe daemon.
 *
 * One libevent loop drives everything: the probe engine's SMTP sockets
 * (engine.h), c-ares (dns.h), hiredis (jobstore.h, async) and librdkafka.
 * librdkafka's consumer queue and the producer's main queue signal one
 * non-blocking pipe when they go from empty to non-empty
 * (rd_kafka_queue_io_event_enable); the loop watches the pipe, drains it,
 * then the consumer queue with rd_kafka_consume_queue(q, 0) and the
 * producer's delivery reports with rd_kafka_poll(producer, 0).  A 100 ms
 * timer does the same, so rebalances and errors are served even when no
 * message arrives, and checks backpressure and shutdown.
 *
 * Topics: Task messages (mxsift.proto) come from the task topic and the
 * retry topic (both subscribed, one consumer group); temporary answers go to
 * the retry topic, messages that cannot be used to the dead-letter topic.
 *
 * At-least-once, exactly-once counting.  Each address of a Task ends in one
 * of two ways: a FINAL verdict, written to Redis with the idempotent Lua
 * script (first verdict wins, counted only when new); or, for a temporary
 * answer (retry.h: greylisted, temp_failure, timeout, connection_failed,
 * any other unknown 4xx) while the schedule allows another attempt, a place
 * in one retry Task (same job, MX domain and hosts, attempt + 1, not_before
 * per --retry-schedule, first_at kept for --retry-max-age) produced to the
 * retry topic keyed by MX domain.  A message is done only when every final
 * verdict has been acknowledged by Redis, its retry message has been
 * acknowledged by Kafka (delivery report, acks=all, idempotent producer) and
 * the retry counters are written.  Per partition, in-flight offsets are
 * tracked in order and only the contiguous prefix of done messages is
 * stored (rd_kafka_offsets_store); enable.auto.commit commits what was
 * stored.  A crash or a revoke therefore redoes work but never loses an
 * address: a redone address may be probed twice and may reach the retry
 * topic twice, but only its first final verdict is counted, and the retry
 * counter counts each (address, attempt) once (jobstore_count_once).
 *
 * Retry messages whose not_before lies ahead are held in memory (retry.h
 * timer queue) and started when due, without blocking anything else; their
 * offsets stay unstored meanwhile.  Holding more than --max-held pauses the
 * retry topic's partitions until half of them have been started.
 *
 * Dead letters: a message that cannot be decoded or used (not a Task, bad
 * job name, no domain, too many addresses) is produced unchanged to the
 * dead-letter topic with headers mxsift-error, mxsift-source
 * (topic/partition/offset) and mxsift-job (when known), counted in Redis
 * once per source (the job's dead/dead_addresses counters, or the global
 * mxsift:dead:counts for an unknown job), and only then is its offset
 * stored.
 *
 * Backpressure and bounds (never a busy loop, never unbounded memory):
 * consumption pauses (rd_kafka_pause_partitions; librdkafka then discards
 * what it had prefetched and refetches on resume) when started tasks reach
 * --max-tasks, when recipients in the engine plus writes not yet in Redis
 * reach --max-inflight, or while Redis is unreachable; it resumes below
 * half.  The check runs after every message, so the bound is exceeded by
 * at most one message.  Redis writes are kept (jobstore.h) and retried
 * across reconnects, so a Redis outage loses nothing.
 *
 * Rebalance: a revoked partition's messages are abandoned at once: held
 * retry messages are dropped, running ones finish their SMTP work but store
 * no offset and produce no retry message, so the new owner redoes them.
 *
 * Shutdown (SIGTERM, SIGINT): stop consuming (pause), drop held retry
 * messages, let probes in flight finish and their verdicts land for up to
 * --grace seconds, store their offsets, QUIT the SMTP sessions, commit,
 * rd_kafka_consumer_close(), exit 0.  After the grace period, unfinished
 * probes are abandoned unwritten and their messages left uncommitted, so
 * another worker redoes them: a made-up "shutting down" verdict must never
 * become a job's first (and only) one.
 *
 * Lane report: lanestatus.h writes the engine's lanes (rate against the
 * rule's, backoff, queue, sessions) to Redis every few seconds for `mxsift
 * status`, best effort beside the verdict writes; withdrawn at shutdown.
 *
 * Addresses are parsed again here (address.h) so nothing a producer sends
 * can put a control character on a socket.
 *
 * Logs (logfmt on stderr): one info line per task done (counts, no
 * addresses), assignments and revokes at info, pauses, retries scheduled and
 * dead letters at warn/error.
 * Exit codes: 0 clean stop; 1 setup failure or fatal Kafka error; 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "address.h"
#include "clock.h"
#include "config.h"
#include "dns.h"
#include "duration.h"
#include "engine.h"
#include "jobstore.h"
#include "kafka.h"
#include "lanestatus.h"
#include "lists.h"
#include "log.h"
#include "metrics.h"
#include "mxsift.pb-c.h"
#include "offsets.h"
#include "redis_url.h"
#include "retry.h"
#include "verdict.h"

#define WORKER_TICK_MS        100
#define WORKER_DRAIN_MAX      500    /* messages per loop turn, for fairness */
#define WORKER_GRACE_S        30
#define WORKER_ABORT_WAIT_MS  5000   /* after the grace: wait for Redis this long */
#define WORKER_MAX_INFLIGHT   5000
#define WORKER_MAX_TASKS      500
#define WORKER_MAX_HELD       1000
#define WORKER_MAX_SESSIONS   200    /* MX domains worked on at once */
#define WORKER_MAX_ADDRS      10000  /* per Task; more is a broken producer */
#define WORKER_REPRODUCE_MS   1000   /* after a failed produce */
#define WORKER_REDIS_GRACE_MS 1000   /* Redis unreachable this long: pause */
#define WORKER_QUIT_WAIT_MS   1000
#define WORKER_FLUSH_MS       5000

/* One assigned partition and its in-flight offsets, oldest first. */
struct wpart {
	TAILQ_ENTRY(wpart) entry;
	char *topic;
	int32_t partition;
	int is_retry;             /* a partition of the retry topic */
	int paused;               /* paused by us (rd_kafka_pause_partitions) */
	int revoked;              /* no longer tracked; freed when refs == 0 */
	unsigned refs;            /* tasks pointing here */
	struct offsets offs;      /* in flight, in order (offsets.h) */
};

struct worker;
struct wtask;

/* The engine's tag for one address of a task. */
struct wtag {
	struct wtask *t;
	size_t i;
};

enum wtask_kind { WT_TASK = 0, WT_DEAD };

/*
 * One consumed message being worked on: a Task (held until due, then
 * probed), or a dead letter on its way to the dead-letter topic.  It is
 * done when pending drops to 0; pending counts the durable steps still
 * outstanding (Redis writes, the produce) plus holds taken while code is
 * still looking at the task.
 */
struct wtask {
	TAILQ_ENTRY(wtask) entry;
	struct worker *w;
	struct wpart *part;
	int64_t offset;
	enum wtask_kind kind;
	Mxsift__Task *task;       /* WT_TASK: the decoded message */
	const char *job;          /* task->job, or dead_job, or NULL */
	char *dead_job;
	const char *mx_domain;
	struct wtag *tags;
	unsigned char *retry;     /* per address: goes to the retry topic */
	unsigned char *have;      /* per address: its verdict was in Redis already */
	size_t naddrs, nretry, unreported, pending, skipped;
	uint64_t first_at, retry_due;    /* wall-clock ms */
	uint64_t started_ms;
	unsigned by_status[VS__COUNT];
	int held;                 /* in the retry timer, not started */
	int started;              /* counted in tasks_inflight (running or waiting) */
	int waiting;              /* in w->waiting: its lane may not open a session yet */
	int running;              /* submitted to the engine: counted in w->act */
	int looked_up;            /* asked Redis which addresses have verdicts */
	int looking;              /* that lookup is unanswered */
	TAILQ_ENTRY(wtask) wentry;
	int failed;               /* do not store the offset */
	/* the outgoing message (retry or dead letter), kept for a re-produce */
	const char *out_topic;
	uint8_t *out_buf, *out_key;
	size_t out_len, out_keylen;
	char *out_error;
	char src[160];            /* topic/partition/offset of the message */
	int out_waiting;          /* re-produce at out_at (monotonic ms) */
	uint64_t out_at;
};

TAILQ_HEAD(wpart_list, wpart);
TAILQ_HEAD(wtask_list, wtask);

struct worker {
	struct event_base *base;
	struct dns *dns;
	struct engine *engine;
	struct jobstore_async *ja;
	rd_kafka_t *rk, *prod;
	rd_kafka_queue_t *q, *pq;
	int pipefd[2];
	struct event *kafka_ev, *tick, *sigterm, *sigint;
	struct retry_timer *held_q;
	struct wpart_list parts;
	struct wtask_list tasks;  /* every live, not held task */
	struct wtask_list waiting;   /* started, waiting for a session slot (FIFO) */
	size_t nwaiting, max_sessions;
	/* lanes (MX domains) with running tasks, and how many */
	struct wlane_act {
		char *key;
		unsigned tasks;
	} *act;
	size_t nact, peak_sessions, peak_lanes;
	const char *topic, *retry_topic, *dead_topic;
	struct retry_policy retry;
	size_t live;              /* tasks in the list */
	size_t tasks_inflight;    /* started Task messages */
	size_t looking_addrs;     /* addresses of those waiting for their Redis lookup */
	size_t held;
	size_t max_inflight, max_tasks, max_held;
	size_t peak_tasks, peak_inflight, peak_held;   /* high-water marks, logged at stop */
	int full, held_full;
	uint64_t redis_down_since;
	int redis_out;        /* an outage past WORKER_REDIS_GRACE_MS was logged */
	size_t redis_out_max; /* most writes held during it */
	int stopping, aborting, exit_code;
	uint64_t stop_started_ms, abort_started_ms;
	unsigned grace_s;
	uint64_t tasks_done, verdicts_written, bad_messages, retried, dead_letters;
	/* lane back-offs already counted: (MX domain, engine's count), by key */
	struct wlane_seen {
		char *key;
		unsigned long backoffs;
	} *seen;
	size_t nseen;
	uint64_t backoffs_at;     /* last look at the lanes (monotonic ms) */
	unsigned long instance;   /* tells this process's back-off events apart */
};

static void
worker_usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift-worker --brokers HOST:PORT --redis URL [OPTIONS]\n"
	    "\n"
	    "Consume address tasks from Kafka, probe each address over SMTP (one reused\n"
	    "session per MX domain, RSET between recipients, never DATA), and write one\n"
	    "verdict per address to Redis.  Run as many workers as you like with the same\n"
	    "--group: Kafka spreads the MX domains over them.  Temporary answers\n"
	    "(greylisting, 4xx, timeouts) are asked again later through the retry topic.\n"
	    "\n"
	    "Options:\n"
	    "  -b, --brokers LIST      Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]\n"
	    "  -r, --redis URL         redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
	    "  -g, --group NAME        consumer group (default %s)\n"
	    "      --topic NAME        task topic (default %s)\n"
	    "      --retry-topic NAME  retry topic, consumed and produced (default %s)\n"
	    "      --dead-topic NAME   dead-letter topic (default %s)\n"
	    "      --retry-schedule LIST  delays before attempt 2, 3, ... (default %s;\n"
	    "                          none: temporary answers are final at once)\n"
	    "      --retry-max-age DUR no attempt starts later than this after the first\n"
	    "                          (default %s; 0 = no limit)\n"
	    "      --dns HOST[:PORT]   DNS resolver to use (default: the system's)\n"
	    "      --helo NAME         EHLO name (default: this host's name)\n"
	    "      --mail-from ADDR    reverse path for MAIL FROM (default: null sender <>)\n"
	    "      --smtp-port N       SMTP port of the MX hosts (default: 25)\n"
	    "      --tls MODE          may (default: STARTTLS when offered), require, off\n"
	    "      --bind ADDR         source address of SMTP connections (an IPv4 or IPv6\n"
	    "                          address of this host; only MX addresses of its family\n"
	    "                          are tried)\n"
	    "      --connect-timeout DUR\n"
	    "                          TCP connect to one MX address (default 30s)\n"
	    "      --greeting-timeout DUR\n"
	    "                          the whole 220 greeting, from the connect (default\n"
	    "                          60s; tarpitting receivers take 30 s and more)\n"
	    "      --command-timeout DUR\n"
	    "                          the whole reply to each EHLO, HELO, STARTTLS, RSET,\n"
	    "                          MAIL, RCPT and the TLS handshake, from the command\n"
	    "                          (default 60s; RSET and TLS 30s); QUIT waits at most\n"
	    "                          10s.  A reply that arrives a byte at a time gets no\n"
	    "                          more.  1ms..1h; expiry gives unknown/timeout\n"
	    "      --no-catch-all      skip the catch-all probe (random local part per domain)\n"
	    "      --lanes FILE|none   per-MX-domain rate rules (default: lanes.conf in the\n"
	    "                          data directory, $MXSIFT_DATA_DIR); none = no limits;\n"
	    "                          SIGHUP reloads it\n"
	    "      --max-inflight N    pause consuming at N recipients queued in the engine\n"
	    "                          plus verdicts not yet in Redis (default %d)\n"
	    "      --max-tasks N       pause consuming at N task messages in progress\n"
	    "                          (default %d)\n"
	    "      --max-sessions N    work on at most N MX domains at once: their SMTP\n"
	    "                          sessions (a lane's conns each, default 1) are the\n"
	    "                          worker's; tasks of other domains wait (default %d;\n"
	    "                          0 = no cap)\n"
	    "      --max-held N        pause the retry topic at N retry messages held until\n"
	    "                          due (default %d)\n"
	    "      --grace SECONDS     on SIGTERM, time for probes in flight (default %d)\n"
	    "  -X KEY=VALUE            librdkafka property (repeatable; consumer and producer)\n"
	    "      --log-level LEVEL   debug, info (default), warn, error\n"
	    "      --log-addresses     log every verdict with its address at info level\n"
	    "                          (default: no addresses in logs below debug)\n"
	    "      --metrics-addr ADDR serve /metrics, /healthz, /readyz on IP:PORT\n"
	    "                          (default " METRICS_DEFAULT_ADDR "; off disables)\n"
	    "      --config FILE       configuration file (default $MXSIFT_CONFIG, else\n"
	    "                          /etc/mxsift/mxsift.conf if present; see mxsift-worker(1))\n"
	    "  -V, --version           print the version and exit\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Durations: 30s, 5m, 1h, 500ms (a bare number is seconds).\n"
	    "Stops cleanly on SIGTERM or SIGINT.  Exit codes: 0 stopped; 1 failure; 2 usage.\n",
	    KAFKA_DEFAULT_GROUP, KAFKA_TOPIC_TASKS, KAFKA_TOPIC_RETRY, KAFKA_TOPIC_DEAD,
	    RETRY_DEFAULT_SCHEDULE, RETRY_DEFAULT_MAX_AGE, WORKER_MAX_INFLIGHT, WORKER_MAX_TASKS,
	    WORKER_MAX_SESSIONS, WORKER_MAX_HELD, WORKER_GRACE_S);
}

/* ---- partition tracking ---------------------------------------------------- */

static struct wpart *
worker_part_find(struct worker *w, const char *topic, int32_t partition)
{
	struct wpart *p;

	TAILQ_FOREACH(p, &w->parts, entry)
		if (p->partition == partition && strcmp(p->topic, topic) == 0)
			return p;
	return NULL;
}

static struct wpart *
worker_part_add(struct worker *w, const char *topic, int32_t partition)
{
	struct wpart *p = worker_part_find(w, topic, partition);

	if (p != NULL)
		return p;
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->topic = strdup(topic)) == NULL) {
		free(p);
		return NULL;
	}
	p->partition = partition;
	p->offs.last = -1;
	p->is_retry = strcmp(topic, w->retry_topic) == 0;
	TAILQ_INSERT_TAIL(&w->parts, p, entry);
	return p;
}

static void
worker_part_release(struct wpart *p)
{
	if (p->revoked && p->refs == 0) {
		offsets_free(&p->offs);
		free(p->topic);
		free(p);
	}
}

/* Stop tracking p (revoked or shutting down); its tasks may still finish. */
static void
worker_part_drop(struct worker *w, struct wpart *p)
{
	TAILQ_REMOVE(&w->parts, p, entry);
	p->revoked = 1;
	worker_part_release(p);
}

/* Mark offset done; store the offset after the contiguous done prefix. */
static void
worker_part_done(struct worker *w, struct wpart *p, int64_t offset)
{
	int64_t next = offsets_done(&p->offs, offset);

	if (next == -1) {
		log_error("offset not tracked", "topic=%s partition=%" PRId32 " offset=%" PRId64,
		    p->topic, p->partition, offset);
		return;
	}
	if (next > 0 && !p->revoked) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_resp_err_t err;

		rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = next;
		err = rd_kafka_offsets_store(w->rk, l);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].err)
			err = l->elems[0].err;
		if (err)
			log_warn("offset store failed", "topic=%s partition=%" PRId32
			    " offset=%" PRId64 " error=%s", p->topic, p->partition, next,
			    rd_kafka_err2name(err));
		else
			log_debug("offset stored", "topic=%s partition=%" PRId32
			    " offset=%" PRId64, p->topic, p->partition, next);
		rd_kafka_topic_partition_list_destroy(l);
	}
}

/* Pause or resume one assigned partition. */
static void
worker_part_pause(struct worker *w, struct wpart *p, int pause)
{
	rd_kafka_topic_partition_list_t *l;

	if (p->paused == pause)
		return;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
	if (pause)
		rd_kafka_pause_partitions(w->rk, l);
	else
		rd_kafka_resume_partitions(w->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	p->paused = pause;
}

/*
 * Decide, for every assigned partition, whether it may be consumed: not
 * while stopping, not while the worker is full (tasks, recipients and
 * unwritten verdicts, Redis unreachable), and a retry partition not while
 * too many retry messages are held.  Hysteresis: full at the limit, not
 * full again below half of it.
 */
static void
worker_update_pause(struct worker *w)
{
	size_t inflight = engine_pending(w->engine) + jobstore_async_pending(w->ja) +
	    w->looking_addrs;
	uint64_t now = clock_mono_ms();
	int redis_ok, connected, full, held_full;
	struct wpart *p;

	if (w->tasks_inflight > w->peak_tasks)
		w->peak_tasks = w->tasks_inflight;
	if (inflight > w->peak_inflight)
		w->peak_inflight = inflight;
	if (w->held > w->peak_held)
		w->peak_held = w->held;

	if ((connected = jobstore_async_connected(w->ja)))
		w->redis_down_since = 0;
	else if (w->redis_down_since == 0)
		w->redis_down_since = now;
	redis_ok = w->redis_down_since == 0 || now - w->redis_down_since < WORKER_REDIS_GRACE_MS;
	full = w->full;
	if (!full && (w->tasks_inflight >= w->max_tasks || inflight >= w->max_inflight ||
	    !redis_ok))
		full = 1;
	else if (full && w->tasks_inflight <= w->max_tasks / 2 &&
	    inflight <= w->max_inflight / 2 && redis_ok)
		full = 0;
	if (full != w->full) {
		if (full)
			log_warn("pausing consumption", "tasks=%zu max_tasks=%zu inflight=%zu "
			    "max_inflight=%zu redis_connected=%d", w->tasks_inflight, w->max_tasks,
			    inflight, w->max_inflight, redis_ok);
		else
			log_info("resuming consumption", "tasks=%zu inflight=%zu", w->tasks_inflight,
			    inflight);
		w->full = full;
	}
	/* An outage's start and end, with what is held meanwhile: finished
	 * verdicts wait in memory (unwritten), and nothing more is consumed. */
	if (!redis_ok && !w->redis_out) {
		w->redis_out = 1;
		w->redis_out_max = 0;
		log_warn("redis unreachable: holding verdicts, consumption paused",
		    "inflight=%zu unwritten=%zu max_inflight=%zu", inflight,
		    jobstore_async_pending(w->ja), w->max_inflight);
	} else if (connected && w->redis_out) {
		/* by now the flush may be done: held_max says what was held */
		w->redis_out = 0;
		log_info("redis reachable again: writing held verdicts",
		    "held_max=%zu unwritten=%zu inflight=%zu", w->redis_out_max,
		    jobstore_async_pending(w->ja), inflight);
	}
	if (w->redis_out && jobstore_async_pending(w->ja) > w->redis_out_max)
		w->redis_out_max = jobstore_async_pending(w->ja);
	held_full = w->held_full;
	if (!held_full && w->held >= w->max_held)
		held_full = 1;
	else if (held_full && w->held <= w->max_held / 2)
		held_full = 0;
	if (held_full != w->held_full) {
		if (held_full)
			log_warn("pausing retry topic", "held=%zu max_held=%zu", w->held,
			    w->max_held);
		else
			log_info("resuming retry topic", "held=%zu", w->held);
		w->held_full = held_full;
	}
	TAILQ_FOREACH(p, &w->parts, entry)
		worker_part_pause(w, p, w->stopping || w->full || (p->is_retry && w->held_full) ||
		    w->held >= 2 * w->max_held);
}

/* ---- tasks --------------------------------------------------------------- */

static void worker_produce(struct wtask *t);
static int worker_act_add(struct worker *w, const char *key, int delta);
static void worker_part_abandon(struct worker *w, struct wpart *p);

static struct wtask *
worker_task_new(struct worker *w, struct wpart *p, int64_t offset, enum wtask_kind kind)
{
	struct wtask *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->w = w;
	t->part = p;
	t->offset = offset;
	t->kind = kind;
	t->started_ms = clock_mono_ms();
	snprintf(t->src, sizeof(t->src), "%s/%" PRId32 "/%" PRId64, p->topic, p->partition,
	    offset);
	p->refs++;
	return t;
}

static void
worker_task_free(struct wtask *t)
{
	struct wpart *p = t->part;

	if (t->task != NULL)
		mxsift__task__free_unpacked(t->task, NULL);
	free(t->dead_job);
	free(t->tags);
	free(t->retry);
	free(t->have);
	free(t->out_buf);
	free(t->out_key);
	free(t->out_error);
	free(t);
	p->refs--;
	worker_part_release(p);
}

/* Track t as live (not held). */
static void
worker_task_link(struct wtask *t)
{
	TAILQ_INSERT_TAIL(&t->w->tasks, t, entry);
	t->w->live++;
}

static void
worker_task_finish(struct wtask *t)
{
	struct worker *w = t->w;
	struct wpart *p = t->part;

	TAILQ_REMOVE(&w->tasks, t, entry);
	w->live--;
	if (t->started)
		w->tasks_inflight--;
	if (t->running)
		worker_act_add(w, t->mx_domain, -1);
	if (t->failed || w->aborting)
		log_warn("task abandoned", "job=%s partition=%" PRId32 " offset=%" PRId64
		    " mx_domain=%s addresses=%zu", t->job ? t->job : "-", p->partition,
		    t->offset, t->mx_domain ? t->mx_domain : "-", t->naddrs);
	else {
		if (t->kind == WT_TASK) {
			w->tasks_done++;
			metrics_inc(METRICS_TASKS_DONE, 1);
			log_info("task done", "job=%s topic=%s partition=%" PRId32 " offset=%" PRId64
			    " mx_domain=%s domain=%s attempt=%u addresses=%zu deliverable=%u "
			    "undeliverable=%u risky=%u unknown=%u retried=%zu skipped=%zu ms=%"
			    PRIu64, t->job, p->topic, p->partition, t->offset, t->mx_domain,
			    t->task->domain, t->task->attempt, t->naddrs,
			    t->by_status[VS_DELIVERABLE], t->by_status[VS_UNDELIVERABLE],
			    t->by_status[VS_RISKY], t->by_status[VS_UNKNOWN], t->nretry, t->skipped,
			    clock_mono_ms() - t->started_ms);
		}
		worker_part_done(w, p, t->offset);
	}
	worker_task_free(t);
}

/* One durable step (or a hold) of t is over. */
static void
worker_task_step(struct wtask *t)
{
	if (--t->pending == 0)
		worker_task_finish(t);
}

static void
worker_on_written(void *arg, int result)
{
	struct wtask *t = arg;

	(void)result;
	t->w->verdicts_written++;
	worker_task_step(t);
}

static void
worker_on_counted(void *arg, int result)
{
	(void)result;
	worker_task_step(arg);
}

/* Count an event of t's job (or globally) once; a step of t. */
static void
worker_task_count(struct wtask *t, const char *job, const char *event, const char *counter,
    uint64_t n)
{
	t->pending++;
	if (jobstore_async_count_once(t->w->ja, job, event, counter, n, worker_on_counted,
	    t) == -1) {
		log_error("counter write not queued", "job=%s counter=%s source=%s",
		    job ? job : "-", counter, t->src);
		t->failed = 1;
		t->pending--;
	}
}

/* A final verdict for address i of t: to Redis. */
static void
worker_task_write(struct wtask *t, const char *address, const struct verdict *v)
{
	struct worker *w = t->w;

	t->by_status[v->status < VS__COUNT ? v->status : VS_UNKNOWN]++;
	metrics_verdict(v);
	if (log_addresses())
		log_info("verdict", "job=%s address=\"%s\" status=%s reason=%s attempt=%u", t->job,
		    address, verdict_status_name(v->status), verdict_reason_name(v->reason),
		    t->task->attempt);
	else
		log_debug("verdict", "job=%s status=%s reason=%s attempt=%u", t->job,
		    verdict_status_name(v->status), verdict_reason_name(v->reason),
		    t->task->attempt);
	t->pending++;
	if (metrics_put_verdict(w->ja, t->job, address, address, v, worker_on_written, t) == -1) {
		log_error("verdict write not queued", "job=%s partition=%" PRId32
		    " offset=%" PRId64, t->job, t->part->partition, t->offset);
		t->failed = 1;
		t->pending--;
	}
}

/* Every address of t has its answer: send the temporary ones to the retry
 * topic as one Task. */
static void
worker_task_reported(struct wtask *t)
{
	struct worker *w = t->w;
	Mxsift__Task rt;
	Mxsift__Address **addrs;
	size_t n = 0;

	if (t->nretry == 0)
		return;
	if (t->failed || w->aborting || t->part->revoked) {
		t->failed = 1;    /* the message is redone by its next owner */
		return;
	}
	if ((addrs = calloc(t->nretry, sizeof(*addrs))) == NULL) {
		log_error("out of memory", "job=%s source=%s", t->job, t->src);
		t->failed = 1;
		return;
	}
	for (size_t i = 0; i < t->naddrs; i++)
		if (t->retry[i])
			addrs[n++] = t->task->addresses[i];
	rt = *t->task;
	rt.n_addresses = n;
	rt.addresses = addrs;
	rt.attempt = t->task->attempt + 1;
	rt.not_before = (int64_t)t->retry_due;
	rt.first_at = (int64_t)t->first_at;
	t->out_len = mxsift__task__get_packed_size(&rt);
	t->out_buf = malloc(t->out_len ? t->out_len : 1);
	t->out_keylen = strlen(t->mx_domain);
	t->out_key = malloc(t->out_keylen ? t->out_keylen : 1);
	if (t->out_buf == NULL || t->out_key == NULL) {
		log_error("out of memory", "job=%s source=%s", t->job, t->src);
		t->failed = 1;
		free(addrs);
		return;
	}
	mxsift__task__pack(&rt, t->out_buf);
	memcpy(t->out_key, t->mx_domain, t->out_keylen);
	free(addrs);
	t->out_topic = w->retry_topic;
	log_info("retry scheduled", "job=%s source=%s mx_domain=%s addresses=%zu attempt=%u "
	    "in_ms=%" PRId64, t->job, t->src, t->mx_domain, n, rt.attempt,
	    (int64_t)(t->retry_due - retry_wall_ms()));
	t->pending++;
	worker_produce(t);
}

/* The answer for address i of t. */
static void
worker_task_answer(struct wtask *t, size_t i, const struct verdict *v)
{
	struct worker *w = t->w;
	const char *address = t->task->addresses[i]->address;
	uint64_t due;

	/* the address's own step: released last, so t outlives this function */
	t->unreported--;
	if (w->aborting) {
		/* abandoned: the message stays uncommitted and is redone */
		t->failed = 1;
	} else if (retry_verdict_temporary(v) && !t->part->revoked &&
	    retry_next(&w->retry, t->task->attempt, t->first_at, retry_wall_ms(), &due)) {
		t->retry[i] = 1;
		t->nretry++;
		if (due > t->retry_due)
			t->retry_due = due;
		log_debug("temporary answer", "job=%s reason=%s code=%d attempt=%u", t->job,
		    verdict_reason_name(v->reason), v->smtp_code, t->task->attempt);
	} else {
		struct verdict fv = *v;

		fv.attempts += t->task->attempt;
		if (t->task->attempt > 0 && retry_verdict_temporary(v) && fv.detail[0] == '\0')
			snprintf(fv.detail, sizeof(fv.detail), "final after %u attempts",
			    t->task->attempt + 1);
		worker_task_write(t, address, &fv);
	}
	if (t->unreported == 0)
		worker_task_reported(t);
	worker_task_step(t);
}

/* Address i of t has a verdict in Redis already (an earlier delivery of
 * this message, or of a retry of it, wrote it; first wins, so probing it
 * again could change nothing): answered without a probe or a write. */
static void
worker_task_skip(struct wtask *t, size_t i)
{
	(void)i;
	t->skipped++;
	metrics_inc(METRICS_ADDRESSES_SKIPPED, 1);
	t->unreported--;
	if (t->unreported == 0)
		worker_task_reported(t);
	worker_task_step(t);
}

static void
worker_on_probe(void *arg, void *tag, const char *address, const struct verdict *v)
{
	struct wtag *g = tag;

	(void)arg;
	(void)address;
	worker_task_answer(g->t, g->i, v);
}

/* ---- the session cap: lanes allowed to work at once ----------------------- */

static struct wlane_act *
worker_act_find(struct worker *w, const char *key)
{
	for (size_t i = 0; i < w->nact; i++)
		if (strcmp(w->act[i].key, key) == 0)
			return &w->act[i];
	return NULL;
}

/* A task of lane key starts (+1) or ends (-1) running.  0 or -1 (memory). */
static int
worker_act_add(struct worker *w, const char *key, int delta)
{
	struct wlane_act *a = worker_act_find(w, key);

	if (a == NULL && delta > 0) {
		struct wlane_act *na = realloc(w->act, (w->nact + 1) * sizeof(*na));

		if (na == NULL)
			return -1;
		w->act = na;
		if ((w->act[w->nact].key = strdup(key)) == NULL)
			return -1;
		w->act[w->nact].tasks = 0;
		a = &w->act[w->nact++];
		if (w->nact > w->peak_lanes)
			w->peak_lanes = w->nact;
	}
	if (a == NULL)
		return 0;
	if (delta > 0)
		a->tasks++;
	else if (--a->tasks == 0) {
		free(a->key);
		*a = w->act[--w->nact];
	}
	return 0;
}

/*
 * Sessions in use or about to be: every SMTP connection the engine holds
 * (busy, idle or saying QUIT, per lane), plus one for each lane with running
 * tasks that has none yet.  A lane has up to its rule's conns connections
 * (default 1); a session being recycled says QUIT while its successor
 * connects, so for a moment a lane may hold one more.
 */
static size_t
worker_sessions_busy(struct worker *w)
{
	struct engine_lane_stats *ls;
	size_t n, cap = 64, busy = 0;

	for (;;) {
		if ((ls = calloc(cap, sizeof(*ls))) == NULL)
			return w->max_sessions;   /* no memory: admit nothing new */
		if ((n = engine_get_lane_stats(w->engine, ls, cap)) <= cap)
			break;
		free(ls);
		cap = n;
	}
	for (size_t i = 0; i < n; i++)
		busy += ls[i].conns;
	for (size_t i = 0; i < w->nact; i++) {
		size_t j;

		for (j = 0; j < n; j++)
			if (strcmp(ls[j].key, w->act[i].key) == 0)
				break;
		if (j == n || ls[j].conns == 0)
			busy++;
	}
	free(ls);
	if (busy > w->peak_sessions)
		w->peak_sessions = busy;
	return busy;
}

static void worker_task_run(struct wtask *t);

/* Start what waits for a session slot, in arrival order, as far as the cap
 * allows (a task of a lane already working never waits). */
static void
worker_admit_waiting(struct worker *w)
{
	struct wtask *t, *next;
	size_t busy = 0;
	int counted = 0;

	for (t = TAILQ_FIRST(&w->waiting); t != NULL; t = next) {
		next = TAILQ_NEXT(t, wentry);
		if (worker_act_find(w, t->mx_domain) == NULL) {
			if (!counted) {
				busy = worker_sessions_busy(w);
				counted = 1;
			}
			if (busy >= w->max_sessions)
				continue;
			busy++;
		}
		TAILQ_REMOVE(&w->waiting, t, wentry);
		w->nwaiting--;
		t->waiting = 0;
		worker_task_run(t);
	}
}

/* Drop waiting tasks (of partition p, or all when p is NULL): never run,
 * never stored, redelivered to whoever owns the partition next. */
static size_t
worker_drop_waiting(struct worker *w, struct wpart *p)
{
	struct wtask *t, *next;
	size_t n = 0;

	for (t = TAILQ_FIRST(&w->waiting); t != NULL; t = next) {
		next = TAILQ_NEXT(t, wentry);
		if (p != NULL && t->part != p)
			continue;
		TAILQ_REMOVE(&w->waiting, t, wentry);
		w->nwaiting--;
		t->waiting = 0;
		t->failed = 1;
		worker_task_finish(t);
		n++;
	}
	return n;
}

/* It runs now, or waits while --max-sessions lanes are busy with others. */
static void
worker_task_admit(struct wtask *t)
{
	struct worker *w = t->w;

	if (w->max_sessions > 0 && worker_act_find(w, t->mx_domain) == NULL &&
	    (w->nwaiting > 0 || worker_sessions_busy(w) >= w->max_sessions)) {
		t->waiting = 1;
		TAILQ_INSERT_TAIL(&w->waiting, t, wentry);
		w->nwaiting++;
		log_debug("task waits for a session slot", "job=%s source=%s mx_domain=%s "
		    "waiting=%zu", t->job, t->src, t->mx_domain, w->nwaiting);
		return;
	}
	worker_task_run(t);
}

static void
worker_on_have(void *arg, const unsigned char *have, size_t n)
{
	struct wtask *t = arg;
	struct worker *w = t->w;

	t->looking = 0;
	w->looking_addrs -= t->naddrs;
	if (have != NULL && n == t->naddrs && (t->have = malloc(n)) != NULL)
		memcpy(t->have, have, n);
	if (w->aborting || w->stopping || t->part->revoked) {
		/* its partition went, or the worker is stopping (nothing new
		 * starts then, like the waiting tasks worker_begin_stop drops):
		 * redone by the partition's next owner */
		t->failed = 1;
		worker_task_finish(t);
	} else
		worker_task_admit(t);
	worker_update_pause(w);
}

/*
 * A task to work on (a fresh message, or a held retry now due).  First ask
 * Redis which of its addresses have a verdict already: a message delivered
 * again (a worker killed before its offset was committed, a consumer group
 * that reads the topic from the start) then costs no SMTP traffic for what
 * is done.  Best effort: without an answer every address is probed, and
 * the job store's first-wins keeps the counts right either way.
 */
static void
worker_task_start(struct wtask *t)
{
	struct worker *w = t->w;
	const char **fields;
	int rc = 1;

	worker_task_link(t);
	t->started = 1;
	w->tasks_inflight++;
	if (!t->looked_up && t->naddrs > 0) {
		t->looked_up = 1;
		if ((fields = calloc(t->naddrs, sizeof(*fields))) != NULL) {
			for (size_t i = 0; i < t->naddrs; i++)
				fields[i] = t->task->addresses[i]->address;
			rc = jobstore_async_have_verdicts(w->ja, t->job, fields, t->naddrs,
			    worker_on_have, t);
			free(fields);
		}
		if (rc == 0) {
			t->looking = 1;
			w->looking_addrs += t->naddrs;
			return;
		}
	}
	worker_task_admit(t);
}

/* Probe every address of t. */
static void
worker_task_run(struct wtask *t)
{
	struct worker *w = t->w;
	Mxsift__Task *task = t->task;
	struct engine_mx_host *hosts;
	unsigned flags;

	if (worker_act_add(w, t->mx_domain, 1) == 0)
		t->running = 1;
	t->started_ms = clock_mono_ms();
	t->first_at = task->first_at > 0 ? (uint64_t)task->first_at : retry_wall_ms();
	/* one step per address (its answer), one until all are submitted */
	t->pending = t->naddrs + 1;
	t->unreported = t->naddrs;
	hosts = calloc(task->n_mx_hosts ? task->n_mx_hosts : 1, sizeof(*hosts));
	if (hosts == NULL) {
		log_error("out of memory", "source=%s", t->src);
		t->failed = 1;
		t->pending = 1;   /* no address was submitted: only this step is left */
		t->unreported = 0;
		worker_task_step(t);
		return;
	}
	for (size_t i = 0; i < task->n_mx_hosts; i++) {
		hosts[i].name = task->mx_hosts[i]->name;
		hosts[i].preference = task->mx_hosts[i]->preference;
	}
	log_debug("task started", "job=%s source=%s mx_domain=%s domain=%s addresses=%zu "
	    "attempt=%u", t->job, t->src, t->mx_domain, task->domain, t->naddrs, task->attempt);
	for (size_t i = 0; i < t->naddrs; i++) {
		const char *a = task->addresses[i]->address;
		struct probe_req req = { 0 };
		struct address parsed;
		enum addr_err aerr;

		t->tags[i].t = t;
		t->tags[i].i = i;
		if (t->have != NULL && t->have[i]) {
			worker_task_skip(t, i);
			continue;
		}
		aerr = address_parse(a, strlen(a), &parsed);
		if (aerr != ADDR_OK || strcasecmp(parsed.domain, task->domain) != 0) {
			/* the coordinator checks syntax; this is a bad producer */
			struct verdict v;
			verdict_init(&v, VR_INVALID_SYNTAX);
			snprintf(v.detail, sizeof(v.detail), "%s",
			    aerr != ADDR_OK ? address_err_name(aerr) : "domain_mismatch");
			worker_task_answer(t, i, &v);
			continue;
		}
		flags = task->implicit_mx ? VERDICT_F_IMPLICIT_MX : 0;
		if (task->addresses[i]->smtputf8 || (parsed.flags & ADDR_F_SMTPUTF8))
			flags |= VERDICT_F_SMTPUTF8;
		req.address = a;
		req.domain = task->domain;
		req.mx_domain = t->mx_domain;
		req.hosts = hosts;
		req.nhosts = task->n_mx_hosts;
		req.flags = flags;
		req.tag = &t->tags[i];
		/* -1 means unusable, and the done callback still fires for it */
		(void)engine_submit(w->engine, &req);
	}
	free(hosts);
	if (t->skipped > 0)
		log_info("addresses already answered", "job=%s source=%s mx_domain=%s "
		    "skipped=%zu addresses=%zu", t->job, t->src, t->mx_domain, t->skipped,
		    t->naddrs);
	worker_task_step(t);
}

/* ---- retry messages held until due --------------------------------------- */

static void
worker_held_due(void *arg, void *item)
{
	struct worker *w = arg;
	struct wtask *t = item;

	w->held--;
	t->held = 0;
	worker_task_start(t);
	worker_update_pause(w);
}

static void
worker_held_drop(void *arg, void *item)
{
	struct worker *w = arg;

	w->held--;
	worker_task_free(item);
}

static int
worker_held_match_part(void *arg, void *item)
{
	struct wtask *t = item;

	return arg == NULL || t->part == arg;
}

/* ---- producing: retry messages and dead letters ---------------------------- */

static void
worker_produce(struct wtask *t)
{
	struct worker *w = t->w;
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	rd_kafka_resp_err_t err;

	t->out_waiting = 0;
	rd_kafka_header_add(h, "mxsift-source", -1, t->src, -1);
	if (t->out_error != NULL)
		rd_kafka_header_add(h, "mxsift-error", -1, t->out_error, -1);
	if (t->job != NULL)
		rd_kafka_header_add(h, "mxsift-job", -1, t->job, -1);
	err = rd_kafka_producev(w->prod, RD_KAFKA_V_TOPIC(t->out_topic),
	    RD_KAFKA_V_KEY(t->out_keylen ? t->out_key : NULL, t->out_keylen), RD_KAFKA_V_VALUE(t->out_buf, t->out_len),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
	    RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
	if (err) {
		rd_kafka_headers_destroy(h);   /* only taken over on success */
		log_warn("produce failed", "topic=%s source=%s error=%s", t->out_topic, t->src,
		    rd_kafka_err2name(err));
		t->out_waiting = 1;
		t->out_at = clock_mono_ms() + WORKER_REPRODUCE_MS;
	}
}

/* Delivery report of a retry message or dead letter (from rd_kafka_poll). */
static void
worker_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct worker *w = opaque;
	struct wtask *t = m->_private;
	char event[1200];

	(void)rk;
	if (t == NULL)
		return;
	if (m->err) {
		if (w->aborting || t->part->revoked) {
			t->failed = 1;
			worker_task_step(t);
			return;
		}
		log_warn("delivery failed, producing again", "topic=%s source=%s error=%s",
		    t->out_topic, t->src, rd_kafka_err2name(m->err));
		t->out_waiting = 1;
		t->out_at = clock_mono_ms() + WORKER_REPRODUCE_MS;
		return;
	}
	if (t->kind == WT_DEAD) {
		w->dead_letters++;
		metrics_inc(METRICS_DEAD_LETTERS, 1);
		snprintf(event, sizeof(event), "dead:%s", t->src);
		worker_task_count(t, t->job, event, JOBSTORE_C_DEAD, 1);
		if (t->job != NULL && t->naddrs > 0) {
			snprintf(event, sizeof(event), "dead_addresses:%s", t->src);
			worker_task_count(t, t->job, event, JOBSTORE_C_DEAD_ADDRESSES, t->naddrs);
		}
	} else {
		/* once per (address, attempt), however often it is redone */
		w->retried += t->nretry;
		metrics_inc(METRICS_RETRIES_SCHEDULED, t->nretry);
		for (size_t i = 0; i < t->naddrs; i++) {
			if (!t->retry[i])
				continue;
			snprintf(event, sizeof(event), "retry:%u:%s", t->task->attempt + 1,
			    t->task->addresses[i]->address);
			worker_task_count(t, t->job, event, JOBSTORE_C_RETRIED, 1);
		}
	}
	worker_task_step(t);
}

/* m cannot be used: hand it, unchanged, to the dead-letter topic. */
static void
worker_dead_letter(struct worker *w, struct wpart *p, const rd_kafka_message_t *m,
    const char *why, const char *job, size_t naddrs)
{
	struct wtask *t = worker_task_new(w, p, m->offset, WT_DEAD);

	w->bad_messages++;
	metrics_inc(METRICS_BAD_MESSAGES, 1);
	log_error("undecodable task", "topic=%s partition=%" PRId32 " offset=%" PRId64
	    " bytes=%zu reason=\"%s\" job=%s dead_topic=%s", p->topic, m->partition, m->offset,
	    m->len, why, job ? job : "-", w->dead_topic);
	if (t == NULL)
		return;   /* never done: not committed, redelivered after restart */
	t->naddrs = naddrs;
	t->out_topic = w->dead_topic;
	t->out_len = m->len;
	t->out_keylen = m->key_len;
	t->out_buf = malloc(m->len ? m->len : 1);
	t->out_key = malloc(m->key_len ? m->key_len : 1);
	t->out_error = strdup(why);
	if (job != NULL)
		t->job = t->dead_job = strdup(job);
	if (t->out_buf == NULL || t->out_key == NULL || t->out_error == NULL ||
	    (job != NULL && t->dead_job == NULL)) {
		log_error("out of memory", "source=%s", t->src);
		worker_task_free(t);
		return;
	}
	if (m->len > 0)
		memcpy(t->out_buf, m->payload, m->len);
	if (m->key_len > 0)
		memcpy(t->out_key, m->key, m->key_len);
	worker_task_link(t);
	t->pending = 1;
	worker_produce(t);
}

/* Decode one message and start it, hold it, or dead-letter it.  The
 * message is destroyed by the caller. */
static void
worker_handle_message(struct worker *w, const rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	Mxsift__Task *task;
	struct wpart *p;
	struct wtask *t;
	const char *why = NULL;

	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_warn("kafka consume error", "topic=%s partition=%" PRId32 " error=%s",
			    m->rkt ? topic : "-", m->partition, rd_kafka_err2name(m->err));
		return;
	}
	if (w->stopping)
		return;   /* not started: stays uncommitted, redelivered later */
	if ((p = worker_part_add(w, topic, m->partition)) != NULL &&
	    p->offs.last >= 0 && m->offset <= p->offs.last) {
		/* Rewound (an offset reset): what is in flight may never be
		 * stored; start this partition's bookkeeping over. */
		log_warn("partition rewound", "topic=%s partition=%" PRId32 " offset=%" PRId64
		    " last=%" PRId64, topic, m->partition, m->offset, p->offs.last);
		worker_part_abandon(w, p);
		p = worker_part_add(w, topic, m->partition);
	}
	if (p == NULL || offsets_push(&p->offs, m->offset) == -1) {
		log_error("out of memory", "topic=%s partition=%" PRId32, topic, m->partition);
		return;
	}
	task = mxsift__task__unpack(NULL, m->len, m->payload);
	if (task == NULL)
		why = "not a Task (protobuf decoding failed)";
	else if (!jobstore_valid_name(task->job))
		why = "bad job name";
	else if (task->domain[0] == '\0')
		why = "no domain";
	else if (task->n_addresses > WORKER_MAX_ADDRS)
		why = "too many addresses";
	if (why != NULL) {
		worker_dead_letter(w, p, m, why,
		    task != NULL && jobstore_valid_name(task->job) ? task->job : NULL,
		    task != NULL ? task->n_addresses : 0);
		if (task != NULL)
			mxsift__task__free_unpacked(task, NULL);
		return;
	}
	t = worker_task_new(w, p, m->offset, WT_TASK);
	if (t != NULL) {
		t->task = task;
		t->job = task->job;
		t->mx_domain = task->mx_domain[0] ? task->mx_domain : task->domain;
		t->naddrs = task->n_addresses;
		t->tags = calloc(t->naddrs ? t->naddrs : 1, sizeof(*t->tags));
		t->retry = calloc(t->naddrs ? t->naddrs : 1, 1);
	}
	if (t == NULL || t->tags == NULL || t->retry == NULL) {
		log_error("out of memory", "topic=%s partition=%" PRId32 " offset=%" PRId64,
		    topic, m->partition, m->offset);
		if (t != NULL)
			worker_task_free(t);   /* frees task too */
		else
			mxsift__task__free_unpacked(task, NULL);
		return;   /* never done: not committed, redelivered after restart */
	}
	if (task->not_before > 0 && (uint64_t)task->not_before > retry_wall_ms()) {
		if (retry_timer_add(w->held_q, t, (uint64_t)task->not_before) == -1) {
			log_error("out of memory", "source=%s", t->src);
			worker_task_free(t);
			return;
		}
		t->held = 1;
		w->held++;
		log_debug("retry held", "job=%s source=%s attempt=%u due_in_ms=%" PRId64, t->job,
		    t->src, task->attempt, task->not_before - (int64_t)retry_wall_ms());
		return;
	}
	worker_task_start(t);
}

/* ---- Kafka on the loop ---------------------------------------------------- */

static void
worker_format_parts(const rd_kafka_topic_partition_list_t *l, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; i < l->cnt && o + 1 < outlen; i++) {
		int n = snprintf(out + o, outlen - o, "%s%s/%" PRId32, i ? "," : "",
		    l->elems[i].topic, l->elems[i].partition);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

/* Forget p: its held retry messages are dropped, its running tasks store
 * nothing; the next owner gets all of them again. */
static void
worker_part_abandon(struct worker *w, struct wpart *p)
{
	size_t held = retry_timer_remove_if(w->held_q, worker_held_match_part, worker_held_drop,
	    p);

	held += worker_drop_waiting(w, p);

	if (offsets_pending(&p->offs) > 0)
		log_info("dropping in-flight messages of revoked partition", "topic=%s partition=%"
		    PRId32 " inflight=%zu held=%zu", p->topic, p->partition,
		    offsets_pending(&p->offs), held);
	worker_part_drop(w, p);
}

static void
worker_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct worker *w = opaque;
	char list[1024];

	worker_format_parts(parts, list, sizeof(list));
	switch (err) {
	case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
		log_info("partitions assigned", "count=%d partitions=%s", parts->cnt, list);
		metrics_set_flag(METRICS_KAFKA_JOINED, 1);
		for (int i = 0; i < parts->cnt; i++) {
			/* fresh tracking: whatever was in flight before is redelivered */
			struct wpart *p = worker_part_find(w, parts->elems[i].topic,
			    parts->elems[i].partition);
			if (p != NULL)
				worker_part_abandon(w, p);
			if (worker_part_add(w, parts->elems[i].topic,
			    parts->elems[i].partition) == NULL)
				log_error("out of memory", "partition=%" PRId32,
				    parts->elems[i].partition);
		}
		rd_kafka_assign(rk, parts);
		worker_update_pause(w);
		break;
	case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
		log_info("partitions revoked", "count=%d partitions=%s", parts->cnt, list);
		for (int i = 0; i < parts->cnt; i++) {
			struct wpart *p = worker_part_find(w, parts->elems[i].topic,
			    parts->elems[i].partition);
			if (p != NULL)
				worker_part_abandon(w, p);
		}
		rd_kafka_assign(rk, NULL);
		break;
	default:
		log_error("rebalance failed", "error=%s", rd_kafka_err2name(err));
		rd_kafka_assign(rk, NULL);
		break;
	}
}

static void
worker_drain_queue(struct worker *w)
{
	rd_kafka_message_t *m;
	int n = 0;

	rd_kafka_poll(w->prod, 0);    /* delivery reports */
	while (n < WORKER_DRAIN_MAX && (m = rd_kafka_consume_queue(w->q, 0)) != NULL) {
		/* Every message handed to us is handled: librdkafka's position
		 * has moved past it.  Pausing after it (when the worker became
		 * full) makes librdkafka discard what it prefetched and fetch it
		 * again on resume, so the bound is passed by one message at most. */
		worker_handle_message(w, m);
		rd_kafka_message_destroy(m);
		worker_update_pause(w);
		n++;
	}
	if (w->nwaiting > 0)
		worker_admit_waiting(w);
	/* More may be waiting: come back on the next loop turn rather than
	 * starve the SMTP sockets. */
	if (n == WORKER_DRAIN_MAX)
		event_active(w->kafka_ev, EV_READ, 0);
}

static void
worker_on_kafka(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char buf[256];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	worker_drain_queue(w);
}

static void
worker_begin_stop(struct worker *w, const char *why)
{
	size_t dropped;

	if (w->stopping)
		return;
	w->stopping = 1;
	metrics_set_flag(METRICS_STOPPING, 1);
	w->stop_started_ms = clock_mono_ms();
	/* Held retry messages are not started any more: the next owner does. */
	dropped = retry_timer_remove_if(w->held_q, worker_held_match_part, worker_held_drop, NULL);
	dropped += worker_drop_waiting(w, NULL);
	log_info("stopping", "reason=%s tasks_inflight=%zu probes_pending=%zu held_dropped=%zu "
	    "grace_s=%u", why, w->tasks_inflight, engine_pending(w->engine), dropped, w->grace_s);
	worker_update_pause(w);
}

/* Re-produce what failed, or give it up when aborting. */
static void
worker_reproduce(struct worker *w, uint64_t now)
{
	struct wtask *t, *next;

	for (t = TAILQ_FIRST(&w->tasks); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (!t->out_waiting)
			continue;
		if (w->aborting || t->part->revoked) {
			t->out_waiting = 0;
			t->failed = 1;
			worker_task_step(t);
		} else if (now >= t->out_at)
			worker_produce(t);
	}
}

static int
worker_seen_cmp(const void *a, const void *b)
{
	return strcmp(((const struct wlane_seen *)a)->key, ((const struct wlane_seen *)b)->key);
}

/*
 * Back-offs: the engine pauses a lane on rate-limit answers.  Once a
 * second, each lane's new pauses are counted to the job of a task in
 * flight on that lane (the job whose probes were slowed; with several jobs
 * on one lane, the first found), as job counter backed_off.  The event id
 * (this process, lane, the engine's running count) keeps a resent write
 * from counting twice.
 */
static void
worker_account_backoffs(struct worker *w)
{
	struct engine_lane_stats *ls;
	size_t n, cap = 64;

	for (;;) {
		if ((ls = calloc(cap, sizeof(*ls))) == NULL)
			return;
		if ((n = engine_get_lane_stats(w->engine, ls, cap)) <= cap)
			break;
		free(ls);
		cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		struct wlane_seen key = { .key = (char *)ls[i].key }, *seen;
		struct wtask *t;
		char event[300];

		if (ls[i].backoffs == 0)
			continue;
		seen = w->nseen == 0 ? NULL :
		    bsearch(&key, w->seen, w->nseen, sizeof(*w->seen), worker_seen_cmp);
		if (seen == NULL) {
			struct wlane_seen *ns = realloc(w->seen, (w->nseen + 1) * sizeof(*ns));
			char *k = strdup(ls[i].key);

			if (ns == NULL || k == NULL) {
				free(k);
				if (ns != NULL)
					w->seen = ns;
				break;
			}
			w->seen = ns;
			w->seen[w->nseen].key = k;
			w->seen[w->nseen].backoffs = 0;
			seen = &w->seen[w->nseen++];
			qsort(w->seen, w->nseen, sizeof(*w->seen), worker_seen_cmp);
			seen = bsearch(&key, w->seen, w->nseen, sizeof(*w->seen), worker_seen_cmp);
		}
		if (ls[i].backoffs <= seen->backoffs)
			continue;
		TAILQ_FOREACH(t, &w->tasks, entry)
			if (t->kind == WT_TASK && t->started && strcmp(t->mx_domain, ls[i].key) == 0)
				break;
		log_info("lane backed off", "mx_domain=%s backoffs=%lu rate=%.3f job=%s", ls[i].key,
		    ls[i].backoffs, ls[i].rate, t != NULL ? t->job : "-");
		if (t != NULL) {
			snprintf(event, sizeof(event), "backoff:%lx:%s:%lu", w->instance, ls[i].key,
			    ls[i].backoffs);
			(void)jobstore_async_count_once(w->ja, t->job, event, JOBSTORE_C_BACKED_OFF,
			    ls[i].backoffs - seen->backoffs, NULL, NULL);
		}
		seen->backoffs = ls[i].backoffs;
	}
	free(ls);
}

static void
worker_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t now = clock_mono_ms();

	(void)fd;
	(void)what;
	worker_drain_queue(w);
	worker_reproduce(w, now);
	if (w->max_sessions > 0)
		(void)worker_sessions_busy(w);   /* the high-water mark */
	if (now - w->backoffs_at >= 1000) {
		w->backoffs_at = now;
		worker_account_backoffs(w);
	}
	if (kafka_fatal_seen() && w->exit_code == 0) {
		w->exit_code = 1;
		worker_begin_stop(w, "kafka_fatal");
	}
	worker_update_pause(w);
	if (!w->stopping)
		return;
	if (w->live == 0 && jobstore_async_pending(w->ja) == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	if (!w->aborting && now - w->stop_started_ms > (uint64_t)w->grace_s * 1000) {
		log_warn("grace period over: abandoning unfinished tasks",
		    "tasks_inflight=%zu probes_pending=%zu", w->tasks_inflight,
		    engine_pending(w->engine));
		w->aborting = 1;
		w->abort_started_ms = now;
		engine_shutdown(w->engine);
	}
	if (w->aborting && now - w->abort_started_ms > WORKER_ABORT_WAIT_MS) {
		log_warn("giving up on unwritten verdicts", "pending=%zu",
		    jobstore_async_pending(w->ja));
		event_base_loopbreak(w->base);
	}
}

static const char *worker_lanes_file; /* --lanes, reloaded on SIGHUP */
static char lanes_default[4096];      /* DATA_DIR/lanes.conf */

static void
worker_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;
	char err[256];

	(void)sig;
	(void)what;
	if (engine_reload_rules(w->engine, worker_lanes_file, err, sizeof(err)) != 0)
		log_error("lane rules not reloaded", "error=\"%s\"", err);
}

static void
worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	worker_begin_stop(arg, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int
worker_parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* The producer's configuration: the same brokers and -X options as the
 * consumer (security settings apply to both) but its consumer-only ones,
 * idempotent, acks=all.  NULL with err. */
static rd_kafka_conf_t *
worker_producer_conf(const char *brokers, const struct kafka_xopts *xopts, char *err,
    size_t errlen)
{
	struct kafka_xopts px = { 0 };
	rd_kafka_conf_t *conf = NULL;
	size_t i;

	for (i = 0; i < xopts->n; i++)
		if (!kafka_key_consumer_only(xopts->kv[i]) &&
		    kafka_xopts_add(&px, xopts->kv[i], err, errlen) == -1)
			break;
	if (i == xopts->n)
		conf = kafka_producer_conf(brokers, &px, err, errlen);
	kafka_xopts_free(&px);
	if (conf != NULL &&
	    kafka_conf_set(conf, "client.id", "mxsift-worker-producer", err, errlen) == -1) {
		rd_kafka_conf_destroy(conf);
		conf = NULL;
	}
	return conf;
}

/* The producer for retry messages and dead letters, from conf
 * (worker_producer_conf), which it takes over in any case. */
static rd_kafka_t *
worker_producer_new(struct worker *w, rd_kafka_conf_t *conf)
{
	rd_kafka_t *rk;
	char err[512];

	rd_kafka_conf_set_dr_msg_cb(conf, worker_on_delivery);
	rd_kafka_conf_set_opaque(conf, w);
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) == NULL) {
		log_error("kafka producer setup failed", "error=\"%s\"", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return rk;   /* conf is owned by rk now */
}

/* --connect-timeout, --greeting-timeout, --command-timeout: *ms, or -1
 * after saying what to fix (the value may come from the configuration
 * file or MXSIFT_*: config.c has checked those and named the place). */
static int
worker_timeout_opt(const char *name, const char *v, unsigned *ms)
{
	const char *why = duration_parse_timeout(v, ms);

	if (why == NULL)
		return 0;
	fprintf(stderr, "mxsift-worker: --%s %s, not '%s'\n", name, why, v);
	return -1;
}

int
main(int argc, char **argv)
{
	enum { OPT_TOPIC = 256, OPT_DNS, OPT_HELO, OPT_MAIL_FROM, OPT_SMTP_PORT, OPT_TLS,
		OPT_MAX_INFLIGHT, OPT_GRACE, OPT_LOG_LEVEL, OPT_METRICS_ADDR, OPT_LOG_ADDRESSES,
		OPT_RETRY_TOPIC, OPT_DEAD_TOPIC, OPT_RETRY_SCHEDULE, OPT_RETRY_MAX_AGE,
		OPT_MAX_TASKS, OPT_MAX_HELD, OPT_MAX_SESSIONS, OPT_NO_CATCH_ALL, OPT_LANES, OPT_BIND,
		OPT_CONNECT_TIMEOUT, OPT_GREETING_TIMEOUT, OPT_COMMAND_TIMEOUT };
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "redis", required_argument, NULL, 'r' },
		{ "group", required_argument, NULL, 'g' },
		{ "topic", required_argument, NULL, OPT_TOPIC },
		{ "retry-topic", required_argument, NULL, OPT_RETRY_TOPIC },
		{ "dead-topic", required_argument, NULL, OPT_DEAD_TOPIC },
		{ "retry-schedule", required_argument, NULL, OPT_RETRY_SCHEDULE },
		{ "retry-max-age", required_argument, NULL, OPT_RETRY_MAX_AGE },
		{ "dns", required_argument, NULL, OPT_DNS },
		{ "helo", required_argument, NULL, OPT_HELO },
		{ "mail-from", required_argument, NULL, OPT_MAIL_FROM },
		{ "smtp-port", required_argument, NULL, OPT_SMTP_PORT },
		{ "tls", required_argument, NULL, OPT_TLS },
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
		{ "max-tasks", required_argument, NULL, OPT_MAX_TASKS },
		{ "max-held", required_argument, NULL, OPT_MAX_HELD },
		{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "metrics-addr", required_argument, NULL, OPT_METRICS_ADDR },
		{ "log-addresses", no_argument, NULL, OPT_LOG_ADDRESSES },
		{ "no-catch-all", no_argument, NULL, OPT_NO_CATCH_ALL },
		{ "lanes", required_argument, NULL, OPT_LANES },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
		{ "greeting-timeout", required_argument, NULL, OPT_GREETING_TIMEOUT },
		{ "command-timeout", required_argument, NULL, OPT_COMMAND_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker w = { .pipefd = { -1, -1 }, .max_inflight = WORKER_MAX_INFLIGHT,
		.max_tasks = WORKER_MAX_TASKS, .max_held = WORKER_MAX_HELD,
		.max_sessions = WORKER_MAX_SESSIONS,
		.grace_s = WORKER_GRACE_S, .topic = KAFKA_TOPIC_TASKS,
		.retry_topic = KAFKA_TOPIC_RETRY, .dead_topic = KAFKA_TOPIC_DEAD };
	struct engine_params ep = { .smtp_port = 25, .tls = ENGINE_TLS_MAY, .mail_from = "" };
	struct event *sighup = NULL;
	struct lanestatus *lstat = NULL;   /* lane report for `mxsift status` */
	struct kafka_xopts xopts = { 0 };
	const char *brokers = NULL, *redis = NULL, *group = KAFKA_DEFAULT_GROUP;
	const char *dns_server = NULL;
	const char *metrics_addr = METRICS_DEFAULT_ADDR;
	struct timeval tick = { 0, WORKER_TICK_MS * 1000 };
	rd_kafka_conf_t *conf = NULL, *pconf = NULL;
	rd_kafka_topic_partition_list_t *sub;
	rd_kafka_resp_err_t kerr;
	unsigned long num;
	char err[512];
	int ch, rc = 1;

	retry_policy_default(&w.retry);
	w.instance = (unsigned long)getpid() ^ ((unsigned long)time(NULL) << 16);
	if (config_command("mxsift-worker", "worker", longopts, "b:r:g:X:h", &argc, &argv) == -1)
		return 2;
	while ((ch = getopt_long(argc, argv, "b:r:g:X:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'g': group = optarg; break;
		case OPT_TOPIC: w.topic = optarg; break;
		case OPT_RETRY_TOPIC: w.retry_topic = optarg; break;
		case OPT_DEAD_TOPIC: w.dead_topic = optarg; break;
		case OPT_RETRY_SCHEDULE:
			if (retry_parse_schedule(optarg, &w.retry, err, sizeof(err)) == -1) {
				fprintf(stderr, "mxsift-worker: --retry-schedule: %s\n", err);
				goto usage;
			}
			break;
		case OPT_RETRY_MAX_AGE:
			if (retry_parse_duration(optarg, &w.retry.max_age_ms) == -1) {
				fprintf(stderr, "mxsift-worker: --retry-max-age wants a duration "
				    "(e.g. 3h)\n");
				goto usage;
			}
			break;
		case OPT_DNS: dns_server = optarg; break;
		/* the checks the config file and MXSIFT_* get: a space or
		 * control character would reach the wire */
		case OPT_HELO:
			if (config_check_flag("mxsift-worker", "helo", optarg) == -1)
				goto usage;
			ep.helo_name = optarg;
			break;
		case OPT_MAIL_FROM:
			if (config_check_flag("mxsift-worker", "mail-from", optarg) == -1)
				goto usage;
			ep.mail_from = optarg;
			break;
		case OPT_SMTP_PORT:
			if (worker_parse_uint(optarg, 1, 65535, &num) == -1) {
				fprintf(stderr, "mxsift-worker: --smtp-port wants 1..65535\n");
				goto usage;
			}
			ep.smtp_port = (int)num;
			break;
		case OPT_TLS:
			if (strcmp(optarg, "may") == 0)
				ep.tls = ENGINE_TLS_MAY;
			else if (strcmp(optarg, "require") == 0)
				ep.tls = ENGINE_TLS_REQUIRE;
			else if (strcmp(optarg, "off") == 0)
				ep.tls = ENGINE_TLS_OFF;
			else {
				fprintf(stderr, "mxsift-worker: --tls wants may, require or off\n");
				goto usage;
			}
			break;
		case OPT_MAX_INFLIGHT:
			if (worker_parse_uint(optarg, 1, 10000000, &num) == -1) {
				fprintf(stderr, "mxsift-worker: bad --max-inflight\n");
				goto usage;
			}
			w.max_inflight = num;
			break;
		case OPT_MAX_TASKS:
			if (worker_parse_uint(optarg, 1, 1000000, &num) == -1) {
				fprintf(stderr, "mxsift-worker: bad --max-tasks\n");
				goto usage;
			}
			w.max_tasks = num;
			break;
		case OPT_MAX_SESSIONS:
			if (worker_parse_uint(optarg, 0, 1000000, &num) == -1) {
				fprintf(stderr, "mxsift-worker: bad --max-sessions\n");
				goto usage;
			}
			w.max_sessions = num;
			break;
		case OPT_MAX_HELD:
			if (worker_parse_uint(optarg, 1, 1000000, &num) == -1) {
				fprintf(stderr, "mxsift-worker: bad --max-held\n");
				goto usage;
			}
			w.max_held = num;
			break;
		case OPT_GRACE:
			if (worker_parse_uint(optarg, 0, 86400, &num) == -1) {
				fprintf(stderr, "mxsift-worker: bad --grace\n");
				goto usage;
			}
			w.grace_s = (unsigned)num;
			break;
		case 'X':
			if (kafka_xopts_add(&xopts, optarg, err, sizeof(err)) == -1) {
				fprintf(stderr, "mxsift-worker: %s\n", err);
				goto usage;
			}
			break;
		case OPT_LOG_LEVEL: {
			int l = log_parse_level(optarg);
			if (l < 0) {
				fprintf(stderr, "mxsift-worker: unknown log level '%s'\n", optarg);
				goto usage;
			}
			log_set_level((enum log_level)l);
			break;
		}
		case OPT_METRICS_ADDR: metrics_addr = optarg; break;
		case OPT_LOG_ADDRESSES: log_set_addresses(1); break;
		case OPT_NO_CATCH_ALL: ep.catch_all_check = ENGINE_CATCH_ALL_OFF; break;
		case OPT_LANES: ep.lanes_file = worker_lanes_file = optarg; break;
		case OPT_BIND:
			if (engine_check_bind(optarg, err, sizeof(err)) == -1) {
				/* not a usage error: say only what to fix */
				fprintf(stderr, "mxsift-worker: %s\n", err);
				kafka_xopts_free(&xopts);
				return 2;
			}
			ep.bind_address = optarg;
			break;
		case OPT_CONNECT_TIMEOUT:
			if (worker_timeout_opt("connect-timeout", optarg, &ep.connect_timeout_ms) == -1)
				goto bad_value;
			break;
		case OPT_GREETING_TIMEOUT:
			if (worker_timeout_opt("greeting-timeout", optarg, &ep.greeting_timeout_ms) == -1)
				goto bad_value;
			break;
		case OPT_COMMAND_TIMEOUT:
			if (worker_timeout_opt("command-timeout", optarg, &ep.command_timeout_ms) == -1)
				goto bad_value;
			break;
		case 'V':
			printf("mxsift-worker %s\n", MXSIFT_VERSION);
			kafka_xopts_free(&xopts);
			return 0;
		case 'h':
			worker_usage(stdout);
			kafka_xopts_free(&xopts);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind != argc || brokers == NULL || redis == NULL) {
		fprintf(stderr, "mxsift-worker: --brokers and --redis are required\n");
		goto usage;
	}
	if (redis_url_check_option("mxsift-worker", redis) == -1)
		goto bad_value;
	/* A missing or broken --lanes FILE: a configuration error (exit 2)
	 * that names it, not "engine setup failed" (exit 1) */
	if (worker_lanes_file != NULL && strcmp(worker_lanes_file, "none") != 0 &&
	    engine_check_rules(worker_lanes_file, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxsift-worker: --lanes: %s\n", err);
		goto bad_value;
	}
	if (strcmp(w.topic, w.retry_topic) == 0 || strcmp(w.topic, w.dead_topic) == 0 ||
	    strcmp(w.retry_topic, w.dead_topic) == 0) {
		fprintf(stderr, "mxsift-worker: the task, retry and dead-letter topics must differ\n");
		goto usage;
	}
	/* the producer's -X too, now: a locked property is a usage error */
	if ((pconf = worker_producer_conf(brokers, &xopts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift-worker: %s\n", err);
		goto usage;
	}
	if ((conf = kafka_consumer_conf(brokers, group, &xopts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift-worker: %s\n", err);
		goto usage;
	}
	signal(SIGPIPE, SIG_IGN);
	TAILQ_INIT(&w.parts);
	TAILQ_INIT(&w.tasks);
	TAILQ_INIT(&w.waiting);

	if ((w.base = engine_event_base_new()) == NULL) {
		log_error("cannot create event loop", "%s", "");
		goto out;
	}
	if (metrics_start(w.base, metrics_addr, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxsift-worker: %s\n", err);
		rc = 2;
		goto out;
	}
	if ((w.ja = jobstore_async_new(w.base, redis, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift-worker: %s\n", err);
		rc = 2;
		goto out;
	}
	/* A Redis that answers but refuses the URL's password or database is
	 * misconfigured: say so and stop, instead of retrying forever.  One
	 * that does not answer yet may come up later: the async client waits
	 * (and /readyz says 503 meanwhile). */
	{
		struct jobstore *probe = jobstore_connect(redis, 2000, err, sizeof(err));

		if (probe != NULL)
			jobstore_close(probe);
		else if (strstr(err, ": AUTH: ") != NULL || strstr(err, ": SELECT: ") != NULL) {
			fprintf(stderr, "mxsift-worker: %s (fix the password or database of the "
			    "Redis URL: --redis, MXSIFT_REDIS or the config key redis)\n", err);
			rc = 2;
			goto out;
		}
	}
	if ((w.dns = dns_new(w.base, dns_server, err, sizeof(err))) == NULL) {
		log_error("dns setup failed", "error=\"%s\"", err);
		goto out;
	}
	/* Polite by default: the shipped per-provider rules, unless told otherwise. */
	if (worker_lanes_file == NULL) {
		snprintf(lanes_default, sizeof(lanes_default), "%s/lanes.conf", lists_default_dir());
		worker_lanes_file = lanes_default;
	} else if (strcmp(worker_lanes_file, "none") == 0)
		worker_lanes_file = NULL;
	ep.lanes_file = worker_lanes_file;
	signal(SIGHUP, SIG_IGN); /* a reload before the handler is set is a no-op */
	if ((w.engine = engine_new(w.base, w.dns, &ep, worker_on_probe, &w)) == NULL) {
		log_error("engine setup failed", "%s", "");
		goto out;
	}
	if ((w.held_q = retry_timer_new(w.base, worker_held_due, &w)) == NULL) {
		log_error("out of memory", "%s", "");
		goto out;
	}
	w.prod = worker_producer_new(&w, pconf);
	pconf = NULL;   /* taken over */
	if (w.prod == NULL)
		goto out;

	rd_kafka_conf_set_rebalance_cb(conf, worker_on_rebalance);
	rd_kafka_conf_set_stats_cb(conf, metrics_kafka_stats);
	rd_kafka_conf_set_opaque(conf, &w);
	w.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (w.rk == NULL) {
		log_error("kafka setup failed", "error=\"%s\"", err);
		goto out;
	}
	conf = NULL;    /* owned by w.rk now */
	metrics_attach(w.engine, w.ja, w.rk);
	if ((lstat = lanestatus_new(w.base, w.engine, w.ja, NULL)) == NULL) {
		log_error("lane report setup failed", "%s", "");
		goto out;
	}
	rd_kafka_poll_set_consumer(w.rk);   /* callbacks are served by the consumer queue */
	w.q = rd_kafka_queue_get_consumer(w.rk);
	w.pq = rd_kafka_queue_get_main(w.prod);
	if (pipe2(w.pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_error("pipe failed", "error=\"%s\"", strerror(errno));
		goto out;
	}
	rd_kafka_queue_io_event_enable(w.q, w.pipefd[1], "1", 1);
	rd_kafka_queue_io_event_enable(w.pq, w.pipefd[1], "1", 1);
	w.kafka_ev = event_new(w.base, w.pipefd[0], EV_READ | EV_PERSIST, worker_on_kafka, &w);
	w.tick = event_new(w.base, -1, EV_PERSIST, worker_on_tick, &w);
	w.sigterm = evsignal_new(w.base, SIGTERM, worker_on_signal, &w);
	w.sigint = evsignal_new(w.base, SIGINT, worker_on_signal, &w);
	sighup = evsignal_new(w.base, SIGHUP, worker_on_sighup, &w);
	if (sighup == NULL || event_add(sighup, NULL) == -1) {
		log_error("event setup failed", "%s", "");
		goto out;
	}
	if (w.kafka_ev == NULL || w.tick == NULL || w.sigterm == NULL || w.sigint == NULL ||
	    event_add(w.kafka_ev, NULL) == -1 || event_add(w.tick, &tick) == -1 ||
	    event_add(w.sigterm, NULL) == -1 || event_add(w.sigint, NULL) == -1) {
		log_error("event setup failed", "%s", "");
		goto out;
	}
	sub = rd_kafka_topic_partition_list_new(2);
	rd_kafka_topic_partition_list_add(sub, w.topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_topic_partition_list_add(sub, w.retry_topic, RD_KAFKA_PARTITION_UA);
	kerr = rd_kafka_subscribe(w.rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (kerr) {
		log_error("kafka subscribe failed", "topic=%s retry_topic=%s error=%s", w.topic,
		    w.retry_topic, rd_kafka_err2name(kerr));
		goto out;
	}
	log_info("worker started", "group=%s topic=%s retry_topic=%s dead_topic=%s brokers=%s "
	    "max_inflight=%zu max_tasks=%zu max_held=%zu retry_steps=%zu", group, w.topic,
	    w.retry_topic, w.dead_topic, brokers, w.max_inflight, w.max_tasks, w.max_held,
	    w.retry.nsteps);

	event_base_dispatch(w.base);

	rc = w.exit_code;
	/* Polite QUIT to every SMTP session, and a moment for the 221s. */
	{
		struct timeval qw = { 0, WORKER_QUIT_WAIT_MS * 1000 };
		struct engine_stats es;

		w.aborting = 1;    /* "shutting down" verdicts are never written */
		lanestatus_free(lstat);   /* withdrawn while the QUITs are said */
		lstat = NULL;
		engine_shutdown(w.engine);
		event_del(w.tick);
		event_del(w.kafka_ev);
		event_base_loopexit(w.base, &qw);
		event_base_dispatch(w.base);
		engine_get_stats(w.engine, &es);
		log_info("worker stopped", "tasks_done=%" PRIu64 " verdicts_written=%" PRIu64
		    " retried=%" PRIu64 " dead_letters=%" PRIu64 " bad_messages=%" PRIu64
		    " connections=%lu rcpts=%lu replies_503=%lu peak_tasks=%zu peak_inflight=%zu "
		    "peak_held=%zu peak_sessions=%zu peak_lanes=%zu", w.tasks_done,
		    w.verdicts_written, w.retried, w.dead_letters, w.bad_messages, es.connections,
		    es.rcpts, es.replies_503, w.peak_tasks, w.peak_inflight, w.peak_held,
		    w.peak_sessions, w.peak_lanes);
	}
out:
	metrics_attach(NULL, NULL, NULL);
	if (w.prod != NULL) {
		/* Anything still unacknowledged belongs to abandoned messages:
		 * purge it, so its delivery reports (errors) release the tasks. */
		rd_kafka_purge(w.prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(w.prod, WORKER_FLUSH_MS);
	}
	if (w.pq != NULL) {
		rd_kafka_queue_io_event_enable(w.pq, -1, NULL, 0);
		rd_kafka_queue_destroy(w.pq);
	}
	if (w.q != NULL) {
		rd_kafka_queue_io_event_enable(w.q, -1, NULL, 0);
		rd_kafka_queue_destroy(w.q);
	}
	if (w.rk != NULL && w.exit_code == 0 && w.stopping) {
		/* Commit what was stored now, while we still own the partitions:
		 * the commit on close can lose a race with the rebalance that
		 * other members leaving at the same time start. */
		kerr = rd_kafka_commit(w.rk, NULL, 0);
		if (kerr && kerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
			log_warn("kafka commit on stop", "error=%s", rd_kafka_err2name(kerr));
	}
	if (w.rk != NULL) {
		/* Leaves the group (revoke callback) and commits stored offsets. */
		kerr = rd_kafka_consumer_close(w.rk);
		if (kerr)
			log_warn("kafka consumer close", "error=%s", rd_kafka_err2name(kerr));
		rd_kafka_destroy(w.rk);
	}
	if (w.prod != NULL)
		rd_kafka_destroy(w.prod);
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	if (pconf != NULL)
		rd_kafka_conf_destroy(pconf);
	/* Abandoned work still in memory (its offsets were never stored). */
	if (w.held_q != NULL)
		retry_timer_free(w.held_q, worker_held_drop, &w);
	while (!TAILQ_EMPTY(&w.tasks)) {
		struct wtask *t = TAILQ_FIRST(&w.tasks);
		TAILQ_REMOVE(&w.tasks, t, entry);
		worker_task_free(t);
	}
	while (!TAILQ_EMPTY(&w.parts))
		worker_part_drop(&w, TAILQ_FIRST(&w.parts));
	for (size_t i = 0; i < w.nseen; i++)
		free(w.seen[i].key);
	free(w.seen);
	for (size_t i = 0; i < w.nact; i++)
		free(w.act[i].key);
	free(w.act);
	lanestatus_free(lstat);
	if (w.engine != NULL)
		engine_free(w.engine);
	if (w.dns != NULL)
		dns_free(w.dns);
	jobstore_async_free(w.ja);
	metrics_stop();
	if (w.kafka_ev != NULL)
		event_free(w.kafka_ev);
	if (w.tick != NULL)
		event_free(w.tick);
	if (w.sigterm != NULL)
		event_free(w.sigterm);
	if (w.sigint != NULL)
		event_free(w.sigint);
	if (sighup != NULL)
		event_free(sighup);
	if (w.pipefd[0] != -1)
		close(w.pipefd[0]);
	if (w.pipefd[1] != -1)
		close(w.pipefd[1]);
	if (w.base != NULL)
		event_base_free(w.base);
	kafka_xopts_free(&xopts);
	return rc;
usage:
	worker_usage(stderr);
bad_value:   /* the message said what to fix; the whole usage would bury it */
	if (pconf != NULL)
		rd_kafka_conf_destroy(pconf);
	kafka_xopts_free(&xopts);
	return 2;
}
