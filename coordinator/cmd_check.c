/*
 * cmd_check.c — `mxsift check FILE`: the whole pipeline in one process.
 *
 * The same front half as `mxsift submit` (plan.c: read, check syntax, dedupe,
 * resolve MX) feeds the same probe engine as `mxsift-worker` (engine.c), with
 * an in-process hand-off instead of Kafka and an output file instead of Redis.
 *
 * Output: one row per input row, in input order, carrying the original text
 * and line number (CSV, JSONL, or an aligned table for people).  A duplicate
 * row repeats the verdict of the first occurrence.  Rows are written as soon
 * as they and every row before them have their verdict.
 *
 * Memory does not grow with rows: every row (line, uid, original text) is
 * appended to a row spool and every verdict (with its normalised address) to
 * a verdict spool (spool.h, unlinked temporary files); memory keeps one
 * 8-byte offset per uid (unique address or invalid row) and the engine's
 * in-flight work, for which plan.c is paused beyond CHECK_INFLIGHT_MAX
 * recipients.  A cursor walks the row spool and writes each row once its
 * uid's verdict is in.
 *
 * Verdict policy on top of the engine's: verdict_apply_flags() (a
 * deliverable disposable or role address becomes risky/disposable or
 * risky/role_account; flags are always kept), and the domain's typo
 * suggestion is copied into the verdict, never applied.
 *
 * Temporary answers (--max-wait DURATION, off by default): a greylisted,
 * 4xx, timed-out or refused probe is asked again in-process on the fleet's
 * schedule (retry.h, --retry-schedule, default 1m,5m,15m,1h) as long as the
 * next attempt starts within DURATION of the start of the run; then the
 * temporary verdict is final ("final after N attempts").
 *
 * Progress goes to stderr (progress.h): a bar on a terminal, a line every
 * 10 s otherwise, nothing with --quiet.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "address.h"
#include "commands.h"
#include "config.h"
#include "dns.h"
#include "engine.h"
#include "lists.h"
#include "log.h"
#include "plan.h"
#include "progress.h"
#include "report.h"
#include "retry.h"
#include "term.h"
#include "spool.h"
#include "verdict.h"

#define CHECK_INFLIGHT_MAX 20000     /* recipients handed to the engine, unanswered */
#define CHECK_TEXT_MAX     (1u << 17) /* a row's text or an address, with room */

enum check_format { FMT_CSV = 0, FMT_JSONL, FMT_TABLE };

/* A recipient in the engine: what the verdict needs that the engine does
 * not carry. */
struct check_tag {
	uint64_t uid;
	unsigned flags;
	const char *suggestion;        /* owned by lists */
	struct check_again *again;     /* --max-wait: how to ask again; else NULL */
};

/* What a probe needs to be submitted again (copied: the plan's domain is
 * gone by then). */
struct check_again {
	char *address, *domain, *mx_domain;
	struct engine_mx_host *hosts;
	size_t nhosts;
	unsigned attempt;              /* 0 for the first probe */
};

/* Row spool record header; the original text follows. */
struct check_rowrec {
	uint64_t line;
	uint64_t uid;
	uint32_t len;
	uint32_t pad;
};

/* Verdict spool record header; CHECK_VSTR strings follow (address,
 * enhanced, text, mx_host, detail, suggestion) with the lengths given. */
#define CHECK_VSTR 6
struct check_vrec {
	int64_t checked_at;
	uint64_t duration_ms;
	int32_t smtp_code;
	uint32_t attempts, flags;
	uint8_t status, reason, tls, pad;
	uint32_t len[CHECK_VSTR];
};

struct check {
	struct event_base *base;
	struct dns *dns;
	struct plan *plan;
	struct engine *engine;
	struct lists *lists;
	struct event *tick;
	struct report *report;
	struct progress pg;
	FILE *out;
	enum check_format fmt;

	struct spool *rows, *verdicts;
	uint64_t *vidx;              /* by uid: verdict offset + 1; 0 = not yet */
	uint64_t nvidx;              /* capacity */
	uint64_t cursor;             /* row spool offset of the next row to write */
	uint64_t rows_written;
	char *input, *address;       /* CHECK_TEXT_MAX + 1 each */

