package server

// The exchange's one port carries two faces over one mutual-TLS handshake:
// native gRPC, served by grpc-go's own HTTP/2 transport, and JSON over
// HTTP (plus Connect and gRPC-Web), transcoded by connectrpc.com/vanguard
// into calls on the same grpc.Server, so that both pass the same
// interceptors, access rules, limits and error table.
//
// Serve terminates TLS itself, then looks at each decrypted connection:
// HTTP/1.1 goes to the HTTP face; HTTP/2 is sniffed as cmux does (send
// the server's SETTINGS, read up to the first HEADERS frame) and goes to
// grpc-go when its content-type is application/grpc, to the HTTP face
// otherwise. The bytes read while sniffing are replayed to whichever side
// gets the connection.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/vanguard"
	"connectrpc.com/vanguard/vanguardgrpc"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/credentials"

	"github.com/alltogether/exchange/openapi"
)

// newHTTPFace builds the http.Server that answers every connection that is
// not native gRPC: REST+JSON from the google.api.http routes, Connect and
// gRPC-Web, all transcoded to calls on grpcServer.
func (s *Server) newHTTPFace(lim Limits) error {
	// What no route of the transcoder answers: the OpenAPI document.
	extra := http.NewServeMux()
	extra.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapi.Document)
	})
	transcoder, err := vanguardgrpc.NewTranscoder(s.grpc, vanguard.WithDefaultServiceOptions(
		vanguard.WithMaxMessageBufferBytes(uint32(lim.MaxRecvMsgSize)),
	), vanguard.WithUnknownHandler(extra))
	if err != nil {
		return fmt.Errorf("server: JSON/HTTP transcoder: %w", err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	// The connection is already decrypted when the HTTP face gets it, so
	// HTTP/2 arrives as "unencrypted" HTTP/2 with prior knowledge.
	protocols.SetUnencryptedHTTP2(true)
	s.http = &http.Server{
		Handler:           transcoder,
		Protocols:         &protocols,
		ReadHeaderTimeout: lim.ConnectionTimeout,
		IdleTimeout:       lim.MaxConnectionIdle,
		MaxHeaderBytes:    64 << 10,
		// The same bound on requests in flight per connection as gRPC's.
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: int(lim.MaxConcurrentStreams)},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// portTLS returns the TLS configuration of the shared port: the caller's,
// offering both HTTP/2 (gRPC and JSON) and HTTP/1.1 (JSON) by ALPN.
func portTLS(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	c.NextProtos = []string{"h2", "http/1.1"}
	return c
}

// Serve accepts connections on lis until Shutdown, serving gRPC and
// JSON/HTTP on it.
func (s *Server) Serve(lis net.Listener) error {
	grpcConns, httpConns := newConnQueue(lis.Addr()), newConnQueue(lis.Addr())
	s.listenMu.Lock()
	if s.closed {
		s.listenMu.Unlock()
		lis.Close()
		return nil
	}
	s.listeners = append(s.listeners, lis, grpcConns, httpConns)
	s.listenMu.Unlock()
	go s.grpc.Serve(grpcConns)
	go s.http.Serve(httpConns)
	var backoff time.Duration
	for {
		conn, err := lis.Accept()
		if err != nil {
			select {
			case <-s.stopping:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors, for one: wait and go on, as
			// grpc-go and net/http do, rather than stop serving.
			if temporary, ok := err.(interface{ Temporary() bool }); ok && temporary.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accepting a connection failed; retrying", "error", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go s.route(conn, grpcConns, httpConns)
	}
}

// closeListeners stops Serve accepting connections.
func (s *Server) closeListeners() {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
}

// route completes the TLS handshake of a new connection and hands it to
// the gRPC or the HTTP face.
func (s *Server) route(raw net.Conn, grpcConns, httpConns *connQueue) {
	tc := tls.Server(raw, s.portTLS)
	tc.SetDeadline(time.Now().Add(s.connectionTimeout))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		tc.SetDeadline(time.Time{})
		// net/http sees the *tls.Conn itself and sets Request.TLS.
		httpConns.push(tc)
		return
	}
	// A gRPC client may connect long before its first call: wait for the
	// first request as long as grpc-go would keep the idle connection.
	tc.SetDeadline(time.Now().Add(s.maxConnectionIdle))
	conn, isGRPC, err := sniffHTTP2(tc)
	if err != nil {
		tc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	if isGRPC {
		grpcConns.push(conn)
		return
	}
	httpConns.push(&settingsAckDropper{sniffedConn: conn, in: bufio.NewReader(conn), inPreface: len(http2.ClientPreface)})
}

// sniffHTTP2 reads an HTTP/2 connection up to its first request's
// headers and says whether that request is native gRPC. It sends the
// server's SETTINGS first, as gRPC clients wait for them before they send
// a request (cmux's HTTP2MatchHeaderFieldSendSettings does the same).
func sniffHTTP2(tc *tls.Conn) (*sniffedConn, bool, error) {
	var seen bytes.Buffer
	in := io.TeeReader(tc, &seen)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(in, preface); err != nil {
		return nil, false, err
	}
	if string(preface) != http2.ClientPreface {
		return nil, false, errors.New("not an HTTP/2 client preface")
	}
	framer := http2.NewFramer(tc, in)
	framer.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	// The first SETTINGS fix whether RFC 7540 priorities are used (RFC
	// 9218): say they are not, as net/http's HTTP/2 server will, so that
	// its SETTINGS after ours change nothing clients such as curl refuse
	// to see changed. grpc-go's SETTINGS do not mention it.
	if err := framer.WriteSettings(http2.Setting{ID: http2.SettingNoRFC7540Priorities, Val: 1}); err != nil {
		return nil, false, err
	}
	for range 32 {
		f, err := framer.ReadFrame()
		if err != nil {
			return nil, false, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame, *http2.WindowUpdateFrame, *http2.PriorityFrame:
			continue
		case *http2.MetaHeadersFrame:
			var ct string
			for _, field := range f.RegularFields() {
				if field.Name == "content-type" {
					ct = field.Value
				}
			}
			return &sniffedConn{Conn: tc, replay: seen.Bytes()}, isNativeGRPC(ct), nil
		}
		// Anything else before a request (pings, for one) is for
		// grpc-go's transport and its limits to answer, as are
		// connections that send many frames and no request.
		return &sniffedConn{Conn: tc, replay: seen.Bytes()}, true, nil
	}
	return &sniffedConn{Conn: tc, replay: seen.Bytes()}, true, nil
}

// isNativeGRPC reports whether a content-type is gRPC's own (not
// gRPC-Web, which the HTTP face transcodes).
func isNativeGRPC(contentType string) bool {
	return contentType == "application/grpc" ||
		strings.HasPrefix(contentType, "application/grpc+") ||
		strings.HasPrefix(contentType, "application/grpc;")
}

// sniffedConn is a TLS connection whose first bytes were read while
// sniffing; Read returns them again before reading on.
type sniffedConn struct {
	*tls.Conn
	replay []byte
}

// Read returns the sniffed bytes first.
func (c *sniffedConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// settingsAckDropper hides from the HTTP face the client's
// acknowledgement of the SETTINGS that sniffHTTP2 sent: net/http's HTTP/2
// server counts the acknowledgements of its own SETTINGS and would close
// the connection on one more. It passes the preface and every other frame
// through unchanged; once the one acknowledgement is dropped, it reads
// straight through.
type settingsAckDropper struct {
	*sniffedConn
	in          *bufio.Reader
	inPreface   int    // preface bytes still to pass through
	header      []byte // a frame header still to pass through
	payloadLeft int    // bytes of the current frame's payload still to pass
	dropped     bool
}

// Read passes the connection's bytes through without the one SETTINGS
// acknowledgement.
func (c *settingsAckDropper) Read(p []byte) (int, error) {
	switch {
	case c.dropped && c.inPreface == 0 && len(c.header) == 0 && c.payloadLeft == 0:
		return c.in.Read(p)
	case c.inPreface > 0:
		n, err := c.in.Read(p[:min(len(p), c.inPreface)])
		c.inPreface -= n
		return n, err
	case len(c.header) > 0:
		n := copy(p, c.header)
		c.header = c.header[n:]
		return n, nil
	case c.payloadLeft > 0:
		n, err := c.in.Read(p[:min(len(p), c.payloadLeft)])
		c.payloadLeft -= n
		return n, err
	}
	var h [9]byte
	if _, err := io.ReadFull(c.in, h[:]); err != nil {
		return 0, err
	}
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	if http2.FrameType(h[3]) == http2.FrameSettings && http2.Flags(h[4]).Has(http2.FlagSettingsAck) && length == 0 {
		c.dropped = true
		return c.Read(p)
	}
	c.header, c.payloadLeft = h[:], length
	return c.Read(p)
}

// connQueue is a net.Listener that yields the connections route hands it.
type connQueue struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands a connection to the listener's server, or closes it when the
// listener is closed.
func (q *connQueue) push(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}

// Accept waits for the next connection.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept.
func (q *connQueue) Close() error {
	q.closer.Do(func() { close(q.done) })
	return nil
}

// Addr is the shared port's address.
func (q *connQueue) Addr() net.Addr { return q.addr }

// handshakenTLS is the gRPC face's transport credentials: the connection
// arrives with its TLS handshake done by route, and the credentials report
// its state (the verified client certificate the interceptors read).
type handshakenTLS struct{}

// connectionStater is a connection that knows its TLS state.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// ServerHandshake reports the TLS state of a connection route accepted.
func (handshakenTLS) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cs, ok := c.(connectionStater)
	if !ok {
		return nil, nil, errors.New("connection did not come through the exchange's TLS port")
	}
	return c, credentials.TLSInfo{
		State:          cs.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

// ClientHandshake is not used: these credentials are for the server only.
func (handshakenTLS) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("server-side credentials only")
}

// Info describes the protocol: TLS.
func (handshakenTLS) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone returns the credentials, which hold no state.
func (handshakenTLS) Clone() credentials.TransportCredentials { return handshakenTLS{} }

// OverrideServerName has no effect on server credentials.
func (handshakenTLS) OverrideServerName(string) error { return nil }
