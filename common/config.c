/*
 * config.c — configuration file, MXSIFT_* environment and flags merged into
 * one argv for a command's getopt loop (see config.h for the format).
 *
 * Owns: the rewritten argv (one static set, replaced by the next call) and
 * the name of the file that was read.  Returns 0 / -1 with a message that
 * names the file and line, or the environment variable, to fix.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "duration.h"
#include "log.h"
#include "redis_url.h"

extern char **environ;

/* Commands that own a [section] and an MXSIFT_<COMMAND>_ prefix. */
static const char *const config_sections[] = {
	"worker", "check", "submit", "status", "export", "report",
};

/* Keys that may stand before any section and come from MXSIFT_<KEY>. */
static const char *const config_shared[] = {
	"brokers", "redis", "dns", "helo", "mail-from", "smtp-port", "tls", "bind",
	"topic", "group", "log-level", "log-addresses", "lanes",
	"connect-timeout", "greeting-timeout", "command-timeout",
};

/* Options that make no sense from a file or the environment. */
static const char *const config_never[] = { "help", "version", "config" };

#define CONFIG_KAFKA_PREFIX "kafka."

/* "key = false": the marker before "--key" (see config_add, config_args). */
#define CONFIG_FALSE_MARK "!"

/* The argv built by the last call, with the strings it allocated. */
static struct {
	char **argv;           /* what the command parses */
	char **owned;          /* strings we allocated */
	size_t nowned, capowned;
	char *file;
} config_state;

/* A growing list of arguments under construction. */
struct config_list {
	char **v;
	size_t n, cap;
};

static int
config_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
config_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
config_in(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return 1;
	return 0;
}

#define CONFIG_IN(s, list) config_in((s), (list), sizeof(list) / sizeof((list)[0]))

static int
config_list_push(struct config_list *l, char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = s;
	return 0;
}

/* Remember s as ours (freed by config_free); s may be NULL (no memory). */
static char *
config_own(char *s)
{
	if (s == NULL)
		return NULL;
	if (config_state.nowned == config_state.capowned) {
		size_t cap = config_state.capowned ? config_state.capowned * 2 : 16;
		char **v = realloc(config_state.owned, cap * sizeof(*v));
		if (v == NULL) {
			free(s);
			return NULL;
		}
		config_state.owned = v;
		config_state.capowned = cap;
	}
	config_state.owned[config_state.nowned++] = s;
	return s;
}

void
config_free(void)
{
	for (size_t i = 0; i < config_state.nowned; i++)
		free(config_state.owned[i]);
	free(config_state.owned);
	free(config_state.argv);
	free(config_state.file);
	memset(&config_state, 0, sizeof(config_state));
}

const char *
config_file(void)
{
	return config_state.file;
}

static const struct option *
config_find_opt(const struct option *longopts, const char *key)
{
	for (const struct option *o = longopts; o != NULL && o->name != NULL; o++)
		if (strcmp(o->name, key) == 0)
			return o;
	return NULL;
}

/* 1 true, 0 false, -1 not a boolean. */
static int
config_parse_bool(const char *v)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

static int
config_has_ctl(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 1;
	return 0;
}

/*
 * Check the value of a key whose meaning is the same in every command.
 * Returns NULL when fine, else what is wrong (a static string, or buf).
 */
