/*
 * test_lists.c — coordinator/lists.c (the data/ reference lists) and the
 * small pure helpers next to it: edit distance, typo suggestions against
 * the shipped data (and, on random names, equal to a brute force over the
 * popular list), role/disposable/free/case lookups, a list with a bad
 * entry, and progress_format_eta().
 *
 * The shipped lists are found at the compile-time MXSIFT_DATADIR (the
 * source tree's data/), exactly as mxsift finds them without --data-dir.
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
#include <cmocka.h>

#include "lists.h"
#include "progress.h"

static struct lists *shipped;

static void
test_distance(void **state)
{
	static const struct {
		const char *a, *b;
		unsigned cap, want;
	} cases[] = {
		{ "gmail.com", "gmail.com", 2, 0 },
		{ "gmial.com", "gmail.com", 2, 1 },     /* transposition */
		{ "gmal.com", "gmail.com", 2, 1 },      /* deletion */
		{ "gmaill.com", "gmail.com", 2, 1 },    /* insertion */
		{ "gnail.com", "gmail.com", 2, 1 },     /* substitution */
		{ "gmail.con", "gmail.com", 2, 1 },
		{ "gamil.cmo", "gmail.com", 2, 2 },
		{ "hotmial.co", "hotmail.com", 2, 2 },
		{ "yahoo.com", "gmail.com", 2, 3 },     /* capped: cap + 1 */
		{ "abc", "", 2, 3 },
		{ "", "", 0, 0 },
		{ "ab", "ba", 1, 1 },
		{ "ca", "abc", 3, 3 },                  /* OSA, not full Damerau */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned d = lists_distance(cases[i].a, cases[i].b, cases[i].cap);

		if (d != cases[i].want)
			fail_msg("distance(%s, %s, cap %u) = %u, want %u", cases[i].a,
			    cases[i].b, cases[i].cap, d, cases[i].want);
		assert_int_equal(lists_distance(cases[i].b, cases[i].a, cases[i].cap), d);
	}
}

static void
test_suggest_shipped(void **state)
{
	static const struct {
		const char *domain, *want;     /* want NULL: no suggestion */
	} cases[] = {
		{ "gmial.com", "gmail.com" },
		{ "gmai.com", "gmail.com" },
		{ "gmail.con", "gmail.com" },
		{ "gamil.com", "gmail.com" },
		{ "hotmial.com", "hotmail.com" },
		{ "hotmai.com", "hotmail.com" },
		{ "yaho.com", "yahoo.com" },
		{ "yahooo.com", "yahoo.com" },
		{ "outlok.com", "outlook.com" },
		{ "iclould.com", "icloud.com" },
		{ "gmail.com", NULL },          /* itself */
		{ "mail.com", NULL },           /* a real provider next to gmail.com */
		{ "ymail.com", NULL },
		{ "live.com", NULL },
		{ "example.com", NULL },        /* nothing close */
		{ "alpha.test", NULL },
		{ "gmail.co.uk", NULL },        /* another label count */
		{ "mailinator.com", NULL },     /* listed as disposable */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = lists_suggest(shipped, cases[i].domain);

		if ((s == NULL) != (cases[i].want == NULL) ||
		    (s != NULL && strcmp(s, cases[i].want) != 0))
			fail_msg("suggest(%s) = %s, want %s", cases[i].domain, s ? s : "none",
			    cases[i].want ? cases[i].want : "none");
	}
}

/*
 * lists_suggest() skips the edit distance for popular domains that cheap
 * lower bounds rule out.  The reference here is the rule of lists.h by brute
 * force: the distance to every popular domain of the shipped file, in file
 * order.  Inputs: a few thousand popular domains with 0-3 random edits (hits
 * and near misses) and random names, from a fixed seed.
 */
