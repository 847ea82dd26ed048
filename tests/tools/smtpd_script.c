/*
 * smtpd_script.c — mxsift-smtpd-script: a scripted SMTP server for
 * transcript tests (curl's tests/data style).
 *
 * It listens on a loopback address only, serves each accepted connection
 * by replaying a line-based script (the [server] section of a .scn file, or
 * a whole file that is only a script) and records every line the client
 * sent, byte-exact, per connection.  At exit it writes the transcript:
 *
 *   C1> EHLO probe.mxsift.test      a line that ended in CRLF
 *   C1>lf EHLO probe.mxsift.test    a line that ended in a bare LF
 *   C1>eof QUI                      bytes without a line end before EOF
 *   C1>long xxxx...                 a line over 4096 bytes (cut there)
 *   C1 * tls                        an event (STARTTLS upgrade started)
 *   C1 ! ...                        a failure seen by the server
 *
 * Bytes outside 0x20..0x7e (and a trailing space) are written as \xHH,
 * backslash as \\.  Connections are written in accept order, each one's
 * lines together, so interleaving between connections cannot make a
 * transcript unstable.
 *
 * Failures the server detects on its own, whatever the script says:
 *  - the client sent data while the server's reply was incomplete (before
 *    the greeting, between the lines of a multi-line reply, mid-line);
 *  - in a "strict" connection (no PIPELINING advertised): a command arrived
 *    before the previous one was answered;
 *  - plaintext pipelined behind STARTTLS;
 *  - a failed expect (prefix/regex mismatch), a client that closed while
 *    the script still expected lines, a client that did not close when told.
 *
 * Script language (one statement a line, '#' comments):
 *   max-conns N            accept N connections, then refuse; exit when all ended
 *   timeout S              global bound in seconds (default 30)
 *   blackhole ADDR         also listen on loopback ADDR (same port) with a full
 *                          accept queue, never accepting: a client's SYN gets
 *                          no answer, its connect times out (nothing recorded)
 *   conn N | conn *        the statements below are connection N's (or the default)
 *   local ADDR             fail unless this connection came to local address ADDR
 *                          (with several -a: which MX host the client chose)
 *   strict [MS]            this connection must not see pipelining; with MS,
 *                          wait MS ms after each command before going on, so a
 *                          client that sends the next command early is caught
 *   reply TEXT             send TEXT and CRLF
 *   send TEXT              send TEXT as is
 *   sendrep N TEXT         send TEXT N times
 *   trickle N MS TEXT      send TEXT N bytes at a time, MS ms between pieces
 *   split MS O1,O2,.. TEXT send TEXT cut at byte offsets O1,O2..., MS ms between
 *   pause MS               wait
 *   expect [PREFIX]        take the next client line; fail unless it starts with PREFIX
 *   expect-re REGEX        same with a POSIX extended regex
 *   batch N                take N client lines (a pipelined group) before going on
 *   quiet MS               wait MS; fail if the client sends anything meanwhile
 *   expect-close MS        wait for the client to close (fail after MS), then end
 *   close                  flush, half-close (FIN), record until the client closes
 *   reset                  abort with SO_LINGER 0 (RST)
 *   starttls               start TLS as server (self-signed cert made in-process)
 *   starttls-garbage       answer the client's TLS handshake with a plaintext
 *                          line ("220 this is not TLS"), so that it fails; the
 *                          client's bytes from here on are not recorded (its
 *                          ClientHello is random); follow with expect-close
 *   serve                  from here on, act as a small correct SMTP server
 *                          (below) until the client QUITs or leaves
 *
 * Serve mode (many addresses, many connections: the 1,000-address world and
 * rate tests).  Global statements configure it:
 *   greeting TEXT          the 220 line (default "220 mx.smtpd-script.test ESMTP")
 *   pipelining on|off|ADDR...  advertise PIPELINING everywhere, nowhere
 *                          (default), or only on these local addresses; where
 *                          it is not advertised a client that pipelines is
 *                          caught, as in "strict"
 *   users FILE             addresses (one a line, compared case-insensitively)
 *                          answered 250 2.1.5
 *   rcpt REGEX TEXT        RCPT whose address (without <>) matches REGEX
 *                          (POSIX extended, case-insensitive) gets TEXT;
 *                          first matching rule wins, before users
 *   storm MS TEXT          for the first MS ms of the server's life every new
 *                          connection is greeted with TEXT (e.g. a 421) and
 *                          closed
 * Anything else gets 550 5.1.1.  Sequence errors are answered 503 5.5.1 the
 * way Postfix does (MAIL before EHLO, nested MAIL, RCPT without MAIL) and
 * counted; DATA is refused and recorded as a failure; unknown commands get
 * 502.  Serve connections are recorded like scripted ones; with -e FILE the
 * server also writes one line per event, for rate and count assertions:
 *   MS ADDR Cn connect           a connection accepted on local address ADDR
 *   MS ADDR Cn close             the connection is over
 *   MS ADDR Cn VERB CODE [ARG]   a command and the code of its reply (RCPT:
 *                                ARG = the address); MS = ms since start
 * and at exit "MS - - stats connections=N commands=N replies_503=N".
 * TEXT escapes: \r \n \t \s (space) \\ \xHH.  Trailing blanks of a line are
 * dropped (write \s for a trailing space).  Consecutive send/reply
 * statements leave in one TCP segment; pause/trickle/split separate them.
 *
 * Usage: mxsift-smtpd-script [-a ADDR]... [-p PORT] [-n MAXCONN] [-T SECONDS]
 *            [-t TRANSCRIPT] [-e EVENTS] SCRIPT
 * -a may be repeated: the server listens on every ADDR, all on one port.
 * With port 0 the chosen port is printed on stdout as "port N".  Exit
 * status: 0 when no failure was recorded, 1 when one was, 2 on usage or
 * setup errors.  SIGTERM/SIGINT end it after a short grace period (so the
 * last lines of a client that just exited are still read).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define LINE_CAP 4096      /* longest client line recorded whole */
#define GRACE_MS 500       /* after SIGTERM: read what is still in flight */
#define CLOSE_WAIT_MS 2000 /* after "close": wait this long for the client's FIN */
#define MAX_LISTEN 32      /* -a addresses */
#define SERVE_RULES_MAX 64 /* rcpt rules */
#define BLACKHOLE_MAX 4    /* blackhole addresses */
#define BLACKHOLE_FILL 2   /* connections that fill a backlog of 1 */

