-- Version 2: a record of the audit topic that is not an audit record keeps
-- its leaf hash, so the sealer seals every record of the topic (NULL for
-- the other topics' undecodable records).
ALTER TABLE undecodable_records ADD COLUMN leaf_hash {{BYTES}};

-- consentctl prove <event id> finds an event's audit records by its id.
CREATE INDEX audit_records_event ON audit_records (event_id);
