/*
 * config.h — one configuration for every command: a file, MXSIFT_*
 * environment variables and flags, in that order of precedence.
 *
 * Each command keeps its option parsing in one place, its getopt_long loop.
 * config_args() feeds that loop: it rewrites the command's argv to
 *
 *   argv[0]  <options from the file>  <options from MXSIFT_* variables>  <argv[1..]>
 *
 * as `--key=value` arguments, so a flag on the command line, parsed last,
 * wins over the environment, which wins over the file.  Options that may be
 * repeated (-X) accumulate in the same order.
 *
 * The file (FILE): `--config PATH` (removed from argv here, so commands need
 * not know it), else $MXSIFT_CONFIG, else /etc/mxsift/mxsift.conf when it
 * exists.  A file named by --config or MXSIFT_CONFIG must exist.
 *
 *   # comment (a line starting with # or ;; no comments after a value)
 *   redis = redis://:secret@redis.internal:6379/2    <- shared keys first
 *   helo = verifier.example.com
 *   kafka.security.protocol = SASL_SSL                <- any librdkafka property (-X)
 *
 *   [worker]                                          <- one section per command:
 *   group = mxsift-workers                               worker, check, submit,
 *   metrics-addr = 127.0.0.1:9464                        status, export, report
 *   log-addresses = false
 *
 * A key is a long option name of that command without the dashes (`_` may
 * stand for `-`); the value is the option's argument ("quoted" to keep
 * spaces at the ends; may be empty).  An option without an argument (e.g.
 * log-addresses, quiet) takes true/false, yes/no, on/off or 1/0; false
 * takes back a true from an earlier place (MXSIFT_LOG_ADDRESSES=false over
 * the file's log-addresses = true, a [section]'s false over a shared true).
 * `kafka.NAME = VALUE` becomes `-X NAME=VALUE` for commands that take -X.
 *
 * Shared keys (before any [section]) apply to every command that has the
 * option and are ignored by the others: brokers, redis, dns, helo, mail-from,
 * smtp-port, tls, bind, topic, group, log-level, log-addresses, lanes,
 * connect-timeout, greeting-timeout, command-timeout, and kafka.*.
 * Any other key belongs in a [command] section.  Keys in the running
 * command's section override shared keys.
 *
 * Environment: MXSIFT_<KEY> sets a shared key (MXSIFT_REDIS, MXSIFT_MAIL_FROM,
 * MXSIFT_LOG_LEVEL ...); MXSIFT_<COMMAND>_<KEY> sets any key of one command
 * (MXSIFT_WORKER_METRICS_ADDR, MXSIFT_CHECK_FORMAT).  Other MXSIFT_*
 * variables (MXSIFT_CONFIG, MXSIFT_TEST_*) are not options and are ignored.
 * librdkafka properties are not taken from the environment (use the file or -X).
 *
 * Diagnostics: misconfiguration fails before any work with a message that
 * names the place to fix: "FILE:LINE: unknown key 'x' in [worker] (known:
 * ...)", "MXSIFT_SMTP_PORT: smtp-port wants 1..65535", "--config: cannot
 * read FILE: reason".  Values of shared keys are checked here (port, TLS
 * mode, log level, the whole Redis URL: redis_url.h, addresses without
 * CR/LF, SMTP timeouts: duration.h); the rest are checked by the command,
 * whose message names the option.
 */
#ifndef MXSIFT_CONFIG_H
#define MXSIFT_CONFIG_H

#include <getopt.h>
#include <stddef.h>

#define CONFIG_DEFAULT_PATH "/etc/mxsift/mxsift.conf"

/*
 * Rewrite *argc and *argv for section (the command: "worker", "check", ...),
 * whose options are longopts (and optstring: -X is offered when it holds
 * "X:").  The new argv lives until config_free() or the next call; the
 * strings of the old argv are borrowed, not copied.  Returns 0, or -1 with
 * a message in err (then *argc and *argv are unchanged).
 */
int config_args(const char *section, const struct option *longopts, const char *optstring,
    int *argc, char ***argv, char *err, size_t errlen);

/*
 * The hook a command calls right before its getopt loop: config_args(),
 * and on failure "PROG: message" on stderr.  0, or -1: exit with the
 * usage code (2).
 */
int config_command(const char *prog, const char *section, const struct option *longopts,
    const char *optstring, int *argc, char ***argv);

/*
 * The check config_args() applies to the value of a shared key (helo,
 * mail-from, smtp-port, tls, redis, ...), for a command to apply to the
 * same option given as a flag.  NULL when v is fine, else what is wrong ("wants a
 * host name (no spaces)": a static string, or buf).  Keys without a check
 * are fine.
 */
const char *config_check_value(const char *key, const char *v, char *buf, size_t buflen);
/* The same check for the flag --KEY: 0, or -1 after "PROG: --KEY: why" on
 * stderr (the caller exits 2). */
int config_check_flag(const char *prog, const char *key, const char *v);

/* The file config_args() read last, or NULL when none was used. */
const char *config_file(void);

/* Free what config_args() allocated (tests; a command may just exit). */
void config_free(void);

#endif
