/*
 * redis_url.c — parse redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (redis_url.h).
 */
#include "redis_url.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copy s[0..n) into out (size outlen) as a string; -1 if it does not fit. */
static int
redis_url_copy(char *out, size_t outlen, const char *s, size_t n)
{
	if (n >= outlen)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* Percent-decoding for the user and password parts (RFC 3986). */
static int
redis_url_copy_decoded(char *out, size_t outlen, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			char hex[3];
			char *end;
			if (i + 2 >= n)
				return -1;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			hex[2] = '\0';
			c = (char)strtol(hex, &end, 16);
			if (*end != '\0' || c == '\0')
				return -1;
			i += 2;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

static int
redis_url_fail(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
	return -1;
}

int
redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen)
{
	const char *p, *at, *hostend, *end, *colon;
	long v;
	char *e;

	memset(out, 0, sizeof(*out));
	out->port = REDIS_URL_DEFAULT_PORT;
	if (url != NULL && strncasecmp(url, "rediss://", 9) == 0)
		return redis_url_fail(err, errlen, "rediss:// (TLS) is not supported: hiredis 0.14 "
		    "has no TLS; reach Redis over a private network or a TLS tunnel (stunnel)");
	if (url == NULL || strncasecmp(url, "redis://", 8) != 0)
		return redis_url_fail(err, errlen, "redis URL must start with redis://");
	p = url + 8;
	end = p + strcspn(p, "/?#");
	/* userinfo: the last '@' before the path (a password may hold '@' only
	 * percent-encoded, but be lenient about it anyway) */
	at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon == NULL) {
			/* redis://password@host is a common shorthand */
			if (redis_url_copy_decoded(out->password, sizeof(out->password), p,
			    (size_t)(at - p)) == -1)
				return redis_url_fail(err, errlen, "bad password in redis URL");
		} else {
			if (redis_url_copy_decoded(out->user, sizeof(out->user), p,
			    (size_t)(colon - p)) == -1 ||
			    redis_url_copy_decoded(out->password, sizeof(out->password), colon + 1,
			    (size_t)(at - colon - 1)) == -1)
				return redis_url_fail(err, errlen, "bad user or password in redis URL");
		}
		p = at + 1;
	}
	if (*p == '[') {
		hostend = memchr(p, ']', (size_t)(end - p));
		if (hostend == NULL)
			return redis_url_fail(err, errlen, "unterminated [ in redis URL");
		if (redis_url_copy(out->host, sizeof(out->host), p + 1,
		    (size_t)(hostend - p - 1)) == -1)
			return redis_url_fail(err, errlen, "host too long in redis URL");
		p = hostend + 1;
		if (p < end && *p != ':')
			return redis_url_fail(err, errlen, "junk after ] in redis URL");
	} else {
		hostend = memchr(p, ':', (size_t)(end - p));
		if (hostend == NULL)
			hostend = end;
		if (redis_url_copy(out->host, sizeof(out->host), p, (size_t)(hostend - p)) == -1)
			return redis_url_fail(err, errlen, "host too long in redis URL");
		p = hostend;
	}
	if (strpbrk(out->host, " \t") != NULL)
		return redis_url_fail(err, errlen, "space in the host of the redis URL");
	if (out->host[0] == '\0')
		snprintf(out->host, sizeof(out->host), "127.0.0.1");
	if (p < end && *p == ':') {
		char port[8];
		if (redis_url_copy(port, sizeof(port), p + 1, (size_t)(end - p - 1)) == -1 ||
		    port[0] == '\0')
			return redis_url_fail(err, errlen, "bad port in redis URL");
		errno = 0;
		v = strtol(port, &e, 10);
		if (*e != '\0' || errno != 0 || v < 1 || v > 65535)
			return redis_url_fail(err, errlen, "bad port in redis URL");
		out->port = (int)v;
	}
	p = end;
	if (*p == '/') {
		p++;
		if (*p != '\0' && *p != '?' && *p != '#') {
			errno = 0;
			v = strtol(p, &e, 10);
			if ((*e != '\0' && *e != '?' && *e != '#') || errno != 0 || v < 0 ||
			    v > INT_MAX || e == p)
				return redis_url_fail(err, errlen,
				    "bad database number in redis URL");
			out->db = (int)v;
		}
	}
	return 0;
}

int
redis_url_check_option(const char *prog, const char *url)
{
	struct redis_url u;
	char err[256];

	if (url == NULL || redis_url_parse(url, &u, err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "%s: --redis: %s (wants " REDIS_URL_SYNTAX ")\n", prog, err);
	return -1;
}
