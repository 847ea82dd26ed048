/*
 * test_config.c — common/config.c: file + MXSIFT_* environment + flags
 * merged into one argv, precedence, and the error messages a user sees.
 *
 * Each case writes a config file (or none), sets environment variables,
 * runs config_args() for a fake command and compares the rewritten argv,
 * joined by spaces, or the error text (a substring), with the table.  A
 * getopt_long pass over a rewritten argv checks that a flag really wins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

/* A check-like command: no -X, no Redis. */
static const struct option check_opts[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "format", required_argument, NULL, 'f' },
	{ "helo", required_argument, NULL, 'H' },
	{ "mail-from", required_argument, NULL, 'M' },
	{ "smtp-port", required_argument, NULL, 'P' },
	{ "log-level", required_argument, NULL, 'L' },
	{ "greeting-timeout", required_argument, NULL, 'G' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A worker-like command: Kafka (-X) and Redis. */
static const struct option worker_opts[] = {
	{ "brokers", required_argument, NULL, 'b' },
	{ "redis", required_argument, NULL, 'r' },
	{ "group", required_argument, NULL, 'g' },
	{ "helo", required_argument, NULL, 'H' },
	{ "metrics-addr", required_argument, NULL, 'm' },
	{ "log-addresses", no_argument, NULL, 'A' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct ccase {
	const char *name;
	const char *section;      /* "check" or "worker" */
	const char *file;         /* contents; NULL = MXSIFT_CONFIG=/dev/null */
	const char *env[4];       /* NAME=VALUE */
	const char *args;         /* space separated, after argv[0] */
	const char *want;         /* joined argv without argv[0]; NULL = error */
	const char *err;          /* substring of the error ("@" = the file's path) */
};

static const struct ccase cases[] = {
	{ "nothing configured", "check", NULL, { NULL }, "-o out.csv list.csv",
	  "-o out.csv list.csv", NULL },
	{ "shared keys the command has; others skipped", "check",
	  "# comment\n; another\n\nredis = redis://r:6379\nhelo = probe.example\n"
	  "smtp-port = 2525\n",
	  { NULL }, "list.csv", "--helo=probe.example --smtp-port=2525 list.csv", NULL },
	{ "section keys after shared keys; other sections ignored", "check",
	  "helo = shared.example\n[check]\nhelo = check.example\nformat = jsonl\n"
	  "[worker]\ngroup = g1\nnot-a-check-key = 1\n",
	  { NULL }, "f", "--helo=shared.example --helo=check.example --format=jsonl f", NULL },
	{ "underscore, upper case and quotes", "check",
	  "[check]\nMAIL_FROM = \"bounce@example.com\"\nhelo=\"h.example\"\n",
	  { NULL }, "f", "--mail-from=bounce@example.com --helo=h.example f", NULL },
	{ "empty value is kept (null sender)", "check", "mail-from =\n", { NULL }, "f",
	  "--mail-from= f", NULL },
	{ "boolean true and false", "check", "[check]\nquiet = yes\n", { NULL }, "f",
	  "--quiet f", NULL },
	{ "boolean false adds nothing", "check", "[check]\nquiet = off\n", { NULL }, "f", "f",
	  NULL },
	{ "boolean garbage", "check", "[check]\nquiet = maybe\n", { NULL }, "f", NULL,
	  "@:2: quiet wants true or false, not 'maybe'" },
	{ "unknown key names file and line and the known keys", "check",
	  "helo = a.example\n\n[check]\nfromat = csv\n", { NULL }, "f", NULL,
	  "@:4: unknown key 'fromat' (known: output, format," },
	{ "non-shared key before any section", "check", "format = csv\n", { NULL }, "f", NULL,
	  "@:1: 'format' is not a shared key: put it under its command's [section]" },
	{ "unknown section", "check", "[chek]\n", { NULL }, "f", NULL,
	  "@:1: unknown section [chek]" },
	{ "not key = value", "check", "[check]\nhelo\n", { NULL }, "f", NULL,
	  "@:2: expected 'key = value'" },
	{ "bad port in the file", "check", "smtp-port = 99999\n", { NULL }, "f", NULL,
	  "@:1: smtp-port wants a port number 1..65535" },
	{ "bad tls mode", "check", "tls = sometimes\n", { NULL }, "f", NULL,
	  "@:1: tls wants may, require or off" },
	{ "rediss is refused with the reason", "worker", "redis = rediss://r:6380\n", { NULL },
	  "", NULL, "@:1: redis: rediss:// (TLS) is not supported: hiredis 0.14 has no TLS" },
	{ "redis url needs the scheme", "worker", "redis = r:6379\n", { NULL }, "", NULL,
	  "@:1: redis: redis URL must start with redis:// (wants redis://[[USER]:PASSWORD@]HOST" },
	{ "a bad database number in the file", "worker", "redis = redis://127.0.0.1:1/x\n",
	  { NULL }, "", NULL, "@:1: redis: bad database number in redis URL (wants redis://" },
	{ "a comment after the redis URL", "worker",
	  "redis = redis://:pw@r:6379/0     # database 0\n", { NULL }, "", NULL,
	  "@:1: redis: bad database number in redis URL" },
	{ "a redis URL in a command's section", "worker", "[worker]\nredis = redis://h:0\n",
	  { NULL }, "", NULL, "@:2: redis: bad port in redis URL" },
	{ "a bad redis URL from the environment names the variable", "worker", NULL,
	  { "MXSIFT_REDIS=redis://h/x", NULL }, "", NULL,
	  "MXSIFT_REDIS: redis: bad database number in redis URL" },
	{ "mail-from with angle brackets", "check", "mail-from = <a@b.example>\n", { NULL }, "f",
	  NULL, "@:1: mail-from wants a bare address" },
	{ "bind wants a numeric address", "worker", "bind = myhost\n", { NULL }, "", NULL,
	  "@:1: bind wants a numeric IPv4 or IPv6 address" },
	{ "help is never a key", "check", "[check]\nhelp = true\n", { NULL }, "f", NULL,
	  "@:2: unknown key 'help'" },
	{ "kafka properties become -X", "worker",
	  "brokers = k1:9092\nkafka.security.protocol = SASL_SSL\n[worker]\n"
	  "kafka.sasl.mechanisms = PLAIN\n",
	  { NULL }, "-X a=b", "--brokers=k1:9092 -X security.protocol=SASL_SSL "
	  "-X sasl.mechanisms=PLAIN -X a=b", NULL },
	{ "shared kafka properties skipped without -X", "check", "kafka.acks = all\n", { NULL },
	  "f", "f", NULL },
	{ "section kafka property without -X is an error", "check", "[check]\nkafka.acks = all\n",
	  { NULL }, "f", NULL, "@:2: this command does not talk to Kafka" },
	{ "environment between file and flags", "worker",
	  "redis = redis://file:1\nhelo = file.example\n[worker]\ngroup = file-group\n",
	  { "MXSIFT_REDIS=redis://env:2", "MXSIFT_WORKER_GROUP=env-group", NULL },
	  "--group cli-group",
	  "--redis=redis://file:1 --helo=file.example --group=file-group --redis=redis://env:2 "
	  "--group=env-group --group cli-group", NULL },
	{ "env of other commands and non-options ignored", "check", NULL,
	  { "MXSIFT_WORKER_GROUP=g", "MXSIFT_TEST_REDIS=redis://x:1", "MXSIFT_REDIS=redis://r:1",
	    NULL },
	  "f", "f", NULL },
	{ "command env may set any key", "check", NULL, { "MXSIFT_CHECK_FORMAT=table", NULL },
	  "f", "--format=table f", NULL },
	{ "command env with unknown key", "check", NULL, { "MXSIFT_CHECK_COLOUR=1", NULL }, "f",
	  NULL, "MXSIFT_CHECK_COLOUR: unknown key 'colour'" },
	{ "shared env is not any key", "check", NULL, { "MXSIFT_FORMAT=jsonl", NULL }, "f", "f",
	  NULL },
	{ "bad shared env value names the variable", "check", NULL,
	  { "MXSIFT_SMTP_PORT=0", NULL }, "f", NULL, "MXSIFT_SMTP_PORT: smtp-port wants" },
	{ "timeouts are shared keys", "check", "greeting-timeout = 90s\ncommand-timeout = 20s\n",
	  { NULL }, "f", "--greeting-timeout=90s f", NULL },
	{ "timeout of 0 in the file", "check", "[check]\ngreeting-timeout = 0\n", { NULL }, "f",
	  NULL, "@:2: greeting-timeout must be more than 0" },
	{ "timeout garbage in the file", "worker", "connect-timeout = 5 s\n", { NULL }, "", NULL,
	  "@:1: connect-timeout wants a duration such as 30s" },
	{ "timeout over an hour from the env", "check", NULL,
	  { "MXSIFT_GREETING_TIMEOUT=2h", NULL }, "f", NULL,
	  "MXSIFT_GREETING_TIMEOUT: greeting-timeout must be at most 1h" },
	{ "bad timeout env of a command without it still names the variable", "check", NULL,
	  { "MXSIFT_COMMAND_TIMEOUT=-1", NULL }, "f", NULL,
	  "MXSIFT_COMMAND_TIMEOUT: command-timeout wants a duration" },
	{ "env boolean", "worker", NULL, { "MXSIFT_LOG_ADDRESSES=true", NULL }, "",
	  "--log-addresses", NULL },
	{ "env boolean false over the file's true", "worker", "log-addresses = true\n",
	  { "MXSIFT_LOG_ADDRESSES=false", NULL }, "", "", NULL },
	{ "section boolean false over a shared true", "worker",
	  "log-addresses = yes\n[worker]\nlog-addresses = off\n", { NULL }, "-b k:1",
	  "-b k:1", NULL },
	{ "command env false over the section's true", "check", "[check]\nquiet = true\n",
	  { "MXSIFT_CHECK_QUIET=0", NULL }, "f", "f", NULL },
	{ "false then true again: the later true stands", "check", "[check]\nquiet = no\n",
	  { "MXSIFT_CHECK_QUIET=1", NULL }, "f", "--quiet f", NULL },
	{ "a flag after a false still counts", "check", "[check]\nquiet = true\n",
	  { "MXSIFT_CHECK_QUIET=false", NULL }, "--quiet f", "--quiet f", NULL },
};

static char cfgpath[64];

static void
clear_env(void)
{
	extern char **environ;
	char name[256];

	for (;;) {
		char **e;
		for (e = environ; *e != NULL; e++)
			if (strncmp(*e, "MXSIFT_", 7) == 0)
				break;
		if (*e == NULL)
			return;
		snprintf(name, sizeof(name), "%.*s", (int)(strchr(*e, '=') - *e), *e);
		unsetenv(name);
	}
}

/* Split s on spaces into argv (after "cmd"); returns argc. */
static int
split(char *s, char **argv, int max)
{
	int n = 0;

	argv[n++] = "cmd";
	for (char *t = strtok(s, " "); t != NULL && n < max - 1; t = strtok(NULL, " "))
		argv[n++] = t;
	argv[n] = NULL;
	return n;
}

static void
join(int argc, char **argv, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 1; i < argc && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s", i > 1 ? " " : "", argv[i]);
}

static void
write_file(const char *text)
{
	FILE *f = fopen(cfgpath, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ccase *c = &cases[i];
		const struct option *lo = strcmp(c->section, "worker") == 0 ? worker_opts : check_opts;
		const char *os = strcmp(c->section, "worker") == 0 ? "b:r:g:X:h" : "o:f:qh";
		char buf[512], *argv[32], **av, err[1024] = "", got[1024], want_err[512];
		int argc, rc;

		clear_env();
		if (c->file != NULL) {
			write_file(c->file);
			setenv("MXSIFT_CONFIG", cfgpath, 1);
		} else
			setenv("MXSIFT_CONFIG", "/dev/null", 1);
		for (size_t k = 0; k < 4 && c->env[k] != NULL; k++)
			putenv((char *)c->env[k]);
		snprintf(buf, sizeof(buf), "%s", c->args);
		argc = split(buf, argv, 32);
		av = argv;
		rc = config_args(c->section, lo, os, &argc, &av, err, sizeof(err));
		if (c->want != NULL) {
			if (rc != 0)
				fail_msg("%s: unexpected error: %s", c->name, err);
			join(argc, av, got, sizeof(got));
			if (strcmp(got, c->want) != 0)
				fail_msg("%s:\n  got  '%s'\n  want '%s'", c->name, got, c->want);
			assert_string_equal(av[0], "cmd");
			assert_null(av[argc]);
		} else {
			if (rc != -1)
				fail_msg("%s: accepted", c->name);
			/* "@" stands for the file's path */
			if (c->err[0] == '@')
				snprintf(want_err, sizeof(want_err), "%s%s", cfgpath, c->err + 1);
			else
				snprintf(want_err, sizeof(want_err), "%s", c->err);
			if (strstr(err, want_err) == NULL)
				fail_msg("%s:\n  error '%s'\n  want  '%s'", c->name, err, want_err);
			/* on error argv is untouched */
			assert_ptr_equal(av, argv);
		}
		config_free();
	}
	clear_env();
}

/* --config PATH and --config=PATH are taken out; a missing file is an error. */
static void
test_config_flag(void **state)
{
	char buf[256], *argv[16], **av, err[512], got[512];
	int argc;

	clear_env();
	setenv("MXSIFT_CONFIG", "/nonexistent/env.conf", 1);
	write_file("helo = flag.example\n");
	snprintf(buf, sizeof(buf), "-q --config %s f", cfgpath);
	argc = split(buf, argv, 16);
	av = argv;
	assert_int_equal(config_args("check", check_opts, "qh", &argc, &av, err, sizeof(err)), 0);
	join(argc, av, got, sizeof(got));
	assert_string_equal(got, "--helo=flag.example -q f");
	assert_string_equal(config_file(), cfgpath);
	config_free();

	snprintf(buf, sizeof(buf), "--config=%s f -- --config x", cfgpath);
	argc = split(buf, argv, 16);
	av = argv;
	assert_int_equal(config_args("check", check_opts, "qh", &argc, &av, err, sizeof(err)), 0);
	join(argc, av, got, sizeof(got));
	assert_string_equal(got, "--helo=flag.example f -- --config x");
	config_free();

	/* MXSIFT_CONFIG names a missing file */
	snprintf(buf, sizeof(buf), "f");
	argc = split(buf, argv, 16);
	av = argv;
	assert_int_equal(config_args("check", check_opts, "qh", &argc, &av, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/env.conf does not exist (from MXSIFT_CONFIG)"));

	snprintf(buf, sizeof(buf), "f --config");
	argc = split(buf, argv, 16);
	av = argv;
	assert_int_equal(config_args("check", check_opts, "qh", &argc, &av, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--config needs a file name"));

	snprintf(buf, sizeof(buf), "--config /nonexistent/flag.conf f");
	argc = split(buf, argv, 16);
	av = argv;
	assert_int_equal(config_args("check", check_opts, "qh", &argc, &av, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/flag.conf does not exist (from --config)"));
	clear_env();
}

/* The point of the order: getopt sees the flag last, so the flag wins. */
static void
test_getopt_precedence(void **state)
{
	char buf[128], *argv[16], **av, err[512];
	const char *helo = NULL;
	int argc, ch, quiet = 0;

	clear_env();
	write_file("helo = file.example\n[check]\nquiet = true\n");
	setenv("MXSIFT_CONFIG", cfgpath, 1);
	setenv("MXSIFT_HELO", "env.example", 1);
	snprintf(buf, sizeof(buf), "--helo cli.example list.csv");
	argc = split(buf, argv, 16);
	av = argv;
	assert_int_equal(config_args("check", check_opts, "o:f:qh", &argc, &av, err,
	    sizeof(err)), 0);
	optind = 1;
	while ((ch = getopt_long(argc, av, "o:f:qh", check_opts, NULL)) != -1) {
		if (ch == 'H')
			helo = optarg;
		else if (ch == 'q')
			quiet = 1;
		else
			fail_msg("unexpected option %c", ch);
	}
	assert_string_equal(helo, "cli.example");
	assert_int_equal(quiet, 1);
	assert_int_equal(optind, argc - 1);
	assert_string_equal(av[optind], "list.csv");

	/* without the flag the environment wins over the file */
	snprintf(buf, sizeof(buf), "list.csv");
	argc = split(buf, argv, 16);
	av = argv;
	assert_int_equal(config_args("check", check_opts, "o:f:qh", &argc, &av, err,
	    sizeof(err)), 0);
	optind = 1;
	while ((ch = getopt_long(argc, av, "o:f:qh", check_opts, NULL)) != -1)
		if (ch == 'H')
			helo = optarg;
	assert_string_equal(helo, "env.example");
	config_free();
	clear_env();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_config_flag),
		cmocka_unit_test(test_getopt_precedence),
	};
	int fd, rc;

	snprintf(cfgpath, sizeof(cfgpath), "/tmp/mxsift-test-config-XXXXXX");
	fd = mkstemp(cfgpath);
	if (fd == -1)
		return 1;
	close(fd);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(cfgpath);
	return rc;
}
