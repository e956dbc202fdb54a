package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 14, 0, 0, 123456789, time.FixedZone("CET", 3600))

func TestEncode(t *testing.T) {
	r := Record{
		Seq: 12, At: t0, Actor: "ada", Action: "release.started", App: "web", Env: "prod", Revision: "a1b2",
		Detail: json.RawMessage(` {"z": 1, "a": ["<&>", 2.50, "é"]} `), PrevHash: Genesis, Hash: "ignored",
	}
	want := "socle-audit-v1\n" +
		"2:12\n" +
		"27:2025-03-01T13:00:00.123456Z\n" +
		"3:ada\n" +
		"15:release.started\n" +
		"3:web\n" +
		"4:prod\n" +
		"4:a1b2\n" +
		"29:" + `{"a":["<&>",2.50,"é"],"z":1}` + "\n" +
		"64:" + Genesis + "\n"
	if got := string(Encode(r)); got != want {
		t.Errorf("Encode:\n got %q\nwant %q", got, want)
	}
	// The hash is pinned: changing the encoding breaks every stored chain.
	if got, want := Hash(r), "f99af520c500485194523db01045d0fb16b0d997bc74d1a7ae63ba62bcf15888"; got != want {
		t.Errorf("Hash = %s, want %s", got, want)
	}
	// Nothing but the fields, and every one of them, goes into the hash.
	base := Hash(r)
	for name, change := range map[string]func(*Record){
		"Hash":            func(r *Record) { r.Hash = "other" },
		"At's zone":       func(r *Record) { r.At = r.At.UTC() },
		"nanoseconds":     func(r *Record) { r.At = r.At.Add(1) },
		"Detail's format": func(r *Record) { r.Detail = json.RawMessage(`{"a":["<&>",2.50,"é"],"z":1}`) },
	} {
		c := r
		change(&c)
		if Hash(c) != base {
			t.Errorf("changing %s changed the hash", name)
		}
	}
	for name, change := range map[string]func(*Record){
		"Seq":          func(r *Record) { r.Seq++ },
		"At":           func(r *Record) { r.At = r.At.Add(time.Microsecond) },
		"Actor":        func(r *Record) { r.Actor = "eve" },
		"Action":       func(r *Record) { r.Action = "release.finished" },
		"App":          func(r *Record) { r.App = "api" },
		"Env":          func(r *Record) { r.Env = "dev" },
		"Revision":     func(r *Record) { r.Revision = "c3" },
		"Detail":       func(r *Record) { r.Detail = json.RawMessage(`{"a":["<&>",2.5,"é"],"z":1}`) },
		"no Detail":    func(r *Record) { r.Detail = nil },
		"PrevHash":     func(r *Record) { r.PrevHash = strings.Repeat("1", 64) },
		"field border": func(r *Record) { r.App, r.Env = "webp", "rod" },
	} {
		c := r
		change(&c)
		if Hash(c) == base {
			t.Errorf("changing %s left the hash as it was", name)
		}
	}
}

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "", want: ""},
		{in: ` { "b" : [ 1 , {"y": null, "x": true} ], "a": "\u00e9\n" } `, want: `{"a":"é\n","b":[1,{"x":true,"y":null}]}`},
		{in: `12345678901234567890.000`, want: `12345678901234567890.000`},
		{in: `"<a href='x'>&</a>"`, want: `"<a href='x'>&</a>"`},
		{in: `[]`, want: `[]`},
		{in: `{"a": 1`, err: true},
		{in: `{} {}`, err: true},
		{in: `{} x`, err: true},
		{in: `nope`, err: true},
	}
	for _, tc := range tests {
		got, err := CanonicalJSON(json.RawMessage(tc.in))
		if (err != nil) != tc.err || string(got) != tc.want {
			t.Errorf("CanonicalJSON(%q) = %q, %v; want %q, error %t", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestSeal(t *testing.T) {
	r, err := Seal(Record{At: t0, Actor: "ada", Action: "approval.added", Detail: json.RawMessage(`{ "b": 1, "a": 2 }`)}, 41, "prev")
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if r.Seq != 42 || r.PrevHash != "prev" || string(r.Detail) != `{"a":2,"b":1}` || r.Hash != Hash(r) ||
		r.At.Location() != time.UTC || !r.At.Equal(t0.Truncate(time.Microsecond)) {
		t.Errorf("Seal = %+v", r)
	}
	for name, bad := range map[string]Record{
		"no actor":       {Action: "x"},
		"no action":      {Actor: "ada"},
		"detail not one": {Actor: "ada", Action: "x", Detail: json.RawMessage(`1 2`)},
		"seq set":        {Actor: "ada", Action: "x", Seq: 1},
		"hash set":       {Actor: "ada", Action: "x", Hash: "h"},
		"prev hash set":  {Actor: "ada", Action: "x", PrevHash: "h"},
	} {
		if _, err := Seal(bad, 0, Genesis); err == nil {
			t.Errorf("Seal(%s) succeeded, want an error", name)
		}
	}
}

// chain returns a valid chain of n records.
func chain(t *testing.T, n int) []Record {
	t.Helper()
	var rs []Record
	prev := Record{Hash: Genesis}
	for i := range n {
		r, err := Seal(Record{
			At: t0.Add(time.Duration(i) * time.Minute), Actor: "ada", Action: "release.started", App: "web", Env: "prod",
			Revision: fmt.Sprintf("r%d", i+1), Detail: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i+1)),
		}, prev.Seq, prev.Hash)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		prev = r
	}
	return rs
}

// forged returns a record sealed to follow after, as a forger who knows
// the algorithm would make it.
func forged(t *testing.T, after Record) Record {
	t.Helper()
	r, err := Seal(Record{At: after.At, Actor: "eve", Action: "approval.added", App: "web", Env: "prod"}, after.Seq, after.Hash)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// renumber numbers rs from 1 on, as someone hiding a removal or an
// insertion in a table keyed by sequence number would.
func renumber(rs []Record) []Record {
	for i := range rs {
		rs[i].Seq = int64(i + 1)
	}
	return rs
}

func rehash(r Record) Record {
	r.Hash = Hash(r)
	return r
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, rs []Record) []Record
		seq    int64 // 0: the chain verifies
		kind   Kind
		msg    string // in the message
	}{
		{"untouched", func(t *testing.T, rs []Record) []Record { return rs }, 0, "", ""},
		{"empty", func(t *testing.T, rs []Record) []Record { return nil }, 0, "", ""},
		{"actor changed", func(t *testing.T, rs []Record) []Record { rs[3].Actor = "eve"; return rs }, 4, Changed,
			"record 4 (release.started web/prod @ r4 by eve at 2025-03-01 13:03:00 UTC) was changed: its content no longer matches its hash"},
		{"detail changed", func(t *testing.T, rs []Record) []Record { rs[6].Detail = json.RawMessage(`{"n": 70}`); return rs }, 7, Changed, "record 7 "},
		{"time changed", func(t *testing.T, rs []Record) []Record { rs[0].At = rs[0].At.Add(time.Hour); return rs }, 1, Changed, "record 1 "},
		{"hash changed", func(t *testing.T, rs []Record) []Record { rs[9].Hash = Genesis; return rs }, 10, Changed, "record 10 "},
		{"changed, hash recomputed", func(t *testing.T, rs []Record) []Record { rs[3].Actor = "eve"; rs[3] = rehash(rs[3]); return rs }, 4, Changed,
			"record 4 (release.started web/prod @ r4 by eve at 2025-03-01 13:03:00 UTC) was changed and its hash recomputed: record 5 was chained to a record 4 with another hash"},
		{"link changed, hash recomputed", func(t *testing.T, rs []Record) []Record {
			rs[4].PrevHash = rs[2].Hash
			rs[4] = rehash(rs[4])
			return rs
		}, 5, Changed, "record 5 (release.started web/prod @ r5 by ada at 2025-03-01 13:04:00 UTC) was changed and its hash recomputed: it is no longer chained to record 4"},
		{"first record relinked, hash recomputed", func(t *testing.T, rs []Record) []Record {
			rs[0].PrevHash = rs[1].Hash
			rs[0] = rehash(rs[0])
			return rs
		}, 1, Changed, "no longer chained to the start of the chain"},
		{"one removed", func(t *testing.T, rs []Record) []Record { return slices.Delete(rs, 3, 4) }, 4, Removed,
			"record 4 was removed: the chain goes from record 3 to record 5"},
		{"three removed", func(t *testing.T, rs []Record) []Record { return slices.Delete(rs, 3, 6) }, 4, Removed,
			"records 4 to 6 were removed: the chain goes from record 3 to record 7"},
		{"first removed", func(t *testing.T, rs []Record) []Record { return rs[1:] }, 1, Removed,
			"record 1 was removed: the chain goes from the start of the chain to record 2"},
		{"one removed, later renumbered", func(t *testing.T, rs []Record) []Record { return renumber(slices.Delete(rs, 3, 4)) }, 4, Removed,
			"1 record was removed after record 3 and the later records renumbered: record 4 is the former record 5 (release.started web/prod @ r5"},
		{"two removed, later renumbered", func(t *testing.T, rs []Record) []Record { return renumber(slices.Delete(rs, 3, 5)) }, 4, Removed,
			"2 records were removed after record 3 and the later records renumbered: record 4 is the former record 6"},
		{"first removed, later renumbered", func(t *testing.T, rs []Record) []Record { return renumber(rs[1:]) }, 1, Removed,
			"1 record was removed after the start of the chain"},
		{"inserted with a bad hash, later renumbered", func(t *testing.T, rs []Record) []Record {
			f := forged(t, rs[3])
			f.Hash = "forged"
			return renumber(slices.Insert(rs, 4, f))
		}, 5, Inserted, "record 5 (approval.added web/prod by eve at 2025-03-01 13:03:00 UTC) was inserted: record 6 is the former record 5 and follows record 4"},
		{"inserted with its own hash, badly linked, later renumbered", func(t *testing.T, rs []Record) []Record {
			f := forged(t, rs[2])
			f.Seq = 5
			return renumber(slices.Insert(rs, 4, rehash(f)))
		}, 5, Inserted, "record 5 (approval.added web/prod by eve at 2025-03-01 13:02:00 UTC) was inserted"},
		{"inserted and sealed, later renumbered", func(t *testing.T, rs []Record) []Record {
			return renumber(slices.Insert(rs, 4, forged(t, rs[3])))
		}, 5, Inserted, "record 5 was inserted: record 6 is the former record 5 (release.started web/prod @ r5 by ada at 2025-03-01 13:04:00 UTC), which followed record 4"},
		{"two inserted and sealed, later renumbered", func(t *testing.T, rs []Record) []Record {
			f1 := forged(t, rs[3])
			return renumber(slices.Insert(rs, 4, f1, forged(t, f1)))
		}, 5, Inserted, "records 5 to 6 were inserted: record 7 is the former record 5"},
		{"inserted at the start, sealed, later renumbered", func(t *testing.T, rs []Record) []Record {
			return renumber(slices.Insert(rs, 0, forged(t, Record{Hash: Genesis, At: t0})))
		}, 1, Inserted, "record 1 was inserted: record 2 is the former record 1"},
		{"inserted with a number already taken", func(t *testing.T, rs []Record) []Record {
			return slices.Insert(rs, 5, forged(t, rs[3]))
		}, 5, Inserted, "record 5 (approval.added web/prod by eve at 2025-03-01 13:03:00 UTC) comes after record 5"},
		{"replaced by a sealed one", func(t *testing.T, rs []Record) []Record {
			rs[4] = forged(t, rs[3])
			return rs
		}, 5, Changed, "record 5 (approval.added web/prod by eve"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := tc.tamper(t, chain(t, 10))
			res, err := Verify(Records(rs))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tc.seq == 0 {
				if !res.OK() || res.Verified != int64(len(rs)) {
					t.Fatalf("Verify = %+v, want all %d records verified", res, len(rs))
				}
				wantSeq, wantHash := int64(0), Genesis
				if len(rs) > 0 {
					wantSeq, wantHash = rs[len(rs)-1].Seq, rs[len(rs)-1].Hash
				}
				if res.LastSeq != wantSeq || res.LastHash != wantHash {
					t.Errorf("last = %d %s, want %d %s", res.LastSeq, res.LastHash, wantSeq, wantHash)
				}
				return
			}
			p := res.Problem
			if p == nil {
				t.Fatalf("Verify = %+v, want a problem at %d", res, tc.seq)
			}
			if p.Seq != tc.seq || p.Kind != tc.kind || !strings.Contains(p.Message, tc.msg) {
				t.Errorf("problem: seq %d, %s, %q\nwant seq %d, %s, containing %q", p.Seq, p.Kind, p.Message, tc.seq, tc.kind, tc.msg)
			}
			if p.Error() != p.Message {
				t.Errorf("Error() = %q, want the message", p.Error())
			}
		})
	}
}

