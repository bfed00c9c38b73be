package server

import (
	"context"
	"errors"
	"io"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func (c as) datasets() exchangev1.DatasetServiceClient {
	return exchangev1.NewDatasetServiceClient(c.conn)
}

func ptr[T any](v T) *T { return &v }

// returnsDataset is a monthly dataset of returned victims assisted, by
// province, sex and age group, owned by the first agency.
func returnsDataset(contributors ...string) *exchangev1.Dataset {
	return &exchangev1.Dataset{
		Title:        "Returned victims assisted",
		Contributors: contributors,
		PeriodType:   exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE,
			LocationHxl:   "#adm1+code",
			Categories: []*exchangev1.Category{
				{Key: "sex", Values: []string{"female", "male"}, Required: true, Hxl: "#sex"},
				{Key: "age_group", Values: []string{"0-17", "18+"}},
			},
			Measures: []*exchangev1.Measure{
				{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Required: true, Min: ptr(0.0), Max: ptr(100000.0), Hxl: "#affected"},
				{Key: "spend", Type: exchangev1.MeasureType_MEASURE_TYPE_DECIMAL, Min: ptr(0.0)},
				{Key: "note", Type: exchangev1.MeasureType_MEASURE_TYPE_TEXT, MaxLength: 20},
				{Key: "reported_on", Type: exchangev1.MeasureType_MEASURE_TYPE_DATE},
				{Key: "verified", Type: exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN},
				{Key: "channel", Type: exchangev1.MeasureType_MEASURE_TYPE_CODE, Codes: []string{"hotline", "outreach", "police"}},
			},
		},
		ExpectedLocations: []string{"KH-12", "KH-2"},
	}
}

func intValue(n int64) *exchangev1.Value {
	return &exchangev1.Value{Kind: &exchangev1.Value_IntValue{IntValue: n}}
}

func row(period, location, sex string, cases int64) *exchangev1.Row {
	return &exchangev1.Row{Period: period, Location: location, Categories: map[string]string{"sex": sex},
		Values: map[string]*exchangev1.Value{"cases": intValue(cases)}}
}

func write(t testing.TB, c as, dataset string, rows ...*exchangev1.Row) *exchangev1.WriteDatasetRowsResponse {
	t.Helper()
	req := &exchangev1.WriteDatasetRowsRequest{Dataset: dataset}
	for _, r := range rows {
		req.Writes = append(req.Writes, &exchangev1.RowWrite{Row: r})
	}
	resp, err := c.datasets().WriteDatasetRows(context.Background(), req)
	if err != nil {
		t.Fatalf("write rows: %v", err)
	}
	return resp
}

// pullAll pulls every message of a pull and returns the rows.
func pullAll(t testing.TB, c as, req *exchangev1.PullDatasetRowsRequest) ([]*exchangev1.Row, int64) {
	t.Helper()
	stream, err := c.datasets().PullDatasetRows(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var rows []*exchangev1.Row
	var rev int64
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return rows, rev
			}
			t.Fatalf("pull: %v", err)
		}
		rows = append(rows, msg.GetRows()...)
		rev = msg.GetRevision()
	}
}
