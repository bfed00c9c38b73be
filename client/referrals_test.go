package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/clienttest"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// ReferralService method names used in the tests.
const (
	createReferral  = exchangev1.ReferralService_CreateReferral_FullMethodName
	batchReferrals  = exchangev1.ReferralService_BatchCreateReferrals_FullMethodName
	forwardReferral = exchangev1.ReferralService_ForwardReferral_FullMethodName
	listReferrals   = exchangev1.ReferralService_ListReferrals_FullMethodName
	watchReferrals  = exchangev1.ReferralService_WatchReferrals_FullMethodName
)

// newReferral is a valid referral to receiver ("iom") with consent that
// covers it; need tells referrals apart.
func newReferral(receiver, need string) *exchangev1.Referral {
	return &exchangev1.Referral{
		Receiver:         client.AgencyName(receiver),
		Service:          &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: need},
		Urgency:          exchangev1.Urgency_URGENCY_URGENT,
		SubjectReference: "subj-8f2c",
		Subject:          &exchangev1.Subject{Name: "Sokha", Sex: exchangev1.Sex_SEX_FEMALE},
		Consent: &exchangev1.Consent{
			GivenBy:         exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN,
			GivenTime:       timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)),
			ReceivingAgency: client.AgencyName(receiver),
			Services:        []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}
}

// referralExchange is a fake exchange with ilo, iom and unicef, each with
// a registered key, and clients for ilo and iom that seal and open
// referral details with their key rings (the fake, like the exchange,
// refuses details in clear).
func referralExchange(t *testing.T) (s *clienttest.Server, ilo, iom *client.Client) {
	t.Helper()
	s = clienttest.NewServer(t)
	seedAgencies(s, "ilo", "iom", "unicef")
	s.DialSealing(t, "agency/unicef") // registers unicef's key, to forward to
	return s, s.DialSealing(t, "agency/ilo"), s.DialSealing(t, "agency/iom")
}

func TestReferralCreateReusesRequestIDAcrossRetries(t *testing.T) {
	s, ilo, _ := referralExchange(t)
	ctx := context.Background()
	s.FailNext(createReferral, unavailable())
	s.FailAfterNext(createReferral, unavailable())

	r, err := ilo.Referrals.Create(ctx, newReferral("iom", "counselling"))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetState() != exchangev1.ReferralState_REFERRAL_STATE_REQUESTED || r.GetSender() != "agencies/ilo" {
		t.Errorf("created %v", r)
	}
	calls := s.Calls(createReferral)
	if len(calls) != 3 {
		t.Fatalf("%d CreateReferral calls, want 3 (refused, answer lost, retry)", len(calls))
	}
	first := calls[0].Request.(*exchangev1.CreateReferralRequest).GetRequestId()
	for i, c := range calls {
		if id := c.Request.(*exchangev1.CreateReferralRequest).GetRequestId(); id != first || !requestIDPattern.MatchString(id) {
			t.Errorf("attempt %d: request id %q, want %q", i, id, first)
		}
	}
	if n := len(s.Referrals()); n != 1 {
		t.Errorf("%d referrals stored, want 1", n)
	}

	// WithRequestID makes a repeat across processes return the first.
	again, err := ilo.Referrals.Create(ctx, newReferral("iom", "other words"), client.WithRequestID("case-77"))
	if err != nil {
		t.Fatal(err)
	}
	dup, err := ilo.Referrals.Create(ctx, newReferral("iom", "other words"), client.WithRequestID("case-77"))
	if err != nil || dup.GetName() != again.GetName() {
		t.Errorf("repeat with the same request id: %v, %v; want %s", dup.GetName(), err, again.GetName())
	}
	if _, err := ilo.Referrals.Create(ctx, newReferral("iom", "x"), client.ValidateOnly()); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ValidateOnly: %v, want INVALID_ARGUMENT", err)
	}
}