	uint64_t done;
	uint64_t submitted, probed;  /* recipients handed to / answered by the engine */
	int plan_done, finished, paused, failed;
	uint64_t by_status[VS__COUNT];
	struct retry_policy retry;   /* --retry-schedule; max age = --max-wait */
	struct retry_timer *again_q; /* probes waiting to be asked again */
	uint64_t started_wall;       /* ms, the start of the run */
};

static void
check_usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift check [OPTIONS] FILE\n"
	    "\n"
	    "Verify every address in FILE on this machine (no Kafka, no Redis) and write\n"
	    "one verdict row per input row, in input order.  FILE is a text file with one\n"
	    "address per line, a CSV/TSV with an 'email' column or JSONL with an 'email'\n"
	    "member, optionally gzip-compressed; '-' reads stdin.\n"
	    "\n"
	    "Options:\n"
	    "  -o, --output FILE       write results to FILE (default: stdout)\n"
	    "  -f, --format FMT        csv (default), jsonl, or table (aligned, for people)\n"
	    "  -c, --column NAME|N     CSV/TSV column holding the address (default: email)\n"
	    "      --field NAME        JSONL member holding the address (default: email)\n"
	    "      --input-format FMT  auto (default), text, csv, tsv or jsonl; gzip input\n"
	    "                          is recognised by its content\n"
	    "      --fold-local MODE   dedupe local parts case-insensitively: auto (default:\n"
	    "                          only for domains in case_insensitive.txt), always, never\n"
	    "      --data-dir DIR      reference lists (default: %s)\n"
	    "      --dns HOST[:PORT]   DNS resolver to use (default: the system's)\n"
	    "      --helo NAME         EHLO name (default: this host's name)\n"
	    "      --mail-from ADDR    reverse path for MAIL FROM (default: null sender <>)\n"
	    "      --smtp-port N       SMTP port of the MX hosts (default: 25)\n"
	    "      --tls MODE          may (default: STARTTLS when offered), require, off\n"
	    "      --bind ADDR         source address of SMTP connections (an IPv4 or IPv6\n"
	    "                          address of this host; only MX addresses of its family\n"
	    "                          are tried)\n"
	    "      --no-catch-all      skip the catch-all probe (random local part per domain)\n"
	    "      --lanes FILE|none   per-MX-domain rate rules (default: lanes.conf in the\n"
	    "                          data directory); none = no limits\n"
	    "      --log-level LEVEL   debug, info, warn (default), error\n"
	    "      --max-wait DUR      ask temporary answers (greylisting, 4xx, timeouts)\n"
	    "                          again while within DUR of the start (e.g. 20m;\n"
	    "                          default 0: no second attempt)\n"
	    "      --retry-schedule L  delays before attempt 2, 3, ... (default "
	    RETRY_DEFAULT_SCHEDULE ")\n"
	    "  -q, --quiet             no progress output\n"
	    "      --report FILE       also write an HTML report with charts to FILE\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Columns: line,input,address,status,reason,smtp_code,enhanced_code,mx_host,\n"
	    "detail,reply,suggestion.  status is deliverable, undeliverable, risky or\n"
	    "unknown; a deliverable disposable or role address is risky (flags are kept).\n"
	    "\n"
	    "Exit codes: 0 done; 1 runtime failure; 2 usage error; 3 input unusable.\n",
	    lists_default_dir());
}

/* A runtime failure: remember it and stop the loop. */
static void
check_fail(struct check *c, const char *what)
{
	log_error(what, "errno=\"%s\"", strerror(errno));
	c->failed = 1;
	event_base_loopbreak(c->base);
}

/* ---- spools --------------------------------------------------------- */

