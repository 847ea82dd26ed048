/*
 * report.c — HTML report of a set of verdicts: counts, then inline SVG.
 *
 * Owns the aggregates (per status/reason pair, per MX domain, per reply
 * code, per second of checked_at) and the HTML they become.  Memory is
 * bounded by the number of distinct MX domains, reply codes and seconds,
 * not by the number of verdicts.  Charts are plain SVG elements sized by a
 * viewBox, so they scale with the page and print; no script anywhere.
 */
#include "report.h"
#include "hash.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns.h"

#define REPORT_TOP_DOMAINS 30
#define REPORT_TOP_REPLIES 20
#define REPORT_MAX_BUCKETS 60

static const char *const report_status_color[VS__COUNT] = {
	[VS_DELIVERABLE] = "#2e7d32",
	[VS_UNDELIVERABLE] = "#c62828",
	[VS_RISKY] = "#ef8f00",
	[VS_UNKNOWN] = "#607d8b",
};

/* A counted key (MX domain, reply code or second), split by status. */
struct rent {
	char *key;
	uint64_t n[VS__COUNT];
	uint64_t total;
};

/* Open-addressing string map; cap is a power of two. */
struct rmap {
	struct rent *e;
	size_t cap, len;
};

struct report {
	uint64_t pair[VS__COUNT][VR__COUNT];
	uint64_t status[VS__COUNT];
	uint64_t total;
	struct rmap domains, replies, seconds;
	int64_t tmin, tmax;
};

static uint64_t
report_hash(const char *s)
{
	return hash_fnv1a(s, strlen(s));
}

static int
rmap_grow(struct rmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct rent *e = calloc(cap, sizeof(*e));

	if (e == NULL)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->e[i].key == NULL)
			continue;
		size_t j = report_hash(m->e[i].key) & (cap - 1);
		while (e[j].key != NULL)
			j = (j + 1) & (cap - 1);
		e[j] = m->e[i];
	}
	free(m->e);
	m->e = e;
	m->cap = cap;
	return 0;
}

/* Count one verdict of status s under key.  0 / -1. */
static int
rmap_add(struct rmap *m, const char *key, enum verdict_status s)
{
	size_t j;

	if ((m->len + 1) * 2 > m->cap && rmap_grow(m) == -1)
		return -1;
	j = report_hash(key) & (m->cap - 1);
	while (m->e[j].key != NULL && strcmp(m->e[j].key, key) != 0)
		j = (j + 1) & (m->cap - 1);
	if (m->e[j].key == NULL) {
		if ((m->e[j].key = strdup(key)) == NULL)
			return -1;
		m->len++;
	}
	m->e[j].n[s]++;
	m->e[j].total++;
	return 0;
}

static void
rmap_free(struct rmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->e[i].key);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

static int
rent_by_total(const void *a, const void *b)
{
	const struct rent *x = *(const struct rent *const *)a, *y = *(const struct rent *const *)b;

	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* The entries of m as a malloc'd array sorted by total, largest first. */
static struct rent **
rmap_sorted(const struct rmap *m)
{
	struct rent **v = malloc((m->len ? m->len : 1) * sizeof(*v));
	size_t n = 0;

	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < m->cap; i++)
		if (m->e[i].key != NULL)
			v[n++] = &m->e[i];
	qsort(v, n, sizeof(*v), rent_by_total);
	return v;
}

struct report *
report_new(void)
{
	struct report *r = calloc(1, sizeof(*r));

	if (r != NULL) {
		r->tmin = INT64_MAX;
		r->tmax = INT64_MIN;
	}
	return r;
}

void
report_free(struct report *r)
{
	if (r == NULL)
		return;
	rmap_free(&r->domains);
	rmap_free(&r->replies);
	rmap_free(&r->seconds);
	free(r);
}

size_t
report_count(const struct report *r)
{
	return (size_t)r->total;
}