func TestReferralBatchCreateFillsRequestIDsAndRetries(t *testing.T) {
	s, ilo, _ := referralExchange(t)
	ctx := context.Background()
	bad := newReferral("iom", "bad")
	bad.Consent.ReceivingAgency = "agencies/unicef"
	reqs := []*exchangev1.CreateReferralRequest{
		{Referral: newReferral("iom", "one")},
		{Referral: newReferral("iom", "two"), RequestId: "mine-2"},
		{Referral: bad},
		{Referral: newReferral("unicef", "four")},
	}
	before := proto.CloneOf(&exchangev1.BatchCreateReferralsRequest{Requests: reqs})
	s.FailAfterNext(batchReferrals, unavailable())

	results, err := ilo.Referrals.BatchCreate(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, &exchangev1.BatchCreateReferralsRequest{Requests: reqs}) {
		t.Error("BatchCreate changed the caller's requests")
	}
	calls := s.Calls(batchReferrals)
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2 (answer lost, retry)", len(calls))
	}
	sent := [2]*exchangev1.BatchCreateReferralsRequest{calls[0].Request.(*exchangev1.BatchCreateReferralsRequest), calls[1].Request.(*exchangev1.BatchCreateReferralsRequest)}
	for i := range reqs {
		id0, id1 := sent[0].GetRequests()[i].GetRequestId(), sent[1].GetRequests()[i].GetRequestId()
		if id0 == "" || id0 != id1 {
			t.Errorf("request %d: ids %q then %q, want one id on both attempts", i, id0, id1)
		}
		if id0 != results[i].GetRequestId() {
			t.Errorf("request %d: result reports id %q, sent %q", i, results[i].GetRequestId(), id0)
		}
	}
	if sent[0].GetRequests()[1].GetRequestId() != "mine-2" || !requestIDPattern.MatchString(sent[0].GetRequests()[0].GetRequestId()) {
		t.Errorf("ids sent: %q, %q", sent[0].GetRequests()[0].GetRequestId(), sent[0].GetRequests()[1].GetRequestId())
	}
	// The first attempt stored them; the retry reports duplicates.
	want := []exchangev1.ReferralPushStatus{
		exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE,
		exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE,
		exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED,
		exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE,
	}
	for i, r := range results {
		if r.GetStatus() != want[i] || r.GetIndex() != int32(i) {
			t.Errorf("result %d: %v", i, r)
		}
	}
	if r := results[2]; r.GetCode() != "FAILED_PRECONDITION" || len(r.GetViolations()) != 1 || r.GetViolations()[0].GetField() != "referral.consent.receiving_agency" {
		t.Errorf("rejection: %v", r)
	}
	if n := len(s.Referrals()); n != 3 {
		t.Errorf("%d referrals stored, want 3", n)
	}
	if res, err := ilo.Referrals.BatchCreate(ctx, nil); res != nil || err != nil {
		t.Errorf("empty batch: %v, %v", res, err)
	}
	if n := len(s.Calls(batchReferrals)); n != 2 {
		t.Errorf("an empty batch made a call")
	}
}

// A batch sent through Conn with a request lacking an id is not retried:
// a retry could send that referral twice.
func TestRawBatchWithoutRequestIDsIsNotRetried(t *testing.T) {
	s, ilo, _ := referralExchange(t)
	raw := exchangev1.NewReferralServiceClient(ilo.Conn())
	ctx := context.Background()
	s.FailNext(batchReferrals, unavailable())
	_, err := raw.BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{
		{Referral: newReferral("iom", "a"), RequestId: "a-1"},
		{Referral: newReferral("iom", "b")},
	}})
	if status.Code(err) != codes.Unavailable || len(s.Calls(batchReferrals)) != 1 {
		t.Errorf("batch with a missing id: %v after %d calls; want UNAVAILABLE after 1", err, len(s.Calls(batchReferrals)))
	}
	s.FailNext(batchReferrals, unavailable())
	if _, err := raw.BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{
		{Referral: newReferral("iom", "a"), RequestId: "a-1"},
	}}); err != nil || len(s.Calls(batchReferrals)) != 3 {
		t.Errorf("batch with every id: %v after %d calls; want success on the retry", err, len(s.Calls(batchReferrals)))
	}
}

