/*
 * test_intake.c — intake (coordinator/intake.c) on real temporary files.
 *
 * Each test writes bytes (explicit lengths, so NUL and CR survive) to a temp
 * file, reads every row back and asserts line numbers, texts and problems.
 * Table-driven where the shape allows; the chunk-boundary test builds a file
 * larger than the read size so rows and CRLF pairs straddle reads.  TSV,
 * JSONL (and a table for the JSON member extractor), gzip by magic bytes
 * (file and stdin, concatenated members, truncated and corrupt streams).
 * Lone-CR line ends (text and CSV), warnings for trouble outside the
 * address column, the JSONL sniff and empty column names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "intake.h"

#define S(x) x, sizeof(x) - 1
#define MAXROWS 64

struct want_row {
	uint64_t line;
	const char *text;	/* compared with its strlen unless len set */
	const char *problem;	/* NULL = no problem */
	size_t len;		/* 0 = strlen(text) */
	const char *warning;	/* NULL = no warning */
};

struct got {
	size_t n;
	uint64_t line[MAXROWS];
	char *text[MAXROWS];
	size_t len[MAXROWS];
	const char *problem[MAXROWS];
	const char *warning[MAXROWS];
};

static char *
write_temp(const char *data, size_t len)
{
	char *path = strdup("/tmp/mxsift-test-intake-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void
got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->text[i]);
	g->n = 0;
}

/* Read all rows of path into g; returns intake_next's last result. */
static int
read_all(const char *path, const struct intake_opts *o, struct got *g)
{
	char err[512];
	struct intake *in;
	struct intake_row r;
	int rc;

	memset(g, 0, sizeof(*g));
	in = intake_open(path, o, err, sizeof(err));
	if (in == NULL)
		fail_msg("intake_open %s: %s", path, err);
	while ((rc = intake_next(in, &r, err, sizeof(err))) == 1) {
		assert_true(g->n < MAXROWS);
		assert_int_equal(strlen(r.text), r.len);
		g->line[g->n] = r.line;
		g->text[g->n] = malloc(r.len + 1);
		memcpy(g->text[g->n], r.text, r.len + 1);
		g->len[g->n] = r.len;
		g->problem[g->n] = r.problem;
		g->warning[g->n] = r.warning;
		g->n++;
	}
	intake_close(in);
	return rc;
}

static void
check_rows(const char *name, const char *data, size_t len,
    enum intake_format fmt, const char *column, const struct want_row *w,
    size_t nw)
{
	/* col names the CSV column or, for JSONL, the member */
	struct intake_opts o = { fmt, column, column };
	struct got g;
	char *path = write_temp(data, len);
	size_t i;

	assert_int_equal(read_all(path, &o, &g), 0);
	if (g.n != nw) {
		for (i = 0; i < g.n; i++)
			print_error("%s: got row %zu line %llu \"%s\" %s\n", name,
			    i, (unsigned long long)g.line[i], g.text[i],
			    g.problem[i] ? g.problem[i] : "-");
		fail_msg("%s: %zu rows, want %zu", name, g.n, nw);
	}
	for (i = 0; i < nw; i++) {
		size_t wl = w[i].len ? w[i].len : strlen(w[i].text);

		if (g.line[i] != w[i].line || g.len[i] != wl ||
		    memcmp(g.text[i], w[i].text, wl) != 0 ||
		    (g.problem[i] == NULL) != (w[i].problem == NULL) ||
		    (w[i].problem && strcmp(g.problem[i], w[i].problem) != 0) ||
		    (g.warning[i] == NULL) != (w[i].warning == NULL) ||
		    (w[i].warning && strstr(g.warning[i], w[i].warning) == NULL))
			fail_msg("%s: row %zu: got line %llu \"%s\" (%zu) %s "
			    "[%s]; want line %llu \"%s\" (%zu) %s [%s]", name, i,
			    (unsigned long long)g.line[i], g.text[i], g.len[i],
			    g.problem[i] ? g.problem[i] : "-",
			    g.warning[i] ? g.warning[i] : "-",
			    (unsigned long long)w[i].line, w[i].text, wl,
			    w[i].problem ? w[i].problem : "-",
			    w[i].warning ? w[i].warning : "-");
	}
	got_free(&g);
	unlink(path);
	free(path);
}

#define CHECK(name, data, fmt, col, ...) do {				\
	static const struct want_row w_[] = { __VA_ARGS__ };		\
	check_rows(name, S(data), fmt, col, w_,			\
	    sizeof(w_) / sizeof(w_[0]));				\
} while (0)

#define CHECK_NONE(name, data, fmt, col)				\
	check_rows(name, S(data), fmt, col, NULL, 0)

