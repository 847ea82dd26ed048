/*
 * cmd_submit.c — `mxsift submit --job NAME --brokers B --redis URL FILE`:
 * the coordinator of a fleet job.
 *
 * The same front half as `mxsift check` (plan.c: read, check syntax, dedupe,
 * resolve MX on a libevent loop), then:
 *   - the job's meta (rows, unique, invalid, duplicates, total) goes to Redis
 *     first, so `mxsift status` shows the total while work is running;
 *     total = number of uids = unique valid addresses + invalid rows;
 *   - verdicts the coordinator can decide alone (invalid_syntax,
 *     no_mail_server, dns_error) are written straight to Redis with the
 *     same Lua script the workers use (jobstore.h);
 *   - every other domain becomes Task messages (mxsift.proto) of at most
 *     --batch addresses, produced to mxsift.tasks keyed by the MX domain so
 *     that one worker owns each mail provider.
 * Every delivery report is checked and the producer is flushed at the end:
 * a task that did not reach Kafka fails the run (exit 1), as does a Redis
 * write.  A summary line goes to stdout.
 *
 * Re-running (--resume, e.g. after the coordinator died mid-submit): the
 * same job and input again.  Nothing is counted twice: the meta is written
 * with HSET (absolute values, never increments), direct verdicts and the
 * workers' verdicts go through the first-wins script, and a task produced
 * twice only makes a worker probe its addresses twice.
 *
 * The resolver.  A dns_error verdict (timeout, SERVFAIL, refused, after
 * plan.c's own retries) is a fact about the resolver as much as about the
 * domain, and once written it is final (first verdict wins): a --resume
 * could never replace it.  So until some domain has had a real answer
 * (an MX, NXDOMAIN, a null MX, no address: the resolver works), dns_error
 * verdicts are held in an unlinked spool file (spool.h: memory stays
 * flat) and written only then.  If no domain ever gets an answer (every MX
 * lookup failed, as `mxsift check` says it: "no answer from the DNS
 * resolver HOST for any of N domains"), the held verdicts are dropped,
 * the job is marked failed and the exit is 1: its meta keeps the list's
 * true total (unique + invalid), done counts only what is known without
 * DNS (invalid rows), so `mxsift status` shows the job failed at D of T —
 * never complete — and `submit --resume --dns GOOD` finishes it.
 *
 * Ending early.  A read error after the input was opened (a truncated
 * gzip file) ends the input there, as in check (plan keep_going): the rows
 * before it are submitted and counted (tasks produced and acknowledged,
 * direct verdicts written, total = their uids), then "... the input ends
 * there; the N rows before it were submitted", the job is marked failed
 * (it does not cover the file) and the exit is 1.
 *
 * An empty list (0 bytes, only blank lines, a header alone) is not an
 * error: "FILE: no rows" on stderr, the job is submitted with total 0
 * (`mxsift status` says complete), exit 0.
 *
 * Exit codes: 0 submitted; 1 runtime failure (Kafka, Redis, DNS setup, job
 * name already used without --resume), or the resolver answered for no
 * domain, or a read error ended the input early (see above); 2 usage
 * error; 3 the input as a whole is unusable (unreadable, no such column,
 * not JSONL, UTF-16).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "commands.h"
#include "config.h"
#include "dns.h"
#include "jobstore.h"
#include "kafka.h"
#include "lists.h"
#include "log.h"
#include "redis_url.h"
#include "mxsift.pb-c.h"
#include "plan.h"
#include "progress.h"
#include "spool.h"
#include "verdict.h"

#define SUBMIT_BATCH_DEFAULT 50
#define SUBMIT_BATCH_MAX     10000
#define SUBMIT_FLUSH_MS      60000
#define SUBMIT_METADATA_MS   2000

/*
 * The arrays one task is built in, kept for the whole run: with more
 * domains than plan.c may hold addresses for, most tasks carry one address,
 * and five callocs, a malloc'd message and their frees per task were a
 * quarter of submit's per-task instructions.  keep/addrs/addrp have --batch
 * entries (plan.c never hands out more); hosts and the packed message grow
 * on demand.
 */
struct submit_bufs {
	const struct plan_addr **keep;
	Mxsift__Address *addrs, **addrp;
	Mxsift__MxHost *hosts, **hostp;
	size_t nhosts;
	uint8_t *msg;
	size_t msglen;
};

