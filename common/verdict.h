/*
 * verdict.h — the verdict model shared by every stage.
 *
 * Every input row gets exactly one verdict: a status, a reason and the
 * evidence that led to it (SMTP reply, MX host, ...).  The enums below are
 * the closed vocabulary written to output files and Redis; their string
 * names (verdict_status_name(), verdict_reason_name()) are the stable
 * external form.
 */
#ifndef MXSIFT_VERDICT_H
#define MXSIFT_VERDICT_H

#include <stdint.h>
#include <stdio.h>

enum verdict_status {
	VS_DELIVERABLE = 0,
	VS_UNDELIVERABLE,
	VS_RISKY,
	VS_UNKNOWN,
	VS__COUNT
};

enum verdict_reason {
	VR_ACCEPTED = 0,
	VR_MAILBOX_NOT_FOUND,
	VR_INVALID_SYNTAX,
	VR_NO_MAIL_SERVER,
	VR_MAILBOX_DISABLED,
	VR_CATCH_ALL,
	VR_MAILBOX_FULL,
	VR_DISPOSABLE,
	VR_ROLE_ACCOUNT,
	VR_GREYLISTED,
	VR_TEMP_FAILURE,
	VR_TIMEOUT,
	VR_BLOCKED,
	VR_PROTOCOL_ERROR,
	VR_TLS_FAILED,
	VR_DNS_ERROR,
	VR_CONNECTION_FAILED,
	VR_SMTPUTF8_UNSUPPORTED,
	VR_REJECTED,            /* a 5xx we could not place more precisely */
	VR__COUNT
};

/* flags: properties of the address, independent of the verdict */
#define VERDICT_F_DISPOSABLE     0x01u
#define VERDICT_F_ROLE           0x02u
#define VERDICT_F_FREE_PROVIDER  0x04u
#define VERDICT_F_CATCH_ALL      0x08u
#define VERDICT_F_SMTPUTF8       0x10u
#define VERDICT_F_IMPLICIT_MX    0x20u

#define VERDICT_TEXT_MAX   256   /* reply text kept as evidence (sanitised) */
#define VERDICT_HOST_MAX   256
#define VERDICT_DETAIL_MAX 128

struct verdict {
	enum verdict_status status;
	enum verdict_reason reason;
	int smtp_code;                       /* 0 = no SMTP reply involved */
	char enhanced[16];                   /* "5.1.1" or "" */
	char text[VERDICT_TEXT_MAX];         /* sanitised reply text, printable ASCII */
	char mx_host[VERDICT_HOST_MAX];      /* host that answered, "" if none */
	char detail[VERDICT_DETAIL_MAX];     /* e.g. syntax rule broken, DNS error */
	int tls;                             /* 1 if the answer came over TLS */
	unsigned attempts;
	uint64_t duration_ms;
	int64_t checked_at;                  /* unix seconds */
	unsigned flags;                      /* VERDICT_F_* */
	char suggestion[VERDICT_HOST_MAX];   /* typo suggestion for the domain
	                                        (e.g. "gmail.com"), never applied; "" */
};

const char *verdict_status_name(enum verdict_status s);
const char *verdict_reason_name(enum verdict_reason r);
/* Parse names back; return -1 when unknown. */
int verdict_status_parse(const char *name);
int verdict_reason_parse(const char *name);

/* The status a reason implies (e.g. VR_MAILBOX_NOT_FOUND -> VS_UNDELIVERABLE). */
enum verdict_status verdict_reason_status(enum verdict_reason r);

/* Fill v with status/reason (status from verdict_reason_status), zero the rest
 * and stamp checked_at = now. */
void verdict_init(struct verdict *v, enum verdict_reason r);

/* The flag rule of the verdict model: flags are ORed into v->flags and
 * always kept; a verdict that is deliverable becomes risky/disposable when
 * flags has VERDICT_F_DISPOSABLE, else risky/role_account when it has
 * VERDICT_F_ROLE.  Every other verdict keeps its status and reason (a
 * mailbox that does not exist is undeliverable whatever its name). */
void verdict_apply_flags(struct verdict *v, unsigned flags);

/* Copy reply text into v->text: CR/LF/controls become spaces, non-ASCII
 * becomes '?', capped at VERDICT_TEXT_MAX-1. */
void verdict_set_text(struct verdict *v, const char *text, size_t len);

/* ---- output rows (mxsift check, mxsift export) ----------------------- */

enum verdict_format { VF_CSV = 0, VF_JSONL };

/* One output row. line = input line number (0 when unknown, e.g. export);
 * input = the original text of the row as read (may be NULL);
 * address = normalised address (may be "" for unparseable rows). */
struct verdict_row {
	uint64_t line;
	const char *input;
	const char *address;
	const struct verdict *v;
};

/* Header line for CSV (no-op for JSONL). Returns 0 or -1 on write error. */
int verdict_write_header(FILE *out, enum verdict_format f);
/* One row; CSV quoting by libcsv; JSON strings escaped. 0 or -1. */
int verdict_write_row(FILE *out, enum verdict_format f, const struct verdict_row *row);

#endif
