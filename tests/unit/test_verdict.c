/*
 * test_verdict.c — verdict names, reason -> status, text sanitising and the
 * CSV / JSONL row writers (exact bytes, libcsv round trip, JSON escaping of
 * arbitrary input bytes, write errors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <csv.h>

#include "verdict.h"

static const struct {
	enum verdict_reason r;
	const char *name;
	enum verdict_status s;
} reason_table[] = {
    {VR_ACCEPTED, "accepted", VS_DELIVERABLE},
    {VR_MAILBOX_NOT_FOUND, "mailbox_not_found", VS_UNDELIVERABLE},
    {VR_INVALID_SYNTAX, "invalid_syntax", VS_UNDELIVERABLE},
    {VR_NO_MAIL_SERVER, "no_mail_server", VS_UNDELIVERABLE},
    {VR_MAILBOX_DISABLED, "mailbox_disabled", VS_UNDELIVERABLE},
    {VR_CATCH_ALL, "catch_all", VS_RISKY},
    {VR_MAILBOX_FULL, "mailbox_full", VS_RISKY},
    {VR_DISPOSABLE, "disposable", VS_RISKY},
    {VR_ROLE_ACCOUNT, "role_account", VS_RISKY},
    {VR_GREYLISTED, "greylisted", VS_UNKNOWN},
    {VR_TEMP_FAILURE, "temp_failure", VS_UNKNOWN},
    {VR_TIMEOUT, "timeout", VS_UNKNOWN},
    {VR_BLOCKED, "blocked", VS_UNKNOWN},
    {VR_PROTOCOL_ERROR, "protocol_error", VS_UNKNOWN},
    {VR_TLS_FAILED, "tls_failed", VS_UNKNOWN},
    {VR_DNS_ERROR, "dns_error", VS_UNKNOWN},
    {VR_CONNECTION_FAILED, "connection_failed", VS_UNKNOWN},
    {VR_SMTPUTF8_UNSUPPORTED, "smtputf8_unsupported", VS_UNKNOWN},
    {VR_REJECTED, "rejected", VS_UNKNOWN},
};

static void
test_reason_table(void **state)
{
	size_t i;

	(void)state;
	/* the table covers every reason exactly once */
	assert_int_equal(sizeof(reason_table) / sizeof(reason_table[0]), VR__COUNT);
	for (i = 0; i < VR__COUNT; i++) {
		assert_int_equal(reason_table[i].r, i);
		assert_string_equal(verdict_reason_name(reason_table[i].r), reason_table[i].name);
		assert_int_equal(verdict_reason_parse(reason_table[i].name), reason_table[i].r);
		if (verdict_reason_status(reason_table[i].r) != reason_table[i].s)
			fail_msg("reason %s: status %s", reason_table[i].name,
			         verdict_status_name(verdict_reason_status(reason_table[i].r)));
	}
	assert_string_equal(verdict_reason_name(VR__COUNT), "invalid");
	assert_string_equal(verdict_reason_name((enum verdict_reason) - 1), "invalid");
	assert_int_equal(verdict_reason_status(VR__COUNT), VS_UNKNOWN);
	assert_int_equal(verdict_reason_parse("Accepted"), -1);
	assert_int_equal(verdict_reason_parse(""), -1);
	assert_int_equal(verdict_reason_parse("invalid"), -1);
	assert_int_equal(verdict_reason_parse(NULL), -1);
}

static void
test_status_names(void **state)
{
	static const char *const names[] = {"deliverable", "undeliverable", "risky", "unknown"};
	int i;

	(void)state;
	for (i = 0; i < VS__COUNT; i++) {
		assert_string_equal(verdict_status_name(i), names[i]);
		assert_int_equal(verdict_status_parse(names[i]), i);
	}
	assert_string_equal(verdict_status_name(VS__COUNT), "invalid");
	assert_int_equal(verdict_status_parse("deliverable "), -1);
	assert_int_equal(verdict_status_parse(NULL), -1);
}

