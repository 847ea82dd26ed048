/*
 * verdict.c — the verdict vocabulary (names, parsing, reason -> status) and
 * the output rows of `mxsift check` / `mxsift export`.
 *
 * Owns: the closed name tables (the stable external form of the enums) and
 * the two row formats:
 *   CSV   — header line,input,address,status,reason,smtp_code,enhanced_code,
 *           mx_host,detail,reply,suggestion; text fields quoted by libcsv (csv_fwrite),
 *           numbers bare, smtp_code and line empty when 0 (no SMTP reply /
 *           line unknown).
 *   JSONL — one object per line with the same field names plus tls,
 *           attempts, duration_ms, checked_at, flags (array of names) and
 *           suggestion (last, "" when none);
 *           smtp_code and line are null when 0, input is null when absent.
 *           Strings are valid JSON whatever bytes they hold: controls become
 *           \u00XX (or \n, \t ...), invalid UTF-8 becomes \ufffd per byte.
 *
 * Returns: writers give 0, or -1 when the stream reports an error.
 * Diagnostics: none; out-of-range enum values are named "invalid".
 */
#include "verdict.h"

#include <csv.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

static const char *const verdict_status_names[VS__COUNT] = {
    [VS_DELIVERABLE] = "deliverable",
    [VS_UNDELIVERABLE] = "undeliverable",
    [VS_RISKY] = "risky",
    [VS_UNKNOWN] = "unknown",
};

/* Name and implied status of every reason: one row per reason so the two
 * can never drift apart. */
static const struct {
	const char *name;
	enum verdict_status status;
} verdict_reasons[VR__COUNT] = {
    [VR_ACCEPTED] = {"accepted", VS_DELIVERABLE},
    [VR_MAILBOX_NOT_FOUND] = {"mailbox_not_found", VS_UNDELIVERABLE},
    [VR_INVALID_SYNTAX] = {"invalid_syntax", VS_UNDELIVERABLE},
    [VR_NO_MAIL_SERVER] = {"no_mail_server", VS_UNDELIVERABLE},
    [VR_MAILBOX_DISABLED] = {"mailbox_disabled", VS_UNDELIVERABLE},
    [VR_CATCH_ALL] = {"catch_all", VS_RISKY},
    [VR_MAILBOX_FULL] = {"mailbox_full", VS_RISKY},
    [VR_DISPOSABLE] = {"disposable", VS_RISKY},
    [VR_ROLE_ACCOUNT] = {"role_account", VS_RISKY},
    [VR_GREYLISTED] = {"greylisted", VS_UNKNOWN},
    [VR_TEMP_FAILURE] = {"temp_failure", VS_UNKNOWN},
    [VR_TIMEOUT] = {"timeout", VS_UNKNOWN},
    [VR_BLOCKED] = {"blocked", VS_UNKNOWN},
    [VR_PROTOCOL_ERROR] = {"protocol_error", VS_UNKNOWN},
    [VR_TLS_FAILED] = {"tls_failed", VS_UNKNOWN},
    [VR_DNS_ERROR] = {"dns_error", VS_UNKNOWN},
    [VR_CONNECTION_FAILED] = {"connection_failed", VS_UNKNOWN},
    [VR_SMTPUTF8_UNSUPPORTED] = {"smtputf8_unsupported", VS_UNKNOWN},
    /* A 5xx we could not place: the server refused, but we cannot tell
     * that the mailbox does not exist, so it is not undeliverable. */
    [VR_REJECTED] = {"rejected", VS_UNKNOWN},
};

static const struct {
	unsigned bit;
	const char *name;
} verdict_flag_names[] = {
    {VERDICT_F_DISPOSABLE, "disposable"},       {VERDICT_F_ROLE, "role"},
    {VERDICT_F_FREE_PROVIDER, "free_provider"}, {VERDICT_F_CATCH_ALL, "catch_all"},
    {VERDICT_F_SMTPUTF8, "smtputf8"},           {VERDICT_F_IMPLICIT_MX, "implicit_mx"},
};

const char *
verdict_status_name(enum verdict_status s)
{
	if ((unsigned)s >= VS__COUNT)
		return "invalid";
	return verdict_status_names[s];
}

