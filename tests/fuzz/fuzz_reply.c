/*
 * fuzz_reply.c — libFuzzer harness for the SMTP reply reader (and the
 * classifier and EHLO keyword parser that consume its output).
 *
 * Input layout: byte 0 picks the limits and the classify stage, byte 1
 * seeds the chunking; the rest is the byte stream "from the server".
 *
 * The stream is parsed twice: one byte at a time (the reference) and in
 * pseudo-random chunks; both must give the same replies and the same final
 * state (fragmentation never changes what is parsed).  A third pass feeds
 * everything at once; unless that trips the buffering cap, it must agree too.
 * Every reply must satisfy the header's promises: code 200..599, enhanced
 * code empty or d.ddd.ddd with the reply's class, text a C string of
 * text_len bytes with nlines-1 line breaks, within the caps.  The verdict
 * the classifier derives must keep its invariants (a 4xx or a 5.7.x is
 * never undeliverable).
 *
 * Violations abort(), so the harness works without assert() and NDEBUG.
 * Also built without libFuzzer (replay_main.c) to replay the corpus in ctest.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "log.h"
#include "smtp_reply.h"

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_reply: %s:%d: check failed: %s\n", __FILE__,         \
			        __LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Replies of one pass, serialised for comparison. */
struct fuzz_trace {
	char *buf;
	size_t len;
	size_t cap;
	int nreplies;
	int error;       /* ended in SMTP_REPLY_ERROR */
	int feed_failed; /* a feed hit the buffering cap */
	size_t pending;
};

static void
fuzz_trace_add(struct fuzz_trace *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 256;
		t->buf = realloc(t->buf, t->cap);
		FUZZ_CHECK(t->buf != NULL);
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

static void
fuzz_check_enhanced(const char *e, int code)
{
	size_t i = 0, k;
	int part;

	if (e[0] == '\0')
		return;
	FUZZ_CHECK(e[0] == '0' + code / 100);
	FUZZ_CHECK(e[0] == '2' || e[0] == '4' || e[0] == '5');
	FUZZ_CHECK(e[1] == '.');
	i = 2;
	for (part = 0; part < 2; part++) {
		for (k = 0; e[i] >= '0' && e[i] <= '9'; k++)
			i++;
		FUZZ_CHECK(k >= 1 && k <= 3);
		if (part == 0) {
			FUZZ_CHECK(e[i] == '.');
			i++;
		}
	}
	FUZZ_CHECK(e[i] == '\0');
}

static void
fuzz_check_reply(const struct smtp_reply *r, const struct smtp_reply_limits *lim,
                 enum classify_stage stage)
{
	struct verdict v;
	enum classify_action a;
	size_t i, nl = 0;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599);
	FUZZ_CHECK(memchr(r->enhanced, '\0', sizeof(r->enhanced)) != NULL);
	fuzz_check_enhanced(r->enhanced, r->code);
	FUZZ_CHECK(r->text != NULL);
	FUZZ_CHECK(r->text[r->text_len] == '\0');
	FUZZ_CHECK(strlen(r->text) == r->text_len);
	FUZZ_CHECK(r->text_len <= (lim->reply_max ? lim->reply_max : SMTP_REPLY_MAX_DEFAULT));
	FUZZ_CHECK(r->nlines >= 1 &&
	           r->nlines <= (lim->lines_max ? lim->lines_max : SMTP_LINES_MAX_DEFAULT));
	for (i = 0; i < r->text_len; i++)
		nl += r->text[i] == '\n';
	FUZZ_CHECK(nl == (size_t)r->nlines - 1);
	(void)smtp_ehlo_extensions(r);

	verdict_init(&v, VR_TIMEOUT);
	a = classify_reply(stage, r, &v);
	FUZZ_CHECK(a == CLASSIFY_FINAL || a == CLASSIFY_RETRY_LATER || a == CLASSIFY_RETRY_NOW);
	FUZZ_CHECK(v.status == verdict_reason_status(v.reason));
	FUZZ_CHECK(v.smtp_code == r->code);
	if (r->code / 100 == 4 || strncmp(r->enhanced, "5.7.", 4) == 0)
		FUZZ_CHECK(v.status != VS_UNDELIVERABLE);
	if (v.status == VS_DELIVERABLE)
		FUZZ_CHECK(r->code / 100 == 2 && stage == CLASSIFY_RCPT);
	FUZZ_CHECK(strlen(v.text) < sizeof(v.text));
	for (i = 0; v.text[i] != '\0'; i++)
		FUZZ_CHECK(v.text[i] >= 0x20 && v.text[i] < 0x7f);
}

static void
fuzz_drain(struct smtp_reply_reader *rd, struct fuzz_trace *t, const struct smtp_reply_limits *lim,
           enum classify_stage stage)
{
	struct smtp_reply r;
	enum smtp_reply_rc rc;