static int
check_put_verdict(struct check *c, uint64_t uid, const char *address, const struct verdict *v)
{
	const char *str[CHECK_VSTR] = { address, v->enhanced, v->text, v->mx_host, v->detail,
	    v->suggestion };
	const size_t cap[CHECK_VSTR] = { CHECK_TEXT_MAX, sizeof(v->enhanced), sizeof(v->text),
	    sizeof(v->mx_host), sizeof(v->detail), sizeof(v->suggestion) };
	struct check_vrec h;
	uint64_t off;

	if (uid >= c->nvidx) {
		uint64_t n = c->nvidx ? c->nvidx : 4096;
		uint64_t *nv;

		while (n <= uid)
			n *= 2;
		if ((nv = realloc(c->vidx, n * sizeof(*nv))) == NULL)
			return -1;
		memset(nv + c->nvidx, 0, (n - c->nvidx) * sizeof(*nv));
		c->vidx = nv;
		c->nvidx = n;
	}
	if (c->vidx[uid] != 0) {
		/* Exactly one verdict per uid: a second one is a bug upstream. */
		log_error("duplicate verdict", "uid=%llu", (unsigned long long)uid);
		return 0;
	}
	memset(&h, 0, sizeof(h));
	h.checked_at = v->checked_at;
	h.duration_ms = v->duration_ms;
	h.smtp_code = v->smtp_code;
	h.attempts = v->attempts;
	h.flags = v->flags;
	h.status = (uint8_t)v->status;
	h.reason = (uint8_t)v->reason;
	h.tls = (uint8_t)(v->tls != 0);
	for (int i = 0; i < CHECK_VSTR; i++)
		h.len[i] = (uint32_t)strnlen(str[i], cap[i] - 1);
	if (spool_append(c->verdicts, &h, sizeof(h), &off) != 0)
		return -1;
	for (int i = 0; i < CHECK_VSTR; i++)
		if (spool_append(c->verdicts, str[i], h.len[i], NULL) != 0)
			return -1;
	c->vidx[uid] = off + 1;
	c->done++;
	c->by_status[v->status < VS__COUNT ? v->status : VS_UNKNOWN]++;
	if (c->report != NULL && report_add(c->report, v) == -1)
		return -1;
	return 0;
}

static int
check_get_verdict(struct check *c, uint64_t off, struct verdict *v)
{
	char *dst[CHECK_VSTR] = { c->address, v->enhanced, v->text, v->mx_host, v->detail,
	    v->suggestion };
	struct check_vrec h;

	if (spool_read(c->verdicts, off, &h, sizeof(h)) != 0)
		return -1;
	memset(v, 0, sizeof(*v));
	v->checked_at = h.checked_at;
	v->duration_ms = h.duration_ms;
	v->smtp_code = h.smtp_code;
	v->attempts = h.attempts;
	v->flags = h.flags;
	v->status = (enum verdict_status)h.status;
	v->reason = (enum verdict_reason)h.reason;
	v->tls = h.tls;
	off += sizeof(h);
	for (int i = 0; i < CHECK_VSTR; i++) {
		if (spool_read(c->verdicts, off, dst[i], h.len[i]) != 0)
			return -1;
		dst[i][h.len[i]] = '\0';
		off += h.len[i];
	}
	return 0;
}

