/* log.h — leveled logging to stderr.
 *
 * One line per event: "2026-11-25T09:46:22.123Z info http: message".
 * Never pass a secret (token, key, password, Authorization header) or a
 * query string to these functions: the log is read by operators. */
#ifndef SS_LOG_H
#define SS_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Sets the lowest level written; thread-safe to call before threads start. */
void log_set_level(log_level level);
/* Parses "debug", "info", "warn", "error". 0 or SS_INVAL. */
int log_parse_level(const char *text, log_level *out);
int log_enabled(log_level level);
void log_write(log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(mod, ...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define log_info(mod, ...) log_write(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_write(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_write(LOG_ERROR, mod, __VA_ARGS__)

#endif
