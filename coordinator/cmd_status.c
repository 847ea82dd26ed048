/*
 * cmd_status.c — `mxsift status` and `mxsift export`: read a fleet job back
 * from Redis (jobstore.h).
 *
 * status: the job's meta (rows, unique, invalid, duplicates, total, state)
 * and its counts (done, per status, per reason), the operational counters
 * (addresses sent to the retry topic, dead-lettered messages and their
 * addresses, rate-limit back-offs) and the dead letters no job could be
 * named for (global), as aligned "key value" lines for people or one JSON
 * object (--format json) for scripts; then the lanes the live workers
 * report (jobstore_get_lane_reports: fleet-wide, not per job — a lane is an
 * MX domain, whatever the jobs in it): per lane its worker, current and
 * configured rate, queue, sessions and backoff, backed-off lanes first.
 * The job is complete when done ==
 * total and the coordinator marked it submitted; "incomplete" when the
 * verdicts still missing are exactly those of dead-lettered messages (they
 * will never come: see the dead-letter topic).
 *
 * export: every verdict (HSCAN, so a big job never sits in memory at once)
 * as CSV or JSONL through verdict_write_row(): line 0 and no input text
 * (the fleet keeps one verdict per unique address, not per input row),
 * address = the normalised address (an invalid row: its trimmed text).
 * Rows come in Redis's hash order, not input order.  Exporting a job that is
 * still running is allowed and says so on stderr.
 *
 * Exit codes: 0 ok; 1 runtime failure or no such job; 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "config.h"
#include "export_input.h"
#include "intake.h"
#include "jobstore.h"
#include "log.h"
#include "redis_url.h"
#include "term.h"
#include "verdict.h"

struct status_args {
	const char *job, *redis, *format, *output;
	/* export --input: the submitted list, read as submit read it */
	const char *input, *column, *field, *input_format;
};

/* Shared option parsing for both commands; returns -1 (usage), 1 (help
 * printed) or 0. */
static int
status_parse(int argc, char **argv, struct status_args *a, int with_output,
    void (*usage)(FILE *))
{
	enum { OPT_LOG_LEVEL = 256, OPT_INPUT_FORMAT };
	static const struct option longopts[] = {
		{ "job", required_argument, NULL, 'j' },
		{ "redis", required_argument, NULL, 'r' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "input", required_argument, NULL, 'i' },
		{ "column", required_argument, NULL, 'c' },
		{ "field", required_argument, NULL, 'F' },
		{ "input-format", required_argument, NULL, OPT_INPUT_FORMAT },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	if (config_command(with_output ? "mxsift export" : "mxsift status", argv[0], longopts,
	    with_output ? "j:r:f:o:i:c:F:h" : "j:r:f:h", &argc, &argv) == -1)
		return -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, with_output ? "j:r:f:o:i:c:F:h" : "j:r:f:h",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': a->job = optarg; break;
		case 'r': a->redis = optarg; break;
		case 'f': a->format = optarg; break;
		case 'o':
		case 'i':
		case 'c':
		case 'F':
		case OPT_INPUT_FORMAT:
			if (!with_output) {
				fprintf(stderr, "mxsift %s: unknown option\n", argv[0]);
				goto bad;
			}
			if (ch == 'o')
				a->output = optarg;
			else if (ch == 'i')
				a->input = optarg;
			else if (ch == 'c')
				a->column = optarg;
			else if (ch == 'F')
				a->field = optarg;
			else
				a->input_format = optarg;
			break;
		case OPT_LOG_LEVEL: {
			int l = log_parse_level(optarg);
			if (l < 0) {
				fprintf(stderr, "mxsift %s: unknown log level '%s'\n", argv[0],
				    optarg);
				goto bad;
			}
			log_set_level((enum log_level)l);
			break;
		}
		case 'h': usage(stdout); return 1;
		default: goto bad;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mxsift %s: unexpected argument '%s'\n", argv[0], argv[optind]);
		goto bad;
	}
	if (a->job == NULL || a->redis == NULL) {
		fprintf(stderr, "mxsift %s: --job and --redis are required\n", argv[0]);
		goto bad;
	}
	if (!jobstore_valid_name(a->job)) {
		fprintf(stderr, "mxsift %s: bad job name '%s'\n", argv[0], a->job);
		goto bad;
	}
	if (redis_url_check_option(with_output ? "mxsift export" : "mxsift status",
	    a->redis) == -1)
		return -1;
	if (a->input == NULL && (a->column != NULL || a->field != NULL || a->input_format != NULL)) {
		fprintf(stderr, "mxsift %s: --column, --field and --input-format go with --input\n",
		    argv[0]);
		goto bad;
	}
	if ((a->column != NULL && a->column[0] == '\0') || (a->field != NULL && a->field[0] == '\0')) {
		fprintf(stderr, "mxsift %s: --%s must not be empty\n", argv[0],
		    a->column != NULL && a->column[0] == '\0' ? "column" : "field");
		goto bad;
	}
	if (a->input_format != NULL && intake_format_parse(a->input_format) < 0) {
		fprintf(stderr, "mxsift %s: --input-format must be auto, text, csv, tsv or jsonl, "
		    "not '%s'\n", argv[0], a->input_format);
		goto bad;
	}
	return 0;
bad:
	usage(stderr);
	return -1;
}

