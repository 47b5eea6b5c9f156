/* bootstrap.h — first start: the superadmin of an empty store. */
#ifndef SS_BOOTSTRAP_H
#define SS_BOOTSTRAP_H

#include "store/store.h"

/* With no user in the store, creates the superadmin: email from
 * SENSORSPACE_ADMIN_EMAIL (default admin@localhost), password from
 * SENSORSPACE_ADMIN_PASSWORD (at least 12 characters), else a generated one
 * printed once and written to DATA/initial-admin-password (mode 0600).
 * 0, SS_INVAL (password too short), SS_IO, or a store error. */
int bootstrap_superadmin(store *s, const char *data_dir);

#endif
