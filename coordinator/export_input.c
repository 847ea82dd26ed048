/*
 * export_input.c — `mxsift export --input FILE`: a fleet job's verdicts
 * joined back to the rows of the list that was submitted, one output row
 * per input row, in input order, with the input's line number and text, as
 * `mxsift check` writes them.  The fleet keeps verdicts per address, not
 * rows (a ten-million-row list would double Redis); the list itself is
 * the only place the rows are, so the join reads it again.
 *
 * Each row is read by intake (the same --column/--field/--input-format as
 * submit was given), its address parsed as plan.c parses it, and its
 * verdict looked up under the field plan.c wrote it under:
 *  - "#line:N" for an invalid row (intake's row problem, or a syntax error);
 *  - otherwise the first spelling of the address in the list: duplicates
 *    are dropped before probing, and only that spelling is in the job.
 *    It is found without knowing submit's --fold-local: the candidates are
 *    the row's own spelling, the spelling with its local part lowercased,
 *    and the first mixed-case spelling of that lowercase form seen earlier
 *    in the list.  Exactly one of them is a field of the job whatever the
 *    folding was (not folded: the row's own spelling is its own unique
 *    address; folded: the class's first spelling, which is either the
 *    lowercase one or the first mixed-case one), so the first found is it.
 *    Memory: only mixed-case spellings are remembered, one per lowercase
 *    form.
 *
 * Rows are looked up EXPORT_CHUNK at a time (one HMGET).  A row whose
 * verdict is not in the job (the job is not finished, or this is not the
 * list that was submitted) is written as unknown/temp_failure with the
 * detail "no verdict in job J" and counted in st->missing.
 */
#include "export_input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "hash.h"
#include "jobstore.h"

#define EXPORT_CHUNK 256
#define EXPORT_CANDS 3          /* fields tried per row */

/* Lowercase form -> first mixed-case spelling seen (chained, doubling). */
struct mixed_ent {
	struct mixed_ent *next;
	uint64_t h;
	char *lower, *first;
};

struct mixed {
	struct mixed_ent **b;
	size_t nb, n;
};

static uint64_t
mixed_hash(const char *s)
{
	return hash_fnv1a(s, strlen(s));
}

static const char *
mixed_get(const struct mixed *m, const char *lower, uint64_t h)
{
	const struct mixed_ent *e;

	if (m->nb == 0)
		return NULL;
	for (e = m->b[h & (m->nb - 1)]; e != NULL; e = e->next)
		if (e->h == h && strcmp(e->lower, lower) == 0)
			return e->first;
	return NULL;
}

