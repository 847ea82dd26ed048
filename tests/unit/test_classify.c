/*
 * test_classify.c — the classifier against replies as real servers send
 * them (Gmail, Outlook/Exchange Online, Yahoo, Postfix, Exim, qmail,
 * postgrey ...), plus the invariants over a sweep of every code, a set of
 * enhanced codes and phrases at every stage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "classify.h"
#include "log.h"

#define G CLASSIFY_GREETING
#define H CLASSIFY_HELO
#define M CLASSIFY_MAIL
#define R CLASSIFY_RCPT
#define FIN CLASSIFY_FINAL
#define LATER CLASSIFY_RETRY_LATER
#define NOW CLASSIFY_RETRY_NOW

struct classify_case {
	enum classify_stage stage;
	int code;
	const char *enh;
	const char *text;
	enum verdict_status status;
	enum verdict_reason reason;
	enum classify_action action;
};

static const struct classify_case cases[] = {
    /* --- accepted --- */
    {R, 250, "2.1.5", "OK x1si123456qka.123 - gsmtp", VS_DELIVERABLE, VR_ACCEPTED, FIN},
    {R, 250, "", "Accepted", VS_DELIVERABLE, VR_ACCEPTED, FIN}, /* Exim */
    {R, 250, "2.1.5", "Ok", VS_DELIVERABLE, VR_ACCEPTED, FIN},  /* Postfix */
    {R, 251, "2.1.5", "User not local; will forward to <x@y.test>", VS_DELIVERABLE, VR_ACCEPTED,
     FIN},
    {R, 250, "", "recipient <x@yahoo.com> ok", VS_DELIVERABLE, VR_ACCEPTED, FIN},

    /* --- mailbox not found --- */
    {R, 550, "5.1.1",
     "The email account that you tried to reach does not exist. "
     "Please try\ndouble-checking the recipient's email address for typos or\n"
     "unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser",
     VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN}, /* Gmail */
    {R, 550, "5.1.1",
     "<x@alpha.test>: Recipient address rejected: User unknown "
     "in virtual mailbox table",
     VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "5.1.1",
     "<x@b.test>: Recipient address rejected: User unknown in "
     "local recipient table",
     VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "5.1.10",
     "RESOLVER.ADR.RecipientNotFound; Recipient not found by "
     "SMTP address lookup",
     VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "5.4.1",
     "Recipient address rejected: Access denied. "
     "[DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]",
     VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN}, /* Exchange Online */
    {R, 550, "5.5.0",
     "Requested action not taken: mailbox unavailable "
     "(S2017062302). [AM1EUR02FT003.eop-EUR02.prod.protection.outlook.com]",
     VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN}, /* Outlook.com */
    {R, 554, "",
     "delivery error: dd This user doesn't have a yahoo.com account "
     "(x@yahoo.com) [0] - mta1234.mail.ne1.yahoo.com",
     VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN}, /* Yahoo */
    {R, 550, "", "Unrouteable address", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "", "No such user here", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "", "sorry, no mailbox here by that name. (#5.1.1)", VS_UNDELIVERABLE,
     VR_MAILBOX_NOT_FOUND, FIN}, /* qmail */
    {R, 550, "5.0.0", "<x@c.test>... User unknown", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND,
     FIN}, /* Sendmail */
    {R, 553, "5.1.3", "<x..y@z.test>... Invalid address", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND,
     FIN},
    {R, 551, "5.1.6", "User has moved; please try <x@new.test>", VS_UNDELIVERABLE,
     VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "5.1.0", "Address rejected", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "", "Requested action not taken: mailbox unavailable", VS_UNDELIVERABLE,
     VR_MAILBOX_NOT_FOUND, FIN},
    {R, 554, "5.1.1", "Recipient address rejected: user does not exist", VS_UNDELIVERABLE,
     VR_MAILBOX_NOT_FOUND, FIN},
    /* 5.1.3 whatever the code: the receiver says no such mailbox can exist */
    {R, 501, "5.1.3", "Bad recipient address syntax", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND,
     FIN}, /* Postfix */
    {R, 550, "5.1.3", "Invalid recipient address syntax", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND,
     FIN},
    {R, 554, "5.1.3", "Bad destination mailbox address syntax", VS_UNDELIVERABLE,
     VR_MAILBOX_NOT_FOUND, FIN},
    /* 554 5.1.x: a bad destination mailbox, unless it speaks of policy */
    {R, 554, "5.1.0", "<x@a.test>: Recipient address rejected", VS_UNDELIVERABLE,
     VR_MAILBOX_NOT_FOUND, FIN},
    {R, 554, "5.1.2", "Host or domain name not found", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND,
     FIN},
    {R, 554, "5.1.0", "Message rejected by policy", VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 554, "5.1.0", "<verify@mxsift.test>: Sender address rejected: Access denied",
     VS_UNKNOWN, VR_BLOCKED, FIN},

    /* --- disabled / full --- */
    {R, 550, "5.2.1",
     "The email account that you tried to reach is disabled. "
     "https://support.google.com/mail/?p=DisabledUser",
     VS_UNDELIVERABLE, VR_MAILBOX_DISABLED, FIN}, /* Gmail */
    {R, 554, "",
     "delivery error: dd Sorry your message to x@yahoo.com cannot be "
     "delivered. This mailbox is disabled (554.30)",
     VS_UNDELIVERABLE, VR_MAILBOX_DISABLED, FIN}, /* Yahoo */
    {R, 452, "4.2.2", "The email account that you tried to reach is over quota.", VS_RISKY,
     VR_MAILBOX_FULL, LATER}, /* Gmail */
    {R, 552, "5.2.2", "Mailbox full", VS_RISKY, VR_MAILBOX_FULL, FIN},
    {R, 552, "", "Requested mail action aborted: exceeded storage allocation", VS_RISKY,
     VR_MAILBOX_FULL, FIN},

    /* --- blocked: 5.7.x and friends are never undeliverable --- */
    {R, 550, "5.7.1",
     "Unauthenticated email from x.test is not accepted due to "
     "domain's DMARC policy.",
     VS_UNKNOWN, VR_BLOCKED, FIN}, /* Gmail */
    {R, 550, "5.7.1",
     "[192.0.2.1] Our system has detected that this message is "
     "likely unsolicited mail. User unknown",
     VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 554, "5.7.1", "<x@b.test>: Relay access denied", VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 554, "5.7.1",
     "Service unavailable; Client host [192.0.2.1] blocked using "
     "zen.spamhaus.org",
     VS_UNKNOWN, VR_BLOCKED, FIN}, /* Postfix RBL */
    {R, 550, "5.7.606", "Access denied, banned sending IP [192.0.2.1].", VS_UNKNOWN, VR_BLOCKED,
     FIN}, /* Outlook */
    {R, 553, "5.7.1",
     "[BL21] Connections will not be accepted from 192.0.2.1, "
     "because the ip is in Spamhaus's list",
     VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 553, "5.1.8", "<verify@mxsift.test>: Sender address rejected: Domain not found", VS_UNKNOWN,
     VR_BLOCKED, FIN}, /* about us */
    {R, 550, "5.1.0",
     "<verify@mxsift.test>: Sender address rejected: User unknown "
     "in local recipient table",
     VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 553, "5.1.8", "Bad sender's system address", VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 553, "5.1.7", "Bad sender's mailbox address syntax", VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 504, "5.5.2", "<probe>: Helo command rejected: need fully-qualified hostname", VS_UNKNOWN,
     VR_BLOCKED, FIN},
    {R, 550, "", "Recipient rejected by policy: user unknown?", VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 550, "", "Message rejected as spam", VS_UNKNOWN, VR_BLOCKED, FIN},
    {R, 550, "", "Your IP has a poor reputation", VS_UNKNOWN, VR_BLOCKED, FIN},
    {G, 554, "", "mx.example.com ESMTP not accepting messages", VS_UNKNOWN, VR_BLOCKED, FIN},
    {G, 554, "5.7.1",
     "Your access to this mail system has been rejected due to the "
     "sending MTA's poor reputation.",
     VS_UNKNOWN, VR_BLOCKED, FIN},
    {H, 550, "5.7.1", "Helo rejected", VS_UNKNOWN, VR_BLOCKED, FIN},
    {M, 553, "5.1.8", "<verify@mxsift.test>: Sender address rejected: Domain not found", VS_UNKNOWN,
     VR_BLOCKED, FIN},
    {M, 550, "5.1.1", "sender unknown", VS_UNKNOWN, VR_BLOCKED, FIN},

    /* --- greylisting and temporary failures --- */
    {R, 450, "4.2.0",
     "<x@a.test>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/a.test.html",
     VS_UNKNOWN, VR_GREYLISTED, LATER}, /* postgrey */
    {R, 451, "4.7.1", "Please try again later", VS_UNKNOWN, VR_GREYLISTED, LATER},
    {R, 450, "4.7.1", "<x@a.test>: Client host rejected: cannot find your hostname", VS_UNKNOWN,
     VR_GREYLISTED, LATER},
    {R, 451, "", "Temporary local problem - please retry", VS_UNKNOWN, VR_GREYLISTED,
     LATER}, /* Exim */
    {M, 451, "4.7.1", "Greylisting in action, please come back later", VS_UNKNOWN, VR_GREYLISTED,
     LATER},
    {R, 450, "4.2.1",
     "The user you are trying to contact is receiving mail at a "
     "rate that prevents additional messages from being delivered.",
     VS_UNKNOWN, VR_TEMP_FAILURE, LATER}, /* Gmail */
    {R, 450, "4.1.1",
     "<x@a.test>: Recipient address rejected: unverified address: "
     "host mx.a.test said: 550 5.1.1 User unknown",
     VS_UNKNOWN, VR_TEMP_FAILURE, LATER},
    {R, 451, "4.3.0", "Temporary lookup failure", VS_UNKNOWN, VR_TEMP_FAILURE, LATER},
    {R, 452, "4.3.1", "Insufficient system storage", VS_UNKNOWN, VR_TEMP_FAILURE, LATER},
    {R, 421, "4.7.0",
     "[TSS04] Messages from 192.0.2.1 temporarily deferred due to "
     "unexpected volume or user complaints",
     VS_UNKNOWN, VR_TEMP_FAILURE, LATER},
    {G, 421, "4.7.0", "Try again later, closing connection.", VS_UNKNOWN, VR_TEMP_FAILURE,
     LATER}, /* Gmail */
    {H, 421, "", "mx.example.com Service not available", VS_UNKNOWN, VR_TEMP_FAILURE, LATER},
    {R, 450, "", "Mailbox unavailable", VS_UNKNOWN, VR_TEMP_FAILURE, LATER},
    {R, 450, "4.1.1", "User unknown", VS_UNKNOWN, VR_TEMP_FAILURE, LATER},

    /* --- too many recipients: retry in a new transaction --- */
    {R, 452, "4.5.3", "Error: too many recipients", VS_UNKNOWN, VR_TEMP_FAILURE, NOW}, /* Postfix */
    {R, 452, "", "Too many recipients", VS_UNKNOWN, VR_TEMP_FAILURE, NOW},
    {R, 451, "4.5.3", "Too many recipients received this hour", VS_UNKNOWN, VR_TEMP_FAILURE, NOW},

    /* --- our own bugs and oddities --- */
    {R, 503, "5.5.1", "Error: need MAIL command", VS_UNKNOWN, VR_PROTOCOL_ERROR, FIN},
    {M, 503, "5.5.1", "Error: send HELO/EHLO first", VS_UNKNOWN, VR_PROTOCOL_ERROR, FIN},
    {R, 500, "5.5.2", "Error: command not recognized", VS_UNKNOWN, VR_PROTOCOL_ERROR, FIN},
    {R, 555, "5.5.4", "Unsupported option: SMTPUTF8", VS_UNKNOWN, VR_PROTOCOL_ERROR, FIN},
    {R, 553, "5.6.7", "SMTPUTF8 is required, but was not offered", VS_UNKNOWN,
     VR_SMTPUTF8_UNSUPPORTED, FIN},
    {G, 220, "", "mx.example.com ESMTP", VS_UNKNOWN, VR_PROTOCOL_ERROR, FIN},
    {R, 354, "", "End data with <CR><LF>.<CR><LF>", VS_UNKNOWN, VR_PROTOCOL_ERROR, FIN},

    /* --- unplaceable 5xx --- */
    {R, 550, "", "Administrative prohibition", VS_UNKNOWN, VR_REJECTED, FIN},
    {R, 554, "5.0.0", "Transaction failed", VS_UNKNOWN, VR_REJECTED, FIN},
    {R, 550, "5.3.0", "Other mail system problem", VS_UNKNOWN, VR_REJECTED, FIN},
    /* a mismatched enhanced code is dropped, then the text decides */
    {R, 550, "4.1.1", "Recipient unknown", VS_UNDELIVERABLE, VR_MAILBOX_NOT_FOUND, FIN},
    {R, 550, "2.1.1", "Rejected", VS_UNKNOWN, VR_REJECTED, FIN},
};

