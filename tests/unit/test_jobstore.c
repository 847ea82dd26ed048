/*
 * test_jobstore.c — the Redis job store: URL parsing, job names, the
 * Verdict protobuf mapping (pure), and against a real redis-server the
 * Lua write (first verdict wins, counted once), NOSCRIPT fallback, the
 * workers' lane reports (records pure; written, replaced, expired and
 * withdrawn in Redis),
 * pipelined writes, meta/counts/scan, and the async client's completion
 * callbacks, reconnect after the server appears late, and recovery from
 * a server that accepts but never answers.
 *
 * Each Redis test starts its own redis-server on a free loopback port
 * (stopped by pid) so it can also stop and restart it; without the
 * redis-server binary those tests are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "jobstore.h"
#include "log.h"

/* ---- pure parts --------------------------------------------------------- */

static void
test_parse_url(void **state)
{
	static const struct {
		const char *url;
		int ok;
		const char *host;
		int port;
		const char *user, *password;
		int db;
	} cases[] = {
		{ "redis://127.0.0.1:6380", 1, "127.0.0.1", 6380, "", "", 0 },
		{ "redis://localhost", 1, "localhost", 6379, "", "", 0 },
		{ "redis://h:1/3", 1, "h", 1, "", "", 3 },
		{ "redis://:secret@h:7000/2", 1, "h", 7000, "", "secret", 2 },
		{ "redis://bob:s%40cret@h:7000", 1, "h", 7000, "bob", "s@cret", 0 },
		{ "redis://pw@h", 1, "h", 6379, "", "pw", 0 },
		{ "REDIS://[::1]:6390/0", 1, "::1", 6390, "", "", 0 },
		{ "redis://", 1, "127.0.0.1", 6379, "", "", 0 },
		{ "redis://h:6379/", 1, "h", 6379, "", "", 0 },
		{ "http://h:1", 0, NULL, 0, NULL, NULL, 0 },
		{ "h:6379", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://h:0", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://h:65536", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://h:12x", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://h:", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://h/x", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://h/-1", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://[::1", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://:bad%4@h", 0, NULL, 0, NULL, NULL, 0 },
		{ "rediss://h:6380", 0, NULL, 0, NULL, NULL, 0 },
		/* a comment after the value in a config file is part of the value */
		{ "redis://h:6379/0   # database 0", 0, NULL, 0, NULL, NULL, 0 },
		{ "redis://h   # local", 0, NULL, 0, NULL, NULL, 0 },
		{ NULL, 0, NULL, 0, NULL, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct redis_url u;
		char err[128] = "";
		int rc = redis_url_parse(cases[i].url, &u, err, sizeof(err));

		if (!cases[i].ok) {
			if (rc != -1)
				fail_msg("case %zu (%s): accepted", i, cases[i].url);
			assert_true(err[0] != '\0');
			continue;
		}
		if (rc != 0)
			fail_msg("case %zu (%s): %s", i, cases[i].url, err);
		assert_string_equal(u.host, cases[i].host);
		assert_int_equal(u.port, cases[i].port);
		assert_string_equal(u.user, cases[i].user);
		assert_string_equal(u.password, cases[i].password);
		assert_int_equal(u.db, cases[i].db);
	}
}

/* "#line:N" and back; an address (or anything else) is no line. */
static void
test_invalid_line(void **state)
{
	static const struct {
		const char *field;
		uint64_t line;
	} cases[] = {
		{ "#line:1", 1 },
		{ "#line:18446744073709551615", UINT64_MAX },
		{ "alice@alpha.test", 0 },
		{ "#line:", 0 },
		{ "#line:0", 0 },
		{ "#line:-1", 0 },
		{ "#line:+1", 0 },
		{ "#line:12x", 0 },
		{ "#line:18446744073709551616", 0 },
		{ "\"#line:3\"@example.com", 0 },
	};
	char field[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (jobstore_invalid_line(cases[i].field) != cases[i].line)
			fail_msg("'%s': %" PRIu64 ", want %" PRIu64, cases[i].field,
			    jobstore_invalid_line(cases[i].field), cases[i].line);
	jobstore_invalid_field(42, field, sizeof(field));
	assert_int_equal(jobstore_invalid_line(field), 42);
}

static void
test_valid_name(void **state)
{
	char longname[JOBSTORE_NAME_MAX + 2];

	assert_true(jobstore_valid_name("job-2024.01_a"));
	assert_true(jobstore_valid_name("J"));
	assert_false(jobstore_valid_name(""));
	assert_false(jobstore_valid_name(NULL));
	assert_false(jobstore_valid_name("a:b"));      /* would fake a key level */
	assert_false(jobstore_valid_name("a b"));
	assert_false(jobstore_valid_name("a*"));
	assert_false(jobstore_valid_name("a{b}"));
	memset(longname, 'x', sizeof(longname));
	longname[JOBSTORE_NAME_MAX] = '\0';
	assert_true(jobstore_valid_name(longname));
	longname[JOBSTORE_NAME_MAX] = 'x';
	longname[JOBSTORE_NAME_MAX + 1] = '\0';
	assert_false(jobstore_valid_name(longname));
}

static void
test_invalid_field(void **state)
{
	char f[32];

	jobstore_invalid_field(42, f, sizeof(f));
	assert_string_equal(f, "#line:42");
	assert_null(strchr(f, '@'));     /* can never equal a valid address */
}

static void
make_verdict(struct verdict *v, enum verdict_reason r, int code, const char *enh)
{
	verdict_init(v, r);
	v->smtp_code = code;
	snprintf(v->enhanced, sizeof(v->enhanced), "%s", enh);
	snprintf(v->text, sizeof(v->text), "reply text %d", code);
	snprintf(v->mx_host, sizeof(v->mx_host), "mx1.alpha.test");
	snprintf(v->detail, sizeof(v->detail), "detail");
	v->tls = 1;
	v->attempts = 2;
	v->duration_ms = 1234;
	v->flags = VERDICT_F_ROLE | VERDICT_F_IMPLICIT_MX;
}

static void
test_pack_roundtrip(void **state)
{
	for (int r = 0; r < VR__COUNT; r++) {
		struct verdict v, back;
		char *address = NULL;
		uint8_t *buf;
		size_t len = 0;

		make_verdict(&v, (enum verdict_reason)r, 250 + r, "2.1.5");
		snprintf(v.suggestion, sizeof(v.suggestion), "%s", r % 2 ? "gmail.com" : "");
		buf = jobstore_verdict_pack("job1", "alice@alpha.test", &v, &len);
		assert_non_null(buf);
		assert_int_equal(jobstore_verdict_unpack(buf, len, &address, &back), 0);
		assert_string_equal(address, "alice@alpha.test");
		assert_int_equal(back.status, v.status);
		assert_int_equal(back.reason, v.reason);
		assert_int_equal(back.smtp_code, v.smtp_code);
		assert_string_equal(back.enhanced, v.enhanced);
		assert_string_equal(back.text, v.text);
		assert_string_equal(back.mx_host, v.mx_host);
		assert_string_equal(back.detail, v.detail);
		assert_int_equal(back.tls, 1);
		assert_int_equal(back.attempts, 2);
		assert_int_equal(back.duration_ms, 1234);
		assert_int_equal(back.checked_at, v.checked_at);
		assert_int_equal(back.flags, v.flags);
		assert_string_equal(back.suggestion, v.suggestion);
		free(address);
		free(buf);
	}
	/* garbage does not decode */
	{
		struct verdict v;
		char *address;
		const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
		assert_int_equal(jobstore_verdict_unpack(junk, sizeof(junk), &address, &v), -1);
	}
}

/* Lane report records: what a worker writes is what status reads; unknown
 * keys are skipped and missing ones read 0 (either side may grow fields);
 * anything that is not a number where one belongs is refused. */
static void
test_lane_records(void **state)
{
	struct jobstore_lane l = { .rate = 0.35, .rule_rate = 0.7, .queued = 12345678901ull,
		.sessions = 1, .max_sessions = 2, .backoff_level = 3, .backoffs = 17,
		.paused_until = 1796335868123ll }, back;
	struct jobstore_lane_report r = { .updated_at = 1796335868000ll, .interval_ms = 5000,
		.lanes = 250, .backed_off = 12, .n = 32 }, rback;
	char buf[256], longname[300];
	static const char *const bad[] = {
		"rate=abc", "rate=-1", "rate=inf", "rate=nan", "rate=", "rate=1e999",
		"queued=1x", "queued=-1", "queued=+1", "level=4294967296", "junk",
		"=1", "rate=1 junk", "paused_until=12a", "backoffs=99999999999999999999",
	};

	(void)state;
	snprintf(l.mx_domain, sizeof(l.mx_domain), "ignored.test");
	assert_true(jobstore_lane_format(&l, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "rate=0.35 rule_rate=0.7 queued=12345678901 sessions=1 "
	    "max_sessions=2 level=3 backoffs=17 paused_until=1796335868123");
	assert_int_equal(jobstore_lane_parse("hosting.test", buf, &back), 0);
	assert_string_equal(back.mx_domain, "hosting.test");
	assert_true(back.rate == 0.35 && back.rule_rate == 0.7);
	assert_true(back.queued == 12345678901ull);
	assert_int_equal(back.sessions, 1);
	assert_int_equal(back.max_sessions, 2);
	assert_int_equal(back.backoff_level, 3);
	assert_int_equal(back.backoffs, 17);
	assert_true(back.paused_until == 1796335868123ll);
	/* too small a buffer is refused, not cut */
	assert_int_equal(jobstore_lane_format(&l, buf, 20), -1);

	assert_true(jobstore_lane_summary_format(&r, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "updated_at=1796335868000 interval_ms=5000 lanes=250 "
	    "backed_off=12 shown=32");
	memset(&rback, 0, sizeof(rback));
	rback.n = 7;
	assert_int_equal(jobstore_lane_summary_parse(buf, &rback), 0);
	assert_true(rback.updated_at == 1796335868000ll);
	assert_int_equal(rback.interval_ms, 5000);
	assert_int_equal(rback.lanes, 250);
	assert_int_equal(rback.backed_off, 12);
	assert_int_equal(rback.n, 7);      /* left alone: the lanes read say */
	assert_int_equal(jobstore_lane_summary_parse("lanes=x", &rback), -1);
	assert_int_equal(jobstore_lane_summary_parse("nonsense", &rback), -1);

	/* newer writer, older reader; sparse record */
	assert_int_equal(jobstore_lane_parse("a.test", "  future=7 rate=2   queued=3 ", &back), 0);
	assert_true(back.rate == 2 && back.rule_rate == 0);
	assert_int_equal(back.queued, 3);
	assert_int_equal(back.sessions, 0);
	assert_true(back.paused_until == 0);
	assert_int_equal(jobstore_lane_parse("a.test", "", &back), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (jobstore_lane_parse("a.test", bad[i], &back) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(jobstore_lane_parse(longname, "rate=1", &back), -1);

	/* backed off: paused now, or slower (or faster) than its rule */
	l.paused_until = 1000;
	l.rate = l.rule_rate = 1;
	assert_int_equal(jobstore_lane_backed_off(&l, 999), 1);
	assert_int_equal(jobstore_lane_backed_off(&l, 1000), 0);
	l.rate = 0.5;
	assert_int_equal(jobstore_lane_backed_off(&l, 5000), 1);
	l.rule_rate = 0;       /* no limit, slowed to a rate after a back-off */
	assert_int_equal(jobstore_lane_backed_off(&l, 5000), 1);
	l.rate = 0;
	assert_int_equal(jobstore_lane_backed_off(&l, 5000), 0);

	assert_true(jobstore_valid_worker_id("vm:17399"));
	assert_true(jobstore_valid_worker_id("pod-7d9f.example.com:1"));
	assert_false(jobstore_valid_worker_id(""));
	assert_false(jobstore_valid_worker_id(NULL));
	assert_false(jobstore_valid_worker_id("a b"));
	assert_false(jobstore_valid_worker_id("a\x7f"));
	assert_false(jobstore_valid_worker_id("caf\xc3\xa9"));
	memset(longname, 'w', JOBSTORE_WORKER_ID_MAX - 1);
	longname[JOBSTORE_WORKER_ID_MAX - 1] = '\0';
	assert_true(jobstore_valid_worker_id(longname));
	longname[JOBSTORE_WORKER_ID_MAX - 1] = 'w';
	longname[JOBSTORE_WORKER_ID_MAX] = '\0';
	assert_false(jobstore_valid_worker_id(longname));
}

/* ---- a private redis-server ---------------------------------------------- */

struct srv {
	pid_t pid;
	int port;
	char url[64];
};

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
		close(fd);
		return -1;
	}
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
srv_ping(int port)
{
	struct timeval tv = { 0, 200 * 1000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;
	int ok = 0;

	if (c != NULL && !c->err && (r = redisCommand(c, "PING")) != NULL) {
		ok = r->type == REDIS_REPLY_STATUS;
		freeReplyObject(r);
	}
	if (c != NULL)
		redisFree(c);
	return ok;
}

static int
srv_start_on(struct srv *s, int port)
{
	char portstr[16];

	s->port = port;
	snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%d", port);
	snprintf(portstr, sizeof(portstr), "%d", port);
	s->pid = fork();
	if (s->pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		/* dies with the test even when an assertion or a sanitizer
		 * aborts it: a leaked server would also hold the test's pipes */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1",
		    "--save", "", "--appendonly", "no", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		int st;
		if (srv_ping(port))
			return 0;
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->pid = 0;
			return -1;
		}
		usleep(50 * 1000);
	}
	if (s->pid > 0) {     /* never answered: do not leave it behind */
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	return -1;
}

static void
srv_stop(struct srv *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

static int
srv_setup(void **state)
{
	struct srv *s = calloc(1, sizeof(*s));

	if (srv_start_on(s, free_port()) == -1) {
		free(s);
		*state = NULL;
		return 0;
	}
	*state = s;
	return 0;
}

static int
srv_teardown(void **state)
{
	struct srv *s = *state;

	if (s != NULL) {
		srv_stop(s);
		free(s);
	}
	return 0;
}

#define NEED_SERVER(s) do { if ((s) == NULL) { skip(); } } while (0)

static void
raw_cmd(const struct srv *s, const char *cmd)
{
	redisContext *c = redisConnect("127.0.0.1", s->port);
	redisReply *r;

	assert_true(c != NULL && !c->err);
	r = redisCommand(c, cmd);
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(c);
}

/* ---- blocking client -------------------------------------------------------- */

static void
test_put_first_wins(void **state)
{
	struct srv *s = *state;
	struct jobstore *js;
	struct jobstore_counts c;
	struct verdict ok, nf;
	char err[256];

	NEED_SERVER(s);
	js = jobstore_connect(s->url, 0, err, sizeof(err));
	assert_non_null(js);
	make_verdict(&ok, VR_ACCEPTED, 250, "2.1.5");
	make_verdict(&nf, VR_MAILBOX_NOT_FOUND, 550, "5.1.1");
	assert_int_equal(jobstore_put_verdict(js, "j1", "alice@alpha.test", "alice@alpha.test", &ok), 1);
	/* a re-delivered duplicate, even with another verdict, changes nothing */
	assert_int_equal(jobstore_put_verdict(js, "j1", "alice@alpha.test", "alice@alpha.test", &nf), 0);
	assert_int_equal(jobstore_put_verdict(js, "j1", "alice@alpha.test", "alice@alpha.test", &ok), 0);
	assert_int_equal(jobstore_put_verdict(js, "j1", "nobody@alpha.test", "nobody@alpha.test", &nf), 1);
	assert_int_equal(jobstore_get_counts(js, "j1", &c), 0);
	assert_int_equal(c.done, 2);
	assert_int_equal(c.status[VS_DELIVERABLE], 1);
	assert_int_equal(c.status[VS_UNDELIVERABLE], 1);
	assert_int_equal(c.reason[VR_ACCEPTED], 1);
	assert_int_equal(c.reason[VR_MAILBOX_NOT_FOUND], 1);
	/* another job is separate */
	assert_int_equal(jobstore_put_verdict(js, "j2", "alice@alpha.test", "alice@alpha.test", &nf), 1);
	assert_int_equal(jobstore_get_counts(js, "j1", &c), 0);
	assert_int_equal(c.done, 2);
	/* bad job names never reach Redis */
	assert_int_equal(jobstore_put_verdict(js, "a:b", "x@y.test", "x@y.test", &ok), -1);
	jobstore_close(js);
}

static int
scan_collect(void *arg, const char *field, const char *address, const struct verdict *v)
{
	uint64_t *n = arg;

	if (strcmp(field, address) != 0 && strncmp(field, "#line:", 6) != 0)
		fail_msg("field %s holds address %s", field, address);
	(*n)++;
	return 0;
}

static void
test_pipeline_noscript_scan(void **state)
{
	struct srv *s = *state;
	struct jobstore *js;
	struct jobstore_counts c;
	struct verdict v;
	uint64_t fresh, dup, n = 0, bad = 99;
	char err[256], addr[64];

	NEED_SERVER(s);
	js = jobstore_connect(s->url, 1000, err, sizeof(err));
	assert_non_null(js);
	make_verdict(&v, VR_NO_MAIL_SERVER, 0, "");
	/* more than one pipelined batch, with duplicates inside a batch */
	for (int i = 0; i < 700; i++) {
		snprintf(addr, sizeof(addr), "u%d@missing.test", i % 600);
		assert_int_equal(jobstore_queue_verdict(js, "bulk", addr, addr, &v), 0);
		if (i == 300)
			raw_cmd(s, "SCRIPT FLUSH");   /* NOSCRIPT mid-stream */
	}
	assert_int_equal(jobstore_flush(js), 0);
	jobstore_get_written(js, &fresh, &dup);
	assert_int_equal(fresh, 600);
	assert_int_equal(dup, 100);
	assert_int_equal(jobstore_get_counts(js, "bulk", &c), 0);
	assert_int_equal(c.done, 600);
	assert_int_equal(c.reason[VR_NO_MAIL_SERVER], 600);
	assert_int_equal(jobstore_scan_verdicts(js, "bulk", scan_collect, &n, &bad), 0);
	assert_int_equal(n, 600);
	assert_int_equal(bad, 0);
	jobstore_close(js);
}

/* A verdict that is not unknown becomes the address's last verdict across
 * jobs; invalid rows and unknown verdicts do not; get_last reads them. */
static void
test_last_verdict(void **state)
{
	struct srv *s = *state;
	struct jobstore *js;
	struct verdict ok, unk, nf, out[4];
	const char *addrs[4] = { "a@alpha.test", "b@alpha.test", "c@alpha.test", "#line:7" };
	int found[4];
	char err[256];

	NEED_SERVER(s);
	js = jobstore_connect(s->url, 0, err, sizeof(err));
	assert_non_null(js);
	make_verdict(&ok, VR_ACCEPTED, 250, "2.1.5");
	ok.checked_at = 1700000000;
	make_verdict(&unk, VR_GREYLISTED, 451, "4.7.1");
	make_verdict(&nf, VR_INVALID_SYNTAX, 0, "");
	assert_int_equal(jobstore_put_verdict(js, "j1", addrs[0], addrs[0], &ok), 1);
	assert_int_equal(jobstore_put_verdict(js, "j1", addrs[1], addrs[1], &unk), 1);
	assert_int_equal(jobstore_put_verdict(js, "j1", addrs[3], "junk", &nf), 1);
	assert_int_equal(jobstore_get_last(js, addrs, 4, out, found), 0);
	assert_int_equal(found[0], 1);
	assert_int_equal(out[0].reason, VR_ACCEPTED);
	assert_int_equal(out[0].smtp_code, 250);
	assert_int_equal(out[0].checked_at, 1700000000);
	assert_int_equal(found[1], 0);   /* unknown: worth probing again */
	assert_int_equal(found[2], 0);   /* never seen */
	assert_int_equal(found[3], 0);   /* an invalid row is no address */
	/* a second job's verdict of the same address replaces it */
	ok.checked_at = 1700000100;
	assert_int_equal(jobstore_put_verdict(js, "j2", addrs[0], addrs[0], &ok), 1);
	assert_int_equal(jobstore_get_last(js, addrs, 1, out, found), 0);
	assert_int_equal(found[0], 1);
	assert_int_equal(out[0].checked_at, 1700000100);
	assert_int_equal(jobstore_get_last(js, addrs, 0, out, found), 0);
	jobstore_close(js);
}

/* A blocking command between queued writes: the queue goes first, every
 * reply reaches its own command. */
static void
test_queue_then_command(void **state)
{
	struct srv *s = *state;
	struct jobstore *js;
	struct jobstore_meta m = { 0 }, back;
	struct jobstore_counts c;
	struct verdict v, out[1];
	const char *addr[1] = { "q0@alpha.test" };
	uint64_t fresh, dup;
	int found[1];
	char err[256], a[64];

	NEED_SERVER(s);
	js = jobstore_connect(s->url, 0, err, sizeof(err));
	assert_non_null(js);
	make_verdict(&v, VR_ACCEPTED, 250, "2.1.5");
	for (int i = 0; i < 3; i++) {
		snprintf(a, sizeof(a), "q%d@alpha.test", i);
		assert_int_equal(jobstore_queue_verdict(js, "q1", a, a, &v), 0);
	}
	m.rows = 3;
	snprintf(m.state, sizeof(m.state), "planning");
	assert_int_equal(jobstore_put_meta(js, "q1", &m), 0);
	assert_int_equal(jobstore_get_last(js, addr, 1, out, found), 0);
	assert_int_equal(found[0], 1);
	assert_int_equal(jobstore_queue_verdict(js, "q1", "q3@alpha.test", "q3@alpha.test", &v), 0);
	assert_int_equal(jobstore_flush(js), 0);
	jobstore_get_written(js, &fresh, &dup);
	assert_int_equal(fresh, 4);
	assert_int_equal(dup, 0);
	assert_int_equal(jobstore_get_meta(js, "q1", &back), 1);
	assert_int_equal(back.rows, 3);
	assert_int_equal(jobstore_get_counts(js, "q1", &c), 0);
	assert_int_equal(c.done, 4);
	jobstore_close(js);
}

static void
test_meta(void **state)
{
	struct srv *s = *state;
	struct jobstore *js;
	struct jobstore_meta m = { 0 }, back;
	char err[256];

	NEED_SERVER(s);
	js = jobstore_connect(s->url, 0, err, sizeof(err));
	assert_non_null(js);
	assert_int_equal(jobstore_job_exists(js, "m1"), 0);
	assert_int_equal(jobstore_get_meta(js, "m1", &back), 0);
	m.rows = 57;
	m.unique = 30;
	m.invalid = 18;
	m.duplicates = 9;
	m.total = 48;
	m.domains = 9;
	m.submitted_at = 1700000000;
	snprintf(m.state, sizeof(m.state), "planning");
	snprintf(m.file, sizeof(m.file), "/tmp/list.csv");
	assert_int_equal(jobstore_put_meta(js, "m1", &m), 0);
	assert_int_equal(jobstore_set_meta(js, "m1", "state", "submitted"), 0);
	assert_int_equal(jobstore_job_exists(js, "m1"), 1);
	assert_int_equal(jobstore_get_meta(js, "m1", &back), 1);
	assert_int_equal(back.rows, 57);
	assert_int_equal(back.unique, 30);
	assert_int_equal(back.invalid, 18);
	assert_int_equal(back.duplicates, 9);
	assert_int_equal(back.total, 48);
	assert_int_equal(back.domains, 9);
	assert_int_equal(back.submitted_at, 1700000000);
	assert_string_equal(back.state, "submitted");
	assert_string_equal(back.file, "/tmp/list.csv");
	jobstore_close(js);
}

static void
test_connect_refused(void **state)
{
	char err[256] = "", url[64];
	int port = free_port();

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	assert_null(jobstore_connect(url, 500, err, sizeof(err)));
	assert_non_null(strstr(err, "127.0.0.1"));
	assert_null(jobstore_connect("nonsense", 500, err, sizeof(err)));
}

/* ---- async client ------------------------------------------------------------ */

struct acase {
	struct event_base *base;
	int fired, fresh;
	int want;
};

static void
on_written(void *arg, int result)
{
	struct acase *a = arg;

	a->fired++;
	a->fresh += result;
	if (a->fired == a->want)
		event_base_loopbreak(a->base);
}

static void
run_loop(struct event_base *base, int seconds)
{
	struct timeval tv = { seconds, 0 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
test_async_writes(void **state)
{
	struct srv *s = *state;
	struct acase a = { 0 };
	struct jobstore_async *ja;
	struct jobstore *js;
	struct jobstore_counts c;
	struct verdict v;
	char err[256], addr[64];

	NEED_SERVER(s);
	a.base = event_base_new();
	ja = jobstore_async_new(a.base, s->url, NULL, err, sizeof(err));
	assert_non_null(ja);
	raw_cmd(s, "SCRIPT FLUSH");   /* first writes meet NOSCRIPT */
	make_verdict(&v, VR_ACCEPTED, 250, "2.1.5");
	a.want = 150;
	for (int i = 0; i < a.want; i++) {
		snprintf(addr, sizeof(addr), "a%d@alpha.test", i % 100);
		assert_int_equal(jobstore_async_put_verdict(ja, "async1", addr, addr, &v,
		    on_written, &a), 0);
	}
	assert_int_equal(a.fired, 0);     /* never from inside put */
	assert_int_equal(jobstore_async_pending(ja), 150);
	run_loop(a.base, 10);
	assert_int_equal(a.fired, 150);
	assert_int_equal(a.fresh, 100);
	assert_int_equal(jobstore_async_pending(ja), 0);
	assert_true(jobstore_async_connected(ja));
	assert_int_equal(jobstore_async_put_verdict(ja, "bad name", "x", "x", &v, on_written,
	    &a), -1);
	jobstore_async_free(ja);

	js = jobstore_connect(s->url, 0, err, sizeof(err));
	assert_non_null(js);
	assert_int_equal(jobstore_get_counts(js, "async1", &c), 0);
	assert_int_equal(c.done, 100);
	jobstore_close(js);
	event_base_free(a.base);
}

/* Operational counters: each event id is counted once, whatever the
 * increment, over the blocking and the async client (NOSCRIPT included);
 * they never touch done; job NULL is the global dead-letter counter. */
static void
test_count_once(void **state)
{
	struct srv *s = *state;
	struct acase a = { 0 };
	struct jobstore_async *ja;
	struct jobstore *js;
	struct jobstore_counts c;
	uint64_t dead = 99;
	char err[256];

	NEED_SERVER(s);
	js = jobstore_connect(s->url, 0, err, sizeof(err));
	assert_non_null(js);
	assert_int_equal(jobstore_count_once(js, "cnt", "retry:1:a@x.test", JOBSTORE_C_RETRIED,
	    1), 1);
	assert_int_equal(jobstore_count_once(js, "cnt", "retry:1:a@x.test", JOBSTORE_C_RETRIED,
	    1), 0);
	assert_int_equal(jobstore_count_once(js, "cnt", "retry:2:a@x.test", JOBSTORE_C_RETRIED,
	    1), 1);
	assert_int_equal(jobstore_count_once(js, "cnt", "dead:t/0/5", JOBSTORE_C_DEAD_ADDRESSES,
	    7), 1);
	assert_int_equal(jobstore_count_once(js, "bad name", "e", JOBSTORE_C_DEAD, 1), -1);
	assert_int_equal(jobstore_count_once(js, "cnt", "", JOBSTORE_C_DEAD, 1), -1);
	assert_int_equal(jobstore_get_dead_global(js, &dead), 0);
	assert_int_equal(dead, 0);

	a.base = event_base_new();
	ja = jobstore_async_new(a.base, s->url, NULL, err, sizeof(err));
	assert_non_null(ja);
	raw_cmd(s, "SCRIPT FLUSH");
	a.want = 5;
	assert_int_equal(jobstore_async_count_once(ja, "cnt", "dead:t/0/5", JOBSTORE_C_DEAD_ADDRESSES,
	    7, on_written, &a), 0);
	assert_int_equal(jobstore_async_count_once(ja, "cnt", "dead:t/0/6", JOBSTORE_C_DEAD, 1,
	    on_written, &a), 0);
	assert_int_equal(jobstore_async_count_once(ja, "cnt", "dead:t/0/6", JOBSTORE_C_DEAD, 1,
	    on_written, &a), 0);
	assert_int_equal(jobstore_async_count_once(ja, NULL, "dead:t/1/9", JOBSTORE_C_DEAD, 1,
	    on_written, &a), 0);
	assert_int_equal(jobstore_async_count_once(ja, NULL, "dead:t/1/9", JOBSTORE_C_DEAD, 1,
	    on_written, &a), 0);
	assert_int_equal(jobstore_async_count_once(ja, "cnt", NULL, JOBSTORE_C_DEAD, 1,
	    on_written, &a), -1);
	run_loop(a.base, 10);
	assert_int_equal(a.fired, 5);
	assert_int_equal(a.fresh, 2);
	jobstore_async_free(ja);
	event_base_free(a.base);

	assert_int_equal(jobstore_get_counts(js, "cnt", &c), 0);
	assert_int_equal(c.done, 0);
	assert_int_equal(c.retried, 2);
	assert_int_equal(c.dead, 1);
	assert_int_equal(c.dead_addresses, 7);
	assert_int_equal(c.backed_off, 0);
	assert_int_equal(jobstore_get_dead_global(js, &dead), 0);
	assert_int_equal(dead, 1);
	jobstore_close(js);
}

static long long
raw_int(const struct srv *s, const char *cmd, const char *arg1, const char *arg2)
{
	redisContext *c = redisConnect("127.0.0.1", s->port);
	redisReply *r;
	long long v;

	assert_true(c != NULL && !c->err);
	r = redisCommand(c, cmd, arg1, arg2);
	assert_non_null(r);
	v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	freeReplyObject(r);
	redisFree(c);
	return v;
}

/* Run the loop until ja is connected (at most 5 s). */
static void
wait_connected(struct event_base *base, struct jobstore_async *ja)
{
	for (int i = 0; i < 100 && !jobstore_async_connected(ja); i++) {
		struct timeval tv = { 0, 50 * 1000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	assert_true(jobstore_async_connected(ja));
}

static void
run_ms(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static const struct jobstore_lane_report *
find_report(const struct jobstore_lane_report *r, size_t n, const char *worker)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(r[i].worker, worker) == 0)
			return &r[i];
	return NULL;
}

/* Lane reports through Redis: the async writer replaces a worker's report
 * as a whole, the reader finds every live one, an expired report (a dead
 * worker) and a withdrawn one are gone, a worker silent for a day leaves
 * the workers set, and nothing is written or queued while disconnected. */
static void
test_lane_reports(void **state)
{
	struct srv *s = *state;
	struct event_base *base;
	struct jobstore_async *ja;
	struct jobstore *js;
	struct jobstore_lane lanes[3] = {
		{ .mx_domain = "hosting.test", .rate = 2, .rule_rate = 4, .queued = 9,
		  .sessions = 1, .max_sessions = 1, .backoff_level = 1, .backoffs = 1,
		  .paused_until = 1796335870000ll },
		{ .mx_domain = "alpha.test", .rate = 8, .rule_rate = 8, .queued = 3, .sessions = 1,
		  .max_sessions = 2 },
		{ .mx_domain = JOBSTORE_LANES_SUMMARY, .rate = 1 },   /* never a lane */
	};
	struct jobstore_lane_report w1 = { .worker = "host-a:101", .updated_at = 1796335868000ll,
		.interval_ms = 5000, .lanes = 40, .backed_off = 1, .n = 3, .lane = lanes };
	struct jobstore_lane_report w2 = { .worker = "host-b:202", .updated_at = 1796335868500ll,
		.interval_ms = 5000 };
	struct jobstore_lane_report w3 = { .worker = "host-c:303", .updated_at = 1796335868600ll,
		.interval_ms = 100 };
	struct jobstore_lane_report bad = { .worker = "has space" };
	struct jobstore_lane_report *reps;
	const struct jobstore_lane_report *r;
	size_t n = 99;
	char err[256], url[64];

	NEED_SERVER(s);
	js = jobstore_connect(s->url, 0, err, sizeof(err));
	assert_non_null(js);
	assert_int_equal(jobstore_get_lane_reports(js, &reps, &n), 0);
	assert_int_equal(n, 0);
	jobstore_lane_reports_free(reps, n);

	base = event_base_new();
	ja = jobstore_async_new(base, s->url, NULL, err, sizeof(err));
	assert_non_null(ja);
	wait_connected(base, ja);
	/* a worker gone for more than a day, left in the set by a crash */
	raw_int(s, "ZADD mxsift:workers 1000 %s", "old:1", "");
	assert_int_equal(jobstore_async_put_lanes(ja, &w1, 60000), 0);
	assert_int_equal(jobstore_async_put_lanes(ja, &w2, 60000), 0);
	assert_int_equal(jobstore_async_put_lanes(ja, &w3, 300), 0);
	assert_int_equal(jobstore_async_put_lanes(ja, &bad, 60000), -1);
	assert_int_equal(jobstore_async_pending(ja), 0);   /* not verdict writes */
	run_ms(base, 200);

	assert_int_equal(jobstore_get_lane_reports(js, &reps, &n), 0);
	assert_int_equal(n, 3);
	r = find_report(reps, n, "host-a:101");
	assert_non_null(r);
	assert_true(r->updated_at == 1796335868000ll);
	assert_int_equal(r->interval_ms, 5000);
	assert_int_equal(r->lanes, 40);
	assert_int_equal(r->backed_off, 1);
	assert_int_equal(r->n, 2);          /* the "#worker" lane was not sent */
	for (size_t i = 0; i < r->n; i++) {
		const struct jobstore_lane *l = &r->lane[i];
		const struct jobstore_lane *want = strcmp(l->mx_domain, "hosting.test") == 0 ?
		    &lanes[0] : &lanes[1];

		assert_string_equal(l->mx_domain, want->mx_domain);
		assert_true(l->rate == want->rate && l->rule_rate == want->rule_rate);
		assert_int_equal(l->queued, want->queued);
		assert_int_equal(l->sessions, want->sessions);
		assert_int_equal(l->max_sessions, want->max_sessions);
		assert_int_equal(l->backoff_level, want->backoff_level);
		assert_int_equal(l->backoffs, want->backoffs);
		assert_true(l->paused_until == want->paused_until);
	}
	r = find_report(reps, n, "host-b:202");
	assert_non_null(r);
	assert_int_equal(r->n, 0);          /* a worker with nothing going on is listed */
	assert_non_null(find_report(reps, n, "host-c:303"));
	assert_int_equal(raw_int(s, "ZSCORE mxsift:workers %s", "old:1", ""), -1);
	assert_true(raw_int(s, "PTTL mxsift:worker:%s:lanes", "host-a:101", "") > 50000);
	jobstore_lane_reports_free(reps, n);

	/* a new report replaces the old one as a whole */
	w1.n = 1;
	w1.lane = &lanes[1];
	w1.backed_off = 0;
	assert_int_equal(jobstore_async_put_lanes(ja, &w1, 60000), 0);
	/* withdrawn (a worker stopping) */
	assert_int_equal(jobstore_async_forget_worker(ja, "host-b:202"), 0);
	assert_int_equal(jobstore_async_forget_worker(ja, "no good"), -1);
	run_ms(base, 400);               /* host-c's 300 ms are over */
	assert_int_equal(jobstore_get_lane_reports(js, &reps, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(reps[0].worker, "host-a:101");
	assert_int_equal(reps[0].n, 1);
	assert_string_equal(reps[0].lane[0].mx_domain, "alpha.test");
	assert_int_equal(reps[0].backed_off, 0);
	assert_int_equal(raw_int(s, "ZSCORE mxsift:workers %s", "host-b:202", ""), -1);
	jobstore_lane_reports_free(reps, n);
	jobstore_async_free(ja);

	/* no server: dropped at once, nothing queued */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", free_port());
	ja = jobstore_async_new(base, url, NULL, err, sizeof(err));
	assert_non_null(ja);
	run_ms(base, 100);
	assert_int_equal(jobstore_async_put_lanes(ja, &w1, 60000), 1);
	assert_int_equal(jobstore_async_forget_worker(ja, "host-a:101"), 1);
	assert_int_equal(jobstore_async_pending(ja), 0);
	jobstore_async_free(ja);
	event_base_free(base);
	jobstore_close(js);
}

/* The server is down when the writes are queued and comes up later (and
 * goes down and up again): the writes wait, then land exactly once. */
static void
test_async_reconnect(void **state)
{
	struct srv *s = *state, s2 = { 0 };
	struct acase a = { 0 };
	struct jobstore_async_params p = { .backoff_min_ms = 50, .backoff_max_ms = 200 };
	struct jobstore_async *ja;
	struct jobstore *js;
	struct jobstore_counts c;
	struct verdict v;
	char err[256], url[64], addr[64];
	int port;

	NEED_SERVER(s);
	port = free_port();
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	a.base = event_base_new();
	ja = jobstore_async_new(a.base, url, &p, err, sizeof(err));
	assert_non_null(ja);
	make_verdict(&v, VR_ACCEPTED, 250, "2.1.5");
	a.want = 20;
	for (int i = 0; i < 10; i++) {
		snprintf(addr, sizeof(addr), "r%d@alpha.test", i);
		assert_int_equal(jobstore_async_put_verdict(ja, "recon", addr, addr, &v,
		    on_written, &a), 0);
	}
	run_loop(a.base, 1);
	assert_int_equal(a.fired, 0);
	assert_false(jobstore_async_connected(ja));
	assert_int_equal(jobstore_async_pending(ja), 10);

	assert_int_equal(srv_start_on(&s2, port), 0);
	a.want = 10;
	run_loop(a.base, 5);
	assert_int_equal(a.fired, 10);
	assert_int_equal(a.fresh, 10);

	/* the server dies with the connection open; new writes wait for the
	 * next server on the same port */
	srv_stop(&s2);
	for (int i = 10; i < 20; i++) {
		snprintf(addr, sizeof(addr), "r%d@alpha.test", i);
		assert_int_equal(jobstore_async_put_verdict(ja, "recon", addr, addr, &v,
		    on_written, &a), 0);
	}
	a.want = 20;
	run_loop(a.base, 1);
	assert_int_equal(a.fired, 10);
	assert_int_equal(srv_start_on(&s2, port), 0);
	run_loop(a.base, 5);
	assert_int_equal(a.fired, 20);
	js = jobstore_connect(s2.url, 0, err, sizeof(err));
	assert_non_null(js);
	assert_int_equal(jobstore_get_counts(js, "recon", &c), 0);
	assert_int_equal(c.done, 10);     /* the new server saw only the last 10 */
	jobstore_close(js);
	jobstore_async_free(ja);
	srv_stop(&s2);
	event_base_free(a.base);
}

/* A server that accepts the connection but never answers: the watchdog
 * drops it after the command timeout and the write is retried; when a real
 * server takes the port, it lands. */
/* A loopback listener that never accepts: connects complete (the kernel's
 * backlog) and nothing is ever answered.  Returns the socket; *port is set. */
static int
listen_silent(int *port)
{
	struct sockaddr_in sin;
	int fd, one = 1;

	*port = free_port();
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)*port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static void
test_async_hung_server(void **state)
{
	struct srv *s = *state, s2 = { 0 };
	struct acase a = { 0 };
	struct jobstore_async_params p = { .connect_timeout_ms = 300, .command_timeout_ms = 300,
		.backoff_min_ms = 50, .backoff_max_ms = 100 };
	struct jobstore_async *ja;
	struct verdict v;
	char err[256], url[64];
	int fd, port;

	NEED_SERVER(s);
	fd = listen_silent(&port);     /* never accept(), never answer */

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	a.base = event_base_new();
	ja = jobstore_async_new(a.base, url, &p, err, sizeof(err));
	assert_non_null(ja);
	make_verdict(&v, VR_ACCEPTED, 250, "2.1.5");
	a.want = 1;
	assert_int_equal(jobstore_async_put_verdict(ja, "hung", "h@alpha.test", "h@alpha.test", &v,
	    on_written, &a), 0);
	run_loop(a.base, 1);
	assert_int_equal(a.fired, 0);
	assert_int_equal(jobstore_async_pending(ja), 1);
	close(fd);
	assert_int_equal(srv_start_on(&s2, port), 0);
	run_loop(a.base, 5);
	assert_int_equal(a.fired, 1);
	assert_int_equal(a.fresh, 1);
	jobstore_async_free(ja);
	srv_stop(&s2);
	event_base_free(a.base);
}

/* have-verdicts lookups: presence per field; no answer (a server that
 * never answers) is NULL after the command timeout; not connected is 1 and
 * no callback; a lookup pending at free is never answered. */
struct hcase {
	struct event_base *base;
	int fired, was_null;
	unsigned char have[4];
};

static void
on_have(void *arg, const unsigned char *have, size_t n)
{
	struct hcase *h = arg;

	h->fired++;
	h->was_null = have == NULL;
	if (have != NULL)
		memcpy(h->have, have, n < sizeof(h->have) ? n : sizeof(h->have));
	event_base_loopbreak(h->base);
}

static void
test_async_have_verdicts(void **state)
{
	struct srv *s = *state;
	struct acase a = { 0 };
	struct hcase h = { 0 };
	struct jobstore_async_params p = { .connect_timeout_ms = 300, .command_timeout_ms = 300,
		.backoff_min_ms = 50, .backoff_max_ms = 100 };
	struct jobstore_async *ja;
	struct verdict v;
	const char *fields[] = { "a0@alpha.test", "nope@alpha.test", "a2@alpha.test" };
	char err[256], url[64];
	int fd, port;

	NEED_SERVER(s);
	a.base = h.base = event_base_new();
	ja = jobstore_async_new(a.base, s->url, NULL, err, sizeof(err));
	assert_non_null(ja);
	/* before the connection is up: not sent */
	assert_int_equal(jobstore_async_have_verdicts(ja, "have1", fields, 3, on_have, &h), 1);
	make_verdict(&v, VR_ACCEPTED, 250, "2.1.5");
	a.want = 2;
	assert_int_equal(jobstore_async_put_verdict(ja, "have1", fields[0], fields[0], &v,
	    on_written, &a), 0);
	assert_int_equal(jobstore_async_put_verdict(ja, "have1", fields[2], fields[2], &v,
	    on_written, &a), 0);
	run_loop(a.base, 10);
	assert_int_equal(a.fired, 2);
	assert_int_equal(jobstore_async_have_verdicts(ja, "have1", fields, 3, on_have, &h), 0);
	assert_int_equal(h.fired, 0);   /* never from inside the call */
	run_loop(h.base, 10);
	assert_int_equal(h.fired, 1);
	assert_false(h.was_null);
	assert_int_equal(h.have[0], 1);
	assert_int_equal(h.have[1], 0);
	assert_int_equal(h.have[2], 1);
	/* another job has none of them */
	h.fired = 0;
	assert_int_equal(jobstore_async_have_verdicts(ja, "have2", fields, 3, on_have, &h), 0);
	run_loop(h.base, 10);
	assert_int_equal(h.fired, 1);
	assert_false(h.was_null);
	assert_int_equal(h.have[0] + h.have[1] + h.have[2], 0);
	assert_int_equal(jobstore_async_have_verdicts(ja, "bad name", fields, 3, on_have, &h), -1);
	assert_int_equal(jobstore_async_have_verdicts(ja, "have1", fields, 0, on_have, &h), -1);
	/* pending at free: no callback */
	h.fired = 0;
	assert_int_equal(jobstore_async_have_verdicts(ja, "have1", fields, 3, on_have, &h), 0);
	jobstore_async_free(ja);
	assert_int_equal(h.fired, 0);

	/* a server that accepts (the kernel's backlog) and never answers */
	fd = listen_silent(&port);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	ja = jobstore_async_new(h.base, url, &p, err, sizeof(err));
	assert_non_null(ja);
	for (int i = 0; i < 50 && !jobstore_async_connected(ja); i++) {
		struct timeval tv = { 0, 20 * 1000 };
		event_base_loopexit(h.base, &tv);
		event_base_dispatch(h.base);
	}
	assert_true(jobstore_async_connected(ja));
	h.fired = 0;
	assert_int_equal(jobstore_async_have_verdicts(ja, "have1", fields, 3, on_have, &h), 0);
	run_loop(h.base, 5);
	assert_int_equal(h.fired, 1);
	assert_true(h.was_null);
	jobstore_async_free(ja);
	close(fd);
	event_base_free(h.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_valid_name),
		cmocka_unit_test(test_invalid_field),
		cmocka_unit_test(test_invalid_line),
		cmocka_unit_test(test_pack_roundtrip),
		cmocka_unit_test(test_lane_records),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test_setup_teardown(test_put_first_wins, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_noscript_scan, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_meta, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_last_verdict, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_queue_then_command, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_async_writes, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_count_once, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_lane_reports, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_async_reconnect, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_async_hung_server, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_async_have_verdicts, srv_setup, srv_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("MXSIFT_TEST_VERBOSE") == NULL)
		log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
