/*
 * test_term.c — coordinator/term.c: colour only on a terminal, never with
 * NO_COLOR (non-empty) or TERM=dumb, never into a file or pipe.  A real
 * pseudo-terminal (openpty) stands in for the user's terminal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pty.h>
#include <cmocka.h>

#include "term.h"

static void
test_table(void **state)
{
	static const struct {
		const char *no_color, *term;
		int tty, want;
	} cases[] = {
		{ NULL, "xterm-256color", 1, 1 },
		{ "", "xterm", 1, 1 },          /* empty NO_COLOR: not set */
		{ "1", "xterm", 1, 0 },
		{ "yes", "xterm", 1, 0 },
		{ NULL, "dumb", 1, 0 },
		{ NULL, NULL, 1, 0 },
		{ NULL, "xterm", 0, 0 },        /* a pipe */
	};
	int master, slave, p[2];
	FILE *tty, *pipe_w;

	assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
	assert_int_equal(pipe(p), 0);
	tty = fdopen(slave, "w");
	pipe_w = fdopen(p[1], "w");
	assert_non_null(tty);
	assert_non_null(pipe_w);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = cases[i].tty ? tty : pipe_w;

		if (cases[i].no_color)
			setenv("NO_COLOR", cases[i].no_color, 1);
		else
			unsetenv("NO_COLOR");
		if (cases[i].term)
			setenv("TERM", cases[i].term, 1);
		else
			unsetenv("TERM");
		if (term_color(f) != cases[i].want)
			fail_msg("case %zu: term_color %d", i, term_color(f));
		if (cases[i].want) {
			assert_string_equal(term_status_color(f, VS_DELIVERABLE), "\033[32m");
			assert_string_equal(term_status_color(f, VS_UNDELIVERABLE), "\033[31m");
			assert_string_equal(term_reset(f), TERM_RESET);
		} else {
			assert_string_equal(term_status_color(f, VS_DELIVERABLE), "");
			assert_string_equal(term_reset(f), "");
		}
	}
	assert_string_equal(term_status_color(tty, (enum verdict_status)VS__COUNT), "");
	fclose(tty);
	fclose(pipe_w);
	close(master);
	close(p[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
