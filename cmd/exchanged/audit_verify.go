package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/server"
	"github.com/alltogether/exchange/store"
)

// auditVerifyOptions say how exchanged verifies the audit chain.
type auditVerifyOptions struct {
	// atStart is "recent", "full" or "off".
	atStart string
	// recent is how many of the last entries the recent check reads.
	recent int
	// every is how often the whole chain is verified in the background;
	// 0 never.
	every time.Duration
}

// addAuditVerifyFlags defines the audit verification flags, each with its
// EXCHANGE_* variable.
func addAuditVerifyFlags(cmd *cobra.Command, o *auditVerifyOptions) {
	f := cmd.Flags()
	f.StringVar(&o.atStart, "audit-verify", "recent",
		"how to verify the audit chain before serving: recent (the stored head and the last --audit-verify-recent entries), full (every entry), or off; a broken chain stops exchanged (EXCHANGE_AUDIT_VERIFY)")
	f.IntVar(&o.recent, "audit-verify-recent", 10_000,
		"how many of the last audit entries --audit-verify=recent checks (EXCHANGE_AUDIT_VERIFY_RECENT)")
	f.DurationVar(&o.every, "audit-verify-every", 24*time.Hour,
		"how often to verify the whole audit chain in the background (and once soon after a start that did not); the result is in the metrics; 0 never (EXCHANGE_AUDIT_VERIFY_EVERY)")
	bindEnv(cmd, "audit-verify", "EXCHANGE_AUDIT_VERIFY")
	bindEnv(cmd, "audit-verify-recent", "EXCHANGE_AUDIT_VERIFY_RECENT")
	bindEnv(cmd, "audit-verify-every", "EXCHANGE_AUDIT_VERIFY_EVERY")
}

// validate refuses settings that mean nothing.
func (o auditVerifyOptions) validate() error {
	switch o.atStart {
	case "recent", "full", "off":
	default:
		return fmt.Errorf("--audit-verify %q: want recent, full or off", o.atStart)
	}
	if o.recent < 1 {
		return fmt.Errorf("--audit-verify-recent %d: want at least 1", o.recent)
	}
	if o.every < 0 {
		return fmt.Errorf("--audit-verify-every %v: want a positive duration, or 0 for never", o.every)
	}
	return nil
}

// verifyAuditAtStart verifies the audit chain as o.atStart says, before
// exchanged writes anything or serves, and records the result in the
// metrics. A broken chain is an error that says which entry and what to
// do.
func verifyAuditAtStart(ctx context.Context, st *store.Store, dbPath string, o auditVerifyOptions, metrics *server.Metrics, log *slog.Logger) error {
	var entries uint64
	var err error
	start := time.Now()
	switch o.atStart {
	case "off":
		log.Warn("the audit chain was not verified at start-up (--audit-verify=off)")
		return nil
	case "full":
		entries, err = st.VerifyAudit(ctx)
	default:
		entries, err = st.VerifyAuditRecent(ctx, uint64(o.recent))
	}
	if err != nil && store.KindOf(err) != store.KindFailedPrecondition {
		return fmt.Errorf("verifying the audit chain of %s: %w", dbPath, err)
	}
	metrics.ObserveAuditVerification(entries, err, time.Now())
	if err != nil {
		return fmt.Errorf("the audit chain of %s is broken: %w.\n"+
			"The database was changed outside the exchange, or the disk damaged it: its record of who did what can no longer be trusted. "+
			"Keep this file for investigation and restore the last good backup (exchanged restore --from BACKUP --force); "+
			"--audit-verify=off starts exchanged on it anyway, only to investigate", dbPath, err)
	}
	log.Info("audit chain verified", "check", o.atStart, "entries", entries, "took", time.Since(start).String())
	return nil
}

// verifyAuditChain verifies the whole audit chain every interval until ctx
// ends, first at once unless the start-up check already read it all, and
// records each result in the metrics; a broken chain is logged as an
// error. Each run reads the chain in short read transactions, so writes go
// on.
func verifyAuditChain(ctx context.Context, st *store.Store, metrics *server.Metrics, log *slog.Logger, every time.Duration, now bool) {
	if every <= 0 {
		return
	}
	run := func() {
		start := time.Now()
		entries, err := st.VerifyAudit(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && store.KindOf(err) != store.KindFailedPrecondition {
			log.Error("audit chain verification failed to run", "error", err.Error())
			return
		}
		metrics.ObserveAuditVerification(entries, err, time.Now())
		if err != nil {
			log.Error("the audit chain is broken: restore the last good backup and investigate", "error", err.Error(), "entries", entries)
			return
		}
		log.Info("audit chain verified", "check", "full", "entries", entries, "took", time.Since(start).String())
	}
	if now {
		run()
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			run()
		}
	}
}