static void
test_init(void **state)
{
	struct verdict v;
	time_t before, after;

	(void)state;
	memset(&v, 0xa5, sizeof(v));
	before = time(NULL);
	verdict_init(&v, VR_MAILBOX_FULL);
	after = time(NULL);
	assert_int_equal(v.status, VS_RISKY);
	assert_int_equal(v.reason, VR_MAILBOX_FULL);
	assert_true(v.checked_at >= before && v.checked_at <= after);
	assert_int_equal(v.smtp_code, 0);
	assert_string_equal(v.enhanced, "");
	assert_string_equal(v.text, "");
	assert_string_equal(v.mx_host, "");
	assert_string_equal(v.detail, "");
	assert_int_equal(v.tls, 0);
	assert_int_equal(v.attempts, 0);
	assert_int_equal(v.duration_ms, 0);
	assert_int_equal(v.flags, 0);
}

static const struct {
	const char *in;
	size_t len;
	const char *want;
} text_cases[] = {
    {"plain text", 0, "plain text"},
    {"a\r\nb\tc", 0, "a  b c"},
    {"x\ny", 0, "x y"},
    {"caf\xc3\xa9", 0, "caf??"},
    {"del\x7f", 0, "del "},
    {"nul\0after", 9, "nul after"},
    {"\x1b[31mred", 0, " [31mred"},
    {"", 0, ""},
};

static void
test_set_text(void **state)
{
	struct verdict v;
	char big[600];
	size_t i;

	(void)state;
	verdict_init(&v, VR_ACCEPTED);
	for (i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
		verdict_set_text(&v, text_cases[i].in,
		                 text_cases[i].len ? text_cases[i].len : strlen(text_cases[i].in));
		assert_string_equal(v.text, text_cases[i].want);
	}
	/* len, not NUL, bounds the copy */
	verdict_set_text(&v, "abcdef", 3);
	assert_string_equal(v.text, "abc");
	verdict_set_text(&v, NULL, 10);
	assert_string_equal(v.text, "");
	memset(big, 'q', sizeof(big));
	verdict_set_text(&v, big, sizeof(big));
	assert_int_equal(strlen(v.text), VERDICT_TEXT_MAX - 1);
}

/* Run a writer into a memory buffer; returns malloc'd output. */
static char *
capture(enum verdict_format f, const struct verdict_row *row, int header)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;

	fp = open_memstream(&buf, &len);
	assert_non_null(fp);
	if (header)
		assert_int_equal(verdict_write_header(fp, f), 0);
	if (row != NULL)
		assert_int_equal(verdict_write_row(fp, f, row), 0);
	fclose(fp);
	return buf;
}

static void
sample(struct verdict *v)
{
	verdict_init(v, VR_MAILBOX_NOT_FOUND);
	v->smtp_code = 550;
	strcpy(v->enhanced, "5.1.1");
	strcpy(v->mx_host, "mx1.alpha.test");
	verdict_set_text(v, "<x@alpha.test>: Recipient address rejected: \"User\" unknown", 58);
	v->tls = 1;
	v->attempts = 2;
	v->duration_ms = 1234;
	v->checked_at = 1700000000;
	v->flags = VERDICT_F_ROLE | VERDICT_F_FREE_PROVIDER;
}

static void
test_csv_exact(void **state)
{
	struct verdict v;
	struct verdict_row row = {7, "x@Alpha.test", "x@alpha.test", &v};
	char *out;

	(void)state;
	sample(&v);
	out = capture(VF_CSV, &row, 1);
	assert_string_equal(
	    out, "line,input,address,status,reason,smtp_code,enhanced_code,mx_host,detail,reply,"
	         "suggestion\n"
	         "7,\"x@Alpha.test\",\"x@alpha.test\",\"undeliverable\",\"mailbox_not_found\","
	         "550,\"5.1.1\",\"mx1.alpha.test\",\"\","
	         "\"<x@alpha.test>: Recipient address rejected: \"\"User\"\" unknown\",\"\"\n");
	free(out);

	/* no SMTP reply, no line, no input: empty fields, not 0 */
	verdict_init(&v, VR_INVALID_SYNTAX);
	strcpy(v.detail, "no @");
	row.line = 0;
	row.input = NULL;
	row.address = "";
	out = capture(VF_CSV, &row, 0);
	assert_string_equal(out, ",\"\",\"\",\"undeliverable\",\"invalid_syntax\",,\"\",\"\","
	                         "\"no @\",\"\",\"\"\n");
	free(out);
}

