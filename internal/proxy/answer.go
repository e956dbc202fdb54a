package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strconv"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// A backend's answer is read without net/http: its head is copied into a
// pooled buffer and its header lines relayed to the client as they are,
// minus the hop-by-hop ones, so that an answer costs no allocation. The
// proxy frames the body for the client itself.

const maxAnswerHead = 1 << 20

var errBadAnswer = errors.New("malformed answer from backend")

// answerHead is the head of a backend's answer.
type answerHead struct {
	buf     []byte   // the head's lines, copied from the connection
	status  int      // the status code
	reason  span     // the status line after the code
	headers []header // in buf

	// From the headers: the body's framing, and what the connection
	// header says.
	contentLength int64 // -1: not given
	chunked       bool
	closeDelim    bool // the body ends when the backend closes the connection
	close         bool // the backend closes the connection after the answer
	connection    []span
	upgrade       span
}

type span struct{ start, end int }

type header struct{ name, value span }

func (h *answerHead) bytes(s span) []byte { return h.buf[s.start:s.end] }

var answerHeads = sync.Pool{New: func() any { return new(answerHead) }}

// readAnswerHead reads the head of an answer to a request with method from
// br, skipping interim 1xx answers other than 101 Switching Protocols.
func readAnswerHead(br *bufio.Reader, method string) (*answerHead, error) {
	h := answerHeads.Get().(*answerHead)
	for {
		if err := h.read(br, method); err != nil {
			answerHeads.Put(h)
			return nil, err
		}
		if h.status >= 200 || h.status == 101 {
			return h, nil
		}
	}
}

// read reads one head into h, which it resets first, and works out from it
// how the body is framed.
func (h *answerHead) read(br *bufio.Reader, method string) error {
	*h = answerHead{buf: h.buf[:0], headers: h.headers[:0], connection: h.connection[:0], contentLength: -1}
	line, err := h.readLine(br)
	if err != nil {
		return err
	}
	// HTTP/1.x SP 3DIGIT SP [reason]
	l := h.bytes(line)
	if len(l) < 12 || !bytes.HasPrefix(l, []byte("HTTP/1.")) || l[8] != ' ' || (len(l) > 12 && l[12] != ' ') {
		return fmt.Errorf("%w: status line %q", errBadAnswer, l)
	}
	code, err := strconv.Atoi(string(l[9:12]))
	if err != nil || code < 100 {
		return fmt.Errorf("%w: status line %q", errBadAnswer, l)
	}
	h.status = code
	h.reason = span{line.start + 9, line.end}
	http10 := l[7] == '0'
	keepAlive := false

	if err := h.readFields(br); err != nil {
		return err
	}
	for _, hd := range h.headers {
		name, value, v := h.bytes(hd.name), h.bytes(hd.value), hd.value
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || h.contentLength >= 0 && h.contentLength != n {
				return fmt.Errorf("%w: Content-Length %q", errBadAnswer, value)
			}
			h.contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// The last coding says how the body ends.
			last := value[bytes.LastIndexByte(value, ',')+1:]
			h.chunked = bytes.EqualFold(bytes.TrimSpace(last), []byte("chunked"))
			h.closeDelim = !h.chunked
		case bytes.EqualFold(name, []byte("Connection")):
			h.connection = append(h.connection, v)
			for token := range bytes.SplitSeq(value, []byte(",")) {
				token = bytes.TrimSpace(token)
				h.close = h.close || bytes.EqualFold(token, []byte("close"))
				keepAlive = keepAlive || bytes.EqualFold(token, []byte("keep-alive"))
			}
		case bytes.EqualFold(name, []byte("Upgrade")):
			h.upgrade = v
		}
	}

	switch {
	case method == "HEAD" || h.status < 200 || h.status == 204 || h.status == 304:
		h.contentLength, h.chunked, h.closeDelim = 0, false, false
	case h.chunked || h.closeDelim:
		h.contentLength = -1 // Transfer-Encoding wins over Content-Length
	case h.contentLength < 0:
		h.closeDelim = true
	}
	h.close = h.close || h.closeDelim || http10 && !keepAlive
	return nil
}

