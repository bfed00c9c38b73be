package fieldfile

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketRecipients keeps the public encryption key (a seal recipient, in
// its text form) of each agency the field office has sealed referrals to,
// as the directory showed it when the exchange could last be reached:
// key the agency's name, value the recipient. A referral made while the
// exchange cannot be reached is sealed to the key kept here, checked
// against its pin as a fetched key is, so that it can wait in the outbox
// sealed. Pins hold only fingerprints, which cannot seal.
var bucketRecipients = []byte("recipients")

// PutRecipient keeps recipient as the key of agency ("agencies/{id}"),
// replacing any kept before.
func (f *File) PutRecipient(agency, recipient string) error {
	if kept, _, err := f.Recipient(agency); err == nil && kept == recipient {
		return nil // kept already: no commit
	}
	err := f.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRecipients)
		if err != nil {
			return err
		}
		if string(b.Get([]byte(agency))) == recipient {
			return nil
		}
		return b.Put([]byte(agency), []byte(recipient))
	})
	if err != nil {
		return fmt.Errorf("fieldfile: recipients: %w", err)
	}
	return nil
}

// Recipient returns the key kept for agency, and false if none is.
func (f *File) Recipient(agency string) (string, bool, error) {
	var r string
	err := f.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRecipients); b != nil {
			r = string(b.Get([]byte(agency)))
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("fieldfile: recipients: %w", err)
	}
	return r, r != "", nil
}