struct submit {
	struct event_base *base;
	struct dns *dns;
	struct plan *plan;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;    /* held so its metadata stays known */
	struct jobstore *js;
	struct event *tick;
	const char *job, *topic;
	unsigned batch;
	uint64_t domains, tasks, addresses_sent;
	uint64_t delivered, undelivered;
	uint64_t direct;          /* verdicts written by the coordinator */
	int64_t reuse_s;          /* --reuse-within, seconds; 0 = off */
	uint64_t reused;          /* of direct: last verdicts of earlier jobs */
	struct verdict *lastv;    /* --batch entries, for jobstore_get_last() */
	int *lastf;
	/* dns_error verdicts held until the resolver has answered for some
	 * domain (dns_proven): records of a 32-bit length + a packed Verdict */
	int dns_proven;
	struct spool *dns_held;
	uint64_t dns_nheld;
	int failed;
	int plan_done;
	struct progress pg;
	struct jobstore_meta meta;   /* kept current while the list is read */
	time_t meta_at;
	struct submit_bufs tb;       /* reused for every task */
};

static void
submit_usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift submit --job NAME --brokers HOST:PORT --redis URL [OPTIONS] FILE\n"
	    "\n"
	    "Read FILE, check and dedupe its addresses, resolve each domain's MX, and hand\n"
	    "the work to a worker fleet: one Kafka message per batch of addresses of one\n"
	    "domain, keyed by MX domain.  Verdicts that need no SMTP (invalid syntax, no\n"
	    "mail server, DNS errors) are written to Redis directly.  Follow the job with\n"
	    "`mxsift status` and collect it with `mxsift export`.\n"
	    "\n"
	    "Options:\n"
	    "  -j, --job NAME          job name: 1-64 of A-Z a-z 0-9 . _ - (must be new)\n"
	    "  -b, --brokers LIST      Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]\n"
	    "  -r, --redis URL         redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
	    "      --dns HOST[:PORT]   DNS resolver to use (default: the system's)\n"
	    "  -c, --column NAME|N     CSV/TSV column holding the address (default: email)\n"
	    "      --field NAME        JSONL member holding the address (default: email)\n"
	    "      --input-format FMT  auto (default), text, csv, tsv or jsonl (gzip is\n"
	    "                          recognised by content); FILE '-' reads stdin\n"
	    "      --batch N           addresses per task message (default %d, max %d)\n"
	    "      --topic NAME        task topic (default %s)\n"
	    "  -X KEY=VALUE            librdkafka producer property (repeatable)\n"
	    "      --fold-local MODE   dedupe local parts case-insensitively: auto (default:\n"
	    "                          only for domains in case_insensitive.txt), always, never\n"
	    "      --data-dir DIR      reference lists (default: $MXSIFT_DATA_DIR or the\n"
	    "                          build's data/ directory)\n"
	    "      --reuse-within DUR  skip addresses whose last verdict (any job) is younger\n"
	    "                          than DUR (e.g. 12h, 7d; at most 90d): that verdict is\n"
	    "                          copied into this job and counted as reused (0 or\n"
	    "                          off: probe every address, over a config file's value)\n"
	    "      --resume            re-run an existing job (an interrupted submit) with\n"
	    "                          the same FILE: nothing is counted twice\n"
	    "  -q, --quiet             no progress on stderr\n"
	    "      --log-level LEVEL   debug, info, warn (default), error\n"
	    "      --config FILE       configuration file ([submit] section; see mxsift(1))\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Output: one summary line on stdout.  An empty FILE (or blank lines only) is\n"
	    "submitted as a complete job of total 0, with 'FILE: no rows' on stderr.\n"
	    "Exit codes: 0 submitted; 1 runtime failure (Kafka, Redis), or the DNS resolver\n"
	    "answered for no domain (no verdict is written for those addresses; the job is\n"
	    "failed: --resume with a working --dns), or a read error (truncated gzip) ended\n"
	    "the input early (the rows before it are submitted; the job is failed); 2 usage\n"
	    "error; 3 input unusable (unreadable, no such column, not JSONL, UTF-16).\n",
	    SUBMIT_BATCH_DEFAULT, SUBMIT_BATCH_MAX, KAFKA_TOPIC_TASKS);
}

/* A runtime failure: remember it and stop the loop. */
static void
submit_fail(struct submit *s)
{
	s->failed = 1;
	event_base_loopbreak(s->base);
}

static void
submit_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct submit *s = opaque;

	if (m->err) {
		log_error("task delivery failed", "topic=%s partition=%" PRId32 " error=%s",
		    rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2name(m->err));
		s->undelivered++;
	} else
		s->delivered++;
}

/* The job's meta from the plan's counts so far: while the list streams in,
 * `mxsift status` shows the totals growing.  0 / -1. */
static int
submit_put_meta(struct submit *s)
{
	struct plan_stats st;

	plan_get_stats(s->plan, &st);
	s->meta.rows = st.rows;
	s->meta.unique = st.unique;
	s->meta.invalid = st.invalid;
	s->meta.duplicates = st.duplicates;
	s->meta.total = plan_uid_count(s->plan);
	s->meta.domains = st.domains;
	s->meta.tasks = s->tasks;
	s->meta_at = time(NULL);
	return jobstore_put_meta(s->js, s->job, &s->meta);
}