static const char *
test_suggest_brute(char pop[][64], size_t npop, const char *domain)
{
	const char *best = NULL;
	size_t labels = 1;
	unsigned cap = strlen(domain) >= 9 ? 2 : 1, bestd = cap + 1, d;

	for (size_t i = 0; i < npop; i++)
		if (strcmp(pop[i], domain) == 0)
			return NULL;
	if (lists_is_free(shipped, domain) || lists_is_case_insensitive(shipped, domain) ||
	    lists_is_disposable(shipped, domain))
		return NULL;
	for (const char *c = domain; *c != '\0'; c++)
		labels += *c == '.';
	for (size_t i = 0; i < npop; i++) {
		size_t pl = 1;

		for (const char *c = pop[i]; *c != '\0'; c++)
			pl += *c == '.';
		if (pl != labels)
			continue;
		d = lists_distance(domain, pop[i], cap);
		if (d < bestd) {
			bestd = d;
			best = pop[i];
		}
	}
	return best;
}

static uint64_t test_rng = 0x9e3779b97f4a7c15ULL;

static unsigned
test_rand(unsigned n)
{
	test_rng ^= test_rng << 13;
	test_rng ^= test_rng >> 7;
	test_rng ^= test_rng << 17;
	return (unsigned)(test_rng % n);
}

static void
test_suggest_equivalence(void **state)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789-.";
	static char pop[512][64];
	char path[4096], line[256], dom[64];
	size_t npop = 0, hits = 0, misses = 0;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/popular_domains.txt", lists_dir(shipped));
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL && npop < 512) {
		line[strcspn(line, "# \t\r\n")] = '\0';
		if (line[0] != '\0') {
			assert_true(strlen(line) < sizeof(pop[0]));
			memcpy(pop[npop++], line, strlen(line) + 1);
		}
	}
	fclose(f);
	assert_true(npop >= 20);
	for (int n = 0; n < 5000; n++) {
		size_t len;

		if (n % 5 == 4) {       /* a random name */
			len = 3 + test_rand(14);
			for (size_t i = 0; i < len; i++)
				dom[i] = alphabet[test_rand(sizeof(alphabet) - 1)];
			dom[len] = '\0';
		} else {                /* a popular domain with 0-3 edits */
			snprintf(dom, sizeof(dom), "%s", pop[test_rand((unsigned)npop)]);
			for (unsigned e = test_rand(4); e > 0; e--) {
				size_t at;

				len = strlen(dom);
				at = test_rand((unsigned)len);
				switch (test_rand(4)) {
				case 0:         /* substitute */
					dom[at] = alphabet[test_rand(sizeof(alphabet) - 1)];
					break;
				case 1:         /* delete */
					memmove(dom + at, dom + at + 1, len - at);
					break;
				case 2:         /* insert */
					if (len + 1 < sizeof(dom)) {
						memmove(dom + at + 1, dom + at, len - at + 1);
						dom[at] = alphabet[test_rand(sizeof(alphabet) - 1)];
					}
					break;
				default:        /* transpose */
					if (at + 1 < len) {
						char t = dom[at];

						dom[at] = dom[at + 1];
						dom[at + 1] = t;
					}
					break;
				}
			}
		}
		{
			const char *got = lists_suggest(shipped, dom);
			const char *want = test_suggest_brute(pop, npop, dom);

			if ((got == NULL) != (want == NULL) ||
			    (got != NULL && strcmp(got, want) != 0))
				fail_msg("case %d: suggest(%s) = %s, brute force %s", n, dom,
				    got ? got : "none", want ? want : "none");
			if (want != NULL)
				hits++;
			else
				misses++;
		}
	}
	/* both answers must be common, or the comparison proves little */
	if (hits < 1000 || misses < 1000)
		fail_msg("hits %zu, misses %zu: the generator lost its mix", hits, misses);
}

