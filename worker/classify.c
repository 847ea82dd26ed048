/*
 * classify.c — the reply to a probe command -> verdict + what to do next.
 *
 * Owns: one ordered rule table.  Each rule matches on stage, reply code
 * ("550", "55x", "5xx", alternatives with '|'), enhanced status code
 * (class.subject.detail, 'x' = any component; "" = absent or the
 * uninformative X.0.0) and, only where codes say too little, case-insensitive
 * phrases of the reply text.  The first matching rule wins, so rules run
 * from most to least specific; the last rule for each class is the catch-all.
 *
 * Returns: the action (final / retry later / retry now) and fills v->status,
 * reason, smtp_code, enhanced and text.  Other fields of v (mx_host, tls,
 * attempts ...) are the caller's and are left alone.
 *
 * Invariants (also enforced after the table, in case a rule is ever wrong):
 * a 4xx is never undeliverable; a 5.7.x policy rejection is never
 * undeliverable.  Precision beats recall: a false "undeliverable" makes users
 * delete a real address, so anything mentioning policy or blocking wins over
 * "user unknown" phrases, and an unplaceable 5xx is VR_REJECTED (unknown).
 *
 * Diagnostics: a 503 means our own command sequencing is wrong;
 * it is logged at error level.  A reply no rule covers (2xx/3xx before RCPT,
 * codes outside 2xx..5xx) is logged at warn level as a protocol error.
 */
#include "classify.h"

#include <string.h>
#include <strings.h>

#include "log.h"

#define ST_GREETING (1u << CLASSIFY_GREETING)
#define ST_HELO (1u << CLASSIFY_HELO)
#define ST_MAIL (1u << CLASSIFY_MAIL)
#define ST_RCPT (1u << CLASSIFY_RCPT)
#define ST_PRE_RCPT (ST_GREETING | ST_HELO | ST_MAIL)
#define ST_ANY 0u

#define T(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ABSENT ""

struct classify_rule {
	unsigned stages;         /* ST_* mask; 0 = any stage */
	const char *code;        /* "550|551", "4xx"; x = any digit */
	const char *enh;         /* NULL any; "" absent; "5.1.x" */
	const char *const *text; /* NULL any; else any phrase matches */
	enum verdict_reason reason;
	enum classify_action action;
};

/* Phrases, lower case; matched case-insensitively as substrings. */
static const char *const classify_greylist_text[] = {
    "greylist", "graylist", "try again later", "please retry", "temporarily deferred", NULL};
static const char *const classify_blocked_text[] = {
    "blocked", "spam",   "blacklist", "blocklist", "policy", "reputation",
    "relay",   "denied", "rbl",       "banned",    NULL};
static const char *const classify_not_found_text[] = {
    "user unknown",       "no such user",      "does not exist",    "mailbox unavailable",
    "recipient rejected", "unknown recipient", "unknown user",      "recipient unknown",
    "no such mailbox",    "mailbox not found", "invalid recipient", "unrouteable address",
    "user not found",     "doesn't have a",    "no mailbox here",   NULL};
static const char *const classify_disabled_text[] = {
    "mailbox is disabled",       "mailbox disabled", "account is disabled",
    "account has been disabled", "account disabled", NULL};

