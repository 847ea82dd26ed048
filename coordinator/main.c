/*
 * main.c — the `mxsift` command: dispatches to check, submit, status, export.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{ "check",  cmd_check,  "verify a list on this machine, no services needed" },
	{ "submit", cmd_submit, "shard a list into Kafka for a worker fleet" },
	{ "status", cmd_status, "show a fleet job's progress and counts (Redis)" },
	{ "export", cmd_export, "write a fleet job's verdicts as CSV or JSONL (Redis)" },
	{ "report", cmd_report, "write a fleet job's results as an HTML report with charts" },
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mxsift COMMAND [OPTIONS] [ARGS]\n"
	    "\n"
	    "Check whether email addresses exist by asking their mail servers over SMTP\n"
	    "(MX lookup, EHLO, MAIL FROM, RCPT TO) without ever sending mail.\n"
	    "\n"
	    "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
	    "\n"
	    "Run `mxsift COMMAND --help` for a command's options.\n"
	    "\n"
	    "Exit codes:\n"
	    "  0  success\n"
	    "  1  runtime failure (DNS, Kafka, Redis, an output write)\n"
	    "  2  usage error (unknown flag, missing argument)\n"
	    "  3  the input as a whole is unusable (unreadable file, no such column)\n"
	    "\n"
	    "The worker daemon is a separate program: mxsift-worker --help.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return MXSIFT_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return MXSIFT_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("mxsift %s\n", MXSIFT_VERSION);
		return MXSIFT_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "mxsift: unknown command '%s' (try mxsift --help)\n", argv[1]);
	return MXSIFT_EXIT_USAGE;
}
