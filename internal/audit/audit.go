// Package audit defines socle's tamper-evident audit trail: the record of
// every change (who, what, when, from which commit), each record chained to
// the one before by a SHA-256 hash, so that a record changed, inserted or
// removed after the fact breaks the chain where it happened. It holds the
// record type, its canonical encoding and hash, and Verify, which reads a
// chain and names the first record that was tampered with. It is pure: the
// store keeps the records and seals each one with Seal under its write lock.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Genesis is the PrevHash of the first record of a chain.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// A Record is one entry of the audit trail.
type Record struct {
	// Seq is the record's place in the chain: 1 for the first record, then
	// one more for each. Set by Seal.
	Seq int64
	// At is when the action happened; kept in UTC to the microsecond.
	At time.Time
	// Actor is who acted: a user, or "socle" for what socle did by itself;
	// required.
	Actor string
	// Action says what was done, as "subject.verb": "release.started",
	// "approval.added", …; required.
	Action string
	// App, Env and Revision say what the action was about; all optional.
	App, Env, Revision string
	// Detail is anything else, a JSON document; optional. Seal keeps it in
	// canonical form (see Encode).
	Detail json.RawMessage
	// PrevHash is the Hash of the record before, or Genesis for the first.
	// Set by Seal.
	PrevHash string
	// Hash is Hash(record). Set by Seal.
	Hash string
}

// Encode returns the canonical encoding of r, the bytes its hash is taken
// of. It is the text "socle-audit-v1\n" followed by nine fields, each
// written as its length in bytes in decimal, a colon, the bytes, and a
// newline:
//
//	Seq       in decimal
//	At        in UTC, as 2006-01-02T15:04:05.000000Z (microseconds)
//	Actor, Action, App, Env, Revision   as they are
//	Detail    in canonical JSON (see CanonicalJSON), or empty if absent
//	PrevHash  as it is
//
// The length prefixes make the encoding unambiguous whatever the fields
// contain. A Detail that is not JSON, which Seal never produces, is encoded
// as it is, so that Encode is defined for a damaged record too.
func Encode(r Record) []byte {
	detail := []byte(r.Detail)
	if c, err := CanonicalJSON(r.Detail); err == nil {
		detail = c
	}
	var b bytes.Buffer
	b.WriteString("socle-audit-v1\n")
	for _, f := range [][]byte{
		strconv.AppendInt(nil, r.Seq, 10),
		[]byte(r.At.UTC().Format("2006-01-02T15:04:05.000000Z")),
		[]byte(r.Actor), []byte(r.Action), []byte(r.App), []byte(r.Env), []byte(r.Revision),
		detail,
		[]byte(r.PrevHash),
	} {
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.Write(f)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Hash returns the hash of r: the SHA-256 of Encode(r), in lower-case hex.
// r.Hash itself is not part of it.
func Hash(r Record) string {
	sum := sha256.Sum256(Encode(r))
	return hex.EncodeToString(sum[:])
}

// CanonicalJSON returns doc without insignificant white space, with the
// keys of every object sorted bytewise and strings escaped the way Go's
// encoding/json escapes them (HTML characters left as they are); numbers
// keep their text. An empty doc is returned as nil. Two documents that mean
// the same, up to key order and white space, have the same canonical form,
// so a store may give back Detail reformatted without breaking the chain.
func CanonicalJSON(doc json.RawMessage) ([]byte, error) {
	if len(doc) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("detail is not JSON: %w", err)
	}
	if rest := bytes.TrimSpace(doc[d.InputOffset():]); len(rest) > 0 {
		return nil, errors.New("detail is more than one JSON document")
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Seal returns r as the record that follows the one with sequence number
// prevSeq and hash prevHash (0 and Genesis for the first record): with Seq,
// PrevHash, a canonical Detail and Hash set, and At in UTC to the
// microsecond. It rejects a record without actor or action, with a Detail
// that is not one JSON document, or with Seq, PrevHash or Hash already set.
func Seal(r Record, prevSeq int64, prevHash string) (Record, error) {
	switch {
	case r.Actor == "":
		return r, errors.New("audit record without actor")
	case r.Action == "":
		return r, errors.New("audit record without action")
	case r.Seq != 0 || r.PrevHash != "" || r.Hash != "":
		return r, errors.New("audit record already sealed: Seq, PrevHash and Hash are set when it is appended")
	}
	detail, err := CanonicalJSON(r.Detail)
	if err != nil {
		return r, fmt.Errorf("audit record %s: %w", r.Action, err)
	}
	r.Seq, r.PrevHash, r.Detail = prevSeq+1, prevHash, detail
	r.At = r.At.UTC().Truncate(time.Microsecond)
	r.Hash = Hash(r)
	return r, nil
}
