package server

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/auditchain"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

func TestConsentThatDoesNotCoverTheReceiverStoresNothing(t *testing.T) {
	x, _, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	before := x.store.Revision()
	cases := map[string]struct {
		mutate func(*exchangev1.Referral)
		field  string
	}{
		"consent for another agency": {func(r *exchangev1.Referral) { r.Consent.ReceivingAgency = "agencies/unicef" }, "referral.consent.receiving_agency"},
		"consent for another service": {func(r *exchangev1.Referral) {
			r.Consent.Services = []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER}
		}, "referral.consent.services"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newReferral("iom")
			c.mutate(r)
			_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()})
			st := wantCode(t, err, codes.FailedPrecondition)
			if f := violatedFields(st); len(f) != 1 || f[0] != c.field {
				t.Errorf("violations %v, want %s", f, c.field)
			}
		})
	}
	r := newReferral("iom")
	r.Consent.GivenBy = exchangev1.ConsentGiver_CONSENT_GIVER_BEST_INTEREST_OVERRIDE
	_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "referral.consent" {
		t.Errorf("override without reason: %v", f)
	}
	if x.store.Revision() != before {
		t.Fatalf("refused referrals changed the store (revision %d → %d)", before, x.store.Revision())
	}
	r.Consent.OverrideReason = "unaccompanied child, no guardian traceable; decided by the case conference"
	if _, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()}); err != nil {
		t.Fatalf("documented best-interest override refused: %v", err)
	}
}

func TestOnlyTheTwoAgenciesEverSeeAReferral(t *testing.T) {
	x, sec, ilo, iom, unicef := threeAgencies(t)
	ctx := context.Background()

	// Watches opened before anything happens.
	watch := func(c as) <-chan *exchangev1.WatchReferralsResponse {
		stream, err := c.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{StartRevision: 1})
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan *exchangev1.WatchReferralsResponse, 100)
		go func() {
			defer close(out)
			for {
				ev, err := stream.Recv()
				if err != nil {
					return
				}
				out <- ev
			}
		}()
		return out
	}
	unicefEvents, secEvents, iomEvents := watch(unicef), watch(sec), watch(iom)

	r := refer(t, ilo, "iom")
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatal(err)
	}
	missing := "referrals/" + strings.Repeat("0", 26)
	for who, c := range map[string]as{"third agency": unicef, "secretariat": sec} {
		t.Run(who, func(t *testing.T) {
			_, errHidden := c.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
			_, errMissing := c.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: missing})
			hidden, absent := wantCode(t, errHidden, codes.NotFound), wantCode(t, errMissing, codes.NotFound)
			if strings.ReplaceAll(hidden.Message(), r.GetName(), missing) != absent.Message() || reason(hidden) != reason(absent) ||
				len(hidden.Details()) != len(absent.Details()) {
				t.Errorf("hidden %v differs from missing %v", hidden.Proto(), absent.Proto())
			}
			list, err := c.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{})
			if err != nil || len(list.GetReferrals()) != 0 {
				t.Errorf("list shows %d referrals (%v)", len(list.GetReferrals()), err)
			}
			_, err = c.referrals().CancelReferral(ctx, &exchangev1.CancelReferralRequest{Name: r.GetName(), Reason: "x", Etag: "stale"})
			wantCode(t, err, codes.NotFound)
		})
	}

	// The receiver's watch sees both events; the others see only heartbeats.
	got := 0
	deadline := time.After(5 * time.Second)
	for got < 2 {
		select {
		case ev := <-iomEvents:
			if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
				got++
			}
		case <-deadline:
			t.Fatalf("receiver saw %d of 2 events", got)
		}
	}
	time.Sleep(300 * time.Millisecond) // past a heartbeat interval
	for who, events := range map[string]<-chan *exchangev1.WatchReferralsResponse{"third agency": unicefEvents, "secretariat": secEvents} {
	drain:
		for {
			select {
			case ev := <-events:
				if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT || ev.GetReferral() != nil {
					t.Errorf("%s watched an event on another's referral: %v", who, ev)
				}
			default:
				break drain
			}
		}
	}

	// The secretariat's statistics count it, and say nothing else.
	stats, err := sec.referrals().GetReferralStatistics(ctx, &exchangev1.GetReferralStatisticsRequest{})
	if err != nil || len(stats.GetCounts()) != 1 || stats.GetCounts()[0].GetCount() != 1 || stats.GetCounts()[0].GetLocation() != "KH-12" {
		t.Fatalf("statistics %v %v", stats, err)
	}
	if strings.Contains(protojson.Format(stats), marker) {
		t.Fatal("statistics leak identifying details")
	}
	_ = x
}

