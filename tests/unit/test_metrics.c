/*
 * test_metrics.c — worker/metrics.c: counters as rendered in the Prometheus
 * text format, the rules of the exposition (HELP/TYPE once per family, no
 * duplicate series), readiness, --metrics-addr parsing, and the HTTP
 * endpoints served by evhttp on a loopback port, fetched with evhttp's client
 * on the same loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "engine.h"
#include "metrics.h"

static char *
render(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	assert_non_null(b);
	metrics_render(b);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

/* The value of the series whose line starts with "series " exactly; -1 if absent. */
static double
value(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while (*p != '\0') {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		if ((p = strchr(p, '\n')) == NULL)
			break;
		p++;
	}
	return -1;
}

static void
verdict_of(struct verdict *v, enum verdict_reason r, int code)
{
	verdict_init(v, r);
	v->smtp_code = code;
}

static void
test_counters(void **state)
{
	static const struct {
		enum verdict_reason r;
		int code, times;
	} seen[] = {
		{ VR_ACCEPTED, 250, 3 },
		{ VR_MAILBOX_NOT_FOUND, 550, 2 },
		{ VR_GREYLISTED, 450, 1 },
		{ VR_CONNECTION_FAILED, 0, 4 },
	};
	struct verdict v;
	char *t;

	metrics_reset();
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		for (int k = 0; k < seen[i].times; k++) {
			verdict_of(&v, seen[i].r, seen[i].code);
			metrics_verdict(&v);
		}
	/* a status the reason does not imply still gets its own series */
	verdict_of(&v, VR_ACCEPTED, 250);
	v.status = VS_RISKY;
	metrics_verdict(&v);
	metrics_inc(METRICS_TASKS_DONE, 2);
	metrics_inc(METRICS_DEAD_LETTERS, 1);
	metrics_inc(METRICS_RETRIES_SCHEDULED, 5);
	t = render();
	assert_true(value(t, "mxsift_verdicts_total{status=\"deliverable\",reason=\"accepted\"}") == 3);
	assert_true(value(t, "mxsift_verdicts_total{status=\"undeliverable\",reason=\"mailbox_not_found\"}") == 2);
	assert_true(value(t, "mxsift_verdicts_total{status=\"unknown\",reason=\"greylisted\"}") == 1);
	assert_true(value(t, "mxsift_verdicts_total{status=\"unknown\",reason=\"connection_failed\"}") == 4);
	assert_true(value(t, "mxsift_verdicts_total{status=\"risky\",reason=\"accepted\"}") == 1);
	/* zero series of every reason are present (dashboards need them) */
	assert_true(value(t, "mxsift_verdicts_total{status=\"undeliverable\",reason=\"invalid_syntax\"}") == 0);
	/* but not impossible pairs */
	assert_true(value(t, "mxsift_verdicts_total{status=\"deliverable\",reason=\"greylisted\"}") == -1);
	assert_true(value(t, "mxsift_smtp_replies_total{class=\"2xx\"}") == 4);
	assert_true(value(t, "mxsift_smtp_replies_total{class=\"5xx\"}") == 2);
	assert_true(value(t, "mxsift_smtp_replies_total{class=\"4xx\"}") == 1);
	assert_true(value(t, "mxsift_smtp_replies_total{class=\"none\"}") == 4);
	assert_true(value(t, "mxsift_tasks_done_total") == 2);
	assert_true(value(t, "mxsift_dead_letters_total") == 1);
	assert_true(value(t, "mxsift_retries_scheduled_total") == 5);
	assert_true(value(t, "mxsift_bad_messages_total") == 0);
	/* no sources attached: zeros, not missing */
	assert_true(value(t, "mxsift_smtp_connections_opened_total") == 0);
	assert_true(value(t, "mxsift_kafka_consumer_lag_all") == 0);
	assert_true(value(t, "mxsift_redis_connected") == 0);
	assert_true(value(t, "mxsift_redis_write_duration_seconds_count") == 0);
	assert_true(value(t, "mxsift_redis_write_duration_seconds_bucket{le=\"+Inf\"}") == 0);
	assert_true(value(t, "mxsift_ready") == 0);
	free(t);
	metrics_reset();
	t = render();
	assert_true(value(t, "mxsift_verdicts_total{status=\"deliverable\",reason=\"accepted\"}") == 0);
	free(t);
}

