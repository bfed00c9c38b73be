package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Issue 19, item 3: within one call, a write that repeats the key of an
// earlier write is refused, naming the earlier one, whether the rows
// differ (the later would silently replace the earlier) or are identical
// (counted twice); the counts say what was stored.
func TestWriteDatasetRowsRefusesRepeatedKeys(t *testing.T) {
	t.Parallel()
	_, _, iom, _, _, _ := jointDataset(t)
	const name = "agencies/ilo/datasets/returns"
	withAge := row("2026-03", "KH-2", "female", 6)
	withAge.Categories["age_group"] = "0-17"
	resp := write(t, iom, name,
		row("2026-03", "KH-12", "female", 4), // 0
		row("2026-03", "KH-12", "male", 3),   // 1
		row("2026-03", "KH-12", "female", 9), // 2: key of 0, other value
		row("2026-03", "KH-12", "male", 3),   // 3: identical to 1
		row("2026-03", "KH-2", "female", 5),  // 4: same sex, other location
		withAge,                              // 5: one more category, another key
	)
	if resp.GetAccepted() != 4 || resp.GetRejected() != 2 {
		t.Errorf("accepted %d, rejected %d; want 4 and 2", resp.GetAccepted(), resp.GetRejected())
	}
	for i, first := range map[int]int{2: 0, 3: 1} {
		r := resp.GetResults()[i]
		if r.GetAccepted() || r.GetCode() != "INVALID_ARGUMENT" || len(r.GetViolations()) != 1 {
			t.Errorf("write %d repeating write %d: %v", i, first, r)
			continue
		}
		v := r.GetViolations()[0]
		if v.GetField() != fmt.Sprintf("writes[%d].row", i) || !strings.Contains(v.GetDescription(), fmt.Sprintf("writes[%d]", first)) {
			t.Errorf("write %d: violation %v, want writes[%d].row naming writes[%d]", i, v, i, first)
		}
	}
	rows, _ := pullAll(t, iom, &exchangev1.PullDatasetRowsRequest{Dataset: name})
	if len(rows) != 4 {
		t.Fatalf("%d rows stored, want 4: %v", len(rows), rows)
	}
	for _, r := range rows {
		if r.GetLocation() == "KH-12" && r.GetCategories()["sex"] == "female" && r.GetValues()["cases"].GetIntValue() != 4 {
			t.Errorf("the repeated key replaced the first row: %v", r)
		}
	}
	// A later call may replace the row: the rule is per call.
	if r := write(t, iom, name, row("2026-03", "KH-12", "female", 9)).GetResults()[0]; !r.GetAccepted() {
		t.Errorf("replacing in a later call: %v", r)
	}
	// A deletion and a write of the same key in one call are a repeat too.
	req := &exchangev1.WriteDatasetRowsRequest{Dataset: name, Writes: []*exchangev1.RowWrite{
		{Row: row("2026-03", "KH-12", "male", 3), Delete: true},
		{Row: row("2026-03", "KH-12", "male", 3)},
	}}
	got, err := iom.datasets().WriteDatasetRows(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetResults()[0].GetAccepted() || got.GetResults()[1].GetAccepted() {
		t.Errorf("delete then write of one key: %v", got.GetResults())
	}
}