enum step_kind {
	ST_SEND,
	ST_SENDREP,
	ST_TRICKLE,
	ST_SPLIT,
	ST_PAUSE,
	ST_EXPECT,
	ST_EXPECT_RE,
	ST_BATCH,
	ST_QUIET,
	ST_EXPECT_CLOSE,
	ST_CLOSE,
	ST_RESET,
	ST_STARTTLS,
	ST_TLS_GARBAGE,
	ST_LOCAL,
	ST_SERVE
};

struct step {
	enum step_kind kind;
	char *data; /* text to send, or expect prefix */
	size_t len;
	regex_t re;
	unsigned n; /* sendrep count, trickle chunk, batch count */
	unsigned ms;
	size_t *offs; /* split offsets, ascending */
	size_t noffs;
	int lineno;
};

struct script {
	unsigned conn_no; /* 0 = default ("conn *") */
	int strict;
	unsigned strict_ms; /* "strict MS": wait MS after each command, fail on input */
	struct step *steps;
	size_t nsteps;
};

struct tbuf {
	char *p;
	size_t len, cap;
};

struct conn {
	unsigned no;
	struct bufferevent *bev;
	evutil_socket_t fd;
	const struct script *sc;
	size_t pc;  /* next step */
	size_t sub; /* progress inside a step */
	struct event *timer;
	int timer_armed;
	int waiting_close; /* at expect-close, or after our half-close */
	int half_closed;
	int ssl_shut;
	int closing; /* "close" waiting for the output to drain */
	int running; /* conn_run() re-entrancy guard */
	int done;    /* connection gone */
	int tls;
	int discard;     /* after starttls-garbage: input dropped, not recorded */
	int garbage_due; /* starttls-garbage: answer the first bytes that come */
	int strict;
	/* reply tracking over what the server sent: is a reply incomplete? */
	int reply_open;
	unsigned out_col; /* bytes on the current output line */
	char out_head[4];
	int awaiting_reply; /* strict: a command was taken and not yet answered */
	int early_noted;
	int quiet;      /* inside "quiet": any byte is a failure */
	int auto_quiet; /* the quiet is strict MS's, after a command */
	/* client lines taken from the socket and not yet consumed by the script */
	char **q;
	size_t qhead, qlen, qcap;
	struct tbuf log;
	/* serve mode */
	char local[INET6_ADDRSTRLEN]; /* the address the client connected to */
	int serving;
	int helo_done, in_mail;
};

struct serve_rule {
	regex_t re;
	char *reply; /* with CRLF */
};

static struct {
	struct event_base *base;
	struct evconnlistener *lst;
	struct script *scripts;
	size_t nscripts;
	unsigned max_conns; /* 0 = unlimited */
	unsigned timeout_s;
	struct conn **conns;
	unsigned nconns, conns_cap;
	struct evconnlistener *lsts[MAX_LISTEN];
	int nlsts;
	char *blackholes[BLACKHOLE_MAX];
	int nblackholes;
	/* serve mode */
	char *greeting;
	int pipelining;
	char *pipe_addrs; /* " ADDR ADDR ": PIPELINING only there */
	char **users;     /* sorted, lowercased */
	size_t nusers;
	struct serve_rule rules[SERVE_RULES_MAX];
	int nrules;
	unsigned storm_ms;
	char *storm_reply;
	FILE *events;
	struct timeval t0;
	unsigned long commands, replies_503;
	unsigned open;
	SSL_CTX *ssl;
	struct tbuf global;
	unsigned failures;
	int terminating;
	struct event *grace;
} srv;

static void conn_run(struct conn *c);
static void conn_finish(struct conn *c, const char *why);
static void conn_read_lines(struct conn *c);
static void srv_check_exit(void);
static void tbuf_printf(struct tbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- small helpers ---------------------------------------------------- */

static void
tbuf_add(struct tbuf *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + n + 1)
			cap *= 2;
		if ((t->p = realloc(t->p, cap)) == NULL) {
			perror("realloc");
			exit(2);
		}
		t->cap = cap;
	}
	memcpy(t->p + t->len, p, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void
tbuf_printf(struct tbuf *t, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	tbuf_add(t, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Append p[0..n) escaped: printable ASCII as is, the rest as \xHH. */
static void
tbuf_escaped(struct tbuf *t, const unsigned char *p, size_t n)
{
	char hex[8];

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\')
			tbuf_add(t, "\\\\", 2);
		else if (p[i] >= 0x20 && p[i] < 0x7f && !(p[i] == ' ' && i == n - 1))
			tbuf_add(t, (const char *)&p[i], 1);
		else {
			snprintf(hex, sizeof(hex), "\\x%02X", p[i]);
			tbuf_add(t, hex, 4);
		}
	}
}

static void
conn_fail(struct conn *c, const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tbuf_printf(&c->log, "C%u ! %s\n", c->no, buf);
	srv.failures++;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mxsift-smtpd-script: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- script parsing --------------------------------------------------- */

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Unescape s into a new buffer; *lenp gets its length. */
static char *
script_unescape(const char *s, size_t *lenp, const char *file, int lineno)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n + 1);

	if (out == NULL)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		switch (s[++i]) {
		case 'r': out[o++] = '\r'; break;
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case 's': out[o++] = ' '; break;
		case '\\': out[o++] = '\\'; break;
		case 'x': {
			int hi = hexval((unsigned char)s[i + 1]);
			int lo = hi < 0 ? -1 : hexval((unsigned char)s[i + 2]);
			if (lo < 0)
				die("%s:%d: bad \\x escape", file, lineno);
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
			break;
		}
		default: die("%s:%d: unknown escape \\%c", file, lineno, s[i] ? s[i] : '0');
		}
	}
	out[o] = '\0';
	*lenp = o;
	return out;
}

/* Parse an unsigned decimal token at *sp; advance past it and one space. */
static unsigned
script_num(const char **sp, const char *file, int lineno)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(*sp, &end, 10);
	if (end == *sp || errno != 0 || v > 100000000ul || (*end != ' ' && *end != '\0'))
		die("%s:%d: number expected at \"%s\"", file, lineno, *sp);
	*sp = *end == ' ' ? end + 1 : end;
	return (unsigned)v;
}

static int
serve_user_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
str_lower(char *p)
{
	for (; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

/* "users FILE": the accepted addresses, sorted for bsearch. */
static void
serve_load_users(const char *path, const char *file, int lineno)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, ucap = 0;
	ssize_t n;

	if (f == NULL)
		die("%s:%d: %s: %s", file, lineno, path, strerror(errno));
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (srv.nusers == ucap) {
			ucap = ucap ? ucap * 2 : 256;
			if ((srv.users = realloc(srv.users, ucap * sizeof(*srv.users))) == NULL)
				die("out of memory");
		}
		if ((srv.users[srv.nusers] = strdup(line)) == NULL)
			die("out of memory");
		str_lower(srv.users[srv.nusers++]);
	}
	free(line);
	fclose(f);
	qsort(srv.users, srv.nusers, sizeof(*srv.users), serve_user_cmp);
}

