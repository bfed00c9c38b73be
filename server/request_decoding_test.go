package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// undecodable are requests whose bytes are no GetAgencyRequest (nor
// PullDatasetRowsRequest, whose field 1 is a string too), with the cause
// decoding gives.
var undecodable = []struct {
	name, cause string
	payload     []byte
}{
	{"invalid UTF-8 in a string", "invalid UTF-8", protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "agencies/\xff")},
	{"truncated", "cannot parse invalid wire-format data",
		protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "agencies/ilo")[:8]},
	{"random bytes", "cannot parse invalid wire-format data", []byte{0x9f, 0x3c, 0xe7, 0x01, 0xff, 0xff, 0x62, 0x0b, 0xd4}},
}

// oversize is a request one byte over the 4 MiB receive limit: one
// unknown field of zeros.
func oversize() []byte {
	const total = defaultMaxRecv + 1
	for n := total; ; n-- {
		b := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.BytesType), uint64(n))
		if len(b)+n == total {
			return append(b, make([]byte, n)...)
		}
	}
}

// waitFor waits up to five seconds for done: a call's log line and
// metrics are written after its status is sent.
func waitFor(t *testing.T, done func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !done() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
}

// memSlice holds b as gRPC hands a codec a message.
func memSlice(b []byte) mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(b)} }

// observedExchange restarts an exchange whose logger writes JSON to the
// returned buffer and which keeps metrics.
func observedExchange(t *testing.T) (*exchange, *lockedBuffer, *Metrics) {
	t.Helper()
	x := startExchange(t)
	x.stop()
	logs := &lockedBuffer{}
	m := NewMetrics()
	x.serveOn(store.Options{Observer: m}, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		c.Metrics = m
	})
	return x, logs, m
}

// counterValue returns the value of the counter named name whose labels
// include labels, or 0.
func counterValue(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, mm := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range mm.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			return mm.GetCounter().GetValue()
		}
	}
	return 0
}

func TestUndecodableAndOversizeRequestsAreAnsweredLoggedAndCounted(t *testing.T) {
	x, logs, m := observedExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	ctx := context.Background()
	refused := func(code string) float64 {
		return counterValue(t, m, "exchange_calls_refused_total",
			map[string]string{"grpc_service": "alltogether.exchange.v1.DirectoryService", "grpc_method": "GetAgency", "grpc_code": code})
	}
	lines := func() int { return len(callLines(t, logs, "GetAgency")) }

	for _, c := range undecodable {
		t.Run(c.name, func(t *testing.T) {
			if proto.Unmarshal(c.payload, &exchangev1.GetAgencyRequest{}) == nil {
				t.Fatal("the payload decodes")
			}
			linesBefore, countBefore := lines(), refused("InvalidArgument")
			handled := map[string]string{"grpc_method": "GetAgency", "grpc_code": "InvalidArgument"}
			handledBefore := counterValue(t, m, "grpc_server_handled_total", handled)
			err := invokeRaw(ctx, ilo.conn, exchangev1.DirectoryService_GetAgency_FullMethodName, c.payload)
			st := wantCode(t, err, codes.InvalidArgument)
			waitFor(t, func() bool { return lines() > linesBefore && refused("InvalidArgument") > countBefore })
			want := "the request could not be decoded as alltogether.exchange.v1.GetAgencyRequest: "
			if !strings.HasPrefix(st.Message(), want) || !strings.Contains(st.Message(), c.cause) {
				t.Errorf("message %q, want %q… naming %q", st.Message(), want, c.cause)
			}
			if got := lines() - linesBefore; got != 1 {
				t.Errorf("%d call-log lines, want 1:\n%s", got, logs.String())
			}
			line := callLines(t, logs, "GetAgency")[linesBefore]
			wantValues(t, line, map[string]any{"grpc.code": "InvalidArgument", "caller": "agency/ilo", "grpc.method_type": "unary", "level": "INFO"})
			if got := refused("InvalidArgument") - countBefore; got != 1 {
				t.Errorf("exchange_calls_refused_total rose by %v, want 1", got)
			}
			if counterValue(t, m, "grpc_server_handled_total", handled) != handledBefore {
				t.Error("the refused call was counted twice, in grpc_server_handled_total too")
			}
		})
	}

	t.Run("over the receive limit", func(t *testing.T) {
		linesBefore, countBefore := lines(), refused("ResourceExhausted")
		err := invokeRaw(ctx, ilo.conn, exchangev1.DirectoryService_GetAgency_FullMethodName, oversize())
		wantCode(t, err, codes.ResourceExhausted)
		waitFor(t, func() bool { return lines() > linesBefore && refused("ResourceExhausted") > countBefore })
		if got := lines() - linesBefore; got != 1 {
			t.Errorf("%d call-log lines, want 1:\n%s", got, logs.String())
		}
		if got := refused("ResourceExhausted") - countBefore; got != 1 {
			t.Errorf("exchange_calls_refused_total rose by %v, want 1", got)
		}
	})

	t.Run("a call the interceptors saw", func(t *testing.T) {
		linesBefore, countBefore := lines(), refused("OK")
		handledBefore := counterValue(t, m, "grpc_server_handled_total", map[string]string{"grpc_method": "GetAgency", "grpc_code": "OK"})
		if _, err := ilo.dir.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: "agencies/ilo"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return lines() > linesBefore })
		time.Sleep(50 * time.Millisecond) // room for a second line, which must not come
		if got := lines() - linesBefore; got != 1 {
			t.Errorf("%d call-log lines, want 1:\n%s", got, logs.String())
		}
		if refused("OK") != countBefore {
			t.Error("a call the interceptors saw was counted as refused")
		}
		if got := counterValue(t, m, "grpc_server_handled_total", map[string]string{"grpc_method": "GetAgency", "grpc_code": "OK"}) - handledBefore; got != 1 {
			t.Errorf("grpc_server_handled_total rose by %v, want 1", got)
		}
	})

	t.Run("an unknown method", func(t *testing.T) {
		const method = "/alltogether.exchange.v1.DirectoryService/NoSuchMethod"
		countBefore := counterValue(t, m, "exchange_calls_refused_total", map[string]string{"grpc_method": "unknown", "grpc_code": "Unimplemented"})
		err := invokeRaw(ctx, ilo.conn, method, nil)
		wantCode(t, err, codes.Unimplemented)
		waitFor(t, func() bool { return len(callLines(t, logs, "NoSuchMethod")) > 0 })
		if got := len(callLines(t, logs, "NoSuchMethod")); got != 1 {
			t.Errorf("%d call-log lines, want 1:\n%s", got, logs.String())
		}
		if got := counterValue(t, m, "exchange_calls_refused_total", map[string]string{"grpc_method": "unknown", "grpc_code": "Unimplemented"}) - countBefore; got != 1 {
			t.Errorf("exchange_calls_refused_total{grpc_method=unknown} rose by %v, want 1", got)
		}
		if strings.Contains(metricsText(t, m), "NoSuchMethod") {
			t.Error("a metric label carries a method name the caller made up")
		}
	})
}

