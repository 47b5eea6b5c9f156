/* sqlite_internal.h — what the files of the SQLite store share with each
 * other (and with their unit test), never with the rest of SensorSpace: the
 * rest of the code sees only store.h. */
#ifndef SS_STORE_SQLITE_INTERNAL_H
#define SS_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/store.h"

/* The newest schema version this build knows (its number of migrations). */
int store_sqlite_schema_latest(void);

/* Brings the schema of `db` (a configured connection, busy timeout set) to
 * the newest version, each migration in its own BEGIN IMMEDIATE transaction,
 * so two processes opening the same file at once migrate it once. Refuses a
 * database whose version is newer than this build knows. Returns 0 or
 * SS_STORE with a reason a person can act on in errbuf (errbuf non-NULL,
 * errlen > 0). */
int store_sqlite_migrate(sqlite3 *db, char *errbuf, size_t errlen);
/* As store_sqlite_migrate, stopping at `target_version` (nothing to do when
 * the database is already there or past it), so a test can build a database
 * as an older release left it and check the upgrade. SS_INVAL for a version
 * this build does not know. */
int store_sqlite_migrate_to(sqlite3 *db, int target_version, char *errbuf, size_t errlen);

/* The connection's SQLite handle, for tests that inspect pragmas or inject
 * faults (PRAGMA max_page_count to fill the "disk"). Not for production
 * code: everything it needs is in store.h. */
sqlite3 *store_sqlite_db(store_conn *c);

#endif
