/*
 * intake.h — read address rows from a list file.
 *
 * Formats: plain text (one address per line); CSV or TSV (RFC 4180 via
 * libcsv: quoted fields, embedded commas/newlines, CRLF, UTF-8 BOM) with a
 * header row naming the address column ("email" by default,
 * case-insensitive; --column NAME or a 1-based number); JSONL (one JSON
 * object per line, the address in the top-level string member named by
 * --field, "email" by default).  Any of them may be gzip-compressed: gzip
 * is recognised by its magic bytes (1f 8b), never by the file name.
 * Auto-detection: a first line starting with '{' makes the file JSONL; a
 * first line that contains a delimiter (',' ';' or TAB) and a column header
 * named like the wanted column makes it CSV (TSV when the delimiter is TAB);
 * otherwise it is plain text.
 *
 * Every data row yields exactly one intake_row, even an empty or broken one
 * (row->text is then what could be read, possibly ""), so no row is ever
 * silently dropped.  Blank lines (nothing but spaces and TABs) are not rows
 * in any format; every row carries the line it starts on, so output joins
 * back to the input by line number.  Line ends: LF, CRLF, and in plain text
 * and CSV a lone CR (old Mac / Excel exports); JSONL lines end at LF only.
 *
 * A row is marked malformed (row->problem) only when its address field is
 * affected; trouble elsewhere in the row (a NUL or an unterminated quote in
 * a later column) is row->warning and the address is used as read.
 */
#ifndef MXSIFT_INTAKE_H
#define MXSIFT_INTAKE_H

#include <stddef.h>
#include <stdint.h>

enum intake_format {
	INTAKE_AUTO = 0, INTAKE_TEXT, INTAKE_CSV,
	INTAKE_TSV,              /* CSV with TAB as the only delimiter */
	INTAKE_JSONL
};

struct intake_opts {
	enum intake_format format;
	const char *column;      /* header name or 1-based number; NULL = "email" */
	const char *field;       /* JSONL member name; NULL = "email" */
};

/* "auto", "text", "csv", "tsv", "jsonl" -> format; -1 when unknown. */
int intake_format_parse(const char *name);

/*
 * Strict JSON (RFC 8259) for one line: s[0..len) must be exactly one JSON
 * object (white space around it allowed).  Copies the value of its
 * top-level member `name`, which must be a string, into out (UTF-8,
 * escapes decoded, NUL-terminated, at most outmax - 1 bytes; a decoded
 * U+0000 is stored as SUB 0x1a) and sets *outlen.  Returns NULL on success,
 * else the row problem: "invalid JSON", "missing field", "field not a
 * string", "duplicate field", "field too long", "NUL byte in row".
 */
const char *intake_json_field(const char *s, size_t len, const char *name,
    char *out, size_t outmax, size_t *outlen);

struct intake_row {
	uint64_t line;           /* 1-based line where the row starts */
	const char *text;        /* the address field as read (NUL-terminated; may
	                            contain any byte but NUL); valid until next call */
	size_t len;
	const char *problem;     /* NULL, or why the row is malformed (e.g. "missing
	                            column") — it still gets an invalid_syntax verdict */
	const char *warning;     /* NULL, or trouble outside the address field (e.g.
	                            "NUL byte in another column"): worth telling the
	                            user, no reason to doubt the address */
};

struct intake;

/* path "-" = stdin.  NULL + err on failure (unreadable file, empty or no
 * such column, a gzip stream that does not start as one, a JSONL input whose
 * first INTAKE_SNIFF_LINES lines are all not JSON objects or all lack the
 * member: "input does not look like JSONL: ..."). */
#define INTAKE_SNIFF_LINES 20
struct intake *intake_open(const char *path, const struct intake_opts *opts,
    char *err, size_t errlen);
/* 1 = *row filled, 0 = end of input, -1 = fatal read error (err set: the
 * file name and what happened, e.g. "list.gz: truncated gzip input (cut in
 * line 1234)"); every row before the error was handed out. */
int intake_next(struct intake *in, struct intake_row *row, char *err, size_t errlen);
/* Bytes of the file consumed so far (compressed bytes for gzip) and its
 * size (0 when not a regular file): for progress and ETA. */
void intake_progress(const struct intake *in, uint64_t *done, uint64_t *size);
void intake_close(struct intake *in);

#endif
