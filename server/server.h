/* server.h: the one entry point the hearth command calls into the server. */
#ifndef HEARTH_SERVER_H
#define HEARTH_SERVER_H

/* Parse KoboldCpp's flags (argv[0] is the program or subcommand name) and run: serve over
 * HTTP until SIGINT/SIGTERM, or generate once (--prompt), or benchmark (--benchmark).
 * Returns the process exit code. */
int hearth_serve_main(int argc, char **argv);

#endif