/* Every family has one HELP and one TYPE before its samples; no series twice. */
static void
test_exposition_rules(void **state)
{
	struct verdict v;
	char *t, *save = NULL, *families[128], *series[512];
	size_t nf = 0, ns = 0;

	metrics_reset();
	verdict_of(&v, VR_ACCEPTED, 250);
	metrics_verdict(&v);
	t = render();
	for (char *line = strtok_r(t, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0) {
			char *name = line + 7;
			*strchr(name, ' ') = '\0';
			for (size_t i = 0; i < nf; i++)
				if (strcmp(families[i], name) == 0)
					fail_msg("HELP twice for %s", name);
			assert_true(nf < 128);
			families[nf++] = name;
			continue;
		}
		if (line[0] == '#')
			continue;
		char *sp = strrchr(line, ' ');
		assert_non_null(sp);
		*sp = '\0';
		/* a sample belongs to the last family (histograms: _bucket/_sum/_count) */
		assert_true(nf > 0);
		assert_int_equal(strncmp(line, families[nf - 1], strlen(families[nf - 1])), 0);
		for (size_t i = 0; i < ns; i++)
			if (strcmp(series[i], line) == 0)
				fail_msg("series twice: %s", line);
		assert_true(ns < 512);
		series[ns++] = line;
	}
	assert_true(nf > 20);
	free(t);
	metrics_reset();
}

static void
test_ready(void **state)
{
	const char *why;

	metrics_reset();
	assert_int_equal(metrics_ready(&why), 0);
	assert_string_equal(why, "kafka consumer has not joined its group yet");
	metrics_set_flag(METRICS_KAFKA_JOINED, 1);
	assert_int_equal(metrics_ready(&why), 0);
	assert_string_equal(why, "redis not connected");
	metrics_set_flag(METRICS_STOPPING, 1);
	assert_int_equal(metrics_ready(&why), 0);
	assert_string_equal(why, "stopping");
	metrics_reset();
}

static void
test_addr(void **state)
{
	static const struct {
		const char *addr;
		int ok;
	} cases[] = {
		{ "off", 1 },
		{ "127.0.0.1:0", 1 },
		{ "[::1]:0", 1 },
		{ "localhost:9464", 0 },      /* numeric only: no DNS at startup */
		{ "127.0.0.1", 0 },
		{ "127.0.0.1:", 0 },
		{ "127.0.0.1:70000", 0 },
		{ "::1:9464", 0 },            /* IPv6 wants brackets */
		{ "[::1]9464", 0 },
		{ ":9464", 0 },
	};
	struct event_base *base = event_base_new();
	char err[256];

	assert_non_null(base);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = metrics_start(base, cases[i].addr, err, sizeof(err));
		if (rc != (cases[i].ok ? 0 : -1))
			fail_msg("%s: rc %d", cases[i].addr, rc);
		if (!cases[i].ok)
			assert_non_null(strstr(err, "--metrics-addr"));
		if (strcmp(cases[i].addr, "off") == 0)
			assert_int_equal(metrics_port(), 0);
		else if (cases[i].ok)
			assert_true(metrics_port() > 0);
		metrics_stop();
	}
	/* a port in use is a start-up error that says so: take a free port,
	 * let a second evhttp hold it, then ask for it */
	assert_int_equal(metrics_start(base, "127.0.0.1:0", err, sizeof(err)), 0);
	int port = metrics_port();
	char busy[64];
	struct evhttp *h = evhttp_new(base);

	metrics_stop();
	snprintf(busy, sizeof(busy), "127.0.0.1:%d", port);
	assert_int_equal(evhttp_bind_socket(h, "127.0.0.1", (ev_uint16_t)port), 0);
	assert_int_equal(metrics_start(base, busy, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot listen"));
	evhttp_free(h);
	metrics_reset();
	event_base_free(base);
}

struct fetch {
	struct event_base *base;
	int code;
	char body[16384];
	char ctype[128];
};

static void
on_response(struct evhttp_request *req, void *arg)
{
	struct fetch *f = arg;
	size_t n;

	f->code = req ? evhttp_request_get_response_code(req) : -1;
	if (req != NULL) {
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "Content-Type");
		n = evbuffer_get_length(b);
		if (n >= sizeof(f->body))
			n = sizeof(f->body) - 1;
		evbuffer_remove(b, f->body, n);
		f->body[n] = '\0';
		snprintf(f->ctype, sizeof(f->ctype), "%s", ct ? ct : "");
	}
	event_base_loopbreak(f->base);
}

