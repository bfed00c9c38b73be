package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/store"
)

// etcdOptions choose the etcd cluster several exchanged replicas share
// instead of the bbolt file in the data directory. With no endpoints the
// file is used, as before.
type etcdOptions struct {
	endpoints       []string
	ca              string
	cert            string
	key             string
	prefix          string
	maxTxnOps       int
	maxRequestBytes int
}

// addEtcdFlags adds the etcd flags to cmd and every command under it.
func addEtcdFlags(cmd *cobra.Command, o *etcdOptions) {
	f := cmd.PersistentFlags()
	var endpoints []string
	if v := os.Getenv("EXCHANGE_ETCD_ENDPOINTS"); v != "" {
		endpoints = strings.Split(v, ",")
	}
	f.StringSliceVar(&o.endpoints, "etcd-endpoints", endpoints,
		"keep the exchange on this etcd cluster (client URLs, comma-separated, like https://10.0.0.1:2379) instead of DATA_DIR/exchange.db, so that several exchanged replicas can serve it; see docs/operations.md (EXCHANGE_ETCD_ENDPOINTS)")
	f.StringVar(&o.ca, "etcd-ca", env("EXCHANGE_ETCD_CA", ""), "CA certificate of the etcd cluster's server certificates (EXCHANGE_ETCD_CA)")
	f.StringVar(&o.cert, "etcd-cert", env("EXCHANGE_ETCD_CERT", ""), "client certificate exchanged presents to etcd (EXCHANGE_ETCD_CERT)")
	f.StringVar(&o.key, "etcd-key", env("EXCHANGE_ETCD_KEY", ""), "key of --etcd-cert (EXCHANGE_ETCD_KEY)")
	f.StringVar(&o.prefix, "etcd-prefix", env("EXCHANGE_ETCD_PREFIX", store.DefaultEtcdPrefix), "the exchange's keys in etcd start with it (EXCHANGE_ETCD_PREFIX)")
	f.IntVar(&o.maxTxnOps, "etcd-max-txn-ops", store.DefaultEtcdMaxTxnOps, "the cluster's --max-txn-ops: one write of the exchange is one etcd transaction, and exchanged refuses to start if the cluster allows fewer")
	f.IntVar(&o.maxRequestBytes, "etcd-max-request-bytes", store.DefaultEtcdMaxRequestBytes, "the cluster's --max-request-bytes")
}

// enabled reports whether an etcd cluster was chosen.
func (o *etcdOptions) enabled() bool { return len(o.endpoints) > 0 }

// storeOptions returns the store's options for the chosen cluster.
// Endpoints over https need --etcd-ca; a client certificate is given
// when the cluster asks for one (it should: --client-cert-auth).
func (o *etcdOptions) storeOptions() (store.EtcdOptions, error) {
	eo := store.EtcdOptions{Endpoints: o.endpoints, Prefix: o.prefix, MaxTxnOps: o.maxTxnOps, MaxRequestBytes: o.maxRequestBytes}
	secure := false
	for _, ep := range o.endpoints {
		switch {
		case strings.HasPrefix(ep, "https://"):
			secure = true
		case strings.HasPrefix(ep, "http://"):
		default:
			return eo, fmt.Errorf("--etcd-endpoints: %q must start with https:// (or http:// on a trusted network)", ep)
		}
	}
	if !secure {
		return eo, nil
	}
	if o.ca == "" {
		return eo, fmt.Errorf("--etcd-ca: the endpoints are https:// and no CA was given to check the cluster's certificates")
	}
	pem, err := os.ReadFile(o.ca)
	if err != nil {
		return eo, fmt.Errorf("--etcd-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return eo, fmt.Errorf("--etcd-ca: %s holds no PEM certificate", o.ca)
	}
	eo.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if (o.cert == "") != (o.key == "") {
		return eo, fmt.Errorf("--etcd-cert and --etcd-key go together")
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return eo, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		eo.TLS.Certificates = []tls.Certificate{pair}
	}
	return eo, nil
}

// openStore opens the exchange's store: on the etcd cluster if one was
// chosen, otherwise the bbolt file DATA_DIR/exchange.db. It returns the
// store and where it is, for messages.
func openStore(o *etcdOptions, dataDir string, opt store.Options) (*store.Store, string, error) {
	if o.enabled() {
		eo, err := o.storeOptions()
		if err != nil {
			return nil, "", err
		}
		opt.CheckOnOpen, opt.MaxSize = false, 0
		st, err := store.OpenEtcd(eo, opt)
		if err != nil {
			return nil, "", err
		}
		return st, st.Path(), nil
	}
	path := filepath.Join(dataDir, "exchange.db")
	st, err := store.Open(path, opt)
	return st, path, err
}
