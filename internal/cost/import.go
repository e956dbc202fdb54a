package cost

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/text/encoding/unicode"
)

// ErrInvalid is wrapped by the errors that come from the data rather than
// from the system: an unknown format, a missing column, bad rows.
var ErrInvalid = errors.New("invalid billing data")

// RowError is one bad row.
type RowError struct {
	File   string `json:"file"`
	Line   int    `json:"line"` // the CSV or JSON line the row starts on; the row number in Parquet
	Reason string `json:"reason"`
}

func (e RowError) String() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// ImportError reports the bad rows of a batch, of which nothing was imported.
type ImportError struct {
	// Rows are the first bad rows.
	Rows []RowError `json:"rows"`
	// Total is the number of bad rows.
	Total int `json:"total"`
}

// maxRowErrors is how many bad rows an ImportError lists.
const maxRowErrors = 20

func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad row", e.Total)
	if e.Total != 1 {
		b.WriteString("s")
	}
	b.WriteString(", nothing imported")
	for _, r := range e.Rows {
		b.WriteString("\n  ")
		b.WriteString(r.String())
	}
	if e.Total > len(e.Rows) {
		fmt.Fprintf(&b, "\n  … and %d more", e.Total-len(e.Rows))
	}
	return b.String()
}

func (e *ImportError) Unwrap() error { return ErrInvalid }

// File is one file to import: Path is read, Name is what reports call it
// (an upload's original name, say).
type File struct {
	Path string
	Name string
}

// ReadBatch reads files that form one export (the parts of a month, say)
// into a batch of daily aggregates, allocated by a. Identical files (same
// SHA-256, or the same charges in another order or encoding) are refused.
// Any bad row fails the whole batch with an *ImportError that lists them.
func ReadBatch(ctx context.Context, a *Allocator, files []File) (*Batch, error) {
	g := newAggregator(a)
	b := &Batch{}
	bad := &ImportError{}
	seen := map[string]string{}
	prints := map[fingerprint]string{}
	seed := maphash.MakeSeed()
	views := make([]View, 0, len(files))
	names := make([]string, 0, len(files))
	for i, f := range files {
		if f.Name == "" {
			f.Name = filepath.Base(f.Path)
		}
		g.file = uint32(i)
		info, fp, err := readFile(ctx, g, f, bad, seed)
		if err != nil {
			return nil, err
		}
		if other, ok := seen[info.SHA256]; ok {
			return nil, fmt.Errorf("%s: %w: the same content as %s of the batch", f.Name, ErrInvalid, other)
		}
		seen[info.SHA256] = f.Name
		if other, ok := prints[fp]; ok && fp.rows > 0 {
			return nil, fmt.Errorf("%s: %w: the same %d charges as %s of the batch, in another order or encoding "+
				"(the actual and amortized exports of a month without any reservation or savings plan are the same data: import one of them)",
				f.Name, ErrInvalid, fp.rows, other)
		}
		prints[fp] = f.Name
		views = append(views, info.View)
		if info.View == viewUnknown {
			info.View = ""
		}
		names = append(names, f.Name)
		b.Files = append(b.Files, info)
	}
	if bad.Total > 0 {
		return nil, bad
	}
	var err error
	if b.Periods, err = g.periods(views, names); err != nil {
		return nil, err
	}
	// a file of unknown view takes the view its charges joined
	for i := range b.Files {
		if views[i] == viewUnknown {
			b.Files[i].View = g.joined[i]
		}
	}
	return b, nil
}

// fingerprint identifies the charges of a file whatever their order: the
// number of rows and the sum of a hash of each.
type fingerprint struct {
	rows int64
	sum  uint64
}

