package cost

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// maxRecord bounds one CSV record: a quote that is never closed would
// otherwise swallow the rest of a file into memory.
const maxRecord = 1 << 20

// csvReader reads RFC 4180 records, tolerating what billing exports do:
// CRLF or LF, a quote inside an unquoted field, a last line without a line
// break. Unlike encoding/csv it returns fields as byte slices into its own
// buffers, valid until the next call, so that reading costs no allocation
// per record; that matters at hundreds of thousands of rows a second.
type csvReader struct {
	r    *bufio.Reader
	sep  byte
	line int // line number of the first line of the next record

	rec    []byte   // the raw record
	buf    []byte   // unquoted fields that contained doubled quotes
	fields [][]byte // the record's fields
}

func newCSVReader(r *bufio.Reader, sep byte) *csvReader {
	return &csvReader{r: r, sep: sep, line: 1}
}

var errRecordTooLong = fmt.Errorf("%w: record longer than 1 MiB: is a quote left open?", ErrInvalid)

// read returns the next non-blank record and the line it starts on, or
// io.EOF.
func (c *csvReader) read() ([][]byte, int, error) {
	for {
		start := c.line
		c.rec = c.rec[:0]
		quotes := 0
		for {
			chunk, err := c.r.ReadSlice('\n')
			if len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
				c.line++
			}
			c.rec = append(c.rec, chunk...)
			quotes += bytes.Count(chunk, quote)
			if len(c.rec) > maxRecord {
				return nil, start, errRecordTooLong
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return nil, start, err
			}
			if err == io.EOF && len(c.rec) == 0 {
				return nil, start, io.EOF
			}
			if quotes%2 == 0 || err == io.EOF {
				if quotes%2 != 0 {
					return nil, start, fmt.Errorf("%w: quoted field opened on line %d is never closed", ErrInvalid, start)
				}
				break
			}
		}
		rec := bytes.TrimRight(c.rec, "\r\n")
		if len(bytes.TrimSpace(rec)) == 0 {
			continue
		}
		c.split(rec)
		return c.fields, start, nil
	}
}

var quote = []byte{'"'}

// split cuts rec into fields. Quoted fields without doubled quotes are
// sub-slices of rec; the others are copied, unquoted, into c.buf, which is
// sized up front so that appending never moves earlier fields.
func (c *csvReader) split(rec []byte) {
	c.fields = c.fields[:0]
	if cap(c.buf) < len(rec) {
		c.buf = make([]byte, 0, len(rec)+len(rec)/2)
	}
	c.buf = c.buf[:0]
	for {
		if len(rec) > 0 && rec[0] == '"' {
			body := rec[1:]
			i := bytes.IndexByte(body, '"')
			if i >= 0 && (i+1 == len(body) || body[i+1] != '"') {
				// the common case: no doubled quote; the capacity is cut so
				// that appending stray text below copies instead of
				// overwriting the record
				c.fields = append(c.fields, body[:i:i])
				rec = body[i+1:]
			} else {
				start := len(c.buf)
				for {
					if i < 0 { // unreachable after read's quote count, but safe
						c.buf = append(c.buf, body...)
						body = nil
						break
					}
					c.buf = append(c.buf, body[:i]...)
					if i+1 < len(body) && body[i+1] == '"' {
						c.buf = append(c.buf, '"')
						body = body[i+2:]
						i = bytes.IndexByte(body, '"')
						continue
					}
					body = body[i+1:]
					break
				}
				c.fields = append(c.fields, c.buf[start:len(c.buf):len(c.buf)])
				rec = body
			}
			// anything between the closing quote and the separator is kept,
			// as a lenient reader would
			j := bytes.IndexByte(rec, c.sep)
			if j < 0 {
				if len(rec) > 0 {
					last := len(c.fields) - 1
					c.fields[last] = append(c.fields[last], rec...)
				}
				return
			}
			if j > 0 {
				last := len(c.fields) - 1
				c.fields[last] = append(c.fields[last], rec[:j]...)
			}
			rec = rec[j+1:]
			continue
		}
		j := bytes.IndexByte(rec, c.sep)
		if j < 0 {
			c.fields = append(c.fields, rec)
			return
		}
		c.fields = append(c.fields, rec[:j])
		rec = rec[j+1:]
	}
}

// sniffSeparator picks the separator of a header line: the most frequent of
// comma, semicolon and tab outside quotes (localized exports use semicolons).
func sniffSeparator(header []byte) byte {
	var n [3]int
	in := false
	for _, b := range header {
		switch b {
		case '"':
			in = !in
		case ',':
			if !in {
				n[0]++
			}
		case ';':
			if !in {
				n[1]++
			}
		case '\t':
			if !in {
				n[2]++
			}
		}
	}
	switch {
	case n[1] > n[0] && n[1] >= n[2]:
		return ';'
	case n[2] > n[0] && n[2] > n[1]:
		return '\t'
	}
	return ','
}
