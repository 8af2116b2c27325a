-- Now as RFC 3339 UTC with milliseconds, the text SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
-- gives, so both backends answer the same `created_at` format.
CREATE FUNCTION rfc3339_now() RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- Answers to POSTs carrying an Idempotency-Key, written in the same transaction as the record
-- they describe (see demo_kit::idempotency).
CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    request     TEXT NOT NULL,
    status      INTEGER NOT NULL,
    response    TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT rfc3339_now()
);
