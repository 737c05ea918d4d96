/* librdkafka helpers shared by the roles: configuration with errors in the caller's buffer,
 * and librdkafka's own log lines routed into our JSON log. */
#ifndef EO_CORE_KAFKA_H
#define EO_CORE_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "core/error.h"

/* A new configuration with bootstrap.servers set and logging routed to eo_log. Caller owns it
 * (rd_kafka_conf_destroy, or hand it to rd_kafka_new). NULL on failure (err filled). */
rd_kafka_conf_t *eo_kafka_conf_new(const char *brokers, char *err, size_t errlen);

/* Sets key=value; EO_EINVAL with librdkafka's reason in err. */
int eo_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                 size_t errlen) EO_MUST_CHECK;

/* Sets several pairs: kv = {key, value, key, value, ..., NULL}. */
int eo_kafka_set_all(rd_kafka_conf_t *conf, const char *const *kv, char *err,
                     size_t errlen) EO_MUST_CHECK;

#endif
