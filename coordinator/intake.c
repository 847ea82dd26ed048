/*
 * intake.c — read address rows from a list file, streaming (see intake.h).
 *
 * Owns: opening the input (a path or "-" for stdin), gzip decompression,
 * format and delimiter detection, header handling, and turning bytes into
 * one intake_row per data row with the 1-based line on which the row
 * starts.  CSV/TSV is parsed by libcsv (non-strict); plain text is split at
 * LF, CRLF or a lone CR, JSONL at LF; a JSONL line goes through
 * intake_json_field().  The input is read in INTAKE_CHUNK pieces, never
 * slurped.
 *
 * gzip: every read goes through zlib's gzread(), which inflates a stream
 * that starts with the gzip magic bytes 1f 8b (concatenated members too)
 * and passes any other bytes through unchanged.  So compression is told by
 * content, never by the file name, and stdin may be compressed as well.  A
 * truncated gzip stream ("truncated gzip input (cut in line N)") or a
 * corrupt one ("corrupt gzip input (zlib's message)") is a fatal read error
 * naming the file, after every complete row before it was handed out.
 *
 * Detection (INTAKE_AUTO): a first line (after a UTF-8 BOM and blanks)
 * starting with '{' makes the file JSONL.  Otherwise the first line is
 * split with each delimiter ',' ';' TAB in turn; if one split has a field
 * equal to the wanted column name (case-insensitive, blanks trimmed) the
 * file is CSV with that delimiter and that line is its header.  A first
 * line that is just the column name ("email") is a one-column CSV.  A first
 * line that has a delimiter and no '@' but lacks the named column is a
 * header without the column: intake_open() fails and names the columns it
 * found.  With a numeric --column, a first line with a delimiter makes the
 * file CSV (the most frequent delimiter wins) and it is a header when it
 * has no '@' anywhere; a first line without any '@' that has fewer than
 * N fields is a header without the column: intake_open() fails.  Anything
 * else is plain text.  INTAKE_TSV is INTAKE_CSV with TAB as the only
 * delimiter tried.  The first line ends at LF or CR.
 *
 * JSONL sniff: when the first INTAKE_SNIFF_LINES non-blank lines (or all of
 * them, if fewer, as far as the first read holds complete lines) are all
 * not JSON, or all JSON objects without the member, intake_open() fails:
 * the input is not JSONL (a CSV read with --input-format jsonl, a text
 * file starting with '{'), or --field names nothing.  One good line among
 * them is enough to go on.
 *
 * Row problems (row->problem; the row is still returned):
 *   "missing column"      the row has fewer fields than the column; text ""
 *   "unterminated quote"  a quoted field was still open at end of input;
 *                         the rest of the file is re-read without quoting
 *                         from the point where the quote opened, so the rows
 *                         it swallowed still come out, with their own lines.
 *                         A problem when the quote opened in the address
 *                         field or before it (the fields from there on are
 *                         split by a guess); in a later field it is only the
 *                         warning "unterminated quote in a later column ..."
 *   "NUL byte in row"     a NUL was in the address field (CSV), the line
 *                         (text) or anywhere in a JSONL line; in text each
 *                         NUL is replaced by SUB (0x1a) so text stays a C
 *                         string and the address parser still refuses it.
 *                         A NUL in another CSV column is only the warning
 *                         "NUL byte in another column"
 *   "field too long"      the address field exceeded INTAKE_FIELD_MAX bytes;
 *                         text holds its first INTAKE_FIELD_MAX bytes
 *   "line too long"       a JSONL line exceeded INTAKE_JSON_LINE_MAX bytes
 *   JSONL only, from intake_json_field(): "invalid JSON", "missing field",
 *   "field not a string", "duplicate field"; text is then the raw line (cut
 *   at INTAKE_FIELD_MAX bytes) so the output shows what was there.
 *
 * Line counting: we count line breaks ourselves as bytes are fed to libcsv,
 * which knows nothing of lines.  Bytes go to libcsv in segments that end
 * just after a CR or LF, so a row can only end at the last byte of a
 * segment, and the row's start line is the line of its first byte that is
 * not a line break or a blank libcsv skips.  In CSV a lone CR ends a row (as
 * libcsv treats it) and counts as a line; CRLF counts once.  In plain text
 * a lone CR ends a line as well, so no CR is ever in a text row.  In JSONL
 * only LF ends a line and only the CR of a CRLF ending is removed: any other
 * CR stays in the line (JSON white space, or the parser rejects it).
 *
 * Fatal errors (intake_next() returns -1): read and gzip errors, and a CSV
 * field that would make libcsv buffer more than INTAKE_CSV_MAX bytes.
 *
 * UTF-16 and UTF-32 (Excel's "Unicode text" export is UTF-16LE with a byte
 * order mark) are refused by intake_open(), naming the encoding and the
 * iconv command that converts the file: read as bytes, every ASCII
 * character of it comes with a NUL, so every row would be "NUL byte in
 * row" — a whole list of good addresses given invalid_syntax.  Told by a
 * BOM (FF FE, FE FF; FF FE 00 00, 00 00 FE FF), or by the first
 * INTAKE_SNIFF_BYTES bytes (after gzip) having a NUL in at least half of
 * the even or of the odd positions and almost none (1/16) in the others,
 * which no UTF-8 list has.  Not transcoded here: that would be a second
 * decoding layer under the line counting and the byte offsets used for
 * progress, and without a BOM the byte order is a guess the user can make
 * better.
 */
#include "intake.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define INTAKE_CHUNK     65536u          /* bytes per read(2) */
#define INTAKE_FIELD_MAX 65536u          /* kept bytes of the address field */
#define INTAKE_CSV_MAX   (8u << 20)      /* libcsv's field buffer cap */
#define INTAKE_HDR_MAX   1024            /* header fields remembered */
#define INTAKE_HDR_NAME  200             /* bytes kept per header name */
#define INTAKE_NUL_SUB   0x1a            /* ASCII SUB stands in for NUL */
#define INTAKE_JSON_LINE_MAX (1u << 20)  /* bytes of one JSONL line */
#define INTAKE_JSON_DEPTH 64             /* nesting we follow when skipping */
#define INTAKE_SNIFF_BYTES 1024          /* bytes looked at for UTF-16 */