/* Connect and load meta; NULL when Redis fails or the job is unknown
 * (*rc set). */
static struct jobstore *
status_open(const char *cmd, const struct status_args *a, struct jobstore_meta *m, int *rc)
{
	struct jobstore *js;
	char err[512];
	int found;

	*rc = MXSIFT_EXIT_FAILURE;
	js = jobstore_connect(a->redis, 5000, err, sizeof(err));
	if (js == NULL) {
		fprintf(stderr, "mxsift %s: %s\n", cmd, err);
		return NULL;
	}
	found = jobstore_get_meta(js, a->job, m);
	if (found != 1) {
		if (found == 0)
			fprintf(stderr, "mxsift %s: no job '%s' in Redis\n", cmd, a->job);
		else
			fprintf(stderr, "mxsift %s: %s\n", cmd, jobstore_errstr(js));
		jobstore_close(js);
		return NULL;
	}
	*rc = MXSIFT_EXIT_OK;
	return js;
}

/* ---- lanes: what the workers report ---------------------------------------- */

/* A JSON string.  ascii: bytes outside printable ASCII become '?' (worker
 * ids and MX domains are ASCII; anything else in Redis is not ours). */
static void
status_json_str(FILE *f, const char *s, int ascii)
{
	fputc('"', f);
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else if (ascii && ch >= 0x7f)
			fputc('?', f);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static int64_t
status_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* paused (a pause not over yet, by this host's clock), slowed (its rate is
 * not its rule's: it recovers step by step with each answer), or ok. */
static const char *
status_lane_state(const struct jobstore_lane *l, int64_t now)
{
	if (l->paused_until > now)
		return "paused";
	return jobstore_lane_backed_off(l, now) ? "slowed" : "ok";
}

#define STATUS_TOP_LANES 20   /* lanes not backed off in the text table */

struct status_lane_ref {
	const struct jobstore_lane_report *r;
	const struct jobstore_lane *l;
	int backed_off;
};

/* Across workers as within one: backed-off lanes first, then the deepest
 * queues, then by MX domain and worker. */
static int
status_lane_cmp(const void *pa, const void *pb)
{
	const struct status_lane_ref *a = pa, *b = pb;
	int c;

	if (a->backed_off != b->backed_off)
		return b->backed_off - a->backed_off;
	if (a->l->queued != b->l->queued)
		return a->l->queued < b->l->queued ? 1 : -1;
	if ((c = strcmp(a->l->mx_domain, b->l->mx_domain)) != 0)
		return c;
	return strcmp(a->r->worker, b->r->worker);
}

static void
status_rate(char *out, size_t outlen, double rate)
{
	if (rate <= 0)
		snprintf(out, outlen, "unlimited");
	else
		snprintf(out, outlen, "%.3g/s", rate);
}

static void
status_print_lanes_text(FILE *f, const struct jobstore_lane_report *reps, size_t nreps)
{
	static const char *const head[7] = { "WORKER", "MX_DOMAIN", "RATE", "RULE", "QUEUED",
		"SESSIONS", "BACKOFF" };
	struct status_lane_ref *refs = NULL;
	uint64_t lanes = 0, backed_off = 0;
	size_t n = 0, nbacked = 0, w[6];
	int64_t now = status_now_ms();
	int listed;

	for (size_t i = 0; i < nreps; i++) {
		lanes += reps[i].lanes;
		backed_off += reps[i].backed_off;
		n += reps[i].n;
	}
	if (n > 0)
		refs = calloc(n, sizeof(*refs));   /* no memory: the counts only */
	listed = n == 0 || refs != NULL;
	n = 0;
	for (size_t i = 0; refs != NULL && i < nreps; i++)
		for (size_t j = 0; j < reps[i].n; j++) {
			refs[n].r = &reps[i];
			refs[n].l = &reps[i].lane[j];
			refs[n].backed_off = jobstore_lane_backed_off(refs[n].l, now);
			nbacked += refs[n].backed_off;
			n++;
		}
	if (n > 1)
		qsort(refs, n, sizeof(*refs), status_lane_cmp);
	/* Every backed-off lane, then the deepest queues of the fleet: a
	 * screen, not every worker's top lanes (--format json has them). */
	if (n > nbacked + STATUS_TOP_LANES)
		n = nbacked + STATUS_TOP_LANES;
	fprintf(f, "%-14s %zu\n", "workers", nreps);
	fprintf(f, "%-14s %" PRIu64 " (%" PRIu64 " backed off, %zu shown", "lanes", lanes,
	    backed_off, n);
	/* Say why the others are not: a worker reports only lanes with work
	 * (queued recipients or a session) or backed off, and its 20 deepest
	 * queues (LANESTATUS_TOP).  With fewer than 20 such rows and every
	 * backed-off lane listed, nothing was cut: the rest are idle. */
	if (listed && n < lanes) {
		if (n - nbacked < STATUS_TOP_LANES && nbacked == backed_off)
			fprintf(f, ", %" PRIu64 " idle: nothing queued, no session", lanes - n);
		else
			fprintf(f, "; the others are idle or past the %d deepest queues",
			    STATUS_TOP_LANES);
	}
	fprintf(f, ")\n");
	if (n == 0) {
		free(refs);
		return;
	}
	for (int c = 0; c < 6; c++)
		w[c] = strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		char rate[24], rule[24], q[24], s[32];

		status_rate(rate, sizeof(rate), refs[i].l->rate);
		status_rate(rule, sizeof(rule), refs[i].l->rule_rate);
		snprintf(q, sizeof(q), "%" PRIu64, refs[i].l->queued);
		snprintf(s, sizeof(s), "%u/%u", refs[i].l->sessions, refs[i].l->max_sessions);
		const size_t len[6] = { strlen(refs[i].r->worker), strlen(refs[i].l->mx_domain),
			strlen(rate), strlen(rule), strlen(q), strlen(s) };
		for (int c = 0; c < 6; c++)
			if (len[c] > w[c])
				w[c] = len[c];
	}
	fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %*s  %-*s  %s\n", (int)w[0], head[0], (int)w[1],
	    head[1], (int)w[2], head[2], (int)w[3], head[3], (int)w[4], head[4], (int)w[5],
	    head[5], head[6]);
	for (size_t i = 0; i < n; i++) {
		const struct jobstore_lane *l = refs[i].l;
		char rate[24], rule[24], q[24], s[32], until[16] = "?", backoff[96];
		time_t t = (time_t)(l->paused_until / 1000);
		struct tm tm;

		status_rate(rate, sizeof(rate), l->rate);
		status_rate(rule, sizeof(rule), l->rule_rate);
		snprintf(q, sizeof(q), "%" PRIu64, l->queued);
		snprintf(s, sizeof(s), "%u/%u", l->sessions, l->max_sessions);
		if (l->paused_until > now) {
			if (gmtime_r(&t, &tm) != NULL)
				strftime(until, sizeof(until), "%H:%M:%SZ", &tm);
			snprintf(backoff, sizeof(backoff), "paused until %s (%" PRId64 "s), level %u, "
			    "%" PRIu64 " pause%s", until, (l->paused_until - now + 999) / 1000,
			    l->backoff_level, l->backoffs, l->backoffs == 1 ? "" : "s");
		} else if (refs[i].backed_off)
			snprintf(backoff, sizeof(backoff), "slowed, %" PRIu64 " pause%s", l->backoffs,
			    l->backoffs == 1 ? "" : "s");
		else
			snprintf(backoff, sizeof(backoff), "-");
		fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %*s  %-*s  %s\n", (int)w[0],
		    refs[i].r->worker, (int)w[1], l->mx_domain, (int)w[2], rate, (int)w[3], rule,
		    (int)w[4], q, (int)w[5], s, backoff);
	}
	free(refs);
}