static void
test_cases(void **state)
{
	struct smtp_reply r;
	struct verdict v;
	enum classify_action a;
	size_t i;
	char want_enh[16];

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct classify_case *c = &cases[i];

		memset(&r, 0, sizeof(r));
		r.code = c->code;
		snprintf(r.enhanced, sizeof(r.enhanced), "%s", c->enh);
		r.text = (char *)c->text;
		r.text_len = strlen(c->text);
		r.nlines = 1;
		verdict_init(&v, VR_ACCEPTED);
		strcpy(v.mx_host, "mx.test");
		v.attempts = 3;
		a = classify_reply(c->stage, &r, &v);
		if (v.status != c->status || v.reason != c->reason || a != c->action)
			fail_msg("case %zu (%d %s \"%.40s\"): got %s/%s action %d, "
			         "want %s/%s action %d",
			         i, c->code, c->enh, c->text, verdict_status_name(v.status),
			         verdict_reason_name(v.reason), a, verdict_status_name(c->status),
			         verdict_reason_name(c->reason), c->action);
		/* evidence filled, caller's fields untouched */
		assert_int_equal(v.smtp_code, c->code);
		snprintf(want_enh, sizeof(want_enh), "%s",
		         c->enh[0] == '0' + c->code / 100 ? c->enh : "");
		assert_string_equal(v.enhanced, want_enh);
		assert_true(strncmp(v.text, c->text, 20) == 0 || strchr(c->text, '\n') != NULL);
		assert_null(strchr(v.text, '\n'));
		assert_string_equal(v.mx_host, "mx.test");
		assert_int_equal(v.attempts, 3);
	}
}

