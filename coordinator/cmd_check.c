/*
 * cmd_check.c — `mxsift check FILE`: the whole pipeline in one process.
 *
 * The same front half as `mxsift submit` (plan.c: read, check syntax, dedupe,
 * resolve MX) feeds the same probe engine as `mxsift-worker` (engine.c), with
 * an in-process hand-off instead of Kafka and an output file instead of Redis.
 *
 * Output: one row per input row, in input order, carrying the original text
 * and line number (CSV, JSONL, or an aligned table for people).  A duplicate
 * row repeats the verdict of the first occurrence.  Progress goes to stderr:
 * a bar on a terminal, a line every 10 s otherwise, nothing with --quiet.
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

#include "commands.h"
#include "config.h"
#include "dns.h"
#include "engine.h"
#include "log.h"
#include "plan.h"
#include "report.h"
#include "verdict.h"

enum check_format { FMT_CSV = 0, FMT_JSONL, FMT_TABLE };

struct check {
	struct event_base *base;
	struct dns *dns;
	struct plan *plan;
	struct engine *engine;
	struct event *tick;
	struct verdict **verdicts;   /* by uid; NULL until known */
	size_t nverdicts;            /* capacity */
	uint64_t done;
	uint64_t submitted, probed;  /* recipients handed to / answered by the engine */
	int plan_done, finished;
	int progress;                /* 0 off, 1 bar, 2 lines */
	time_t started, last_line;
	uint64_t by_status[VS__COUNT];
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
	    "      --dns HOST[:PORT]   DNS resolver to use (default: the system's)\n"
	    "      --helo NAME         EHLO name (default: this host's name)\n"
	    "      --mail-from ADDR    reverse path for MAIL FROM (default: null sender <>)\n"
	    "      --smtp-port N       SMTP port of the MX hosts (default: 25)\n"
	    "      --tls MODE          may (default: STARTTLS when offered), require, off\n"
	    "      --no-catch-all      skip the catch-all probe (random local part per domain)\n"
	    "      --log-level LEVEL   debug, info, warn (default), error\n"
	    "  -q, --quiet             no progress output\n"
	    "      --report FILE       also write an HTML report with charts to FILE\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Columns: line,input,address,status,reason,smtp_code,enhanced_code,mx_host,\n"
	    "detail,reply.  status is deliverable, undeliverable, risky or unknown.\n"
	    "\n"
	    "Exit codes: 0 done; 1 runtime failure; 2 usage error; 3 input unusable.\n");
}

static int
check_store(struct check *c, size_t uid, const struct verdict *v)
{
	if (uid >= c->nverdicts) {
		size_t n = c->nverdicts ? c->nverdicts : 1024;
		while (n <= uid)
			n *= 2;
		struct verdict **nv = realloc(c->verdicts, n * sizeof(*nv));
		if (nv == NULL)
			return -1;
		memset(nv + c->nverdicts, 0, (n - c->nverdicts) * sizeof(*nv));
		c->verdicts = nv;
		c->nverdicts = n;
	}
	if (c->verdicts[uid] != NULL) {
		/* Exactly one verdict per uid: a second one is a bug upstream. */
		log_error("duplicate verdict", "uid=%zu", uid);
		return 0;
	}
	c->verdicts[uid] = malloc(sizeof(*v));
	if (c->verdicts[uid] == NULL)
		return -1;
	*c->verdicts[uid] = *v;
	c->done++;
	c->by_status[v->status]++;
	return 0;
}

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
check_on_plan_verdict(void *arg, const struct plan_addr *a, const struct verdict *v)
{
	struct check *c = arg;

	if (check_store(c, a->uid, v) == -1) {
		log_error("out of memory", "uid=%zu", a->uid);
		event_base_loopbreak(c->base);
	}
}

static void
check_on_domain(void *arg, const struct plan_domain *d)
{
	struct check *c = arg;
	struct engine_mx_host *hosts;

	hosts = calloc(d->mx->nhosts ? d->mx->nhosts : 1, sizeof(*hosts));
	if (hosts == NULL) {
		log_error("out of memory", "domain=%s", d->domain);
		event_base_loopbreak(c->base);
		return;
	}
	for (size_t i = 0; i < d->mx->nhosts; i++) {
		hosts[i].name = d->mx->hosts[i].name;
		hosts[i].preference = d->mx->hosts[i].preference;
	}
	for (size_t i = 0; i < d->naddrs; i++) {
		struct probe_req req = {
			.address = d->addrs[i]->address,
			.domain = d->domain,
			.mx_domain = d->mx->mx_domain,
			.hosts = hosts,
			.nhosts = d->mx->nhosts,
			.flags = d->addrs[i]->flags,
			.tag = (void *)(uintptr_t)d->addrs[i]->uid,
		};
		/* On -1 the engine still reports a verdict for the request. */
		c->submitted++;
		(void)engine_submit(c->engine, &req);
	}
	free(hosts);
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
	size_t uid = (size_t)(uintptr_t)tag;

	c->probed++;
	if (check_store(c, uid, v) == -1) {
		log_error("out of memory", "uid=%zu", uid);
		event_base_loopbreak(c->base);
		return;
	}
	check_maybe_finish(c);
}