static void
test_plain_text(void **state)
{
	(void)state;
	CHECK("plain", "alice@alpha.test\nbob@beta.test\n\n \t \ncarol@alpha.test",
	    INTAKE_AUTO, NULL,
	    { 1, "alice@alpha.test", NULL, 0, NULL },
	    { 2, "bob@beta.test", NULL, 0, NULL },
	    { 5, "carol@alpha.test", NULL, 0, NULL });
	/* Text is kept as read: trimming is the address parser's job. */
	CHECK("plain-spaces", "  a@x.test  \n\n\n", INTAKE_TEXT, NULL,
	    { 1, "  a@x.test  ", NULL, 0, NULL });
	/* A CSV-looking line is one address when the format is forced. */
	CHECK("forced-text", "email,name\na@x.test,A\n", INTAKE_TEXT, NULL,
	    { 1, "email,name", NULL, 0, NULL },
	    { 2, "a@x.test,A", NULL, 0, NULL });
	/* No header, comma inside: plain text (the row gets invalid_syntax). */
	CHECK("auto-data-comma", "a@x.test,A\nb@x.test\n", INTAKE_AUTO, NULL,
	    { 1, "a@x.test,A", NULL, 0, NULL },
	    { 2, "b@x.test", NULL, 0, NULL });
}

static void
test_crlf(void **state)
{
	(void)state;
	CHECK("crlf", "a@x.test\r\nb@y.test\r\n\r\nc@z.test", INTAKE_AUTO, NULL,
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 2, "b@y.test", NULL, 0, NULL },
	    { 4, "c@z.test", NULL, 0, NULL });
	/* In text a lone CR ends a line too: no CR is ever in a row, and
	 * what followed it is a row of its own (which the parser refuses). */
	CHECK("cr-inside", "a@x.test\rRCPT TO:<x@y>\r\nb@x.test\r\r\nc@x.test\r",
	    INTAKE_TEXT, NULL,
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 2, "RCPT TO:<x@y>", NULL, 0, NULL },
	    { 3, "b@x.test", NULL, 0, NULL },
	    { 5, "c@x.test", NULL, 0, NULL });
	/* JSONL lines end at LF only: a CR is JSON white space. */
	CHECK("jsonl-cr", "{\"email\":\"a@x.test\"}\r\n{\"email\":\r\"b@x.test\"}\n",
	    INTAKE_JSONL, NULL,
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 2, "b@x.test", NULL, 0, NULL });
}

/* Old Mac / Excel exports end lines with a lone CR. */
static void
test_cr_only(void **state)
{
	static char big[3 * 70000];
	size_t off = 0;

	(void)state;
	CHECK("cr-text", "a@x.test\rb@x.test\r\r  \rc@x.test", INTAKE_AUTO, NULL,
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 2, "b@x.test", NULL, 0, NULL },
	    { 5, "c@x.test", NULL, 0, NULL });
	/* Mixed endings; a CRLF still counts as one line. */
	CHECK("cr-mixed", "a@x.test\r\nb@x.test\rc@x.test\nd@x.test\r", INTAKE_TEXT,
	    NULL,
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 2, "b@x.test", NULL, 0, NULL },
	    { 3, "c@x.test", NULL, 0, NULL },
	    { 4, "d@x.test", NULL, 0, NULL });
	/* CSV: libcsv ends a record at a lone CR; the header is found on the
	 * first line, not in the whole file. */
	CHECK("cr-csv", "name,email\rA,a@x.test\r\rB,b@x.test\r", INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 4, "b@x.test", NULL, 0, NULL });
	CHECK("cr-csv-quoted", "email,note\ra@x.test,\"x\ry\"\rb@x.test,z", INTAKE_AUTO,
	    NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 4, "b@x.test", NULL, 0, NULL });
	/* A CRLF split across two reads (CR the last byte of the first
	 * 64 KiB) counts once (text). */
	memset(big, 'a', sizeof(big));
	off = 65535 - 7;
	memcpy(big + off, "@x.test\r\nb@x.test\r", 18);
	off += 18;
	check_rows("cr-split", big, off, INTAKE_TEXT, NULL,
	    (const struct want_row[]){
		{ 1, big, NULL, 65535, NULL },
		{ 2, "b@x.test", NULL, 0, NULL } }, 2);
	CHECK("csv-crlf", "email,n\r\na@x.test,1\r\n\r\nb@x.test,2\r\n",
	    INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 4, "b@x.test", NULL, 0, NULL });
}

static void
test_bom(void **state)
{
	(void)state;
	CHECK("bom-text", "\xef\xbb\xbf" "alice@x.test\nbob@x.test\n", INTAKE_AUTO,
	    NULL,
	    { 1, "alice@x.test", NULL, 0, NULL },
	    { 2, "bob@x.test", NULL, 0, NULL });
	CHECK("bom-csv", "\xef\xbb\xbf" "Email,Name\r\na@x.test,A\r\n", INTAKE_AUTO,
	    NULL,
	    { 2, "a@x.test", NULL, 0, NULL });
	CHECK_NONE("bom-only", "\xef\xbb\xbf", INTAKE_AUTO, NULL);
}

