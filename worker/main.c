/*
 * main.c — mxsift-worker, the fleet's probe daemon.
 *
 * One libevent loop drives everything: the probe engine's SMTP sockets
 * (engine.h), c-ares (dns.h), hiredis (jobstore.h, async) and librdkafka.
 * librdkafka's consumer queue signals a non-blocking pipe when it goes from
 * empty to non-empty (rd_kafka_queue_io_event_enable); the loop watches the
 * pipe, drains it and then the queue with rd_kafka_consume_queue(q, 0).  A
 * 100 ms timer drains the queue too, so rebalances and errors are served
 * even when no message arrives, and checks backpressure and shutdown.
 *
 * At-least-once: each Task message (mxsift.proto) is decoded and every
 * address is submitted to the engine; each verdict is written to Redis with
 * the idempotent Lua script; only when the last write of a message has been
 * acknowledged is that message done.  Per partition, the worker tracks
 * in-flight offsets in order and stores (rd_kafka_offsets_store) only the
 * contiguous prefix of done messages; enable.auto.commit commits what was
 * stored.  A crash therefore redoes work (duplicate writes change nothing)
 * but never loses a verdict.  On a revoke, tracking for those partitions is
 * dropped: their unfinished messages will be redelivered to the new owner.
 *
 * Backpressure: when the recipients in the engine plus the verdicts not yet
 * in Redis exceed --max-inflight (Redis down, slow servers), the assigned
 * partitions are paused, and resumed below half of it.
 *
 * Shutdown (SIGTERM, SIGINT): stop consuming (pause), let probes in flight
 * finish and their verdicts land for up to --grace seconds, store their
 * offsets, QUIT the SMTP sessions, rd_kafka_consumer_close() (commits), exit
 * 0.  After the grace period, unfinished probes are abandoned unwritten and
 * their messages left uncommitted, so another worker redoes them: a made-up
 * "shutting down" verdict must never become a job's first (and only) one.
 *
 * A message that cannot be decoded is logged with partition and offset and
 * its offset stored (a dead-letter topic is future work).  Addresses are
 * parsed again here (address.h) so nothing a producer sends can put a
 * control character on a socket.
 *
 * Logs (logfmt on stderr): one info line per task done (counts, no
 * addresses), assignments and revokes at info, trouble at warn/error.
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
#include "config.h"
#include "dns.h"
#include "engine.h"
#include "jobstore.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "mxsift.pb-c.h"
#include "verdict.h"

#define WORKER_TICK_MS        100
#define WORKER_DRAIN_MAX      500    /* messages per loop turn, for fairness */
#define WORKER_GRACE_S        30
#define WORKER_ABORT_WAIT_MS  5000   /* after the grace: wait for Redis this long */
#define WORKER_MAX_INFLIGHT   5000
#define WORKER_QUIT_WAIT_MS   1000

/* One assigned partition and its in-flight offsets, oldest first. */
struct wpart {
	TAILQ_ENTRY(wpart) entry;
	char *topic;
	int32_t partition;
	int revoked;              /* no longer tracked; freed when refs == 0 */
	unsigned refs;            /* tasks pointing here */
	struct woff {
		int64_t offset;
		int done;
	} *ring;
	size_t head, n, cap;      /* live entries: ring[head .. head+n) */
};

struct worker;

/* One Task message being worked on. */
struct wtask {
	struct worker *w;
	struct wpart *part;
	int64_t offset;
	char *job;
	char *mx_domain, *domain;
	size_t naddrs;
	size_t remaining;         /* verdicts not yet durable in Redis */
	uint64_t started_ms;
	unsigned by_status[VS__COUNT];
	int failed;               /* a verdict could not be queued: do not store */
};

TAILQ_HEAD(wpart_list, wpart);

struct worker {
	struct event_base *base;
	struct dns *dns;
	struct engine *engine;
	struct jobstore_async *ja;
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	int pipefd[2];
	struct event *kafka_ev, *tick, *sigterm, *sigint;
	struct wpart_list parts;
	size_t tasks_inflight;
	size_t max_inflight;
	int paused;
	int stopping, aborting, exit_code;
	uint64_t stop_started_ms, abort_started_ms;
	unsigned grace_s;
	uint64_t tasks_done, verdicts_written, bad_messages;
};