static void
submit_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct submit *s = arg;
	struct plan_stats st;

	plan_get_stats(s->plan, &st);
	progress_show(&s->pg, &st, s->tasks, 0, 0);
	if (time(NULL) != s->meta_at && submit_put_meta(s) == -1) {
		log_error("redis meta write failed", "job=%s error=\"%s\"", s->job,
		    jobstore_errstr(s->js));
		submit_fail(s);
		return;
	}
	rd_kafka_poll(s->rk, 0);      /* serve delivery reports */
	if (kafka_fatal_seen() || s->undelivered > 0)
		submit_fail(s);
}

/* Write one direct verdict (queued, pipelined).  0, or -1 after submit_fail(). */
static int
submit_put_direct(struct submit *s, const char *key, const char *address,
    const struct verdict *v)
{
	if (jobstore_queue_verdict(s->js, s->job, key, address, v) == -1) {
		log_error("redis verdict write failed", "job=%s error=\"%s\"", s->job,
		    jobstore_errstr(s->js));
		submit_fail(s);
		return -1;
	}
	s->direct++;
	return 0;
}

/* Hold a dns_error verdict while the resolver has answered for no domain.
 * 0, or -1 after submit_fail(). */
static int
submit_dns_hold(struct submit *s, const char *address, const struct verdict *v)
{
	char err[256];
	uint8_t *buf;
	uint32_t n;
	size_t len;
	int rc;

	if (s->dns_held == NULL && (s->dns_held = spool_new(err, sizeof(err))) == NULL) {
		log_error("cannot hold dns_error verdicts", "error=\"%s\"", err);
		submit_fail(s);
		return -1;
	}
	if ((buf = jobstore_verdict_pack(s->job, address, v, &len)) == NULL) {
		log_error("out of memory", "job=%s", s->job);
		submit_fail(s);
		return -1;
	}
	n = (uint32_t)len;
	rc = spool_append(s->dns_held, &n, sizeof(n), NULL) == -1 ||
	    spool_append(s->dns_held, buf, len, NULL) == -1 ? -1 : 0;
	free(buf);
	if (rc == -1) {
		log_error("cannot hold dns_error verdicts", "error=\"%s\"", strerror(errno));
		submit_fail(s);
		return -1;
	}
	s->dns_nheld++;
	return 0;
}

/* The resolver works: write the dns_error verdicts held so far, and every
 * later one at once.  0, or -1 after submit_fail(). */
static int
submit_dns_proven(struct submit *s)
{
	uint64_t off = 0, size;
	struct verdict v;
	uint8_t *buf = NULL;
	char *address;
	uint32_t n;
	int rc = 0;

	if (s->dns_proven)
		return 0;
	s->dns_proven = 1;
	if (s->dns_held == NULL)
		return 0;
	log_info("the resolver answered: writing the dns_error verdicts held until now",
	    "job=%s held=%" PRIu64, s->job, s->dns_nheld);
	size = spool_size(s->dns_held);
	while (rc == 0 && off < size) {
		uint8_t *nb = NULL;

		if (spool_read(s->dns_held, off, &n, sizeof(n)) == 0 &&
		    (nb = realloc(buf, n ? n : 1)) != NULL)
			buf = nb;
		if (nb == NULL || spool_read(s->dns_held, off + sizeof(n), buf, n) == -1 ||
		    jobstore_verdict_unpack(buf, n, &address, &v) == -1) {
			log_error("cannot read back held dns_error verdicts", "job=%s", s->job);
			submit_fail(s);
			rc = -1;
			break;
		}
		off += sizeof(n) + n;
		rc = submit_put_direct(s, address, address, &v);
		free(address);
	}
	free(buf);
	spool_free(s->dns_held);
	s->dns_held = NULL;
	s->dns_nheld = 0;
	return rc;
}

static void
submit_on_verdict(void *arg, const struct plan_addr *a, const struct verdict *v)
{
	struct submit *s = arg;
	char field[32];
	const char *key = a->address;

	if (s->failed)
		return;
	if (v->reason == VR_DNS_ERROR && !s->dns_proven) {
		(void)submit_dns_hold(s, a->address, v);
		return;
	}
	/* NXDOMAIN, a null MX, no address: an answer, the resolver works. */
	if (v->reason == VR_NO_MAIL_SERVER && submit_dns_proven(s) == -1)
		return;
	/* An invalid row is its own uid even when its text repeats. */
	if (v->reason == VR_INVALID_SYNTAX) {
		jobstore_invalid_field(a->line, field, sizeof(field));
		key = field;
	}
	(void)submit_put_direct(s, key, a->address, v);
}

/*
 * Ask for the topic's metadata before the first task.  Otherwise librdkafka
 * looks the new topic up on its 1 s topic scan, and every submit waited that
 * second (its whole run for small lists) before the first message could
 * leave: the maintainer's workaround in confluentinc/librdkafka#3202.  Not
 * an error when it fails: producing retries on its own.
 */
