package cost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"

	"github.com/socle-dev/socle/internal/money"
)

// Format is a billing export format, recognized from its header.
type Format string

// The formats socle imports.
const (
	FormatFOCUS Format = "focus"   // FinOps FOCUS 1.0–1.3
	FormatCUR   Format = "aws-cur" // AWS Cost and Usage Report 2.0 (and the legacy CUR's column names)
	FormatAzure Format = "azure"   // Azure cost details: EA, MCA, pay-as-you-go; actual or amortized
	FormatGCP   Format = "gcp"     // Google Cloud billing export (the BigQuery schema)
)

// field is a column of the canonical charge that formats map their columns to.
type field uint8

const (
	fDay field = iota
	fPeriod
	fProvider
	fBillingAccount
	fAccount
	fAccountName
	fResourceGroup
	fResourceID
	fService
	fRegion
	fCategory
	fCurrency
	fBilled // the cost column of formats with a single one
	fEffective
	fList
	fTags
	fTags2 // tags of lower precedence: Google Cloud's project labels
	// format-specific inputs
	fCredits                 // gcp
	fPricingModel            // azure
	fPaygPrice               // azure
	fQuantity                // azure
	fEffectivePrice          // azure
	fReservationEff          // aws
	fSavingsPlanEff          // aws
	fSPCommitment            // aws
	fSPUsedCommitment        // aws
	fRIUnusedUpfront         // aws
	fRIUnusedRecurring       // aws
	fReservationARN          // aws
	fTimeInterval            // aws: start/end, when the start column is missing
	nField                   //
	fieldNone          field = 255
)

var fieldNames = [nField]string{"charge start", "billing period", "provider", "billing account", "account",
	"account name", "resource group", "resource id", "service", "region", "charge category", "currency",
	"cost", "effective cost", "list cost", "tags", "project labels", "credits", "pricing model", "pay-as-you-go price",
	"quantity", "effective price", "reservation effective cost", "savings plan effective cost", "savings plan commitment",
	"savings plan used commitment", "reservation unused upfront fee", "reservation unused recurring fee",
	"reservation ARN", "time interval"}

// formatSpec says how to recognize a format and read its columns.
type formatSpec struct {
	format Format
	// aliases lists, per field, the header names that carry it, first found
	// wins. They are compared normalized (see normalizeHeader).
	aliases [nField][]string
	// localized are header names of localized exports (Azure portal
	// downloads): their dates are day-first and their decimals may use commas.
	localized map[string]bool
	required  []field
	// detect reports whether a header is of this format.
	detect func(f *formatSpec, has func(string) bool) bool
	// check, if set, refuses a header of the format that socle cannot
	// read right.
	check   func(has func(string) bool) error
	convert func(m *mapper, row [][]byte, c *charge) error
}

