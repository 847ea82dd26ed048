/*
 * engine.h — the probe engine: lanes of SMTP sessions on one event loop.
 *
 * Used by the worker daemon (fed from Kafka) and by `mxsift check` (fed
 * in-process).  The engine owns one lane per MX domain: a FIFO of
 * recipients and (by default) one SMTP session at a time, reused for many
 * recipients with RSET between them.  It resolves MX host addresses itself
 * (dns_resolve_addrs), fails over across hosts and addresses, and reports
 * exactly one verdict per submitted recipient through the done callback —
 * always from the loop, never from inside engine_submit().
 *
 * Politeness per lane (see "Lane rules" below): a token bucket for RCPT
 * probes and one for new connections, a cap on concurrent connections and
 * on recipients per session, from a rules file keyed by MX domain.  Rate
 * limit answers (421, 4.7.28, 4.7.65x, "too many ...", "try again later")
 * halve the lane's RCPT rate and pause it with exponential backoff and
 * jitter; the request that got the answer is asked again after the pause
 * (up to throttle_retries times).  Each answer that is not a rate limit
 * raises the rate again by a tenth of the rule's.  Every change of a
 * lane's rate is logged at info level ("lane rate"); engine_get_lane_stats()
 * shows it too.  No timer ever spins: a lane that waits for tokens or for
 * the end of a pause has one timer armed for exactly that moment.
 *
 * Logs: one info line per SMTP session when it ends ("smtp session end":
 * conn, mx_domain, host, peer, tls, rcpts, rejects, duration_ms, outcome =
 * quit (why: idle, recycle, backoff, shutdown, other_hosts, retry_fresh,
 * unusable) or rejected/timeout/proto_error/conn_error/tls_error/
 * internal_error, code); never a recipient address below debug.
 *
 * The engine knows nothing about Kafka, Redis or the network beyond SMTP;
 * the only file it reads is the lane rules file it is given.
 */
#ifndef MXSIFT_ENGINE_H
#define MXSIFT_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "verdict.h"
#include "dns.h"

struct event_base;
struct engine;

enum engine_tls { ENGINE_TLS_MAY = 0, ENGINE_TLS_REQUIRE, ENGINE_TLS_OFF };

/*
 * Catch-all detection.  The first time an address of a domain is accepted,
 * the engine asks the same server about a random local part of that domain
 * (its own transaction, like any probe) and keeps the answer per domain:
 * accepted -> the domain is catch-all: every accepted address of it is
 * risky/catch_all with VERDICT_F_CATCH_ALL; rejected 5.1.x -> not
 * catch-all; anything else (4xx, policy, failure) -> unknown: accepted
 * addresses stay deliverable, unmarked.  Domains where nothing is accepted
 * never cost the extra RCPT.  When the server offers PIPELINING and the
 * lane has no RCPT rate, the probe costs no round trip either: it goes in
 * one pipelined group with the next queued address for that server (each
 * its own transaction, replies matched in order).  0 (DEFAULT) means ON.
 */
enum engine_catch_all {
	ENGINE_CATCH_ALL_DEFAULT = 0,
	ENGINE_CATCH_ALL_ON,
	ENGINE_CATCH_ALL_OFF
};

struct engine_params {
	const char *helo_name;        /* EHLO argument; default: gethostname() */
	const char *mail_from;        /* reverse path; "" = null sender <> */
	int smtp_port;                /* default 25 */
	enum engine_tls tls;
	unsigned max_rcpt_per_session;      /* recycle after this many RCPTs (default 100) */
	unsigned max_rejects_per_session;   /* recycle after this many 5xx RCPTs (default 8) */
	unsigned max_session_age_s;         /* recycle after this many seconds (default 300) */
	unsigned idle_close_ms;             /* QUIT an idle session after (default 2000) */
	unsigned max_conns_per_lane;        /* default 1 */
	/* per-state timeouts in ms; 0 = default (see smtp_session.h) */
	unsigned connect_timeout_ms, greeting_timeout_ms, command_timeout_ms;
	enum engine_catch_all catch_all_check;
	/* Local part of the catch-all probe; NULL = 20 random lowercase
	 * letters from the kernel CSPRNG, new for every probe.  Tests only:
	 * a fixed name is guessable and lets a receiver game the check. */
	const char *catch_all_local;
	unsigned catch_all_ttl_s;     /* keep a domain's answer (default 3600;
	                                 an unknown answer at most 300) */
	/* Lane rules file (format below), read by engine_new(); NULL = the
	 * built-in default: no rate limit, max_conns_per_lane connections,
	 * max_rcpt_per_session recipients per session. */
	const char *lanes_file;
	unsigned backoff_base_ms;     /* first pause after a rate limit (default 2000) */
	unsigned backoff_max_ms;      /* longest pause (default 600000) */
	unsigned throttle_retries;    /* asks per address after rate limits (default 5;
	                                 ENGINE_THROTTLE_RETRIES_NONE: never) */
	/* Numeric IPv4 or IPv6 source address of every SMTP connection
	 * (--bind), NULL = the kernel's choice.  Only MX addresses of the
	 * same family are tried; the others fail over as connection_failed
	 * "no source address for IPvN".  engine_new() fails (log_error) when
	 * it cannot bind it: see engine_check_bind(). */
	const char *bind_address;
};
#define ENGINE_THROTTLE_RETRIES_NONE 0xffffffffu

