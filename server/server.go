// Package server implements the exchange's gRPC services over mutual TLS:
// thin handlers over the store, an interceptor chain that authenticates
// every call from its client certificate, applies an explicit access rule
// per method and validates requests, and one table that maps errors to
// gRPC statuses.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// Limits protect the server from clients that send too much, too often or
// hold connections idle.
type Limits struct {
	// MaxRecvMsgSize is the largest request message in bytes; default 4 MiB.
	MaxRecvMsgSize int
	// MaxConcurrentStreams bounds the calls in flight on one connection;
	// default 128.
	MaxConcurrentStreams uint32
	// ConnectionTimeout bounds the TLS handshake of a new connection;
	// default 10s.
	ConnectionTimeout time.Duration
	// KeepaliveMinTime is the shortest interval between client pings the
	// server tolerates; pinging more often closes the connection. Default
	// 15s.
	KeepaliveMinTime time.Duration
	// MaxConnectionIdle closes connections idle this long; default 30m.
	MaxConnectionIdle time.Duration
	// CallsPerSecond is each caller's sustained rate; calls beyond it get
	// RESOURCE_EXHAUSTED. Default 200; negative disables the limit.
	CallsPerSecond float64
	// CallBurst is how many calls a caller may make at once above its
	// rate; default 400.
	CallBurst int
	// CallsInFlightPerCaller bounds each caller's unary calls in flight,
	// over all its connections; calls beyond it get RESOURCE_EXHAUSTED.
	// Default 128; negative disables the limit.
	CallsInFlightPerCaller int
	// StreamsPerCaller bounds each caller's streaming calls open at once
	// (watches included), over all its connections. Default 64; negative
	// disables the limit.
	StreamsPerCaller int
	// WatchesPerCaller bounds each caller's watches open at once (the
	// server-streaming methods named Watch...). Default 32; negative
	// disables the limit.
	WatchesPerCaller int
}

// streamWorkers is how many goroutines gRPC keeps to run calls. A call
// run on a fresh goroutine grows its stack from 8 KiB through copies (the
// interceptors, validation, encoding and the store go deep); a worker keeps
// the stack it grew. Under write load the stack copies took about 5% of
// the server's CPU. When every worker is busy (long watches hold theirs),
// gRPC runs the call on a fresh goroutine as before.
const streamWorkers = 128

func (l Limits) withDefaults() Limits {
	if l.MaxRecvMsgSize == 0 {
		l.MaxRecvMsgSize = 4 << 20
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = 128
	}
	if l.ConnectionTimeout == 0 {
		l.ConnectionTimeout = 10 * time.Second
	}
	if l.KeepaliveMinTime == 0 {
		l.KeepaliveMinTime = 15 * time.Second
	}
	if l.MaxConnectionIdle == 0 {
		l.MaxConnectionIdle = 30 * time.Minute
	}
	if l.CallsPerSecond == 0 {
		l.CallsPerSecond = 200
	}
	if l.CallBurst == 0 {
		l.CallBurst = 400
	}
	if l.CallsInFlightPerCaller == 0 {
		l.CallsInFlightPerCaller = 128
	}
	if l.StreamsPerCaller == 0 {
		l.StreamsPerCaller = 64
	}
	if l.WatchesPerCaller == 0 {
		l.WatchesPerCaller = 32
	}
	return l
}

// Config is what a Server needs.
type Config struct {
	// Store is the open database; the caller closes it after Shutdown.
	Store *store.Store
	// TLS is the server's TLS configuration; it must require and verify
	// client certificates from the exchange's CA (see pki.ServerTLSConfig).
	TLS *tls.Config
	// CA signs certificates for IssueCertificate; nil disables issuing.
	CA *pki.CA
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Limits bound what clients may do; zero fields take defaults.
	Limits Limits
	// AckDeadlines flag referrals not acknowledged in time; nil means
	// DefaultAckDeadlines.
	AckDeadlines AckDeadlines
	// WatchHeartbeat is how long a watch stays silent before it sends a
	// heartbeat with the revision reached; default 30s.
	WatchHeartbeat time.Duration
	// Now returns the current time; default time.Now. Tests set it.
	Now func() time.Time
	// Metrics, when set, counts every call and reads the store's gauges;
	// pass the same Metrics to store.Options.Observer.
	Metrics *Metrics
}

// Server is the exchange's gRPC server.
type Server struct {
	stopping  chan struct{} // closed when Shutdown begins: watches end
	stopOnce  sync.Once
	now       func() time.Time
	heartbeat time.Duration
	grpc      *grpc.Server
	// http is the JSON/HTTP face, transcoding to calls on grpc
	// (http_face.go); portTLS is the shared port's TLS configuration.
	http              *http.Server
	portTLS           *tls.Config
	connectionTimeout time.Duration
	maxConnectionIdle time.Duration
	listenMu          sync.Mutex
	listeners         []net.Listener
	closed            bool
	health            *health.Server
	store             *store.Store
	log               *slog.Logger
	validator         protovalidate.Validator
	limiter           *callerLimiter
	// concurrency bounds each caller's calls, streams and watches in
	// flight.
	concurrency *callerConcurrency
}