int
report_add(struct report *r, const struct verdict *v)
{
	enum verdict_status s = (unsigned)v->status < VS__COUNT ? v->status : VS_UNKNOWN;
	enum verdict_reason re = (unsigned)v->reason < VR__COUNT ? v->reason : VR_TEMP_FAILURE;
	char key[VERDICT_HOST_MAX + 32];

	if (v->mx_host[0] != '\0')
		dns_mx_domain(v->mx_host, key, sizeof(key));
	else
		snprintf(key, sizeof(key), "(no SMTP session)");
	if (rmap_add(&r->domains, key, s) == -1)
		return -1;
	if (v->smtp_code > 0)
		snprintf(key, sizeof(key), "%d%s%.15s", v->smtp_code, v->enhanced[0] ? " " : "",
		    v->enhanced);
	else
		snprintf(key, sizeof(key), "no SMTP reply");
	if (rmap_add(&r->replies, key, s) == -1)
		return -1;
	if (v->checked_at > 0) {
		snprintf(key, sizeof(key), "%" PRId64, v->checked_at);
		if (rmap_add(&r->seconds, key, s) == -1)
			return -1;
		if (v->checked_at < r->tmin)
			r->tmin = v->checked_at;
		if (v->checked_at > r->tmax)
			r->tmax = v->checked_at;
	}
	r->pair[s][re]++;
	r->status[s]++;
	r->total++;
	return 0;
}

/* ---- HTML ----------------------------------------------------------------- */

static void
html_esc(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				fputc('?', f);
			else
				fputc(*s, f);
		}
	}
}

static double
report_pct(uint64_t n, uint64_t total)
{
	return total ? 100.0 * (double)n / (double)total : 0.0;
}

static const char *
report_reply_color(const char *key)
{
	switch (key[0]) {
	case '2': return report_status_color[VS_DELIVERABLE];
	case '4': return report_status_color[VS_RISKY];
	case '5': return report_status_color[VS_UNDELIVERABLE];
	default: return report_status_color[VS_UNKNOWN];
	}
}

/* One horizontal bar chart: labels left, bars scaled to the largest value. */
struct hbar {
	const char *label, *color;
	uint64_t value;
	int status, reason;               /* reasons chart only */
};

static void
report_hbars(FILE *f, const char *title, const struct hbar *b, size_t n, uint64_t total)
{
	const int lw = 210, bw = 520, rh = 24, w = lw + bw + 130;
	uint64_t max = 1;

	for (size_t i = 0; i < n; i++)
		if (b[i].value > max)
			max = b[i].value;
	fprintf(f, "<svg class=\"chart\" viewBox=\"0 0 %d %zu\" role=\"img\"><title>", w,
	    n * rh + 4);
	html_esc(f, title);
	fputs("</title>\n", f);
	for (size_t i = 0; i < n; i++) {
		int y = (int)i * rh, len = (int)((double)bw * (double)b[i].value / (double)max);
		if (b[i].value > 0 && len < 2)
			len = 2;
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"lbl\">", lw - 8,
		    y + 17);
		html_esc(f, b[i].label);
		fprintf(f, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"3\" "
		    "fill=\"%s\"/><text x=\"%d\" y=\"%d\" class=\"val\">%" PRIu64 " (%.1f%%)</text>\n",
		    lw, y + 4, len, rh - 8, b[i].color, lw + len + 6, y + 17, b[i].value,
		    report_pct(b[i].value, total));
	}
	fputs("</svg>\n", f);
}

