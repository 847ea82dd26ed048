/*
 * export_input.h — `mxsift export --input FILE`: a fleet job's verdicts
 * joined back to the rows of the list that was submitted (see
 * export_input.c).
 */
#ifndef MXSIFT_EXPORT_INPUT_H
#define MXSIFT_EXPORT_INPUT_H

#include <stdint.h>
#include <stdio.h>

#include "intake.h"
#include "verdict.h"

struct jobstore;

struct export_input_stats {
	uint64_t rows;      /* input rows, each written once */
	uint64_t missing;   /* of them without a verdict in the job */
};

/*
 * Read path (intake with io) and write one row per input row to out, in
 * input order, with the row's line and text and the job's verdict for it.
 * Returns 0; -1 with err set when the input cannot be read (unusable:
 * *unusable = 1), Redis fails or out cannot be written (*unusable = 0).
 * Rows before a failure are written.
 */
int export_input(struct jobstore *js, const char *job, const char *path,
    const struct intake_opts *io, FILE *out, enum verdict_format fmt,
    struct export_input_stats *st, int *unusable, char *err, size_t errlen);

#endif