func TestIdentifyingDetailsOnlyInFullReadsAndNeverAfterConsentIsRevoked(t *testing.T) {
	x, _, ilo, iom, unicef := threeAgencies(t)
	ctx := context.Background()
	r := refer(t, ilo, "iom")

	list, err := iom.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX})
	if err != nil || len(list.GetReferrals()) != 1 {
		t.Fatalf("inbox %v %v", list, err)
	}
	if s := protojson.Format(list); strings.Contains(s, marker) || list.GetReferrals()[0].GetSealedDetails() != nil || !list.GetReferrals()[0].GetDetailsWithheld() {
		t.Fatal("a list summary carries identifying details")
	}
	auditBefore, _, _ := x.store.AuditHead(ctx)
	full, err := iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	if err != nil || testDetailsOf(t, full.GetReferral()).GetName() != marker {
		t.Fatalf("the receiver does not see the details: %v %v", full, err)
	}
	entries, _ := x.store.AuditEntries(ctx, auditBefore, 10)
	if len(entries) != 1 || entries[0].GetActor() != "agencies/iom" || entries[0].GetResourceName() != r.GetName() ||
		!strings.HasSuffix(entries[0].GetMethod(), "/GetReferral") {
		t.Fatalf("the read is not audited: %v", entries)
	}

	// The receiver forwards to a third agency, then the sender revokes.
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatal(err)
	}
	fwd := newReferral("unicef")
	child, err := iom.referrals().ForwardReferral(ctx, &exchangev1.ForwardReferralRequest{
		Name: r.GetName(), Receiver: "agencies/unicef", Service: fwd.GetService(), Consent: fwd.GetConsent(), RequestId: nextRequestID(),
		SealedDetails: testBlob(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if child.GetReferral().GetForwardedFrom() != r.GetName() || child.GetReferral().GetSender() != "agencies/iom" {
		t.Fatalf("forwarded referral %v", child.GetReferral())
	}
	seen, err := unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: child.GetReferral().GetName()})
	if err != nil || testDetailsOf(t, seen.GetReferral()).GetName() != marker {
		t.Fatalf("the forwarded-to agency does not see its referral: %v", err)
	}
	_, err = unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	wantCode(t, err, codes.NotFound)

	_, err = iom.referrals().RevokeReferralConsent(ctx, &exchangev1.RevokeReferralConsentRequest{Name: r.GetName(), Reason: "withdrawn"})
	wantCode(t, err, codes.PermissionDenied)
	if _, err := ilo.referrals().RevokeReferralConsent(ctx, &exchangev1.RevokeReferralConsentRequest{Name: r.GetName(), Reason: "withdrawn by guardian"}); err != nil {
		t.Fatal(err)
	}
	for who, read := range map[string]func() (*exchangev1.GetReferralResponse, error){
		"receiver": func() (*exchangev1.GetReferralResponse, error) {
			return iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
		},
		"forwarded-to": func() (*exchangev1.GetReferralResponse, error) {
			return unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: child.GetReferral().GetName()})
		},
	} {
		resp, err := read()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetReferral().GetSealedDetails()) > 0 || !resp.GetReferral().GetDetailsWithheld() {
			t.Errorf("%s still sees identifying details after consent was revoked", who)
		}
	}
	mine, _ := ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	if testDetailsOf(t, mine.GetReferral()).GetName() != marker {
		t.Error("the sender lost its own details")
	}
	_, err = iom.referrals().ForwardReferral(ctx, &exchangev1.ForwardReferralRequest{
		Name: r.GetName(), Receiver: "agencies/unicef", Service: fwd.GetService(), Consent: fwd.GetConsent(), RequestId: nextRequestID(),
		SealedDetails: testBlob(),
	})
	wantCode(t, err, codes.FailedPrecondition)
}

