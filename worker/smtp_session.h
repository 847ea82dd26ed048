/*
 * smtp_session.h — one SMTP client connection used to probe recipients.
 *
 * A session is an opaque protocol object: the caller gives it a params
 * struct (EHLO name, reverse path, TLS mode, per-state timeouts, reply
 * limits) and a set of callbacks carrying a void *tag, then connects it to
 * one socket address.  It never knows about lanes, Kafka, Redis or files.
 *
 * Dialogue (never DATA):
 *   connect -> greeting (complete, possibly multi-line) -> EHLO
 *   [-> HELO only after 500/502 to EHLO]
 *   [-> STARTTLS -> TLS handshake -> EHLO again, old capabilities forgotten]
 *   -> ready -> probe: [RSET ->] MAIL FROM:<sender> -> RCPT TO:<addr> -> ready
 *   [MAIL -> 530 -> STARTTLS -> TLS -> EHLO -> MAIL -> RCPT: see smtp_tls_mode]
 *   ... -> QUIT -> 221 -> closed.
 * The first probe of a session is MAIL+RCPT; every later probe begins with
 * RSET, so each RCPT is its own transaction.  With PIPELINING advertised
 * the commands of one probe go in one write and the replies are matched to
 * them one to one, in order; without it, strictly one command per reply.
 * A MAIL failure under pipelining makes the RCPT reply meaningless: it is
 * read and discarded, and the result is the MAIL reply (stage MAIL).
 * With PIPELINING a group may carry several probes, each its own
 * transaction ([RSET] MAIL RCPT, RSET MAIL RCPT: RFC 2920 lets RSET, MAIL
 * and RCPT appear anywhere in a group), all in one write: one round trip
 * for all of them.  Their results come one by one, in order; the session
 * is READY again after the last.  The rules above hold per transaction: a
 * refused MAIL voids only its own RCPT's reply, and a 421 anywhere ends the
 * session with every result still due lost (failed, probe_lost).
 *
 * Replies are processed only when complete (smtp_reply reader).  Input that
 * arrives when nothing is outstanding is a protocol error; a 421 at any
 * point ends the session at once (the peer is closing), without sending
 * anything more.  Every command line is checked: an argument containing
 * CR, LF or another control character is refused and never written.
 *
 * Failure classes (few, on purpose): CONN (refused, reset, EOF), TIMEOUT,
 * PROTO (unparseable or unexpected input), RESP (the server refused us:
 * greeting 554, EHLO/HELO rejected, RSET refused, 421), TLS, INTERNAL.
 * Two exits: a polite one (QUIT, wait for 221, bounded by the QUIT
 * timeout) for a healthy connection, and an abort (drop the socket now) for
 * broken connections, timeouts and protocol errors.  A session that saw a
 * timeout or protocol error is never reusable.
 *
 * Callbacks are only ever invoked from the event loop, never from inside a
 * smtp_session_*() call.  smtp_session_free() may be called from inside any
 * callback: the free is deferred until the callback returns.
 *
 * Debug logging: every state change as "A -> B", every command sent and
 * every reply received (code only, plus first line of text).
 */
#ifndef MXSIFT_SMTP_SESSION_H
#define MXSIFT_SMTP_SESSION_H

#include <stddef.h>
#include <sys/socket.h>

#include "classify.h"
#include "smtp_reply.h"

struct event_base;
struct smtp_session;

/* States; the table of names is smtp_state_name().  While replies are
 * outstanding the state names the command whose reply comes next. */
enum smtp_state {
	SMTP_S_NEW = 0,
	SMTP_S_CONNECTING,
	SMTP_S_GREETING,
	SMTP_S_EHLO,
	SMTP_S_HELO,
	SMTP_S_STARTTLS,
	SMTP_S_TLS_HANDSHAKE,
	SMTP_S_READY, /* idle, may probe */
	SMTP_S_RSET,
	SMTP_S_MAIL,
	SMTP_S_RCPT,
	SMTP_S_QUIT,
	SMTP_S_CLOSED,
	SMTP_S__COUNT
};

/*
 * Default timeouts in milliseconds, per state (RFC 5321 4.5.3.2 gives 5
 * minutes for the greeting and MAIL, 5 for RCPT; a verifier that waits that
 * long per address never finishes a list, so these are shorter but still
 * generous for slow, tarpitting receivers):
 *   CONNECTING 30 s, GREETING 60 s, EHLO/HELO 60 s, STARTTLS 60 s,
 *   TLS_HANDSHAKE 30 s, RSET 30 s, MAIL 60 s, RCPT 60 s, QUIT 10 s.
 * READY has no timeout in the session: the owner decides how long an idle
 * session lives.
 */
