/*
 * gen_list.c — mxsift-gen-list: write a large, messy, deterministic address
 * list for the intake benchmark (scripts/bench-intake) and the
 * integration.intake test.
 *
 * usage: mxsift-gen-list [-f csv|tsv|jsonl|text] [-s SEED] [-d DOMAINS] ROWS
 *
 * The rows are a mix, decided per row by a seeded xorshift generator so
 * that the same arguments always give the same bytes:
 *   ~70 %  valid addresses at the test world's mail domains (alpha.test,
 *          beta.test, gamma.test, delta.test, implicit.test, failover.test),
 *          local parts drawn from a pool so that some repeat exactly;
 *   ~10 %  valid addresses at DOMAINS synthetic domains (shop<N>.test:
 *          NXDOMAIN in the test world, each looked up once per job);
 *   ~10 %  repeats of an earlier address with case or blanks changed
 *          (domain case, surrounding blanks: duplicates after normalising);
 *   ~5 %   invalid (no '@', double dots, a control byte, an IP literal,
 *          a too-long local part, an empty field);
 *   ~5 %   null-MX / no-mail / missing domains (nullmx.test, nodata.test,
 *          missing.test).
 * CSV rows carry a second column with commas and quotes (name), and every
 * 1000th CSV row is written with CRLF, so the CSV parser is exercised.
 *
 * On stderr at the end: "rows N" so callers can check what they asked for.
 * The expected accounting is left to mxsift itself (rows = unique +
 * invalid + duplicates); what this program guarantees is determinism.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum gen_fmt { GEN_CSV, GEN_TSV, GEN_JSONL, GEN_TEXT };

static uint64_t gen_state;

static uint64_t
gen_rand(void)
{
	uint64_t x = gen_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	gen_state = x;
	return x;
}

static unsigned
gen_pick(unsigned n)
{
	return (unsigned)(gen_rand() % n);
}

static void
gen_usage(void)
{
	fprintf(stderr, "usage: mxsift-gen-list [-f csv|tsv|jsonl|text] [-s SEED] "
	    "[-d DOMAINS] ROWS\n");
	exit(2);
}

/* The address of one row into out; returns 1 when it is a "name" row
 * variant worth quoting. */
static void
gen_address(char *out, size_t outlen, unsigned long long row, unsigned ndomains)
{
	static const char *const world[] = { "alpha.test", "beta.test", "gamma.test",
		"delta.test", "implicit.test", "failover.test" };
	static const char *const nomail[] = { "nullmx.test", "nodata.test", "missing.test" };
	static const char *const firsts[] = { "alice", "bob", "carol", "dave", "erin",
		"frank", "gina", "dan", "gary", "info", "admin", "sales", "j.smith", "m_jones" };
	unsigned r = gen_pick(100);
	unsigned long long who;

	(void)row;
	if (r < 70) {
		/* a pool of 40% of the rows: about a fifth of these repeat */
		who = gen_rand() % 4000000ULL;
		snprintf(out, outlen, "%s%llu@%s", firsts[gen_pick(14)], who,
		    world[gen_pick(6)]);
	} else if (r < 80) {
		snprintf(out, outlen, "user%llu@shop%u.test",
		    (unsigned long long)(gen_rand() % 1000000ULL), gen_pick(ndomains));
	} else if (r < 90) {
		/* a changed-case / padded copy of a pool address */
		who = gen_rand() % 4000ULL;
		switch (gen_pick(3)) {
		case 0:
			snprintf(out, outlen, "alice%llu@ALPHA.TEST", who);
			break;
		case 1:
			snprintf(out, outlen, "  bob%llu@Beta.Test ", who);
			break;
		default:
			snprintf(out, outlen, "carol%llu@gamma.test", who);
			break;
		}
	} else if (r < 95) {
		switch (gen_pick(6)) {
		case 0:
			snprintf(out, outlen, "not-an-address-%llu", (unsigned long long)gen_rand() % 1000);
			break;
		case 1:
			snprintf(out, outlen, "a..b%u@alpha.test", gen_pick(1000));
			break;
		case 2:
			snprintf(out, outlen, "ctl\001%u@alpha.test", gen_pick(1000));
			break;
		case 3:
			snprintf(out, outlen, "x%u@[127.0.0.1]", gen_pick(1000));
			break;
		case 4:
			snprintf(out, outlen, "%070u@alpha.test", gen_pick(1000));
			break;
		default:
			out[0] = '\0';
			break;
		}
	} else
		snprintf(out, outlen, "u%u@%s", gen_pick(100000), nomail[gen_pick(3)]);
}

int
main(int argc, char **argv)
{
	enum gen_fmt fmt = GEN_CSV;
	unsigned long long rows, i;
	unsigned long seed = 1, ndomains = 10000;
	char addr[256], *end;
	int ch;

	while ((ch = getopt(argc, argv, "f:s:d:")) != -1) {
		switch (ch) {
		case 'f':
			if (strcmp(optarg, "csv") == 0)
				fmt = GEN_CSV;
			else if (strcmp(optarg, "tsv") == 0)
				fmt = GEN_TSV;
			else if (strcmp(optarg, "jsonl") == 0)
				fmt = GEN_JSONL;
			else if (strcmp(optarg, "text") == 0)
				fmt = GEN_TEXT;
			else
				gen_usage();
			break;
		case 's':
			seed = strtoul(optarg, &end, 10);
			if (*end != '\0')
				gen_usage();
			break;
		case 'd':
			ndomains = strtoul(optarg, &end, 10);
			if (*end != '\0' || ndomains == 0)
				gen_usage();
			break;
		default:
			gen_usage();
		}
	}
	if (optind != argc - 1)
		gen_usage();
	rows = strtoull(argv[optind], &end, 10);
	if (*end != '\0')
		gen_usage();
	gen_state = 0x9e3779b97f4a7c15ULL ^ (uint64_t)seed;
	if (gen_state == 0)
		gen_state = 1;

	if (fmt == GEN_CSV)
		fputs("email,name\n", stdout);
	else if (fmt == GEN_TSV)
		fputs("email\tname\n", stdout);
	for (i = 0; i < rows; i++) {
		gen_address(addr, sizeof(addr), i, (unsigned)ndomains);
		switch (fmt) {
		case GEN_CSV:
			/* control bytes stay inside a quoted field, so a row is
			 * one line and the address parser sees them */
			printf("\"%s\",\"Doe, J. \"\"%llu\"\"\"%s", addr, i,
			    i % 1000 == 999 ? "\r\n" : "\n");
			break;
		case GEN_TSV:
			printf("%s\tDoe %llu\n", addr, i);
			break;
		case GEN_JSONL:
			printf("{\"email\":\"");
			for (const char *s = addr; *s != '\0'; s++)
				if ((unsigned char)*s < 0x20)
					printf("\\u%04x", (unsigned char)*s);
				else
					putchar(*s);
			printf("\",\"n\":%llu}\n", i);
			break;
		case GEN_TEXT:
			/* an empty line is not a row in text: keep it a row */
			printf("%s\n", addr[0] != '\0' ? addr : "-");
			break;
		}
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("mxsift-gen-list: stdout");
		return 1;
	}
	fprintf(stderr, "rows %llu\n", rows);
	return 0;
}