/* 0, or -1 without memory. */
static int
mixed_put(struct mixed *m, const char *lower, const char *first, uint64_t h)
{
	struct mixed_ent *e;

	if (m->n >= m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 1024;
		struct mixed_ent **b = calloc(nb, sizeof(*b));

		if (b == NULL)
			return -1;
		for (size_t i = 0; i < m->nb; i++)
			while ((e = m->b[i]) != NULL) {
				m->b[i] = e->next;
				e->next = b[e->h & (nb - 1)];
				b[e->h & (nb - 1)] = e;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL || (e->lower = strdup(lower)) == NULL ||
	    (e->first = strdup(first)) == NULL) {
		if (e != NULL)
			free(e->lower);
		free(e);
		return -1;
	}
	e->h = h;
	e->next = m->b[h & (m->nb - 1)];
	m->b[h & (m->nb - 1)] = e;
	m->n++;
	return 0;
}

static void
mixed_free(struct mixed *m)
{
	struct mixed_ent *e;

	for (size_t i = 0; i < m->nb; i++)
		while ((e = m->b[i]) != NULL) {
			m->b[i] = e->next;
			free(e->lower);
			free(e->first);
			free(e);
		}
	free(m->b);
}

/* One row waiting for its lookup. */
struct xrow {
	uint64_t line;
	char *input;                    /* the address field as read */
	char *cand[EXPORT_CANDS];       /* fields to try, in order; NULL = none */
};

struct xrun {
	struct jobstore *js;
	const char *job;
	FILE *out;
	enum verdict_format fmt;
	struct export_input_stats *st;
	struct mixed mixed;
	struct xrow rows[EXPORT_CHUNK];
	size_t nrows;
	/* one HMGET's fields and answers */
	const char *fields[EXPORT_CHUNK * EXPORT_CANDS];
	struct verdict vs[EXPORT_CHUNK * EXPORT_CANDS];
	char *addrs[EXPORT_CHUNK * EXPORT_CANDS];
	int found[EXPORT_CHUNK * EXPORT_CANDS];
	char *err;
	size_t errlen;
};

static void
xrow_clear(struct xrow *r)
{
	free(r->input);
	for (int i = 0; i < EXPORT_CANDS; i++)
		free(r->cand[i]);
	memset(r, 0, sizeof(*r));
}

/* Look the held rows up and write them.  0 / -1 (err set). */
static int
export_flush(struct xrun *x)
{
	const char **fields = x->fields;
	struct verdict *vs = x->vs;
	char **addrs = x->addrs;
	int *found = x->found;
	size_t nf = 0, at[EXPORT_CHUNK];
	int rc = 0;

	for (size_t i = 0; i < x->nrows; i++) {
		at[i] = nf;
		for (int k = 0; k < EXPORT_CANDS && x->rows[i].cand[k] != NULL; k++)
			fields[nf++] = x->rows[i].cand[k];
	}
	if (jobstore_get_verdicts(x->js, x->job, fields, nf, vs, addrs, found) == -1) {
		snprintf(x->err, x->errlen, "%s", jobstore_errstr(x->js));
		for (size_t i = 0; i < x->nrows; i++)
			xrow_clear(&x->rows[i]);
		x->nrows = 0;
		return -1;
	}
	for (size_t i = 0; i < x->nrows; i++) {
		struct xrow *r = &x->rows[i];
		size_t end = i + 1 < x->nrows ? at[i + 1] : nf, j;
		struct verdict none;
		struct verdict_row vr = { .line = r->line, .input = r->input };

		for (j = at[i]; j < end && !found[j]; j++)
			;
		if (j < end) {
			vr.address = addrs[j];
			vr.v = &vs[j];
		} else {
			verdict_init(&none, VR_TEMP_FAILURE);
			snprintf(none.detail, sizeof(none.detail), "no verdict in job %s", x->job);
			vr.address = r->cand[0] != NULL && r->cand[0][0] != '#' ? r->cand[0] : "";
			vr.v = &none;
			x->st->missing++;
		}
		if (rc == 0 && verdict_write_row(x->out, x->fmt, &vr) == -1) {
			snprintf(x->err, x->errlen, "write error: %s", strerror(errno ? errno : EIO));
			rc = -1;
		}
		x->st->rows++;
		xrow_clear(r);
	}
	for (size_t j = 0; j < nf; j++)
		free(addrs[j]);
	x->nrows = 0;
	return rc;
}

/* Hold one input row; flushes a full chunk.  0 / -1 (err set). */
static int
export_add(struct xrun *x, const struct intake_row *in)
{
	struct xrow *r = &x->rows[x->nrows];
	struct address a;
	char field[64];

	r->line = in->line;
	if ((r->input = strdup(in->text)) == NULL)
		goto oom;
	if (in->problem != NULL || address_parse(in->text, in->len, &a) != ADDR_OK) {
		jobstore_invalid_field(in->line, field, sizeof(field));
		if ((r->cand[0] = strdup(field)) == NULL)
			goto oom;
	} else {
		size_t llen = strlen(a.local);
		char *lower = strdup(a.full);
		uint64_t h;
		const char *first;
		int k = 0;

		if (lower == NULL || (r->cand[k++] = strdup(a.full)) == NULL) {
			free(lower);
			goto oom;
		}
		for (size_t i = 0; i < llen; i++)
			if (lower[i] >= 'A' && lower[i] <= 'Z')
				lower[i] = (char)(lower[i] + 32);
		if (strcmp(lower, a.full) != 0) {
			/* mixed case: the lowercase form, then its first spelling */
			h = mixed_hash(lower);
			first = mixed_get(&x->mixed, lower, h);
			if (first == NULL && mixed_put(&x->mixed, lower, a.full, h) == -1) {
				free(lower);
				goto oom;
			}
			if (first != NULL && strcmp(first, a.full) != 0 &&
			    (r->cand[k++] = strdup(first)) == NULL) {
				free(lower);
				goto oom;
			}
			r->cand[k++] = lower;
		} else {
			/* lowercase: the class's first spelling may be mixed */
			h = mixed_hash(lower);
			first = mixed_get(&x->mixed, lower, h);
			if (first != NULL && (r->cand[k++] = strdup(first)) == NULL) {
				free(lower);
				goto oom;
			}
			free(lower);
		}
	}
	if (++x->nrows == EXPORT_CHUNK)
		return export_flush(x);
	return 0;
oom:
	xrow_clear(r);
	snprintf(x->err, x->errlen, "out of memory");
	return -1;
}

int
export_input(struct jobstore *js, const char *job, const char *path,
    const struct intake_opts *io, FILE *out, enum verdict_format fmt,
    struct export_input_stats *st, int *unusable, char *err, size_t errlen)
{
	struct xrun *x;
	struct intake *in;
	struct intake_row row;
	int rc = 0, n;

	*unusable = 0;
	memset(st, 0, sizeof(*st));
	if ((in = intake_open(path, io, err, errlen)) == NULL) {
		*unusable = 1;
		return -1;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		intake_close(in);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	x->js = js;
	x->job = job;
	x->out = out;
	x->fmt = fmt;
	x->st = st;
	x->err = err;
	x->errlen = errlen;
	while (rc == 0 && (n = intake_next(in, &row, err, errlen)) == 1)
		rc = export_add(x, &row);
	if (rc == 0 && n == -1)
		rc = -1;    /* a read error: the rows before it are written below */
	if (x->nrows > 0) {
		char ferr[512];
		struct xrun *xf = x;

		/* keep the first error's text */
		xf->err = rc == 0 ? err : ferr;
		xf->errlen = rc == 0 ? errlen : sizeof(ferr);
		if (export_flush(xf) == -1)
			rc = -1;
	}
	mixed_free(&x->mixed);
	free(x);
	intake_close(in);
	return rc;
}
