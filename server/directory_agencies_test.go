package server

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestAgencyCanUpdateOnlyItsOwnRecord(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	x.createAgency(sec, "ilo")
	unicef := x.createAgency(sec, "unicef")
	ilo := x.asAgency("ilo")

	changed := proto.Clone(unicef).(*exchangev1.Agency)
	changed.DisplayName = "Renamed by ILO"
	_, err := ilo.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: changed})
	wantCode(t, err, codes.PermissionDenied)
	got, _ := x.store.GetAgency(ctx, "agencies/unicef")
	if got.GetDisplayName() != unicef.GetDisplayName() {
		t.Fatal("a refused update changed the record")
	}

	changed.DisplayName = "United Nations Children's Fund"
	resp, err := sec.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: changed, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}})
	if err != nil {
		t.Fatalf("secretariat update: %v", err)
	}
	if resp.GetAgency().GetDisplayName() != "United Nations Children's Fund" || resp.GetAgency().GetEtag() == unicef.GetEtag() {
		t.Fatalf("update not applied: %v", resp.GetAgency())
	}
}

func TestAgencyUpdatesItsOwnRecordButNotKindOrParent(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	mine := x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")

	mine.Niches = []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_RESEARCH_AND_DATA}
	mine.Kind = exchangev1.AgencyKind_AGENCY_KIND_DONOR
	resp, err := ilo.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: mine})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.GetAgency().GetNiches(), mine.Niches) {
		t.Errorf("niches not updated: %v", resp.GetAgency().GetNiches())
	}
	if resp.GetAgency().GetKind() != exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY {
		t.Errorf("an empty mask let the agency change its kind")
	}
	_, err = ilo.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: resp.GetAgency(), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"kind"}}})
	wantCode(t, err, codes.PermissionDenied)
}

func TestUpdateWithStaleEtagIsAborted(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	a := x.createAgency(sec, "ilo")
	first := proto.Clone(a).(*exchangev1.Agency)
	first.ShortName = "ILO"
	if _, err := sec.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: first}); err != nil {
		t.Fatal(err)
	}
	second := proto.Clone(a).(*exchangev1.Agency) // still the old etag
	second.ShortName = "OIT"
	_, err := sec.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: second})
	st := wantCode(t, err, codes.Aborted)
	if reason(st) != "ETAG_MISMATCH" {
		t.Errorf("reason %q", reason(st))
	}
	got, _ := x.store.GetAgency(ctx, "agencies/ilo")
	if got.GetShortName() != "ILO" {
		t.Errorf("stale update applied: %q", got.GetShortName())
	}
}

func TestInvalidAgencyRequestsNameTheFieldAndChangeNothing(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	x.createAgency(sec, "ilo")
	revision := x.store.Revision()
	valid := func() *exchangev1.CreateAgencyRequest {
		return &exchangev1.CreateAgencyRequest{AgencyId: "iom", Agency: &exchangev1.Agency{
			DisplayName: "IOM", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
		}}
	}
	cases := []struct {
		name   string
		mutate func(*exchangev1.CreateAgencyRequest)
		field  string
	}{
		{"bad id", func(r *exchangev1.CreateAgencyRequest) { r.AgencyId = "IOM!" }, "agency_id"},
		{"missing name", func(r *exchangev1.CreateAgencyRequest) { r.Agency.DisplayName = "" }, "agency.display_name"},
		{"kind unset", func(r *exchangev1.CreateAgencyRequest) { r.Agency.Kind = 0 }, "agency.kind"},
		{"kind out of range", func(r *exchangev1.CreateAgencyRequest) { r.Agency.Kind = 99 }, "agency.kind"},
		{"bad country", func(r *exchangev1.CreateAgencyRequest) { r.Agency.Countries = []string{"Cambodia"} }, "agency.countries[0]"},
		{"niche unset", func(r *exchangev1.CreateAgencyRequest) { r.Agency.Niches = []exchangev1.Niche{0} }, "agency.niches[0]"},
		{"province of another country", func(r *exchangev1.CreateAgencyRequest) {
			r.Agency.Coverage = []*exchangev1.LocationRef{{Country: "KH", Subdivision: "TH-10"}}
		}, "agency.coverage[0]"},
		{"unknown province", func(r *exchangev1.CreateAgencyRequest) {
			r.Agency.Coverage = []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-99"}}
		}, "agency.coverage[0].subdivision"},
		{"unknown parent", func(r *exchangev1.CreateAgencyRequest) { r.Agency.Parent = "agencies/nobody" }, "agency.parent"},
		{"website not https", func(r *exchangev1.CreateAgencyRequest) { r.Agency.Website = "http://iom.int" }, "agency.website"},
		{"bad request id", func(r *exchangev1.CreateAgencyRequest) { r.RequestId = "has space" }, "request_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := valid()
			c.mutate(req)
			_, err := sec.dir.CreateAgency(ctx, req)
			st := wantCode(t, err, codes.InvalidArgument)
			if fields := violatedFields(st); !slices.Contains(fields, c.field) {
				t.Errorf("violations %v do not name %s", fields, c.field)
			}
		})
	}
	if x.store.Revision() != revision {
		t.Fatalf("invalid requests changed the store: revision %d → %d", revision, x.store.Revision())
	}
	if _, err := sec.dir.CreateAgency(ctx, valid()); err != nil {
		t.Fatalf("the valid request fails: %v", err)
	}
}

