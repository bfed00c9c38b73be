package server

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/types/known/emptypb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// held is a stream the test holds open; cancel ends it.
type held struct {
	cancel context.CancelFunc
	err    error // the refusal, if the server refused the stream
}

// holdReferralWatch opens a referral watch as c and waits for the server's
// first message (a heartbeat), so that the server has admitted it.
func holdReferralWatch(c as) held {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	return held{cancel, err}
}

// holdPlanWatch opens a plan watch as c and waits for its first heartbeat.
func holdPlanWatch(c as) held {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.plans().WatchPlans(ctx, &exchangev1.WatchPlansRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	return held{cancel, err}
}

// holdHealthWatch opens the health service's watch as c and waits for the
// status it sends at once.
func holdHealthWatch(c as) held {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := healthpb.NewHealthClient(c.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	return held{cancel, err}
}

// holdReflection opens a reflection stream as c, a stream that is not a watch and
// stays open until the client closes it, and waits for one answer.
func holdReflection(c as) held {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := reflectionpb.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctx)
	if err == nil {
		err = s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		// Send answers io.EOF when the server has already ended the
		// stream (a refusal can beat the request); the stream's status,
		// the refusal, is then what Recv returns.
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err == nil {
		_, err = s.Recv()
	}
	return held{cancel, err}
}

// limitedWatching restarts the exchange with the given limits and
// watches that send their first heartbeat after 20ms.
func limitedWatching(t *testing.T, lim Limits) *exchange {
	x := startExchange(t)
	x.stop()
	x.serveWith(func(c *Config) { c.Limits, c.WatchHeartbeat = lim, 20*time.Millisecond })
	return x
}

// waitInFlight waits until actor's count of kind is want.
func waitInFlight(t *testing.T, srv *Server, actor string, k callKind, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.concurrency.inFlight(actor, k) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d %s, want %d", actor, srv.concurrency.inFlight(actor, k), callKindLimits[k].what, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantRefusal checks a RESOURCE_EXHAUSTED refusal and its message.
func wantRefusal(t *testing.T, err error, message, wantReason string) {
	t.Helper()
	st := wantCode(t, err, codes.ResourceExhausted)
	if st.Message() != message || reason(st) != wantReason {
		t.Errorf("refusal %q (reason %s), want %q (%s)", st.Message(), reason(st), message, wantReason)
	}
}

func TestAnAgencyIsRefusedWatchesAndStreamsBeyondItsLimitsAlone(t *testing.T) {
	x := limitedWatching(t, Limits{CallsPerSecond: -1, WatchesPerCaller: 4, StreamsPerCaller: 6})
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	// The attacker spreads its watches over connections and certificates
	// of its own: the limit is the agency's.
	conns := []as{x.asAgency("ilo"), x.asAgency("ilo"), x.asAgency("ilo")}
	var open []held
	for i, watch := range []func(as) held{holdReferralWatch, holdPlanWatch, holdHealthWatch, holdReferralWatch} {
		h := watch(conns[i%len(conns)])
		if h.err != nil {
			t.Fatalf("watch %d of 4: %v", i+1, h.err)
		}
		open = append(open, h)
	}
	waitInFlight(t, x.server, "agencies/ilo", watchCall, 4)
	for _, watch := range []func(as) held{holdReferralWatch, holdPlanWatch, holdHealthWatch} {
		h := watch(conns[2])
		wantRefusal(t, h.err, "agencies/ilo has 4 watches open, the limit is 4 (--max-watches-per-agency); close one or wait", "TOO_MANY_WATCHES")
		h.cancel()
	}

	// Another agency, and the attacker's own unary calls, go on.
	iom := x.asAgency("iom")
	other := holdReferralWatch(iom)
	if other.err != nil {
		t.Fatalf("another agency's watch: %v", other.err)
	}
	defer other.cancel()
	refer(t, iom, "ilo")
	if err := listAgencies(conns[0]); err != nil {
		t.Fatalf("the attacker's unary call: %v", err)
	}

	// Streams that are not watches count against the stream limit.
	for i := range 2 {
		h := holdReflection(conns[i])
		if h.err != nil {
			t.Fatalf("stream %d of 6: %v", 5+i, h.err)
		}
		open = append(open, h)
	}
	wantRefusal(t, holdReflection(conns[2]).err, "agencies/ilo has 6 streams open, the limit is 6 (--max-streams-per-agency); close one or wait", "TOO_MANY_STREAMS")

	// Closing one watch makes room for one.
	open[0].cancel()
	waitInFlight(t, x.server, "agencies/ilo", watchCall, 3)
	again := holdPlanWatch(conns[2])
	if again.err != nil {
		t.Fatalf("a watch after one closed: %v", again.err)
	}
	open = append(open, again)
	for _, h := range open {
		h.cancel()
	}
	waitInFlight(t, x.server, "agencies/ilo", watchCall, 0)
	waitInFlight(t, x.server, "agencies/ilo", streamingCall, 0)
}

// TestStreamCountsReturnToZeroHoweverStreamsEnd ends streams by the
// client's cancellation, by an error of the handler, by a refusal and by
// the server's shutdown, and checks that nothing stays counted.
func TestStreamCountsReturnToZeroHoweverStreamsEnd(t *testing.T) {
	x := limitedWatching(t, Limits{CallsPerSecond: -1, WatchesPerCaller: 3, StreamsPerCaller: 3})
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	const actor = "agencies/ilo"
	srv := x.server

	for round := range 20 {
		var hs []held
		for range 3 {
			h := holdReferralWatch(ilo)
			if h.err != nil {
				t.Fatalf("round %d: %v", round, h.err)
			}
			hs = append(hs, h)
		}
		wantCode(t, holdReferralWatch(ilo).err, codes.ResourceExhausted)
		for _, h := range hs {
			h.cancel()
		}
		waitInFlight(t, srv, actor, watchCall, 0)
	}

	// A watch the handler ends with an error (a start beyond the current
	// revision), many times over.
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := ilo.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{StartRevision: 1 << 62})
		if err == nil {
			_, err = s.Recv()
		}
		cancel()
		wantCode(t, err, codes.InvalidArgument)
	}
	waitInFlight(t, srv, actor, watchCall, 0)
	waitInFlight(t, srv, actor, streamingCall, 0)

	// Watches open when the server shuts down end with it, and give their
	// places back.
	var hs []held
	for range 3 {
		h := holdReferralWatch(ilo)
		if h.err != nil {
			t.Fatal(h.err)
		}
		hs = append(hs, h)
	}
	waitInFlight(t, srv, actor, watchCall, 3)
	x.stop()
	for _, h := range hs {
		h.cancel()
	}
	if n, m := srv.concurrency.inFlight(actor, watchCall), srv.concurrency.inFlight(actor, streamingCall); n != 0 || m != 0 {
		t.Fatalf("after shutdown %d watches and %d streams are still counted", n, m)
	}
}

// blocking is a service whose unary method waits until the test lets it
// go, to hold calls in flight.
func blocking(release <-chan struct{}) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "test.Blocking",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Wait",
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Blocking/Wait"}
				return interceptor(ctx, in, info, func(ctx context.Context, _ any) (any, error) {
					select {
					case <-release:
					case <-ctx.Done():
					}
					return &emptypb.Empty{}, nil
				})
			},
		}},
	}
}

