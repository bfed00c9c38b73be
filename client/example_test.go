package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Connect as an agency and find out whom to contact at another agency about
// referrals today.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Address:  "127.0.0.1:7443",
		CertFile: "ilo.crt",
		KeyFile:  "ilo.key",
		CAFile:   "ca.crt",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	fp, err := c.Directory.CurrentFocalPoint(ctx, client.AgencyName("iom"), "referrals")
	switch {
	case client.IsNotFound(err):
		fmt.Println("IOM has no referrals focal point today")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(fp.GetDisplayName(), fp.GetEmail())
	}
}

// List every agency working on return and reintegration in Cambodia; the
// iterator fetches further pages as the loop needs them.
func ExampleDirectoryClient_Agencies() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "ilo.crt", KeyFile: "ilo.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	req := &exchangev1.ListAgenciesRequest{
		Country: "KH",
		Niche:   exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION,
	}
	for a, err := range c.Directory.Agencies(ctx, req) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(a.GetName(), a.GetDisplayName())
	}
}

// Change one field of an agency: read it for its etag, change the field, and
// name the field in the update mask. A concurrent change makes the update
// fail with reason ETAG_MISMATCH; read again and retry.
func ExampleDirectoryClient_UpdateAgency() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "ilo.crt", KeyFile: "ilo.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for {
		a, err := c.Directory.GetAgency(ctx, client.AgencyName("ilo"))
		if err != nil {
			log.Fatal(err)
		}
		a.Website = "https://www.ilo.org"
		_, err = c.Directory.UpdateAgency(ctx, a, "website")
		if client.Reason(err) == "ETAG_MISMATCH" {
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		return
	}
}

// Issue a certificate for a new agency as the secretariat. The key is made
// here and written to disk; only the certificate request goes to the
// exchange.
func ExampleCertificateClient_Issue() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{
		Address:  "127.0.0.1:7443",
		CertFile: "exchange-data/pki/secretariat.crt",
		KeyFile:  "exchange-data/pki/secretariat.key",
		CAFile:   "exchange-data/pki/ca.crt",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	certPEM, keyPEM, caPEM, cert, err := c.Certificates.Issue(ctx, client.AgencyName("ilo"), 365)
	if err != nil {
		log.Fatal(err)
	}
	for name, data := range map[string][]byte{"ilo.crt": certPEM, "ilo.key": keyPEM, "ca.crt": caPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("issued", cert.GetName(), "valid until", cert.GetNotAfter().AsTime())
}
