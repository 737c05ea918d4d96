/* Fault injection for tests (see fault.h). */
#include "core/fault.h"

#ifdef EO_FAULT_INJECTION
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

bool eo_fault_take(const char *name)
{
    const char *dir = getenv("EVENTOPS_FAULT_DIR");
    char path[4096];
    if (!dir || !*dir || snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return false;
    return unlink(path) == 0; /* exists, and taken by exactly one caller */
}
#endif
