package cost

import (
	"testing"

	"github.com/socle-dev/socle/internal/spec"
)

func allocTestRepo() *spec.Repo {
	return &spec.Repo{
		Platform: spec.Platform{
			Zones: []spec.Zone{
				{Name: "apps-prod", Provider: "aws", Account: "111"},
				{Name: "shared", Provider: "gcp", Account: "hub-project"},
				{Name: "sandbox", Account: "sandbox-sub"},
			},
			Environments: []spec.Environment{{Name: "dev", Zone: "nonprod"}, {Name: "qa", Zone: "nonprod"}, {Name: "prod", Zone: "apps-prod"}},
			Costs: &spec.Costs{
				Tags:    &spec.TagKeys{Team: []string{"team", "owner"}, Environment: []string{"env"}},
				Aliases: map[string]map[string]string{"environment": {"production": "prod"}, "team": {"bk": "bookings"}},
				Rules: []spec.AllocationRule{
					{Name: "network", Match: spec.AllocationMatch{ResourceGroup: "net-*", Provider: "azure"}, Set: spec.Allocation{Team: "platform", App: "network"}},
					{Name: "tagged-cc", Match: spec.AllocationMatch{Tags: map[string]string{"CostCenter": "12*"}}, Set: spec.Allocation{Team: "finance", Environment: "prod"}},
					{Name: "data", Match: spec.AllocationMatch{Project: "data-?"}, Set: spec.Allocation{Team: "data"}},
					{Name: "never", Match: spec.AllocationMatch{Project: "data-?"}, Set: spec.Allocation{App: "second-rule-never-applies"}},
					{Name: "by-sub", Match: spec.AllocationMatch{Subscription: "Sandbox*"}, Set: spec.Allocation{Zone: "sandbox"}},
				},
			},
		},
		Teams: spec.Teams{Teams: []spec.Team{{Name: "bookings"}}},
		Apps:  []*spec.App{{Name: "booking-api", Config: spec.AppConfig{Owner: "bookings"}}},
	}
}

func TestAllocate(t *testing.T) {
	a := NewAllocator(allocTestRepo())
	u := Unallocated
	for _, tc := range []struct {
		name    string
		f       facts
		owner   [nOwner]string
		methods [nOwner]Method
	}{
		{"tags, aliases, case, and the app's owner and the environment's zone",
			facts{provider: "AWS", account: "999", tags: []tag{{"App", "Booking-API"}, {"env", "Production"}}},
			[nOwner]string{"bookings", "booking-api", "prod", "apps-prod"}, [nOwner]Method{ByPlatform, ByTag, ByTag, ByPlatform}},
		{"first tag key found wins; AWS user_ prefix",
			facts{tags: []tag{{"owner", "second"}, {"user_team", "bk"}}},
			[nOwner]string{"bookings", u, u, u}, [nOwner]Method{ByTag, NotFound, NotFound, NotFound}},
		{"a rule by resource group and provider",
			facts{provider: "Microsoft", resourceGroup: "NET-hub", subscription: "s1", accountName: "prod-sub"},
			[nOwner]string{"platform", "network", u, u}, [nOwner]Method{ByRule, ByRule, NotFound, NotFound}},
		{"the provider must match too",
			facts{provider: "AWS", resourceGroup: "net-hub"}, [nOwner]string{u, u, u, u}, [nOwner]Method{NotFound, NotFound, NotFound, NotFound}},
		{"a rule sets only what tags left unknown; only the first matching rule applies",
			facts{project: "data-1", tags: []tag{{"team", "ml"}}},
			[nOwner]string{"ml", u, u, u}, [nOwner]Method{ByTag, NotFound, NotFound, NotFound}},
		{"a rule by tag value glob, its environment gives the zone",
			facts{tags: []tag{{"costcenter", "1234"}}},
			[nOwner]string{"finance", u, "prod", "apps-prod"}, [nOwner]Method{ByRule, NotFound, ByRule, ByPlatform}},
		{"the zone of an account, and the environment of a one-environment zone",
			facts{provider: "AWS", account: "111"},
			[nOwner]string{u, u, "prod", "apps-prod"}, [nOwner]Method{NotFound, NotFound, ByPlatform, ByPlatform}},
		{"a zone's provider must match its account",
			facts{provider: "AWS", account: "hub-project"}, [nOwner]string{u, u, u, u}, [nOwner]Method{NotFound, NotFound, NotFound, NotFound}},
		{"a zone without a provider matches any; by account name",
			facts{provider: "Microsoft", account: "guid", accountName: "sandbox-sub"},
			[nOwner]string{u, u, u, "sandbox"}, [nOwner]Method{NotFound, NotFound, NotFound, ByPlatform}},
		{"a subscription rule matches the subscription's name",
			facts{provider: "Microsoft", subscription: "guid-2", accountName: "SANDBOX-2"},
			[nOwner]string{u, u, u, "sandbox"}, [nOwner]Method{NotFound, NotFound, NotFound, ByRule}},
		{"an environment with several in its zone gives the zone only",
			facts{tags: []tag{{"env", "dev"}}},
			[nOwner]string{u, u, "dev", "nonprod"}, [nOwner]Method{NotFound, NotFound, ByTag, ByPlatform}},
		{"unknown values are kept as written",
			facts{tags: []tag{{"team", "Growth Hackers"}, {"env", ""}}},
			[nOwner]string{"Growth Hackers", u, u, u}, [nOwner]Method{ByTag, NotFound, NotFound, NotFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := a.allocate(&tc.f)
			got := all[0]
			if len(all) != 1 || got.Owner != tc.owner || got.Method != tc.methods || got.Weight != 0 {
				t.Errorf("got %v %v, want %v %v", got.Owner, got.Method, tc.owner, tc.methods)
			}
		})
	}
}

