/* Storing a batch of records through the store port (store.h), with what the processor
 * promises about every record: each one is stored, or becomes a dead letter with its reason,
 * or the batch is retried.
 *
 * - A record that does not decode or validate (the collector's rules) is dead with the
 *   validation's reason; one whose tenant the store does not know is dead ("unknown_tenant").
 * - A write the store refuses for its data (EO_EDATA) is split in halves until the refused
 *   records stand alone; each becomes dead ("storage_rejected", the store's message) and the
 *   rest is stored.
 * - A store that is unavailable (any other error) fails the share; eo_batch_store() runs the
 *   failed shares again after the caller's wait, until they succeed or the wait gives up.
 *
 * Uses only the port and the domain: no database or Kafka library, so that it is unit-tested
 * with a fake store. Threads: a share is worked on by one thread at a time; shares of one
 * batch touch disjoint items and may run in parallel. */
#ifndef EO_PROCESSOR_BATCH_STORE_H
#define EO_PROCESSOR_BATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "domain/event.h"
#include "domain/record.h"
#include "processor/store.h"

/* One record of a batch. */
typedef struct {
    const void *payload; /* the record's bytes (borrowed from source) */
    size_t len;
    void *source;         /* the caller's handle of the record (the processor: its message) */
    eo_record_t rec;      /* valid while decoded; release with eo_batch_item_done() */
    bool attempted;       /* decoding was tried */
    bool decoded;         /* rec holds a valid record */
    bool dead;            /* goes to the dead-letter topic */
    eo_event_error_t why; /* when dead */
} eo_batch_item_t;

/* Starts an item for payload (len bytes) with the caller's source handle. */
void eo_batch_item_init(eo_batch_item_t *it, const void *payload, size_t len, void *source);
/* Releases the decoded record. */
void eo_batch_item_done(eo_batch_item_t *it);

/* A share of a batch: the items stored through one store in one call. */
typedef struct {
    eo_store_t *store; /* borrowed (a storage worker's) */
    size_t *idx;       /* indexes into the batch's items; owned, grown by eo_batch_share_out */
    size_t n, cap;     /* n == 0: nothing (more) to store */
    int result;        /* of the last run: 0, or EO_EUNAVAIL / EO_EIO / EO_ENOMEM */
    size_t inserted;   /* rows the last run inserted */
    char err[512];     /* why the last run failed, or the store's last refusal */
} eo_batch_share_t;

/* Told of each record the store refused (its message), e.g. to log it. May be NULL. */
typedef void (*eo_batch_refused_fn)(const char *err);

/* Stores one share of items: decodes the items not tried yet, drops those of unknown tenants
 * and isolates the refused ones as dead, stores the rest. Sets and returns sh->result (0, or
 * the store's EO_EUNAVAIL / EO_EIO, or EO_ENOMEM) and sh->inserted. */
int eo_batch_store_share(eo_batch_share_t *sh, eo_batch_item_t *items, const eo_event_limits_t *lim,
                         eo_batch_refused_fn refused);

/* Cuts n items into k equal contiguous shares (indexes 0..n). Not by partition: a poll returns
 * messages in per-partition runs, so a batch often comes from two or three partitions and a
 * split by partition left one worker with most of it. The same record id in two shares is the
 * store's to settle (PostgreSQL: both transactions insert event_ids in key order, the second
 * waits and skips it). Returns 0 or EO_ENOMEM. */
int eo_batch_share_out(eo_batch_share_t *shares, size_t k, size_t n) EO_MUST_CHECK;

/* Runs every share with n > 0 through eo_batch_store_share (in parallel or not) and returns
 * when all are done. */
typedef void (*eo_batch_run_fn)(void *ud);

/* The store was unavailable (err: the first failed share's reason): waits before the next
 * attempt. Returns false to give up on the batch. */
typedef bool (*eo_batch_wait_fn)(void *ud, const char *err);

/* Stores n items in k shares with retries: shares that failed are run again after wait(),
 * those that succeeded are not. *inserted sums the rows of the successful runs. Returns 0, or
 * EO_ETIMEOUT when the batch must be dropped (wait gave up, or out of memory). */
int eo_batch_store(eo_batch_share_t *shares, size_t k, size_t n, eo_batch_run_fn run,
                   eo_batch_wait_fn wait, void *ud, size_t *inserted) EO_MUST_CHECK;

#endif
