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
 * The engine knows nothing about Kafka, Redis or files.
 */
#ifndef MXSIFT_ENGINE_H
#define MXSIFT_ENGINE_H

#include <stddef.h>
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
 * never cost the extra RCPT.  0 (DEFAULT) means ON.
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
};

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

/* Counters for logs, tests and benchmarks. */
struct engine_stats {
	unsigned long connections;    /* TCP connections opened */
	unsigned long sessions_ok;    /* sessions that reached EHLO/HELO success */
	unsigned long rcpts;          /* RCPT TO commands sent */
	unsigned long replies_503;    /* 503 replies seen: must stay 0 */
};
void engine_get_stats(const struct engine *e, struct engine_stats *out);

#endif
