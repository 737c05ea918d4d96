-- Query service (docs/query.md): quarter-hour and all-types rollups, indexes for the endpoints
-- that read events, and the bucket boundaries of a time zone.

-- Rollups gain a quarter-hour granularity (UTC :00, :15, :30, :45), so that a bucket bounded by
-- a :30 or :45 offset (Kolkata, Kathmandu, Lord Howe) is whole quarters rather than minutes,
-- and rows for all event types together (event_type '', which no event can have), so that a
-- count over every type reads one row per time piece rather than one per type.
ALTER TABLE rollups DROP CONSTRAINT rollups_granularity_check;
ALTER TABLE rollups ADD CONSTRAINT rollups_granularity_check
    CHECK (granularity IN ('minute', 'quarter', 'hour', 'day'));

INSERT INTO rollups (tenant_id, granularity, event_type, bucket_start, count)
SELECT tenant_id, 'quarter', event_type,
       date_bin('15 minutes', bucket_start, TIMESTAMPTZ '2000-01-01 00:00:00+00'), sum(count)
FROM rollups WHERE granularity = 'minute' AND event_type <> ''
GROUP BY 1, 3, 4;

INSERT INTO rollups (tenant_id, granularity, event_type, bucket_start, count)
SELECT tenant_id, granularity, '', bucket_start, sum(count)
FROM rollups WHERE event_type <> ''
GROUP BY 1, 2, 4;

-- Unique users, breakdown, funnel and retention read one event type's events over a range;
-- user_id and anonymous_id ride along so that the user key needs no heap visit.
CREATE INDEX events_tenant_type_time ON events (tenant_id, event_type, occurred_at)
    INCLUDE (user_id, anonymous_id);

-- Raw events of one user, newest first.
CREATE INDEX events_tenant_user_time ON events (tenant_id, user_id, occurred_at)
    WHERE user_id IS NOT NULL;

-- The first instant at which the clock of zone tz reads the local time t or later. Unlike
-- `t AT TIME ZONE tz`, which takes the later offset when t happens twice (a midnight repeated by
-- a fall-back, as in America/Havana), this is the first occurrence; when t does not exist (a
-- skipped midnight) it is the instant the clock jumps past it.
CREATE FUNCTION eventops_local_start(t timestamp, tz text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN (((t - interval '3 hours') AT TIME ZONE tz) + interval '3 hours') AT TIME ZONE tz = t
        THEN least(t AT TIME ZONE tz, ((t - interval '3 hours') AT TIME ZONE tz)
                                      + interval '3 hours')
        ELSE t AT TIME ZONE tz
    END
$$;

CREATE FUNCTION eventops_buckets(from_ts timestamptz, to_ts timestamptz, unit text, tz text)
RETURNS TABLE (bucket_start timestamptz)
LANGUAGE sql STABLE AS $$
    WITH starts AS MATERIALIZED (
        SELECT eventops_local_start(g, tz) AS b
        FROM generate_series(date_trunc(unit, from_ts AT TIME ZONE tz),
                             to_ts AT TIME ZONE tz, ('1 ' || unit)::interval) AS g
        WHERE unit IN ('day', 'week', 'month')
        UNION ALL
        SELECT g
        FROM generate_series(date_trunc('hour', from_ts) - interval '3 hours', to_ts,
                             interval '15 minutes') AS g
        WHERE unit = 'hour' AND date_trunc('hour', g AT TIME ZONE tz) = g AT TIME ZONE tz
        UNION ALL
        SELECT g
        FROM generate_series(date_trunc('minute', from_ts), to_ts, interval '1 minute') AS g
        WHERE unit = 'minute')
    SELECT b FROM (
        SELECT b FROM starts WHERE b > from_ts AND b < to_ts
        UNION ALL
        SELECT max(b) FROM starts WHERE b <= from_ts) AS s
    WHERE b IS NOT NULL
    ORDER BY b
$$;
