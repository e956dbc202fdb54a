package proxyd

import (
	"bytes"
	"debug/macho"
	"fmt"
	"strconv"
)

// machoBuildID returns the Go build ID of the Mach-O binary at path: the
// linker puts it first in the __text section, as
// "\xff Go build ID: \"<id>\"\n \xff" (cmd/internal/buildid reads it the
// same way). Used on macOS; it reads any Mach-O file, so that it is tested
// on Linux too.
func machoBuildID(path string) (string, error) {
	f, err := macho.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	text := f.Section("__text")
	if text == nil {
		return "", fmt.Errorf("%s: no __text section", path)
	}
	buf := make([]byte, min(text.Size, 32<<10))
	if _, err := text.ReadAt(buf, 0); err != nil {
		return "", fmt.Errorf("%s: reading __text: %w", path, err)
	}
	prefix, end := []byte("\xff Go build ID: \""), []byte("\"\n \xff")
	i := bytes.Index(buf, prefix)
	if i < 0 {
		return "", fmt.Errorf("%s: no Go build ID", path)
	}
	rest := buf[i+len(prefix)-1:] // from the opening quote
	j := bytes.Index(rest, end)
	if j < 0 {
		return "", fmt.Errorf("%s: malformed Go build ID", path)
	}
	id, err := strconv.Unquote(string(rest[:j+1]))
	if err != nil {
		return "", fmt.Errorf("%s: malformed Go build ID: %w", path, err)
	}
	return "go:" + id, nil
}
