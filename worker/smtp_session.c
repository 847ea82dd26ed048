/*
 * smtp_session.c — the SMTP client state machine behind smtp_session.h.
 *
 * Owns one bufferevent (plain socket, later wrapped by an OpenSSL filter
 * after STARTTLS), one reply reader and one timer.  Every state change goes
 * through smtp_session_state(), which logs "A -> B" and arms the timer from
 * the per-state timeout table.  Commands whose replies are outstanding sit
 * in a small queue (pend[]): its head is the current state, so pipelined
 * replies are matched to their commands one to one, in order.
 *
 * A pipelined group may hold up to SMTP_GROUP_MAX transactions ([RSET]
 * MAIL RCPT, RSET MAIL RCPT): probe_out counts the results still due, and
 * the session is READY only when the last one is delivered.  At most one
 * MAIL refusal is pending at a time (its RCPT reply, read next, delivers
 * it), so one saved reply serves the whole group.
 *
 * Returns results and failures only through the callbacks; diagnostics go
 * to the debug log.  Re-entrancy: every entry from libevent raises a depth
 * counter; smtp_session_free() inside a callback only marks the session
 * dead and the outermost entry frees it on the way out.
 */
#include "smtp_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF;
 * SMTPUTF8 addresses may need more octets, so allow some slack. */
#define SESSION_LINE_MAX 1000
/* A group of SMTP_GROUP_MAX transactions (3 commands each) and a QUIT
 * behind them (a polite failure mid-group). */
#define SESSION_PEND_MAX (3 * SMTP_GROUP_MAX + 1)

static const char *const smtp_state_names[SMTP_S__COUNT] = {
    [SMTP_S_NEW] = "NEW",
    [SMTP_S_CONNECTING] = "CONNECTING",
    [SMTP_S_GREETING] = "GREETING",
    [SMTP_S_EHLO] = "EHLO",
    [SMTP_S_HELO] = "HELO",
    [SMTP_S_STARTTLS] = "STARTTLS",
    [SMTP_S_TLS_HANDSHAKE] = "TLS_HANDSHAKE",
    [SMTP_S_READY] = "READY",
    [SMTP_S_RSET] = "RSET",
    [SMTP_S_MAIL] = "MAIL",
    [SMTP_S_RCPT] = "RCPT",
    [SMTP_S_QUIT] = "QUIT",
    [SMTP_S_CLOSED] = "CLOSED",
};

/* Per-state timeouts (ms); 0 = no timer in that state. */
static const unsigned smtp_state_timeout[SMTP_S__COUNT] = {
    [SMTP_S_CONNECTING] = SMTP_TIMEOUT_CONNECT_MS, [SMTP_S_GREETING] = SMTP_TIMEOUT_GREETING_MS,
    [SMTP_S_EHLO] = SMTP_TIMEOUT_HELO_MS,          [SMTP_S_HELO] = SMTP_TIMEOUT_HELO_MS,
    [SMTP_S_STARTTLS] = SMTP_TIMEOUT_STARTTLS_MS,  [SMTP_S_TLS_HANDSHAKE] = SMTP_TIMEOUT_TLS_MS,
    [SMTP_S_RSET] = SMTP_TIMEOUT_RSET_MS,          [SMTP_S_MAIL] = SMTP_TIMEOUT_MAIL_MS,
    [SMTP_S_RCPT] = SMTP_TIMEOUT_RCPT_MS,          [SMTP_S_QUIT] = SMTP_TIMEOUT_QUIT_MS,
};

/* Which classify stage a reply in a given state belongs to. */
static const enum classify_stage smtp_state_stage[SMTP_S__COUNT] = {
    [SMTP_S_GREETING] = CLASSIFY_GREETING,  [SMTP_S_EHLO] = CLASSIFY_HELO,
    [SMTP_S_HELO] = CLASSIFY_HELO,          [SMTP_S_STARTTLS] = CLASSIFY_HELO,
    [SMTP_S_TLS_HANDSHAKE] = CLASSIFY_HELO, [SMTP_S_READY] = CLASSIFY_MAIL,
    [SMTP_S_RSET] = CLASSIFY_MAIL,          [SMTP_S_MAIL] = CLASSIFY_MAIL,
    [SMTP_S_RCPT] = CLASSIFY_RCPT,          [SMTP_S_QUIT] = CLASSIFY_RCPT,
};

static const char *const smtp_fail_names[] = {
    [SMTP_FAIL_NONE] = "none",         [SMTP_FAIL_CONN] = "conn", [SMTP_FAIL_TIMEOUT] = "timeout",
    [SMTP_FAIL_PROTO] = "proto",       [SMTP_FAIL_RESP] = "resp", [SMTP_FAIL_TLS] = "tls",
    [SMTP_FAIL_INTERNAL] = "internal",
};

/* A reply kept beyond the reader's lifetime (MAIL refusal under
 * pipelining, reported after the RCPT reply was discarded). */
struct saved_reply {
	struct smtp_reply r;
	char text[VERDICT_TEXT_MAX];
};

struct smtp_session {
	struct event_base *base;
	struct smtp_session_cbs cbs;
	void *tag;
	unsigned id;

	char *helo;
	char *mail_from;
	char *host;
	char peer[INET6_ADDRSTRLEN + 16]; /* "[addr]:port" */
	enum smtp_tls_mode tls_mode;
	SSL_CTX *ssl_ctx;
	int own_ctx;
	unsigned timeout[SMTP_S__COUNT];
	struct sockaddr_storage source;
	socklen_t source_len; /* 0 = no source address */

