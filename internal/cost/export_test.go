package cost_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
)

// TestExportImportsAgain exports allocated costs as FOCUS and imports the
// export into another data directory: the same totals per owner and service.
func TestExportImportsAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := mustTime("2024-10-05T00:00:00Z")
	a := newService(t, testRepo(), now)
	for _, f := range []string{"focus_1.3.csv", "cur2.csv", "azure_ea.csv", "gcp.csv"} {
		if _, err := a.Import(ctx, []cost.File{{Path: filepath.Join("testdata", "formats", f)}}, cost.Replace); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	sept := cost.MonthOf(2024, 9)
	if err := a.Export(ctx, &buf, sept.First(), sept.End()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "export.csv", buf.String())
	p := filepath.Join(t.TempDir(), "export.csv")
	os.WriteFile(p, buf.Bytes(), 0o644)
	b := newService(t, testRepo(), now)
	if _, err := b.Import(ctx, []cost.File{{Path: p}}, cost.Replace); err != nil {
		t.Fatal(err)
	}
	dims := []cost.Dim{cost.DimSource, cost.DimPeriod, cost.DimDay, cost.DimTeam, cost.DimApp, cost.DimEnv, cost.DimZone, cost.DimService,
		cost.DimCategory, cost.DimAccount, cost.DimRegion}
	compareTotals(t, "re-imported export", storeTotals(t, b, dims...), storeTotals(t, a, dims...))
}
