/* Routing (see http.h): the route of a request in a role's table, and the Allow value of a
 * path. Pure: no I/O, no libmicrohttpd. */
#include <string.h>

#include "core/http.h"

eo_route_result_t eo_route_find(const eo_http_route_t *routes, size_t n, const char *method,
                                const char *path, size_t *index)
{
    bool path_known = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0) {
            *index = i;
            return EO_ROUTE_FOUND;
        }
    }
    return path_known ? EO_ROUTE_NO_METHOD : EO_ROUTE_NO_PATH;
}

size_t eo_route_allow(const eo_http_route_t *routes, size_t n, const char *path, char *out,
                      size_t cap)
{
    size_t len = 0, count = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        size_t m = strlen(routes[i].method), sep = count ? 2 : 0;
        if (len + sep + m + 1 > cap)
            continue;
        memcpy(out + len, ", ", sep);
        memcpy(out + len + sep, routes[i].method, m);
        len += sep + m;
        out[len] = '\0';
        count++;
    }
    return count;
}