static void
check_progress(struct check *c, int final)
{
	struct plan_stats ps;
	time_t now = time(NULL);
	double el = difftime(now, c->started);
	double rate;

	if (c->progress == 0)
		return;
	plan_get_stats(c->plan, &ps);
	uint64_t total = ps.unique + ps.invalid;
	rate = el > 0 ? (double)c->done / el : 0.0;
	if (c->progress == 1) {
		int width = 30, fill = total ? (int)(c->done * (uint64_t)width / total) : 0;
		char bar[64];
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(width - fill));
		bar[width] = '\0';
		fprintf(stderr, "\r[%s] %llu/%llu verified  %.1f/s  deliverable %llu  undeliverable %llu  "
		    "risky %llu  unknown %llu ",
		    bar, (unsigned long long)c->done, (unsigned long long)total, rate,
		    (unsigned long long)c->by_status[VS_DELIVERABLE],
		    (unsigned long long)c->by_status[VS_UNDELIVERABLE],
		    (unsigned long long)c->by_status[VS_RISKY],
		    (unsigned long long)c->by_status[VS_UNKNOWN]);
		if (final)
			fputc('\n', stderr);
	} else if (final || now - c->last_line >= 10) {
		c->last_line = now;
		fprintf(stderr, "progress rows=%llu unique=%llu invalid=%llu duplicates=%llu "
		    "domains=%llu done=%llu/%llu rate=%.1f/s\n",
		    (unsigned long long)ps.rows, (unsigned long long)ps.unique,
		    (unsigned long long)ps.invalid, (unsigned long long)ps.duplicates,
		    (unsigned long long)ps.domains, (unsigned long long)c->done,
		    (unsigned long long)total, rate);
	}
	fflush(stderr);
}

static void
check_on_tick(evutil_socket_t fd, short what, void *arg)
{
	check_progress(arg, 0);
}