	struct smtp_reply_reader *rd;
	struct bufferevent *bev;
	struct event *timer;
	struct event *defer; /* delivers "closed" outside API calls */

	enum smtp_state state;
	enum smtp_state pend[SESSION_PEND_MAX];
	int npend;
	unsigned long nsent; /* command lines written, ever */

	unsigned ext;
	int tls;
	int tls_tried;
	int ready_sent;
	int need_rset; /* a MAIL was sent: next probe starts with RSET */
	int probe_out; /* results still due for the outstanding probe(s) */
	int pipelined; /* the outstanding probe was pipelined */
	/* The outstanding group's recipients: grp[grp_n - probe_out] is the
	 * one whose result comes next (one at a time without PIPELINING). */
	char grp[SMTP_GROUP_MAX][SESSION_LINE_MAX];
	int grp_utf8[SMTP_GROUP_MAX];
	int grp_n;
	int tls_upgrade; /* 530 to MAIL: STARTTLS once the group's replies are in */
	int tls_redo;    /* STARTTLS for a 530: probe again after the new EHLO */
	int discard_rcpt; /* MAIL refused under pipelining */
	struct saved_reply mail_reply;
	int closing;     /* QUIT sent: discard replies until its 221 */
	int quit_wanted; /* QUIT as soon as nothing is outstanding */
	int broken;      /* timeout, protocol error, refusal: no reuse */
	unsigned rcpts;
	unsigned n503;
	unsigned nreply[6]; /* complete replies by class (first digit; 0 other) */

	int depth; /* nesting of entries from the loop */
	int dead;  /* freed inside a callback: free on exit */
};

static unsigned smtp_session_ids;

static void session_read_cb(struct bufferevent *, void *);
static void session_event_cb(struct bufferevent *, short, void *);
static void session_fail(struct smtp_session *, enum smtp_fail, const struct smtp_reply *,
                         const char *, int);
static void session_abort(struct smtp_session *);

const char *
smtp_state_name(enum smtp_state st)
{
	if ((unsigned)st >= SMTP_S__COUNT)
		return "?";
	return smtp_state_names[st];
}

const char *
smtp_fail_name(enum smtp_fail f)
{
	if ((unsigned)f >= sizeof(smtp_fail_names) / sizeof(smtp_fail_names[0]))
		return "?";
	return smtp_fail_names[f];
}

int
smtp_addr_needs_utf8(const char *addr)
{
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		if (*p >= 0x80)
			return 1;
	return 0;
}

/* No byte of an argument may be a C0 control or DEL: CR and LF would let an
 * address inject commands, the rest confuse receivers. */
static int
session_arg_ok(const char *arg, size_t max)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)arg; *p; p++, n++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return n <= max;
}

void *
smtp_tls_ctx_new(void)
{
	SSL_CTX *ctx;

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	/* Probing needs the server's answer, not its identity: MX
	 * certificates are very often self-signed or for another name. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

void
smtp_tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}

/* ---- lifetime ---------------------------------------------------------- */

static void
session_destroy(struct smtp_session *s)
{
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->defer != NULL)
		event_free(s->defer);
	smtp_reply_reader_free(s->rd);
	if (s->own_ctx)
		SSL_CTX_free(s->ssl_ctx);
	free(s->helo);
	free(s->mail_from);
	free(s->host);
	free(s);
}

static void
session_enter(struct smtp_session *s)
{
	s->depth++;
}

/* Returns 1 if s is gone. */
static int
session_leave(struct smtp_session *s)
{
	if (--s->depth == 0 && s->dead) {
		session_destroy(s);
		return 1;
	}
	return 0;
}

/* 1 when processing must stop: freed by the owner or connection gone. */
static int
session_gone(const struct smtp_session *s)
{
	return s->dead || s->state == SMTP_S_CLOSED;
}

void
smtp_session_free(struct smtp_session *s)
{
	if (s == NULL)
		return;
	if (s->depth > 0) {
		s->dead = 1;
		memset(&s->cbs, 0, sizeof(s->cbs));
		if (s->bev != NULL)
			bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		evtimer_del(s->timer);
		event_del(s->defer);
		return;
	}
	session_destroy(s);
}

static void
session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	char detail[64];

	session_enter(s);
	if (s->state == SMTP_S_QUIT) {
		/* No 221 in time: the polite exit is over either way. */
		session_abort(s);
	} else {
		snprintf(detail, sizeof(detail), "timeout in %s", smtp_state_name(s->state));
		session_fail(s, SMTP_FAIL_TIMEOUT, NULL, detail, 0);
	}
	session_leave(s);
}

static void
session_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	session_enter(s);
	if (s->state == SMTP_S_CLOSED && s->cbs.closed != NULL)
		s->cbs.closed(s->tag, s);
	session_leave(s);
}

