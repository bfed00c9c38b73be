package cli

import (
	"slices"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestARejectionSaysWhatTheExchangeLeftOut checks that datasets push and
// referrals push report, after the fields at fault of a line, how many
// problems the exchange did not list, or that it checked the line only up
// to its first problem (a batch's answer lists the first problem of each
// line and at most 100 more in all).
func TestARejectionSaysWhatTheExchangeLeftOut(t *testing.T) {
	returned := []*exchangev1.FieldViolation{{Field: "writes[3].row.values.returned", Description: "required"}}
	first := problem{Line: 7, Field: "returned", Code: "INVALID_ARGUMENT", Reason: "required"}
	p := &rowPusher{csv: true}
	for _, c := range []struct {
		res  *exchangev1.RowWriteResult
		want []problem
	}{
		{&exchangev1.RowWriteResult{Code: "INVALID_ARGUMENT", Violations: returned}, []problem{first}},
		{&exchangev1.RowWriteResult{Code: "INVALID_ARGUMENT", Violations: returned, UnlistedViolations: 12},
			[]problem{first, {Line: 7, Code: "INVALID_ARGUMENT", Reason: "12 more problems not listed; send the line alone to see them"}}},
		{&exchangev1.RowWriteResult{Code: "INVALID_ARGUMENT", Violations: returned, UnlistedViolations: 1},
			[]problem{first, {Line: 7, Code: "INVALID_ARGUMENT", Reason: "1 more problem not listed; send the line alone to see it"}}},
		{&exchangev1.RowWriteResult{Code: "INVALID_ARGUMENT", Violations: returned, CheckedToFirstViolation: true},
			[]problem{first, {Line: 7, Code: "INVALID_ARGUMENT", Reason: "checked only up to its first problem; send the line alone to see any more"}}},
	} {
		if got := p.rejection(7, c.res); !slices.Equal(got, c.want) {
			t.Errorf("rejection of %v:\n%+v,\nwant %+v", c.res, got, c.want)
		}
	}

	res := &exchangev1.ReferralPushResult{Code: "INVALID_ARGUMENT", CheckedToFirstViolation: true,
		Violations: []*exchangev1.FieldViolation{{Field: "referral.subject.name", Description: "must be at least 1 characters"}}}
	if got, want := rejectionText(res), "INVALID_ARGUMENT referral.subject.name: must be at least 1 characters; checked only up to its first problem; send the line alone to see any more"; got != want {
		t.Errorf("rejection text %q,\nwant %q", got, want)
	}
	res.CheckedToFirstViolation, res.UnlistedViolations = false, 4
	if got, want := rejectionText(res), "INVALID_ARGUMENT referral.subject.name: must be at least 1 characters; 4 more problems not listed; send the line alone to see them"; got != want {
		t.Errorf("rejection text %q,\nwant %q", got, want)
	}
}
