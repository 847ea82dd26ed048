/*
 * test_address.c — table-driven tests for address_parse() (common/address.c).
 *
 * Each case gives the input with an explicit length (so NUL bytes can be
 * embedded), the expected error, and for valid addresses the normalised
 * full address and flags.  Long inputs are built from fixed-length string
 * macros so the boundaries (64, 63, 253, 254 octets) are exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "address.h"

/* Input with its exact length (embedded NULs included). */
#define S(x) x, sizeof(x) - 1

#define A10 "aaaaaaaaaa"
#define A40 A10 A10 A10 A10
#define A47 A40 "aaaaaaa"
#define A50 A40 A10
#define A60 A40 A10 A10
#define A61 A60 "a"
#define A62 A60 "aa"
#define A63 A60 "aaa"
#define A64 A60 "aaaa"
#define A65 A64 "a"
#define A62Q "\"" A62 "\""   /* 64 octets with the quotes */
#define A63Q "\"" A63 "\""   /* 65 octets */

/* Domains of exact lengths. */
#define D189 A63 "." A63 "." A61                 /* 189 */
#define D190 A63 "." A63 "." A62                 /* 190 */
#define D253 A63 "." A63 "." A63 "." A61         /* 253 */
#define D254 A63 "." A63 "." A63 "." A62         /* 254 */

#define U8 "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc" /* 8 x ü = 16 octets */
#define U64 U8 U8 U8 U8                                                   /* 64 octets */

#define SMTPUTF8 ADDR_F_SMTPUTF8
#define IDN ADDR_F_IDN

struct addr_case {
	const char *in;
	size_t len;
	enum addr_err err;
	const char *full;	/* expected normalised address when ADDR_OK */
	unsigned flags;
};

