/*
 * jobstore.c — a fleet job's state in Redis (see jobstore.h for the keys).
 *
 * Owns: the Verdict protobuf mapping, the one Lua
 * script that writes a verdict and counts it only if new, a blocking client
 * (hiredis redisContext) and an asynchronous client on a libevent loop.
 *
 * The asynchronous client never loses a write: each write stays in an
 * ordered list until Redis has answered it.  A dropped or hung connection
 * (hiredis 0.14 has no timeouts of its own: a watchdog timer checks the
 * connect time and the age of the oldest unanswered write) is freed, which
 * hands every unanswered write back as "unsent"; they are sent again on the
 * next connection, made after an exponential backoff.  Sending a write twice
 * is harmless: the script only counts a verdict whose field was absent.
 *
 * Diagnostics: blocking calls return -1 and keep the reason for
 * jobstore_errstr(); the async client logs (warn for connection trouble,
 * error for replies it cannot use) and retries.
 */
#include "jobstore.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "clock.h"
#include "log.h"
#include "mxsift.pb-c.h"

/*
 * KEYS[1] verdicts hash, KEYS[2] counts hash; ARGV field, verdict, status,
 * reason.  Returns 1 when the verdict was new (and counted), else 0.
 * A new verdict of an address (not an invalid row's "#line:N") that is not
 * unknown also becomes the address's last verdict across jobs,
 * mxsift:last:ADDRESS (JOBSTORE_LAST_TTL_S), for `submit --reuse-within`.
 * That key is not in KEYS: fine on one Redis, not on Redis Cluster.
 */
static const char jobstore_script[] =
    "if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then\n"
    "  redis.call('HINCRBY', KEYS[2], 'done', 1)\n"
    "  redis.call('HINCRBY', KEYS[2], 'status:' .. ARGV[3], 1)\n"
    "  redis.call('HINCRBY', KEYS[2], 'reason:' .. ARGV[4], 1)\n"
    "  if string.sub(ARGV[1], 1, 1) ~= '#' and ARGV[3] ~= 'unknown' then\n"
    "    redis.call('SET', 'mxsift:last:' .. ARGV[1], ARGV[2], 'EX', " JOBSTORE_LAST_TTL_STR ")\n"
    "  end\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/*
 * KEYS[1] events hash, KEYS[2] counts hash; ARGV event id, counter, increment.
 * Counts an event (an address sent to the retry topic, a dead-lettered
 * message) once, however often it is reported: at-least-once delivery
 * reports the same event again after a crash.  Returns 1 when new, else 0.
 */
static const char jobstore_count_script[] =
    "if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 1 then\n"
    "  redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[3])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

#define JS_KEY_MAX (JOBSTORE_NAME_MAX + 32)
#define JS_PIPELINE 256            /* queued writes per pipelined batch */
#define JS_STR2(x) #x
#define JS_STR(x) JS_STR2(x)

/*
 * KEYS[1] the worker's lanes hash, KEYS[2] the workers set; ARGV worker id,
 * now (unix ms), ttl (ms), then field/value pairs.  Replaces the report as
 * a whole (a lane that left the selection must not linger) and forgets
 * workers silent for JOBSTORE_WORKER_FORGET_MS, so the set stays as small
 * as the fleet.  Sent with EVAL every time: once per report interval, and a
 * lost script cache needs no second round trip.
 */
static const char jobstore_lanes_script[] =
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 4))\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - "
    JS_STR(JOBSTORE_WORKER_FORGET_MS) ")\n"
    "return 1\n";

/* ---- names, URLs, fields ------------------------------------------------ */