	if (t->error)
		return;
	while ((rc = smtp_reply_get(rd, &r)) == SMTP_REPLY_OK) {
		fuzz_check_reply(&r, lim, stage);
		fuzz_trace_add(t, &r.code, sizeof(r.code));
		fuzz_trace_add(t, r.enhanced, strlen(r.enhanced) + 1);
		fuzz_trace_add(t, &r.nlines, sizeof(r.nlines));
		fuzz_trace_add(t, r.text, r.text_len + 1);
		t->nreplies++;
	}
	FUZZ_CHECK(rc == SMTP_REPLY_NONE || rc == SMTP_REPLY_ERROR);
	if (rc == SMTP_REPLY_ERROR) {
		t->error = 1;
		FUZZ_CHECK(smtp_reply_error(rd) != NULL);
		/* sticky */
		FUZZ_CHECK(smtp_reply_get(rd, &r) == SMTP_REPLY_ERROR);
		FUZZ_CHECK(smtp_reply_feed(rd, "250 ok\r\n", 8) == -1);
	} else
		FUZZ_CHECK(smtp_reply_error(rd) == NULL);
}

/* mode 0: one byte at a time; 1: chunks from the seed; 2: all at once */
static void
fuzz_pass(const uint8_t *s, size_t n, const struct smtp_reply_limits *lim,
          enum classify_stage stage, int mode, uint32_t seed, struct fuzz_trace *t)
{
	struct smtp_reply_reader *rd;
	size_t off = 0, chunk, maxchunk;

	rd = smtp_reply_reader_new(lim);
	FUZZ_CHECK(rd != NULL);
	/* Fed and drained chunk by chunk, at most one unfinished line plus
	 * one chunk is buffered: keep chunks within the cap's slack. */
	maxchunk = lim->reply_max ? lim->reply_max : SMTP_REPLY_MAX_DEFAULT;
	while (off < n) {
		if (mode == 0)
			chunk = 1;
		else if (mode == 2)
			chunk = n - off;
		else {
			seed = seed * 1103515245u + 12345u;
			chunk = 1 + (seed >> 16) % (seed & 0x100 ? 8 : 200);
			if (chunk > maxchunk)
				chunk = maxchunk;
		}
		if (chunk > n - off)
			chunk = n - off;
		if (smtp_reply_feed(rd, (const char *)s + off, chunk) != 0) {
			FUZZ_CHECK(smtp_reply_error(rd) != NULL);
			/* refused although no error was seen: the cap */
			if (!t->error)
				t->feed_failed = 1;
		}
		off += chunk;
		fuzz_drain(rd, t, lim, stage);
	}
	if (!t->error && !t->feed_failed)
		t->pending = smtp_reply_pending(rd);
	/* reset always leaves a clean reader */
	smtp_reply_reset(rd);
	FUZZ_CHECK(smtp_reply_error(rd) == NULL);
	FUZZ_CHECK(smtp_reply_pending(rd) == 0);
	smtp_reply_reader_free(rd);
}

static int
fuzz_same(const struct fuzz_trace *a, const struct fuzz_trace *b)
{
	return a->nreplies == b->nreplies && a->error == b->error && a->len == b->len &&
	       (a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0) &&
	       (a->error || a->pending == b->pending);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct smtp_reply_limits limits[] = {
	    {0, 0, 0}, /* the defaults */
	    {16, 0, 0}, {0, 24, 0}, {0, 0, 2}, {8, 12, 3}, {64, 100, 4}, {512, 0, 1}, {5, 1, 1},
	};
	struct fuzz_trace ref, chunked, whole;
	const struct smtp_reply_limits *lim;
	enum classify_stage stage;

	if (size < 2)
		return 0;
	log_set_level((enum log_level)(LOG_ERROR + 1)); /* 503s log loudly */
	lim = &limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
	stage = (enum classify_stage)((data[0] >> 4) % 4);

	memset(&ref, 0, sizeof(ref));
	memset(&chunked, 0, sizeof(chunked));
	memset(&whole, 0, sizeof(whole));
	fuzz_pass(data + 2, size - 2, lim, stage, 0, 0, &ref);
	fuzz_pass(data + 2, size - 2, lim, stage, 1, data[1] * 2654435761u, &chunked);
	fuzz_pass(data + 2, size - 2, lim, stage, 2, 0, &whole);
	/* byte by byte never exceeds the buffering cap */
	FUZZ_CHECK(!ref.feed_failed);
	FUZZ_CHECK(!chunked.feed_failed);
	FUZZ_CHECK(fuzz_same(&ref, &chunked));
	if (!whole.feed_failed)
		FUZZ_CHECK(fuzz_same(&ref, &whole));
	free(ref.buf);
	free(chunked.buf);
	free(whole.buf);
	return 0;
}