/* libcsv reading back what we wrote yields the same fields, whatever the
 * input bytes (commas, quotes, newlines, 8-bit). */
struct csv_back {
	char fields[16][512];
	int nf;
	int nrows;
};

static void
csv_back_field(void *s, size_t len, void *data)
{
	struct csv_back *b = data;

	assert_true(b->nf < 16 && len < 512);
	memcpy(b->fields[b->nf], s, len);
	b->fields[b->nf][len] = '\0';
	b->nf++;
}

static void
csv_back_row(int c, void *data)
{
	struct csv_back *b = data;

	(void)c;
	b->nrows++;
}

static void
test_csv_roundtrip(void **state)
{
	static const char *const inputs[] = {
	    "a,b",    "\"quoted\"", "line1\nline2", "cr\rlf", "  spaces  ", "caf\xc3\xa9,\xff\xfe",
	    "=cmd()", "\"",         ",,,",
	};
	struct verdict v;
	struct verdict_row row;
	struct csv_parser p;
	struct csv_back b;
	char *out;
	size_t i;

	(void)state;
	sample(&v);
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		row.line = 42;
		row.input = inputs[i];
		row.address = "x@alpha.test";
		row.v = &v;
		out = capture(VF_CSV, &row, 0);
		memset(&b, 0, sizeof(b));
		assert_int_equal(csv_init(&p, CSV_STRICT), 0);
		assert_int_equal(csv_parse(&p, out, strlen(out), csv_back_field, csv_back_row, &b),
		                 strlen(out));
		csv_fini(&p, csv_back_field, csv_back_row, &b);
		csv_free(&p);
		assert_int_equal(b.nrows, 1);
		assert_int_equal(b.nf, 11);
		assert_string_equal(b.fields[0], "42");
		assert_string_equal(b.fields[1], inputs[i]);
		assert_string_equal(b.fields[3], "undeliverable");
		assert_string_equal(b.fields[5], "550");
		assert_string_equal(b.fields[9], v.text);
		free(out);
	}
}

static void
test_jsonl_exact(void **state)
{
	struct verdict v;
	struct verdict_row row = {7, "x@Alpha.test", "x@alpha.test", &v};
	char *out;

	(void)state;
	sample(&v);
	out = capture(VF_JSONL, &row, 1); /* header is a no-op */
	assert_string_equal(
	    out, "{\"line\":7,\"input\":\"x@Alpha.test\",\"address\":\"x@alpha.test\","
	         "\"status\":\"undeliverable\",\"reason\":\"mailbox_not_found\","
	         "\"smtp_code\":550,\"enhanced_code\":\"5.1.1\",\"mx_host\":\"mx1.alpha.test\","
	         "\"detail\":\"\",\"reply\":\"<x@alpha.test>: Recipient address rejected: "
	         "\\\"User\\\" unknown\",\"tls\":true,\"attempts\":2,\"duration_ms\":1234,"
	         "\"checked_at\":1700000000,\"flags\":[\"role\",\"free_provider\"],"
	         "\"suggestion\":\"\"}\n");
	free(out);

	verdict_init(&v, VR_DNS_ERROR);
	v.checked_at = 5;
	v.flags =
	    VERDICT_F_DISPOSABLE | VERDICT_F_CATCH_ALL | VERDICT_F_SMTPUTF8 | VERDICT_F_IMPLICIT_MX;
	row.line = 0;
	row.input = NULL;
	row.address = NULL;
	out = capture(VF_JSONL, &row, 0);
	assert_string_equal(
	    out, "{\"line\":null,\"input\":null,\"address\":\"\",\"status\":\"unknown\","
	         "\"reason\":\"dns_error\",\"smtp_code\":null,\"enhanced_code\":\"\","
	         "\"mx_host\":\"\",\"detail\":\"\",\"reply\":\"\",\"tls\":false,\"attempts\":0,"
	         "\"duration_ms\":0,\"checked_at\":5,\"flags\":[\"disposable\",\"catch_all\","
	         "\"smtputf8\",\"implicit_mx\"],\"suggestion\":\"\"}\n");
	free(out);
}

