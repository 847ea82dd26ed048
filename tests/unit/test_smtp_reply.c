/*
 * test_smtp_reply.c — the SMTP reply reader against a table of inputs.
 *
 * Every case is run three ways: fed in one piece, fed one byte at a time,
 * and split in two at every possible offset.  All three must yield the same
 * sequence of replies (and the same final error, if any): fragmentation must
 * never change what is parsed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"

#define MAXR 12

struct exp_reply {
	int code;
	const char *enh;
	const char *text;
	int nlines;
};

struct reply_case {
	const char *name;
	const char *in;
	size_t len; /* 0: strlen(in) */
	int nexp;
	struct exp_reply exp[MAXR];
	int error;      /* 1: ends in SMTP_REPLY_ERROR after exp */
	size_t pending; /* smtp_reply_pending() at end (no error) */
};

static const char ehlo10[] = "250-mx.example.com Hello client [192.0.2.1]\r\n"
                             "250-SIZE 52428800\r\n"
                             "250-8BITMIME\r\n"
                             "250-PIPELINING\r\n"
                             "250-AUTH=PLAIN LOGIN\r\n"
                             "250-auth PLAIN LOGIN\r\n"
                             "250-chunking\r\n"
                             "250-StartTLS\r\n"
                             "250-ENHANCEDSTATUSCODES\r\n"
                             "250 SMTPUTF8\r\n";

