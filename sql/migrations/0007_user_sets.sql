-- Heavy queries from purpose-built data (issue 14, ADR-22 in docs/decisions.md): dense per-tenant
-- user numbers, the sets of users seen per (tenant, event type, UTC time bucket) as roaring
-- bitmaps, and the event_count_by_day view.

-- A user is user_id, else anonymous_id (docs/query.md: the two are not merged). Each tenant's
-- users are numbered 0, 1, 2, ... in the order they are first stored; a number is assigned once
-- and never reused. Numbers may be skipped (a key numbered by two processors at once keeps the
-- first), never repeated.
CREATE TABLE user_ids (
    tenant_id  uuid    NOT NULL,
    user_key   text    NOT NULL,
    user_no    integer NOT NULL CHECK (user_no >= 0),
    PRIMARY KEY (tenant_id, user_key)
);

-- The next number of each tenant; only eventops_user_numbers() changes it.
CREATE TABLE user_counters (
    tenant_id  uuid   PRIMARY KEY,
    next_no    bigint NOT NULL CHECK (next_no >= 0 AND next_no <= 2147483648)
);

-- The numbers of the keys t[i], k[i] (as rows (i, user_no), i 1-based), numbering the new ones.
-- Runs as its own statement outside the events' transaction (the processor calls it before
-- BEGIN), so the counter row is locked for this call only: two processors numbering one tenant's
-- users wait for each other for a moment, never for a whole batch. A number given to a key whose
-- events then fail to store stays the key's (the dictionary only grows).
CREATE FUNCTION eventops_user_numbers(t uuid[], k text[])
RETURNS TABLE (i bigint, user_no integer)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    base bigint;
BEGIN
    FOR r IN
        SELECT n.tenant_id, array_agg(n.user_key ORDER BY n.user_key) AS keys
        FROM (SELECT DISTINCT u.tenant_id, u.user_key
              FROM unnest(t, k) AS u(tenant_id, user_key)
              WHERE NOT EXISTS (SELECT 1 FROM user_ids x
                                WHERE x.tenant_id = u.tenant_id AND x.user_key = u.user_key)) AS n
        GROUP BY n.tenant_id
        ORDER BY n.tenant_id
    LOOP
        INSERT INTO user_counters AS c (tenant_id, next_no)
        VALUES (r.tenant_id, cardinality(r.keys))
        ON CONFLICT (tenant_id) DO UPDATE SET next_no = c.next_no + cardinality(r.keys)
        RETURNING c.next_no - cardinality(r.keys) INTO base;
        INSERT INTO user_ids (tenant_id, user_key, user_no)
        SELECT r.tenant_id, a.key, (base + a.ord - 1)::integer
        FROM unnest(r.keys) WITH ORDINALITY AS a(key, ord)
        ORDER BY a.key
        ON CONFLICT DO NOTHING;
    END LOOP;
    RETURN QUERY
        SELECT u.i, x.user_no
        FROM unnest(t, k) WITH ORDINALITY AS u(tenant_id, user_key, i)
        JOIN user_ids x ON x.tenant_id = u.tenant_id AND x.user_key = u.user_key;
END;
$$;

-- The users seen per tenant, event type ('' for all types together, as in rollups) and UTC
-- bucket, as roaring bitmaps of user numbers in CRoaring's portable format
-- (roaring_bitmap_portable_serialize; the format is specified at
-- https://github.com/RoaringBitmap/RoaringFormatSpec). Two tables:
--  - user_set_deltas: written by the processor in the transaction of the events they describe,
--    one row per (tenant, type, quarter hour) per batch, holding that batch's new events' users;
--  - user_sets: the compacted sets per granularity (quarter, hour, day). The compactor (in the
--    processor) moves deltas into them: in one transaction it deletes a bucket's deltas and
--    merges them into the quarter, hour and day rows that hold it.
-- The users of a bucket are therefore its user_sets row united with the deltas inside it; every
-- snapshot sees each stored event's user exactly in one of the two.
CREATE TABLE user_set_deltas (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    event_type    text        NOT NULL,
    bucket_start  timestamptz NOT NULL,
    users         bytea       NOT NULL
);
CREATE INDEX user_set_deltas_key ON user_set_deltas (tenant_id, event_type, bucket_start);

CREATE TABLE user_sets (
    tenant_id     uuid        NOT NULL,
    granularity   text        NOT NULL CHECK (granularity IN ('quarter', 'hour', 'day')),
    event_type    text        NOT NULL,
    bucket_start  timestamptz NOT NULL,
    users         bytea       NOT NULL,
    PRIMARY KEY (tenant_id, granularity, event_type, bucket_start)
);
-- Bitmaps do not compress: stored out of line without pglz.
ALTER TABLE user_sets ALTER COLUMN users SET STORAGE EXTERNAL;
ALTER TABLE user_set_deltas ALTER COLUMN users SET STORAGE EXTERNAL;

-- Which derived structures describe every stored event. user_sets is complete when it was
-- created over an empty database; over existing events it becomes complete when the processor's
-- backfill has recomputed every day (user_sets_backfill below). The query role reads a
-- structure only when it is complete, raw events otherwise.
CREATE TABLE derived_structures (
    name        text        PRIMARY KEY,
    complete    boolean     NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO derived_structures (name, complete)
SELECT 'user_sets', NOT EXISTS (SELECT 1 FROM event_ids);

-- The UTC days (events partitions) whose user sets the processor's backfill has recomputed from
-- the events (ADR-22): while user_sets is not complete, the compactor recomputes one day at a
-- time, and marks the sets complete once every partition of events is listed here.
CREATE TABLE user_sets_backfill (
    day      date        PRIMARY KEY,
    done_at  timestamptz NOT NULL DEFAULT now()
);

-- For users who query PostgreSQL directly: exact event counts per tenant, UTC calendar day and
-- event type, from the day rollups (the rows the processor writes in the events' transaction).
-- day is the date in UTC; for another zone's days use the hour rollups or the query API.
CREATE VIEW event_count_by_day AS
SELECT tenant_id, (bucket_start AT TIME ZONE 'UTC')::date AS day, event_type, count
FROM rollups
WHERE granularity = 'day' AND event_type <> '';
COMMENT ON VIEW event_count_by_day IS
    'Events per tenant, UTC day (day is a date in UTC) and event type, from the day rollups.';