/* An aligned table for people; wide fields are cut, never wrapped. */
static int
check_write_table_row(FILE *out, uint64_t line, const char *in, const struct verdict *v)
{
	char input[41], code[8] = "";
	size_t k = 0;

	/* Show control characters visibly, never raw, on a terminal. */
	for (const char *s = in; *s != '\0' && k < 40; s++)
		input[k++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	input[k] = '\0';
	if (v->smtp_code)
		snprintf(code, sizeof(code), "%d", v->smtp_code);
	/* the status word in colour on a terminal (term.h: never with NO_COLOR) */
	fprintf(out, "%7llu  %-40s  %s%-13s%s  %-18s  %4s  %-7s  %s%s%s%s%s\n",
	    (unsigned long long)line, input, term_status_color(out, v->status),
	    verdict_status_name(v->status), term_reset(out),
	    verdict_reason_name(v->reason), code, v->enhanced, v->mx_host,
	    v->mx_host[0] && v->detail[0] ? " " : "", v->detail,
	    v->suggestion[0] ? "  did you mean " : "", v->suggestion);
	return ferror(out) ? -1 : 0;
}

/*
 * Write every row at the cursor whose verdict is in.  force: the run is
 * over; a row still without a verdict (a bug upstream) gets an explicit
 * internal-error verdict rather than vanishing.  0 / -1 (I/O error).
 */
static int
check_drain(struct check *c, int force)
{
	enum verdict_format vf = c->fmt == FMT_JSONL ? VF_JSONL : VF_CSV;
	struct check_rowrec rr;
	struct verdict v;

	while (c->cursor < spool_size(c->rows)) {
		if (spool_read(c->rows, c->cursor, &rr, sizeof(rr)) != 0)
			return -1;
		if (rr.uid >= c->nvidx || c->vidx[rr.uid] == 0) {
			if (!force)
				return 0;
			verdict_init(&v, VR_TEMP_FAILURE);
			snprintf(v.detail, sizeof(v.detail), "no verdict (internal error)");
			c->address[0] = '\0';
		} else if (check_get_verdict(c, c->vidx[rr.uid] - 1, &v) != 0)
			return -1;
		if (spool_read(c->rows, c->cursor + sizeof(rr), c->input, rr.len) != 0)
			return -1;
		c->input[rr.len] = '\0';
		c->cursor += sizeof(rr) + rr.len;
		c->rows_written++;
		if (c->fmt == FMT_TABLE) {
			if (check_write_table_row(c->out, rr.line, c->input, &v) != 0)
				return -1;
			continue;
		}
		struct verdict_row vr = {
			.line = rr.line,
			.input = c->input,
			.address = c->address,
			.v = &v,
		};
		if (verdict_write_row(c->out, vf, &vr) == -1)
			return -1;
	}
	return 0;
}

/* ---- pipeline callbacks ----------------------------------------------- */

/*
 * When every uid has its verdict: stop the progress ticker, ask the engine to
 * QUIT its sessions, and give the QUIT/221 exchanges a moment before the loop
 * ends (the verdicts are complete either way).
 */
static void
check_maybe_finish(struct check *c)
{
	struct timeval grace = { 1, 0 };

	if (!c->plan_done || c->probed < c->submitted || c->finished)
		return;
	c->finished = 1;
	if (c->tick != NULL)
		event_del(c->tick);
	engine_shutdown(c->engine);
	event_base_loopexit(c->base, &grace);
}

static void
check_store(struct check *c, uint64_t uid, const char *address, const struct verdict *v)
{
	if (check_put_verdict(c, uid, address, v) != 0) {
		check_fail(c, "cannot spool a verdict");
		return;
	}
	if (check_drain(c, 0) != 0)
		check_fail(c, "cannot write output");
}

static void
check_on_row(void *arg, const struct plan_row *r)
{
	struct check *c = arg;
	struct check_rowrec rr = { r->line, r->uid, 0, 0 };

	rr.len = (uint32_t)(r->len < CHECK_TEXT_MAX ? r->len : CHECK_TEXT_MAX);
	if (spool_append(c->rows, &rr, sizeof(rr), NULL) != 0 ||
	    spool_append(c->rows, r->input, rr.len, NULL) != 0)
		check_fail(c, "cannot spool a row");
}

static void
check_on_plan_verdict(void *arg, const struct plan_addr *a, const struct verdict *v)
{
	check_store(arg, a->uid, a->address, v);
}

static void
check_again_free(struct check_again *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->nhosts; i++)
		free((char *)a->hosts[i].name);
	free(a->hosts);
	free(a->address);
	free(a->domain);
	free(a->mx_domain);
	free(a);
}

static struct check_again *
check_again_new(const struct probe_req *req)
{
	struct check_again *a = calloc(1, sizeof(*a));
	int bad = 0;

	if (a == NULL)
		return NULL;
	a->address = strdup(req->address);
	a->domain = strdup(req->domain);
	a->mx_domain = strdup(req->mx_domain ? req->mx_domain : req->domain);
	a->hosts = calloc(req->nhosts ? req->nhosts : 1, sizeof(*a->hosts));
	bad = a->address == NULL || a->domain == NULL || a->mx_domain == NULL || a->hosts == NULL;
	for (size_t i = 0; !bad && i < req->nhosts; i++) {
		a->hosts[i].preference = req->hosts[i].preference;
		if ((a->hosts[i].name = strdup(req->hosts[i].name)) == NULL)
			bad = 1;
		a->nhosts = i + 1;
	}
	if (bad) {
		check_again_free(a);
		return NULL;
	}
	return a;
}