static void
report_section_status(FILE *f, const struct report *r)
{
	double x = 0;

	fputs("<section><h2>Status</h2>\n<div class=\"cards\">\n", f);
	for (int s = 0; s < VS__COUNT; s++)
		fprintf(f, "<div class=\"card\" style=\"border-top-color:%s\"><div class=\"k\">%s</div>"
		    "<div class=\"v\" id=\"status-%s\">%" PRIu64 "</div><div class=\"p\">%.1f%%</div>"
		    "</div>\n", report_status_color[s], verdict_status_name((enum verdict_status)s),
		    verdict_status_name((enum verdict_status)s), r->status[s],
		    report_pct(r->status[s], r->total));
	fputs("</div>\n<svg class=\"chart\" viewBox=\"0 0 860 34\" role=\"img\">"
	    "<title>Share of each status</title>\n", f);
	for (int s = 0; s < VS__COUNT; s++) {
		double w = r->total ? 860.0 * (double)r->status[s] / (double)r->total : 0;
		if (w <= 0)
			continue;
		fprintf(f, "<rect x=\"%.2f\" y=\"2\" width=\"%.2f\" height=\"30\" fill=\"%s\"/>", x, w,
		    report_status_color[s]);
		if (w > 70)
			fprintf(f, "<text x=\"%.2f\" y=\"22\" class=\"in\">%.0f%%</text>", x + 8,
			    report_pct(r->status[s], r->total));
		x += w;
	}
	fputs("\n</svg>\n</section>\n", f);
}

static void
report_section_reasons(FILE *f, const struct report *r)
{
	struct hbar b[VS__COUNT * VR__COUNT];
	char labels[VS__COUNT * VR__COUNT][64];
	size_t n = 0;

	for (int s = 0; s < VS__COUNT; s++)
		for (int re = 0; re < VR__COUNT; re++) {
			if (r->pair[s][re] == 0)
				continue;
			snprintf(labels[n], sizeof(labels[n]), "%s", verdict_reason_name(re));
			/* a reason under an unusual status is shown as status/reason */
			if (verdict_reason_status((enum verdict_reason)re) != (enum verdict_status)s)
				snprintf(labels[n], sizeof(labels[n]), "%s/%s",
				    verdict_status_name((enum verdict_status)s), verdict_reason_name(re));
			b[n].label = labels[n];
			b[n].color = report_status_color[s];
			b[n].value = r->pair[s][re];
			b[n].status = s;
			b[n].reason = re;
			n++;
		}
	/* largest first; insertion sort keeps equal counts in model order */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && b[j].value > b[j - 1].value; j--) {
			struct hbar t = b[j];
			b[j] = b[j - 1];
			b[j - 1] = t;
		}
	fputs("<section><h2>Reasons</h2>\n", f);
	if (n == 0) {
		fputs("<p>No verdicts.</p></section>\n", f);
		return;
	}
	report_hbars(f, "Verdicts by reason", b, n, r->total);
	fputs("<table><thead><tr><th>status</th><th>reason</th><th class=\"n\">count</th>"
	    "<th class=\"n\">share</th></tr></thead><tbody>\n", f);
	for (size_t i = 0; i < n; i++) {
		enum verdict_status s = (enum verdict_status)b[i].status;
		enum verdict_reason re = (enum verdict_reason)b[i].reason;
		int usual = verdict_reason_status(re) == s;

		/* id: reason-<reason>, or reason-<reason>-<status> when unusual */
		fprintf(f, "<tr><td><span class=\"dot\" style=\"background:%s\"></span>%s</td>"
		    "<td>%s</td><td class=\"n\" id=\"reason-%s%s%s\">%" PRIu64 "</td>"
		    "<td class=\"n\">%.1f%%</td></tr>\n", report_status_color[s],
		    verdict_status_name(s), verdict_reason_name(re), verdict_reason_name(re),
		    usual ? "" : "-", usual ? "" : verdict_status_name(s), b[i].value,
		    report_pct(b[i].value, r->total));
	}
	fputs("</tbody></table>\n</section>\n", f);
}

/* A small 100% stacked bar of one row's statuses. */
static void
report_minibar(FILE *f, const uint64_t n[VS__COUNT], uint64_t total)
{
	double x = 0;

	fputs("<svg class=\"mini\" viewBox=\"0 0 160 12\" role=\"img\"><title>status split</title>",
	    f);
	for (int s = 0; s < VS__COUNT; s++) {
		double w = total ? 160.0 * (double)n[s] / (double)total : 0;
		if (w > 0)
			fprintf(f, "<rect x=\"%.2f\" y=\"0\" width=\"%.2f\" height=\"12\" fill=\"%s\"/>",
			    x, w, report_status_color[s]);
		x += w;
	}
	fputs("</svg>", f);
}

