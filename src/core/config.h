/* config.h — the settings of `sensorspace serve`: flags and config file.
 *
 * Every flag is also a key of the config file (same name without "--");
 * flags win over the file. The file has one "key = value" per line; blank
 * lines and lines starting with '#' are skipped, and a '#' after whitespace
 * starts a comment at the end of a line. */
#ifndef SS_CONFIG_H
#define SS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_VALUE_MAX 1024u

typedef struct config {
    char data_dir[CONFIG_VALUE_MAX];
    char store[CONFIG_VALUE_MAX];
    char listen_https[CONFIG_VALUE_MAX];
    char listen_http[CONFIG_VALUE_MAX];
    char listen_mqtts[CONFIG_VALUE_MAX];
    char listen_mqtt[CONFIG_VALUE_MAX];
    char listen_tcp[CONFIG_VALUE_MAX];
    char listen_udp[CONFIG_VALUE_MAX];
    char tls_cert[CONFIG_VALUE_MAX];
    char tls_key[CONFIG_VALUE_MAX];
    char log_level[CONFIG_VALUE_MAX];
    char durability[CONFIG_VALUE_MAX];   /* "full" or "normal" */
    char tcp_idle_timeout[CONFIG_VALUE_MAX];  /* seconds */
    char session_ttl[CONFIG_VALUE_MAX];        /* seconds: absolute session expiry */
    char session_idle_timeout[CONFIG_VALUE_MAX];  /* seconds: idle session expiry */
    char login_delay_max[CONFIG_VALUE_MAX];    /* seconds: longest sign-in throttle wait */
    char http_body_timeout[CONFIG_VALUE_MAX];  /* seconds to send a request body */
    char heavy_wait[CONFIG_VALUE_MAX];  /* seconds a heavy REST request waits for its turn */
    char first_message_timeout[CONFIG_VALUE_MAX];  /* seconds, a fraction allowed: to send
                                                      the first request, AUTH line, CONNECT */
    char import_readings_max[CONFIG_VALUE_MAX];  /* readings one import may hold */
} config;

/* Fills in the defaults of SPEC §1. */
void config_defaults(config *cfg);

/* Applies argv (after the command word): "--key value" or "--key=value",
 * and "--config FILE" (read first, whatever its position, so flags win).
 * OUT err: a message naming the bad flag or line. 0, SS_INVAL, SS_IO. */
int config_from_args(config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Sets one key ("data-dir", "listen-http" …). 0 or SS_INVAL (unknown key,
 * value too long). */
int config_set(config *cfg, const char *key, const char *value);

/* Reads a config file. 0, SS_IO (cannot read), SS_INVAL (bad line; err says
 * which). */
int config_load_file(config *cfg, const char *path, char *err, size_t errlen);

/* A whole number of seconds in [1, max] into *out. 0 or SS_INVAL. */
int config_seconds(const char *text, long max, long *out);

/* A number of seconds with at most 3 decimals ("10", "0.5") as milliseconds
 * in [min_ms, max_ms] into *out. 0 or SS_INVAL. */
int config_millis(const char *text, uint64_t min_ms, uint64_t max_ms, uint64_t *out);

/* Checks values (log level, durability, timeouts). 0 or SS_INVAL. */
int config_validate(const config *cfg, char *err, size_t errlen);

#endif
