/* Fault injection for tests (sqlite's and curl's habit: a test build can make rare failures
 * happen on demand). Compiled in only with -DEO_FAULT_INJECTION=ON (the test build, `make
 * build-test`); in every other build eo_fault_take() is a constant false and costs nothing.
 *
 * A fault is armed by creating the file $EVENTOPS_FAULT_DIR/<name>; the next eo_fault_take(name)
 * removes it and returns true, once. Names in use: processor-consumer-fatal,
 * processor-producer-fatal, collector-producer-fatal (a fabricated fatal librdkafka error,
 * rd_kafka_test_fatal_error, in that client; the processor's are taken by the stream module
 * stream/kafka_consumer.c under the names the processor gives it). Any thread may call it. */
#ifndef EO_CORE_FAULT_H
#define EO_CORE_FAULT_H

#include <stdbool.h>

#ifdef EO_FAULT_INJECTION
bool eo_fault_take(const char *name);
#else
static inline bool eo_fault_take(const char *name)
{
    (void)name;
    return false;
}
#endif

#endif
