package cost

import (
	"cmp"
	"fmt"
	"slices"
)

// bucketKey identifies a daily aggregate while reading: every string is an
// index into the aggregator's dictionary, so the key hashes as 60 bytes.
// file is the file of the batch the charges come from, until periods()
// knows which view of its period each file is.
type bucketKey struct {
	file           uint32
	source, period uint32
	day            Day
	provider       uint32
	account        uint32
	service        uint32
	region         uint32
	category       uint32
	currency       uint32
	owner          [nOwner]uint32
}

// covKey identifies one allocation outcome of a (file, source, period,
// day, currency).
type covKey struct {
	file, source, period, currency uint32
	day                            Day
	methods                        [nOwner]Method
}

type covSums struct {
	charges int64
	Amounts
}

// filePeriod is a (file, source, billing period).
type filePeriod struct{ file, source, period uint32 }

// allocated is an allocation with its owners interned, and its weight
// when a rule splits the charge.
type allocated struct {
	owner   [nOwner]uint32
	methods [nOwner]Method
	weight  uint64
}

// aggregator folds charges into daily buckets. Its memory grows with the
// number of distinct buckets and values, never with the number of charges.
type aggregator struct {
	alloc *Allocator
	// file is the index in the batch of the file being read.
	file uint32

	ids  map[string]uint32
	vals []string

	// memo caches allocations by everything allocation looks at: most rows
	// of an export repeat a few thousand combinations of tags and accounts.
	memo    map[string][]allocated
	memoKey []byte
	tagBuf  []tag

	sources map[[2]uint32]uint32 // (provider, billing account) → source name
	buckets map[bucketKey]int32
	sums    []Amounts
	cov     map[covKey]*covSums
	charges map[filePeriod]int64
	// joined is, after periods, the view each file's charges were counted
	// in (the first, for a file of several periods).
	joined []View
}

// maxMemo bounds the allocation cache; past it the cache starts over.
const maxMemo = 1 << 16

func newAggregator(a *Allocator) *aggregator {
	g := &aggregator{
		alloc:   a,
		ids:     map[string]uint32{},
		memo:    map[string][]allocated{},
		sources: map[[2]uint32]uint32{},
		buckets: map[bucketKey]int32{},
		cov:     map[covKey]*covSums{},
		charges: map[filePeriod]int64{},
	}
	g.intern(nil) // id 0 is the empty string
	return g
}

// intern returns the id of b; looking up a []byte converted in the index
// expression does not allocate.
func (g *aggregator) intern(b []byte) uint32 {
	if id, ok := g.ids[string(b)]; ok {
		return id
	}
	s := string(b)
	id := uint32(len(g.vals))
	g.ids[s] = id
	g.vals = append(g.vals, s)
	return id
}

func (g *aggregator) internString(s string) uint32 {
	if id, ok := g.ids[s]; ok {
		return id
	}
	id := uint32(len(g.vals))
	g.ids[s] = id
	g.vals = append(g.vals, s)
	return id
}

// add folds one charge in: into the bucket of its owners, or, split by a
// rule, each share of each of its costs into the bucket of the share's
// owners (money.Amount.Split: the shares add up to the charge exactly). A
// split charge counts once in the coverage, under its first share. add
// fails on tags that do not parse and on sums out of range; either fails
// the whole batch.
func (g *aggregator) add(c *charge) error {
	als, err := g.allocation(c)
	if err != nil {
		return err
	}
	prov := g.intern(c.provider)
	ba := g.intern(c.billingAccount)
	src, ok := g.sources[[2]uint32{prov, ba}]
	if !ok {
		src = g.internString(g.vals[prov] + ":" + g.vals[ba])
		g.sources[[2]uint32{prov, ba}] = src
	}
	period := uint32(c.period)
	k := bucketKey{
		file:     g.file,
		source:   src,
		period:   period,
		day:      c.day,
		provider: prov,
		account:  g.intern(c.account),
		service:  g.intern(c.service),
		region:   g.intern(c.region),
		category: g.intern(c.category),
		currency: g.intern(c.currency),
	}
	ck := covKey{file: g.file, source: src, period: period, currency: k.currency, day: c.day}
	g.charges[filePeriod{g.file, src, period}]++
	if len(als) == 1 {
		k.owner, ck.methods = als[0].owner, als[0].methods
		return g.addTo(k, ck, c.amounts, true)
	}
	weights := make([]uint64, len(als))
	for i, al := range als {
		weights[i] = al.weight
	}
	billed, eff, list := c.amounts.Billed.Split(weights), c.amounts.Effective.Split(weights), c.amounts.List.Split(weights)
	for i, al := range als {
		k.owner, ck.methods = al.owner, al.methods
		if err := g.addTo(k, ck, Amounts{billed[i], eff[i], list[i]}, i == 0); err != nil {
			return err
		}
	}
	return nil
}

