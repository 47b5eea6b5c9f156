#include "core/config.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A config file line, like any input, has a bound. */
#define CONFIG_LINE_MAX 4096u

typedef struct config_key {
    const char *name;
    size_t offset;
    const char *fallback;
} config_key;

#define KEY(name, field, def) {name, offsetof(config, field), def}
static const config_key config_keys[] = {
    KEY("data-dir", data_dir, "./data"),
    KEY("store", store, "sqlite:"),
    KEY("listen-https", listen_https, "0.0.0.0:8443"),
    KEY("listen-http", listen_http, "127.0.0.1:8080"),
    KEY("listen-mqtts", listen_mqtts, "0.0.0.0:8883"),
    KEY("listen-mqtt", listen_mqtt, "127.0.0.1:1883"),
    KEY("listen-tcp", listen_tcp, "127.0.0.1:7070"),
    KEY("listen-udp", listen_udp, "127.0.0.1:7070"),
    KEY("tls-cert", tls_cert, ""),
    KEY("tls-key", tls_key, ""),
    KEY("log-level", log_level, "info"),
    KEY("durability", durability, "full"),
    KEY("tcp-idle-timeout", tcp_idle_timeout, "300"),
    KEY("session-ttl", session_ttl, "43200"),
    KEY("session-idle-timeout", session_idle_timeout, "7200"),
    KEY("login-delay-max", login_delay_max, "60"),
    KEY("http-body-timeout", http_body_timeout, "60"),
    KEY("heavy-wait", heavy_wait, "10"),
    KEY("first-message-timeout", first_message_timeout, "10"),
    KEY("import-readings-max", import_readings_max, "50000000"),
};
#undef KEY
#define CONFIG_KEYS (sizeof config_keys / sizeof config_keys[0])

void config_defaults(config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CONFIG_KEYS; i++)
        snprintf((char *)cfg + config_keys[i].offset, CONFIG_VALUE_MAX, "%s",
                 config_keys[i].fallback);
}

int config_set(config *cfg, const char *key, const char *value)
{
    for (size_t i = 0; i < CONFIG_KEYS; i++) {
        if (strcmp(config_keys[i].name, key) != 0)
            continue;
        if (strlen(value) >= CONFIG_VALUE_MAX)
            return SS_INVAL;
        snprintf((char *)cfg + config_keys[i].offset, CONFIG_VALUE_MAX, "%s", value);
        return SS_OK;
    }
    return SS_INVAL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* A '#' after whitespace starts a comment, as on a line of its own:
 * "listen-http = 127.0.0.1:8080  # local only". A '#' inside a value
 * ("data-dir = /srv/data#2") stays part of it. */
static void strip_comment(char *value)
{
    for (char *p = value; *p; p++) {
        if (*p == '#' && (p == value || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

int config_load_file(config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s", path);
        return SS_IO;
    }
    char line[CONFIG_LINE_MAX];
    int lineno = 0, rc = SS_OK;
    while (rc == SS_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line longer than %u bytes", path, lineno,
                     CONFIG_LINE_MAX - 1);
            rc = SS_INVAL;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = SS_INVAL;
            break;
        }
        *eq = '\0';
        strip_comment(eq + 1);
        if (config_set(cfg, trim(s), trim(eq + 1))) {
            snprintf(err, errlen, "%s:%d: unknown key or value too long: %s", path, lineno,
                     trim(s));
            rc = SS_INVAL;
        }
    }
    fclose(f);
    return rc;
}

/* "--key=value" or "--key value": the key and the value, advancing *i. */
static int split_flag(int argc, char **argv, int *i, char *key, size_t cap, const char **value)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0)
        return SS_INVAL;
    arg += 2;
    const char *eq = strchr(arg, '=');
    size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (klen == 0 || klen >= cap)
        return SS_INVAL;
    memcpy(key, arg, klen);
    key[klen] = '\0';
    if (eq) {
        *value = eq + 1;
        return SS_OK;
    }
    if (*i + 1 >= argc)
        return SS_INVAL;
    *value = argv[++*i];
    return SS_OK;
}

