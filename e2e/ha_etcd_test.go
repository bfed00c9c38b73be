package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/alltogether/exchange/pki"
)

// The etcd cluster of the high-availability test (ha_test.go): three real
// etcd processes, built by TestMain from the version bench/etcd pins, on
// loopback. They serve clients over TLS and require a client certificate,
// both from the exchange's development CA (the same trick as the bench):
// the members present exchanged's development server certificate, valid
// for 127.0.0.1, and exchanged presents a client certificate of that CA.
// Peers talk plain http on loopback. Durability is etcd's default: the WAL
// is fsynced before a write is acknowledged.

// etcdTLS is what the members and their clients present and trust.
type etcdTLS struct {
	// ca is the CA certificate every side trusts.
	ca string
	// serverCert and serverKey are the members' certificate and key.
	serverCert, serverKey string
	// clientCert and clientKey are what exchanged presents to the members.
	clientCert, clientKey string
}

// makeEtcdTLS makes the development PKI in pkiDir (as exchanged would on
// first start, so that the replicas started later use it) and a client
// certificate for exchanged to present to etcd.
func makeEtcdTLS(t *testing.T, pkiDir string) etcdTLS {
	t.Helper()
	dev, _, err := pki.EnsureDev(pkiDir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(dev.CACert, dev.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueClient(pki.Secretariat(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(pkiDir)
	return etcdTLS{
		ca: dev.CACert, serverCert: dev.ServerCert, serverKey: dev.ServerKey,
		clientCert: writeFile(t, dir, "etcd-client.crt", certPEM),
		clientKey:  writeFile(t, dir, "etcd-client.key", keyPEM),
	}
}

// config is a client TLS configuration with exchanged's client
// certificate.
func (e etcdTLS) config(t *testing.T) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(e.clientCert, e.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(e.ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s holds no PEM certificate", e.ca)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// exchangedFlags are the flags that put exchanged on the cluster.
func (c *etcdCluster) exchangedFlags() []string {
	return []string{"--etcd-endpoints", strings.Join(c.endpoints(), ","),
		"--etcd-ca", c.tls.ca, "--etcd-cert", c.tls.clientCert, "--etcd-key", c.tls.clientKey}
}

// etcdMember is one etcd process of the cluster.
type etcdMember struct {
	name                 string
	clientPort, peerPort int
	dataDir, logFile     string
	cmd                  *exec.Cmd
	// exited is closed when the running process has exited.
	exited chan struct{}
}

// etcdCluster is a running cluster of etcd processes.
type etcdCluster struct {
	t       *testing.T
	tls     etcdTLS
	members []*etcdMember
	client  *clientv3.Client
}

// startEtcdCluster starts n members with fresh data directories under dir
// and waits until the cluster has a leader. Every member is killed at
// cleanup if it still runs.
func startEtcdCluster(t *testing.T, dir string, n int, tlsFiles etcdTLS) *etcdCluster {
	t.Helper()
	ports := freeLoopbackPorts(t, 2*n)
	c := &etcdCluster{t: t, tls: tlsFiles}
	var peers []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("m%d", i), clientPort: ports[2*i], peerPort: ports[2*i+1]}
		m.dataDir = filepath.Join(dir, m.name)
		m.logFile = filepath.Join(dir, m.name+".log")
		c.members = append(c.members, m)
		peers = append(peers, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peerPort))
	}
	for i := range c.members {
		c.start(i, strings.Join(peers, ","))
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.kill()
		}
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), TLS: tlsFiles.config(t), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	c.client = cli
	if l := c.waitLeader(30 * time.Second); l < 0 {
		t.Fatalf("the etcd cluster elected no leader within 30s\n%s", c.logs())
	}
	return c
}

// start starts member i; on a data directory that exists it rejoins the
// cluster with what the directory holds.
func (c *etcdCluster) start(i int, initialCluster string) {
	c.t.Helper()
	m := c.members[i]
	client := fmt.Sprintf("https://127.0.0.1:%d", m.clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", m.peerPort)
	m.cmd = exec.Command(bin("etcd"),
		"--name", m.name, "--data-dir", m.dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", initialCluster, "--initial-cluster-state", "new", "--initial-cluster-token", "ha-test",
		"--cert-file", c.tls.serverCert, "--key-file", c.tls.serverKey,
		"--client-cert-auth", "--trusted-ca-file", c.tls.ca,
		// What exchanged requires of the cluster (store.OpenEtcd).
		"--max-txn-ops", "8192", "--max-request-bytes", "8388608",
		// Elections in about half a second rather than one, so that the
		// test is short; the same ratio as etcd's defaults (100/1000).
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn", "--log-outputs", m.logFile,
	)
	m.cmd.Env = baseEnv()
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		c.t.Fatalf("starting etcd member %s: %v", m.name, err)
	}
	m.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(m.cmd, m.exited)
}

// restart starts member i again on its data directory and waits until it
// answers a status request.
func (c *etcdCluster) restart(i int) {
	c.t.Helper()
	var peers []string
	for _, m := range c.members {
		peers = append(peers, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peerPort))
	}
	c.start(i, strings.Join(peers, ","))
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.client.Status(ctx, c.endpoints()[i])
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("etcd member %s does not answer 20s after its restart: %v\n%s", c.members[i].name, err, c.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the member with SIGKILL, if it runs, and waits until it is gone.
func (m *etcdMember) kill() {
	if m.cmd == nil {
		return
	}
	select {
	case <-m.exited:
	default:
		_ = m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.exited
	}
}

// endpoints are the members' client URLs.
func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, fmt.Sprintf("https://127.0.0.1:%d", m.clientPort))
	}
	return eps
}

// leader returns the index of the member that answers, as the leader,
// that it is the leader (Status: Leader == Header.MemberId), or -1.
func (c *etcdCluster) leader() int {
	for i, ep := range c.endpoints() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		st, err := c.client.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.GetMemberId() {
			return i
		}
	}
	return -1
}

// waitLeader waits up to d for a leader and returns its index, or -1.
func (c *etcdCluster) waitLeader(d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		if l := c.leader(); l >= 0 || time.Now().After(deadline) {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logs returns the end of every member's log, for a failure message.
func (c *etcdCluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		data, _ := os.ReadFile(m.logFile)
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "--- etcd %s log (end):\n%s\n", m.name, data)
	}
	return b.String()
}

// freeLoopbackPorts returns n loopback ports that were free a moment ago.
func freeLoopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
