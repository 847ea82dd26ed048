/*
 * metrics.c — Prometheus registry and evhttp endpoints of mxsift-worker.
 *
 * Owns the process-wide counters, the HTTP server and the wrappers that
 * time Redis writes (see metrics.h).  The exposition is rendered on each
 * scrape from the counters plus the attached engine, Redis client and Kafka
 * consumer; nothing is cached, so a scrape is always current.  Engine
 * numbers (every SMTP reply by class, sessions open, per-lane queue and
 * rate for the top METRICS_LANES_MAX lanes) come from engine_get_stats()
 * and engine_get_lane_stats(); names below are the stable contract used
 * by deploy/grafana-mxsift.json.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "clock.h"
#include "engine.h"
#include "log.h"

#define METRICS_RATE_WINDOW_S 11   /* 10 complete seconds + the current one */
/*
 * Per-lane series (label mx_domain) for at most this many lanes per scrape,
 * so a worker that serves 100,000 small domains does not explode the
 * time-series database: backed-off lanes first (paused, or slower than
 * their rule: the ones an operator looks for), then the deepest queues,
 * then by name.  mxsift_lanes and mxsift_lanes_backed_off count them all.
 */
#define METRICS_LANES_MAX 20

/* Redis write latency buckets, seconds (upper bounds; +Inf implied). */
static const double metrics_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define METRICS_NBUCKETS (sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))

static const struct {
	const char *name, *help;
} metrics_counter_desc[METRICS__COUNT] = {
	[METRICS_TASKS_DONE] = { "mxsift_tasks_done_total",
	    "Task messages whose verdicts are all written (offset storable)." },
	[METRICS_BAD_MESSAGES] = { "mxsift_bad_messages_total",
	    "Messages on the task topic that could not be decoded and were skipped." },
	[METRICS_RETRIES_SCHEDULED] = { "mxsift_retries_scheduled_total",
	    "Work handed to the retry topic for a later attempt." },
	[METRICS_DEAD_LETTERS] = { "mxsift_dead_letters_total",
	    "Messages handed to the dead-letter topic." },
	[METRICS_ADDRESSES_SKIPPED] = { "mxsift_addresses_skipped_total",
	    "Addresses of a task that had a verdict in Redis already (a task delivered again): not probed." },
};

/* A timed Redis write in flight. */
struct metrics_write {
	LIST_ENTRY(metrics_write) entry;
	jobstore_write_cb cb;
	void *arg;
	uint64_t start_ns;
};

/* A partition's lag as librdkafka's statistics last gave it. */
struct metrics_lag {
	char topic[256];
	int32_t partition;
	int64_t lag;
};

static struct {
	uint64_t counter[METRICS__COUNT];
	int flag[METRICS_FLAG__COUNT];
	uint64_t verdicts[VS__COUNT][VR__COUNT];
	uint64_t reply_class[6];            /* [0] no SMTP reply, [1..5] first digit */
	/* Redis writes */
	uint64_t writes_new, writes_dup;
	uint64_t lat_bucket[METRICS_NBUCKETS];
	uint64_t lat_count;
	double lat_sum;
	LIST_HEAD(, metrics_write) writes;
	/* verdicts per second, one slot per second of the window */
	uint64_t rate_slot[METRICS_RATE_WINDOW_S];
	int64_t rate_sec[METRICS_RATE_WINDOW_S];
	/* sources and server */
	struct engine *engine;
	struct jobstore_async *ja;
	rd_kafka_t *rk;
	/* consumer_lag per partition from librdkafka's last statistics */
	struct metrics_lag *lags;
	size_t nlags, caplags;
	struct evhttp *http;
	int port;
	int64_t started;
} m;

void
metrics_inc(enum metrics_counter c, uint64_t n)
{
	if ((unsigned)c < METRICS__COUNT)
		m.counter[c] += n;
}

void
metrics_set_flag(enum metrics_flag f, int on)
{
	if ((unsigned)f < METRICS_FLAG__COUNT)
		m.flag[f] = on != 0;
}