static void
report_section_domains(FILE *f, const struct report *r)
{
	struct rent **v = rmap_sorted(&r->domains);
	uint64_t other[VS__COUNT] = { 0 }, other_total = 0;
	size_t nother = 0;

	fprintf(f, "<section><h2>Results per MX domain</h2>\n<p class=\"note\">%zu MX domain%s "
	    "(registrable domain of the mail server that answered). Largest first%s.</p>\n",
	    r->domains.len, r->domains.len == 1 ? "" : "s",
	    r->domains.len > REPORT_TOP_DOMAINS ? "; the rest are summed in the last row" : "");
	if (v == NULL) {
		fputs("<p>Out of memory.</p></section>\n", f);
		return;
	}
	fputs("<table><thead><tr><th>MX domain</th><th class=\"n\">total</th>", f);
	for (int s = 0; s < VS__COUNT; s++)
		fprintf(f, "<th class=\"n\">%s</th>", verdict_status_name((enum verdict_status)s));
	fputs("<th>split</th></tr></thead><tbody>\n", f);
	for (size_t i = 0; i < r->domains.len; i++) {
		if (i >= REPORT_TOP_DOMAINS) {
			for (int s = 0; s < VS__COUNT; s++)
				other[s] += v[i]->n[s];
			other_total += v[i]->total;
			nother++;
			continue;
		}
		fputs("<tr><td>", f);
		html_esc(f, v[i]->key);
		fprintf(f, "</td><td class=\"n\">%" PRIu64 "</td>", v[i]->total);
		for (int s = 0; s < VS__COUNT; s++)
			fprintf(f, "<td class=\"n\">%" PRIu64 "</td>", v[i]->n[s]);
		fputs("<td>", f);
		report_minibar(f, v[i]->n, v[i]->total);
		fputs("</td></tr>\n", f);
	}
	if (nother > 0) {
		fprintf(f, "<tr class=\"other\"><td>%zu other MX domains</td><td class=\"n\">%" PRIu64
		    "</td>", nother, other_total);
		for (int s = 0; s < VS__COUNT; s++)
			fprintf(f, "<td class=\"n\">%" PRIu64 "</td>", other[s]);
		fputs("<td>", f);
		report_minibar(f, other, other_total);
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table>\n</section>\n", f);
	free(v);
}

static void
report_section_replies(FILE *f, const struct report *r)
{
	struct rent **v = rmap_sorted(&r->replies);
	struct hbar b[REPORT_TOP_REPLIES + 1];
	char other[64];
	uint64_t rest = 0;
	size_t n = 0;

	fputs("<section><h2>SMTP reply codes</h2>\n<p class=\"note\">The reply that decided each "
	    "verdict (code and enhanced status code).</p>\n", f);
	if (v == NULL || r->replies.len == 0) {
		fputs("<p>No verdicts.</p></section>\n", f);
		free(v);
		return;
	}
	for (size_t i = 0; i < r->replies.len; i++) {
		if (n < REPORT_TOP_REPLIES) {
			b[n].label = v[i]->key;
			b[n].color = report_reply_color(v[i]->key);
			b[n].value = v[i]->total;
			n++;
		} else
			rest += v[i]->total;
	}
	if (rest > 0) {
		snprintf(other, sizeof(other), "%zu other codes", r->replies.len - REPORT_TOP_REPLIES);
		b[n].label = other;
		b[n].color = report_status_color[VS_UNKNOWN];
		b[n].value = rest;
		n++;
	}
	report_hbars(f, "Verdicts by deciding SMTP reply", b, n, r->total);
	fputs("</section>\n", f);
	free(v);
}

/* A bucket width (seconds) from a fixed ladder giving at most MAX buckets. */
static int64_t
report_bucket_step(int64_t span)
{
	static const int64_t steps[] = { 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
		7200, 10800, 21600, 43200, 86400, 172800, 604800 };
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]) - 1; i++)
		if ((span + steps[i]) / steps[i] <= REPORT_MAX_BUCKETS)
			break;
	return steps[i];
}

