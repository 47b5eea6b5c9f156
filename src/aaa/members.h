/* members.h — who belongs to an organisation, with which role, and
 * joining with one's own consent (aaa/service.h).
 *
 * Rules (SPEC §2): admins manage members; nobody grants a role above their
 * own; only owners grant, change or remove the owner role; the last owner
 * of an org cannot be removed or lowered. A person joins only with their
 * own consent (an invitation they accept) or by the superadmin's act, and
 * adding a person never reveals whether their email has an account outside
 * the actor's reach. A change takes effect on the very next request, since
 * every check reads roles from the store.
 *
 * The caller checks access first: admin in the org (`mine` is the role
 * that check gave), except for accepting or declining, which is the
 * invitee's own act. */
#ifndef SS_AAA_MEMBERS_H
#define SS_AAA_MEMBERS_H

#include "aaa/service.h"

/* What adding a person did. */
typedef struct aaa_member_added {
    int invited;                   /* 1: invited (a member once they accept) */
    store_user user;               /* a member now: who */
    store_role previous;           /* a member now: their direct role before */
    store_invitation invitation;   /* invited: the invitation */
    int password_missing;          /* SS_INVAL: no password at all was given */
} aaa_member_added;

/* Adds the person with this email (lowercase) to the org with `role`:
 * directly when the actor is the superadmin or the person is a member
 * within the actor's reach already, else by invitation. A new account
 * takes `password`. OUT out. 0; SS_INVAL (no password for a new account,
 * or one that breaks the password rule: out->password_missing tells);
 * SS_FORBIDDEN (aaa_grant_refusal says why); SS_CONFLICT (it would take
 * the org's last owner's role); or a store error. */
int aaa_member_add(aaa_ctx *cx, const char *org_id, store_role mine, const char *email,
                   const char *password, store_role role, aaa_member_added *out);

/* The direct member user_id of the org and their role. SS_NOT_FOUND when
 * not a direct member (or a malformed id). */
int aaa_member_load(aaa_ctx *cx, const char *org_id, const char *user_id, store_user *u,
                    store_role *role);

/* Moves the member u from `from` to `to` (STORE_ROLE_NONE: removes them).
 * 0, SS_FORBIDDEN, SS_CONFLICT (last owner) or a store error. */
int aaa_member_set_role(aaa_ctx *cx, const char *org_id, store_role mine, const store_user *u,
                        store_role from, store_role to);

/* The invitation id, when it is of org_id (NULL: any) and for user_id
 * (NULL: anyone). SS_NOT_FOUND otherwise. */
int aaa_invitation_load(aaa_ctx *cx, const char *id, const char *org_id, const char *user_id,
                        store_invitation *inv);
/* The org's admins withdraw it. 0 or a store error. */
int aaa_invitation_withdraw(aaa_ctx *cx, const store_invitation *inv);
/* The invitee declines it. 0 or a store error. */
int aaa_invitation_decline(aaa_ctx *cx, const store_invitation *inv);
/* The invitee (the actor) accepts it and becomes a member. An invitation
 * carries its inviter's authority only while they hold it: once they
 * could no longer invite to that role in that org it is void, goes, and
 * the answer is SS_CONFLICT. OUT inv: as accepted. 0, SS_CONFLICT,
 * SS_FORBIDDEN (the actor is no person) or a store error. */
int aaa_invitation_accept(aaa_ctx *cx, store_invitation *inv);

#endif