func TestRetriesAndBatchesCreateEachReferralOnce(t *testing.T) {
	_, _, ilo, iom, _ := threeAgencies(t)
	ctx := context.Background()
	req := &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: "case-77"}
	first, err := ilo.referrals().CreateReferral(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ilo.referrals().CreateReferral(ctx, req)
	if err != nil || again.GetReferral().GetName() != first.GetReferral().GetName() {
		t.Fatalf("retry: %v %v", again.GetReferral().GetName(), err)
	}
	if len(first.GetReferral().GetSealedDetails()) == 0 || !bytes.Equal(again.GetReferral().GetSealedDetails(), first.GetReferral().GetSealedDetails()) {
		t.Fatalf("a retry returns the first referral with %d bytes of sealed details, the first call %d", len(again.GetReferral().GetSealedDetails()), len(first.GetReferral().GetSealedDetails()))
	}

	bad := newReferral("iom")
	bad.SealedDetails = nil
	unknown := newReferral("ghost")
	batch := []*exchangev1.CreateReferralRequest{
		{Referral: newReferral("iom"), RequestId: "b-1"},
		{Referral: bad, RequestId: "b-2"},
		{Referral: newReferral("iom"), RequestId: "case-77"}, // duplicate of the single create
		{Referral: unknown, RequestId: "b-4"},
		{Referral: newReferral("iom"), RequestId: "b-5"},
		{Referral: newReferral("iom"), RequestId: "b-1"}, // repeated within the batch
	}
	resp, err := ilo.referrals().BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: batch})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status exchangev1.ReferralPushStatus
		field  string
	}{
		{exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED, ""},
		{exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED, "referral.sealed_details"},
		{exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE, ""},
		{exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED, "referral.receiver"},
		{exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED, ""},
		{exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED, "request_id"},
	}
	for i, w := range want {
		res := resp.GetResults()[i]
		if res.GetIndex() != int32(i) || res.GetStatus() != w.status {
			t.Errorf("result %d: %v, want %v", i, res, w.status)
		}
		if w.field != "" && (len(res.GetViolations()) == 0 || res.GetViolations()[0].GetField() != w.field) {
			t.Errorf("result %d names %v, want %s", i, res.GetViolations(), w.field)
		}
	}
	if resp.GetResults()[2].GetReferral() != first.GetReferral().GetName() {
		t.Errorf("duplicate points to %s", resp.GetResults()[2].GetReferral())
	}
	if r := resp.GetResults()[3]; r.GetCode() != "INVALID_ARGUMENT" {
		t.Errorf("unknown receiver: %v", r)
	}

	inbox, err := iom.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX})
	if err != nil || len(inbox.GetReferrals()) != 3 {
		t.Fatalf("inbox holds %d referrals, want 3 (one single, two accepted in the batch): %v", len(inbox.GetReferrals()), err)
	}
}

