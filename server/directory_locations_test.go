package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestLocationsListEveryProvinceOnce(t *testing.T) {
	x := startExchange(t)
	ilo := func() as { sec := x.asSecretariat(); x.createAgency(sec, "ilo"); return x.asAgency("ilo") }()
	ctx := context.Background()
	got, err := ilo.dir.GetLocation(ctx, &exchangev1.GetLocationRequest{Name: "locations/KH-12"})
	if err != nil || got.GetLocation().GetCountry() != "KH" || got.GetLocation().GetDisplayName() == "" {
		t.Fatalf("KH-12: %v %v", got, err)
	}
	_, err = ilo.dir.GetLocation(ctx, &exchangev1.GetLocationRequest{Name: "locations/KH-99"})
	wantCode(t, err, codes.NotFound)

	seen := map[string]bool{}
	token := ""
	for {
		resp, err := ilo.dir.ListLocations(ctx, &exchangev1.ListLocationsRequest{Country: "TH", PageSize: 10, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range resp.GetLocations() {
			if seen[l.GetCode()] || l.GetCountry() != "TH" {
				t.Fatalf("%s repeated or of another country", l.GetCode())
			}
			seen[l.GetCode()] = true
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(seen) != 78 {
		t.Fatalf("Thailand has %d locations, want 78 (76 provinces, Bangkok, Pattaya)", len(seen))
	}
	_, err = ilo.dir.ListLocations(ctx, &exchangev1.ListLocationsRequest{Country: "KH", PageToken: "garbage"})
	wantCode(t, err, codes.InvalidArgument)
}