static void
status_print_lanes_json(FILE *f, const struct jobstore_lane_report *reps, size_t nreps)
{
	int64_t now = status_now_ms();

	fprintf(f, ",\"workers\":[");
	for (size_t i = 0; i < nreps; i++) {
		const struct jobstore_lane_report *r = &reps[i];

		fprintf(f, "%s{\"id\":", i ? "," : "");
		status_json_str(f, r->worker, 1);
		fprintf(f, ",\"updated_at\":%" PRId64 ",\"interval_ms\":%u,\"lanes_total\":%" PRIu64
		    ",\"backed_off_total\":%" PRIu64 ",\"lanes\":[", r->updated_at, r->interval_ms,
		    r->lanes, r->backed_off);
		for (size_t j = 0; j < r->n; j++) {
			const struct jobstore_lane *l = &r->lane[j];

			fprintf(f, "%s{\"mx_domain\":", j ? "," : "");
			status_json_str(f, l->mx_domain, 1);
			fprintf(f, ",\"state\":\"%s\",\"rate\":%.6g,\"rule_rate\":%.6g,\"queued\":%"
			    PRIu64 ",\"sessions\":%u,\"max_sessions\":%u,\"backoff_level\":%u,"
			    "\"backoffs\":%" PRIu64 ",\"paused_until\":%" PRId64 "}",
			    status_lane_state(l, now), l->rate, l->rule_rate, l->queued, l->sessions,
			    l->max_sessions, l->backoff_level, l->backoffs, l->paused_until);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "]");
}

/* ---- status -------------------------------------------------------------- */

static void
status_usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift status --job NAME --redis URL [--format text|json]\n"
	    "\n"
	    "Show a fleet job's progress: total verdicts expected, verdicts done, the\n"
	    "verdicts reused from earlier jobs (submit --reuse-within), the\n"
	    "counts per status and per reason, addresses retried later (temporary\n"
	    "answers), dead-lettered messages, and rate-limit back-offs.  Then the\n"
	    "lanes (MX domains) the running workers report, fleet-wide: backed-off\n"
	    "lanes first, then the deepest queues, each with its worker (HOST:PID),\n"
	    "current rate and the rule's, recipients queued, sessions open / allowed,\n"
	    "and backoff (paused until when, or slowed and recovering).\n"
	    "\n"
	    "Options:\n"
	    "  -j, --job NAME          the job given to `mxsift submit`\n"
	    "  -r, --redis URL         redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
	    "  -f, --format FMT        text (default) or json (one object)\n"
	    "      --log-level LEVEL   debug, info, warn (default), error\n"
	    "      --config FILE       configuration file ([status] section; see mxsift(1))\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Exit codes: 0 ok; 1 Redis failure or no such job; 2 usage error.\n");
}