static void
fetch(struct event_base *base, const char *path, struct fetch *f)
{
	struct evhttp_connection *c = evhttp_connection_base_new(base, NULL, "127.0.0.1",
	    (ev_uint16_t)metrics_port());
	struct evhttp_request *r;

	memset(f, 0, sizeof(*f));
	f->base = base;
	f->code = 0;
	assert_non_null(c);
	r = evhttp_request_new(on_response, f);
	assert_non_null(r);
	evhttp_add_header(evhttp_request_get_output_headers(r), "Host", "127.0.0.1");
	assert_int_equal(evhttp_make_request(c, r, EVHTTP_REQ_GET, path), 0);
	event_base_dispatch(base);
	evhttp_connection_free(c);
}

static void
test_http(void **state)
{
	struct event_base *base = event_base_new();
	struct fetch f;
	struct verdict v;
	char err[256];

	metrics_reset();
	assert_int_equal(metrics_start(base, "127.0.0.1:0", err, sizeof(err)), 0);
	verdict_of(&v, VR_MAILBOX_NOT_FOUND, 550);
	metrics_verdict(&v);
	fetch(base, "/metrics", &f);
	assert_int_equal(f.code, 200);
	assert_string_equal(f.ctype, "text/plain; version=0.0.4; charset=utf-8");
	assert_true(value(f.body,
	    "mxsift_verdicts_total{status=\"undeliverable\",reason=\"mailbox_not_found\"}") == 1);
	fetch(base, "/healthz", &f);
	assert_int_equal(f.code, 200);
	assert_string_equal(f.body, "ok\n");
	fetch(base, "/readyz", &f);
	assert_int_equal(f.code, 503);
	assert_string_equal(f.body, "kafka consumer has not joined its group yet\n");
	fetch(base, "/nope", &f);
	assert_int_equal(f.code, 404);
	fetch(base, "/metrics?x=1", &f);
	assert_int_equal(f.code, 200);
	metrics_reset();
	event_base_free(base);
}

static void
lane_done(void *arg, void *tag, const char *address, const struct verdict *v)
{
}

/* Per-lane series: labelled by MX domain, at most 20 lanes (backed-off
 * lanes first, then the deepest queues), every lane counted. */
static void
test_lanes(void **state)
{
	struct event_base *base = event_base_new();
	static const struct engine_mx_host mx = { "127.0.0.1", 10 };
	struct engine_params p = { .catch_all_check = ENGINE_CATCH_ALL_OFF };
	struct engine *e;
	char addr[64], lane[64], series[128];
	char *text;
	int lines = 0;

	metrics_reset();
	e = engine_new(base, NULL, &p, lane_done, NULL);
	assert_non_null(e);
	/* lane i (of 25) gets i + 1 recipients; nothing runs (no loop) */
	for (int i = 0; i < 25; i++) {
		snprintf(lane, sizeof(lane), "mx%02d.test", i);
		for (int j = 0; j <= i; j++) {
			struct probe_req r = { .address = addr, .domain = "d.test",
			    .mx_domain = lane, .hosts = &mx, .nhosts = 1 };

			snprintf(addr, sizeof(addr), "u%d@d.test", j);
			assert_int_equal(engine_submit(e, &r), 0);
		}
	}
	metrics_attach(e, NULL, NULL);
	text = render();
	assert_true(value(text, "mxsift_lanes") == 25);
	assert_true(value(text, "mxsift_lanes_backed_off") == 0);
	assert_true(value(text, "mxsift_smtp_sessions_open") == 0);
	assert_true(value(text, "mxsift_smtp_server_replies_total{class=\"2xx\"}") == 0);
	/* the 20 deepest: mx05 .. mx24 */
	assert_true(value(text, "mxsift_lane_queued{mx_domain=\"mx24.test\"}") == 25);
	assert_true(value(text, "mxsift_lane_queued{mx_domain=\"mx05.test\"}") == 6);
	assert_true(value(text, "mxsift_lane_queued{mx_domain=\"mx04.test\"}") == -1);
	assert_true(value(text, "mxsift_lane_rate{mx_domain=\"mx24.test\"}") == 0);
	for (const char *l = text; (l = strstr(l, "\nmxsift_lane_queued{")) != NULL; l++)
		lines++;
	assert_int_equal(lines, 20);
	snprintf(series, sizeof(series), "mxsift_lane_connections{mx_domain=\"mx10.test\"}");
	assert_true(value(text, series) == 0);
	free(text);
	metrics_attach(NULL, NULL, NULL);
	engine_shutdown(e);
	engine_free(e);
	metrics_reset();
	event_base_free(base);
}

struct seen {
	char topic[32][64];
	int32_t part[32];
	int64_t lag[32];
	int n;
};

