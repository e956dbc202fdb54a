package cost

import (
	"cmp"
	"math"
	"slices"
)

// ksum is a Neumaier compensated sum: adding a million small costs to a
// large one loses nothing that float64 can hold, so totals match an exact
// decimal computation far below a billionth.
type ksum struct{ s, c float64 }

func (k *ksum) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k ksum) value() float64 { return k.s + k.c }

type ksums struct{ billed, effective, list ksum }

func (k *ksums) add(a Amounts) {
	k.billed.add(a.Billed)
	k.effective.add(a.Effective)
	k.list.add(a.List)
}

func (k *ksums) amounts() Amounts {
	return Amounts{Billed: k.billed.value(), Effective: k.effective.value(), List: k.list.value()}
}

// bucketKey identifies a daily aggregate while reading: every string is an
// index into the aggregator's dictionary, so the key hashes as 56 bytes.
type bucketKey struct {
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

// covKey identifies one allocation outcome of a (source, period, currency).
type covKey struct {
	source, period, currency uint32
	methods                  [nOwner]Method
}

type covSums struct {
	charges int64
	ksums
}

// periodKey is a (source, billing period).
type periodKey struct{ source, period uint32 }

// allocated is an allocation with its owners interned.
type allocated struct {
	owner   [nOwner]uint32
	methods [nOwner]Method
}

// aggregator folds charges into daily buckets. Its memory grows with the
// number of distinct buckets and values, never with the number of charges.
type aggregator struct {
	alloc *Allocator

	ids  map[string]uint32
	vals []string

	// memo caches allocations by everything allocation looks at: most rows
	// of an export repeat a few thousand combinations of tags and accounts.
	memo    map[string]allocated
	memoKey []byte
	tagBuf  []tag

	sources map[[2]uint32]uint32 // (provider, billing account) → source name
	buckets map[bucketKey]int32
	sums    []ksums
	cov     map[covKey]*covSums
	charges map[periodKey]int64
}

// maxMemo bounds the allocation cache; past it the cache starts over.
const maxMemo = 1 << 16

func newAggregator(a *Allocator) *aggregator {
	g := &aggregator{
		alloc:   a,
		ids:     map[string]uint32{},
		memo:    map[string]allocated{},
		sources: map[[2]uint32]uint32{},
		buckets: map[bucketKey]int32{},
		cov:     map[covKey]*covSums{},
		charges: map[periodKey]int64{},
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

// add folds one charge in. It fails only on tags that do not parse.
func (g *aggregator) add(c *charge) error {
	al, err := g.allocation(c)
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
		source:   src,
		period:   period,
		day:      c.day,
		provider: prov,
		account:  g.intern(c.account),
		service:  g.intern(c.service),
		region:   g.intern(c.region),
		category: g.intern(c.category),
		currency: g.intern(c.currency),
		owner:    al.owner,
	}
	i, ok := g.buckets[k]
	if !ok {
		i = int32(len(g.sums))
		g.buckets[k] = i
		g.sums = append(g.sums, ksums{})
	}
	g.sums[i].add(c.amounts)

	ck := covKey{source: src, period: period, currency: k.currency, methods: al.methods}
	cs := g.cov[ck]
	if cs == nil {
		cs = &covSums{}
		g.cov[ck] = cs
	}
	cs.charges++
	cs.add(c.amounts)
	g.charges[periodKey{src, period}]++
	return nil
}

// allocation returns the interned owners of a charge, from the cache when
// the same facts were seen before.
func (g *aggregator) allocation(c *charge) (allocated, error) {
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
		return allocated{}, err
	}
	g.tagBuf = tags
	f := facts{
		provider: string(c.provider), account: string(c.account), accountName: string(c.accountName),
		billingAccount: string(c.billingAccount), subscription: string(c.subscription),
		resourceGroup: string(c.resourceGroup), project: string(c.project), service: string(c.service),
		region: string(c.region), tags: tags,
	}
	a := g.alloc.allocate(&f)
	var al allocated
	for i := range nOwner {
		al.owner[i] = g.internString(a.Owner[i])
		al.methods[i] = a.Method[i]
	}
	if len(g.memo) >= maxMemo {
		clear(g.memo)
	}
	g.memo[string(k)] = al
	return al, nil
}

// periods returns what was read, sorted by source and period, rows sorted
// by key.
func (g *aggregator) periods() []Period {
	byPeriod := map[periodKey]*Period{}
	get := func(src, period uint32) *Period {
		pk := periodKey{src, period}
		p := byPeriod[pk]
		if p == nil {
			p = &Period{Source: g.vals[src], Month: Month(period), Charges: g.charges[pk]}
			byPeriod[pk] = p
		}
		return p
	}
	for k, i := range g.buckets {
		p := get(k.source, k.period)
		p.Rows = append(p.Rows, Row{
			Key: Key{
				Day: k.day, Provider: g.vals[k.provider], Account: g.vals[k.account], Service: g.vals[k.service],
				Region: g.vals[k.region], Category: g.vals[k.category], Currency: g.vals[k.currency],
				Team: g.vals[k.owner[oTeam]], App: g.vals[k.owner[oApp]], Env: g.vals[k.owner[oEnv]], Zone: g.vals[k.owner[oZone]],
			},
			Amounts: g.sums[i].amounts(),
		})
	}
	type ck struct {
		dim      Dim
		method   Method
		currency string
	}
	covs := map[periodKey]map[ck]*covSums{}
	for k, cs := range g.cov {
		pk := periodKey{k.source, k.period}
		get(k.source, k.period)
		m := covs[pk]
		if m == nil {
			m = map[ck]*covSums{}
			covs[pk] = m
		}
		for i, meth := range k.methods {
			key := ck{ownerDims[i], meth, g.vals[k.currency]}
			s := m[key]
			if s == nil {
				s = &covSums{}
				m[key] = s
			}
			s.charges += cs.charges
			s.billed.add(cs.billed.value())
			s.effective.add(cs.effective.value())
			s.list.add(cs.list.value())
		}
	}
	out := make([]Period, 0, len(byPeriod))
	for pk, p := range byPeriod {
		for k, s := range covs[pk] {
			p.Coverage = append(p.Coverage, Coverage{Dim: k.dim, Method: k.method, Currency: k.currency, Charges: s.charges, Amounts: s.amounts()})
		}
		SortCoverage(p.Coverage)
		slices.SortFunc(p.Rows, func(a, b Row) int { return compareKeys(&a.Key, &b.Key) })
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Period) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Month, b.Month))
	})
	return out
}

// SortCoverage orders coverage by dimension, method and currency.
func SortCoverage(cs []Coverage) {
	slices.SortFunc(cs, func(a, b Coverage) int {
		return cmp.Or(cmp.Compare(dimOrder(a.Dim), dimOrder(b.Dim)), cmp.Compare(methodOrder(a.Method), methodOrder(b.Method)),
			cmp.Compare(a.Currency, b.Currency))
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