/*
 * The job's state as status and export say it, derived from the meta's
 * state (planning, submitted, failed) and the counts: a submitted job is
 * complete once every verdict is in, incomplete when dead-lettered addresses
 * make up the rest, else running.
 */
static const char *
status_state(const struct jobstore_meta *m, const struct jobstore_counts *c)
{
	if (strcmp(m->state, "submitted") == 0 && c->done >= m->total)
		return "complete";
	if (strcmp(m->state, "submitted") == 0 && c->dead_addresses > 0 &&
	    c->done + c->dead_addresses >= m->total)
		return "incomplete";
	if (strcmp(m->state, "submitted") == 0)
		return "running";
	return m->state[0] ? m->state : "unknown";
}

static void
status_print_text(FILE *f, const char *job, const struct jobstore_meta *m,
    const struct jobstore_counts *c, uint64_t dead_global,
    const struct jobstore_lane_report *reps, size_t nreps)
{
	char when[32] = "-";
	time_t t = (time_t)m->submitted_at;
	struct tm tm;

	if (m->submitted_at > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "%-14s %s\n", "job", job);
	fprintf(f, "%-14s %s\n", "state", status_state(m, c));
	fprintf(f, "%-14s %s\n", "submitted_at", when);
	fprintf(f, "%-14s %s\n", "file", m->file[0] ? m->file : "-");
	fprintf(f, "%-14s %" PRIu64 "\n", "rows", m->rows);
	fprintf(f, "%-14s %" PRIu64 "\n", "unique", m->unique);
	fprintf(f, "%-14s %" PRIu64 "\n", "invalid", m->invalid);
	fprintf(f, "%-14s %" PRIu64 "\n", "duplicates", m->duplicates);
	fprintf(f, "%-14s %" PRIu64 "\n", "tasks", m->tasks);
	if (m->has_reused)
		fprintf(f, "%-14s %" PRIu64 "\n", "reused", m->reused);
	fprintf(f, "%-14s %" PRIu64 "\n", "total", m->total);
	fprintf(f, "%-14s %" PRIu64 " (%.1f%%)\n", "done", c->done,
	    m->total ? 100.0 * (double)c->done / (double)m->total : 100.0);
	for (int i = 0; i < VS__COUNT; i++)
		fprintf(f, "status %s%-22s%s %" PRIu64 "\n", term_status_color(f, (enum verdict_status)i),
		    verdict_status_name((enum verdict_status)i), term_reset(f), c->status[i]);
	for (int i = 0; i < VR__COUNT; i++)
		if (c->reason[i] > 0)
			fprintf(f, "reason %-22s %" PRIu64 "\n",
			    verdict_reason_name((enum verdict_reason)i), c->reason[i]);
	fprintf(f, "%-14s %" PRIu64 "\n", "retried", c->retried);
	fprintf(f, "%-14s %" PRIu64 " (%" PRIu64 " addresses)\n", "dead_lettered", c->dead,
	    c->dead_addresses);
	fprintf(f, "%-14s %" PRIu64 "\n", "backed_off", c->backed_off);
	fprintf(f, "%-14s %" PRIu64 "\n", "dead_no_job", dead_global);
	status_print_lanes_text(f, reps, nreps);
}