func TestVerifyStopsAtTheFirstProblem(t *testing.T) {
	rs := chain(t, 10)
	rs[2].Actor, rs[6].Actor = "eve", "mallory"
	read := 0
	records := func(yield func(Record, error) bool) {
		for _, r := range rs {
			read++
			if !yield(r, nil) {
				return
			}
		}
	}
	res, err := Verify(records)
	if err != nil || res.Problem == nil || res.Problem.Seq != 3 || res.Verified != 2 || res.LastSeq != 2 || res.LastHash != rs[1].Hash {
		t.Fatalf("Verify = %+v, %v; want record 3 changed after 2 verified", res, err)
	}
	if read != 4 { // record 3 and the one after it
		t.Errorf("Verify read %d records, want 4", read)
	}
}

func TestVerifyReturnsReadErrors(t *testing.T) {
	rs := chain(t, 5)
	boom := errors.New("connection lost")
	var records iter.Seq2[Record, error] = func(yield func(Record, error) bool) {
		for _, r := range rs[:3] {
			if !yield(r, nil) {
				return
			}
		}
		yield(Record{}, boom)
	}
	res, err := Verify(records)
	if !errors.Is(err, boom) || res.Problem != nil || res.Verified != 2 {
		t.Errorf("Verify = %+v, %v; want the read error after 2 verified", res, err)
	}
	if _, err := Verify(func(yield func(Record, error) bool) { yield(Record{}, boom) }); !errors.Is(err, boom) {
		t.Errorf("Verify of a failing first read: %v, want %v", err, boom)
	}
}
