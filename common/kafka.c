/*
 * kafka.c — librdkafka configuration and logging glue (see kafka.h).
 *
 * Owns: the producer and consumer defaults, the -X passthrough, and the
 * bridge from librdkafka's log/error callbacks (called from librdkafka's
 * own threads; log_msg() writes each line with one write(2), so that is
 * safe) to our logfmt log.
 */
#include "kafka.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static volatile sig_atomic_t kafka_fatal;

int
kafka_xopts_add(struct kafka_xopts *x, const char *kv, char *err, size_t errlen)
{
	const char *eq = strchr(kv, '=');

	if (eq == NULL || eq == kv) {
		snprintf(err, errlen, "-X wants key=value, got '%s'", kv);
		return -1;
	}
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 8;
		const char **nkv = realloc(x->kv, cap * sizeof(*nkv));
		if (nkv == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		x->kv = nkv;
		x->cap = cap;
	}
	x->kv[x->n++] = kv;
	return 0;
}

int
kafka_key_consumer_only(const char *kv)
{
	/* librdkafka's consumer-scoped properties (CONFIGURATION.md, "C" rows):
	 * a producer warns about each of them at start. */
	static const char *const prefixes[] = {
		"group.", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
		"enable.auto.", "auto.", "fetch.", "queued.", "partition.assignment.strategy",
		"isolation.level", "check.crcs", "enable.partition.eof", "consume.",
		"coordinator.query.interval.ms", "offset.store.",
	};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(kv, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

void
kafka_xopts_free(struct kafka_xopts *x)
{
	free(x->kv);
	memset(x, 0, sizeof(*x));
}

int
kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
    size_t errlen)
{
	char why[256];

	if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka property %s: %s", key, why);
		return -1;
	}
	return 0;
}

int
kafka_conf_apply(rd_kafka_conf_t *conf, const struct kafka_xopts *x,
    const struct kafka_lock *locked, char *err, size_t errlen)
{
	if (x == NULL)
		return 0;
	for (size_t i = 0; i < x->n; i++) {
		const char *kv = x->kv[i], *eq = strchr(kv, '=');
		char key[256];

		if (eq == NULL || (size_t)(eq - kv) >= sizeof(key)) {
			snprintf(err, errlen, "-X wants key=value, got '%s'", kv);
			return -1;
		}
		memcpy(key, kv, (size_t)(eq - kv));
		key[eq - kv] = '\0';
		for (const struct kafka_lock *l = locked; l != NULL && l->key != NULL; l++) {
			size_t k = 0;

			if (strcmp(key, l->key) != 0)
				continue;
			while (l->ok != NULL && l->ok[k] != NULL && strcmp(eq + 1, l->ok[k]) != 0)
				k++;
			if (l->ok == NULL || l->ok[k] == NULL) {
				snprintf(err, errlen, "-X %s cannot be changed here: %s", key, l->why);
				return -1;
			}
		}
		if (kafka_conf_set(conf, key, eq + 1, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* librdkafka text may hold quotes; keep the logfmt value parseable. */
static void
kafka_sanitize(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;

	for (; *src != '\0' && o + 1 < dstlen; src++)
		dst[o++] = (*src == '"' || (unsigned char)*src < 0x20) ? '\'' : *src;
	dst[o] = '\0';
}

static void
kafka_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum log_level l;
	char text[768];

	/* syslog levels: 0..3 error, 4 warning, 5..6 notice/info, 7 debug */
	if (level <= 3)
		l = LOG_ERROR;
	else if (level == 4)
		l = LOG_WARN;
	else if (level <= 6)
		l = LOG_INFO;
	else
		l = LOG_DEBUG;
	if (l < log_get_level())
		return;
	kafka_sanitize(text, sizeof(text), buf);
	log_msg(l, "kafka", "client=%s facility=%s detail=\"%s\"", rk ? rd_kafka_name(rk) : "-",
	    fac, text);
}

static void
kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	char text[512];

	kafka_sanitize(text, sizeof(text), reason);
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];
		rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
		kafka_sanitize(text, sizeof(text), why);
		log_error("kafka fatal error", "client=%s error=%s detail=\"%s\"",
		    rd_kafka_name(rk), rd_kafka_err2name(orig), text);
		kafka_fatal = 1;
		return;
	}
	/* Transport trouble is retried by librdkafka itself: a warning, unless
	 * no broker at all is reachable. */
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		log_error("kafka error", "client=%s error=%s detail=\"%s\"", rd_kafka_name(rk),
		    rd_kafka_err2name((rd_kafka_resp_err_t)err), text);
	else
		log_warn("kafka error", "client=%s error=%s detail=\"%s\"", rd_kafka_name(rk),
		    rd_kafka_err2name((rd_kafka_resp_err_t)err), text);
}

