-- Tenants. Written only by the admin command (`command-api admin create-app` or POST /v1/admin/apps), never on
-- the chat request path. The secret is stored as is: HS256 user tokens are verified with it, so it cannot be
-- hashed. Protect the database (and its backups) accordingly; rotation is a new app key + secret.
CREATE TABLE apps (
    app_id     TEXT        PRIMARY KEY,
    api_key    TEXT        NOT NULL UNIQUE,
    api_secret TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
