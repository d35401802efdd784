-- Version 4: every release of a hold is kept: which hold (its partition,
-- position, reason and time), who released it, why and when. consentctl
-- release writes it in the transaction that deletes the hold.
CREATE TABLE ledger_hold_releases (
    topic          TEXT    NOT NULL,
    partition_id   INTEGER NOT NULL CHECK (partition_id >= 0),
    next_offset    BIGINT  NOT NULL,
    hold_reason    TEXT    NOT NULL,
    held_at        BIGINT  NOT NULL,
    released_by    TEXT    NOT NULL,
    release_reason TEXT    NOT NULL,
    released_at    BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition_id, held_at, released_at)
);
