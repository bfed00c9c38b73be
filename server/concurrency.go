package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// callKind is what a call in flight counts against.
type callKind int

const (
	// unaryCall is a unary call, from its admission to its answer.
	unaryCall callKind = iota
	// streamingCall is any streaming call (watches, pulls, backups,
	// reflection), from its admission until it ends.
	streamingCall
	// watchCall is a watch: a server-streaming method named Watch...,
	// which stays open until the client leaves. A watch is also a
	// streamingCall.
	watchCall
	callKinds
)

// callKindLimits describes each kind in refusals: what the caller has open
// and the exchanged flag that sets the limit.
var callKindLimits = [callKinds]struct{ what, flag, advice, reason string }{
	unaryCall:     {"calls in flight", "--max-calls-in-flight-per-agency", "wait for one to finish", "TOO_MANY_CALLS_IN_FLIGHT"},
	streamingCall: {"streams open", "--max-streams-per-agency", "close one or wait", "TOO_MANY_STREAMS"},
	watchCall:     {"watches open", "--max-watches-per-agency", "close one or wait", "TOO_MANY_WATCHES"},
}

// isWatch tells a watch by its method descriptor: server-streaming and
// named Watch... (WatchReferrals, WatchPlans, WatchDatasetRows, the health
// service's Watch). Such a stream stays open for as long as the client
// wants and wakes at every commit, so it is bounded on its own; a new
// watch method is counted without being listed anywhere.
func isWatch(fullMethod string, serverStreams bool) bool {
	name := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	return serverStreams && strings.HasPrefix(name, "Watch")
}

// callerConcurrency bounds, per identity (each agency, the secretariat),
// the calls in flight of each kind, so that one caller holding thousands
// of watches or slow calls over many connections cannot take the memory
// and CPU that the others need. A call over a limit is refused with
// RESOURCE_EXHAUSTED at once, before any work; every admitted call gives
// its place back when it ends, however it ends (answer, error,
// cancellation, shutdown, panic).
type callerConcurrency struct {
	limits [callKinds]int64 // ≤ 0: no limit
	// counters holds a *[callKinds]atomic.Int64 per actor; it is bounded
	// by the directory's size, since only admitted callers reach it.
	counters sync.Map
}

func newCallerConcurrency(unary, streams, watches int) *callerConcurrency {
	return &callerConcurrency{limits: [callKinds]int64{unaryCall: int64(unary), streamingCall: int64(streams), watchCall: int64(watches)}}
}

func (c *callerConcurrency) countersOf(actor string) *[callKinds]atomic.Int64 {
	if v, ok := c.counters.Load(actor); ok {
		return v.(*[callKinds]atomic.Int64)
	}
	v, _ := c.counters.LoadOrStore(actor, new([callKinds]atomic.Int64))
	return v.(*[callKinds]atomic.Int64)
}

// acquire counts a call of the given kinds for actor, or refuses it when
// one of them is at its limit, counting nothing. The caller must call
// release with the same kinds when the call ends.
func (c *callerConcurrency) acquire(actor string, kinds ...callKind) error {
	counters := c.countersOf(actor)
	for i, k := range kinds {
		n := counters[k].Add(1)
		if limit := c.limits[k]; limit > 0 && n > limit {
			counters[k].Add(-1)
			for _, taken := range kinds[:i] {
				counters[taken].Add(-1)
			}
			d := callKindLimits[k]
			return detailed(codes.ResourceExhausted,
				fmt.Sprintf("%s has %d %s, the limit is %d (%s); %s", actor, min(n-1, limit), d.what, limit, d.flag, d.advice),
				d.reason, "", "", "")
		}
	}
	return nil
}

// release gives back the places acquire took.
func (c *callerConcurrency) release(actor string, kinds ...callKind) {
	counters := c.countersOf(actor)
	for _, k := range kinds {
		counters[k].Add(-1)
	}
}

// inFlight returns actor's count of calls of one kind in flight.
func (c *callerConcurrency) inFlight(actor string, k callKind) int64 {
	return c.countersOf(actor)[k].Load()
}

// unaryConcurrency is the interceptor that bounds each caller's unary
// calls in flight; it runs after authentication.
func (s *Server) unaryConcurrency(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	actor := CallerFrom(ctx).Actor()
	if err := s.concurrency.acquire(actor, unaryCall); err != nil {
		return nil, err
	}
	defer s.concurrency.release(actor, unaryCall)
	return next(ctx, req)
}

// streamKinds are what a streaming call counts against.
var (
	streamKinds = []callKind{streamingCall}
	watchKinds  = []callKind{watchCall, streamingCall} // the more specific refusal first
)

// streamConcurrency is the interceptor that bounds each caller's streams
// and, among them, watches; it runs after authentication.
func (s *Server) streamConcurrency(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	actor := CallerFrom(ss.Context()).Actor()
	kinds := streamKinds
	if isWatch(info.FullMethod, info.IsServerStream) {
		kinds = watchKinds
	}
	if err := s.concurrency.acquire(actor, kinds...); err != nil {
		return err
	}
	defer s.concurrency.release(actor, kinds...)
	return next(srv, ss)
}