static void
test_lookups_shipped(void **state)
{
	(void)state;
	assert_true(lists_is_disposable(shipped, "mailinator.com"));
	assert_true(lists_is_disposable(shipped, "abc.mailinator.com"));  /* subdomain */
	assert_true(lists_is_disposable(shipped, "yopmail.com"));
	assert_false(lists_is_disposable(shipped, "gmail.com"));
	assert_false(lists_is_disposable(shipped, "com"));
	assert_false(lists_is_disposable(shipped, "notmailinator.com.example"));
	assert_true(lists_is_role(shipped, "info"));
	assert_true(lists_is_role(shipped, "Info"));
	assert_true(lists_is_role(shipped, "POSTMASTER"));
	assert_true(lists_is_role(shipped, "sales+eu"));
	assert_true(lists_is_role(shipped, "\"admin\""));
	assert_false(lists_is_role(shipped, "alice"));
	assert_false(lists_is_role(shipped, "information-officer-of-the-board-and-more"));
	assert_false(lists_is_role(shipped, ""));
	assert_true(lists_is_free(shipped, "gmail.com"));
	assert_true(lists_is_free(shipped, "web.de"));
	assert_false(lists_is_free(shipped, "example.com"));
	assert_true(lists_is_case_insensitive(shipped, "gmail.com"));
	assert_true(lists_is_case_insensitive(shipped, "outlook.com"));
	assert_false(lists_is_case_insensitive(shipped, "example.com"));
}

/* Every shipped file names its source and date in its header comment. */
static void
test_shipped_headers(void **state)
{
	static const char *const files[] = { "disposable_domains.txt", "role_locals.txt",
		"free_providers.txt", "case_insensitive.txt", "popular_domains.txt" };
	char path[4096], buf[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f;
		size_t n;

		snprintf(path, sizeof(path), "%s/%s", lists_dir(shipped), files[i]);
		f = fopen(path, "r");
		assert_non_null(f);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		assert_int_equal(buf[0], '#');
		if (strstr(buf, "Source:") == NULL || strstr(buf, "Date:") == NULL)
			fail_msg("%s: header without Source: and Date:", files[i]);
	}
}

static void
test_bad_lists(void **state)
{
	char dir[] = "/tmp/test_lists.XXXXXX", path[256], err[256], cmd[300];
	static const char *const files[] = { "disposable_domains.txt", "role_locals.txt",
		"free_providers.txt", "case_insensitive.txt", "popular_domains.txt" };
	struct lists *l;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* missing files: an error naming the file */
	assert_null(lists_open(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "disposable_domains.txt"));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f, "# Source: test\n\n  example.test  # trailing comment\n");
		fclose(f);
	}
	l = lists_open(dir, err, sizeof(err));
	if (l == NULL)
		fail_msg("lists_open: %s", err);
	assert_true(lists_is_free(l, "example.test"));
	assert_string_equal(lists_dir(l), dir);
	lists_close(l);
	/* an entry that is not a lowercase name is refused, with its line */
	snprintf(path, sizeof(path), "%s/role_locals.txt", dir);
	f = fopen(path, "a");
	fprintf(f, "Admin\n");
	fclose(f);
	assert_null(lists_open(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "role_locals.txt:4"));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_eta_format(void **state)
{
	static const struct {
		double secs;
		const char *want;
	} cases[] = {
		{ 0, "0:00" }, { 59.4, "0:59" }, { 61, "1:01" }, { 3599, "59:59" },
		{ 3600, "1:00:00" }, { 86399, "23:59:59" }, { -1, "-" }, { 1e12, "-" },
	};
	char out[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		progress_format_eta(cases[i].secs, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_distance),
		cmocka_unit_test(test_suggest_shipped),
		cmocka_unit_test(test_suggest_equivalence),
		cmocka_unit_test(test_lookups_shipped),
		cmocka_unit_test(test_shipped_headers),
		cmocka_unit_test(test_bad_lists),
		cmocka_unit_test(test_eta_format),
	};
	char err[512];
	int rc;

	/* the compile-time default, not the environment */
	unsetenv("MXSIFT_DATA_DIR");
	shipped = lists_open(NULL, err, sizeof(err));
	if (shipped == NULL) {
		fprintf(stderr, "lists_open: %s\n", err);
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	lists_close(shipped);
	return rc;
}
