-- The ledger's schema, version 1. One SQL text for SQLite and PostgreSQL:
-- {{BYTES}} is BLOB or BYTEA and {{WITHOUT_ROWID}} is SQLite's WITHOUT ROWID
-- (empty on PostgreSQL); see dialect.go. Times are Unix milliseconds
-- (BIGINT, NULL for none), lists are JSON arrays (TEXT). Every table of
-- records has the record's Kafka coordinates (topic, partition_id,
-- record_offset) as its primary key, so ingesting a record again is a
-- no-op (ON CONFLICT DO NOTHING).

-- ledger_positions: the next offset the ledger reads per topic partition,
-- written in the transaction of the rows it covers.
CREATE TABLE ledger_positions (
    topic        TEXT    NOT NULL,
    partition_id INTEGER NOT NULL CHECK (partition_id >= 0),
    next_offset  BIGINT  NOT NULL CHECK (next_offset >= 0),
    PRIMARY KEY (topic, partition_id)
);

CREATE TABLE consent_changes (
    topic               TEXT    NOT NULL,
    partition_id        INTEGER NOT NULL CHECK (partition_id >= 0),
    record_offset       BIGINT  NOT NULL CHECK (record_offset >= 0),
    record_time         BIGINT,
    change_id           TEXT    NOT NULL,
    subject_id          TEXT    NOT NULL,
    purpose             TEXT    NOT NULL,
    action              TEXT    NOT NULL,
    legal_basis         TEXT    NOT NULL,
    excluded_categories TEXT    NOT NULL,
    source              TEXT    NOT NULL,
    notice_version      TEXT    NOT NULL,
    captured_at         BIGINT,
    expires_at          BIGINT,
    PRIMARY KEY (topic, partition_id, record_offset)
);
CREATE INDEX consent_changes_subject ON consent_changes (subject_id, captured_at, change_id);

-- audit_records: one row per audit record; decisions is the JSON array of
-- its stream decisions (StreamDecision), decision_digest a 64-bit hash of
-- outcome, dead-letter reason and decisions, in the source index so that
-- completeness compares duplicates without reading the rows.
CREATE TABLE audit_records (
    topic              TEXT    NOT NULL,
    partition_id       INTEGER NOT NULL CHECK (partition_id >= 0),
    record_offset      BIGINT  NOT NULL CHECK (record_offset >= 0),
    record_time        BIGINT,
    leaf_hash          {{BYTES}} NOT NULL,
    record_version     INTEGER NOT NULL,
    event_id           TEXT    NOT NULL,
    subject_id         TEXT    NOT NULL,
    outcome            TEXT    NOT NULL,
    dead_letter_reason TEXT    NOT NULL,
    event_schema       TEXT    NOT NULL,
    policy_version     TEXT    NOT NULL,
    source_topic       TEXT    NOT NULL,
    source_partition   INTEGER NOT NULL,
    source_offset      BIGINT  NOT NULL,
    processed_at       BIGINT  NOT NULL,
    decisions          TEXT    NOT NULL,
    decision_digest    BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition_id, record_offset)
);
CREATE INDEX audit_records_subject ON audit_records (subject_id, processed_at);
CREATE INDEX audit_records_source ON audit_records (source_topic, source_partition, source_offset, decision_digest);
CREATE INDEX audit_records_policy ON audit_records (policy_version, processed_at);

-- audit_outputs: one narrow row per published output (decision PASSED or
-- REDACTED) of an audit record, clustered by time and stream for breach
-- scoping. treated_fields is a JSON array of field paths.
CREATE TABLE audit_outputs (
    processed_at   BIGINT  NOT NULL,
    stream         TEXT    NOT NULL,
    topic          TEXT    NOT NULL,
    partition_id   INTEGER NOT NULL CHECK (partition_id >= 0),
    record_offset  BIGINT  NOT NULL CHECK (record_offset >= 0),
    subject_id     TEXT    NOT NULL,
    source_topic   TEXT    NOT NULL,
    event_schema   TEXT    NOT NULL,
    decision       TEXT    NOT NULL,
    treated_fields TEXT    NOT NULL,
    PRIMARY KEY (processed_at, stream, topic, partition_id, record_offset)
){{WITHOUT_ROWID}};

CREATE TABLE revocation_notices (
    topic         TEXT    NOT NULL,
    partition_id  INTEGER NOT NULL CHECK (partition_id >= 0),
    record_offset BIGINT  NOT NULL CHECK (record_offset >= 0),
    record_time   BIGINT,
    notice_id     TEXT    NOT NULL,
    subject_id    TEXT    NOT NULL,
    purposes      TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    since         BIGINT,
    change_id     TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    issued_at     BIGINT,
    PRIMARY KEY (topic, partition_id, record_offset)
);
CREATE INDEX revocation_notices_subject ON revocation_notices (subject_id, issued_at);

-- dead_letters: the headers of a dead letter, never its bytes.
CREATE TABLE dead_letters (
    topic            TEXT    NOT NULL,
    partition_id     INTEGER NOT NULL CHECK (partition_id >= 0),
    record_offset    BIGINT  NOT NULL CHECK (record_offset >= 0),
    record_time      BIGINT,
    reason           TEXT    NOT NULL,
    error_code       TEXT    NOT NULL,
    source_topic     TEXT    NOT NULL,
    source_partition INTEGER NOT NULL,
    source_offset    BIGINT  NOT NULL,
    event_id         TEXT    NOT NULL,
    PRIMARY KEY (topic, partition_id, record_offset)
);
CREATE INDEX dead_letters_source ON dead_letters (source_topic, source_partition, source_offset);

CREATE TABLE undecodable_records (
    topic         TEXT    NOT NULL,
    partition_id  INTEGER NOT NULL CHECK (partition_id >= 0),
    record_offset BIGINT  NOT NULL CHECK (record_offset >= 0),
    record_time   BIGINT,
    error         TEXT    NOT NULL,
    PRIMARY KEY (topic, partition_id, record_offset)
);

-- audit_checkpoints: signed checkpoints of the audit partitions' Merkle
-- trees. Keyed by what they sign, so that two different roots for one tree
-- (a fork: evidence of tampering) are both kept; topic, partition_id and
-- record_offset are where it was published ('', 0, 0 before that).
CREATE TABLE audit_checkpoints (
    audit_topic     TEXT      NOT NULL,
    audit_partition INTEGER   NOT NULL CHECK (audit_partition >= 0),
    tree_base       BIGINT    NOT NULL,
    tree_size       BIGINT    NOT NULL,
    root_hash       {{BYTES}} NOT NULL,
    note            {{BYTES}} NOT NULL,
    published_at    BIGINT,
    topic           TEXT      NOT NULL,
    partition_id    INTEGER   NOT NULL CHECK (partition_id >= 0),
    record_offset   BIGINT    NOT NULL CHECK (record_offset >= 0),
    record_time     BIGINT,
    PRIMARY KEY (audit_topic, audit_partition, tree_base, tree_size, root_hash)
);
