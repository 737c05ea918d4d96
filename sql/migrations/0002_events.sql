-- Stored events, partitioned by day of occurred_at. Uniqueness of (tenant_id, message_id)
-- across all partitions is kept by event_ids (a partitioned table cannot have a unique index
-- without the partition key); the processor inserts into event_ids first and stores only the
-- rows that went in.
CREATE TABLE events (
    tenant_id     uuid        NOT NULL,
    message_id    text        NOT NULL,
    event_type    text        NOT NULL,
    user_id       text,
    anonymous_id  text,
    occurred_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    sent_at       timestamptz,
    properties    jsonb       NOT NULL DEFAULT '{}',
    context       jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, occurred_at, message_id),
    CHECK (user_id IS NOT NULL OR anonymous_id IS NOT NULL)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE event_ids (
    tenant_id    uuid        NOT NULL,
    message_id   text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id)
);

-- Creates the daily partition holding day (UTC) if it is missing. Safe to call concurrently.
CREATE FUNCTION eventops_ensure_partition(day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := format('events_%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('eventops_ensure_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
        name,
        (day::timestamp AT TIME ZONE 'UTC'),
        ((day + 1)::timestamp AT TIME ZONE 'UTC'));
END;
$$;

-- Creates the partitions of every day from first to last (UTC), inclusive.
CREATE FUNCTION eventops_ensure_partitions(first date, last date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d date := first;
BEGIN
    WHILE d <= last LOOP
        PERFORM eventops_ensure_partition(d);
        d := d + 1;
    END LOOP;
END;
$$;

SELECT eventops_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1,
                                  (now() AT TIME ZONE 'UTC')::date + 7);
