/*
 * smtp_reply.c — SMTP reply reader (RFC 5321 4.2, RFC 3463): feed/get over
 * a byte buffer, in the manner of hiredis' read.c.
 *
 * Owns: one raw input buffer (bytes fed but not yet parsed into lines) and
 * one text buffer (the joined text of the reply being assembled).  Lines are
 * consumed from the raw buffer as soon as they are complete, so a reply that
 * arrives one byte at a time is parsed in linear time.
 *
 * Returns: smtp_reply_get() gives SMTP_REPLY_NONE (need more bytes),
 * SMTP_REPLY_OK (one complete reply in *out) or SMTP_REPLY_ERROR.
 *
 * Diagnostics: the first protocol error is recorded as a short text
 * (smtp_reply_error()) and is sticky until smtp_reply_reset():
 *   - a line that does not start with a reply code 2xx..5xx followed by
 *     ' ', '-' or the line end;
 *   - a continuation line whose code differs from the first line's;
 *   - a line longer than line_max (counted with its CRLF), a reply with more
 *     than lines_max lines or more than reply_max bytes of joined text;
 *   - more unparsed input than the buffering cap (feed without get).
 *
 * Memory bound: raw buffer <= line_max * lines_max + reply_max bytes, text
 * buffer <= reply_max + 1 bytes.  The text buffer starts at
 * SMTP_REPLY_TEXT_START bytes and doubles on demand: an idle session holds
 * ~1 KiB of heap here, not 16 KiB (scripts/bench, 10,000 sessions).
 *
 * Leniency, on purpose: a bare LF ends a line (many real servers send it);
 * the second and third code digits are not range-checked; NUL bytes inside
 * reply text become '?' so the text stays a C string of text_len bytes.
 */
#include "smtp_reply.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SMTP_REPLY_TEXT_START 256 /* first text buffer; most replies fit */

struct smtp_reply_reader {
	struct smtp_reply_limits lim;
	size_t buf_max; /* cap on raw bytes held */

	char *buf; /* raw input; [off, len) not yet parsed */
	size_t buf_size;
	size_t off;
	size_t len;
	size_t scan; /* memchr for LF already done up to here */

	/* the reply being assembled */
	int code;
	int nlines;
	char enhanced[16];
	char *text; /* text_cap <= reply_max + 1 bytes */
	size_t text_len;
	size_t text_cap;
	size_t partial_raw; /* raw bytes of lines consumed into it */
	int returned;       /* the reply was handed out; clear on next get */

	int failed;
	char err[128];
};

static void smtp_reply_fail(struct smtp_reply_reader *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
smtp_reply_fail(struct smtp_reply_reader *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return;
	r->failed = 1;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

static void
smtp_reply_clear_current(struct smtp_reply_reader *r)
{
	r->code = 0;
	r->nlines = 0;
	r->enhanced[0] = '\0';
	r->text_len = 0;
	r->text[0] = '\0';
	r->partial_raw = 0;
	r->returned = 0;
}

struct smtp_reply_reader *
smtp_reply_reader_new(const struct smtp_reply_limits *limits)
{
	struct smtp_reply_reader *r;
	struct smtp_reply_limits lim = {SMTP_LINE_MAX_DEFAULT, SMTP_REPLY_MAX_DEFAULT,
	                                SMTP_LINES_MAX_DEFAULT};

	if (limits != NULL) {
		if (limits->line_max != 0)
			lim.line_max = limits->line_max;
		if (limits->reply_max != 0)
			lim.reply_max = limits->reply_max;
		if (limits->lines_max != 0)
			lim.lines_max = limits->lines_max;
	}
	/* "250\n" is the shortest possible line. */
	if (lim.line_max < 4 || lim.lines_max < 1 ||
	    lim.line_max > SIZE_MAX / 4 / (size_t)lim.lines_max || lim.reply_max > SIZE_MAX / 4)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->lim = lim;
	r->buf_max = lim.line_max * (size_t)lim.lines_max + lim.reply_max;
	r->text_cap =
	    lim.reply_max + 1 < SMTP_REPLY_TEXT_START ? lim.reply_max + 1 : SMTP_REPLY_TEXT_START;
	if ((r->text = malloc(r->text_cap)) == NULL) {
		free(r);
		return NULL;
	}
	smtp_reply_clear_current(r);
	return r;
}

void
smtp_reply_reader_free(struct smtp_reply_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->text);
	free(r);
}

int
smtp_reply_feed(struct smtp_reply_reader *r, const char *buf, size_t len)
{
	size_t need, nsize;
	char *nbuf;

	if (r->failed)
		return -1;
	if (len == 0)
		return 0;
	/* Move unparsed bytes to the front: consumed lines do not count. */
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->scan -= r->off;
		r->off = 0;
	}
	if (len > r->buf_max - r->len) {
		smtp_reply_fail(r, "more than %zu bytes of unread input", r->buf_max);
		return -1;
	}
	need = r->len + len;
	if (need > r->buf_size) {
		nsize = r->buf_size ? r->buf_size : 1024;
		while (nsize < need)
			nsize *= 2;
		if (nsize > r->buf_max)
			nsize = r->buf_max;
		if ((nbuf = realloc(r->buf, nsize)) == NULL) {
			smtp_reply_fail(r, "out of memory");
			return -1;
		}
		r->buf = nbuf;
		r->buf_size = nsize;
	}
	memcpy(r->buf + r->len, buf, len);
	r->len += len;
	return 0;
}