/* Global serve-mode statements; 1 if kw was one. */
static int
script_parse_serve(const char *kw, char *rest, const char *file, int lineno)
{
	size_t len;

	if (strcmp(kw, "greeting") == 0) {
		free(srv.greeting);
		srv.greeting = script_unescape(rest, &len, file, lineno);
	} else if (strcmp(kw, "pipelining") == 0) {
		if (*rest == '\0')
			die("%s:%d: pipelining on|off|ADDR...", file, lineno);
		srv.pipelining = strcmp(rest, "on") == 0;
		free(srv.pipe_addrs);
		srv.pipe_addrs = NULL;
		if (!srv.pipelining && strcmp(rest, "off") != 0) {
			size_t n = strlen(rest) + 3;

			if ((srv.pipe_addrs = malloc(n)) == NULL)
				die("out of memory");
			snprintf(srv.pipe_addrs, n, " %s ", rest);
		}
	} else if (strcmp(kw, "users") == 0) {
		serve_load_users(rest, file, lineno);
	} else if (strcmp(kw, "rcpt") == 0) {
		struct serve_rule *r = &srv.rules[srv.nrules];
		char *text = strchr(rest, ' ');

		if (srv.nrules == SERVE_RULES_MAX || text == NULL)
			die("%s:%d: rcpt REGEX TEXT (at most %d rules)", file, lineno,
			    SERVE_RULES_MAX);
		*text++ = '\0';
		if (regcomp(&r->re, rest, REG_EXTENDED | REG_NOSUB | REG_ICASE) != 0)
			die("%s:%d: bad regex", file, lineno);
		r->reply = script_unescape(text, &len, file, lineno);
		srv.nrules++;
	} else if (strcmp(kw, "storm") == 0) {
		srv.storm_ms = script_num((const char **)&rest, file, lineno);
		free(srv.storm_reply);
		srv.storm_reply = script_unescape(rest, &len, file, lineno);
	} else {
		return 0;
	}
	return 1;
}

static struct script *
script_block(unsigned no)
{
	struct script *sc;

	for (size_t i = 0; i < srv.nscripts; i++)
		if (srv.scripts[i].conn_no == no)
			return &srv.scripts[i];
	srv.scripts = realloc(srv.scripts, (srv.nscripts + 1) * sizeof(*srv.scripts));
	if (srv.scripts == NULL)
		die("out of memory");
	sc = &srv.scripts[srv.nscripts++];
	memset(sc, 0, sizeof(*sc));
	sc->conn_no = no;
	return sc;
}

static void
script_parse_line(struct script **cur, char *line, const char *file, int lineno)
{
	char *kw = line, *rest;
	struct step st;
	struct script *sc;

	rest = strchr(line, ' ');
	if (rest != NULL)
		*rest++ = '\0';
	else
		rest = line + strlen(line);
	memset(&st, 0, sizeof(st));
	st.lineno = lineno;

	if (strcmp(kw, "max-conns") == 0) {
		srv.max_conns = script_num((const char **)&rest, file, lineno);
		return;
	}
	if (strcmp(kw, "timeout") == 0) {
		srv.timeout_s = script_num((const char **)&rest, file, lineno);
		return;
	}
	if (strcmp(kw, "blackhole") == 0) {
		if (srv.nblackholes == BLACKHOLE_MAX || *rest == '\0')
			die("%s:%d: blackhole ADDR (at most %d)", file, lineno, BLACKHOLE_MAX);
		if ((srv.blackholes[srv.nblackholes++] = strdup(rest)) == NULL)
			die("out of memory");
		return;
	}
	if (script_parse_serve(kw, rest, file, lineno))
		return;
	if (strcmp(kw, "conn") == 0) {
		if (strcmp(rest, "*") == 0)
			*cur = script_block(0);
		else {
			unsigned no = script_num((const char **)&rest, file, lineno);
			if (no == 0)
				die("%s:%d: connections count from 1", file, lineno);
			*cur = script_block(no);
		}
		return;
	}
	if (*cur == NULL)
		die("%s:%d: \"%s\" before any \"conn\"", file, lineno, kw);
	sc = *cur;
	if (strcmp(kw, "strict") == 0) {
		sc->strict = 1;
		if (*rest != '\0')
			sc->strict_ms = script_num((const char **)&rest, file, lineno);
		return;
	}
	if (strcmp(kw, "send") == 0 || strcmp(kw, "reply") == 0) {
		st.kind = ST_SEND;
		st.data = script_unescape(rest, &st.len, file, lineno);
		if (kw[0] == 'r') {
			if ((st.data = realloc(st.data, st.len + 3)) == NULL)
				die("out of memory");
			memcpy(st.data + st.len, "\r\n", 3);
			st.len += 2;
		}
	} else if (strcmp(kw, "sendrep") == 0) {
		st.kind = ST_SENDREP;
		st.n = script_num((const char **)&rest, file, lineno);
		st.data = script_unescape(rest, &st.len, file, lineno);
	} else if (strcmp(kw, "trickle") == 0) {
		st.kind = ST_TRICKLE;
		st.n = script_num((const char **)&rest, file, lineno);
		st.ms = script_num((const char **)&rest, file, lineno);
		st.data = script_unescape(rest, &st.len, file, lineno);
		if (st.n == 0 || st.len == 0)
			die("%s:%d: trickle needs a chunk size and text", file, lineno);
	} else if (strcmp(kw, "split") == 0) {
		char *offs, *tok, *save = NULL;
		st.kind = ST_SPLIT;
		st.ms = script_num((const char **)&rest, file, lineno);
		offs = rest;
		rest = strchr(rest, ' ');
		if (rest == NULL)
			die("%s:%d: split MS OFFSETS TEXT", file, lineno);
		*rest++ = '\0';
		st.data = script_unescape(rest, &st.len, file, lineno);
		for (tok = strtok_r(offs, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			const char *t = tok;
			size_t off = script_num(&t, file, lineno);
			if (off == 0 || off >= st.len ||
			    (st.noffs > 0 && off <= st.offs[st.noffs - 1]))
				die("%s:%d: split offsets must ascend inside the text", file,
				    lineno);
			st.offs = realloc(st.offs, (st.noffs + 1) * sizeof(*st.offs));
			if (st.offs == NULL)
				die("out of memory");
			st.offs[st.noffs++] = off;
		}
	} else if (strcmp(kw, "pause") == 0 || strcmp(kw, "sleep") == 0) {
		st.kind = ST_PAUSE;
		st.ms = script_num((const char **)&rest, file, lineno);
	} else if (strcmp(kw, "expect") == 0) {
		st.kind = ST_EXPECT;
		st.data = script_unescape(rest, &st.len, file, lineno);
	} else if (strcmp(kw, "expect-re") == 0) {
		st.kind = ST_EXPECT_RE;
		if ((st.data = strdup(rest)) == NULL)
			die("out of memory");
		if (regcomp(&st.re, rest, REG_EXTENDED | REG_NOSUB) != 0)
			die("%s:%d: bad regex", file, lineno);
	} else if (strcmp(kw, "batch") == 0) {
		st.kind = ST_BATCH;
		st.n = script_num((const char **)&rest, file, lineno);
	} else if (strcmp(kw, "quiet") == 0) {
		st.kind = ST_QUIET;
		st.ms = script_num((const char **)&rest, file, lineno);
	} else if (strcmp(kw, "expect-close") == 0) {
		st.kind = ST_EXPECT_CLOSE;
		st.ms = script_num((const char **)&rest, file, lineno);
	} else if (strcmp(kw, "close") == 0) {
		st.kind = ST_CLOSE;
	} else if (strcmp(kw, "reset") == 0) {
		st.kind = ST_RESET;
	} else if (strcmp(kw, "starttls") == 0) {
		st.kind = ST_STARTTLS;
	} else if (strcmp(kw, "starttls-garbage") == 0) {
		st.kind = ST_TLS_GARBAGE;
	} else if (strcmp(kw, "local") == 0) {
		st.kind = ST_LOCAL;
		if ((st.data = strdup(rest)) == NULL)
			die("out of memory");
	} else if (strcmp(kw, "serve") == 0) {
		st.kind = ST_SERVE;
	} else
		die("%s:%d: unknown statement \"%s\"", file, lineno, kw);

	sc->steps = realloc(sc->steps, (sc->nsteps + 1) * sizeof(*sc->steps));
	if (sc->steps == NULL)
		die("out of memory");
	sc->steps[sc->nsteps++] = st;
}

/*
 * Read the script: the [server] section of a scenario file, or the whole
 * file when it has no [server] header.
 */
static void
script_load(const char *file)
{
	FILE *f = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, has_sections = 0, in = 0;
	struct script *cur = NULL;

	if (f == NULL)
		die("%s: %s", file, strerror(errno));
	while ((n = getline(&line, &cap, f)) >= 0)
		if (strncmp(line, "[server]", 8) == 0)
			has_sections = 1;
	rewind(f);
	in = !has_sections;
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *p = line;
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
		                 line[n - 1] == '\t'))
			line[--n] = '\0';
		if (has_sections && line[0] == '[' && n > 2 && line[n - 1] == ']') {
			in = strcmp(line, "[server]") == 0;
			continue;
		}
		if (!in)
			continue;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		script_parse_line(&cur, p, file, lineno);
	}
	free(line);
	fclose(f);
	if (srv.nscripts == 0)
		die("%s: no connection script", file);
}