static void
submit_topic_metadata(struct submit *s)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;

	if ((s->rkt = rd_kafka_topic_new(s->rk, s->topic, NULL)) == NULL)
		return;
	err = rd_kafka_metadata(s->rk, 0, s->rkt, &md, SUBMIT_METADATA_MS);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		rd_kafka_metadata_destroy(md);
	else
		log_warn("kafka topic metadata not known yet", "topic=%s error=%s", s->topic,
		    rd_kafka_err2name(err));
}

/* Produce one packed Task; waits (serving delivery reports) while
 * librdkafka's queue is full.  0 or -1. */
static int
submit_produce(struct submit *s, const char *key, const uint8_t *buf, size_t len)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		/* by handle when there is one: by name, librdkafka looks the
		 * topic up (and references it) for every message */
		if (s->rkt != NULL)
			err = rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(s->rkt),
			    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)buf, len),
			    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		else
			err = rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(s->topic),
			    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)buf, len),
			    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		/* Backpressure: let the queue drain a little. */
		rd_kafka_poll(s->rk, 100);
		if (kafka_fatal_seen())
			return -1;
	}
	if (err) {
		log_error("task produce failed", "topic=%s error=%s", s->topic,
		    rd_kafka_err2name(err));
		return -1;
	}
	s->tasks++;
	return 0;
}

/*
 * --reuse-within: an address whose last verdict (any earlier job, see
 * jobstore.h mxsift:last:) is younger than reuse_s gets that verdict in
 * this job too, written directly and counted as reused, instead of a probe.
 * The others go to keep[].  0, or -1 after submit_fail().
 */
static int
submit_reuse(struct submit *s, const struct plan_domain *d, const struct plan_addr **keep,
    size_t *nkeep)
{
	const char *addrv[SUBMIT_BATCH_MAX];
	int64_t cutoff = (int64_t)time(NULL) - s->reuse_s;

	*nkeep = 0;
	if (s->reuse_s == 0) {
		for (size_t i = 0; i < d->naddrs; i++)
			keep[(*nkeep)++] = d->addrs[i];
		return 0;
	}
	for (size_t i = 0; i < d->naddrs; i++)
		addrv[i] = d->addrs[i]->address;
	if (jobstore_get_last(s->js, addrv, d->naddrs, s->lastv, s->lastf) == -1) {
		log_error("redis read of last verdicts failed", "job=%s error=\"%s\"", s->job,
		    jobstore_errstr(s->js));
		submit_fail(s);
		return -1;
	}
	for (size_t i = 0; i < d->naddrs; i++) {
		if (!s->lastf[i] || s->lastv[i].checked_at < cutoff) {
			keep[(*nkeep)++] = d->addrs[i];
			continue;
		}
		if (submit_put_direct(s, addrv[i], addrv[i], &s->lastv[i]) == -1)
			return -1;
		s->reused++;
	}
	return 0;
}

/* Room for a task of nhosts MX hosts and a packed message of len bytes
 * in s->tb.  0, or -1 out of memory. */
static int
submit_bufs_fit(struct submit *s, size_t nhosts, size_t len)
{
	struct submit_bufs *b = &s->tb;

	if (b->keep == NULL &&
	    ((b->keep = calloc(s->batch, sizeof(*b->keep))) == NULL ||
	    (b->addrs = calloc(s->batch, sizeof(*b->addrs))) == NULL ||
	    (b->addrp = calloc(s->batch, sizeof(*b->addrp))) == NULL))
		return -1;
	if (nhosts > b->nhosts) {
		Mxsift__MxHost *h = realloc(b->hosts, nhosts * sizeof(*h));
		Mxsift__MxHost **hp;

		if (h == NULL)
			return -1;
		b->hosts = h;
		if ((hp = realloc(b->hostp, nhosts * sizeof(*hp))) == NULL)
			return -1;
		b->hostp = hp;
		b->nhosts = nhosts;
	}
	if (len > b->msglen) {
		size_t cap = len < 256 ? 256 : len * 2;
		uint8_t *m = realloc(b->msg, cap);

		if (m == NULL)
			return -1;
		b->msg = m;
		b->msglen = cap;
	}
	return 0;
}

static void
submit_bufs_free(struct submit_bufs *b)
{
	free(b->keep);
	free(b->addrs);
	free(b->addrp);
	free(b->hosts);
	free(b->hostp);
	free(b->msg);
}