int
jobstore_valid_name(const char *name)
{
	size_t n;

	if (name == NULL)
		return 0;
	n = strlen(name);
	if (n == 0 || n > JOBSTORE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

void
jobstore_invalid_field(uint64_t line, char *out, size_t outlen)
{
	snprintf(out, outlen, "#line:%" PRIu64, line);
}

uint64_t
jobstore_invalid_line(const char *field)
{
	unsigned long long n;
	char *end;

	if (strncmp(field, "#line:", 6) != 0 || field[6] < '1' || field[6] > '9')
		return 0;
	errno = 0;
	n = strtoull(field + 6, &end, 10);
	return *end != '\0' || errno != 0 ? 0 : (uint64_t)n;
}

static void
js_key(char *out, size_t outlen, const char *job, const char *what)
{
	snprintf(out, outlen, "mxsift:job:%s:%s", job, what);
}

static int
js_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
js_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- Verdict <-> protobuf ---------------------------------------------- */

uint8_t *
jobstore_verdict_pack(const char *job, const char *address, const struct verdict *v, size_t *len)
{
	Mxsift__Verdict pv = MXSIFT__VERDICT__INIT;
	const char *status = verdict_status_name(v->status);
	const char *reason = verdict_reason_name(v->reason);
	uint8_t *buf;
	size_t n;

	pv.address = (char *)(address ? address : "");
	pv.status = (char *)(status ? status : "unknown");
	pv.reason = (char *)(reason ? reason : "");
	pv.smtp_code = v->smtp_code > 0 ? (uint32_t)v->smtp_code : 0;
	pv.enhanced_code = (char *)v->enhanced;
	pv.reply_text = (char *)v->text;
	pv.mx_host = (char *)v->mx_host;
	pv.tls = v->tls != 0;
	pv.attempts = v->attempts;
	pv.duration_ms = v->duration_ms;
	pv.checked_at = v->checked_at;
	pv.detail = (char *)v->detail;
	pv.flags = v->flags;
	pv.suggestion = (char *)v->suggestion;
	pv.job = (char *)(job ? job : "");
	n = mxsift__verdict__get_packed_size(&pv);
	buf = malloc(n ? n : 1);
	if (buf == NULL)
		return NULL;
	mxsift__verdict__pack(&pv, buf);
	*len = n;
	return buf;
}

static void
js_strlcpy(char *dst, const char *src, size_t dstlen)
{
	snprintf(dst, dstlen, "%s", src ? src : "");
}

int
jobstore_verdict_unpack(const uint8_t *buf, size_t len, char **address, struct verdict *v)
{
	Mxsift__Verdict *pv;
	int s, r;

	*address = NULL;
	pv = mxsift__verdict__unpack(NULL, len, buf);
	if (pv == NULL)
		return -1;
	s = verdict_status_parse(pv->status);
	r = verdict_reason_parse(pv->reason);
	if (s < 0 || r < 0) {
		mxsift__verdict__free_unpacked(pv, NULL);
		return -1;
	}
	memset(v, 0, sizeof(*v));
	v->status = (enum verdict_status)s;
	v->reason = (enum verdict_reason)r;
	v->smtp_code = (int)pv->smtp_code;
	js_strlcpy(v->enhanced, pv->enhanced_code, sizeof(v->enhanced));
	js_strlcpy(v->text, pv->reply_text, sizeof(v->text));
	js_strlcpy(v->mx_host, pv->mx_host, sizeof(v->mx_host));
	js_strlcpy(v->detail, pv->detail, sizeof(v->detail));
	v->tls = pv->tls;
	v->attempts = pv->attempts;
	v->duration_ms = pv->duration_ms;
	v->checked_at = pv->checked_at;
	v->flags = pv->flags;
	js_strlcpy(v->suggestion, pv->suggestion, sizeof(v->suggestion));
	*address = strdup(pv->address ? pv->address : "");
	mxsift__verdict__free_unpacked(pv, NULL);
	return *address == NULL ? -1 : 0;
}

/* ---- lane reports: records ----------------------------------------------- */

int
jobstore_valid_worker_id(const char *id)
{
	size_t n;

	if (id == NULL || (n = strlen(id)) == 0 || n >= JOBSTORE_WORKER_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] >= 0x7f)
			return 0;
	return 1;
}

int
jobstore_lane_backed_off(const struct jobstore_lane *l, int64_t now_ms)
{
	return l->paused_until > now_ms || l->rate != l->rule_rate;
}

/* snprintf's result as "length, or -1 when it did not fit". */
static int
js_fits(int n, size_t outlen)
{
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int
jobstore_lane_format(const struct jobstore_lane *l, char *out, size_t outlen)
{
	return js_fits(snprintf(out, outlen, "rate=%.6g rule_rate=%.6g queued=%" PRIu64
	    " sessions=%u max_sessions=%u level=%u backoffs=%" PRIu64 " paused_until=%" PRId64,
	    l->rate, l->rule_rate, l->queued, l->sessions, l->max_sessions, l->backoff_level,
	    l->backoffs, l->paused_until), outlen);
}

int
jobstore_lane_summary_format(const struct jobstore_lane_report *r, char *out, size_t outlen)
{
	return js_fits(snprintf(out, outlen, "updated_at=%" PRId64 " interval_ms=%u lanes=%"
	    PRIu64 " backed_off=%" PRIu64 " shown=%zu", r->updated_at, r->interval_ms, r->lanes,
	    r->backed_off, r->n), outlen);
}

/*
 * The next key=value pair of a record: *p advances past it.  1 with key
 * and val set (val points into the record, ends at a space or NUL: *vlen),
 * 0 at the end, -1 for a token without '=' or an empty key.
 */
static int
js_kv_next(const char **p, const char **key, size_t *klen, const char **val, size_t *vlen)
{
	const char *s = *p, *eq, *end;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	end = s + strcspn(s, " ");
	eq = memchr(s, '=', (size_t)(end - s));
	if (eq == NULL || eq == s)
		return -1;
	*key = s;
	*klen = (size_t)(eq - s);
	*val = eq + 1;
	*vlen = (size_t)(end - eq - 1);
	*p = end;
	return 1;
}

static int
js_key_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

/* Strict decimal numbers: the whole value, nothing else. */
static int
js_parse_u64(const char *v, size_t n, uint64_t *out)
{
	char buf[32], *end;

	if (n == 0 || n >= sizeof(buf) || v[0] == '-' || v[0] == '+')
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return *end != '\0' || errno != 0 ? -1 : 0;
}

static int
js_parse_i64(const char *v, size_t n, int64_t *out)
{
	char buf[32], *end;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return *end != '\0' || errno != 0 ? -1 : 0;
}

static int
js_parse_unsigned(const char *v, size_t n, unsigned *out)
{
	uint64_t u;

	if (js_parse_u64(v, n, &u) == -1 || u > UINT_MAX)
		return -1;
	*out = (unsigned)u;
	return 0;
}

/* A rate: finite, not negative ("inf" and "nan" are not rates). */
static int
js_parse_rate(const char *v, size_t n, double *out)
{
	char buf[48], *end;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	return *end != '\0' || errno != 0 || !isfinite(*out) || *out < 0 ? -1 : 0;
}

int
jobstore_lane_parse(const char *mx_domain, const char *value, struct jobstore_lane *l)
{
	const char *p = value, *k, *v;
	size_t kl, vl;
	int rc, bad = 0;

	memset(l, 0, sizeof(*l));
	if (mx_domain == NULL || value == NULL || strlen(mx_domain) >= sizeof(l->mx_domain))
		return -1;
	memcpy(l->mx_domain, mx_domain, strlen(mx_domain) + 1);
	while (!bad && (rc = js_kv_next(&p, &k, &kl, &v, &vl)) != 0) {
		if (rc == -1)
			return -1;
		if (js_key_is(k, kl, "rate"))
			bad = js_parse_rate(v, vl, &l->rate);
		else if (js_key_is(k, kl, "rule_rate"))
			bad = js_parse_rate(v, vl, &l->rule_rate);
		else if (js_key_is(k, kl, "queued"))
			bad = js_parse_u64(v, vl, &l->queued);
		else if (js_key_is(k, kl, "sessions"))
			bad = js_parse_unsigned(v, vl, &l->sessions);
		else if (js_key_is(k, kl, "max_sessions"))
			bad = js_parse_unsigned(v, vl, &l->max_sessions);
		else if (js_key_is(k, kl, "level"))
			bad = js_parse_unsigned(v, vl, &l->backoff_level);
		else if (js_key_is(k, kl, "backoffs"))
			bad = js_parse_u64(v, vl, &l->backoffs);
		else if (js_key_is(k, kl, "paused_until"))
			bad = js_parse_i64(v, vl, &l->paused_until);
	}
	return bad ? -1 : 0;
}

int
jobstore_lane_summary_parse(const char *value, struct jobstore_lane_report *r)
{
	const char *p = value, *k, *v;
	size_t kl, vl;
	int rc, bad = 0;

	r->updated_at = 0;
	r->interval_ms = 0;
	r->lanes = r->backed_off = 0;
	if (value == NULL)
		return -1;
	while (!bad && (rc = js_kv_next(&p, &k, &kl, &v, &vl)) != 0) {
		if (rc == -1)
			return -1;
		if (js_key_is(k, kl, "updated_at"))
			bad = js_parse_i64(v, vl, &r->updated_at);
		else if (js_key_is(k, kl, "interval_ms"))
			bad = js_parse_unsigned(v, vl, &r->interval_ms);
		else if (js_key_is(k, kl, "lanes"))
			bad = js_parse_u64(v, vl, &r->lanes);
		else if (js_key_is(k, kl, "backed_off"))
			bad = js_parse_u64(v, vl, &r->backed_off);
	}
	return bad ? -1 : 0;
}

/* ---- the scripts' SHA1s and arguments ----------------------------------- */

static char js_sha[2][41];

/* SHA1 of the verdict script (count = 0) or of the count script (1). */
static const char *
js_sha_of(int count)
{
	const char *script = count ? jobstore_count_script : jobstore_script;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *sha = js_sha[count ? 1 : 0];

	if (sha[0] == '\0') {
		if (EVP_Digest(script, strlen(script), md, &mdlen, EVP_sha1(), NULL) != 1 ||
		    mdlen != 20)
			return NULL;
		for (unsigned i = 0; i < mdlen; i++)
			snprintf(sha + 2 * i, 3, "%02x", md[i]);
	}
	return sha;
}

static const char *
js_script_sha(void)
{
	return js_sha_of(0);
}

/* One script call, self-contained so it can be sent again: a verdict
 * write, or a count-once event (count = 1: field is the event id, blob the
 * counter name, incr the increment; no pointer into itself, so it may be
 * copied). */
struct js_write {
	int count;
	char kverdicts[JS_KEY_MAX];     /* or the events hash */
	char kcounts[JS_KEY_MAX];
	char *field;
	uint8_t *blob;
	size_t bloblen;
	const char *status, *reason;    /* static names */
	char incr[24];
};

static int
js_write_init(struct js_write *w, const char *job, const char *field, const char *address,
    const struct verdict *v)
{
	memset(w, 0, sizeof(*w));
	if (!jobstore_valid_name(job) || field == NULL || *field == '\0')
		return -1;
	js_key(w->kverdicts, sizeof(w->kverdicts), job, "verdicts");
	js_key(w->kcounts, sizeof(w->kcounts), job, "counts");
	w->status = verdict_status_name(v->status);
	w->reason = verdict_reason_name(v->reason);
	if (w->status == NULL || w->reason == NULL)
		return -1;
	w->field = strdup(field);
	w->blob = jobstore_verdict_pack(job, address, v, &w->bloblen);
	if (w->field == NULL || w->blob == NULL) {
		free(w->field);
		free(w->blob);
		w->field = NULL;
		w->blob = NULL;
		return -1;
	}
	return 0;
}

/* The keys of job's events and counts, or the global dead-letter ones
 * when job is NULL. */
static void
js_count_keys(const char *job, char *events, char *counts)
{
	if (job == NULL) {
		snprintf(events, JS_KEY_MAX, "%s", JOBSTORE_DEAD_EVENTS_KEY);
		snprintf(counts, JS_KEY_MAX, "%s", JOBSTORE_DEAD_COUNTS_KEY);
	} else {
		js_key(events, JS_KEY_MAX, job, "events");
		js_key(counts, JS_KEY_MAX, job, "counts");
	}
}

static int
js_count_init(struct js_write *w, const char *job, const char *event, const char *counter,
    uint64_t incr)
{
	memset(w, 0, sizeof(*w));
	if ((job != NULL && !jobstore_valid_name(job)) || event == NULL || *event == '\0' ||
	    counter == NULL || *counter == '\0')
		return -1;
	w->count = 1;
	js_count_keys(job, w->kverdicts, w->kcounts);
	snprintf(w->incr, sizeof(w->incr), "%" PRIu64, incr);
	w->field = strdup(event);
	w->blob = (uint8_t *)strdup(counter);
	if (w->field == NULL || w->blob == NULL) {
		free(w->field);
		free(w->blob);
		w->field = NULL;
		w->blob = NULL;
		return -1;
	}
	w->bloblen = strlen(counter);
	return 0;
}

static void
js_write_clear(struct js_write *w)
{
	free(w->field);
	free(w->blob);
	w->field = NULL;
	w->blob = NULL;
}

/* EVALSHA sha 2 kv kc field blob status reason (or EVAL script ...);
 * a count: EVALSHA sha 2 ke kc event counter incr. */
static int
js_write_argv(const struct js_write *w, int use_eval, const char **argv, size_t *argvlen)
{
	const char *sha = js_sha_of(w->count);
	int argc = w->count ? 8 : 9;

	if (!use_eval && sha == NULL)
		use_eval = 1;
	argv[0] = use_eval ? "EVAL" : "EVALSHA";
	argv[1] = use_eval ? (w->count ? jobstore_count_script : jobstore_script) : sha;
	argv[2] = "2";
	argv[3] = w->kverdicts;
	argv[4] = w->kcounts;
	argv[5] = w->field;
	argv[6] = (const char *)w->blob;
	argv[7] = w->count ? w->incr : w->status;
	argv[8] = w->reason;
	for (int i = 0; i < argc; i++)
		if (i != 6)
			argvlen[i] = strlen(argv[i]);
	argvlen[6] = w->bloblen;
	return argc;
}

static int
js_is_noscript(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR && r->str != NULL &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* ---- blocking API --------------------------------------------------------- */

struct jobstore {
	redisContext *c;
	char err[256];
	struct js_write queued[JS_PIPELINE];
	size_t nqueued;
	uint64_t fresh, dup;
};

static int
js_set_err(struct jobstore *js, const char *what, const redisReply *r)
{
	if (r != NULL && r->type == REDIS_REPLY_ERROR)
		snprintf(js->err, sizeof(js->err), "%s: %s", what, r->str);
	else if (js->c != NULL && js->c->err)
		snprintf(js->err, sizeof(js->err), "%s: %s", what, js->c->errstr);
	else
		snprintf(js->err, sizeof(js->err), "%s: unexpected reply", what);
	return -1;
}

const char *
jobstore_errstr(const struct jobstore *js)
{
	return js->err;
}

/* Run a command; returns the reply (caller frees) or NULL with err set.
 * An error reply is returned as NULL too.  Queued (pipelined) verdict
 * writes are flushed first: their replies come before this one's, and
 * reading them as this command's reply would put the connection out of
 * step (an HSET taking an EVALSHA's integer). */
static redisReply *
js_cmd(struct jobstore *js, const char *what, int argc, const char **argv, const size_t *lens)
{
	redisReply *r;

	if (js->nqueued > 0 && jobstore_flush(js) == -1)
		return NULL;
	r = redisCommandArgv(js->c, argc, argv, lens);

	if (r == NULL) {
		js_set_err(js, what, NULL);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		js_set_err(js, what, r);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

struct jobstore *
jobstore_connect(const char *url, unsigned timeout_ms, char *err, size_t errlen)
{
	struct redis_url u;
	struct jobstore *js;
	struct timeval tv;
	redisReply *r;

	if (redis_url_parse(url, &u, err, errlen) == -1)
		return NULL;
	if (timeout_ms == 0)
		timeout_ms = 5000;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	js = calloc(1, sizeof(*js));
	if (js == NULL) {
		js_fail(err, errlen, "out of memory");
		return NULL;
	}
	js->c = redisConnectWithTimeout(u.host, u.port, tv);
	if (js->c == NULL || js->c->err) {
		js_fail(err, errlen, "redis %s:%d: %s", u.host, u.port,
		    js->c ? js->c->errstr : "cannot allocate context");
		jobstore_close(js);
		return NULL;
	}
	if (redisSetTimeout(js->c, tv) != REDIS_OK) {
		js_fail(err, errlen, "redis: cannot set timeout");
		jobstore_close(js);
		return NULL;
	}
	if (u.password[0] != '\0') {
		const char *argv[3] = { "AUTH", u.user, u.password };
		size_t lens[3] = { 4, strlen(u.user), strlen(u.password) };
		int argc = 3;
		if (u.user[0] == '\0') {
			argv[1] = u.password;
			lens[1] = lens[2];
			argc = 2;
		}
		if ((r = js_cmd(js, "AUTH", argc, argv, lens)) == NULL)
			goto fail;
		freeReplyObject(r);
	}
	if (u.db > 0) {
		char db[16];
		snprintf(db, sizeof(db), "%d", u.db);
		const char *argv[2] = { "SELECT", db };
		size_t lens[2] = { 6, strlen(db) };
		if ((r = js_cmd(js, "SELECT", 2, argv, lens)) == NULL)
			goto fail;
		freeReplyObject(r);
	}
	{
		const char *argv[3] = { "SCRIPT", "LOAD", jobstore_script };
		size_t lens[3] = { 6, 4, strlen(jobstore_script) };
		if ((r = js_cmd(js, "SCRIPT LOAD", 3, argv, lens)) == NULL)
			goto fail;
		if (r->type != REDIS_REPLY_STRING || js_script_sha() == NULL ||
		    strcmp(r->str, js_script_sha()) != 0) {
			freeReplyObject(r);
			snprintf(js->err, sizeof(js->err), "SCRIPT LOAD: unexpected SHA1");
			goto fail;
		}
		freeReplyObject(r);
	}
	return js;
fail:
	js_fail(err, errlen, "redis %s:%d: %s", u.host, u.port, js->err);
	jobstore_close(js);
	return NULL;
}

void
jobstore_close(struct jobstore *js)
{
	if (js == NULL)
		return;
	for (size_t i = 0; i < js->nqueued; i++)
		js_write_clear(&js->queued[i]);
	if (js->c != NULL)
		redisFree(js->c);
	free(js);
}

int
jobstore_job_exists(struct jobstore *js, const char *job)
{
	char key[JS_KEY_MAX];
	redisReply *r;
	int rc;

	if (!jobstore_valid_name(job))
		return js_fail(js->err, sizeof(js->err), "bad job name");
	js_key(key, sizeof(key), job, "meta");
	const char *argv[2] = { "EXISTS", key };
	size_t lens[2] = { 6, strlen(key) };
	if ((r = js_cmd(js, "EXISTS", 2, argv, lens)) == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	return rc;
}

int
jobstore_set_meta(struct jobstore *js, const char *job, const char *field, const char *value)
{
	char key[JS_KEY_MAX];
	redisReply *r;

	if (!jobstore_valid_name(job))
		return js_fail(js->err, sizeof(js->err), "bad job name");
	js_key(key, sizeof(key), job, "meta");
	const char *argv[4] = { "HSET", key, field, value };
	size_t lens[4] = { 4, strlen(key), strlen(field), strlen(value) };
	if ((r = js_cmd(js, "HSET", 4, argv, lens)) == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

int
jobstore_put_meta(struct jobstore *js, const char *job, const struct jobstore_meta *m)
{
	char key[JS_KEY_MAX], nums[8][24];
	const char *argv[2 + 2 * 10];
	size_t lens[2 + 2 * 10];
	const uint64_t vals[7] = { m->rows, m->unique, m->invalid, m->duplicates, m->total,
		m->domains, m->tasks };
	static const char *const names[7] = { "rows", "unique", "invalid", "duplicates", "total",
		"domains", "tasks" };
	redisReply *r;
	int argc = 0;

	if (!jobstore_valid_name(job))
		return js_fail(js->err, sizeof(js->err), "bad job name");
	js_key(key, sizeof(key), job, "meta");
	argv[argc++] = "HSET";
	argv[argc++] = key;
	for (int i = 0; i < 7; i++) {
		snprintf(nums[i], sizeof(nums[i]), "%" PRIu64, vals[i]);
		argv[argc++] = names[i];
		argv[argc++] = nums[i];
	}
	snprintf(nums[7], sizeof(nums[7]), "%" PRId64, m->submitted_at);
	argv[argc++] = "submitted_at";
	argv[argc++] = nums[7];
	argv[argc++] = "state";
	argv[argc++] = m->state;
	argv[argc++] = "file";
	argv[argc++] = m->file;
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if ((r = js_cmd(js, "HSET", argc, argv, lens)) == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

int
jobstore_get_last(struct jobstore *js, const char *const *addresses, size_t n,
    struct verdict *out, int *found)
{
	const char **argv;
	size_t *lens;
	char **keys;
	redisReply *r;
	int rc = -1;

	if (n == 0)
		return 0;
	argv = calloc(n + 1, sizeof(*argv));
	lens = calloc(n + 1, sizeof(*lens));
	keys = calloc(n, sizeof(*keys));
	if (argv == NULL || lens == NULL || keys == NULL) {
		snprintf(js->err, sizeof(js->err), "out of memory");
		goto out;
	}
	argv[0] = "MGET";
	lens[0] = 4;
	for (size_t i = 0; i < n; i++) {
		if (asprintf(&keys[i], "mxsift:last:%s", addresses[i]) < 0) {
			keys[i] = NULL;
			snprintf(js->err, sizeof(js->err), "out of memory");
			goto out;
		}
		argv[i + 1] = keys[i];
		lens[i + 1] = strlen(keys[i]);
	}
	if ((r = js_cmd(js, "MGET", (int)(n + 1), argv, lens)) == NULL)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		freeReplyObject(r);
		js_set_err(js, "MGET", NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		redisReply *e = r->element[i];
		char *address = NULL;

		found[i] = 0;
		/* An undecodable blob is as good as none: probe again. */
		if (e->type == REDIS_REPLY_STRING &&
		    jobstore_verdict_unpack((const uint8_t *)e->str, e->len, &address,
		    &out[i]) == 0)
			found[i] = 1;
		free(address);
	}
	freeReplyObject(r);
	rc = 0;
out:
	for (size_t i = 0; keys != NULL && i < n; i++)
		free(keys[i]);
	free(keys);
	free(argv);
	free(lens);
	return rc;
}

/* argv/lens (n + 2 slots each) for HMGET of fields in job's verdicts hash,
 * named in key (JOBSTORE_NAME_MAX + 64 bytes). */
static void
js_hmget_argv(char *key, size_t keylen, const char *job, const char *const *fields, size_t n,
    const char **argv, size_t *lens)
{
	js_key(key, keylen, job, "verdicts");
	argv[0] = "HMGET";
	lens[0] = 5;
	argv[1] = key;
	lens[1] = strlen(key);
	for (size_t i = 0; i < n; i++) {
		argv[i + 2] = fields[i];
		lens[i + 2] = strlen(fields[i]);
	}
}

int
jobstore_get_verdicts(struct jobstore *js, const char *job, const char *const *fields,
    size_t n, struct verdict *out, char **addresses, int *found)
{
	char key[JOBSTORE_NAME_MAX + 64];
	const char **argv;
	size_t *lens;
	redisReply *r;
	int rc = -1;

	if (n == 0)
		return 0;
	argv = calloc(n + 2, sizeof(*argv));
	lens = calloc(n + 2, sizeof(*lens));
	if (argv == NULL || lens == NULL) {
		snprintf(js->err, sizeof(js->err), "out of memory");
		goto out;
	}
	js_hmget_argv(key, sizeof(key), job, fields, n, argv, lens);
	if ((r = js_cmd(js, "HMGET", (int)(n + 2), argv, lens)) == NULL)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		freeReplyObject(r);
		js_set_err(js, "HMGET", NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		redisReply *e = r->element[i];

		found[i] = 0;
		addresses[i] = NULL;
		if (e->type == REDIS_REPLY_STRING &&
		    jobstore_verdict_unpack((const uint8_t *)e->str, e->len, &addresses[i],
		    &out[i]) == 0)
			found[i] = 1;
		else {
			free(addresses[i]);
			addresses[i] = NULL;
		}
	}
	freeReplyObject(r);
	rc = 0;
out:
	free(argv);
	free(lens);
	return rc;
}

static uint64_t
js_u64(const char *s)
{
	return strtoull(s, NULL, 10);
}

/* HGETALL key; cb per field/value pair.  Returns number of pairs or -1. */
static long
js_hgetall(struct jobstore *js, const char *key,
    void (*cb)(void *arg, const char *f, const char *v), void *arg)
{
	redisReply *r;
	long n;

	const char *argv[2] = { "HGETALL", key };
	size_t lens[2] = { 7, strlen(key) };
	if ((r = js_cmd(js, "HGETALL", 2, argv, lens)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return js_set_err(js, "HGETALL", NULL);
	}
	for (size_t i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    r->element[i + 1]->type == REDIS_REPLY_STRING)
			cb(arg, r->element[i]->str, r->element[i + 1]->str);
	n = (long)(r->elements / 2);
	freeReplyObject(r);
	return n;
}

static void
js_meta_field(void *arg, const char *f, const char *v)
{
	struct jobstore_meta *m = arg;

	if (strcmp(f, "rows") == 0) m->rows = js_u64(v);
	else if (strcmp(f, "unique") == 0) m->unique = js_u64(v);
	else if (strcmp(f, "invalid") == 0) m->invalid = js_u64(v);
	else if (strcmp(f, "duplicates") == 0) m->duplicates = js_u64(v);
	else if (strcmp(f, "total") == 0) m->total = js_u64(v);
	else if (strcmp(f, "domains") == 0) m->domains = js_u64(v);
	else if (strcmp(f, "tasks") == 0) m->tasks = js_u64(v);
	else if (strcmp(f, "reused") == 0) {
		m->reused = js_u64(v);
		m->has_reused = 1;
	}
	else if (strcmp(f, "submitted_at") == 0) m->submitted_at = strtoll(v, NULL, 10);
	else if (strcmp(f, "state") == 0) js_strlcpy(m->state, v, sizeof(m->state));
	else if (strcmp(f, "file") == 0) js_strlcpy(m->file, v, sizeof(m->file));
}

int
jobstore_get_meta(struct jobstore *js, const char *job, struct jobstore_meta *m)
{
	char key[JS_KEY_MAX];
	long n;

	memset(m, 0, sizeof(*m));
	if (!jobstore_valid_name(job))
		return js_fail(js->err, sizeof(js->err), "bad job name");
	js_key(key, sizeof(key), job, "meta");
	if ((n = js_hgetall(js, key, js_meta_field, m)) == -1)
		return -1;
	return n > 0;
}

static void
js_count_field(void *arg, const char *f, const char *v)
{
	struct jobstore_counts *c = arg;
	int i;

	if (strcmp(f, "done") == 0)
		c->done = js_u64(v);
	else if (strncmp(f, "status:", 7) == 0 && (i = verdict_status_parse(f + 7)) >= 0)
		c->status[i] = js_u64(v);
	else if (strncmp(f, "reason:", 7) == 0 && (i = verdict_reason_parse(f + 7)) >= 0)
		c->reason[i] = js_u64(v);
	else if (strcmp(f, JOBSTORE_C_RETRIED) == 0)
		c->retried = js_u64(v);
	else if (strcmp(f, JOBSTORE_C_DEAD) == 0)
		c->dead = js_u64(v);
	else if (strcmp(f, JOBSTORE_C_DEAD_ADDRESSES) == 0)
		c->dead_addresses = js_u64(v);
	else if (strcmp(f, JOBSTORE_C_BACKED_OFF) == 0)
		c->backed_off = js_u64(v);
	else
		log_warn("unknown count field in redis", "field=\"%.64s\"", f);
}

int
jobstore_get_counts(struct jobstore *js, const char *job, struct jobstore_counts *c)
{
	char key[JS_KEY_MAX];

	memset(c, 0, sizeof(*c));
	if (!jobstore_valid_name(job))
		return js_fail(js->err, sizeof(js->err), "bad job name");
	js_key(key, sizeof(key), job, "counts");
	return js_hgetall(js, key, js_count_field, c) == -1 ? -1 : 0;
}

static void
js_dead_field(void *arg, const char *f, const char *v)
{
	if (strcmp(f, JOBSTORE_C_DEAD) == 0)
		*(uint64_t *)arg = js_u64(v);
}

int
jobstore_get_dead_global(struct jobstore *js, uint64_t *messages)
{
	*messages = 0;
	return js_hgetall(js, JOBSTORE_DEAD_COUNTS_KEY, js_dead_field, messages) == -1 ? -1 : 0;
}

int
jobstore_count_once(struct jobstore *js, const char *job, const char *event, const char *counter,
    uint64_t incr)
{
	struct js_write w;
	const char *argv[9];
	size_t lens[9];
	redisReply *r;
	int argc, rc;

	if (js_count_init(&w, job, event, counter, incr) == -1)
		return js_fail(js->err, sizeof(js->err), "bad count event");
	argc = js_write_argv(&w, 1, argv, lens);
	r = js_cmd(js, "EVAL", argc, argv, lens);
	js_write_clear(&w);
	if (r == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return rc;
}

int
jobstore_put_verdict(struct jobstore *js, const char *job, const char *field,
    const char *address, const struct verdict *v)
{
	uint64_t fresh = js->fresh;

	if (jobstore_queue_verdict(js, job, field, address, v) == -1 ||
	    jobstore_flush(js) == -1)
		return -1;
	return js->fresh > fresh ? 1 : 0;
}

int
jobstore_queue_verdict(struct jobstore *js, const char *job, const char *field,
    const char *address, const struct verdict *v)
{
	struct js_write *w;
	const char *argv[9];
	size_t lens[9];
	int argc;

	if (js->nqueued == JS_PIPELINE && jobstore_flush(js) == -1)
		return -1;
	w = &js->queued[js->nqueued];
	if (js_write_init(w, job, field, address, v) == -1)
		return js_fail(js->err, sizeof(js->err), "cannot build verdict write (job %s)",
		    job ? job : "?");
	argc = js_write_argv(w, 0, argv, lens);
	if (redisAppendCommandArgv(js->c, argc, argv, lens) != REDIS_OK) {
		js_write_clear(w);
		return js_set_err(js, "EVALSHA", NULL);
	}
	js->nqueued++;
	return 0;
}

int
jobstore_flush(struct jobstore *js)
{
	unsigned char noscript[JS_PIPELINE];
	size_t n = js->nqueued;
	int rc = 0;

	memset(noscript, 0, sizeof(noscript));
	/* Read every reply of the batch, in order, even after a failure, so
	 * the connection stays in step. */
	for (size_t i = 0; i < n; i++) {
		redisReply *r = NULL;
		if (redisGetReply(js->c, (void **)&r) != REDIS_OK || r == NULL) {
			js_set_err(js, "EVALSHA", NULL);
			rc = -1;
			break;   /* the connection is broken: no more replies */
		}
		if (js_is_noscript(r))
			noscript[i] = 1;
		else if (r->type == REDIS_REPLY_INTEGER) {
			if (r->integer == 1)
				js->fresh++;
			else
				js->dup++;
		} else {
			js_set_err(js, "EVALSHA", r);
			rc = -1;
		}
		freeReplyObject(r);
	}
	/* NOSCRIPT: the server lost the script (restart, SCRIPT FLUSH).  The
	 * batch is out of the pipeline now (js_cmd must not flush it again). */
	js->nqueued = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *argv[9];
		size_t lens[9];
		redisReply *r;
		int argc;

		if (!noscript[i])
			continue;
		argc = js_write_argv(&js->queued[i], 1, argv, lens);
		if ((r = js_cmd(js, "EVAL", argc, argv, lens)) == NULL) {
			rc = -1;
			break;
		}
		if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
			js->fresh++;
		else
			js->dup++;
		freeReplyObject(r);
	}
	for (size_t i = 0; i < n; i++)
		js_write_clear(&js->queued[i]);
	js->nqueued = 0;
	return rc;
}

void
jobstore_get_written(const struct jobstore *js, uint64_t *fresh, uint64_t *dup)
{
	if (fresh != NULL)
		*fresh = js->fresh;
	if (dup != NULL)
		*dup = js->dup;
}

int
jobstore_scan_verdicts(struct jobstore *js, const char *job, jobstore_scan_cb cb, void *arg,
    uint64_t *bad)
{
	char key[JS_KEY_MAX], cursor[32] = "0";
	uint64_t nbad = 0;
	int stop = 0;

	if (!jobstore_valid_name(job))
		return js_fail(js->err, sizeof(js->err), "bad job name");
	js_key(key, sizeof(key), job, "verdicts");
	do {
		const char *argv[5] = { "HSCAN", key, cursor, "COUNT", "500" };
		size_t lens[5] = { 5, strlen(key), strlen(cursor), 5, 3 };
		redisReply *r, *items;

		if ((r = js_cmd(js, "HSCAN", 5, argv, lens)) == NULL)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			return js_set_err(js, "HSCAN", NULL);
		}
		js_strlcpy(cursor, r->element[0]->str, sizeof(cursor));
		items = r->element[1];
		for (size_t i = 0; i + 1 < items->elements && !stop; i += 2) {
			redisReply *f = items->element[i], *val = items->element[i + 1];
			struct verdict v;
			char *address;

			if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING ||
			    jobstore_verdict_unpack((const uint8_t *)val->str, val->len, &address,
			    &v) == -1) {
				log_warn("undecodable verdict in redis", "job=%s field=\"%.64s\"",
				    job, f->type == REDIS_REPLY_STRING ? f->str : "?");
				nbad++;
				continue;
			}
			stop = cb(arg, f->str, address, &v);
			free(address);
		}
		freeReplyObject(r);
	} while (!stop && strcmp(cursor, "0") != 0);
	if (bad != NULL)
		*bad = nbad;
	return 0;
}

/* ---- lane reports: reading ------------------------------------------------ */

#define JS_WORKERS_READ_MAX 10000   /* ids read from the workers set */

static void
js_lanes_key(char *out, size_t outlen, const char *worker)
{
	snprintf(out, outlen, "mxsift:worker:%s:lanes", worker);
}

/* One worker's HGETALL reply into r (r->worker set).  0, or 1 when the hash
 * is gone (the worker died: its report expired), -1 no memory. */
static int
js_lane_report_fill(const redisReply *h, struct jobstore_lane_report *r)
{
	size_t pairs = h->elements / 2;

	if (pairs == 0)
		return 1;
	if ((r->lane = calloc(pairs, sizeof(*r->lane))) == NULL)
		return -1;
	for (size_t i = 0; i + 1 < h->elements; i += 2) {
		const redisReply *f = h->element[i], *v = h->element[i + 1];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(f->str, JOBSTORE_LANES_SUMMARY) == 0) {
			if (jobstore_lane_summary_parse(v->str, r) == -1)
				log_warn("unparsable lane report summary in redis",
				    "worker=\"%.128s\"", r->worker);
		} else if (jobstore_lane_parse(f->str, v->str, &r->lane[r->n]) == 0)
			r->n++;
		else
			log_warn("unparsable lane in redis", "worker=\"%.128s\" lane=\"%.64s\"",
			    r->worker, f->str);
	}
	return 0;
}

int
jobstore_get_lane_reports(struct jobstore *js, struct jobstore_lane_report **out, size_t *n)
{
	struct jobstore_lane_report *reps = NULL;
	const char *argv[4] = { "ZRANGE", JOBSTORE_WORKERS_KEY, "0", "-1" };
	size_t lens[4] = { 6, strlen(JOBSTORE_WORKERS_KEY), 1, 2 }, nids = 0, nrep = 0, sent = 0;
	redisReply *ids;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if ((ids = js_cmd(js, "ZRANGE", 4, argv, lens)) == NULL)
		return -1;
	if (ids->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(ids);
		return js_set_err(js, "ZRANGE", NULL);
	}
	nids = ids->elements < JS_WORKERS_READ_MAX ? ids->elements : JS_WORKERS_READ_MAX;
	if (nids > 0 && (reps = calloc(nids, sizeof(*reps))) == NULL) {
		snprintf(js->err, sizeof(js->err), "out of memory");
		goto out;
	}
	/* One HGETALL per worker, pipelined: one round trip for the fleet. */
	for (size_t i = 0; i < nids; i++) {
		const redisReply *id = ids->element[i];
		char key[JOBSTORE_WORKER_ID_MAX + 32];
		const char *hargv[2] = { "HGETALL", key };
		size_t hlens[2] = { 7, 0 };

		if (id->type != REDIS_REPLY_STRING || !jobstore_valid_worker_id(id->str))
			continue;
		js_lanes_key(key, sizeof(key), id->str);
		hlens[1] = strlen(key);
		if (redisAppendCommandArgv(js->c, 2, hargv, hlens) != REDIS_OK) {
			js_set_err(js, "HGETALL", NULL);
			goto out;
		}
		js_strlcpy(reps[sent].worker, id->str, sizeof(reps[sent].worker));
		sent++;
	}
	/* Read every reply, even after a bad one, so the connection stays in
	 * step; a broken connection has no more. */
	rc = 0;
	for (size_t i = 0; i < sent; i++) {
		redisReply *h = NULL;
		int f;

		if (redisGetReply(js->c, (void **)&h) != REDIS_OK || h == NULL) {
			rc = js_set_err(js, "HGETALL", NULL);
			break;
		}
		if (h->type != REDIS_REPLY_ARRAY) {
			rc = js_set_err(js, "HGETALL", h);
		} else if (rc == 0) {
			struct jobstore_lane_report tmp = reps[i];

			reps[i].lane = NULL;
			f = js_lane_report_fill(h, &tmp);
			if (f == -1) {
				snprintf(js->err, sizeof(js->err), "out of memory");
				rc = -1;
			} else if (f == 0)
				reps[nrep++] = tmp;
		}
		freeReplyObject(h);
	}
out:
	freeReplyObject(ids);
	if (rc == -1) {
		jobstore_lane_reports_free(reps, nids);
		return -1;
	}
	*out = reps;
	*n = nrep;
	return 0;
}

void
jobstore_lane_reports_free(struct jobstore_lane_report *r, size_t n)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(r[i].lane);
	free(r);
}

/* ---- asynchronous API ------------------------------------------------------ */

enum ja_state { JA_IDLE = 0, JA_CONNECTING, JA_READY };

struct ja_write {
	TAILQ_ENTRY(ja_write) entry;
	struct jobstore_async *ja;
	struct js_write w;
	jobstore_write_cb cb;
	void *arg;
	int sent;             /* on the current connection, reply pending */
	int use_eval;         /* after NOSCRIPT */
	uint64_t sent_at;     /* monotonic ms */
};

TAILQ_HEAD(ja_list, ja_write);

/* A have-verdicts lookup on the current connection, answered or not. */
struct ja_read {
	TAILQ_ENTRY(ja_read) entry;
	struct jobstore_async *ja;
	size_t n;
	jobstore_have_cb cb;
	void *arg;
	uint64_t sent_at;     /* monotonic ms */
};

TAILQ_HEAD(ja_read_list, ja_read);

struct jobstore_async {
	struct event_base *base;
	struct redis_url url;
	struct jobstore_async_params p;
	redisAsyncContext *ac;
	enum ja_state state;
	uint64_t connect_started;
	unsigned backoff_ms;
	int reset;            /* watchdog: drop this connection and reconnect */
	int freeing;
	struct ja_list writes;
	size_t nwrites;
	struct ja_read_list reads;    /* oldest first */
	struct event *watchdog;
	struct event *reconnect;
	unsigned long connects;
	int lanes_warned;     /* a lane report was refused (logged once) */
	int have_warned;      /* a have-verdicts lookup was refused (logged once) */
};

static void ja_connect(struct jobstore_async *ja);
static void ja_send(struct jobstore_async *ja, struct ja_write *jw);
static redisAsyncContext *ja_usable(struct jobstore_async *ja);

/* The current connection is gone (or being dropped): every unanswered
 * write becomes unsent, and a reconnect is scheduled after the backoff. */
static void
ja_lost(struct jobstore_async *ja)
{
	struct ja_write *jw;
	struct timeval tv;

	ja->ac = NULL;
	ja->state = JA_IDLE;
	ja->reset = 0;
	TAILQ_FOREACH(jw, &ja->writes, entry)
		jw->sent = 0;
	if (ja->freeing || evtimer_pending(ja->reconnect, NULL))
		return;
	tv.tv_sec = ja->backoff_ms / 1000;
	tv.tv_usec = (ja->backoff_ms % 1000) * 1000;
	log_debug("redis reconnect scheduled", "in_ms=%u pending=%zu", ja->backoff_ms,
	    ja->nwrites);
	evtimer_add(ja->reconnect, &tv);
	ja->backoff_ms = ja->backoff_ms * 2 > ja->p.backoff_max_ms ? ja->p.backoff_max_ms :
	    ja->backoff_ms * 2;
}

/* Drop the current connection from outside any hiredis callback. */
static void
ja_drop(struct jobstore_async *ja)
{
	redisAsyncContext *ac = ja->ac;

	if (ac == NULL)
		return;
	redisAsyncFree(ac);       /* pending callbacks see NULL replies */
	if (ja->ac == ac)         /* not connected yet: no disconnect callback */
		ja_lost(ja);
}

static void
ja_on_connect(const redisAsyncContext *ac, int status)
{
	struct jobstore_async *ja = ac->data;

	if (ja == NULL || ja->ac != ac)
		return;
	if (status != REDIS_OK) {
		log_warn("redis connect failed", "host=%s port=%d error=\"%s\"", ja->url.host,
		    ja->url.port, ac->errstr);
		ja_lost(ja);      /* hiredis frees ac after this returns */
		return;
	}
	log_debug("redis connected", "host=%s port=%d", ja->url.host, ja->url.port);
	ja->state = JA_READY;
}

static void
ja_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct jobstore_async *ja = ac->data;

	if (ja == NULL || ja->ac != ac)
		return;
	if (status != REDIS_OK || ja->reset == 0)
		log_warn("redis connection lost", "host=%s port=%d error=\"%s\" pending=%zu",
		    ja->url.host, ja->url.port, ac->errstr[0] ? ac->errstr : "closed",
		    ja->nwrites);
	ja_lost(ja);
}

static void
ja_on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct jobstore_async *ja = privdata;
	redisReply *r = reply;

	if (r == NULL || ja->freeing || ja->ac != ac)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		log_error("redis AUTH/SELECT refused", "host=%s port=%d error=\"%s\"",
		    ja->url.host, ja->url.port, r->str);
		ja->reset = 1;    /* the watchdog drops it; backoff applies */
	}
}

static void
ja_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct ja_write *jw = privdata;
	struct jobstore_async *ja = jw->ja;
	redisReply *r = reply;

	if (ja->freeing)
		return;
	jw->sent = 0;
	if (r == NULL)
		return;           /* connection gone: stays queued, resent later */
	if (js_is_noscript(r) && !jw->use_eval) {
		jw->use_eval = 1;
		if (ja->ac == ac && !(ac->c.flags & REDIS_FREEING))
			ja_send(ja, jw);
		return;
	}
	if (r->type != REDIS_REPLY_INTEGER) {
		log_error("redis verdict write failed", "error=\"%s\" pending=%zu",
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type",
		    ja->nwrites);
		ja->reset = 1;
		return;
	}
	/* Durable: the write is done. */
	ja->backoff_ms = ja->p.backoff_min_ms;
	TAILQ_REMOVE(&ja->writes, jw, entry);
	ja->nwrites--;
	js_write_clear(&jw->w);
	if (jw->cb != NULL)
		jw->cb(jw->arg, r->integer == 1 ? 1 : 0);
	free(jw);
}

static void
ja_send(struct jobstore_async *ja, struct ja_write *jw)
{
	const char *argv[9];
	size_t lens[9];
	int argc;

	argc = js_write_argv(&jw->w, jw->use_eval, argv, lens);
	if (redisAsyncCommandArgv(ja->ac, ja_on_reply, jw, argc, argv, lens) != REDIS_OK) {
		ja->reset = 1;
		return;
	}
	jw->sent = 1;
	jw->sent_at = clock_mono_ms();
}

static void
ja_connect(struct jobstore_async *ja)
{
	redisAsyncContext *ac;
	struct ja_write *jw;

	ac = redisAsyncConnect(ja->url.host, ja->url.port);
	if (ac == NULL || ac->err) {
		log_warn("redis connect failed", "host=%s port=%d error=\"%s\"", ja->url.host,
		    ja->url.port, ac ? ac->errstr : "no memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		ja_lost(ja);
		return;
	}
	ac->data = ja;
	ja->ac = ac;
	ja->state = JA_CONNECTING;
	ja->connect_started = clock_mono_ms();
	ja->connects++;
	redisLibeventAttach(ac, ja->base);
	redisAsyncSetConnectCallback(ac, ja_on_connect);
	redisAsyncSetDisconnectCallback(ac, ja_on_disconnect);
	/* AUTH, SELECT and the writes are pipelined behind the connect: hiredis
	 * buffers them until the socket is writable. */
	if (ja->url.password[0] != '\0') {
		if (ja->url.user[0] != '\0')
			redisAsyncCommand(ac, ja_on_setup_reply, ja, "AUTH %s %s", ja->url.user,
			    ja->url.password);
		else
			redisAsyncCommand(ac, ja_on_setup_reply, ja, "AUTH %s", ja->url.password);
	}
	if (ja->url.db > 0)
		redisAsyncCommand(ac, ja_on_setup_reply, ja, "SELECT %d", ja->url.db);
	TAILQ_FOREACH(jw, &ja->writes, entry)
		if (!jw->sent)
			ja_send(ja, jw);
}

static void
ja_on_reconnect(evutil_socket_t fd, short what, void *arg)
{
	ja_connect(arg);
}

static void
ja_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct jobstore_async *ja = arg;
	struct ja_write *jw;
	uint64_t now = clock_mono_ms();

	if (ja->ac == NULL)
		return;
	if (ja->reset) {
		ja_drop(ja);
		return;
	}
	if (ja->state == JA_CONNECTING &&
	    now - ja->connect_started > ja->p.connect_timeout_ms) {
		log_warn("redis connect timed out", "host=%s port=%d timeout_ms=%u",
		    ja->url.host, ja->url.port, ja->p.connect_timeout_ms);
		ja_drop(ja);
		return;
	}
	if (!TAILQ_EMPTY(&ja->reads) &&
	    now - TAILQ_FIRST(&ja->reads)->sent_at > ja->p.command_timeout_ms) {
		/* hiredis answers every unanswered command with NULL on the drop */
		log_warn("redis lookup timed out", "host=%s port=%d timeout_ms=%u",
		    ja->url.host, ja->url.port, ja->p.command_timeout_ms);
		ja->reset = 1;
		ja_drop(ja);
		return;
	}
	TAILQ_FOREACH(jw, &ja->writes, entry) {
		if (!jw->sent)
			continue;
		if (now - jw->sent_at > ja->p.command_timeout_ms) {
			log_warn("redis write timed out", "host=%s port=%d timeout_ms=%u "
			    "pending=%zu", ja->url.host, ja->url.port,
			    ja->p.command_timeout_ms, ja->nwrites);
			ja->reset = 1;
			ja_drop(ja);
		}
		break;            /* only the oldest sent write matters */
	}
}

struct jobstore_async *
jobstore_async_new(struct event_base *base, const char *url,
    const struct jobstore_async_params *params, char *err, size_t errlen)
{
	struct jobstore_async *ja;
	struct timeval tick = { 0, 200 * 1000 };

	if (js_script_sha() == NULL) {
		js_fail(err, errlen, "cannot compute the script SHA1");
		return NULL;
	}
	ja = calloc(1, sizeof(*ja));
	if (ja == NULL) {
		js_fail(err, errlen, "out of memory");
		return NULL;
	}
	if (redis_url_parse(url, &ja->url, err, errlen) == -1) {
		free(ja);
		return NULL;
	}
	if (params != NULL)
		ja->p = *params;
	if (ja->p.connect_timeout_ms == 0)
		ja->p.connect_timeout_ms = 5000;
	if (ja->p.command_timeout_ms == 0)
		ja->p.command_timeout_ms = 10000;
	if (ja->p.backoff_min_ms == 0)
		ja->p.backoff_min_ms = 100;
	if (ja->p.backoff_max_ms < ja->p.backoff_min_ms)
		ja->p.backoff_max_ms = ja->p.backoff_min_ms > 5000 ? ja->p.backoff_min_ms : 5000;
	ja->backoff_ms = ja->p.backoff_min_ms;
	ja->base = base;
	TAILQ_INIT(&ja->writes);
	TAILQ_INIT(&ja->reads);
	ja->watchdog = event_new(base, -1, EV_PERSIST, ja_on_watchdog, ja);
	ja->reconnect = evtimer_new(base, ja_on_reconnect, ja);
	if (ja->watchdog == NULL || ja->reconnect == NULL) {
		js_fail(err, errlen, "out of memory");
		jobstore_async_free(ja);
		return NULL;
	}
	evtimer_add(ja->watchdog, &tick);
	ja_connect(ja);
	return ja;
}

/* Append a prepared write and send it now when connected. */
static void
ja_queue(struct jobstore_async *ja, struct ja_write *jw, jobstore_write_cb cb, void *arg)
{
	jw->ja = ja;
	jw->cb = cb;
	jw->arg = arg;
	TAILQ_INSERT_TAIL(&ja->writes, jw, entry);
	ja->nwrites++;
	if (ja->ac != NULL && !ja->reset)
		ja_send(ja, jw);
}

/* Queue a prepared write (w's buffers move into the queue).  0 / -1. */
static int
ja_queue_write(struct jobstore_async *ja, struct js_write *w, jobstore_write_cb cb, void *arg)
{
	struct ja_write *jw = calloc(1, sizeof(*jw));

	if (jw == NULL) {
		js_write_clear(w);
		return -1;
	}
	jw->w = *w;
	ja_queue(ja, jw, cb, arg);
	return 0;
}

int
jobstore_async_put_verdict(struct jobstore_async *ja, const char *job, const char *field,
    const char *address, const struct verdict *v, jobstore_write_cb cb, void *arg)
{
	struct js_write w;

	if (js_write_init(&w, job, field, address, v) == -1)
		return -1;
	return ja_queue_write(ja, &w, cb, arg);
}

int
jobstore_async_count_once(struct jobstore_async *ja, const char *job, const char *event,
    const char *counter, uint64_t incr, jobstore_write_cb cb, void *arg)
{
	struct js_write w;

	if (js_count_init(&w, job, event, counter, incr) == -1)
		return -1;
	return ja_queue_write(ja, &w, cb, arg);
}

static void
ja_on_have_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct ja_read *rd = privdata;
	struct jobstore_async *ja = rd->ja;
	redisReply *r = reply;
	unsigned char *have = NULL;

	(void)ac;
	TAILQ_REMOVE(&ja->reads, rd, entry);
	if (!ja->freeing) {
		if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == rd->n &&
		    (have = calloc(rd->n, 1)) != NULL)
			for (size_t i = 0; i < rd->n; i++)
				have[i] = r->element[i]->type == REDIS_REPLY_STRING;
		else if (r != NULL && r->type == REDIS_REPLY_ERROR && !ja->have_warned) {
			log_warn("redis lookup refused (logged once)", "error=\"%s\"", r->str);
			ja->have_warned = 1;
		}
		rd->cb(rd->arg, have, rd->n);
		free(have);
	}
	free(rd);
}

int
jobstore_async_have_verdicts(struct jobstore_async *ja, const char *job,
    const char *const *fields, size_t n, jobstore_have_cb cb, void *arg)
{
	char key[JOBSTORE_NAME_MAX + 64];
	const char **argv = NULL;
	size_t *lens = NULL;
	struct ja_read *rd = NULL;
	redisAsyncContext *ac;
	int rc = -1;

	if (n == 0 || n > INT_MAX - 2 || !jobstore_valid_name(job))
		return -1;
	if ((ac = ja_usable(ja)) == NULL)
		return 1;
	argv = calloc(n + 2, sizeof(*argv));
	lens = calloc(n + 2, sizeof(*lens));
	rd = calloc(1, sizeof(*rd));
	if (argv == NULL || lens == NULL || rd == NULL)
		goto out;
	js_hmget_argv(key, sizeof(key), job, fields, n, argv, lens);
	rd->ja = ja;
	rd->n = n;
	rd->cb = cb;
	rd->arg = arg;
	rd->sent_at = clock_mono_ms();
	if (redisAsyncCommandArgv(ac, ja_on_have_reply, rd, (int)(n + 2), argv, lens) == REDIS_OK) {
		TAILQ_INSERT_TAIL(&ja->reads, rd, entry);
		rd = NULL;
		rc = 0;
	}
out:
	free(rd);
	free(argv);
	free(lens);
	return rc;
}

/* Replies to lane reports: nothing waits for them; a refusal is logged
 * once per connection problem, not every few seconds. */
static void
ja_on_lanes_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct jobstore_async *ja = privdata;
	redisReply *r = reply;

	(void)ac;
	if (r == NULL || ja->freeing)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		if (!ja->lanes_warned)
			log_warn("redis lane report refused", "error=\"%s\"", r->str);
		ja->lanes_warned = 1;
	} else
		ja->lanes_warned = 0;
}

