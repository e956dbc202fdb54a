package spec

import "testing"

func TestProvisionerFor(t *testing.T) {
	r := &Repo{Platform: Platform{Environments: []Environment{
		{Name: "dev", Zone: "nonprod", Runtime: Runtime{Type: RuntimeLocal}},
		{Name: "prod", Zone: "prod", Runtime: Runtime{Type: "kubernetes"}},
	}}}
	r.Provisioners = []*Provisioner{
		{Name: "any-postgres", Match: ProvisionerMatch{Type: "postgres"}, Driver: DriverStatic},
		{Name: "prod-zone", Match: ProvisionerMatch{Type: "postgres", Zones: []string{"prod"}}, Driver: DriverStack},
		{Name: "prod-env", Match: ProvisionerMatch{Type: "postgres", Environments: []string{"prod"}}, Driver: DriverStack},
		{Name: "reporting", Match: ProvisionerMatch{Type: "postgres", Class: "large"}, Driver: DriverStatic},
		{Name: "shared-ledger", Match: ProvisionerMatch{Type: "postgres", ID: "ledger", Environments: []string{"dev"}}, Driver: DriverStatic},
	}
	for _, tc := range []struct{ typ, class, id, env, want string }{
		{"postgres", "", "", "dev", "any-postgres"},
		{"postgres", "", "", "prod", "prod-env"}, // the environment over the zone
		{"postgres", "large", "", "prod", "reporting"},
		{"postgres", "large", "ledger", "dev", "shared-ledger"},
		{"postgres", "large", "ledger", "prod", "reporting"},
		{"redis", "", "", "dev", "builtin/redis"}, // no provisioner of the platform: the built-in
		{"redis", "", "", "prod", ""},             // the built-in serves local runtimes only
		{"postgres", "", "", "nowhere", ""},
	} {
		got := ""
		if p := r.ProvisionerFor(tc.typ, tc.class, tc.id, tc.env); p != nil {
			got = p.Name
		}
		if got != tc.want {
			t.Errorf("ProvisionerFor(%q, %q, %q, %q) = %q, want %q", tc.typ, tc.class, tc.id, tc.env, got, tc.want)
		}
	}
	if p := r.ProvisionerFor("postgres", "", "", "dev"); p.Builtin() {
		t.Error("a platform's provisioner reported built-in")
	}
	if o := BuiltinProvisioners[0].Output("password"); o == nil || !o.Secret {
		t.Errorf("builtin postgres password output = %+v, want a secret output", o)
	}
}
