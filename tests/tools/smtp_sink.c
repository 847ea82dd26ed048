/*
 * smtp_sink.c — mxsift-smtp-sink: a fast SMTP receiver for benchmarks.
 *
 * It owns the server side of the benchmark world (scripts/bench): many
 * loopback listening sockets at once (one per MX address), thousands of
 * concurrent sessions on one libevent loop, a fixed per-reply latency
 * implemented with timers (never a sleeping thread), and counters that
 * let the harness compute round trips, connections and 503s per address.
 * It never accepts DATA and never stores anything.
 *
 * Usage: mxsift-smtp-sink [-l SPEC]... [-d MS] [-P] [-C] [-a PREFIX]
 *            [-s STATSFILE] [-m MAXSESS] [-T SECONDS] [-b BACKLOG]
 *   -l SPEC    listen on SPEC (repeatable; default 127.0.0.1:0):
 *                127.0.0.5:25                one address
 *                127.0.1.1-127.0.1.200:25    every IPv4 address of a range
 *                [::1]:2525                  IPv6 loopback
 *              Only loopback addresses (127.0.0.0/8, ::1) are accepted.
 *              Port 0: the kernel picks one; "listen ADDR:PORT" is printed.
 *   -d MS      each reply leaves MS ms after its command arrived (the
 *              greeting MS ms after accept).  Replies keep their order;
 *              commands that arrive together are answered together, as
 *              over a link with a round-trip time of MS.  Default 0.
 *   -P         do not advertise PIPELINING (commands that arrive while an
 *              earlier one is unanswered are still answered, and counted as
 *              pipelining_violations)
 *   -C         catch-all: every RCPT is accepted
 *   -a PREFIX  RCPT local parts starting with PREFIX (case-insensitive)
 *              are accepted with 250 2.1.5, others get 550 5.1.1.
 *              Default "ok-": the random letters of a catch-all probe
 *              (mxsift's or a peer's) never match it, so a domain is
 *              never mistaken for catch-all by chance ("ok" alone matches
 *              one random 20-letter local part in 676).
 *   -s FILE    write the counters to FILE (key=value lines, replaced
 *              atomically) on SIGUSR1 and at exit; without -s they go to
 *              stdout at exit
 *   -m N       refuse sessions beyond N open at once (default unlimited)
 *   -T S       exit after S seconds (a bound for tests; default none)
 *   -b N       listen backlog (default 4096)
 *
 * Stdout: "listen ADDR:PORT" for each socket when the port was 0, then
 * "ready N" (N listening sockets), flushed.  Exit 0 on SIGTERM/SIGINT or
 * after -T; 2 on usage or setup errors (e.g. a non-loopback address).
 *
 * Counters: connections, refused, sessions_open, sessions_peak, cmd_<verb>
 * (ehlo helo mail rcpt rset quit noop data vrfy starttls other), rcpt_ok,
 * rcpt_rejected, replies_503, turns, pipelining_violations, early_talkers,
 * quit_missing, bytes_in, bytes_out, first_accept_ms and last_rcpt_ms (Unix
 * time in ms of the first connection and of the last RCPT reply: the
 * harness measures throughput up to the last verdict with them).
 * A "turn" is one client round trip: a read that brings at least one
 * complete command while every earlier command has been answered.  A
 * pipelined RSET+MAIL+RCPT is one turn; the same three sent one by one are
 * three.  (With -d 0 a pipelined group split across two TCP segments
 * would count twice; on loopback one write arrives as one segment.)
 *
 * Dialogue: 220 greeting; EHLO (PIPELINING, SIZE, 8BITMIME,
 * ENHANCEDSTATUSCODES) or HELO; MAIL FROM (503 before HELO/EHLO or inside
 * a transaction); RCPT TO (503 without MAIL); RSET; NOOP; VRFY 252; DATA
 * 554 (never accepted); STARTTLS 502; QUIT 221 and close; anything else
 * 500.  Lines over 1000 bytes get 500 5.5.2.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define SINK_LINE_MAX 1000 /* RFC 5321 4.5.3.1.4: command line incl. CRLF */
