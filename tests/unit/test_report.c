/*
 * test_report.c — coordinator/report.c: the HTML report's numbers, its
 * self-containment and its escaping.
 *
 * Verdicts are built in memory (no DNS, no SMTP) and the HTML written to a
 * memory stream; assertions look for the exact elements a reader (and the
 * Chromium test, tests/integration/test_report.sh) relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "report.h"

static char *
html_of(const struct report *r, const char *title, const struct report_fact *facts, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(report_write_html(r, title, facts, n, f), 0);
	fclose(f);
	return buf;
}

static void
add(struct report *r, enum verdict_reason re, int code, const char *enh, const char *host,
    int64_t t, int times)
{
	struct verdict v;

	for (int i = 0; i < times; i++) {
		verdict_init(&v, re);
		v.smtp_code = code;
		snprintf(v.enhanced, sizeof(v.enhanced), "%s", enh);
		snprintf(v.mx_host, sizeof(v.mx_host), "%s", host);
		v.checked_at = t;
		assert_int_equal(report_add(r, &v), 0);
	}
}

static void
assert_has(const char *html, const char *needle)
{
	if (strstr(html, needle) == NULL)
		fail_msg("missing: %s", needle);
}

static void
assert_lacks(const char *html, const char *needle)
{
	if (strstr(html, needle) != NULL)
		fail_msg("must not contain: %s", needle);
}

static void
test_counts(void **state)
{
	static const char *const want[] = {
		"<span id=\"total\">13</span>",
		"id=\"status-deliverable\">5<",
		"id=\"status-undeliverable\">4<",
		"id=\"status-risky\">1<",
		"id=\"status-unknown\">3<",
		"id=\"reason-accepted\">5<",
		"id=\"reason-mailbox_not_found\">3<",
		"id=\"reason-invalid_syntax\">1<",
		"id=\"reason-greylisted\">2<",
		"id=\"reason-connection_failed\">1<",
		"id=\"reason-accepted-risky\">1<",
		/* per MX domain: registrable domain of the host, split by status */
		"<td>example.com</td><td class=\"n\">9</td><td class=\"n\">5</td>"
		"<td class=\"n\">3</td><td class=\"n\">0</td><td class=\"n\">1</td>",
		"<td>(no SMTP session)</td><td class=\"n\">2</td>",
		">250 2.1.5</text>", ">550 5.1.1</text>", ">no SMTP reply</text>",
		">5 (38.5%)</text>",
		"<dt>rows read</dt><dd>20</dd>",
		"<title>Job &lt;nightly&gt;</title>",
		"<footer id=\"end\">",
	};
	struct report *r = report_new();
	struct report_fact facts[] = { { "rows read", "20" } };
	struct verdict v;
	char *h;

	assert_non_null(r);
	add(r, VR_ACCEPTED, 250, "2.1.5", "mx1.example.com", 1700000000, 3);
	add(r, VR_ACCEPTED, 250, "2.1.5", "mx2.example.com", 1700000001, 2);
	add(r, VR_MAILBOX_NOT_FOUND, 550, "5.1.1", "mx1.example.com", 1700000002, 3);
	add(r, VR_GREYLISTED, 450, "4.7.1", "mx.other.org", 1700000003, 1);
	add(r, VR_GREYLISTED, 451, "", "mx1.example.com", 1700000003, 1);
	add(r, VR_INVALID_SYNTAX, 0, "", "", 1700000000, 1);
	add(r, VR_CONNECTION_FAILED, 0, "", "", 1700000004, 1);
	verdict_init(&v, VR_ACCEPTED);
	v.status = VS_RISKY;
	v.smtp_code = 250;
	snprintf(v.mx_host, sizeof(v.mx_host), "mx.other.org");
	assert_int_equal(report_add(r, &v), 0);
	assert_int_equal(report_count(r), 13);
	h = html_of(r, "Job <nightly>", facts, 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_has(h, want[i]);
	free(h);
	report_free(r);
}

/* One file, nothing fetched, nothing executed, whatever the data says. */
static void
test_self_contained_and_escaped(void **state)
{
	static const char *const never[] = {
		"<script", "http://", "https://", "src=", "href=", "url(", "@import", "<iframe",
	};
	struct report *r = report_new();
	char *h;

	add(r, VR_ACCEPTED, 250, "2.1.5", "<script>alert(1)</script>.example.com", 1700000000, 1);
	add(r, VR_ACCEPTED, 250, "2.1.5", "x\"onload=\"alert(1)", 1700000000, 1);
	h = html_of(r, "<script>alert('t')</script>", NULL, 0);
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		assert_lacks(h, never[i]);
	assert_has(h, "&lt;script&gt;");
	assert_lacks(h, "\"onload");
	assert_has(h, "<!DOCTYPE html>");
	assert_has(h, "Content-Security-Policy");
	free(h);
	report_free(r);
}

static void
test_empty(void **state)
{
	struct report *r = report_new();
	char *h = html_of(r, "empty", NULL, 0);

	assert_has(h, "<span id=\"total\">0</span>");
	assert_has(h, "id=\"status-unknown\">0<");
	assert_has(h, "No verdict carries a time.");
	assert_has(h, "<footer id=\"end\">");
	free(h);
	report_free(r);
}

/* Many MX domains: the top 30 are listed, the rest summed in one row. */
static void
test_many_domains(void **state)
{
	struct report *r = report_new();
	char host[64], *h;

	for (int i = 0; i < 40; i++) {
		snprintf(host, sizeof(host), "mx.d%02d.example", i);
		/* d00 gets 41 verdicts, d39 gets 2: a strict order */
		add(r, VR_ACCEPTED, 250, "", host, 1700000000, 41 - i);
	}
	h = html_of(r, "many", NULL, 0);
	assert_has(h, "40 MX domains");
	assert_has(h, "<td>d00.example</td><td class=\"n\">41</td>");
	assert_has(h, "<td>d29.example</td><td class=\"n\">12</td>");
	assert_lacks(h, "<td>d30.example</td>");
	/* d30..d39: 11+10+...+2 = 65 */
	assert_has(h, "<td>10 other MX domains</td><td class=\"n\">65</td>");
	free(h);
	report_free(r);
}

/* The throughput chart's bucket width follows the span of checked_at. */
static void
test_time_buckets(void **state)
{
	static const struct {
		int64_t span;
		const char *want;
	} cases[] = {
		{ 0, "Verdicts per 1 s (UTC)" },
		{ 59, "Verdicts per 1 s (UTC)" },
		{ 60, "Verdicts per 2 s (UTC)" },
		{ 3540, "Verdicts per 60 s (UTC)" },   /* 60 buckets of a minute */
		{ 3600, "Verdicts per 120 s (UTC)" },  /* 61 would be too many */
		{ 86400, "Verdicts per 1800 s (UTC)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct report *r = report_new();
		char *h;

		add(r, VR_ACCEPTED, 250, "", "mx.a.example", 1700000000, 1);
		add(r, VR_ACCEPTED, 250, "", "mx.a.example", 1700000000 + cases[i].span, 1);
		h = html_of(r, "t", NULL, 0);
		if (strstr(h, cases[i].want) == NULL)
			fail_msg("span %lld: want '%s'", (long long)cases[i].span, cases[i].want);
		free(h);
		report_free(r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_self_contained_and_escaped),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_many_domains),
		cmocka_unit_test(test_time_buckets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
