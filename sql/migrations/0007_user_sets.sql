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

-- The numbers of the keys t[i], k[i] (as rows (i, user_no), i 1-based), numbering the new ones:
-- each key is looked up once, and a new one inserted once, in one statement. Runs as its own
-- statement outside the events' transaction (the processor calls it before BEGIN), so a tenant's
-- counter row is locked for this statement only: two processors numbering one tenant's users
-- wait for each other for a moment, never for a whole batch. A key that another transaction
-- numbered meanwhile (the insert found it taken) is left out of the answer: the caller asks
-- again for the keys that did not come back. A number given to a key whose events then fail to
-- store stays the key's (the dictionary only grows).
CREATE FUNCTION eventops_user_numbers(t uuid[], k text[])
RETURNS TABLE (i bigint, user_no integer)
LANGUAGE sql AS $$
    WITH u AS (SELECT * FROM unnest(t, k) WITH ORDINALITY AS u(tenant_id, user_key, i)),
    old AS (SELECT DISTINCT u.tenant_id, u.user_key, x.user_no
            FROM u JOIN user_ids AS x USING (tenant_id, user_key)),
    new AS (SELECT d.tenant_id, d.user_key,
                   row_number() OVER (PARTITION BY d.tenant_id ORDER BY d.user_key) AS rn
            FROM (SELECT DISTINCT u.tenant_id, u.user_key FROM u) AS d
            WHERE NOT EXISTS (SELECT 1 FROM old
                              WHERE old.tenant_id = d.tenant_id AND old.user_key = d.user_key)),
    cnt AS (SELECT new.tenant_id, count(*) AS n FROM new GROUP BY new.tenant_id),
    ctr AS (INSERT INTO user_counters AS c (tenant_id, next_no)
            SELECT cnt.tenant_id, cnt.n FROM cnt ORDER BY cnt.tenant_id
            ON CONFLICT (tenant_id) DO UPDATE SET next_no = c.next_no + EXCLUDED.next_no
            RETURNING c.tenant_id, c.next_no),
    ins AS (INSERT INTO user_ids (tenant_id, user_key, user_no)
            SELECT new.tenant_id, new.user_key, (ctr.next_no - cnt.n + new.rn - 1)::integer
            FROM new JOIN cnt USING (tenant_id) JOIN ctr USING (tenant_id)
            ORDER BY new.tenant_id, new.user_key
            ON CONFLICT DO NOTHING
            RETURNING user_ids.tenant_id, user_ids.user_key, user_ids.user_no)
    SELECT u.i, r.user_no
    FROM u JOIN (SELECT * FROM old UNION ALL SELECT * FROM ins) AS r USING (tenant_id, user_key)
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