static void
submit_on_domain(void *arg, const struct plan_domain *d)
{
	struct submit *s = arg;
	struct submit_bufs *b = &s->tb;
	const struct dns_mx_result *mx = d->mx;
	const char *mx_domain = mx->mx_domain[0] ? mx->mx_domain : d->domain;
	size_t nb = s->batch, nkeep = 0;

	if (s->failed || submit_dns_proven(s) == -1)
		return;
	if (submit_bufs_fit(s, mx->nhosts, 0) == -1) {
		log_error("out of memory", "domain=%s", d->domain);
		submit_fail(s);
		return;
	}
	if (submit_reuse(s, d, b->keep, &nkeep) == -1 || nkeep == 0)
		return;
	for (size_t i = 0; i < mx->nhosts; i++) {
		mxsift__mx_host__init(&b->hosts[i]);
		b->hosts[i].name = mx->hosts[i].name;
		b->hosts[i].preference = mx->hosts[i].preference;
		b->hostp[i] = &b->hosts[i];
	}
	for (size_t off = 0; off < nkeep; off += nb) {
		Mxsift__Task t = MXSIFT__TASK__INIT;
		size_t n = nkeep - off < nb ? nkeep - off : nb;
		size_t len;

		t.job = (char *)s->job;
		t.mx_domain = (char *)mx_domain;
		t.domain = (char *)d->domain;
		t.n_mx_hosts = mx->nhosts;
		t.mx_hosts = b->hostp;
		t.attempt = 0;
		t.not_before = 0;
		t.implicit_mx = mx->implicit != 0;
		/* only the entries this task uses are set (see submit_bufs) */
		for (size_t i = 0; i < n; i++) {
			const struct plan_addr *a = b->keep[off + i];
			mxsift__address__init(&b->addrs[i]);
			b->addrs[i].address = (char *)a->address;
			b->addrs[i].line = a->line;
			b->addrs[i].smtputf8 = (a->flags & VERDICT_F_SMTPUTF8) != 0;
			b->addrs[i].flags = a->flags;
			b->addrs[i].suggestion = (char *)a->suggestion;
			b->addrp[i] = &b->addrs[i];
		}
		t.n_addresses = n;
		t.addresses = b->addrp;
		len = mxsift__task__get_packed_size(&t);
		if (submit_bufs_fit(s, 0, len ? len : 1) == -1) {
			log_error("out of memory", "domain=%s", d->domain);
			submit_fail(s);
			return;
		}
		mxsift__task__pack(&t, b->msg);
		if (submit_produce(s, mx_domain, b->msg, len) == -1) {
			submit_fail(s);
			return;
		}
		s->addresses_sent += n;
	}
	log_debug("domain handed out", "domain=%s mx_domain=%s addresses=%zu", d->domain,
	    mx_domain, nkeep);
}

static void
submit_on_done(void *arg)
{
	struct submit *s = arg;

	s->plan_done = 1;
	event_base_loopbreak(s->base);
}

/* "90" (seconds), "45s", "30m", "12h", "7d", "2w" -> seconds; -1 if bad. */
static int64_t
submit_parse_duration(const char *s)
{
	char *end;
	unsigned long long v;
	int64_t unit = 1;

	if (strcmp(s, "off") == 0)
		return 0;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0': case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400; break;
	default: return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > (unsigned long long)(INT64_MAX / unit) ||
	    (int64_t)v * unit > (int64_t)JOBSTORE_LAST_TTL_S)
		return -1;
	return (int64_t)v * unit;
}

