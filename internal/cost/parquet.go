package cost

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// parquetSource reads a Parquet file one row group at a time, a batch of
// rows at a time. Scalar columns become fields named like CSV headers;
// nested records become dotted names; maps (FOCUS Tags, CUR resource_tags)
// become JSON objects and lists (Google Cloud labels and credits) JSON
// arrays, as the CSV exports of the same data write them.
type parquetSource struct {
	file   *os.File
	size   int64
	f      *parquet.File
	hdr    []string
	leaves []leaf
	// for each header column: a scalar leaf, or a repeated group of leaves
	cols []pcol

	group int
	rows  parquet.Rows
	buf   []parquet.Row
	n, i  int
	row   int

	arena  []byte
	ends   []int
	fields [][]byte
	vals   [][]parquet.Value // per leaf, this row's values
}

type leaf struct {
	path []string
	typ  parquet.Type
	name string
}

type pcol struct {
	leaves  []int // leaf indexes
	isMap   bool  // a MAP: key and value leaves
	isList  bool  // a LIST or a repeated group
	isValue bool  // a scalar
}

func openParquet(fh *os.File) (*parquetSource, error) {
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(fh, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("%w: not a readable Parquet file: %w", ErrInvalid, err)
	}
	s := &parquetSource{file: fh, size: st.Size(), f: pf}
	schema := pf.Schema()
	colOf := map[string]int{}
	for _, path := range schema.Columns() {
		lc, _ := schema.Lookup(path...)
		l := leaf{path: path, typ: lc.Node.Type()}
		name := strings.Join(path, ".")
		top := path[0]
		if lc.MaxRepetitionLevel > 0 {
			name = top
		}
		ci, ok := colOf[name]
		if !ok {
			ci = len(s.hdr)
			colOf[name] = ci
			s.hdr = append(s.hdr, name)
			s.cols = append(s.cols, pcol{})
		}
		l.name = path[len(path)-1]
		c := &s.cols[ci]
		c.leaves = append(c.leaves, len(s.leaves))
		switch {
		case lc.MaxRepetitionLevel == 0:
			c.isValue = true
		case len(path) >= 3 && (path[1] == "key_value" || path[1] == "map") && (l.name == "key" || l.name == "value"):
			c.isMap = true
		default:
			c.isList = true
		}
		s.leaves = append(s.leaves, l)
	}
	s.vals = make([][]parquet.Value, len(s.leaves))
	s.buf = make([]parquet.Row, 256)
	return s, nil
}

func (s *parquetSource) header() []string { return s.hdr }

func (s *parquetSource) rest() io.Reader { return io.NewSectionReader(s.file, 0, s.size) }

func (s *parquetSource) next() ([][]byte, int, error) {
	for s.i >= s.n {
		if s.rows == nil {
			groups := s.f.RowGroups()
			if s.group >= len(groups) {
				return nil, s.row, io.EOF
			}
			s.rows = groups[s.group].Rows()
			s.group++
		}
		n, err := s.rows.ReadRows(s.buf)
		s.n, s.i = n, 0
		if err == io.EOF {
			s.rows.Close()
			s.rows = nil
		} else if err != nil {
			return nil, s.row, fmt.Errorf("%w: reading Parquet: %w", ErrInvalid, err)
		}
	}
	r := s.buf[s.i]
	s.i++
	s.row++
	for i := range s.vals {
		s.vals[i] = s.vals[i][:0]
	}
	for _, v := range r {
		if c := v.Column(); c >= 0 && c < len(s.vals) {
			s.vals[c] = append(s.vals[c], v)
		}
	}
	s.arena = s.arena[:0]
	s.ends = s.ends[:0]
	for _, c := range s.cols {
		switch {
		case c.isValue:
			s.arena = s.text(s.arena, s.vals[c.leaves[0]], c.leaves[0])
		case c.isMap:
			s.arena = s.mapJSON(s.arena, c)
		default:
			s.arena = s.listJSON(s.arena, c)
		}
		s.ends = append(s.ends, len(s.arena))
	}
	s.fields = s.fields[:0]
	start := 0
	for _, end := range s.ends {
		s.fields = append(s.fields, s.arena[start:end:end])
		start = end
	}
	return s.fields, s.row, nil
}

// text appends the text of a scalar value; a null appends nothing.
func (s *parquetSource) text(b []byte, vs []parquet.Value, l int) []byte {
	if len(vs) == 0 || vs[0].IsNull() {
		return b
	}
	return appendParquetValue(b, vs[0], s.leaves[l].typ)
}