#define SINK_MAXPEND 32    /* unanswered commands before we stop reading */

enum sink_verb {
	V_EHLO,
	V_HELO,
	V_MAIL,
	V_RCPT,
	V_RSET,
	V_QUIT,
	V_NOOP,
	V_DATA,
	V_VRFY,
	V_STARTTLS,
	V_OTHER,
	V__COUNT
};

static const char *const sink_verb_names[V__COUNT] = {
    "ehlo", "helo", "mail", "rcpt", "rset", "quit", "noop", "data", "vrfy", "starttls", "other"};

struct sink_stats {
	uint64_t connections, refused, sessions_open, sessions_peak;
	uint64_t cmd[V__COUNT];
	uint64_t rcpt_ok, rcpt_rejected, replies_503, turns;
	uint64_t pipelining_violations, early_talkers, quit_missing;
	uint64_t bytes_in, bytes_out;
	uint64_t first_accept_ms, last_rcpt_ms; /* Unix time in ms; 0 = never */
};

/*
 * One client connection.  Replies not yet due wait in `later`, in order;
 * due[]/len[] is a ring of their due times (monotonic µs) and sizes.
 */
struct sink_sess {
	struct sink_sess *prev, *next; /* every open session, for teardown */
	struct bufferevent *bev;
	struct event *timer; /* NULL when the delay is 0 */
	struct evbuffer *later;
	uint64_t due[SINK_MAXPEND];
	uint32_t len[SINK_MAXPEND];
	unsigned head, npend;
	unsigned greeted : 1, helo : 1, in_mail : 1, quitting : 1, read_off : 1;
};

static struct {
	struct event_base *base;
	struct evconnlistener **lst;
	size_t nlst;
	unsigned delay_ms;
	int pipelining;
	int catch_all;
	const char *accept_prefix;
	size_t accept_prefix_len;
	const char *stats_file;
	uint64_t max_sessions;
	int backlog;
	struct sink_sess *sessions;
	struct sink_stats st;
} sink = {.pipelining = 1, .accept_prefix = "ok-", .backlog = 4096};

static void sink_read_cb(struct bufferevent *bev, void *arg);