static const char intake_p_missing[] = "missing column";
static const char intake_p_quote[] = "unterminated quote";
static const char intake_p_nul[] = "NUL byte in row";
static const char intake_p_long[] = "field too long";
static const char intake_p_line[] = "line too long";
static const char intake_p_json[] = "invalid JSON";
static const char intake_p_nofield[] = "missing field";
static const char intake_p_notstr[] = "field not a string";
static const char intake_p_dupfield[] = "duplicate field";
static const char intake_w_nul[] = "NUL byte in another column";
static const char intake_w_quote[] = "unterminated quote in a later column "
    "(the rest of the line was read unquoted)";

struct intake {
	char *path;
	gzFile gz;
	uint64_t size;			/* file size, 0 = not a regular file */
	enum intake_format fmt;
	char *field_name;		/* JSONL member */
	char *field;			/* JSONL: the extracted value */

	unsigned char *buf;
	size_t bufsz, pos, end;
	int eof, done;
	uint64_t line;			/* line of the next unconsumed byte */
	int prevcr;			/* last byte fed was CR (CSV counting; in
					   text: a CR ended the last line, so a
					   LF right after it is its pair) */

	/* The row being built (and, once complete, the row handed out). */
	char *text;			/* textmax + 1 bytes */
	size_t textlen, textmax;
	int have_col, nul, toolong, broken, lastcr, any;
	int nul_other, quote_other;	/* warnings: trouble outside the field */
	uint64_t row_line;
	size_t nfield;

	/* CSV */
	struct csv_parser csv;
	int csv_ok;
	unsigned char delim;
	size_t col;			/* 0-based address column */
	int skip_header, pending_start, row_ready, replayed;
};

/* Header fields of the first line, parsed with one delimiter. */
struct intake_hdr {
	size_t n;
	int row_done;
	char *names[INTAKE_HDR_MAX];
};

static void *
intake_csv_realloc(void *p, size_t n)
{
	/* libcsv grows one field's buffer without bound; an unbalanced quote
	 * in a huge file would swallow it all into memory. */
	if (n > INTAKE_CSV_MAX)
		return NULL;
	return realloc(p, n);
}

static void
intake_row_reset(struct intake *in)
{
	in->textlen = 0;
	in->have_col = in->nul = in->toolong = in->broken = 0;
	in->lastcr = in->any = 0;
	in->nul_other = in->quote_other = 0;
	in->nfield = 0;
}

/* Append field bytes to the row text, under the cap, NUL → SUB. */
static void
intake_text_append(struct intake *in, const unsigned char *s, size_t len)
{
	size_t i, room, take;
	char *t;

	if (len == 0)
		return;
	room = in->textmax - in->textlen;
	if (len > room)
		in->toolong = 1;
	take = len < room ? len : room;
	t = in->text + in->textlen;
	/* memcpy, then replace NULs: a byte-by-byte copy was 5% of
	 * `mxsift submit`'s instructions */
	memcpy(t, s, take);
	in->textlen += take;
	if (memchr(s, '\0', len) != NULL) {
		in->nul = 1;
		for (i = 0; i < take; i++)
			if (t[i] == '\0')
				t[i] = INTAKE_NUL_SUB;
	}
	in->lastcr = s[len - 1] == '\r';
}

static void
intake_row_fill(struct intake *in, struct intake_row *row)
{
	in->text[in->textlen] = '\0';
	row->line = in->row_line;
	row->text = in->text;
	row->len = in->textlen;
	if (in->fmt == INTAKE_CSV && !in->have_col)
		row->problem = intake_p_missing;
	else if (in->broken)
		row->problem = intake_p_quote;
	else if (in->nul)
		row->problem = intake_p_nul;
	else if (in->toolong)
		row->problem = intake_p_long;
	else
		row->problem = NULL;
	row->warning = NULL;
	if (row->problem == NULL && in->nul_other)
		row->warning = intake_w_nul;
	else if (row->problem == NULL && in->quote_other)
		row->warning = intake_w_quote;
	/* The bytes stay valid until the next intake_next() feeds more. */
	intake_row_reset(in);
}

/* zlib's gzip error as the user should read it: the file's name (zlib only
 * knows "<fd:N>"), and "truncated" for a stream that ends early. */
static void
intake_gz_error(const struct intake *in, int zerr, const char *msg, char *err,
    size_t errlen)
{
	const char *p;

	if (strncmp(msg, "<fd:", 4) == 0 && (p = strstr(msg, ": ")) != NULL)
		msg = p + 2;
	if (zerr == Z_BUF_ERROR)
		snprintf(err, errlen, "%s: truncated gzip input (cut in line %llu)",
		    in->path, (unsigned long long)in->line);
	else
		snprintf(err, errlen, "%s: corrupt gzip input (%s) in line %llu",
		    in->path, msg, (unsigned long long)in->line);
}

/* Read more input.  In the peek phase (pos != 0) bytes are appended. */
static int
intake_fill(struct intake *in, char *err, size_t errlen)
{
	int r, zerr;
	const char *msg;

	if (in->pos == in->end)
		in->pos = in->end = 0;
	if (in->end == in->bufsz)
		return 0;
	errno = 0;
	r = gzread(in->gz, in->buf + in->end, (unsigned)(in->bufsz - in->end));
	if (r < 0) {
		msg = gzerror(in->gz, &zerr);
		if (zerr == Z_ERRNO)
			snprintf(err, errlen, "read %s: %s", in->path,
			    strerror(errno));
		else
			intake_gz_error(in, zerr, msg, err, errlen);
		return -1;
	}
	if (r == 0) {
		/* zlib reports a stream cut short only through gzerror(). */
		msg = gzerror(in->gz, &zerr);
		if (zerr != Z_OK) {
			intake_gz_error(in, zerr, msg, err, errlen);
			return -1;
		}
		in->eof = 1;
	}
	in->end += (size_t)r;
	return 0;
}

