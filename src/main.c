/* main.c — the command line: sensorspace serve | version | help. */
#include "core/config.h"
#include "core/version.h"
#include "server/reset_password.h"
#include "server/server.h"

#include <stdio.h>
#include <string.h>

static const char serve_help[] =
    "usage: sensorspace serve [--config FILE] [--FLAG VALUE ...]\n"
    "\n"
    "  --data-dir DIR            embedded store, TLS key/cert, initial admin password (./data)\n"
    "  --store URL               sqlite: (file in the data dir) or sqlite:/path/file.db\n"
    "  --listen-https ADDR:PORT  REST API, device ingest, web app over TLS (0.0.0.0:8443)\n"
    "  --listen-http ADDR:PORT   the same in plaintext (127.0.0.1:8080)\n"
    "  --listen-mqtts ADDR:PORT  MQTT over TLS (0.0.0.0:8883)\n"
    "  --listen-mqtt ADDR:PORT   MQTT plaintext (127.0.0.1:1883)\n"
    "  --listen-tcp ADDR:PORT    TCP direct socket ingest (127.0.0.1:7070)\n"
    "  --listen-udp ADDR:PORT    UDP ingest (127.0.0.1:7070)\n"
    "  --tls-cert FILE           PEM certificate (chain); generated when absent\n"
    "  --tls-key FILE            PEM private key\n"
    "  --durability full|normal  full: acknowledged data survives a power loss (default);\n"
    "                            normal: it survives a killed process, not a power loss\n"
    "  --tcp-idle-timeout SECS   idle TCP ingest connections close after this (300)\n"
    "  --session-ttl SECS        a sign-in lasts at most this long (43200)\n"
    "  --session-idle-timeout SECS  an unused sign-in ends after this (7200)\n"
    "  --login-delay-max SECS    longest wait the sign-in throttle imposes (60, at most 60)\n"
    "  --http-body-timeout SECS  time to send an HTTP request body, 1..60 (60)\n"
    "  --first-message-timeout SECS  time to send the first HTTP request head (and each\n"
    "                            later head), the TCP AUTH line; 0.1..10 (10)\n"
    "  --log-level LEVEL         debug, info, warn, error (info)\n"
    "\n"
    "Any listener takes 'off'; port 0 picks a free port. Each flag is also a key\n"
    "of the config file (\"key = value\" lines); flags win over the file.\n";

static const char main_help[] =
    "usage: sensorspace COMMAND [ARGS]\n"
    "\n"
    "  serve     run the server (sensorspace serve --help)\n"
    "  reset-password  set a user's password offline (reset-password --help)\n"
    "  version   print the version\n"
    "  help      this text\n";

static int cmd_serve(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(serve_help, stdout);
            return 0;
        }
    }
    static config cfg;
    char err[512] = "";
    config_defaults(&cfg);
    if (config_from_args(&cfg, argc, argv, err, sizeof err) ||
        config_validate(&cfg, err, sizeof err)) {
        fprintf(stderr, "sensorspace serve: %s\n", err);
        return 2;
    }
    return server_run(&cfg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(main_help, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "reset-password") == 0)
        return reset_password_main(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sensorspace %s\n", SENSORSPACE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(main_help, stdout);
        return 0;
    }
    fprintf(stderr, "sensorspace: unknown command '%s'\n%s", cmd, main_help);
    return 2;
}
