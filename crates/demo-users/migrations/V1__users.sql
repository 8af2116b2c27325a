-- The users table as on SQLite (src/storage/sqlite.rs): ids never reused, emails unique without
-- regard to ASCII case (SQLite's COLLATE NOCASE), creation time as RFC 3339 text.
CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT rfc3339_now()
);
CREATE UNIQUE INDEX users_email_nocase ON users (lower(email));

-- Whether the demo users were seeded; kept so deleting one does not bring it back on restart.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
