package spec

import (
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"hash"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/score-spec/score-go/loader"
	"github.com/score-spec/score-go/types"
)

// Decoding the values of a document into Go types.
//
// socle's own files decode through encoding/json (their json tags also
// generate the published schemas), and Score files through score-go's
// loader.MapSpec (mapstructure). Both were a large share of the loader's
// time with 10,000 apps: a JSON text built and parsed again per file, and
// mapstructure's per-call reflection. valueDecoder does the same work
// straight from the values, with the reflection done once per type, but only
// in the plain cases where the result is certainly the same: every key names
// a field exactly, every value has the field's type. In any other case (a
// misspelt or differently cased key, a float where an int is expected, …)
// it declines, and the caller runs encoding/json or MapSpec as before, on a
// fresh value. TestValueDecoder and FuzzValueDecoder compare both ways.

// decodeMode says whose semantics a valueDecoder reproduces.
type decodeMode int

const (
	jsonMode         decodeMode = iota // encoding/json of the values' JSON text
	mapstructureMode                   // score-go's loader.MapSpec
)

// decodeFunc fills out, a zero value, from in; false: not a plain case.
type decodeFunc func(st *decodeState, in any, out reflect.Value) bool

// decodeState is what one goroutine keeps from file to file as it reads a
// repository: the strings it has decoded, a pool of maps for the files'
// values, and a hash with its buffer for the apps' source hashes.
//
// Decoded strings are copies: the values' strings are slices of the file's
// text (see fastYAML), and what the repository keeps must not pin the text
// of every file. A string seen before is the same copy, so that the names
// and values thousands of apps repeat (keys, images, resources) are kept
// once.
type decodeState struct {
	strs map[string]string
	maps mapPool
	sha  hash.Hash
	buf  []byte
}

// hash returns the goroutine's SHA-256, reset.
func (st *decodeState) hash() hash.Hash {
	if st.sha == nil {
		st.sha = sha256.New()
	}
	st.sha.Reset()
	return st.sha
}

func newDecodeState() *decodeState { return &decodeState{strs: map[string]string{}} }

// maxInterned bounds the strings a decodeState keeps.
const maxInterned = 1 << 14

func (st *decodeState) str(s string) string {
	if v, ok := st.strs[s]; ok {
		return v
	}
	v := strings.Clone(s)
	if len(s) <= 128 && len(st.strs) < maxInterned {
		st.strs[v] = v
	}
	return v
}

// clone copies a value of type any: a string as str does, maps and slices
// deeply, so that nothing of the values is kept.
func (st *decodeState) clone(v any) any {
	switch v := v.(type) {
	case string:
		return st.str(v)
	case map[string]any:
		if v == nil {
			return v
		}
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[st.str(k)] = st.clone(e)
		}
		return m
	case []any:
		if v == nil {
			return v
		}
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = st.clone(e)
		}
		return s
	}
	return v
}

type valueDecoder struct {
	mode  decodeMode
	ready sync.Map // reflect.Type → decodeFunc, nil when not covered: read without a lock
	mu    sync.Mutex
	funcs map[reflect.Type]*decodeFunc // being built, under mu
}

var (
	jsonDecoder         = &valueDecoder{mode: jsonMode, funcs: map[reflect.Type]*decodeFunc{}}
	mapstructureDecoder = &valueDecoder{mode: mapstructureMode, funcs: map[reflect.Type]*decodeFunc{}}
)

// decode fills out (a pointer to a zero value) from in; false when out is
// untouched and the caller must decode the usual way.
func (vd *valueDecoder) decode(st *decodeState, in any, out any) bool {
	p := reflect.ValueOf(out)
	if p.Kind() != reflect.Pointer || p.IsNil() || !p.Elem().IsZero() {
		return false
	}
	t := p.Type().Elem()
	f := vd.funcFor(t)
	if f == nil {
		return false
	}
	v := reflect.New(t).Elem()
	if !f(st, in, v) {
		return false
	}
	p.Elem().Set(v)
	return true
}

func (vd *valueDecoder) funcFor(t reflect.Type) decodeFunc {
	if f, ok := vd.ready.Load(t); ok {
		return f.(decodeFunc)
	}
	vd.mu.Lock()
	defer vd.mu.Unlock()
	var f decodeFunc
	if p := vd.compile(t); p != nil {
		f = *p
	}
	vd.ready.Store(t, f)
	return f
}

