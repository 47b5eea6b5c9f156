/* server.h — the composition root of `sensorspace serve`: it opens the
 * store, makes sure the superadmin and the TLS certificate exist, starts the
 * store thread and the listeners, and runs the loop until SIGINT/SIGTERM,
 * then stops in order: stop accepting, answer what is in flight, commit and
 * acknowledge what is queued, close the store. */
#ifndef SS_SERVER_H
#define SS_SERVER_H

#include "core/config.h"

/* Runs the server until a stop signal. Returns the process exit code:
 * 0 after a clean stop, 2 for a bad listener address or TLS file (found
 * before anything is written), 1 when it could not start otherwise (reason
 * on stderr). */
int server_run(const config *cfg);

#endif
