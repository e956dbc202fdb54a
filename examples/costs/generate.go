//go:build ignore

// generate writes focus-alpenrose-2024-09.csv, the demo platform's sample
// billing export (see README.md beside it):
//
//	go run examples/costs/generate.go > examples/costs/focus-alpenrose-2024-09.csv
//
// It follows the shape of the FinOps Foundation's FOCUS 1.0 sample: the
// same 44 columns in the same order, NULL written as such, strings quoted
// and numbers not, timestamps without T or Z, tags as a JSON object. The
// charges are a month of Google Cloud for the demo's projects, daily, with
// a deterministic day-to-day variation. Amounts are integers of 1e-10 EUR,
// never floats, written with ten decimals.
package main

import (
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"time"
)

var columns = []string{"AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
	"BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
	"ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
	"CommitmentDiscountStatus", "CommitmentDiscountType", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
	"ContractedUnitPrice", "EffectiveCost", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
	"PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId",
	"ResourceName", "ResourceType", "ServiceCategory", "Id", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId",
	"SubAccountName", "Tags"}

// numeric are the columns written without quotes, as the sample does.
var numeric = map[string]bool{"BilledCost": true, "ConsumedQuantity": true, "ContractedCost": true,
	"ContractedUnitPrice": true, "EffectiveCost": true, "ListCost": true, "PricingQuantity": true, "Id": true}

// resource is one line of the bill, charged every day.
type resource struct {
	project, service, category, sku, description, unit string
	zone, resourceType, name, id                       string
	tags                                               string // JSON, "" for none
	unitPrice                                          int64  // 1e-10 EUR per unit
	quantity                                           int64  // units a day, in thousandths
	listPct                                            int64  // list price in percent of the price paid
	frequency                                          string
}

const (
	account     = "01A7C3-5E9B24-D08F16"
	accountName = "Alpenrose Resorts"
	region      = "europe-west6"
)

// eur is a price in euros, as units of 1e-10 EUR.
func eur(cents int64) int64 { return cents * 100_000_000 }

