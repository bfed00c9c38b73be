package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/alltogether/exchange/bench/loadgen"
)

// The peer: a single etcd v3.7 node (built from the module proxy in
// bench/etcd) with a fresh data directory, serving clients over TLS 1.3
// with client certificates from the same CA and the same server
// certificate as exchanged, and etcd's default durability (the WAL is
// fsynced before a put is acknowledged). It is driven by etcd-load, which
// uses etcd's own Go client and the shared load generator.

var etcdReady = regexp.MustCompile(`ready to serve client requests`)

type etcdPeer struct {
	*proc
	endpoint string
	dir      string // its data directory's parent
	keep     bool   // keep dir (--keep)
}

// discard stops the peer and removes its data, unless the bench keeps
// its scratch directory.
func (p *etcdPeer) discard() {
	p.stop()
	if !p.keep {
		os.RemoveAll(p.dir)
	}
}

func (e *env) startEtcd(name string) (*etcdPeer, error) {
	dir, err := os.MkdirTemp(e.work, name+"-")
	if err != nil {
		return nil, err
	}
	// etcd needs two ports of its own choosing; another process may take
	// one between the choice and etcd's bind, so try a few times.
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		endpoint := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		args := []string{
			"--name", "bench", "--data-dir", filepath.Join(dir, "data"),
			"--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", "bench=" + peerURL, "--initial-cluster-state", "new",
			"--cert-file", e.dev.ServerCert, "--key-file", e.dev.ServerKey,
			"--client-cert-auth", "--trusted-ca-file", e.dev.CACert, "--tls-min-version", "TLS1.3",
			// Room for the preloaded keys and every round's puts.
			"--quota-backend-bytes", strconv.FormatInt(8<<30, 10),
		}
		p, err := startProc(name, filepath.Join(e.bin, "etcd"), args, filepath.Join(e.work, "logs", name+".log"), true, etcdReady, nil, 2*time.Minute)
		if err == nil {
			return &etcdPeer{proc: p, endpoint: endpoint, dir: dir, keep: e.opt.keep}, nil
		}
		if attempt == 3 {
			return nil, err
		}
		os.RemoveAll(filepath.Join(dir, "data"))
	}
}

// etcdLoad runs one etcd-load invocation and returns what it measured.
func (e *env) etcdLoad(ctx context.Context, peer *etcdPeer, workload string, args ...string) (loadgen.Result, error) {
	cert := e.certs[sender]
	all := append([]string{
		"--endpoint", peer.endpoint, "--cert", cert[0], "--key", cert[1], "--ca", e.dev.CACert,
		"--workload", workload, "--conns", strconv.Itoa(e.opt.conns),
		"--warmup", e.opt.warmup.String(), "--duration", e.opt.duration.String(),
	}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "etcd-load"), all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	r, decodeErr := loadgen.Decode(line)
	if err != nil || decodeErr != nil {
		return r, fmt.Errorf("etcd-load %s: %v %v: %s", workload, err, decodeErr, bytes.TrimSpace(stderr.Bytes()))
	}
	return r, nil
}
