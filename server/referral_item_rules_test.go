package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestReferralItemRulesAnswerAsBefore pushes a batch whose referrals each
// break one rule on the items of a list (Subject.languages' pattern,
// Consent.services' not_in and defined_only, and unique). protovalidate
// checks those rules in Go since v1.4.1, where v1.4.0 ran them as CEL
// expressions (BENCHMARKS.md, issue #22): the answers, field, rule text and
// message, must be those the exchange gave before.
func TestReferralItemRulesAnswerAsBefore(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	x.createAgency(sec, "iom", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	ilo := x.asAgency("ilo")
	counselling := exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING
	breaks := []func(r *exchangev1.Referral){
		func(r *exchangev1.Referral) { r.Subject.Languages = []string{"km", "Khmer"} },
		func(r *exchangev1.Referral) { r.Consent.Services = []exchangev1.Niche{counselling, 0} },
		func(r *exchangev1.Referral) { r.Consent.Services = []exchangev1.Niche{counselling, 999} },
		func(r *exchangev1.Referral) { r.Consent.Services = []exchangev1.Niche{counselling, counselling} },
	}
	want := []string{
		`INVALID_ARGUMENT "invalid request: referral.subject.languages[1]: does not match regex pattern ` + "`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`" + `" [referral.subject.languages[1]: does not match regex pattern ` + "`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`" + `]`,
		// An item left at 0 names the choices (violation_messages.go),
		// where protovalidate says "must not be in list [0]".
		`INVALID_ARGUMENT "invalid request: referral.consent.services[1]: must be one of NICHE_PREVENTION, `,
		`INVALID_ARGUMENT "invalid request: referral.consent.services[1]: value must be one of the defined enum values" [referral.consent.services[1]: value must be one of the defined enum values]`,
		`INVALID_ARGUMENT "invalid request: referral.consent.services: repeated value must contain unique items" [referral.consent.services: repeated value must contain unique items]`,
	}
	req := batchOfReferrals("iom", len(breaks))
	for i, breakRule := range breaks {
		breakRule(req.Requests[i].Referral)
	}
	resp, err := ilo.referrals().BatchCreateReferrals(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.GetResults() {
		got := fmt.Sprintf("%s %q %v", r.GetCode(), r.GetMessage(), violationTexts(r))
		match := got == want[i]
		if i == 1 {
			match = strings.HasPrefix(got, want[i]) && strings.Contains(got, "(0, unspecified, is not a choice)") && !strings.Contains(got, "UNSPECIFIED")
		}
		if r.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED || !match {
			t.Errorf("result %d (%v):\n got %s\nwant %s", i, r.GetStatus(), got, want[i])
		}
	}
}

// violationTexts lists a push result's violations as "field: description".
func violationTexts(r *exchangev1.ReferralPushResult) []string {
	var out []string
	for _, v := range r.GetViolations() {
		out = append(out, v.GetField()+": "+v.GetDescription())
	}
	return out
}

// TestReferralValidationAllocations holds the allocations of validating a
// valid referral's request, as the batched push does for each item: with
// every field rule checked in Go (no CEL program for the items of
// Subject.languages and Consent.services, protovalidate ≥ v1.4.1) it
// allocates 27 times (32 under the race detector); the bound leaves room
// for that and a dependency's small changes but not for the item rules
// going back to CEL (42 times with v1.4.0).
func TestReferralValidationAllocations(t *testing.T) {
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	req := &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: "req-1"}
	req.Referral.Subject.Languages = slices.Repeat([]string{"km"}, 3)
	if err := v.Validate(req); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := v.Validate(req); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per referral validated", allocs)
	if allocs > 36 {
		t.Errorf("validating a referral allocates %.0f times, want at most 36", allocs)
	}
}