var resources = []resource{
	// bookings: api and worker
	{project: "alpenrose-apps-prod", service: "Compute Engine", category: "Compute", sku: "C2D5-2AF1-8E0B", description: "N2 Instance Core running in Zurich",
		unit: "Hours", zone: "europe-west6-a", resourceType: "Instance", name: "api-prod-1", unitPrice: eur(4), quantity: 24_000 * 62, listPct: 118,
		tags: `{"team": "bookings", "app": "api", "env": "prod"}`},
	{project: "alpenrose-apps-prod", service: "Cloud SQL", category: "Databases", sku: "9E41-77C0-3B5A", description: "Cloud SQL for PostgreSQL: Regional - vCPU in Zurich",
		unit: "Hours", zone: "europe-west6-b", resourceType: "Database instance", name: "bookings-db", unitPrice: eur(11), quantity: 24_000 * 13, listPct: 100,
		tags: `{"app": "api"}`},
	{project: "alpenrose-apps-prod", service: "Cloud Run", category: "Compute", sku: "B7A2-6D1E-04F9", description: "CPU Allocation Time (tier 1)",
		unit: "vCPU-Seconds", zone: "", resourceType: "Service", name: "worker", unitPrice: 180_000, quantity: 444_444_000, listPct: 100,
		tags: `{"app": "worker", "environment": "production"}`},
	{project: "alpenrose-apps-nonprod", service: "Compute Engine", category: "Compute", sku: "C2D5-2AF1-8E0B", description: "N2 Instance Core running in Zurich",
		unit: "Hours", zone: "europe-west6-a", resourceType: "Instance", name: "api-dev-1", unitPrice: eur(4), quantity: 24_000 * 6, listPct: 118,
		tags: `{"team": "bookings", "app": "api", "env": "dev"}`},
	{project: "alpenrose-apps-nonprod", service: "Compute Engine", category: "Compute", sku: "C2D5-2AF1-8E0B", description: "N2 Instance Core running in Zurich",
		unit: "Hours", zone: "europe-west6-b", resourceType: "Instance", name: "api-staging-1", unitPrice: eur(4), quantity: 24_000 * 9, listPct: 118,
		tags: `{"team": "bookings", "app": "api", "env": "staging"}`},
	{project: "alpenrose-apps-nonprod", service: "Cloud Run", category: "Compute", sku: "B7A2-6D1E-04F9", description: "CPU Allocation Time (tier 1)",
		unit: "vCPU-Seconds", zone: "", resourceType: "Service", name: "worker-dev", unitPrice: 180_000, quantity: 111_111_000, listPct: 100,
		tags: `{"app": "worker", "env": "dev"}`},
	// guest-experience: web, and its experiments in the sandbox
	{project: "alpenrose-apps-prod", service: "Cloud Run", category: "Compute", sku: "B7A2-6D1E-04F9", description: "CPU Allocation Time (tier 1)",
		unit: "vCPU-Seconds", zone: "", resourceType: "Service", name: "web", unitPrice: 180_000, quantity: 1_666_667_000, listPct: 100,
		tags: `{"team": "guest-experience", "app": "web", "env": "prod"}`},
	{project: "alpenrose-apps-prod", service: "Cloud Load Balancing", category: "Networking", sku: "F20A-4C3B-91D7", description: "Global External Application Load Balancer Data Processing",
		unit: "GiBy", zone: "", resourceType: "Forwarding rule", name: "web-https", unitPrice: 80_000_000, quantity: 1_500_000, listPct: 100,
		tags: `{"service": "web"}`},
	{project: "alpenrose-apps-nonprod", service: "Cloud Run", category: "Compute", sku: "B7A2-6D1E-04F9", description: "CPU Allocation Time (tier 1)",
		unit: "vCPU-Seconds", zone: "", resourceType: "Service", name: "web-dev", unitPrice: 180_000, quantity: 222_222_000, listPct: 100,
		tags: `{"team": "guest-experience", "app": "web", "env": "development"}`},
	{project: "alpenrose-apps-nonprod", service: "Cloud Run", category: "Compute", sku: "B7A2-6D1E-04F9", description: "CPU Allocation Time (tier 1)",
		unit: "vCPU-Seconds", zone: "", resourceType: "Service", name: "web-preprod", unitPrice: 180_000, quantity: 277_778_000, listPct: 100,
		tags: `{"team": "guest-experience", "app": "web", " env": "preprod"}`},
	{project: "alpenrose-sandbox", service: "Vertex AI", category: "AI and Machine Learning", sku: "3A8C-0E2F-6B71", description: "Vertex AI Prediction: n1-standard-4 node hours in Zurich",
		unit: "Hours", zone: "", resourceType: "Endpoint", name: "concierge-chat-poc", unitPrice: eur(23), quantity: 24_000 * 2, listPct: 100,
		tags: `{"owner": "guest-experience"}`},
	// the platform's own projects: allocated by socle.yaml's rules
	{project: "alpenrose-connectivity", service: "Networking", category: "Networking", sku: "6B1D-93E2-A4C0", description: "Cloud NAT Gateway uptime",
		unit: "Hours", zone: "", resourceType: "NAT gateway", name: "hub-nat", unitPrice: eur(45) / 10, quantity: 24_000 * 9, listPct: 100},
	{project: "alpenrose-management", service: "Cloud Logging", category: "Management and Governance", sku: "143F-A1B0-E0BE", description: "Log Storage cost",
		unit: "GiBy", zone: "", resourceType: "Log bucket", name: "_Default", unitPrice: eur(50), quantity: 17_000, listPct: 100},
	// CI in the devops project: its zone is known, its team is not
	{project: "alpenrose-devops", service: "Artifact Registry", category: "Storage", sku: "D9B2-8E44-1C6A", description: "Artifact Registry Storage",
		unit: "GiBy-Months", zone: "", resourceType: "Repository", name: "images", unitPrice: eur(10), quantity: 47_000, listPct: 100},
}

