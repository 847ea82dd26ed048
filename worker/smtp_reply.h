/*
 * smtp_reply.h — SMTP reply reader: a pure feed/get parser over bytes.
 *
 * Feed whatever arrived from the socket (split anywhere: mid-code, mid-line,
 * several replies in one read); ask for complete replies one at a time.
 * "No reply yet" is a normal answer.  Multi-line replies ("250-a", "250 b")
 * are joined under a cap; the enhanced status code (RFC 3463) of the first
 * line is parsed and sanitised: its class digit must equal the reply's first
 * digit, else it is dropped.  Bare LF is accepted as a line end.  Errors
 * (a line without a valid code, mismatched codes inside one reply, a line or
 * reply over the caps) are sticky: once smtp_reply_get() returns
 * SMTP_REPLY_ERROR it keeps doing so.  Memory is bounded by the caps.
 */
#ifndef MXSIFT_SMTP_REPLY_H
#define MXSIFT_SMTP_REPLY_H

#include <stddef.h>

#define SMTP_LINE_MAX_DEFAULT   2048   /* bytes per line, incl. CRLF (RFC: 512) */
#define SMTP_REPLY_MAX_DEFAULT  16384  /* bytes of joined text per reply */
#define SMTP_LINES_MAX_DEFAULT  64     /* lines per reply */

enum smtp_reply_rc {
	SMTP_REPLY_NONE = 0,   /* need more bytes */
	SMTP_REPLY_OK = 1,     /* *out holds one complete reply */
	SMTP_REPLY_ERROR = -1  /* protocol error; see smtp_reply_error() */
};

struct smtp_reply {
	int code;              /* 200..599 */
	char enhanced[16];     /* "5.1.1" or "" (absent or sanitised away) */
	char *text;            /* joined text of all lines without code/enh., lines
	                          separated by '\n'; NUL-terminated; owned by the
	                          reader, valid until the next get/feed/free */
	size_t text_len;
	int nlines;
};

struct smtp_reply_limits {
	size_t line_max;
	size_t reply_max;
	int lines_max;
};

struct smtp_reply_reader;

/* limits may be NULL for the defaults. */
struct smtp_reply_reader *smtp_reply_reader_new(const struct smtp_reply_limits *limits);
void smtp_reply_reader_free(struct smtp_reply_reader *r);
/* Returns 0, or -1 when the reader is in error or would exceed its
 * buffering cap (the error is then set and sticky). */
int smtp_reply_feed(struct smtp_reply_reader *r, const char *buf, size_t len);
enum smtp_reply_rc smtp_reply_get(struct smtp_reply_reader *r, struct smtp_reply *out);
const char *smtp_reply_error(const struct smtp_reply_reader *r);  /* NULL if none */
/* Bytes buffered but not yet returned as a reply (unexpected trailing input
 * when nothing was pipelined is a protocol error for the caller). */
size_t smtp_reply_pending(const struct smtp_reply_reader *r);
/* The reply code (200..599) that the pending input starts with, when its
 * first three bytes are there and are digits and no line of it was parsed
 * yet; else 0.  Lets the caller tell an unsolicited 421 from other input
 * that arrived behind a reply. */
int smtp_reply_pending_code(const struct smtp_reply_reader *r);
/* Drop everything (e.g. after STARTTLS: no plaintext may carry over). */
void smtp_reply_reset(struct smtp_reply_reader *r);

/* EHLO keywords as a bitmask, parsed from an EHLO reply's lines 2..n. */
#define SMTP_EXT_PIPELINING  0x01u
#define SMTP_EXT_STARTTLS    0x02u
#define SMTP_EXT_SMTPUTF8    0x04u
#define SMTP_EXT_8BITMIME    0x08u
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x10u
#define SMTP_EXT_SIZE        0x20u
#define SMTP_EXT_CHUNKING    0x40u
unsigned smtp_ehlo_extensions(const struct smtp_reply *ehlo);

#endif