const char *
config_check_value(const char *key, const char *v, char *buf, size_t buflen)
{
	if (config_has_ctl(v))
		return "control characters are not allowed";
	if (strcmp(key, "smtp-port") == 0) {
		char *end;
		long p;

		errno = 0;
		p = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || errno != 0 || p < 1 || p > 65535)
			return "wants a port number 1..65535";
	} else if (strcmp(key, "tls") == 0) {
		if (strcmp(v, "may") != 0 && strcmp(v, "require") != 0 && strcmp(v, "off") != 0)
			return "wants may, require or off";
	} else if (strcmp(key, "log-level") == 0) {
		if (log_parse_level(v) < 0)
			return "wants debug, info, warn or error";
	} else if (strcmp(key, "redis") == 0) {
		struct redis_url u;

		/* the whole URL, so that a bad one stops every command here,
		 * naming its place, and not at its first connection */
		if (redis_url_parse(v, &u, buf, buflen) == -1) {
			size_t n = strlen(buf);

			snprintf(buf + n, buflen - n, " (wants " REDIS_URL_SYNTAX ")");
			return buf;
		}
	} else if (strcmp(key, "mail-from") == 0) {
		if (strpbrk(v, "<> ") != NULL)
			return "wants a bare address (local@domain) or an empty value for <>";
	} else if (strcmp(key, "helo") == 0) {
		if (*v == '\0' || strchr(v, ' ') != NULL)
			return "wants a host name (no spaces)";
	} else if (strcmp(key, "bind") == 0) {
		unsigned char buf[sizeof(struct in6_addr)];

		if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1)
			return "wants a numeric IPv4 or IPv6 address of this host";
	} else if (strcmp(key, "connect-timeout") == 0 || strcmp(key, "greeting-timeout") == 0 ||
	    strcmp(key, "command-timeout") == 0) {
		unsigned ms;

		return duration_parse_timeout(v, &ms);
	} else if (strcmp(key, "brokers") == 0 || strcmp(key, "dns") == 0 ||
	    strcmp(key, "topic") == 0 || strcmp(key, "group") == 0) {
		if (*v == '\0' || strchr(v, ' ') != NULL)
			return "must not be empty or contain spaces";
	}
	return NULL;
}

int
config_check_flag(const char *prog, const char *key, const char *v)
{
	char buf[256];
	const char *why = config_check_value(key, v, buf, sizeof(buf));

	if (why == NULL)
		return 0;
	fprintf(stderr, "%s: --%s: %s\n", prog, key, why);
	return -1;
}

/* Append the list of the command's keys to err (after what is there). */
static void
config_known_keys(const struct option *longopts, int kafka, char *err, size_t errlen)
{
	size_t n = strlen(err);
	const char *sep = " (known: ";

	for (const struct option *o = longopts; o != NULL && o->name != NULL && n < errlen; o++) {
		if (CONFIG_IN(o->name, config_never))
			continue;
		n += (size_t)snprintf(err + n, errlen - n, "%s%s", sep, o->name);
		sep = ", ";
	}
	if (kafka && n < errlen)
		n += (size_t)snprintf(err + n, errlen - n, "%skafka.*", sep);
	if (n < errlen)
		snprintf(err + n, errlen - n, ")");
}

/*
 * One key = value for the running command (from where: "FILE:LINE" or
 * "MXSIFT_X").  Appends the argument(s) to l, or nothing when the command
 * lacks a shared option.  0 / -1 with err.
 */
