/*
 * term.h — colour for people reading a terminal, and only for them.
 *
 * `mxsift check --format table` and `mxsift status` colour the status words
 * (deliverable green, undeliverable red, risky yellow, unknown grey) when
 * the stream is a terminal.  No colour when NO_COLOR is set to a non-empty
 * value (https://no-color.org), when TERM is "dumb" or unset, or when the
 * output is a file or pipe: files never get escape sequences.
 */
#ifndef MXSIFT_TERM_H
#define MXSIFT_TERM_H

#include <stdio.h>

#include "verdict.h"

#define TERM_RESET "\033[0m"

/* 1 when colour may be written to f (see above), else 0. */
int term_color(FILE *f);
/* The SGR sequence that starts status s's colour, or "" when colour is off
 * for f.  Follow coloured text with term_reset(f). */
const char *term_status_color(FILE *f, enum verdict_status s);
const char *term_reset(FILE *f);

#endif
