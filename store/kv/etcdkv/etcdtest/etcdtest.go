// Package etcdtest starts real etcd clusters, embedded in the test's
// process, for the tests of package etcdkv and of code that runs over it.
// Members listen on loopback on free ports and keep their data under the
// test's temporary directory; everything stops when the test ends.
package etcdtest

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options shape a test cluster. The zero value is a 3-member cluster
// without TLS that fsyncs its writes.
type Options struct {
	// Members is the number of members; 0 means 3.
	Members int
	// MaxTxnOps is each member's --max-txn-ops; 0 means 8192.
	MaxTxnOps uint
	// MaxRequestBytes is each member's --max-request-bytes; 0 means 8 MiB.
	MaxRequestBytes uint
	// UnsafeNoFsync skips fsync (etcd's --unsafe-no-fsync): fast unit
	// tests, no durability across a crash of the machine.
	UnsafeNoFsync bool
	// QuotaBackendBytes is each member's --quota-backend-bytes; 0 means
	// etcd's default (2 GiB). Members with a quota commit their backend
	// every 10 ms rather than 100 ms, so they notice it sooner.
	QuotaBackendBytes int64
	// TLS serves clients over TLS with client certificates, from a
	// throwaway CA made for the cluster (Cluster.TLS).
	TLS bool
}

// TLSFiles are the throwaway CA and the client's certificate of a
// cluster started with Options.TLS, as PEM files and as a *tls.Config.
type TLSFiles struct {
	// CAFile is the CA's certificate, which signed the members' and the
	// client's certificates.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key.
	CertFile, KeyFile string
	// ServerCertFile and ServerKeyFile are the members' certificate and key.
	ServerCertFile, ServerKeyFile string
	// Config is a client configuration with the client's certificate
	// that trusts the CA.
	Config *tls.Config
}

// Cluster is a running test cluster.
type Cluster struct {
	t       testing.TB
	opt     Options
	dir     string
	members []*member
	// TLS is set when the cluster was started with Options.TLS.
	TLS *TLSFiles
	// removeDir: Stop removes dir (StartMain's clusters).
	removeDir bool
}

type member struct {
	name                   string
	peerPort, clientPort   int
	etcd                   *embed.Etcd // nil while stopped
	initialCluster, scheme string
}

// startTimeout bounds the wait for a cluster to elect a leader and serve.
const startTimeout = 30 * time.Second

// Start starts a cluster and stops it when the test ends. It fails the
// test if the cluster does not come up; ports that turn out taken are
// picked again.
func Start(t testing.TB, opt Options) *Cluster {
	t.Helper()
	opt = opt.withDefaults()
	c := &Cluster{t: t, opt: opt, dir: t.TempDir()}
	if opt.TLS {
		files, err := makeTLS(filepath.Join(c.dir, "tls"))
		if err != nil {
			t.Fatalf("etcdtest: making TLS certificates: %v", err)
		}
		c.TLS = files
	}
	t.Cleanup(c.Stop)
	var err error
	for try := 0; try < 5; try++ {
		if err = c.start(try); err == nil {
			return c
		}
		c.Stop()
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("etcdtest: starting %d members: %v", opt.Members, err)
	return nil
}

// StartMain starts a cluster for a whole test binary, from TestMain,
// where there is no test to tie it to: its data lives in a temporary
// directory that Stop removes. RestartMember is not for such a cluster.
func StartMain(opt Options) (*Cluster, error) {
	opt = opt.withDefaults()
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{opt: opt, dir: dir, removeDir: true}
	if opt.TLS {
		if c.TLS, err = makeTLS(filepath.Join(dir, "tls")); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	for try := 0; try < 5; try++ {
		if err = c.start(try); err == nil {
			return c, nil
		}
		c.Stop()
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("etcdtest: starting %d members: %w", opt.Members, err)
}

// MaxTxnOps returns the members' --max-txn-ops.
func (c *Cluster) MaxTxnOps() uint { return c.opt.MaxTxnOps }

// MaxRequestBytes returns the members' --max-request-bytes.
func (c *Cluster) MaxRequestBytes() uint { return c.opt.MaxRequestBytes }

// withDefaults fills in the zero fields.
func (o Options) withDefaults() Options {
	if o.Members == 0 {
		o.Members = 3
	}
	if o.MaxTxnOps == 0 {
		o.MaxTxnOps = 8192
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = 8 << 20
	}
	return o
}

// start starts every member on newly picked ports and waits until they serve.
func (c *Cluster) start(try int) error {
	scheme := "http"
	if c.TLS != nil {
		scheme = "https"
	}
	ports, err := freePorts(2 * c.opt.Members)
	if err != nil {
		return err
	}
	c.members = make([]*member, c.opt.Members)
	var peers []string
	for i := range c.members {
		m := &member{name: fmt.Sprintf("m%d-%d", i, try), peerPort: ports[2*i], clientPort: ports[2*i+1], scheme: scheme}
		c.members[i] = m
		peers = append(peers, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peerPort))
	}
	for _, m := range c.members {
		m.initialCluster = strings.Join(peers, ",")
	}
	for i := range c.members {
		if err := c.startMember(i); err != nil {
			return err
		}
	}
	return c.waitReady()
}

func (c *Cluster) startMember(i int) error {
	m := c.members[i]
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = filepath.Join(c.dir, m.name)
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", m.peerPort)}
	clientURL := url.URL{Scheme: m.scheme, Host: fmt.Sprintf("127.0.0.1:%d", m.clientPort)}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.InitialCluster = m.initialCluster
	cfg.InitialClusterToken = "etcdtest"
	cfg.MaxTxnOps = c.opt.MaxTxnOps
	cfg.MaxRequestBytes = c.opt.MaxRequestBytes
	cfg.UnsafeNoFsync = c.opt.UnsafeNoFsync
	cfg.QuotaBackendBytes = c.opt.QuotaBackendBytes
	if c.opt.QuotaBackendBytes != 0 {
		cfg.BackendBatchInterval = 10 * time.Millisecond
	}
	cfg.TickMs, cfg.ElectionMs = 50, 500
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(c.dir, m.name+".log")}
	if c.TLS != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       c.TLS.ServerCertFile,
			KeyFile:        c.TLS.ServerKeyFile,
			TrustedCAFile:  c.TLS.CAFile,
			ClientCertAuth: true,
		}
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.name, err)
	}
	m.etcd = e
	return nil
}

