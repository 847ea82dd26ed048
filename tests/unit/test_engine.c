/*
 * test_engine.c — the SMTP session and engine against an in-process fake
 * SMTP server (a libevent listener on 127.0.0.1, port 0, same loop).
 *
 * Each case gives the server a script per connection and asserts the exact
 * command sequence the client sent (byte-exact lines, CRLF checked), plus
 * the verdicts.  Script steps:
 *   "<TEXT"   send TEXT CRLF (consecutive sends leave together)
 *   ">N"      wait for N client lines (">" = 1)
 *   "~MS"     pause MS ms; a client line arriving now is recorded "early:"
 *   "X"       close the connection now
 *   NULL      end: record whatever else comes until the client closes
 * A client line that arrives while the server is not waiting for one is
 * recorded with the prefix "early:" — that is the 503 bug we must not have.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "engine.h"
#include "smtp_reply.h"
#include "log.h"
#include "verdict.h"

#define MAXV 8

struct fake;

struct fconn {
	struct fake *f;
	struct bufferevent *bev;
	const char *const *step;
	int want; /* lines still awaited by a ">" step */
	struct event *pause;
	int closed;
};

struct fake {
	struct event_base *base;
	struct evconnlistener *lis;
	int port;
	const char *const *scripts[4]; /* per connection, in accept order */
	int nconns;
	int open;
	struct fconn *conns[4];
	char rec[4096];
	int max_batch;        /* most client lines seen in one read */
	uint64_t rcpt_ms[32]; /* when each RCPT line arrived */
	int nrcpt;
	uint64_t conn_ms[4];            /* when each connection was accepted */
	char peer[4][INET6_ADDRSTRLEN]; /* each connection's client address */
	struct engine_lane_stats ls;    /* the first lane, at the last verdict */
	char ls_key[64];
	struct engine_stats st;
	/* client side */
	struct engine *engine;
	struct verdict v[MAXV];
	int have[MAXV];
	int nreq, ndone;
	int no_shutdown;  /* let the idle timer end the session */
	const char *late; /* submitted late_ms after the start */
	int late_ms;
	struct event *watchdog, *late_ev;
};

static void fake_run(struct fconn *c);

static uint64_t
fake_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
fake_record(struct fake *f, const char *prefix, const char *line, size_t n)
{
	size_t len = strlen(f->rec);

	snprintf(f->rec + len, sizeof(f->rec) - len, "%s%.*s\n", prefix, (int)n, line);
}

static void
fake_maybe_end(struct fake *f)
{
	if (f->ndone == f->nreq && f->open == 0)
		event_base_loopexit(f->base, NULL);
}

static void
fake_close(struct fconn *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->pause != NULL)
		event_del(c->pause);
	c->f->open--;
	fake_maybe_end(c->f);
}

static void
fake_pause_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fconn *c = arg;

	c->step++;
	fake_run(c);
}

/* Run steps until one waits. */
static void
fake_run(struct fconn *c)
{
	while (!c->closed && *c->step != NULL) {
		const char *s = *c->step;

		if (s[0] == '<') {
			bufferevent_write(c->bev, s + 1, strlen(s + 1));
			bufferevent_write(c->bev, "\r\n", 2);
			c->step++;
		} else if (s[0] == '>') {
			if (c->want == 0)
				c->want = s[1] != '\0' ? atoi(s + 1) : 1;
			return;
		} else if (s[0] == '~') {
			int ms = atoi(s + 1);
			struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

			if (c->pause == NULL)
				c->pause = evtimer_new(c->f->base, fake_pause_cb, c);
			evtimer_add(c->pause, &tv);
			return;
		} else if (s[0] == 'X') {
			fake_close(c);
			return;
		}
	}
}

static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	int lines = 0;
	char *line;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		int crlf = n > 0 && line[n - 1] == '\r';
		int waiting = c->want > 0 && *c->step != NULL && (*c->step)[0] == '>';

		lines++;
		if (strncmp(line, "RCPT", 4) == 0 && c->f->nrcpt < 32)
			c->f->rcpt_ms[c->f->nrcpt++] = fake_now_ms();
		fake_record(c->f,
		            !crlf                         ? "nocrlf:"
		            : waiting || *c->step == NULL ? ""
		                                          : "early:",
		            line, crlf ? n - 1 : n);
		free(line);
		if (waiting && --c->want == 0) {
			c->step++;
			fake_run(c);
			if (c->closed)
				return;
		}
	}
	if (lines > c->f->max_batch)
		c->f->max_batch = lines;
}

static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fconn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fake_close(c);
}

static void
fake_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int len,
               void *arg)
{
	struct fake *f = arg;
	struct fconn *c;

	if (f->nconns >= 4 || f->scripts[f->nconns] == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->f = f;
	c->step = f->scripts[f->nconns];
	f->conn_ms[f->nconns] = fake_now_ms();
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, f->peer[f->nconns],
		          sizeof(f->peer[0]));
	f->conns[f->nconns++] = c;
	f->open++;
	c->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, fake_read_cb, NULL, fake_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	fake_run(c);
}

static void
fake_done(void *arg, void *tag, const char *address, const struct verdict *v)
{
	struct fake *f = arg;
	int i = (int)(intptr_t)tag;

	assert_true(i >= 0 && i < f->nreq);
	assert_false(f->have[i]); /* exactly one verdict per request */
	f->have[i] = 1;
	f->v[i] = *v;
	if (engine_get_lane_stats(f->engine, &f->ls, 1) == 0)
		memset(&f->ls, 0, sizeof(f->ls));
	snprintf(f->ls_key, sizeof(f->ls_key), "%s", f->ls.key != NULL ? f->ls.key : "");
	f->ls.key = f->ls_key;
	if (++f->ndone == f->nreq && !f->no_shutdown)
		engine_shutdown(f->engine);
	fake_maybe_end(f);
}

static void
fake_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	fail_msg("test timed out; recorded so far:\n%s", f->rec);
}

static const char *fake_lane; /* lane key; NULL = "x.test" */

static void
fake_submit(struct fake *f, const char *addr, int i, const struct engine_mx_host *hosts,
            size_t nhosts)
{
	const char *at = strrchr(addr, '@');
	struct probe_req r = {
	    .address = addr,
	    .domain = at != NULL ? at + 1 : "x.test",
	    .mx_domain = fake_lane != NULL ? fake_lane : "x.test",
	    .hosts = hosts,
	    .nhosts = nhosts,
	    .tag = (void *)(intptr_t)i,
	};

	/* Unusable addresses are refused at once (verdict later). */
	assert_int_equal(engine_submit(f->engine, &r), strpbrk(addr, "\r\n") != NULL ? -1 : 0);
}

/* test_gauges_while_busy: engine_get_stats() gauge_probe_ms after the start */
static int gauge_probe_ms;
static struct engine_stats gauge_seen;

static void
gauge_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	engine_get_stats(f->engine, &gauge_seen);
}

static const struct engine_mx_host *late_hosts;
static size_t late_nhosts;

