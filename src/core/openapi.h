/* The OpenAPI 3.1 document of every role (docs/openapi.json, compiled in). */
#ifndef EO_CORE_OPENAPI_H
#define EO_CORE_OPENAPI_H

#include "core/http.h"

/* Route handler of GET /openapi.json: answers the document. */
void eo_openapi_on_request(eo_http_req_t *req, void *ud);

#endif