static void
status_print_json(FILE *f, const char *job, const struct jobstore_meta *m,
    const struct jobstore_counts *c, uint64_t dead_global,
    const struct jobstore_lane_report *reps, size_t nreps)
{
	/* job names are [A-Za-z0-9._-] and state is ours: no escaping needed
	 * except for the file path. */
	fprintf(f, "{\"job\":\"%s\",\"state\":\"%s\",\"submitted_at\":%" PRId64 ",\"file\":",
	    job, status_state(m, c), m->submitted_at);
	status_json_str(f, m->file, 0);
	fprintf(f, ",\"rows\":%" PRIu64 ",\"unique\":%" PRIu64 ",\"invalid\":%" PRIu64
	    ",\"duplicates\":%" PRIu64 ",\"tasks\":%" PRIu64, m->rows, m->unique, m->invalid,
	    m->duplicates, m->tasks);
	if (m->has_reused)
		fprintf(f, ",\"reused\":%" PRIu64, m->reused);
	fprintf(f, ",\"total\":%" PRIu64 ",\"done\":%" PRIu64 ",\"status\":{", m->total,
	    c->done);
	for (int i = 0; i < VS__COUNT; i++)
		fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "",
		    verdict_status_name((enum verdict_status)i), c->status[i]);
	fprintf(f, "},\"reason\":{");
	for (int i = 0, n = 0; i < VR__COUNT; i++)
		if (c->reason[i] > 0)
			fprintf(f, "%s\"%s\":%" PRIu64, n++ ? "," : "",
			    verdict_reason_name((enum verdict_reason)i), c->reason[i]);
	fprintf(f, "},\"retried\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"dead_addresses\":%" PRIu64
	    ",\"backed_off\":%" PRIu64 ",\"dead_no_job\":%" PRIu64, c->retried, c->dead,
	    c->dead_addresses, c->backed_off, dead_global);
	status_print_lanes_json(f, reps, nreps);
	fprintf(f, "}\n");
}

