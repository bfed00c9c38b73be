package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
	"github.com/alltogether/exchange/store"
)

func TestParseAckDeadlines(t *testing.T) {
	got, err := parseAckDeadlines("urgent=2h, emergency=30m")
	if err != nil {
		t.Fatal(err)
	}
	if got[exchangev1.Urgency_URGENCY_URGENT] != 2*time.Hour || got[exchangev1.Urgency_URGENCY_EMERGENCY] != 30*time.Minute ||
		got[exchangev1.Urgency_URGENCY_ROUTINE] != 72*time.Hour {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"urgent", "urgent=soon", "urgent=-1h", "unspecified=1h", "later=1h"} {
		if _, err := parseAckDeadlines(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTuneGC checks the collector's default and that GOGC in the
// environment wins.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("without GOGC the collector's target is %d, want %d", got, defaultGCPercent)
	}
	tuneGC(func(k string) string { return map[string]string{"GOGC": "100"}[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 the collector's target is %d, want 100", got)
	}
}

// TestRetentionErasesClosedReferralsWithItsReason runs the retention job
// on a store holding a cancelled and an open referral: it erases the
// cancelled one's details, audited by the exchange with the reason
// "retention", leaves the open one alone, and the pages its erasure freed
// are overwritten.
func TestRetentionErasesClosedReferralsWithItsReason(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "exchange.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sec := store.Op{Actor: "secretariat", Method: "test"}
	for _, id := range []string{"ilo", "iom"} {
		if _, err := st.CreateAgency(ctx, sec, id, &exchangev1.Agency{DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
			t.Fatal(err)
		}
	}
	ilo := store.Op{Actor: "agencies/ilo", Method: "test"}
	// The details are sealed as a client seals them; the exchange keeps
	// the blob and cannot open it.
	ring, err := seal.CreateKeyRing(filepath.Join(t.TempDir(), "ilo.age-keys"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := seal.Seal([]byte("Sokha"), seal.Binding{RequestID: "a", Sender: "agencies/ilo", Receiver: "agencies/iom"}, ring.Current().Recipient())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rid := range []string{"a", "b"} {
		res, err := st.CreateReferrals(ctx, ilo, []store.NewReferral{{RequestID: rid, Referral: &exchangev1.Referral{
			Receiver: "agencies/iom", SealedDetails: sealed}}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
		names = append(names, res[0].Referral.GetName())
	}
	if _, err := st.UpdateReferral(ctx, ilo, names[0], "", func(r *exchangev1.Referral) error {
		r.State = exchangev1.ReferralState_REFERRAL_STATE_CANCELLED
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // closed longer ago than the retention period below
	done := make(chan struct{})
	go func() {
		defer close(done)
		eraseExpiredReferrals(ctx, st, slog.New(slog.DiscardHandler), time.Millisecond, time.Hour)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r, err := st.GetReferral(ctx, names[0])
		status, _ := st.Status(ctx)
		if err == nil && r.GetDetailsErased() && status.UnscrubbedErasures == 0 {
			break // erased, and the pages it freed overwritten
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retention job did not erase the cancelled referral and overwrite its pages: %v, %+v", r, status)
		}
	}
	cancel()
	<-done
	if r, err := st.GetReferral(context.Background(), names[1]); err != nil || r.GetDetailsErased() || !bytes.Equal(r.GetSealedDetails(), sealed) {
		t.Errorf("the open referral: %v, %v", r, err)
	}
	entries, err := st.AuditEntries(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if last.GetActor() != "exchange" || last.GetMethod() != "exchanged/retention" || last.GetReason() != store.ErasureRetention || last.GetResourceName() != names[0] {
		t.Errorf("the retention erasure's audit entry: %v", last)
	}
}