struct smtp_session *
smtp_session_new(struct event_base *base, const struct smtp_session_params *p,
                 const struct smtp_session_cbs *cbs, void *tag)
{
	struct smtp_session *s;
	const char *from = p->mail_from != NULL ? p->mail_from : "";

	if (p->helo_name == NULL || *p->helo_name == '\0' || !session_arg_ok(p->helo_name, 255) ||
	    !session_arg_ok(from, 256))
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->cbs = *cbs;
	s->tag = tag;
	s->id = ++smtp_session_ids;
	s->tls_mode = p->tls;
	s->helo = strdup(p->helo_name);
	s->mail_from = strdup(from);
	s->host = strdup(p->host_name != NULL ? p->host_name : "");
	if (p->source != NULL && p->source_len > 0 && p->source_len <= sizeof(s->source)) {
		memcpy(&s->source, p->source, p->source_len);
		s->source_len = p->source_len;
	}
	for (int i = 0; i < SMTP_S__COUNT; i++)
		s->timeout[i] = p->timeout_ms[i] != 0 && smtp_state_timeout[i] != 0
		                    ? p->timeout_ms[i]
		                    : smtp_state_timeout[i];
	s->rd = smtp_reply_reader_new(p->limits.line_max != 0 ? &p->limits : NULL);
	s->timer = evtimer_new(base, session_timer_cb, s);
	s->defer = event_new(base, -1, 0, session_defer_cb, s);
	if (p->ssl_ctx != NULL) {
		s->ssl_ctx = p->ssl_ctx;
	} else if (p->tls == SMTP_TLS_MAY || p->tls == SMTP_TLS_REQUIRE) {
		/* (SMTP_TLS_OFF makes one only if a 530 asks for TLS) */
		s->ssl_ctx = smtp_tls_ctx_new();
		s->own_ctx = 1;
	}
	if (s->helo == NULL || s->mail_from == NULL || s->host == NULL || s->rd == NULL ||
	    s->timer == NULL || s->defer == NULL ||
	    ((p->tls == SMTP_TLS_MAY || p->tls == SMTP_TLS_REQUIRE) && s->ssl_ctx == NULL)) {
		session_destroy(s);
		return NULL;
	}
	s->state = SMTP_S_NEW;
	return s;
}

/* ---- the one transition function ------------------------------------- */

static void
smtp_session_state(struct smtp_session *s, enum smtp_state next)
{
	struct timeval tv;
	unsigned ms;

	log_debug("smtp state", "session=%u host=%s peer=%s transition=\"%s -> %s\"", s->id,
	          s->host, s->peer, smtp_state_name(s->state), smtp_state_name(next));
	s->state = next;
	evtimer_del(s->timer);
	ms = s->timeout[next];
	if (ms != 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(s->timer, &tv);
	}
}

/* ---- output ------------------------------------------------------------ */

/*
 * Queue one command line awaiting reply state st.  The line is formatted
 * here, checked for control characters (defence in depth: arguments were
 * checked already) and written with CRLF.  Returns 0 or -1 (refused).
 */
static int
session_cmd(struct smtp_session *s, struct evbuffer *out, enum smtp_state st, const char *fmt, ...)
{
	char line[SESSION_LINE_MAX + 3];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > SESSION_LINE_MAX || !session_arg_ok(line, SESSION_LINE_MAX) ||
	    s->npend >= SESSION_PEND_MAX) {
		log_error("smtp refused command", "session=%u host=%s", s->id, s->host);
		return -1;
	}
	log_debug("smtp send", "session=%u host=%s line=\"%s\"", s->id, s->host, line);
	memcpy(line + n, "\r\n", 3);
	if (evbuffer_add(out, line, (size_t)n + 2) != 0)
		return -1;
	s->pend[s->npend++] = st;
	s->nsent++;
	if (s->npend == 1)
		smtp_session_state(s, st);
	return 0;
}

/* One command, written at once.  On failure the session fails (internal). */
static int
session_send(struct smtp_session *s, enum smtp_state st, const char *fmt, const char *arg)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (session_cmd(s, out, st, fmt, arg) != 0) {
		session_fail(s, SMTP_FAIL_INTERNAL, NULL, "command refused", 0);
		return -1;
	}
	return 0;
}

static void
session_send_quit(struct smtp_session *s)
{
	s->closing = 1;
	s->quit_wanted = 0;
	if (session_cmd(s, bufferevent_get_output(s->bev), SMTP_S_QUIT, "QUIT") != 0)
		session_abort(s);
}

/* ---- ending ------------------------------------------------------------ */

/* Drop the connection now and report closed (from the loop). */
static void
session_abort(struct smtp_session *s)
{
	if (s->state == SMTP_S_CLOSED)
		return;
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	s->npend = 0;
	smtp_session_state(s, SMTP_S_CLOSED);
	if (s->depth > 0) {
		if (s->cbs.closed != NULL)
			s->cbs.closed(s->tag, s);
	} else {
		event_active(s->defer, 0, 1);
	}
}

/*
 * The session failed.  polite: send QUIT and wait for 221 (the connection
 * is healthy, the server refused us); otherwise drop it.
 */
static void
session_fail(struct smtp_session *s, enum smtp_fail kind, const struct smtp_reply *r,
             const char *detail, int polite)
{
	struct smtp_failure f;

	if (s->state == SMTP_S_CLOSED)
		return;
	memset(&f, 0, sizeof(f));
	f.kind = kind;
	f.state = s->state;
	f.stage = smtp_state_stage[s->state];
	f.reply = r;
	f.detail = detail;
	f.probe_lost = s->probe_out;
	s->probe_out = 0;
	s->broken = 1;
	log_debug("smtp failed",
	          "session=%u host=%s peer=%s state=%s kind=%s code=%d detail=\"%s\"", s->id,
	          s->host, s->peer, smtp_state_name(s->state), smtp_fail_name(kind),
	          r != NULL ? r->code : 0, detail);
	if (s->cbs.failed != NULL)
		s->cbs.failed(s->tag, s, &f);
	if (s->dead)
		return;
	if (polite && s->bev != NULL && !s->closing)
		session_send_quit(s);
	else
		session_abort(s);
}

