package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/cost"
)

// CostHandlers returns the FinOps endpoints of svc by operation ID (see
// api.Operations), answering with the API's cost types:
//
//	POST /api/v1/costs/imports    import one batch: a multipart body of "file" parts (the parts of one export),
//	                              or a raw body named by ?name=; ?append=true adds it to what is stored
//	                              (the parts of a multi-part export); 201 with the api.CostImportResult
//	GET  /api/v1/costs/imports    the latest imports (?limit=)
//	GET  /api/v1/costs/report     costs grouped ?by=team,env over ?month=2024-09 or ?from=&to= (inclusive days),
//	                              filtered by any dimension (?team=a,b&env=prod); an api.CostReport
//	GET  /api/v1/costs/budgets    the budgets of ?month= (default: the last month with data); an api.CostBudgetReport
//	GET  /api/v1/costs/anomalies  ?from=&to=&by=&weeks=&k=&min_impact=&min_relative=; an api.CostAnomalyReport
//	GET  /api/v1/costs/export     allocated costs as FOCUS CSV, over ?month= or ?from=&to=
//
// Errors are {"error": {"code", "message", "details"}}: 400 bad_request,
// 422 invalid_billing_data (details: the bad rows, for an import), 500 internal.
func CostHandlers(svc *cost.Service) map[string]http.HandlerFunc {
	h := costHandlers{svc}
	return map[string]http.HandlerFunc{
		"importCosts":     h.postImport,
		"listCostImports": h.getImports,
		"costReport":      h.getReport,
		"costBudgets":     h.getBudgets,
		"costAnomalies":   h.getAnomalies,
		"costExport":      h.getExport,
	}
}

type costHandlers struct{ svc *cost.Service }

func writeCostJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeCostError(w http.ResponseWriter, code int, kind, msg string, details any) {
	writeCostJSON(w, code, api.Error{Error: api.ErrorBody{Code: kind, Message: msg, Details: details}})
}

// fail answers err with the status its kind calls for.
func (h costHandlers) fail(w http.ResponseWriter, err error) {
	var ie *cost.ImportError
	var br badRequest
	switch {
	case errors.As(err, &br):
		writeCostError(w, http.StatusBadRequest, "bad_request", br.Error(), nil)
	case errors.As(err, &ie):
		writeCostError(w, http.StatusUnprocessableEntity, "invalid_billing_data", err.Error(), ie.Rows)
	case errors.Is(err, cost.ErrInvalid):
		writeCostError(w, http.StatusUnprocessableEntity, "invalid_billing_data", err.Error(), nil)
	case errors.Is(err, context.Canceled):
		// the client went away
	default:
		h.svcLog(err)
		writeCostError(w, http.StatusInternalServerError, "internal", err.Error(), nil)
	}
}

func (h costHandlers) svcLog(err error) {
	if h.svc.Log != nil {
		h.svc.Log.Error("cost API", "err", err)
	}
}

// badRequest marks an error of the request's parameters.
type badRequest struct{ error }

func bad(err error) error { return badRequest{err} }

func (h costHandlers) postImport(w http.ResponseWriter, r *http.Request) {
	mode := cost.Replace
	if v := r.URL.Query().Get("append"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			h.fail(w, bad(fmt.Errorf("append=%q is not true or false", v)))
			return
		}
		if on {
			mode = cost.Append
		}
	}
	dir, err := os.MkdirTemp("", "socle-cost-upload-")
	if err != nil {
		h.fail(w, err)
		return
	}
	defer os.RemoveAll(dir)
	files, err := receiveFiles(r, dir)
	if err != nil {
		h.fail(w, err)
		return
	}
	res, err := h.svc.Import(r.Context(), files, mode)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeCostJSON(w, http.StatusCreated, wireCostImport(*res))
}