void
metrics_verdict(const struct verdict *v)
{
	int64_t sec = (int64_t)(clock_mono_ns() / 1000000000u);
	size_t slot = (size_t)(sec % METRICS_RATE_WINDOW_S);
	unsigned cls = v->smtp_code >= 100 && v->smtp_code < 600 ? (unsigned)v->smtp_code / 100 : 0;

	if ((unsigned)v->status < VS__COUNT && (unsigned)v->reason < VR__COUNT)
		m.verdicts[v->status][v->reason]++;
	m.reply_class[cls]++;
	if (m.rate_sec[slot] != sec) {
		m.rate_sec[slot] = sec;
		m.rate_slot[slot] = 0;
	}
	m.rate_slot[slot]++;
}

void
metrics_attach(struct engine *e, struct jobstore_async *ja, rd_kafka_t *rk)
{
	m.engine = e;
	m.ja = ja;
	m.rk = rk;
}

static void
metrics_on_written(void *arg, int result)
{
	struct metrics_write *w = arg;
	double s = (double)(clock_mono_ns() - w->start_ns) / 1e9;

	for (size_t i = 0; i < METRICS_NBUCKETS; i++)
		if (s <= metrics_buckets[i])
			m.lat_bucket[i]++;
	m.lat_count++;
	m.lat_sum += s;
	if (result == 1)
		m.writes_new++;
	else
		m.writes_dup++;
	LIST_REMOVE(w, entry);
	w->cb(w->arg, result);
	free(w);
}

int
metrics_put_verdict(struct jobstore_async *ja, const char *job, const char *field,
    const char *address, const struct verdict *v, jobstore_write_cb cb, void *arg)
{
	struct metrics_write *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return jobstore_async_put_verdict(ja, job, field, address, v, cb, arg);
	w->cb = cb;
	w->arg = arg;
	w->start_ns = clock_mono_ns();
	if (jobstore_async_put_verdict(ja, job, field, address, v, metrics_on_written, w) == -1) {
		free(w);
		return -1;
	}
	LIST_INSERT_HEAD(&m.writes, w, entry);
	return 0;
}

/* ---- librdkafka statistics -------------------------------------------------- */

/*
 * A scan of librdkafka's statistics JSON (STATISTICS.md) for the one value
 * we want: topics.TOPIC.partitions.N.consumer_lag.  Not a JSON library: it
 * checks the syntax it walks (objects, arrays, strings, numbers, literals),
 * keeps the object keys on the path, and reports numbers at that path.
 * Bounded: depth at most STATS_MAX_DEPTH, keys cut at 255 bytes, no
 * allocation.
 */
#define STATS_MAX_DEPTH 32
#define STATS_PATH 5            /* topics, TOPIC, partitions, N, consumer_lag */

struct stats_scan {
	const char *p, *end;
	char key[STATS_PATH][256];  /* the keys of the objects on the path */
	metrics_lag_cb cb;
	void *arg;
	int found;
};

static void
stats_ws(struct stats_scan *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* A string, into out (NULL: skipped) cut to outlen - 1 bytes; an escape
 * stands for its character (\uXXXX for '?': no topic name needs more). */
static int
stats_string(struct stats_scan *j, char *out, size_t outlen)
{
	size_t n = 0;

	if (j->p >= j->end || *j->p != '"')
		return -1;
	for (j->p++; j->p < j->end && *j->p != '"';) {
		char c = *j->p++;

		if ((unsigned char)c < 0x20)
			return -1;
		if (c == '\\') {
			if (j->p >= j->end)
				return -1;
			if ((c = *j->p++) == 'u') {
				if (j->end - j->p < 4)
					return -1;
				j->p += 4;
				c = '?';
			}
		}
		if (out != NULL && n + 1 < outlen)
			out[n++] = c;
	}
	if (j->p >= j->end)
		return -1;
	j->p++;
	if (out != NULL)
		out[n] = '\0';
	return 0;
}

static int stats_value(struct stats_scan *j, int depth);

/*
 * The members of an object (close '}') or the elements of an array (']')
 * at depth, the opening bracket under j->p.  An object's keys are
 * key[depth] while their values are read; an array has no key of its own
 * on the path.
 */
static int
stats_members(struct stats_scan *j, int depth, char close)
{
	char skip[1];

	if (close == ']' && depth < STATS_PATH)
		j->key[depth][0] = '\0';
	j->p++;
	stats_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			stats_ws(j);
			if ((depth < STATS_PATH
			        ? stats_string(j, j->key[depth], sizeof(j->key[depth]))
			        : stats_string(j, skip, sizeof(skip))) == -1)
				return -1;
			stats_ws(j);
			if (j->p >= j->end || *j->p++ != ':')
				return -1;
		}
		if (stats_value(j, depth + 1) == -1)
			return -1;
		stats_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		return -1;
	}
}