func (s *parquetSource) mapJSON(b []byte, c pcol) []byte {
	var keys, vals []parquet.Value
	var vl int
	for _, l := range c.leaves {
		if s.leaves[l].name == "key" {
			keys = s.vals[l]
		} else {
			vals, vl = s.vals[l], l
		}
	}
	n := 0
	for _, k := range keys {
		if !k.IsNull() {
			n++
		}
	}
	if n == 0 {
		return b
	}
	b = append(b, '{')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, string(keys[i].ByteArray()))
		b = append(b, ':')
		b = s.jsonValue(b, vals, i, vl)
	}
	return append(b, '}')
}

func (s *parquetSource) listJSON(b []byte, c pcol) []byte {
	n := 0
	for _, l := range c.leaves {
		nn := 0
		for _, v := range s.vals[l] {
			if !v.IsNull() {
				nn++
			}
		}
		if nn > 0 {
			n = max(n, len(s.vals[l]))
		}
	}
	if n == 0 {
		return b
	}
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		if len(c.leaves) == 1 && s.leaves[c.leaves[0]].name == "element" {
			b = s.jsonValue(b, s.vals[c.leaves[0]], i, c.leaves[0])
			continue
		}
		b = append(b, '{')
		for j, l := range c.leaves {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, s.leaves[l].name)
			b = append(b, ':')
			b = s.jsonValue(b, s.vals[l], i, l)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// jsonValue appends the i-th value of a leaf as JSON.
func (s *parquetSource) jsonValue(b []byte, vs []parquet.Value, i, l int) []byte {
	if i >= len(vs) || vs[i].IsNull() {
		return append(b, "null"...)
	}
	t := s.leaves[l].typ
	switch t.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		if lt := t.LogicalType(); lt == nil || !isDecimal(lt) {
			q, _ := json.Marshal(string(vs[i].ByteArray()))
			return append(b, q...)
		}
	case parquet.Boolean, parquet.Int32, parquet.Int64, parquet.Float, parquet.Double:
		if lt := t.LogicalType(); lt == nil || isDecimal(lt) {
			return appendParquetValue(b, vs[i], t)
		}
	}
	return strconv.AppendQuote(b, string(appendParquetValue(nil, vs[i], t)))
}

func isDecimal(lt *format.LogicalType) bool {
	_, ok := lt.Value.(*format.DecimalType)
	return ok
}

// appendParquetValue appends the text of a non-null value as a CSV export
// would write it: decimals exactly, timestamps in RFC 3339 UTC, dates as
// 2006-01-02, doubles in the shortest form that reads back the same. That
// is where a cost stored as a double becomes money, once: its shortest
// decimal is what the exporter most likely wrote (0.1, not the double's
// 0.1000000000000000055…), and parseNumber rounds it as any amount
// (money.FromFloat64 says the same rule).
func appendParquetValue(b []byte, v parquet.Value, t parquet.Type) []byte {
	if lt := t.LogicalType(); lt != nil {
		switch l := lt.Value.(type) {
		case *format.DecimalType:
			var unscaled *big.Int
			switch v.Kind() {
			case parquet.Int32:
				unscaled = big.NewInt(int64(v.Int32()))
			case parquet.Int64:
				unscaled = big.NewInt(v.Int64())
			default:
				unscaled = twosComplement(v.ByteArray())
			}
			return appendDecimal(b, unscaled, int(l.Scale))
		case *format.TimestampType:
			n := v.Int64()
			var ts time.Time
			switch l.Unit.Value.(type) {
			case *format.MilliSeconds:
				ts = time.UnixMilli(n)
			case *format.NanoSeconds:
				ts = time.Unix(0, n)
			default:
				ts = time.UnixMicro(n)
			}
			return ts.UTC().AppendFormat(b, time.RFC3339Nano)
		case *format.DateType:
			return append(b, Day(v.Int32()).String()...)
		}
	}
	switch v.Kind() {
	case parquet.Boolean:
		return strconv.AppendBool(b, v.Boolean())
	case parquet.Int32:
		return strconv.AppendInt(b, int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case parquet.Float:
		return strconv.AppendFloat(b, float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		return strconv.AppendFloat(b, v.Double(), 'g', -1, 64)
	case parquet.Int96:
		// legacy timestamps: nanoseconds of the day, then the Julian day
		i := v.Int96()
		nanos := int64(i[1])<<32 | int64(i[0])
		days := int64(i[2]) - 2440588
		return time.Unix(days*86400, nanos).UTC().AppendFormat(b, time.RFC3339Nano)
	default:
		return append(b, v.ByteArray()...)
	}
}

func twosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return n
}

func appendDecimal(b []byte, unscaled *big.Int, scale int) []byte {
	s := unscaled.String()
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if neg {
		b = append(b, '-')
	}
	if scale <= 0 {
		b = append(b, s...)
		for range -scale {
			b = append(b, '0')
		}
		return b
	}
	for len(s) <= scale {
		s = "0" + s
	}
	b = append(b, s[:len(s)-scale]...)
	b = append(b, '.')
	return append(b, s[len(s)-scale:]...)
}
