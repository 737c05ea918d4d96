-- Bounded timeline rows (issue 13, ADR-23 in docs/decisions.md): an hour of one event type of a
-- large tenant holds millions of events, and the compactor rewrote the hour's whole row every
-- pass (decode, merge, sort, encode, write): its memory and CPU grew with the hour, and the
-- hour's cost with the square of its events. Now an hour is held in parts of at most
-- EVENTOPS_TIMELINE_PART_EVENTS events: the compactor merges deltas into the hour's last part
-- while it has room and starts the next part when it has not, so a pass rewrites at most one
-- part per hour. The events of an hour are the union of its parts and its deltas (a user may
-- appear in several: readers merge, as they already did for the deltas).
-- n_events of the rows written before this migration is 0 (unknown): such a row counts as having
-- room and gets its true count at its next merge.
ALTER TABLE timelines
    ADD COLUMN part integer NOT NULL DEFAULT 0,
    ADD COLUMN n_events integer NOT NULL DEFAULT 0;
ALTER TABLE timelines
    DROP CONSTRAINT timelines_pkey,
    ADD PRIMARY KEY (tenant_id, event_type, bucket_start, part);
