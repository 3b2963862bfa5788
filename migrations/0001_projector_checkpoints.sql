-- Where each projector consumer stands in each partition. The projector advances a row in the same
-- transaction as the read-model rows it writes, guarded by the offset it expects, so a stale owner of the
-- partition (after a rebalance) cannot write. Kafka's committed offsets are only a monitoring hint.
CREATE TABLE projector_checkpoints (
    consumer    TEXT        NOT NULL,
    topic       TEXT        NOT NULL,
    partition   INTEGER     NOT NULL CHECK (partition >= 0),
    next_offset BIGINT      NOT NULL CHECK (next_offset >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