static void
test_csv_header(void **state)
{
	(void)state;
	CHECK("csv", "name,email,age\nAlice,alice@alpha.test,30\nBob, bob@beta.test ,40\n",
	    INTAKE_AUTO, NULL,
	    { 2, "alice@alpha.test", NULL, 0, NULL },
	    { 3, "bob@beta.test", NULL, 0, NULL });
	/* One-column CSV: a first line that is just the column name. */
	CHECK("one-column", "EMAIL\na@x.test\n\nb@x.test\n", INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 4, "b@x.test", NULL, 0, NULL });
	/* Forced CSV, quoted header names, blank lines between rows. */
	CHECK("forced-csv", "\"Name\",\"E-mail\"\n\n\nA,a@x.test\n", INTAKE_CSV,
	    "e-mail",
	    { 4, "a@x.test", NULL, 0, NULL });
	/* An empty field is a row with empty text, not a skipped row. */
	CHECK("empty-field", "email,name\n,Nobody\n", INTAKE_AUTO, NULL,
	    { 2, "", NULL, 0, NULL });
}

static void
test_csv_quoted(void **state)
{
	(void)state;
	CHECK("quoted",
	    "name,email\n"
	    "\"Smith, John\",john@x.test\n"				/* 2 */
	    "\"multi\nline\nname\",m@x.test\n"			/* 3-5 */
	    "\"q\",\"\"\"a,b\"\"@x.test\"\n"			/* 6 */
	    "x,\"a@x.test\nRCPT TO:<v@y.test>\"\n"			/* 7-8 */
	    "last,last@x.test\n",					/* 9 */
	    INTAKE_AUTO, NULL,
	    { 2, "john@x.test", NULL, 0, NULL },
	    { 3, "m@x.test", NULL, 0, NULL },
	    { 6, "\"a,b\"@x.test", NULL, 0, NULL },
	    { 7, "a@x.test\nRCPT TO:<v@y.test>", NULL, 0, NULL },
	    { 9, "last@x.test", NULL, 0, NULL });
	/* CRLF inside a quoted field counts as one line. */
	CHECK("quoted-crlf",
	    "email,note\r\na@x.test,\"one\r\ntwo\r\nthree\"\r\nb@x.test,x\r\n",
	    INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 5, "b@x.test", NULL, 0, NULL });
}

static void
test_delimiters(void **state)
{
	(void)state;
	CHECK("semicolon", "Name;Email\nA, Jr.;a@x.test\n\"B;C\";\"b@x.test\"\n",
	    INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 3, "b@x.test", NULL, 0, NULL });
	CHECK("tsv", "email\tname\na@x.test\tA\n\tNo address\n", INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 3, "", NULL, 0, NULL });
	CHECK("tsv-col2", "id\tmail\n1\ta@x.test\n", INTAKE_AUTO, "MAIL",
	    { 2, "a@x.test", NULL, 0, NULL });
}

static void
test_column(void **state)
{
	(void)state;
	CHECK("by-name", "id,Work Mail,email\n1,w@x.test,e@x.test\n", INTAKE_AUTO,
	    "work mail",
	    { 2, "w@x.test", NULL, 0, NULL });
	CHECK("by-number-header", "id,mail\n1,a@x.test\n2,b@x.test\n", INTAKE_AUTO,
	    "2",
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 3, "b@x.test", NULL, 0, NULL });
	/* First row's column holds an address: no header, it is data. */
	CHECK("by-number-noheader", "1,a@x.test\n2,b@x.test\n", INTAKE_AUTO, "2",
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 2, "b@x.test", NULL, 0, NULL });
	/* The chosen column holds no address, but another field of the first
	 * line does: it is data, not a header, and must not be dropped. */
	CHECK("by-number-wrong-column", "alice@x.test,Alice\nbob@x.test,Bob\n", INTAKE_AUTO,
	    "2",
	    { 1, "Alice", NULL, 0, NULL },
	    { 2, "Bob", NULL, 0, NULL });
	CHECK("by-number-semicolon", "x;y;z\n1;2;c@x.test\n", INTAKE_AUTO, "3",
	    { 2, "c@x.test", NULL, 0, NULL });
	CHECK("number-text", "a@x.test\nb@x.test\n", INTAKE_AUTO, "1",
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 2, "b@x.test", NULL, 0, NULL });
}

