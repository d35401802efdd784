-- Version 5: the data keys of crypto-shredding, from the keys topic
-- (consent.keys): when each key was created and when it was destroyed,
-- never the key (not even wrapped: the value of a key record is neither
-- decoded nor kept).
--
-- data_keys: one row per data key (its Kafka key "key:<key id>:<subject>"),
-- written by the key's record (created_*) and by its tombstone
-- (destroyed_*), whichever the ledger reads first; NULL for the one it has
-- not read (a tombstone of a key whose record was compacted away before the
-- ledger read it leaves created_* NULL). The first record and the first
-- tombstone read are kept. Times are the records' Kafka timestamps.
CREATE TABLE data_keys (
    topic            TEXT    NOT NULL,
    partition_id     INTEGER NOT NULL CHECK (partition_id >= 0),
    key_id           TEXT    NOT NULL,
    subject_id       TEXT    NOT NULL,
    created_at       BIGINT,
    created_offset   BIGINT,
    destroyed_at     BIGINT,
    destroyed_offset BIGINT,
    PRIMARY KEY (topic, partition_id, key_id, subject_id)
);
CREATE INDEX data_keys_subject ON data_keys (subject_id, created_at);
CREATE INDEX data_keys_created_offset ON data_keys (topic, partition_id, created_offset);
CREATE INDEX data_keys_destroyed_offset ON data_keys (topic, partition_id, destroyed_offset);

-- key_erasures: the erasure markers of the keys topic (Kafka key
-- "erased:<subject>"): every data key of the subject before the marker is
-- dead from then on. Only the subject, the coordinates and the record's
-- timestamp are kept (the marker's value is not decoded).
CREATE TABLE key_erasures (
    topic         TEXT    NOT NULL,
    partition_id  INTEGER NOT NULL CHECK (partition_id >= 0),
    record_offset BIGINT  NOT NULL,
    record_time   BIGINT,
    subject_id    TEXT    NOT NULL,
    PRIMARY KEY (topic, partition_id, record_offset)
);
CREATE INDEX key_erasures_subject ON key_erasures (subject_id, record_time);
