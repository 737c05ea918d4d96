/* The per-role OpenAPI documents (see openapi.h).
 *
 * Threads: any thread may ask; the documents made are kept in `documents`, guarded by `lock`,
 * and never freed (one per role, for the life of the process). */
#include "core/openapi.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

extern const char eo_openapi_json[];
extern const size_t eo_openapi_json_len;

#define MAX_ROLES 8

static const char *const methods[] = {"get",     "put",  "post",  "delete",
                                      "options", "head", "patch", "trace"};

static struct {
    char role[32];
    char *text;
    size_t len;
} documents[MAX_ROLES];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether obj's `x-eventops-role` (an array of role names) holds role. */
static bool names_role(const json_t *obj, const char *role)
{
    const json_t *roles = json_object_get(obj, "x-eventops-role");
    size_t i;
    const json_t *r;
    json_array_foreach(roles, i, r)
    {
        if (json_is_string(r) && !strcmp(json_string_value(r), role))
            return true;
    }
    return false;
}

/* Keeps the members of obj's array `key` that belong to role: tags by name, servers by their
 * `x-eventops-role`. */
static void keep_members(json_t *obj, const char *key, const char *role)
{
    json_t *list = json_object_get(obj, key);
    for (size_t i = json_array_size(list); i-- > 0;) {
        const json_t *m = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(m, "name"));
        bool mine = json_object_get(m, "x-eventops-role") ? names_role(m, role)
                                                          : name && !strcmp(name, role);
        if (!mine)
            json_array_remove(list, i);
    }
}

/* Keeps the operations of role in doc's paths, each with role's servers; drops the path items
 * left without one. */
static void keep_operations(json_t *doc, const char *role)
{
    json_t *paths = json_object_get(doc, "paths");
    const char *path;
    json_t *item, *tmp;
    json_object_foreach_safe(paths, tmp, path, item)
    {
        size_t left = 0;
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
            json_t *op = json_object_get(item, methods[m]);
            if (!op)
                continue;
            if (names_role(op, role)) {
                keep_members(op, "servers", role);
                left++;
            } else {
                json_object_del(item, methods[m]);
            }
        }
        if (left == 0)
            json_object_del(paths, path);
    }
}

/* A new document for role (the caller frees it with free), or NULL. */
static char *make_document(const char *role, size_t *len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(eo_openapi_json, eo_openapi_json_len, 0, &jerr);
    if (!doc)
        return NULL;
    keep_operations(doc, role);
    keep_members(doc, "servers", role);
    keep_members(doc, "tags", role);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(doc);
    *len = text ? strlen(text) : 0;
    return text;
}

const char *eo_openapi_document(const char *role, size_t *len)
{
    const char *text = NULL;
    pthread_mutex_lock(&lock);
    size_t i = 0;
    for (; i < MAX_ROLES && documents[i].text; i++)
        if (!strcmp(documents[i].role, role))
            break;
    if (i < MAX_ROLES && !documents[i].text && strlen(role) < sizeof documents[i].role) {
        documents[i].text = make_document(role, &documents[i].len);
        if (documents[i].text)
            memcpy(documents[i].role, role, strlen(role) + 1);
    }
    if (i < MAX_ROLES && documents[i].text) {
        text = documents[i].text;
        *len = documents[i].len;
    }
    pthread_mutex_unlock(&lock);
    return text;
}

void eo_openapi_on_request(eo_http_req_t *req, void *ud)
{
    static const char *const headers[] = {"Cache-Control", "public, max-age=300", NULL};
    size_t len;
    const char *text = eo_openapi_document(eo_http_role(req), &len);
    if (text)
        eo_http_respond(req, 200, text, len, headers);
    else
        eo_http_respond_error(req, 503, "overloaded", "the document could not be made", NULL, NULL);
}