int
cmd_status(int argc, char **argv)
{
	struct status_args a = { 0 };
	struct jobstore_meta m;
	struct jobstore_counts c;
	struct jobstore *js;
	struct jobstore_lane_report *reps = NULL;
	size_t nreps = 0;
	uint64_t dead_global = 0;
	int rc, json = 0;

	log_set_level(LOG_WARN);
	rc = status_parse(argc, argv, &a, 0, status_usage);
	if (rc != 0)
		return rc == 1 ? MXSIFT_EXIT_OK : MXSIFT_EXIT_USAGE;
	if (a.format != NULL) {
		if (strcmp(a.format, "json") == 0)
			json = 1;
		else if (strcmp(a.format, "text") != 0) {
			fprintf(stderr, "mxsift status: --format wants text or json\n");
			status_usage(stderr);
			return MXSIFT_EXIT_USAGE;
		}
	}
	if ((js = status_open("status", &a, &m, &rc)) == NULL)
		return rc;
	if (jobstore_get_counts(js, a.job, &c) == -1 ||
	    jobstore_get_dead_global(js, &dead_global) == -1) {
		fprintf(stderr, "mxsift status: %s\n", jobstore_errstr(js));
		jobstore_close(js);
		return MXSIFT_EXIT_FAILURE;
	}
	/* The lanes are the fleet's, not the job's: a failure to read them
	 * does not hide the job's counts. */
	if (jobstore_get_lane_reports(js, &reps, &nreps) == -1) {
		fprintf(stderr, "mxsift status: lanes: %s\n", jobstore_errstr(js));
		reps = NULL;
		nreps = 0;
	}
	jobstore_close(js);
	if (json)
		status_print_json(stdout, a.job, &m, &c, dead_global, reps, nreps);
	else
		status_print_text(stdout, a.job, &m, &c, dead_global, reps, nreps);
	jobstore_lane_reports_free(reps, nreps);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "mxsift status: write error: %s\n", strerror(errno));
		return MXSIFT_EXIT_FAILURE;
	}
	return MXSIFT_EXIT_OK;
}

/* ---- export -------------------------------------------------------------- */

static void
export_usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift export --job NAME --redis URL [--format csv|jsonl] [-o OUT]\n"
	    "                     [--input FILE [--column C] [--field F] [--input-format FMT]]\n"
	    "\n"
	    "Write every verdict of a fleet job, one row per unique address (and per\n"
	    "invalid input row), in no particular order (Redis's scan order).  input\n"
	    "is null, and line is empty but for invalid rows: the fleet keeps\n"
	    "verdicts per address, not per input row (an invalid row's address is its\n"
	    "text).\n"
	    "\n"
	    "With --input, the list that was submitted is read again and joined with\n"
	    "the job's verdicts: one row per input row, in input order, with its line\n"
	    "and text, as `mxsift check` writes them (duplicates get their first\n"
	    "spelling's verdict).  A row the job has no verdict for (not finished, or\n"
	    "not this job's list) is unknown/temp_failure 'no verdict in job NAME',\n"
	    "counted on stderr, exit 1.\n"
	    "\n"
	    "Options:\n"
	    "  -j, --job NAME          the job given to `mxsift submit`\n"
	    "  -r, --redis URL         redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
	    "  -f, --format FMT        csv (default) or jsonl\n"
	    "  -o, --output FILE       write to FILE (default: stdout)\n"
	    "  -i, --input FILE        the submitted list (- for stdin): one row per its row\n"
	    "  -c, --column NAME|N     with --input: as given to submit (default: email)\n"
	    "  -F, --field NAME        with --input: JSONL member, as given to submit\n"
	    "      --input-format FMT  with --input: auto (default), text, csv, tsv, jsonl\n"
	    "      --log-level LEVEL   debug, info, warn (default), error\n"
	    "      --config FILE       configuration file ([export] section; see mxsift(1))\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Columns: line,input,address,status,reason,smtp_code,enhanced_code,mx_host,\n"
	    "detail,reply,suggestion.\n"
	    "\n"
	    "Exit codes: 0 ok; 1 Redis failure, no such job, a write error, the job not\n"
	    "complete (what is there is written), or (--input) rows without a verdict;\n"
	    "2 usage error; 3 (--input) the input is unusable.\n");
}

struct export_state {
	FILE *out;
	enum verdict_format fmt;
	uint64_t rows;
	int werr;
};

