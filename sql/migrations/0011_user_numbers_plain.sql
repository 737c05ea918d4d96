-- eventops_user_numbers (0007) without ON CONFLICT on user_ids (issue 13, ADR-22): the same
-- answer when no other transaction numbered one of the new keys meanwhile, about a quarter less
-- of PostgreSQL's CPU per new key (ON CONFLICT probes the index before each insertion; a plain
-- insertion checks uniqueness in its own descent: 8.9 against 12.0 us per new key, measured
-- in docs/benchmarks.md). When another transaction numbered one of them meanwhile, the
-- statement fails with unique_violation (23505) and changes nothing (the counter's update goes
-- with it); the processor then asks eventops_user_numbers, which skips such keys.
CREATE FUNCTION eventops_user_numbers_plain(t uuid[], k text[])
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
            RETURNING user_ids.tenant_id, user_ids.user_key, user_ids.user_no)
    SELECT u.i, r.user_no
    FROM u JOIN (SELECT * FROM old UNION ALL SELECT * FROM ins) AS r USING (tenant_id, user_key)
$$;
