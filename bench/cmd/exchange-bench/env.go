package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// env is what every workload shares: the binaries, one development PKI
// (used by exchanged, the no-op server and etcd alike) and client
// certificates for the agencies the workloads act as.
type env struct {
	bin  string // directory of exchanged, noop-server, etcd, etcd-load
	work string // scratch directory of this run
	dev  pki.DevFiles
	// certs maps an agency id to its certificate and key files.
	certs map[string][2]string
	opt   options
}

// The agencies of every workload: ilo sends referrals to iom.
const (
	sender   = "ilo"
	receiver = "iom"
)

func newEnv(o options, work string) (*env, error) {
	dev, _, err := pki.EnsureDev(filepath.Join(work, "pki"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA(dev.CACert, dev.CAKey)
	if err != nil {
		return nil, err
	}
	e := &env{bin: o.bin, work: work, dev: dev, certs: map[string][2]string{}, opt: o}
	dir := filepath.Join(work, "certs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, id := range benchAgencies() {
		certPEM, keyPEM, err := ca.IssueClient(pki.Agency(id), 7*24*time.Hour)
		if err != nil {
			return nil, err
		}
		c, k := filepath.Join(dir, id+".crt"), filepath.Join(dir, id+".key")
		if err := os.WriteFile(c, certPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
			return nil, err
		}
		e.certs[id] = [2]string{c, k}
	}
	return e, nil
}

// benchAgencies are the agencies created in every data directory: the
// two referral parties and the twenty plan owners.
func benchAgencies() []string {
	ids := []string{sender, receiver}
	for i := range planAgencies {
		ids = append(ids, planAgencyID(i))
	}
	return ids
}

func planAgencyID(i int) string { return fmt.Sprintf("agency-%02d", i) }

// newDataDir makes a fresh data directory for exchanged holding the
// run's PKI, so that every server presents the same certificates and
// start-up creates none. The agencies' certificates, signed here rather
// than issued through the API, are recorded with `exchanged certs
// record`, as an operator signing with the CA offline must: exchanged
// accepts only recorded certificates.
func (e *env) newDataDir(name string) (string, error) {
	dir, err := os.MkdirTemp(e.work, name+"-")
	if err != nil {
		return "", err
	}
	if err := copyDir(e.dev.Dir, filepath.Join(dir, "pki")); err != nil {
		return "", err
	}
	args := []string{"certs", "record", "--data-dir", dir}
	for _, id := range benchAgencies() {
		args = append(args, e.certs[id][0])
	}
	if out, err := exec.Command(filepath.Join(e.bin, "exchanged"), args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("exchanged certs record: %v\n%s", err, out)
	}
	return dir, nil
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if !ent.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, ent.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, ent.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// dial connects to addr as the agency (or "secretariat") through the
// typed client, over mutual TLS.
func (e *env) dial(addr, who string) (*client.Client, error) {
	cfg := client.Config{Address: addr, CAFile: e.dev.CACert, ServerName: "127.0.0.1"}
	if who == "secretariat" {
		cfg.CertFile, cfg.KeyFile = e.dev.SecretariatCert, e.dev.SecretariatKey
	} else {
		f, ok := e.certs[who]
		if !ok {
			return nil, fmt.Errorf("no certificate for %s", who)
		}
		cfg.CertFile, cfg.KeyFile = f[0], f[1]
	}
	return client.Dial(context.Background(), cfg)
}

// pool is conns connections as one identity; worker w uses connection
// w mod conns.
type pool []*client.Client

func (e *env) dialPool(addr, who string, conns int) (pool, error) {
	var p pool
	for range conns {
		c, err := e.dial(addr, who)
		if err != nil {
			p.Close()
			return nil, err
		}
		p = append(p, c)
	}
	return p, nil
}

func (p pool) get(worker int) *client.Client { return p[worker%len(p)] }

func (p pool) Close() {
	for _, c := range p {
		c.Close()
	}
}

// benchAgency is the directory entry of every bench agency.
func benchAgency(id string) *exchangev1.Agency {
	return &exchangev1.Agency{
		DisplayName: "Agency " + id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
		Countries: []string{"KH"}, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, exchangev1.Niche_NICHE_PREVENTION},
		Coverage: []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}},
	}
}

// createAgencies creates the bench agencies through the API, as the
// secretariat.
func (e *env) createAgencies(ctx context.Context, addr string) error {
	sec, err := e.dial(addr, "secretariat")
	if err != nil {
		return err
	}
	defer sec.Close()
	for _, id := range benchAgencies() {
		if _, err := sec.Directory.CreateAgency(ctx, id, benchAgency(id)); err != nil {
			return fmt.Errorf("create agency %s: %w", id, err)
		}
	}
	return nil
}

// newReferral is the referral every workload sends: ilo refers a person to
// iom for counselling, with consent covering it and its identifying
// details sealed before any measured window (benchSealed, sealing.go).
func newReferral(n int64) *exchangev1.Referral {
	return &exchangev1.Referral{
		Receiver:            client.AgencyName(receiver),
		Service:             &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "trauma counselling after return"},
		Urgency:             exchangev1.Urgency_URGENCY_URGENT,
		SenderCaseReference: fmt.Sprintf("CASE-2026-%07d", n%10_000_000),
		SubjectReference:    fmt.Sprintf("subj-%08x", n),
		Subject: &exchangev1.Subject{
			Sex: exchangev1.Sex_SEX_FEMALE, Nationality: "KH", Languages: []string{"km", "th"},
			CurrentLocation: &exchangev1.LocationRef{Country: "TH", Subdivision: "TH-10"},
		},
		SealedDetails: benchSealed(),
		Consent: &exchangev1.Consent{
			GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)),
			ReceivingAgency: client.AgencyName(receiver), Services: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}
}
