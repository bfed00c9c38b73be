package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/alltogether/exchange/client/fieldfile"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// DefaultAddress is the address exchanged listens on unless told otherwise.
const DefaultAddress = "127.0.0.1:7443"

// Config says where the exchange is and which certificate to present to it.
type Config struct {
	// Address is the server's host:port, for example "127.0.0.1:7443" or
	// "exchange.example.org:7443". Calls go to one connection, to the
	// first address the name resolves to that answers. Written
	// "dns:///exchange.example.org:7443", the name is resolved to all its
	// addresses (several A or AAAA records, one per replica) and calls are
	// balanced round robin over those that answer;
	// "dns://10.0.0.53/exchange.example.org:7443" asks that DNS server.
	// Set Address or Addresses, not both.
	Address string
	// Addresses lists several replicas of the exchange, each host:port,
	// for example {"a.example.org:7443", "b.example.org:7443"}. Calls are
	// balanced round robin over the replicas that answer; a replica that
	// is down is skipped until it answers again, and a call that fails
	// with UNAVAILABLE and may be retried (see MethodRetryPolicy) is
	// retried on another replica.
	Addresses []string
	// CertFile is the PEM client certificate that names the caller, for
	// example an agency certificate made by `exchangectl certs issue`.
	CertFile string
	// KeyFile is the PEM private key of CertFile.
	KeyFile string
	// CAFile holds the PEM certificate(s) of the exchange CA; the server
	// certificate must chain to one of them.
	CAFile string
	// ServerName is the name the server certificate is checked against. If
	// empty, it is the host part of Address, or of the first of Addresses
	// (a DNS name or an IP address). Every replica is checked against this
	// one name, so each must present a certificate valid for it.
	ServerName string
	// Timeout bounds each call, retries included, whose context carries no
	// deadline of its own. Zero means no bound.
	Timeout time.Duration
	// KeyRingFile, when set, is the agency's key ring (seal.KeyRing, made
	// by `exchangectl keys create`): Referrals then seals the identifying
	// details of every referral it sends (Create, BatchCreate, Forward) to
	// the receiver's registered key and the agency's own, and opens those
	// it reads (Get). The exchange then holds only ciphertext for them.
	// CertFile must be an agency's certificate.
	KeyRingFile string
	// PinsFile is the pin file (seal.Pins) that goes with KeyRingFile: the
	// key pinned for each receiver on first use. Required with
	// KeyRingFile.
	PinsFile string
	// FieldFile, when set, is the path of the field office's local file
	// (package fieldfile; fieldfile.PathBeside(CertFile) is the usual
	// place): every covered write then goes through the outbox kept in
	// it, so a write made while the exchange cannot be reached is kept
	// and sent later instead of failing (see Outbox). Dial opens the file,
	// which one process may hold at a time; Close closes it.
	FieldFile string
	// Field, when set, is a field file the caller has already opened, to
	// use instead of opening FieldFile: one process holds the file once,
	// so a program that also keeps its pulls' and watches' places in it
	// (ResumeFrom with Field.Cursors()) passes it here. Close leaves it
	// open; the caller closes it after the client.
	Field *fieldfile.File
}

// Client is a connection to the exchange with one typed sub-client per
// service. It is safe for concurrent use; Close it when done.
type Client struct {
	// Directory reads and administers agencies, focal points, working
	// groups and locations.
	Directory *DirectoryClient
	// Certificates issues, lists and revokes client certificates.
	Certificates *CertificateClient
	// Referrals sends, moves and follows referrals of people between
	// agencies.
	Referrals *ReferralClient
	// Datasets defines shared datasets, writes and pulls their rows,
	// aggregates them, locks periods and follows changes.
	Datasets *DatasetClient
	// Plans shares plans from their inception stage, syncs them
	// declaratively, and shows overlaps, gaps and coverage.
	Plans *PlanClient
	// Audit lists audit entries and the chain head.
	Audit *AuditClient
	// Admin takes backups and reads the store's state (secretariat).
	Admin *AdminClient
	// Consultants keeps the shared roster of consultants and books them.
	Consultants *ConsultantClient
	// Documents shares working tools as versioned, streamed files.
	Documents *DocumentClient
	// Reports drafts, submits and reads quarterly progress reports.
	Reports *ReportClient
	// Outbox keeps and sends the writes made while the exchange cannot
	// be reached; nil unless Config.FieldFile is set.
	Outbox *Outbox

	conn *grpc.ClientConn
}

