-- Version 3: a position knows the record it follows, and a partition whose
-- records are no longer the ones the ledger read is held.
--
-- last_hash is the RecordHash (SHA-256 of key, value, timestamp and
-- headers) of the record at next_offset - 1, written in the transaction of
-- the rows like next_offset; NULL for a position written before version 3.
-- When the ledger starts reading a partition it checks that the record at
-- next_offset - 1 is still the one it read: a topic deleted and created
-- again, or another cluster with the same topic names, starts its offsets
-- at 0 again and holds other records at the same offsets.
ALTER TABLE ledger_positions ADD COLUMN last_hash {{BYTES}};

-- ledger_holds: partitions the ledger no longer reads, and why (offsets and
-- topic names only). A hold stays until an operator deletes its row (see
-- the ledger's README): restarting the ledger does not clear it.
CREATE TABLE ledger_holds (
    topic        TEXT    NOT NULL,
    partition_id INTEGER NOT NULL CHECK (partition_id >= 0),
    next_offset  BIGINT  NOT NULL,
    reason       TEXT    NOT NULL,
    held_at      BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition_id)
);
