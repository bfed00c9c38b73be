package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/server"
	"github.com/alltogether/exchange/store"
)

// TestAuditVerifyFlags checks the flags' defaults, their variables and
// the values refused.
func TestAuditVerifyFlags(t *testing.T) {
	root := newRootCommand(io.Discard, io.Discard).cmd
	t.Setenv("EXCHANGE_AUDIT_VERIFY", "full")
	t.Setenv("EXCHANGE_AUDIT_VERIFY_EVERY", "1h")
	if err := root.ParseFlags([]string{"--audit-verify-every", "2h"}); err != nil {
		t.Fatal(err)
	}
	if err := root.PreRunE(root, nil); err != nil {
		t.Fatal(err)
	}
	mode, _ := root.Flags().GetString("audit-verify")
	every, _ := root.Flags().GetDuration("audit-verify-every")
	recent, _ := root.Flags().GetInt("audit-verify-recent")
	if mode != "full" || every != 2*time.Hour || recent != 10_000 {
		t.Errorf("audit-verify %q, every %v, recent %d; want full (from the environment), 2h (the command line), 10000", mode, every, recent)
	}
	for _, bad := range []auditVerifyOptions{
		{atStart: "some", recent: 1}, {atStart: "recent", recent: 0}, {atStart: "full", recent: 1, every: -time.Hour},
	} {
		if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "--audit-verify") {
			t.Errorf("%+v accepted (%v)", bad, err)
		}
	}
}

// TestTheAuditChainIsVerifiedOnSchedule runs the background verification
// every 20ms and checks that each run reads the whole chain as it grows
// and records the result in the metrics.
func TestTheAuditChainIsVerifiedOnSchedule(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "exchange.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	create := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := st.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "test"}, fmt.Sprintf("a-%d", i),
				&exchangev1.Agency{DisplayName: "x", Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR}); err != nil {
				t.Fatal(err)
			}
		}
	}
	create(0, 5)
	m := server.NewMetrics()
	gauge := func(name string) float64 {
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if ok := gauge("exchange_audit_chain_ok"); ok != -1 {
		t.Fatalf("exchange_audit_chain_ok before any verification = %v, want -1", ok)
	}
	done := make(chan struct{})
	go func() {
		verifyAuditChain(ctx, st, m, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond, false)
		close(done)
	}()
	waitFor := func(entries float64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); gauge("exchange_audit_chain_entries_verified") != entries; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("exchange_audit_chain_entries_verified = %v, want %v", gauge("exchange_audit_chain_entries_verified"), entries)
			}
		}
	}
	waitFor(5)
	create(5, 8)
	waitFor(8)
	if ok, at := gauge("exchange_audit_chain_ok"), gauge("exchange_audit_chain_verified_timestamp_seconds"); ok != 1 || time.Since(time.Unix(int64(at), 0)) > time.Minute {
		t.Errorf("exchange_audit_chain_ok %v, verified at %v; want 1, just now", ok, at)
	}
	cancel()
	<-done
}
