package client

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// cutDNSScheme returns the host:port of an address written
// "dns:///host:port", or "dns://SERVER/host:port" to ask the DNS server
// SERVER, and whether addr is written so. Such an address asks gRPC to
// resolve the name to every one of its addresses and balance calls across
// them.
func cutDNSScheme(addr string) (string, bool) {
	rest, ok := strings.CutPrefix(addr, "dns://")
	if !ok {
		return "", false
	}
	_, name, _ := strings.Cut(rest, "/") // the DNS server, often empty, and the name
	return name, true
}

// roundRobinServiceConfig makes gRPC spread calls over every ready address
// (replica) in turn and skip those it cannot reach, instead of sending all
// calls to the first that answers (pick_first, gRPC's default).
const roundRobinServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// replicasScheme is the scheme of the per-connection resolver that hands
// gRPC the list of Config.Addresses. It is registered on the one
// connection (grpc.WithResolvers), never globally.
const replicasScheme = "exchange-replicas"

// target is where a Client connects: the gRPC target, the dial options
// that go with it, and the host its server certificate is checked against
// by default.
type target struct {
	// grpcTarget is what grpc.NewClient dials.
	grpcTarget string
	// opts are the dial options the target needs (resolver, balancing).
	opts []grpc.DialOption
	// host is the host part of the first address, the default ServerName.
	host string
	// display names the address(es) in errors.
	display string
}

// resolveTarget checks cfg's address(es) and says how to dial them:
//
//   - one Address "host:port": gRPC's default, one connection to the first
//     address the name resolves to that answers;
//   - one Address "dns:///host:port": every address the name resolves to,
//     balanced round robin;
//   - several Addresses, each "host:port": every one of them, balanced
//     round robin, through a resolver private to this connection.
func resolveTarget(cfg Config) (target, error) {
	addrs := cfg.Addresses
	switch {
	case cfg.Address != "" && len(addrs) > 0:
		return target{}, errors.New("client: dial: set Address or Addresses, not both")
	case cfg.Address != "":
		addrs = []string{cfg.Address}
	case len(addrs) == 0:
		return target{}, errors.New("client: dial: no server address (want host:port, for example " + DefaultAddress + ")")
	}
	display := strings.Join(addrs, ",")
	if len(addrs) == 1 {
		addr := addrs[0]
		if name, ok := cutDNSScheme(addr); ok {
			host, err := splitAddress(name)
			if err != nil {
				return target{}, err
			}
			return target{grpcTarget: addr, host: host, display: display,
				opts: []grpc.DialOption{grpc.WithDefaultServiceConfig(roundRobinServiceConfig)}}, nil
		}
		host, err := splitAddress(addr)
		if err != nil {
			return target{}, err
		}
		return target{grpcTarget: addr, host: host, display: display}, nil
	}
	seen := make(map[string]bool, len(addrs))
	state := resolver.State{Addresses: make([]resolver.Address, 0, len(addrs))}
	var firstHost string
	for i, addr := range addrs {
		if _, ok := cutDNSScheme(addr); ok {
			return target{}, fmt.Errorf("client: dial: server address %q (number %d of %d): a dns:/// name must be the only address", addr, i+1, len(addrs))
		}
		host, err := splitAddress(addr)
		if err != nil {
			return target{}, fmt.Errorf("%w (number %d of %d)", err, i+1, len(addrs))
		}
		if seen[addr] {
			return target{}, fmt.Errorf("client: dial: server address %q is listed twice", addr)
		}
		seen[addr] = true
		if i == 0 {
			firstHost = host
		}
		state.Addresses = append(state.Addresses, resolver.Address{Addr: addr})
	}
	r := manual.NewBuilderWithScheme(replicasScheme)
	r.InitialState(state)
	// The endpoint is the first address, so that the :authority header is
	// the same as when dialling that address alone.
	return target{grpcTarget: replicasScheme + ":///" + addrs[0], host: firstHost, display: display,
		opts: []grpc.DialOption{grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(roundRobinServiceConfig)}}, nil
}

// splitAddress checks that addr is host:port and returns the host.
func splitAddress(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("client: dial: empty server address (want host:port, for example " + DefaultAddress + ")")
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil && port == "" {
		err = errors.New("missing port")
	}
	if err != nil {
		return "", fmt.Errorf("client: dial: server address %q: %w (want host:port, for example %s)", addr, err, DefaultAddress)
	}
	return host, nil
}
