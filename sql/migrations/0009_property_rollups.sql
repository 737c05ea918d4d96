-- Property rollups for breakdowns (issue 14 part 2, ADR-24 in docs/decisions.md): per (tenant,
-- tracked property path, event type, UTC hour, value) event counts for the paths a tenant marks
-- as tracked, written by the processor in the events' transaction (as deltas), compacted by its
-- compactor, backfilled per UTC day for the events stored before the path was tracked.

-- A path is its names joined by '.' (the API's form: 1 to 4 names of 1-64 [A-Za-z0-9_$-], so a
-- '.' never occurs inside a name and the dotted text is unambiguous).
CREATE TABLE tracked_properties (
    id           bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    tenant_id    uuid        NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    path         text        NOT NULL
                 CHECK (path ~ '^[A-Za-z0-9_$-]{1,64}([.][A-Za-z0-9_$-]{1,64}){0,3}$'),
    value_cap    integer     NOT NULL CHECK (value_cap >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- txid_current() of a transaction that began after this row committed (the processor's
    -- backfill records it); the backfill starts once every transaction older than it ended, so
    -- that no events' transaction that began before tracking can still commit events without
    -- deltas for this path (ADR-24). NULL until recorded.
    tracked_xid  bigint,
    state        text        NOT NULL DEFAULT 'backfilling'
                 CHECK (state IN ('backfilling', 'complete')),
    PRIMARY KEY (tenant_id, path)
);

-- Bumped in the transaction of every change of tracked_properties (track, untrack, cap change):
-- the processor checks it once per batch inside the events' transaction and reloads the tracked
-- paths when it differs from what it loaded.
CREATE TABLE tracked_properties_version (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  bigint  NOT NULL
);
INSERT INTO tracked_properties_version (version) VALUES (1);

CREATE FUNCTION eventops_tracked_properties_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tracked_properties_version SET version = version + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER tracked_properties_bump
AFTER INSERT OR DELETE OR UPDATE OF value_cap ON tracked_properties
FOR EACH STATEMENT EXECUTE FUNCTION eventops_tracked_properties_bump();

-- The values of a tracked path that are counted under their own name: at most value_cap per
-- (tenant, path). A value enters when first met while there is room, and stays; a value met once
-- the dictionary is full is counted as overflow ("$other") for good. So every value is, for the
-- whole life of the tracking, either always named or always overflow (ADR-24).
CREATE TABLE property_values (
    tenant_id  uuid NOT NULL,
    path       text NOT NULL,
    value      text NOT NULL,
    PRIMARY KEY (tenant_id, path, value)
);

-- The breakdown's value text of a property (jsonb #> path): NULL when missing or JSON null; a
-- string as is; a number, boolean, object or array as jsonb's text. The processor computes the
-- same text in C (domain/propval.h); the query role's raw-events breakdown uses the same rule.
CREATE FUNCTION eventops_property_text(j jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN j IS NULL OR jsonb_typeof(j) = 'null' THEN NULL
                WHEN jsonb_typeof(j) = 'string' THEN j #>> '{}' ELSE j::text END
$$;

-- Enters the values v[i] of the tracked paths (t[i], p[i]) into property_values while there is
-- room, and answers (i, named) for every i whose path is tracked: named = the value is in the
-- dictionary (now or before). A path's tracking row is locked first (in path order, so callers
-- cannot deadlock) and the dictionary counted after the lock (a new snapshot per statement), so
-- concurrent callers never take a dictionary past its cap. Values enter in the order of i.
CREATE FUNCTION eventops_property_values(t uuid[], p text[], v text[])
RETURNS TABLE (i bigint, named boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM tracked_properties AS tp
    WHERE (tp.tenant_id, tp.path) IN (SELECT * FROM unnest(t, p))
    ORDER BY tp.tenant_id, tp.path FOR UPDATE;
    INSERT INTO property_values AS pv (tenant_id, path, value)
    SELECT n.tenant_id, n.path, n.value
    FROM (SELECT u.tenant_id, u.path, u.value,
                 row_number() OVER (PARTITION BY u.tenant_id, u.path ORDER BY min(u.i)) AS rn
          FROM unnest(t, p, v) WITH ORDINALITY AS u(tenant_id, path, value, i)
          WHERE NOT EXISTS (SELECT 1 FROM property_values AS x WHERE x.tenant_id = u.tenant_id
                            AND x.path = u.path AND x.value = u.value)
          GROUP BY u.tenant_id, u.path, u.value) AS n
    JOIN tracked_properties AS tp ON tp.tenant_id = n.tenant_id AND tp.path = n.path
    WHERE n.rn <= tp.value_cap - (SELECT count(*) FROM property_values AS c
                                  WHERE c.tenant_id = n.tenant_id AND c.path = n.path)
    ON CONFLICT DO NOTHING;
    RETURN QUERY
    SELECT u.i, EXISTS (SELECT 1 FROM property_values AS x WHERE x.tenant_id = u.tenant_id
                        AND x.path = u.path AND x.value = u.value)
    FROM unnest(t, p, v) WITH ORDINALITY AS u(tenant_id, path, value, i)
    JOIN tracked_properties AS tp ON tp.tenant_id = u.tenant_id AND tp.path = u.path;
END;
$$;

-- Counts per (tenant, path, event type ('' for all types together, as in rollups), UTC hour,
-- value). overflow: the count of the values past the cap (value is then ''). Events whose value is
-- missing or JSON null have no row: "(none)" is the event count (rollups) minus these rows.
--  - property_rollup_deltas: appended by the processor in the events' transaction, one row per
--    key and batch, only for the events that went in;
--  - property_rollups: the compacted counts; the compactor moves deltas into them in one
--    transaction (delete the deltas, add their counts).
-- A key's count is its property_rollups row plus its deltas; every snapshot sees each stored
-- event in exactly one of the two.
CREATE TABLE property_rollup_deltas (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    path          text        NOT NULL,
    event_type    text        NOT NULL,
    bucket_start  timestamptz NOT NULL,
    overflow      boolean     NOT NULL,
    value         text        NOT NULL,
    count         bigint      NOT NULL CHECK (count > 0)
);
CREATE INDEX property_rollup_deltas_key
    ON property_rollup_deltas (tenant_id, path, event_type, bucket_start);

CREATE TABLE property_rollups (
    tenant_id     uuid        NOT NULL,
    path          text        NOT NULL,
    event_type    text        NOT NULL,
    bucket_start  timestamptz NOT NULL,
    overflow      boolean     NOT NULL,
    value         text        NOT NULL,
    count         bigint      NOT NULL CHECK (count >= 0),
    PRIMARY KEY (tenant_id, path, event_type, bucket_start, overflow, value)
);

-- The UTC days (events partitions) whose counts the backfill of a tracked path recomputed.
CREATE TABLE property_backfill (
    tenant_id  uuid        NOT NULL,
    path       text        NOT NULL,
    day        date        NOT NULL,
    done_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, path, day)
);

-- Tracks path p of tenant t with a dictionary of at most cap values (the admin command and the
-- query role's API both call this). Answers 'tracked' (new: state 'backfilling'), 'unchanged'
-- (tracked already with this cap), 'retracked' (tracked with another cap: its counts are dropped
-- and rebuilt from the events, because values past the old cap could not be named afterwards
-- without making some counts disagree), or 'limit' (the tenant tracks max_paths paths already).
-- The tenant's row is locked so that concurrent calls cannot pass max_paths.
CREATE FUNCTION eventops_track_property(t uuid, p text, cap integer, max_paths integer)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    old_cap integer;
BEGIN
    PERFORM 1 FROM tenants WHERE tenant_id = t FOR UPDATE;
    SELECT value_cap INTO old_cap FROM tracked_properties WHERE tenant_id = t AND path = p;
    IF old_cap = cap THEN
        RETURN 'unchanged';
    END IF;
    IF old_cap IS NULL
       AND (SELECT count(*) FROM tracked_properties WHERE tenant_id = t) >= max_paths THEN
        RETURN 'limit';
    END IF;
    IF old_cap IS NOT NULL THEN
        PERFORM eventops_untrack_property(t, p);
    END IF;
    INSERT INTO tracked_properties (tenant_id, path, value_cap) VALUES (t, p, cap);
    RETURN CASE WHEN old_cap IS NULL THEN 'tracked' ELSE 'retracked' END;
END;
$$;

-- Stops tracking path p of tenant t and deletes its counts and dictionary. Answers whether it was
-- tracked. Deltas that transactions begun before this one still write are dropped by the
-- compactor (or replaced by a later tracking's backfill).
CREATE FUNCTION eventops_untrack_property(t uuid, p text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    found_it boolean;
BEGIN
    DELETE FROM tracked_properties WHERE tenant_id = t AND path = p;
    found_it := FOUND;
    DELETE FROM property_values WHERE tenant_id = t AND path = p;
    DELETE FROM property_rollup_deltas WHERE tenant_id = t AND path = p;
    DELETE FROM property_rollups WHERE tenant_id = t AND path = p;
    DELETE FROM property_backfill WHERE tenant_id = t AND path = p;
    RETURN found_it;
END;
$$;