static void __attribute__((noreturn, format(printf, 1, 2))) sink_die(const char *fmt, ...)
{
	va_list ap;

	fputs("mxsift-smtp-sink: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Microseconds on a clock: CLOCK_MONOTONIC for reply timing,
 * CLOCK_REALTIME for counters the harness compares with its own clock. */
static uint64_t
sink_clock_us(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#define sink_now_us() sink_clock_us(CLOCK_MONOTONIC)
#define sink_unix_ms() (sink_clock_us(CLOCK_REALTIME) / 1000u)

/* ---- counters ---------------------------------------------------------- */

static void
sink_stats_print(FILE *f)
{
	const struct sink_stats *s = &sink.st;

	fprintf(f, "connections=%llu\nrefused=%llu\nsessions_open=%llu\nsessions_peak=%llu\n",
	        (unsigned long long)s->connections, (unsigned long long)s->refused,
	        (unsigned long long)s->sessions_open, (unsigned long long)s->sessions_peak);
	for (int i = 0; i < V__COUNT; i++)
		fprintf(f, "cmd_%s=%llu\n", sink_verb_names[i], (unsigned long long)s->cmd[i]);
	fprintf(f,
	        "rcpt_ok=%llu\nrcpt_rejected=%llu\nreplies_503=%llu\nturns=%llu\n"
	        "pipelining_violations=%llu\nearly_talkers=%llu\nquit_missing=%llu\n"
	        "bytes_in=%llu\nbytes_out=%llu\n",
	        (unsigned long long)s->rcpt_ok, (unsigned long long)s->rcpt_rejected,
	        (unsigned long long)s->replies_503, (unsigned long long)s->turns,
	        (unsigned long long)s->pipelining_violations, (unsigned long long)s->early_talkers,
	        (unsigned long long)s->quit_missing, (unsigned long long)s->bytes_in,
	        (unsigned long long)s->bytes_out);
	fprintf(f, "first_accept_ms=%llu\nlast_rcpt_ms=%llu\n",
	        (unsigned long long)s->first_accept_ms, (unsigned long long)s->last_rcpt_ms);
}

/* Replace the stats file atomically, so a reader never sees half of it. */
static void
sink_stats_write(void)
{
	char tmp[4096];
	FILE *f;

	if (sink.stats_file == NULL) {
		sink_stats_print(stdout);
		fflush(stdout);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", sink.stats_file);
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "mxsift-smtp-sink: %s: %s\n", tmp, strerror(errno));
		return;
	}
	sink_stats_print(f);
	if (fclose(f) != 0 || rename(tmp, sink.stats_file) != 0)
		fprintf(stderr, "mxsift-smtp-sink: %s: %s\n", sink.stats_file, strerror(errno));
}

/* ---- sessions ------------------------------------------------------------ */

static void
sink_sess_free(struct sink_sess *ss)
{
	if (!ss->quitting)
		sink.st.quit_missing++;
	sink.st.sessions_open--;
	if (ss->prev != NULL)
		ss->prev->next = ss->next;
	else
		sink.sessions = ss->next;
	if (ss->next != NULL)
		ss->next->prev = ss->prev;
	bufferevent_free(ss->bev);
	if (ss->timer != NULL)
		event_free(ss->timer);
	evbuffer_free(ss->later);
	free(ss);
}

/* Arm the timer for the oldest reply still waiting. */
static void
sink_timer_arm(struct sink_sess *ss, uint64_t now)
{
	uint64_t due = ss->due[ss->head];
	struct timeval tv = {0, 0};

	if (due > now) {
		tv.tv_sec = (time_t)((due - now) / 1000000u);
		tv.tv_usec = (suseconds_t)((due - now) % 1000000u);
	}
	event_add(ss->timer, &tv);
}

static void
sink_send_now(struct sink_sess *ss, const char *p, size_t n)
{
	ss->greeted = 1; /* the greeting is always the first thing sent */
	sink.st.bytes_out += n;
	bufferevent_write(ss->bev, p, n);
}

/* Queue a reply: now when there is no delay, else delay_ms after `arrived`. */
static void
sink_reply(struct sink_sess *ss, uint64_t arrived, const char *p, size_t n)
{
	unsigned slot;

	if (ss->timer == NULL) {
		sink_send_now(ss, p, n);
		return;
	}
	slot = (ss->head + ss->npend) % SINK_MAXPEND;
	ss->due[slot] = arrived + (uint64_t)sink.delay_ms * 1000u;
	ss->len[slot] = (uint32_t)n;
	evbuffer_add(ss->later, p, n);
	if (ss->npend++ == 0)
		sink_timer_arm(ss, sink_now_us());
}

static void
sink_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sink_sess *ss = arg;
	uint64_t now = sink_now_us();
	size_t n = 0;

	/* Everything due within the next half millisecond leaves in one write. */
	while (ss->npend > 0 && ss->due[ss->head] <= now + 500) {
		n += ss->len[ss->head];
		ss->head = (ss->head + 1) % SINK_MAXPEND;
		ss->npend--;
	}
	if (n > 0) {
		ss->greeted = 1;
		sink.st.bytes_out += n;
		evbuffer_remove_buffer(ss->later, bufferevent_get_output(ss->bev), n);
	}
	if (ss->npend > 0)
		sink_timer_arm(ss, now);
	if (ss->read_off && ss->npend < SINK_MAXPEND / 2) {
		ss->read_off = 0;
		bufferevent_enable(ss->bev, EV_READ);
		/* Lines that stayed in the input while reading was off. */
		sink_read_cb(ss->bev, ss);
	}
}

#define SINK_LIT(s) s, sizeof(s) - 1

static int
sink_verb_of(const char *line, size_t n, size_t *arg)
{
	static const struct {
		const char *word;
		enum sink_verb verb;
	} words[] = {
	    {"EHLO", V_EHLO}, {"HELO", V_HELO},         {"MAIL", V_MAIL}, {"RCPT", V_RCPT},
	    {"RSET", V_RSET}, {"QUIT", V_QUIT},         {"NOOP", V_NOOP}, {"DATA", V_DATA},
	    {"VRFY", V_VRFY}, {"STARTTLS", V_STARTTLS},
	};
	size_t w = 0;

	while (w < n && line[w] != ' ')
		w++;
	*arg = w < n ? w + 1 : n;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i].word) == w && strncasecmp(line, words[i].word, w) == 0)
			return words[i].verb;
	return V_OTHER;
}

