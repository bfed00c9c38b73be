package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Issue 19, item 6a: asked for the code of a unit absorbed in Viet Nam's
// 2025 reorganisation, the exchange answers NOT_FOUND naming the unit
// that absorbed it, in the message and in the ErrorInfo; a row with such
// a code is refused with a violation that names it.
func TestAbsorbedLocationsNameTheUnitThatAbsorbedThem(t *testing.T) {
	t.Parallel()
	_, _, iom, _, _, _ := jointDataset(t)
	ctx := context.Background()
	for code, into := range map[string]string{"VN-57": "VN-SG", "VN-03": "VN-07", "VN-47": "VN-44"} {
		_, err := iom.dir.GetLocation(ctx, &exchangev1.GetLocationRequest{Name: "locations/" + code})
		st := status.Convert(err)
		if st.Code() != codes.NotFound || !strings.Contains(st.Message(), "absorbed into "+into) || !strings.Contains(st.Message(), "use locations/"+into) {
			t.Errorf("%s: %v, want NOT_FOUND naming %s", code, err, into)
		}
		found := false
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				found = info.GetReason() == "NOT_FOUND" && info.GetMetadata()["absorbed_into"] == "locations/"+into && info.GetMetadata()["absorbed_on"] == "2025-07-01"
			}
		}
		if !found {
			t.Errorf("%s: details %v, want an ErrorInfo with absorbed_into locations/%s", code, st.Details(), into)
		}
	}
	// Codes that were never units say nothing of absorption.
	_, err := iom.dir.GetLocation(ctx, &exchangev1.GetLocationRequest{Name: "locations/VN-99"})
	if st := status.Convert(err); st.Code() != codes.NotFound || strings.Contains(st.Message(), "absorbed") {
		t.Errorf("VN-99: %v", err)
	}

	resp := write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "VN-57", "female", 4), row("2026-03", "VN-SG", "female", 4))
	r := resp.GetResults()[0]
	if r.GetAccepted() || len(r.GetViolations()) != 1 || r.GetViolations()[0].GetField() != "writes[0].row.location" ||
		!strings.Contains(r.GetViolations()[0].GetDescription(), "VN-57 Binh Duong was absorbed into VN-SG Ho Chi Minh City") {
		t.Errorf("row in VN-57: %v", r)
	}
	if !resp.GetResults()[1].GetAccepted() {
		t.Errorf("row in VN-SG: %v", resp.GetResults()[1])
	}
}

// A plan's location in an absorbed unit is refused naming the unit that
// absorbed it; an unknown one as before.
func TestPlanLocationInAnAbsorbedUnit(t *testing.T) {
	err := checkLocationRef("plan.locations[0]", &exchangev1.LocationRef{Country: "VN", Subdivision: "VN-03"})
	st := status.Convert(toStatus(context.Background(), nil, "test", err))
	if v := fieldViolations(st); st.Code() != codes.InvalidArgument || len(v) != 1 || v[0].GetField() != "plan.locations[0].subdivision" ||
		!strings.Contains(v[0].GetDescription(), "VN-03 Ha Giang was absorbed into VN-07 Tuyen Quang on 2025-07-01; use VN-07") {
		t.Errorf("VN-03: %v", st)
	}
	err = checkLocationRef("plan.locations[0]", &exchangev1.LocationRef{Country: "VN", Subdivision: "VN-99"})
	if st := status.Convert(toStatus(context.Background(), nil, "test", err)); !strings.Contains(st.Message(), "VN-99 is not a known province of VN") {
		t.Errorf("VN-99: %v", st)
	}
}