static const struct reply_case cases[] = {
    {"simple", "220 mx.example.com ESMTP\r\n", 0, 1, {{220, "", "mx.example.com ESMTP", 1}}, 0, 0},
    {"bare LF", "250 ok\n", 0, 1, {{250, "", "ok", 1}}, 0, 0},
    {"code only", "250\r\n", 0, 1, {{250, "", "", 1}}, 0, 0},
    {"code and space", "250 \r\n", 0, 1, {{250, "", "", 1}}, 0, 0},
    {"enhanced",
     "550 5.1.1 <x@y>: Recipient address rejected\r\n",
     0,
     1,
     {{550, "5.1.1", "<x@y>: Recipient address rejected", 1}},
     0,
     0},
    {"enhanced only", "250 2.0.0\r\n", 0, 1, {{250, "2.0.0", "", 1}}, 0, 0},
    {"enhanced 3 digits", "550 5.123.456 x\r\n", 0, 1, {{550, "5.123.456", "x", 1}}, 0, 0},
    {"enhanced class mismatch dropped", "550 2.1.1 x\r\n", 0, 1, {{550, "", "2.1.1 x", 1}}, 0, 0},
    {"enhanced class 3 dropped", "354 3.0.0 go\r\n", 0, 1, {{354, "", "3.0.0 go", 1}}, 0, 0},
    {"enhanced 4 digits dropped", "550 5.1111.1 x\r\n", 0, 1, {{550, "", "5.1111.1 x", 1}}, 0, 0},
    {"enhanced no separator dropped", "550 5.1.1x y\r\n", 0, 1, {{550, "", "5.1.1x y", 1}}, 0, 0},
    {"enhanced missing detail dropped", "550 5.1. x\r\n", 0, 1, {{550, "", "5.1. x", 1}}, 0, 0},
    {"enhanced two parts dropped", "550 5.1 x\r\n", 0, 1, {{550, "", "5.1 x", 1}}, 0, 0},
    {"enhanced 4xx",
     "451 4.7.1 Try again later\r\n",
     0,
     1,
     {{451, "4.7.1", "Try again later", 1}},
     0,
     0},
    {"enhanced wrong class 4 vs 5", "450 5.7.1 x\r\n", 0, 1, {{450, "", "5.7.1 x", 1}}, 0, 0},
    {"gmail multi-line",
     "550-5.1.1 The email account that you tried to reach does\r\n"
     "550-5.1.1 not exist. Please try double-checking the recipient's\r\n"
     "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser x1si\r\n",
     0,
     1,
     {{550, "5.1.1",
       "The email account that you tried to reach does\n"
       "not exist. Please try double-checking the recipient's\n"
       "https://support.google.com/mail/?p=NoSuchUser x1si",
       3}},
     0,
     0},
    {"enhanced only on first line counts",
     "550-x\r\n550 5.1.1 y\r\n",
     0,
     1,
     {{550, "", "x\ny", 2}},
     0,
     0},
    {"empty continuation", "250-\r\n250 done\r\n", 0, 1, {{250, "", "\ndone", 2}}, 0, 0},
    {"two replies one feed",
     "250 ok\r\n250 2.1.0 sender ok\r\n",
     0,
     2,
     {{250, "", "ok", 1}, {250, "2.1.0", "sender ok", 1}},
     0,
     0},
    {"pipelined three",
     "250 2.0.0 reset\r\n250 2.1.0 ok\r\n550 5.1.1 no\r\n",
     0,
     3,
     {{250, "2.0.0", "reset", 1}, {250, "2.1.0", "ok", 1}, {550, "5.1.1", "no", 1}},
     0,
     0},
    {"ehlo 10 lines",
     ehlo10,
     0,
     1,
     {{250, "",
       "mx.example.com Hello client [192.0.2.1]\nSIZE 52428800\n"
       "8BITMIME\nPIPELINING\nAUTH=PLAIN LOGIN\nauth PLAIN LOGIN\nchunking\n"
       "StartTLS\nENHANCEDSTATUSCODES\nSMTPUTF8",
       10}},
     0,
     0},
    {"incomplete line", "250 o", 0, 0, {{0}}, 0, 5},
    {"incomplete multi-line", "250-a\r\n250-b\r\n", 0, 0, {{0}}, 0, 14},
    {"reply then partial", "250 ok\r\n220-a\r\n22", 0, 1, {{250, "", "ok", 1}}, 0, 9},
    {"CR kept without LF", "250 a\rb\r\n", 0, 1, {{250, "", "a\rb", 1}}, 0, 0},
    {"NUL in text", "250 a\0b\r\n", 9, 1, {{250, "", "a?b", 1}}, 0, 0},
    {"8-bit text passes", "250 \xc3\xa9t\xe9\r\n", 0, 1, {{250, "", "\xc3\xa9t\xe9", 1}}, 0, 0},
    {"max code", "599 x\r\n", 0, 1, {{599, "", "x", 1}}, 0, 0},
    /* errors */
    {"empty line", "\r\n", 0, 0, {{0}}, 1, 0},
    {"no code", "hello\r\n", 0, 0, {{0}}, 1, 0},
    {"short code", "25\r\n", 0, 0, {{0}}, 1, 0},
    {"1xx code", "150 x\r\n", 0, 0, {{0}}, 1, 0},
    {"6xx code", "650 x\r\n", 0, 0, {{0}}, 1, 0},
    {"bad separator", "250_x\r\n", 0, 0, {{0}}, 1, 0},
    {"four digits", "2500 x\r\n", 0, 0, {{0}}, 1, 0},
    {"letter in code", "2a0 x\r\n", 0, 0, {{0}}, 1, 0},
    {"leading space", " 250 x\r\n", 0, 0, {{0}}, 1, 0},
    {"NUL in code", "25\0 x\r\n", 7, 0, {{0}}, 1, 0},
    {"NUL separator", "250\0x\r\n", 7, 0, {{0}}, 1, 0},
    {"code changes", "250-a\r\n251 b\r\n", 0, 0, {{0}}, 1, 0},
    {"code changes class", "250-a\r\n550 b\r\n", 0, 0, {{0}}, 1, 0},
    {"good then garbage", "250 ok\r\nxyz\r\n250 never\r\n", 0, 1, {{250, "", "ok", 1}}, 1, 0},
    /* the byte right after a consumed line is scanned too */
    {"good then empty bare LF line", "250 ok\n\n", 0, 1, {{250, "", "ok", 1}}, 1, 0},
    {"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 12, 0, {{0}}, 1, 0},
    {"http answer", "HTTP/1.1 400 Bad Request\r\n", 0, 0, {{0}}, 1, 0},
};

struct got {
	int n;
	struct {
		int code;
		char enh[16];
		char text[SMTP_REPLY_MAX_DEFAULT + 1];
		size_t text_len;
		int nlines;
	} r[MAXR];
	int error;
	int feed_failed;
	size_t pending;
};

/* Drain every complete reply; stops at NONE or ERROR. */
static void
drain(struct smtp_reply_reader *rd, struct got *g)
{
	struct smtp_reply rep;
	enum smtp_reply_rc rc;

	if (g->error)
		return;
	while ((rc = smtp_reply_get(rd, &rep)) == SMTP_REPLY_OK) {
		assert_true(g->n < MAXR);
		assert_int_equal(strlen(rep.text), rep.text_len);
		g->r[g->n].code = rep.code;
		memcpy(g->r[g->n].enh, rep.enhanced, sizeof(rep.enhanced));
		memcpy(g->r[g->n].text, rep.text, rep.text_len + 1);
		g->r[g->n].text_len = rep.text_len;
		g->r[g->n].nlines = rep.nlines;
		g->n++;
	}
	if (rc == SMTP_REPLY_ERROR) {
		g->error = 1;
		assert_non_null(smtp_reply_error(rd));
		/* sticky */
		assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
		assert_int_equal(smtp_reply_feed(rd, "250 ok\r\n", 8), -1);
		assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
	} else
		assert_null(smtp_reply_error(rd));
}

/* Feed in pieces ending at cuts[0..ncuts-1], then at len. */
static void
run(const char *in, size_t len, const size_t *cuts, size_t ncuts, struct got *g,
    const struct smtp_reply_limits *lim)
{
	struct smtp_reply_reader *rd;
	size_t from = 0, i, to;

	memset(g, 0, sizeof(*g));
	rd = smtp_reply_reader_new(lim);
	assert_non_null(rd);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		if (to < from)
			continue;
		if (smtp_reply_feed(rd, in + from, to - from) != 0) {
			g->feed_failed = 1;
			assert_true(g->error || smtp_reply_error(rd) != NULL);
		}
		from = to;
		drain(rd, g);
	}
	if (!g->error)
		g->pending = smtp_reply_pending(rd);
	smtp_reply_reader_free(rd);
}

