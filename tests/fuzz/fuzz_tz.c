/* libFuzzer harness of eo_tz_parse on raw bytes (a TZif file, which zones.c reads from the
 * system's tz database). Invariants checked (abort on violation), beyond "no crash, no leak":
 *  - eo_tz_parse gives 0 with a zone, or EO_EPARSE with a reason and no zone (or EO_ENOMEM);
 *  - on a parsed zone, at fixed instants, at instants read from the input (so that transition
 *    times are hit, and the microseconds either side of them), and at the bounds found:
 *    the offset is within the RFC's range; day_start <= t < day_end and week_start <= t <
 *    week_end; days and weeks tile (the start of a bound is that bound, the instant before an
 *    end belongs to the same day or week); a week holds its days; a time outside the exact
 *    range gives the bounds of the clamped time. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/tz.h"
#include "fuzz_check.h"

#define US INT64_C(1000000)
#define MAX_OFFSET (26 * 3600 * US)

static void check_at(const eo_tz_t *tz, int64_t t)
{
    int64_t off = eo_tz_offset_us(tz, t);
    CHECK(off > -MAX_OFFSET && off < MAX_OFFSET, "offset %lld at %lld", (long long)off,
          (long long)t);
    int64_t ds = eo_tz_day_start(tz, t), de = eo_tz_day_end(tz, t);
    int64_t ws = eo_tz_week_start(tz, t), we = eo_tz_week_end(tz, t);
    if (t < EO_TZ_MIN_US || t > EO_TZ_MAX_US) {
        int64_t c = t < EO_TZ_MIN_US ? EO_TZ_MIN_US : EO_TZ_MAX_US;
        CHECK(ds == eo_tz_day_start(tz, c) && de == eo_tz_day_end(tz, c), "clamp at %lld",
              (long long)t);
        CHECK(ws == eo_tz_week_start(tz, c) && we == eo_tz_week_end(tz, c), "clamp at %lld",
              (long long)t);
        return;
    }
    CHECK(ds <= t && t < de, "day [%lld, %lld) misses %lld", (long long)ds, (long long)de,
          (long long)t);
    CHECK(ws <= t && t < we, "week [%lld, %lld) misses %lld", (long long)ws, (long long)we,
          (long long)t);
    CHECK(ws <= ds && de <= we, "day [%lld, %lld) not in week [%lld, %lld)", (long long)ds,
          (long long)de, (long long)ws, (long long)we);
    /* Bounds outside the exact range would be clamped back into this day or week: only the
     * bounds within it are checked further. */
    if (ds >= EO_TZ_MIN_US)
        CHECK(eo_tz_day_start(tz, ds) == ds, "day start of the day start %lld", (long long)ds);
    if (ws >= EO_TZ_MIN_US) {
        CHECK(eo_tz_week_start(tz, ws) == ws, "week start of the week start %lld", (long long)ws);
        CHECK(eo_tz_day_start(tz, ws) == ws, "week start %lld is no day start", (long long)ws);
    }
    if (de <= EO_TZ_MAX_US) {
        CHECK(eo_tz_day_start(tz, de - 1) == ds, "day of %lld - 1", (long long)de);
        CHECK(eo_tz_day_start(tz, de) == de, "day end %lld starts no day", (long long)de);
    }
    if (we <= EO_TZ_MAX_US) {
        CHECK(eo_tz_week_start(tz, we - 1) == ws, "week of %lld - 1", (long long)we);
        CHECK(eo_tz_week_start(tz, we) == we, "week end %lld starts no week", (long long)we);
    }
}

static int64_t read_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* The instant s seconds, the microsecond either side, and the bounds found around it. */
static void check_times(const eo_tz_t *tz, int64_t s)
{
    if (s < EO_TZ_MIN_US / US || s > EO_TZ_MAX_US / US)
        return;
    int64_t t = s * US;
    check_at(tz, t - 1);
    check_at(tz, t);
    check_at(tz, t + 1);
    check_at(tz, eo_tz_day_start(tz, t) - 1);
    int64_t we = eo_tz_week_end(tz, t);
    if (we <= EO_TZ_MAX_US)
        check_at(tz, we);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eo_tz_t *tz = NULL;
    char err[160] = "";
    int r = eo_tz_parse(data, size, &tz, err, sizeof err);
    if (r != 0) {
        CHECK(r == EO_EPARSE || r == EO_ENOMEM, "eo_tz_parse: %d", r);
        CHECK(tz == NULL, "a zone after a refusal");
        CHECK(r != EO_EPARSE || err[0] != '\0', "refused without a reason");
        return 0;
    }
    CHECK(tz != NULL, "no zone");

    static const int64_t fixed[] = {INT64_MIN,
                                    EO_TZ_MIN_US - 1,
                                    EO_TZ_MIN_US,
                                    INT64_C(-2524521600) * US, /* 1890 */
                                    -1,
                                    0,
                                    INT64_C(1711846800) * US, /* 2024-03-31T01:00Z */
                                    INT64_C(4102444800) * US, /* 2100 */
                                    EO_TZ_MAX_US,
                                    EO_TZ_MAX_US + 1,
                                    INT64_MAX};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_at(tz, fixed[i]);

    /* Times read where the transitions are in a valid file: up to 32 32-bit words after the
     * first header, up to 64 64-bit words after the second one. */
    for (size_t i = 44, k = 0; i + 4 <= size && k < 32; i += 4, k++)
        check_times(tz, (int32_t)((uint32_t)data[i] << 24 | (uint32_t)data[i + 1] << 16 |
                                  (uint32_t)data[i + 2] << 8 | data[i + 3]));
    const uint8_t *second = size > 4 ? memmem(data + 4, size - 4, "TZif", 4) : NULL;
    if (second)
        for (size_t i = (size_t)(second - data) + 44, k = 0; i + 8 <= size && k < 64; i += 8, k++)
            check_times(tz, read_be64(data + i));
    eo_tz_free(tz);
    return 0;
}