func TestWatchResumesWithoutLossOrDuplicatesAcrossARestart(t *testing.T) {
	x, _, ilo, iom, _ := threeAgencies(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := iom.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := 0; i < 3; i++ {
		names = append(names, refer(t, ilo, "iom").GetName())
	}
	var last int64
	for got := 0; got < 3; {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED {
			if ev.GetReferral().GetName() != names[got] {
				t.Fatalf("event %d for %s, want %s", got, ev.GetReferral().GetName(), names[got])
			}
			got++
			last = ev.GetRevision()
		}
	}
	cancel()

	names = names[:0]
	for i := 0; i < 2; i++ { // while the watcher is away
		names = append(names, refer(t, ilo, "iom").GetName())
	}
	x.restart()
	ilo, iom = x.asAgency("ilo"), x.asAgency("iom")
	names = append(names, refer(t, ilo, "iom").GetName())

	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	resumed, err := iom.referrals().WatchReferrals(ctx2, &exchangev1.WatchReferralsRequest{StartRevision: last})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		ev, err := resumed.Recv()
		if err == io.EOF || err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
			continue
		}
		if ev.GetRevision() <= last {
			t.Fatalf("replayed revision %d already seen (%d)", ev.GetRevision(), last)
		}
		last = ev.GetRevision()
		got = append(got, ev.GetReferral().GetName())
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("resumed events %v, want %v", got, names)
		}
	}
	// Nothing else arrives but heartbeats.
	ev, err := resumed.Recv()
	if err != nil || ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
		t.Fatalf("after the resumed events: %v %v", ev, err)
	}

	if err := x.store.Compact(context.Background(), x.store.Revision()); err != nil {
		t.Fatal(err)
	}
	old, err := iom.referrals().WatchReferrals(context.Background(), &exchangev1.WatchReferralsRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = old.Recv()
	if st := wantCode(t, err, codes.OutOfRange); reason(st) != "REVISION_COMPACTED" {
		t.Errorf("reason %q", reason(st))
	}
}

func TestOverdueReferralsAreFlagged(t *testing.T) {
	x, _, ilo, iom, _ := threeAgencies(t)
	r := refer(t, ilo, "iom")
	ctx := context.Background()
	list, _ := iom.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{OverdueOnly: true})
	if len(list.GetReferrals()) != 0 {
		t.Fatal("a new referral is overdue")
	}
	// Move the server's clock past the urgent deadline (24h).
	x.stop()
	later := func() time.Time { return time.Now().Add(25 * time.Hour) }
	x.serveWith(func(c *Config) { c.Now = later })
	iom = x.asAgency("iom")
	list, err := iom.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{OverdueOnly: true})
	if err != nil || len(list.GetReferrals()) != 1 || !list.GetReferrals()[0].GetOverdue() {
		t.Fatalf("overdue list %v %v", list, err)
	}
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatal(err)
	}
	got, _ := iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	if got.GetReferral().GetOverdue() {
		t.Fatal("an acknowledged referral is still overdue")
	}
}

func TestSuggestRecipientsFindsCoverageOrReportsAGap(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	mk := func(id string, niche exchangev1.Niche, cov ...*exchangev1.LocationRef) {
		_, err := sec.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: id, Agency: &exchangev1.Agency{
			DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO, Niches: []exchangev1.Niche{niche}, Coverage: cov,
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("shelter-pp", exchangev1.Niche_NICHE_SHELTER, &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"})
	mk("shelter-kh", exchangev1.Niche_NICHE_SHELTER, &exchangev1.LocationRef{Country: "KH"})
	mk("shelter-th", exchangev1.Niche_NICHE_SHELTER, &exchangev1.LocationRef{Country: "TH", Subdivision: "TH-10"})
	mk("legal-pp", exchangev1.Niche_NICHE_LEGAL_AID, &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"})
	ilo := func() as { x.createAgency(sec, "ilo"); return x.asAgency("ilo") }()

	resp, err := ilo.referrals().SuggestRecipients(ctx, &exchangev1.SuggestRecipientsRequest{Niche: exchangev1.Niche_NICHE_SHELTER, Subdivision: "KH-12"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range resp.GetAgencies() {
		names = append(names, a.GetName())
	}
	if strings.Join(names, ",") != "agencies/shelter-pp,agencies/shelter-kh" || resp.GetGap() {
		t.Fatalf("suggestions %v gap %v", names, resp.GetGap())
	}
	gap, err := ilo.referrals().SuggestRecipients(ctx, &exchangev1.SuggestRecipientsRequest{Niche: exchangev1.Niche_NICHE_LEGAL_AID, Subdivision: "TH-10"})
	if err != nil || !gap.GetGap() || len(gap.GetAgencies()) != 0 || gap.GetNote() == "" {
		t.Fatalf("gap %v %v", gap, err)
	}
}

func TestTheSenderErasesDetailsForGood(t *testing.T) {
	x, _, ilo, iom, unicef := threeAgencies(t)
	ctx := context.Background()
	r := refer(t, ilo, "iom")
	_, err := iom.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(), Reason: "asked by the person", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST})
	wantCode(t, err, codes.PermissionDenied)
	_, err = unicef.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(), Reason: "x", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST})
	wantCode(t, err, codes.NotFound)
	resp, err := ilo.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(), Reason: "asked by the person", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST})
	if err != nil || !resp.GetReferral().GetDetailsErased() {
		t.Fatalf("erase: %v %v", resp, err)
	}
	for who, c := range map[string]as{"sender": ilo, "receiver": iom} {
		got, err := c.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
		if err != nil || strings.Contains(protojson.Format(got), marker) || !got.GetReferral().GetDetailsErased() {
			t.Errorf("%s after erasure: %v %v", who, got, err)
		}
	}
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatalf("the referral's lifecycle goes on after erasure: %v", err)
	}
	if st, err := x.store.Status(ctx); err != nil || st.UnscrubbedErasures != 0 {
		t.Errorf("after the erasure was answered: %+v, %v; want its freed pages overwritten", st, err)
	}
}