/* ---- CSV ---- */

static void
intake_csv_field(void *s, size_t len, void *data)
{
	struct intake *in = data;

	if (in->skip_header) {
		in->nfield++;
		return;
	}
	if (in->nfield == in->col) {
		intake_text_append(in, s, len);
		in->have_col = 1;
	} else if (len > 0 && memchr(s, '\0', len) != NULL)
		in->nul_other = 1;
	in->nfield++;
}

static void
intake_csv_row(int c, void *data)
{
	struct intake *in = data;

	in->pending_start = 1;
	if (in->skip_header) {
		in->skip_header = 0;
		intake_row_reset(in);
		return;
	}
	in->row_ready = 1;
}

static int
intake_csv_init(struct intake *in, unsigned char quote)
{
	if (csv_init(&in->csv, 0) != 0)
		return -1;
	csv_set_delim(&in->csv, in->delim);
	csv_set_quote(&in->csv, quote);
	csv_set_realloc_func(&in->csv, intake_csv_realloc);
	csv_set_blk_size(&in->csv, INTAKE_CHUNK);
	in->csv_ok = 1;
	return 0;
}

/* Bytes libcsv skips between rows: line breaks and blanks (not the delim). */
static int
intake_csv_blank(const struct intake *in, unsigned char c)
{
	if (c == '\r' || c == '\n')
		return 1;
	return (c == ' ' || c == '\t') && c != in->delim;
}

/* The open quote is in field in->nfield of the row: it breaks the address
 * when that is the address field or one before it (every field from there
 * on is split by a guess); a later field only earns a warning. */
static void
intake_csv_quote_open(struct intake *in)
{
	if (in->skip_header)
		return;
	if (in->nfield <= in->col)
		in->broken = 1;
	else
		in->quote_other = 1;
}

/*
 * End of input inside an open quote.  Everything after the opening quote
 * sits in libcsv's field buffer.  Re-read it, with quoting switched off,
 * as the continuation of the current row, so the first line's fields and
 * every later line's row come out with their own line numbers.
 */
static int
intake_csv_recover(struct intake *in)
{
	const unsigned char *f = in->csv.entry_buf;
	size_t flen = in->csv.entry_pos, i;
	uint64_t breaks = 0;
	unsigned char quote = 0x01, seen[32] = { 0 };
	int cr = 0;

	for (i = 0; i < flen; i++) {
		if (f[i] == '\r' || (f[i] == '\n' && !cr))
			breaks++;
		cr = f[i] == '\r';
		if (f[i] < 32)
			seen[f[i]] = 1;
	}
	/* A quote byte that cannot occur in the rest: quoting is off. */
	for (i = 1; i < 9; i++)
		if (!seen[i]) {
			quote = (unsigned char)i;
			break;
		}
	/* Nothing but blanks before the first line break (or no bytes at
	 * all): the replay parser would skip that as a blank line and glue
	 * this row to the next, so end the row here with an empty field. */
	for (i = 0; i < flen && f[i] != '\r' && f[i] != '\n'; i++)
		if (f[i] != ' ' && f[i] != '\t')
			break;
	if (i == flen || f[i] == '\r' || f[i] == '\n') {
		intake_csv_quote_open(in);
		intake_csv_field((void *)"", 0, in);
		intake_csv_row(-1, in);
		if (i < flen) {
			i += f[i] == '\r' && i + 1 < flen && f[i + 1] == '\n' ? 2 : 1;
			breaks--;
		}
		f += i;
		flen -= i;
	}
	if (flen > in->bufsz) {
		unsigned char *nb = realloc(in->buf, flen);
		if (nb == NULL)
			return -1;
		in->buf = nb;
		in->bufsz = flen;
	}
	if (flen > 0)
		memcpy(in->buf, f, flen);
	in->pos = 0;
	in->end = flen;
	in->line -= breaks;
	in->prevcr = 0;
	in->replayed = 1;
	csv_free(&in->csv);
	in->csv_ok = 0;
	if (intake_csv_init(in, quote) != 0)
		return -1;
	/* Otherwise the row keeps its start line and earlier fields. */
	if (!in->pending_start)
		intake_csv_quote_open(in);
	return 0;
}

static int
intake_next_csv(struct intake *in, struct intake_row *row, char *err,
    size_t errlen)
{
	const unsigned char *seg, *p;
	size_t n, i;

	for (;;) {
		if (in->row_ready) {
			in->row_ready = 0;
			intake_row_fill(in, row);
			return 1;
		}
		if (in->done)
			return 0;
		if (in->pos == in->end) {
			if (!in->eof) {
				if (intake_fill(in, err, errlen) != 0)
					return -1;
				continue;
			}
			/* libcsv's own state: a quoted field (1) that has
			 * not seen its closing quote (FIELD_BEGUN, 2). */
			if (!in->replayed && in->csv.quoted &&
			    in->csv.pstate == 2) {
				if (intake_csv_recover(in) != 0) {
					snprintf(err, errlen, "%s: out of memory",
					    in->path);
					return -1;
				}
				continue;
			}
			csv_fini(&in->csv, intake_csv_field, intake_csv_row, in);
			in->done = 1;
			continue;
		}

		seg = in->buf + in->pos;
		n = in->end - in->pos;
		for (i = 0; i < n; i++)
			if (seg[i] == '\r' || seg[i] == '\n')
				break;
		if (i < n)
			n = i + 1;
		if (in->pending_start) {
			for (p = seg; p < seg + n; p++)
				if (!intake_csv_blank(in, *p)) {
					in->pending_start = 0;
					in->row_line = in->line;
					break;
				}
		}
		if (csv_parse(&in->csv, seg, n, intake_csv_field, intake_csv_row,
		    in) != n) {
			int e = csv_error(&in->csv);
			snprintf(err, errlen, "%s: line %llu: %s", in->path,
			    (unsigned long long)in->row_line,
			    e == CSV_ENOMEM ? "field longer than 8 MiB "
			    "(unbalanced quote?)" : csv_strerror(e));
			return -1;
		}
		in->pos += n;
		if (n > 1)
			in->prevcr = 0;
		if (seg[n - 1] == '\r') {
			in->line++;
			in->prevcr = 1;
		} else if (seg[n - 1] == '\n') {
			if (!in->prevcr)
				in->line++;
			in->prevcr = 0;
		} else
			in->prevcr = 0;
	}
}

