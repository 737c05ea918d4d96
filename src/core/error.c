/* Names for the EO_E* error codes. */
#include "core/error.h"

const char *eo_strerror(int code)
{
    switch (code) {
    case EO_OK:
        return "ok";
    case EO_ENOMEM:
        return "out of memory";
    case EO_EINVAL:
        return "invalid input";
    case EO_ELIMIT:
        return "limit exceeded";
    case EO_EIO:
        return "I/O error";
    case EO_ETIMEOUT:
        return "timed out";
    case EO_EUNAVAIL:
        return "dependency unavailable";
    case EO_EPARSE:
        return "parse error";
    case EO_ENOTFOUND:
        return "not found";
    case EO_EEXIST:
        return "already exists";
    case EO_EAUTH:
        return "authentication failed";
    case EO_EDATA:
        return "data rejected by storage";
    default:
        return "unknown error";
    }
}
