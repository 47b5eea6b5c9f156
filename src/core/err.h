/* err.h — the one error type of SensorSpace.
 *
 * 0 is success; every error is a negative code from SS_ERR_MAP, which also
 * yields each code's name and message (the UV_ERRNO_MAP habit). Functions
 * return an int from this list; protocol layers map it to their own terms
 * in one function each (http_status_for_err, ...). */
#ifndef SS_ERR_H
#define SS_ERR_H

#define SS_ERR_MAP(X)                                                   \
    X(OK, 0, "success")                                                 \
    X(NOMEM, -1, "out of memory")                                       \
    X(INVAL, -2, "invalid argument")                                    \
    X(TOO_LARGE, -3, "too large")                                       \
    X(NOT_FOUND, -4, "not found")                                       \
    X(EXISTS, -5, "already exists")                                     \
    X(STORE, -6, "store unavailable")                                   \
    X(FULL, -7, "store full")                                           \
    X(IO, -8, "input/output error")                                     \
    X(PARSE, -9, "malformed input")                                     \
    X(AUTH, -10, "not authenticated")                                   \
    X(FORBIDDEN, -11, "not allowed")                                    \
    X(QUOTA, -12, "quota exceeded")                                     \
    X(TLS, -13, "TLS failure")                                          \
    X(CLOSED, -14, "closed")                                            \
    X(TIMEOUT, -15, "timed out")                                        \
    X(BUSY, -16, "busy")                                                \
    X(CONFLICT, -17, "conflicts with the current state")                \
    X(IN_USE, -18, "address already in use")                            \
    X(UNAVAILABLE, -19, "address not available on this host")

enum ss_err {
#define SS_ERR_ENUM(name, code, msg) SS_##name = (code),
    SS_ERR_MAP(SS_ERR_ENUM)
#undef SS_ERR_ENUM
};

/* The code's short name ("NOT_FOUND"); "UNKNOWN" for a code not in the map. */
const char *ss_err_name(int err);
/* A message a person can read ("not found"); never NULL. */
const char *ss_strerror(int err);

#endif
