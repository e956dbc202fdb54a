package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	js "github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Contract is the OpenAPI document compiled for validation with JSON
// Schema 2020-12, the dialect of OpenAPI 3.1's schemas: the server checks
// request bodies against it (CheckBody), and the tests check every request
// they send and every answer they receive against it (package apitest), so
// that the document and the code cannot drift apart.
type Contract struct {
	doc map[string]any

	mu       sync.Mutex // the compiler is not safe for concurrent use
	compiler *js.Compiler
	schemas  map[string]*js.Schema // by JSON pointer into the document
}

// contractURL is the document's base URL: its schemas' $refs
// (#/components/schemas/…) resolve against it.
const contractURL = "socle:openapi.json"

// LoadContract returns the contract of the document OpenAPI serves.
var LoadContract = sync.OnceValues(func() (*Contract, error) {
	b, err := OpenAPI()
	if err != nil {
		return nil, err
	}
	raw, err := js.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reading the OpenAPI document: %w", err)
	}
	c := js.NewCompiler()
	c.DefaultDraft(js.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(contractURL, raw); err != nil {
		return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	return &Contract{doc: doc, compiler: c, schemas: map[string]*js.Schema{}}, nil
})

// Document is the OpenAPI document, decoded.
func (c *Contract) Document() map[string]any { return c.doc }

// Schema compiles the schema at a JSON pointer into the document
// (/components/schemas/Me), once.
func (c *Contract) Schema(pointer string) (*js.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.schemas[pointer]; ok {
		return s, nil
	}
	s, err := c.compiler.Compile(contractURL + "#" + pointer)
	if err != nil {
		return nil, fmt.Errorf("compiling the schema at %s: %w", pointer, err)
	}
	c.schemas[pointer] = s
	return s, nil
}

// Pointer escapes tokens into a JSON pointer (RFC 6901).
func Pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// BodyError is a request body that does not match its schema. Field is the
// path of the field at fault (a.b.0.c), "" for the body as a whole.
type BodyError struct {
	Field   string
	Message string
}

func (e *BodyError) Error() string { return e.Message }

// CheckBody checks a JSON request body against the schema of v's type (an
// operation's Body): an unknown field, a value of the wrong type or a
// missing required field is a *BodyError that names the field.
func (c *Contract) CheckBody(v any, body []byte) error {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := schemaName(t)
	s, err := c.Schema(Pointer("components", "schemas", name))
	if err != nil {
		return err
	}
	doc, err := js.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return &BodyError{Message: "the body is not JSON: " + err.Error()}
	}
	err = s.Validate(doc)
	if err == nil {
		return nil
	}
	ve, ok := err.(*js.ValidationError)
	if !ok {
		return err
	}
	for len(ve.Causes) > 0 { // the first leaf: one clear message rather than a tree
		ve = ve.Causes[0]
	}
	return c.bodyError(name, ve)
}

var printer = message.NewPrinter(language.English)

func (c *Contract) bodyError(schema string, e *js.ValidationError) *BodyError {
	at := slices.Clone(e.InstanceLocation)
	field := func(name ...string) string { return strings.Join(append(at, name...), ".") }
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		msg := fmt.Sprintf("unknown field %q", field(k.Properties[0]))
		if len(at) == 0 {
			if known := c.fields(schema); len(known) > 0 {
				msg += "; the body's fields are " + strings.Join(known, ", ")
			}
		}
		return &BodyError{Field: field(k.Properties[0]), Message: msg}
	case *kind.Required:
		return &BodyError{Field: field(k.Missing[0]), Message: fmt.Sprintf("field %q is required", field(k.Missing[0]))}
	case *kind.Type:
		if len(at) == 0 {
			return &BodyError{Message: fmt.Sprintf("the body must be a JSON %s, not %s", strings.Join(k.Want, " or "), k.Got)}
		}
		return &BodyError{Field: field(), Message: fmt.Sprintf("field %q must be %s, not %s", field(), strings.Join(k.Want, " or "), k.Got)}
	}
	return &BodyError{Field: field(), Message: fmt.Sprintf("field %q: %s", field(), e.ErrorKind.LocalizedString(printer))}
}

// fields lists the properties of a component schema, sorted.
func (c *Contract) fields(schema string) []string {
	comps, _ := c.doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	s, _ := schemas[schema].(map[string]any)
	props, _ := s["properties"].(map[string]any)
	out := make([]string, 0, len(props))
	for p := range props {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