#define SMTP_TIMEOUT_CONNECT_MS 30000u
#define SMTP_TIMEOUT_GREETING_MS 60000u
#define SMTP_TIMEOUT_HELO_MS 60000u
#define SMTP_TIMEOUT_STARTTLS_MS 60000u
#define SMTP_TIMEOUT_TLS_MS 30000u
#define SMTP_TIMEOUT_RSET_MS 30000u
#define SMTP_TIMEOUT_MAIL_MS 60000u
#define SMTP_TIMEOUT_RCPT_MS 60000u
#define SMTP_TIMEOUT_QUIT_MS 10000u

/*
 * TLS modes.  A 530 to MAIL in plaintext (RFC 3207: "Must issue a STARTTLS
 * command first") with STARTTLS advertised and not yet tried on the
 * connection is answered with STARTTLS, EHLO again, and the unanswered
 * transactions sent again: the owner sees only their results.  Under MAY
 * and REQUIRE TLS is already up (or was tried: refused, so no second try)
 * by then; under OFF this is the only way TLS starts.  A 530 that cannot be
 * met (tried already, not offered but named in the text, NEVER) fails the
 * session (SMTP_FAIL_TLS with the 530).  A 530 that is not about TLS (over
 * TLS, or RFC 4954's authentication required) is an ordinary refusal.
 */
enum smtp_tls_mode {
	SMTP_TLS_MAY = 0, /* STARTTLS when advertised; plaintext otherwise */
	SMTP_TLS_REQUIRE, /* fail (SMTP_FAIL_TLS) unless TLS is established */
	SMTP_TLS_OFF,     /* no STARTTLS unless the server demands it (530) */
	SMTP_TLS_NEVER    /* no STARTTLS at all: a plaintext retry after a failed
	                     handshake, where a 530 is SMTP_FAIL_TLS */
};

struct smtp_session_params {
	const char *helo_name; /* EHLO/HELO argument (required) */
	const char *mail_from; /* reverse path; NULL or "" = <> */
	const char *host_name; /* peer's host name: logs, SNI; may be NULL */
	enum smtp_tls_mode tls;
	void *ssl_ctx;                      /* SSL_CTX * to use (borrowed), or NULL: the
	                                       session makes its own (verify none) */
	unsigned timeout_ms[SMTP_S__COUNT]; /* 0 = default above */
	struct smtp_reply_limits limits;    /* zeros = smtp_reply defaults */
	/* Source address (port 0) to bind before connecting, or NULL: the
	 * kernel picks.  Copied.  smtp_session_connect() refuses a peer of
	 * another address family (-1, errno EAFNOSUPPORT). */
	const struct sockaddr *source;
	socklen_t source_len;
};

enum smtp_fail {
	SMTP_FAIL_NONE = 0,
	SMTP_FAIL_CONN,
	SMTP_FAIL_TIMEOUT,
	SMTP_FAIL_PROTO,
	SMTP_FAIL_RESP,
	SMTP_FAIL_TLS,
	SMTP_FAIL_INTERNAL
};

/* Why a session ended badly.  Valid only during the callback. */
struct smtp_failure {
	enum smtp_fail kind;
	enum smtp_state state;          /* state in which it happened */
	enum classify_stage stage;      /* stage of reply (when reply != NULL) */
	const struct smtp_reply *reply; /* the reply that ended it, or NULL */
	const char *detail;             /* short human text */
	int probe_lost;                 /* results of probes lost (0 = none) */
};

/* The answer to one probe.  Valid only during the callback. */
struct smtp_result {
	enum classify_stage stage; /* CLASSIFY_RCPT, or CLASSIFY_MAIL when
	                              MAIL was refused (RCPT not answered) */
	const struct smtp_reply *reply;
	unsigned more; /* results of the same group still due: the session
	                  is not READY until they are delivered */
};

