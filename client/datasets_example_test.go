package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// IOM reports the people it received in Phnom Penh in March 2026. Each
// row is checked on its own; a rejected row names the field at fault.
func ExampleDatasetClient_Write() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "iom.crt", KeyFile: "iom.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	count := func(n int64) *exchangev1.Value {
		return &exchangev1.Value{Kind: &exchangev1.Value_IntValue{IntValue: n}}
	}
	resp, err := c.Datasets.Write(ctx, client.DatasetName("ilo", "returns"), []*exchangev1.RowWrite{
		{Row: &exchangev1.Row{
			Period: "2026-03", Location: "KH-12",
			Categories: map[string]string{"sex": "female", "age_group": "18-24"},
			Values:     map[string]*exchangev1.Value{"returned": count(6), "assisted": count(6)},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, res := range resp.GetResults() {
		for _, v := range res.GetViolations() {
			fmt.Printf("row %d: %s: %s\n", res.GetIndex(), v.GetField(), v.GetDescription())
		}
	}
	fmt.Printf("%d rows written at revision %d\n", resp.GetAccepted(), resp.GetRevision())
}

// A national office keeps a copy of the dataset up to date: the first
// pull takes every row, the next ones only what changed since, deletions
// included.
func ExampleDatasetClient_Pull() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "npo.crt", KeyFile: "npo.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	copyOf := map[string]*exchangev1.Row{}
	var since int64 // kept between runs
	req := &exchangev1.PullDatasetRowsRequest{Dataset: client.DatasetName("ilo", "returns"), SinceRevision: since}
	var next int64
	err = c.Datasets.Pull(ctx, req, func(m *exchangev1.PullDatasetRowsResponse) error {
		next = m.GetRevision()
		for _, r := range m.GetRows() {
			key := fmt.Sprint(r.GetContributor(), r.GetPeriod(), r.GetLocation(), r.GetCategories())
			if r.GetDeleted() {
				delete(copyOf, key)
			} else {
				copyOf[key] = r
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	since = next
	fmt.Printf("%d rows; pull since revision %d next time\n", len(copyOf), since)
}