/* ---- replies ----------------------------------------------------------- */

static int session_send_group(struct smtp_session *, int);

/* Index in grp[] of the transaction whose result comes next. */
static int
session_tx(const struct smtp_session *s)
{
	int i = s->grp_n - s->probe_out;

	return i >= 0 && i < s->grp_n ? i : 0;
}

/* TLS is up after a 530 and EHLO answered: the probes still unanswered go
 * again, in a fresh transaction (EHLO reset the state: no RSET first). */
static void
session_redo(struct smtp_session *s)
{
	int first = session_tx(s);

	s->tls_redo = 0;
	for (int i = first; i < s->grp_n; i++) {
		if (s->grp_utf8[i] && !(s->ext & SMTP_EXT_SMTPUTF8)) {
			session_fail(s, SMTP_FAIL_PROTO, NULL, "SMTPUTF8 not offered after STARTTLS", 1);
			return;
		}
	}
	s->need_rset = 0;
	if (session_send_group(s, first) != 0)
		session_fail(s, SMTP_FAIL_INTERNAL, NULL, "command refused", 0);
}

static void
session_ready(struct smtp_session *s)
{
	/* Nothing is outstanding now: input already waiting is out of turn,
	 * and must not be mistaken for the answer to our first MAIL. */
	if (smtp_reply_pending(s->rd) > 0) {
		session_fail(s, SMTP_FAIL_PROTO, NULL, "input before command was sent", 0);
		return;
	}
	smtp_session_state(s, SMTP_S_READY);
	if (s->quit_wanted) {
		session_send_quit(s);
		return;
	}
	if (s->tls_redo) {
		session_redo(s);
		return;
	}
	if (!s->ready_sent) {
		s->ready_sent = 1;
		if (s->cbs.ready != NULL)
			s->cbs.ready(s->tag, s);
	}
}

static void
session_result(struct smtp_session *s, enum classify_stage stage, const struct smtp_reply *r)
{
	struct smtp_result res;

	if (s->probe_out > 0)
		s->probe_out--;
	/* The rest of a group is still outstanding: the state names the
	 * command whose reply comes next (session_reply set it). */
	if (s->probe_out == 0)
		smtp_session_state(s, SMTP_S_READY);
	res.stage = stage;
	res.reply = r;
	res.more = (unsigned)s->probe_out;
	if (s->cbs.result != NULL)
		s->cbs.result(s->tag, s, &res);
	if (session_gone(s) || s->closing)
		return;
	if (s->quit_wanted && (s->state == SMTP_S_READY || s->npend == 0)) {
		session_send_quit(s); /* results still due are lost: closed tells */
	} else if (s->probe_out > 0 && !s->pipelined && s->npend == 0) {
		/* A group redone without PIPELINING (it was withdrawn after
		 * STARTTLS): its next transaction, now. */
		if (session_send_group(s, session_tx(s)) != 0)
			session_fail(s, SMTP_FAIL_INTERNAL, NULL, "command refused", 0);
	}
}

