/*
 * cmd_report.c — `mxsift report --job NAME --redis URL [-o report.html]`:
 * a fleet job as one self-contained HTML file (report.h) for people who
 * would rather look at a chart than read a CSV.
 *
 * Reads the job's meta (for the facts under the title) and every verdict
 * (HSCAN, as `mxsift export` does), so the totals equal `mxsift status`.
 * A job still running is reported as far as it got, and says so.  The
 * output file is written only after every verdict was read: a Redis failure
 * leaves no half report behind.
 *
 * Exit codes: 0 written; 1 Redis failure, no such job or a write error;
 * 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "config.h"
#include "jobstore.h"
#include "log.h"
#include "redis_url.h"
#include "report.h"

static void
report_usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift report --job NAME --redis URL [-o FILE] [--title TEXT]\n"
	    "\n"
	    "Write a fleet job's results as one self-contained HTML file (inline CSS and\n"
	    "SVG charts, no scripts, nothing loaded from the network): totals per status,\n"
	    "reasons, results per MX domain, SMTP reply codes and throughput over time.\n"
	    "\n"
	    "Options:\n"
	    "  -j, --job NAME          the job given to `mxsift submit`\n"
	    "  -r, --redis URL         redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
	    "  -o, --output FILE       write the report to FILE (default: stdout)\n"
	    "      --title TEXT        heading of the report (default: mxsift job NAME)\n"
	    "      --log-level LEVEL   debug, info, warn (default), error\n"
	    "      --config FILE       configuration file ([report] section; see mxsift(1))\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "`mxsift check --report FILE` writes the same report for a local run.\n"
	    "Exit codes: 0 written; 1 Redis failure, no such job or write error; 2 usage.\n");
}

static int
report_on_verdict(void *arg, const char *field, const char *address, const struct verdict *v)
{
	return report_add(arg, v) == -1 ? 1 : 0;
}

int
cmd_report(int argc, char **argv)
{
	enum { OPT_TITLE = 256, OPT_LOG_LEVEL };
	static const struct option longopts[] = {
		{ "job", required_argument, NULL, 'j' },
		{ "redis", required_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' },
		{ "title", required_argument, NULL, OPT_TITLE },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *job = NULL, *redis = NULL, *output = NULL, *title_arg = NULL;
	struct jobstore *js = NULL;
	struct report *r = NULL;
	struct jobstore_meta m;
	struct jobstore_counts c;
	char err[512], title[256], when[32] = "-", rows[24], uniq[24], dups[24], inv[24];
	char progress[64];
	uint64_t bad = 0;
	FILE *out = stdout;
	int ch, found, rc = MXSIFT_EXIT_FAILURE;

	log_set_level(LOG_WARN);
	if (config_command("mxsift report", "report", longopts, "j:r:o:h", &argc, &argv) == -1)
		return MXSIFT_EXIT_USAGE;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "j:r:o:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': job = optarg; break;
		case 'r': redis = optarg; break;
		case 'o': output = optarg; break;
		case OPT_TITLE: title_arg = optarg; break;
		case OPT_LOG_LEVEL: {
			int l = log_parse_level(optarg);
			if (l < 0) {
				fprintf(stderr, "mxsift report: --log-level must be debug, info, warn "
				    "or error\n");
				return MXSIFT_EXIT_USAGE;
			}
			log_set_level((enum log_level)l);
			break;
		}
		case 'h': report_usage(stdout); return MXSIFT_EXIT_OK;
		default: report_usage(stderr); return MXSIFT_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mxsift report: unexpected argument '%s' (try --help)\n",
		    argv[optind]);
		return MXSIFT_EXIT_USAGE;
	}
	if (job == NULL || redis == NULL) {
		fprintf(stderr, "mxsift report: --job and --redis are required (try --help)\n");
		return MXSIFT_EXIT_USAGE;
	}
	if (!jobstore_valid_name(job)) {
		fprintf(stderr, "mxsift report: bad job name '%s'\n", job);
		return MXSIFT_EXIT_USAGE;
	}
	if (redis_url_check_option("mxsift report", redis) == -1)
		return MXSIFT_EXIT_USAGE;
	if ((js = jobstore_connect(redis, 5000, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxsift report: %s\n", err);
		return MXSIFT_EXIT_FAILURE;
	}
	found = jobstore_get_meta(js, job, &m);
	if (found != 1) {
		if (found == 0)
			fprintf(stderr, "mxsift report: no job '%s' in Redis\n", job);
		else
			fprintf(stderr, "mxsift report: %s\n", jobstore_errstr(js));
		goto out;
	}
	if (jobstore_get_counts(js, job, &c) == -1) {
		fprintf(stderr, "mxsift report: %s\n", jobstore_errstr(js));
		goto out;
	}
	if ((r = report_new()) == NULL) {
		fprintf(stderr, "mxsift report: out of memory\n");
		goto out;
	}
	if (jobstore_scan_verdicts(js, job, report_on_verdict, r, &bad) == -1) {
		fprintf(stderr, "mxsift report: %s\n", jobstore_errstr(js));
		goto out;
	}
	if (report_count(r) < c.done)
		fprintf(stderr, "mxsift report: warning: %zu verdicts read, %" PRIu64 " counted "
		    "(%" PRIu64 " undecodable)\n", report_count(r), c.done, bad);
	if (m.submitted_at > 0) {
		time_t t = (time_t)m.submitted_at;
		struct tm tm;
		if (gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	}
	snprintf(rows, sizeof(rows), "%" PRIu64, m.rows);
	snprintf(uniq, sizeof(uniq), "%" PRIu64, m.unique);
	snprintf(dups, sizeof(dups), "%" PRIu64, m.duplicates);
	snprintf(inv, sizeof(inv), "%" PRIu64, m.invalid);
	snprintf(progress, sizeof(progress), "%" PRIu64 " of %" PRIu64 "%s", c.done, m.total,
	    c.done < m.total ? " (still running)" : " (complete)");
	const struct report_fact facts[] = {
		{ "job", job },
		{ "file", m.file[0] ? m.file : "-" },
		{ "submitted", when },
		{ "rows read", rows },
		{ "unique addresses", uniq },
		{ "duplicates", dups },
		{ "invalid rows", inv },
		{ "verdicts", progress },
	};
	if (title_arg == NULL)
		snprintf(title, sizeof(title), "mxsift job %s", job);
	else
		snprintf(title, sizeof(title), "%s", title_arg);
	if (output != NULL && strcmp(output, "-") != 0 && (out = fopen(output, "w")) == NULL) {
		fprintf(stderr, "mxsift report: %s: %s\n", output, strerror(errno));
		out = stdout;
		goto out;
	}
	if (report_write_html(r, title, facts, sizeof(facts) / sizeof(facts[0]), out) == -1)
		fprintf(stderr, "mxsift report: writing %s: %s\n", output ? output : "stdout",
		    strerror(errno));
	else
		rc = MXSIFT_EXIT_OK;
out:
	if (out != stdout && fclose(out) != 0 && rc == MXSIFT_EXIT_OK) {
		fprintf(stderr, "mxsift report: %s: %s\n", output, strerror(errno));
		rc = MXSIFT_EXIT_FAILURE;
	}
	report_free(r);
	jobstore_close(js);
	return rc;
}