// normalizeHeader makes header names comparable across spellings:
// BilledCost, billed_cost, "Billed Cost", lineItem/UnblendedCost and
// line_item_unblended_cost, Coût and Cout all meet. It drops a BOM, case,
// accents, and everything but letters and digits.
func normalizeHeader(s string) string {
	var b strings.Builder
	for _, r := range s {
		r = unicode.ToLower(r)
		switch r {
		case 'à', 'á', 'â', 'ã', 'ä', 'å':
			r = 'a'
		case 'ç':
			r = 'c'
		case 'è', 'é', 'ê', 'ë':
			r = 'e'
		case 'ì', 'í', 'î', 'ï':
			r = 'i'
		case 'ñ':
			r = 'n'
		case 'ò', 'ó', 'ô', 'õ', 'ö':
			r = 'o'
		case 'ù', 'ú', 'û', 'ü':
			r = 'u'
		case 'ß':
			b.WriteString("ss")
			continue
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var formats = []*formatSpec{focusFormat, curFormat, gcpFormat, azureFormat}

func init() {
	for _, f := range formats {
		for i := range f.aliases {
			for j, a := range f.aliases[i] {
				f.aliases[i][j] = normalizeHeader(a)
			}
		}
		loc := f.localized
		f.localized = map[string]bool{}
		for a := range loc {
			f.localized[normalizeHeader(a)] = true
		}
	}
}

// mapper reads the rows of one file of a known format into charges.
type mapper struct {
	spec    *formatSpec
	idx     [nField]int
	columns int
	order   dateOrder
	tagCols []tagCol // legacy CUR: one column per tag
	scratch []byte
	// currencies caches whether a currency code is ISO 4217's
	currencies map[string]bool
}

// tagCol is a column that holds one tag's value.
type tagCol struct {
	idx int
	key string
}

// newMapper recognizes the format of a header and maps its columns.
func newMapper(header []string) (*mapper, error) {
	norm := make(map[string]int, len(header))
	for i, h := range header {
		n := normalizeHeader(h)
		if _, dup := norm[n]; !dup {
			norm[n] = i
		}
	}
	// Azure's localized downloads name a column "Localized name
	// (EnglishName)": the English name finds it too, after every header
	// spelled out in full
	localized := false
	for i, h := range header {
		local, english, ok := splitLocalized(h)
		if !ok {
			continue
		}
		n := normalizeHeader(english)
		if _, dup := norm[n]; !dup {
			norm[n] = i
		}
		if normalizeHeader(local) != n {
			localized = true
		}
	}
	has := func(n string) bool { _, ok := norm[n]; return ok }
	for _, f := range formats {
		if !f.detect(f, has) {
			continue
		}
		if f.check != nil {
			if err := f.check(has); err != nil {
				return nil, err
			}
		}
		m := &mapper{spec: f, columns: len(header)}
		if localized {
			m.order = dayFirst
		}
		for i := range m.idx {
			m.idx[i] = -1
			for _, a := range f.aliases[i] {
				if j, ok := norm[a]; ok {
					m.idx[i] = j
					if f.localized[a] {
						m.order = dayFirst
					}
					break
				}
			}
		}
		for _, r := range f.required {
			if m.idx[r] < 0 {
				return nil, fmt.Errorf("%s export without a %s column (looked for %s)", f.format, fieldNames[r], strings.Join(f.aliases[r], ", "))
			}
		}
		if f.format == FormatCUR {
			for i, h := range header {
				// legacy CUR: resourceTags/user:team
				if k, ok := strings.CutPrefix(strings.ToLower(h), "resourcetags/"); ok {
					m.tagCols = append(m.tagCols, tagCol{i, h[len(h)-len(k):]})
				}
			}
		}
		return m, nil
	}
	return nil, errUnknownFormat
}

// splitLocalized cuts a header written "Localized name (EnglishName)" into
// its two names.
func splitLocalized(h string) (local, english string, ok bool) {
	h = strings.TrimSpace(h)
	open := strings.LastIndexByte(h, '(')
	if open <= 0 || !strings.HasSuffix(h, ")") {
		return "", "", false
	}
	english = h[open+1 : len(h)-1]
	if english == "" {
		return "", "", false
	}
	for _, r := range english {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return "", "", false
		}
	}
	return strings.TrimSpace(h[:open]), english, true
}

var errUnknownFormat = errors.New("not a billing export socle knows: the header matches none of FOCUS (BilledCost, ChargePeriodStart), " +
	"AWS CUR (line_item_unblended_cost, line_item_usage_start_date), Google Cloud (cost, usage_start_time) " +
	"or Azure cost details (date, cost or costInBillingCurrency, subscription)")

// get returns the value of f in row, nil when the file has no such column or
// the value is null.
func (m *mapper) get(row [][]byte, f field) []byte {
	i := m.idx[f]
	if i < 0 || i >= len(row) {
		return nil
	}
	return value(row[i])
}

// charge is one billing row in canonical form. Its byte slices point into
// the reader's buffers and are valid until the next row.
type charge struct {
	day            Day
	period         Month
	provider       []byte
	billingAccount []byte
	account        []byte
	accountName    []byte
	subscription   []byte
	resourceGroup  []byte
	project        []byte
	service        []byte
	region         []byte
	category       []byte
	currency       []byte
	amounts        Amounts
	tags, tags2    []byte
	// view is the Azure view only this charge's kind of row appears in
	// (ViewFull when both have it), and why.
	view View
	why  string
}

// read converts one row. It checks what every format shares: the number of
// fields, the day, the billing period and the currency.
func (m *mapper) read(row [][]byte, c *charge) error {
	if len(row) != m.columns {
		return fmt.Errorf("has %d fields, the header has %d", len(row), m.columns)
	}
	*c = charge{}
	day := m.get(row, fDay)
	if day == nil && m.idx[fTimeInterval] >= 0 { // CUR: 2024-09-01T00:00:00Z/2024-09-01T01:00:00Z
		if iv := m.get(row, fTimeInterval); iv != nil {
			day, _, _ = bytes.Cut(iv, []byte{'/'})
		}
	}
	st, err := parseStamp(day, m.order)
	if err != nil {
		return fmt.Errorf("%s %w", fieldNames[fDay], err)
	}
	c.day = st.utcDay()
	c.period = st.localMonth()
	if p := m.get(row, fPeriod); p != nil {
		ps, err := parseStamp(p, m.order)
		if err != nil {
			return fmt.Errorf("%s %w", fieldNames[fPeriod], err)
		}
		c.period = ps.localMonth()
	}
	c.currency = m.get(row, fCurrency)
	if c.currency == nil {
		return fmt.Errorf("%s %w", fieldNames[fCurrency], errEmpty)
	}
	if hasLower(c.currency) {
		c.currency = bytes.ToUpper(c.currency)
	}
	if err := m.checkCurrency(c.currency); err != nil {
		return err
	}
	c.billingAccount = m.get(row, fBillingAccount)
	c.account = m.get(row, fAccount)
	c.accountName = m.get(row, fAccountName)
	c.resourceGroup = m.get(row, fResourceGroup)
	c.service = m.get(row, fService)
	c.region = m.get(row, fRegion)
	c.tags = m.get(row, fTags)
	c.tags2 = m.get(row, fTags2)
	if err := m.spec.convert(m, row, c); err != nil {
		return err
	}
	if c.account == nil {
		c.account = c.billingAccount
	}
	if c.billingAccount == nil {
		c.billingAccount = c.account
	}
	if c.resourceGroup == nil {
		c.resourceGroup = resourceGroupOf(m.get(row, fResourceID))
	}
	return nil
}

// checkCurrency refuses a currency code that is not ISO 4217's: costs are
// grouped and budgets matched by it, and "EURO" or "€" would make a
// currency of their own.
func (m *mapper) checkCurrency(c []byte) error {
	ok, seen := m.currencies[string(c)]
	if !seen {
		ok = isISO4217(string(c))
		if m.currencies == nil {
			m.currencies = map[string]bool{}
		}
		if len(m.currencies) < 1024 { // a file of random codes does not grow it
			m.currencies[string(c)] = ok
		}
	}
	if !ok {
		return fmt.Errorf("%s %q is not an ISO 4217 currency code", fieldNames[fCurrency], truncate(c))
	}
	return nil
}

// amount parses a cost column: required ones must hold a number, optional
// ones default to def.
func (m *mapper) amount(row [][]byte, f field, required bool, def money.Amount) (money.Amount, error) {
	v, err := parseNumber(m.get(row, f))
	switch {
	case err == errEmpty && !required:
		return def, nil
	case err != nil:
		return money.Zero, fmt.Errorf("%s %w", fieldNames[f], err)
	}
	return v, nil
}

// product returns the product of two optional columns (a price and a
// quantity), computed exactly and rounded once, half to even, to a
// pico-unit; ok is false when either is null or zero.
func (m *mapper) product(row [][]byte, f1, f2 field) (p money.Amount, ok bool, err error) {
	var factors [2]*big.Rat
	for i, f := range [2]field{f1, f2} {
		r, err := parseDecimal(m.get(row, f))
		switch {
		case err == errEmpty:
			return money.Zero, false, nil
		case err != nil:
			return money.Zero, false, fmt.Errorf("%s %w", fieldNames[f], err)
		}
		factors[i] = r
	}
	if factors[0].Sign() == 0 || factors[1].Sign() == 0 {
		return money.Zero, false, nil
	}
	p, ok = money.FromRat(new(big.Rat).Mul(factors[0], factors[1]))
	if !ok {
		return money.Zero, false, fmt.Errorf("%s times %s is too large an amount", fieldNames[f1], fieldNames[f2])
	}
	return p, true, nil
}

func hasLower(b []byte) bool {
	for _, c := range b {
		if c >= 'a' && c <= 'z' {
			return true
		}
	}
	return false
}

// The canonical charge categories of FOCUS.
var (
	catUsage      = []byte("Usage")
	catPurchase   = []byte("Purchase")
	catTax        = []byte("Tax")
	catCredit     = []byte("Credit")
	catAdjustment = []byte("Adjustment")
	categories    = [][]byte{catUsage, catPurchase, catTax, catCredit, catAdjustment}
)

// canonCategory spells a FOCUS charge category the way the specification
// does, whatever the case it came in.
func canonCategory(b []byte) []byte {
	for _, c := range categories {
		if bytes.EqualFold(b, c) {
			return c
		}
	}
	return b
}

var (
	provAWS       = []byte("AWS")
	provMicrosoft = []byte("Microsoft")
	provGoogle    = []byte("Google Cloud")
)

// providerID is the short name of a provider that socle.yaml's zones use.
func providerID(p string) string {
	switch l := strings.ToLower(p); {
	case l == "aws" || strings.Contains(l, "amazon"):
		return "aws"
	case l == "microsoft" || strings.Contains(l, "azure"):
		return "azure"
	case strings.Contains(l, "google") || l == "gcp":
		return "gcp"
	case strings.Contains(l, "oracle") || l == "oci":
		return "oci"
	default:
		return l
	}
}

// subscriptionOf returns the GUID of an Azure id such as
// /subscriptions/<guid>/resourceGroups/…, or nil.
func subscriptionOf(id []byte) []byte {
	const p = "/subscriptions/"
	if len(id) < len(p) || !bytes.EqualFold(id[:len(p)], []byte(p)) {
		return nil
	}
	s := id[len(p):]
	if i := bytes.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

// resourceGroupOf returns the resource group of an Azure resource id, or nil.
func resourceGroupOf(id []byte) []byte {
	const p = "/resourcegroups/"
	if len(id) < len(p) || id[0] != '/' {
		return nil
	}
	for i := 0; i+len(p) <= len(id); i++ {
		if id[i] == '/' && bytes.EqualFold(id[i:i+len(p)], []byte(p)) {
			rg := id[i+len(p):]
			if j := bytes.IndexByte(rg, '/'); j >= 0 {
				rg = rg[:j]
			}
			return rg
		}
	}
	return nil
}

// FOCUS 1.0–1.3. 1.3 names the provider ServiceProviderName; earlier
// versions ProviderName. Microsoft's FOCUS export adds x_ResourceGroupName.
var focusFormat = &formatSpec{
	format: FormatFOCUS,
	aliases: [nField][]string{
		fDay:            {"ChargePeriodStart"},
		fPeriod:         {"BillingPeriodStart"},
		fProvider:       {"ServiceProviderName", "ProviderName"},
		fBillingAccount: {"BillingAccountId"},
		fAccount:        {"SubAccountId"},
		fAccountName:    {"SubAccountName"},
		fResourceGroup:  {"x_ResourceGroupName"},
		fResourceID:     {"ResourceId"},
		fService:        {"ServiceName"},
		fRegion:         {"RegionId", "RegionName"},
		fCategory:       {"ChargeCategory"},
		fCurrency:       {"BillingCurrency"},
		fBilled:         {"BilledCost"},
		fEffective:      {"EffectiveCost"},
		fList:           {"ListCost"},
		fTags:           {"Tags"},
	},
	required: []field{fDay, fBilled, fCurrency},
	detect: func(_ *formatSpec, has func(string) bool) bool {
		return has("billedcost") && has("chargeperiodstart")
	},
	check: focusVersion,
	convert: func(m *mapper, row [][]byte, c *charge) error {
		var err error
		if c.amounts.Billed, err = m.amount(row, fBilled, true, money.Zero); err != nil {
			return err
		}
		if c.amounts.Effective, err = m.amount(row, fEffective, false, c.amounts.Billed); err != nil {
			return err
		}
		if c.amounts.List, err = m.amount(row, fList, false, c.amounts.Billed); err != nil {
			return err
		}
		c.provider = m.get(row, fProvider)
		c.category = canonCategory(m.get(row, fCategory))
		c.subscription = subscriptionOf(c.account)
		if providerID(unsafeString(c.provider)) == "gcp" {
			c.project = c.account
		}
		return nil
	},
}

// focusVersion refuses the FOCUS versions before 1.0, named by the columns
// that 1.0 renamed or removed: read as 1.0, their effective cost and
// charge categories would be lost without a word. FOCUS 0.5 has
// AmortizedCost and ChargeType where 1.0 has EffectiveCost and
// ChargeCategory; 1.0-preview has ChargeSubcategory and UsageQuantity where
// 1.0 has ChargeClass and ConsumedQuantity.
func focusVersion(has func(string) bool) error {
	var version string
	var cols []string
	switch {
	case has("amortizedcost") && !has("effectivecost"):
		version, cols = "0.5", []string{"AmortizedCost", "no EffectiveCost"}
	case has("chargetype") && !has("chargecategory"):
		version, cols = "0.5", []string{"ChargeType", "no ChargeCategory"}
	case has("chargesubcategory") && !has("chargeclass"):
		version, cols = "1.0-preview", []string{"ChargeSubcategory", "no ChargeClass"}
	case has("usagequantity") && !has("consumedquantity") && !has("chargeclass"):
		version, cols = "1.0-preview", []string{"UsageQuantity", "no ConsumedQuantity"}
	default:
		return nil
	}
	return fmt.Errorf("a FOCUS %s export (it has %s): socle reads FOCUS 1.0 to 1.3; export the data again as FOCUS 1.0 or later",
		version, strings.Join(cols, ", "))
}

// AWS Cost and Usage Report 2.0; the legacy CUR's lineItem/UnblendedCost
// names normalize to the same. Effective cost follows AWS's own FOCUS
// conversion: commitment-covered usage at its amortized cost, upfront fees
// at zero, the unused part of commitments where it is charged.
var curFormat = &formatSpec{
	format: FormatCUR,
	aliases: [nField][]string{
		fDay:               {"line_item_usage_start_date"},
		fTimeInterval:      {"identity_time_interval"},
		fPeriod:            {"bill_billing_period_start_date"},
		fBillingAccount:    {"bill_payer_account_id"},
		fAccount:           {"line_item_usage_account_id"},
		fAccountName:       {"line_item_usage_account_name"},
		fResourceID:        {"line_item_resource_id"},
		fService:           {"product_product_name", "product_servicename", "product_servicecode", "line_item_product_code"},
		fRegion:            {"product_region_code", "product_region"},
		fCategory:          {"line_item_line_item_type"},
		fCurrency:          {"line_item_currency_code"},
		fBilled:            {"line_item_unblended_cost"},
		fList:              {"pricing_public_on_demand_cost"},
		fTags:              {"resource_tags"},
		fReservationEff:    {"reservation_effective_cost"},
		fSavingsPlanEff:    {"savings_plan_savings_plan_effective_cost"},
		fSPCommitment:      {"savings_plan_total_commitment_to_date"},
		fSPUsedCommitment:  {"savings_plan_used_commitment"},
		fRIUnusedUpfront:   {"reservation_unused_amortized_upfront_fee_for_billing_period"},
		fRIUnusedRecurring: {"reservation_unused_recurring_fee"},
		fReservationARN:    {"reservation_reservation_a_r_n", "reservation_reservation_arn"},
	},
	required: []field{fBilled, fCurrency},
	detect: func(_ *formatSpec, has func(string) bool) bool {
		return has("lineitemunblendedcost") && (has("lineitemusagestartdate") || has("identitytimeinterval"))
	},
	convert: func(m *mapper, row [][]byte, c *charge) error {
		billed, err := m.amount(row, fBilled, true, money.Zero)
		if err != nil {
			return err
		}
		c.amounts.Billed = billed
		if c.amounts.List, err = m.amount(row, fList, false, billed); err != nil {
			return err
		}
		c.provider = provAWS
		eff := billed
		typ := m.get(row, fCategory)
		switch t := strings.ToLower(unsafeString(typ)); t {
		case "usage", "":
			c.category = catUsage
		case "discountedusage":
			c.category = catUsage
			eff, err = m.amount(row, fReservationEff, false, billed)
		case "savingsplancoveredusage":
			c.category = catUsage
			eff, err = m.amount(row, fSavingsPlanEff, false, billed)
		case "savingsplannegation":
			c.category = catUsage
			eff = money.Zero
		case "savingsplanupfrontfee":
			c.category = catPurchase
			eff = money.Zero
		case "savingsplanrecurringfee":
			c.category = catPurchase
			var total, used money.Amount
			if total, err = m.amount(row, fSPCommitment, false, billed); err == nil {
				used, err = m.amount(row, fSPUsedCommitment, false, money.Zero)
			}
			eff = total.Sub(used) // both below 10^18: no overflow
		case "rifee":
			c.category = catPurchase
			var upfront, recurring money.Amount
			if upfront, err = m.amount(row, fRIUnusedUpfront, false, money.Zero); err == nil {
				recurring, err = m.amount(row, fRIUnusedRecurring, false, money.Zero)
			}
			if m.idx[fRIUnusedUpfront] >= 0 || m.idx[fRIUnusedRecurring] >= 0 {
				eff = upfront.Add(recurring)
			}
		case "fee":
			c.category = catPurchase
			if m.get(row, fReservationARN) != nil { // a reservation's upfront fee
				eff = money.Zero
			}
		case "tax":
			c.category = catTax
		case "credit", "refund", "bundleddiscount", "edpdiscount", "privateratediscount", "sppdiscount",
			"distributordiscount", "discount":
			c.category = catCredit
		default:
			c.category = catAdjustment
		}
		if err != nil {
			return err
		}
		c.amounts.Effective = eff
		if len(m.tagCols) > 0 {
			c.tags = m.legacyTags(row)
		}
		return nil
	},
}

// legacyTags writes the legacy CUR's tag columns as one JSON object.
func (m *mapper) legacyTags(row [][]byte) []byte {
	b := append(m.scratch[:0], '{')
	n := 0
	for _, tc := range m.tagCols {
		v := value(row[tc.idx])
		if v == nil {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		k, _ := json.Marshal(tc.key)
		s, _ := json.Marshal(string(v))
		b = append(append(append(b, k...), ':'), s...)
	}
	m.scratch = append(b, '}')
	if n == 0 {
		return nil
	}
	return m.scratch
}

// Google Cloud's billing export, the schema of its BigQuery tables, as CSV
// (nested fields as dotted or underscored names, repeated ones as JSON) or
// as JSON lines. Credits are included in the billed cost, as on the invoice.
var gcpFormat = &formatSpec{
	format: FormatGCP,
	aliases: [nField][]string{
		fDay:            {"usage_start_time"},
		fPeriod:         {"invoice.month"},
		fBillingAccount: {"billing_account_id"},
		fAccount:        {"project.id"},
		fAccountName:    {"project.name"},
		fResourceID:     {"resource.global_name", "resource.name"},
		fService:        {"service.description"},
		fRegion:         {"location.region", "location.location"},
		fCategory:       {"cost_type"},
		fCurrency:       {"currency"},
		fBilled:         {"cost"},
		fList:           {"cost_at_list"},
		fCredits:        {"credits"},
		fTags:           {"labels"},
		fTags2:          {"project.labels"},
	},
	required: []field{fDay, fBilled, fCurrency},
	detect: func(_ *formatSpec, has func(string) bool) bool {
		return has("cost") && has("usagestarttime")
	},
	convert: func(m *mapper, row [][]byte, c *charge) error {
		cost, err := m.amount(row, fBilled, true, money.Zero)
		if err != nil {
			return err
		}
		credits, err := sumCredits(m.get(row, fCredits))
		if err != nil {
			return err
		}
		c.amounts.Billed = cost.Add(credits) // credits are bounded by the record's length
		c.amounts.Effective = c.amounts.Billed
		if c.amounts.List, err = m.amount(row, fList, false, cost); err != nil {
			return err
		}
		c.provider = provGoogle
		c.project = c.account
		switch strings.ToLower(unsafeString(m.get(row, fCategory))) {
		case "tax":
			c.category = catTax
		case "adjustment", "rounding_error", "rounding error":
			c.category = catAdjustment
		default:
			c.category = catUsage
		}
		return nil
	},
}

// sumCredits adds the amounts of Google Cloud credits: a JSON array, as
// BigQuery writes it, or the same written as a Python list
// ([{'name': …, 'amount': -1.5}]), as a CSV saved with pandas has it.
func sumCredits(b []byte) (money.Amount, error) {
	if b == nil || bytes.Equal(b, []byte("[]")) {
		return money.Zero, nil
	}
	var cs []struct {
		Amount json.Number `json:"amount"`
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		js, perr := pythonToJSON(b)
		if perr != nil {
			return money.Zero, fmt.Errorf("credits %q are neither a JSON array of credits (%w) nor a Python list of them (%w)", truncate(b), err, perr)
		}
		if err := json.Unmarshal(js, &cs); err != nil {
			return money.Zero, fmt.Errorf("credits %q are not a list of credits: %w", truncate(b), err)
		}
	}
	var sum money.Amount
	for _, c := range cs {
		if c.Amount == "" {
			continue
		}
		a, err := money.Parse(string(c.Amount))
		if err != nil {
			return money.Zero, fmt.Errorf("credit amount %q is not an amount: %w", c.Amount, err)
		}
		// at most a record's length of credits, each below 10^18: no overflow
		sum = sum.Add(a)
	}
	return sum, nil
}

// Azure cost details: the Enterprise Agreement's PascalCase columns, the
// Microsoft Customer Agreement's camelCase ones, pay-as-you-go's legacy
// usage details, and the headers of localized portal downloads.
//
// Azure exports the same charges twice, as actual and as amortized cost,
// with the same columns (Microsoft's "Get Enterprise Agreement and
// Microsoft Customer Agreement reservation costs and usage"): only some
// rows tell them apart. Actual cost has the purchases of reservations and
// savings plans (ChargeType Purchase, PricingModel Reservation or
// SavingsPlan) and gives the usage they cover an EffectivePrice of zero;
// amortized cost has no such purchase, gives covered usage the prorated
// price of the commitment, and adds its unused hours as UnusedReservation
// and UnusedSavingsPlan rows. A file is read as the view its rows say,
// whatever its name (exports are named part_0_0001.csv). Covered usage and
// unused commitment are never billed (the purchase is), so every row reads
// the same in both views; only which view supplies which cost differs.
var azureFormat = &formatSpec{
	format: FormatAzure,
	aliases: [nField][]string{
		fDay: {"date", "UsageDateTime", "UsageDate", "UsageStartDate",
			"Datum", "Fecha", "Data", "日付"},
		fPeriod:         {"billingPeriodStartDate"},
		fBillingAccount: {"billingAccountId", "EnrollmentNumber"},
		fAccount: {"SubscriptionId", "SubscriptionGuid",
			"Abonnement-ID", "ID d'abonnement", "Id. de suscripción", "ID sottoscrizione", "ID da Assinatura", "サブスクリプション ID"},
		fAccountName: {"SubscriptionName",
			"Abonnementname", "Nom de l'abonnement", "Nombre de suscripción", "Nome sottoscrizione", "Nome da Assinatura", "サブスクリプション名"},
		fResourceGroup: {"resourceGroupName", "ResourceGroup",
			"Ressourcengruppe", "Groupe de ressources", "Grupo de recursos", "Gruppo di risorse", "リソース グループ"},
		fResourceID: {"ResourceId", "InstanceId", "Ressourcen-ID", "ID de ressource", "Id. de recurso"},
		fService: {"meterCategory", "ServiceName", "ConsumedService",
			"Messungskategorie", "Zählerkategorie", "Catégorie du compteur", "Categoría del medidor", "Categoria contatore", "Categoria do medidor", "測定カテゴリ"},
		fRegion: {"resourceLocation", "ResourceLocationNormalized", "location", "meterRegion",
			"Ressourcenstandort", "Emplacement de la ressource", "Ubicación del recurso", "Posizione risorsa", "Local do recurso", "リソースの場所"},
		fCategory:     {"chargeType"},
		fPricingModel: {"pricingModel"},
		fCurrency: {"billingCurrency", "BillingCurrencyCode", "Currency",
			"Währung", "Devise", "Moneda", "Valuta", "Moeda", "通貨"},
		fBilled: {"costInBillingCurrency", "Cost", "PreTaxCost", "ExtendedCost",
			"Kosten", "Coût", "Costo", "Coste", "Custo", "コスト"},
		fList:           {"paygCostInBillingCurrency"},
		fPaygPrice:      {"PayGPrice"},
		fEffectivePrice: {"effectivePrice"},
		fQuantity:       {"quantity", "ConsumedQuantity", "UsageQuantity", "Menge", "Quantité", "Cantidad", "Quantità", "Quantidade", "数量"},
		fTags:           {"tags", "Etiquetas", "Balises", "Marcas", "タグ"},
	},
	localized: map[string]bool{
		"Datum": true, "Fecha": true, "Data": true, "日付": true,
		"Kosten": true, "Coût": true, "Costo": true, "Coste": true, "Custo": true, "コスト": true,
	},
	required: []field{fDay, fBilled, fCurrency},
	detect: func(spec *formatSpec, has func(string) bool) bool {
		anyOf := func(f field) bool {
			for _, a := range spec.aliases[f] {
				if has(a) {
					return true
				}
			}
			return false
		}
		return anyOf(fDay) && anyOf(fBilled) && (anyOf(fAccount) || anyOf(fService))
	},
	convert: func(m *mapper, row [][]byte, c *charge) error {
		cost, err := m.amount(row, fBilled, true, money.Zero)
		if err != nil {
			return err
		}
		list := cost
		switch {
		case m.idx[fList] >= 0:
			list, err = m.amount(row, fList, false, cost)
		case m.idx[fPaygPrice] >= 0 && m.idx[fQuantity] >= 0:
			// the legacy usage details have no list cost: price × quantity
			var p money.Amount
			var ok bool
			if p, ok, err = m.product(row, fPaygPrice, fQuantity); ok {
				list = p
			} else if err == nil && m.nonZero(row, fPaygPrice) {
				list = money.Zero // a price, and no quantity
			}
		}
		if err != nil {
			return err
		}
		c.provider = provMicrosoft
		c.subscription = c.account
		if s := subscriptionOf(c.account); s != nil {
			c.subscription = s
		}
		if c.region != nil && bytes.IndexByte(c.region, ' ') >= 0 || hasUpper(c.region) {
			c.region = bytes.ToLower(bytes.ReplaceAll(c.region, []byte{' '}, nil))
		}
		c.amounts = Amounts{Billed: cost, Effective: cost, List: list}
		model := strings.ToLower(unsafeString(m.get(row, fPricingModel)))
		var commitment string
		switch model {
		case "reservation":
			commitment = "a reservation"
		case "savingsplan", "savings plan":
			commitment = "a savings plan"
		}
		switch t := strings.ToLower(unsafeString(m.get(row, fCategory))); t {
		case "", "usage":
			c.category = catUsage
			if commitment != "" {
				c.amounts.Billed = money.Zero // paid by the commitment's purchase
				if err := m.coveredUsage(row, cost, commitment, c); err != nil {
					return err
				}
			}
		case "unusedreservation", "unusedsavingsplan":
			c.category = catUsage
			c.amounts.Billed = money.Zero
			c.view, c.why = ViewAmortized, "unused commitment ("+unsafeString(m.get(row, fCategory))+")"
		case "purchase":
			c.category = catPurchase
			if commitment != "" {
				c.view, c.why = ViewActual, "the purchase of "+commitment
			}
		case "refund", "credit":
			c.category = catCredit
		case "tax":
			c.category = catTax
		default:
			c.category = catAdjustment
		}
		return nil
	},
}

// coveredUsage notes which view a row of usage covered by a commitment
// belongs to: its effective price (or, without that column, its cost) is
// zero in actual cost and the commitment's prorated price in amortized
// cost. A row of no quantity says nothing.
func (m *mapper) coveredUsage(row [][]byte, cost money.Amount, commitment string, c *charge) error {
	priced := !cost.IsZero()
	if m.idx[fEffectivePrice] >= 0 {
		if _, err := parseDecimal(m.get(row, fEffectivePrice)); err != nil && err != errEmpty {
			return fmt.Errorf("%s %w", fieldNames[fEffectivePrice], err)
		}
		priced = m.nonZero(row, fEffectivePrice)
	}
	if _, err := parseDecimal(m.get(row, fQuantity)); err != nil && err != errEmpty {
		return fmt.Errorf("%s %w", fieldNames[fQuantity], err)
	}
	used := m.get(row, fQuantity) == nil || m.nonZero(row, fQuantity)
	switch {
	case priced:
		c.view, c.why = ViewAmortized, "usage covered by "+commitment+" at its amortized price"
	case used:
		c.view, c.why = ViewActual, "usage covered by "+commitment+" at no cost"
	}
	return nil
}

// nonZero reports whether column f holds a number other than zero: a
// price or quantity of a few pico-units is not zero, as its rounding to an
// amount would say.
func (m *mapper) nonZero(row [][]byte, f field) bool {
	r, err := parseDecimal(m.get(row, f))
	return err == nil && r.Sign() != 0
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}