static int
config_add(struct config_list *l, const struct option *longopts, int kafka, int shared,
    const char *where, const char *key, const char *value, char *err, size_t errlen)
{
	const struct option *o;
	const char *why;
	char whybuf[320];
	char *arg;
	int b;

	if (strncmp(key, CONFIG_KAFKA_PREFIX, strlen(CONFIG_KAFKA_PREFIX)) == 0) {
		const char *prop = key + strlen(CONFIG_KAFKA_PREFIX);

		if (*prop == '\0')
			return config_err(err, errlen, "%s: kafka. needs a librdkafka property name "
			    "(kafka.security.protocol = SASL_SSL)", where);
		if (!kafka) {
			if (shared)
				return 0;
			return config_err(err, errlen, "%s: this command does not talk to Kafka: "
			    "remove '%s'", where, key);
		}
		if (asprintf(&arg, "%s=%s", prop, value) == -1 || config_own(arg) == NULL ||
		    config_list_push(l, "-X") == -1 || config_list_push(l, arg) == -1)
			return config_err(err, errlen, "out of memory");
		return 0;
	}
	if ((why = config_check_value(key, value, whybuf, sizeof(whybuf))) != NULL)
		return config_err(err, errlen, "%s: %s%s%s", where, key, why == whybuf ? ": " : " ",
		    why);
	o = CONFIG_IN(key, config_never) ? NULL : config_find_opt(longopts, key);
	if (o == NULL) {
		if (shared)
			return 0;     /* e.g. brokers for `mxsift status` */
		config_err(err, errlen, "%s: unknown key '%s'", where, key);
		config_known_keys(longopts, kafka, err, errlen);
		return -1;
	}
	if (o->has_arg == no_argument) {
		if ((b = config_parse_bool(value)) == -1)
			return config_err(err, errlen, "%s: %s wants true or false, not '%s'", where,
			    key, value);
		/* false: a marker that takes back a true set before it (the file's
		 * shared keys, its section, the environment: a later place wins
		 * for a boolean too); config_args drops it from the argv */
		arg = NULL;
		if (asprintf(&arg, b ? "--%s" : CONFIG_FALSE_MARK "--%s", key) == -1)
			arg = NULL;
	} else if (asprintf(&arg, "--%s=%s", key, value) == -1)
		arg = NULL;
	if (config_own(arg) == NULL || config_list_push(l, arg) == -1)
		return config_err(err, errlen, "out of memory");
	return 0;
}

static char *
config_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* Option keys: lower case, '_' means '-'.  kafka.* keys are left as written. */
static void
config_norm_key(char *k)
{
	if (strncmp(k, CONFIG_KAFKA_PREFIX, strlen(CONFIG_KAFKA_PREFIX)) == 0)
		return;
	for (; *k != '\0'; k++)
		*k = *k == '_' ? '-' : (char)tolower((unsigned char)*k);
}

static int
config_valid_key(const char *k)
{
	if (*k == '\0')
		return 0;
	for (; *k != '\0'; k++)
		if (!isalnum((unsigned char)*k) && *k != '-' && *k != '_' && *k != '.')
			return 0;
	return 1;
}

/*
 * Read path; shared keys go to sh, keys of section to sec.  Other sections
 * are checked for syntax only (their command checks their keys).
 */
static int
config_read_file(const char *path, const char *section, const struct option *longopts,
    int kafka, struct config_list *sh, struct config_list *sec, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, *cur = NULL;     /* cur: current section, NULL = shared */
	size_t cap = 0, lineno = 0;
	int rc = 0, in_other = 0;

	if (f == NULL)
		return config_err(err, errlen, "cannot read configuration file %s: %s", path,
		    strerror(errno));
	while (rc == 0 && getline(&line, &cap, f) != -1) {
		char where[512], *s, *eq, *key, *val;

		lineno++;
		snprintf(where, sizeof(where), "%s:%zu", path, lineno);
		s = config_trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');
			if (end == NULL || end[1] != '\0') {
				rc = config_err(err, errlen, "%s: a section line is [name]", where);
				break;
			}
			*end = '\0';
			s = config_trim(s + 1);
			if (!CONFIG_IN(s, config_sections)) {
				rc = config_err(err, errlen, "%s: unknown section [%s] (known: worker, "
				    "check, submit, status, export, report)", where, s);
				break;
			}
			free(cur);
			if ((cur = strdup(s)) == NULL) {
				rc = config_err(err, errlen, "out of memory");
				break;
			}
			in_other = strcmp(cur, section) != 0;
			continue;
		}
		if ((eq = strchr(s, '=')) == NULL) {
			rc = config_err(err, errlen, "%s: expected 'key = value', got '%.60s'", where,
			    s);
			break;
		}
		*eq = '\0';
		key = config_trim(s);
		val = config_trim(eq + 1);
		if (!config_valid_key(key)) {
			rc = config_err(err, errlen, "%s: bad key '%.60s'", where, key);
			break;
		}
		config_norm_key(key);
		if (val[0] == '"') {
			size_t n = strlen(val);
			if (n < 2 || val[n - 1] != '"') {
				rc = config_err(err, errlen, "%s: unterminated quoted value", where);
				break;
			}
			val[n - 1] = '\0';
			val++;
		}
		if (cur == NULL) {
			if (!CONFIG_IN(key, config_shared) &&
			    strncmp(key, CONFIG_KAFKA_PREFIX, strlen(CONFIG_KAFKA_PREFIX)) != 0) {
				rc = config_err(err, errlen, "%s: '%s' is not a shared key: put it "
				    "under its command's [section] (shared keys: brokers, redis, dns, "
				    "helo, mail-from, smtp-port, tls, bind, topic, group, log-level, "
				    "log-addresses, lanes, connect-timeout, greeting-timeout, "
				    "command-timeout, kafka.*)", where, key);
				break;
			}
			rc = config_add(sh, longopts, kafka, 1, where, key, val, err, errlen);
		} else if (!in_other)
			rc = config_add(sec, longopts, kafka, 0, where, key, val, err, errlen);
	}
	if (rc == 0 && ferror(f))
		rc = config_err(err, errlen, "reading %s: %s", path, strerror(errno));
	free(line);
	free(cur);
	fclose(f);
	return rc;
}

