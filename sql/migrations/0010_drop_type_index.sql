-- The (tenant, event type, time) index of migration 0005 goes (ADR-25 in docs/decisions.md).
-- It served unique users, breakdowns and funnels over raw events; those are now answered from
-- the user sets (0007), the property rollups of tracked paths (0009) and the timelines (0008),
-- and the index cost about 6 µs of PostgreSQL CPU per stored event (docs/benchmarks.md, issue
-- 14), as much as all three structures together. Raw reads that filter by type use the primary
-- key (tenant_id, occurred_at, message_id): raw event pages narrow their scan with the hour
-- rollups; breakdowns of untracked paths and funnels without timelines read every event of the
-- tenant in the range.
DROP INDEX IF EXISTS events_tenant_type_time;
