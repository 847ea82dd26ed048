/*
 * test_jobstore.c — the Redis job store: URL parsing, job names, the
 * Verdict protobuf mapping (pure), and against a real redis-server the
 * Lua write (first verdict wins, counted once), NOSCRIPT fallback,
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
		{ NULL, 0, NULL, 0, NULL, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jobstore_url u;
		char err[128] = "";
		int rc = jobstore_parse_url(cases[i].url, &u, err, sizeof(err));

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
static void
test_async_hung_server(void **state)
{
	struct srv *s = *state, s2 = { 0 };
	struct acase a = { 0 };
	struct jobstore_async_params p = { .connect_timeout_ms = 300, .command_timeout_ms = 300,
		.backoff_min_ms = 50, .backoff_max_ms = 100 };
	struct jobstore_async *ja;
	struct sockaddr_in sin;
	struct verdict v;
	char err[256], url[64];
	int fd, port, one = 1;

	NEED_SERVER(s);
	port = free_port();
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);     /* never accept(), never answer */

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_valid_name),
		cmocka_unit_test(test_invalid_field),
		cmocka_unit_test(test_pack_roundtrip),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test_setup_teardown(test_put_first_wins, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_noscript_scan, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_meta, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_last_verdict, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_queue_then_command, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_async_writes, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_count_once, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_async_reconnect, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_async_hung_server, srv_setup, srv_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("MXSIFT_TEST_VERBOSE") == NULL)
		log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
