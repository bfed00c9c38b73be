package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
)

// A field office accepts a referral whatever the line does: with a field
// file, an accept made while the exchange cannot be reached is kept, and
// sent later by Outbox.Send, in order with the office's other writes to
// the same referral.
func ExampleOutbox() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{
		Address: "exchange.example.org:7443", CertFile: "iom.crt", KeyFile: "iom.key", CAFile: "ca.crt",
		KeyRingFile: "iom.age-keys", PinsFile: "iom.age-pins",
		FieldFile: fieldfile.PathBeside("iom.crt"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Referrals.Accept(ctx, "referrals/01jd7z3q4c8m2k9x0v5n6b7t8w", "")
	switch {
	case client.IsQueued(err):
		fmt.Println("kept in the outbox; it will be sent when the exchange can be reached")
	case err != nil:
		log.Fatal(err) // the exchange answered: a stale etag, a wrong state, ...
	}

	// Later, once the line is back: send what waits, and see what the
	// exchange refused (kept, with its reason, until a person drops it).
	rep, err := c.Outbox.Send(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range rep.Rejected {
		fmt.Printf("entry %d (%s of %s) rejected: %s %s\n", e.ID, e.Kind, e.Resource, e.Code, e.LastError)
	}
	if rep.Unreachable != nil {
		fmt.Println("still cannot reach the exchange; try again later")
	}
}
