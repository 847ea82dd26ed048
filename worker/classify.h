/*
 * classify.h — turn the reply to RCPT TO (or a session failure) into a verdict.
 *
 * A table keyed by reply code and enhanced status code (class.subject.detail);
 * the reply text is consulted only as a last resort (greylisting phrases,
 * "user unknown" without an enhanced code).  Invariants: a 4xx is never
 * undeliverable; a 5.7.x policy rejection is never undeliverable.
 */
#ifndef MXSIFT_CLASSIFY_H
#define MXSIFT_CLASSIFY_H

#include "verdict.h"
#include "smtp_reply.h"

enum classify_action {
	CLASSIFY_FINAL = 0,    /* the verdict is the answer */
	CLASSIFY_RETRY_LATER,  /* temporary (greylist, 4xx): may be retried later */
	CLASSIFY_RETRY_NOW     /* not about the mailbox (452 too many recipients,
	                          4.5.3): retry in a new transaction, no verdict */
};

/* Where the reply came from: decides e.g. that a 554 greeting is "blocked". */
enum classify_stage {
	CLASSIFY_GREETING = 0,
	CLASSIFY_HELO,
	CLASSIFY_MAIL,
	CLASSIFY_RCPT
};

/* Fill v (status, reason, smtp_code, enhanced, text) for reply r at stage. */
enum classify_action classify_reply(enum classify_stage stage, const struct smtp_reply *r,
    struct verdict *v);

#endif
