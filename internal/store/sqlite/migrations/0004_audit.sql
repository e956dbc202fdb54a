-- The audit trail: append-only records, each chained to the one before by
-- prev_hash, as package internal/audit defines. seq is assigned by the
-- writer, one more than the last, under the write lock; the hash covers it,
-- so a gap or a renumbering shows. Times are INTEGER microseconds since the
-- Unix epoch (UTC); detail is canonical JSON text, kept as written.

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY CHECK (seq > 0),
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL CHECK (actor <> ''),
    action    TEXT    NOT NULL CHECK (action <> ''),
    app       TEXT    NOT NULL,
    env       TEXT    NOT NULL,
    revision  TEXT    NOT NULL,
    detail    TEXT    CONSTRAINT audit_detail_json CHECK (detail IS NULL OR json_valid(detail)),
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL UNIQUE
);

-- Append-only: socle never changes or removes a record. The triggers stop
-- mistakes; tampering by someone who can drop them is what the hash chain
-- shows.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