static int
submit_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int
cmd_submit(int argc, char **argv)
{
	enum { OPT_DNS = 256, OPT_BATCH, OPT_TOPIC, OPT_LOG_LEVEL, OPT_FIELD, OPT_INPUT_FORMAT,
		OPT_FOLD, OPT_DATA_DIR, OPT_REUSE, OPT_RESUME };
	static const struct option longopts[] = {
		{ "job", required_argument, NULL, 'j' },
		{ "brokers", required_argument, NULL, 'b' },
		{ "redis", required_argument, NULL, 'r' },
		{ "dns", required_argument, NULL, OPT_DNS },
		{ "column", required_argument, NULL, 'c' },
		{ "field", required_argument, NULL, OPT_FIELD },
		{ "input-format", required_argument, NULL, OPT_INPUT_FORMAT },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "topic", required_argument, NULL, OPT_TOPIC },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "fold-local", required_argument, NULL, OPT_FOLD },
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		{ "reuse-within", required_argument, NULL, OPT_REUSE },
		{ "resume", no_argument, NULL, OPT_RESUME },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct submit s = { 0 };
	struct kafka_xopts xopts = { 0 };
	struct intake_opts iopts = { 0 };
	struct plan_callbacks cb = { 0 };
	struct plan_params pp = { 0 };
	struct lists *lists = NULL;
	struct jobstore_meta *meta = &s.meta;
	struct timeval tick = { 0, 50 * 1000 };
	struct plan_stats st;
	int dns_dead = 0;
	const char *brokers = NULL, *redis = NULL, *dns_server = NULL, *path, *data_dir = NULL;
	int quiet = 0, resume = 0;
	rd_kafka_conf_t *conf = NULL;
	char err[512];
	int ch, rc = MXSIFT_EXIT_FAILURE, exists;

	s.batch = SUBMIT_BATCH_DEFAULT;
	s.topic = KAFKA_TOPIC_TASKS;
	log_set_level(LOG_WARN);
	if (config_command("mxsift submit", "submit", longopts, "j:b:r:c:X:qh", &argc, &argv) == -1)
		return MXSIFT_EXIT_USAGE;
	/* Bound librdkafka's queue (its default is 1 GiB): past it produce
	 * waits, which pauses reading.  A -X given later overrides it. */
	if (kafka_xopts_add(&xopts, "queue.buffering.max.kbytes=65536", err, sizeof(err)) == -1)
		return MXSIFT_EXIT_FAILURE;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "j:b:r:c:X:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': s.job = optarg; break;
		case 'b': brokers = optarg; break;
		case 'r': redis = optarg; break;
		case 'c':
		case OPT_FIELD:
			/* An empty name is a mistake, not "the default". */
			if (*optarg == '\0') {
				fprintf(stderr, "mxsift submit: --%s wants a %s\n",
				    ch == 'c' ? "column" : "field", ch == 'c' ?
				    "header name or a 1-based number" : "member name");
				goto usage;
			}
			if (ch == 'c')
				iopts.column = optarg;
			else
				iopts.field = optarg;
			break;
		case OPT_DNS: dns_server = optarg; break;
		case OPT_INPUT_FORMAT: {
			int f = intake_format_parse(optarg);
			if (f < 0) {
				fprintf(stderr, "mxsift submit: --input-format must be auto, text, "
				    "csv, tsv or jsonl\n");
				goto usage;
			}
			iopts.format = (enum intake_format)f;
			break;
		}
		case OPT_TOPIC: s.topic = optarg; break;
		case 'q': quiet = 1; break;
		case OPT_RESUME: resume = 1; break;
		case OPT_DATA_DIR: data_dir = optarg; break;
		case OPT_REUSE:
			if ((s.reuse_s = submit_parse_duration(optarg)) < 0) {
				fprintf(stderr, "mxsift submit: --reuse-within wants a duration like "
				    "12h or 7d (at most 90d)\n");
				goto usage;
			}
			break;
		case OPT_FOLD: {
			int f = plan_fold_parse(optarg);
			if (f < 0) {
				fprintf(stderr, "mxsift submit: --fold-local must be auto, always or "
				    "never\n");
				goto usage;
			}
			pp.fold = (enum plan_fold)f;
			break;
		}
		case OPT_BATCH:
			if (submit_parse_uint(optarg, 1, SUBMIT_BATCH_MAX, &s.batch) == -1) {
				fprintf(stderr, "mxsift submit: --batch wants 1..%d\n",
				    SUBMIT_BATCH_MAX);
				goto usage;
			}
			break;
		case 'X':
			if (kafka_xopts_add(&xopts, optarg, err, sizeof(err)) == -1) {
				fprintf(stderr, "mxsift submit: %s\n", err);
				goto usage;
			}
			break;
		case OPT_LOG_LEVEL: {
			int l = log_parse_level(optarg);
			if (l < 0) {
				fprintf(stderr, "mxsift submit: unknown log level '%s'\n", optarg);
				goto usage;
			}
			log_set_level((enum log_level)l);
			break;
		}
		case 'h':
			submit_usage(stdout);
			kafka_xopts_free(&xopts);
			return MXSIFT_EXIT_OK;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1 || s.job == NULL || brokers == NULL || redis == NULL) {
		fprintf(stderr, "mxsift submit: --job, --brokers, --redis and one FILE are "
		    "required\n");
		goto usage;
	}
	if (!jobstore_valid_name(s.job)) {
		fprintf(stderr, "mxsift submit: bad job name '%s' (1-64 of A-Z a-z 0-9 . _ -)\n",
		    s.job);
		goto usage;
	}
	if (redis_url_check_option("mxsift submit", redis) == -1)
		goto usage_out;
	/* The producer is configured before Redis is touched: a locked or
	 * unknown -X property is a usage error.  Kept for rd_kafka_new below. */
	if ((conf = kafka_producer_conf(brokers, &xopts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift submit: %s\n", err);
		goto usage_out;
	}
	path = argv[optind];

	if ((lists = lists_open(data_dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift submit: data: %s\n", err);
		goto out;
	}
	s.js = jobstore_connect(redis, 5000, err, sizeof(err));
	if (s.js == NULL) {
		fprintf(stderr, "mxsift submit: %s\n", err);
		goto out;
	}
	if ((exists = jobstore_job_exists(s.js, s.job)) == -1) {
		fprintf(stderr, "mxsift submit: %s\n", jobstore_errstr(s.js));
		goto out;
	}
	if (exists == 1 && !resume) {
		fprintf(stderr, "mxsift submit: job '%s' already exists in Redis; choose another "
		    "name (or --resume an interrupted submit)\n", s.job);
		goto out;
	}
	if (exists == 1) {
		struct jobstore_meta old;

		if (jobstore_get_meta(s.js, s.job, &old) != 1) {
			fprintf(stderr, "mxsift submit: %s\n", jobstore_errstr(s.js));
			goto out;
		}
		if (strcmp(old.file, path) != 0) {
			fprintf(stderr, "mxsift submit: job '%s' was submitted from '%s': --resume "
			    "needs the same input\n", s.job, old.file);
			goto out;
		}
		log_warn("resuming job", "job=%s state=%s", s.job, old.state);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, submit_on_delivery);
	rd_kafka_conf_set_opaque(conf, &s);
	s.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (s.rk == NULL) {
		fprintf(stderr, "mxsift submit: kafka: %s\n", err);
		goto out;   /* conf is still ours: freed there */
	}
	conf = NULL;   /* owned by s.rk now */
	submit_topic_metadata(&s);

	s.base = event_base_new();
	if (s.base == NULL) {
		fprintf(stderr, "mxsift submit: cannot create event loop\n");
		goto out;
	}
	s.dns = dns_new(s.base, dns_server, err, sizeof(err));
	if (s.dns == NULL) {
		fprintf(stderr, "mxsift submit: dns: %s\n", err);
		goto out;
	}
	cb.verdict = submit_on_verdict;
	cb.domain = submit_on_domain;
	cb.done = submit_on_done;
	cb.arg = &s;
	pp.batch = s.batch;
	pp.lists = lists;
	/* A truncated gzip file: the rows before the cut are submitted. */
	pp.keep_going = 1;
	if (s.reuse_s > 0 && ((s.lastv = calloc(s.batch, sizeof(*s.lastv))) == NULL ||
	    (s.lastf = calloc(s.batch, sizeof(*s.lastf))) == NULL)) {
		fprintf(stderr, "mxsift submit: out of memory\n");
		goto out;
	}
	s.plan = plan_new(s.base, s.dns, &cb, &pp);
	if (s.plan == NULL) {
		fprintf(stderr, "mxsift submit: out of memory\n");
		goto out;
	}
	if (plan_load(s.plan, path, &iopts, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxsift submit: %s\n", err);
		rc = MXSIFT_EXIT_INPUT;
		goto out;
	}

	/* The list is read as it is worked on: the meta says "planning" and
	 * its totals grow (submit_on_tick) until the whole list is read. */
	meta->submitted_at = (int64_t)time(NULL);
	snprintf(meta->state, sizeof(meta->state), "planning");
	snprintf(meta->file, sizeof(meta->file), "%s", path);
	if (submit_put_meta(&s) == -1) {
		fprintf(stderr, "mxsift submit: %s\n", jobstore_errstr(s.js));
		goto out;
	}
	progress_init(&s.pg, stderr, quiet, "tasks");

	s.tick = event_new(s.base, -1, EV_PERSIST, submit_on_tick, &s);
	if (s.tick == NULL || event_add(s.tick, &tick) == -1) {
		fprintf(stderr, "mxsift submit: cannot create timer\n");
		goto out;
	}
	event_base_dispatch(s.base);
	if (plan_error(s.plan) != NULL) {
		fprintf(stderr, "mxsift submit: %s\n", plan_error(s.plan));
		(void)jobstore_set_meta(s.js, s.job, "state", "failed");
		rc = MXSIFT_EXIT_INPUT;
		goto out;
	}
	plan_get_stats(s.plan, &st);
	/* every task is made: the bar ends full, "tasks N/N" */
	progress_show(&s.pg, &st, s.tasks, s.tasks, 1);
	/* No domain answered: the held dns_error verdicts are not written (a
	 * --resume with a working resolver must be able to give the real
	 * ones) and the job is failed below.  Some domain answered after the
	 * last dns_error was held (never, since an answer writes them at
	 * once — but a verdict must not be lost on a wrong guess): write. */
	dns_dead = st.domains_dns_error > 0 && st.domains_dns_error == st.domains;
	if (!s.failed && !dns_dead && s.dns_nheld > 0)
		(void)submit_dns_proven(&s);
	/* Final totals: every row is read. */
	if (!s.failed && submit_put_meta(&s) == -1) {
		log_error("redis meta write failed", "job=%s error=\"%s\"", s.job,
		    jobstore_errstr(s.js));
		s.failed = 1;
	}

	if (!s.failed && !s.plan_done) {
		log_error("event loop ended early", "job=%s", s.job);
		s.failed = 1;
	}
	/* Every task must be acknowledged by Kafka (acks=all) before we say
	 * the job is submitted. */
	if (rd_kafka_flush(s.rk, SUBMIT_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		log_error("kafka flush timed out", "job=%s outstanding=%d", s.job,
		    rd_kafka_outq_len(s.rk));
		s.failed = 1;
	}
	if (s.undelivered > 0 || s.delivered != s.tasks || kafka_fatal_seen()) {
		log_error("tasks not delivered", "job=%s produced=%" PRIu64 " delivered=%" PRIu64
		    " failed=%" PRIu64, s.job, s.tasks, s.delivered, s.undelivered);
		s.failed = 1;
	}
	if (jobstore_flush(s.js) == -1) {
		log_error("redis verdict write failed", "job=%s error=\"%s\"", s.job,
		    jobstore_errstr(s.js));
		s.failed = 1;
	}
	{
		char n[24];
		char r[24];
		snprintf(n, sizeof(n), "%" PRIu64, s.tasks);
		snprintf(r, sizeof(r), "%" PRIu64, s.reused);
		if (jobstore_set_meta(s.js, s.job, "tasks", n) == -1 ||
		    jobstore_set_meta(s.js, s.job, "reused", r) == -1 ||
		    jobstore_set_meta(s.js, s.job, "state", s.failed || dns_dead ||
		    plan_input_error(s.plan) != NULL ? "failed" : "submitted") == -1) {
			fprintf(stderr, "mxsift submit: %s\n", jobstore_errstr(s.js));
			s.failed = 1;
		}
	}
	if (s.failed) {
		fprintf(stderr, "mxsift submit: job %s failed: %" PRIu64 " of %" PRIu64
		    " tasks delivered to Kafka (%s)%s; once the brokers are reachable, run it "
		    "again with --resume (nothing is counted twice)\n", s.job, s.delivered, s.tasks,
		    brokers, s.undelivered > 0 || s.delivered != s.tasks ?
		    ": see the \"tasks not delivered\" log line and librdkafka's errors above" : "");
		goto out;
	}
	if (dns_dead) {
		fprintf(stderr, "mxsift submit: no answer from the DNS resolver %s for any of "
		    "%" PRIu64 " domains: their %" PRIu64 " addresses were not submitted and have "
		    "no verdict; job %s is marked failed (total %" PRIu64 ", done %" PRIu64 "); "
		    "run it again with --resume and a working --dns\n",
		    dns_server != NULL ? dns_server : "(the system's)", st.domains, s.dns_nheld,
		    s.job, meta->total, s.direct);
		goto out;
	}
	s.domains = meta->domains;
	printf("submitted job %s: %" PRIu64 " rows, %" PRIu64 " unique, %" PRIu64 " invalid, %"
	    PRIu64 " duplicates; total %" PRIu64 "; %" PRIu64 " tasks (%" PRIu64
	    " addresses, %" PRIu64 " domains) to %s; %" PRIu64 " verdicts written directly"
	    " (%" PRIu64 " reused)\n",
	    s.job, meta->rows, meta->unique, meta->invalid, meta->duplicates, meta->total, s.tasks,
	    s.addresses_sent, s.domains, s.topic, s.direct, s.reused);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "mxsift submit: cannot write summary: %s\n", strerror(errno));
		goto out;
	}
	if (plan_input_error(s.plan) != NULL) {
		/* What was read is in the job (the summary says what); the job
		 * is not the file. */
		fprintf(stderr, "mxsift submit: %s: the input ends there; the %" PRIu64 " rows "
		    "before it were submitted (total %" PRIu64 "); job %s is marked failed\n",
		    plan_input_error(s.plan), meta->rows, meta->total, s.job);
		goto out;
	}
	/* An empty list is not an error (a nightly export may have had
	 * nothing today), but worth a word even with --quiet. */
	if (meta->rows == 0)
		fprintf(stderr, "mxsift submit: %s: no rows (the input is empty, blank lines "
		    "or a header only): job %s is complete with total 0\n",
		    strcmp(path, "-") == 0 ? "<stdin>" : path, s.job);
	rc = MXSIFT_EXIT_OK;
	goto out;

usage_out:
	rc = MXSIFT_EXIT_USAGE;
	goto out;
usage:
	submit_usage(stderr);
	rc = MXSIFT_EXIT_USAGE;
out:
	if (s.plan != NULL)
		plan_free(s.plan);
	if (s.tick != NULL)
		event_free(s.tick);
	if (s.dns != NULL)
		dns_free(s.dns);
	if (s.rkt != NULL)
		rd_kafka_topic_destroy(s.rkt);
	if (s.rk != NULL)
		rd_kafka_destroy(s.rk);
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	if (s.base != NULL)
		event_base_free(s.base);
	jobstore_close(s.js);
	kafka_xopts_free(&xopts);
	lists_close(lists);
	free(s.lastv);
	free(s.lastf);
	submit_bufs_free(&s.tb);
	spool_free(s.dns_held);
	return rc;
}