/* Every code x enhanced code x phrase x stage: the invariants hold. */
static void
test_invariants(void **state)
{
	static const char *const enhs[] = {"",       "2.0.0",   "2.1.5", "4.0.0", "4.1.1",
	                                   "4.2.2",  "4.5.3",   "4.7.1", "5.0.0", "5.1.1",
	                                   "5.1.10", "5.2.1",   "5.2.2", "5.4.1", "5.5.0",
	                                   "5.7.1",  "5.7.606", "5.6.7", "5.1.8"};
	static const char *const texts[] = {"",
	                                    "user unknown",
	                                    "no such user",
	                                    "mailbox unavailable",
	                                    "blocked",
	                                    "greylisted",
	                                    "mailbox is disabled",
	                                    "Recipient address rejected: Access denied",
	                                    "too many recipients",
	                                    "user unknown (spam policy)"};
	struct smtp_reply r;
	struct verdict v;
	enum classify_action a;
	int code, st;
	size_t e, t;

	(void)state;
	log_set_level((enum log_level)(LOG_ERROR + 1)); /* thousands of 503s: keep quiet */
	for (code = 100; code <= 699; code++)
		for (e = 0; e < sizeof(enhs) / sizeof(enhs[0]); e++)
			for (t = 0; t < sizeof(texts) / sizeof(texts[0]); t++)
				for (st = G; st <= R; st++) {
					memset(&r, 0, sizeof(r));
					r.code = code;
					strcpy(r.enhanced, enhs[e]);
					r.text = (char *)texts[t];
					r.text_len = strlen(texts[t]);
					verdict_init(&v, VR_ACCEPTED);
					a = classify_reply(st, &r, &v);
					assert_int_equal(v.status, verdict_reason_status(v.reason));
					assert_int_equal(v.smtp_code, code);
					if (code / 100 != 5)
						assert_int_not_equal(v.status, VS_UNDELIVERABLE);
					if (code / 100 == 5 && strncmp(enhs[e], "5.7.", 4) == 0)
						assert_int_not_equal(v.status, VS_UNDELIVERABLE);
					if (code / 100 != 2 || st != R)
						assert_int_not_equal(v.status, VS_DELIVERABLE);
					if (st != R)
						assert_int_not_equal(v.status, VS_UNDELIVERABLE);
					if (code / 100 == 4)
						assert_int_not_equal(a, CLASSIFY_FINAL);
					if (code / 100 == 5 || code / 100 == 2)
						assert_int_not_equal(a, CLASSIFY_RETRY_LATER);
				}
	log_set_level(LOG_INFO);
}