// TestErasureIsAuditedWithItsReasonCode erases over gRPC and checks that
// the audit entry of the erasure carries the reason's code and nothing of
// the free-text note (which goes into the referral's history), that the
// other entries carry no reason, that the chain still verifies, that a
// missing or unknown reason code is INVALID_ARGUMENT naming reason_code
// and changes nothing, and that the scrub shows in the metrics.
func TestErasureIsAuditedWithItsReasonCode(t *testing.T) {
	x := startExchange(t)
	x.stop()
	m := NewMetrics()
	x.serveOn(store.Options{Observer: m}, func(c *Config) { c.Metrics = m })
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	ilo := x.asAgency("ilo")
	ctx := context.Background()
	r := refer(t, ilo, "iom")
	before := x.store.Revision()
	for _, code := range []exchangev1.ErasureReason{exchangev1.ErasureReason_ERASURE_REASON_UNSPECIFIED, 99} {
		_, err := ilo.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(), ReasonCode: code})
		if st := wantCode(t, err, codes.InvalidArgument); !slices.Equal(violatedFields(st), []string{"reason_code"}) {
			t.Errorf("reason code %d: violations on %v, want reason_code", code, violatedFields(st))
		}
	}
	if x.store.Revision() != before {
		t.Fatal("a refused erasure changed something")
	}
	const note = "asked at the Poipet office"
	resp, err := ilo.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(),
		ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_RECORDED_IN_ERROR, Reason: note})
	if err != nil {
		t.Fatal(err)
	}
	if h := resp.GetReferral().GetHistory(); h[len(h)-1].GetReason() != "identifying details erased (recorded-in-error): "+note {
		t.Errorf("the history records %q", h[len(h)-1].GetReason())
	}
	entries := allAuditEntries(t, sec, 100)
	v := auditchain.NewVerifier()
	erasures := 0
	for _, e := range entries {
		if err := v.Add(e); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(protojson.Format(e), "Poipet") {
			t.Errorf("audit entry %d holds the free-text note", e.GetSequence())
		}
		if e.GetMethod() == exchangev1.ReferralService_EraseReferralDetails_FullMethodName {
			erasures++
			if e.GetReason() != "recorded-in-error" || e.GetResourceName() != r.GetName() || e.GetActor() != "agencies/ilo" {
				t.Errorf("the erasure's audit entry: %v", e)
			}
		} else if e.GetReason() != "" {
			t.Errorf("audit entry %d (%s) has reason %q", e.GetSequence(), e.GetMethod(), e.GetReason())
		}
	}
	if erasures != 1 {
		t.Errorf("%d erasure entries in the audit chain, want 1", erasures)
	}
	for code, name := range erasureReasonCodes {
		if code == exchangev1.ErasureReason_ERASURE_REASON_UNSPECIFIED || name == "" || name == store.ErasureRetention {
			t.Errorf("reason %v has code %q", code, name)
		}
	}
	if n := len(erasureReasonCodes); n != exchangev1.ErasureReason(0).Descriptor().Values().Len()-1 {
		t.Errorf("%d reason codes for %d reasons", n, exchangev1.ErasureReason(0).Descriptor().Values().Len()-1)
	}

	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&text, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{`exchange_store_scrub_seconds_count{result="done"}`, "exchange_store_unscrubbed_erasures 0"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the metrics lack %s", want)
		}
	}
}

