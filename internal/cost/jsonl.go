package cost

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// jsonSource reads JSON lines, as BigQuery exports Google Cloud billing:
// one object a line, nested records flattened to dotted names
// (service.description), repeated ones (labels, credits) and every object
// also kept whole as JSON. Names are normalized like CSV headers.
type jsonSource struct {
	r    *bufio.Reader
	raw  io.Reader
	hdr  []string
	line int

	first   map[string][]byte // the first object, read to learn the header
	fields  [][]byte
	current map[string][]byte
}

func newJSONSource(br *bufio.Reader, raw io.Reader) (*jsonSource, error) {
	s := &jsonSource{r: br, raw: raw}
	obj, line, err := s.readObject()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the file is empty", ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	s.first = obj
	for k := range obj {
		s.hdr = append(s.hdr, k)
	}
	slices.Sort(s.hdr)
	return s, nil
}

// extend adds the columns a format may use: BigQuery leaves null fields
// out, so the first object need not name them all.
func (s *jsonSource) extend(f *formatSpec) {
	for _, as := range f.aliases {
		for _, a := range as {
			if !slices.Contains(s.hdr, a) {
				s.hdr = append(s.hdr, a)
			}
		}
	}
}

func (s *jsonSource) header() []string { return s.hdr }

func (s *jsonSource) rest() io.Reader { return s.raw }

func (s *jsonSource) next() ([][]byte, int, error) {
	obj, line := s.first, 1
	if obj != nil {
		s.first = nil
	} else {
		var err error
		obj, line, err = s.readObject()
		if err != nil {
			return nil, line, err
		}
	}
	s.fields = s.fields[:0]
	for _, h := range s.hdr {
		s.fields = append(s.fields, obj[h])
	}
	return s.fields, line, nil
}

// readObject reads the next non-blank line as a flattened object.
func (s *jsonSource) readObject() (map[string][]byte, int, error) {
	for {
		s.line++
		b, err := s.r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) == 0 {
			if err != nil {
				return nil, s.line, err
			}
			continue
		}
		if err != nil && err != io.EOF {
			return nil, s.line, err
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			return nil, s.line, fmt.Errorf("%w: not a JSON object: %w", ErrInvalid, err)
		}
		out := map[string][]byte{}
		flatten("", v, out)
		return out, s.line, nil
	}
}

// flatten writes the scalar fields of v under their dotted, normalized
// names; objects and arrays also under their own name, as JSON.
func flatten(prefix string, v map[string]any, out map[string][]byte) {
	for k, x := range v {
		name := normalizeHeader(prefix + k)
		switch x := x.(type) {
		case nil:
		case string:
			out[name] = []byte(x)
		case json.Number:
			out[name] = []byte(x)
		case bool:
			out[name] = fmt.Append(nil, x)
		case map[string]any:
			out[name], _ = json.Marshal(x)
			flatten(prefix+k+".", x, out)
		default:
			out[name], _ = json.Marshal(x)
		}
	}
}