/*
 * The local part of "TO:<local@domain> ..." (or "TO: local@domain"):
 * returns its start and length, or NULL when there is none.
 */
static const char *
sink_rcpt_local(const char *a, size_t n, size_t *llen)
{
	const char *p, *end = a + n, *at;

	if (n < 3 || strncasecmp(a, "TO:", 3) != 0)
		return NULL;
	p = a + 3;
	while (p < end && *p == ' ')
		p++;
	if (p < end && *p == '<')
		p++;
	at = memchr(p, '@', (size_t)(end - p));
	if (at == NULL || at == p)
		return NULL;
	*llen = (size_t)(at - p);
	return p;
}

static void
sink_command(struct sink_sess *ss, uint64_t now, const char *line, size_t n)
{
	char buf[SINK_LINE_MAX + 128];
	size_t a, llen;
	const char *local;
	int verb, k;

	verb = sink_verb_of(line, n, &a);
	sink.st.cmd[verb]++;
	switch (verb) {
	case V_EHLO:
		ss->helo = 1;
		ss->in_mail = 0;
		k = snprintf(buf, sizeof(buf),
		             "250-sink.mxsift.test\r\n%s250-SIZE 10240000\r\n250-8BITMIME\r\n"
		             "250 ENHANCEDSTATUSCODES\r\n",
		             sink.pipelining ? "250-PIPELINING\r\n" : "");
		sink_reply(ss, now, buf, (size_t)k);
		return;
	case V_HELO:
		ss->helo = 1;
		ss->in_mail = 0;
		sink_reply(ss, now, SINK_LIT("250 sink.mxsift.test\r\n"));
		return;
	case V_MAIL:
		if (!ss->helo) {
			sink.st.replies_503++;
			sink_reply(ss, now, SINK_LIT("503 5.5.1 Error: send HELO/EHLO first\r\n"));
		} else if (ss->in_mail) {
			sink.st.replies_503++;
			sink_reply(ss, now, SINK_LIT("503 5.5.1 Error: nested MAIL command\r\n"));
		} else {
			ss->in_mail = 1;
			sink_reply(ss, now, SINK_LIT("250 2.1.0 Ok\r\n"));
		}
		return;
	case V_RCPT:
		/* When this reply leaves: the moment a client can have a verdict. */
		sink.st.last_rcpt_ms = sink_unix_ms() + sink.delay_ms;
		if (!ss->in_mail) {
			sink.st.replies_503++;
			sink_reply(ss, now, SINK_LIT("503 5.5.1 Error: need MAIL command\r\n"));
			return;
		}
		local = sink_rcpt_local(line + a, n - a, &llen);
		if (local == NULL) {
			sink_reply(ss, now, SINK_LIT("501 5.1.3 Bad recipient address syntax\r\n"));
		} else if (sink.catch_all ||
		           (llen >= sink.accept_prefix_len &&
		            strncasecmp(local, sink.accept_prefix, sink.accept_prefix_len) == 0)) {
			sink.st.rcpt_ok++;
			sink_reply(ss, now, SINK_LIT("250 2.1.5 Ok\r\n"));
		} else {
			sink.st.rcpt_rejected++;
			k = snprintf(buf, sizeof(buf),
			             "550 5.1.1 %.*s: Recipient address rejected: User unknown\r\n",
			             (int)(n - a - 3), line + a + 3);
			sink_reply(ss, now, buf, (size_t)k);
		}
		return;
	case V_RSET:
		ss->in_mail = 0;
		sink_reply(ss, now, SINK_LIT("250 2.0.0 Ok\r\n"));
		return;
	case V_NOOP: sink_reply(ss, now, SINK_LIT("250 2.0.0 Ok\r\n")); return;
	case V_VRFY:
		sink_reply(ss, now, SINK_LIT("252 2.0.0 Send some mail, I'll try my best\r\n"));
		return;
	case V_DATA:
		sink_reply(ss, now, SINK_LIT("554 5.5.1 Error: this sink accepts no data\r\n"));
		return;
	case V_STARTTLS:
		sink_reply(ss, now, SINK_LIT("502 5.5.1 Error: command not implemented\r\n"));
		return;
	case V_QUIT:
		ss->quitting = 1;
		sink_reply(ss, now, SINK_LIT("221 2.0.0 Bye\r\n"));
		return;
	default:
		sink_reply(ss, now, SINK_LIT("500 5.5.2 Error: command not recognized\r\n"));
		return;
	}
}