static void
report_time_label(char *out, size_t len, int64_t t, int64_t span)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, span >= 86400 ? "%m-%d %H:%M" : span >= 600 ? "%H:%M" : "%H:%M:%S",
	    &tm);
}

static void
report_section_time(FILE *f, const struct report *r)
{
	const int w = 860, h = 240, left = 56, right = 12, top = 12, bottom = 40;
	uint64_t bucket[REPORT_MAX_BUCKETS + 1][VS__COUNT] = { { 0 } }, max = 1;
	int64_t span, step, t0;
	size_t nb;
	char a[32], b[32];

	fputs("<section><h2>Throughput over time</h2>\n", f);
	if (r->seconds.len == 0) {
		fputs("<p>No verdict carries a time.</p></section>\n", f);
		return;
	}
	span = r->tmax - r->tmin;
	step = report_bucket_step(span);
	t0 = r->tmin - r->tmin % step;
	nb = (size_t)((r->tmax - t0) / step) + 1;
	if (nb > REPORT_MAX_BUCKETS + 1)
		nb = REPORT_MAX_BUCKETS + 1;
	for (size_t i = 0; i < r->seconds.cap; i++) {
		const struct rent *e = &r->seconds.e[i];
		if (e->key == NULL)
			continue;
		size_t k = (size_t)((strtoll(e->key, NULL, 10) - t0) / step);
		if (k >= nb)
			k = nb - 1;
		for (int s = 0; s < VS__COUNT; s++)
			bucket[k][s] += e->n[s];
	}
	for (size_t k = 0; k < nb; k++) {
		uint64_t sum = 0;
		for (int s = 0; s < VS__COUNT; s++)
			sum += bucket[k][s];
		if (sum > max)
			max = sum;
	}
	max += max % 2;    /* the middle grid line gets a whole number */
	report_time_label(a, sizeof(a), r->tmin, span);
	report_time_label(b, sizeof(b), r->tmax, span);
	fprintf(f, "<p class=\"note\">Verdicts per %" PRId64 " s (UTC), stacked by status, from %s "
	    "to %s; average %.1f per second.</p>\n", step, a, b,
	    (double)r->total / (double)(span > 0 ? span + 1 : 1));
	fprintf(f, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\"><title>Verdicts per "
	    "%" PRId64 " seconds</title>\n", w, h, step);
	/* y axis: 0, half, max */
	for (int g = 0; g <= 2; g++) {
		int y = top + (h - top - bottom) * (2 - g) / 2;
		fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"grid\"/>"
		    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"ax\">%" PRIu64 "</text>\n",
		    left, w - right, y, y, left - 6, y + 4, max * (uint64_t)g / 2);
	}
	/* few buckets: keep columns narrow rather than one slab across the chart */
	double bw = (double)(w - left - right) / (double)nb;
	if (bw > 48)
		bw = 48;
	for (size_t k = 0; k < nb; k++) {
		double y = h - bottom, x = left + bw * (double)k;
		for (int s = 0; s < VS__COUNT; s++) {
			double bh = (double)(h - top - bottom) * (double)bucket[k][s] / (double)max;
			if (bh <= 0)
				continue;
			y -= bh;
			fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
			    "fill=\"%s\"/>", x + 1, y, bw > 3 ? bw - 2 : bw, bh, report_status_color[s]);
		}
	}
	fputs("\n", f);
	/* x labels: about six, at bucket starts */
	size_t every = nb / 6 + 1;
	for (size_t k = 0; k < nb; k += every) {
		report_time_label(a, sizeof(a), t0 + (int64_t)k * step, span);
		fprintf(f, "<text x=\"%.2f\" y=\"%d\" class=\"ax\">%s</text>", left + bw * (double)k,
		    h - bottom + 18, a);
	}
	fputs("\n</svg>\n</section>\n", f);
}