/* A number: the integer part is kept (consumer_lag is one), a fraction or
 * exponent skipped.  At topics.T.partitions.N.consumer_lag, reported. */
static int
stats_number(struct stats_scan *j, int depth)
{
	int neg = 0, digits = 0;
	int64_t v = 0;

	if (j->p < j->end && *j->p == '-') {
		neg = 1;
		j->p++;
	}
	for (; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++, digits++)
		if (v <= (INT64_MAX - 9) / 10)
			v = v * 10 + (*j->p - '0');
	if (digits == 0)
		return -1;
	while (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' ||
	                         *j->p == 'E' || *j->p == '+' || *j->p == '-'))
		j->p++;
	if (depth == STATS_PATH && strcmp(j->key[0], "topics") == 0 &&
	    strcmp(j->key[2], "partitions") == 0 && strcmp(j->key[4], "consumer_lag") == 0) {
		char *end;
		long part = strtol(j->key[3], &end, 10);

		if (j->key[3][0] != '\0' && *end == '\0' && part >= 0 && part <= INT32_MAX) {
			j->found++;
			if (j->cb != NULL)
				j->cb(j->arg, j->key[1], (int32_t)part, neg ? -v : v);
		}
	}
	return 0;
}

static int
stats_value(struct stats_scan *j, int depth)
{
	if (depth > STATS_MAX_DEPTH)
		return -1;
	stats_ws(j);
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '{': return stats_members(j, depth, '}');
	case '[': return stats_members(j, depth, ']');
	case '"': return stats_string(j, NULL, 0);
	case 't':
	case 'f':
	case 'n': {
		static const char *const lits[] = { "true", "false", "null" };

		for (size_t i = 0; i < 3; i++) {
			size_t n = strlen(lits[i]);

			if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
				j->p += n;
				return 0;
			}
		}
		return -1;
	}
	default: return stats_number(j, depth);
	}
}

int
metrics_stats_scan(const char *json, size_t len, metrics_lag_cb cb, void *arg)
{
	struct stats_scan j;

	memset(&j, 0, sizeof(j));
	j.p = json;
	j.end = json + len;
	j.cb = cb;
	j.arg = arg;
	if (stats_value(&j, 0) == -1)
		return -1;
	stats_ws(&j);
	if (j.p < j.end && *j.p != '\0')   /* librdkafka's text may end in its NUL */
		return -1;
	return j.found;
}

/* Into a new cache: partitions whose lag librdkafka knows (-1: unknown). */
struct stats_collect {
	struct metrics_lag *v;
	size_t n, cap;
	int oom;
};

static void
stats_collect_one(void *arg, const char *topic, int32_t partition, int64_t lag)
{
	struct stats_collect *c = arg;

	if (lag < 0 || c->oom)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct metrics_lag *v = realloc(c->v, cap * sizeof(*v));

		if (v == NULL) {
			c->oom = 1;
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	snprintf(c->v[c->n].topic, sizeof(c->v[c->n].topic), "%s", topic);
	c->v[c->n].partition = partition;
	c->v[c->n].lag = lag;
	c->n++;
}

int
metrics_kafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	struct stats_collect c = { 0 };

	(void)rk;
	(void)opaque;
	if (metrics_stats_scan(json, len, stats_collect_one, &c) == -1 || c.oom) {
		log_warn("kafka statistics not understood", "bytes=%zu", len);
		free(c.v);
		return 0;
	}
	free(m.lags);
	m.lags = c.v;
	m.nlags = c.n;
	m.caplags = c.cap;
	return 0;   /* librdkafka frees json */
}

