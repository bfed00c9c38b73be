package server

import (
	"syscall"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/proto/alltogether/exchange/v1/validfast"
)

// BenchmarkReferralItemChecks measures what the server does for each
// referral of a batch before the store sees it: decoding it through the
// server's codec, the walk and protovalidate (violations), and the
// checks protovalidate cannot make (checkNewReferral). No network, no
// commit: its CPU and allocations per operation are per referral, which
// the profile of a whole push mixes with gRPC, TLS and bbolt.
func BenchmarkReferralItemChecks(b *testing.B) {
	v, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{validator: v}
	wire, err := proto.Marshal(&exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: "req-1"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpuBefore := processCPUTime(b)
	for b.Loop() {
		req := &exchangev1.CreateReferralRequest{}
		if err := (requestCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, req); err != nil {
			b.Fatal(err)
		}
		report, err := s.violations(req, false)
		if err != nil || report.total > 0 {
			b.Fatalf("violations: %v, %d found", err, report.total)
		}
		if err := checkNewReferral("agencies/ilo", "referral", req.GetReferral()); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time, not wall time: on a shared machine a wait for a core
	// is not the server's cost.
	b.ReportMetric(float64(processCPUTime(b)-cpuBefore)/float64(b.N), "cpu-ns/op")
}

// processCPUTime is the CPU time, user and system, this process has used.
func processCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReferralValidation compares the two ways a valid referral can
// pass its rules: the code generated from them (validfast, which the
// server tries first) and protovalidate (which judges whatever validfast
// does not pass).
func BenchmarkReferralValidation(b *testing.B) {
	v, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	req := &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: "req-1"}
	req.Referral.Subject.Languages = []string{"km", "th", "en"}
	b.Run("validfast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !validfast.Valid(req) {
				b.Fatal("validfast does not pass the referral")
			}
		}
	})
	b.Run("protovalidate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := v.Validate(req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