static void
test_missing_column(void **state)
{
	static const struct {
		const char *data;
		enum intake_format fmt;
		const char *column;
		const char *needles[3];
	} cases[] = {
		{ "name,mail\nA,a@x.test\n", INTAKE_AUTO, NULL,
		    { "\"email\"", "\"name\"", "\"mail\"" } },
		{ "name;mail\nA;a@x.test\n", INTAKE_AUTO, "phone",
		    { "\"phone\"", "\"name\"", "\"mail\"" } },
		{ "a@x.test\n", INTAKE_CSV, NULL,
		    { "\"email\"", "\"a@x.test\"", "columns found" } },
		{ "email,name\n", INTAKE_AUTO, "0",
		    { "column number", "\"0\"", "1" } },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct intake_opts o = { cases[i].fmt, cases[i].column, NULL };
		char *path = write_temp(cases[i].data, strlen(cases[i].data));

		err[0] = '\0';
		assert_null(intake_open(path, &o, err, sizeof(err)));
		for (int j = 0; j < 3; j++)
			if (strstr(err, cases[i].needles[j]) == NULL)
				fail_msg("case %zu: \"%s\" lacks %s", i, err,
				    cases[i].needles[j]);
		unlink(path);
		free(path);
	}
	assert_null(intake_open("/nonexistent/mxsift/list.csv", NULL, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/mxsift/list.csv"));
}

static void
test_short_rows(void **state)
{
	(void)state;
	CHECK("short", "name,email\nAlice\nBob,bob@x.test\nCarol,\n", INTAKE_AUTO,
	    NULL,
	    { 2, "", "missing column", 0, NULL },
	    { 3, "bob@x.test", NULL, 0, NULL },
	    { 4, "", NULL, 0, NULL });
}

static void
test_empty(void **state)
{
	(void)state;
	CHECK_NONE("empty", "", INTAKE_AUTO, NULL);
	CHECK_NONE("empty-csv", "", INTAKE_CSV, NULL);
	CHECK_NONE("blank-lines", "\n\n  \n\r\n", INTAKE_TEXT, NULL);
	CHECK_NONE("header-only", "email,name\n", INTAKE_AUTO, NULL);
}

static void
test_broken_quote(void **state)
{
	(void)state;
	/* The rows the open quote swallowed still come out, own lines. */
	CHECK("open-quote",
	    "name,email\nA,a@x.test\n\"B,b@x.test\nC,c@x.test\nD,d@x.test",
	    INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 3, "b@x.test", "unterminated quote", 0, NULL },
	    { 4, "c@x.test", NULL, 0, NULL },
	    { 5, "d@x.test", NULL, 0, NULL });
	CHECK("open-quote-addr",
	    "email,name\r\n\"x@y.test,X\r\nz@y.test,Z\r\n", INTAKE_AUTO, NULL,
	    { 2, "x@y.test", "unterminated quote", 0, NULL },
	    { 3, "z@y.test", NULL, 0, NULL });
	CHECK("open-quote-eol", "email\na@x.test\n\"\nc@x.test\n", INTAKE_AUTO,
	    NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 3, "", "unterminated quote", 0, NULL },
	    { 4, "c@x.test", NULL, 0, NULL });
	CHECK("open-quote-eof", "email\na@x.test\n\"", INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 3, "", "unterminated quote", 0, NULL });
	/* A quote opened after an embedded-newline field. */
	CHECK("open-quote-late",
	    "note,email\n\"1\n2\",a@x.test\nn,\"b@x.test\nn,c@x.test\n",
	    INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 4, "b@x.test", "unterminated quote", 0, NULL },
	    { 5, "c@x.test", NULL, 0, NULL });
	/* Stray quotes inside unquoted fields are literal (non-strict). */
	CHECK("stray", "email,n\na\"b@x.test,1\n", INTAKE_AUTO, NULL,
	    { 2, "a\"b@x.test", NULL, 0, NULL });
}

/* A 1 MiB line is capped, flagged, and the next row is intact. */
static void
test_long_line(void **state)
{
	size_t big = 1u << 20, i;
	char *data = malloc(big + 64), *path;
	struct got g;
	struct intake_opts o = { INTAKE_AUTO, NULL, NULL };
	size_t off;

	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		off = 0;
		if (mode == 1)
			off += (size_t)sprintf(data, "email,n\n");
		memset(data + off, 'a', big);
		off += big;
		off += (size_t)sprintf(data + off, "@x.test%s\nb@x.test%s\n",
		    mode ? ",1" : "", mode ? ",2" : "");
		path = write_temp(data, off);
		assert_int_equal(read_all(path, &o, &g), 0);
		assert_int_equal(g.n, 2);
		assert_int_equal(g.line[0], 1 + mode);
		assert_int_equal(g.len[0], 65536);
		for (i = 0; i < g.len[0]; i++)
			assert_int_equal(g.text[0][i], 'a');
		assert_string_equal(g.problem[0], "field too long");
		assert_int_equal(g.line[1], 2 + mode);
		assert_string_equal(g.text[1], "b@x.test");
		assert_null(g.problem[1]);
		got_free(&g);
		unlink(path);
		free(path);
	}
	free(data);
}