static const struct addr_case cases[] = {
	/* ---- valid, plain ---- */
	{ S("alice@example.com"), ADDR_OK, "alice@example.com", 0 },
	{ S("a@b.co"), ADDR_OK, "a@b.co", 0 },
	{ S("alice+news@Example.COM"), ADDR_OK, "alice+news@example.com", 0 },
	{ S("Alice.Smith+tag-1@Gmail.com"), ADDR_OK, "Alice.Smith+tag-1@gmail.com", 0 },
	{ S("user+@example.com"), ADDR_OK, "user+@example.com", 0 },
	{ S("+tag@example.com"), ADDR_OK, "+tag@example.com", 0 },
	{ S("a.b.c@example.com"), ADDR_OK, "a.b.c@example.com", 0 },
	{ S("!#$%&'*+-/=?^_`{|}~@example.com"), ADDR_OK, "!#$%&'*+-/=?^_`{|}~@example.com", 0 },
	{ S("UPPER@EXAMPLE.ORG"), ADDR_OK, "UPPER@example.org", 0 },
	{ S("x@Sub.Domain.Example.Co.Uk"), ADDR_OK, "x@sub.domain.example.co.uk", 0 },
	{ S("x@ex-ample.com"), ADDR_OK, "x@ex-ample.com", 0 },
	{ S("x@ex--ample.com"), ADDR_OK, "x@ex--ample.com", 0 },
	{ S("x@123.example"), ADDR_OK, "x@123.example", 0 },
	{ S("x@example.c0m"), ADDR_OK, "x@example.c0m", 0 },
	{ S("x@1a.2b"), ADDR_OK, "x@1a.2b", 0 },
	{ S("alice@alpha.test"), ADDR_OK, "alice@alpha.test", 0 },

	/* ---- trimming ---- */
	{ S("  alice@example.com  "), ADDR_OK, "alice@example.com", 0 },
	{ S("\talice@example.com\t"), ADDR_OK, "alice@example.com", 0 },
	{ S(" \t alice@example.com \t "), ADDR_OK, "alice@example.com", 0 },

	/* ---- trailing dot ---- */
	{ S("x@example.com."), ADDR_OK, "x@example.com", 0 },
	{ S("x@EXAMPLE.COM."), ADDR_OK, "x@example.com", 0 },
	{ S("x@example.com.."), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@."), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@localhost."), ADDR_DOMAIN_NO_DOT, NULL, 0 },

	/* ---- quoted local parts ---- */
	{ S("\"john doe\"@example.com"), ADDR_OK, "\"john doe\"@example.com", 0 },
	{ S("\"john\\\"doe\"@Example.com"), ADDR_OK, "\"john\\\"doe\"@example.com", 0 },
	{ S("\"a\\\\b\"@example.com"), ADDR_OK, "\"a\\\\b\"@example.com", 0 },
	{ S("\"a..b\"@example.com"), ADDR_OK, "\"a..b\"@example.com", 0 },
	{ S("\".a.\"@example.com"), ADDR_OK, "\".a.\"@example.com", 0 },
	{ S("\"a@b\"@example.com"), ADDR_OK, "\"a@b\"@example.com", 0 },
	{ S("\"a,b:c;<>[]\"@example.com"), ADDR_OK, "\"a,b:c;<>[]\"@example.com", 0 },
	{ S("\"j\xc3\xb6rg\"@example.com"), ADDR_OK, "\"j\xc3\xb6rg\"@example.com", SMTPUTF8 },
	{ S("\"\"@example.com"), ADDR_LOCAL_EMPTY, NULL, 0 },
	{ S("\"abc@example.com"), ADDR_QUOTED_BAD, NULL, 0 },
	{ S("\"abc\"def@example.com"), ADDR_QUOTED_BAD, NULL, 0 },
	{ S("\"a\"\"b\"@example.com"), ADDR_QUOTED_BAD, NULL, 0 },
	{ S("\"abc\""), ADDR_NO_AT, NULL, 0 },
	{ S("\"a\\"), ADDR_QUOTED_BAD, NULL, 0 },
	{ S("\"a\"@b@example.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("a\"b@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("\"a\001b\"@example.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\"a\\\r\"@example.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\"a\\\x7f\"@example.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\"a\"@example.com"), ADDR_OK, "\"a\"@example.com", 0 },
	{ S("\"A B\"@EXAMPLE.com"), ADDR_OK, "\"A B\"@example.com", 0 },
	{ S("\"\xc3\xb6\"@b\xc3\xbc" "cher.example"), ADDR_OK,
	    "\"\xc3\xb6\"@xn--bcher-kva.example", SMTPUTF8 | IDN },
	{ S("\"a\xff\"@example.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S(A62Q "@example.com"), ADDR_OK, A62Q "@example.com", 0 },
	{ S(A63Q "@example.com"), ADDR_LOCAL_TOO_LONG, NULL, 0 },

	/* ---- UTF-8 local parts (RFC 6531) ---- */
	{ S("j\xc3\xb6rg@example.com"), ADDR_OK, "j\xc3\xb6rg@example.com", SMTPUTF8 },
	{ S("\xe7\x94\xa8\xe6\x88\xb7@example.com"), ADDR_OK, "\xe7\x94\xa8\xe6\x88\xb7@example.com", SMTPUTF8 },
	{ S("\xf0\x9f\x98\x80@example.com"), ADDR_OK, "\xf0\x9f\x98\x80@example.com", SMTPUTF8 },
	{ S(U64 "@example.com"), ADDR_OK, U64 "@example.com", SMTPUTF8 },
	{ S(U64 "a@example.com"), ADDR_LOCAL_TOO_LONG, NULL, 0 },
	{ S("\xc3@example.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S("\xc0\xaf@example.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S("\xed\xa0\x80@example.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S("\xf5\x80\x80\x80@example.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S("\x80@example.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S("a\xff@example.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S("a@exam\xffple.com"), ADDR_BAD_UTF8, NULL, 0 },
	{ S("a\xc2\x85@example.com"), ADDR_CONTROL_CHAR, NULL, 0 },	/* C1 NEL */
	{ S("a\xff@example.com\n"), ADDR_CONTROL_CHAR, NULL, 0 },	/* control wins */

	/* ---- IDN domains ---- */
	{ S("info@b\xc3\xbc" "cher.example"), ADDR_OK, "info@xn--bcher-kva.example", IDN },
	{ S("info@B\xc3\x9c" "CHER.Example"), ADDR_OK, "info@xn--bcher-kva.example", IDN },
	{ S("info@b\xc3\xbc" "cher.example."), ADDR_OK, "info@xn--bcher-kva.example", IDN },
	{ S("info@b\xc3\xbc" "cher.example\xe3\x80\x82"), ADDR_OK, "info@xn--bcher-kva.example", IDN },
	{ S("x@m\xc3\xbcnchen.DE"), ADDR_OK, "x@xn--mnchen-3ya.de", IDN },
	{ S("x@stra\xc3\x9f" "e.de"), ADDR_OK, "x@xn--strae-oqa.de", IDN },
	{ S("x@\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88"), ADDR_OK, "x@xn--r8jz45g.xn--zckzah", IDN },
	{ S("j\xc3\xb6rg@b\xc3\xbc" "cher.example"), ADDR_OK, "j\xc3\xb6rg@xn--bcher-kva.example", SMTPUTF8 | IDN },
	{ S("x@xn--bcher-kva.example"), ADDR_OK, "x@xn--bcher-kva.example", 0 },
	{ S("x@XN--BCHER-KVA.example"), ADDR_OK, "x@xn--bcher-kva.example", 0 },
	{ S("x@xn--zz.com"), ADDR_IDN_BAD, NULL, 0 },
	{ S("x@-b\xc3\xbc.example"), ADDR_IDN_BAD, NULL, 0 },
	{ S("x@b\xc3\xbc-.example"), ADDR_IDN_BAD, NULL, 0 },
	{ S("x@b\xc3\xbc cher.example"), ADDR_IDN_BAD, NULL, 0 },
	{ S("x@b\xc3\xbc_cher.example"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@b\xc3\xbc" "cher"), ADDR_DOMAIN_NO_DOT, NULL, 0 },

	/* ---- CR/LF/NUL/control injection ---- */
	{ S("a@b.com\r\nRCPT TO:<x@y>"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b.com\r\n"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b.com\n"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b.com\r"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\ra@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b.com \r"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a\nb@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a\0@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b.com\0"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\0a@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b\0.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b.com\x7f"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a\x1b[0m@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a\x01@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a\t@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@b\t.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\"a\r\nb\"@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\"a\\\r\"@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("\"a\tb\"@b.com"), ADDR_CONTROL_CHAR, NULL, 0 },
	{ S("a@[1.2.3.4]\r\n"), ADDR_CONTROL_CHAR, NULL, 0 },

	/* ---- empty, '@' placement ---- */
	{ S(""), ADDR_EMPTY, NULL, 0 },
	{ S("   "), ADDR_EMPTY, NULL, 0 },
	{ S("\t \t"), ADDR_EMPTY, NULL, 0 },
	{ S("@"), ADDR_LOCAL_EMPTY, NULL, 0 },
	{ S("@example.com"), ADDR_LOCAL_EMPTY, NULL, 0 },
	{ S("alice@"), ADDR_DOMAIN_EMPTY, NULL, 0 },
	{ S("alice"), ADDR_NO_AT, NULL, 0 },
	{ S("alice.example.com"), ADDR_NO_AT, NULL, 0 },
	{ S("a@@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a@b@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a@example.com@"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },	/* local checked first */

	/* ---- white space inside ---- */
	{ S("a b@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a @example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a@ example.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("a@exa mple.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("Alice <alice@example.com>"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },

	/* ---- local part characters and dots ---- */
	{ S("a(b)@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a,b@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a;b@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a:b@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a[b]@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("a\\b@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S("<a>@example.com"), ADDR_LOCAL_BAD_CHAR, NULL, 0 },
	{ S(".alice@example.com"), ADDR_LOCAL_DOTS, NULL, 0 },
	{ S("alice.@example.com"), ADDR_LOCAL_DOTS, NULL, 0 },
	{ S("al..ice@example.com"), ADDR_LOCAL_DOTS, NULL, 0 },
	{ S(".@example.com"), ADDR_LOCAL_DOTS, NULL, 0 },
	{ S("..@example.com"), ADDR_LOCAL_DOTS, NULL, 0 },

	/* ---- domain labels ---- */
	{ S("x@.example.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@example..com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@-example.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@example-.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@example.-com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@ex_ample.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@exa!mple.com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@example.com]"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@localhost"), ADDR_DOMAIN_NO_DOT, NULL, 0 },
	{ S("x@com"), ADDR_DOMAIN_NO_DOT, NULL, 0 },
	{ S("x@123"), ADDR_DOMAIN_NO_DOT, NULL, 0 },
	{ S("x@example.123"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@1.2.3.4"), ADDR_DOMAIN_BAD, NULL, 0 },

	/* ---- IP literals ---- */
	{ S("x@[127.0.0.1]"), ADDR_IP_LITERAL, NULL, 0 },
	{ S("x@[IPv6:::1]"), ADDR_IP_LITERAL, NULL, 0 },
	{ S("x@[IPv6:2001:db8::1]"), ADDR_IP_LITERAL, NULL, 0 },
	{ S("\"a b\"@[192.0.2.1]"), ADDR_IP_LITERAL, NULL, 0 },
	{ S("j\xc3\xb6rg@[192.0.2.1]"), ADDR_IP_LITERAL, NULL, 0 },
	{ S("x@[127.0.0.1"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@[]"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@[1.2.3.4]x"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@[1.2 .3.4]"), ADDR_DOMAIN_BAD, NULL, 0 },

	/* ---- length limits ---- */
	{ S(A64 "@example.com"), ADDR_OK, A64 "@example.com", 0 },
	{ S(A65 "@example.com"), ADDR_LOCAL_TOO_LONG, NULL, 0 },
	{ S("x@" A63 ".com"), ADDR_OK, "x@" A63 ".com", 0 },
	{ S("x@" A64 ".com"), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S("x@example." A63), ADDR_OK, "x@example." A63, 0 },
	{ S("x@example." A64), ADDR_DOMAIN_BAD, NULL, 0 },
	{ S(A64 "@" D189), ADDR_OK, A64 "@" D189, 0 },		/* path 254 */
	{ S(A64 "@" D189 "."), ADDR_OK, A64 "@" D189, 0 },	/* root dot not counted */
	{ S(A64 "@" D190), ADDR_PATH_TOO_LONG, NULL, 0 },	/* path 255 */
	{ S("x@" D253), ADDR_PATH_TOO_LONG, NULL, 0 },		/* domain ok, path 255 */
	{ S("x@" D254), ADDR_DOMAIN_TOO_LONG, NULL, 0 },
	{ S("x@" D254 "."), ADDR_DOMAIN_TOO_LONG, NULL, 0 },
	/* A-label form counts: U-label path 248 octets, A-label path 254. */
	{ S(A64 "@b\xc3\xbc" "cher." A63 "." A63 "." A47), ADDR_OK,
	    A64 "@xn--bcher-kva." A63 "." A63 "." A47, IDN },
	/* U-label path 251 octets, A-label path 257. */
	{ S(A64 "@b\xc3\xbc" "cher." A63 "." A63 "." A50), ADDR_PATH_TOO_LONG, NULL, 0 },
};

static void
test_address_table(void **state)
{
	struct address a;
	size_t i, failures = 0;
	enum addr_err e;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct addr_case *c = &cases[i];
		int bad = 0;

		e = address_parse(c->in, c->len, &a);
		if (e != c->err)
			bad = 1;
		else if (e == ADDR_OK &&
		    (strcmp(a.full, c->full) != 0 || a.flags != c->flags))
			bad = 1;
		if (bad) {
			print_error("case %zu (len %zu, \"%.60s\"): got %s full=\"%s\" "
			    "flags=%u, want %s full=\"%s\" flags=%u\n", i, c->len,
			    c->in, address_err_name(e), e == ADDR_OK ? a.full : "",
			    e == ADDR_OK ? a.flags : 0, address_err_name(c->err),
			    c->full ? c->full : "", c->flags);
			failures++;
		}
	}
	assert_true(sizeof(cases) / sizeof(cases[0]) >= 100);
	assert_int_equal(failures, 0);
}

/* local and domain are the parts of full; local is kept as given. */
static void
test_address_parts(void **state)
{
	struct address a;

	(void)state;
	assert_int_equal(address_parse(S("  Jo.Doe+x@B\xc3\x9c" "CHER.example. "), &a), ADDR_OK);
	assert_string_equal(a.local, "Jo.Doe+x");
	assert_string_equal(a.domain, "xn--bcher-kva.example");
	assert_string_equal(a.full, "Jo.Doe+x@xn--bcher-kva.example");
	assert_int_equal(a.flags, ADDR_F_IDN);
}

/* The input need not be NUL-terminated: only len bytes are read. */
static void
test_address_not_terminated(void **state)
{
	char buf[32];
	struct address a;

	(void)state;
	memset(buf, 'z', sizeof(buf));
	memcpy(buf, "bob@beta.test", 13);
	assert_int_equal(address_parse(buf, 13, &a), ADDR_OK);
	assert_string_equal(a.full, "bob@beta.test");
	/* One more byte makes the TLD "testz". */
	assert_int_equal(address_parse(buf, 14, &a), ADDR_OK);
	assert_string_equal(a.full, "bob@beta.testz");
	assert_int_equal(address_parse(NULL, 0, &a), ADDR_EMPTY);
}

/* Every error has a distinct snake_case name and a sentence. */
static void
test_address_err_names(void **state)
{
	int i, j;

	(void)state;
	for (i = 0; i < ADDR__COUNT; i++) {
		const char *n = address_err_name((enum addr_err)i);
		const char *t = address_err_text((enum addr_err)i);

		assert_non_null(n);
		assert_non_null(t);
		assert_true(strlen(t) > 10);
		assert_int_equal(t[strlen(t) - 1], '.');
		for (const char *p = n; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || *p == '_' ||
			    (*p >= '0' && *p <= '9'));
		for (j = 0; j < i; j++)
			assert_string_not_equal(n,
			    address_err_name((enum addr_err)j));
	}
	assert_string_equal(address_err_name(ADDR_LOCAL_TOO_LONG), "local_too_long");
	assert_string_equal(address_err_name(ADDR_CONTROL_CHAR), "control_char");
	assert_string_equal(address_err_name(ADDR__COUNT), "unknown");
	/* the IP-literal rejection says why it is not probed */
	assert_non_null(strstr(address_err_text(ADDR_IP_LITERAL), "IP address literal"));
	assert_non_null(strstr(address_err_text(ADDR_IP_LITERAL), "not probed"));
	/* ... and does not call valid what its verdict calls invalid_syntax */
	assert_null(strstr(address_err_text(ADDR_IP_LITERAL), "valid syntax"));
	assert_non_null(strstr(address_err_text(ADDR_IP_LITERAL), "treated as invalid"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_table),
		cmocka_unit_test(test_address_parts),
		cmocka_unit_test(test_address_not_terminated),
		cmocka_unit_test(test_address_err_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