/* The statistics' lag of a partition, or -1. */
static int64_t
metrics_stats_lag(const char *topic, int32_t partition)
{
	for (size_t i = 0; i < m.nlags; i++)
		if (m.lags[i].partition == partition && strcmp(m.lags[i].topic, topic) == 0)
			return m.lags[i].lag;
	return -1;
}

/* ---- exposition ------------------------------------------------------------ */

static void
metrics_head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
metrics_one(struct evbuffer *b, const char *name, const char *type, const char *help,
    double value)
{
	metrics_head(b, name, type, help);
	evbuffer_add_printf(b, "%s %.17g\n", name, value);
}

/* Prometheus label values: backslash, double quote and newline escaped. */
static void
metrics_label(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

static void
metrics_render_kafka(struct evbuffer *b)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	int64_t total = 0;
	int n = 0;

	metrics_head(b, "mxsift_kafka_consumer_lag", "gauge",
	    "Messages behind the high watermark, per assigned partition: from the consumed "
	    "position, or (nothing consumed yet) the committed offset as librdkafka's statistics "
	    "give it; a partition with neither is left out.");
	if (m.rk != NULL && rd_kafka_assignment(m.rk, &l) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    l != NULL) {
		n = l->cnt;
		if (l->cnt > 0)
			rd_kafka_position(m.rk, l);
		for (int i = 0; i < l->cnt; i++) {
			const rd_kafka_topic_partition_t *p = &l->elems[i];
			int64_t lo = -1, hi = -1, lag;

			if (rd_kafka_get_watermark_offsets(m.rk, p->topic, p->partition, &lo, &hi) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
				continue;     /* not fetched yet: unknown, not zero */
			/*
			 * Nothing consumed yet (just assigned, or idle since):
			 * the lag counts from the group's committed offset,
			 * which only librdkafka's statistics tell without a
			 * blocking round trip.  Counting from the low
			 * watermark, as this did, made a fresh worker on a
			 * finished topic report every message ever written.
			 */
			if (p->offset >= 0)
				lag = hi - p->offset;
			else if (lo >= 0 && lo == hi)
				lag = 0;      /* empty: nothing to be behind on */
			else if ((lag = metrics_stats_lag(p->topic, p->partition)) < 0)
				continue;     /* unknown, not zero */
			if (lag < 0)
				lag = 0;
			total += lag;
			evbuffer_add(b, "mxsift_kafka_consumer_lag{topic=\"", 33);
			metrics_label(b, p->topic);
			evbuffer_add_printf(b, "\",partition=\"%" PRId32 "\"} %" PRId64 "\n",
			    p->partition, lag);
		}
		rd_kafka_topic_partition_list_destroy(l);
	}
	metrics_one(b, "mxsift_kafka_consumer_lag_all", "gauge",
	    "Sum of mxsift_kafka_consumer_lag over the assigned partitions.", (double)total);
	metrics_one(b, "mxsift_kafka_assigned_partitions", "gauge",
	    "Partitions assigned to this worker.", n);
}

static void
metrics_render_redis(struct evbuffer *b)
{
	metrics_head(b, "mxsift_redis_writes_total", "counter",
	    "Verdict writes acknowledged by Redis: new (counted) or duplicate (already there).");
	evbuffer_add_printf(b, "mxsift_redis_writes_total{result=\"new\"} %" PRIu64 "\n"
	    "mxsift_redis_writes_total{result=\"duplicate\"} %" PRIu64 "\n", m.writes_new,
	    m.writes_dup);
	metrics_head(b, "mxsift_redis_write_duration_seconds", "histogram",
	    "Time from queueing a verdict write to Redis's answer (includes reconnects).");
	for (size_t i = 0; i < METRICS_NBUCKETS; i++)
		evbuffer_add_printf(b, "mxsift_redis_write_duration_seconds_bucket{le=\"%g\"} %"
		    PRIu64 "\n", metrics_buckets[i], m.lat_bucket[i]);
	evbuffer_add_printf(b, "mxsift_redis_write_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64
	    "\nmxsift_redis_write_duration_seconds_sum %.9f\n"
	    "mxsift_redis_write_duration_seconds_count %" PRIu64 "\n", m.lat_count, m.lat_sum,
	    m.lat_count);
	metrics_one(b, "mxsift_redis_pending_writes", "gauge",
	    "Verdict writes queued or sent and not yet answered.",
	    m.ja ? (double)jobstore_async_pending(m.ja) : 0);
	metrics_one(b, "mxsift_redis_connected", "gauge", "1 when connected to Redis.",
	    m.ja ? jobstore_async_connected(m.ja) : 0);
}

static int
metrics_lane_slowed(const struct engine_lane_stats *l)
{
	return l->paused_ms > 0 || l->rate != l->rule_rate;
}

/* Order for the top-N lane series (METRICS_LANES_MAX). */
static int
metrics_lane_cmp(const void *pa, const void *pb)
{
	const struct engine_lane_stats *a = pa, *b = pb;

	if (metrics_lane_slowed(a) != metrics_lane_slowed(b))
		return metrics_lane_slowed(b) - metrics_lane_slowed(a);
	if (a->queued != b->queued)
		return a->queued < b->queued ? 1 : -1;
	return strcmp(a->key, b->key);
}

static void
metrics_render_lanes(struct evbuffer *b)
{
	static const struct {
		const char *name, *help;
	} desc[] = {
		{ "mxsift_lane_queued", "Recipients waiting in the lane of this MX domain "
		    "(top lanes only, see mxsift_lanes)." },
		{ "mxsift_lane_rate", "Current RCPT rate of the lane per second (0 = no limit); "
		    "below mxsift_lane_rule_rate after rate-limit answers." },
		{ "mxsift_lane_rule_rate", "RCPT rate per second of the lane's rule (0 = no limit)." },
		{ "mxsift_lane_paused_seconds", "Time left of the lane's backoff pause." },
		{ "mxsift_lane_connections", "SMTP connections of the lane now." },
	};
	struct engine_lane_stats *ls = NULL;
	size_t n = 0, slowed = 0, shown;

	if (m.engine != NULL && (n = engine_get_lane_stats(m.engine, NULL, 0)) > 0 &&
	    (ls = calloc(n, sizeof(*ls))) != NULL)
		n = engine_get_lane_stats(m.engine, ls, n);
	if (ls == NULL)
		n = 0;
	for (size_t i = 0; i < n; i++)
		slowed += metrics_lane_slowed(&ls[i]);
	metrics_one(b, "mxsift_lanes", "gauge", "Lanes (MX domains) in the probe engine now.",
	    (double)n);
	metrics_one(b, "mxsift_lanes_backed_off", "gauge",
	    "Lanes paused or slower than their rule after rate-limit answers.", (double)slowed);
	if (n > 1)
		qsort(ls, n, sizeof(*ls), metrics_lane_cmp);
	shown = n < METRICS_LANES_MAX ? n : METRICS_LANES_MAX;
	for (size_t d = 0; d < sizeof(desc) / sizeof(desc[0]); d++) {
		metrics_head(b, desc[d].name, "gauge", desc[d].help);
		for (size_t i = 0; i < shown; i++) {
			double v = d == 0 ? (double)ls[i].queued : d == 1 ? ls[i].rate
			    : d == 2 ? ls[i].rule_rate : d == 3 ? (double)ls[i].paused_ms / 1000
			    : (double)ls[i].conns;

			evbuffer_add_printf(b, "%s{mx_domain=\"", desc[d].name);
			metrics_label(b, ls[i].key);
			evbuffer_add_printf(b, "\"} %.17g\n", v);
		}
	}
	free(ls);
}

static void
metrics_render_engine(struct evbuffer *b)
{
	static const char *const cls[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct engine_stats es = { 0 };
	double rate = 0;
	int64_t now = (int64_t)(clock_mono_ns() / 1000000000u);

	if (m.engine != NULL)
		engine_get_stats(m.engine, &es);
	metrics_one(b, "mxsift_smtp_connections_opened_total", "counter",
	    "TCP connections opened to MX hosts.", (double)es.connections);
	metrics_one(b, "mxsift_smtp_sessions_established_total", "counter",
	    "SMTP sessions that got through EHLO/HELO.", (double)es.sessions_ok);
	metrics_one(b, "mxsift_smtp_rcpt_total", "counter",
	    "RCPT TO commands sent (including catch-all checks).", (double)es.rcpts);
	metrics_one(b, "mxsift_smtp_replies_503_total", "counter",
	    "503 (bad sequence) replies: must stay 0.", (double)es.replies_503);
	metrics_head(b, "mxsift_smtp_server_replies_total", "counter",
	    "Every SMTP reply read (greeting, EHLO, RSET, MAIL, RCPT, QUIT), by class.");
	for (int i = 0; i < 6; i++)
		if (i != 1)     /* 1xx is counted as other */
			evbuffer_add_printf(b, "mxsift_smtp_server_replies_total{class=\"%s\"} %lu\n",
			    cls[i], es.replies[i]);
	metrics_one(b, "mxsift_smtp_sessions_open", "gauge",
	    "SMTP connections open now (connecting or in session).", (double)es.sessions_open);
	metrics_one(b, "mxsift_smtp_sessions_ended_total", "counter",
	    "SMTP sessions over (one \"smtp session end\" log line each).",
	    (double)es.sessions_ended);
	metrics_one(b, "mxsift_smtp_recipients_per_connection", "gauge",
	    "RCPT commands per TCP connection since start (session reuse ratio).",
	    es.connections ? (double)es.rcpts / (double)es.connections : 0);
	metrics_one(b, "mxsift_lane_queue_depth", "gauge",
	    "Recipients submitted to the probe engine and not yet answered (all lanes).",
	    m.engine ? (double)engine_pending(m.engine) : 0);
	for (size_t i = 0; i < METRICS_RATE_WINDOW_S; i++)
		if (m.rate_sec[i] > now - METRICS_RATE_WINDOW_S && m.rate_sec[i] < now)
			rate += (double)m.rate_slot[i];
	/* whole seconds only: the current one is still filling */
	metrics_one(b, "mxsift_verdict_rate", "gauge",
	    "Verdicts per second over the last 10 complete seconds.",
	    rate / (METRICS_RATE_WINDOW_S - 1));
	metrics_render_lanes(b);
}

void
metrics_render(struct evbuffer *b)
{
	static const char *const cls[6] = { "none", "1xx", "2xx", "3xx", "4xx", "5xx" };
	const char *why;

	metrics_head(b, "mxsift_build_info", "gauge", "mxsift version.");
	evbuffer_add_printf(b, "mxsift_build_info{version=\"%s\"} 1\n", MXSIFT_VERSION);
	metrics_one(b, "process_start_time_seconds", "gauge",
	    "Start time of the process since the epoch, seconds.", (double)m.started);
	metrics_one(b, "mxsift_ready", "gauge", "1 when /readyz answers 200.", metrics_ready(&why));
	metrics_head(b, "mxsift_verdicts_total", "counter",
	    "Verdicts produced by this worker, by status and reason.");
	for (int s = 0; s < VS__COUNT; s++)
		for (int r = 0; r < VR__COUNT; r++) {
			/* every reason's own status always, other pairs once seen */
			if (m.verdicts[s][r] == 0 &&
			    verdict_reason_status((enum verdict_reason)r) != (enum verdict_status)s)
				continue;
			evbuffer_add_printf(b, "mxsift_verdicts_total{status=\"%s\",reason=\"%s\"} %"
			    PRIu64 "\n", verdict_status_name((enum verdict_status)s),
			    verdict_reason_name((enum verdict_reason)r), m.verdicts[s][r]);
		}
	metrics_head(b, "mxsift_smtp_replies_total", "counter",
	    "The SMTP reply that decided each verdict, by class (none: no reply, e.g. "
	    "connection failed).");
	for (int i = 0; i < 6; i++)
		if (i != 1 && i != 3)
			evbuffer_add_printf(b, "mxsift_smtp_replies_total{class=\"%s\"} %" PRIu64 "\n",
			    cls[i], m.reply_class[i]);
	for (int c = 0; c < METRICS__COUNT; c++)
		metrics_one(b, metrics_counter_desc[c].name, "counter", metrics_counter_desc[c].help,
		    (double)m.counter[c]);
	metrics_render_engine(b);
	metrics_render_redis(b);
	metrics_render_kafka(b);
}

int
metrics_ready(const char **why)
{
	if (m.flag[METRICS_STOPPING])
		*why = "stopping";
	else if (!m.flag[METRICS_KAFKA_JOINED])
		*why = "kafka consumer has not joined its group yet";
	else if (m.ja == NULL || !jobstore_async_connected(m.ja))
		*why = "redis not connected";
	else {
		*why = "ready";
		return 1;
	}
	return 0;
}

/* ---- HTTP ---------------------------------------------------------------- */

static void
metrics_reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
    struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

static void
metrics_on_request(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b = evbuffer_new();
	const char *why;

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (path == NULL)
		path = "/";
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evbuffer_add_printf(b, "GET only\n");
		metrics_reply(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", b);
	} else if (strcmp(path, "/metrics") == 0) {
		metrics_render(b);
		metrics_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
	} else if (strcmp(path, "/healthz") == 0) {
		evbuffer_add_printf(b, "ok\n");
		metrics_reply(req, 200, "OK", "text/plain; charset=utf-8", b);
	} else if (strcmp(path, "/readyz") == 0) {
		int ok = metrics_ready(&why);
		evbuffer_add_printf(b, "%s\n", why);
		metrics_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
		    "text/plain; charset=utf-8", b);
	} else {
		evbuffer_add_printf(b, "not found: try /metrics, /healthz, /readyz\n");
		metrics_reply(req, 404, "Not Found", "text/plain; charset=utf-8", b);
	}
	evbuffer_free(b);
}

/* "HOST:PORT" or "[V6]:PORT" -> host (no brackets) and port; 0 / -1. */
static int
metrics_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = addr;
	size_t hl;
	char *end;
	long p;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		h = addr + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL || memchr(addr, ':', (size_t)(colon - addr)))
			return -1;
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