static uint64_t
worker_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
worker_usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift-worker --brokers HOST:PORT --redis URL [OPTIONS]\n"
	    "\n"
	    "Consume address tasks from Kafka, probe each address over SMTP (one reused\n"
	    "session per MX domain, RSET between recipients, never DATA), and write one\n"
	    "verdict per address to Redis.  Run as many workers as you like with the same\n"
	    "--group: Kafka spreads the MX domains over them.\n"
	    "\n"
	    "Options:\n"
	    "  -b, --brokers LIST      Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]\n"
	    "  -r, --redis URL         redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
	    "  -g, --group NAME        consumer group (default %s)\n"
	    "      --topic NAME        task topic (default %s)\n"
	    "      --dns HOST[:PORT]   DNS resolver to use (default: the system's)\n"
	    "      --helo NAME         EHLO name (default: this host's name)\n"
	    "      --mail-from ADDR    reverse path for MAIL FROM (default: null sender <>)\n"
	    "      --smtp-port N       SMTP port of the MX hosts (default: 25)\n"
	    "      --tls MODE          may (default: STARTTLS when offered), require, off\n"
	    "      --no-catch-all      skip the catch-all probe (random local part per domain)\n"
	    "      --max-inflight N    pause consuming above N unfinished verdicts (default %d)\n"
	    "      --grace SECONDS     on SIGTERM, time for probes in flight (default %d)\n"
	    "  -X KEY=VALUE            librdkafka consumer property (repeatable)\n"
	    "      --log-level LEVEL   debug, info (default), warn, error\n"
	    "      --log-addresses     log every verdict with its address at info level\n"
	    "                          (default: no addresses in logs below debug)\n"
	    "      --metrics-addr ADDR serve /metrics, /healthz, /readyz on IP:PORT\n"
	    "                          (default " METRICS_DEFAULT_ADDR "; off disables)\n"
	    "      --config FILE       configuration file (default $MXSIFT_CONFIG, else\n"
	    "                          /etc/mxsift/mxsift.conf if present; see mxsift-worker(1))\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Stops cleanly on SIGTERM or SIGINT.  Exit codes: 0 stopped; 1 failure; 2 usage.\n",
	    KAFKA_DEFAULT_GROUP, KAFKA_TOPIC_TASKS, WORKER_MAX_INFLIGHT, WORKER_GRACE_S);
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
	TAILQ_INSERT_TAIL(&w->parts, p, entry);
	return p;
}

static void
worker_part_release(struct wpart *p)
{
	if (p->revoked && p->refs == 0) {
		free(p->ring);
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

static int
worker_part_push(struct wpart *p, int64_t offset)
{
	if (p->head + p->n == p->cap) {
		if (p->head > 0) {
			memmove(p->ring, p->ring + p->head, p->n * sizeof(*p->ring));
			p->head = 0;
		}
		if (p->n == p->cap) {
			size_t cap = p->cap ? p->cap * 2 : 64;
			struct woff *r = realloc(p->ring, cap * sizeof(*r));
			if (r == NULL)
				return -1;
			p->ring = r;
			p->cap = cap;
		}
	}
	p->ring[p->head + p->n].offset = offset;
	p->ring[p->head + p->n].done = 0;
	p->n++;
	return 0;
}

/* Mark offset done; store the offset after the contiguous done prefix. */
static void
worker_part_done(struct worker *w, struct wpart *p, int64_t offset)
{
	int64_t last = -1;
	size_t lo = p->head, hi = p->head + p->n;

	/* offsets are pushed in ascending order: binary search */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->ring[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == p->head + p->n || p->ring[lo].offset != offset) {
		log_error("offset not tracked", "topic=%s partition=%" PRId32 " offset=%" PRId64,
		    p->topic, p->partition, offset);
		return;
	}
	p->ring[lo].done = 1;
	while (p->n > 0 && p->ring[p->head].done) {
		last = p->ring[p->head].offset;
		p->head++;
		p->n--;
	}
	if (p->n == 0)
		p->head = 0;
	if (last >= 0 && !p->revoked) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_resp_err_t err;

		rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = last + 1;
		err = rd_kafka_offsets_store(w->rk, l);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].err)
			err = l->elems[0].err;
		if (err)
			log_warn("offset store failed", "topic=%s partition=%" PRId32
			    " offset=%" PRId64 " error=%s", p->topic, p->partition, last + 1,
			    rd_kafka_err2name(err));
		else
			log_debug("offset stored", "topic=%s partition=%" PRId32
			    " offset=%" PRId64, p->topic, p->partition, last + 1);
		rd_kafka_topic_partition_list_destroy(l);
	}
}

