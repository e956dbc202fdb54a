package audit

import (
	"fmt"
	"iter"
	"strings"
)

// A Kind is a kind of tampering.
type Kind string

// The kinds of tampering Verify tells apart.
const (
	Changed  Kind = "changed"  // a record's content, or its link to the one before, was altered
	Inserted Kind = "inserted" // a record that was never appended is in the chain
	Removed  Kind = "removed"  // a record that was appended is missing
)

// A Problem is the first place where a chain does not verify.
type Problem struct {
	// Seq is the first record tampered with: the one changed, the first one
	// inserted, or the first sequence number removed.
	Seq     int64  `json:"seq"`
	Kind    Kind   `json:"kind"`
	Message string `json:"message"` // for people; names the records concerned
}

func (p *Problem) Error() string { return p.Message }

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	// Verified is how many records verified, from the first on.
	Verified int64 `json:"verified"`
	// LastSeq and LastHash are the sequence number and hash of the last
	// record that verified (0 and Genesis if none). Records removed from
	// the end of a chain leave no trace in it: keep LastSeq and LastHash
	// elsewhere and compare them with the next verification's.
	LastSeq  int64  `json:"lastSeq"`
	LastHash string `json:"lastHash"`
	// Problem is the first tampering found; absent if the chain verifies.
	Problem *Problem `json:"problem,omitempty"`
}

// OK reports whether the chain verified.
func (r VerifyResult) OK() bool { return r.Problem == nil }

// maxShift bounds how far Verify looks for the original sequence number of a
// record that was renumbered to hide a removal or an insertion.
const maxShift = 1024

// Verify reads a chain, in sequence order from its first record, and
// returns where it was first tampered with. It stops at the first problem,
// or at the first error of records, which it returns.
//
// A record was changed if its content no longer matches its hash. It was
// removed if the sequence numbers jump, or if a later record is intact
// under a higher number than it now has (the records after the removal were
// renumbered). It was inserted if a sequence number repeats or goes back,
// or if the record after it is intact under a number one lower and follows
// the record before it. A record changed and then given a recomputed hash is
// found by the next record, which still names the old hash as previous.
// What Verify cannot see: records removed from the end of the chain (see
// VerifyResult.LastHash), and records appended at its end by someone who can
// write to the store, since the hash takes no secret key.
func Verify(records iter.Seq2[Record, error]) (VerifyResult, error) {
	next, stop := iter.Pull2(records)
	defer stop()
	read := func() (Record, bool, error) {
		r, err, ok := next()
		if ok && err != nil {
			return r, false, err
		}
		return r, ok, nil
	}
	v := verifier{prev: Record{Hash: Genesis}}
	r, ok, err := read()
	for ok {
		n, hasNext, err := read()
		if err != nil {
			return v.result(nil), err
		}
		if p := v.check(r, n, hasNext); p != nil {
			return v.result(p), nil
		}
		v.accept(r)
		r, ok = n, hasNext
	}
	return v.result(nil), err
}

// Records returns the records of rs as Verify reads them.
func Records(rs []Record) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for _, r := range rs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

type verifier struct {
	prev     Record // the last record that verified
	verified int64
}

func (v *verifier) accept(r Record) {
	v.prev = r
	v.verified++
}

func (v *verifier) result(p *Problem) VerifyResult {
	return VerifyResult{Verified: v.verified, LastSeq: v.prev.Seq, LastHash: v.prev.Hash, Problem: p}
}

// check returns the problem of r, the record after v.prev, if it has one;
// n is the record after r, if hasNext.
func (v *verifier) check(r, n Record, hasNext bool) *Problem {
	prev, want := v.prev, v.prev.Seq+1
	intact := Hash(r) == r.Hash
	linked := r.PrevHash == prev.Hash
	problem := func(seq int64, kind Kind, format string, args ...any) *Problem {
		return &Problem{Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case r.Seq == want && intact && linked:
		return nil
	case r.Seq < want:
		return problem(r.Seq, Inserted, "record %d (%s) comes after record %d: a record with this number is already in the chain, or it is out of order: it was inserted",
			r.Seq, describe(r), prev.Seq)
	case r.Seq > want:
		return problem(want, Removed, "%s: the chain goes from %s to record %d",
			span(want, r.Seq-1, "was removed", "were removed"), after(prev), r.Seq)
	}
	if d := shift(r); d > 0 {
		return problem(want, Removed, "%s removed after %s and the later records renumbered: record %d is the former record %d (%s)",
			plural(d, "record was", "records were"), after(prev), r.Seq, r.Seq+d, describe(r))
	} else if d < 0 {
		first := r.Seq + d // where r was
		return problem(first, Inserted, "%s: record %d is the former record %d (%s), which followed %s",
			span(first, r.Seq-1, "was inserted", "were inserted"), r.Seq, r.Seq+d, describe(r), after(Record{Seq: first - 1}))
	}
	if hasNext && n.Seq == r.Seq+1 && n.PrevHash == prev.Hash && shift(n) == -1 {
		return problem(r.Seq, Inserted, "record %d (%s) was inserted: record %d is the former record %d and follows %s",
			r.Seq, describe(r), n.Seq, r.Seq, after(prev))
	}
	if intact { // but not linked
		// If the next record still names r as previous, r is as appended
		// and what is before it changed; otherwise r was relinked.
		if prev.Seq > 0 && (!hasNext || n.PrevHash == r.Hash) {
			return problem(prev.Seq, Changed, "record %d (%s) was changed and its hash recomputed: record %d was chained to a record %d with another hash",
				prev.Seq, describe(prev), r.Seq, prev.Seq)
		}
		return problem(r.Seq, Changed, "record %d (%s) was changed and its hash recomputed: it is no longer chained to %s",
			r.Seq, describe(r), after(prev))
	}
	return problem(r.Seq, Changed, "record %d (%s) was changed: its content no longer matches its hash", r.Seq, describe(r))
}

// shift returns d such that r is intact under the sequence number r.Seq+d,
// the smallest in absolute value, or 0 if there is none within maxShift.
func shift(r Record) int64 {
	for d := int64(1); d <= maxShift; d++ {
		for _, s := range []int64{d, -d} {
			o := r
			o.Seq += s
			if o.Seq > 0 && Hash(o) == r.Hash {
				return s
			}
		}
	}
	return 0
}

// describe says what r records, so that a person finds it.
func describe(r Record) string {
	what := r.Action
	if unit := strings.Trim(r.App+"/"+r.Env, "/"); unit != "" {
		what += " " + unit
	}
	if r.Revision != "" {
		what += " @ " + r.Revision
	}
	return fmt.Sprintf("%s by %s at %s", what, r.Actor, r.At.UTC().Format("2006-01-02 15:04:05 UTC"))
}

// after names the record a chain continues from.
func after(r Record) string {
	if r.Seq == 0 {
		return "the start of the chain"
	}
	return fmt.Sprintf("record %d", r.Seq)
}

// span names the records from first to last with the right verb.
func span(first, last int64, one, many string) string {
	if first == last {
		return fmt.Sprintf("record %d %s", first, one)
	}
	return fmt.Sprintf("records %d to %d %s", first, last, many)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