int
metrics_start(struct event_base *base, const char *addr, char *err, size_t errlen)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned char tmp[sizeof(struct in6_addr)];
	char host[256];
	int port;

	m.started = (int64_t)time(NULL);
	if (addr == NULL)
		addr = METRICS_DEFAULT_ADDR;
	if (strcmp(addr, "off") == 0)
		return 0;
	if (metrics_split_addr(addr, host, sizeof(host), &port) == -1 ||
	    (inet_pton(AF_INET, host, tmp) != 1 && inet_pton(AF_INET6, host, tmp) != 1)) {
		snprintf(err, errlen, "--metrics-addr wants IP:PORT or [IPv6]:PORT (e.g. %s, "
		    "0.0.0.0:9464 for every interface) or off, not '%s'", METRICS_DEFAULT_ADDR,
		    addr);
		return -1;
	}
	if ((m.http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		return -1;
	}
	evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(m.http, 8192);
	evhttp_set_max_body_size(m.http, 0);
	evhttp_set_timeout(m.http, 10);
	evhttp_set_gencb(m.http, metrics_on_request, NULL);
	if ((bs = evhttp_bind_socket_with_handle(m.http, host, (ev_uint16_t)port)) == NULL) {
		snprintf(err, errlen, "--metrics-addr %s: cannot listen (port in use, or not an "
		    "address of this host); use another port or off", addr);
		evhttp_free(m.http);
		m.http = NULL;
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
		m.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                        : ((struct sockaddr_in *)&ss)->sin_port);
	log_info("metrics listening", "addr=%s port=%d paths=/metrics,/healthz,/readyz", host,
	    m.port);
	return 0;
}

int
metrics_port(void)
{
	return m.port;
}

void
metrics_stop(void)
{
	struct metrics_write *w;

	if (m.http != NULL)
		evhttp_free(m.http);
	m.http = NULL;
	m.port = 0;
	/* Writes still outstanding belong to a freed jobstore_async, which
	 * never calls back: forget them. */
	while ((w = LIST_FIRST(&m.writes)) != NULL) {
		LIST_REMOVE(w, entry);
		free(w);
	}
	metrics_attach(NULL, NULL, NULL);
	free(m.lags);
	m.lags = NULL;
	m.nlags = m.caplags = 0;
}

void
metrics_reset(void)
{
	metrics_stop();
	memset(&m, 0, sizeof(m));
	LIST_INIT(&m.writes);
}
