/* err.c — libuv's error codes as SS codes. */
#include "net/err.h"

#include "core/err.h"

#include <uv.h>

int net_err_from_uv(int uv_err)
{
    if (uv_err >= 0)
        return SS_OK;
    switch (uv_err) {
    case UV_EADDRINUSE: return SS_IN_USE;
    case UV_EADDRNOTAVAIL: return SS_UNAVAILABLE;
    case UV_EACCES:
    case UV_EPERM: return SS_FORBIDDEN;
    case UV_ENOMEM:
    case UV_ENOBUFS: return SS_NOMEM;
    case UV_EINVAL:
    case UV_EAFNOSUPPORT: return SS_INVAL;
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_ECANCELED: return SS_CLOSED;
    case UV_ETIMEDOUT: return SS_TIMEOUT;
    default: return SS_IO;
    }
}