// TestAllocateSplit: a rule that splits gives one allocation per share,
// each with the rule's set, its own owners and what the platform derives
// from them; tags still come first.
func TestAllocateSplit(t *testing.T) {
	repo := allocTestRepo()
	repo.Platform.Costs.Rules = []spec.AllocationRule{{Name: "shared-cluster", Match: spec.AllocationMatch{Project: "hub-*"},
		Set:   spec.Allocation{App: "cluster"},
		Split: []spec.AllocationShare{{Team: "bookings", Environment: "prod", Weight: 3}, {Team: "data", Weight: 1}}}}
	a := NewAllocator(repo)
	u := Unallocated
	got := a.allocate(&facts{project: "hub-1"})
	want := []Allocation{
		{Owner: [nOwner]string{"bookings", "cluster", "prod", "apps-prod"}, Method: [nOwner]Method{ByRule, ByRule, ByRule, ByPlatform}, Weight: 3},
		{Owner: [nOwner]string{"data", "cluster", u, u}, Method: [nOwner]Method{ByRule, ByRule, NotFound, NotFound}, Weight: 1},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("split: %+v, want %+v", got, want)
	}
	got = a.allocate(&facts{project: "hub-1", tags: []tag{{"team", "ml"}}})
	if len(got) != 2 || got[0].Owner[oTeam] != "ml" || got[1].Owner[oTeam] != "ml" || got[1].Method[oTeam] != ByTag {
		t.Errorf("a tagged team beats the shares' teams: %+v", got)
	}
}

func TestDefaultTagKeys(t *testing.T) {
	a := NewAllocator(nil)
	got := a.allocate(&facts{tags: []tag{{"application", "web"}, {"environment", "dev"}, {"Owner", "t1"}, {"zone", "z"}}})[0]
	if got.Owner != [nOwner]string{"t1", "web", "dev", "z"} {
		t.Errorf("defaults: %v", got.Owner)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*b*", "abc", true}, {"a*b*c", "axxbyyc", true}, {"a*b", "aXbXc", false}, {"", "", true}, {"", "a", false},
		{"net-*", "net-hub", true}, {"**", "x", true},
	} {
		if got := glob(tc.p, tc.s); got != tc.ok {
			t.Errorf("glob(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}