void
kafka_conf_set_logging(rd_kafka_conf_t *conf)
{
	rd_kafka_conf_set_log_cb(conf, kafka_on_log);
	rd_kafka_conf_set_error_cb(conf, kafka_on_error);
}

int
kafka_fatal_seen(void)
{
	return kafka_fatal != 0;
}

static rd_kafka_conf_t *
kafka_conf_build(const char *const (*defaults)[2], size_t ndefaults,
    const struct kafka_xopts *x, const struct kafka_lock *locked, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	kafka_conf_set_logging(conf);
	for (size_t i = 0; i < ndefaults; i++)
		if (kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, errlen) == -1)
			goto fail;
	if (kafka_conf_apply(conf, x, locked, err, errlen) == -1)
		goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

rd_kafka_conf_t *
kafka_producer_conf(const char *brokers, const struct kafka_xopts *x, char *err, size_t errlen)
{
	const char *const defaults[][2] = {
		{ "bootstrap.servers", brokers },
		{ "client.id", "mxsift-submit" },
		{ "enable.idempotence", "true" },
		{ "acks", "all" },
		{ "linger.ms", "5" },
	};
	/* Every task and verdict acknowledged by all in-sync replicas, and
	 * written once however often it is retried: what "nothing lost,
	 * nothing counted twice" rests on.  The brokers are --brokers. */
	static const char *const acks_all[] = { "all", "-1", NULL };
	static const char *const yes[] = { "true", NULL };
	static const struct kafka_lock locked[] = {
		{ "acks", acks_all, "every task must be acknowledged by all in-sync replicas" },
		{ "request.required.acks", acks_all,
		  "every task must be acknowledged by all in-sync replicas" },
		{ "enable.idempotence", yes, "a retried produce must not write a task twice" },
		{ "bootstrap.servers", NULL, "use --brokers" },
		{ "metadata.broker.list", NULL, "use --brokers" },
		{ NULL, NULL, NULL },
	};

	return kafka_conf_build(defaults, sizeof(defaults) / sizeof(defaults[0]), x, locked, err,
	    errlen);
}

rd_kafka_conf_t *
kafka_consumer_conf(const char *brokers, const char *group, const struct kafka_xopts *x,
    char *err, size_t errlen)
{
	const char *const defaults[][2] = {
		{ "bootstrap.servers", brokers },
		{ "client.id", "mxsift-worker" },
		{ "group.id", group ? group : KAFKA_DEFAULT_GROUP },
		{ "enable.auto.offset.store", "false" },
		{ "enable.auto.commit", "true" },
		{ "auto.offset.reset", "earliest" },
		/* the lag of partitions not consumed from yet (metrics.c) */
		{ "statistics.interval.ms", "5000" },
	};
	static const char *const no[] = { "false", NULL };
	static const struct kafka_lock locked[] = {
		{ "enable.auto.offset.store", no, "at-least-once delivery depends on it" },
		{ "group.id", NULL, "use --group" },
		{ "bootstrap.servers", NULL, "use --brokers" },
		{ "metadata.broker.list", NULL, "use --brokers" },
		{ NULL, NULL, NULL },
	};

	return kafka_conf_build(defaults, sizeof(defaults) / sizeof(defaults[0]), x, locked, err,
	    errlen);
}