static void
test_nul_bytes(void **state)
{
	(void)state;
	CHECK("nul-text", "a\0b@x.test\nc@x.test\n\0\n", INTAKE_AUTO, NULL,
	    { 1, "a\x1a" "b@x.test", "NUL byte in row", 0, NULL },
	    { 2, "c@x.test", NULL, 0, NULL },
	    { 3, "\x1a", "NUL byte in row", 0, NULL });
	/* A NUL in another column does not touch the address: a warning. */
	CHECK("nul-csv", "email,name\na@x.test,B\0b\nc\0@x.test,C\nd@x.test,D\n",
	    INTAKE_AUTO, NULL,
	    { 2, "a@x.test", NULL, 0, "NUL byte in another column" },
	    { 3, "c\x1a@x.test", "NUL byte in row", 0, NULL },
	    { 4, "d@x.test", NULL, 0, NULL });
}

/* Trouble outside the address column is a warning, not a bad address. */
static void
test_other_column(void **state)
{
	(void)state;
	/* An unterminated quote in a later field: the address was complete. */
	CHECK("quote-later", "email,name\nalice@alpha.test,\"unterminated\nbob@x.test,B\n",
	    INTAKE_AUTO, NULL,
	    { 2, "alice@alpha.test", NULL, 0, "unterminated quote" },
	    { 3, "bob@x.test", NULL, 0, NULL });
	CHECK("quote-later-eol", "email,name\nalice@alpha.test,\"\nbob@x.test,B\n",
	    INTAKE_AUTO, NULL,
	    { 2, "alice@alpha.test", NULL, 0, "unterminated quote" },
	    { 3, "bob@x.test", NULL, 0, NULL });
	/* Opened before the address column: the address is a guess. */
	CHECK("quote-before", "name,email\n\"A,a@x.test\nB,b@x.test\n", INTAKE_AUTO,
	    NULL,
	    { 2, "a@x.test", "unterminated quote", 0, NULL },
	    { 3, "b@x.test", NULL, 0, NULL });
	/* A NUL two columns away, and one in a quoted other field. */
	static const char nul[] = "id,email,note\n1,a@x.test,\"x\0y\"\n\0,b@x.test,\n";
	check_rows("nul-other", nul, sizeof(nul) - 1, INTAKE_AUTO, NULL,
	    (const struct want_row[]){
		{ 2, "a@x.test", NULL, 0, "NUL byte in another column" },
		{ 3, "b@x.test", NULL, 0, "NUL byte in another column" } }, 2);
}

/* JSONL that is not JSONL, or names no member, is unusable as a whole. */
static void
test_jsonl_sniff(void **state)
{
	static const struct {
		const char *data;
		enum intake_format fmt;
		const char *field;
		const char *needle;     /* NULL: opens */
	} cases[] = {
		{ "email,name\na@x.test,A\nb@x.test,B\n", INTAKE_JSONL, NULL,
		    "does not look like JSONL: line 1 " },
		{ "\n\nnot json\n", INTAKE_JSONL, NULL,
		    "does not look like JSONL: line 3 " },
		{ "{alice@x.test}\n{bob@x.test}\n", INTAKE_AUTO, NULL,
		    "does not look like JSONL" },
		{ "{\"mail\":\"a@x.test\"}\n{\"mail\":\"b@x.test\"}\n", INTAKE_AUTO,
		    NULL, "no member \"email\"" },
		/* one good line among bad ones: rows, each judged */
		{ "oops\n{\"email\":\"a@x.test\"}\n", INTAKE_JSONL, NULL, NULL },
		{ "{\"mail\":\"a@x.test\"}\n", INTAKE_JSONL, "mail", NULL },
		{ "", INTAKE_JSONL, NULL, NULL },
		/* empty names are refused, not taken for the default */
		{ "email\na@x.test\n", INTAKE_AUTO, "", "empty field name" },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct intake_opts o = { cases[i].fmt, NULL, cases[i].field };
		char *path = write_temp(cases[i].data, strlen(cases[i].data));
		struct intake *in;

		err[0] = '\0';
		in = intake_open(path, &o, err, sizeof(err));
		if (cases[i].needle == NULL && in == NULL)
			fail_msg("case %zu: %s", i, err);
		if (cases[i].needle != NULL && (in != NULL ||
		    strstr(err, cases[i].needle) == NULL))
			fail_msg("case %zu: opened=%d err \"%s\", want \"%s\"", i,
			    in != NULL, err, cases[i].needle);
		intake_close(in);
		unlink(path);
		free(path);
	}
	/* More than INTAKE_SNIFF_LINES bad lines before a good one: refused. */
	{
		char data[4096] = "";
		struct intake_opts o = { INTAKE_JSONL, NULL, NULL };
		char *path;

		for (int i = 0; i < INTAKE_SNIFF_LINES; i++)
			strcat(data, "x,y\n");
		strcat(data, "{\"email\":\"a@x.test\"}\n");
		path = write_temp(data, strlen(data));
		assert_null(intake_open(path, &o, err, sizeof(err)));
		unlink(path);
		free(path);
	}
	{
		struct intake_opts o = { INTAKE_AUTO, "", NULL };
		char *path = write_temp("email\n", 6);

		assert_null(intake_open(path, &o, err, sizeof(err)));
		assert_non_null(strstr(err, "empty column name"));
		unlink(path);
		free(path);
	}
}