func TestCreateAgencyIsIdempotentAndValidateOnlyStoresNothing(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	req := &exchangev1.CreateAgencyRequest{AgencyId: "ilo", RequestId: "req-1", Agency: &exchangev1.Agency{
		DisplayName: "ILO", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
	}}
	dry := proto.Clone(req).(*exchangev1.CreateAgencyRequest)
	dry.ValidateOnly = true
	before := x.store.Revision()
	if _, err := sec.dir.CreateAgency(ctx, dry); err != nil {
		t.Fatal(err)
	}
	if x.store.Revision() != before {
		t.Fatal("validate_only stored something")
	}
	first, err := sec.dir.CreateAgency(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rev := x.store.Revision()
	again, err := sec.dir.CreateAgency(ctx, req)
	if err != nil {
		t.Fatalf("retry with the same request_id: %v", err)
	}
	if !proto.Equal(first, again) || x.store.Revision() != rev {
		t.Fatal("a retry created again")
	}
	req.RequestId = "req-2"
	_, err = sec.dir.CreateAgency(ctx, req)
	wantCode(t, err, codes.AlreadyExists)
}

func TestListAgenciesFiltersAndPages(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	for _, id := range []string{"aaa", "bbb", "ccc", "ddd", "eee"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PREVENTION)
	}
	x.createAgency(sec, "fff", exchangev1.Niche_NICHE_SHELTER)

	var names []string
	token := ""
	for pages := 0; ; pages++ {
		resp, err := sec.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{PageSize: 2, PageToken: token, Niche: exchangev1.Niche_NICHE_PREVENTION})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range resp.GetAgencies() {
			names = append(names, a.GetName())
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	want := []string{"agencies/aaa", "agencies/bbb", "agencies/ccc", "agencies/ddd", "agencies/eee"}
	if !slices.Equal(names, want) {
		t.Fatalf("got %v, want %v", names, want)
	}
	first, _ := sec.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{PageSize: 2})
	_, err := sec.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{PageSize: 2, PageToken: first.GetNextPageToken(), Niche: exchangev1.Niche_NICHE_SHELTER})
	st := wantCode(t, err, codes.InvalidArgument)
	if !slices.Contains(violatedFields(st), "page_token") {
		t.Errorf("violations %v do not name page_token", violatedFields(st))
	}
}

func TestCountriesMustBeISOCodes(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	for field, a := range map[string]*exchangev1.Agency{
		"agency.countries[1]":        {DisplayName: "Acme", Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR, Countries: []string{"KH", "XX"}},
		"agency.coverage[0].country": {DisplayName: "Acme", Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR, Coverage: []*exchangev1.LocationRef{{Country: "ZZ"}}},
	} {
		_, err := sec.dir.CreateAgency(context.Background(), &exchangev1.CreateAgencyRequest{AgencyId: "acme", Agency: a})
		if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != field {
			t.Errorf("violations %v, want %s", f, field)
		}
	}
	if _, err := sec.dir.CreateAgency(context.Background(), &exchangev1.CreateAgencyRequest{AgencyId: "acme", Agency: &exchangev1.Agency{
		DisplayName: "Acme", Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR, Countries: []string{"CH", "US"},
	}}); err != nil {
		t.Fatalf("a donor working from outside the sub-region: %v", err)
	}
}
