-- OAuth 2.0 clients (client-credentials grant) and per-credential rate limits.
-- A client secret is shown once when created; only its argon2id hash (PHC string) is stored.
-- rate_limit / burst: NULL means "use the configured default" (EVENTOPS_RATE_LIMIT_*).
CREATE TABLE oauth_clients (
    client_id    text PRIMARY KEY CHECK (client_id ~ '^cl_[0-9a-f]{16}$'),
    tenant_id    uuid NOT NULL REFERENCES tenants (tenant_id),
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    secret_hash  text NOT NULL CHECK (secret_hash LIKE '$argon2id$%'),
    scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['events:write', 'events:read']),
    rate_limit   integer CHECK (rate_limit > 0),
    burst        integer CHECK (burst > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK ((rate_limit IS NULL) = (burst IS NULL))
);
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id);

ALTER TABLE write_keys
    ADD COLUMN rate_limit integer CHECK (rate_limit > 0),
    ADD COLUMN burst integer CHECK (burst > 0),
    ADD CONSTRAINT write_keys_limit_pair CHECK ((rate_limit IS NULL) = (burst IS NULL));