// Dial prepares a connection to the exchange over mutual TLS 1.3, using the
// certificate, key and CA files named in cfg. It reads and checks the files
// at once, so a missing or mismatched file is reported here, but it does not
// wait for the network: the first call connects, and a server that cannot be
// reached surfaces as an UNAVAILABLE error from that call (after at most
// ConnectTimeout; a connection that goes silent with calls open is closed
// after KeepaliveTime + KeepaliveTimeout). ctx only stops
// Dial early if it is already done. Extra opts are appended to the options
// Dial sets (TLS credentials, retry and timeout interceptors).
func Dial(ctx context.Context, cfg Config, opts ...grpc.DialOption) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	tgt, err := resolveTarget(cfg)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ what, path string }{
		{"client certificate", cfg.CertFile},
		{"client key", cfg.KeyFile},
		{"CA certificate", cfg.CAFile},
	} {
		if f.path == "" {
			return nil, fmt.Errorf("client: dial %s: no %s file given", tgt.display, f.what)
		}
	}
	serverName := cfg.ServerName
	if serverName == "" {
		serverName = tgt.host
	}
	tlsConfig, err := pki.ClientTLSConfig(cfg.CertFile, cfg.KeyFile, cfg.CAFile, serverName)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", tgt.display, err)
	}
	interceptors := []grpc.UnaryClientInterceptor{defaultTimeoutInterceptor(cfg.Timeout)}
	var outbox *Outbox
	switch {
	case cfg.Field != nil:
		outbox = newOutbox(cfg.Field, cfg.CertFile)
	case cfg.FieldFile != "":
		if outbox, err = openOutbox(cfg.FieldFile, cfg.CertFile); err != nil {
			return nil, err
		}
	}
	if outbox != nil {
		interceptors = append(interceptors, outbox.interceptor())
	}
	interceptors = append(interceptors, retryPolicyInterceptor(maxAttempts), retryInterceptor())
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)),
		grpc.WithChainUnaryInterceptor(interceptors...),
	}
	dialOpts = append(dialOpts, linkDialOptions()...)
	dialOpts = append(dialOpts, tgt.opts...)
	conn, err := grpc.NewClient(tgt.grpcTarget, append(dialOpts, opts...)...)
	if err != nil {
		outbox.close()
		return nil, fmt.Errorf("client: dial %s: %w", tgt.display, err)
	}
	c := newClient(conn)
	if outbox != nil {
		outbox.conn, c.Outbox = conn, outbox
	}
	if cfg.KeyRingFile != "" {
		s, err := newSealer(cfg.CertFile, cfg.KeyRingFile, cfg.PinsFile)
		if err != nil {
			c.Close()
			return nil, err
		}
		s.dir = c.Directory
		c.Referrals.sealer = s
		if outbox != nil {
			s.kept, outbox.sealer = outbox.file, s
		}
	}
	return c, nil
}

// newClient wraps conn in the typed sub-clients.
func newClient(conn *grpc.ClientConn) *Client {
	return &Client{
		Directory:    &DirectoryClient{rpc: exchangev1.NewDirectoryServiceClient(conn)},
		Certificates: &CertificateClient{rpc: exchangev1.NewCertificateServiceClient(conn)},
		Referrals:    &ReferralClient{rpc: exchangev1.NewReferralServiceClient(conn), link: conn},
		Datasets:     &DatasetClient{rpc: exchangev1.NewDatasetServiceClient(conn), link: conn},
		Plans:        &PlanClient{rpc: exchangev1.NewPlanServiceClient(conn), link: conn},
		Audit:        &AuditClient{rpc: exchangev1.NewAuditServiceClient(conn), link: conn},
		Admin:        &AdminClient{rpc: exchangev1.NewAdminServiceClient(conn)},
		Consultants:  &ConsultantClient{rpc: exchangev1.NewConsultantServiceClient(conn)},
		Documents:    &DocumentClient{rpc: exchangev1.NewDocumentServiceClient(conn)},
		Reports:      &ReportClient{rpc: exchangev1.NewReportServiceClient(conn)},
		conn:         conn,
	}
}

// Close closes the connection. Calls in flight fail with CANCELED.
func (c *Client) Close() error {
	err := c.conn.Close()
	if c.Outbox != nil {
		err = errors.Join(err, c.Outbox.close())
	}
	return err
}

// Conn returns the underlying gRPC connection, for services this package
// has no typed client for yet. Calls made through it get the same
// interceptors: a method missing from the retry table is never retried.
func (c *Client) Conn() *grpc.ClientConn {
	return c.conn
}

// defaultTimeoutInterceptor bounds calls whose context has no deadline.
func defaultTimeoutInterceptor(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if timeout > 0 {
			if _, ok := ctx.Deadline(); !ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
