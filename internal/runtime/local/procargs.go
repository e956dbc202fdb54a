package local

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// procargsVar returns the value of the environment variable name in b, a
// process's kern.procargs2 on macOS: argc (32 bits, the machine's byte
// order), the executable's path, NUL padding, argc arguments, then the
// environment (and then Apple's own strings, after an empty one), each
// NUL-terminated. It has no build constraint so that Linux tests it too.
func procargsVar(b []byte, name string) (string, bool) {
	if len(b) < 4 {
		return "", false
	}
	argc := int(binary.NativeEndian.Uint32(b))
	rest := b[4:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return "", false
	}
	rest = bytes.TrimLeft(rest[i:], "\x00")
	for ; argc > 0; argc-- {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return "", false
		}
		rest = rest[i+1:]
	}
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i <= 0 { // the end of the environment
			return "", false
		}
		if v, ok := strings.CutPrefix(string(rest[:i]), name+"="); ok {
			return v, true
		}
		rest = rest[i+1:]
	}
	return "", false
}