// stringDecoder is implemented by socle's types whose UnmarshalJSON reads
// a JSON string and then calls decodeString with it: the decoder calls
// decodeString itself, without a JSON text made and read for a duration.
type stringDecoder interface{ decodeString(s string) error }

var (
	stringDecoderType   = reflect.TypeFor[stringDecoder]()
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonNumberType      = reflect.TypeFor[json.Number]()
)

// compile returns the decoder of t, building it once; its target is nil
// when t is not covered. Called with vd.mu held.
func (vd *valueDecoder) compile(t reflect.Type) *decodeFunc {
	if f, ok := vd.funcs[t]; ok {
		return f
	}
	f := new(decodeFunc)
	vd.funcs[t] = f // recursive types find it while it is being built
	*f = vd.build(t)
	if *f == nil {
		vd.funcs[t] = nil
		return nil
	}
	return f
}

// build returns t's decoder. Decoders take nil too, which leaves the zero
// value alone (mapstructure skips nil, encoding/json stores null as a no-op
// in a zero value) except for a type that reads its own JSON, which gets
// "null".
func (vd *valueDecoder) build(t reflect.Type) decodeFunc {
	f := vd.buildKind(t)
	if f == nil {
		return nil
	}
	if vd.mode == jsonMode && reflect.PointerTo(t).Implements(jsonUnmarshalerType) {
		return f
	}
	return func(st *decodeState, in any, out reflect.Value) bool {
		return in == nil || f(st, in, out)
	}
}