/* ---- tasks --------------------------------------------------------------- */

static void
worker_task_free(struct wtask *t)
{
	free(t->job);
	free(t->mx_domain);
	free(t->domain);
	free(t);
}

static void
worker_task_finish(struct wtask *t)
{
	struct worker *w = t->w;
	struct wpart *p = t->part;

	w->tasks_inflight--;
	if (!t->failed && !w->aborting) {
		w->tasks_done++;
		metrics_inc(METRICS_TASKS_DONE, 1);
		log_info("task done", "job=%s partition=%" PRId32 " offset=%" PRId64
		    " mx_domain=%s domain=%s addresses=%zu deliverable=%u undeliverable=%u "
		    "risky=%u unknown=%u ms=%" PRIu64, t->job, p->partition, t->offset,
		    t->mx_domain, t->domain, t->naddrs, t->by_status[VS_DELIVERABLE],
		    t->by_status[VS_UNDELIVERABLE], t->by_status[VS_RISKY],
		    t->by_status[VS_UNKNOWN], worker_now_ms() - t->started_ms);
		worker_part_done(w, p, t->offset);
	} else
		log_warn("task abandoned", "job=%s partition=%" PRId32 " offset=%" PRId64
		    " mx_domain=%s addresses=%zu", t->job, p->partition, t->offset,
		    t->mx_domain, t->naddrs);
	p->refs--;
	worker_part_release(p);
	worker_task_free(t);
}

static void
worker_on_written(void *arg, int result)
{
	struct wtask *t = arg;

	t->w->verdicts_written++;
	if (--t->remaining == 0)
		worker_task_finish(t);
}

/* Hand one verdict of t to Redis (or give up on it when aborting). */
static void
worker_put_verdict(struct wtask *t, const char *address, const struct verdict *v)
{
	struct worker *w = t->w;

	if (w->aborting) {
		/* abandoned: the message stays uncommitted and is redone */
		t->failed = 1;
		if (--t->remaining == 0)
			worker_task_finish(t);
		return;
	}
	t->by_status[v->status < VS__COUNT ? v->status : VS_UNKNOWN]++;
	metrics_verdict(v);
	if (log_addresses())
		log_info("verdict", "job=%s address=\"%s\" status=%s reason=%s", t->job, address,
		    verdict_status_name(v->status), verdict_reason_name(v->reason));
	else
		log_debug("verdict", "job=%s status=%s reason=%s", t->job,
		    verdict_status_name(v->status), verdict_reason_name(v->reason));
	if (metrics_put_verdict(w->ja, t->job, address, address, v, worker_on_written,
	    t) == -1) {
		log_error("verdict write not queued", "job=%s partition=%" PRId32
		    " offset=%" PRId64, t->job, t->part->partition, t->offset);
		t->failed = 1;
		if (--t->remaining == 0)
			worker_task_finish(t);
	}
}

static void
worker_on_probe(void *arg, void *tag, const char *address, const struct verdict *v)
{
	worker_put_verdict(tag, address, v);
}

