/* Error codes shared by every module: functions that can fail return 0 (or a count) on
 * success and one of these negative codes on failure. eo_strerror() names each code. */
#ifndef EO_CORE_ERROR_H
#define EO_CORE_ERROR_H

enum {
    EO_OK = 0,
    EO_ENOMEM = -1,   /* allocation failed */
    EO_EINVAL = -2,   /* input failed validation */
    EO_ELIMIT = -3,   /* a configured limit was exceeded */
    EO_EIO = -4,      /* an I/O or dependency call failed */
    EO_ETIMEOUT = -5, /* a deadline passed */
    EO_EUNAVAIL = -6, /* a dependency is unavailable; retry later */
    EO_EPARSE = -7,   /* input could not be parsed */
    EO_ENOTFOUND = -8,
    EO_EEXIST = -9,
    EO_EAUTH = -10, /* missing or bad credentials */
    EO_EDATA = -11, /* the database refused the data itself (never succeeds on retry) */
};

#define EO_MUST_CHECK __attribute__((warn_unused_result))

/* Marks a deliberately ignored result of an EO_MUST_CHECK function (gcc ignores a (void)). */
static inline void eo_ignore(int r)
{
    (void)r;
}

/* Returns a static, human-readable name for an EO_E* code. */
const char *eo_strerror(int code);

#endif
