-- Profiles (issue 15, ADR-28 in docs/decisions.md, docs/profiles.md): the traits events set on a
-- user ($identify, $set, $set_once, $unset) and on a group ($groupidentify), and the links from an
-- anonymous id to a user id ($create_alias, $identify). The processor writes them in the events'
-- transaction, so each event changes them exactly once (event_ids decides, as for the events).
--
-- Each trait keeps its rank beside its value (trait_ranks: {trait: [kind, time, messageId]}):
-- [1, t, m] for a $set or $unset at time t (microseconds), [0, -t, m] for a $set_once; the greater
-- rank wins. So a $set beats every $set_once, the latest $set wins, the earliest $set_once wins,
-- and the result does not depend on the order the events are stored in. src/domain/profile.c
-- applies the same rules within a batch (eo_profile_rank_cmp, eo_profile_merge).

-- The user key is user_id, else anonymous_id (as in user_ids).
CREATE TABLE profiles (
    tenant_id    uuid        NOT NULL,
    user_key     text        NOT NULL,
    traits       jsonb       NOT NULL DEFAULT '{}',
    trait_ranks  jsonb       NOT NULL DEFAULT '{}',
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_key)
);

-- alias_key belongs to user_key; an alias has one user: the first link by (linked_at, message_id).
CREATE TABLE profile_aliases (
    tenant_id   uuid        NOT NULL,
    alias_key   text        NOT NULL,
    user_key    text        NOT NULL,
    linked_at   timestamptz NOT NULL,
    message_id  text        NOT NULL,
    PRIMARY KEY (tenant_id, alias_key)
);
CREATE INDEX profile_aliases_user ON profile_aliases (tenant_id, user_key);

CREATE TABLE profile_groups (
    tenant_id    uuid        NOT NULL,
    group_key    text        NOT NULL,
    group_type   text        NOT NULL,
    traits       jsonb       NOT NULL DEFAULT '{}',
    trait_ranks  jsonb       NOT NULL DEFAULT '{}',
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, group_key, group_type)
);

-- True when rank a beats rank b (NULL: no rank yet): numbers first, then message ids bytewise.
CREATE FUNCTION eventops_rank_beats(a jsonb, b jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT b IS NULL OR
           ((a->>0)::numeric, (a->>1)::numeric, (a->>2) COLLATE "C") >
           ((b->>0)::numeric, (b->>1)::numeric, (b->>2) COLLATE "C")
$$;

-- Merges the traits of another writer: each trait of new_ranks whose rank beats the stored one
-- takes its value from new_traits, or is removed when new_traits lacks it (an $unset).
CREATE FUNCTION eventops_merge_traits(traits jsonb, ranks jsonb, new_traits jsonb,
                                      new_ranks jsonb, OUT merged_traits jsonb,
                                      OUT merged_ranks jsonb)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
    r jsonb;
BEGIN
    merged_traits := traits;
    merged_ranks := ranks;
    FOR k, r IN SELECT key, value FROM jsonb_each(new_ranks) LOOP
        IF eventops_rank_beats(r, merged_ranks -> k) THEN
            merged_ranks := merged_ranks || jsonb_build_object(k, r);
            IF new_traits ? k THEN
                merged_traits := merged_traits || jsonb_build_object(k, new_traits -> k);
            ELSE
                merged_traits := merged_traits - k;
            END IF;
        END IF;
    END LOOP;
END $$;