struct smtp_session_cbs {
	/* Called once, when greeting, EHLO/HELO (and TLS) are done: the
	 * session may probe.  Not called again after results: a result leaves
	 * the session READY and the owner may probe at once. */
	void (*ready)(void *tag, struct smtp_session *s);
	/* One probe answered; the session is READY again unless r->more. */
	void (*result)(void *tag, struct smtp_session *s, const struct smtp_result *r);
	/* The session failed; it is now closing (QUIT) or closed.  closed
	 * follows. */
	void (*failed)(void *tag, struct smtp_session *s, const struct smtp_failure *f);
	/* The connection is gone (after QUIT/221, abort, or failure).  The
	 * last callback; the owner usually frees the session here. */
	void (*closed)(void *tag, struct smtp_session *s);
};

/*
 * Create a session.  params and its strings are copied.  Returns NULL when
 * params are unusable (helo_name or mail_from containing controls, ...).
 */
struct smtp_session *smtp_session_new(struct event_base *base,
                                      const struct smtp_session_params *params,
                                      const struct smtp_session_cbs *cbs, void *tag);
/* Free now; no callback fires afterwards.  Safe inside callbacks (deferred).
 * A live connection is dropped without QUIT: use smtp_session_quit() first
 * for a polite end. */
void smtp_session_free(struct smtp_session *s);

/* Connect to sa (port included), from params.source when set.  Returns 0
 * (progress reported through the callbacks) or -1 with errno (nothing
 * happened, no callback will fire): EAFNOSUPPORT when sa's family is not
 * the source's, bind(2)'s errno when the source cannot be bound. */
int smtp_session_connect(struct smtp_session *s, const struct sockaddr *sa, socklen_t salen);

enum smtp_probe_rc {
	SMTP_PROBE_STARTED = 0,          /* result or failed callback follows */
	SMTP_PROBE_SMTPUTF8_UNSUPPORTED, /* address needs SMTPUTF8, server did not
	                                    offer it: nothing was sent */
	SMTP_PROBE_BAD_ARG,              /* CR/LF/control char or too long: refused */
	SMTP_PROBE_BUSY                  /* not READY */
};
/* Probe one recipient (address without angle brackets). */
enum smtp_probe_rc smtp_session_probe(struct smtp_session *s, const char *rcpt);

/* Most probes in one pipelined group. */
#define SMTP_GROUP_MAX 2
/*
 * Probe n recipients (1..SMTP_GROUP_MAX), each in its own transaction, in
 * one pipelined group; n > 1 needs PIPELINING (else SMTP_PROBE_BAD_ARG).
 * Every recipient is checked first and nothing is sent unless all pass
 * (the rc is then the first refusal's).  On SMTP_PROBE_STARTED n results
 * follow, in order (or a failure with probe_lost = the results still due).
 */
enum smtp_probe_rc smtp_session_probe_group(struct smtp_session *s, const char *const *rcpts,
                                            size_t n);

/* Polite end: QUIT and wait for 221 (bounded), then closed.  From READY (or
 * before the session is ready: then the connection is simply dropped). */
void smtp_session_quit(struct smtp_session *s);

enum smtp_state smtp_session_get_state(const struct smtp_session *s);
const char *smtp_state_name(enum smtp_state st);
const char *smtp_fail_name(enum smtp_fail f);
/* 1 if READY and no timeout/protocol error/refusal was ever seen. */
int smtp_session_reusable(const struct smtp_session *s);
int smtp_session_tls(const struct smtp_session *s);             /* 1 if TLS is up */
unsigned smtp_session_extensions(const struct smtp_session *s); /* SMTP_EXT_* */
unsigned smtp_session_rcpts(const struct smtp_session *s);      /* RCPTs sent */
unsigned smtp_session_503s(const struct smtp_session *s);       /* 503s received */
/* Complete replies read, of class cls (the first digit 2..5; 0 = any other
 * code), every reply counted: greeting, EHLO, RSET, MAIL, RCPT, QUIT. */
unsigned smtp_session_replies(const struct smtp_session *s, int cls);
/* "ADDR:PORT" ("[V6]:PORT") of the peer once connecting, else "". */
const char *smtp_session_peer(const struct smtp_session *s);
void *smtp_session_tag(const struct smtp_session *s);

/* 1 if the address needs SMTPUTF8 (has bytes >= 0x80). */
int smtp_addr_needs_utf8(const char *addr);

/* A client SSL_CTX (returned as void * to keep OpenSSL out of this header)
 * with certificate verification off: MX certificates are often self-signed
 * or name the wrong host, and a verifier wants the answer, not a proof.
 * Share one between sessions through params.ssl_ctx.  NULL on failure. */
void *smtp_tls_ctx_new(void);
void smtp_tls_ctx_free(void *ctx);

#endif
