package proxy

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestAnswerHead(t *testing.T) {
	for _, tt := range []struct {
		name, in, method string
		status           int
		length           int64
		chunked, close   bool
		bad              bool
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", status: 200, length: 5},
		{name: "chunked wins", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 200, length: -1, chunked: true},
		{name: "until close", in: "HTTP/1.1 200 OK\r\n\r\n", status: 200, length: -1, close: true},
		{name: "other coding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", status: 200, length: -1, close: true},
		{name: "HEAD", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method: "HEAD", status: 200, length: 0},
		{name: "no content", in: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, length: 0},
		{name: "bare LF, no reason", in: "HTTP/1.1 304\nETag: x\n\n", status: 304, length: 0},
		{name: "connection close", in: "HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n", status: 200, length: 0, close: true},
		{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, length: 0, close: true},
		{name: "HTTP/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", status: 200, length: 0},
		{name: "interim skipped", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", status: 201, length: 0},
		{name: "two lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", bad: true},
		{name: "negative length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", bad: true},
		{name: "folded", in: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n", bad: true},
		{name: "bad name", in: "HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n", bad: true},
		{name: "control in value", in: "HTTP/1.1 200 OK\r\nX-A: 1\x002\r\n\r\n", bad: true},
		{name: "not HTTP", in: "SSH-2.0-OpenSSH\r\n\r\n", bad: true},
		{name: "cut", in: "HTTP/1.1 200 OK\r\nContent-", bad: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			h, err := readAnswerHead(bufio.NewReader(strings.NewReader(tt.in)), method)
			if tt.bad {
				if err == nil {
					t.Fatalf("accepted: status %d", h.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.status != tt.status || h.contentLength != tt.length || h.chunked != tt.chunked || h.close != tt.close {
				t.Errorf("status %d length %d chunked %v close %v; want %d %d %v %v",
					h.status, h.contentLength, h.chunked, h.close, tt.status, tt.length, tt.chunked, tt.close)
			}
		})
	}
}

func TestCopyChunkedBody(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\nNEXT"
	br := bufio.NewReader(strings.NewReader(in))
	h, err := readAnswerHead(br, "GET")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	flushes := 0
	trailers, rerr, werr := h.copyBody(&out, br, make([]byte, 2), func() error { flushes++; return nil })
	if rerr != nil || werr != nil {
		t.Fatal(rerr, werr)
	}
	if out.String() != "abcde" || len(trailers) != 1 || string(h.bytes(trailers[0].value)) != "5" || flushes == 0 {
		t.Errorf("body %q, trailers %d, flushes %d", out.String(), len(trailers), flushes)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "NEXT" {
		t.Errorf("left on the connection: %q", rest)
	}
}

func FuzzAnswerHead(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\r\n\r\n", "GET")
	f.Add("HTTP/1.0 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", "HEAD")
	f.Fuzz(func(t *testing.T, in, method string) {
		br := bufio.NewReader(strings.NewReader(in))
		h, err := readAnswerHead(br, method)
		if err != nil {
			return
		}
		if h.status < 100 || h.status > 999 {
			t.Fatalf("status %d", h.status)
		}
		for _, hd := range h.headers {
			if !validName(h.bytes(hd.name)) || !validValue(h.bytes(hd.value)) {
				t.Fatalf("header %q: %q", h.bytes(hd.name), h.bytes(hd.value))
			}
		}
		if h.contentLength < -1 || h.chunked && h.contentLength != -1 {
			t.Fatalf("length %d chunked %v", h.contentLength, h.chunked)
		}
		var out bytes.Buffer
		h.copyBody(&out, br, make([]byte, 7), nil)
		if h.contentLength >= 0 && int64(out.Len()) > h.contentLength {
			t.Fatalf("copied %d bytes of a %d-byte body", out.Len(), h.contentLength)
		}
	})
}
