/* Profiles (docs/profiles.md, ADR-28): the traits that events set on a user or a group, and the
 * links from an anonymous id to a user id, as a batch of newly stored events changes them.
 * Pure: no I/O. The processor merges a batch here and upserts the result in the events'
 * transaction (sql/migrations/0013_profiles.sql merges it into the stored rows by the same
 * rules); the query role merges a user's linked profiles with eo_profile_merge.
 *
 * What changes a profile (the user key: userId, else anonymousId):
 *   properties.$set       {trait: value}  the value with the latest event time wins per trait
 *   properties.$set_once  {trait: value}  sets a trait no $set ever set; the earliest one wins
 *   properties.$unset     [trait, ...]    removes the trait, as a $set at that time would set it
 *   eventType $identify / $create_alias   the profile exists (first seen, last seen) even
 *                                          without traits
 * Links (alias -> user; the first link by event time wins):
 *   $create_alias with properties.alias        alias -> the event's user key
 *   $identify with properties.$anon_distinct_id, else with both userId and anonymousId
 * Groups: $groupidentify with properties.$group_type, $group_key and $group_set {trait: value}
 * (as $set, per group type and key).
 *
 * Every trait carries its rank, a JSON array that orders its writers: [1, time, messageId] for
 * a $set or $unset, [0, -time, messageId] for a $set_once (times in microseconds); the greater
 * rank wins (numbers, then messageIds bytewise). A message id is unique per tenant, so no two
 * writers of a trait tie, and merging is commutative and associative: any order of batches and
 * redeliveries gives the same traits. */
#ifndef EO_DOMAIN_PROFILE_H
#define EO_DOMAIN_PROFILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "domain/event.h"

/* One stored event, as the profile rules read it. properties: borrowed object, or NULL. */
typedef struct {
    const char *tenant_id; /* 36 characters */
    eo_str_t event_type, user_id, anonymous_id, message_id;
    int64_t occurred_at_us;
    json_t *properties;
} eo_profile_event_t;

/* Whether an event may change a profile, a link or a group: by its type, or by properties that
 * hold "$set" or "$unset" (properties, or properties_text when properties is NULL; a false
 * positive only costs a parse). Cheap: the processor asks it of every stored event. */
bool eo_profile_touches(eo_str_t event_type, const json_t *properties, eo_str_t properties_text);

typedef struct eo_profile_batch eo_profile_batch_t;

/* Returns 0 or EO_ENOMEM. */
int eo_profile_batch_new(eo_profile_batch_t **out) EO_MUST_CHECK;
/* NULL accepted. */
void eo_profile_batch_free(eo_profile_batch_t *b);
/* Forgets what was added. */
void eo_profile_batch_reset(eo_profile_batch_t *b);
/* Merges what one event changes. An event that changes nothing is ignored. Returns 0 or
 * EO_ENOMEM. */
int eo_profile_batch_add(eo_profile_batch_t *b, const eo_profile_event_t *ev) EO_MUST_CHECK;
/* True when nothing was added that changes anything. */
bool eo_profile_batch_empty(const eo_profile_batch_t *b);
/* Appends the batch as one JSON document:
 *   {"profiles":[{"t":tenant,"k":userKey,"traits":{},"ranks":{},"f":firstSeen,"l":lastSeen}],
 *    "aliases":[{"t":tenant,"a":alias,"u":userKey,"at":time,"m":messageId}],
 *    "groups":[{"t":tenant,"gt":type,"gk":key,"traits":{},"ranks":{},"f":..,"l":..}]}
 * (times as RFC 3339 text). Returns 0 or EO_ENOMEM. */
int eo_profile_batch_json(const eo_profile_batch_t *b, eo_buf_t *out) EO_MUST_CHECK;

/* Order of two ranks (<0, 0, >0); a rank that is not an array of a number, a number and a
 * string is lower than any that is. */
int eo_profile_rank_cmp(const json_t *a, const json_t *b);

/* Merges traits and ranks from another writer into traits and ranks (objects): each trait of
 * from_ranks whose rank beats the one in ranks (or is new) takes its value from from_traits,
 * or is removed from traits when from_traits lacks it (an $unset). Returns 0 or EO_ENOMEM. */
int eo_profile_merge(json_t *traits, json_t *ranks, const json_t *from_traits,
                     const json_t *from_ranks) EO_MUST_CHECK;

#endif
