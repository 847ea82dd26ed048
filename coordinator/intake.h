/*
 * intake.h — read address rows from a list file.
 *
 * Formats: plain text (one address per line) or CSV (RFC 4180 via libcsv:
 * quoted fields, embedded commas/newlines, CRLF, UTF-8 BOM) with a header
 * row naming the address column ("email" by default, case-insensitive;
 * --column NAME or a 1-based number).  Auto-detection: a first line that
 * contains a delimiter (',' ';' or TAB) and a column header named like the
 * wanted column makes the file CSV; otherwise it is plain text.
 *
 * Every data row yields exactly one intake_row, even an empty or broken one
 * (row->text is then what could be read, possibly ""), so no row is ever
 * silently dropped.  Blank lines in plain text files are skipped (they are
 * not rows).
 */
#ifndef MXSIFT_INTAKE_H
#define MXSIFT_INTAKE_H

#include <stddef.h>
#include <stdint.h>

enum intake_format { INTAKE_AUTO = 0, INTAKE_TEXT, INTAKE_CSV };

struct intake_opts {
	enum intake_format format;
	const char *column;      /* header name or 1-based number; NULL = "email" */
};

struct intake_row {
	uint64_t line;           /* 1-based line where the row starts */
	const char *text;        /* the address field as read (NUL-terminated; may
	                            contain any byte but NUL); valid until next call */
	size_t len;
	const char *problem;     /* NULL, or why the row is malformed (e.g. "missing
	                            column") — it still gets an invalid_syntax verdict */
};

struct intake;

/* path "-" = stdin.  NULL + err on failure (unreadable file, no such column). */
struct intake *intake_open(const char *path, const struct intake_opts *opts,
    char *err, size_t errlen);
/* 1 = *row filled, 0 = end of input, -1 = fatal read error (err set). */
int intake_next(struct intake *in, struct intake_row *row, char *err, size_t errlen);
void intake_close(struct intake *in);

#endif