// readFile reads one file into g, noting bad rows in bad. It returns the
// file's description and the fingerprint of its rows.
func readFile(ctx context.Context, g *aggregator, f File, bad *ImportError, seed maphash.Seed) (FileInfo, fingerprint, error) {
	info := FileInfo{Name: f.Name}
	var fp fingerprint
	fh, err := os.Open(f.Path)
	if err != nil {
		return info, fp, err
	}
	defer fh.Close()
	h := sha256.New()
	src, err := openSource(fh, h, f.Name)
	if err != nil {
		return info, fp, fmt.Errorf("%s: %w", f.Name, err)
	}
	m, err := newMapper(src.header())
	if js, ok := src.(*jsonSource); ok && err == nil {
		js.extend(m.spec)
		m, err = newMapper(js.header())
	}
	if err != nil {
		return info, fp, fmt.Errorf("%s: %w: %w", f.Name, ErrInvalid, err)
	}
	info.Format = m.spec.format
	var c charge
	// a row's fingerprint hashes its text in one go where there is one
	raw, _ := src.(interface{ record() []byte })
	var rh maphash.Hash
	rh.SetSeed(seed)
	// the first line of a row that only one Azure view has, per view
	var viewAt [2]int
	var viewWhy [2]string
	for n := 0; ; n++ {
		if n&0xffff == 0 && ctx.Err() != nil {
			return info, fp, ctx.Err()
		}
		row, line, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				bad.note(f.Name, line, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
				break
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
				err = fmt.Errorf("%w: the file is truncated or corrupt: %w", ErrInvalid, err)
			}
			return info, fp, fmt.Errorf("%s: line %d: %w", f.Name, line, err)
		}
		info.Charges++
		fp.rows++
		if raw != nil {
			fp.sum += maphash.Bytes(seed, bytes.TrimRight(raw.record(), "\r\n"))
		} else {
			rh.Reset()
			for _, field := range row {
				rh.Write(field)
				rh.WriteByte(0)
			}
			fp.sum += rh.Sum64()
		}
		if err := m.read(row, &c); err != nil {
			bad.note(f.Name, line, err.Error())
			continue
		}
		if c.view != ViewFull {
			i := 0
			if c.view == ViewAmortized {
				i = 1
			}
			if viewAt[i] == 0 {
				viewAt[i], viewWhy[i] = line, c.why
			}
		}
		if err := g.add(&c); err != nil {
			bad.note(f.Name, line, err.Error())
		}
	}
	// hash what follows the last row too, and for Parquet the whole file
	if _, err := io.Copy(h, src.rest()); err != nil {
		return info, fp, fmt.Errorf("%s: %w", f.Name, err)
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	switch {
	case info.Format != FormatAzure:
		info.View = ViewFull
	case viewAt[0] > 0 && viewAt[1] > 0:
		return info, fp, fmt.Errorf("%s: %w: line %d is actual cost (%s), line %d amortized cost (%s): an Azure export holds one of the two",
			f.Name, ErrInvalid, viewAt[0], viewWhy[0], viewAt[1], viewWhy[1])
	case viewAt[0] > 0:
		info.View = ViewActual
	case viewAt[1] > 0:
		info.View = ViewAmortized
	default:
		info.View = viewUnknown
	}
	return info, fp, nil
}

func (e *ImportError) note(file string, line int, reason string) {
	e.Total++
	if len(e.Rows) < maxRowErrors {
		e.Rows = append(e.Rows, RowError{File: file, Line: line, Reason: reason})
	}
}

// rowSource yields the rows of a file as fields named by its header.
type rowSource interface {
	header() []string
	// next returns the next row and the line (or row number) it starts on,
	// or io.EOF.
	next() ([][]byte, int, error)
	// rest returns what of the file is left unread, for hashing.
	rest() io.Reader
}

// openSource recognizes how a file is stored: Parquet, gzip, JSON lines or
// CSV with any of comma, semicolon or tab, in UTF-8 with or without a BOM
// or in UTF-16. Everything read is also written to h.
func openSource(fh *os.File, h hash.Hash, name string) (rowSource, error) {
	var magic [4]byte
	n, _ := io.ReadFull(fh, magic[:])
	if string(magic[:n]) == "PAR1" {
		return openParquet(fh) // hashed whole by rest
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	raw := &hashingReader{r: fh, h: h}
	var r io.Reader = raw
	if n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: not a readable gzip file: %w", ErrInvalid, err)
		}
		r = zr
	}
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0xff, 0xfe}), bytes.HasPrefix(head, []byte{0xfe, 0xff}):
		// UTF-16, as some Windows tools save CSV; the decoder drops the BOM
		br = bufio.NewReaderSize(unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewDecoder().Reader(br), 1<<20)
	case bytes.HasPrefix(head, []byte{0xef, 0xbb, 0xbf}):
		br.Discard(3)
	}
	first, _ := br.Peek(1)
	if len(first) == 1 && first[0] == '{' {
		return newJSONSource(br, raw)
	}
	return newCSVSource(br, raw, name)
}

// hashingReader writes what it reads to h.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	return n, err
}

type csvSource struct {
	r    *csvReader
	hdr  []string
	raw  io.Reader
	name string
}

func newCSVSource(br *bufio.Reader, raw io.Reader, name string) (*csvSource, error) {
	line, _ := br.Peek(64 << 10)
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	r := newCSVReader(br, sniffSeparator(line))
	fields, _, err := r.read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the file is empty", ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	hdr := make([]string, len(fields))
	for i, f := range fields {
		hdr[i] = strings.TrimSpace(string(f))
	}
	if slices.Equal(hdr, []string{""}) {
		return nil, fmt.Errorf("%w: no header", ErrInvalid)
	}
	return &csvSource{r: r, hdr: hdr, raw: raw, name: name}, nil
}

func (s *csvSource) header() []string { return s.hdr }

func (s *csvSource) next() ([][]byte, int, error) { return s.r.read() }

func (s *csvSource) rest() io.Reader { return s.raw }

// record returns the text of the last row read.
func (s *csvSource) record() []byte { return s.r.rec }