/* ---- TLS -------------------------------------------------------------- */

/* A throwaway self-signed certificate, made once, in memory. */
static SSL_CTX *
tls_ctx(void)
{
	EVP_PKEY *pk;
	X509 *x;
	X509_NAME *nm;

	if (srv.ssl != NULL)
		return srv.ssl;
	if ((pk = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL)
		die("cannot make a TLS key");
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pk);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"mx.smtpd-script.test", -1, -1, 0);
	X509_set_issuer_name(x, nm);
	if (X509_sign(x, pk, EVP_sha256()) == 0)
		die("cannot sign the TLS certificate");
	srv.ssl = SSL_CTX_new(TLS_server_method());
	if (srv.ssl == NULL || SSL_CTX_use_certificate(srv.ssl, x) != 1 ||
	    SSL_CTX_use_PrivateKey(srv.ssl, pk) != 1)
		die("cannot set up the TLS context");
	X509_free(x);
	EVP_PKEY_free(pk);
	return srv.ssl;
}

/* ---- connection I/O --------------------------------------------------- */

/* Write bytes to the client and track whether a reply is left incomplete:
 * a partial line, or a last line of the form "250-..." (more to come). */
static void
conn_write(struct conn *c, const char *p, size_t n)
{
	bufferevent_write(c->bev, p, n);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			int final = !(c->out_col >= 4 && c->out_head[3] == '-');
			c->reply_open = !final;
			if (final) {
				c->awaiting_reply = 0;
				c->early_noted = 0;
			}
			c->out_col = 0;
			continue;
		}
		if (c->out_col < sizeof(c->out_head))
			c->out_head[c->out_col] = p[i];
		c->out_col++;
		c->reply_open = 1;
	}
}

static void
conn_record(struct conn *c, const unsigned char *p, size_t n, const char *mark)
{
	tbuf_printf(&c->log, "C%u>%s ", c->no, mark);
	tbuf_escaped(&c->log, p, n);
	tbuf_add(&c->log, "\n", 1);
}

static void
conn_queue(struct conn *c, const unsigned char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		die("out of memory");
	memcpy(s, p, n);
	s[n] = '\0';
	if (c->qhead + c->qlen == c->qcap) {
		if (c->qhead > 0) {
			memmove(c->q, c->q + c->qhead, c->qlen * sizeof(*c->q));
			c->qhead = 0;
		} else {
			c->qcap = c->qcap ? c->qcap * 2 : 16;
			if ((c->q = realloc(c->q, c->qcap * sizeof(*c->q))) == NULL)
				die("out of memory");
		}
	}
	c->q[c->qhead + c->qlen++] = s;
}

static char *
conn_dequeue(struct conn *c)
{
	char *s;

	if (c->qlen == 0)
		return NULL;
	s = c->q[c->qhead++];
	if (--c->qlen == 0)
		c->qhead = 0;
	return s;
}

