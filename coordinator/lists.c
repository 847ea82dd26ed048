/*
 * lists.c — load the data/ files into hash sets and answer membership, role and
 * typo questions (see lists.h).
 *
 * Owns: one open-addressing string set per file (keys copied into one
 * allocation per file) and the popular-domain array for suggestions.
 * Returns: booleans, and a pointer into its own data for suggestions (valid
 * until lists_close()).
 *
 * Cost: lookups are O(label count) hash probes.  lists_suggest() runs the
 * edit distance only against popular domains that pass three cheap lower
 * bounds of it: same label count, length within the cap, and the sets of
 * characters (a 64-bit mask each) differing by no more than the cap.  Without
 * the filter a call cost ~35,000 instructions and suggestions were a third of
 * `mxsift submit`'s instructions; with it ~2,500, the list look-ups included
 * (callgrind).  Callers still do it once per unique domain, not per row.
 *
 * Diagnostics: lists_open() fails naming the file and errno; an entry that
 * is not a plausible lowercase name is refused with its file and line, so a
 * hand-edited list cannot silently stop matching.
 */
#include "lists.h"
#include "hash.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MXSIFT_DATADIR
#define MXSIFT_DATADIR "data"
#endif

#define LISTS_LINE_MAX 512

enum { L_DISPOSABLE, L_ROLE, L_FREE, L_CASE, L_POPULAR, L__COUNT };

static const char *const lists_files[L__COUNT] = {
	[L_DISPOSABLE] = "disposable_domains.txt",
	[L_ROLE] = "role_locals.txt",
	[L_FREE] = "free_providers.txt",
	[L_CASE] = "case_insensitive.txt",
	[L_POPULAR] = "popular_domains.txt",
};

struct lists_set {
	char **slot;
	size_t mask, n;
	char **keys;            /* in file order (popular domains are scanned) */
	size_t nkeys, capkeys;
};

/* A popular domain with what lists_suggest() filters on, in file order. */
struct lists_pop {
	const char *name;       /* the key in set[L_POPULAR] */
	uint64_t chars;         /* lists_chars() */
	size_t len, labels;
};

struct lists {
	char *dir;
	struct lists_set set[L__COUNT];
	struct lists_pop *pop;
};

static uint64_t
lists_hash(const char *s, size_t n)
{
	uint64_t h = hash_fnv1a(s, n);

	return h ^ (h >> 29);
}

static int
lists_set_has(const struct lists_set *s, const char *key, size_t n)
{
	size_t i;

	if (s->slot == NULL)
		return 0;
	for (i = lists_hash(key, n) & s->mask; s->slot[i] != NULL;
	    i = (i + 1) & s->mask)
		if (strncmp(s->slot[i], key, n) == 0 && s->slot[i][n] == '\0')
			return 1;
	return 0;
}

static int
lists_set_add(struct lists_set *s, const char *key)
{
	size_t n = strlen(key), i;
	char *k;

	if (lists_set_has(s, key, n))
		return 0;
	if ((s->n + 1) * 2 > s->mask + 1) {
		size_t cap = s->slot ? (s->mask + 1) * 2 : 256;
		char **ns = calloc(cap, sizeof(*ns));

		if (ns == NULL)
			return -1;
		for (i = 0; s->slot != NULL && i <= s->mask; i++) {
			size_t j;

			if (s->slot[i] == NULL)
				continue;
			for (j = lists_hash(s->slot[i], strlen(s->slot[i])) &
			    (cap - 1); ns[j] != NULL; j = (j + 1) & (cap - 1))
				;
			ns[j] = s->slot[i];
		}
		free(s->slot);
		s->slot = ns;
		s->mask = cap - 1;
	}
	if (s->nkeys == s->capkeys) {
		size_t cap = s->capkeys ? s->capkeys * 2 : 64;
		char **nk = realloc(s->keys, cap * sizeof(*nk));

		if (nk == NULL)
			return -1;
		s->keys = nk;
		s->capkeys = cap;
	}
	if ((k = strdup(key)) == NULL)
		return -1;
	s->keys[s->nkeys++] = k;
	for (i = lists_hash(key, n) & s->mask; s->slot[i] != NULL;
	    i = (i + 1) & s->mask)
		;
	s->slot[i] = k;
	s->n++;
	return 0;
}

