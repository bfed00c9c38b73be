// Command seedrows stores rows for the e2e pull test straight into a
// database file, as the benchmarks seed theirs. It is built without the
// race detector with the other binaries the e2e tests run, so that seeding
// a million rows takes seconds even when the tests run under -race.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

func main() {
	db := flag.String("db", "", "database file to create and fill")
	rows := flag.Int("rows", 0, "rows to store")
	flag.Parse()
	if *db == "" || *rows < 1 {
		fmt.Fprintln(os.Stderr, "usage: seedrows --db FILE --rows N")
		os.Exit(2)
	}
	if err := seed(*db, *rows); err != nil {
		fmt.Fprintln(os.Stderr, "seedrows:", err)
		os.Exit(1)
	}
}

// seed stores n rows in dataset "returns" of agency ilo, contributed by
// iom, 20,000 per transaction: 12 provinces × 2 sexes × 2 age groups per
// month, months running back as far as n needs.
func seed(db string, n int) error {
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		return err
	}
	st, err := store.Open(db, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	for _, id := range []string{"ilo", "iom"} {
		if _, err := st.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: exchangev1.DirectoryService_CreateAgency_FullMethodName}, id, &exchangev1.Agency{
			DisplayName: "Agency " + id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY, Countries: []string{"KH"},
		}); err != nil {
			return err
		}
	}
	zero := 0.0
	d := &exchangev1.Dataset{
		Title:        "Returned victims assisted",
		Contributors: []string{"agencies/iom"},
		PeriodType:   exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE,
			Categories: []*exchangev1.Category{
				{Key: "sex", Values: []string{"female", "male"}, Required: true},
				{Key: "age_group", Values: []string{"0-17", "18+"}},
			},
			Measures: []*exchangev1.Measure{
				{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Required: true, Min: &zero},
				{Key: "spend", Type: exchangev1.MeasureType_MEASURE_TYPE_DECIMAL, Min: &zero},
				{Key: "channel", Type: exchangev1.MeasureType_MEASURE_TYPE_CODE, Codes: []string{"hotline", "outreach", "police"}},
			},
		},
	}
	if _, err := st.CreateDataset(ctx, store.Op{Actor: "agencies/ilo", Method: exchangev1.DatasetService_CreateDataset_FullMethodName}, "returns", d); err != nil {
		return err
	}
	provinces := []string{"KH-1", "KH-2", "KH-3", "KH-4", "KH-5", "KH-6", "KH-7", "KH-8", "KH-9", "KH-10", "KH-11", "KH-12"}
	perMonth := len(provinces) * 4
	const chunk = 20_000
	for i := 0; i < n; i += chunk {
		writes := make([]store.RowWrite, 0, chunk)
		for j := i; j < min(n, i+chunk); j++ {
			month := j / perMonth
			writes = append(writes, store.RowWrite{Row: &exchangev1.Row{
				Period:     fmt.Sprintf("%04d-%02d", 1000+month/12, 1+month%12),
				Location:   provinces[j/4%len(provinces)],
				Categories: map[string]string{"sex": []string{"female", "male"}[j%2], "age_group": []string{"0-17", "18+"}[j/2%2]},
				Values: map[string]*exchangev1.Value{
					"cases":   {Kind: &exchangev1.Value_IntValue{IntValue: int64(j % 97)}},
					"spend":   {Kind: &exchangev1.Value_DecimalValue{DecimalValue: float64(j%1000) * 12.5}},
					"channel": {Kind: &exchangev1.Value_CodeValue{CodeValue: []string{"hotline", "outreach", "police"}[j%3]}},
				},
			}})
		}
		errs, _, err := st.WriteDatasetRows(ctx, store.Op{Actor: "agencies/iom", Method: exchangev1.DatasetService_WriteDatasetRows_FullMethodName},
			"agencies/ilo/datasets/returns", func(*exchangev1.Dataset) error { return nil }, writes)
		if err != nil {
			return err
		}
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
	}
	return nil
}