// addTo adds amounts to a bucket and to a coverage sum, counting a charge
// in the coverage or not.
func (g *aggregator) addTo(k bucketKey, ck covKey, a Amounts, count bool) error {
	i, ok := g.buckets[k]
	if !ok {
		i = int32(len(g.sums))
		g.buckets[k] = i
		g.sums = append(g.sums, Amounts{})
	}
	cs := g.cov[ck]
	if cs == nil {
		cs = &covSums{}
		g.cov[ck] = cs
	}
	if !g.sums[i].addChecked(a) || !cs.addChecked(a) {
		return errTooMuch
	}
	if count {
		cs.charges++
	}
	return nil
}

// allocation returns the interned owners of a charge (one per share when
// a rule splits it), from the cache when the same facts were seen before.
func (g *aggregator) allocation(c *charge) ([]allocated, error) {
	k := g.memoKey[:0]
	for _, b := range [...][]byte{c.tags, c.tags2, c.provider, c.account, c.accountName, c.billingAccount,
		c.subscription, c.resourceGroup, c.project, c.service, c.region} {
		k = append(append(k, b...), 0)
	}
	g.memoKey = k
	if al, ok := g.memo[string(k)]; ok {
		return al, nil
	}
	// resource tags come first: they take precedence over project labels
	tags, err := parseTags(c.tags, g.tagBuf[:0])
	if err == nil {
		tags, err = parseTags(c.tags2, tags)
	}
	if err != nil {
		return nil, err
	}
	g.tagBuf = tags
	f := facts{
		provider: string(c.provider), account: string(c.account), accountName: string(c.accountName),
		billingAccount: string(c.billingAccount), subscription: string(c.subscription),
		resourceGroup: string(c.resourceGroup), project: string(c.project), service: string(c.service),
		region: string(c.region), tags: tags,
	}
	as := g.alloc.allocate(&f)
	al := make([]allocated, len(as))
	for j, a := range as {
		for i := range nOwner {
			al[j].owner[i] = g.internString(a.Owner[i])
			al[j].methods[i] = a.Method[i]
		}
		al[j].weight = a.Weight
	}
	if len(g.memo) >= maxMemo {
		clear(g.memo)
	}
	g.memo[string(k)] = al
	return al, nil
}

// viewUnknown is the view of an Azure file without a row that only one of
// the two views has: no commitment was bought, used or left unused, and
// its charges are the same in both.
const viewUnknown View = "?"

// periodKey is a (source, billing period, view).
type periodKey struct {
	source, period uint32
	view           View
}