// waitReady waits until every running member serves.
func (c *Cluster) waitReady() error {
	deadline := time.After(startTimeout)
	for _, m := range c.members {
		if m.etcd == nil {
			continue
		}
		select {
		case <-m.etcd.Server.ReadyNotify():
		case err := <-m.etcd.Err():
			return fmt.Errorf("member %s: %w", m.name, err)
		case <-deadline:
			return fmt.Errorf("members not ready after %v", startTimeout)
		}
	}
	return nil
}

// Stop stops every member: the followers at once, then the leader, which
// so has no one to hand its leadership to. It runs when the test ends too.
func (c *Cluster) Stop() {
	leader := c.Leader()
	var wg sync.WaitGroup
	for i, m := range c.members {
		if e := m.etcd; e != nil && i != leader {
			m.etcd = nil
			wg.Go(e.Close)
		}
	}
	wg.Wait()
	if leader >= 0 {
		c.StopMember(leader)
	}
	if c.removeDir {
		os.RemoveAll(c.dir)
	}
}

// Endpoints returns the client URLs of the members, running or not.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, fmt.Sprintf("%s://127.0.0.1:%d", m.scheme, m.clientPort))
	}
	return eps
}

// Client returns a client connected to every member, closed when the test
// ends. Its send limit is the members' MaxRequestBytes and a margin.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return c.client(t, c.Endpoints())
}

// MemberClient returns a client connected to member i only.
func (c *Cluster) MemberClient(t testing.TB, i int) *clientv3.Client {
	t.Helper()
	return c.client(t, c.Endpoints()[i:i+1])
}

func (c *Cluster) client(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        5 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: int(c.opt.MaxRequestBytes) + 1<<20,
		MaxCallRecvMsgSize: 64 << 20,
	}
	if c.TLS != nil {
		cfg.TLS = c.TLS.Config.Clone()
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcdtest: connecting to %v: %v", endpoints, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Leader returns the index of the member that is the leader, or -1 if no
// running member is.
func (c *Cluster) Leader() int {
	for i, m := range c.members {
		if m.etcd != nil && m.etcd.Server.Leader() == m.etcd.Server.MemberID() {
			return i
		}
	}
	return -1
}

// StopMember stops member i; RestartMember starts it again on its data.
func (c *Cluster) StopMember(i int) {
	if m := c.members[i]; m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

// RestartMember starts member i again, on the same ports and data, and
// waits until it serves. It fails the test if it does not.
func (c *Cluster) RestartMember(i int) {
	c.t.Helper()
	if err := c.startMember(i); err != nil {
		c.t.Fatalf("etcdtest: restarting member %d: %v", i, err)
	}
	if err := c.waitReady(); err != nil {
		c.t.Fatalf("etcdtest: restarting member %d: %v", i, err)
	}
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeFile writes a PEM file readable by its owner only.
func writeFile(path string, data []byte) error {
	return os.WriteFile(path, data, 0o600)
}