/*
 * Length of a syntactically valid RFC 3463 status code at s (class "." 1*3digit
 * "." 1*3digit) followed by a space or the end, whose class is 2, 4 or 5 and
 * equals the reply code's first digit; else 0.
 */
static size_t
smtp_reply_enhanced_len(const char *s, size_t n, int code)
{
	size_t i = 0, k;
	int part;

	if (n < 5 || s[0] != '0' + code / 100 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (k = 0; i < n && k < 3 && s[i] >= '0' && s[i] <= '9'; k++)
			i++;
		if (k == 0)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && s[i] != ' ')
		return 0;
	return i;
}

/* One line without its terminator; 1 = last line of the reply, 0 = more
 * lines follow, -1 = error (recorded). */
static int
smtp_reply_line(struct smtp_reply_reader *r, const char *s, size_t n)
{
	const char *t;
	size_t tn, e, i;
	int code, last;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
	    s[2] > '9' || (n > 3 && s[3] != ' ' && s[3] != '-')) {
		smtp_reply_fail(r, "line %d of reply has no valid reply code", r->nlines + 1);
		return -1;
	}
	code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	last = n == 3 || s[3] == ' ';
	if (r->nlines == 0)
		r->code = code;
	else if (code != r->code) {
		smtp_reply_fail(r,
		                "reply code changed from %d to %d inside a "
		                "multi-line reply",
		                r->code, code);
		return -1;
	}
	if (r->nlines >= r->lim.lines_max) {
		smtp_reply_fail(r, "reply has more than %d lines", r->lim.lines_max);
		return -1;
	}
	r->nlines++;

	t = n > 3 ? s + 4 : s + n;
	tn = n > 3 ? n - 4 : 0;
	/* Strip an enhanced code on every line (servers repeat it on
	 * continuation lines); only the first line's one is the reply's. */
	if ((e = smtp_reply_enhanced_len(t, tn, code)) > 0) {
		if (r->nlines == 1) {
			memcpy(r->enhanced, t, e);
			r->enhanced[e] = '\0';
		}
		while (e < tn && t[e] == ' ')
			e++;
		t += e;
		tn -= e;
	}
	if ((r->nlines > 1 ? 1 : 0) + tn > r->lim.reply_max - r->text_len) {
		smtp_reply_fail(r, "reply text longer than %zu bytes", r->lim.reply_max);
		return -1;
	}
	if (r->text_len + 1 + tn + 1 > r->text_cap) {
		size_t cap = r->text_cap;
		char *n;

		while (cap < r->text_len + 1 + tn + 1)
			cap *= 2;
		if (cap > r->lim.reply_max + 1)
			cap = r->lim.reply_max + 1;
		if ((n = realloc(r->text, cap)) == NULL) {
			smtp_reply_fail(r, "out of memory for %zu bytes of reply text", cap);
			return -1;
		}
		r->text = n;
		r->text_cap = cap;
	}
	if (r->nlines > 1)
		r->text[r->text_len++] = '\n';
	for (i = 0; i < tn; i++)
		r->text[r->text_len++] = t[i] == '\0' ? '?' : t[i];
	r->text[r->text_len] = '\0';
	return last;
}