func (vd *valueDecoder) buildKind(t reflect.Type) decodeFunc {
	pt := reflect.PointerTo(t)
	if vd.mode == jsonMode {
		if pt.Implements(textUnmarshalerType) && !pt.Implements(jsonUnmarshalerType) {
			return nil
		}
		if pt.Implements(jsonUnmarshalerType) {
			// The type reads its own JSON: give it exactly the text
			// encoding/json would have, or, for a string, the string that
			// UnmarshalJSON would read from it.
			strs := pt.Implements(stringDecoderType)
			return func(st *decodeState, in any, out reflect.Value) bool {
				if s, ok := in.(string); ok && strs && utf8.ValidString(s) {
					return out.Addr().Interface().(stringDecoder).decodeString(st.str(s)) == nil
				}
				b, err := json.Marshal(in)
				if err != nil {
					return false
				}
				return out.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(b) == nil
			}
		}
	} else if _, ok := pt.MethodByName("UnmarshalMapstructure"); ok {
		return nil
	}
	if t == jsonNumberType && vd.mode == jsonMode {
		// a number as the text encoding/json writes for it (budget
		// amounts); a string is left to encoding/json's own checks
		return func(st *decodeState, in any, out reflect.Value) bool {
			switch in.(type) {
			case int64, float64:
				b, err := json.Marshal(in)
				if err != nil {
					return false
				}
				out.SetString(string(b))
				return true
			}
			return false
		}
	}
	switch t.Kind() {
	case reflect.String:
		return func(st *decodeState, in any, out reflect.Value) bool {
			s, ok := in.(string)
			if ok {
				out.SetString(st.str(s))
			}
			return ok
		}
	case reflect.Bool:
		return func(st *decodeState, in any, out reflect.Value) bool {
			b, ok := in.(bool)
			if ok {
				out.SetBool(b)
			}
			return ok
		}
	case reflect.Int, reflect.Int64:
		// (int is 64 bits wide on every platform socle supports; a
		// narrower one is not covered.)
		if t.Bits() != 64 {
			return nil
		}
		mode := vd.mode
		return func(st *decodeState, in any, out reflect.Value) bool {
			switch n := in.(type) {
			case int64:
				out.SetInt(n)
				return true
			case float64:
				if mode == mapstructureMode {
					out.SetInt(int64(n)) // as mapstructure's decodeInt does
					return true
				}
			}
			return false
		}
	case reflect.Float64:
		if vd.mode != jsonMode {
			return nil
		}
		return func(st *decodeState, in any, out reflect.Value) bool {
			switch n := in.(type) {
			case int64:
				out.SetFloat(float64(n))
				return true
			case float64:
				out.SetFloat(n)
				return true
			}
			return false
		}
	case reflect.Interface:
		if t.NumMethod() != 0 || vd.mode != mapstructureMode {
			return nil // encoding/json would turn integers into floats
		}
		return func(st *decodeState, in any, out reflect.Value) bool {
			// mapstructure shares the value; a copy is equal.
			out.Set(reflect.ValueOf(st.clone(in)))
			return true
		}
	case reflect.Pointer:
		elem := vd.compile(t.Elem())
		if elem == nil {
			return nil
		}
		et := t.Elem()
		return func(st *decodeState, in any, out reflect.Value) bool {
			switch v := in.(type) {
			case map[string]any:
				if v == nil {
					return false
				}
			case []any:
				if v == nil {
					return false
				}
			}
			p := reflect.New(et)
			if !(*elem)(st, in, p.Elem()) {
				return false
			}
			out.Set(p)
			return true
		}
	case reflect.Slice:
		elem := vd.compile(t.Elem())
		if elem == nil {
			return nil
		}
		return func(st *decodeState, in any, out reflect.Value) bool {
			src, ok := in.([]any)
			if !ok || src == nil {
				return false
			}
			s := reflect.MakeSlice(t, len(src), len(src))
			for i, v := range src {
				if !(*elem)(st, v, s.Index(i)) {
					return false
				}
			}
			out.Set(s)
			return true
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String || (vd.mode == jsonMode && reflect.PointerTo(t.Key()).Implements(textUnmarshalerType)) {
			return nil
		}
		elem := vd.compile(t.Elem())
		if elem == nil {
			return nil
		}
		kt, et := t.Key(), t.Elem()
		plainKey := kt == reflect.TypeFor[string]()
		return func(st *decodeState, in any, out reflect.Value) bool {
			src, ok := in.(map[string]any)
			if !ok || src == nil {
				return false
			}
			m := reflect.MakeMapWithSize(t, len(src))
			for k, v := range src {
				e := reflect.New(et).Elem()
				if !(*elem)(st, v, e) {
					return false
				}
				key := reflect.ValueOf(st.str(k))
				if !plainKey {
					key = key.Convert(kt)
				}
				m.SetMapIndex(key, e)
			}
			out.Set(m)
			return true
		}
	case reflect.Struct:
		return vd.structFunc(t)
	}
	return nil
}

type fieldDecoder struct {
	index int
	f     *decodeFunc
}

func (vd *valueDecoder) structFunc(t reflect.Type) decodeFunc {
	fields := map[string]fieldDecoder{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil // promoted fields: not covered
		}
		if !sf.IsExported() {
			if vd.mode == mapstructureMode {
				return nil
			}
			continue
		}
		tag := sf.Tag.Get("json")
		if vd.mode == jsonMode && tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if vd.mode == jsonMode && strings.Contains(","+opts+",", ",string,") {
			return nil
		}
		if vd.mode == mapstructureMode && (strings.Contains(","+opts+",", ",squash,") || strings.Contains(","+opts+",", ",remain,")) {
			return nil
		}
		if name == "" {
			name = sf.Name
		} else if vd.mode == jsonMode && !plainName(name) {
			return nil // encoding/json has its own rules for odd names
		}
		if _, dup := fields[name]; dup {
			return nil
		}
		f := vd.compile(sf.Type)
		if f == nil {
			return nil
		}
		fields[name] = fieldDecoder{i, f}
	}
	return func(st *decodeState, in any, out reflect.Value) bool {
		src, ok := in.(map[string]any)
		if !ok || src == nil {
			return false
		}
		for k, v := range src {
			fd, ok := fields[k]
			if !ok {
				return false // unknown, or matched only regardless of case
			}
			if !(*fd.f)(st, v, out.Field(fd.index)) {
				return false
			}
		}
		return true
	}
}

// mapWorkload is loader.MapSpec, without mapstructure when the values are
// plain. MapSpec keeps parts of raw in w: shared says so.
func mapWorkload(st *decodeState, w *types.Workload, raw map[string]any) (shared bool, err error) {
	if mapstructureDecoder.decode(st, raw, w) {
		return false, nil
	}
	return true, loader.MapSpec(w, raw)
}

func plainName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
