/* GET /openapi.json (see openapi.h). */
#include "core/openapi.h"

extern const char eo_openapi_json[];
extern const size_t eo_openapi_json_len;

void eo_openapi_on_request(eo_http_req_t *req, void *ud)
{
    static const char *const headers[] = {"Cache-Control", "public, max-age=300", NULL};
    eo_http_respond(req, 200, eo_openapi_json, eo_openapi_json_len, headers);
}
