/*
 * test_dns_psl.c — dns_mx_domain() (libpsl registrable domain of an MX
 * host) and dns_new()'s server string parsing.  No network: dns_new() only
 * builds a c-ares channel, it sends nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "dns.h"

static const struct {
	const char *host;
	const char *want;
} mx_domain_cases[] = {
	/* .test is not in the PSL: the default "*" rule makes it the suffix */
	{ "mx.hosting.test", "hosting.test" },
	{ "mx1.alpha.test", "alpha.test" },
	{ "mx.beta.test", "beta.test" },
	{ "a.b.c.hosting.test", "hosting.test" },
	{ "aspmx.l.google.com", "google.com" },
	{ "alt1.aspmx.l.google.com", "google.com" },
	{ "mx1.mail.example.co.uk", "example.co.uk" },
	{ "mx.example.blogspot.com", "example.blogspot.com" },  /* private section */
	{ "mx.b.xn--p1ai", "b.xn--p1ai" },                      /* A-label TLD (.рф) */
	/* normalisation: case and the trailing dot */
	{ "MX.Google.COM", "google.com" },
	{ "mx.hosting.test.", "hosting.test" },
	/* no registrable domain: the host itself */
	{ "com", "com" },
	{ "co.uk", "co.uk" },
	{ "localhost", "localhost" },
	/* addresses are not cut by the PSL (1.2.3.4 would become 3.4) */
	{ "192.0.2.1", "192.0.2.1" },
	{ "2001:db8::1", "2001:db8::1" },
};

static void
test_mx_domain_table(void **state)
{
	char out[256];

	for (size_t i = 0; i < sizeof(mx_domain_cases) / sizeof(mx_domain_cases[0]); i++) {
		memset(out, 'x', sizeof(out));
		dns_mx_domain(mx_domain_cases[i].host, out, sizeof(out));
		if (strcmp(out, mx_domain_cases[i].want) != 0)
			fail_msg("dns_mx_domain(\"%s\") = \"%s\", want \"%s\"",
			    mx_domain_cases[i].host, out, mx_domain_cases[i].want);
	}
}

static void
test_mx_domain_truncates(void **state)
{
	char out[6];

	memset(out, 'x', sizeof(out));
	dns_mx_domain("mx.hosting.test", out, sizeof(out));
	assert_string_equal(out, "hosti");
}

static const struct {
	const char *server;
	int ok;
} server_cases[] = {
	{ "127.0.0.1:5353", 1 },
	{ "127.0.0.1", 1 },
	{ "[::1]:53", 1 },
	{ "[::1]", 1 },
	{ "::1", 1 },
	{ "127.0.0.1:53,[::1]:5353", 1 },
	{ NULL, 1 },                 /* the system's resolv.conf */
	{ "", 0 },
	{ "127.0.0.1:", 0 },
	{ "127.0.0.1:0", 0 },
	{ "127.0.0.1:65536", 0 },
	{ "127.0.0.1:99999", 0 },
	{ "127.0.0.1:53x", 0 },
	{ "[::1]53", 0 },
	{ "[::1:53", 0 },
	{ "localhost:53", 0 },       /* an address, not a name: no DNS to find DNS */
	{ "127.0.0.1:53,", 0 },
	{ "300.1.1.1", 0 },
};

static void
test_server_parse_table(void **state)
{
	struct event_base *base = event_base_new();
	char err[256];

	assert_non_null(base);
	for (size_t i = 0; i < sizeof(server_cases) / sizeof(server_cases[0]); i++) {
		struct dns *d;

		err[0] = '\0';
		d = dns_new(base, server_cases[i].server, err, sizeof(err));
		if ((d != NULL) != server_cases[i].ok)
			fail_msg("dns_new(\"%s\"): %s, want %s (%s)",
			    server_cases[i].server ? server_cases[i].server : "NULL",
			    d ? "accepted" : "rejected",
			    server_cases[i].ok ? "accepted" : "rejected", err);
		if (d == NULL)
			assert_true(err[0] != '\0');
		else
			assert_int_equal(dns_pending(d), 0);
		dns_free(d);
	}
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_domain_table),
		cmocka_unit_test(test_mx_domain_truncates),
		cmocka_unit_test(test_server_parse_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
