/*
 * kafka.h — librdkafka configuration shared by `mxsift submit` (producer)
 * and `mxsift-worker` (consumer).
 *
 * Producer: enable.idempotence=true (so acks=all and no duplicates or
 * reordering from internal retries), linger.ms=5.  Consumer: at-least-once —
 * enable.auto.offset.store=false (the worker stores an offset itself, only
 * after every verdict of that message is in Redis), enable.auto.commit=true
 * (stored offsets are committed in the background), auto.offset.reset=
 * earliest, and librdkafka's default eager assignor (cooperative-sticky has
 * known bugs in 2.0.x).
 *
 * `-X key=value` options pass straight through to librdkafka after our
 * defaults, so an operator can tune anything (security.protocol, sasl.*,
 * fetch sizes ...) except the one key the consumer's correctness rests on:
 * enable.auto.offset.store.
 *
 * librdkafka's log and error callbacks go to our logfmt log (log.h).
 * Diagnostics: functions return NULL / -1 and write err.
 */
#ifndef MXSIFT_KAFKA_H
#define MXSIFT_KAFKA_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>

#define KAFKA_TOPIC_TASKS "mxsift.tasks"
#define KAFKA_TOPIC_RETRY "mxsift.retry"
#define KAFKA_TOPIC_DEAD "mxsift.dead"
#define KAFKA_DEFAULT_GROUP "mxsift-workers"

/* -X options as given on the command line ("key=value"), borrowed. */
struct kafka_xopts {
	const char **kv;
	size_t n, cap;
};

/* Append one "key=value" (checked for the '=' and a non-empty key; the
 * string is borrowed).  0, or -1 with err set. */
int kafka_xopts_add(struct kafka_xopts *x, const char *kv, char *err, size_t errlen);
void kafka_xopts_free(struct kafka_xopts *x);
/* 1 when "key=value" (or "key") sets a consumer-only property: a process
 * that also produces (the worker) leaves those out of its producer. */
int kafka_key_consumer_only(const char *kv);

/* Set one property; 0 or -1 with librdkafka's reason in err. */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
    size_t errlen);
/* A property -X may not change: key, the values it may still be given
 * (NULL-terminated; NULL: none) and why, for the error. */
struct kafka_lock {
	const char *key;
	const char *const *ok;
	const char *why;
};
/* Apply every -X option; locked (ended by a NULL key, may be NULL) lists
 * keys that may not be overridden.  0 or -1 with err. */
int kafka_conf_apply(rd_kafka_conf_t *conf, const struct kafka_xopts *x,
    const struct kafka_lock *locked, char *err, size_t errlen);

/* Route librdkafka's logs and errors to log.h. */
void kafka_conf_set_logging(rd_kafka_conf_t *conf);

/* New configurations with our defaults, logging and the -X options (x may
 * be NULL).  The caller owns the result (rd_kafka_new takes it over). */
rd_kafka_conf_t *kafka_producer_conf(const char *brokers, const struct kafka_xopts *x,
    char *err, size_t errlen);
rd_kafka_conf_t *kafka_consumer_conf(const char *brokers, const char *group,
    const struct kafka_xopts *x, char *err, size_t errlen);

/* 1 once the error callback has seen a fatal error (the client instance is
 * then unusable and the process should stop). */
int kafka_fatal_seen(void);

#endif