/* A held probe is due: submit it again (it is still counted as submitted). */
static void
check_again_due(void *arg, void *item)
{
	struct check *c = arg;
	struct check_tag *t = item;
	struct check_again *a = t->again;
	struct probe_req req = {
		.address = a->address,
		.domain = a->domain,
		.mx_domain = a->mx_domain,
		.hosts = a->hosts,
		.nhosts = a->nhosts,
		.flags = t->flags,
		.tag = t,
	};

	a->attempt++;
	(void)engine_submit(c->engine, &req);
}

static void
check_again_drop(void *arg, void *item)
{
	struct check_tag *t = item;

	(void)arg;
	check_again_free(t->again);
	free(t);
}

/* 1 when v is temporary and another attempt fits in --max-wait: t is then
 * held until it is due. */
static int
check_ask_again(struct check *c, struct check_tag *t, const struct verdict *v)
{
	uint64_t due;

	if (t->again == NULL || c->failed || c->finished || !retry_verdict_temporary(v) ||
	    !retry_next(&c->retry, t->again->attempt, c->started_wall, retry_wall_ms(), &due))
		return 0;
	if (retry_timer_add(c->again_q, t, due) == -1)
		return 0;
	log_debug("asking again later", "reason=%s code=%d attempt=%u in_ms=%llu",
	    verdict_reason_name(v->reason), v->smtp_code, t->again->attempt,
	    (unsigned long long)(due - retry_wall_ms()));
	return 1;
}

static void
check_on_domain(void *arg, const struct plan_domain *d)
{
	struct check *c = arg;
	struct engine_mx_host hosts[64];
	size_t nhosts = d->mx->nhosts < 64 ? d->mx->nhosts : 64;

	for (size_t i = 0; i < nhosts; i++) {
		hosts[i].name = d->mx->hosts[i].name;
		hosts[i].preference = d->mx->hosts[i].preference;
	}
	for (size_t i = 0; i < d->naddrs; i++) {
		struct check_tag *t = malloc(sizeof(*t));

		if (t == NULL) {
			check_fail(c, "out of memory");
			return;
		}
		t->uid = d->addrs[i]->uid;
		t->flags = d->addrs[i]->flags;
		t->suggestion = d->addrs[i]->suggestion;
		struct probe_req req = {
			.address = d->addrs[i]->address,
			.domain = d->domain,
			.mx_domain = d->mx->mx_domain,
			.hosts = hosts,
			.nhosts = nhosts,
			.flags = d->addrs[i]->flags,
			.tag = t,
		};
		t->again = NULL;
		if (c->again_q != NULL && (t->again = check_again_new(&req)) == NULL) {
			free(t);
			check_fail(c, "out of memory");
			return;
		}
		/* On -1 the engine still reports a verdict for the request. */
		c->submitted++;
		(void)engine_submit(c->engine, &req);
	}
	/* Backpressure: the engine queues whatever it is given. */
	if (!c->paused && c->submitted - c->probed >= CHECK_INFLIGHT_MAX) {
		c->paused = 1;
		plan_pause(c->plan);
	}
}

static void
check_on_plan_done(void *arg)
{
	struct check *c = arg;

	c->plan_done = 1;
	check_maybe_finish(c);
}

static void
check_on_engine_done(void *arg, void *tag, const char *address, const struct verdict *v)
{
	struct check *c = arg;
	struct check_tag *t = tag;
	struct verdict fv = *v;

	if (check_ask_again(c, t, v))
		return;
	c->probed++;
	if (t->again != NULL && t->again->attempt > 0) {
		fv.attempts += t->again->attempt;
		if (retry_verdict_temporary(v) && fv.detail[0] == '\0')
			snprintf(fv.detail, sizeof(fv.detail), "final after %u attempts",
			    t->again->attempt + 1);
	}
	verdict_apply_flags(&fv, t->flags);
	snprintf(fv.suggestion, sizeof(fv.suggestion), "%s", t->suggestion);
	check_store(c, t->uid, address, &fv);
	check_again_free(t->again);
	free(t);
	if (c->paused && c->submitted - c->probed <= CHECK_INFLIGHT_MAX / 2) {
		c->paused = 0;
		plan_resume(c->plan);
	}
	check_maybe_finish(c);
}

static void
check_progress(struct check *c, int final)
{
	struct plan_stats ps;

	plan_get_stats(c->plan, &ps);
	progress_show(&c->pg, &ps, c->done, ps.unique + ps.invalid, final);
}

