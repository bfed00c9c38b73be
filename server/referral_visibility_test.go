package server

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// referralVerbs are the ReferralService methods that name one referral.
var referralVerbs = []string{
	exchangev1.ReferralService_GetReferral_FullMethodName,
	exchangev1.ReferralService_AcknowledgeReferral_FullMethodName,
	exchangev1.ReferralService_AcceptReferral_FullMethodName,
	exchangev1.ReferralService_RejectReferral_FullMethodName,
	exchangev1.ReferralService_StartReferral_FullMethodName,
	exchangev1.ReferralService_CompleteReferral_FullMethodName,
	exchangev1.ReferralService_CancelReferral_FullMethodName,
	exchangev1.ReferralService_RevokeReferralConsent_FullMethodName,
	exchangev1.ReferralService_EraseReferralDetails_FullMethodName,
	exchangev1.ReferralService_ForwardReferral_FullMethodName,
}

// callOn calls a referral verb (a valid request from badInputBases) on
// the named referral as c, and returns the answer's status, encoded, with
// the name replaced by a placeholder of the same length.
func callOn(t *testing.T, c as, method, name string) []byte {
	t.Helper()
	req := badInputBases[method]()
	r := req.ProtoReflect()
	r.Set(r.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString(name))
	md, err := methodDescriptor(method)
	if err != nil {
		t.Fatal(err)
	}
	out, err := newMessageOf(md.Output())
	if err != nil {
		t.Fatal(err)
	}
	err = c.conn.Invoke(context.Background(), method, req, out)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("%s on %s: %v, want NOT_FOUND", method, name, err)
	}
	encoded, err := proto.MarshalOptions{Deterministic: true}.Marshal(status.Convert(err).Proto())
	if err != nil {
		t.Fatal(err)
	}
	placeholder := "referrals/" + strings.Repeat("x", len(name)-len("referrals/"))
	return bytes.ReplaceAll(encoded, []byte(name), []byte(placeholder))
}

// TestInvisibleReferralAnswersLikeAMissingOne calls every verb on a
// referral as an agency that is no party to it, and on a referral that
// does not exist: over real mutual TLS the two answers are the same
// NOT_FOUND status, byte for byte (ErrorInfo included), once the names are
// set aside. The store's test (TestInvisibleAndMissingReferralsTakeOnePath)
// shows that the two take the same path. It also measures GetReferral on
// each, the median of 1,000 calls, interleaved.
func TestInvisibleReferralAnswersLikeAMissingOne(t *testing.T) {
	_, _, ilo, iom, unicef := threeAgencies(t)
	invisible := refer(t, ilo, "unicef").GetName()
	missing := "referrals/" + strings.Repeat("0", 26)
	for _, method := range referralVerbs {
		a, b := callOn(t, iom, method, invisible), callOn(t, iom, method, missing)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: an invisible referral answers %q, a missing one %q", method, a, b)
		}
	}
	// The parties still see it.
	if _, err := unicef.referrals().GetReferral(context.Background(), &exchangev1.GetReferralRequest{Name: invisible}); err != nil {
		t.Fatal(err)
	}

	if testing.Short() {
		return
	}
	const samples = 1000
	var times [2][]time.Duration
	for i := range 2 * samples {
		name := []string{invisible, missing}[i%2]
		start := time.Now()
		_, err := iom.referrals().GetReferral(context.Background(), &exchangev1.GetReferralRequest{Name: name})
		times[i%2] = append(times[i%2], time.Since(start))
		if status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	t.Logf("GetReferral over mutual TLS, median of %d calls each: invisible %v, missing %v", samples, median(times[0]), median(times[1]))
}

// TestInvisibleDatasetAndPlanAnswerLikeMissingOnes: a dataset or a plan
// not shared with the caller answers the same NOT_FOUND as a missing one,
// byte for byte. Unlike referrals, whom a dataset or plan is shared with
// is in its record (the audience), so the invisible one takes one decode
// of its record more than the missing one; the test measures what that
// costs over real mutual TLS (median of 1,000 calls each, interleaved).
func TestInvisibleDatasetAndPlanAnswerLikeMissingOnes(t *testing.T) {
	_, _, ilo, iom, _, _ := planParties(t)
	ctx := context.Background()
	if _, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "returns", Dataset: returnsDataset()}); err != nil {
		t.Fatal(err)
	}
	p := newPlan("hidden")
	p.Audience = &exchangev1.Audience{Agencies: []string{"agencies/unicef"}}
	plan := createPlan(t, ilo, p).GetName()
	last := "0"
	if strings.HasSuffix(plan, "0") {
		last = "1"
	}
	missingPlan := plan[:len(plan)-1] + last // the same length, no plan
	calls := []struct {
		what               string
		invisible, missing string
		get                func(name string) error
	}{
		{"GetDataset", "agencies/ilo/datasets/returns", "agencies/ilo/datasets/returnz", func(name string) error {
			_, err := iom.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: name})
			return err
		}},
		{"GetPlan", plan, missingPlan, func(name string) error {
			_, err := iom.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: name})
			return err
		}},
	}
	for _, c := range calls {
		answer := func(name string) []byte {
			err := c.get(name)
			if status.Code(err) != codes.NotFound {
				t.Fatalf("%s %s: %v, want NOT_FOUND", c.what, name, err)
			}
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(status.Convert(err).Proto())
			return bytes.ReplaceAll(b, []byte(name), []byte(strings.Repeat("x", len(name))))
		}
		if a, b := answer(c.invisible), answer(c.missing); !bytes.Equal(a, b) {
			t.Errorf("%s: invisible answers %q, missing %q", c.what, a, b)
		}
		if testing.Short() {
			continue
		}
		var times [2][]time.Duration
		for i := range 2000 {
			name := []string{c.invisible, c.missing}[i%2]
			start := time.Now()
			if status.Code(c.get(name)) != codes.NotFound {
				t.Fatal(name)
			}
			times[i%2] = append(times[i%2], time.Since(start))
		}
		median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
		t.Logf("%s over mutual TLS, median of 1000 calls each: invisible %v, missing %v", c.what, median(times[0]), median(times[1]))
	}
}
