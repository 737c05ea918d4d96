/* Request body parsing for the ingest API (see batch.h). */
#include "domain/batch.h"

#include <string.h>

json_t *eo_body_load(const char *body, size_t len, eo_event_error_t *err)
{
    if (len == 0) {
        eo_event_error_set(err, "empty_body", "", "the request body is empty");
        return NULL;
    }
    if (memchr(body, '\0', len)) {
        eo_event_error_set(err, "invalid_json", "", "the body contains a NUL byte");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        eo_event_error_set(err, "invalid_json", "", "invalid JSON at line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
    return root;
}

int eo_batch_parse(const char *body, size_t len, bool single, const eo_event_limits_t *lim,
                   eo_batch_t *batch, eo_event_error_t *err)
{
    memset(batch, 0, sizeof *batch);
    batch->single = single;
    json_t *root = eo_body_load(body, len, err);
    if (!root)
        return EO_EPARSE;
    batch->root = root;
    json_t *items = root;
    if (single) {
        if (!json_is_object(root)) {
            eo_event_error_set(err, "invalid_type", "", "the body must be one JSON event object");
            goto fail;
        }
        batch->items = root;
        batch->count = 1;
        return 0;
    }
    if (json_is_object(root)) {
        items = json_object_get(root, "events");
        const char *name = "events";
        if (!items) {
            items = json_object_get(root, "batch");
            name = "batch";
        }
        if (!items) {
            eo_event_error_set(err, "missing_field", "events",
                               "the body must be an array of events or {\"events\": [...]}");
            goto fail;
        }
        if (!json_is_array(items)) {
            eo_event_error_set(err, "invalid_type", name, "'%s' must be an array", name);
            goto fail;
        }
    } else if (!json_is_array(root)) {
        eo_event_error_set(err, "invalid_type", "",
                           "the body must be an array of events or {\"events\": [...]}");
        goto fail;
    }
    batch->items = items;
    batch->count = json_array_size(items);
    if (batch->count == 0) {
        eo_event_error_set(err, "empty_batch", "events", "the batch holds no events");
        goto fail;
    }
    if (batch->count > lim->max_batch_events) {
        eo_event_error_set(err, "too_many_events", "events",
                           "the batch holds %zu events; the limit is %zu", batch->count,
                           lim->max_batch_events);
        eo_batch_done(batch);
        return EO_ELIMIT;
    }
    return 0;
fail:
    eo_batch_done(batch);
    return EO_EINVAL;
}

json_t *eo_batch_item(const eo_batch_t *batch, size_t i)
{
    return batch->single ? batch->items : json_array_get(batch->items, i);
}

void eo_batch_done(eo_batch_t *batch)
{
    if (!batch)
        return;
    json_decref(batch->root);
    batch->root = batch->items = NULL;
    batch->count = 0;
}