static void
check_on_tick(evutil_socket_t fd, short what, void *arg)
{
	check_progress(arg, 0);
}

static int
check_write_report(struct check *c, const char *path, const char *input, char *err,
    size_t errlen)
{
	char title[512];
	FILE *f;
	int rc;

	if ((f = fopen(path, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(title, sizeof(title), "mxsift check: %s", strcmp(input, "-") == 0 ? "stdin" : input);
	rc = report_write_html(c->report, title, NULL, 0, f);
	if (fclose(f) != 0)
		rc = -1;
	if (rc == -1)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return rc;
}

int
cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "column", required_argument, NULL, 'c' },
		{ "field", required_argument, NULL, 'F' },
		{ "input-format", required_argument, NULL, 'I' },
		{ "dns", required_argument, NULL, 'D' },
		{ "helo", required_argument, NULL, 'H' },
		{ "mail-from", required_argument, NULL, 'M' },
		{ "smtp-port", required_argument, NULL, 'P' },
		{ "tls", required_argument, NULL, 'T' },
		{ "bind", required_argument, NULL, 'B' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "no-catch-all", no_argument, NULL, 'A' },
		{ "lanes", required_argument, NULL, 'l' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "report", required_argument, NULL, 'R' },
		{ "fold-local", required_argument, NULL, 'W' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "max-wait", required_argument, NULL, 'w' },
		{ "retry-schedule", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_params ep = { 0 };
	struct intake_opts io = { 0 };
	enum check_format fmt = FMT_CSV;
	const char *output = NULL, *dns_server = NULL;
	const char *report = NULL;     /* --report: HTML report (report.h) */
	const char *data_dir = NULL;
	struct plan_params pp = { 0 };
	int quiet = 0, ch, rc = MXSIFT_EXIT_OK;
	char lanes_default[4096];
	char err[256];
	struct check c = { 0 };
	int retry_set = 0;

	log_set_level(LOG_WARN);
	if (config_command("mxsift check", "check", longopts, "o:f:c:qh", &argc, &argv) == -1)
		return MXSIFT_EXIT_USAGE;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:f:c:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o': output = optarg; break;
		case 'f':
			if (strcmp(optarg, "csv") == 0)
				fmt = FMT_CSV;
			else if (strcmp(optarg, "jsonl") == 0)
				fmt = FMT_JSONL;
			else if (strcmp(optarg, "table") == 0)
				fmt = FMT_TABLE;
			else {
				fprintf(stderr, "mxsift check: --format must be csv, jsonl or table\n");
				return MXSIFT_EXIT_USAGE;
			}
			break;
		case 'c': io.column = optarg; break;
		case 'F': io.field = optarg; break;
		case 'I': {
			int f = intake_format_parse(optarg);
			if (f < 0) {
				fprintf(stderr, "mxsift check: --input-format must be auto, text, "
				    "csv, tsv or jsonl\n");
				return MXSIFT_EXIT_USAGE;
			}
			io.format = (enum intake_format)f;
			break;
		}
		case 'D': dns_server = optarg; break;
		case 'H': ep.helo_name = optarg; break;
		case 'M': ep.mail_from = optarg; break;
		case 'P': {
			char *end;
			long p = strtol(optarg, &end, 10);
			if (*end != '\0' || p < 1 || p > 65535) {
				fprintf(stderr, "mxsift check: --smtp-port must be 1..65535\n");
				return MXSIFT_EXIT_USAGE;
			}
			ep.smtp_port = (int)p;
			break;
		}
		case 'T':
			if (strcmp(optarg, "may") == 0)
				ep.tls = ENGINE_TLS_MAY;
			else if (strcmp(optarg, "require") == 0)
				ep.tls = ENGINE_TLS_REQUIRE;
			else if (strcmp(optarg, "off") == 0)
				ep.tls = ENGINE_TLS_OFF;
			else {
				fprintf(stderr, "mxsift check: --tls must be may, require or off\n");
				return MXSIFT_EXIT_USAGE;
			}
			break;
		case 'L': {
			int l = log_parse_level(optarg);
			if (l < 0) {
				fprintf(stderr, "mxsift check: --log-level must be debug, info, warn or error\n");
				return MXSIFT_EXIT_USAGE;
			}
			log_set_level((enum log_level)l);
			break;
		}
		case 'B':
			if (engine_check_bind(optarg, err, sizeof(err)) == -1) {
				fprintf(stderr, "mxsift check: %s\n", err);
				return MXSIFT_EXIT_USAGE;
			}
			ep.bind_address = optarg;
			break;
		case 'A': ep.catch_all_check = ENGINE_CATCH_ALL_OFF; break;
		case 'l': ep.lanes_file = optarg; break;
		case 'q': quiet = 1; break;
		case 'R': report = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'W': {
			int f = plan_fold_parse(optarg);
			if (f < 0) {
				fprintf(stderr, "mxsift check: --fold-local must be auto, always or never\n");
				return MXSIFT_EXIT_USAGE;
			}
			pp.fold = (enum plan_fold)f;
			break;
		}
		case 'w':
			if (retry_parse_duration(optarg, &c.retry.max_age_ms) == -1) {
				fprintf(stderr, "mxsift check: --max-wait wants a duration (e.g. 20m)\n");
				return MXSIFT_EXIT_USAGE;
			}
			break;
		case 'S':
			if (retry_parse_schedule(optarg, &c.retry, err, sizeof(err)) == -1) {
				fprintf(stderr, "mxsift check: --retry-schedule: %s\n", err);
				return MXSIFT_EXIT_USAGE;
			}
			retry_set = 1;
			break;
		case 'h': check_usage(stdout); return MXSIFT_EXIT_OK;
		default: check_usage(stderr); return MXSIFT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "mxsift check: exactly one input FILE is required (try --help)\n");
		return MXSIFT_EXIT_USAGE;
	}
	if (!retry_set) {
		uint64_t max_wait = c.retry.max_age_ms;

		retry_policy_default(&c.retry);
		c.retry.max_age_ms = max_wait;
	}
	c.fmt = fmt;
	c.out = stdout;

	if ((c.lists = lists_open(data_dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift check: data: %s\n", err);
		return MXSIFT_EXIT_FAILURE;
	}
	/* Polite by default: the shipped per-provider rules, unless told otherwise. */
	if (ep.lanes_file == NULL) {
		snprintf(lanes_default, sizeof(lanes_default), "%s/lanes.conf", lists_dir(c.lists));
		ep.lanes_file = lanes_default;
	} else if (strcmp(ep.lanes_file, "none") == 0)
		ep.lanes_file = NULL;
	c.base = event_base_new();
	if (c.base == NULL) {
		fprintf(stderr, "mxsift check: cannot create event loop\n");
		lists_close(c.lists);
		return MXSIFT_EXIT_FAILURE;
	}
	c.dns = dns_new(c.base, dns_server, err, sizeof(err));
	if (c.dns == NULL) {
		fprintf(stderr, "mxsift check: DNS: %s\n", err);
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	if ((c.rows = spool_new(err, sizeof(err))) == NULL ||
	    (c.verdicts = spool_new(err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift check: %s\n", err);
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	c.engine = engine_new(c.base, c.dns, &ep, check_on_engine_done, &c);
	if (c.retry.max_age_ms > 0) {
		c.started_wall = retry_wall_ms();
		if ((c.again_q = retry_timer_new(c.base, check_again_due, &c)) == NULL) {
			fprintf(stderr, "mxsift check: out of memory\n");
			rc = MXSIFT_EXIT_FAILURE;
			goto done;
		}
	}
	struct plan_callbacks pcb = {
		.row = check_on_row,
		.verdict = check_on_plan_verdict,
		.domain = check_on_domain,
		.done = check_on_plan_done,
		.arg = &c,
	};
	/* One address per hand-off: the engine queues per lane itself. */
	pp.batch = 1;
	pp.lists = c.lists;
	c.plan = plan_new(c.base, c.dns, &pcb, &pp);
	c.input = malloc(CHECK_TEXT_MAX + 1);
	c.address = malloc(CHECK_TEXT_MAX + 1);
	if (report != NULL)
		c.report = report_new();
	if (c.engine == NULL || c.plan == NULL || c.input == NULL || c.address == NULL ||
	    (report != NULL && c.report == NULL)) {
		fprintf(stderr, "mxsift check: out of memory\n");
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	/* Open the output before the work, so a bad path fails fast. */
	if (output != NULL && strcmp(output, "-") != 0) {
		c.out = fopen(output, "w");
		if (c.out == NULL) {
			fprintf(stderr, "mxsift check: %s: %s\n", output, strerror(errno));
			rc = MXSIFT_EXIT_FAILURE;
			goto done;
		}
	}
	if (plan_load(c.plan, argv[optind], &io, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxsift check: %s\n", err);
		rc = MXSIFT_EXIT_INPUT;
		goto done;
	}
	if (fmt == FMT_TABLE)
		fprintf(c.out, "%7s  %-40s  %-13s  %-18s  %4s  %-7s  %s\n", "LINE", "INPUT",
		    "STATUS", "REASON", "CODE", "ENH", "MX HOST / DETAIL");
	else if (verdict_write_header(c.out, fmt == FMT_JSONL ? VF_JSONL : VF_CSV) == -1) {
		fprintf(stderr, "mxsift check: writing %s: %s\n", output ? output : "stdout",
		    strerror(errno));
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	progress_init(&c.pg, stderr, quiet, "verified");
	if (c.pg.mode != PROGRESS_OFF) {
		struct timeval tv = { c.pg.mode == PROGRESS_BAR ? 0 : 1,
		    c.pg.mode == PROGRESS_BAR ? 250000 : 0 };
		c.tick = event_new(c.base, -1, EV_PERSIST, check_on_tick, &c);
		if (c.tick != NULL)
			event_add(c.tick, &tv);
	}
	event_base_dispatch(c.base);
	check_progress(&c, 1);
	if (plan_error(c.plan) != NULL) {
		fprintf(stderr, "mxsift check: %s\n", plan_error(c.plan));
		rc = MXSIFT_EXIT_INPUT;
		goto done;
	}
	if (c.failed) {
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	/* Every row is in the spool; write whatever is left (all of it has
	 * its verdict unless something upstream is broken). */
	if (check_drain(&c, 1) != 0 || fflush(c.out) != 0 || ferror(c.out)) {
		fprintf(stderr, "mxsift check: writing %s: %s\n", output ? output : "stdout",
		    strerror(errno));
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (c.report != NULL && check_write_report(&c, report, argv[optind], err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mxsift check: report %s\n", err);
		rc = MXSIFT_EXIT_FAILURE;
	}

	struct engine_stats es;
	struct plan_stats ps;
	engine_get_stats(c.engine, &es);
	plan_get_stats(c.plan, &ps);
	if (c.rows_written != ps.rows) {
		fprintf(stderr, "mxsift check: internal error: %llu rows read, %llu written\n",
		    (unsigned long long)ps.rows, (unsigned long long)c.rows_written);
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (!quiet)
		fprintf(stderr, "checked %llu addresses: deliverable %llu, undeliverable %llu, "
		    "risky %llu, unknown %llu (%lu SMTP connections, %lu RCPT, %lu 503 replies)\n",
		    (unsigned long long)c.done, (unsigned long long)c.by_status[VS_DELIVERABLE],
		    (unsigned long long)c.by_status[VS_UNDELIVERABLE],
		    (unsigned long long)c.by_status[VS_RISKY],
		    (unsigned long long)c.by_status[VS_UNKNOWN], es.connections, es.rcpts,
		    es.replies_503);
done:
	if (c.out != stdout && c.out != NULL && fclose(c.out) != 0 && rc == MXSIFT_EXIT_OK) {
		fprintf(stderr, "mxsift check: %s: %s\n", output, strerror(errno));
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (c.tick)
		event_free(c.tick);
	if (c.engine)
		engine_free(c.engine);
	retry_timer_free(c.again_q, check_again_drop, NULL);
	if (c.plan)
		plan_free(c.plan);
	if (c.dns)
		dns_free(c.dns);
	spool_free(c.rows);
	spool_free(c.verdicts);
	report_free(c.report);
	lists_close(c.lists);
	free(c.vidx);
	free(c.input);
	free(c.address);
	if (c.base)
		event_base_free(c.base);
	return rc;
}
