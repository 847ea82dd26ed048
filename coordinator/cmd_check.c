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
 *
 * The output file (-o FILE): rows go to a temporary file next to FILE
 * (FILE.tmp.XXXXXX, FILE's mode), renamed over FILE when the run is over,
 * so FILE is never truncated by a run that cannot even start (unreadable
 * input, no such column: exit 3) and a reader never sees half a file.  A
 * symlink FILE is followed (its target is replaced); a FILE that is not a
 * regular file (/dev/null, a FIFO), or a writable FILE in a directory where
 * no temporary file can be made, is written directly.  -o naming the
 * input file (also through a symlink or hard link: same st_dev/st_ino),
 * --report naming either, or stdout redirected into the input is a usage
 * error (exit 2): the input would be destroyed while being read.
 *
 * Ending early.  SIGINT / SIGTERM (libevent signal events): reading and
 * submitting stop, every row that has its verdict is written in input
 * order (rows still without one are left out, their line numbers show the
 * gaps), the output is flushed and kept as FILE.partial (FILE itself is
 * not touched; on stdout the rows are simply written), "interrupted: N of
 * M rows read written ...; the output is incomplete" goes to stderr, open
 * sessions get a QUIT (at most CHECK_QUIT_WAIT_MS) and the exit status is
 * 130 / 143.  From the first signal on, a second one exits at once (the
 * temporary file is removed).  A signal that arrives once every verdict is
 * in only cuts the QUITs short.  A signal ignored when check starts (a
 * shell's background job and SIGINT) stays ignored.  Runtime failures (exit 1: a spool or output
 * write error) remove the temporary file and leave FILE alone.
 *
 * Exit 1 with a complete output (FILE replaced): every MX lookup of the
 * run failed with a resolver error ("no answer from the DNS resolver ...":
 * the verdicts are unknown/dns_error, which says nothing about the list);
 * or a read error ended the input early (a truncated gzip file): the rows
 * read before it have their verdicts.
 *
 * Finishing: once every verdict is in, sessions are QUIT and the loop ends
 * as soon as none is open (engine_stats.sessions_open), CHECK_QUIT_WAIT_MS
 * at most; a run that opened no connection ends at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "address.h"
#include "commands.h"
#include "config.h"
#include "dns.h"
#include "duration.h"
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
#define CHECK_QUIT_WAIT_MS 1000      /* QUIT/221 of open sessions at the end, at most */
#define CHECK_QUIT_POLL_MS 5         /* how often to look whether they are closed */
#define CHECK_TABLE_INPUT  40        /* columns of the table's INPUT cell */

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
	const char *out_name;        /* -o as given, for messages; "stdout" */
	char *out_final;             /* where the output lands (a symlink followed) */
	char *out_tmp;               /* the temporary file written, or NULL (direct) */
	enum check_format fmt;
	struct event *sigint, *sigterm;
	int interrupted;             /* the signal that ended the run, or 0 */
	int frozen;                  /* output written: later verdicts are dropped */
	struct event *quit_poll;     /* end of run: are the sessions closed? */
	uint64_t quit_deadline;      /* ms (retry_wall_ms clock) */

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
	    "member, optionally gzip-compressed; '-' reads stdin.  Lines end at LF, CRLF or\n"
	    "a lone CR (JSONL: LF).  Blank lines are not rows; the line column is the\n"
	    "input's line number, so output joins back to the input by line.\n"
	    "\n"
	    "Options:\n"
	    "  -o, --output FILE       write results to FILE (default: stdout); written to\n"
	    "                          FILE.tmp.XXXXXX and renamed over FILE at the end, so\n"
	    "                          a failed run leaves FILE alone; after an interrupt\n"
	    "                          the rows done so far are in FILE.partial\n"
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
	    "      --connect-timeout DUR\n"
	    "                          TCP connect to one MX address (default 30s)\n"
	    "      --greeting-timeout DUR\n"
	    "                          the whole 220 greeting, from the connect (default\n"
	    "                          60s; tarpitting receivers take 30 s and more)\n"
	    "      --command-timeout DUR\n"
	    "                          the whole reply to each EHLO, HELO, STARTTLS, RSET,\n"
	    "                          MAIL, RCPT and the TLS handshake, from the command\n"
	    "                          (default 60s; RSET and TLS 30s); QUIT waits at most\n"
	    "                          10s.  A reply that arrives a byte at a time gets no\n"
	    "                          more.  DUR: 500ms, 30s, 2m (no unit: seconds),\n"
	    "                          1ms..1h; expiry gives unknown/timeout\n"
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
	    "      --config FILE       configuration file ([check] section; see mxsift(1))\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Columns: line,input,address,status,reason,smtp_code,enhanced_code,mx_host,\n"
	    "detail,reply,suggestion.  status is deliverable, undeliverable, risky or\n"
	    "unknown; a deliverable disposable or role address is risky (flags are kept).\n"
	    "\n"
	    "Exit codes: 0 done; 1 runtime failure, or done but the DNS resolver answered\n"
	    "for no domain, or a read error (truncated gzip) ended the input early (the\n"
	    "rows before it are written); 2 usage error (also: -o or --report is the\n"
	    "input file); 3 input unusable (unreadable, no such column, not JSONL,\n"
	    "UTF-16);\n"
	    "130 / 143 interrupted by SIGINT / SIGTERM (a second one exits at once).\n",
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

/* Bytes of the printable UTF-8 character at s (well-formed: no overlong
 * form, no surrogate, at most U+10FFFF; not a C0/C1 control nor DEL), or 0. */
static size_t
check_utf8_printable(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != 0x7f ? 1 : 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, lo = s[0] == 0xc2 ? 0xa0 : 0x80;   /* C2 80..9F: C1 controls */
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * One table cell for a terminal: at most cols characters of s (one column
 * per character), printable UTF-8 kept, every other byte (controls,
 * escape sequences, invalid UTF-8) shown as one '?', so nothing raw
 * reaches the terminal and columns stay aligned; padded with spaces to
 * cols when pad.  out holds cols * 4 + 1 bytes.
 */
static void
check_table_cell(char *out, const char *s, size_t cols, int pad)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, k = 0, n;

	for (; *p != '\0' && k < cols; k++) {
		if ((n = check_utf8_printable(p)) == 0) {
			out[o++] = '?';
			p++;
			continue;
		}
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	while (pad && k++ < cols)
		out[o++] = ' ';
	out[o] = '\0';
}

/* An aligned table for people; wide fields are cut, never wrapped. */
static int
check_write_table_row(FILE *out, uint64_t line, const char *in, const struct verdict *v)
{
	char input[CHECK_TABLE_INPUT * 4 + 1], code[8] = "";
	char detail[sizeof(v->detail) * 4 + 1], mx[sizeof(v->mx_host) * 4 + 1];
	char sugg[sizeof(v->suggestion) * 4 + 1];

	check_table_cell(input, in, CHECK_TABLE_INPUT, 1);
	check_table_cell(mx, v->mx_host, sizeof(v->mx_host), 0);
	check_table_cell(detail, v->detail, sizeof(v->detail), 0);
	check_table_cell(sugg, v->suggestion, sizeof(v->suggestion), 0);
	if (v->smtp_code)
		snprintf(code, sizeof(code), "%d", v->smtp_code);
	/* the status word in colour on a terminal (term.h: never with NO_COLOR) */
	fprintf(out, "%7llu  %s  %s%-13s%s  %-18s  %4s  %-7s  %s%s%s%s%s\n",
	    (unsigned long long)line, input, term_status_color(out, v->status),
	    verdict_status_name(v->status), term_reset(out),
	    verdict_reason_name(v->reason), code, v->enhanced, mx,
	    mx[0] && detail[0] ? " " : "", detail,
	    sugg[0] ? "  did you mean " : "", sugg);
	return ferror(out) ? -1 : 0;
}

/* How check_drain() treats a row without its verdict. */
enum check_drain_mode {
	DRAIN_WAIT = 0,     /* stop there: rows come out in input order */
	DRAIN_FORCE,        /* the run is over: an explicit internal-error verdict
	                       (a bug upstream) rather than a vanished row */
	DRAIN_SKIP          /* interrupted: leave it out, write the rest */
};

/*
 * Write every row at the cursor whose verdict is in (see the modes).
 * 0 / -1 (I/O error).
 */
static int
check_drain(struct check *c, enum check_drain_mode mode)
{
	enum verdict_format vf = c->fmt == FMT_JSONL ? VF_JSONL : VF_CSV;
	struct check_rowrec rr;
	struct verdict v;

	while (c->cursor < spool_size(c->rows)) {
		if (spool_read(c->rows, c->cursor, &rr, sizeof(rr)) != 0)
			return -1;
		if (rr.uid >= c->nvidx || c->vidx[rr.uid] == 0) {
			if (mode == DRAIN_WAIT)
				return 0;
			if (mode == DRAIN_SKIP) {
				c->cursor += sizeof(rr) + rr.len;
				continue;
			}
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

/* End of run: the loop ends once no session is open, or at the deadline. */
static void
check_on_quit_poll(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	struct engine_stats es;

	engine_get_stats(c->engine, &es);
	if (es.sessions_open == 0 || retry_wall_ms() >= c->quit_deadline)
		event_base_loopexit(c->base, NULL);
}

/*
 * QUIT every session and end the loop as soon as the QUIT/221 exchanges
 * are over (CHECK_QUIT_WAIT_MS at most; the verdicts are complete either
 * way).  Without a session open, the loop ends at once.
 */
static void
check_close_sessions(struct check *c)
{
	struct timeval poll = { 0, CHECK_QUIT_POLL_MS * 1000 };
	struct engine_stats es;

	engine_shutdown(c->engine);
	engine_get_stats(c->engine, &es);
	c->quit_deadline = retry_wall_ms() + CHECK_QUIT_WAIT_MS;
	if (es.sessions_open == 0 || (c->quit_poll == NULL &&
	    (c->quit_poll = event_new(c->base, -1, EV_PERSIST, check_on_quit_poll,
	    c)) == NULL) || event_add(c->quit_poll, &poll) != 0)
		event_base_loopexit(c->base, NULL);
}

/* When every uid has its verdict: stop the progress ticker and close. */
static void
check_maybe_finish(struct check *c)
{
	if (!c->plan_done || c->probed < c->submitted || c->finished || c->frozen)
		return;
	c->finished = 1;
	if (c->tick != NULL)
		event_del(c->tick);
	check_close_sessions(c);
}

static void
check_store(struct check *c, uint64_t uid, const char *address, const struct verdict *v)
{
	if (c->frozen)
		return;		/* interrupted: the output is written already */
	if (check_put_verdict(c, uid, address, v) != 0) {
		check_fail(c, "cannot spool a verdict");
		return;
	}
	if (check_drain(c, DRAIN_WAIT) != 0)
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

static void
check_again_drop(void *arg, void *item)
{
	struct check_tag *t = item;

	(void)arg;
	check_again_free(t->again);
	free(t);
}

/* A held probe is due: submit it again (it is still counted as submitted). */
static void
check_again_due(void *arg, void *item)
{
	struct check *c = arg;
	struct check_tag *t = item;
	struct check_again *a = t->again;
	struct probe_req req;

	if (c->interrupted) {
		check_again_drop(c, t);
		return;
	}
	req = (struct probe_req){
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

	if (c->interrupted)
		return;		/* no new work: those rows stay without a verdict */
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

/* ---- the output file and ending early ---------------------------------- */

/* For the handler of a second signal: the temporary file to remove. */
static char check_tmp_path[PATH_MAX + 32];
static volatile sig_atomic_t check_tmp_set;

/* A second SIGINT / SIGTERM: no more waiting.  Only async-signal-safe calls. */
static void
check_on_signal_again(int sig)
{
	if (check_tmp_set)
		(void)unlink(check_tmp_path);
	(void)write(STDERR_FILENO, "\n", 1);
	_exit(128 + sig);
}

/* The first SIGINT / SIGTERM (a libevent signal event, so on the loop). */
static void
check_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct check *c = arg;

	(void)what;
	if (c->interrupted)
		return;
	if (c->finished) {
		/* Every verdict is in: only the QUITs are cut short. */
		event_base_loopexit(c->base, NULL);
		return;
	}
	c->interrupted = (int)sig;
	plan_pause(c->plan);
	event_base_loopbreak(c->base);
}

/*
 * Handle sig on the loop, unless it was ignored when we started (a shell
 * starts background jobs with SIGINT ignored: Ctrl-C is not for them).
 * 0 / -1.
 */
static int
check_signal_watch(struct check *c, int sig, struct event **ev)
{
	struct sigaction old;

	if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
		return 0;
	if ((*ev = evsignal_new(c->base, sig, check_on_signal, c)) == NULL ||
	    event_add(*ev, NULL) != 0)
		return -1;
	return 0;
}

/* From now on a signal (that was not ignored) ends the process at once. */
static void
check_signals_final(struct check *c)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = check_on_signal_again;
	sigemptyset(&sa.sa_mask);
	if (c->sigint != NULL) {
		event_del(c->sigint);
		(void)sigaction(SIGINT, &sa, NULL);
	}
	if (c->sigterm != NULL) {
		event_del(c->sigterm);
		(void)sigaction(SIGTERM, &sa, NULL);
	}
}

/*
 * Do two paths name one file (st_dev and st_ino, so symlinks and hard
 * links count)?  b NULL: b is standard output.  Only regular files: the
 * same /dev/null twice harms nothing.
 */
static int
check_same_file(const struct stat *in, const char *b)
{
	struct stat sb;

	if (b == NULL ? fstat(STDOUT_FILENO, &sb) != 0 : stat(b, &sb) != 0)
		return 0;
	return S_ISREG(sb.st_mode) && sb.st_dev == in->st_dev && sb.st_ino == in->st_ino;
}

/* Refuse to write over the input (or -o and --report over each other):
 * 0, or -1 after a message. */
static int
check_refuse_same(const char *input, const char *output, const char *report)
{
	struct stat in, out;
	int to_file = output != NULL && strcmp(output, "-") != 0;

	if (strcmp(input, "-") == 0 ? fstat(STDIN_FILENO, &in) == 0 : stat(input, &in) == 0) {
		if (S_ISREG(in.st_mode) && check_same_file(&in, to_file ? output : NULL)) {
			if (to_file)
				fprintf(stderr, "mxsift check: -o %s is the input file %s: "
				    "refusing to overwrite the list being read\n", output, input);
			else
				fprintf(stderr, "mxsift check: standard output is the input file "
				    "%s: refusing to overwrite the list being read\n", input);
			return -1;
		}
		if (S_ISREG(in.st_mode) && report != NULL && check_same_file(&in, report)) {
			fprintf(stderr, "mxsift check: --report %s is the input file %s: "
			    "refusing to overwrite the list being read\n", report, input);
			return -1;
		}
	}
	if (to_file && report != NULL && stat(output, &out) == 0 && S_ISREG(out.st_mode) &&
	    check_same_file(&out, report)) {
		fprintf(stderr, "mxsift check: -o and --report name the same file %s\n", output);
		return -1;
	}
	return 0;
}

/*
 * Open the output (after the input was opened and its header checked):
 * stdout; a FILE that is not a regular file, directly; else a temporary
 * file next to FILE (a symlink followed) with FILE's mode, or the mode a
 * new file gets.  0 / -1 + err.
 */
static int
check_out_open(struct check *c, const char *output, char *err, size_t errlen)
{
	struct stat st;
	mode_t mask;
	int fd, exists;

	if (output == NULL || strcmp(output, "-") == 0) {
		c->out = stdout;
		c->out_name = "stdout";
		return 0;
	}
	c->out_name = output;
	if (lstat(output, &st) == 0 && S_ISLNK(st.st_mode))
		c->out_final = realpath(output, NULL);   /* NULL: a dangling link */
	if (c->out_final == NULL && (c->out_final = strdup(output)) == NULL)
		goto fail;
	exists = stat(c->out_final, &st) == 0;
	if (exists && !S_ISREG(st.st_mode)) {
		if ((c->out = fopen(c->out_final, "w")) == NULL)
			goto fail;
		return 0;
	}
	if ((c->out_tmp = malloc(strlen(c->out_final) + 16)) == NULL)
		goto fail;
	snprintf(c->out_tmp, strlen(c->out_final) + 16, "%s.tmp.XXXXXX", c->out_final);
	if ((fd = mkostemp(c->out_tmp, O_CLOEXEC)) == -1) {
		int e = errno;

		free(c->out_tmp);
		c->out_tmp = NULL;
		/* A writable FILE in a directory we may not write: FILE itself,
		 * as before (the input is valid by now, at least). */
		if (exists && (e == EACCES || e == EPERM || e == EROFS) &&
		    (c->out = fopen(c->out_final, "w")) != NULL)
			return 0;
		snprintf(err, errlen, "%s: cannot create a temporary file next to it: %s",
		    output, strerror(e));
		return -1;
	}
	if (strlen(c->out_tmp) < sizeof(check_tmp_path)) {
		memcpy(check_tmp_path, c->out_tmp, strlen(c->out_tmp) + 1);
		check_tmp_set = 1;
	}
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, exists ? st.st_mode & 07777 : 0666 & ~mask) != 0 ||
	    (c->out = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", c->out_tmp, strerror(errno));
		close(fd);
		unlink(c->out_tmp);
		check_tmp_set = 0;
		return -1;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", output, strerror(errno));
	return -1;
}

enum check_out_end { OUT_COMMIT, OUT_PARTIAL, OUT_DISCARD };

/*
 * Close the output: COMMIT renames the temporary file over FILE, PARTIAL
 * to FILE.partial, DISCARD removes it.  0, or -1 after a message (the
 * temporary file is then removed and FILE left alone).
 */
static int
check_out_close(struct check *c, enum check_out_end how)
{
	char *partial = NULL;
	const char *to = NULL;
	int rc = 0;

	if (c->out == NULL)
		return 0;
	if (fflush(c->out) != 0 || ferror(c->out))
		rc = -1;
	if (c->out == stdout) {
		c->out = NULL;
		goto out;
	}
	/* A renamed file must hold its bytes before it takes FILE's name. */
	if (rc == 0 && c->out_tmp != NULL && how != OUT_DISCARD && fsync(fileno(c->out)) != 0)
		rc = -1;
	if (fclose(c->out) != 0)
		rc = -1;
	c->out = NULL;
	if (c->out_tmp == NULL)
		goto out;
	if (rc == 0 && how == OUT_COMMIT)
		to = c->out_final;
	else if (rc == 0 && how == OUT_PARTIAL) {
		if ((partial = malloc(strlen(c->out_final) + 9)) == NULL)
			rc = -1;
		else
			sprintf(partial, "%s.partial", c->out_final);
		to = partial;
	}
	if (to != NULL && rename(c->out_tmp, to) != 0)
		rc = -1;
	if (to == NULL || rc != 0)
		(void)unlink(c->out_tmp);
	check_tmp_set = 0;
out:
	if (rc != 0 && how != OUT_DISCARD)
		fprintf(stderr, "mxsift check: writing %s: %s\n", c->out_name, strerror(errno));
	free(partial);
	return rc;
}

/*
 * After SIGINT / SIGTERM: write what is final, keep it (FILE.partial),
 * say so, QUIT the sessions briefly.  Returns the exit status.
 */
static int
check_interrupted(struct check *c)
{
	struct plan_stats ps;
	int rc = 128 + c->interrupted;

	check_signals_final(c);
	c->frozen = 1;
	plan_get_stats(c->plan, &ps);
	if (check_drain(c, DRAIN_SKIP) != 0) {
		fprintf(stderr, "mxsift check: writing %s: %s\n", c->out_name, strerror(errno));
		(void)check_out_close(c, OUT_DISCARD);
		return rc;
	}
	if (check_out_close(c, OUT_PARTIAL) != 0)
		return rc;
	fprintf(stderr, "mxsift check: interrupted: %llu of %llu rows read written%s%s%s; "
	    "the output is incomplete%s\n", (unsigned long long)c->rows_written,
	    (unsigned long long)ps.rows, c->out_tmp != NULL ? " to " : "",
	    c->out_tmp != NULL ? c->out_final : "", c->out_tmp != NULL ? ".partial" : "",
	    ps.reading ? " (the input was not read to its end)" : "");
	/* Polite to the servers still talking to us, briefly. */
	c->finished = 1;
	check_close_sessions(c);
	event_base_dispatch(c->base);
	return rc;
}

/* Long options without a short letter. */
enum {
	CHECK_OPT_CONNECT_TIMEOUT = 256,
	CHECK_OPT_GREETING_TIMEOUT,
	CHECK_OPT_COMMAND_TIMEOUT,
};

/* --connect-timeout, --greeting-timeout, --command-timeout: *ms, or -1
 * after saying what to fix. */
static int
check_timeout_opt(const char *name, const char *v, unsigned *ms)
{
	const char *why = duration_parse_timeout(v, ms);

	if (why == NULL)
		return 0;
	fprintf(stderr, "mxsift check: --%s %s, not '%s'\n", name, why, v);
	return -1;
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
		{ "connect-timeout", required_argument, NULL, CHECK_OPT_CONNECT_TIMEOUT },
		{ "greeting-timeout", required_argument, NULL, CHECK_OPT_GREETING_TIMEOUT },
		{ "command-timeout", required_argument, NULL, CHECK_OPT_COMMAND_TIMEOUT },
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
		case 'c':
		case 'F':
			/* An empty name is a mistake, not "the default". */
			if (*optarg == '\0') {
				fprintf(stderr, "mxsift check: --%s wants a %s\n",
				    ch == 'c' ? "column" : "field", ch == 'c' ?
				    "header name or a 1-based number" : "member name");
				return MXSIFT_EXIT_USAGE;
			}
			if (ch == 'c')
				io.column = optarg;
			else
				io.field = optarg;
			break;
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
		/* the checks the config file and MXSIFT_* get: a space or
		 * control character would reach the wire */
		case 'H':
			if (config_check_flag("mxsift check", "helo", optarg) == -1)
				return MXSIFT_EXIT_USAGE;
			ep.helo_name = optarg;
			break;
		case 'M':
			if (config_check_flag("mxsift check", "mail-from", optarg) == -1)
				return MXSIFT_EXIT_USAGE;
			ep.mail_from = optarg;
			break;
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
		case CHECK_OPT_CONNECT_TIMEOUT:
			if (check_timeout_opt("connect-timeout", optarg, &ep.connect_timeout_ms) == -1)
				return MXSIFT_EXIT_USAGE;
			break;
		case CHECK_OPT_GREETING_TIMEOUT:
			if (check_timeout_opt("greeting-timeout", optarg, &ep.greeting_timeout_ms) == -1)
				return MXSIFT_EXIT_USAGE;
			break;
		case CHECK_OPT_COMMAND_TIMEOUT:
			if (check_timeout_opt("command-timeout", optarg, &ep.command_timeout_ms) == -1)
				return MXSIFT_EXIT_USAGE;
			break;
		case 'h': check_usage(stdout); return MXSIFT_EXIT_OK;
		default: check_usage(stderr); return MXSIFT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "mxsift check: exactly one input FILE is required (try --help)\n");
		return MXSIFT_EXIT_USAGE;
	}
	if (check_refuse_same(argv[optind], output, report) != 0)
		return MXSIFT_EXIT_USAGE;
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
	/* A lanes file that is missing or broken is named before any work
	 * (engine_new would only fail, as "out of memory"): a --lanes FILE is
	 * the user's mistake (exit 2), a broken shipped default is not (1). */
	if (ep.lanes_file != NULL && engine_check_rules(ep.lanes_file, err, sizeof(err)) == -1) {
		int shipped = ep.lanes_file == lanes_default;

		fprintf(stderr, "mxsift check: %s: %s\n", shipped ? "lanes" : "--lanes", err);
		lists_close(c.lists);
		return shipped ? MXSIFT_EXIT_FAILURE : MXSIFT_EXIT_USAGE;
	}
	c.base = engine_event_base_new();
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
	/* A truncated gzip file: verdicts for the rows before the cut. */
	pp.keep_going = 1;
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
	if (plan_load(c.plan, argv[optind], &io, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxsift check: %s\n", err);
		rc = MXSIFT_EXIT_INPUT;
		goto done;
	}
	/* The input is open and its header checked: now the output, before
	 * the work, so a bad path fails fast. */
	if (check_out_open(&c, output, err, sizeof(err)) != 0) {
		fprintf(stderr, "mxsift check: %s\n", err);
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	if (check_signal_watch(&c, SIGINT, &c.sigint) != 0 ||
	    check_signal_watch(&c, SIGTERM, &c.sigterm) != 0) {
		fprintf(stderr, "mxsift check: cannot handle signals\n");
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	if (fmt == FMT_TABLE)
		fprintf(c.out, "%7s  %-*s  %-13s  %-18s  %4s  %-7s  %s\n", "LINE",
		    CHECK_TABLE_INPUT, "INPUT", "STATUS", "REASON", "CODE", "ENH",
		    "MX HOST / DETAIL");
	else if (verdict_write_header(c.out, fmt == FMT_JSONL ? VF_JSONL : VF_CSV) == -1) {
		fprintf(stderr, "mxsift check: writing %s: %s\n", c.out_name, strerror(errno));
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
	if (c.tick != NULL)
		event_del(c.tick);
	check_progress(&c, 1);
	if (c.interrupted) {
		rc = check_interrupted(&c);
		goto done;
	}
	check_signals_final(&c);
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
	if (check_drain(&c, DRAIN_FORCE) != 0) {
		fprintf(stderr, "mxsift check: writing %s: %s\n", c.out_name, strerror(errno));
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
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
	if (!quiet)
		fprintf(stderr, "checked %llu addresses: deliverable %llu, undeliverable %llu, "
		    "risky %llu, unknown %llu (%lu SMTP connections, %lu RCPT, %lu 503 replies)\n",
		    (unsigned long long)c.done, (unsigned long long)c.by_status[VS_DELIVERABLE],
		    (unsigned long long)c.by_status[VS_UNDELIVERABLE],
		    (unsigned long long)c.by_status[VS_RISKY],
		    (unsigned long long)c.by_status[VS_UNKNOWN], es.connections, es.rcpts,
		    es.replies_503);
	if (c.rows_written != ps.rows) {
		fprintf(stderr, "mxsift check: internal error: %llu rows read, %llu written\n",
		    (unsigned long long)ps.rows, (unsigned long long)c.rows_written);
		rc = MXSIFT_EXIT_FAILURE;
	}
	/* The rows are written either way; the exit status tells a script
	 * that the output is not what the list deserves. */
	if (plan_input_error(c.plan) != NULL) {
		fprintf(stderr, "mxsift check: %s: the input ends there; the %llu rows "
		    "before it have their verdicts\n", plan_input_error(c.plan),
		    (unsigned long long)ps.rows);
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (ps.domains_dns_error > 0 && ps.domains_dns_error == ps.domains) {
		fprintf(stderr, "mxsift check: no answer from the DNS resolver %s for any of "
		    "%llu domains: every address is unknown/dns_error (is --dns right?)\n",
		    dns_server != NULL ? dns_server : "(the system's)",
		    (unsigned long long)ps.domains);
		rc = MXSIFT_EXIT_FAILURE;
	}
	/* An empty list (0 bytes, blank lines, a header alone) is not an
	 * error — a nightly export may have had nothing today — but it is
	 * worth a word even with --quiet: nothing was checked. */
	if (ps.rows == 0 && plan_input_error(c.plan) == NULL)
		fprintf(stderr, "mxsift check: %s: no rows (the input is empty, blank "
		    "lines or a header only): nothing to check\n",
		    strcmp(argv[optind], "-") == 0 ? "<stdin>" : argv[optind]);
	if (check_out_close(&c, OUT_COMMIT) != 0)
		rc = MXSIFT_EXIT_FAILURE;
done:
	/* Still open: the run failed; FILE keeps what it had. */
	(void)check_out_close(&c, OUT_DISCARD);
	if (c.sigint != NULL)
		event_free(c.sigint);
	if (c.sigterm != NULL)
		event_free(c.sigterm);
	if (c.quit_poll != NULL)
		event_free(c.quit_poll);
	free(c.out_final);
	free(c.out_tmp);
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
