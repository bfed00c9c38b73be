package cli

import (
	"slices"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestAgenciesCreateRequest(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantID    string
		want      *exchangev1.Agency
		wantUsage bool
	}{
		{
			name:   "minimal",
			args:   []string{"ilo", "--name", "International Labour Organization", "--kind", "un-agency"},
			wantID: "ilo",
			want: &exchangev1.Agency{
				DisplayName: "International Labour Organization",
				Kind:        exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
			},
		},
		{
			name: "every flag",
			args: []string{"agencies/ilo-kh", "--name", "ILO Cambodia", "--short-name", "ILO-KH",
				"--kind", "national-project-office", "--parent", "ilo",
				"--country", "kh", "--country", "LA,TH",
				"--niche", "prevention", "--niche", "return-and-reintegration,PSYCHOSOCIAL_COUNSELLING",
				"--coverage", "KH-12,kh", "--website", "https://www.ilo.org"},
			wantID: "ilo-kh",
			want: &exchangev1.Agency{
				DisplayName: "ILO Cambodia",
				ShortName:   "ILO-KH",
				Kind:        exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_PROJECT_OFFICE,
				Parent:      "agencies/ilo",
				Countries:   []string{"KH", "LA", "TH"},
				Niches: []exchangev1.Niche{
					exchangev1.Niche_NICHE_PREVENTION,
					exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION,
					exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING,
				},
				Coverage: []*exchangev1.LocationRef{
					{Country: "KH", Subdivision: "KH-12"},
					{Country: "KH"},
				},
				Website: "https://www.ilo.org",
			},
		},
		{name: "no id", args: []string{"--name", "X", "--kind", "donor"}, wantUsage: true},
		{name: "two ids", args: []string{"a1x", "b2y", "--name", "X", "--kind", "donor"}, wantUsage: true},
		{name: "bad id", args: []string{"ILO", "--name", "X", "--kind", "donor"}, wantUsage: true},
		{name: "no name", args: []string{"ilo", "--kind", "donor"}, wantUsage: true},
		{name: "no kind", args: []string{"ilo", "--name", "X"}, wantUsage: true},
		{name: "unknown kind", args: []string{"ilo", "--name", "X", "--kind", "ngo"}, wantUsage: true},
		{name: "unknown niche", args: []string{"ilo", "--name", "X", "--kind", "donor", "--niche", "trafficking"}, wantUsage: true},
		{name: "bad country", args: []string{"ilo", "--name", "X", "--kind", "donor", "--country", "KHM"}, wantUsage: true},
		{name: "bad coverage", args: []string{"ilo", "--name", "X", "--kind", "donor", "--coverage", "Phnom Penh"}, wantUsage: true},
		{name: "bad parent", args: []string{"ilo", "--name", "X", "--kind", "donor", "--parent", "I L O"}, wantUsage: true},
		{name: "unknown flag", args: []string{"ilo", "--name", "X", "--kind", "donor", "--colour", "red"}, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := parse(t, newAgenciesCreateCmd, tt.args...)
			if tt.wantUsage {
				if !isUsage(err) || opts != nil {
					t.Fatalf("got %v (options reached run: %v), want a usage error", err, opts != nil)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			id, agency, err := opts.request()
			if err != nil {
				t.Fatal(err)
			}
			if id != tt.wantID {
				t.Errorf("id %q, want %q", id, tt.wantID)
			}
			equalProto(t, agency, tt.want)
		})
	}
}

func TestAgenciesUpdateSendsOnlyGivenFlags(t *testing.T) {
	base := func() *exchangev1.Agency {
		return &exchangev1.Agency{
			Name:        "agencies/ilo",
			DisplayName: "ILO",
			Kind:        exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
			Countries:   []string{"KH"},
			Niches:      []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
			Website:     "https://old.example.org",
			Etag:        "7",
		}
	}
	tests := []struct {
		name      string
		args      []string
		wantPaths []string
		change    func(*exchangev1.Agency)
		wantUsage bool
	}{
		{
			name:      "website",
			args:      []string{"ilo", "--website", "https://www.ilo.org"},
			wantPaths: []string{"website"},
			change:    func(a *exchangev1.Agency) { a.Website = "https://www.ilo.org" },
		},
		{
			name:      "niches and countries",
			args:      []string{"ilo", "--niche", "migration,advocacy", "--country", "TH"},
			wantPaths: []string{"countries", "niches"},
			change: func(a *exchangev1.Agency) {
				a.Countries = []string{"TH"}
				a.Niches = []exchangev1.Niche{exchangev1.Niche_NICHE_MIGRATION, exchangev1.Niche_NICHE_ADVOCACY}
			},
		},
		{
			name:      "clear lists and parent",
			args:      []string{"ilo", "--niche", "", "--country=", "--parent", ""},
			wantPaths: []string{"parent", "countries", "niches"},
			change: func(a *exchangev1.Agency) {
				a.Countries = []string{}
				a.Niches = []exchangev1.Niche{}
			},
		},
		{name: "nothing", args: []string{"ilo"}, wantUsage: true},
		{name: "empty name", args: []string{"ilo", "--name", ""}, wantUsage: true},
		{name: "empty kind", args: []string{"ilo", "--kind", ""}, wantUsage: true},
		{name: "bad id", args: []string{"x", "--website", "https://a.org"}, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := parse(t, newAgenciesUpdateCmd, tt.args...)
			if tt.wantUsage {
				if !isUsage(err) {
					t.Fatalf("got %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := base()
			paths, err := opts.apply(got)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(paths, tt.wantPaths) {
				t.Errorf("paths %v, want %v", paths, tt.wantPaths)
			}
			want := base()
			tt.change(want)
			equalProto(t, got, want)
		})
	}
}

func TestAgenciesListRequest(t *testing.T) {
	opts, err := parse(t, newAgenciesListCmd, "--country", "kh", "--niche", "shelter", "--subdivision", "kh-12", "--state", "suspended")
	if err != nil {
		t.Fatal(err)
	}
	req, err := opts.request()
	if err != nil {
		t.Fatal(err)
	}
	equalProto(t, req, &exchangev1.ListAgenciesRequest{
		Country:     "KH",
		Niche:       exchangev1.Niche_NICHE_SHELTER,
		Subdivision: "KH-12",
		State:       exchangev1.AgencyState_AGENCY_STATE_SUSPENDED,
	})
	for _, bad := range [][]string{{"extra"}, {"--subdivision", "12"}, {"--state", "dormant"}} {
		if _, err := parse(t, newAgenciesListCmd, bad...); !isUsage(err) {
			t.Errorf("%v: got %v, want a usage error", bad, err)
		}
	}
}

func TestAgenciesStateVerbsParse(t *testing.T) {
	s, err := parse(t, newAgenciesSuspendCmd, "acme", "--reason", "membership lapsed")
	if err != nil || s.ID != "acme" || s.Reason != "membership lapsed" {
		t.Errorf("suspend: %+v, %v", s, err)
	}
	if _, err := parse(t, newAgenciesSuspendCmd, "acme"); !isUsage(err) {
		t.Errorf("suspend without --reason: %v", err)
	}
	r, err := parse(t, newAgenciesReactivateCmd, "agencies/acme")
	if err != nil || r.ID != "agencies/acme" {
		t.Errorf("reactivate: %+v, %v", r, err)
	}
	g, err := parse(t, newAgenciesGetCmd, "ilo")
	if err != nil || g.ID != "ilo" {
		t.Errorf("get: %+v, %v", g, err)
	}
}
