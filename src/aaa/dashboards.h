/* dashboards.h — what a dashboard shows, as an access rule (SPEC §2).
 *
 * A person with the `dashboard` role in an org sees its dashboards and the
 * data their widgets show, nothing else. A (device, channel) pair is shown
 * by a dashboard of the device's org when a widget of a static dashboard
 * names the device and the channel, or when a dynamic dashboard lets the
 * viewer pick the device (its device filter matches the device's
 * attributes) and one of its widgets names the channel. */
#ifndef SS_AAA_DASHBOARDS_H
#define SS_AAA_DASHBOARDS_H

#include <stddef.h>

#include "store/store.h"

/* *covered = 1 when every one of the n channels of device d (as loaded;
 * its org is d->org_id) is shown by some dashboard of that org; n 0 asks
 * whether any channel of d is. 0 with *covered, or a store error. */
int aaa_dashboard_covers(store_conn *db, const store_device *d, const char *const *channels,
                         size_t n, int *covered);

#endif