static void
lists_set_free(struct lists_set *s)
{
	for (size_t i = 0; i < s->nkeys; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->slot);
}

/* Entries are lowercase names: letters, digits and "-._+"; nothing else. */
static int
lists_entry_ok(const char *e)
{
	if (*e == '\0')
		return 0;
	for (; *e != '\0'; e++)
		if (!(islower((unsigned char)*e) || isdigit((unsigned char)*e) ||
		    strchr("-._+", *e) != NULL))
			return 0;
	return 1;
}

static int
lists_read(struct lists *l, int which, char *err, size_t errlen)
{
	char path[4096], line[LISTS_LINE_MAX], *s, *e;
	unsigned long lineno = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", l->dir, lists_files[which]);
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s (set --data-dir or MXSIFT_DATA_DIR)",
		    path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if ((s = strchr(line, '#')) != NULL)
			*s = '\0';
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		if (*s == '\0')
			continue;
		if (!lists_entry_ok(s)) {
			snprintf(err, errlen, "%s:%lu: not a lowercase name: \"%.60s\"",
			    path, lineno, s);
			fclose(f);
			return -1;
		}
		if (lists_set_add(&l->set[which], s) != 0) {
			snprintf(err, errlen, "%s: out of memory", path);
			fclose(f);
			return -1;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static size_t
lists_labels(const char *s)
{
	size_t n = 1;

	for (; *s != '\0'; s++)
		n += *s == '.';
	return n;
}

/*
 * The set of characters in s as bits.  Any byte -> bit map gives a lower
 * bound of the edit distance: a bit of a that b lacks marks characters of a
 * that no alignment can match, so each costs its own substitution or
 * deletion (a transposition only moves characters).  Distinct bits for the
 * characters of domain names keep the bound tight; other bytes share bits.
 */
static uint64_t
lists_chars(const char *s)
{
	uint64_t m = 0;
	unsigned c, bit;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c >= 'a' && c <= 'z')
			bit = c - 'a';
		else if (c >= '0' && c <= '9')
			bit = 26 + (c - '0');
		else if (c == '-')
			bit = 36;
		else if (c == '.')
			bit = 37;
		else
			bit = 38 + c % 26;
		m |= (uint64_t)1 << bit;
	}
	return m;
}

static int
lists_index_popular(struct lists *l)
{
	const struct lists_set *s = &l->set[L_POPULAR];

	if ((l->pop = calloc(s->nkeys + 1, sizeof(*l->pop))) == NULL)
		return -1;
	for (size_t i = 0; i < s->nkeys; i++) {
		l->pop[i].name = s->keys[i];
		l->pop[i].chars = lists_chars(s->keys[i]);
		l->pop[i].len = strlen(s->keys[i]);
		l->pop[i].labels = lists_labels(s->keys[i]);
	}
	return 0;
}

const char *
lists_default_dir(void)
{
	const char *dir = getenv("MXSIFT_DATA_DIR");

	return dir != NULL && *dir != '\0' ? dir : MXSIFT_DATADIR;
}