func TestReferralForwardReusesRequestIDAcrossRetries(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	r, err := ilo.Referrals.Create(ctx, newReferral("iom", "counselling"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iom.Referrals.Acknowledge(ctx, r.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	req := &exchangev1.ForwardReferralRequest{
		Name:     r.GetName(),
		Receiver: "agencies/unicef",
		Service:  &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "safe shelter"},
		Consent: &exchangev1.Consent{
			GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_PERSON, GivenTime: timestamppb.Now(),
			ReceivingAgency: "agencies/unicef", Services: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER},
		},
	}
	s.FailNext(forwardReferral, unavailable())
	s.FailAfterNext(forwardReferral, unavailable())
	child, err := iom.Referrals.Forward(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if req.GetRequestId() != "" {
		t.Error("Forward changed the caller's request")
	}
	calls := s.Calls(forwardReferral)
	if len(calls) != 3 {
		t.Fatalf("%d ForwardReferral calls, want 3", len(calls))
	}
	id := calls[0].Request.(*exchangev1.ForwardReferralRequest).GetRequestId()
	for i, c := range calls {
		if got := c.Request.(*exchangev1.ForwardReferralRequest).GetRequestId(); got != id || !requestIDPattern.MatchString(got) {
			t.Errorf("attempt %d: request id %q, want %q", i, got, id)
		}
	}
	if child.GetForwardedFrom() != r.GetName() || child.GetSender() != "agencies/iom" || child.GetReceiver() != "agencies/unicef" {
		t.Errorf("child %v", child)
	}
	if n := len(s.Referrals()); n != 2 {
		t.Errorf("%d referrals stored, want the original and one forward", n)
	}
	// The request's own id wins over a generated one.
	req.RequestId = "fwd-1"
	if _, err := iom.Referrals.Forward(ctx, req, client.WithRequestID("ignored")); err != nil {
		t.Fatal(err)
	}
	calls = s.Calls(forwardReferral)
	if got := calls[len(calls)-1].Request.(*exchangev1.ForwardReferralRequest).GetRequestId(); got != "fwd-1" {
		t.Errorf("request id %q, want the request's own fwd-1", got)
	}
}

func TestReferralVerbsAreNotRetried(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	r, err := ilo.Referrals.Create(ctx, newReferral("iom", "counselling"))
	if err != nil {
		t.Fatal(err)
	}
	name := r.GetName()
	tests := []struct {
		method string
		call   func() error
	}{
		{exchangev1.ReferralService_AcknowledgeReferral_FullMethodName, func() error { _, err := iom.Referrals.Acknowledge(ctx, name, ""); return err }},
		{exchangev1.ReferralService_AcceptReferral_FullMethodName, func() error { _, err := iom.Referrals.Accept(ctx, name, ""); return err }},
		{exchangev1.ReferralService_RejectReferral_FullMethodName, func() error {
			_, err := iom.Referrals.Reject(ctx, name, &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY}, "")
			return err
		}},
		{exchangev1.ReferralService_StartReferral_FullMethodName, func() error { _, err := iom.Referrals.Start(ctx, name, ""); return err }},
		{exchangev1.ReferralService_CompleteReferral_FullMethodName, func() error {
			_, err := iom.Referrals.Complete(ctx, name, &exchangev1.Outcome{Successful: true, Reason: "done"}, "")
			return err
		}},
		{exchangev1.ReferralService_CancelReferral_FullMethodName, func() error { _, err := ilo.Referrals.Cancel(ctx, name, "duplicate", ""); return err }},
		{exchangev1.ReferralService_RevokeReferralConsent_FullMethodName, func() error { _, err := ilo.Referrals.RevokeConsent(ctx, name, "withdrawn"); return err }},
		{exchangev1.ReferralService_EraseReferralDetails_FullMethodName, func() error {
			_, err := ilo.Referrals.EraseDetails(ctx, name, exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST, "")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			s.FailNext(tt.method, unavailable())
			if err := tt.call(); status.Code(err) != codes.Unavailable {
				t.Errorf("got %v, want UNAVAILABLE passed through", err)
			}
			if n := len(s.Calls(tt.method)); n != 1 {
				t.Errorf("%d calls, want exactly 1", n)
			}
		})
	}
}

// TestReferralEraseDetails erases a referral's details through the
// client: the call carries the reason code and the note, the sender gets
// the referral back without details and with the note in its history, the
// receiver may not erase, a second erasure is refused, and a missing
// reason code is INVALID_ARGUMENT naming reason_code.
func TestReferralEraseDetails(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	r, err := ilo.Referrals.Create(ctx, newReferral("iom", "counselling"))
	if err != nil {
		t.Fatal(err)
	}
	name := r.GetName()
	_, err = ilo.Referrals.EraseDetails(ctx, name, exchangev1.ErasureReason_ERASURE_REASON_UNSPECIFIED, "")
	if v := client.FieldViolations(err); status.Code(err) != codes.InvalidArgument || len(v) != 1 || v[0].GetField() != "reason_code" {
		t.Errorf("without a reason code: %v (violations %v), want INVALID_ARGUMENT on reason_code", err, v)
	}
	if _, err := iom.Referrals.EraseDetails(ctx, name, exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST, ""); status.Code(err) != codes.PermissionDenied {
		t.Errorf("erasure by the receiver: %v, want PERMISSION_DENIED", err)
	}
	got, err := ilo.Referrals.EraseDetails(ctx, name, exchangev1.ErasureReason_ERASURE_REASON_CONSENT_WITHDRAWN, "guardian's call of 3 March")
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetDetailsErased() || got.GetSubject() != nil || got.GetEraseTime() == nil {
		t.Errorf("after erasure: erased %v, subject %v, erase time %v", got.GetDetailsErased(), got.GetSubject(), got.GetEraseTime())
	}
	if h := got.GetHistory(); len(h) == 0 || h[len(h)-1].GetReason() != "identifying details erased (consent-withdrawn): guardian's call of 3 March" {
		t.Errorf("history: %v", h)
	}
	calls := s.Calls(exchangev1.ReferralService_EraseReferralDetails_FullMethodName)
	req := calls[len(calls)-1].Request.(*exchangev1.EraseReferralDetailsRequest)
	if req.GetName() != name || req.GetReasonCode() != exchangev1.ErasureReason_ERASURE_REASON_CONSENT_WITHDRAWN || req.GetReason() != "guardian's call of 3 March" {
		t.Errorf("the call carried %v", req)
	}
	if _, err := ilo.Referrals.EraseDetails(ctx, name, exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST, ""); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a second erasure: %v, want FAILED_PRECONDITION", err)
	}
}

