package server

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

func TestMetricsCountCallsAndCommits(t *testing.T) {
	x := startExchange(t)
	x.stop()
	m := NewMetrics()
	x.serveOn(store.Options{Observer: m}, func(c *Config) { c.Metrics = m })
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ctx := context.Background()
	if _, err := sec.dir.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: "agencies/nobody"}); err == nil {
		t.Fatal("expected NOT_FOUND")
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range families {
		found[f.GetName()] = true
	}
	for _, name := range []string{"grpc_server_handled_total", "grpc_server_handling_seconds", "exchange_store_write_seconds",
		"exchange_store_writes_per_commit", "exchange_store_size_bytes", "exchange_store_revision", "exchange_store_compacted_revision",
		// Go runtime and process metrics, which docs/operations.md promises.
		"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if !found[name] {
			t.Errorf("metric %s missing", name)
		}
	}
	var b strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	text := b.String()
	for _, want := range []string{
		`grpc_code="OK",grpc_method="CreateAgency"`, `grpc_code="NotFound",grpc_method="GetAgency"`,
		// A revision is a time in microseconds; the text format writes
		// it as a float, exact below 2^53.
		"exchange_store_revision " + strconv.FormatFloat(float64(x.store.Revision()), 'g', -1, 64),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics do not show %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "ilo") || strings.Contains(text, "secretariat") {
		t.Error("metric labels carry identities")
	}
}

func TestEveryResponseNamesItsRequestID(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	var header metadata.MD
	_, err := sec.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: "ilo", RequestId: "case-system-42",
		Agency: &exchangev1.Agency{DisplayName: "ILO", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}}, grpc.Header(&header))
	if err != nil || len(header.Get("x-request-id")) != 1 || header.Get("x-request-id")[0] != "case-system-42" {
		t.Fatalf("create: header %v, err %v", header, err)
	}
	mine := metadata.AppendToOutgoingContext(ctx, "x-request-id", "trace-7")
	if _, err := sec.dir.GetAgency(mine, &exchangev1.GetAgencyRequest{Name: "agencies/ilo"}, grpc.Header(&header)); err != nil || header.Get("x-request-id")[0] != "trace-7" {
		t.Fatalf("get with x-request-id: header %v, err %v", header, err)
	}
	if _, err := sec.dir.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: "agencies/ilo"}, grpc.Header(&header)); err != nil || len(header.Get("x-request-id")[0]) != 16 {
		t.Fatalf("get without: header %v, err %v", header, err)
	}
}