static const struct classify_rule classify_rules[] = {
    /* --- any stage --------------------------------------------------- */
    /* 421: the server is closing the session; nothing about the mailbox. */
    {ST_ANY, "421", NULL, NULL, VR_TEMP_FAILURE, CLASSIFY_RETRY_LATER},
    /* 503: bad sequence of commands — our bug, never a mailbox verdict. */
    {ST_ANY, "503", NULL, NULL, VR_PROTOCOL_ERROR, CLASSIFY_FINAL},
    /* RFC 6531: the server cannot take our non-ASCII address. */
    {ST_ANY, "5xx", "5.6.7", NULL, VR_SMTPUTF8_UNSUPPORTED, CLASSIFY_FINAL},
    /* 555: a MAIL/RCPT parameter we sent is unknown to the server. */
    {ST_ANY, "555", NULL, NULL, VR_PROTOCOL_ERROR, CLASSIFY_FINAL},

    /* --- 4xx: temporary, never undeliverable -------------------------- */
    {ST_RCPT, "4xx", "4.2.2", NULL, VR_MAILBOX_FULL, CLASSIFY_RETRY_LATER},
    /* Too many recipients: about the transaction, not the mailbox. */
    {ST_RCPT, "4xx|5xx", "x.5.3", NULL, VR_TEMP_FAILURE, CLASSIFY_RETRY_NOW},
    {ST_RCPT, "452", NULL, T("too many recipients"), VR_TEMP_FAILURE, CLASSIFY_RETRY_NOW},
    {ST_ANY, "450|451", "4.7.1", NULL, VR_GREYLISTED, CLASSIFY_RETRY_LATER},
    {ST_ANY, "4xx", NULL, classify_greylist_text, VR_GREYLISTED, CLASSIFY_RETRY_LATER},
    {ST_ANY, "4xx", NULL, NULL, VR_TEMP_FAILURE, CLASSIFY_RETRY_LATER},

    /* --- 5xx before RCPT: the server refuses us, not the mailbox ------- */
    {ST_PRE_RCPT, "5xx", NULL, NULL, VR_BLOCKED, CLASSIFY_FINAL},

    /* --- RCPT -------------------------------------------------------- */
    {ST_RCPT, "2xx", NULL, NULL, VR_ACCEPTED, CLASSIFY_FINAL},
    {ST_RCPT, "5xx", "x.7.x", NULL, VR_BLOCKED, CLASSIFY_FINAL},
    /* Postfix evaluates client/HELO/sender restrictions at RCPT time;
     * such a rejection says nothing about the recipient. */
    {ST_RCPT, "5xx", NULL,
     T("sender address rejected", "helo command rejected", "client host rejected"), VR_BLOCKED,
     CLASSIFY_FINAL},
    /* X.1.7 / X.1.8 are about the sender's address. */
    {ST_RCPT, "5xx", "5.1.7|5.1.8", NULL, VR_BLOCKED, CLASSIFY_FINAL},
    {ST_RCPT, "5xx", "5.1.1", NULL, VR_MAILBOX_NOT_FOUND, CLASSIFY_FINAL},
    /* 5.1.3 (bad destination mailbox address syntax) is the receiver's
     * word that no mailbox by that name exists there, whatever the code
     * (Postfix says 501, Sendmail 553): mailbox_not_found.  invalid_syntax
     * stays our own syntax check's verdict, for addresses never asked. */
    {ST_RCPT, "5xx", "5.1.3", NULL, VR_MAILBOX_NOT_FOUND, CLASSIFY_FINAL},
    /* 554 is also the code of blanket policy refusals: a 554 5.1.x that
     * talks of blocking or policy is about us, not the mailbox. */
    {ST_RCPT, "554", "5.1.x", classify_blocked_text, VR_BLOCKED, CLASSIFY_FINAL},
    /* Includes 5.1.10: at RCPT the domain has a live MX, so it is
     * Microsoft's "RecipientNotFound", not RFC 7505's null MX.  And 554
     * 5.1.0 ("other address status" at RCPT, with no word of policy or of
     * the sender, ruled out above): the destination mailbox is bad. */
    {ST_RCPT, "550|551|553|554", "5.1.x", NULL, VR_MAILBOX_NOT_FOUND, CLASSIFY_FINAL},
    {ST_RCPT, "5xx", "5.2.1", NULL, VR_MAILBOX_DISABLED, CLASSIFY_FINAL},
    {ST_RCPT, "5xx", "5.2.2", NULL, VR_MAILBOX_FULL, CLASSIFY_FINAL},
    /* Exchange Online directory-based edge blocking: unknown recipient. */
    {ST_RCPT, "550", "5.4.1", T("recipient address rejected: access denied"), VR_MAILBOX_NOT_FOUND,
     CLASSIFY_FINAL},
    /* Outlook.com answers unknown recipients this way. */
    {ST_RCPT, "550", "5.5.0", T("mailbox unavailable"), VR_MAILBOX_NOT_FOUND, CLASSIFY_FINAL},
    {ST_RCPT, "500|501|502|504", NULL, NULL, VR_PROTOCOL_ERROR, CLASSIFY_FINAL},
    /* No informative enhanced code: the text is all there is.  Blocking
     * phrases first, so "recipient rejected by policy" stays unknown. */
    {ST_RCPT, "550|551|553|554", ABSENT, classify_blocked_text, VR_BLOCKED, CLASSIFY_FINAL},
    {ST_RCPT, "550|551|553|554", ABSENT, classify_disabled_text, VR_MAILBOX_DISABLED,
     CLASSIFY_FINAL},
    {ST_RCPT, "550|551|553|554", ABSENT, classify_not_found_text, VR_MAILBOX_NOT_FOUND,
     CLASSIFY_FINAL},
    /* RFC 5321: 552 = exceeded storage allocation. */
    {ST_RCPT, "552", ABSENT, NULL, VR_MAILBOX_FULL, CLASSIFY_FINAL},
    {ST_RCPT, "5xx", NULL, NULL, VR_REJECTED, CLASSIFY_FINAL},
};

static const char *const classify_stage_names[] = {
    [CLASSIFY_GREETING] = "greeting",
    [CLASSIFY_HELO] = "helo",
    [CLASSIFY_MAIL] = "mail",
    [CLASSIFY_RCPT] = "rcpt",
};

/* code against "550|55x|5xx" */
static int
classify_match_code(const char *pat, int code)
{
	char d[3];
	const char *p;
	int i;

	if (code < 100 || code > 999)
		return 0;
	d[0] = (char)('0' + code / 100);
	d[1] = (char)('0' + code / 10 % 10);
	d[2] = (char)('0' + code % 10);
	for (p = pat;; p += 4) {
		for (i = 0; i < 3; i++)
			if (p[i] != 'x' && p[i] != d[i])
				break;
		if (i == 3)
			return 1;
		if (p[3] != '|')
			return 0;
	}
}