/* ---- plain text ---- */

/* Spaces and TABs only. */
static int
intake_blank(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return 0;
	return 1;
}

static int
intake_text_blank(const struct intake *in)
{
	if (in->nul || in->toolong)
		return 0;
	return intake_blank((const unsigned char *)in->text, in->textlen);
}

static void intake_jsonl_fill(struct intake *, struct intake_row *);

static void
intake_line_fill(struct intake *in, struct intake_row *row)
{
	if (in->fmt == INTAKE_JSONL)
		intake_jsonl_fill(in, row);
	else
		intake_row_fill(in, row);
}

/* The first line break in p[0..n): LF, and in plain text also CR. */
static const unsigned char *
intake_text_break(const struct intake *in, const unsigned char *p, size_t n)
{
	const unsigned char *nl = memchr(p, '\n', n), *cr;

	if (in->fmt == INTAKE_JSONL)
		return nl;
	cr = memchr(p, '\r', nl != NULL ? (size_t)(nl - p) : n);
	return cr != NULL ? cr : nl;
}

static int
intake_next_text(struct intake *in, struct intake_row *row, char *err,
    size_t errlen)
{
	const unsigned char *p, *nl;
	size_t n, take;

	for (;;) {
		/* The LF of a CRLF whose CR ended the last line (text). */
		if (in->prevcr && in->pos < in->end) {
			in->prevcr = 0;
			if (in->buf[in->pos] == '\n') {
				in->pos++;
				continue;
			}
		}
		if (in->pos == in->end) {
			if (!in->eof) {
				if (intake_fill(in, err, errlen) != 0)
					return -1;
				continue;
			}
			if (!in->any)
				return 0;
			/* Last line without a line break. */
			if (intake_text_blank(in)) {
				intake_row_reset(in);
				return 0;
			}
			intake_line_fill(in, row);
			return 1;
		}
		p = in->buf + in->pos;
		n = in->end - in->pos;
		nl = intake_text_break(in, p, n);
		take = nl != NULL ? (size_t)(nl - p) : n;
		if (!in->any) {
			in->any = 1;
			in->row_line = in->line;
		}
		intake_text_append(in, p, take);
		in->pos += take;
		if (nl == NULL)
			continue;
		in->pos++;
		in->line++;
		if (*nl == '\r')
			in->prevcr = 1;
		if (!in->toolong && in->lastcr && in->textlen > 0 &&
		    in->text[in->textlen - 1] == '\r')
			in->textlen--;
		if (intake_text_blank(in)) {
			intake_row_reset(in);
			continue;
		}
		intake_line_fill(in, row);
		return 1;
	}
}

/* ---- JSONL ---- */

/*
 * A small strict JSON reader, just enough to find one top-level string
 * member of one object per line.  Nothing is allocated: values other than
 * the wanted member are only validated and skipped (nesting bounded by
 * INTAKE_JSON_DEPTH), strings are decoded only when they are the wanted
 * member's name or value.
 */
struct intake_json {
	const unsigned char *s, *end;
	const char *problem;
};

static void
intake_json_ws(struct intake_json *j)
{
	while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' ||
	    *j->s == '\n' || *j->s == '\r'))
		j->s++;
}