/* Many rows crossing the 64 KiB read size: lines stay exact, CRLF pairs
 * split across reads count once, quoted newlines are followed. */
static void
test_chunk_boundaries(void **state)
{
	size_t nrows = 20000, i, off = 0, cap = nrows * 64 + 64;
	char *data = malloc(cap), *path;
	uint64_t line = 2;
	struct intake_opts o = { INTAKE_AUTO, NULL, NULL };
	char err[256], want[64];
	struct intake *in;
	struct intake_row r;

	(void)state;
	off += (size_t)sprintf(data, "email,note\r\n");
	for (i = 0; i < nrows; i++) {
		if (i % 3 == 0)
			off += (size_t)sprintf(data + off,
			    "u%zu@x.test,\"a\r\nb\"\r\n", i);
		else
			off += (size_t)sprintf(data + off, "u%zu@x.test,%zu\r\n",
			    i, i);
	}
	path = write_temp(data, off);
	in = intake_open(path, &o, err, sizeof(err));
	assert_non_null(in);
	for (i = 0; i < nrows; i++) {
		assert_int_equal(intake_next(in, &r, err, sizeof(err)), 1);
		snprintf(want, sizeof(want), "u%zu@x.test", i);
		assert_string_equal(r.text, want);
		assert_int_equal(r.line, line);
		assert_null(r.problem);
		line += i % 3 == 0 ? 2 : 1;
	}
	assert_int_equal(intake_next(in, &r, err, sizeof(err)), 0);
	intake_close(in);
	unlink(path);
	free(path);
	free(data);
}