const char *
verdict_reason_name(enum verdict_reason r)
{
	if ((unsigned)r >= VR__COUNT)
		return "invalid";
	return verdict_reasons[r].name;
}

int
verdict_status_parse(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < VS__COUNT; i++)
		if (strcmp(name, verdict_status_names[i]) == 0)
			return i;
	return -1;
}

int
verdict_reason_parse(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < VR__COUNT; i++)
		if (strcmp(name, verdict_reasons[i].name) == 0)
			return i;
	return -1;
}

enum verdict_status
verdict_reason_status(enum verdict_reason r)
{
	if ((unsigned)r >= VR__COUNT)
		return VS_UNKNOWN;
	return verdict_reasons[r].status;
}

void
verdict_init(struct verdict *v, enum verdict_reason r)
{
	memset(v, 0, sizeof(*v));
	v->reason = r;
	v->status = verdict_reason_status(r);
	v->checked_at = (int64_t)time(NULL);
}

void
verdict_set_text(struct verdict *v, const char *text, size_t len)
{
	size_t i, n = 0;
	unsigned char c;

	if (text != NULL) {
		for (i = 0; i < len && n < sizeof(v->text) - 1; i++) {
			c = (unsigned char)text[i];
			if (c < 0x20 || c == 0x7f)
				c = ' ';
			else if (c > 0x7f)
				c = '?';
			v->text[n++] = (char)c;
		}
	}
	v->text[n] = '\0';
}

void
verdict_apply_flags(struct verdict *v, unsigned flags)
{
	v->flags |= flags;
	if (v->status != VS_DELIVERABLE)
		return;
	if (v->flags & VERDICT_F_DISPOSABLE)
		v->reason = VR_DISPOSABLE;
	else if (v->flags & VERDICT_F_ROLE)
		v->reason = VR_ROLE_ACCOUNT;
	else
		return;
	v->status = verdict_reason_status(v->reason);
}

/* ---- CSV --------------------------------------------------------------- */

static const char *const verdict_columns[] = {
    "line",      "input",         "address", "status", "reason",
    "smtp_code", "enhanced_code", "mx_host", "detail", "reply",
    "suggestion",
};

/* Fixed-size fields of struct verdict are read up to their size even if a
 * caller forgot the terminating NUL. */
#define VERDICT_FIELD(f) (f), strnlen((f), sizeof(f))

static int
verdict_csv_field(FILE *out, const char *s, size_t len)
{
	if (putc(',', out) == EOF)
		return -1;
	if (s == NULL)
		s = "";
	return csv_fwrite(out, s, len) == 0 ? 0 : -1;
}

static int
verdict_csv_str(FILE *out, const char *s)
{
	return verdict_csv_field(out, s, s != NULL ? strlen(s) : 0);
}

int
verdict_write_header(FILE *out, enum verdict_format f)
{
	size_t i;

	if (f != VF_CSV)
		return 0;
	/* Plain names: they need no quoting, and tools sniff the header. */
	for (i = 0; i < sizeof(verdict_columns) / sizeof(verdict_columns[0]); i++)
		if (fprintf(out, "%s%s", i ? "," : "", verdict_columns[i]) < 0)
			return -1;
	if (putc('\n', out) == EOF)
		return -1;
	return ferror(out) ? -1 : 0;
}

static int
verdict_write_csv(FILE *out, const struct verdict_row *row)
{
	const struct verdict *v = row->v;
	int rc = 0;

	if (row->line != 0 && fprintf(out, "%" PRIu64, row->line) < 0)
		return -1;
	rc |= verdict_csv_str(out, row->input);
	rc |= verdict_csv_str(out, row->address);
	rc |= verdict_csv_str(out, verdict_status_name(v->status));
	rc |= verdict_csv_str(out, verdict_reason_name(v->reason));
	if (putc(',', out) == EOF)
		return -1;
	if (v->smtp_code != 0 && fprintf(out, "%d", v->smtp_code) < 0)
		return -1;
	rc |= verdict_csv_field(out, VERDICT_FIELD(v->enhanced));
	rc |= verdict_csv_field(out, VERDICT_FIELD(v->mx_host));
	rc |= verdict_csv_field(out, VERDICT_FIELD(v->detail));
	rc |= verdict_csv_field(out, VERDICT_FIELD(v->text));
	rc |= verdict_csv_field(out, VERDICT_FIELD(v->suggestion));
	if (rc != 0 || putc('\n', out) == EOF)
		return -1;
	return 0;
}

