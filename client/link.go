package client

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"
)

// How the client notices a link that died without closing, the way a
// field office's links die: a connection that forwards nothing any more,
// or a server that accepts and never answers.
const (
	// KeepaliveTime is how long a connection with calls open may receive
	// nothing before the client pings the exchange. It is above the 15
	// seconds the exchange requires between a client's pings.
	KeepaliveTime = 20 * time.Second
	// KeepaliveTimeout is how long the client waits for the answer to a
	// ping before it closes the connection: its calls then fail with
	// UNAVAILABLE, and Pull and the watches reconnect. A stream that
	// stops receiving is noticed within KeepaliveTime + KeepaliveTimeout.
	KeepaliveTimeout = 10 * time.Second
	// ConnectTimeout bounds the making of a connection (TCP and the TLS
	// handshake): a server that accepts and never answers fails the
	// calls waiting for it with UNAVAILABLE after it.
	ConnectTimeout = 20 * time.Second
	// ReconnectBackoffMax is the longest the client waits between two
	// attempts to connect while the exchange cannot be reached (from 1
	// second, growing 1.6 times per attempt), so that a link that comes
	// back is used within this time.
	ReconnectBackoffMax = 10 * time.Second
)

// linkDialOptions are the dial options that make a dead link fail calls
// in bounded time, as the constants above say.
func linkDialOptions() []grpc.DialOption {
	b := backoff.DefaultConfig
	b.MaxDelay = ReconnectBackoffMax
	return []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: b, MinConnectTimeout: ConnectTimeout}),
	}
}
