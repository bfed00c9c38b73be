package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protojson"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestIdentifyingDetailsLeakNowhere plants a marker in referral details and
// drives every path that touches them, valid and invalid, then searches
// the audit chain, the logs (at debug level), every error message, the
// metrics and a dataset export for it.
func TestIdentifyingDetailsLeakNowhere(t *testing.T) {
	x := startExchange(t)
	x.stop()
	logs := &lockedBuffer{}
	m := NewMetrics()
	x.serveOn(store.Options{Observer: m}, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Metrics = m
	})
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	}
	ilo, iom, unicef := x.asAgency("ilo"), x.asAgency("iom"), x.asAgency("unicef")
	ctx := context.Background()
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	r := refer(t, ilo, "iom")
	_, err := iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	note(err)
	_, err = unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	note(err)
	// Invalid requests carrying the marker in the fields they break.
	bad := newReferral("iom")
	bad.Subject.Name = strings.Repeat(marker, 20)
	bad.Subject.Languages = []string{marker}
	bad.CaseNotes = strings.Repeat(marker, 1000)
	_, err = ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: bad, RequestId: nextRequestID()})
	note(err)
	wrongConsent := newReferral("iom")
	wrongConsent.Consent.ReceivingAgency = "agencies/unicef"
	_, err = ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: wrongConsent, RequestId: nextRequestID()})
	note(err)
	batch, err := ilo.referrals().BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{
		{Referral: bad, RequestId: nextRequestID()}, {Referral: newReferral("iom"), RequestId: nextRequestID()}}})
	note(err)
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatal(err)
	}
	fwd := newReferral("unicef")
	_, err = iom.referrals().ForwardReferral(ctx, &exchangev1.ForwardReferralRequest{Name: r.GetName(), Receiver: "agencies/unicef",
		Service: fwd.GetService(), Consent: fwd.GetConsent(), RequestId: nextRequestID(), SealedDetails: sealTest(&exchangev1.ReferralDetails{CaseNotes: "forwarded: " + marker})})
	note(err)
	_, err = ilo.referrals().RevokeReferralConsent(ctx, &exchangev1.RevokeReferralConsentRequest{Name: r.GetName(), Reason: "withdrawn"})
	note(err)
	_, err = ilo.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(), Reason: "asked", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST})
	note(err)

	// A dataset export, pulled after all this.
	if _, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "returns", Dataset: returnsDataset()}); err != nil {
		t.Fatal(err)
	}
	write(t, ilo, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 4))
	rows, _ := pullAll(t, ilo, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"})

	entries, err := x.store.AuditEntries(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics strings.Builder
	for _, f := range families {
		expfmt.MetricFamilyToText(&metrics, f)
	}
	var audit, export strings.Builder
	for _, e := range entries {
		audit.WriteString(protojson.Format(e))
	}
	for _, r := range rows {
		export.WriteString(protojson.Format(r))
	}
	places := map[string]string{
		"audit entries":  audit.String(),
		"logs":           logs.String(),
		"error messages": strings.Join(errs, "\n") + protojson.Format(batch),
		"metrics":        metrics.String(),
		"dataset export": export.String(),
	}
	for place, text := range places {
		if text == "" && place != "error messages" {
			t.Errorf("nothing to search in %s: the test is not looking", place)
		}
		if strings.Contains(text, marker) {
			t.Errorf("the marker leaked into %s", place)
		}
	}
	if len(errs) < 3 || len(entries) < 8 {
		t.Fatalf("the test did too little: %d errors, %d audit entries", len(errs), len(entries))
	}
}