static void
check(const struct reply_case *c, const struct got *g, const char *how)
{
	int i;

	if (g->n != c->nexp || g->error != c->error)
		fail_msg("%s (%s): got %d replies error=%d, want %d error=%d", c->name, how, g->n,
		         g->error, c->nexp, c->error);
	for (i = 0; i < c->nexp; i++) {
		if (g->r[i].code != c->exp[i].code || strcmp(g->r[i].enh, c->exp[i].enh) != 0 ||
		    strcmp(g->r[i].text, c->exp[i].text) != 0 || g->r[i].nlines != c->exp[i].nlines)
			fail_msg("%s (%s) reply %d: got %d [%s] \"%s\" lines=%d", c->name, how, i,
			         g->r[i].code, g->r[i].enh, g->r[i].text, g->r[i].nlines);
	}
	if (!c->error && g->pending != c->pending)
		fail_msg("%s (%s): pending %zu, want %zu", c->name, how, g->pending, c->pending);
}

static void
test_table_whole(void **state)
{
	static struct got g;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct reply_case *c = &cases[i];
		run(c->in, c->len ? c->len : strlen(c->in), NULL, 0, &g, NULL);
		check(c, &g, "whole");
	}
}

static void
test_table_byte_by_byte(void **state)
{
	static struct got g;
	static size_t cuts[4096];
	size_t i, k, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct reply_case *c = &cases[i];
		len = c->len ? c->len : strlen(c->in);
		assert_true(len < 4096);
		for (k = 0; k < len; k++)
			cuts[k] = k + 1;
		run(c->in, len, cuts, len, &g, NULL);
		check(c, &g, "byte by byte");
	}
}

static void
test_table_split_everywhere(void **state)
{
	static struct got g;
	char how[32];
	size_t i, k, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct reply_case *c = &cases[i];
		len = c->len ? c->len : strlen(c->in);
		for (k = 0; k <= len; k++) {
			snprintf(how, sizeof(how), "split at %zu", k);
			run(c->in, len, &k, 1, &g, NULL);
			check(c, &g, how);
		}
	}
}