static void
session_start_tls(struct smtp_session *s)
{
	struct bufferevent *f;
	SSL *ssl;
	struct in6_addr a6;

	/* Anything that followed the 220 was sent in plaintext before the
	 * handshake: accepting it would let an attacker inject replies. */
	if (smtp_reply_pending(s->rd) > 0 ||
	    evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		session_fail(s, SMTP_FAIL_PROTO, NULL, "input after 220 to STARTTLS", 0);
		return;
	}
	if (s->ssl_ctx == NULL && (s->ssl_ctx = smtp_tls_ctx_new()) != NULL)
		s->own_ctx = 1;
	if (s->ssl_ctx == NULL || (ssl = SSL_new(s->ssl_ctx)) == NULL) {
		session_fail(s, SMTP_FAIL_TLS, NULL, "SSL_new failed", 0);
		return;
	}
	if (*s->host != '\0' && inet_pton(AF_INET6, s->host, &a6) != 1 &&
	    inet_pton(AF_INET, s->host, &a6) != 1)
		SSL_set_tlsext_host_name(ssl, s->host);
	f = bufferevent_openssl_filter_new(s->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (f == NULL) {
		SSL_free(ssl);
		session_fail(s, SMTP_FAIL_TLS, NULL, "TLS filter failed", 0);
		return;
	}
	s->bev = f;
	bufferevent_setcb(f, session_read_cb, NULL, session_event_cb, s);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	smtp_session_state(s, SMTP_S_TLS_HANDSHAKE);
}

/* Greeting, EHLO or HELO done: STARTTLS, or ready. */
static void
session_after_hello(struct smtp_session *s)
{
	if (!s->tls && !s->tls_tried &&
	    (s->tls_mode == SMTP_TLS_MAY || s->tls_mode == SMTP_TLS_REQUIRE) &&
	    (s->ext & SMTP_EXT_STARTTLS)) {
		s->tls_tried = 1;
		session_send(s, SMTP_S_STARTTLS, "STARTTLS%s", "");
		return;
	}
	if (!s->tls && s->tls_mode == SMTP_TLS_REQUIRE) {
		session_fail(s, SMTP_FAIL_TLS, NULL, "STARTTLS not offered", 1);
		return;
	}
	session_ready(s);
}

static void
session_save_reply(struct saved_reply *dst, const struct smtp_reply *r)
{
	size_t n = r->text_len < sizeof(dst->text) - 1 ? r->text_len : sizeof(dst->text) - 1;

	dst->r = *r;
	memcpy(dst->text, r->text, n);
	dst->text[n] = '\0';
	dst->r.text = dst->text;
	dst->r.text_len = n;
}

/*
 * A 530 to MAIL in plaintext that is about TLS (RFC 3207: "530 5.7.0 Must
 * issue a STARTTLS command first"): STARTTLS is advertised, or the text
 * names it.  Any other 530 (RFC 4954's "Authentication required", a 530
 * over TLS) is a refusal like another: classified, blocked.
 */
static int
session_tls_demanded(const struct smtp_session *s, const struct smtp_reply *r)
{
	return r->code == 530 && !s->tls &&
	       ((s->ext & SMTP_EXT_STARTTLS) || (r->text != NULL && strcasestr(r->text, "STARTTLS")));
}

/*
 * The server will not go on in plaintext.  When STARTTLS is advertised and
 * was not tried on this connection (and the owner did not rule TLS out:
 * SMTP_TLS_NEVER), upgrade once every reply of the group is in, EHLO again
 * and send the transactions still unanswered, as if nothing had happened:
 * no result for the 530.  Otherwise TLS cannot be had here (refused or
 * broken before, not offered): the session fails (TLS, with the 530), so
 * every result still due is lost with a TLS reason, politely.
 */
static void
session_530(struct smtp_session *s, const struct smtp_reply *r)
{
	if ((s->ext & SMTP_EXT_STARTTLS) && !s->tls_tried && s->tls_mode != SMTP_TLS_NEVER) {
		log_debug("smtp tls demanded", "session=%u host=%s code=%d", s->id, s->host, r->code);
		s->tls_upgrade = 1;
		s->discard_rcpt = 0;
		return;
	}
	session_fail(s, SMTP_FAIL_TLS, r, "530: TLS required and not available", 1);
}

static void
session_reply(struct smtp_session *s, const struct smtp_reply *r)
{
	enum smtp_state head;
	int ok = r->code >= 200 && r->code < 300;

	log_debug("smtp reply", "session=%u host=%s state=%s code=%d enhanced=%s lines=%d", s->id,
	          s->host, smtp_state_name(s->state), r->code,
	          r->enhanced[0] != '\0' ? r->enhanced : "-", r->nlines);
	if (r->code == 503)
		s->n503++;
	s->nreply[r->code >= 200 && r->code < 600 ? r->code / 100 : 0]++;
	if (s->npend == 0) {
		if (r->code == 421)
			session_fail(s, SMTP_FAIL_RESP, r, "421 while idle", 0);
		else
			session_fail(s, SMTP_FAIL_PROTO, NULL, "reply with nothing outstanding", 0);
		return;
	}
	head = s->pend[0];
	if (s->closing) {
		/* Replies to what was outstanding before QUIT; only QUIT's
		 * answer matters. */
		memmove(s->pend, s->pend + 1, sizeof(s->pend[0]) * (size_t)--s->npend);
		if (head == SMTP_S_QUIT)
			session_abort(s);
		else if (s->npend > 0)
			smtp_session_state(s, s->pend[0]);
		return;
	}
	if (r->code == 421) {
		/* The peer is closing the connection: send nothing more. */
		session_fail(s, SMTP_FAIL_RESP, r, "421 service closing", 0);
		return;
	}
	/*
	 * A 503 to MAIL, or to a RCPT whose MAIL was accepted, means the
	 * server's idea of the transaction is not ours.  The reply is well
	 * formed, so the address gets its verdict (protocol_error) and the
	 * session ends politely once what is outstanding is answered; but
	 * it is not reused: on a session out of step, the next recipient's
	 * answer could be anybody's.  (A 503 to a RCPT behind a refused
	 * MAIL is that refusal's echo, and discarded.)
	 */
	if (r->code == 503 && !s->tls_upgrade &&
	    (head == SMTP_S_MAIL || (head == SMTP_S_RCPT && !s->discard_rcpt)))
		s->quit_wanted = 1;
	memmove(s->pend, s->pend + 1, sizeof(s->pend[0]) * (size_t)--s->npend);
	if (s->npend > 0)
		smtp_session_state(s, s->pend[0]);

	switch (head) {
	case SMTP_S_GREETING:
		if (ok)
			session_send(s, SMTP_S_EHLO, "EHLO %s", s->helo);
		else
			session_fail(s, SMTP_FAIL_RESP, r, "greeting refused", 1);
		break;
	case SMTP_S_EHLO:
		if (ok) {
			s->ext = smtp_ehlo_extensions(r);
			session_after_hello(s);
		} else if (r->code == 500 || r->code == 502) {
			session_send(s, SMTP_S_HELO, "HELO %s", s->helo);
		} else {
			session_fail(s, SMTP_FAIL_RESP, r, "EHLO refused", 1);
		}
		break;
	case SMTP_S_HELO:
		if (ok) {
			s->ext = 0;
			session_after_hello(s);
		} else {
			session_fail(s, SMTP_FAIL_RESP, r, "HELO refused", 1);
		}
		break;
	case SMTP_S_STARTTLS:
		if (r->code == 220)
			session_start_tls(s);
		else if (s->tls_mode == SMTP_TLS_REQUIRE)
			session_fail(s, SMTP_FAIL_TLS, r, "STARTTLS refused", 1);
		else if (s->tls_redo)
			session_fail(s, SMTP_FAIL_TLS, r, "STARTTLS refused after 530", 1);
		else
			session_ready(s); /* opportunistic: go on in plaintext */
		break;
	case SMTP_S_RSET:
		if (s->tls_upgrade) {
			/* a later transaction of a group being redone over TLS */
		} else if (!ok) {
			session_fail(s, SMTP_FAIL_RESP, r, "RSET refused", 1);
		} else if (!s->pipelined) {
			session_send(s, SMTP_S_MAIL,
			             s->grp_utf8[session_tx(s)] ? "MAIL FROM:<%s> SMTPUTF8"
			                                        : "MAIL FROM:<%s>",
			             s->mail_from);
		}
		break;
	case SMTP_S_MAIL:
		if (s->tls_upgrade) {
			/* idem */
		} else if (ok) {
			if (!s->pipelined) {
				s->rcpts++;
				session_send(s, SMTP_S_RCPT, "RCPT TO:<%s>", s->grp[session_tx(s)]);
			}
		} else if (session_tls_demanded(s, r)) {
			session_530(s, r);
		} else if (s->pipelined) {
			/* RCPT was sent already; its reply means nothing now. */
			session_save_reply(&s->mail_reply, r);
			s->discard_rcpt = 1;
		} else {
			session_result(s, CLASSIFY_MAIL, r);
		}
		break;
	case SMTP_S_RCPT:
		if (s->tls_upgrade) {
			/* answers a MAIL refused with 530: meaningless */
			s->discard_rcpt = 0;
		} else if (s->discard_rcpt) {
			s->discard_rcpt = 0;
			session_result(s, CLASSIFY_MAIL, &s->mail_reply.r);
		} else {
			session_result(s, CLASSIFY_RCPT, r);
		}
		break;
	case SMTP_S_QUIT: /* only reached when closing */
	default: session_fail(s, SMTP_FAIL_INTERNAL, NULL, "reply in unexpected state", 0); break;
	}
	/* Every reply of the group that met a 530 is in: upgrade now. */
	if (s->tls_upgrade && s->npend == 0 && !session_gone(s) && !s->closing) {
		s->tls_upgrade = 0;
		s->tls_redo = 1;
		s->tls_tried = 1;
		session_send(s, SMTP_S_STARTTLS, "STARTTLS%s", "");
	}
}

static void
session_read(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct smtp_reply r;
	enum smtp_reply_rc rc;
	unsigned long sent;
	size_t n;
	int extra;

	while ((n = evbuffer_get_contiguous_space(in)) > 0) {
		const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);

		if (smtp_reply_feed(s->rd, p, n) != 0) {
			evbuffer_drain(in, evbuffer_get_length(in));
			session_fail(s, SMTP_FAIL_PROTO, NULL,
			             smtp_reply_error(s->rd) != NULL ? smtp_reply_error(s->rd)
			                                             : "reply too large",
			             0);
			return;
		}
		evbuffer_drain(in, n);
	}
	while (!session_gone(s)) {
		rc = smtp_reply_get(s->rd, &r);
		if (rc == SMTP_REPLY_NONE)
			break;
		if (rc == SMTP_REPLY_ERROR) {
			session_fail(s, SMTP_FAIL_PROTO, NULL,
			             smtp_reply_error(s->rd) != NULL ? smtp_reply_error(s->rd)
			                                             : "bad reply",
			             0);
			return;
		}
		extra = smtp_reply_pending(s->rd) > 0;
		/*
		 * More input behind the last reply we wait for in a
		 * transaction: the server sent more replies than we sent
		 * commands, so matching in order would pair this reply with
		 * a command it does not answer (a second 250 to MAIL taken
		 * for RCPT's: a false "accepted", the real RCPT answer still
		 * unread).  Refuse it before it becomes a result.  An
		 * unsolicited 421 behind a complete reply is the server
		 * closing: the reply stands, the 421 ends the session below.
		 */
		if (extra && s->npend == 1 && !s->closing &&
		    (s->pend[0] == SMTP_S_RSET || s->pend[0] == SMTP_S_MAIL ||
		     s->pend[0] == SMTP_S_RCPT) &&
		    smtp_reply_pending_code(s->rd) != 421) {
			session_fail(s, SMTP_FAIL_PROTO, NULL, "more replies than commands", 0);
			return;
		}
		sent = s->nsent;
		session_reply(s, &r);
		if (session_gone(s) || s->closing)
			return;
		/*
		 * Input beyond the replies we were waiting for: either the
		 * server answered a command before we sent it (a desync that
		 * would shift every later reply onto the wrong command) or it
		 * talks out of turn.  Either way nothing after it can be
		 * trusted.
		 */
		if (extra && (s->nsent != sent || s->npend == 0)) {
			session_fail(s, SMTP_FAIL_PROTO, NULL, "input before command was sent", 0);
			return;
		}
	}
	if (!session_gone(s) && !s->closing && s->npend == 0 && s->state != SMTP_S_TLS_HANDSHAKE &&
	    smtp_reply_pending(s->rd) > 0)
		session_fail(s, SMTP_FAIL_PROTO, NULL, "input with nothing outstanding", 0);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	session_enter(s);
	if (!session_gone(s))
		session_read(s);
	session_leave(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char detail[160];
	unsigned long e;
	int err = EVUTIL_SOCKET_ERROR();

	session_enter(s);
	if (session_gone(s))
		goto out;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == SMTP_S_CONNECTING) {
			s->pend[0] = SMTP_S_GREETING;
			s->npend = 1;
			smtp_session_state(s, SMTP_S_GREETING);
		} else if (s->state == SMTP_S_TLS_HANDSHAKE) {
			/* Forget everything learned in plaintext. */
			s->tls = 1;
			s->ext = 0;
			smtp_reply_reset(s->rd);
			log_debug("smtp tls", "session=%u host=%s version=%s", s->id, s->host,
			          SSL_get_version(bufferevent_openssl_get_ssl(s->bev)));
			session_send(s, SMTP_S_EHLO, "EHLO %s", s->helo);
		}
		goto out;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* Deliver whatever complete replies arrived before the end. */
		if (what & BEV_EVENT_EOF) {
			session_read(s);
			if (session_gone(s))
				goto out;
		}
		if (s->closing) {
			session_abort(s);
		} else if (s->state == SMTP_S_TLS_HANDSHAKE) {
			e = s->bev != NULL ? bufferevent_get_openssl_error(s->bev) : 0;
			if (e != 0)
				ERR_error_string_n(e, detail, sizeof(detail));
			else
				snprintf(detail, sizeof(detail), "TLS handshake failed");
			session_fail(s, SMTP_FAIL_TLS, NULL, detail, 0);
		} else if (s->state == SMTP_S_CONNECTING) {
			snprintf(detail, sizeof(detail), "connect: %s",
			         err != 0 ? evutil_socket_error_to_string(err) : "failed");
			session_fail(s, SMTP_FAIL_CONN, NULL, detail, 0);
		} else if (what & BEV_EVENT_EOF) {
			session_fail(s, SMTP_FAIL_CONN, NULL, "connection closed by peer", 0);
		} else {
			snprintf(detail, sizeof(detail), "socket: %s",
			         err != 0 ? evutil_socket_error_to_string(err) : "error");
			session_fail(s, SMTP_FAIL_CONN, NULL, detail, 0);
		}
	}
