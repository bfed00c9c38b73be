package server

import (
	"context"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/alltogether/exchange/store"
)

// Metrics are the exchange's Prometheus metrics: per-method RPC counts,
// codes and latencies (from go-grpc-middleware's provider), and the
// store's commit latency, writes per commit, size, revision and
// change-log horizon, the scrubs after erasures, and the last
// verification of the audit chain. Labels never carry identities or
// resource names.
type Metrics struct {
	// Registry holds every metric; serve it with promhttp.
	Registry *prometheus.Registry
	rpc      *grpcprom.ServerMetrics
	write    *prometheus.HistogramVec
	batch    prometheus.Histogram
	audit    *auditChainGauges
	scrub    *prometheus.HistogramVec
}

// NewMetrics makes the metrics and registers them, with Go runtime and
// process metrics, in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		rpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}))),
		write: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exchange_store_write_seconds",
			Help:    "Time from a store write's start to its durable commit (group commit included).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1},
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "exchange_store_writes_per_commit",
			Help:    "How many writes shared one durable commit.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		scrub: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exchange_store_scrub_seconds",
			Help:    "Time a scrub took to overwrite the pages that erasures freed; result \"unfinished\" when a read begun before them kept it from finishing.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, 1, 5, 30},
		}, []string{"result"}),
	}
	m.Registry.MustRegister(m.rpc, m.write, m.batch, m.scrub,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.audit = newAuditChainGauges(m.Registry)
	return m
}

// ObserveWrite implements store.Observer.
func (m *Metrics) ObserveWrite(wait time.Duration, committed bool) {
	result := "committed"
	if !committed {
		result = "refused"
	}
	m.write.WithLabelValues(result).Observe(wait.Seconds())
}

// ObserveCommit implements store.Observer.
func (m *Metrics) ObserveCommit(writes int) { m.batch.Observe(float64(writes)) }

// ObserveScrub implements store.ScrubObserver.
func (m *Metrics) ObserveScrub(took time.Duration, _ int, err error) {
	result := "done"
	if err != nil {
		result = "unfinished"
	}
	m.scrub.WithLabelValues(result).Observe(took.Seconds())
}

// watchStore registers gauges read from the store at each scrape.
func (m *Metrics) watchStore(st *store.Store) {
	status := func() store.Status {
		s, _ := st.Status(context.Background())
		return s
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exchange_store_size_bytes", Help: "Size of the database."},
			func() float64 { return float64(status().Size) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exchange_store_max_size_bytes", Help: "Size past which writes are refused; 0 for none."},
			func() float64 { return float64(status().MaxSize) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exchange_store_revision", Help: "Last committed revision."},
			func() float64 { return float64(status().Revision) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exchange_store_compacted_revision", Help: "Change-log horizon: entries up to it are compacted."},
			func() float64 { return float64(status().Compacted) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "exchange_store_unscrubbed_erasures", Help: "Erasures whose freed pages are not yet overwritten: above 0 for long means a read begun before them (a backup) still runs."},
			func() float64 { return float64(status().UnscrubbedErasures) }),
	)
}