static void
seen_one(void *arg, const char *topic, int32_t partition, int64_t lag)
{
	struct seen *v = arg;

	assert_true(v->n < 32);
	snprintf(v->topic[v->n], sizeof(v->topic[v->n]), "%s", topic);
	v->part[v->n] = partition;
	v->lag[v->n] = lag;
	v->n++;
}

static int
scan(const char *json, struct seen *v)
{
	memset(v, 0, sizeof(*v));
	return metrics_stats_scan(json, strlen(json), seen_one, v);
}

/* librdkafka's statistics: only topics.T.partitions.N.consumer_lag, N >= 0 */
static void
test_stats_scan(void **state)
{
	/* the shape of STATISTICS.md, with decoys: the same key elsewhere
	 * (brokers' toppars, an array, consumer_lag_stored), the internal
	 * partition -1, escapes, literals, fractions */
	static const char json[] =
	    "{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\",\"ts\":1234567,"
	    "\"brokers\":{\"127.0.0.1:9092/1\":{\"toppars\":{\"mxsift.tasks-0\":"
	    "{\"topic\":\"mxsift.tasks\",\"partition\":0,\"consumer_lag\":99}}}},"
	    "\"topics\":{\"mxsift.tasks\":{\"topic\":\"mxsift.tasks\",\"age\":1,"
	    "\"batchsize\":{\"min\":0,\"avg\":0.5,\"p99\":-1e3},"
	    "\"partitions\":{\"0\":{\"partition\":0,\"committed_offset\":7,\"hi_offset\":10,"
	    "\"consumer_lag\":3,\"consumer_lag_stored\":2},"
	    "\"1\":{\"partition\":1,\"desired\":true,\"x\":null,\"consumer_lag\":-1},"
	    "\"-1\":{\"partition\":-1,\"consumer_lag\":-1}}},"
	    "\"mxsift.retry\":{\"partitions\":{\"0\":{\"s\":\"a\\\"b\\u00e9\",\"consumer_lag\":0,"
	    "\"l\":[1,[2,{\"consumer_lag\":5}],\"x\"],\"f\":false}}}},"
	    "\"cgrp\":{\"state\":\"up\",\"consumer_lag\":77},\"arr\":[{\"consumer_lag\":6}]}";
	struct seen v;

	(void)state;
	assert_int_equal(scan(json, &v), 3);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.topic[0], "mxsift.tasks");
	assert_int_equal(v.part[0], 0);
	assert_int_equal(v.lag[0], 3);
	assert_string_equal(v.topic[1], "mxsift.tasks");
	assert_int_equal(v.part[1], 1);
	assert_int_equal(v.lag[1], -1);
	assert_string_equal(v.topic[2], "mxsift.retry");
	assert_int_equal(v.part[2], 0);
	assert_int_equal(v.lag[2], 0);
	/* librdkafka's text may end in its NUL */
	assert_int_equal(metrics_stats_scan(json, sizeof(json), seen_one, &v), 3);

	/* not JSON: -1, nothing beyond the text read (ASan) */
	assert_int_equal(scan("", &v), -1);
	assert_int_equal(scan("{\"topics\":", &v), -1);
	assert_int_equal(scan("{\"topics\":{\"t\":{\"partitions\":{\"0\":{\"consumer_lag\":}}}}}", &v), -1);
	assert_int_equal(scan("{\"a\":1,}", &v), -1);
	assert_int_equal(scan("{\"a\" 1}", &v), -1);
	assert_int_equal(scan("{\"a\":\"x\ny\"}", &v), -1);
	assert_int_equal(scan("{\"a\":tru}", &v), -1);
	assert_int_equal(scan("{\"a\":\"\\u12\"}", &v), -1);
	assert_int_equal(scan("{} x", &v), -1);
	assert_int_equal(scan("[1 2]", &v), -1);
	/* nesting is bounded: 100 levels is refused, not a deep recursion */
	{
		char deep[256];

		memset(deep, '[', 100);
		memset(deep + 100, ']', 100);
		deep[200] = '\0';
		assert_int_equal(scan(deep, &v), -1);
	}
	/* no partitions: 0 */
	assert_int_equal(scan("{\"topics\":{}}", &v), 0);
	/* the callback keeps them; a text it cannot read is logged, not fatal */
	assert_int_equal(metrics_kafka_stats(NULL, (char *)json, sizeof(json) - 1, NULL), 0);
	assert_int_equal(metrics_kafka_stats(NULL, (char *)"{", 1, NULL), 0);
	metrics_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_stats_scan),
		cmocka_unit_test(test_exposition_rules),
		cmocka_unit_test(test_ready),
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_http),
		cmocka_unit_test(test_lanes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