static int
intake_json_hex4(const unsigned char *p, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/* Append one code point as UTF-8 (U+0000 as SUB); -1 when out is full. */
static int
intake_json_put(char *out, size_t outmax, size_t *o, uint32_t cp, int *nul)
{
	unsigned char b[4];
	size_t n;

	if (cp == 0) {
		*nul = 1;
		cp = INTAKE_NUL_SUB;
	}
	if (cp < 0x80)
		b[0] = (unsigned char)cp, n = 1;
	else if (cp < 0x800)
		b[0] = (unsigned char)(0xc0 | cp >> 6),
		b[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
	else if (cp < 0x10000)
		b[0] = (unsigned char)(0xe0 | cp >> 12),
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
		b[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
	else
		b[0] = (unsigned char)(0xf0 | cp >> 18),
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
		b[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
	if (out == NULL)
		return 0;
	if (*o + n >= outmax)
		return -1;
	memcpy(out + *o, b, n);
	*o += n;
	return 0;
}

/*
 * A string at j->s (the opening quote).  Decoded into out when out is not
 * NULL (*toolong set when it does not fit; decoding goes on to validate).
 * Raw bytes >= 0x80 are copied as they are: the address parser checks
 * UTF-8.  0 or -1 (problem set).
 */
static int
intake_json_string(struct intake_json *j, char *out, size_t outmax,
    size_t *outlen, int *toolong, int *nul)
{
	size_t o = 0;
	uint32_t cp, lo;

	j->s++;
	while (j->s < j->end) {
		unsigned char c = *j->s++;

		if (c == '"') {
			if (out != NULL)
				out[o] = '\0';
			if (outlen != NULL)
				*outlen = o;
			return 0;
		}
		if (c < 0x20)
			break;		/* raw control characters are not JSON */
		if (c != '\\') {
			if (out != NULL) {
				if (o + 1 < outmax)
					out[o++] = (char)c;
				else
					*toolong = 1;
			}
			continue;
		}
		if (j->s >= j->end)
			break;
		c = *j->s++;
		switch (c) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (j->end - j->s < 4 || intake_json_hex4(j->s, &cp) != 0)
				goto bad;
			j->s += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				goto bad;	/* a lone low surrogate */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->end - j->s < 6 || j->s[0] != '\\' ||
				    j->s[1] != 'u' ||
				    intake_json_hex4(j->s + 2, &lo) != 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					goto bad;
				j->s += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
			}
			break;
		default:
			goto bad;
		}
		if (out != NULL && intake_json_put(out, outmax, &o, cp, nul) != 0)
			*toolong = 1;
	}
bad:
	j->problem = intake_p_json;
	return -1;
}

static int
intake_json_literal(struct intake_json *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->s) < n || memcmp(j->s, word, n) != 0) {
		j->problem = intake_p_json;
		return -1;
	}
	j->s += n;
	return 0;
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
intake_json_number(struct intake_json *j)
{
	const unsigned char *p = j->s;

	if (p < j->end && *p == '-')
		p++;
	if (p < j->end && *p == '0')
		p++;
	else if (p < j->end && *p >= '1' && *p <= '9')
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	else
		goto bad;
	if (p < j->end && *p == '.') {
		if (++p >= j->end || *p < '0' || *p > '9')
			goto bad;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || *p < '0' || *p > '9')
			goto bad;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	j->s = p;
	return 0;
bad:
	j->problem = intake_p_json;
	return -1;
}

static int intake_json_value(struct intake_json *, int);

/* An object or array at j->s; skipped (validated).  0 / -1. */
static int
intake_json_container(struct intake_json *j, int depth)
{
	unsigned char close = *j->s == '{' ? '}' : ']';
	int first = 1, dummy = 0;

	if (depth >= INTAKE_JSON_DEPTH)
		goto bad;
	j->s++;
	for (;;) {
		intake_json_ws(j);
		if (j->s >= j->end)
			goto bad;
		if (*j->s == close && first) {
			j->s++;
			return 0;
		}
		if (close == '}') {
			if (*j->s != '"' || intake_json_string(j, NULL, 0, NULL,
			    &dummy, &dummy) != 0)
				goto bad;
			intake_json_ws(j);
			if (j->s >= j->end || *j->s++ != ':')
				goto bad;
		}
		if (intake_json_value(j, depth + 1) != 0)
			return -1;
		intake_json_ws(j);
		if (j->s >= j->end)
			goto bad;
		if (*j->s == close) {
			j->s++;
			return 0;
		}
		if (*j->s++ != ',')
			goto bad;
		first = 0;
	}
bad:
	j->problem = intake_p_json;
	return -1;
}

static int
intake_json_value(struct intake_json *j, int depth)
{
	int dummy = 0;

	intake_json_ws(j);
	if (j->s >= j->end)
		goto bad;
	switch (*j->s) {
	case '{':
	case '[':
		return intake_json_container(j, depth);
	case '"':
		return intake_json_string(j, NULL, 0, NULL, &dummy, &dummy);
	case 't':
		return intake_json_literal(j, "true");
	case 'f':
		return intake_json_literal(j, "false");
	case 'n':
		return intake_json_literal(j, "null");
	default:
		return intake_json_number(j);
	}
bad:
	j->problem = intake_p_json;
	return -1;
}

const char *
intake_json_field(const char *s, size_t len, const char *name, char *out,
    size_t outmax, size_t *outlen)
{
	struct intake_json j = { (const unsigned char *)s,
	    (const unsigned char *)s + len, NULL };
	char key[256];
	size_t keylen, namelen = strlen(name);
	int found = 0, keylong, nul = 0, toolong = 0, dummy = 0;

	*outlen = 0;
	if (outmax > 0)
		out[0] = '\0';
	intake_json_ws(&j);
	if (j.s >= j.end || *j.s != '{')
		return intake_p_json;
	j.s++;
	intake_json_ws(&j);
	if (j.s < j.end && *j.s == '}')
		j.s++;
	else
		for (;;) {
			intake_json_ws(&j);
			if (j.s >= j.end || *j.s != '"')
				return intake_p_json;
			keylong = 0;
			if (intake_json_string(&j, key, sizeof(key), &keylen,
			    &keylong, &dummy) != 0)
				return j.problem;
			intake_json_ws(&j);
			if (j.s >= j.end || *j.s++ != ':')
				return intake_p_json;
			intake_json_ws(&j);
			if (!keylong && keylen == namelen &&
			    memcmp(key, name, namelen) == 0) {
				/* Two members with our name: which one is
				 * the address?  Refuse to guess. */
				if (found)
					return intake_p_dupfield;
				found = 1;
				if (j.s < j.end && *j.s == '"') {
					if (intake_json_string(&j, out, outmax,
					    outlen, &toolong, &nul) != 0)
						return j.problem;
				} else {
					if (intake_json_value(&j, 1) != 0)
						return j.problem;
					found = 2;
				}
			} else if (intake_json_value(&j, 1) != 0)
				return j.problem;
			intake_json_ws(&j);
			if (j.s >= j.end)
				return intake_p_json;
			if (*j.s == '}') {
				j.s++;
				break;
			}
			if (*j.s++ != ',')
				return intake_p_json;
		}
	intake_json_ws(&j);
	if (j.s != j.end)
		return intake_p_json;
	if (!found)
		return intake_p_nofield;
	if (found == 2)
		return intake_p_notstr;
	if (nul)
		return intake_p_nul;
	if (toolong)
		return intake_p_long;
	return NULL;
}

/* A complete JSONL line is in in->text: hand out its member. */
static void
intake_jsonl_fill(struct intake *in, struct intake_row *row)
{
	const char *problem;
	size_t n;

	in->text[in->textlen] = '\0';
	n = 0;
	if (in->toolong)
		problem = intake_p_line;
	else if (in->nul)
		problem = intake_p_nul;		/* a raw NUL: not JSON at all */
	else
		problem = intake_json_field(in->text, in->textlen,
		    in->field_name, in->field, INTAKE_FIELD_MAX + 1, &n);
	if (problem == NULL || (problem == intake_p_nul && !in->nul) ||
	    problem == intake_p_long) {
		row->text = in->field;
		row->len = n;
	} else {
		/* Show the raw line: it is what the user has to fix. */
		n = in->textlen < INTAKE_FIELD_MAX ? in->textlen :
		    INTAKE_FIELD_MAX;
		memcpy(in->field, in->text, n);
		in->field[n] = '\0';
		row->text = in->field;
		row->len = n;
	}
	row->line = in->row_line;
	row->problem = problem;
	row->warning = NULL;
	intake_row_reset(in);
}

/* ---- opening and detection ---- */

static void
intake_hdr_field(void *s, size_t len, void *data)
{
	struct intake_hdr *h = data;
	const char *b = s;

	if (h->row_done || h->n >= INTAKE_HDR_MAX)
		return;
	while (len > 0 && (*b == ' ' || *b == '\t'))
		b++, len--;
	while (len > 0 && (b[len - 1] == ' ' || b[len - 1] == '\t'))
		len--;
	h->names[h->n] = strndup(b, len < INTAKE_HDR_NAME ? len :
	    INTAKE_HDR_NAME);
	if (h->names[h->n] != NULL)
		h->n++;
}

static void
intake_hdr_row(int c, void *data)
{
	((struct intake_hdr *)data)->row_done = 1;
}

static void
intake_hdr_free(struct intake_hdr *h)
{
	while (h->n > 0)
		free(h->names[--h->n]);
	h->row_done = 0;
}

static void
intake_hdr_parse(const unsigned char *line, size_t len, unsigned char delim,
    struct intake_hdr *h)
{
	struct csv_parser p;

	intake_hdr_free(h);
	if (csv_init(&p, 0) != 0)
		return;
	csv_set_delim(&p, delim);
	csv_set_realloc_func(&p, intake_csv_realloc);
	csv_parse(&p, line, len, intake_hdr_field, intake_hdr_row, h);
	csv_fini(&p, intake_hdr_field, intake_hdr_row, h);
	csv_free(&p);
}

static int
intake_hdr_find(const struct intake_hdr *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->names[i], name) == 0)
			return (int)i;
	return -1;
}

