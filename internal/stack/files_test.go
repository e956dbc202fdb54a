package stack

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/seal"
)

// BenchmarkStateHash is what the cache check of one instance costs with
// its state sealed (opened, then hashed) beside a state in clear (hashed):
// a commit that touches no stack pays it once per instance.
func BenchmarkStateHash(b *testing.B) {
	key, err := seal.New(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1 << 20, 16 << 20} {
		state := bytes.Repeat([]byte(`{"type":"terraform_data","name":"r","instances":[]},`), size/52)
		for _, sealed := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dMiB/sealed=%v", size>>20, sealed), func(b *testing.B) {
				f := &files{dir: b.TempDir(), stack: "s", instance: "i", key: key}
				if err := os.WriteFile(filepath.Join(f.dir, stateFile), state, 0o600); err != nil {
					b.Fatal(err)
				}
				if sealed {
					if err := f.seal(stateFile); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(len(state)))
				for b.Loop() {
					st, err := f.readState()
					if err != nil {
						b.Fatal(err)
					}
					_ = st.hash()
				}
			})
		}
	}
}