/* The connection a best-effort command can go out on now, or NULL: only an
 * established one (a report buffered behind a connect that fails would be
 * stale by the time of the next). */
static redisAsyncContext *
ja_usable(struct jobstore_async *ja)
{
	return ja->ac != NULL && ja->state == JA_READY && !ja->reset &&
	    !(ja->ac->c.flags & REDIS_FREEING) ? ja->ac : NULL;
}

int
jobstore_async_put_lanes(struct jobstore_async *ja, const struct jobstore_lane_report *r,
    unsigned ttl_ms)
{
	enum { FIXED = 8, VAL_MAX = 256 };
	char key[JOBSTORE_WORKER_ID_MAX + 32], now[24], ttl[24];
	const char **argv;
	size_t *lens, argc = 0, nargs = FIXED + 2 * (r->n + 1);
	char (*vals)[VAL_MAX];
	redisAsyncContext *ac;
	int rc = -1;

	if (!jobstore_valid_worker_id(r->worker))
		return -1;
	if ((ac = ja_usable(ja)) == NULL)
		return 1;
	argv = calloc(nargs, sizeof(*argv));
	lens = calloc(nargs, sizeof(*lens));
	vals = calloc(r->n + 1, sizeof(*vals));
	if (argv == NULL || lens == NULL || vals == NULL)
		goto out;
	js_lanes_key(key, sizeof(key), r->worker);
	snprintf(now, sizeof(now), "%" PRId64, r->updated_at);
	snprintf(ttl, sizeof(ttl), "%u", ttl_ms ? ttl_ms : 1);
	argv[argc++] = "EVAL";
	argv[argc++] = jobstore_lanes_script;
	argv[argc++] = "2";
	argv[argc++] = key;
	argv[argc++] = JOBSTORE_WORKERS_KEY;
	argv[argc++] = r->worker;
	argv[argc++] = now;
	argv[argc++] = ttl;
	if (jobstore_lane_summary_format(r, vals[0], VAL_MAX) == -1)
		goto out;
	argv[argc++] = JOBSTORE_LANES_SUMMARY;
	argv[argc++] = vals[0];
	for (size_t i = 0; i < r->n; i++) {
		/* A name that cannot be a field of ours is left out, not sent. */
		if (r->lane[i].mx_domain[0] == '\0' ||
		    strcmp(r->lane[i].mx_domain, JOBSTORE_LANES_SUMMARY) == 0 ||
		    jobstore_lane_format(&r->lane[i], vals[i + 1], VAL_MAX) == -1)
			continue;
		argv[argc++] = r->lane[i].mx_domain;
		argv[argc++] = vals[i + 1];
	}
	for (size_t i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	/* hiredis copies the command into its output buffer at once. */
	rc = redisAsyncCommandArgv(ac, ja_on_lanes_reply, ja, (int)argc, argv, lens) == REDIS_OK ?
	    0 : -1;
out:
	free(argv);
	free(lens);
	free(vals);
	return rc;
}

int
jobstore_async_forget_worker(struct jobstore_async *ja, const char *worker)
{
	char key[JOBSTORE_WORKER_ID_MAX + 32];
	redisAsyncContext *ac;

	if (!jobstore_valid_worker_id(worker))
		return -1;
	if ((ac = ja_usable(ja)) == NULL)
		return 1;
	js_lanes_key(key, sizeof(key), worker);
	{
		const char *d[2] = { "DEL", key }, *z[3] = { "ZREM", JOBSTORE_WORKERS_KEY, worker };
		size_t dl[2] = { 3, strlen(key) },
		    zl[3] = { 4, strlen(JOBSTORE_WORKERS_KEY), strlen(worker) };

		if (redisAsyncCommandArgv(ac, ja_on_lanes_reply, ja, 2, d, dl) != REDIS_OK ||
		    redisAsyncCommandArgv(ac, ja_on_lanes_reply, ja, 3, z, zl) != REDIS_OK)
			return -1;
	}
	return 0;
}

size_t
jobstore_async_pending(const struct jobstore_async *ja)
{
	return ja->nwrites;
}

int
jobstore_async_connected(const struct jobstore_async *ja)
{
	return ja->state == JA_READY && !ja->reset;
}

void
jobstore_async_free(struct jobstore_async *ja)
{
	struct ja_write *jw;

	if (ja == NULL)
		return;
	ja->freeing = 1;
	if (ja->ac != NULL) {
		redisAsyncContext *ac = ja->ac;
		ja->ac = NULL;
		redisAsyncFree(ac);
	}
	while ((jw = TAILQ_FIRST(&ja->writes)) != NULL) {
		TAILQ_REMOVE(&ja->writes, jw, entry);
		js_write_clear(&jw->w);
		free(jw);
	}
	if (ja->watchdog != NULL)
		event_free(ja->watchdog);
	if (ja->reconnect != NULL)
		event_free(ja->reconnect);
	free(ja);
}