static void
intake_err_columns(const struct intake *in, const struct intake_hdr *h,
    const char *name, char *err, size_t errlen)
{
	size_t i, off;
	int w;

	w = snprintf(err, errlen, "%s: no column \"%s\" in the header; "
	    "columns found:", in->path, name);
	off = w > 0 ? (size_t)w : 0;
	for (i = 0; i < h->n && off < errlen; i++) {
		w = snprintf(err + off, errlen - off, "%s \"%s\"",
		    i > 0 ? "," : "", h->names[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (off < errlen)
		snprintf(err + off, errlen - off,
		    " (use --column NAME or a 1-based number)");
}

/* "3" → 3; a name (anything not all digits) → 0; "0" or huge → -1. */
static unsigned long
intake_column_number(const char *s)
{
	unsigned long v;

	if (s[strspn(s, "0123456789")] != '\0')
		return 0;
	errno = 0;
	v = strtoul(s, NULL, 10);
	if (errno != 0 || v == 0 || v > 1000000)
		return (unsigned long)-1;
	return v;
}

static int
intake_detect(struct intake *in, const struct intake_opts *opts,
    const char *column, unsigned long colnum, char *err, size_t errlen)
{
	static const unsigned char all_delims[] = { ',', ';', '\t' };
	static const unsigned char tab_delim[] = { '\t' };
	const int tsv = opts->format == INTAKE_TSV;
	const int csvish = opts->format == INTAKE_CSV || tsv;
	const unsigned char *delims = tsv ? tab_delim : all_delims;
	const size_t ndelims = tsv ? sizeof(tab_delim) : sizeof(all_delims);
	struct intake_hdr h = { 0 };
	const unsigned char *line = in->buf + in->pos, *nl, *p;
	size_t len = in->end - in->pos, i, best = 0, cnt, bestcnt = 0;
	int idx, anydelim = 0;

	for (p = line; p < line + len && (*p == ' ' || *p == '\t' ||
	    *p == '\r' || *p == '\n'); p++)
		;
	if (opts->format == INTAKE_JSONL ||
	    (opts->format == INTAKE_AUTO && p < line + len && *p == '{')) {
		in->fmt = INTAKE_JSONL;
		return 0;
	}

	/* The first line ends at LF, CRLF or a lone CR (an old Mac export). */
	if ((nl = memchr(line, '\n', len)) != NULL)
		len = (size_t)(nl - line);
	if ((nl = memchr(line, '\r', len)) != NULL)
		len = (size_t)(nl - line);
	for (i = 0; i < ndelims; i++) {
		cnt = 0;
		for (p = line; p < line + len; p++)
			cnt += *p == delims[i];
		if (cnt > bestcnt) {
			bestcnt = cnt;
			best = i;
		}
	}
	anydelim = bestcnt > 0;

	if (opts->format == INTAKE_TEXT || (in->end == in->pos && in->eof)) {
		in->fmt = csvish ? INTAKE_CSV : INTAKE_TEXT;
		in->delim = tsv ? '\t' : ',';
		return 0;
	}

	if (colnum > 0) {
		if (!anydelim && !csvish) {
			in->fmt = INTAKE_TEXT;
			return 0;
		}
		in->fmt = INTAKE_CSV;
		in->delim = delims[best];
		in->col = colnum - 1;
		intake_hdr_parse(line, len, in->delim, &h);
		/* A header (no address anywhere on the line) too narrow for
		 * the column: every row would be "missing column", so the
		 * input as a whole is unusable, as with an unknown name. */
		if (in->col >= h.n && h.n < INTAKE_HDR_MAX &&
		    memchr(line, '@', len) == NULL) {
			intake_err_columns(in, &h, column, err, errlen);
			intake_hdr_free(&h);
			return -1;
		}
		/* A header has no address anywhere: a first line with an
		 * address in another column is data (never drop a row). */
		in->skip_header = in->col < h.n && memchr(line, '@', len) == NULL;
		intake_hdr_free(&h);
		return 0;
	}

	for (i = 0; i < ndelims; i++) {
		intake_hdr_parse(line, len, delims[i], &h);
		if ((idx = intake_hdr_find(&h, column)) >= 0) {
			in->fmt = INTAKE_CSV;
			in->delim = delims[i];
			in->col = (size_t)idx;
			in->skip_header = 1;
			intake_hdr_free(&h);
			return 0;
		}
	}
	if (csvish ||
	    (anydelim && memchr(line, '@', len) == NULL)) {
		intake_hdr_parse(line, len, delims[best], &h);
		intake_err_columns(in, &h, column, err, errlen);
		intake_hdr_free(&h);
		return -1;
	}
	intake_hdr_free(&h);
	in->fmt = INTAKE_TEXT;
	return 0;
}

/*
 * Is this JSONL at all?  Judge the first INTAKE_SNIFF_LINES non-blank
 * lines that the first read holds complete (see the header comment): 0 to
 * go on, -1 + err when every one of them fails.
 */
static int
intake_jsonl_sniff(struct intake *in, char *err, size_t errlen)
{
	const unsigned char *p, *nl, *end;
	const char *why, *first_why = NULL;
	size_t n = 0, notjson = 0, len, outlen, lf;
	uint64_t line = in->line, first = 0;

	for (;;) {
		lf = 0;
		for (p = in->buf + in->pos; p < in->buf + in->end &&
		    (nl = memchr(p, '\n', (size_t)(in->buf + in->end - p))) != NULL;
		    p = nl + 1)
			lf++;
		if (in->eof || in->end == in->bufsz || lf >= INTAKE_SNIFF_LINES)
			break;
		if (intake_fill(in, err, errlen) != 0)
			return -1;
	}
	end = in->buf + in->end;
	for (p = in->buf + in->pos; p < end && n < INTAKE_SNIFF_LINES;
	    p = nl != NULL ? nl + 1 : end, line++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL && !in->eof)
			break;		/* a line cut by the buffer: not judged */
		len = (size_t)((nl != NULL ? nl : end) - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (intake_blank(p, len))
			continue;
		n++;
		if (memchr(p, '\0', len) != NULL)
			why = intake_p_json;
		else
			why = intake_json_field((const char *)p, len,
			    in->field_name, in->field, INTAKE_FIELD_MAX + 1,
			    &outlen);
		if (why != intake_p_json && why != intake_p_nofield)
			return 0;	/* one row that looks right is enough */
		notjson += why == intake_p_json;
		if (first_why == NULL) {
			first_why = why;
			first = line;
		}
	}
	if (n == 0)
		return 0;
	if (notjson == n)
		snprintf(err, errlen, "%s: input does not look like JSONL: line "
		    "%llu is not a JSON object, nor is any of the first %zu "
		    "lines (use --input-format text, csv or tsv)", in->path,
		    (unsigned long long)first, n);
	else
		snprintf(err, errlen, "%s: no member \"%s\" in JSONL: line %llu: "
		    "%s, and none of the first %zu lines has it (use --field "
		    "NAME)", in->path, in->field_name, (unsigned long long)first,
		    first_why, n);
	return -1;
}

/*
 * The encoding of a UTF-16/32 input, or NULL for anything else (see the
 * header comment); *bom = 1 when a byte order mark said so.
 */
static const char *
intake_wide(const unsigned char *b, size_t n, int *bom)
{
	size_t pairs, zeven = 0, zodd = 0;

	*bom = 1;
	if (n >= 4 && memcmp(b, "\xff\xfe\0\0", 4) == 0)
		return "UTF-32LE";
	if (n >= 4 && memcmp(b, "\0\0\xfe\xff", 4) == 0)
		return "UTF-32BE";
	if (n >= 2 && memcmp(b, "\xff\xfe", 2) == 0)
		return "UTF-16LE";
	if (n >= 2 && memcmp(b, "\xfe\xff", 2) == 0)
		return "UTF-16BE";
	*bom = 0;
	if (n > INTAKE_SNIFF_BYTES)
		n = INTAKE_SNIFF_BYTES;
	if ((pairs = n / 2) < 2)
		return NULL;
	for (size_t i = 0; i < pairs; i++) {
		zeven += b[2 * i] == 0;
		zodd += b[2 * i + 1] == 0;
	}
	if (zodd * 2 >= pairs && zeven * 16 <= pairs)
		return "UTF-16LE";
	if (zeven * 2 >= pairs && zodd * 16 <= pairs)
		return "UTF-16BE";
	return NULL;
}

/* The refusal of a UTF-16/32 input, with the command that converts it. */
static void
intake_err_wide(const struct intake *in, const char *enc, int bom, char *err,
    size_t errlen)
{
	char from[16], cmd[PATH_MAX + 96];

	/* With a BOM iconv finds the byte order itself (and drops the BOM);
	 * without one, glibc's iconv would take "UTF-16" as big-endian. */
	snprintf(from, sizeof(from), "%.*s", bom ? 6 : 8, enc);
	if (strcmp(in->path, "<stdin>") == 0)
		snprintf(cmd, sizeof(cmd), "%siconv -f %s -t UTF-8 | mxsift ... -",
		    gzdirect(in->gz) ? "" : "zcat | ", from);
	else if (!gzdirect(in->gz))
		snprintf(cmd, sizeof(cmd), "zcat %s | iconv -f %s -t UTF-8 "
		    ">list-utf8.txt", in->path, from);
	else
		snprintf(cmd, sizeof(cmd), "iconv -f %s -t UTF-8 %s >list-utf8.txt",
		    from, in->path);
	snprintf(err, errlen, "%s: the input is %s (%s), not UTF-8: convert it "
	    "first, e.g. %s", in->path, enc, !bom ? "a NUL in every other byte" :
	    strcmp(enc, "UTF-16LE") == 0 ? "a byte order mark says so, as in "
	    "Excel's \"Unicode text\" export" : "a byte order mark says so", cmd);
}

int
intake_format_parse(const char *name)
{
	static const struct {
		const char *name;
		enum intake_format f;
	} names[] = {
		{ "auto", INTAKE_AUTO }, { "text", INTAKE_TEXT },
		{ "txt", INTAKE_TEXT }, { "csv", INTAKE_CSV },
		{ "tsv", INTAKE_TSV }, { "jsonl", INTAKE_JSONL },
		{ "ndjson", INTAKE_JSONL },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return (int)names[i].f;
	return -1;
}

struct intake *
intake_open(const char *path, const struct intake_opts *opts, char *err,
    size_t errlen)
{
	static const struct intake_opts defaults = { INTAKE_AUTO, NULL, NULL };
	struct intake *in;
	const char *column, *field;
	unsigned long colnum;
	int fd;

	if (opts == NULL)
		opts = &defaults;
	if ((opts->column != NULL && *opts->column == '\0') ||
	    (opts->field != NULL && *opts->field == '\0')) {
		snprintf(err, errlen, "empty %s name", opts->field != NULL &&
		    *opts->field == '\0' ? "field" : "column");
		return NULL;
	}
	column = opts->column != NULL ? opts->column : "email";
	field = opts->field != NULL ? opts->field : "email";
	colnum = intake_column_number(column);
	if (colnum == (unsigned long)-1) {
		snprintf(err, errlen, "bad column number \"%s\" (columns are "
		    "numbered from 1)", column);
		return NULL;
	}

	if ((in = calloc(1, sizeof(*in))) == NULL ||
	    (in->path = strdup(strcmp(path, "-") == 0 ? "<stdin>" : path)) ==
	    NULL || (in->field_name = strdup(field)) == NULL ||
	    (in->buf = malloc(INTAKE_CHUNK)) == NULL) {
		snprintf(err, errlen, "out of memory");
		intake_close(in);
		return NULL;
	}
	in->bufsz = INTAKE_CHUNK;
	in->line = 1;
	in->pending_start = 1;
	/* gzclose() closes the descriptor: stdin gets a duplicate. */
	if (strcmp(path, "-") == 0)
		fd = dup(STDIN_FILENO);
	else
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", in->path, strerror(errno));
		intake_close(in);
		return NULL;
	}
	if ((in->gz = gzdopen(fd, "rb")) == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		intake_close(in);
		return NULL;
	}
	gzbuffer(in->gz, INTAKE_CHUNK);
	{
		struct stat st;

		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			in->size = (uint64_t)st.st_size;
	}

	/* Peek at the first line (up to one buffer) for detection; when it
	 * holds a NUL, at INTAKE_SNIFF_BYTES for the UTF-16 check. */
	while (!in->eof && in->end < in->bufsz &&
	    ((memchr(in->buf, '\n', in->end) == NULL &&
	    memchr(in->buf, '\r', in->end) == NULL) ||
	    (in->end < INTAKE_SNIFF_BYTES && memchr(in->buf, '\0', in->end) != NULL)))
		if (intake_fill(in, err, errlen) != 0) {
			intake_close(in);
			return NULL;
		}
	{
		const char *enc;
		int bom;

		if ((enc = intake_wide(in->buf, in->end, &bom)) != NULL) {
			intake_err_wide(in, enc, bom, err, errlen);
			intake_close(in);
			return NULL;
		}
	}
	if (in->end >= 3 && memcmp(in->buf, "\xef\xbb\xbf", 3) == 0)
		in->pos = 3;

	if (intake_detect(in, opts, column, colnum, err, errlen) != 0) {
		intake_close(in);
		return NULL;
	}
	/* A JSONL line holds more than the address: give it more room. */
	in->textmax = in->fmt == INTAKE_JSONL ? INTAKE_JSON_LINE_MAX :
	    INTAKE_FIELD_MAX;
	if ((in->text = malloc(in->textmax + 1)) == NULL ||
	    (in->fmt == INTAKE_JSONL &&
	    (in->field = malloc(INTAKE_FIELD_MAX + 1)) == NULL) ||
	    (in->fmt == INTAKE_CSV && intake_csv_init(in, CSV_QUOTE) != 0)) {
		snprintf(err, errlen, "out of memory");
		intake_close(in);
		return NULL;
	}
	if (in->fmt == INTAKE_JSONL && intake_jsonl_sniff(in, err, errlen) != 0) {
		intake_close(in);
		return NULL;
	}
	return in;
}

int
intake_next(struct intake *in, struct intake_row *row, char *err,
    size_t errlen)
{
	if (in->fmt == INTAKE_CSV)
		return intake_next_csv(in, row, err, errlen);
	return intake_next_text(in, row, err, errlen);
}

void
intake_progress(const struct intake *in, uint64_t *done, uint64_t *size)
{
	z_off_t off = gzoffset(in->gz);

	*done = off > 0 ? (uint64_t)off : 0;
	*size = in->size;
}

void
intake_close(struct intake *in)
{
	if (in == NULL)
		return;
	if (in->csv_ok)
		csv_free(&in->csv);
	if (in->gz != NULL)
		gzclose(in->gz);
	free(in->path);
	free(in->field_name);
	free(in->buf);
	free(in->text);
	free(in->field);
	free(in);
}