/*
 * MXSIFT_<KEY> (shared keys) to sh and MXSIFT_<SECTION>_<KEY> to sec.
 * Variables of other sections and non-option variables are ignored.
 */
static int
config_read_env(const char *section, const struct option *longopts, int kafka,
    struct config_list *sh, struct config_list *sec, char *err, size_t errlen)
{
	char prefix[64];
	size_t plen;

	snprintf(prefix, sizeof(prefix), "MXSIFT_%s_", section);
	for (char *p = prefix; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	plen = strlen(prefix);
	for (char **e = environ; *e != NULL; e++) {
		const char *eq = strchr(*e, '='), *name;
		char key[64], where[80];
		int mine, other = 0;
		size_t n;

		if (eq == NULL || strncmp(*e, "MXSIFT_", 7) != 0)
			continue;
		mine = strncmp(*e, prefix, plen) == 0 && (size_t)(eq - *e) > plen;
		name = mine ? *e + plen : *e + 7;
		for (size_t i = 0; !mine && i < sizeof(config_sections) / sizeof(*config_sections);
		    i++) {
			size_t sl = strlen(config_sections[i]);
			if (strncasecmp(name, config_sections[i], sl) == 0 && name[sl] == '_')
				other = 1;
		}
		n = (size_t)(eq - name);
		if (other || n == 0 || n >= sizeof(key))
			continue;
		memcpy(key, name, n);
		key[n] = '\0';
		snprintf(where, sizeof(where), "%.*s", (int)(eq - *e), *e);
		config_norm_key(key);
		if (mine) {
			if (config_add(sec, longopts, kafka, 0, where, key, eq + 1, err, errlen) == -1)
				return -1;
		} else if (CONFIG_IN(key, config_shared)) {
			if (config_add(sh, longopts, kafka, 1, where, key, eq + 1, err, errlen) == -1)
				return -1;
		}
	}
	return 0;
}

/*
 * Take --config PATH / --config=PATH out of argv (up to a "--") into *path.
 * 0, or -1 when --config has no value.
 */
static int
config_take_flag(int argc, char **argv, struct config_list *rest, const char **path,
    char *err, size_t errlen)
{
	int i, dashdash = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && strcmp(a, "--") == 0)
			dashdash = 1;
		if (!dashdash && strcmp(a, "--config") == 0) {
			if (i + 1 >= argc || argv[i + 1][0] == '\0')
				return config_err(err, errlen, "--config needs a file name");
			*path = argv[++i];
			continue;
		}
		if (!dashdash && strncmp(a, "--config=", 9) == 0) {
			if (a[9] == '\0')
				return config_err(err, errlen, "--config needs a file name");
			*path = a + 9;
			continue;
		}
		if (config_list_push(rest, argv[i]) == -1)
			return config_err(err, errlen, "out of memory");
	}
	return 0;
}