/* ---- JSON -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, of at most n bytes (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF), or 0 if the byte
 * starts none. */
static size_t
verdict_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/* A JSON string of len bytes; NULL is written as null. */
static void
verdict_json_field(FILE *out, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	const unsigned char *end = s + len;
	size_t n;

	if (str == NULL) {
		fputs("null", out);
		return;
	}
	putc('"', out);
	while (s < end) {
		switch (*s) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				fprintf(out, "\\u%04x", *s);
				break;
			}
			if ((n = verdict_utf8_len(s, (size_t)(end - s))) == 0) {
				fputs("\\ufffd", out);
				break;
			}
			fwrite(s, 1, n, out);
			s += n;
			continue;
		}
		s++;
	}
	putc('"', out);
}

static void
verdict_json_string(FILE *out, const char *str)
{
	verdict_json_field(out, str, str != NULL ? strlen(str) : 0);
}

static void
verdict_json_key(FILE *out, const char *key, int first)
{
	fprintf(out, "%s\"%s\":", first ? "" : ",", key);
}

static int
verdict_write_jsonl(FILE *out, const struct verdict_row *row)
{
	const struct verdict *v = row->v;
	size_t i;
	int nflags = 0;

	verdict_json_key(out, "line", 1);
	if (row->line != 0)
		fprintf(out, "%" PRIu64, row->line);
	else
		fputs("null", out);
	verdict_json_key(out, "input", 0);
	verdict_json_string(out, row->input);
	verdict_json_key(out, "address", 0);
	verdict_json_string(out, row->address != NULL ? row->address : "");
	verdict_json_key(out, "status", 0);
	verdict_json_string(out, verdict_status_name(v->status));
	verdict_json_key(out, "reason", 0);
	verdict_json_string(out, verdict_reason_name(v->reason));
	verdict_json_key(out, "smtp_code", 0);
	if (v->smtp_code != 0)
		fprintf(out, "%d", v->smtp_code);
	else
		fputs("null", out);
	verdict_json_key(out, "enhanced_code", 0);
	verdict_json_field(out, VERDICT_FIELD(v->enhanced));
	verdict_json_key(out, "mx_host", 0);
	verdict_json_field(out, VERDICT_FIELD(v->mx_host));
	verdict_json_key(out, "detail", 0);
	verdict_json_field(out, VERDICT_FIELD(v->detail));
	verdict_json_key(out, "reply", 0);
	verdict_json_field(out, VERDICT_FIELD(v->text));
	verdict_json_key(out, "tls", 0);
	fputs(v->tls ? "true" : "false", out);
	fprintf(out,
	        ",\"attempts\":%u,\"duration_ms\":%" PRIu64 ",\"checked_at\":%" PRId64
	        ",\"flags\":[",
	        v->attempts, v->duration_ms, v->checked_at);
	for (i = 0; i < sizeof(verdict_flag_names) / sizeof(verdict_flag_names[0]); i++)
		if (v->flags & verdict_flag_names[i].bit)
			fprintf(out, "%s\"%s\"", nflags++ ? "," : "", verdict_flag_names[i].name);
	fputc(']', out);
	verdict_json_key(out, "suggestion", 0);
	verdict_json_field(out, VERDICT_FIELD(v->suggestion));
	fputs("}\n", out);
	return ferror(out) ? -1 : 0;
}

int
verdict_write_row(FILE *out, enum verdict_format f, const struct verdict_row *row)
{
	if (row == NULL || row->v == NULL)
		return -1;
	if (f == VF_JSONL) {
		/* the object opens here so the helpers can all use "," first */
		if (putc('{', out) == EOF)
			return -1;
		return verdict_write_jsonl(out, row);
	}
	if (verdict_write_csv(out, row) != 0)
		return -1;
	return ferror(out) ? -1 : 0;
}
