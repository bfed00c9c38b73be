// Command noop-server is the transport ceiling of make bench: a gRPC
// server over the same mutual TLS 1.3 as exchanged (pki.ServerTLSConfig,
// the same certificates, the same gRPC server limits) whose handlers do no
// work. Each answers with a response captured from the real exchange in
// the same benchmark run, read once at start-up from --responses, so the
// bytes on the wire are those of the exchange; what the exchange spends on
// top (authentication, validation, storage, audit) is what the ratio
// against it shows.
//
//   - CreateReferral, GetReferral, ListReferrals, FindOverlaps: the captured
//     response (files CreateReferral.pb, GetReferral.pb, ListReferrals.pb,
//     FindOverlaps.pb, each a serialized response message).
//   - BatchCreateReferrals: the captured response (BatchCreateReferrals.pb),
//     and one captured watch event (WatchReferrals.pb) per request in the
//     batch is broadcast to every open WatchReferrals stream, each event at
//     a revision of its own.
//   - WatchReferrals: a heartbeat at once (so that a watcher knows it is
//     subscribed), then the broadcast events.
//   - PullDatasetRows: the captured message (PullDatasetRows.pb) repeated
//     until --pull-rows rows have been sent.
//
// It prints "noop-server listening on ADDR" once it accepts calls, and
// stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	pkiDir := flag.String("pki", "", "development PKI directory (ca.crt, server.crt, server.key), as exchanged's DATA_DIR/pki")
	responses := flag.String("responses", "", "directory of captured responses")
	pullRows := flag.Int("pull-rows", 1_000_000, "rows one PullDatasetRows call streams")
	flag.Parse()
	if err := run(*listen, *pkiDir, *responses, *pullRows); err != nil {
		fmt.Fprintln(os.Stderr, "noop-server:", err)
		os.Exit(1)
	}
}

func run(listen, pkiDir, responses string, pullRows int) error {
	dev := pki.DevFilesIn(pkiDir)
	tlsConfig, err := pki.ServerTLSConfig(dev.ServerCert, dev.ServerKey, dev.CACert)
	if err != nil {
		return err
	}
	n := &noop{pullRows: pullRows, watchers: map[*watcher]struct{}{}, revision: 1}
	load := func(name string, m proto.Message) error {
		b, err := os.ReadFile(filepath.Join(responses, name+".pb"))
		if os.IsNotExist(err) {
			return nil // this run does not use it
		} else if err != nil {
			return err
		}
		return proto.Unmarshal(b, m)
	}
	n.create, n.batch, n.get, n.list = new(exchangev1.CreateReferralResponse), new(exchangev1.BatchCreateReferralsResponse),
		new(exchangev1.GetReferralResponse), new(exchangev1.ListReferralsResponse)
	n.event, n.pull, n.overlaps = new(exchangev1.WatchReferralsResponse), new(exchangev1.PullDatasetRowsResponse), new(exchangev1.FindOverlapsResponse)
	for name, m := range map[string]proto.Message{
		"CreateReferral": n.create, "BatchCreateReferrals": n.batch, "GetReferral": n.get, "ListReferrals": n.list,
		"WatchReferrals": n.event, "PullDatasetRows": n.pull, "FindOverlaps": n.overlaps,
	} {
		if err := load(name, m); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	// The same transport settings as exchanged (server.Limits defaults);
	// no interceptors, no store.
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConfig)),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.MaxConcurrentStreams(128),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 30 * time.Minute, Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.NumStreamWorkers(128),
	)
	exchangev1.RegisterReferralServiceServer(srv, &referrals{n: n})
	exchangev1.RegisterDatasetServiceServer(srv, &datasets{n: n})
	exchangev1.RegisterPlanServiceServer(srv, &plans{n: n})
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("noop-server listening on %s\n", lis.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	return srv.Serve(lis)
}

type noop struct {
	pullRows int
	create   *exchangev1.CreateReferralResponse
	batch    *exchangev1.BatchCreateReferralsResponse
	get      *exchangev1.GetReferralResponse
	list     *exchangev1.ListReferralsResponse
	event    *exchangev1.WatchReferralsResponse
	pull     *exchangev1.PullDatasetRowsResponse
	overlaps *exchangev1.FindOverlapsResponse

	mu       sync.Mutex
	watchers map[*watcher]struct{} // guarded by mu
	revision int64                 // guarded by mu
}

// watcher is one open WatchReferrals stream.
type watcher struct {
	events chan *exchangev1.WatchReferralsResponse
	done   chan struct{} // closed when the stream ends
}

// broadcast sends n events, each at its own revision, to every watcher.
// A watcher that falls 4096 events behind blocks the writer, like flow
// control would.
func (n *noop) broadcast(count int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for range count {
		n.revision++
		ev := proto.CloneOf(n.event)
		ev.Revision = n.revision
		for w := range n.watchers {
			select {
			case w.events <- ev:
			case <-w.done:
			}
		}
	}
}

type referrals struct {
	exchangev1.UnimplementedReferralServiceServer
	n *noop
}

func (r *referrals) CreateReferral(context.Context, *exchangev1.CreateReferralRequest) (*exchangev1.CreateReferralResponse, error) {
	return r.n.create, nil
}

func (r *referrals) BatchCreateReferrals(_ context.Context, req *exchangev1.BatchCreateReferralsRequest) (*exchangev1.BatchCreateReferralsResponse, error) {
	r.n.broadcast(len(req.GetRequests()))
	return r.n.batch, nil
}

func (r *referrals) GetReferral(context.Context, *exchangev1.GetReferralRequest) (*exchangev1.GetReferralResponse, error) {
	return r.n.get, nil
}

func (r *referrals) ListReferrals(context.Context, *exchangev1.ListReferralsRequest) (*exchangev1.ListReferralsResponse, error) {
	return r.n.list, nil
}

func (r *referrals) WatchReferrals(_ *exchangev1.WatchReferralsRequest, stream exchangev1.ReferralService_WatchReferralsServer) error {
	w := &watcher{events: make(chan *exchangev1.WatchReferralsResponse, 4096), done: make(chan struct{})}
	r.n.mu.Lock()
	r.n.watchers[w] = struct{}{}
	rev := r.n.revision
	r.n.mu.Unlock()
	defer func() {
		close(w.done) // first, so that a broadcast waiting on us moves on
		r.n.mu.Lock()
		delete(r.n.watchers, w)
		r.n.mu.Unlock()
	}()
	if err := stream.Send(&exchangev1.WatchReferralsResponse{Revision: rev, Kind: exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev := <-w.events:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

type datasets struct {
	exchangev1.UnimplementedDatasetServiceServer
	n *noop
}

func (d *datasets) PullDatasetRows(_ *exchangev1.PullDatasetRowsRequest, stream exchangev1.DatasetService_PullDatasetRowsServer) error {
	per := len(d.n.pull.GetRows())
	if per == 0 {
		return status.Error(codes.FailedPrecondition, "no captured PullDatasetRows response")
	}
	for sent := 0; sent < d.n.pullRows; sent += per {
		if err := stream.Send(d.n.pull); err != nil {
			return err
		}
	}
	return nil
}

type plans struct {
	exchangev1.UnimplementedPlanServiceServer
	n *noop
}

func (p *plans) FindOverlaps(context.Context, *exchangev1.FindOverlapsRequest) (*exchangev1.FindOverlapsResponse, error) {
	return p.n.overlaps, nil
}