func TestReferralReadsAreRetried(t *testing.T) {
	s, ilo, _ := referralExchange(t)
	ctx := context.Background()
	r, err := ilo.Referrals.Create(ctx, newReferral("iom", "counselling"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method string
		call   func() error
	}{
		{exchangev1.ReferralService_GetReferral_FullMethodName, func() error { _, err := ilo.Referrals.Get(ctx, r.GetName()); return err }},
		{listReferrals, func() error { _, err := client.Collect(ilo.Referrals.Referrals(ctx, nil)); return err }},
		{exchangev1.ReferralService_SuggestRecipients_FullMethodName, func() error {
			_, err := ilo.Referrals.SuggestRecipients(ctx, exchangev1.Niche_NICHE_SHELTER, "KH-12")
			return err
		}},
		{exchangev1.ReferralService_GetReferralStatistics_FullMethodName, func() error { _, err := ilo.Referrals.Statistics(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			s.FailNext(tt.method, unavailable(), unavailable())
			if err := tt.call(); err != nil {
				t.Errorf("after two UNAVAILABLE: %v", err)
			}
			if n := len(s.Calls(tt.method)); n != 3 {
				t.Errorf("%d calls, want 3", n)
			}
		})
	}
}

func TestReferralLifecycleAndVisibility(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	unicef := s.Dial(t, "agency/unicef")
	ctx := context.Background()
	r, err := ilo.Referrals.Create(ctx, newReferral("iom", "counselling"))
	if err != nil {
		t.Fatal(err)
	}
	name := r.GetName()
	if _, err := iom.Referrals.Accept(ctx, name, ""); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("accept before acknowledge: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := ilo.Referrals.Acknowledge(ctx, name, ""); status.Code(err) != codes.PermissionDenied {
		t.Errorf("acknowledge by the sender: %v, want PERMISSION_DENIED", err)
	}
	if _, err := unicef.Referrals.Get(ctx, name); !client.IsNotFound(err) {
		t.Errorf("get by a third agency: %v, want NOT_FOUND", err)
	}
	got, err := iom.Referrals.Acknowledge(ctx, name, r.GetEtag())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iom.Referrals.Accept(ctx, name, r.GetEtag()); client.Reason(err) != "ETAG_MISMATCH" {
		t.Errorf("accept with a stale etag: %v", err)
	}
	for _, step := range []func() (*exchangev1.Referral, error){
		func() (*exchangev1.Referral, error) { return iom.Referrals.Accept(ctx, name, got.GetEtag()) },
		func() (*exchangev1.Referral, error) { return iom.Referrals.Start(ctx, name, "") },
		func() (*exchangev1.Referral, error) {
			return iom.Referrals.Complete(ctx, name, &exchangev1.Outcome{Successful: true, Reason: "counselling given", ServicesDelivered: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING}}, "")
		},
	} {
		if got, err = step(); err != nil {
			t.Fatal(err)
		}
	}
	if got.GetState() != exchangev1.ReferralState_REFERRAL_STATE_COMPLETED || len(got.GetHistory()) != 5 || !got.GetOutcome().GetSuccessful() {
		t.Errorf("after the lifecycle: state %v, %d transitions, outcome %v", got.GetState(), len(got.GetHistory()), got.GetOutcome())
	}
	full, err := ilo.Referrals.Get(ctx, name)
	if err != nil || full.GetSubject().GetName() != "Sokha" {
		t.Errorf("sender's get: %v, %v", full.GetSubject(), err)
	}
	stats, err := ilo.Referrals.Statistics(ctx)
	if err != nil || len(stats) != 1 || stats[0].GetCount() != 1 || stats[0].GetLocation() != "KH-12" {
		t.Errorf("statistics: %v, %v", stats, err)
	}
}

func TestReferralsIteratorWalksPagesNewestFirst(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	s.SetPageSize(2)
	var names []string
	for i := range 5 {
		r, err := ilo.Referrals.Create(ctx, newReferral("iom", fmt.Sprintf("need %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		names = append([]string{r.GetName()}, names...)
	}
	req := &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING}
	var got []string
	for r, err := range iom.Referrals.Referrals(ctx, req) {
		if err != nil {
			t.Fatal(err)
		}
		if r.GetSubject() != nil || !r.GetDetailsWithheld() {
			t.Errorf("%s: a list shows identifying details", r.GetName())
		}
		got = append(got, r.GetName())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("got %v\nwant %v (newest first)", got, names)
	}
	calls := s.Calls(listReferrals)
	if len(calls) != 3 {
		t.Fatalf("%d ListReferrals calls, want 3", len(calls))
	}
	for i, token := range []string{"", "2", "4"} {
		r := calls[i].Request.(*exchangev1.ListReferralsRequest)
		if r.GetPageToken() != token || r.GetDirection() != req.GetDirection() || r.GetNiche() != req.GetNiche() {
			t.Errorf("call %d: %v", i, r)
		}
	}
	if req.GetPageToken() != "" {
		t.Error("the iterator changed the caller's request")
	}
	if out, err := client.Collect(ilo.Referrals.Referrals(ctx, req)); err != nil || len(out) != 0 {
		t.Errorf("ilo's inbox: %d, %v; want none (ilo sent them)", len(out), err)
	}

	list, rev, err := iom.Referrals.Snapshot(ctx, nil)
	if err != nil || len(list) != 5 || rev != s.Revision() {
		t.Errorf("Snapshot: %d referrals at revision %d, %v; want 5 at %d", len(list), rev, err, s.Revision())
	}
}

// collector gathers what Watch delivers, for a test to wait on.
type collector struct {
	mu     sync.Mutex
	events []*exchangev1.WatchReferralsResponse
	beats  []*exchangev1.WatchReferralsResponse
	more   chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 100)} }

func (c *collector) add(ev *exchangev1.WatchReferralsResponse) error {
	c.mu.Lock()
	if ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
		c.beats = append(c.beats, ev)
	} else {
		c.events = append(c.events, ev)
	}
	c.mu.Unlock()
	c.more <- struct{}{}
	return nil
}