/* "-" reads standard input. */
static void
test_stdin(void **state)
{
	static const char data[] = "email\nS@x.test\n";
	char *path = write_temp(data, sizeof(data) - 1);
	FILE *f;
	struct got g;
	int saved = dup(0);

	(void)state;
	f = freopen(path, "r", stdin);
	assert_non_null(f);
	assert_int_equal(read_all("-", NULL, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.line[0], 2);
	assert_string_equal(g.text[0], "S@x.test");
	got_free(&g);
	dup2(saved, 0);
	close(saved);
	unlink(path);
	free(path);
}

static void
test_tsv(void **state)
{
	(void)state;
	/* Forced TSV: commas and semicolons are data, TAB separates. */
	CHECK("tsv", "name\temail\nA, B\ta@x.test\n\"C\tD\"\tb@x.test\n", INTAKE_TSV,
	    NULL,
	    { 2, "a@x.test", NULL, 0, NULL },
	    { 3, "b@x.test", NULL, 0, NULL });
	CHECK("tsv-col", "x;y\tz\n1;2\tc@x.test\n", INTAKE_TSV, "2",
	    { 2, "c@x.test", NULL, 0, NULL });
	/* Auto-detected TAB header. */
	CHECK("tsv-auto", "id\tEmail\n7\td@x.test\n", INTAKE_AUTO, NULL,
	    { 2, "d@x.test", NULL, 0, NULL });
}

static void
test_jsonl(void **state)
{
	(void)state;
	CHECK("jsonl", "{\"email\":\"a@x.test\",\"n\":1}\n\n"
	    "  {\"n\":[1,{\"email\":\"no\"}],\"email\":\"b\\u0040x.test\"}\r\n"
	    "{\"name\":\"c\"}\n"
	    "{\"email\":42}\n"
	    "not json\n"
	    "{\"email\":\"e@x.test\"",
	    INTAKE_AUTO, NULL,
	    { 1, "a@x.test", NULL, 0, NULL },
	    { 3, "b@x.test", NULL, 0, NULL },
	    { 4, "{\"name\":\"c\"}", "missing field", 0, NULL },
	    { 5, "{\"email\":42}", "field not a string", 0, NULL },
	    { 6, "not json", "invalid JSON", 0, NULL },
	    { 7, "{\"email\":\"e@x.test\"", "invalid JSON", 0, NULL });
	CHECK("jsonl-field", "{\"mail\":\"a@x.test\",\"email\":\"x\"}\n", INTAKE_JSONL,
	    "mail",
	    { 1, "a@x.test", NULL, 0, NULL });
	/* A raw NUL is never JSON; an escaped one becomes SUB. */
	static const char nul[] = "{\"email\":\"a\0@x\"}\n{\"email\":\"a\\u0000b\"}\n";
	check_rows("jsonl-nul", nul, sizeof(nul) - 1, INTAKE_JSONL, NULL,
	    (const struct want_row[]){
		{ 1, "{\"email\":\"a\x1a@x\"}", "NUL byte in row", 0, NULL },
		{ 2, "a\x1a" "b", "NUL byte in row", 0, NULL } }, 2);
}

/* intake_json_field() alone: strict RFC 8259, one object per line. */
static void
test_json_field(void **state)
{
	static const struct {
		const char *json;
		const char *value;      /* expected member value when OK */
		const char *problem;
	} cases[] = {
		{ "{\"email\":\"a@b.c\"}", "a@b.c", NULL },
		{ " \t{ \"email\" : \"a@b.c\" } \r", "a@b.c", NULL },
		{ "{\"a\":1,\"email\":\"x\"}", "x", NULL },
		{ "{\"a\":-0.5e+3,\"b\":true,\"c\":null,\"d\":false,\"email\":\"x\"}", "x", NULL },
		{ "{\"a\":{\"email\":\"inner\"},\"email\":\"outer\"}", "outer", NULL },
		{ "{\"a\":[],\"b\":{},\"c\":[[[]]],\"email\":\"x\"}", "x", NULL },
		{ "{\"email\":\"\\\"q\\\"\\\\\\/\"}", "\"q\"\\/", NULL },
		{ "{\"email\":\"caf\\u00e9\"}", "caf\xc3\xa9", NULL },
		{ "{\"email\":\"\\ud83d\\ude00\"}", "\xf0\x9f\x98\x80", NULL },
		{ "{\"email\":\"caf\xc3\xa9\"}", "caf\xc3\xa9", NULL },
		{ "{\"em\\u0061il\":\"x\"}", "x", NULL },
		{ "{\"email\":\"a\\nb\"}", "a\nb", NULL },
		{ "{\"email\":\"\"}", "", NULL },
		{ "{}", NULL, "missing field" },
		{ "{\"Email\":\"x\"}", NULL, "missing field" },
		{ "{\"email\":null}", NULL, "field not a string" },
		{ "{\"email\":[\"x\"]}", NULL, "field not a string" },
		{ "{\"email\":\"x\",\"email\":\"y\"}", NULL, "duplicate field" },
		{ "", NULL, "invalid JSON" },
		{ "[\"email\"]", NULL, "invalid JSON" },
		{ "\"email\"", NULL, "invalid JSON" },
		{ "{\"email\":\"x\"} x", NULL, "invalid JSON" },
		{ "{\"email\":\"x\"}{}", NULL, "invalid JSON" },
		{ "{\"email\":\"x\",}", NULL, "invalid JSON" },
		{ "{,\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{'email':'x'}", NULL, "invalid JSON" },
		{ "{email:\"x\"}", NULL, "invalid JSON" },
		{ "{\"email\" \"x\"}", NULL, "invalid JSON" },
		{ "{\"email\":\"x\"", NULL, "invalid JSON" },
		{ "{\"email\":\"x}", NULL, "invalid JSON" },
		{ "{\"email\":\"a\tb\"}", NULL, "invalid JSON" },
		{ "{\"email\":\"\\x\"}", NULL, "invalid JSON" },
		{ "{\"email\":\"\\u12\"}", NULL, "invalid JSON" },
		{ "{\"email\":\"\\ud800\"}", NULL, "invalid JSON" },
		{ "{\"email\":\"\\udc00\"}", NULL, "invalid JSON" },
		{ "{\"a\":01,\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":1.,\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":.5,\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":+1,\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":1e,\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":tru,\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":[1,],\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":[1 2],\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"a\":{\"b\"},\"email\":\"x\"}", NULL, "invalid JSON" },
		{ "{\"email\":\"x\"]", NULL, "invalid JSON" },
	};
	char out[64], deep[400];
	size_t n, i;
	const char *p;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = intake_json_field(cases[i].json, strlen(cases[i].json), "email",
		    out, sizeof(out), &n);
		if ((p == NULL) != (cases[i].problem == NULL) ||
		    (p != NULL && strcmp(p, cases[i].problem) != 0))
			fail_msg("case %zu %s: got %s, want %s", i, cases[i].json,
			    p ? p : "ok", cases[i].problem ? cases[i].problem : "ok");
		if (p == NULL) {
			assert_string_equal(out, cases[i].value);
			assert_int_equal(n, strlen(cases[i].value));
		}
	}
	/* A value longer than the buffer: cut, and said so. */
	p = intake_json_field("{\"email\":\"0123456789\"}", 22, "email", out, 5, &n);
	assert_non_null(p);
	assert_string_equal(p, "field too long");
	assert_string_equal(out, "0123");
	/* Nesting is followed to a bound, then refused. */
	for (i = 0; i < 100; i++)
		deep[i] = '[';
	for (; i < 200; i++)
		deep[i] = ']';
	snprintf(deep + 200, sizeof(deep) - 200, "}");
	memmove(deep + 5, deep, 201);
	memcpy(deep, "{\"a\":", 5);
	p = intake_json_field(deep, strlen(deep), "email", out, sizeof(out), &n);
	assert_non_null(p);
	assert_string_equal(p, "invalid JSON");
	assert_int_equal(intake_format_parse("TSV"), INTAKE_TSV);
	assert_int_equal(intake_format_parse("jsonl"), INTAKE_JSONL);
	assert_int_equal(intake_format_parse("xml"), -1);
}

