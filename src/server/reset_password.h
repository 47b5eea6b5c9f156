/* reset_password.h — `sensorspace reset-password`: the offline way back in
 * when every admin is locked out. Works on the store directly, whether or
 * not the server runs (SQLite WAL lets both write). */
#ifndef SS_RESET_PASSWORD_H
#define SS_RESET_PASSWORD_H

/* Runs the command with the arguments after its name. Returns the process
 * exit code: 0 done, 1 failed (reason on stderr), 2 bad usage. */
int reset_password_main(int argc, char **argv);

#endif