struct engine_mx_host {
	const char *name;             /* A-label, no trailing dot */
	unsigned preference;
};

/* One recipient to probe.  engine_submit() copies everything it needs. */
struct probe_req {
	const char *address;          /* normalised local@domain, domain A-label */
	const char *domain;
	const char *mx_domain;        /* lane key */
	const struct engine_mx_host *hosts;   /* sorted by preference */
	size_t nhosts;
	unsigned flags;               /* VERDICT_F_SMTPUTF8, VERDICT_F_IMPLICIT_MX ... */
	void *tag;                    /* returned in the callback */
};

/* v is valid only during the call.  The callback may call engine_submit(). */
typedef void (*engine_done_cb)(void *arg, void *tag, const char *address,
    const struct verdict *v);

/* Can addr be a source address (bind_address) here?  It must be numeric
 * and an address of this host.  Returns 0, or -1 with a message for the
 * user in err ("--bind 192.0.2.7: Cannot assign requested address ..."). */
int engine_check_bind(const char *addr, char *err, size_t errlen);

/* The event loop an engine wants: precise timers (timerfd under epoll), so
 * a lane's rate-limit wake-ups are not rounded up to the next millisecond.
 * NULL when libevent cannot make one. */
struct event_base *engine_event_base_new(void);
/* dns is borrowed (must outlive the engine).  params may be NULL. */
struct engine *engine_new(struct event_base *base, struct dns *dns,
    const struct engine_params *params, engine_done_cb done, void *arg);
/* Queue a recipient.  Returns 0, or -1 if the request is unusable (no
 * hosts, address too long): the done callback still fires for it. */
int engine_submit(struct engine *e, const struct probe_req *req);
/* Recipients submitted and not yet reported. */
size_t engine_pending(const struct engine *e);
/* Close every session politely (QUIT); done callbacks fire for anything
 * still queued as unknown/temp_failure.  Then engine_free(). */
void engine_shutdown(struct engine *e);
void engine_free(struct engine *e);

/* Counters for logs, metrics, tests and benchmarks. */
struct engine_stats {
	unsigned long connections;    /* TCP connections opened */
	unsigned long sessions_ok;    /* sessions that reached EHLO/HELO success */
	unsigned long rcpts;          /* RCPT TO commands sent */
	unsigned long replies_503;    /* 503 replies seen: must stay 0 */
	unsigned long backoffs;       /* rate-limit answers that paused a lane */
	unsigned long throttled;      /* requests asked again after a rate limit */
	/* every complete SMTP reply read (greeting, EHLO ... QUIT), by class:
	 * [2]..[5] the first digit, [0] anything else; [1] stays 0 */
	unsigned long replies[6];
	unsigned long sessions_ended; /* sessions over (one "smtp session end" line each) */
	/* gauges, at the time of the call */
	unsigned long sessions_open;  /* SMTP connections now (connecting or up) */
	unsigned long lanes;          /* lanes now */
	unsigned long queued;         /* recipients waiting in lanes (not on a session) */
};
void engine_get_stats(const struct engine *e, struct engine_stats *out);

/*
 * Lane rules.  One rule a line, '#' comments:
 *
 *   MX_DOMAIN [rate=R] [burst=B] [conn_rate=R] [conn_burst=B] [conns=N]
 *             [rcpt_per_session=N]
 *
 * rate: RCPT probes per second (fractions allowed; 0 = no limit); burst:
 * bucket size (default: rate rounded up, at least 1); conn_rate and
 * conn_burst: the same for new connections; conns: concurrent connections;
 * rcpt_per_session: recipients before a session is recycled.  A lane (MX
 * domain) takes the rule of its name, else of its closest parent domain,
 * else the "*" rule.  Keys a line leaves out come from the "*" line, else
 * from engine_params.  Returns 0, or -1 with a message ("FILE:LINE: ...")
 * in err, keeping the rules in force.  path NULL = built-in default.
 * Lanes pick up new rules at once (the worker calls this on SIGHUP).
 */
int engine_reload_rules(struct engine *e, const char *path, char *err, size_t errlen);

/* Read the lane rules file path as engine_new() would, and forget them: 0,
 * or -1 with the same message.  For a command to refuse a missing or broken
 * --lanes FILE as a configuration error, naming it, before any work. */
int engine_check_rules(const char *path, char *err, size_t errlen);

/* 1 if reply r tells us to slow down (421; 4.7.28; 4.7.65x; "too many",
 * "rate limit", "try again later" ... in a 4xx that is not greylisting nor
 * 4.5.3 too many recipients).  The classifier decides the verdict; this
 * decides the pace. */
struct smtp_reply;
int engine_reply_rate_limited(const struct smtp_reply *r);

/* One lane's state for logs, status and tests. */
struct engine_lane_stats {
	const char *key;              /* MX domain; valid until the next engine call */
	double rate;                  /* current RCPT rate per second; 0 = no limit */
	double rule_rate;             /* the rule's rate */
	unsigned conns, max_conns;
	size_t queued;
	unsigned backoff_level;       /* consecutive rate-limit answers */
	unsigned long backoffs;       /* pauses so far */
	uint64_t paused_ms;           /* left of the current pause */
};
/* Fill up to max entries (lanes in key order); returns the number of lanes. */
size_t engine_get_lane_stats(const struct engine *e, struct engine_lane_stats *out, size_t max);

#endif
