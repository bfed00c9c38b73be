// Package faultproxy is a TCP proxy on loopback that breaks the link
// between a client and a server the way a field office's connection
// breaks: refused connections, a server that accepts and never answers, a
// connection cut in the middle of a stream, and high latency. Tests put it
// between the client and a real exchange and switch its mode while traffic
// flows.
//
// It is for tests only: it listens on 127.0.0.1 and forwards to one target.
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how the proxy treats connections.
type Mode int

const (
	// Pass forwards bytes both ways, after Latency.
	Pass Mode = iota
	// Refuse closes every new connection at once, as a host with nothing
	// listening does (the client sees the connection reset or closed
	// before any byte). Open connections are cut.
	Refuse
	// Blackhole accepts connections and never forwards a byte either way:
	// a server that accepts and never answers. Open connections stall too.
	Blackhole
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	}
	return "unknown"
}

// Proxy forwards one loopback address to a target address, with faults.
type Proxy struct {
	ln     net.Listener
	target string

	mode     atomic.Int32
	latency  atomic.Int64 // nanoseconds added before forwarding each chunk
	cutAfter atomic.Int64 // server-to-client bytes after which a connection is cut; 0: never

	mu     sync.Mutex
	conns  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted   atomic.Int64
	cuts       atomic.Int64
	fromServer atomic.Int64 // bytes forwarded server to client, all connections
}

// link is one proxied connection: the client's side and the server's side.
type link struct {
	client     net.Conn
	fromServer atomic.Int64 // bytes forwarded server to client

	// mu guards server, set once the target is dialled, and closed: a
	// cut may close the link while handle dials (the race detector caught
	// close reading server as handle set it).
	mu     sync.Mutex
	server net.Conn
	closed bool
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
}

// setServer records s as the link's server side and reports true, or
// closes s and reports false when the link was closed while s was dialled.
func (l *link) setServer(s net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		s.Close()
		return false
	}
	l.server = s
	return true
}

// New starts a proxy on 127.0.0.1 (a free port) that forwards to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode switches the mode. Switching to Refuse cuts every open
// connection; switching to Blackhole stalls them; switching back to Pass
// lets stalled ones flow again.
func (p *Proxy) SetMode(m Mode) {
	p.mode.Store(int32(m))
	if m == Refuse {
		p.CutAll()
	}
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode { return Mode(p.mode.Load()) }

// SetLatency delays every chunk forwarded in either direction by d.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// CutAfter makes the proxy cut each connection once it has forwarded n
// bytes from the server to the client (0: never). It applies to bytes
// counted from the connection's start, so a resumed stream on a new
// connection gets another n bytes.
func (p *Proxy) CutAfter(n int64) { p.cutAfter.Store(n) }

// CutAll closes every open connection now, as a link dropping does; new
// connections are accepted according to the mode.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	if len(links) > 0 {
		p.cuts.Add(1)
	}
}

// Accepted counts the connections the proxy has accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Cuts counts the times the proxy cut connections (CutAll with at least
// one open, and each CutAfter cut).
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// FromServer counts the bytes the proxy has forwarded from the server to
// clients, over all connections: what a link carried towards the client,
// bytes lost at a cut included.
func (p *Proxy) FromServer() int64 { return p.fromServer.Load() }

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if p.Mode() == Refuse {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, as a closed port gives
			}
			c.Close()
			continue
		}
		l := &link{client: c}
		if !p.track(l) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.handle(l)
	}
}

func (p *Proxy) track(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[l] = struct{}{}
	return true
}

func (p *Proxy) untrack(l *link) {
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
	l.close()
}

func (p *Proxy) handle(l *link) {
	defer p.wg.Done()
	defer p.untrack(l)
	// A blackholed connection is held open, reading nothing, until the
	// mode changes or the link is cut; only then is the target dialled.
	if !p.waitPass(l) {
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !l.setServer(s) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(l, s, l.client, false); done <- struct{}{} }()
	go func() { p.pipe(l, l.client, s, true); done <- struct{}{} }()
	<-done
	l.close()
	<-done
}

// waitPass blocks while the mode is Blackhole; it reports false when the
// link should be dropped instead (Refuse, or the proxy closing).
func (p *Proxy) waitPass(l *link) bool {
	for {
		switch p.Mode() {
		case Pass:
			return true
		case Refuse:
			return false
		}
		p.mu.Lock()
		_, open := p.conns[l]
		closed := p.closed
		p.mu.Unlock()
		if !open || closed {
			return false
		}
		// A cut link's client side is closed; a one-byte peek would
		// consume data, so poll the mode instead.
		time.Sleep(5 * time.Millisecond)
		if isClosed(l.client) {
			return false
		}
	}
}

func isClosed(c net.Conn) bool {
	// A zero deadline read would consume data; SetReadDeadline on a closed
	// connection fails, which is all that is needed here.
	return c.SetReadDeadline(time.Time{}) != nil
}

// pipe copies src to dst chunk by chunk, applying the mode, latency and
// cut-after rule. toClient says dst is the client's side.
func (p *Proxy) pipe(l *link, dst, src net.Conn, toClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for p.Mode() == Blackhole {
				time.Sleep(5 * time.Millisecond)
				if isClosed(dst) || isClosed(src) {
					return
				}
			}
			if p.Mode() == Refuse {
				return
			}
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			chunk := buf[:n]
			cut := false
			if toClient {
				if limit := p.cutAfter.Load(); limit > 0 {
					sent := l.fromServer.Load()
					if sent+int64(n) >= limit {
						chunk = buf[:max(0, limit-sent)]
						cut = true
					}
				}
				l.fromServer.Add(int64(len(chunk)))
				// Counted before the write, so that a client that has read
				// bytes never finds them not yet counted; what the write
				// did not deliver is taken back.
				p.fromServer.Add(int64(len(chunk)))
			}
			n, werr := dst.Write(chunk)
			if toClient && n < len(chunk) {
				p.fromServer.Add(int64(n - len(chunk)))
			}
			if werr != nil {
				return
			}
			if cut {
				p.cuts.Add(1)
				return
			}
		}
		if err != nil {
			// EOF or a broken side: the link ends both ways, as a dropped
			// connection does (gRPC never half-closes).
			return
		}
	}
}