static void
test_ehlo_extensions(void **state)
{
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;
	size_t k;

	(void)state;
	rd = smtp_reply_reader_new(NULL);
	assert_non_null(rd);
	for (k = 0; k < sizeof(ehlo10) - 1; k++) {
		assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_NONE);
		assert_int_equal(smtp_reply_feed(rd, ehlo10 + k, 1), 0);
	}
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_int_equal(rep.nlines, 10);
	assert_int_equal(smtp_ehlo_extensions(&rep),
	                 SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_PIPELINING |
	                     SMTP_EXT_CHUNKING | SMTP_EXT_STARTTLS | SMTP_EXT_ENHANCEDSTATUSCODES |
	                     SMTP_EXT_SMTPUTF8);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_NONE);
	assert_int_equal(smtp_reply_pending(rd), 0);
	smtp_reply_reader_free(rd);
}

struct ehlo_case {
	const char *in;
	unsigned want;
};

static const struct ehlo_case ehlo_cases[] = {
    /* the greeting line never counts, even if it looks like a keyword */
    {"250 PIPELINING\r\n", 0},
    {"250-PIPELINING\r\n250 STARTTLS\r\n", SMTP_EXT_STARTTLS},
    {"250-host\r\n250-pipelining\r\n250 8bitmime\r\n", SMTP_EXT_PIPELINING | SMTP_EXT_8BITMIME},
    /* prefixes and suffixes are other keywords */
    {"250-host\r\n250-PIPELININGX\r\n250-XSTARTTLS\r\n250 SIZ\r\n", 0},
    {"250-host\r\n250-SIZE\r\n250 SMTPUTF8 x\r\n", SMTP_EXT_SIZE | SMTP_EXT_SMTPUTF8},
    /* keyword only as the first word */
    {"250-host\r\n250 AUTH PLAIN STARTTLS\r\n", 0},
    /* a failed EHLO advertises nothing */
    {"550-host\r\n550 PIPELINING\r\n", 0},
    {"250-host\n250-CHUNKING\n250 ENHANCEDSTATUSCODES\n",
     SMTP_EXT_CHUNKING | SMTP_EXT_ENHANCEDSTATUSCODES},
};

static void
test_ehlo_table(void **state)
{
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ehlo_cases) / sizeof(ehlo_cases[0]); i++) {
		rd = smtp_reply_reader_new(NULL);
		assert_int_equal(smtp_reply_feed(rd, ehlo_cases[i].in, strlen(ehlo_cases[i].in)),
		                 0);
		assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
		if (smtp_ehlo_extensions(&rep) != ehlo_cases[i].want)
			fail_msg("ehlo case %zu: got %#x want %#x", i, smtp_ehlo_extensions(&rep),
			         ehlo_cases[i].want);
		smtp_reply_reader_free(rd);
	}
	assert_int_equal(smtp_ehlo_extensions(NULL), 0);
}

/* A line of exactly line_max bytes (with CRLF) passes; one byte more fails,
 * and fails before its LF arrives (memory stays bounded). */
