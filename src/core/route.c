/* Routing (see http.h): the route of a request in a role's table, the Allow value of a path,
 * and the text of a route's path parameters. Pure: no I/O, no libmicrohttpd. */
#include <string.h>

#include "core/http.h"

/* Where the parameter segment starting at p ends (its '}'), or NULL when p does not start one:
 * a parameter is "{name}" as a whole segment, after a '/' and before a '/' or the end. */
static const char *param_end(const char *pattern, const char *p)
{
    if (*p != '{' || p == pattern || p[-1] != '/')
        return NULL;
    const char *close = strchr(p, '}');
    if (!close || close == p + 1 || memchr(p, '/', (size_t)(close - p)) ||
        (close[1] != '\0' && close[1] != '/'))
        return NULL;
    return close;
}

/* Matches path against pattern. With name set, also finds that parameter's text (*value,
 * *len); the match fails when pattern has no parameter of that name. */
static bool match(const char *pattern, const char *path, const char *name, const char **value,
                  size_t *len)
{
    const char *p = pattern, *s = path;
    bool found = name == NULL;
    while (*p && *s) {
        const char *close = param_end(pattern, p);
        if (close) {
            size_t seg = strcspn(s, "/");
            if (seg == 0)
                return false;
            size_t nlen = (size_t)(close - p - 1);
            if (name && strlen(name) == nlen && strncmp(p + 1, name, nlen) == 0) {
                *value = s;
                *len = seg;
                found = true;
            }
            p = close + 1;
            s += seg;
        } else {
            if (*p != *s)
                return false;
            p++;
            s++;
        }
    }
    return *p == '\0' && *s == '\0' && found;
}

bool eo_route_match(const char *pattern, const char *path)
{
    return match(pattern, path, NULL, NULL, NULL);
}

bool eo_route_param(const char *pattern, const char *path, const char *name, const char **value,
                    size_t *len)
{
    return name && match(pattern, path, name, value, len);
}

eo_route_result_t eo_route_find(const eo_http_route_t *routes, size_t n, const char *method,
                                const char *path, size_t *index)
{
    bool path_known = false;
    for (size_t i = 0; i < n; i++) {
        if (!eo_route_match(routes[i].path, path))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0) {
            *index = i;
            return EO_ROUTE_FOUND;
        }
    }
    return path_known ? EO_ROUTE_NO_METHOD : EO_ROUTE_NO_PATH;
}

/* True when a route before i matches path with route i's method (named once in Allow). */
static bool method_listed(const eo_http_route_t *routes, size_t i, const char *path)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(routes[j].method, routes[i].method) == 0 && eo_route_match(routes[j].path, path))
            return true;
    return false;
}

size_t eo_route_allow(const eo_http_route_t *routes, size_t n, const char *path, char *out,
                      size_t cap)
{
    size_t len = 0, count = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!eo_route_match(routes[i].path, path) || method_listed(routes, i, path))
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
