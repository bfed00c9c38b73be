package client_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestIteratorPagesOnThroughEmptyPages lists, from a real exchange, the
// suspended agencies among 250 of which two (the first and the 201st) are
// suspended, one per page: a page stops after visiting its scan budget of
// agencies (store/page.go), so the pages between the two come back empty
// with a next page token. The iterator must go on through them and yield
// both agencies.
func TestIteratorPagesOnThroughEmptyPages(t *testing.T) {
	_, cfg := startReplicas(t, 1)
	ctx := context.Background()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []string
	for i := range 250 {
		a, err := c.Directory.CreateAgency(ctx, fmt.Sprintf("agency-%03d", i), &exchangev1.Agency{
			DisplayName: fmt.Sprintf("Agency %d", i), Kind: exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO, Countries: []string{"KH"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 || i == 200 {
			if _, err := c.Directory.SuspendAgency(ctx, a.GetName(), "test", ""); err != nil {
				t.Fatal(err)
			}
			want = append(want, a.GetName())
		}
	}
	req := &exchangev1.ListAgenciesRequest{State: exchangev1.AgencyState_AGENCY_STATE_SUSPENDED, PageSize: 1}

	// The pages as the server gives them: some empty, with a token.
	rpc := exchangev1.NewDirectoryServiceClient(c.Conn())
	page := &exchangev1.ListAgenciesRequest{State: req.State, PageSize: req.PageSize}
	empty, pages := 0, 0
	for {
		resp, err := rpc.ListAgencies(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if resp.GetNextPageToken() == "" {
			break
		}
		if len(resp.GetAgencies()) == 0 {
			empty++
		}
		page.PageToken = resp.GetNextPageToken()
	}
	if empty == 0 {
		t.Fatalf("no empty page with a next token in %d pages: the test proves nothing", pages)
	}

	got, err := client.Collect(c.Directory.Agencies(ctx, req))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range got {
		names = append(names, a.GetName())
	}
	if !slices.Equal(names, want) {
		t.Errorf("the iterator yielded %v over %d pages (%d empty), want %v", names, pages, empty, want)
	}
}
