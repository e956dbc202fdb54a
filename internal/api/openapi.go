package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"unicode"

	"github.com/invopop/jsonschema"
)

// OpenAPI returns the OpenAPI 3.1 document of Operations. Its schemas are
// reflected from the wire types, so the document cannot drift from what
// the handlers encode; which routes are served is checked by the server's
// tests against it.
var OpenAPI = sync.OnceValues(func() ([]byte, error) { return openAPI(Operations) })

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

func openAPI(ops []Operation) ([]byte, error) {
	// Answers may gain fields (clients ignore what they do not know);
	// request bodies may not: the server refuses an unknown field.
	answers := &jsonschema.Reflector{AllowAdditionalProperties: true, Namer: schemaName, Mapper: textSchema}
	bodies := &jsonschema.Reflector{AllowAdditionalProperties: false, Namer: schemaName, Mapper: textSchema}
	schemas := map[string]*jsonschema.Schema{}
	inBody := map[string]bool{} // by schema name: reflected by bodies
	var clash error
	schemaOf := func(r *jsonschema.Reflector, v any) *jsonschema.Schema {
		s := r.Reflect(v)
		for name, d := range s.Definitions {
			if b, ok := inBody[name]; ok && b != (r == bodies) {
				clash = fmt.Errorf("openapi: %s is both a request body and part of an answer: give the body a type of its own", name)
			}
			inBody[name] = r == bodies
			schemas[name] = d
		}
		s.Definitions = nil
		s.Version = ""
		// An $id beside the $ref would make the $ref resolve against
		// the $id's URL, where #/components/… is not (OpenAPI 3.1 schemas
		// are JSON Schema 2020-12).
		s.ID = ""
		return s
	}
	ref := func(v any) *jsonschema.Schema { return schemaOf(answers, v) }
	errResp := map[string]any{"$ref": "#/components/responses/Error"}
	paths := map[string]map[string]any{}
	for _, op := range ops {
		item := paths[op.Path]
		if item == nil {
			item = map[string]any{}
			paths[op.Path] = item
		}
		o := map[string]any{
			"operationId":    op.ID,
			"summary":        op.Summary,
			"tags":           []string{op.Tag},
			"x-socle-access": op.Access,
		}
		desc := op.Description
		if d := accessDoc[op.Access]; d != "" {
			desc = strings.TrimSpace(desc + "\n\nWho may call it: " + d)
		}
		o["description"] = desc
		var params []map[string]any
		for _, m := range pathParam.FindAllStringSubmatch(op.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
		}
		for _, q := range op.Query {
			typ := q.Type
			if typ == "" {
				typ = "string"
			}
			p := map[string]any{"name": q.Name, "in": "query", "schema": map[string]string{"type": typ}}
			if q.Description != "" {
				p["description"] = q.Description
			}
			params = append(params, p)
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.Access != AccessPublic {
			o["security"] = []map[string][]string{{"bearer": {}}}
		} else {
			o["security"] = []map[string][]string{}
		}
		switch {
		case op.Body != nil:
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schemaOf(bodies, op.Body)}}}
		case len(op.Upload) > 0:
			content := map[string]any{}
			for _, ct := range op.Upload {
				if ct == "multipart/form-data" {
					content[ct] = map[string]any{"schema": map[string]any{"type": "object", "required": []string{"file"},
						"properties": map[string]any{"file": map[string]any{"type": "array", "items": map[string]string{"type": "string", "contentMediaType": "application/octet-stream"}}}}}
				} else {
					content[ct] = map[string]any{"schema": map[string]string{"type": "string", "contentMediaType": ct}}
				}
			}
			o["requestBody"] = map[string]any{"required": true, "content": content}
		}
		status := op.Status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": http.StatusText(status)}
		switch {
		case op.Stream != "":
			content := map[string]any{op.Stream: map[string]any{"schema": map[string]string{"type": "string"}}}
			if op.Raw != "" { // what a client that does not ask for the stream gets
				content[op.Raw] = map[string]any{"schema": map[string]string{"type": "string"}}
			}
			ok["content"] = content
		case op.Raw == "application/json": // a document of its own (the OpenAPI document)
			ok["content"] = map[string]any{op.Raw: map[string]any{"schema": map[string]string{"type": "object"}}}
		case op.Raw != "":
			ok["content"] = map[string]any{op.Raw: map[string]any{"schema": map[string]string{"type": "string"}}}
		case op.Response != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(op.Response)}}
		}
		responses := map[string]any{fmt.Sprint(status): ok}
		if op.Method == "GET" && op.Response != nil {
			responses["304"] = map[string]any{"description": "Not Modified: the answer is still the one whose ETag the request gave in If-None-Match"}
		}
		if op.Access != AccessPublic {
			responses["401"] = errResp
			responses["429"] = errResp
			responses["500"] = errResp // the store failed
		}
		if op.Stream == "" && op.Access != AccessPublic {
			responses["503"] = errResp // code timeout: over the operation's time limit
		}
		if op.Access != AccessPublic && op.Access != AccessAuthenticated {
			responses["403"] = errResp
		}
		if len(params) > 0 || op.Body != nil || len(op.Upload) > 0 {
			responses["400"] = errResp
		}
		if op.Body != nil || len(op.Upload) > 0 {
			responses["413"] = errResp
		}
		if strings.Contains(op.Path, "{") {
			responses["404"] = errResp
		}
		if op.Method == "POST" && strings.Contains(op.Path, "/apps/") {
			responses["409"] = errResp
		}
		for _, code := range op.Errors {
			responses[fmt.Sprint(code)] = errResp
		}
		o["responses"] = responses
		item[strings.ToLower(op.Method)] = o
	}
	errSchema := ref(Error{})
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "socle API",
			"version": "v1",
			"description": "Everything a person or a pipeline can do in socle. Authenticate with `Authorization: Bearer <token>` " +
				"(tokens from `socle token create`). Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`; lists are " +
				"`{\"items\", \"next\"}` pages, `next` being the cursor of the following page.",
		},
		"servers": []map[string]string{{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]string{"type": "http", "scheme": "bearer"}},
			"responses": map[string]any{"Error": map[string]any{
				"description": "An error",
				"content":     map[string]any{"application/json": map[string]any{"schema": errSchema}},
			}},
		},
	}
	if clash != nil {
		return nil, clash
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(b, []byte("#/$defs/"), []byte("#/components/schemas/")), nil
}

