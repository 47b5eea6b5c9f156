/* users.h — the lifecycle of a person's account: disabled or enabled,
 * password changed or reset, sign-in throttle lifted (aaa/service.h).
 *
 * Ending sessions on a full disk: the store holds the delete in memory, in
 * force at once, and answers SS_FULL, since a restart before space returns
 * would bring the sessions back (store.h). These functions then answer
 * SS_FULL too, with *sessions_ended set: the change is in force but not
 * saved, and is not audited yet. SS_FULL with it unset: the change itself
 * met the full disk, and nothing changed. */
#ifndef SS_AAA_USERS_H
#define SS_AAA_USERS_H

#include "aaa/service.h"

/* The superadmin disables or enables the account u (as loaded; updated).
 * Disabling ends every session and closes every live connection of the
 * person. OUT sessions_ended. 0, SS_CONFLICT (the superadmin disabling
 * itself), SS_FULL (see above) or a store error. */
int aaa_user_set_disabled(aaa_ctx *cx, store_user *u, int disabled, int *sessions_ended);

/* The superadmin sets the password of u: its sessions and live
 * connections end, and its sign-in throttle is lifted. OUT
 * sessions_ended. 0, SS_INVAL (the password breaks the rule: 12 to 1024
 * characters), SS_FULL (see above) or a store error. */
int aaa_user_reset_password(aaa_ctx *cx, const store_user *u, const char *password,
                            int *sessions_ended);

/* The superadmin lifts the sign-in throttle of u, its password untouched.
 * 0 or a store error. */
int aaa_user_unlock(aaa_ctx *cx, const store_user *u);

/* The person acting changes their own password: every other session of
 * theirs ends, the one acting stays. OUT others_ended. 0; SS_FORBIDDEN
 * (current is not their password, or the actor is no person); SS_INVAL
 * (the new one breaks the rule); SS_FULL (see above); or a store error. */
int aaa_user_change_password(aaa_ctx *cx, const char *current, const char *password,
                             int *others_ended);

#endif