out:
	session_leave(s);
}

/* ---- public calls -------------------------------------------------------- */

/* A non-blocking socket bound to the source address (any port), or -1
 * with errno. */
static evutil_socket_t
session_bound_socket(struct smtp_session *s)
{
	evutil_socket_t fd;
	int e;

	fd = socket(s->source.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
#ifdef IP_BIND_ADDRESS_NO_PORT
	/* Pick the port at connect(), per destination: without this every
	 * connection from one source address takes an ephemeral port of its
	 * own, whatever the peer, and a busy worker runs out of them. */
	{
		int one = 1;

		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	}
#endif
	if (bind(fd, (struct sockaddr *)&s->source, s->source_len) == -1) {
		e = errno;
		log_debug("smtp bind failed", "session=%u host=%s error=\"%s\"", s->id, s->host,
		          strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
smtp_session_connect(struct smtp_session *s, const struct sockaddr *sa, socklen_t salen)
{
	char addr[INET6_ADDRSTRLEN], port[8];

	evutil_socket_t fd = -1;

	if (s->state != SMTP_S_NEW)
		return -1;
	if (s->source_len > 0) {
		/* Our own socket, bound before connect: the source address
		 * the receiver sees (and judges our reputation by). */
		if (sa->sa_family != s->source.ss_family) {
			errno = EAFNOSUPPORT;
			return -1;
		}
		if ((fd = session_bound_socket(s)) == -1)
			return -1;
	}
	if (getnameinfo(sa, salen, addr, sizeof(addr), port, sizeof(port),
	                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(s->peer, sizeof(s->peer), "%s%s%s:%s",
		         sa->sa_family == AF_INET6 ? "[" : "", addr,
		         sa->sa_family == AF_INET6 ? "]" : "", port);
	/* Deferred callbacks: nothing reaches the owner from inside this call. */
	s->bev =
	    bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL) {
		if (fd != -1)
			evutil_closesocket(fd);
		return -1;
	}
	bufferevent_setcb(s->bev, session_read_cb, NULL, session_event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	smtp_session_state(s, SMTP_S_CONNECTING);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)sa, (int)salen) != 0) {
		bufferevent_free(s->bev);
		s->bev = NULL;
		evtimer_del(s->timer);
		s->state = SMTP_S_NEW;
		return -1;
	}
	return 0;
}

/* Can rcpt be probed on s?  SMTP_PROBE_STARTED when it can; *utf8 says
 * whether its transaction needs MAIL FROM ... SMTPUTF8. */
static enum smtp_probe_rc
session_rcpt_ok(const struct smtp_session *s, const char *rcpt, int *utf8)
{
	if (*rcpt == '\0' || !session_arg_ok(rcpt, sizeof(s->grp[0]) - 16))
		return SMTP_PROBE_BAD_ARG;
	*utf8 = smtp_addr_needs_utf8(rcpt) || smtp_addr_needs_utf8(s->mail_from);
	if (*utf8 && !(s->ext & SMTP_EXT_SMTPUTF8))
		return SMTP_PROBE_SMTPUTF8_UNSUPPORTED;
	return SMTP_PROBE_STARTED;
}

enum smtp_probe_rc
smtp_session_probe(struct smtp_session *s, const char *rcpt)
{
	return smtp_session_probe_group(s, &rcpt, 1);
}

/*
 * Send the transactions grp[first..grp_n-1]: with PIPELINING all in one
 * write (replies matched in order), without it only the first (the others
 * follow one by one as results come: session_result).  Returns 0, or -1
 * when a command was refused (nothing written).
 */
static int
session_send_group(struct smtp_session *s, int first)
{
	struct evbuffer *batch;
	int rc = 0;

	s->pipelined = (s->ext & SMTP_EXT_PIPELINING) != 0;
	s->discard_rcpt = 0;
	if (s->pipelined) {
		/*
		 * Every transaction of the group in one write; replies are
		 * matched in order.  RFC 2920 3.1: RSET, MAIL and RCPT may
		 * appear anywhere in a group, so a second transaction need
		 * not wait for the first one's answers.
		 */
		if ((batch = evbuffer_new()) == NULL)
			return -1;
		for (int i = first; i < s->grp_n; i++) {
			if (s->need_rset || i > first)
				rc |= session_cmd(s, batch, SMTP_S_RSET, "RSET");
			rc |= session_cmd(s, batch, SMTP_S_MAIL,
			                  s->grp_utf8[i] ? "MAIL FROM:<%s> SMTPUTF8" : "MAIL FROM:<%s>",
			                  s->mail_from);
			rc |= session_cmd(s, batch, SMTP_S_RCPT, "RCPT TO:<%s>", s->grp[i]);
		}
		if (rc != 0) {
			/* Nothing was written: forget what was queued. */
			evbuffer_free(batch);
			s->nsent -= (unsigned long)s->npend;
			s->npend = 0;
			smtp_session_state(s, SMTP_S_READY);
			return -1;
		}
		bufferevent_write_buffer(s->bev, batch);
		evbuffer_free(batch);
		s->rcpts += (unsigned)(s->grp_n - first);
	} else {
		if (s->need_rset)
			rc = session_cmd(s, bufferevent_get_output(s->bev), SMTP_S_RSET, "RSET");
		else
			rc = session_cmd(s, bufferevent_get_output(s->bev), SMTP_S_MAIL,
			                 s->grp_utf8[first] ? "MAIL FROM:<%s> SMTPUTF8"
			                                    : "MAIL FROM:<%s>",
			                 s->mail_from);
		if (rc != 0)
			return -1;
	}
	s->need_rset = 1;
	return 0;
}

enum smtp_probe_rc
smtp_session_probe_group(struct smtp_session *s, const char *const *rcpts, size_t n)
{
	enum smtp_probe_rc prc;
	int utf8[SMTP_GROUP_MAX];

	if (s->state != SMTP_S_READY || s->npend != 0 || s->closing || s->quit_wanted || s->dead)
		return SMTP_PROBE_BUSY;
	if (n == 0 || n > SMTP_GROUP_MAX || (n > 1 && !(s->ext & SMTP_EXT_PIPELINING)))
		return SMTP_PROBE_BAD_ARG;
	/* Every recipient is checked before anything is written: a group
	 * goes out whole or not at all. */
	for (size_t i = 0; i < n; i++) {
		if ((prc = session_rcpt_ok(s, rcpts[i], &utf8[i])) != SMTP_PROBE_STARTED)
			return prc;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(s->grp[i], sizeof(s->grp[i]), "%s", rcpts[i]);
		s->grp_utf8[i] = utf8[i];
	}
	s->grp_n = (int)n;
	if (session_send_group(s, 0) != 0)
		return SMTP_PROBE_BAD_ARG;
	s->probe_out = (int)n;
	return SMTP_PROBE_STARTED;
}

void
smtp_session_quit(struct smtp_session *s)
{
	switch (s->state) {
	case SMTP_S_NEW:
	case SMTP_S_CONNECTING:
		/* Nothing said yet: just drop, report closed from the loop. */
		if (s->bev != NULL) {
			bufferevent_free(s->bev);
			s->bev = NULL;
		}
		smtp_session_state(s, SMTP_S_CLOSED);
		event_active(s->defer, 0, 1);
		break;
	case SMTP_S_READY:
		if (!s->closing)
			session_send_quit(s);
		break;
	case SMTP_S_QUIT:
	case SMTP_S_CLOSED: break;
	default:
		/* Commands outstanding: QUIT once they are answered. */
		s->quit_wanted = 1;
		break;
	}
}

enum smtp_state
smtp_session_get_state(const struct smtp_session *s)
{
	return s->state;
}

int
smtp_session_reusable(const struct smtp_session *s)
{
	return s->state == SMTP_S_READY && !s->broken && !s->closing && !s->quit_wanted && !s->dead;
}

int
smtp_session_tls(const struct smtp_session *s)
{
	return s->tls;
}

unsigned
smtp_session_extensions(const struct smtp_session *s)
{
	return s->ext;
}

unsigned
smtp_session_rcpts(const struct smtp_session *s)
{
	return s->rcpts;
}

unsigned
smtp_session_503s(const struct smtp_session *s)
{
	return s->n503;
}

unsigned
smtp_session_replies(const struct smtp_session *s, int cls)
{
	return cls >= 0 && cls < 6 ? s->nreply[cls] : 0;
}

const char *
smtp_session_peer(const struct smtp_session *s)
{
	return s->peer;
}

void *
smtp_session_tag(const struct smtp_session *s)
{
	return s->tag;
}