static void
test_line_limit(void **state)
{
	struct smtp_reply_limits lim = {64, 0, 0};
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;
	char line[128];

	(void)state;
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	line[62] = '\r';
	line[63] = '\n';
	rd = smtp_reply_reader_new(&lim);
	assert_int_equal(smtp_reply_feed(rd, line, 64), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_int_equal(rep.text_len, 58);
	smtp_reply_reader_free(rd);

	line[62] = 'x';
	line[63] = '\r';
	line[64] = '\n';
	rd = smtp_reply_reader_new(&lim);
	assert_int_equal(smtp_reply_feed(rd, line, 65), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
	assert_non_null(strstr(smtp_reply_error(rd), "longer"));
	smtp_reply_reader_free(rd);

	/* no LF at all: 63 bytes may still become a valid line, 64 cannot */
	rd = smtp_reply_reader_new(&lim);
	assert_int_equal(smtp_reply_feed(rd, line, 63), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_NONE);
	assert_int_equal(smtp_reply_feed(rd, "x", 1), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
	smtp_reply_reader_free(rd);

	/* bare LF: 63 bytes + LF = 64 is fine */
	line[63] = '\n';
	rd = smtp_reply_reader_new(&lim);
	assert_int_equal(smtp_reply_feed(rd, line, 64), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_int_equal(rep.text_len, 59);
	smtp_reply_reader_free(rd);
}

static void
test_default_line_limit(void **state)
{
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;
	static char big[SMTP_LINE_MAX_DEFAULT * 2];
	size_t i;

	(void)state;
	memset(big, 'a', sizeof(big));
	memcpy(big, "250 ", 4);
	rd = smtp_reply_reader_new(NULL);
	/* byte by byte: the error comes as soon as the line is too long */
	for (i = 0; i < sizeof(big); i++) {
		if (smtp_reply_feed(rd, big + i, 1) != 0)
			break;
		if (smtp_reply_get(rd, &rep) == SMTP_REPLY_ERROR)
			break;
	}
	assert_int_equal(i, SMTP_LINE_MAX_DEFAULT - 1);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
	smtp_reply_reader_free(rd);
}

static void
test_lines_limit(void **state)
{
	struct smtp_reply_limits lim = {0, 0, 3};
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;
	const char *three = "250-a\r\n250-b\r\n250 c\r\n";
	const char *four = "250-a\r\n250-b\r\n250-c\r\n250 d\r\n";

	(void)state;
	rd = smtp_reply_reader_new(&lim);
	assert_int_equal(smtp_reply_feed(rd, three, strlen(three)), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_int_equal(rep.nlines, 3);
	assert_int_equal(smtp_reply_feed(rd, four, strlen(four)), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
	assert_non_null(strstr(smtp_reply_error(rd), "lines"));
	smtp_reply_reader_free(rd);

	/* default: 64 lines fine, 65 not */
	{
		static char buf[80 * 10];
		size_t n = 0;
		int i;

		for (i = 0; i < 65; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250-%d\r\n", i);
		rd = smtp_reply_reader_new(NULL);
		assert_int_equal(smtp_reply_feed(rd, buf, n), 0);
		assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
		smtp_reply_reader_free(rd);
		n = 0;
		for (i = 0; i < 64; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250%c%d\r\n",
			                      i == 63 ? ' ' : '-', i);
		rd = smtp_reply_reader_new(NULL);
		assert_int_equal(smtp_reply_feed(rd, buf, n), 0);
		assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
		assert_int_equal(rep.nlines, 64);
		smtp_reply_reader_free(rd);
	}
}

static void
test_reply_limit(void **state)
{
	struct smtp_reply_limits lim = {0, 10, 0};
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;

	(void)state;
	rd = smtp_reply_reader_new(&lim);
	/* "12345\n6789" = 10 bytes: exactly the cap */
	assert_int_equal(smtp_reply_feed(rd, "250-12345\r\n250 6789\r\n", 21), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_string_equal(rep.text, "12345\n6789");
	assert_int_equal(smtp_reply_feed(rd, "250-12345\r\n250 67890\r\n", 22), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
	assert_non_null(strstr(smtp_reply_error(rd), "text"));
	smtp_reply_reader_free(rd);
}

/* Feeding without reading is bounded too. */
static void
test_buffer_cap(void **state)
{
	struct smtp_reply_limits lim = {16, 16, 2};
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;
	char junk[64];
	int i, failed = 0;

	(void)state;
	memset(junk, 'z', sizeof(junk));
	rd = smtp_reply_reader_new(&lim);
	for (i = 0; i < 10 && !failed; i++)
		failed = smtp_reply_feed(rd, junk, sizeof(junk)) != 0;
	assert_true(failed);
	assert_non_null(smtp_reply_error(rd));
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_ERROR);
	/* reset clears everything, including the error */
	smtp_reply_reset(rd);
	assert_null(smtp_reply_error(rd));
	assert_int_equal(smtp_reply_pending(rd), 0);
	assert_int_equal(smtp_reply_feed(rd, "220 hi\r\n", 8), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_int_equal(rep.code, 220);
	smtp_reply_reader_free(rd);
}

/* Many replies, each read right after it arrives, never hit the cap. */
static void
test_long_session(void **state)
{
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;
	int i;

	(void)state;
	rd = smtp_reply_reader_new(NULL);
	for (i = 0; i < 100000; i++) {
		assert_int_equal(smtp_reply_feed(rd, "250-2.1.5 a\r\n250 2.1.5 ok\r\n", 27), 0);
		assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
		assert_string_equal(rep.text, "a\nok");
	}
	assert_int_equal(smtp_reply_pending(rd), 0);
	smtp_reply_reader_free(rd);
}

/* pending counts consumed lines of an unfinished reply; reset drops them. */
static void
test_pending_reset(void **state)
{
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;

	(void)state;
	rd = smtp_reply_reader_new(NULL);
	assert_int_equal(smtp_reply_pending(rd), 0);
	assert_int_equal(smtp_reply_feed(rd, "250-a\r\n250-b", 12), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_NONE);
	assert_int_equal(smtp_reply_pending(rd), 12);
	smtp_reply_reset(rd);
	assert_int_equal(smtp_reply_pending(rd), 0);
	/* nothing of the dropped reply leaks into the next one */
	assert_int_equal(smtp_reply_feed(rd, "220 2.0.0 ready\r\n", 17), 0);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_int_equal(rep.code, 220);
	assert_int_equal(rep.nlines, 1);
	assert_string_equal(rep.text, "ready");
	assert_string_equal(rep.enhanced, "2.0.0");
	smtp_reply_reader_free(rd);
}

static void
test_pending_code(void **state)
{
	struct smtp_reply_reader *rd;
	struct smtp_reply rep;

	(void)state;
	rd = smtp_reply_reader_new(NULL);
	assert_int_equal(smtp_reply_pending_code(rd), 0); /* nothing fed */
	assert_int_equal(smtp_reply_feed(rd, "250 ok\r\n421 bye\r\n42", 19), 0);
	assert_int_equal(smtp_reply_pending_code(rd), 250);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	assert_int_equal(rep.code, 250);
	assert_int_equal(smtp_reply_pending_code(rd), 421);
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_OK);
	/* two bytes of a code are not a code */
	assert_int_equal(smtp_reply_pending_code(rd), 0);
	assert_int_equal(smtp_reply_feed(rd, "1-x\r\n", 5), 0);
	assert_int_equal(smtp_reply_pending_code(rd), 421);
	/* a line of the reply is parsed already: the code is no longer ahead */
	assert_int_equal(smtp_reply_get(rd, &rep), SMTP_REPLY_NONE);
	assert_int_equal(smtp_reply_pending_code(rd), 0);
	smtp_reply_reset(rd);
	assert_int_equal(smtp_reply_feed(rd, "xyz\r\n", 5), 0);
	assert_int_equal(smtp_reply_pending_code(rd), 0);
	smtp_reply_reader_free(rd);
}

static void
test_new_limits(void **state)
{
	struct smtp_reply_limits bad1 = {3, 0, 0};
	struct smtp_reply_limits bad2 = {0, 0, -1};
	struct smtp_reply_limits huge = {SIZE_MAX / 2, 0, 64};
	struct smtp_reply_reader *rd;

	(void)state;
	assert_null(smtp_reply_reader_new(&bad1));
	assert_null(smtp_reply_reader_new(&bad2));
	assert_null(smtp_reply_reader_new(&huge));
	rd = smtp_reply_reader_new(NULL);
	assert_non_null(rd);
	assert_int_equal(smtp_reply_feed(rd, "", 0), 0);
	smtp_reply_reader_free(rd);
	smtp_reply_reader_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_whole),
	    cmocka_unit_test(test_table_byte_by_byte),
	    cmocka_unit_test(test_table_split_everywhere),
	    cmocka_unit_test(test_ehlo_extensions),
	    cmocka_unit_test(test_ehlo_table),
	    cmocka_unit_test(test_line_limit),
	    cmocka_unit_test(test_default_line_limit),
	    cmocka_unit_test(test_lines_limit),
	    cmocka_unit_test(test_reply_limit),
	    cmocka_unit_test(test_buffer_cap),
	    cmocka_unit_test(test_long_session),
	    cmocka_unit_test(test_pending_reset),
	    cmocka_unit_test(test_pending_code),
	    cmocka_unit_test(test_new_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