static void
sink_read_cb(struct bufferevent *bev, void *arg)
{
	struct sink_sess *ss = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[SINK_LINE_MAX + 2];
	uint64_t now = 0;
	int first = 1;

	while (!ss->quitting) {
		struct evbuffer_ptr eol;
		size_t eol_len = 0, n;

		if (ss->npend >= SINK_MAXPEND) {
			/* A flood of pipelined commands: stop reading until the
			 * timer has sent enough replies. */
			bufferevent_disable(bev, EV_READ);
			ss->read_off = 1;
			return;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) <= SINK_LINE_MAX)
				return;
			n = SINK_LINE_MAX; /* overlong: drop what we have */
			eol_len = 0;
		} else {
			n = (size_t)eol.pos;
		}
		if (first) {
			now = ss->timer != NULL ? sink_now_us() : 0;
			if (!ss->greeted)
				sink.st.early_talkers++;
			if (ss->npend == 0)
				sink.st.turns++;
			else if (!sink.pipelining)
				sink.st.pipelining_violations++;
			first = 0;
		} else if (!sink.pipelining) {
			sink.st.pipelining_violations++;
		}
		sink.st.bytes_in += n + eol_len;
		if (n > SINK_LINE_MAX - 2 || eol_len == 0) {
			evbuffer_drain(in, n + eol_len);
			sink.st.cmd[V_OTHER]++;
			sink_reply(ss, now, SINK_LIT("500 5.5.2 Error: line too long\r\n"));
			continue;
		}
		evbuffer_remove(in, line, n + eol_len);
		sink_command(ss, now, line, n);
	}
	/* After QUIT: whatever else the client sends is ignored. */
	evbuffer_drain(in, evbuffer_get_length(in));
}

/* Output drained: after the 221 has left, close. */
static void
sink_write_cb(struct bufferevent *bev, void *arg)
{
	struct sink_sess *ss = arg;

	if (ss->quitting && ss->npend == 0)
		sink_sess_free(ss);
}

static void
sink_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sink_sess *ss = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		sink_sess_free(ss);
}

static void
sink_greet_due(struct sink_sess *ss, uint64_t now)
{
	sink_reply(ss, now, SINK_LIT("220 sink.mxsift.test ESMTP mxsift-smtp-sink\r\n"));
}