/* Write data gzip-compressed (members: how many gzip members). */
static char *
write_gz(const char *data, size_t len, int members)
{
	char *path = strdup("/tmp/mxsift-test-intake-gz-XXXXXX");
	int fd;
	size_t per = len / (size_t)members + 1, off = 0;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	for (int m = 0; m < members; m++) {
		gzFile gz = gzopen(path, m == 0 ? "wb" : "ab");
		size_t n = len - off < per ? len - off : per;

		assert_non_null(gz);
		if (n > 0)
			assert_int_equal(gzwrite(gz, data + off, (unsigned)n), (int)n);
		off += n;
		assert_int_equal(gzclose(gz), Z_OK);
	}
	return path;
}

static void
test_gzip(void **state)
{
	static const char csv[] = "\xef\xbb\xbfid,email\r\n1,a@x.test\r\n2,\"b@x.test\"\r\n";
	static const char jsonl[] = "{\"email\":\"c@x.test\"}\n{\"email\":\"d@x.test\"}\n";
	struct intake_opts o = { INTAKE_AUTO, NULL, NULL };
	struct got g;
	char err[512], *path;
	struct intake *in;
	struct intake_row r;
	FILE *f;
	int saved, rc;
	struct stat st;

	(void)state;
	/* CSV with a BOM inside gzip, two members; the name says nothing. */
	path = write_gz(csv, sizeof(csv) - 1, 2);
	assert_int_equal(read_all(path, &o, &g), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.line[0], 2);
	assert_string_equal(g.text[0], "a@x.test");
	assert_int_equal(g.line[1], 3);
	assert_string_equal(g.text[1], "b@x.test");
	got_free(&g);
	unlink(path);
	free(path);

	/* JSONL through stdin, compressed. */
	path = write_gz(jsonl, sizeof(jsonl) - 1, 1);
	saved = dup(0);
	f = freopen(path, "r", stdin);
	assert_non_null(f);
	assert_int_equal(read_all("-", &o, &g), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.text[1], "d@x.test");
	got_free(&g);
	dup2(saved, 0);
	close(saved);

	/* Truncated: the rows before the cut may come out, then an error. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 12), 0);
	in = intake_open(path, &o, err, sizeof(err));
	if (in != NULL) {
		while ((rc = intake_next(in, &r, err, sizeof(err))) == 1)
			;
		assert_int_equal(rc, -1);
		intake_close(in);
	}
	/* the file's name and what happened, not zlib's "<fd:N>" */
	assert_non_null(strstr(err, "truncated gzip input"));
	assert_non_null(strstr(err, path));
	assert_null(strstr(err, "<fd:"));
	unlink(path);
	free(path);

	/* Corrupt deflate data after a valid header. */
	path = write_temp("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff\xff\xff", 15);
	in = intake_open(path, &o, err, sizeof(err));
	if (in != NULL) {
		while ((rc = intake_next(in, &r, err, sizeof(err))) == 1)
			;
		assert_int_equal(rc, -1);
		intake_close(in);
	}
	assert_non_null(strstr(err, "gzip"));
	unlink(path);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_text),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_cr_only),
		cmocka_unit_test(test_other_column),
		cmocka_unit_test(test_jsonl_sniff),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_csv_header),
		cmocka_unit_test(test_csv_quoted),
		cmocka_unit_test(test_delimiters),
		cmocka_unit_test(test_column),
		cmocka_unit_test(test_missing_column),
		cmocka_unit_test(test_short_rows),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_broken_quote),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_chunk_boundaries),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_tsv),
		cmocka_unit_test(test_jsonl),
		cmocka_unit_test(test_json_field),
		cmocka_unit_test(test_gzip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
