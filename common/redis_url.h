/*
 * redis_url.h — the Redis URL every command takes (--redis, the `redis`
 * key, MXSIFT_REDIS): redis://[[USER]:PASSWORD@]HOST[:PORT][/DB].
 *
 * Parsed here, with no Redis client, so that a bad URL is refused where it
 * is read (config.c for a file or the environment, each command for its
 * --redis flag) before any work, as a usage error, and not when the first
 * connection is tried.
 *
 * Diagnostics: redis_url_parse() describes what is wrong in err without the
 * URL itself (it may hold a password).
 */
#ifndef MXSIFT_REDIS_URL_H
#define MXSIFT_REDIS_URL_H

#include <stddef.h>

#define REDIS_URL_DEFAULT_PORT 6379
/* The syntax, for messages and --help. */
#define REDIS_URL_SYNTAX "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"

/* host may be [v6] in the URL; here it is without the brackets. */
struct redis_url {
	char host[256];
	int port;
	char user[128];        /* "" = none (AUTH password only) */
	char password[256];    /* "" = no AUTH; user and password percent-decoded */
	int db;                /* SELECT db when > 0 */
};

/*
 * Parse url into *out.  Returns 0, or -1 with what is wrong in err (e.g.
 * "bad database number in redis URL"; rediss:// is refused with the reason).
 */
int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen);

/*
 * The check of a command's --redis flag after its getopt loop: 0 when url
 * parses (or is NULL: the command says itself that it is missing), else
 * "PROG: --redis: what is wrong (wants SYNTAX)" on stderr and -1: exit with
 * the usage code (2).  A file's or the environment's value was checked by
 * config.c already, so a bad value here came from the command line.
 */
int redis_url_check_option(const char *prog, const char *url);

#endif