static void
sink_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
               void *arg)
{
	struct sink_sess *ss;
	int one = 1;

	if (sink.max_sessions != 0 && sink.st.sessions_open >= sink.max_sessions) {
		sink.st.refused++;
		evutil_closesocket(fd);
		return;
	}
	/* Replies are whole lines written at once: no reason to let Nagle
	 * hold one back behind an unacknowledged segment. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((ss = calloc(1, sizeof(*ss))) == NULL ||
	    (ss->bev = bufferevent_socket_new(sink.base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (ss->later = evbuffer_new()) == NULL ||
	    (sink.delay_ms > 0 &&
	     (ss->timer = evtimer_new(sink.base, sink_timer_cb, ss)) == NULL)) {
		fprintf(stderr, "mxsift-smtp-sink: out of memory for a session\n");
		if (ss != NULL && ss->bev != NULL)
			bufferevent_free(ss->bev);
		else
			evutil_closesocket(fd);
		if (ss != NULL && ss->later != NULL)
			evbuffer_free(ss->later);
		free(ss);
		return;
	}
	if (sink.st.connections++ == 0)
		sink.st.first_accept_ms = sink_unix_ms();
	ss->next = sink.sessions;
	if (ss->next != NULL)
		ss->next->prev = ss;
	sink.sessions = ss;
	if (++sink.st.sessions_open > sink.st.sessions_peak)
		sink.st.sessions_peak = sink.st.sessions_open;
	bufferevent_setcb(ss->bev, sink_read_cb, sink_write_cb, sink_event_cb, ss);
	bufferevent_enable(ss->bev, EV_READ | EV_WRITE);
	sink_greet_due(ss, ss->timer != NULL ? sink_now_us() : 0);
}

static void
sink_accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep going, the harness sees "refused" grow. */
	sink.st.refused++;
	fprintf(stderr, "mxsift-smtp-sink: accept: %s\n", evutil_socket_error_to_string(err));
}

/* ---- listening sockets --------------------------------------------------- */

static void
sink_listen_one(const struct sockaddr *sa, socklen_t salen)
{
	struct evconnlistener *l;
	char host[INET6_ADDRSTRLEN];
	struct sockaddr_storage got;
	socklen_t glen = sizeof(got);
	unsigned port;

	l = evconnlistener_new_bind(sink.base, sink_accept_cb, NULL,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, sink.backlog, sa,
	                            (int)salen);
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host,
		          sizeof(host));
	if (l == NULL)
		sink_die("cannot listen on %s: %s", host, strerror(errno));
	evconnlistener_set_error_cb(l, sink_accept_error_cb);
	if ((sink.lst = realloc(sink.lst, (sink.nlst + 1) * sizeof(*sink.lst))) == NULL)
		sink_die("out of memory");
	sink.lst[sink.nlst++] = l;
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&got, &glen) != 0)
		sink_die("getsockname: %s", strerror(errno));
	port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
	                                      : ((struct sockaddr_in6 *)&got)->sin6_port);
	if ((sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
	                              : ((const struct sockaddr_in6 *)sa)->sin6_port) == 0)
		printf(sa->sa_family == AF_INET ? "listen %s:%u\n" : "listen [%s]:%u\n", host,
		       port);
}

/* SPEC: A:PORT, A-B:PORT (IPv4 range) or [::1]:PORT.  Loopback only. */
static void
sink_listen_spec(const char *spec)
{
	char buf[128], *colon, *dash;
	unsigned long port;
	char *end;

	if (strlen(spec) >= sizeof(buf))
		sink_die("listen spec too long: %s", spec);
	strcpy(buf, spec);
	if ((colon = strrchr(buf, ':')) == NULL)
		sink_die("listen spec needs :PORT: %s", spec);
	*colon = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' || port > 65535)
		sink_die("bad port in %s", spec);
	if (buf[0] == '[') {
		struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
		size_t bl = strlen(buf);

		if (bl < 3 || buf[bl - 1] != ']')
			sink_die("bad IPv6 spec %s", spec);
		buf[bl - 1] = '\0';
		if (inet_pton(AF_INET6, buf + 1, &s6.sin6_addr) != 1 ||
		    !IN6_IS_ADDR_LOOPBACK(&s6.sin6_addr))
			sink_die("%s: only ::1 is allowed", spec);
		sink_listen_one((struct sockaddr *)&s6, sizeof(s6));
		return;
	}
	struct in_addr lo, hi;
	if ((dash = strchr(buf, '-')) != NULL)
		*dash = '\0';
	if (inet_pton(AF_INET, buf, &lo) != 1 ||
	    (dash != NULL && inet_pton(AF_INET, dash + 1, &hi) != 1))
		sink_die("bad address in %s", spec);
	if (dash == NULL)
		hi = lo;
	uint32_t a = ntohl(lo.s_addr), b = ntohl(hi.s_addr);
	if ((a >> 24) != 127 || (b >> 24) != 127)
		sink_die("%s: only loopback addresses (127.0.0.0/8) are allowed", spec);
	if (b < a || b - a >= 65536)
		sink_die("%s: range empty or over 65536 addresses", spec);
	for (uint32_t x = a;; x++) {
		struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};

		s4.sin_addr.s_addr = htonl(x);
		sink_listen_one((struct sockaddr *)&s4, sizeof(s4));
		if (x == b)
			break;
	}
}