// keys lists the events as "revision kind name".
func (c *collector) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.events {
		out = append(out, fmt.Sprintf("%d %s %s", ev.GetRevision(), strings.TrimPrefix(ev.GetKind().String(), "REFERRAL_EVENT_KIND_"), ev.GetReferral().GetName()))
	}
	return out
}

// waitFor waits until n events have arrived.
func (c *collector) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.events)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("%d of %d events arrived: %v", got, n, c.keys())
		}
	}
}

// watch runs Watch in the background; stop cancels it and returns its
// error.
func watch(t *testing.T, c *client.Client, from int64, fn func(*exchangev1.WatchReferralsResponse) error, opts ...client.WatchOption) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Referrals.Watch(ctx, from, fn, opts...) }()
	t.Cleanup(cancel)
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Watch did not return after its context was cancelled")
			return nil
		}
	}
}

func TestWatchResumesAfterDroppedStreamsWithoutLossOrRepeats(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	start := s.Revision()
	var refs []*exchangev1.Referral
	for i := range 3 {
		r, err := ilo.Referrals.Create(ctx, newReferral("iom", fmt.Sprintf("need %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	// Not iom's: never shown to it.
	if _, err := ilo.Referrals.Create(ctx, newReferral("unicef", "elsewhere")); err != nil {
		t.Fatal(err)
	}
	if _, err := iom.Referrals.Acknowledge(ctx, refs[0].GetName(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := iom.Referrals.Acknowledge(ctx, refs[1].GetName(), ""); err != nil {
		t.Fatal(err)
	}
	// A forward changes two referrals at one revision: two events.
	child, err := iom.Referrals.Forward(ctx, &exchangev1.ForwardReferralRequest{
		Name: refs[1].GetName(), Receiver: "agencies/unicef",
		Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
		Consent: &exchangev1.Consent{GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_PERSON, GivenTime: timestamppb.Now(),
			ReceivingAgency: "agencies/unicef", Services: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Expected: 3 created, 2 acknowledged, then the forward's update of
	// refs[1] and creation of child at one revision.
	fwdRev := s.Revision()
	want := []string{
		fmt.Sprintf("%d CREATED %s", start+1, refs[0].GetName()),
		fmt.Sprintf("%d CREATED %s", start+2, refs[1].GetName()),
		fmt.Sprintf("%d CREATED %s", start+3, refs[2].GetName()),
		fmt.Sprintf("%d UPDATED %s", start+5, refs[0].GetName()),
		fmt.Sprintf("%d UPDATED %s", start+6, refs[1].GetName()),
		fmt.Sprintf("%d UPDATED %s", fwdRev, refs[1].GetName()),
		fmt.Sprintf("%d CREATED %s", fwdRev, child.GetName()),
	}

	// Stream 1 drops after 2 events; stream 2 after 5 (the first being a
	// replay), in the middle of the forward's revision; stream 3 stays.
	s.BreakWatch(2, 5, -1)
	s.SetWatchHeartbeat(time.Hour)
	var reconnects []int64
	c := newCollector()
	stop := watch(t, iom, start, c.add, client.OnReconnect(func(err error, wait time.Duration, rev int64) {
		// 0 is right for a stream that delivered for 100ms or more.
		if status.Code(err) != codes.Unavailable || wait < 0 {
			t.Errorf("reconnect after %v, waiting %v", err, wait)
		}
		reconnects = append(reconnects, rev)
	}))
	c.waitFor(t, len(want))

	// And live, after the replay.
	late, err := ilo.Referrals.Create(ctx, newReferral("iom", "late"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("%d CREATED %s", s.Revision(), late.GetName()))
	c.waitFor(t, len(want))
	time.Sleep(100 * time.Millisecond) // room for a wrong extra event
	if err := stop(); status.Code(err) != codes.Canceled {
		t.Errorf("Watch returned %v after cancel, want CANCELED", err)
	}

	if got := c.keys(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	calls := s.Calls(watchReferrals)
	var starts []int64
	for _, call := range calls {
		starts = append(starts, call.Request.(*exchangev1.WatchReferralsRequest).GetStartRevision())
	}
	// Stream 2 resumes after the first event's revision (the second one's
	// may have had more events); stream 3 after the acknowledgement before
	// the forward, replaying the forward's revision and skipping the
	// event already delivered.
	wantStarts := []int64{start, start + 1, start + 6}
	if fmt.Sprint(starts) != fmt.Sprint(wantStarts) {
		t.Errorf("streams started after %v, want %v", starts, wantStarts)
	}
	if fmt.Sprint(reconnects) != fmt.Sprint(wantStarts[1:]) {
		t.Errorf("OnReconnect saw revisions %v, want %v", reconnects, wantStarts[1:])
	}
	for _, ev := range c.events {
		if ev.GetReferral().GetSubject() != nil {
			t.Errorf("event %d carries identifying details", ev.GetRevision())
		}
	}
}

func TestWatchFromNowPinsTheRevision(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	if _, err := ilo.Referrals.Create(ctx, newReferral("iom", "before the watch")); err != nil {
		t.Fatal(err)
	}
	pinned := s.Revision()
	// The first stream fails at once; while Watch waits to reconnect, a
	// referral arrives. Watching "from now" must not miss it.
	s.FailNext(watchReferrals, unavailable())
	var during *exchangev1.Referral
	c := newCollector()
	stop := watch(t, iom, 0, c.add, client.OnReconnect(func(error, time.Duration, int64) {
		if during == nil {
			var err error
			if during, err = ilo.Referrals.Create(ctx, newReferral("iom", "during the outage")); err != nil {
				t.Error(err)
			}
		}
	}))
	c.waitFor(t, 1)
	if err := stop(); status.Code(err) != codes.Canceled {
		t.Errorf("Watch returned %v", err)
	}
	if got := c.keys(); len(got) != 1 || got[0] != fmt.Sprintf("%d CREATED %s", pinned+1, during.GetName()) {
		t.Errorf("events %v, want only the referral made during the outage", got)
	}
	list := s.Calls(listReferrals)
	if len(list) != 1 || list[0].Request.(*exchangev1.ListReferralsRequest).GetPageSize() != 1 {
		t.Errorf("ListReferrals calls %v, want one of page size 1 to pin the revision", list)
	}
	for _, call := range s.Calls(watchReferrals) {
		if got := call.Request.(*exchangev1.WatchReferralsRequest).GetStartRevision(); got != pinned {
			t.Errorf("stream started after %d, want the pinned %d", got, pinned)
		}
	}
}

func TestWatchHeartbeatsAdvanceTheRevision(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	start := s.Revision()
	// Changes iom may not see: the watch passes them in heartbeats only.
	for range 3 {
		if _, err := ilo.Referrals.Create(ctx, newReferral("unicef", "elsewhere")); err != nil {
			t.Fatal(err)
		}
	}
	seen := s.Revision()
	s.SetWatchHeartbeat(20 * time.Millisecond)
	s.BreakWatch(1)
	c := newCollector()
	var once sync.Once
	stop := watch(t, iom, start, func(ev *exchangev1.WatchReferralsResponse) error {
		if ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT && ev.GetRevision() == seen {
			once.Do(func() {
				if _, err := ilo.Referrals.Create(ctx, newReferral("iom", "mine")); err != nil {
					t.Error(err)
				}
			})
		}
		return c.add(ev)
	})
	c.waitFor(t, 1)
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Calls(watchReferrals)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if err := stop(); status.Code(err) != codes.Canceled {
		t.Errorf("Watch returned %v", err)
	}
	calls := s.Calls(watchReferrals)
	if len(calls) < 2 {
		t.Fatalf("%d streams, want a reconnect", len(calls))
	}
	if got := calls[1].Request.(*exchangev1.WatchReferralsRequest).GetStartRevision(); got != seen {
		t.Errorf("reconnected after %d, want %d, the heartbeat's revision", got, seen)
	}
	if n := len(c.keys()); n != 1 {
		t.Errorf("%d events, want 1: %v", n, c.keys())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 1; i < len(c.beats); i++ {
		if c.beats[i].GetRevision() < c.beats[i-1].GetRevision() {
			t.Errorf("heartbeat revisions went back: %d after %d", c.beats[i].GetRevision(), c.beats[i-1].GetRevision())
		}
	}
}

func TestWatchSurfacesOutOfRange(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := ilo.Referrals.Create(ctx, newReferral("iom", fmt.Sprintf("need %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	start := s.Revision() - 3

	// From a compacted revision at once.
	s.CompactChanges(start + 1)
	called := false
	err := iom.Referrals.Watch(ctx, start, func(*exchangev1.WatchReferralsResponse) error { called = true; return nil })
	if status.Code(err) != codes.OutOfRange || client.Reason(err) != "REVISION_COMPACTED" || called {
		t.Errorf("watch from a compacted revision: %v (reason %q), fn called %v", err, client.Reason(err), called)
	}

	// Or on reconnecting, when the log was compacted past the point
	// reached meanwhile.
	s.BreakWatch(1)
	c := newCollector()
	err = iom.Referrals.Watch(ctx, start+1, func(ev *exchangev1.WatchReferralsResponse) error {
		s.CompactChanges(s.Revision())
		return c.add(ev)
	})
	if status.Code(err) != codes.OutOfRange {
		t.Errorf("reconnect behind the horizon: %v, want OUT_OF_RANGE", err)
	}
	if n := len(c.keys()); n != 1 {
		t.Errorf("%d events before OUT_OF_RANGE, want 1", n)
	}
	if err := iom.Referrals.Watch(ctx, -1, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative revision: %v", err)
	}
}

func TestWatchReturnsCallbackAndOtherErrors(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	start := s.Revision()
	if _, err := ilo.Referrals.Create(ctx, newReferral("iom", "x")); err != nil {
		t.Fatal(err)
	}
	stopErr := errors.New("enough")
	if err := iom.Referrals.Watch(ctx, start, func(*exchangev1.WatchReferralsResponse) error { return stopErr }); err != stopErr {
		t.Errorf("fn's error: got %v", err)
	}
	s.FailNext(watchReferrals, status.Error(codes.PermissionDenied, "no"))
	if err := iom.Referrals.Watch(ctx, start, func(*exchangev1.WatchReferralsResponse) error { return nil }); status.Code(err) != codes.PermissionDenied {
		t.Errorf("PERMISSION_DENIED: got %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	s.SetWatchHeartbeat(time.Hour)
	if err := iom.Referrals.Watch(tctx, s.Revision(), func(*exchangev1.WatchReferralsResponse) error { return nil }); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("deadline: got %v", err)
	}
}