static const struct {
	const char *in;
	const char *want; /* the JSON string literal, quotes included */
} json_cases[] = {
    {"plain", "\"plain\""},
    {"q\"b\\s/", "\"q\\\"b\\\\s/\""},
    {"\n\r\t", "\"\\n\\r\\t\""},
    {"\x01\x08\x0c\x1f\x7f", "\"\\u0001\\u0008\\u000c\\u001f\\u007f\""},
    /* valid UTF-8 passes as is: 2, 3 and 4 byte forms, U+10FFFF */
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\""},
    /* invalid: lone continuation, Latin-1, overlong, surrogate,
     * above U+10FFFF, F5+, truncated sequences */
    {"\x80", "\"\\ufffd\""},
    {"caf\xe9!", "\"caf\\ufffd!\""},
    {"\xc0\xaf", "\"\\ufffd\\ufffd\""},
    {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},
    {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},
    {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"\xf5\x80", "\"\\ufffd\\ufffd\""},
    {"\xff", "\"\\ufffd\""},
    {"\xe2\x82", "\"\\ufffd\\ufffd\""},
    {"\xe2\x82x", "\"\\ufffd\\ufffdx\""},
    {"\xf0\x9f\x98", "\"\\ufffd\\ufffd\\ufffd\""},
    {"a\xc3", "\"a\\ufffd\""},
};

static void
test_json_escaping(void **state)
{
	struct verdict v;
	struct verdict_row row = {1, NULL, "a@b.test", &v};
	char *out, *p, *q;
	size_t i;

	(void)state;
	verdict_init(&v, VR_ACCEPTED);
	for (i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]); i++) {
		row.input = json_cases[i].in;
		out = capture(VF_JSONL, &row, 0);
		p = strstr(out, "\"input\":");
		q = strstr(out, ",\"address\":");
		assert_non_null(p);
		assert_non_null(q);
		p += strlen("\"input\":");
		*q = '\0';
		if (strcmp(p, json_cases[i].want) != 0)
			fail_msg("json case %zu: got %s want %s", i, p, json_cases[i].want);
		free(out);
	}
}

/* Every byte value 1..255 in the input yields printable ASCII or valid
 * UTF-8 output, and exactly one line. */
static void
test_json_all_bytes(void **state)
{
	struct verdict v;
	struct verdict_row row = {1, NULL, "a@b.test", &v};
	char in[256];
	char *out;
	size_t i, nl = 0;

	(void)state;
	for (i = 0; i < 255; i++)
		in[i] = (char)(i + 1);
	in[255] = '\0';
	verdict_init(&v, VR_ACCEPTED);
	row.input = in;
	out = capture(VF_JSONL, &row, 0);
	for (i = 0; out[i] != '\0'; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c == '\n')
			nl++;
		else
			assert_true(c >= 0x20 && c < 0x7f); /* 0x80.. all invalid alone */
	}
	assert_int_equal(nl, 1);
	assert_int_equal(out[i - 1], '\n');
	free(out);
}

/* A caller that fills a fixed-size field without its NUL must not make the
 * writers run into the next field. */
