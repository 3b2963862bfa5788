-- The change feed behind the query API's GET /v1/sync: every event the projector applied (written in the
-- same transaction as its effects), and each membership's span of offsets. "Every event after a token in
-- the caller's channels" is then one index range scan per channel the caller belonged to.

CREATE TABLE channel_events (
    app_id          TEXT    NOT NULL,
    channel_id      TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT  NOT NULL,
    -- The envelope as the schemas crate writes it (Envelope::to_value); WebSocket frames carry the same.
    event           JSONB   NOT NULL,
    -- For events that carry a message's content (message.sent, message.edited): a hard delete scrubs them.
    message_id      UUID,
    PRIMARY KEY (kafka_partition, kafka_offset)
);
CREATE INDEX channel_events_by_channel ON channel_events (app_id, channel_id, kafka_offset);
CREATE INDEX channel_events_by_message ON channel_events (app_id, message_id) WHERE message_id IS NOT NULL;

-- One row per stretch of membership: from the event that made the user a member to the one that ended it.
-- Both ends are inclusive: a member sees the event that added them and the one that removed them.
CREATE TABLE member_spans (
    app_id      TEXT   NOT NULL,
    channel_id  TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    from_offset BIGINT NOT NULL,
    to_offset   BIGINT CHECK (to_offset IS NULL OR to_offset >= from_offset),
    PRIMARY KEY (app_id, user_id, channel_id, from_offset)
);

-- Memberships that exist already: their start is known, ended ones have no recorded end and are left out.
INSERT INTO member_spans (app_id, channel_id, user_id, from_offset)
SELECT app_id, channel_id, user_id, joined_offset FROM members WHERE left_at IS NULL;