/* One component-wise match of enhanced code e against "5.1.x". */
static int
classify_match_enh1(const char *pat, size_t plen, const char *e)
{
	const char *pe = pat + plen;
	size_t pn, en;

	for (;;) {
		pn = strcspn(pat, ".|");
		if (pat + pn > pe)
			pn = (size_t)(pe - pat);
		en = strcspn(e, ".");
		if (!(pn == 1 && pat[0] == 'x') && (pn != en || strncmp(pat, e, pn) != 0))
			return 0;
		pat += pn;
		e += en;
		if (pat >= pe || *pat != '.')
			return *e == '\0';
		if (*e != '.')
			return 0;
		pat++;
		e++;
	}
}

static int
classify_match_enh(const char *pat, const char *e)
{
	size_t n;

	if (pat == NULL)
		return 1;
	if (*pat == '\0')
		return *e == '\0';
	if (*e == '\0')
		return 0;
	for (;;) {
		n = strcspn(pat, "|");
		if (classify_match_enh1(pat, n, e))
			return 1;
		if (pat[n] != '|')
			return 0;
		pat += n + 1;
	}
}

static int
classify_match_text(const char *const *phrases, const char *text)
{
	if (phrases == NULL)
		return 1;
	for (; *phrases != NULL; phrases++)
		if (strcasestr(text, *phrases) != NULL)
			return 1;
	return 0;
}

enum classify_action
classify_reply(enum classify_stage stage, const struct smtp_reply *r, struct verdict *v)
{
	const struct classify_rule *rule = NULL;
	const char *stname;
	char enh[sizeof(r->enhanced)];
	const char *text;
	unsigned stmask = 0;
	enum verdict_reason reason = VR_PROTOCOL_ERROR;
	enum classify_action action = CLASSIFY_FINAL;
	size_t i;

	if ((unsigned)stage < sizeof(classify_stage_names) / sizeof(classify_stage_names[0])) {
		stname = classify_stage_names[stage];
		stmask = 1u << stage;
	} else
		stname = "?"; /* only stage-independent rules can match */
	if (r == NULL) {
		v->reason = VR_PROTOCOL_ERROR;
		v->status = verdict_reason_status(v->reason);
		v->smtp_code = 0;
		v->enhanced[0] = '\0';
		v->text[0] = '\0';
		return CLASSIFY_FINAL;
	}
	text = r->text != NULL ? r->text : "";

	/* The reader sanitises already; a reply built by hand may not be. */
	memcpy(enh, r->enhanced, sizeof(enh));
	enh[sizeof(enh) - 1] = '\0';
	if (enh[0] != '\0' && enh[0] != '0' + r->code / 100)
		memset(enh, 0, sizeof(enh));
	v->smtp_code = r->code;
	memcpy(v->enhanced, enh, sizeof(v->enhanced));
	verdict_set_text(v, text, r->text != NULL ? r->text_len : 0);
	/* X.0.0 ("other undefined status") tells nothing: treat as absent
	 * for matching, but keep it as evidence. */
	if (enh[0] != '\0' && strcmp(enh + 1, ".0.0") == 0)
		enh[0] = '\0';

	for (i = 0; i < sizeof(classify_rules) / sizeof(classify_rules[0]); i++) {
		const struct classify_rule *c = &classify_rules[i];

		if (c->stages != ST_ANY && (c->stages & stmask) == 0)
			continue;
		if (!classify_match_code(c->code, r->code) || !classify_match_enh(c->enh, enh) ||
		    !classify_match_text(c->text, text))
			continue;
		rule = c;
		break;
	}
	if (rule != NULL) {
		reason = rule->reason;
		action = rule->action;
	} else
		log_warn("unexpected smtp reply",
		         "stage=%s code=%d enhanced=%s "
		         "text=\"%s\"",
		         stname, r->code, v->enhanced, v->text);

	/* The invariants hold whatever the table says. */
	if (verdict_reason_status(reason) == VS_UNDELIVERABLE &&
	    (r->code / 100 != 5 || (enh[0] == '5' && strncmp(enh + 1, ".7.", 3) == 0))) {
		log_error("classify rule broke an invariant",
		          "stage=%s code=%d "
		          "enhanced=%s reason=%s",
		          stname, r->code, v->enhanced, verdict_reason_name(reason));
		reason = r->code / 100 == 4 ? VR_TEMP_FAILURE : VR_BLOCKED;
	}
	if (r->code == 503)
		log_error("smtp 503 bad sequence of commands: our client bug",
		          "stage=%s code=%d enhanced=%s text=\"%s\"", stname, r->code, v->enhanced,
		          v->text);

	v->reason = reason;
	v->status = verdict_reason_status(reason);
	return action;
}