int
config_args(const char *section, const struct option *longopts, const char *optstring,
    int *argc, char ***argv, char *err, size_t errlen)
{
	struct config_list rest = { 0 }, fsh = { 0 }, fsec = { 0 }, esh = { 0 }, esec = { 0 };
	struct config_list all = { 0 };
	const char *path = NULL;
	int kafka = optstring != NULL && strstr(optstring, "X:") != NULL;
	int rc = -1, explicit = 1;
	struct stat st;

	config_free();
	if (config_take_flag(*argc, *argv, &rest, &path, err, errlen) == -1)
		goto out;
	if (path == NULL && (path = getenv("MXSIFT_CONFIG")) != NULL && *path == '\0')
		path = NULL;
	if (path == NULL) {
		explicit = 0;
		if (stat(CONFIG_DEFAULT_PATH, &st) == 0)
			path = CONFIG_DEFAULT_PATH;
	}
	if (path != NULL) {
		if (!explicit || stat(path, &st) == 0 || errno != ENOENT) {
			if (config_read_file(path, section, longopts, kafka, &fsh, &fsec, err,
			    errlen) == -1)
				goto out;
		} else {
			config_err(err, errlen, "configuration file %s does not exist (from %s)",
			    path, getenv("MXSIFT_CONFIG") != NULL &&
			    strcmp(getenv("MXSIFT_CONFIG"), path) == 0 ? "MXSIFT_CONFIG" : "--config");
			goto out;
		}
		if ((config_state.file = strdup(path)) == NULL) {
			config_err(err, errlen, "out of memory");
			goto out;
		}
	}
	if (config_read_env(section, longopts, kafka, &esh, &esec, err, errlen) == -1)
		goto out;
	/* argv[0], file (shared, then section), env (shared, then section), flags */
	if (config_list_push(&all, (*argv)[0]) == -1)
		goto oom;
	struct config_list *parts[] = { &fsh, &fsec, &esh, &esec, &rest };
	for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++)
		for (size_t i = 0; i < parts[p]->n; i++) {
			char *a = parts[p]->v[i];

			if (parts[p] != &rest && strcmp(a, "-X") == 0 && i + 1 < parts[p]->n) {
				/* -X and its KEY=VALUE: never a marker */
				if (config_list_push(&all, parts[p]->v[i++]) == -1)
					goto oom;
				a = parts[p]->v[i];
			} else if (parts[p] != &rest &&
			    strncmp(a, CONFIG_FALSE_MARK "--", strlen(CONFIG_FALSE_MARK) + 2) == 0) {
				/* key = false: the trues before it are taken back */
				size_t k = 1;

				a += strlen(CONFIG_FALSE_MARK);
				for (size_t j = 1; j < all.n; j++)
					if (strcmp(all.v[j], a) != 0)
						all.v[k++] = all.v[j];
				all.n = k;
				continue;
			}
			if (config_list_push(&all, a) == -1)
				goto oom;
		}
	if (config_list_push(&all, NULL) == -1)
		goto oom;
	config_state.argv = all.v;
	all.v = NULL;
	*argc = (int)(all.n - 1);
	*argv = config_state.argv;
	rc = 0;
	goto out;
oom:
	config_err(err, errlen, "out of memory");
out:
	free(rest.v);
	free(fsh.v);
	free(fsec.v);
	free(esh.v);
	free(esec.v);
	free(all.v);
	if (rc == -1)
		config_free();
	return rc;
}

int
config_command(const char *prog, const char *section, const struct option *longopts,
    const char *optstring, int *argc, char ***argv)
{
	char err[1024];

	if (config_args(section, longopts, optstring, argc, argv, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return -1;
	}
	return 0;
}