int config_from_args(config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    char key[64];
    const char *value;
    /* The file first, so that every flag wins over it. */
    for (int i = 0; i < argc; i++) {
        if (split_flag(argc, argv, &i, key, sizeof key, &value) == 0 &&
            strcmp(key, "config") == 0) {
            int rc = config_load_file(cfg, value, err, errlen);
            if (rc)
                return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (split_flag(argc, argv, &i, key, sizeof key, &value)) {
            snprintf(err, errlen, "bad argument %s (flags are --name VALUE)", arg);
            return SS_INVAL;
        }
        if (strcmp(key, "config") == 0)
            continue;
        if (config_set(cfg, key, value)) {
            snprintf(err, errlen, "unknown flag --%s (see sensorspace help)", key);
            return SS_INVAL;
        }
    }
    return SS_OK;
}

int config_seconds(const char *text, long max, long *out)
{
    char *end;
    long secs = strtol(text, &end, 10);
    if (end == text || *end || secs < 1 || secs > max)
        return SS_INVAL;
    *out = secs;
    return SS_OK;
}

/* Digits, then at most 3 after a '.': no strtod, whose decimal point
 * follows the locale. */
int config_millis(const char *text, uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
    uint64_t ms = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        ms = ms * 10u + (uint64_t)(*p - '0');
        if (ms > max_ms)
            return SS_INVAL;
    }
    if (p == text)
        return SS_INVAL;
    ms *= 1000u;
    if (*p == '.') {
        uint64_t scale = 100u;
        for (p++; *p >= '0' && *p <= '9' && scale > 0; p++, scale /= 10u)
            ms += (uint64_t)(*p - '0') * scale;
    }
    if (*p || ms < min_ms || ms > max_ms)
        return SS_INVAL;
    *out = ms;
    return SS_OK;
}

int config_validate(const config *cfg, char *err, size_t errlen)
{
    log_level level;
    if (log_parse_level(cfg->log_level, &level)) {
        snprintf(err, errlen, "log-level must be debug, info, warn or error");
        return SS_INVAL;
    }
    if (strcmp(cfg->durability, "full") != 0 && strcmp(cfg->durability, "normal") != 0) {
        snprintf(err, errlen, "durability must be full or normal");
        return SS_INVAL;
    }
    static const struct {
        const char *name;
        size_t offset;
        long max;
    } seconds[] = {
        {"tcp-idle-timeout", offsetof(config, tcp_idle_timeout), 86400},
        {"session-ttl", offsetof(config, session_ttl), 30L * 86400},
        {"session-idle-timeout", offsetof(config, session_idle_timeout), 30L * 86400},
        {"login-delay-max", offsetof(config, login_delay_max), SS_LOGIN_DELAY_MAX_MS / 1000},
        {"http-body-timeout", offsetof(config, http_body_timeout),
         SS_HTTP_BODY_TIMEOUT_MS / 1000},
        {"heavy-wait", offsetof(config, heavy_wait), SS_API_HEAVY_WAIT_MS / 1000},
    };
    for (size_t i = 0; i < sizeof seconds / sizeof seconds[0]; i++) {
        long secs;
        if (config_seconds((const char *)cfg + seconds[i].offset, seconds[i].max, &secs)) {
            snprintf(err, errlen, "%s must be 1..%ld seconds", seconds[i].name, seconds[i].max);
            return SS_INVAL;
        }
    }
    uint64_t ms;
    if (config_millis(cfg->first_message_timeout, SS_FIRST_MESSAGE_TIMEOUT_MIN_MS,
                      SS_FIRST_MESSAGE_TIMEOUT_MS, &ms)) {
        snprintf(err, errlen, "first-message-timeout must be %g..%u seconds",
                 SS_FIRST_MESSAGE_TIMEOUT_MIN_MS / 1000.0, SS_FIRST_MESSAGE_TIMEOUT_MS / 1000u);
        return SS_INVAL;
    }
    char *end = NULL;
    unsigned long long imax = strtoull(cfg->import_readings_max, &end, 10);
    if (!cfg->import_readings_max[0] || *end || imax < 1 || imax > SS_IMPORT_READINGS_MAX) {
        snprintf(err, errlen, "import-readings-max must be 1..%u", SS_IMPORT_READINGS_MAX);
        return SS_INVAL;
    }
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        snprintf(err, errlen, "tls-cert and tls-key go together");
        return SS_INVAL;
    }
    return SS_OK;
}