/* Split the input into lines; record and queue each. */
static void
conn_read_lines(struct conn *c)
{
	struct evbuffer *in;
	unsigned char buf[LINE_CAP + 2];

	if (c->bev == NULL)
		return;
	in = bufferevent_get_input(c->bev);
	if (evbuffer_get_length(in) == 0)
		return;
	if (c->discard) {
		static const char junk[] = "220 this is not TLS\r\n";

		evbuffer_drain(in, evbuffer_get_length(in));
		/* After the ClientHello, not with the 220: the client must
		 * see a broken handshake, not plaintext behind the 220. */
		if (c->garbage_due) {
			c->garbage_due = 0;
			bufferevent_write(c->bev, junk, sizeof(junk) - 1);
		}
		return;
	}
	if (c->quiet && !c->auto_quiet)
		conn_fail(c, "client sent data during a quiet period (script line %d)",
		          c->sc->steps[c->pc].lineno);
	if (c->reply_open && !c->early_noted) {
		conn_fail(c, "early data: client sent before the server's reply was complete");
		c->early_noted = 1;
	}
	for (;;) {
		struct evbuffer_ptr e = evbuffer_search(in, "\n", 1, NULL);
		size_t n, len;
		const char *mark = "";

		if (e.pos < 0) {
			if (evbuffer_get_length(in) < LINE_CAP)
				return;
			n = evbuffer_remove(in, buf, LINE_CAP);
			mark = "long";
			len = n;
		} else if ((size_t)e.pos + 1 > LINE_CAP) {
			n = evbuffer_remove(in, buf, LINE_CAP);
			mark = "long";
			len = n;
		} else {
			n = evbuffer_remove(in, buf, (size_t)e.pos + 1);
			len = n - 1;
			if (len > 0 && buf[len - 1] == '\r')
				len--;
			else
				mark = "lf";
		}
		if (c->strict && (c->awaiting_reply || c->qlen > 0))
			conn_fail(c, "pipelining without PIPELINING: line sent before "
			             "the previous command was answered");
		conn_record(c, buf, len, mark);
		conn_queue(c, buf, len);
	}
}

static void
conn_timer_arm(struct conn *c, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(c->timer, &tv);
	c->timer_armed = 1;
}

static int
conn_out_pending(struct conn *c)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
	struct bufferevent *u = bufferevent_get_underlying(c->bev);

	if (u != NULL)
		n += evbuffer_get_length(bufferevent_get_output(u));
	return n > 0;
}

/* "close": once the output is out (TLS: after our close_notify), send FIN
 * and keep recording until the client closes too (bounded by
 * CLOSE_WAIT_MS).  While output is pending, poll every 10 ms: a TLS
 * filter's underlying buffer does not call us back when it drains. */
static void
conn_half_close(struct conn *c)
{
	if (c->tls && !c->ssl_shut) {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		c->ssl_shut = 1;
		if (ssl != NULL)
			SSL_shutdown(ssl);
	}
	if (conn_out_pending(c)) {
		conn_timer_arm(c, 10);
		return;
	}
	c->closing = 0;
	c->half_closed = 1;
	shutdown(c->fd, SHUT_WR);
	c->waiting_close = 1;
	conn_timer_arm(c, CLOSE_WAIT_MS);
}

static int
script_expects_more(const struct conn *c)
{
	for (size_t i = c->pc; i < c->sc->nsteps; i++) {
		enum step_kind k = c->sc->steps[i].kind;
		if (k == ST_EXPECT || k == ST_EXPECT_RE || k == ST_BATCH)
			return (int)i;
	}
	return -1;
}

static void serve_event(struct conn *c, const char *what, int code, const char *arg);

static void
conn_finish(struct conn *c, const char *why)
{
	int i;

	if (c->done)
		return;
	conn_read_lines(c);
	if (c->bev != NULL) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t n = evbuffer_get_length(in);
		if (n > 0 && !c->discard) {
			unsigned char buf[LINE_CAP];
			n = evbuffer_remove(in, buf, n < sizeof(buf) ? n : sizeof(buf));
			conn_record(c, buf, n, "eof");
			conn_queue(c, buf, n);
		}
	}
	if (why != NULL && (i = script_expects_more(c)) >= 0) {
		const struct step *st = &c->sc->steps[i];
		conn_fail(c, "%s while the script still expected a line (script line %d%s%s%s)",
		          why, st->lineno, st->data && *st->data ? ": \"" : "",
		          st->data && *st->data ? st->data : "", st->data && *st->data ? "\"" : "");
	}
	c->done = 1;
	serve_event(c, "close", 0, NULL);
	evtimer_del(c->timer);
	if (c->bev != NULL) {
		bufferevent_free(c->bev); /* closes the socket */
		c->bev = NULL;
	}
	srv.open--;
	srv_check_exit();
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_read_lines(c);
	conn_run(c);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char err[256] = "";

	if (what & BEV_EVENT_CONNECTED)
		return; /* TLS handshake done */
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;
		if (c->tls) {
			while ((e = bufferevent_get_openssl_error(bev)) != 0)
				ERR_error_string_n(e, err, sizeof(err));
		}
		if (c->tls && err[0] != '\0' && !c->half_closed && !c->waiting_close)
			conn_fail(c, "TLS error: %s", err);
	}
	if (c->waiting_close) {
		conn_finish(c, NULL);
		return;
	}
	conn_finish(c, (what & BEV_EVENT_EOF) ? "client closed" : "connection error");
}

/* ---- serve mode --------------------------------------------------------- */

static unsigned long
srv_ms(void)
{
	struct timeval now;

	gettimeofday(&now, NULL);
	return (unsigned long)((now.tv_sec - srv.t0.tv_sec) * 1000 +
	                       (now.tv_usec - srv.t0.tv_usec) / 1000);
}

static void
serve_event(struct conn *c, const char *what, int code, const char *arg)
{
	if (srv.events == NULL)
		return;
	fprintf(srv.events, "%lu %s C%u %s", srv_ms(), c->local, c->no, what);
	if (code != 0)
		fprintf(srv.events, " %d", code);
	if (arg != NULL)
		fprintf(srv.events, " %s", arg);
	fputc('\n', srv.events);
}

/* Answer one command: text is the whole reply without the final CRLF. */
static void
serve_reply(struct conn *c, const char *verb, const char *arg, const char *text)
{
	int code = atoi(text);

	conn_write(c, text, strlen(text));
	conn_write(c, "\r\n", 2);
	srv.commands++;
	if (code == 503)
		srv.replies_503++;
	serve_event(c, verb, code, arg);
}