// metricsText is every metric, in the text format.
func metricsText(t *testing.T, m *Metrics) string {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, f := range families {
		b.WriteString(f.String())
	}
	return b.String()
}

func TestUndecodableStreamRequestsAreAnsweredLoggedAndCounted(t *testing.T) {
	x, logs, m := observedExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	method := exchangev1.DatasetService_PullDatasetRows_FullMethodName
	cases := append(undecodable[:len(undecodable):len(undecodable)], struct {
		name, cause string
		payload     []byte
	}{"over the receive limit", "", oversize()})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, codeName := codes.InvalidArgument, "InvalidArgument"
			if c.cause == "" {
				code, codeName = codes.ResourceExhausted, "ResourceExhausted"
			}
			linesBefore := len(callLines(t, logs, "PullDatasetRows"))
			handled := map[string]string{"grpc_method": "PullDatasetRows", "grpc_code": codeName}
			handledBefore := counterValue(t, m, "grpc_server_handled_total", handled)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cs, err := ilo.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodecV2(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.SendMsg(&rawMessage{b: c.payload}); err != nil {
				t.Fatal(err)
			}
			cs.CloseSend()
			err = cs.RecvMsg(&rawMessage{})
			st := wantCode(t, err, code)
			if c.cause != "" && (!strings.HasPrefix(st.Message(), "the request could not be decoded as alltogether.exchange.v1.PullDatasetRowsRequest: ") ||
				!strings.Contains(st.Message(), c.cause)) {
				t.Errorf("message %q", st.Message())
			}
			waitFor(t, func() bool {
				return len(callLines(t, logs, "PullDatasetRows")) > linesBefore && counterValue(t, m, "grpc_server_handled_total", handled) > handledBefore
			})
			if got := len(callLines(t, logs, "PullDatasetRows")) - linesBefore; got != 1 {
				t.Errorf("%d call-log lines, want 1:\n%s", got, logs.String())
			}
			if got := counterValue(t, m, "grpc_server_handled_total", handled) - handledBefore; got != 1 {
				t.Errorf("grpc_server_handled_total rose by %v, want 1", got)
			}
			if got := counterValue(t, m, "exchange_calls_refused_total", map[string]string{"grpc_method": "PullDatasetRows"}); got != 0 {
				t.Errorf("a stream the interceptors saw was also counted as refused (%v)", got)
			}
		})
	}
}

// TestRequestCodecRefusesWithoutATarget pins what the codec does with a
// message decoded without a target (no service of the exchange is
// registered so): it refuses the bytes all the same, through gRPC.
func TestRequestCodecRefusesWithoutATarget(t *testing.T) {
	err := requestCodec{}.Unmarshal(memSlice(undecodable[0].payload), &exchangev1.GetAgencyRequest{})
	if err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Errorf("got %v, want the decoding error", err)
	}
	big := mustMarshal(t, &exchangev1.AggregateDatasetRowsRequest{Locations: make([]string, 201)})
	if err := (requestCodec{}).Unmarshal(memSlice(big), &exchangev1.AggregateDatasetRowsRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("got %v, want INVALID_ARGUMENT", err)
	}
}