func main() {
	var out strings.Builder
	writeRow := func(vals map[string]string) {
		cells := make([]string, len(columns))
		for i, c := range columns {
			v, ok := vals[c]
			switch {
			case !ok || v == "":
				cells[i] = "NULL"
			case numeric[c]:
				cells[i] = v
			default:
				cells[i] = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
			}
		}
		out.WriteString(strings.Join(cells, ",") + "\n")
	}
	head := make([]string, len(columns))
	for i, c := range columns {
		head[i] = `"` + c + `"`
	}
	out.WriteString(strings.Join(head, ",") + "\n")

	start := time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)
	id := 8_100_000
	period := map[string]string{"BillingPeriodStart": "2024-09-01 00:00:00", "BillingPeriodEnd": "2024-10-01 00:00:00"}
	common := func(m map[string]string) map[string]string {
		for k, v := range period {
			m[k] = v
		}
		m["BillingAccountId"], m["BillingAccountName"], m["BillingCurrency"] = account, accountName, "EUR"
		m["InvoiceIssuerName"], m["ProviderName"], m["PublisherName"] = "Google Cloud EMEA Limited", "Google Cloud", "Google Cloud"
		id++
		m["Id"] = fmt.Sprint(id)
		return m
	}
	for d := 0; d < 30; d++ {
		day := start.AddDate(0, 0, d)
		for _, r := range resources {
			qty := r.quantity * vary(day, r.name) / 1000 // thousandths of a unit
			cost := r.unitPrice * qty / 1000
			list := cost * r.listPct / 100
			rid := fmt.Sprintf("//%s.googleapis.com/projects/%s/%s", strings.ToLower(strings.ReplaceAll(r.service, " ", "")), r.project, r.name)
			m := common(map[string]string{
				"AvailabilityZone": r.zone, "BilledCost": money(cost), "ChargeCategory": "Usage", "ChargeDescription": r.description,
				"ChargeFrequency": "Usage-Based", "ChargePeriodStart": day.Format(time.DateTime), "ChargePeriodEnd": day.AddDate(0, 0, 1).Format(time.DateTime),
				"ConsumedQuantity": thousandths(qty), "ConsumedUnit": r.unit, "ContractedCost": money(cost), "ContractedUnitPrice": money(r.unitPrice),
				"EffectiveCost": money(cost), "ListCost": money(list), "ListUnitPrice": money(r.unitPrice * r.listPct / 100),
				"PricingCategory": "Standard", "PricingQuantity": thousandths(qty), "PricingUnit": r.unit, "RegionId": region, "RegionName": "Zurich",
				"ResourceId": rid, "ResourceName": r.name, "ResourceType": r.resourceType, "ServiceCategory": r.category, "ServiceName": r.service,
				"SkuId": r.sku, "SkuPriceId": r.sku + ".EUR", "SubAccountId": r.project, "SubAccountName": r.project, "Tags": r.tags,
			})
			writeRow(m)
		}
	}
	// once a month: the support plan of the billing account, no project
	writeRow(common(map[string]string{
		"BilledCost": money(eur(15000)), "ChargeCategory": "Purchase", "ChargeDescription": "Enhanced Support, monthly fee",
		"ChargeFrequency": "Recurring", "ChargePeriodStart": "2024-09-01 00:00:00", "ChargePeriodEnd": "2024-10-01 00:00:00",
		"ContractedCost": money(eur(15000)), "EffectiveCost": money(eur(15000)), "ListCost": money(eur(15000)),
		"ServiceCategory": "Other", "ServiceName": "Cloud Support", "SkuId": "2E6B-1F0A-77C4",
	}))
	// and the free tier's credit on the logs of the management project
	writeRow(common(map[string]string{
		"BilledCost": money(-eur(2500)), "ChargeCategory": "Credit", "ChargeDescription": "Cloud Logging free tier: 50 GiB",
		"ChargeFrequency": "One-Time", "ChargePeriodStart": "2024-09-30 00:00:00", "ChargePeriodEnd": "2024-10-01 00:00:00",
		"ContractedCost": money(-eur(2500)), "EffectiveCost": money(-eur(2500)), "ListCost": money(-eur(2500)),
		"RegionId": region, "RegionName": "Zurich", "ServiceCategory": "Management and Governance", "ServiceName": "Cloud Logging",
		"SubAccountId": "alpenrose-management", "SubAccountName": "alpenrose-management",
	}))
	os.Stdout.WriteString(out.String())
}

// vary returns a day's share of a resource's usage in thousandths, 850 to
// 1150: weekends are quieter, and every (day, resource) differs a little.
func vary(day time.Time, name string) int64 {
	h := fnv.New32a()
	fmt.Fprint(h, day.Format(time.DateOnly), name)
	v := int64(900 + h.Sum32()%200)
	if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
		v -= 50
	}
	return v
}

// money writes an amount of 1e-10 EUR with ten decimals.
func money(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%010d", sign, v/10_000_000_000, v%10_000_000_000)
}

// thousandths writes a quantity kept in thousandths.
func thousandths(q int64) string { return fmt.Sprintf("%d.%03d", q/1000, q%1000) }
