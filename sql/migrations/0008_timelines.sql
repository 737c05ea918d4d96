-- Funnels from purpose-built data (issue 14, ADR-23 in docs/decisions.md): per tenant, event type
-- and UTC hour, the exact time of every stored event with its user's number (user_ids, 0007),
-- in the encoding of src/domain/timeline.h (a version byte, then per user in ascending number
-- the number's gap, the count of times, the first time in microseconds after the hour's start
-- and the increments; LEB128 varints). A repeated (user, time) pair is kept once. A funnel reads
-- the hours of its step types instead of the events.
-- Two tables, as for the user sets:
--  - timeline_deltas: written by the processor in the transaction of the events they describe,
--    one row per (tenant, type, hour) per batch, holding that batch's new events;
--  - timelines: one row per (tenant, type, hour); the compactor (in the processor) moves deltas
--    into them, deleting the deltas and rewriting the hour's row in one transaction.
-- The events of an hour are therefore its timelines row together with the deltas inside it;
-- every snapshot sees each stored event in exactly one of the two.
CREATE TABLE timeline_deltas (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    event_type    text        NOT NULL,
    bucket_start  timestamptz NOT NULL,
    events        bytea       NOT NULL
);
CREATE INDEX timeline_deltas_key ON timeline_deltas (tenant_id, event_type, bucket_start);
CREATE TABLE timelines (
    tenant_id     uuid        NOT NULL,
    event_type    text        NOT NULL,
    bucket_start  timestamptz NOT NULL,
    events        bytea       NOT NULL,
    PRIMARY KEY (tenant_id, event_type, bucket_start)
);
-- Varints hardly compress: stored out of line without pglz.
ALTER TABLE timelines ALTER COLUMN events SET STORAGE EXTERNAL;
ALTER TABLE timeline_deltas ALTER COLUMN events SET STORAGE EXTERNAL;
-- Complete over an empty database; otherwise the processor's backfill recomputes every day's
-- timelines from the events (timelines_backfill), then marks them complete.
INSERT INTO derived_structures (name, complete)
SELECT 'timelines', NOT EXISTS (SELECT 1 FROM event_ids);
CREATE TABLE timelines_backfill (
    day      date        PRIMARY KEY,
    done_at  timestamptz NOT NULL DEFAULT now()
);