struct lists *
lists_open(const char *dir, char *err, size_t errlen)
{
	struct lists *l;

	if (dir == NULL || *dir == '\0')
		dir = lists_default_dir();
	if ((l = calloc(1, sizeof(*l))) == NULL || (l->dir = strdup(dir)) == NULL) {
		free(l);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (int i = 0; i < L__COUNT; i++)
		if (lists_read(l, i, err, errlen) != 0) {
			lists_close(l);
			return NULL;
		}
	if (lists_index_popular(l) != 0) {
		snprintf(err, errlen, "out of memory");
		lists_close(l);
		return NULL;
	}
	return l;
}

void
lists_close(struct lists *l)
{
	if (l == NULL)
		return;
	for (int i = 0; i < L__COUNT; i++)
		lists_set_free(&l->set[i]);
	free(l->pop);
	free(l->dir);
	free(l);
}

const char *
lists_dir(const struct lists *l)
{
	return l->dir;
}

static int
lists_has(const struct lists *l, int which, const char *s)
{
	return lists_set_has(&l->set[which], s, strlen(s));
}

int
lists_is_disposable(const struct lists *l, const char *domain)
{
	const char *d;

	/* the domain and each parent with at least two labels */
	for (d = domain; d != NULL; d = strchr(d, '.')) {
		if (*d == '.')
			d++;
		if (strchr(d, '.') == NULL)
			break;
		if (lists_has(l, L_DISPOSABLE, d))
			return 1;
	}
	return 0;
}

int
lists_is_free(const struct lists *l, const char *domain)
{
	return lists_has(l, L_FREE, domain);
}

int
lists_is_case_insensitive(const struct lists *l, const char *domain)
{
	return lists_has(l, L_CASE, domain);
}

int
lists_is_role(const struct lists *l, const char *local)
{
	char buf[128];
	size_t n = 0;

	for (; *local != '\0' && *local != '+' && n < sizeof(buf) - 1; local++) {
		if (*local == '"')
			continue;
		buf[n++] = (char)tolower((unsigned char)*local);
	}
	if (*local != '\0' && *local != '+')
		return 0;       /* longer than any role name */
	buf[n] = '\0';
	return lists_has(l, L_ROLE, buf);
}

unsigned
lists_distance(const char *a, const char *b, unsigned cap)
{
	/* Optimal string alignment distance over three rows; strings here
	 * are domain names (<= 253 bytes). */
	unsigned rows[3][256], *pp, *prev, *cur, best;
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > 255 || lb > 255)
		return cap + 1;
	if ((la > lb ? la - lb : lb - la) > cap)
		return cap + 1;
	pp = rows[0], prev = rows[1], cur = rows[2];
	for (j = 0; j <= lb; j++)
		prev[j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		cur[0] = (unsigned)i;
		best = cur[0];
		for (j = 1; j <= lb; j++) {
			unsigned cost = a[i - 1] != b[j - 1];
			unsigned v = prev[j] + 1;

			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (prev[j - 1] + cost < v)
				v = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
				v = pp[j - 2] + 1;
			cur[j] = v;
			if (v < best)
				best = v;
		}
		if (best > cap)
			return cap + 1;
		{
			unsigned *t = pp;

			pp = prev;
			prev = cur;
			cur = t;
		}
	}
	return prev[lb] > cap ? cap + 1 : prev[lb];
}

/* Whether m has more than k bits set: clear the lowest k and look. */
static int
lists_bits_over(uint64_t m, unsigned k)
{
	for (; k > 0 && m != 0; k--)
		m &= m - 1;
	return m != 0;
}

const char *
lists_suggest(const struct lists *l, const char *domain)
{
	const char *best = NULL;
	unsigned bestd, cap, d;
	size_t labels, len;
	uint64_t chars;

	if (lists_has(l, L_POPULAR, domain) || lists_has(l, L_FREE, domain) ||
	    lists_has(l, L_CASE, domain) || lists_is_disposable(l, domain))
		return NULL;
	labels = lists_labels(domain);
	len = strlen(domain);
	chars = lists_chars(domain);
	cap = len >= 9 ? 2 : 1;
	bestd = cap + 1;
	/* bestd - 1 is the largest distance that can still win, so it is the
	 * cap of every filter and of the distance itself */
	for (const struct lists_pop *p = l->pop; p->name != NULL && bestd > 1; p++) {
		if (p->labels != labels ||
		    (p->len > len ? p->len - len : len - p->len) > bestd - 1)
			continue;
		if (lists_bits_over(chars & ~p->chars, bestd - 1) ||
		    lists_bits_over(p->chars & ~chars, bestd - 1))
			continue;
		d = lists_distance(domain, p->name, bestd - 1);
		/* the first (most popular) of equally close ones wins */
		if (d < bestd) {
			bestd = d;
			best = p->name;
		}
	}
	return best;
}