// receiveFiles streams the uploaded files to dir: billing exports can be
// larger than memory.
func receiveFiles(r *http.Request, dir string) ([]cost.File, error) {
	save := func(name string, body io.Reader) (cost.File, error) {
		base := filepath.Base(filepath.Clean("/" + name))
		if base == "/" || base == "." {
			return cost.File{}, bad(fmt.Errorf("a file without a name"))
		}
		f, err := os.CreateTemp(dir, "upload-*")
		if err != nil {
			return cost.File{}, err
		}
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return cost.File{}, fmt.Errorf("receiving %s: %w", name, err)
		}
		return cost.File{Path: f.Name(), Name: name}, nil
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		name := r.URL.Query().Get("name")
		if name == "" {
			return nil, bad(errors.New("name the uploaded file with ?name=, or send multipart/form-data file parts"))
		}
		f, err := save(name, r.Body)
		if err != nil {
			return nil, err
		}
		return []cost.File{f}, nil
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var files []cost.File
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bad(fmt.Errorf("reading the multipart body: %w", err))
		}
		if part.FileName() == "" {
			part.Close()
			continue
		}
		f, err := save(part.FileName(), part)
		part.Close()
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, bad(errors.New("the multipart body has no file part"))
	}
	return files, nil
}

func (h costHandlers) getImports(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			h.fail(w, bad(fmt.Errorf("limit %q is not a positive number", v)))
			return
		}
		limit = n
	}
	imps, err := h.svc.Imports(r.Context(), limit)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeCostJSON(w, http.StatusOK, each(imps, wireCostImportRecord))
}

func (h costHandlers) getReport(w http.ResponseWriter, r *http.Request) {
	req, err := cost.ReportRequestOf(r.URL.Query())
	if err != nil {
		h.fail(w, bad(err))
		return
	}
	rep, err := h.svc.Report(r.Context(), req)
	if err != nil {
		h.fail(w, err)
		return
	}
	// The document says arrays: an empty list is [], never null (a report
	// without ?by= groups by nothing; a filtered one has no coverage).
	if rep.By == nil {
		rep.By = []cost.Dim{}
	}
	if rep.Coverage == nil {
		rep.Coverage = []cost.Coverage{}
	}
	writeCostJSON(w, http.StatusOK, wireCostReport(*rep))
}

func (h costHandlers) getBudgets(w http.ResponseWriter, r *http.Request) {
	m, err := cost.MonthOfQuery(r.URL.Query())
	if err != nil {
		h.fail(w, bad(err))
		return
	}
	rep, err := h.svc.Budgets(r.Context(), m)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeCostJSON(w, http.StatusOK, wireCostBudgets(*rep))
}

func (h costHandlers) getAnomalies(w http.ResponseWriter, r *http.Request) {
	req, err := cost.AnomalyRequestOf(r.URL.Query())
	if err != nil {
		h.fail(w, bad(err))
		return
	}
	rep, err := h.svc.Anomalies(r.Context(), req)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeCostJSON(w, http.StatusOK, wireCostAnomalies(*rep))
}

func (h costHandlers) getExport(w http.ResponseWriter, r *http.Request) {
	from, to, err := cost.RangeOf(r.URL.Query())
	if err != nil {
		h.fail(w, bad(err))
		return
	}
	cw := &csvAnswer{w: w}
	if err := h.svc.Export(r.Context(), cw, from, to); err != nil {
		if !cw.started {
			h.fail(w, err)
			return
		}
		// after the first byte the status cannot change: the CSV is cut short
		h.svcLog(err)
	}
}

// csvAnswer sets the CSV headers when the first byte is written, so that an
// error before it can still be answered as JSON.
type csvAnswer struct {
	w       http.ResponseWriter
	started bool
}

func (c *csvAnswer) Write(p []byte) (int, error) {
	if !c.started {
		c.started = true
		c.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		c.w.Header().Set("Content-Disposition", `attachment; filename="socle-costs-focus.csv"`)
	}
	return c.w.Write(p)
}