/* The reply to RCPT TO:<addr>: rules, then users, then unknown. */
static void
serve_rcpt(struct conn *c, const char *line)
{
	const char *lt = strchr(line, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;
	char addr[LINE_CAP], low[LINE_CAP], text[LINE_CAP + 128];
	char *key = low;

	if (lt == NULL || gt == NULL) {
		serve_reply(c, "RCPT", "-", "501 5.1.3 Bad recipient address syntax");
		return;
	}
	snprintf(addr, sizeof(addr), "%.*s", (int)(gt - lt - 1), lt + 1);
	for (int i = 0; i < srv.nrules; i++) {
		if (regexec(&srv.rules[i].re, addr, 0, NULL, 0) == 0) {
			serve_reply(c, "RCPT", addr, srv.rules[i].reply);
			return;
		}
	}
	snprintf(low, sizeof(low), "%s", addr);
	str_lower(low);
	if (srv.nusers > 0 &&
	    bsearch(&key, srv.users, srv.nusers, sizeof(*srv.users), serve_user_cmp) != NULL) {
		serve_reply(c, "RCPT", addr, "250 2.1.5 Ok");
		return;
	}
	snprintf(
	    text, sizeof(text),
	    "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table",
	    addr);
	serve_reply(c, "RCPT", addr, text);
}

/* Does this connection's local address advertise PIPELINING? */
static int
serve_pipelining(const struct conn *c)
{
	char key[INET6_ADDRSTRLEN + 3];

	if (srv.pipelining)
		return 1;
	if (srv.pipe_addrs == NULL)
		return 0;
	snprintf(key, sizeof(key), " %s ", c->local);
	return strstr(srv.pipe_addrs, key) != NULL;
}

/* One client line in serve mode, answered as Postfix would. */
static void
serve_line(struct conn *c, const char *line)
{
	char verb[8];
	size_t n = strcspn(line, " :");

	snprintf(verb, sizeof(verb), "%.*s", (int)(n < 7 ? n : 7), line);
	for (char *p = verb; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	c->awaiting_reply = 1;
	if (strcmp(verb, "EHLO") == 0) {
		c->helo_done = 1;
		c->in_mail = 0;
		serve_reply(c, verb, NULL,
		            serve_pipelining(c)
		                ? "250-mx.smtpd-script.test\r\n250-PIPELINING\r\n"
		                  "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME"
		                : "250-mx.smtpd-script.test\r\n250-ENHANCEDSTATUSCODES\r\n"
		                  "250 8BITMIME");
	} else if (strcmp(verb, "HELO") == 0) {
		c->helo_done = 1;
		c->in_mail = 0;
		serve_reply(c, verb, NULL, "250 mx.smtpd-script.test");
	} else if (strcmp(verb, "MAIL") == 0) {
		if (!c->helo_done) {
			serve_reply(c, verb, NULL, "503 5.5.1 Error: send HELO/EHLO first");
		} else if (c->in_mail) {
			serve_reply(c, verb, NULL, "503 5.5.1 Error: nested MAIL command");
		} else {
			c->in_mail = 1;
			serve_reply(c, verb, NULL, "250 2.1.0 Ok");
		}
	} else if (strcmp(verb, "RCPT") == 0) {
		if (!c->in_mail)
			serve_reply(c, verb, NULL, "503 5.5.1 Error: need MAIL command");
		else
			serve_rcpt(c, line);
	} else if (strcmp(verb, "RSET") == 0) {
		c->in_mail = 0;
		serve_reply(c, verb, NULL, "250 2.0.0 Ok");
	} else if (strcmp(verb, "NOOP") == 0) {
		serve_reply(c, verb, NULL, "250 2.0.0 Ok");
	} else if (strcmp(verb, "QUIT") == 0) {
		serve_reply(c, verb, NULL, "221 2.0.0 Bye");
		c->pc++;
		c->closing = 1;
		conn_half_close(c);
	} else if (strcmp(verb, "DATA") == 0) {
		conn_fail(c, "DATA sent (a verifier must never send DATA)");
		serve_reply(c, verb, NULL, "554 5.5.1 Error: no valid recipients");
	} else {
		serve_reply(c, verb, NULL, "502 5.5.2 Error: command not recognized");
	}
}

/* The serve step: greet (or storm), then answer lines as they come. */
static int
serve_step(struct conn *c)
{
	char *line;

	if (!c->serving) {
		c->serving = 1;
		if (!serve_pipelining(c))
			c->strict = 1;
		if (srv.storm_reply != NULL && srv_ms() < srv.storm_ms) {
			conn_write(c, srv.storm_reply, strlen(srv.storm_reply));
			conn_write(c, "\r\n", 2);
			serve_event(c, "storm", atoi(srv.storm_reply), NULL);
			c->pc++;
			c->closing = 1;
			conn_half_close(c);
			return 1;
		}
		const char *g =
		    srv.greeting != NULL ? srv.greeting : "220 mx.smtpd-script.test ESMTP";

		conn_write(c, g, strlen(g));
		conn_write(c, "\r\n", 2);
	}
	if ((line = conn_dequeue(c)) == NULL)
		return 0;
	serve_line(c, line);
	free(line);
	return 1;
}

/* ---- the script interpreter ------------------------------------------ */

/* strict MS: give a client that would pipeline the chance to do it. */
static void
conn_strict_wait(struct conn *c)
{
	if (c->sc->strict_ms == 0)
		return;
	c->quiet = c->auto_quiet = 1;
	conn_timer_arm(c, c->sc->strict_ms);
}

static void
conn_expect_check(struct conn *c, const struct step *st, const char *line)
{
	if (st->kind == ST_EXPECT && st->len > 0 && strncmp(line, st->data, st->len) != 0)
		conn_fail(c, "script line %d: expected \"%s...\"", st->lineno, st->data);
	if (st->kind == ST_EXPECT_RE && regexec(&st->re, line, 0, NULL, 0) != 0)
		conn_fail(c, "script line %d: expected /%s/", st->lineno, st->data);
	c->awaiting_reply = 1;
	conn_strict_wait(c);
}

static void
conn_starttls(struct conn *c)
{
	struct bufferevent *tb;

	if (c->qlen > 0 || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		conn_fail(c, "plaintext sent after STARTTLS, before the handshake");
		while (c->qlen > 0)
			free(conn_dequeue(c));
		evbuffer_drain(bufferevent_get_input(c->bev),
		               evbuffer_get_length(bufferevent_get_input(c->bev)));
	}
	tbuf_printf(&c->log, "C%u * tls\n", c->no);
	tb = bufferevent_openssl_filter_new(srv.base, c->bev, SSL_new(tls_ctx()),
	                                    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL)
		die("bufferevent_openssl_filter_new failed");
	c->bev = tb;
	c->tls = 1;
	c->reply_open = 0;
	c->awaiting_reply = 0;
	c->out_col = 0;
	bufferevent_setcb(tb, conn_readcb, NULL, conn_eventcb, c);
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

static void
conn_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	const struct step *st;

	c->timer_armed = 0;
	if (c->done)
		return;
	if (c->auto_quiet) {
		c->auto_quiet = c->quiet = 0;
		conn_run(c);
		return;
	}
	if (c->closing) {
		conn_half_close(c);
		return;
	}
	if (c->half_closed) {
		/* the client never closed after our FIN: stop waiting */
		conn_finish(c, NULL);
		return;
	}
	st = &c->sc->steps[c->pc];
	switch (st->kind) {
	case ST_PAUSE: c->pc++; break;
	case ST_QUIET:
		c->quiet = 0;
		c->pc++;
		break;
	case ST_EXPECT_CLOSE:
		conn_fail(c, "script line %d: client did not close within %u ms", st->lineno,
		          st->ms);
		conn_finish(c, NULL);
		return;
	case ST_TRICKLE:
	case ST_SPLIT: break; /* conn_run sends the next piece */
	default: break;
	}
	conn_run(c);
}

/* Execute steps until one has to wait for the client or a timer. */
static void
conn_run(struct conn *c)
{
	if (c->running || c->done)
		return;
	c->running = 1;
	while (!c->done && !c->timer_armed && !c->closing && !c->waiting_close &&
	       c->pc < c->sc->nsteps) {
		const struct step *st = &c->sc->steps[c->pc];
		char *line;

		switch (st->kind) {
		case ST_SEND:
			conn_write(c, st->data, st->len);
			c->pc++;
			break;
		case ST_SENDREP:
			for (unsigned i = 0; i < st->n; i++)
				conn_write(c, st->data, st->len);
			c->pc++;
			break;
		case ST_TRICKLE: {
			size_t n = st->len - c->sub < st->n ? st->len - c->sub : st->n;
			conn_write(c, st->data + c->sub, n);
			c->sub += n;
			if (c->sub < st->len)
				conn_timer_arm(c, st->ms);
			else {
				c->sub = 0;
				c->pc++;
			}
			break;
		}
		case ST_SPLIT: {
			size_t from = c->sub == 0 ? 0 : st->offs[c->sub - 1];
			size_t to = c->sub < st->noffs ? st->offs[c->sub] : st->len;
			conn_write(c, st->data + from, to - from);
			if (c->sub < st->noffs) {
				c->sub++;
				conn_timer_arm(c, st->ms);
			} else {
				c->sub = 0;
				c->pc++;
			}
			break;
		}
		case ST_PAUSE: conn_timer_arm(c, st->ms); break;
		case ST_EXPECT:
		case ST_EXPECT_RE:
			if ((line = conn_dequeue(c)) == NULL)
				goto out;
			conn_expect_check(c, st, line);
			free(line);
			c->pc++;
			break;
		case ST_BATCH:
			while (c->sub < st->n && (line = conn_dequeue(c)) != NULL) {
				c->sub++;
				free(line);
			}
			if (c->sub < st->n)
				goto out;
			c->awaiting_reply = 1;
			c->sub = 0;
			c->pc++;
			conn_strict_wait(c);
			break;
		case ST_QUIET:
			if (c->qlen > 0)
				conn_fail(c,
				          "script line %d: unanswered client line before a "
				          "quiet period",
				          st->lineno);
			c->quiet = 1;
			conn_timer_arm(c, st->ms);
			break;
		case ST_EXPECT_CLOSE:
			c->waiting_close = 1;
			conn_timer_arm(c, st->ms);
			break;
		case ST_CLOSE:
			c->pc++;
			c->closing = 1;
			conn_half_close(c);
			break;
		case ST_RESET: {
			struct linger l = {1, 0};
			c->pc++;
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			conn_finish(c, NULL);
			break;
		}
		case ST_STARTTLS:
			c->pc++;
			conn_starttls(c);
			break;
		case ST_LOCAL:
			c->pc++;
			if (strcmp(c->local, st->data) != 0)
				conn_fail(c, "script line %d: connection to %s, want %s", st->lineno,
				          c->local, st->data);
			break;
		case ST_TLS_GARBAGE:
			c->pc++;
			if (c->qlen > 0 || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
				conn_fail(c, "plaintext sent after STARTTLS, before the handshake");
			tbuf_printf(&c->log, "C%u * tls-garbage\n", c->no);
			while (c->qlen > 0)
				free(conn_dequeue(c));
			evbuffer_drain(bufferevent_get_input(c->bev),
			               evbuffer_get_length(bufferevent_get_input(c->bev)));
			c->discard = c->garbage_due = 1;
			c->reply_open = c->awaiting_reply = 0;
			break;
		case ST_SERVE:
			if (!serve_step(c))
				goto out;
			break;
		}
	}
out:
	c->running = 0;
}

/* ---- listener and lifetime ------------------------------------------- */

static void
srv_close_listeners(void)
{
	for (int i = 0; i < srv.nlsts; i++)
		evconnlistener_free(srv.lsts[i]);
	srv.nlsts = 0;
}

static void
srv_stop(void)
{
	event_base_loopexit(srv.base, NULL);
}

static void
srv_check_exit(void)
{
	if (srv.open > 0)
		return;
	if (srv.terminating || (srv.max_conns > 0 && srv.nconns >= srv.max_conns))
		srv_stop();
}

static const struct script *
srv_script_for(unsigned no)
{
	const struct script *dflt = NULL;

	for (size_t i = 0; i < srv.nscripts; i++) {
		if (srv.scripts[i].conn_no == no)
			return &srv.scripts[i];
		if (srv.scripts[i].conn_no == 0)
			dflt = &srv.scripts[i];
	}
	return dflt;
}

static void
srv_acceptcb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
             void *arg)
{
	struct conn *c;
	int one = 1;

	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);

	if (srv.terminating) {
		evutil_closesocket(fd);
		return;
	}
	if (srv.nconns == srv.conns_cap) {
		srv.conns_cap = srv.conns_cap ? srv.conns_cap * 2 : 64;
		if ((srv.conns = realloc(srv.conns, srv.conns_cap * sizeof(*srv.conns))) == NULL)
			die("out of memory");
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("out of memory");
	c->no = ++srv.nconns;
	srv.conns[c->no - 1] = c;
	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    getnameinfo((struct sockaddr *)&local, llen, c->local, sizeof(c->local), NULL, 0,
	                NI_NUMERICHOST) != 0)
		snprintf(c->local, sizeof(c->local), "?");
	serve_event(c, "connect", 0, NULL);
	srv.open++;
	c->fd = fd;
	c->reply_open = 1; /* the greeting is due: the client must wait */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->timer = evtimer_new(srv.base, conn_timercb, c);
	c->bev = bufferevent_socket_new(srv.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->timer == NULL || c->bev == NULL)
		die("libevent allocation failed");
	bufferevent_setcb(c->bev, conn_readcb, NULL, conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (srv.max_conns > 0 && srv.nconns >= srv.max_conns) {
		/* refuse further connections (ECONNREFUSED, not a silent backlog) */
		srv_close_listeners();
	}
	c->sc = srv_script_for(c->no);
	if (c->sc == NULL) {
		static const struct script none;
		c->sc = &none;
		conn_fail(c, "unexpected connection (no script for it)");
		conn_finish(c, NULL);
		return;
	}
	c->strict = c->sc->strict;
	conn_run(c);
}

static void
srv_gracecb(evutil_socket_t fd, short what, void *arg)
{
	srv_stop();
}

static void
srv_sigcb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = {GRACE_MS / 1000, (GRACE_MS % 1000) * 1000};

	if (srv.terminating)
		return;
	srv.terminating = 1;
	srv_close_listeners();
	srv.grace = evtimer_new(srv.base, srv_gracecb, NULL);
	evtimer_add(srv.grace, &tv);
	srv_check_exit();
}

static void
srv_timeoutcb(evutil_socket_t fd, short what, void *arg)
{
	tbuf_printf(&srv.global, "* ! global timeout after %u s\n", srv.timeout_s);
	srv.failures++;
	srv_stop();
}

static int
srv_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

/*
 * "blackhole ADDR": a listening socket on ADDR:port whose accept queue is
 * full (backlog 1, BLACKHOLE_FILL connections of our own never accepted).
 * Linux drops a SYN to a listener with a full accept queue, so a client's
 * connect neither succeeds nor is refused: it times out, on loopback.  The
 * sockets stay open until exit.
 */
static void
srv_blackhole(const char *addr, unsigned port)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss), one = 1, fd;
	struct timeval tv = {2, 0};

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0)
		die("bad blackhole address %s", addr);
	if (!srv_is_loopback(&ss))
		die("%s is not a loopback address; refusing to listen", addr);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 || listen(fd, 1) != 0)
		die("blackhole %s port %u: %s", addr, port, strerror(errno));
	for (int i = 0; i < BLACKHOLE_FILL; i++) {
		int cfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (cfd == -1 || setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
		    connect(cfd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0)
			die("blackhole %s: filling the accept queue: %s", addr, strerror(errno));
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: mxsift-smtpd-script [-a ADDR]... [-p PORT] [-n MAXCONN] "
	                "[-T SECONDS] [-t TRANSCRIPT] [-e EVENTS] SCRIPT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *addrs[MAX_LISTEN], *tfile = NULL, *efile = NULL;
	int naddrs = 0;
	unsigned port = 0, max_conns = 0, timeout_s = 0;
	struct sockaddr_storage ss;
	int sslen, ch;
	struct event *sigterm, *sigint, *tmo;
	struct timeval tv;
	FILE *out;

	while ((ch = getopt(argc, argv, "a:p:n:T:t:e:")) != -1) {
		switch (ch) {
		case 'a':
			if (naddrs == MAX_LISTEN)
				die("at most %d addresses", MAX_LISTEN);
			addrs[naddrs++] = optarg;
			break;
		case 'e': efile = optarg; break;
		case 'p': port = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': max_conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'T': timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': tfile = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || port > 65535)
		usage();
	srv.timeout_s = 30;
	script_load(argv[optind]);
	if (max_conns > 0)
		srv.max_conns = max_conns;
	if (timeout_s > 0)
		srv.timeout_s = timeout_s;
	if (naddrs == 0)
		addrs[naddrs++] = "127.0.0.1";
	if (efile != NULL) {
		if ((srv.events = fopen(efile, "w")) == NULL)
			die("%s: %s", efile, strerror(errno));
		/* line by line: fleet tests read the log while the server runs */
		setvbuf(srv.events, NULL, _IOLBF, 0);
	}
	gettimeofday(&srv.t0, NULL);

	signal(SIGPIPE, SIG_IGN);
	if ((srv.base = event_base_new()) == NULL)
		die("event_base_new failed");
	/* Every address on one port: the first one's (chosen when 0). */
	for (int i = 0; i < naddrs; i++) {
		struct evconnlistener *l;

		memset(&ss, 0, sizeof(ss));
		sslen = sizeof(ss);
		if (evutil_parse_sockaddr_port(addrs[i], (struct sockaddr *)&ss, &sslen) != 0)
			die("bad address %s", addrs[i]);
		if (!srv_is_loopback(&ss))
			die("%s is not a loopback address; refusing to listen", addrs[i]);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		l = evconnlistener_new_bind(srv.base, srv_acceptcb, NULL,
		                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
		                            (struct sockaddr *)&ss, sslen);
		if (l == NULL)
			die("cannot listen on %s port %u: %s", addrs[i], port, strerror(errno));
		srv.lsts[srv.nlsts++] = l;
		if (port == 0) {
			struct sockaddr_storage bound;
			socklen_t blen = sizeof(bound);
			getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen);
			port = ntohs(bound.ss_family == AF_INET
			                 ? ((struct sockaddr_in *)&bound)->sin_port
			                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
		}
	}
	for (int i = 0; i < srv.nblackholes; i++)
		srv_blackhole(srv.blackholes[i], port);
	printf("port %u\n", port);
	fflush(stdout);

	sigterm = evsignal_new(srv.base, SIGTERM, srv_sigcb, NULL);
	sigint = evsignal_new(srv.base, SIGINT, srv_sigcb, NULL);
	tmo = evtimer_new(srv.base, srv_timeoutcb, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	tv.tv_sec = srv.timeout_s;
	tv.tv_usec = 0;
	evtimer_add(tmo, &tv);

	event_base_dispatch(srv.base);

	out = tfile != NULL ? fopen(tfile, "w") : stdout;
	if (out == NULL)
		die("%s: %s", tfile, strerror(errno));
	for (unsigned i = 0; i < srv.nconns; i++) {
		struct conn *c = srv.conns[i];
		if (!c->done) {
			conn_fail(c, "still open when the server stopped");
			conn_finish(c, NULL);
		}
		if (c->log.len > 0)
			fwrite(c->log.p, 1, c->log.len, out);
	}
	if (srv.global.len > 0)
		fwrite(srv.global.p, 1, srv.global.len, out);
	if (srv.events != NULL) {
		fprintf(srv.events, "%lu - - stats connections=%u commands=%lu replies_503=%lu\n",
		        srv_ms(), srv.nconns, srv.commands, srv.replies_503);
		fclose(srv.events);
	}
	if (out != stdout)
		fclose(out);
	else
		fflush(out);
	return srv.failures > 0 ? 1 : 0;
}
