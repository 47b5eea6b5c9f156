#include "server/bootstrap.h"
#include "aaa/password.h"
#include "aaa/secret.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <ctype.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_ADMIN_EMAIL "admin@localhost"
#define GENERATED_PASSWORD_LEN 20u
#define PASSWORD_FILE "initial-admin-password"

static int write_password_file(const char *data_dir, const char *password)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, PASSWORD_FILE);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return SS_IO;
    size_t len = strlen(password);
    int ok = write(fd, password, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    ok = fsync(fd) == 0 && ok;
    close(fd);
    return ok ? SS_OK : SS_IO;
}

static int create_admin(store *s, const char *email, const char *password)
{
    store_user u = {0};
    secret_new_id(u.id);
    snprintf(u.email, sizeof u.email, "%s", email);
    for (char *p = u.email; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    u.superadmin = 1;
    u.created_at = clock_now_ms();
    int rc = password_hash(password, u.pw_hash);
    if (rc)
        return rc;
    store_conn *c;
    rc = store_conn_acquire(s, &c);
    if (rc)
        return rc;
    rc = store_user_create(c, &u);
    store_conn_release(s, c);
    return rc;
}

int bootstrap_superadmin(store *s, const char *data_dir)
{
    store_conn *c;
    int64_t users = 0;
    int rc = store_conn_acquire(s, &c);
    if (rc)
        return rc;
    rc = store_user_count(c, &users);
    store_conn_release(s, c);
    if (rc || users > 0)
        return rc;

    const char *email = getenv("SENSORSPACE_ADMIN_EMAIL");
    const char *given = getenv("SENSORSPACE_ADMIN_PASSWORD");
    if (given && !*given)
        given = NULL;
    if (!email || !*email)
        email = DEFAULT_ADMIN_EMAIL;
    if (given && strlen(given) < SS_PASSWORD_MIN) {
        fprintf(stderr, "SENSORSPACE_ADMIN_PASSWORD must have at least %u characters\n",
                SS_PASSWORD_MIN);
        return SS_INVAL;
    }
    if (given)
        return create_admin(s, email, given);

    char generated[GENERATED_PASSWORD_LEN + 1];
    password_generate(generated, GENERATED_PASSWORD_LEN);
    rc = create_admin(s, email, generated);
    if (rc == 0)
        rc = write_password_file(data_dir, generated);
    if (rc == 0)
        printf("superadmin %s password %s (also in %s/%s)\n", email, generated, data_dir,
               PASSWORD_FILE);
    sodium_memzero(generated, sizeof generated);
    return rc;
}
