-- Exact event counts per tenant, event type and UTC time bucket. Only the processor writes
-- them, in the same transaction as the events, from the rows that were really inserted.
CREATE TABLE rollups (
    tenant_id     uuid        NOT NULL,
    granularity   text        NOT NULL CHECK (granularity IN ('minute', 'hour', 'day')),
    event_type    text        NOT NULL,
    bucket_start  timestamptz NOT NULL,
    count         bigint      NOT NULL CHECK (count >= 0),
    PRIMARY KEY (tenant_id, granularity, event_type, bucket_start)
);