static void
test_null_and_odd(void **state)
{
	struct smtp_reply r;
	struct verdict v;

	(void)state;
	verdict_init(&v, VR_ACCEPTED);
	assert_int_equal(classify_reply(R, NULL, &v), CLASSIFY_FINAL);
	assert_int_equal(v.reason, VR_PROTOCOL_ERROR);
	assert_int_equal(v.smtp_code, 0);

	/* text NULL, control characters in text */
	memset(&r, 0, sizeof(r));
	r.code = 250;
	verdict_init(&v, VR_TIMEOUT);
	assert_int_equal(classify_reply(R, &r, &v), CLASSIFY_FINAL);
	assert_int_equal(v.reason, VR_ACCEPTED);
	assert_string_equal(v.text, "");
	r.code = 550;
	strcpy(r.enhanced, "5.1.1");
	r.text = (char *)"a\r\nb\x01\xff";
	r.text_len = 6;
	classify_reply(R, &r, &v);
	assert_string_equal(v.text, "a  b ?");
	/* an out-of-range stage only reaches stage-independent rules */
	assert_int_equal(classify_reply((enum classify_stage)9, &r, &v), CLASSIFY_FINAL);
	assert_int_equal(v.reason, VR_PROTOCOL_ERROR);
	r.code = 421;
	assert_int_equal(classify_reply((enum classify_stage)9, &r, &v), CLASSIFY_RETRY_LATER);
}