// blockingWriter takes writes until it is told to block, then waits.
type blockingWriter struct {
	first   chan struct{} // closed at the first write
	release chan struct{} // closed to let writes through
	once    sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.first) })
	<-w.release
	return len(p), nil
}

// TestErasureDuringABackupAnswersErasurePending erases over gRPC while a
// backup (a read begun before the erasure) is being streamed and stalls:
// past ScrubWait the call answers UNAVAILABLE with reason ERASURE_PENDING
// and a message that says the details are erased; the referral shows
// erased, and once the backup ends the metric of unscrubbed erasures goes
// back to 0 by itself.
func TestErasureDuringABackupAnswersErasurePending(t *testing.T) {
	x := startExchange(t)
	x.stop()
	x.serveWithStore(store.Options{ScrubWait: 200 * time.Millisecond})
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	ilo := x.asAgency("ilo")
	ctx := context.Background()
	r := refer(t, ilo, "iom")
	w := &blockingWriter{first: make(chan struct{}), release: make(chan struct{})}
	backedUp := make(chan error, 1)
	go func() { backedUp <- x.store.Backup(ctx, w, nil) }()
	var once sync.Once
	release := func() { once.Do(func() { close(w.release) }) }
	t.Cleanup(func() { release(); <-backedUp })
	<-w.first

	_, err := ilo.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(),
		ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST})
	st := wantCode(t, err, codes.Unavailable)
	if reason := statusErrorInfo(st).GetReason(); reason != "ERASURE_PENDING" || !strings.Contains(st.Message(), "erased and no longer readable") {
		t.Errorf("reason %q, message %q", reason, st.Message())
	}
	got, err := ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	if err != nil || !got.GetReferral().GetDetailsErased() || got.GetReferral().GetSubject() != nil {
		t.Fatalf("after the answer: %v, %v", got, err)
	}
	release()
	if err := <-backedUp; err != nil {
		t.Fatal(err)
	}
	backedUp <- nil // for the cleanup
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if status, _ := x.store.Status(ctx); status.UnscrubbedErasures == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the freed pages were not overwritten after the backup ended")
		}
	}
}

func TestShutdownEndsWatchesAtOnce(t *testing.T) {
	x, _, _, iom, _ := threeAgencies(t)
	stream, err := iom.referrals().WatchReferrals(context.Background(), &exchangev1.WatchReferralsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	x.stop()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown waited %v for an open watch", took)
	}
	for {
		_, err := stream.Recv()
		if err != nil {
			st := wantCode(t, err, codes.Unavailable)
			if !strings.Contains(st.Message(), "watch again from revision") {
				t.Errorf("message %q", st.Message())
			}
			return
		}
	}
}

func TestWatchFromARevisionNotYetReachedIsRefused(t *testing.T) {
	_, _, _, iom, _ := threeAgencies(t)
	stream, err := iom.referrals().WatchReferrals(context.Background(), &exchangev1.WatchReferralsRequest{StartRevision: time.Now().Add(time.Hour).UnixMicro()}) // revisions are commit times
	if err == nil {
		_, err = stream.Recv()
	}
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "start_revision" {
		t.Fatalf("violations %v", f)
	}
}