static const char report_css[] =
    "*{box-sizing:border-box}"
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "color:#1d2329;background:#f5f6f8;margin:0}"
    "main{max-width:960px;margin:0 auto;padding:24px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}"
    "section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:18px 20px;"
    "margin:16px 0}"
    ".sub{color:#5b6670;margin:0 0 12px}"
    ".facts{display:flex;flex-wrap:wrap;gap:6px 24px;margin:0;padding:0}"
    ".facts div{display:flex;gap:6px}.facts dt{color:#5b6670}.facts dd{margin:0;font-weight:600}"
    ".total{font-size:40px;font-weight:700;line-height:1.1}"
    ".cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:14px}"
    ".card{border:1px solid #dde1e6;border-top:4px solid;border-radius:6px;padding:10px 12px}"
    ".card .k{color:#5b6670;font-size:13px;text-transform:uppercase;letter-spacing:.04em}"
    ".card .v{font-size:26px;font-weight:700}.card .p{color:#5b6670}"
    ".chart{width:100%;height:auto;display:block;margin:6px 0 12px}"
    ".chart text{font-size:13px;fill:#1d2329}.chart .ax{font-size:11px;fill:#5b6670}"
    ".chart .in{fill:#fff;font-weight:600}.chart .grid{stroke:#e3e6ea;stroke-width:1}"
    ".mini{width:160px;height:12px;display:block}"
    "table{border-collapse:collapse;width:100%;font-size:14px}"
    "th,td{padding:5px 8px;border-bottom:1px solid #eceff2;text-align:left}"
    "th{color:#5b6670;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.other td{color:#5b6670;font-style:italic}"
    ".dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}"
    ".note{color:#5b6670;font-size:13px;margin:0 0 8px}"
    "footer{color:#5b6670;font-size:12px;text-align:center;margin:12px 0 24px}"
    "@media print{body{background:#fff}section{break-inside:avoid}}";

int
report_write_html(const struct report *r, const char *title, const struct report_fact *facts,
    size_t nfacts, FILE *f)
{
	char now[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%d %H:%M UTC", &tm);
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	    "style-src 'unsafe-inline'; img-src data:\">\n<title>", f);
	html_esc(f, title);
	fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<header>\n<h1>", report_css);
	html_esc(f, title);
	fprintf(f, "</h1>\n<p class=\"sub\">Email verification report by mxsift %s, generated %s."
	    "</p>\n<div class=\"total\"><span id=\"total\">%" PRIu64 "</span> verdicts</div>\n",
	    MXSIFT_VERSION, now, r->total);
	if (nfacts > 0) {
		fputs("<dl class=\"facts\">\n", f);
		for (size_t i = 0; i < nfacts; i++) {
			fputs("<div><dt>", f);
			html_esc(f, facts[i].label);
			fputs("</dt><dd>", f);
			html_esc(f, facts[i].value);
			fputs("</dd></div>\n", f);
		}
		fputs("</dl>\n", f);
	}
	fputs("</header>\n", f);
	report_section_status(f, r);
	report_section_reasons(f, r);
	report_section_domains(f, r);
	report_section_replies(f, r);
	report_section_time(f, r);
	fputs("<footer id=\"end\">Counts are one per unique address, plus one per invalid input "
	    "row. deliverable: the server accepted the recipient; undeliverable: it does not exist "
	    "or cannot receive mail; risky: accepted but doubtful (catch-all, full, disposable, "
	    "role); unknown: no definite answer (greylisting, blocks, timeouts).</footer>\n"
	    "</main>\n</body>\n</html>\n", f);
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}
