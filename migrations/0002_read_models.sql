-- The read models the projector builds from chatsdk.channel-events.v1. Every row is keyed by app_id first.
-- Positions are Kafka (partition, offset); timestamps come from the events (occurred_at), never from now(),
-- so a replay into an empty database yields identical rows.

CREATE TABLE channels (
    app_id              TEXT        NOT NULL,
    channel_id          TEXT        NOT NULL,
    channel_type        TEXT        NOT NULL CHECK (channel_type IN ('messaging', 'group', 'public', 'dm')),
    name                TEXT,
    topic               TEXT,
    custom              JSONB       NOT NULL DEFAULT '{}',
    created_by          TEXT        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    archived_at         TIMESTAMPTZ,
    kafka_partition     INTEGER     NOT NULL,
    -- Offset of the last event applied to the channel: the channel's position.
    last_offset         BIGINT      NOT NULL,
    -- Top-level messages ever sent; a message's ordinal is the count when it was sent. Unread counts are
    -- differences of ordinals, so a send writes no per-member row.
    message_count       BIGINT      NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    last_message_id     UUID,
    last_message_at     TIMESTAMPTZ,
    last_message_offset BIGINT,
    PRIMARY KEY (app_id, channel_id)
);
CREATE INDEX channels_by_activity ON channels (app_id, last_message_at DESC NULLS LAST);

CREATE TABLE members (
    app_id        TEXT        NOT NULL,
    channel_id    TEXT        NOT NULL,
    user_id       TEXT        NOT NULL,
    role          TEXT        NOT NULL CHECK (role IN ('owner', 'admin', 'moderator', 'member')),
    joined_at     TIMESTAMPTZ NOT NULL,
    joined_offset BIGINT      NOT NULL,
    -- NULL while a member; set when they left or were removed (a later member.added clears it).
    left_at       TIMESTAMPTZ,
    -- Read marker: the last offset read (inclusive) and the channel's message ordinal at that offset.
    -- unread = channels.message_count - read_count.
    read_offset   BIGINT,
    read_count    BIGINT      NOT NULL DEFAULT 0 CHECK (read_count >= 0),
    PRIMARY KEY (app_id, channel_id, user_id)
);
CREATE INDEX members_by_user ON members (app_id, user_id) WHERE left_at IS NULL;

CREATE TABLE messages (
    app_id          TEXT        NOT NULL,
    message_id      UUID        NOT NULL,
    channel_id      TEXT        NOT NULL,
    author_id       TEXT        NOT NULL,
    client_msg_id   TEXT,
    text            TEXT        NOT NULL,
    mentions        TEXT[]      NOT NULL,
    attachments     JSONB       NOT NULL,
    custom          JSONB,
    parent_id       UUID,
    reply_count     INTEGER     NOT NULL DEFAULT 0 CHECK (reply_count >= 0),
    last_reply_at   TIMESTAMPTZ,
    -- Top-level message number in its channel; NULL for thread replies (they do not count as unread).
    ordinal         BIGINT,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    edited_at       TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ,
    -- A hard delete keeps the row as a tombstone with its content purged, so the id stays taken (a retried
    -- send with the same client_msg_id cannot bring the message back).
    purged          BOOLEAN     NOT NULL DEFAULT false,
    -- message_id is unique per app: the first message.sent wins, later ones are duplicates.
    PRIMARY KEY (app_id, message_id)
);
CREATE INDEX messages_history ON messages (app_id, channel_id, kafka_offset);
CREATE INDEX messages_thread ON messages (app_id, parent_id, kafka_offset) WHERE parent_id IS NOT NULL;

CREATE TABLE reactions (
    app_id     TEXT        NOT NULL,
    message_id UUID        NOT NULL,
    emoji      TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, message_id, emoji, user_id)
);

CREATE TABLE reaction_counts (
    app_id     TEXT    NOT NULL,
    message_id UUID    NOT NULL,
    emoji      TEXT    NOT NULL,
    count      INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (app_id, message_id, emoji)
);

CREATE TABLE pins (
    app_id     TEXT        NOT NULL,
    channel_id TEXT        NOT NULL,
    message_id UUID        NOT NULL,
    pinned_by  TEXT        NOT NULL,
    pinned_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, channel_id, message_id)
);

-- The one DM channel of a pair of users (user_low < user_high).
CREATE TABLE dm_pairs (
    app_id     TEXT NOT NULL,
    user_low   TEXT NOT NULL,
    user_high  TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    PRIMARY KEY (app_id, user_low, user_high),
    CHECK (user_low < user_high)
);
