#include "core/err.h"

const char *ss_err_name(int err)
{
    switch (err) {
#define SS_ERR_NAME(name, code, msg) case code: return #name;
        SS_ERR_MAP(SS_ERR_NAME)
#undef SS_ERR_NAME
    }
    return "UNKNOWN";
}

const char *ss_strerror(int err)
{
    switch (err) {
#define SS_ERR_MSG(name, code, msg) case code: return msg;
        SS_ERR_MAP(SS_ERR_MSG)
#undef SS_ERR_MSG
    }
    return "unknown error";
}