// readLine appends the next line of the head to buf, without its end, and
// returns where it is.
func (h *answerHead) readLine(br *bufio.Reader) (span, error) {
	start := len(h.buf)
	for {
		part, err := br.ReadSlice('\n')
		if len(h.buf)+len(part) > maxAnswerHead {
			return span{}, fmt.Errorf("%w: head longer than %d bytes", errBadAnswer, maxAnswerHead)
		}
		h.buf = append(h.buf, part...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return span{}, err
		}
	}
	end := len(h.buf) - 1 // the \n
	if end > start && h.buf[end-1] == '\r' {
		end--
	}
	if end > start && (h.buf[start] == ' ' || h.buf[start] == '\t') {
		return span{}, fmt.Errorf("%w: folded header line", errBadAnswer)
	}
	return span{start, end}, nil
}

// endToEnd reports whether header hd goes on to the client: not a
// hop-by-hop header, nor one named by a Connection header.
func (h *answerHead) endToEnd(hd header) bool {
	name := h.bytes(hd.name)
	for _, hop := range hopByHopHeaders {
		if bytes.EqualFold(name, []byte(hop)) {
			return false
		}
	}
	for _, c := range h.connection {
		for token := range bytes.SplitSeq(h.bytes(c), []byte(",")) {
			if bytes.EqualFold(bytes.TrimSpace(token), name) {
				return false
			}
		}
	}
	return true
}

// copyBody copies the answer's body from br to dst, through buf; flush, if
// not nil, is called after each part of a body whose length is not known in
// advance, which may be a stream. It returns the trailer lines of a chunked
// body (in h.buf) and whether the copy failed on reading or on writing.
func (h *answerHead) copyBody(dst io.Writer, br *bufio.Reader, buf []byte, flush func() error) (trailers []header, readErr, writeErr error) {
	var src io.Reader = br
	left := h.contentLength // -1: until the end of the chunks or the connection
	switch {
	case left == 0:
		return nil, nil, nil
	case left > 0:
		flush = nil
	case h.chunked:
		src = httputil.NewChunkedReader(br)
	}
	for left != 0 {
		b := buf
		if left > 0 && int64(len(b)) > left {
			b = b[:left]
		}
		n, err := src.Read(b)
		if left > 0 {
			left -= int64(n)
		}
		if n > 0 {
			if _, writeErr = dst.Write(b[:n]); writeErr == nil && flush != nil {
				writeErr = flush()
			}
			if writeErr != nil {
				return nil, nil, writeErr
			}
		}
		if err == io.EOF && left > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err, nil
		}
	}
	if !h.chunked {
		return nil, nil, nil
	}
	// The chunked reader stops at the last chunk: trailers and an empty
	// line follow.
	first := len(h.headers)
	if err := h.readFields(br); err != nil {
		return nil, err, nil
	}
	return h.headers[first:], nil, nil
}

// readFields reads header (or trailer) lines into h.headers, up to the
// empty line that ends them.
func (h *answerHead) readFields(br *bufio.Reader) error {
	for {
		line, err := h.readLine(br)
		if err != nil {
			return err
		}
		if line.start == line.end {
			return nil
		}
		l := h.bytes(line)
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !validName(l[:colon]) {
			return fmt.Errorf("%w: header line %q", errBadAnswer, l)
		}
		v := span{line.start + colon + 1, line.end}
		for v.start < v.end && (h.buf[v.start] == ' ' || h.buf[v.start] == '\t') {
			v.start++
		}
		for v.end > v.start && (h.buf[v.end-1] == ' ' || h.buf[v.end-1] == '\t') {
			v.end--
		}
		if !validValue(h.bytes(v)) {
			return fmt.Errorf("%w: header line %q", errBadAnswer, l)
		}
		h.headers = append(h.headers, header{name: span{line.start, line.start + colon}, value: v})
	}
}

// validName reports whether b is a header name: a token (RFC 9110, 5.1).
func validName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// validValue reports whether b can be a header value: no control
// character but tab (RFC 9110, 5.5).
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