static void
fake_late_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	fake_submit(f, f->late, f->nreq - 1, late_hosts, late_nhosts);
}

/*
 * Run the engine over addrs against scripts (NULL-terminated list of
 * per-connection scripts); the fake and its results stay in *f.
 */
static void
run_hosts(struct fake *f, const struct engine_params *params, const char *const *const *scripts,
          const char *const *addrs, const struct engine_mx_host *hosts, size_t nhosts)
{
	struct sockaddr_in sin;
	struct engine_params ep = {0};
	struct timeval tv = {10, 0};
	socklen_t sl = sizeof(sin);
	struct event *gauge_ev = NULL;

	int no_shutdown = f->no_shutdown, late_ms = f->late_ms;
	const char *late = f->late;

	memset(f, 0, sizeof(*f));
	f->no_shutdown = no_shutdown;
	f->late = late;
	f->late_ms = late_ms;
	for (int i = 0; scripts[i] != NULL && i < 4; i++)
		f->scripts[i] = scripts[i];
	f->base = event_base_new();
	assert_non_null(f->base);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lis = evconnlistener_new_bind(f->base, fake_accept_cb, f,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	                                 (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(f->lis);
	getsockname(evconnlistener_get_fd(f->lis), (struct sockaddr *)&sin, &sl);
	f->port = ntohs(sin.sin_port);

	if (params != NULL)
		ep = *params;
	ep.helo_name = "t.test";
	ep.smtp_port = f->port;
	ep.tls = ENGINE_TLS_OFF;
	if (ep.command_timeout_ms == 0)
		ep.command_timeout_ms = 3000;
	/* Catch-all probes are asserted by their own cases; the others keep
	 * their transcripts free of them. */
	if (ep.catch_all_check == ENGINE_CATCH_ALL_DEFAULT)
		ep.catch_all_check = ENGINE_CATCH_ALL_OFF;
	f->engine = engine_new(f->base, NULL, &ep, fake_done, f);
	assert_non_null(f->engine);
	for (f->nreq = 0; addrs[f->nreq] != NULL; f->nreq++) {
		fake_submit(f, addrs[f->nreq], f->nreq, hosts, nhosts);
		/* Never from inside engine_submit(). */
		assert_int_equal(f->ndone, 0);
	}
	if (f->late != NULL) {
		struct timeval ltv = {f->late_ms / 1000, (f->late_ms % 1000) * 1000};

		late_hosts = hosts;
		late_nhosts = nhosts;
		f->nreq++;
		f->late_ev = evtimer_new(f->base, fake_late_cb, f);
		evtimer_add(f->late_ev, &ltv);
	}
	f->watchdog = evtimer_new(f->base, fake_watchdog_cb, f);
	evtimer_add(f->watchdog, &tv);
	if (gauge_probe_ms > 0) {
		struct timeval gtv = {0, gauge_probe_ms * 1000};

		memset(&gauge_seen, 0, sizeof(gauge_seen));
		gauge_ev = evtimer_new(f->base, gauge_probe_cb, f);
		evtimer_add(gauge_ev, &gtv);
	}
	event_base_dispatch(f->base);
	if (gauge_ev != NULL)
		event_free(gauge_ev);
	assert_int_equal(f->ndone, f->nreq);
	assert_int_equal(engine_pending(f->engine), 0);
	engine_get_stats(f->engine, &f->st);
	engine_free(f->engine);
	event_free(f->watchdog);
	if (f->late_ev != NULL)
		event_free(f->late_ev);
	evconnlistener_free(f->lis);
	for (int i = 0; i < f->nconns; i++) {
		if (f->conns[i]->bev != NULL)
			bufferevent_free(f->conns[i]->bev);
		if (f->conns[i]->pause != NULL)
			event_free(f->conns[i]->pause);
		free(f->conns[i]);
	}
	event_base_free(f->base);
}

static void
run(struct fake *f, const struct engine_params *params, const char *const *const *scripts,
    const char *const *addrs)
{
	static const struct engine_mx_host mx = {"127.0.0.1", 10};

	run_hosts(f, params, scripts, addrs, &mx, 1);
}

#define CONNS(f) ((int)(f)->st.connections)
#define N503(f) ((int)(f)->st.replies_503)
#define RCPTS(f) ((int)(f)->st.rcpts)

static void
assert_verdict(const struct verdict *v, enum verdict_status st, enum verdict_reason why, int code)
{
	if (v->status != st || v->reason != why || v->smtp_code != code)
		fail_msg("verdict %s/%s %d, want %s/%s %d (detail %s)",
		         verdict_status_name(v->status), verdict_reason_name(v->reason),
		         v->smtp_code, verdict_status_name(st), verdict_reason_name(why), code,
		         v->detail);
}

#define EHLO_PLAIN "<250-mx.x.test", "<250 8BITMIME"
/* Greeting, EHLO, MAIL answered: the client's RCPT comes next. */
#define SESSION_OPEN "<220 mx", ">", EHLO_PLAIN, ">", "<250 ok", ">"
#define SESSION_QUIT ">", "<221 bye"

static void
test_one_address(void **state)
{
	static const char *const c1[] = {"<220 mx.x.test ESMTP", ">", EHLO_PLAIN,      ">",
	                                 "<250 2.1.0 Ok",        ">", "<250 2.1.5 Ok", ">",
	                                 "<221 2.0.0 Bye",       NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"alice@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<alice@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_string_equal(f.v[0].enhanced, "2.1.5");
	assert_string_equal(f.v[0].mx_host, "127.0.0.1");
	assert_int_equal(f.v[0].tls, 0);
	assert_int_equal(f.v[0].attempts, 1);
	assert_int_equal(CONNS(&f), 1);
	assert_int_equal(RCPTS(&f), 1);
}

static void
test_three_one_connection(void **state)
{
	static const char *const c1[] = {
	    SESSION_OPEN, "<250 2.1.5 ok", ">",          "<250 ok",
	    ">",          "<250 ok",       ">",          "<550 5.1.1 <b@x.test>: User unknown",
	    ">",          "<250 ok",       ">",          "<250 ok",
	    ">",          "<250 ok",       SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", NULL};
	struct engine_params p = {.mail_from = "probe@mxsift.test"};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<probe@mxsift.test>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<probe@mxsift.test>\n"
	                           "RCPT TO:<b@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<probe@mxsift.test>\n"
	                           "RCPT TO:<c@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_verdict(&f.v[1], VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
	assert_verdict(&f.v[2], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(CONNS(&f), 1);
	assert_int_equal(RCPTS(&f), 3);
	assert_int_equal(N503(&f), 0);
}

static void
test_pipelining(void **state)
{
	static const char *const c1[] = {"<220 mx",
	                                 ">",
	                                 "<250-mx",
	                                 "<250-PIPELINING",
	                                 "<250 ENHANCEDSTATUSCODES",
	                                 ">2",
	                                 "<250 2.1.0 ok",
	                                 "<250 2.1.5 ok",
	                                 ">3",
	                                 "<250 2.0.0 ok",
	                                 "<250 2.1.0 ok",
	                                 "<550 5.1.1 no such user",
	                                 SESSION_QUIT,
	                                 NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<b@x.test>\n"
	                           "QUIT\n");
	/* RSET+MAIL+RCPT left in one write. */
	assert_int_equal(f.max_batch, 3);
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_verdict(&f.v[1], VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
}

static void
test_multiline_greeting(void **state)
{
	/* The greeting's last line comes 150 ms late: EHLO must wait for it. */
	static const char *const c1[] = {"<220-mx.x.test ESMTP",
	                                 "<220-still talking",
	                                 "~150",
	                                 "<220 done",
	                                 ">",
	                                 EHLO_PLAIN,
	                                 ">",
	                                 "<250 ok",
	                                 ">",
	                                 "<250 ok",
	                                 SESSION_QUIT,
	                                 NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
}

static void
test_greeting_554(void **state)
{
	static const char *const c1[] = {"<554 5.7.1 You are not welcome", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "QUIT\n");
	assert_int_equal(f.v[0].status, VS_UNKNOWN);
	assert_int_equal(f.v[0].reason, VR_BLOCKED);
	assert_int_equal(f.v[0].smtp_code, 554);
	assert_int_equal(f.v[1].status, VS_UNKNOWN);
	assert_int_equal(CONNS(&f), 1);
}

static void
test_421_mid_session(void **state)
{
	/* 421 to MAIL: nothing more may be sent, not even QUIT.  With
	 * retries off the verdict is the 421. */
	static const char *const c1[] = {
	    "<220 mx", ">", EHLO_PLAIN, ">", "<421 4.3.2 Service shutting down", "~200", "X", NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.throttle_retries = ENGINE_THROTTLE_RETRIES_NONE,
	                          .backoff_base_ms = 50};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n");
	assert_int_equal(f.v[0].status, VS_UNKNOWN);
	assert_int_equal(f.v[0].smtp_code, 421);
	assert_int_equal(f.st.backoffs, 1);
	assert_int_equal(f.st.throttled, 0);
}

static void
test_421_backoff_retry(void **state)
{
	/* The same 421, retries on (default): the lane pauses, then asks
	 * again on a fresh connection. */
	static const char *const c1[] = {
	    "<220 mx", ">", EHLO_PLAIN, ">", "<421 4.7.0 Too many connections", "~200", "X", NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.backoff_base_ms = 50};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\nMAIL FROM:<>\n"
	                           "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<a@x.test>\nQUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(f.v[0].attempts, 2);
	assert_int_equal(f.st.backoffs, 1);
	assert_int_equal(f.st.throttled, 1);
	assert_int_equal(CONNS(&f), 2);
}

static void
test_ehlo_502_helo(void **state)
{
	static const char *const c1[] = {
	    "<220 mx",    ">",       "<502 5.5.2 Error: command not recognized",
	    ">",          "<250 mx", ">",
	    "<250 ok",    ">",       "<250 ok",
	    SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "HELO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
}

static void
test_server_drop(void **state)
{
	/* The server vanishes after RCPT: abort, no QUIT, no reuse. */
	static const char *const c1[] = {SESSION_OPEN, "X", NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n");
	assert_verdict(&f.v[0], VS_UNKNOWN, VR_CONNECTION_FAILED, 0);
}

static void
test_pipelined_mail_rejected(void **state)
{
	/* MAIL refused under pipelining: the RCPT reply is read and
	 * discarded, the verdict comes from MAIL — never undeliverable. */
	static const char *const c1[] = {"<220 mx",
	                                 ">",
	                                 "<250-mx",
	                                 "<250 PIPELINING",
	                                 ">2",
	                                 "<550 5.7.1 Sender address rejected: Access denied",
	                                 "<503 5.5.1 Error: need MAIL command",
	                                 ">3",
	                                 "<250 ok",
	                                 "<250 ok",
	                                 "<250 2.1.5 ok",
	                                 SESSION_QUIT,
	                                 NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<b@x.test>\n"
	                           "QUIT\n");
	assert_int_equal(f.v[0].status, VS_UNKNOWN);
	assert_int_equal(f.v[0].smtp_code, 550);
	assert_string_equal(f.v[0].enhanced, "5.7.1");
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(N503(&f), 1);
}

static void
test_recycle_max_rcpt(void **state)
{
	/* max_rcpt_per_session 2: third address on a second connection. */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", ">",       "<250 ok",    ">",
	                                 "<250 ok",    ">",       "<250 ok", SESSION_QUIT, NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", NULL};
	struct engine_params p = {.max_rcpt_per_session = 2};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<b@x.test>\n"
	                           "QUIT\n"
	                           "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<c@x.test>\n"
	                           "QUIT\n");
	assert_int_equal(CONNS(&f), 2);
}

static void
test_control_chars_refused(void **state)
{
	/* An address with CR LF never reaches the socket; the others go on. */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test\r\nDATA", "ok@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<ok@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_UNDELIVERABLE, VR_INVALID_SYNTAX, 0);
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
}

static void
test_failover_refused(void **state)
{
	/* Nothing listens on 127.0.0.2: the next host by preference serves. */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	static const struct engine_mx_host hosts[] = {{"127.0.0.2", 10}, {"127.0.0.1", 20}};
	struct fake f = {0};

	run_hosts(&f, NULL, scripts, addrs, hosts, 2);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_string_equal(f.v[0].mx_host, "127.0.0.1");
	assert_int_equal(CONNS(&f), 2);
}

static void
test_failover_421_greeting(void **state)
{
	/* Two host names, one address: the first greets 421 and is left
	 * without a word; the second serves. */
	static const char *const c1[] = {"<421 4.3.2 too busy", "~100", "X", NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	static const struct engine_mx_host hosts[] = {{"127.0.0.1", 10}, {"[127.0.0.1]", 20}};
	struct fake f = {0};

	run_hosts(&f, NULL, scripts, addrs, hosts, 2);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_string_equal(f.v[0].mx_host, "[127.0.0.1]");
}

static void
test_all_hosts_fail(void **state)
{
	static const char *const *const scripts[] = {NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	static const struct engine_mx_host hosts[] = {{"127.0.0.2", 10}, {"127.0.0.3", 20}};
	struct fake f = {0};

	run_hosts(&f, NULL, scripts, addrs, hosts, 2);
	assert_string_equal(f.rec, "");
	assert_verdict(&f.v[0], VS_UNKNOWN, VR_CONNECTION_FAILED, 0);
	assert_verdict(&f.v[1], VS_UNKNOWN, VR_CONNECTION_FAILED, 0);
	assert_int_equal(CONNS(&f), 2);
}

static void
test_reused_drop_requeued(void **state)
{
	/* The server drops a reused session at RSET: the request is tried
	 * once more on a fresh connection. */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", ">", "X", NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\n"
	                           "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<b@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(f.v[1].attempts, 2);
}

static void
test_timeout_aborts(void **state)
{
	/* No reply to RCPT: timeout verdict, the connection is dropped
	 * without QUIT and not reused. */
	static const char *const c1[] = {SESSION_OPEN, "~1500", NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.command_timeout_ms = 300};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n");
	assert_verdict(&f.v[0], VS_UNKNOWN, VR_TIMEOUT, 0);
}

static void
test_smtputf8(void **state)
{
	/* Without SMTPUTF8 the UTF-8 address is not sent at all; with it, MAIL
	 * carries the SMTPUTF8 parameter. */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const c2[] = {"<220 mx", ">", "<250-mx", "<250 SMTPUTF8", ">",
	                                 "<250 ok", ">", "<250 ok", SESSION_QUIT,    NULL};
	static const char *const *const s1[] = {c1, NULL};
	static const char *const *const s2[] = {c2, NULL};
	static const char *const a1[] = {"j\xc3\xb6rg@x.test", "ascii@x.test", NULL};
	static const char *const a2[] = {"j\xc3\xb6rg@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, s1, a1);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<ascii@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_UNKNOWN, VR_SMTPUTF8_UNSUPPORTED, 0);
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);

	run(&f, NULL, s2, a2);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<> SMTPUTF8\n"
	                           "RCPT TO:<j\xc3\xb6rg@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
}

static void
test_452_retry_now(void **state)
{
	/* 452 4.5.3 too many recipients is not about the mailbox: asked
	 * again once, on a fresh session. */
	static const char *const c1[] = {SESSION_OPEN, "<452 4.5.3 Too many recipients",
	                                 SESSION_QUIT, NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "QUIT\n"
	                           "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(f.v[0].attempts, 2);
}

static void
test_early_reply_is_protocol_error(void **state)
{
	/* Two replies to one EHLO (no PIPELINING): the second would be taken
	 * for MAIL's answer.  The session must stop, not probe. */
	static const char *const c1[] = {"<220 mx", ">", EHLO_PLAIN, "<250 bonus", "~300", NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_null(strstr(f.rec, "RCPT"));
	assert_int_equal(f.v[0].status, VS_UNKNOWN);
	assert_int_equal(f.v[0].reason, VR_PROTOCOL_ERROR);
}

static void
test_idle_close(void **state)
{
	/* Nothing more to do: the idle session is QUIT after idle_close_ms,
	 * without engine_shutdown(). */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.idle_close_ms = 100};
	struct fake f = {.no_shutdown = 1};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "QUIT\n");
}

/* ---- catch-all detection ------------------------------------------------ */

#define TXN(reply) ">", "<250 ok", ">", "<250 ok", ">", reply /* RSET, MAIL, RCPT */

static void
test_catch_all_domain(void **state)
{
	/* The first accepted address triggers one probe for a random local
	 * part, right after it on the same session; the domain accepts it, so
	 * every accepted address is risky/catch_all.  Rejections stay. */
	static const char *const c1[] = {SESSION_OPEN,
	                                 "<250 2.1.5 ok",
	                                 TXN("<250 2.1.5 ok"),
	                                 TXN("<250 2.1.5 ok"),
	                                 TXN("<550 5.1.1 no such user"),
	                                 SESSION_QUIT,
	                                 NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", NULL};
	struct engine_params p = {.catch_all_check = ENGINE_CATCH_ALL_ON,
	                          .catch_all_local = "qzcatchallprobe"};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<qzcatchallprobe@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<b@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<c@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_RISKY, VR_CATCH_ALL, 250);
	assert_verdict(&f.v[1], VS_RISKY, VR_CATCH_ALL, 250);
	assert_verdict(&f.v[2], VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
	assert_true(f.v[0].flags & VERDICT_F_CATCH_ALL);
	assert_true(f.v[1].flags & VERDICT_F_CATCH_ALL);
	assert_false(f.v[2].flags & VERDICT_F_CATCH_ALL);
	assert_string_equal(f.v[0].enhanced, "2.1.5");
	assert_int_equal(RCPTS(&f), 4);
	assert_int_equal(CONNS(&f), 1);
}

static void
test_catch_all_not(void **state)
{
	/* The random local part is rejected 5.1.1: accepted stays accepted,
	 * and no second probe is made for the domain. */
	static const char *const c1[] = {
	    SESSION_OPEN,         "<250 2.1.5 ok", TXN("<550 5.1.1 no such user"),
	    TXN("<250 2.1.5 ok"), SESSION_QUIT,    NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct engine_params p = {.catch_all_check = ENGINE_CATCH_ALL_ON,
	                          .catch_all_local = "qzcatchallprobe"};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<qzcatchallprobe@x.test>\n"
	                           "RSET\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<b@x.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_false(f.v[0].flags & VERDICT_F_CATCH_ALL);
	assert_int_equal(RCPTS(&f), 3);
}

static void
test_catch_all_unknown_and_domains(void **state)
{
	/* Two domains on one lane, one probe each: x.test's probe gets 450
	 * greylisted (unknown: accepted stays deliverable, unmarked, not asked again),
	 * y.test's is accepted (catch-all).  Rejected-only z.test costs no
	 * probe at all. */
	static const char *const c1[] = {SESSION_OPEN,
	                                 "<250 2.1.5 ok",                /* a@x */
	                                 TXN("<450 4.2.0 Greylisted"),   /* probe x */
	                                 TXN("<250 2.1.5 ok"),           /* b@y */
	                                 TXN("<250 2.1.5 ok"),           /* probe y */
	                                 TXN("<250 2.1.5 ok"),           /* c@x */
	                                 TXN("<250 2.1.5 ok"),           /* d@y */
	                                 TXN("<550 5.1.1 no such user"), /* e@z */
	                                 SESSION_QUIT,
	                                 NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@y.test", "c@x.test",
	                                    "d@y.test", "e@z.test", NULL};
	struct engine_params p = {.catch_all_check = ENGINE_CATCH_ALL_ON,
	                          .catch_all_local = "qzcatchallprobe"};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\n"
	                           "MAIL FROM:<>\n"
	                           "RCPT TO:<a@x.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<qzcatchallprobe@x.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<b@y.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<qzcatchallprobe@y.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<c@x.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<d@y.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<e@z.test>\n"
	                           "QUIT\n");
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_false(f.v[0].flags & VERDICT_F_CATCH_ALL);
	assert_verdict(&f.v[1], VS_RISKY, VR_CATCH_ALL, 250);
	assert_true(f.v[1].flags & VERDICT_F_CATCH_ALL);
	assert_verdict(&f.v[2], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_verdict(&f.v[3], VS_RISKY, VR_CATCH_ALL, 250);
	assert_verdict(&f.v[4], VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, 550);
	assert_int_equal(RCPTS(&f), 7);
}

static void
test_catch_all_random_local(void **state)
{
	/* Without a fixed name the local part is 20 random lowercase letters,
	 * a new one each time. */
	static const char *const c1[] = {SESSION_OPEN, "<250 2.1.5 ok",
	                                 TXN("<550 5.1.1 no such user"), SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.catch_all_check = ENGINE_CATCH_ALL_ON};
	struct fake f = {0};
	char first[128] = "";
	regex_t re;
	regmatch_t m[2];

	assert_int_equal(regcomp(&re,
	                         "^EHLO t.test\nMAIL FROM:<>\nRCPT TO:<a@x.test>\nRSET\nMAIL "
	                         "FROM:<>\nRCPT TO:<([a-z]{20})@x.test>\nQUIT\n$",
	                         REG_EXTENDED),
	                 0);
	for (int round = 0; round < 2; round++) {
		run(&f, &p, scripts, addrs);
		if (regexec(&re, f.rec, 2, m, 0) != 0)
			fail_msg("unexpected transcript:\n%s", f.rec);
		if (round == 0)
			snprintf(first, sizeof(first), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
			         f.rec + m[1].rm_so);
		else
			assert_true(strncmp(first, f.rec + m[1].rm_so, 20) != 0);
	}
	regfree(&re);
}

static void
test_catch_all_off(void **state)
{
	static const char *const c1[] = {SESSION_OPEN, "<250 2.1.5 ok", TXN("<250 ok"),
	                                 SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct engine_params p = {.catch_all_check = ENGINE_CATCH_ALL_OFF};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<a@x.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<b@x.test>\nQUIT\n");
	assert_int_equal(RCPTS(&f), 2);
}

/* ---- recycling and reuse, counted on the wire ----------------------------- */

static void
test_recycle_by_age(void **state)
{
	/* max_session_age_s 1: a's answer comes after 1.1 s, so the session is
	 * too old for b, which goes on a second connection. */
	static const char *const c1[] = {SESSION_OPEN, "~1100", "<250 ok", SESSION_QUIT, NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct engine_params p = {.max_session_age_s = 1};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<a@x.test>\nQUIT\n"
	                           "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<b@x.test>\nQUIT\n");
	assert_int_equal(CONNS(&f), 2);
	assert_int_equal(f.nconns, 2);
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
}

static void
test_idle_close_then_reconnect(void **state)
{
	/* The session is QUIT after 100 ms idle; an address submitted at
	 * 400 ms opens a new connection (the old one is gone, not reused). */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.idle_close_ms = 100};
	struct fake f = {.no_shutdown = 1, .late = "b@x.test", .late_ms = 400};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<a@x.test>\nQUIT\n"
	                           "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<b@x.test>\nQUIT\n");
	assert_int_equal(CONNS(&f), 2);
	assert_int_equal(f.nconns, 2);
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
}

static void
test_no_reuse_after_timeout(void **state)
{
	/* a's RCPT times out: the connection is dropped without QUIT and b
	 * gets a fresh one. */
	static const char *const c1[] = {SESSION_OPEN, "~1500", NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct engine_params p = {.command_timeout_ms = 300};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_string_equal(f.rec, "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<a@x.test>\n"
	                           "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<b@x.test>\nQUIT\n");
	assert_verdict(&f.v[0], VS_UNKNOWN, VR_TIMEOUT, 0);
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(CONNS(&f), 2);
	assert_int_equal(f.nconns, 2);
}

static void
test_no_reuse_after_protocol_error(void **state)
{
	/* Two replies to a's MAIL (no PIPELINING): protocol error, the
	 * connection is dropped, b gets a fresh one. */
	static const char *const c1[] = {"<220 mx", ">",          EHLO_PLAIN, ">",
	                                 "<250 ok", "<250 extra", "~300",     NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_null(strstr(f.rec, "RCPT TO:<a@x.test>"));
	assert_string_equal(strstr(f.rec, "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<b"),
	                    "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<b@x.test>\nQUIT\n");
	assert_verdict(&f.v[0], VS_UNKNOWN, VR_PROTOCOL_ERROR, 0);
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(CONNS(&f), 2);
	assert_int_equal(f.nconns, 2);
}

/* ---- lanes: rules, pacing, backoff ------------------------------------------ */

/* A rules file with text in a fresh temporary file; returns its path
 * (static: one at a time). */
static const char *
rules_file(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/test_engine_rules.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

#define ACCEPT_TXN TXN("<250 2.1.5 ok")

static void
test_lane_rcpt_rate(void **state)
{
	/* rate=10 burst=1: RCPTs at least 100 ms apart on the server's clock,
	 * for three domains that share the MX domain (one lane). */
	static const char *const c1[] = {SESSION_OPEN, "<250 2.1.5 ok", ACCEPT_TXN, ACCEPT_TXN,
	                                 ACCEPT_TXN,   SESSION_QUIT,    NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@y.test", "c@z.test", "d@x.test", NULL};
	const char *path = rules_file("# test\n* rate=1000\nshared.test rate=10 burst=1\n");
	struct engine_params p = {.lanes_file = path};
	struct fake f = {0};

	fake_lane = "mx.shared.test";
	run(&f, &p, scripts, addrs);
	fake_lane = NULL;
	unlink(path);
	assert_int_equal(f.nrcpt, 4);
	assert_int_equal(CONNS(&f), 1);
	for (int i = 1; i < f.nrcpt; i++)
		if (f.rcpt_ms[i] - f.rcpt_ms[i - 1] < 95)
			fail_msg("RCPT %d came %llu ms after the one before", i,
			         (unsigned long long)(f.rcpt_ms[i] - f.rcpt_ms[i - 1]));
	for (int i = 0; i < 4; i++)
		assert_verdict(&f.v[i], VS_DELIVERABLE, VR_ACCEPTED, 250);
}

static void
test_lane_conn_rate_and_rcpt_per_session(void **state)
{
	/* rcpt_per_session=1 conn_rate=5 conn_burst=1: one connection per
	 * address, at least 200 ms apart. */
	static const char *const c1[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c1, c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", NULL};
	const char *path = rules_file("x.test conn_rate=5 conn_burst=1 rcpt_per_session=1\n");
	struct engine_params p = {.lanes_file = path};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	unlink(path);
	assert_int_equal(f.nconns, 3);
	assert_int_equal(CONNS(&f), 3);
	for (int i = 1; i < f.nconns; i++)
		if (f.conn_ms[i] - f.conn_ms[i - 1] < 190)
			fail_msg("connection %d came %llu ms after the one before", i + 1,
			         (unsigned long long)(f.conn_ms[i] - f.conn_ms[i - 1]));
}

static void
test_lane_backoff_on_rcpt_and_recovery(void **state)
{
	/* A 450 4.7.28-style rate limit at RCPT: the lane halves its rate
	 * (10/s -> 5/s), pauses, asks b again on a new session; then each
	 * good answer brings the rate up by 1/s. */
	static const char *const c1[] = {SESSION_OPEN, "<250 2.1.5 ok",
	                                 TXN("<450 4.7.28 Our system has detected an unusual rate"),
	                                 SESSION_QUIT, NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok", ACCEPT_TXN, SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", NULL};
	const char *path = rules_file("x.test rate=10 burst=5\n");
	struct engine_params p = {.lanes_file = path, .backoff_base_ms = 200};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	unlink(path);
	assert_string_equal(f.rec, "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<a@x.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<b@x.test>\nQUIT\n"
	                           "EHLO t.test\nMAIL FROM:<>\nRCPT TO:<b@x.test>\n"
	                           "RSET\nMAIL FROM:<>\nRCPT TO:<c@x.test>\nQUIT\n");
	assert_verdict(&f.v[1], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(f.st.backoffs, 1);
	assert_int_equal(f.st.throttled, 1);
	/* the pause: base 200 ms with jitter 0.5..1.5 */
	if (f.conn_ms[1] - f.rcpt_ms[1] < 95)
		fail_msg("new session %llu ms after the rate limit",
		         (unsigned long long)(f.conn_ms[1] - f.rcpt_ms[1]));
	/* halved to 5/s, then two good answers (b, c): +1/s each */
	assert_string_equal(f.ls.key, "x.test");
	assert_true(f.ls.rate > 6.99 && f.ls.rate < 7.01);
	assert_int_equal(f.ls.backoffs, 1);
	assert_int_equal(f.ls.backoff_level, 0);
}

/* Reload rules from text; returns engine_reload_rules()'s answer. */
static int
reload_text(struct engine *e, const char *text, char *err, size_t errlen)
{
	const char *path = rules_file(text);
	int rc = engine_reload_rules(e, path, err, errlen);

	unlink(path);
	return rc;
}

static void
test_lane_stats_and_recovery(void **state)
{
	/* Lane stats while it runs: taken from the done callback's view. */
	static const char *const c1[] = {SESSION_OPEN, "<450 4.7.0 Too many connections, slow down",
	                                 SESSION_QUIT, NULL};
	static const char *const c2[] = {SESSION_OPEN, "<250 ok",    ACCEPT_TXN,
	                                 ACCEPT_TXN,   ACCEPT_TXN,   ACCEPT_TXN,
	                                 ACCEPT_TXN,   SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, c2, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", "d@x.test",
	                                    "e@x.test", "f@x.test", NULL};
	const char *path = rules_file("x.test rate=100 burst=10\n");
	struct engine_params p = {.lanes_file = path, .backoff_base_ms = 50};
	struct fake f = {0};
	char err[256];
	struct engine_lane_stats ls;
	struct event_base *base = event_base_new();
	struct engine *e;

	run(&f, &p, scripts, addrs);
	unlink(path);
	/* 100 -> 50 after the limit, +10 per good answer: 100 after 5. */
	for (int i = 0; i < 6; i++)
		assert_verdict(&f.v[i], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(f.st.backoffs, 1);
	assert_true(f.ls.rate > 99.99 && f.ls.rate < 100.01);
	assert_int_equal(f.ls.backoffs, 1);
	p.lanes_file = NULL;

	/* Rules: parent domains, "*", reload errors keep the old rules. */
	e = engine_new(base, NULL, &p, fake_done, &f);
	assert_non_null(e);
	assert_int_equal(
	    reload_text(e, "* rate=3\noutlook.com rate=0.5 conns=2\n", err, sizeof(err)), 0);
	{
		static const struct engine_mx_host mx = {"127.0.0.9", 10};
		struct probe_req r = {.address = "a@q.test",
		                      .domain = "q.test",
		                      .mx_domain = "protection.outlook.com",
		                      .hosts = &mx,
		                      .nhosts = 1};
		struct probe_req r2 = r;

		r2.mx_domain = "other.test";
		f.nreq = 2;
		assert_int_equal(engine_submit(e, &r), 0);
		assert_int_equal(engine_submit(e, &r2), 0);
	}
	assert_int_equal(engine_get_lane_stats(e, &ls, 1), 2);
	assert_string_equal(ls.key, "other.test");
	assert_true(ls.rule_rate > 2.99 && ls.rule_rate < 3.01);
	{
		struct engine_lane_stats two[2];

		assert_int_equal(engine_get_lane_stats(e, two, 2), 2);
		assert_string_equal(two[1].key, "protection.outlook.com");
		assert_true(two[1].rule_rate > 0.49 && two[1].rule_rate < 0.51);
		assert_int_equal(two[1].max_conns, 2);
	}
	assert_int_equal(reload_text(e, "x.test rate=fast\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: bad value in \"rate=fast\""));
	assert_int_equal(reload_text(e, "x.test speed=1\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown setting"));
	assert_int_equal(reload_text(e, "x.test rate=1\n\nx.test rate=2\n", err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":3: second rule for x.test"));
	assert_int_equal(reload_text(e, "x.test conns=0\n", err, sizeof(err)), -1);
	assert_int_equal(engine_reload_rules(e, "/nonexistent/lanes.conf", err, sizeof(err)), -1);
	assert_int_equal(engine_get_lane_stats(e, &ls, 1), 2);
	assert_true(ls.rule_rate > 2.99 && ls.rule_rate < 3.01); /* old rules kept */
	engine_free(e);
	event_base_free(base);
}

static void
test_shipped_lanes_conf(void **state)
{
	/* data/lanes.conf parses, and its rules land where they should. */
	static const struct {
		const char *lane;
		double rate;
		unsigned conns;
	} want[] = {
	    {"google.com", 0.5, 1},
	    {"mail.protection.outlook.com", 0.5, 1},
	    {"yahoodns.net", 0.3, 1},
	    {"example.test", 1.0, 1},
	};
	struct event_base *base = event_base_new();
	struct engine_lane_stats ls[4];
	struct engine_params p = {0};
	struct engine *e;
	char path[512], err[256];
	const char *tail = strstr(__FILE__, "tests/unit/test_engine.c");
	struct fake f = {0};

	assert_non_null(tail);
	snprintf(path, sizeof(path), "%.*sdata/lanes.conf", (int)(tail - __FILE__), __FILE__);
	p.lanes_file = path;
	e = engine_new(base, NULL, &p, fake_done, &f);
	assert_non_null(e);
	assert_int_equal(engine_reload_rules(e, path, err, sizeof(err)), 0);
	for (size_t i = 0; i < 4; i++) {
		static const struct engine_mx_host mx = {"127.0.0.9", 10};
		struct probe_req r = {.address = "a@q.test",
		                      .domain = "q.test",
		                      .mx_domain = want[i].lane,
		                      .hosts = &mx,
		                      .nhosts = 1};

		assert_int_equal(engine_submit(e, &r), 0);
	}
	assert_int_equal(engine_get_lane_stats(e, ls, 4), 4);
	for (size_t i = 0; i < 4; i++) {
		for (size_t j = 0; j < 4; j++) {
			if (strcmp(ls[j].key, want[i].lane) != 0)
				continue;
			if (ls[j].rule_rate < want[i].rate - 1e-9 ||
			    ls[j].rule_rate > want[i].rate + 1e-9 ||
			    ls[j].max_conns != want[i].conns)
				fail_msg("%s: rate %.3f conns %u", want[i].lane, ls[j].rule_rate,
				         ls[j].max_conns);
		}
	}
	engine_free(e);
	event_base_free(base);
}

static void
test_rate_limit_answers(void **state)
{
	static const struct {
		int code;
		const char *enh, *text;
		int limited;
	} cases[] = {
	    {421, "4.7.0", "Too many connections from your IP", 1},
	    {421, "", "mx.example.test Service not available", 1},
	    {450, "4.7.28", "Our system has detected an unusual rate of unsolicited mail", 1},
	    {451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited", 1},
	    {452, "4.7.652", "The mail server has exceeded the maximum number of connections", 1},
	    {451, "", "Too many messages from your address, slow down", 1},
	    {450, "4.7.1", "Please try again later", 1},
	    {451, "4.3.2", "Throttled: try later", 1},
	    {450, "4.2.0", "Recipient address rejected: Greylisted, try again later", 0},
	    {451, "4.7.1", "Greylisting in action, please come back later", 0},
	    {452, "4.5.3", "Error: too many recipients", 0},
	    {452, "", "Too many recipients", 0},
	    /* Postfix anvil (smtpd_client_recipient_rate_limit): a rate */
	    {450, "4.7.1", "Error: too many recipients from [127.0.0.62]", 1},
	    {421, "4.7.0", "mx.world.test Error: too many connections from 127.0.0.62", 1},
	    {450, "4.2.2", "Mailbox full", 0},
	    {550, "5.7.1", "Too many connections (rejected)", 0},
	    {250, "2.1.5", "Ok", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_reply r = {.code = cases[i].code, .nlines = 1};

		snprintf(r.enhanced, sizeof(r.enhanced), "%s", cases[i].enh);
		r.text = (char *)cases[i].text;
		r.text_len = strlen(cases[i].text);
		if (engine_reply_rate_limited(&r) != cases[i].limited)
			fail_msg("case %zu (%d %s %s): want %d", i, cases[i].code, cases[i].enh,
			         cases[i].text, cases[i].limited);
	}
	assert_int_equal(engine_reply_rate_limited(NULL), 0);
}

/* ---- source address (--bind) --------------------------------------------- */

static void
test_bind_source_address(void **state)
{
	/* The server sees the connection come from the bound address, not
	 * from 127.0.0.1 (the kernel's choice for a loopback peer). */
	static const char *const c1[] = {SESSION_OPEN, "<250 2.1.5 ok", SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.bind_address = "127.0.0.5"};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_verdict(&f.v[0], VS_DELIVERABLE, VR_ACCEPTED, 250);
	assert_int_equal(f.nconns, 1);
	assert_string_equal(f.peer[0], "127.0.0.5");

	p.bind_address = NULL;
	run(&f, &p, scripts, addrs);
	assert_string_equal(f.peer[0], "127.0.0.1");
}

static void
test_bind_family_mismatch(void **state)
{
	/* An IPv6 source address cannot reach an IPv4-only MX: no
	 * connection is attempted, the verdict says why. */
	static const char *const c1[] = {"<220 mx", NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", NULL};
	struct engine_params p = {.bind_address = "::1"};
	struct fake f = {0};

	run(&f, &p, scripts, addrs);
	assert_int_equal(f.nconns, 0);
	assert_int_equal(CONNS(&f), 0);
	assert_verdict(&f.v[0], VS_UNKNOWN, VR_CONNECTION_FAILED, 0);
	assert_string_equal(f.v[0].detail, "no source address for IPv4 (--bind ::1)");
	assert_string_equal(f.v[0].mx_host, "127.0.0.1");
}

static void
test_bind_check(void **state)
{
	static const struct {
		const char *addr;
		int ok;
		const char *msg; /* in the error */
	} cases[] = {
	    {"127.0.0.5", 1, NULL},
	    {"::1", 1, NULL},
	    {"192.0.2.7", 0, "--bind 192.0.2.7: Cannot assign requested address"},
	    {"mx.example", 0, "--bind mx.example: not a numeric IPv4 or IPv6 address"},
	    {"127.0.0.1:25", 0, "not a numeric"},
	    {"", 0, "not a numeric"},
	};
	struct event_base *base = event_base_new();
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct engine_params p = {.bind_address = cases[i].addr};
		struct engine *e;

		err[0] = '\0';
		if (engine_check_bind(cases[i].addr, err, sizeof(err)) != (cases[i].ok ? 0 : -1))
			fail_msg("%s: %s", cases[i].addr, err);
		if (cases[i].msg != NULL && strstr(err, cases[i].msg) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", cases[i].addr, err, cases[i].msg);
		/* engine_new() refuses what cannot be bound ("" = no --bind) */
		e = engine_new(base, NULL, &p, fake_done, NULL);
		if ((e != NULL) != (cases[i].ok || *cases[i].addr == '\0'))
			fail_msg("%s: engine_new %s", cases[i].addr, e ? "accepted" : "refused");
		engine_free(e);
	}
	event_base_free(base);
}

/* ---- the session end line and counters ------------------------------------ */

/* Run with stderr captured into out (the log lines). */
static void
run_logged(struct fake *f, const struct engine_params *p, const char *const *const *scripts,
           const char *const *addrs, char *out, size_t outlen)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n;

	assert_non_null(tmp);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fileno(tmp), 2), 2);
	run(f, p, scripts, addrs);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, outlen - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
}

static void
test_session_end_line(void **state)
{
	static const char *const quit[] = {SESSION_OPEN, "<250 2.1.5 ok",
	                                   ">",          "<250 ok",
	                                   ">",          "<250 ok",
	                                   ">",          "<550 5.1.1 <b@x.test>: User unknown",
	                                   SESSION_QUIT, NULL};
	static const char *const rejected[] = {"<554 5.7.1 go away", SESSION_QUIT, NULL};
	static const char *const gone421[] = {SESSION_OPEN, "<421 4.7.0 too busy", NULL};
	static const char *const timeout[] = {SESSION_OPEN, "~1500", NULL};
	static const char *const dropped[] = {SESSION_OPEN, "X", NULL};
	static const char *const garbage[] = {"<220 mx", ">", "<hello there", "~300", NULL};
	static const char *const recycled[] = {SESSION_OPEN, "<250 ok", SESSION_QUIT, NULL};
	static const struct {
		const char *name;
		const char *const *script;
		unsigned rcpt_per_session;
		const char *re; /* the whole end line of the first connection */
	} cases[] = {
	    {"quit", quit, 0,
	     "conn=1 mx_domain=x\\.test host=127\\.0\\.0\\.1 peer=127\\.0\\.0\\.1:[0-9]+ "
	     "tls=0 rcpts=2 rejects=1 duration_ms=[0-9]+ outcome=quit why=shutdown code=0$"},
	    {"rejected", rejected, 0, " rcpts=0 rejects=0 .* outcome=rejected why=- code=554$"},
	    {"421", gone421, 0, " rcpts=1 .* outcome=rejected why=- code=421$"},
	    {"timeout", timeout, 0, " rcpts=1 .* outcome=timeout why=- code=0$"},
	    {"dropped", dropped, 0, " rcpts=1 .* outcome=conn_error why=- code=0$"},
	    {"garbage", garbage, 0, " rcpts=0 .* outcome=proto_error why=- code=0$"},
	    {"recycled", recycled, 1, " rcpts=1 rejects=0 .* outcome=quit why=recycle code=0$"},
	};
	static const char *const addrs[] = {"a@x.test", "b@x.test", NULL};
	static char out[65536];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *const scripts[] = {cases[i].script, cases[i].script, NULL};
		struct engine_params p = {.command_timeout_ms = 300,
		                          .max_rcpt_per_session = cases[i].rcpt_per_session,
		                          .throttle_retries = ENGINE_THROTTLE_RETRIES_NONE,
		                          .backoff_base_ms = 10};
		struct fake f = {0};
		char line[1024], *l, *nl, want[512];
		regex_t re;
		int lines = 0;

		run_logged(&f, &p, scripts, cases[i].script == quit ? addrs : addrs + 1, out,
		           sizeof(out));
		/* one line per session, at info level, never an address */
		line[0] = '\0';
		for (l = out; (nl = strchr(l, '\n')) != NULL; l = nl + 1) {
			if (strstr(l, "msg=\"smtp session end\"") == NULL ||
			    strstr(l, "msg=\"smtp session end\"") > nl)
				continue;
			if (lines++ == 0)
				snprintf(line, sizeof(line), "%.*s", (int)(nl - l), l);
			if (strstr(l, "level=info") == NULL || strstr(l, "level=info") > nl)
				fail_msg("%s: not at info: %.*s", cases[i].name, (int)(nl - l), l);
		}
		if (lines != (int)f.st.sessions_ended || lines != CONNS(&f))
			fail_msg("%s: %d end lines, %lu sessions ended, %d connections\n%s",
			         cases[i].name, lines, f.st.sessions_ended, CONNS(&f), out);
		if (strstr(out, "@x.test") != NULL)
			fail_msg("%s: an address in the log:\n%s", cases[i].name, out);
		snprintf(want, sizeof(want), "msg=\"smtp session end\" .*%s", cases[i].re);
		assert_int_equal(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
		if (regexec(&re, line, 0, NULL, 0) != 0)
			fail_msg("%s: end line\n  %s\ndoes not match\n  %s", cases[i].name, line,
			         want);
		regfree(&re);
	}
}

static void
test_counters(void **state)
{
	/* Every reply counted by class (not only the deciding ones); the
	 * gauges are back at 0 when all is done. */
	static const char *const c1[] = {SESSION_OPEN, "<250 2.1.5 ok",
	                                 ">",          "<250 ok",
	                                 ">",          "<250 ok",
	                                 ">",          "<550 5.1.1 <b@x.test>: User unknown",
	                                 ">",          "<250 ok",
	                                 ">",          "<250 ok",
	                                 ">",          "<451 4.3.0 local error",
	                                 ">",          "<250 ok",
	                                 ">",          "<250 ok",
	                                 ">",          "<250 ok",
	                                 SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", "d@x.test", NULL};
	struct fake f = {0};

	run(&f, NULL, scripts, addrs);
	assert_verdict(&f.v[2], VS_UNKNOWN, VR_TEMP_FAILURE, 451);
	/* 2xx: 220, EHLO, MAIL + RCPT of a, RSET + MAIL of b, c, d, RCPT of d, 221 */
	assert_int_equal(f.st.replies[2], 1 + 1 + 2 + 3 * 2 + 1 + 1);
	assert_int_equal(f.st.replies[4], 1);
	assert_int_equal(f.st.replies[5], 1);
	assert_int_equal(f.st.replies[0] + f.st.replies[1] + f.st.replies[3], 0);
	assert_int_equal(f.st.connections, 1);
	assert_int_equal(f.st.rcpts, 4);
	assert_int_equal(f.st.sessions_ended, 1);
	assert_int_equal(f.st.sessions_open, 0);
	assert_int_equal(f.st.queued, 0);
}

static void
test_gauges_while_busy(void **state)
{
	/* While the first RCPT waits for its answer: one session open, two
	 * recipients queued, one lane. */
	static const char *const c1[] = {SESSION_OPEN, "~300",       "<250 ok", ">", "<250 ok", ">",
	                                 "<250 ok",    ">",          "<250 ok", ">", "<250 ok", ">",
	                                 "<250 ok",    SESSION_QUIT, NULL};
	static const char *const *const scripts[] = {c1, NULL};
	static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", NULL};
	struct fake f = {0};

	gauge_probe_ms = 150;
	run(&f, NULL, scripts, addrs);
	gauge_probe_ms = 0;
	assert_int_equal(gauge_seen.sessions_open, 1);
	assert_int_equal(gauge_seen.queued, 2);
	assert_int_equal(gauge_seen.lanes, 1);
	assert_int_equal(f.st.sessions_open, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_address),
	    cmocka_unit_test(test_three_one_connection),
	    cmocka_unit_test(test_pipelining),
	    cmocka_unit_test(test_multiline_greeting),
	    cmocka_unit_test(test_greeting_554),
	    cmocka_unit_test(test_421_mid_session),
	    cmocka_unit_test(test_421_backoff_retry),
	    cmocka_unit_test(test_ehlo_502_helo),
	    cmocka_unit_test(test_server_drop),
	    cmocka_unit_test(test_pipelined_mail_rejected),
	    cmocka_unit_test(test_recycle_max_rcpt),
	    cmocka_unit_test(test_control_chars_refused),
	    cmocka_unit_test(test_failover_refused),
	    cmocka_unit_test(test_failover_421_greeting),
	    cmocka_unit_test(test_all_hosts_fail),
	    cmocka_unit_test(test_reused_drop_requeued),
	    cmocka_unit_test(test_timeout_aborts),
	    cmocka_unit_test(test_smtputf8),
	    cmocka_unit_test(test_452_retry_now),
	    cmocka_unit_test(test_early_reply_is_protocol_error),
	    cmocka_unit_test(test_idle_close),
	    cmocka_unit_test(test_catch_all_domain),
	    cmocka_unit_test(test_catch_all_not),
	    cmocka_unit_test(test_catch_all_unknown_and_domains),
	    cmocka_unit_test(test_catch_all_random_local),
	    cmocka_unit_test(test_catch_all_off),
	    cmocka_unit_test(test_recycle_by_age),
	    cmocka_unit_test(test_idle_close_then_reconnect),
	    cmocka_unit_test(test_no_reuse_after_timeout),
	    cmocka_unit_test(test_no_reuse_after_protocol_error),
	    cmocka_unit_test(test_lane_rcpt_rate),
	    cmocka_unit_test(test_lane_conn_rate_and_rcpt_per_session),
	    cmocka_unit_test(test_lane_backoff_on_rcpt_and_recovery),
	    cmocka_unit_test(test_lane_stats_and_recovery),
	    cmocka_unit_test(test_rate_limit_answers),
	    cmocka_unit_test(test_shipped_lanes_conf),
	    cmocka_unit_test(test_bind_source_address),
	    cmocka_unit_test(test_bind_family_mismatch),
	    cmocka_unit_test(test_bind_check),
	    cmocka_unit_test(test_session_end_line),
	    cmocka_unit_test(test_counters),
	    cmocka_unit_test(test_gauges_while_busy),
	};

	if (getenv("MXSIFT_TEST_DEBUG") != NULL)
		log_set_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