// periods returns what was read, sorted by source, period and view, rows
// sorted by key. views are the views of the batch's files, names their
// names. A file of unknown view joins the view of the other files of its
// period, or is a full view if they have none.
func (g *aggregator) periods(views []View, names []string) ([]Period, error) {
	type sp struct{ source, period uint32 }
	known := map[sp][]uint32{} // files of known view, per period
	for fp := range g.charges {
		if views[fp.file] != viewUnknown {
			known[sp{fp.source, fp.period}] = append(known[sp{fp.source, fp.period}], fp.file)
		}
	}
	// view resolves the view of a file's charges of a period
	resolved := map[filePeriod]View{}
	for fp := range g.charges {
		k := sp{fp.source, fp.period}
		files := known[k]
		slices.Sort(files)
		has := map[View]uint32{}
		for _, f := range files {
			if _, ok := has[views[f]]; !ok {
				has[views[f]] = f
			}
		}
		if _, full := has[ViewFull]; full && len(has) > 1 {
			other := has[ViewActual]
			if _, ok := has[ViewActual]; !ok {
				other = has[ViewAmortized]
			}
			return nil, fmt.Errorf("%w: %s and %s both hold %s %s, one with every cost in its rows, the other as Azure's %s cost: import them apart",
				ErrInvalid, names[has[ViewFull]], names[other], g.vals[fp.source], Month(fp.period), views[other])
		}
		v := views[fp.file]
		if v == viewUnknown {
			switch len(has) {
			case 0:
				v = ViewFull
			case 1:
				for only := range has {
					v = only
				}
			default:
				return nil, fmt.Errorf("%w: %s has no row of a reservation or savings plan, so it could be a part of the actual (%s) or of the amortized (%s) export of %s %s: import the two exports from directories of their own",
					ErrAmbiguousView, names[fp.file], names[has[ViewActual]], names[has[ViewAmortized]], g.vals[fp.source], Month(fp.period))
			}
		}
		resolved[fp] = v
	}
	g.joined = slices.Clone(views)
	for fp, v := range resolved {
		if views[fp.file] == viewUnknown && (g.joined[fp.file] == viewUnknown || v < g.joined[fp.file]) {
			g.joined[fp.file] = v
		}
	}

	byPeriod := map[periodKey]*Period{}
	get := func(fp filePeriod) (*Period, View) {
		v := resolved[fp]
		pk := periodKey{fp.source, fp.period, v}
		p := byPeriod[pk]
		if p == nil {
			p = &Period{Source: g.vals[fp.source], Month: Month(fp.period), View: v}
			byPeriod[pk] = p
		}
		return p, v
	}
	for fp, n := range g.charges {
		p, _ := get(fp)
		p.Charges += n
	}
	// buckets of several files of one view merge
	type viewBucket struct {
		bucketKey
		view View
	}
	merged := map[viewBucket]*Amounts{}
	for k, i := range g.buckets {
		_, v := get(filePeriod{k.file, k.source, k.period})
		mk := viewBucket{k, v}
		mk.file = 0
		if s := merged[mk]; s != nil {
			if !s.addChecked(g.sums[i]) {
				return nil, errTooMuch
			}
		} else {
			merged[mk] = &g.sums[i]
		}
	}
	for k, sums := range merged {
		p := byPeriod[periodKey{k.source, k.period, k.view}]
		p.Rows = append(p.Rows, Row{
			Key: Key{
				Day: k.day, Provider: g.vals[k.provider], Account: g.vals[k.account], Service: g.vals[k.service],
				Region: g.vals[k.region], Category: g.vals[k.category], Currency: g.vals[k.currency],
				Team: g.vals[k.owner[oTeam]], App: g.vals[k.owner[oApp]], Env: g.vals[k.owner[oEnv]], Zone: g.vals[k.owner[oZone]],
			},
			Amounts: *sums,
		})
	}
	type ck struct {
		day      Day
		dim      Dim
		method   Method
		currency string
	}
	covs := map[periodKey]map[ck]*covSums{}
	for k, cs := range g.cov {
		_, v := get(filePeriod{k.file, k.source, k.period})
		pk := periodKey{k.source, k.period, v}
		m := covs[pk]
		if m == nil {
			m = map[ck]*covSums{}
			covs[pk] = m
		}
		for i, meth := range k.methods {
			key := ck{k.day, ownerDims[i], meth, g.vals[k.currency]}
			s := m[key]
			if s == nil {
				s = &covSums{}
				m[key] = s
			}
			s.charges += cs.charges
			if !s.addChecked(cs.Amounts) {
				return nil, errTooMuch
			}
		}
	}
	out := make([]Period, 0, len(byPeriod))
	for pk, p := range byPeriod {
		for k, s := range covs[pk] {
			p.Coverage = append(p.Coverage, Coverage{Day: k.day, Dim: k.dim, Method: k.method, Currency: k.currency,
				Charges: s.charges, Amounts: s.Amounts})
		}
		SortCoverage(p.Coverage)
		slices.SortFunc(p.Rows, func(a, b Row) int { return compareKeys(&a.Key, &b.Key) })
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Period) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Month, b.Month), cmp.Compare(a.View, b.View))
	})
	return out, nil
}

// SortCoverage orders coverage by day, dimension, method and currency.
func SortCoverage(cs []Coverage) {
	slices.SortFunc(cs, func(a, b Coverage) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(dimOrder(a.Dim), dimOrder(b.Dim)),
			cmp.Compare(methodOrder(a.Method), methodOrder(b.Method)), cmp.Compare(a.Currency, b.Currency))
	})
}

func dimOrder(d Dim) int { return slices.Index(Dims, d) }

func methodOrder(m Method) int { return slices.Index([]Method{ByTag, ByRule, ByPlatform, NotFound}, m) }

func compareKeys(a, b *Key) int {
	return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Account, b.Account),
		cmp.Compare(a.Service, b.Service), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Category, b.Category),
		cmp.Compare(a.Currency, b.Currency), cmp.Compare(a.Team, b.Team), cmp.Compare(a.App, b.App),
		cmp.Compare(a.Env, b.Env), cmp.Compare(a.Zone, b.Zone))
}