static int
export_row(void *arg, const char *field, const char *address, const struct verdict *v)
{
	struct export_state *x = arg;
	/* an invalid row is kept per input row ("#line:N"), so its line is known */
	struct verdict_row row = { .line = jobstore_invalid_line(field), .input = NULL,
		.address = address, .v = v };

	if (verdict_write_row(x->out, x->fmt, &row) == -1) {
		x->werr = errno ? errno : EIO;
		return 1;
	}
	x->rows++;
	return 0;
}

int
cmd_export(int argc, char **argv)
{
	struct status_args a = { 0 };
	struct export_state x = { 0 };
	struct jobstore_meta m;
	struct jobstore_counts c;
	struct jobstore *js;
	uint64_t bad = 0;
	int partial = 0;
	int rc;

	log_set_level(LOG_WARN);
	rc = status_parse(argc, argv, &a, 1, export_usage);
	if (rc != 0)
		return rc == 1 ? MXSIFT_EXIT_OK : MXSIFT_EXIT_USAGE;
	x.fmt = VF_CSV;
	if (a.format != NULL) {
		if (strcmp(a.format, "jsonl") == 0 || strcmp(a.format, "json") == 0)
			x.fmt = VF_JSONL;
		else if (strcmp(a.format, "csv") != 0) {
			fprintf(stderr, "mxsift export: --format wants csv or jsonl\n");
			export_usage(stderr);
			return MXSIFT_EXIT_USAGE;
		}
	}
	if ((js = status_open("export", &a, &m, &rc)) == NULL)
		return rc;
	/* the state in status's words: "running", not the meta's "submitted" */
	/* A job not complete is exported as far as it got, and says so in its
	 * exit status too: `mxsift export ... && load` must not load half a
	 * job as if it were all of it. */
	if (jobstore_get_counts(js, a.job, &c) == 0 && strcmp(status_state(&m, &c), "complete") != 0) {
		fprintf(stderr, "mxsift export: job %s is not complete (%" PRIu64 " of %" PRIu64
		    " verdicts, state %s): exporting what is there (exit 1)\n", a.job, c.done,
		    m.total, status_state(&m, &c));
		partial = 1;
	}
	x.out = stdout;
	if (a.output != NULL && strcmp(a.output, "-") != 0) {
		x.out = fopen(a.output, "w");
		if (x.out == NULL) {
			fprintf(stderr, "mxsift export: %s: %s\n", a.output, strerror(errno));
			jobstore_close(js);
			return MXSIFT_EXIT_FAILURE;
		}
	}
	rc = MXSIFT_EXIT_OK;
	errno = 0;
	if (verdict_write_header(x.out, x.fmt) == -1)
		x.werr = errno ? errno : EIO;
	else if (a.input != NULL) {
		struct intake_opts io = { .column = a.column, .field = a.field };
		struct export_input_stats st;
		char err[512];
		int unusable;

		if (a.input_format != NULL)
			io.format = (enum intake_format)intake_format_parse(a.input_format);
		if (export_input(js, a.job, a.input, &io, x.out, x.fmt, &st, &unusable, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "mxsift export: %s\n", err);
			rc = unusable ? MXSIFT_EXIT_INPUT : MXSIFT_EXIT_FAILURE;
		}
		if (st.missing > 0) {
			fprintf(stderr, "mxsift export: %" PRIu64 " of %" PRIu64 " rows have no verdict "
			    "in job %s (written as unknown/temp_failure)\n", st.missing, st.rows, a.job);
			if (rc == MXSIFT_EXIT_OK)
				rc = MXSIFT_EXIT_FAILURE;
		}
	} else if (jobstore_scan_verdicts(js, a.job, export_row, &x, &bad) == -1) {
		fprintf(stderr, "mxsift export: %s\n", jobstore_errstr(js));
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (bad > 0) {
		fprintf(stderr, "mxsift export: %" PRIu64 " undecodable verdicts skipped\n", bad);
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (partial && rc == MXSIFT_EXIT_OK)
		rc = MXSIFT_EXIT_FAILURE;
	if (fflush(x.out) != 0 && x.werr == 0)
		x.werr = errno ? errno : EIO;
	if (x.out != stdout && fclose(x.out) != 0 && x.werr == 0)
		x.werr = errno ? errno : EIO;
	if (x.werr != 0) {
		fprintf(stderr, "mxsift export: write error: %s\n", strerror(x.werr));
		rc = MXSIFT_EXIT_FAILURE;
	}
	jobstore_close(js);
	return rc;
}
