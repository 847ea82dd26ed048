/*
 * commands.h — the subcommands of the `mxsift` CLI.
 *
 * Each takes the subcommand's own argv (argv[0] is the subcommand name),
 * parses it with getopt_long, supports --help, and returns the process exit
 * code: 0 success, 1 runtime failure, 2 usage error (see EXIT CODES in
 * `mxsift --help`).
 */
#ifndef MXSIFT_COMMANDS_H
#define MXSIFT_COMMANDS_H

#define MXSIFT_EXIT_OK       0
#define MXSIFT_EXIT_FAILURE  1   /* runtime failure: a service, the network, a write */
#define MXSIFT_EXIT_USAGE    2   /* bad flags or arguments */
#define MXSIFT_EXIT_INPUT    3   /* the input as a whole is unusable */

int cmd_check(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