/* ---- main ---------------------------------------------------------------- */

static void
sink_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	if (sig == SIGUSR1) {
		sink_stats_write();
		return;
	}
	event_base_loopbreak(sink.base);
}

static void
sink_usage(void)
{
	fprintf(stderr, "usage: mxsift-smtp-sink [-l SPEC]... [-d MS] [-P] [-C] [-a PREFIX]\n"
	                "           [-s STATSFILE] [-m MAXSESS] [-T SECONDS] [-b BACKLOG]\n");
	exit(2);
}

static unsigned long
sink_number(const char *s, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v > max)
		sink_usage();
	return v;
}

int
main(int argc, char **argv)
{
	struct event *sigs[4];
	const int signos[4] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};
	struct event *bound = NULL;
	const char *specs[256];
	unsigned long timeout_s = 0;
	struct rlimit rl;
	size_t nspecs = 0;
	int ch;

	while ((ch = getopt(argc, argv, "l:d:PCa:s:m:T:b:h")) != -1) {
		switch (ch) {
		case 'l':
			if (nspecs == sizeof(specs) / sizeof(specs[0]))
				sink_die("too many -l");
			specs[nspecs++] = optarg;
			break;
		case 'd': sink.delay_ms = (unsigned)sink_number(optarg, 600000); break;
		case 'P': sink.pipelining = 0; break;
		case 'C': sink.catch_all = 1; break;
		case 'a': sink.accept_prefix = optarg; break;
		case 's': sink.stats_file = optarg; break;
		case 'm': sink.max_sessions = sink_number(optarg, 100000000); break;
		case 'T': timeout_s = sink_number(optarg, 86400); break;
		case 'b': sink.backlog = (int)sink_number(optarg, 65535); break;
		default: sink_usage();
		}
	}
	if (optind != argc)
		sink_usage();
	sink.accept_prefix_len = strlen(sink.accept_prefix);
	signal(SIGPIPE, SIG_IGN);
	/* Thousands of sessions: take every descriptor the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((sink.base = event_base_new()) == NULL)
		sink_die("event_base_new failed");
	if (nspecs == 0)
		specs[nspecs++] = "127.0.0.1:0";
	for (size_t i = 0; i < nspecs; i++)
		sink_listen_spec(specs[i]);
	for (int i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(sink.base, signos[i], sink_signal_cb, NULL);
		if (sigs[i] == NULL || event_add(sigs[i], NULL) != 0)
			sink_die("cannot watch signals");
	}
	if (timeout_s > 0) {
		struct timeval tv = {(time_t)timeout_s, 0};

		bound = evtimer_new(sink.base, sink_signal_cb, NULL);
		if (bound == NULL || event_add(bound, &tv) != 0)
			sink_die("cannot arm the -T timer");
	}
	printf("ready %zu\n", sink.nlst);
	fflush(stdout);
	event_base_dispatch(sink.base);

	/* Counters first: the harness reads them even if teardown is slow. */
	sink_stats_write();
	for (size_t i = 0; i < sink.nlst; i++)
		evconnlistener_free(sink.lst[i]);
	free(sink.lst);
	for (int i = 0; i < 4; i++)
		event_free(sigs[i]);
	if (bound != NULL)
		event_free(bound);
	while (sink.sessions != NULL) {
		sink.sessions->quitting = 1; /* not the client's fault */
		sink_sess_free(sink.sessions);
	}
	event_base_free(sink.base);
	return 0;
}