static void
test_unterminated_fields(void **state)
{
	struct verdict v;
	struct verdict_row row = {1, "in", "a@b.test", &v};
	char want[VERDICT_HOST_MAX + 3];
	char *out;

	(void)state;
	verdict_init(&v, VR_ACCEPTED);
	memset(v.mx_host, 'A', sizeof(v.mx_host));
	memset(v.detail, 'B', sizeof(v.detail));
	v.detail[5] = '\0';
	want[0] = '"';
	memset(want + 1, 'A', VERDICT_HOST_MAX);
	memcpy(want + 1 + VERDICT_HOST_MAX, "\"", 2);
	out = capture(VF_JSONL, &row, 0);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\"detail\":\"BBBBB\""));
	free(out);
	out = capture(VF_CSV, &row, 0);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, ",\"BBBBB\","));
	free(out);
}

static void
test_write_errors(void **state)
{
	struct verdict v;
	struct verdict_row row = {1, "a@b.test", "a@b.test", &v};
	FILE *fp;

	(void)state;
	verdict_init(&v, VR_ACCEPTED);
	fp = fopen("/dev/full", "w");
	if (fp == NULL)
		skip();
	setvbuf(fp, NULL, _IONBF, 0);
	assert_int_equal(verdict_write_header(fp, VF_CSV), -1);
	clearerr(fp);
	assert_int_equal(verdict_write_row(fp, VF_CSV, &row), -1);
	clearerr(fp);
	assert_int_equal(verdict_write_row(fp, VF_JSONL, &row), -1);
	fclose(fp);
	row.v = NULL;
	assert_int_equal(verdict_write_row(stdout, VF_CSV, &row), -1);
}

/* Flags never change a non-deliverable verdict; deliverable + disposable or
 * role becomes risky (disposable wins over role). */
static void
test_apply_flags(void **state)
{
	static const struct {
		enum verdict_reason in;
		unsigned flags;
		enum verdict_reason out;
	} cases[] = {
		{ VR_ACCEPTED, 0, VR_ACCEPTED },
		{ VR_ACCEPTED, VERDICT_F_FREE_PROVIDER, VR_ACCEPTED },
		{ VR_ACCEPTED, VERDICT_F_DISPOSABLE, VR_DISPOSABLE },
		{ VR_ACCEPTED, VERDICT_F_ROLE, VR_ROLE_ACCOUNT },
		{ VR_ACCEPTED, VERDICT_F_ROLE | VERDICT_F_DISPOSABLE, VR_DISPOSABLE },
		{ VR_MAILBOX_NOT_FOUND, VERDICT_F_DISPOSABLE, VR_MAILBOX_NOT_FOUND },
		{ VR_CATCH_ALL, VERDICT_F_ROLE, VR_CATCH_ALL },
		{ VR_GREYLISTED, VERDICT_F_DISPOSABLE, VR_GREYLISTED },
		{ VR_NO_MAIL_SERVER, VERDICT_F_DISPOSABLE, VR_NO_MAIL_SERVER },
		{ VR_INVALID_SYNTAX, VERDICT_F_ROLE, VR_INVALID_SYNTAX },
	};
	struct verdict v;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		verdict_init(&v, cases[i].in);
		v.flags = VERDICT_F_SMTPUTF8;
		verdict_apply_flags(&v, cases[i].flags);
		assert_int_equal(v.reason, cases[i].out);
		assert_int_equal(v.status, verdict_reason_status(cases[i].out));
		assert_int_equal(v.flags, VERDICT_F_SMTPUTF8 | cases[i].flags);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_apply_flags),
	    cmocka_unit_test(test_reason_table),   cmocka_unit_test(test_status_names),
	    cmocka_unit_test(test_init),           cmocka_unit_test(test_set_text),
	    cmocka_unit_test(test_csv_exact),      cmocka_unit_test(test_csv_roundtrip),
	    cmocka_unit_test(test_jsonl_exact),    cmocka_unit_test(test_json_escaping),
	    cmocka_unit_test(test_json_all_bytes), cmocka_unit_test(test_unterminated_fields),
	    cmocka_unit_test(test_write_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