// New builds a server with every service registered.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Config.Store is required")
	}
	if cfg.TLS == nil || cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert || cfg.TLS.MinVersion < tls.VersionTLS13 {
		return nil, errors.New("server: Config.TLS must require and verify client certificates with TLS 1.3 (use pki.ServerTLSConfig)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, err
	}
	lim := cfg.Limits.withDefaults()
	s := &Server{stopping: make(chan struct{}), store: cfg.Store, log: cfg.Logger, validator: validator, health: health.NewServer(),
		limiter:     newCallerLimiter(lim.CallsPerSecond, lim.CallBurst),
		concurrency: newCallerConcurrency(lim.CallsInFlightPerCaller, lim.StreamsPerCaller, lim.WatchesPerCaller)}
	unary, stream := s.unaryInterceptors(), s.streamInterceptors()
	if cfg.Metrics != nil {
		unary = append([]grpc.UnaryServerInterceptor{cfg.Metrics.rpc.UnaryServerInterceptor()}, unary...)
		stream = append([]grpc.StreamServerInterceptor{cfg.Metrics.rpc.StreamServerInterceptor()}, stream...)
	}
	s.grpc = grpc.NewServer(
		// Serve completes the TLS handshake itself (http_face.go).
		grpc.Creds(handshakenTLS{}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(lim.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(lim.MaxConcurrentStreams),
		grpc.ConnectionTimeout(lim.ConnectionTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: lim.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: lim.MaxConnectionIdle, Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.ForceServerCodecV2(requestCodec{}),
		grpc.StatsHandler(newRefusedCalls(s, cfg.Metrics)),
	)
	// Services register through reg, so that their unary handlers read
	// requests through requestCodec's checks (request_decoding.go).
	reg := guardedRegistrar{server: s.grpc}
	exchangev1.RegisterDirectoryServiceServer(reg, &directoryService{store: cfg.Store})
	exchangev1.RegisterCertificateServiceServer(reg, &certificateService{store: cfg.Store, ca: cfg.CA})
	if cfg.AckDeadlines == nil {
		cfg.AckDeadlines = DefaultAckDeadlines
	}
	if cfg.WatchHeartbeat == 0 {
		cfg.WatchHeartbeat = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s.now, s.heartbeat = cfg.Now, cfg.WatchHeartbeat
	exchangev1.RegisterDatasetServiceServer(reg, &datasetService{server: s, store: cfg.Store})
	exchangev1.RegisterAdminServiceServer(reg, &adminService{store: cfg.Store})
	exchangev1.RegisterAuditServiceServer(reg, &auditService{server: s, store: cfg.Store, heartbeat: cfg.WatchHeartbeat})
	referrals := &referralService{
		server: s, store: cfg.Store, deadlines: cfg.AckDeadlines, now: cfg.Now, heartbeat: cfg.WatchHeartbeat,
	}
	referrals.events = &referralEvents{store: cfg.Store, service: referrals}
	exchangev1.RegisterReferralServiceServer(reg, referrals)
	exchangev1.RegisterPlanServiceServer(reg, newPlanService(s, cfg.Store, cfg.WatchHeartbeat))
	exchangev1.RegisterConsultantServiceServer(reg, &consultantService{store: cfg.Store})
	exchangev1.RegisterDocumentServiceServer(reg, newDocumentService(s, cfg.Store))
	exchangev1.RegisterReportServiceServer(reg, &reportService{store: cfg.Store})
	healthpb.RegisterHealthServer(reg, s.health)
	reflection.Register(s.grpc)
	if cfg.Metrics != nil {
		cfg.Metrics.rpc.InitializeMetrics(s.grpc)
		cfg.Metrics.watchStore(cfg.Store)
	}
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.portTLS, s.connectionTimeout, s.maxConnectionIdle = portTLS(cfg.TLS), lim.ConnectionTimeout, lim.MaxConnectionIdle
	if err := s.newHTTPFace(lim); err != nil {
		return nil, err
	}
	if cfg.Store.OnEtcd() {
		go s.followStoreHealth(func(ctx context.Context) error {
			_, err := cfg.Store.LatestRevision(ctx)
			return err
		}, storeProbeEvery, storeProbeTimeout)
	}
	return s, nil
}

// directoryService implements DirectoryService.
type directoryService struct {
	exchangev1.UnimplementedDirectoryServiceServer
	store *store.Store
}

// Methods returns the full names of every registered method, for tests
// and documentation.
func (s *Server) Methods() []string {
	var out []string
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			out = append(out, "/"+svc+"/"+m.Name)
		}
	}
	return out
}

// Shutdown stops accepting calls, reports NOT_SERVING on health, lets calls
// in flight finish, and stops them hard when ctx ends first.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	s.stopOnce.Do(func() { close(s.stopping) })
	s.closeListeners()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	httpDone := make(chan struct{})
	go func() {
		if s.http.Shutdown(ctx) != nil {
			s.http.Close()
		}
		close(httpDone)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
	<-httpDone
}