var accessDoc = map[Access]string{
	AccessPublic:        "anyone, without a token.",
	AccessAuthenticated: "any valid token.",
	AccessMember:        "any member of a team in teams.yaml (viewer and above).",
	AccessTeam:          "a developer, approver or admin of the app's owner team, or an admin.",
	AccessDeploy:        "a member of the app's team whose role the environment's deployRoles list (default: developer and above outside production, approver and admin in production), or an admin if admin is listed.",
	AccessApprove:       "an approver of the app's team or an admin, never the author of the change.",
	AccessSelf:          "the owner of the tokens, or an admin.",
	AccessAdmin:         "an admin.",
}

// textSchema is the schema of the API's calendar types, strings of a fixed
// form, written out where they are used rather than as components; nil for
// every other type, which says itself with a JSONSchema method or is what
// reflection makes of it (the wire types are plain: none marshals itself
// as text).
func textSchema(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[Day]():
		return &jsonschema.Schema{Type: "string", Format: "date"}
	case reflect.TypeFor[Month]():
		return &jsonschema.Schema{Type: "string", Pattern: `^[0-9]{4}-[0-9]{2}$`}
	}
	return nil
}

var typeArgs = regexp.MustCompile(`[\w./-]+\.`)

// schemaName names a component schema: the type's name, prefixed with its
// package outside package api (plan.Change is PlanChange), type arguments
// spelled out (Page[api.App] is PageApp).
func schemaName(t reflect.Type) string {
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 {
		args := typeArgs.ReplaceAllString(name[i+1:len(name)-1], "")
		name = name[:i] + strings.NewReplacer("[", "", "]", "", ",", "", "*", "").Replace(args)
	}
	if pkg := path.Base(t.PkgPath()); pkg != "api" && pkg != "." && pkg != "" {
		r := []rune(pkg)
		r[0] = unicode.ToUpper(r[0])
		name = string(r) + name
	}
	return name
}