/* An aligned table for people; wide fields are cut, never wrapped. */
static int
check_write_table(FILE *out, const struct check *c)
{
	struct plan_row row;
	size_t n = plan_row_count(c->plan);
	int wi = 5, wa = 7;

	for (size_t i = 0; i < n; i++) {
		plan_get_row(c->plan, i, &row);
		int l = (int)strlen(row.input);
		if (l > wi)
			wi = l > 40 ? 40 : l;
		const struct plan_addr *a = plan_get_addr(c->plan, row.uid);
		l = a ? (int)strlen(a->address) : 0;
		if (l > wa)
			wa = l > 40 ? 40 : l;
	}
	fprintf(out, "%5s  %-*s  %-13s  %-18s  %4s  %-7s  %s\n", "LINE", wi, "INPUT",
	    "STATUS", "REASON", "CODE", "ENH", "MX HOST / DETAIL");
	for (size_t i = 0; i < n; i++) {
		char input[41];
		const struct verdict *v;

		plan_get_row(c->plan, i, &row);
		v = row.uid < c->nverdicts ? c->verdicts[row.uid] : NULL;
		/* Show control characters visibly, never raw, on a terminal. */
		size_t k = 0;
		for (const char *s = row.input; *s != '\0' && k < 40; s++)
			input[k++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
		input[k] = '\0';
		if (v == NULL) {
			fprintf(out, "%5llu  %-*s  %-13s\n", (unsigned long long)row.line, wi, input,
			    "(none)");
			continue;
		}
		char code[8] = "";
		if (v->smtp_code)
			snprintf(code, sizeof(code), "%d", v->smtp_code);
		fprintf(out, "%5llu  %-*s  %-13s  %-18s  %4s  %-7s  %s%s%s\n",
		    (unsigned long long)row.line, wi, input, verdict_status_name(v->status),
		    verdict_reason_name(v->reason), code, v->enhanced, v->mx_host,
		    v->mx_host[0] && v->detail[0] ? " " : "", v->detail);
	}
	return ferror(out) ? -1 : 0;
}

static int
check_write(FILE *out, enum check_format fmt, const struct check *c)
{
	struct plan_row row;
	size_t n = plan_row_count(c->plan);
	enum verdict_format vf = fmt == FMT_JSONL ? VF_JSONL : VF_CSV;

	if (fmt == FMT_TABLE)
		return check_write_table(out, c);
	if (verdict_write_header(out, vf) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		plan_get_row(c->plan, i, &row);
		const struct plan_addr *a = plan_get_addr(c->plan, row.uid);
		const struct verdict *v = row.uid < c->nverdicts ? c->verdicts[row.uid] : NULL;
		struct verdict missing;
		if (v == NULL) {
			/* Cannot happen when the pipeline is correct; never drop the row. */
			verdict_init(&missing, VR_TEMP_FAILURE);
			snprintf(missing.detail, sizeof(missing.detail), "no verdict (internal error)");
			v = &missing;
		}
		struct verdict_row vr = {
			.line = row.line,
			.input = row.input,
			.address = a ? a->address : "",
			.v = v,
		};
		if (verdict_write_row(out, vf, &vr) == -1)
			return -1;
	}
	return fflush(out) == 0 && !ferror(out) ? 0 : -1;
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
		{ "log-level", required_argument, NULL, 'L' },
		{ "no-catch-all", no_argument, NULL, 'A' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "report", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_params ep = { 0 };
	struct intake_opts io = { 0 };
	enum check_format fmt = FMT_CSV;
	const char *output = NULL, *dns_server = NULL;
	const char *report = NULL;     /* --report: HTML report (report.h) */
	int quiet = 0, ch, rc = MXSIFT_EXIT_OK;
	char err[256];
	struct check c = { 0 };
	FILE *out = stdout;

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
		case 'A': ep.catch_all_check = ENGINE_CATCH_ALL_OFF; break;
		case 'q': quiet = 1; break;
		case 'R': report = optarg; break;
		case 'h': check_usage(stdout); return MXSIFT_EXIT_OK;
		default: check_usage(stderr); return MXSIFT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "mxsift check: exactly one input FILE is required (try --help)\n");
		return MXSIFT_EXIT_USAGE;
	}

	c.base = event_base_new();
	if (c.base == NULL) {
		fprintf(stderr, "mxsift check: cannot create event loop\n");
		return MXSIFT_EXIT_FAILURE;
	}
	c.dns = dns_new(c.base, dns_server, err, sizeof(err));
	if (c.dns == NULL) {
		fprintf(stderr, "mxsift check: DNS: %s\n", err);
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	c.engine = engine_new(c.base, c.dns, &ep, check_on_engine_done, &c);
	struct plan_callbacks pcb = {
		.verdict = check_on_plan_verdict,
		.domain = check_on_domain,
		.done = check_on_plan_done,
		.arg = &c,
	};
	c.plan = plan_new(c.base, c.dns, &pcb);
	if (c.engine == NULL || c.plan == NULL) {
		fprintf(stderr, "mxsift check: out of memory\n");
		rc = MXSIFT_EXIT_FAILURE;
		goto done;
	}
	/* Open the output before the work, so a bad path fails fast. */
	if (output != NULL && strcmp(output, "-") != 0) {
		out = fopen(output, "w");
		if (out == NULL) {
			fprintf(stderr, "mxsift check: %s: %s\n", output, strerror(errno));
			rc = MXSIFT_EXIT_FAILURE;
			goto done;
		}
	}
	c.started = c.last_line = time(NULL);
	if (!quiet)
		c.progress = isatty(STDERR_FILENO) ? 1 : 2;
	if (plan_load(c.plan, argv[optind], &io, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxsift check: %s\n", err);
		rc = MXSIFT_EXIT_INPUT;
		goto done;
	}
	if (c.progress) {
		struct timeval tv = { c.progress == 1 ? 0 : 1, c.progress == 1 ? 250000 : 0 };
		c.tick = event_new(c.base, -1, EV_PERSIST, check_on_tick, &c);
		if (c.tick != NULL)
			event_add(c.tick, &tv);
	}
	event_base_dispatch(c.base);
	check_progress(&c, 1);
	if (check_write(out, fmt, &c) == -1) {
		fprintf(stderr, "mxsift check: writing %s: %s\n", output ? output : "stdout",
		    strerror(errno));
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (report != NULL && report_write_file(report, argv[optind],
	    (const struct verdict *const *)c.verdicts, c.nverdicts, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxsift check: report %s\n", err);
		rc = MXSIFT_EXIT_FAILURE;
	}

	struct engine_stats es;
	engine_get_stats(c.engine, &es);
	if (!quiet)
		fprintf(stderr, "checked %llu addresses: deliverable %llu, undeliverable %llu, "
		    "risky %llu, unknown %llu (%lu SMTP connections, %lu RCPT, %lu 503 replies)\n",
		    (unsigned long long)c.done, (unsigned long long)c.by_status[VS_DELIVERABLE],
		    (unsigned long long)c.by_status[VS_UNDELIVERABLE],
		    (unsigned long long)c.by_status[VS_RISKY],
		    (unsigned long long)c.by_status[VS_UNKNOWN], es.connections, es.rcpts,
		    es.replies_503);
done:
	if (out != stdout && out != NULL && fclose(out) != 0 && rc == MXSIFT_EXIT_OK) {
		fprintf(stderr, "mxsift check: %s: %s\n", output, strerror(errno));
		rc = MXSIFT_EXIT_FAILURE;
	}
	if (c.tick)
		event_free(c.tick);
	if (c.engine)
		engine_free(c.engine);
	if (c.plan)
		plan_free(c.plan);
	if (c.dns)
		dns_free(c.dns);
	for (size_t i = 0; i < c.nverdicts; i++)
		free(c.verdicts[i]);
	free(c.verdicts);
	event_base_free(c.base);
	return rc;
}
