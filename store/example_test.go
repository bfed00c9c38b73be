package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// A create retried with the same Op returns the first result; an update
// with a stale etag is refused.
func Example() {
	dir, err := os.MkdirTemp("", "exchange")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(filepath.Join(dir, "exchange.db"), store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	create := store.Op{
		Actor:     "secretariat",
		Method:    "/alltogether.exchange.v1.DirectoryService/CreateAgency",
		RequestID: "6b1e0f4c-2d6a-4f3e-9a57-0c5b8d2e7a10",
	}
	iom := &exchangev1.Agency{DisplayName: "IOM", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY, Countries: []string{"KH", "TH"}}
	first, err := s.CreateAgency(ctx, create, "iom", iom)
	if err != nil {
		log.Fatal(err)
	}
	rev := s.Revision() // the first create's commit time in microseconds
	retry, err := s.CreateAgency(ctx, create, "iom", iom)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(first.GetName(), first.GetState(), retry.GetEtag() == first.GetEtag(), s.Revision() == rev)

	update := store.Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.DirectoryService/UpdateAgency"}
	_, err = s.UpdateAgency(ctx, update, "agencies/iom", "0123456789abcdef", func(a *exchangev1.Agency) error {
		a.ShortName = "IOM"
		return nil
	})
	fmt.Println(store.KindOf(err))

	page, next, err := s.ListAgencies(ctx, store.AgencyFilter{Country: "TH"}, store.Page{Size: 10})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(page), next == "")
	// Output:
	// agencies/iom AGENCY_STATE_ACTIVE true true
	// etag mismatch
	// 1 true
}
