-- bench/query_load.sql: helpers of bench/query_load.sh, in their own schema (qbench) of the
-- benchmark database. Safe to run again (CREATE OR REPLACE / IF NOT EXISTS).
--
-- One UTC day is loaded in one transaction:
--   qbench.detach_day(day)  creates the day's partition with eventops_ensure_partition (as the
--                           processor does), records its index and primary-key definitions,
--                           detaches it, drops them and truncates it;
--   COPY ... FROM STDIN (FREEZE) into the bare partition (frozen, all-visible: no vacuum pass
--                           is needed before index-only scans);
--   qbench.attach_day(idx)  rebuilds the indexes and the key (sorted builds), attaches the
--                           partition again (a CHECK constraint proves the bounds: no scan), adds
--                           the day's rollups (minute, hour and day, counted from the loaded rows,
--                           as pg_store.c would) and event_ids rows, and marks the day loaded.
-- event_ids has no primary key during the load (query_load.sh drops it first and adds it back
-- at the end: one sorted build, which also proves the messageIds unique).
-- A failure rolls the whole day back: the partition is attached and empty again.
CREATE SCHEMA IF NOT EXISTS qbench;

CREATE TABLE IF NOT EXISTS qbench.meta (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    events       bigint NOT NULL,
    days         integer NOT NULL,
    end_us       bigint NOT NULL,
    seed         bigint NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    load_seconds double precision
);

CREATE TABLE IF NOT EXISTS qbench.days (
    idx        integer PRIMARY KEY,
    day        date NOT NULL UNIQUE,
    planned    bigint NOT NULL,
    loaded     bigint,
    seconds    double precision,
    loaded_at  timestamptz
);

CREATE TABLE IF NOT EXISTS qbench.saved_defs (
    part  text NOT NULL,
    kind  text NOT NULL CHECK (kind IN ('pkey', 'index')),
    name  text NOT NULL,
    def   text NOT NULL,
    PRIMARY KEY (part, name)
);

CREATE OR REPLACE FUNCTION qbench.part_name(d date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('events_%s', to_char(d, 'YYYYMMDD')) $$;

CREATE OR REPLACE FUNCTION qbench.detach_day(d date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    pn text := qbench.part_name(d);
    r record;
BEGIN
    PERFORM eventops_ensure_partition(d);
    DELETE FROM qbench.saved_defs s WHERE s.part = pn;
    INSERT INTO qbench.saved_defs
    SELECT pn, 'pkey', c.conname, pg_get_constraintdef(c.oid)
    FROM pg_constraint c WHERE c.conrelid = pn::regclass AND c.contype = 'p';
    INSERT INTO qbench.saved_defs
    SELECT pn, 'index', i.relname, pg_get_indexdef(i.oid)
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    WHERE x.indrelid = pn::regclass AND NOT x.indisprimary;
    EXECUTE format('ALTER TABLE events DETACH PARTITION %I', pn);
    FOR r IN SELECT * FROM qbench.saved_defs s WHERE s.part = pn LOOP
        IF r.kind = 'pkey' THEN
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', pn, r.name);
        ELSE
            EXECUTE format('DROP INDEX %I', r.name);
        END IF;
    END LOOP;
    EXECUTE format('TRUNCATE %I', pn);
    RETURN pn;
END;
$$;

CREATE OR REPLACE FUNCTION qbench.attach_day(i integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    d date := (SELECT day FROM qbench.days WHERE idx = i);
    pn text := qbench.part_name(d);
    lo timestamptz := d::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (d + 1)::timestamp AT TIME ZONE 'UTC';
    r record;
    n bigint;
BEGIN
    FOR r IN SELECT * FROM qbench.saved_defs s WHERE s.part = pn ORDER BY kind DESC
    LOOP
        IF r.kind = 'pkey' THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', pn, r.name, r.def);
        ELSE
            EXECUTE r.def;
        END IF;
    END LOOP;
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT qbench_bounds'
                   ' CHECK (occurred_at >= %L AND occurred_at < %L)', pn, lo, hi);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   pn, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT qbench_bounds', pn);
    DELETE FROM qbench.saved_defs s WHERE s.part = pn;

    -- Rollups of exactly the rows loaded: minute counts, quarter hours, hours and days summed
    -- from them (UTC buckets, as the processor's session with TimeZone UTC computes them), each
    -- also for all event types together (event_type '').
    EXECUTE format($q$
        INSERT INTO rollups AS r (tenant_id, granularity, event_type, bucket_start, count)
        WITH per_minute AS (
            SELECT tenant_id, event_type, date_trunc('minute', occurred_at, 'UTC') AS minute,
                   count(*) AS n
            FROM %I GROUP BY 1, 2, 3)
        , typed (t, g, e, b, n) AS (
            SELECT tenant_id, 'minute', event_type, minute, n FROM per_minute
            UNION ALL
            SELECT tenant_id, 'quarter', event_type,
                   date_bin('15 minutes', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
                   sum(n)::bigint
            FROM per_minute GROUP BY 1, 3, 4
            UNION ALL
            SELECT tenant_id, 'hour', event_type, date_trunc('hour', minute, 'UTC'), sum(n)::bigint
            FROM per_minute GROUP BY 1, 3, 4
            UNION ALL
            SELECT tenant_id, 'day', event_type, date_trunc('day', minute, 'UTC'), sum(n)::bigint
            FROM per_minute GROUP BY 1, 3, 4)
        SELECT * FROM (
            SELECT * FROM typed
            UNION ALL
            SELECT t, g, '', b, sum(n)::bigint FROM typed GROUP BY 1, 2, 4) AS c (t, g, e, b, n)
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, granularity, event_type, bucket_start)
        DO UPDATE SET count = r.count + EXCLUDED.count$q$, pn);

    -- event_ids: the messageId register the processor inserts into first; stored_at is when the
    -- processor would have committed (a little after receipt).
    EXECUTE format($q$
        INSERT INTO event_ids (tenant_id, message_id, occurred_at, stored_at)
        SELECT tenant_id, message_id, occurred_at, received_at + interval '150 ms' FROM %I$q$,
        pn);
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE qbench.days SET loaded = n, loaded_at = now() WHERE idx = i;
    RETURN n;
END;
$$;