/* Run classify_reply with stderr (the log) going to a file; returns what
 * was logged (static buffer). */
static const char *
classify_logged(enum classify_stage st, const struct smtp_reply *r, struct verdict *v)
{
	static char buf[4096];
	FILE *tmp = tmpfile();
	int saved, fd;
	size_t n;

	assert_non_null(tmp);
	fd = fileno(tmp);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	(void)classify_reply(st, r, v);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
	return buf;
}

/* A 503 is our sequencing bug: one error-level line, at any stage; other
 * rejections log nothing. */
static void
test_503_logged(void **state)
{
	struct smtp_reply r;
	struct verdict v;
	const char *out;

	(void)state;
	log_set_level(LOG_INFO);
	memset(&r, 0, sizeof(r));
	r.code = 503;
	strcpy(r.enhanced, "5.5.1");
	r.text = (char *)"Error: need MAIL command";
	r.text_len = strlen(r.text);
	for (int st = G; st <= R; st++) {
		verdict_init(&v, VR_ACCEPTED);
		out = classify_logged((enum classify_stage)st, &r, &v);
		assert_int_equal(v.reason, VR_PROTOCOL_ERROR);
		assert_non_null(strstr(out, "level=error"));
		assert_non_null(strstr(out, "msg=\"smtp 503 bad sequence of commands: our client bug\""));
		assert_non_null(strstr(out, "code=503"));
		assert_non_null(strstr(out, "enhanced=5.5.1"));
		assert_non_null(strstr(out, "text=\"Error: need MAIL command\""));
		/* exactly one line */
		assert_non_null(strchr(out, '\n'));
		assert_null(strchr(strchr(out, '\n') + 1, '\n'));
	}
	r.code = 550;
	strcpy(r.enhanced, "5.1.1");
	verdict_init(&v, VR_ACCEPTED);
	out = classify_logged(R, &r, &v);
	assert_int_equal(v.reason, VR_MAILBOX_NOT_FOUND);
	assert_string_equal(out, "");
}

/* Parser and classifier together, on the wire form. */
static void
test_from_wire(void **state)
{
	static const struct {
		const char *wire;
		enum verdict_reason reason;
	} w[] = {
	    {"550-5.1.1 The email account that you tried to reach does not exist.\r\n"
	     "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si - gsmtp\r\n",
	     VR_MAILBOX_NOT_FOUND},
	    {"550-5.7.1 [192.0.2.1] The user or domain that you are sending to (or from)\r\n"
	     "550 5.7.1 has a policy that prohibited the mail that you sent.\r\n",
	     VR_BLOCKED},
	    {"250 2.1.5 OK\r\n", VR_ACCEPTED},
	    {"550 2.1.5 user unknown\n", VR_MAILBOX_NOT_FOUND},
	};
	struct smtp_reply_reader *rd;
	struct smtp_reply r;
	struct verdict v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		rd = smtp_reply_reader_new(NULL);
		assert_int_equal(smtp_reply_feed(rd, w[i].wire, strlen(w[i].wire)), 0);
		assert_int_equal(smtp_reply_get(rd, &r), SMTP_REPLY_OK);
		verdict_init(&v, VR_TIMEOUT);
		classify_reply(R, &r, &v);
		assert_int_equal(v.reason, w[i].reason);
		smtp_reply_reader_free(rd);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_invariants),
	    cmocka_unit_test(test_null_and_odd),
	    cmocka_unit_test(test_from_wire),
	    cmocka_unit_test(test_503_logged),
	};

	fprintf(stderr, "(test_classify: error lines about 503 below are expected)\n");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