/* Decode and start one message.  The message is destroyed by the caller. */
static void
worker_handle_message(struct worker *w, const rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	struct engine_mx_host *hosts = NULL;
	Mxsift__Task *task;
	struct wpart *p;
	struct wtask *t;
	unsigned flags;

	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_warn("kafka consume error", "topic=%s partition=%" PRId32 " error=%s",
			    m->rkt ? topic : "-", m->partition, rd_kafka_err2name(m->err));
		return;
	}
	if (w->stopping)
		return;   /* not started: stays uncommitted, redelivered later */
	if ((p = worker_part_add(w, topic, m->partition)) == NULL ||
	    worker_part_push(p, m->offset) == -1) {
		log_error("out of memory", "topic=%s partition=%" PRId32, topic, m->partition);
		return;
	}
	task = mxsift__task__unpack(NULL, m->len, m->payload);
	if (task == NULL || !jobstore_valid_name(task->job)) {
		w->bad_messages++;
		metrics_inc(METRICS_BAD_MESSAGES, 1);
		log_error("undecodable task", "topic=%s partition=%" PRId32 " offset=%" PRId64
		    " bytes=%zu reason=\"%s\"", topic, m->partition, m->offset, m->len,
		    task == NULL ? "not a Task" : "bad job name");
		if (task != NULL)
			mxsift__task__free_unpacked(task, NULL);
		worker_part_done(w, p, m->offset);
		return;
	}
	t = calloc(1, sizeof(*t));
	if (t != NULL) {
		t->job = strdup(task->job);
		t->mx_domain = strdup(task->mx_domain[0] ? task->mx_domain : task->domain);
		t->domain = strdup(task->domain);
	}
	hosts = calloc(task->n_mx_hosts ? task->n_mx_hosts : 1, sizeof(*hosts));
	if (t == NULL || t->job == NULL || t->mx_domain == NULL || t->domain == NULL ||
	    hosts == NULL) {
		log_error("out of memory", "topic=%s partition=%" PRId32 " offset=%" PRId64,
		    topic, m->partition, m->offset);
		if (t != NULL)
			worker_task_free(t);
		free(hosts);
		mxsift__task__free_unpacked(task, NULL);
		return;   /* never done: not committed, redelivered after restart */
	}
	t->w = w;
	t->part = p;
	t->offset = m->offset;
	t->naddrs = task->n_addresses;
	t->remaining = task->n_addresses + 1;   /* +1 held until all are submitted */
	t->started_ms = worker_now_ms();
	p->refs++;
	w->tasks_inflight++;
	for (size_t i = 0; i < task->n_mx_hosts; i++) {
		hosts[i].name = task->mx_hosts[i]->name;
		hosts[i].preference = task->mx_hosts[i]->preference;
	}
	log_debug("task started", "job=%s partition=%" PRId32 " offset=%" PRId64
	    " mx_domain=%s domain=%s addresses=%zu attempt=%u", t->job, m->partition, m->offset,
	    t->mx_domain, t->domain, t->naddrs, task->attempt);
	for (size_t i = 0; i < task->n_addresses; i++) {
		const char *a = task->addresses[i]->address;
		struct probe_req req = { 0 };
		struct address parsed;
		enum addr_err aerr;

		aerr = address_parse(a, strlen(a), &parsed);
		if (aerr != ADDR_OK || strcasecmp(parsed.domain, task->domain) != 0) {
			/* the coordinator checks syntax; this is a bad producer */
			struct verdict v;
			verdict_init(&v, VR_INVALID_SYNTAX);
			snprintf(v.detail, sizeof(v.detail), "%s",
			    aerr != ADDR_OK ? address_err_name(aerr) : "domain_mismatch");
			worker_put_verdict(t, a, &v);
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
		req.tag = t;
		/* -1 means unusable, and the done callback still fires for it */
		(void)engine_submit(w->engine, &req);
	}
	free(hosts);
	mxsift__task__free_unpacked(task, NULL);
	if (--t->remaining == 0)
		worker_task_finish(t);
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

static void
worker_set_paused(struct worker *w, int pause)
{
	rd_kafka_topic_partition_list_t *l = NULL;

	if (rd_kafka_assignment(w->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || l == NULL)
		return;
	if (l->cnt > 0) {
		if (pause)
			rd_kafka_pause_partitions(w->rk, l);
		else
			rd_kafka_resume_partitions(w->rk, l);
	}
	rd_kafka_topic_partition_list_destroy(l);
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
				worker_part_drop(w, p);
			if (worker_part_add(w, parts->elems[i].topic,
			    parts->elems[i].partition) == NULL)
				log_error("out of memory", "partition=%" PRId32,
				    parts->elems[i].partition);
		}
		rd_kafka_assign(rk, parts);
		if (w->paused || w->stopping)
			worker_set_paused(w, 1);
		break;
	case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
		log_info("partitions revoked", "count=%d partitions=%s", parts->cnt, list);
		for (int i = 0; i < parts->cnt; i++) {
			struct wpart *p = worker_part_find(w, parts->elems[i].topic,
			    parts->elems[i].partition);
			if (p != NULL) {
				if (p->n > 0)
					log_info("dropping in-flight messages of revoked partition",
					    "topic=%s partition=%" PRId32 " inflight=%zu", p->topic,
					    p->partition, p->n);
				worker_part_drop(w, p);
			}
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

	while (n < WORKER_DRAIN_MAX && (m = rd_kafka_consume_queue(w->q, 0)) != NULL) {
		worker_handle_message(w, m);
		rd_kafka_message_destroy(m);
		n++;
	}
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

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	worker_drain_queue(w);
}

static void
worker_begin_stop(struct worker *w, const char *why)
{
	if (w->stopping)
		return;
	w->stopping = 1;
	metrics_set_flag(METRICS_STOPPING, 1);
	w->stop_started_ms = worker_now_ms();
	log_info("stopping", "reason=%s tasks_inflight=%zu probes_pending=%zu grace_s=%u", why,
	    w->tasks_inflight, engine_pending(w->engine), w->grace_s);
	worker_set_paused(w, 1);
}

static void
worker_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	size_t inflight;
	uint64_t now = worker_now_ms();

	worker_drain_queue(w);
	if (kafka_fatal_seen() && w->exit_code == 0) {
		w->exit_code = 1;
		worker_begin_stop(w, "kafka_fatal");
	}
	if (!w->stopping) {
		inflight = engine_pending(w->engine) + jobstore_async_pending(w->ja);
		if (!w->paused && inflight > w->max_inflight) {
			log_warn("pausing consumption", "inflight=%zu max=%zu redis_connected=%d",
			    inflight, w->max_inflight, jobstore_async_connected(w->ja));
			w->paused = 1;
			worker_set_paused(w, 1);
		} else if (w->paused && inflight < w->max_inflight / 2) {
			log_info("resuming consumption", "inflight=%zu", inflight);
			w->paused = 0;
			worker_set_paused(w, 0);
		}
		return;
	}
	if (w->tasks_inflight == 0 && jobstore_async_pending(w->ja) == 0) {
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

static void
worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
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

int
main(int argc, char **argv)
{
	enum { OPT_TOPIC = 256, OPT_DNS, OPT_HELO, OPT_MAIL_FROM, OPT_SMTP_PORT, OPT_TLS,
		OPT_MAX_INFLIGHT, OPT_GRACE, OPT_LOG_LEVEL, OPT_METRICS_ADDR, OPT_LOG_ADDRESSES, OPT_NO_CATCH_ALL };
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "redis", required_argument, NULL, 'r' },
		{ "group", required_argument, NULL, 'g' },
		{ "topic", required_argument, NULL, OPT_TOPIC },
		{ "dns", required_argument, NULL, OPT_DNS },
		{ "helo", required_argument, NULL, OPT_HELO },
		{ "mail-from", required_argument, NULL, OPT_MAIL_FROM },
		{ "smtp-port", required_argument, NULL, OPT_SMTP_PORT },
		{ "tls", required_argument, NULL, OPT_TLS },
		{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "no-catch-all", no_argument, NULL, OPT_NO_CATCH_ALL },
		{ "metrics-addr", required_argument, NULL, OPT_METRICS_ADDR },
		{ "log-addresses", no_argument, NULL, OPT_LOG_ADDRESSES },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker w = { .pipefd = { -1, -1 }, .max_inflight = WORKER_MAX_INFLIGHT,
		.grace_s = WORKER_GRACE_S };
	struct engine_params ep = { .smtp_port = 25, .tls = ENGINE_TLS_MAY, .mail_from = "" };
	struct kafka_xopts xopts = { 0 };
	const char *brokers = NULL, *redis = NULL, *group = KAFKA_DEFAULT_GROUP;
	const char *topic = KAFKA_TOPIC_TASKS, *dns_server = NULL;
	const char *metrics_addr = METRICS_DEFAULT_ADDR;
	struct timeval tick = { 0, WORKER_TICK_MS * 1000 };
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *sub;
	rd_kafka_resp_err_t kerr;
	unsigned long num;
	char err[512];
	int ch, rc = 1;

	if (config_command("mxsift-worker", "worker", longopts, "b:r:g:X:h", &argc, &argv) == -1)
		return 2;
	while ((ch = getopt_long(argc, argv, "b:r:g:X:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'g': group = optarg; break;
		case OPT_TOPIC: topic = optarg; break;
		case OPT_DNS: dns_server = optarg; break;
		case OPT_HELO: ep.helo_name = optarg; break;
		case OPT_MAIL_FROM:
			if (strpbrk(optarg, "\r\n<> ") != NULL) {
				fprintf(stderr, "mxsift-worker: bad --mail-from\n");
				goto usage;
			}
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
		case OPT_NO_CATCH_ALL: ep.catch_all_check = ENGINE_CATCH_ALL_OFF; break;
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
	if ((conf = kafka_consumer_conf(brokers, group, &xopts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift-worker: %s\n", err);
		goto usage;
	}
	signal(SIGPIPE, SIG_IGN);
	TAILQ_INIT(&w.parts);

	if ((w.base = event_base_new()) == NULL) {
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
	if ((w.dns = dns_new(w.base, dns_server, err, sizeof(err))) == NULL) {
		log_error("dns setup failed", "error=\"%s\"", err);
		goto out;
	}
	if ((w.engine = engine_new(w.base, w.dns, &ep, worker_on_probe, &w)) == NULL) {
		log_error("engine setup failed", "%s", "");
		goto out;
	}

	rd_kafka_conf_set_rebalance_cb(conf, worker_on_rebalance);
	rd_kafka_conf_set_opaque(conf, &w);
	w.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (w.rk == NULL) {
		log_error("kafka setup failed", "error=\"%s\"", err);
		goto out;
	}
	conf = NULL;    /* owned by w.rk now */
	metrics_attach(w.engine, w.ja, w.rk);
	rd_kafka_poll_set_consumer(w.rk);   /* callbacks are served by the consumer queue */
	w.q = rd_kafka_queue_get_consumer(w.rk);
	if (pipe2(w.pipefd, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_error("pipe failed", "error=\"%s\"", strerror(errno));
		goto out;
	}
	rd_kafka_queue_io_event_enable(w.q, w.pipefd[1], "1", 1);
	w.kafka_ev = event_new(w.base, w.pipefd[0], EV_READ | EV_PERSIST, worker_on_kafka, &w);
	w.tick = event_new(w.base, -1, EV_PERSIST, worker_on_tick, &w);
	w.sigterm = evsignal_new(w.base, SIGTERM, worker_on_signal, &w);
	w.sigint = evsignal_new(w.base, SIGINT, worker_on_signal, &w);
	if (w.kafka_ev == NULL || w.tick == NULL || w.sigterm == NULL || w.sigint == NULL ||
	    event_add(w.kafka_ev, NULL) == -1 || event_add(w.tick, &tick) == -1 ||
	    event_add(w.sigterm, NULL) == -1 || event_add(w.sigint, NULL) == -1) {
		log_error("event setup failed", "%s", "");
		goto out;
	}
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
	kerr = rd_kafka_subscribe(w.rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (kerr) {
		log_error("kafka subscribe failed", "topic=%s error=%s", topic,
		    rd_kafka_err2name(kerr));
		goto out;
	}
	log_info("worker started", "group=%s topic=%s brokers=%s max_inflight=%zu", group, topic,
	    brokers, w.max_inflight);

	event_base_dispatch(w.base);

	rc = w.exit_code;
	/* Polite QUIT to every SMTP session, and a moment for the 221s. */
	{
		struct timeval qw = { 0, WORKER_QUIT_WAIT_MS * 1000 };
		struct engine_stats es;

		w.aborting = 1;    /* "shutting down" verdicts are never written */
		engine_shutdown(w.engine);
		event_del(w.tick);
		event_del(w.kafka_ev);
		event_base_loopexit(w.base, &qw);
		event_base_dispatch(w.base);
		engine_get_stats(w.engine, &es);
		log_info("worker stopped", "tasks_done=%" PRIu64 " verdicts_written=%" PRIu64
		    " bad_messages=%" PRIu64 " connections=%lu rcpts=%lu replies_503=%lu",
		    w.tasks_done, w.verdicts_written, w.bad_messages, es.connections, es.rcpts,
		    es.replies_503);
	}
out:
	metrics_attach(NULL, NULL, NULL);
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
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	while (!TAILQ_EMPTY(&w.parts))
		worker_part_drop(&w, TAILQ_FIRST(&w.parts));
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
	kafka_xopts_free(&xopts);
	return 2;
}