enum smtp_reply_rc
smtp_reply_get(struct smtp_reply_reader *r, struct smtp_reply *out)
{
	const char *lf;
	size_t linelen;
	int rc;

	if (r->failed)
		return SMTP_REPLY_ERROR;
	if (r->returned)
		smtp_reply_clear_current(r);
	for (;;) {
		lf = r->scan < r->len ? memchr(r->buf + r->scan, '\n', r->len - r->scan) : NULL;
		if (lf == NULL) {
			r->scan = r->len;
			/* Without its LF, this line is already too long. */
			if (r->len - r->off >= r->lim.line_max)
				goto toolong;
			return SMTP_REPLY_NONE;
		}
		linelen = (size_t)(lf - (r->buf + r->off)) + 1;
		if (linelen > r->lim.line_max)
			goto toolong;
		rc = smtp_reply_line(r, r->buf + r->off, linelen - 1);
		r->off += linelen;
		r->scan = r->off;
		r->partial_raw += linelen;
		if (r->off == r->len)
			r->off = r->len = r->scan = 0;
		if (rc < 0)
			return SMTP_REPLY_ERROR;
		if (rc == 1)
			break;
	}
	out->code = r->code;
	memcpy(out->enhanced, r->enhanced, sizeof(out->enhanced));
	out->text = r->text;
	out->text_len = r->text_len;
	out->nlines = r->nlines;
	r->returned = 1;
	r->partial_raw = 0;
	return SMTP_REPLY_OK;

toolong:
	smtp_reply_fail(r, "line %d of reply longer than %zu bytes", r->nlines + 1,
	                r->lim.line_max);
	return SMTP_REPLY_ERROR;
}

const char *
smtp_reply_error(const struct smtp_reply_reader *r)
{
	return r->failed ? r->err : NULL;
}

size_t
smtp_reply_pending(const struct smtp_reply_reader *r)
{
	return (r->len - r->off) + r->partial_raw;
}

int
smtp_reply_pending_code(const struct smtp_reply_reader *r)
{
	const char *s = r->buf + r->off;

	if (r->buf == NULL || r->partial_raw > 0 || r->len - r->off < 3 || s[0] < '2' ||
	    s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return 0;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

void
smtp_reply_reset(struct smtp_reply_reader *r)
{
	r->off = r->len = r->scan = 0;
	r->failed = 0;
	r->err[0] = '\0';
	smtp_reply_clear_current(r);
}

static const struct {
	const char *name;
	unsigned bit;
} smtp_ext_names[] = {
    {"PIPELINING", SMTP_EXT_PIPELINING},
    {"STARTTLS", SMTP_EXT_STARTTLS},
    {"SMTPUTF8", SMTP_EXT_SMTPUTF8},
    {"8BITMIME", SMTP_EXT_8BITMIME},
    {"ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES},
    {"SIZE", SMTP_EXT_SIZE},
    {"CHUNKING", SMTP_EXT_CHUNKING},
};

unsigned
smtp_ehlo_extensions(const struct smtp_reply *ehlo)
{
	const char *p, *end, *eol;
	size_t i, kl;
	unsigned mask = 0;

	/* Only a positive EHLO reply advertises anything. */
	if (ehlo == NULL || ehlo->text == NULL || ehlo->code / 100 != 2)
		return 0;
	end = ehlo->text + ehlo->text_len;
	/* The first line is the server's greeting name, not a keyword. */
	if ((p = memchr(ehlo->text, '\n', ehlo->text_len)) == NULL)
		return 0;
	for (p++; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		while (p < eol && *p == ' ')
			p++;
		/* Keyword ends at a space; "AUTH=..." is the old-style form. */
		for (kl = 0; p + kl < eol && p[kl] != ' ' && p[kl] != '='; kl++)
			;
		for (i = 0; i < sizeof(smtp_ext_names) / sizeof(smtp_ext_names[0]); i++)
			if (strlen(smtp_ext_names[i].name) == kl &&
			    strncasecmp(p, smtp_ext_names[i].name, kl) == 0)
				mask |= smtp_ext_names[i].bit;
		if (eol == end)
			break;
	}
	return mask;
}
