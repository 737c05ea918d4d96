-- Analytics (issue 12, docs/analytics.md): rules and their versions, the summary events and
-- window results the engine emits, and the analytics:write scope of OAuth clients.

-- A client may be granted analytics:write (creating, changing and deleting rules).
ALTER TABLE oauth_clients DROP CONSTRAINT oauth_clients_scopes_check;
ALTER TABLE oauth_clients ADD CONSTRAINT oauth_clients_scopes_check
    CHECK (scopes <@ ARRAY['events:write', 'events:read', 'analytics:write']);

-- Rules, one row per version: a change writes the next version, a deletion a last version with
-- deleted = true (and the definition before it). The current version of a rule is its highest;
-- a rule is deleted when that row is. definition is the canonical JSON of the rule
-- (eo_rule_to_json: every member, defaults filled in).
CREATE TABLE analytics_rules (
    tenant_id   uuid NOT NULL REFERENCES tenants (tenant_id),
    rule_id     uuid NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    definition  jsonb NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, rule_id, version)
);

-- The current (highest) version of every rule, deleted or not. The engine loads
--   SELECT tenant_id, rule_id, version, definition FROM analytics_rules_current
--   WHERE NOT deleted
-- (and skips the definitions whose "enabled" is false).
CREATE VIEW analytics_rules_current AS
SELECT DISTINCT ON (tenant_id, rule_id) tenant_id, rule_id, version, definition, deleted,
       created_at
FROM analytics_rules
ORDER BY tenant_id, rule_id, version DESC;

-- Writes the next version of a rule in one statement, free of races: with p_create a new rule
-- p_rule (version 1) when the tenant has fewer than p_max_rules rules that are not deleted;
-- otherwise the next version of p_rule when it exists and is not deleted: p_definition, or with
-- p_deleted its deletion (p_definition NULL: the last definition is kept). A tenant's rule
-- writes are serialised by a transaction-scoped advisory lock on the tenant, so the count and
-- the version read are still true when the row goes in. Returns one row: status `created`,
-- `updated`, `deleted`, `not_found` or `too_many_rules`, and the version written with its
-- created_at (NULL when nothing was written).
CREATE FUNCTION analytics_rule_write(p_tenant uuid, p_rule uuid, p_create boolean,
                                     p_definition jsonb, p_deleted boolean, p_max_rules integer)
RETURNS TABLE (status text, version integer, created_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    cur record;
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('eventops.analytics_rules:' || p_tenant::text, 0));
    IF p_create THEN
        IF (SELECT count(*) FROM analytics_rules_current c
            WHERE c.tenant_id = p_tenant AND NOT c.deleted) >= p_max_rules THEN
            RETURN QUERY SELECT 'too_many_rules'::text, NULL::integer, NULL::timestamptz;
            RETURN;
        END IF;
        RETURN QUERY
            INSERT INTO analytics_rules AS r (tenant_id, rule_id, version, definition)
            VALUES (p_tenant, p_rule, 1, p_definition)
            RETURNING 'created'::text, r.version, r.created_at;
        RETURN;
    END IF;
    SELECT r.version, r.definition, r.deleted INTO cur
    FROM analytics_rules r
    WHERE r.tenant_id = p_tenant AND r.rule_id = p_rule
    ORDER BY r.version DESC
    LIMIT 1;
    IF NOT FOUND OR cur.deleted THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::integer, NULL::timestamptz;
        RETURN;
    END IF;
    RETURN QUERY
        INSERT INTO analytics_rules AS r (tenant_id, rule_id, version, definition, deleted)
        VALUES (p_tenant, p_rule, cur.version + 1, coalesce(p_definition, cur.definition),
                p_deleted)
        RETURNING CASE WHEN p_deleted THEN 'deleted' ELSE 'updated' END, r.version,
                  r.created_at;
END
$$;

-- Every change of a tenant's rules notifies `eventops_analytics_rules` with the tenant id, so
-- the engine (LISTEN) reloads at once rather than at its next refresh. Notifications are sent
-- when the transaction commits, once per distinct tenant.
CREATE FUNCTION analytics_rules_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('eventops_analytics_rules', OLD.tenant_id::text);
    ELSE
        PERFORM pg_notify('eventops_analytics_rules', NEW.tenant_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER analytics_rules_notify AFTER INSERT OR UPDATE OR DELETE ON analytics_rules
    FOR EACH ROW EXECUTE FUNCTION analytics_rules_notify();

-- Summary events (a rule's transition to firing or resolved), as emitted on the summaries
-- topic: body is the event itself. Written idempotently (ON CONFLICT (tenant_id, event_id) DO
-- NOTHING: the eventId is derived from the rule, version, group, window start and status).
CREATE TABLE analytics_summaries (
    tenant_id     uuid NOT NULL,
    event_id      uuid NOT NULL,
    rule_id       uuid NOT NULL,
    rule_version  integer NOT NULL,
    status        text NOT NULL,
    group_key     text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    value         double precision,
    threshold     double precision,
    body          jsonb NOT NULL,
    emitted_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX analytics_summaries_time ON analytics_summaries (tenant_id, window_start);
CREATE INDEX analytics_summaries_rule_time
    ON analytics_summaries (tenant_id, rule_id, window_start);

-- Window results, one row per revision (revision 1 first; a late event within the correction
-- horizon adds the next); final is true on the result given when the window closed and on
-- every later revision. value is NULL when the aggregate has none (the mean of no event).
-- body is the result as emitted on the windows topic.
CREATE TABLE analytics_windows (
    tenant_id     uuid NOT NULL,
    rule_id       uuid NOT NULL,
    rule_version  integer NOT NULL,
    group_key     text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    revision      integer NOT NULL,
    final         boolean NOT NULL,
    value         double precision,
    count         bigint,
    body          jsonb NOT NULL,
    PRIMARY KEY (tenant_id, rule_id, rule_version, group_key, window_start, revision)
);
-- GET /analytics/rules/{id}/windows: one rule's windows over a time range, all versions and
-- groups.
CREATE INDEX analytics_windows_rule_time ON analytics_windows (tenant_id, rule_id, window_start);
