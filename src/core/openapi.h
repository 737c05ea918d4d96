/* The OpenAPI 3.1 document of each role, cut from the one source docs/openapi.json (compiled
 * in): a role's document holds the operations whose `x-eventops-role` names it (with the
 * servers of that role), its root servers and tag, and every shared component. */
#ifndef EO_CORE_OPENAPI_H
#define EO_CORE_OPENAPI_H

#include <stddef.h>

#include "core/http.h"

/* The document of role ("collector", "query", ...) as JSON text, made on the first call and
 * kept for the life of the process (the caller does not free it); *len is its length. NULL
 * when it cannot be made (no memory). Thread-safe. */
const char *eo_openapi_document(const char *role, size_t *len);

/* Route handler of GET /openapi.json: answers the document of the server's role
 * (eo_http_role). */
void eo_openapi_on_request(eo_http_req_t *req, void *ud);

#endif
