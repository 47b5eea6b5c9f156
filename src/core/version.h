/* version.h — the product's version, as `sensorspace version` prints it
 * and the broker publishes it on $SYS/broker/version. */
#ifndef SS_CORE_VERSION_H
#define SS_CORE_VERSION_H

#define SENSORSPACE_VERSION "0.1.0"

#endif
