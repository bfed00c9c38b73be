package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// auditChainGauges report the last verification of the audit chain.
type auditChainGauges struct {
	ok, verifiedAt, entries prometheus.Gauge
}

func newAuditChainGauges(r *prometheus.Registry) *auditChainGauges {
	g := &auditChainGauges{
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Name: "exchange_audit_chain_ok",
			Help: "1 if the last verification of the audit chain found it intact, 0 if broken, -1 before any verification."}),
		verifiedAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "exchange_audit_chain_verified_timestamp_seconds",
			Help: "When the last verification of the audit chain finished (Unix time); 0 before any."}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{Name: "exchange_audit_chain_entries_verified",
			Help: "How many audit entries the last verification checked (the whole chain, or the recent ones at start-up)."}),
	}
	g.ok.Set(-1)
	r.MustRegister(g.ok, g.verifiedAt, g.entries)
	return g
}

// ObserveAuditVerification records a verification of the audit chain that
// finished at the given time after checking entries: err is nil when the
// chain was intact, and the verification's failure otherwise.
func (m *Metrics) ObserveAuditVerification(entries uint64, err error, at time.Time) {
	ok := 1.0
	if err != nil {
		ok = 0
	}
	m.audit.ok.Set(ok)
	m.audit.verifiedAt.Set(float64(at.UnixNano()) / 1e9)
	m.audit.entries.Set(float64(entries))
}