func TestUnaryCallsInFlightPerAgencyAreBounded(t *testing.T) {
	accessRules["/test.Blocking/Wait"] = anyMember
	t.Cleanup(func() { delete(accessRules, "/test.Blocking/Wait") })
	release := make(chan struct{})
	x := startExchange(t)
	x.stop()
	x.register = func(s *Server) { s.grpc.RegisterService(blocking(release), struct{}{}) }
	x.serveWith(func(c *Config) { c.Limits = Limits{CallsPerSecond: -1, CallsInFlightPerCaller: 3} })
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	ilo := []as{x.asAgency("ilo"), x.asAgency("ilo")}

	done := make(chan error, 3)
	for i := range 3 {
		go func() {
			done <- ilo[i%2].conn.Invoke(context.Background(), "/test.Blocking/Wait", &emptypb.Empty{}, &emptypb.Empty{})
		}()
	}
	waitInFlight(t, x.server, "agencies/ilo", unaryCall, 3)
	wantRefusal(t, listAgencies(ilo[1]), "agencies/ilo has 3 calls in flight, the limit is 3 (--max-calls-in-flight-per-agency); wait for one to finish", "TOO_MANY_CALLS_IN_FLIGHT")
	if err := listAgencies(x.asAgency("iom")); err != nil {
		t.Fatalf("another agency: %v", err)
	}
	if err := listAgencies(sec); err != nil {
		t.Fatalf("the secretariat: %v", err)
	}
	close(release)
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitInFlight(t, x.server, "agencies/ilo", unaryCall, 0)
	if err := listAgencies(ilo[0]); err != nil {
		t.Fatalf("after the calls finished: %v", err)
	}
}

// TestWatchesAreFoundByTheirMethodDescriptors checks which registered
// methods count as watches: every server-streaming method named Watch...,
// so that a new one is bounded without being listed.
func TestWatchesAreFoundByTheirMethodDescriptors(t *testing.T) {
	x := startExchange(t)
	var watches, streams []string
	for svc, info := range x.server.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if isWatch(full, m.IsServerStream) {
				watches = append(watches, full)
			} else if m.IsServerStream || m.IsClientStream {
				streams = append(streams, full)
			}
		}
	}
	slices.Sort(watches)
	slices.Sort(streams)
	want := []string{
		exchangev1.AuditService_WatchAuditEntries_FullMethodName,
		exchangev1.DatasetService_WatchDatasetRows_FullMethodName,
		exchangev1.PlanService_WatchPlans_FullMethodName,
		exchangev1.ReferralService_WatchReferrals_FullMethodName,
		healthpb.Health_Watch_FullMethodName,
	}
	slices.Sort(want)
	if !slices.Equal(watches, want) {
		t.Errorf("watches %v, want %v", watches, want)
	}
	for _, s := range streams {
		if strings.Contains(s, "/Watch") {
			t.Errorf("%s is named like a watch but not counted as one", s)
		}
	}
	t.Logf("streams that are not watches: %v", streams)
}
