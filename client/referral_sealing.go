package client

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client/fieldfile"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// sealer seals the identifying details of the referrals an agency sends
// and opens those it reads, with the agency's own key ring: the exchange
// then holds only ciphertext it cannot open. It is set when Config names a
// key ring (Config.KeyRingFile).
//
// Identifying fields, sealed: subject.name, subject.guardian_contact,
// subject.birth_year and case_notes (ReferralDetails). Everything else,
// the routing attributes included (sex, age, nationality, languages,
// current location, location, service, urgency), stays readable to the
// exchange, which needs it to route, count and chase referrals.
type sealer struct {
	ring *seal.KeyRing
	pins *seal.Pins
	self string // "agencies/{agency}", from the client certificate
	dir  *DirectoryClient
	// kept, with an outbox (Config.FieldFile), keeps each receiver's key
	// as fetched, to seal to while the exchange cannot be reached
	// (referral_keys_kept.go).
	kept *fieldfile.File
}

// newSealer opens the key ring and pin files for the agency named by the
// certificate in certFile.
func newSealer(certFile, ringFile, pinsFile string) (*sealer, error) {
	if pinsFile == "" {
		return nil, errors.New("client: a key ring needs a pin file too (Config.PinsFile)")
	}
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	cert, err := pki.ParseCertPEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", certFile, err)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", certFile, err)
	}
	if id.Role != pki.RoleAgency {
		return nil, fmt.Errorf("client: %s is the %s's certificate: only agencies seal referrals", certFile, id.Role)
	}
	ring, err := seal.OpenKeyRing(ringFile)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	pins, err := seal.OpenPins(pinsFile)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &sealer{ring: ring, pins: pins, self: AgencyName(id.AgencyID)}, nil
}

// recipientOf returns receiver's registered key, checked against the pin
// for it (pinned on first use).
func (s *sealer) recipientOf(ctx context.Context, receiver string) (seal.Recipient, error) {
	a, err := s.dir.GetAgency(ctx, receiver)
	if err != nil {
		if s.kept != nil && unreachable(err) {
			return s.keptRecipient(receiver, err)
		}
		return seal.Recipient{}, err
	}
	if a.GetEncryptionKey().GetRecipient() == "" {
		return seal.Recipient{}, status.Errorf(codes.FailedPrecondition,
			"client: %s has not registered an encryption key; ask them to run `exchangectl keys create`", receiver)
	}
	r, err := EncryptionKeyOf(a)
	if err != nil {
		return seal.Recipient{}, err
	}
	if err := s.pins.Check(receiver, r); err != nil {
		var changed *seal.KeyChangedError
		if errors.As(err, &changed) {
			return seal.Recipient{}, status.Error(codes.FailedPrecondition, "client: "+changed.Error())
		}
		return seal.Recipient{}, fmt.Errorf("client: %w", err)
	}
	if s.kept != nil {
		if err := s.kept.PutRecipient(receiver, r.String()); err != nil {
			return seal.Recipient{}, status.Errorf(codes.Internal, "client: %v", err)
		}
	}
	return r, nil
}

// seal returns r with its identifying fields moved into sealed_details,
// sealed to receiver's key (resolved once per receiver through keys) and
// the agency's own current key, bound to requestID. r is not changed.
func (s *sealer) seal(ctx context.Context, r *exchangev1.Referral, requestID string, keys map[string]seal.Recipient) (*exchangev1.Referral, error) {
	out := proto.CloneOf(r)
	details := detailsOf(out)
	if details.GetName() == "" {
		// Nothing worth sealing: sent without its identifying fields and
		// without a blob, the exchange refuses it on sealed_details, in a
		// batch on its own, and no detail travels in clear.
		return out, nil
	}
	blob, err := s.sealDetails(ctx, details, requestID, out.GetReceiver(), keys)
	if err != nil {
		return nil, err
	}
	out.SealedDetails = blob
	return out, nil
}

// sealDetails seals details to receiver and to the agency itself, bound
// to (requestID, the agency, receiver).
func (s *sealer) sealDetails(ctx context.Context, details *exchangev1.ReferralDetails, requestID, receiver string, keys map[string]seal.Recipient) ([]byte, error) {
	to, ok := keys[receiver]
	if !ok {
		var err error
		if to, err = s.recipientOf(ctx, receiver); err != nil {
			return nil, err
		}
		keys[receiver] = to
	}
	plain, err := proto.Marshal(details)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer clear(plain)
	blob, err := seal.Seal(plain, seal.Binding{RequestID: requestID, Sender: s.self, Receiver: receiver}, to, s.ring.Current().Recipient())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "client: cannot seal the details of request %s: %v", requestID, err)
	}
	return blob, nil
}

// open puts the details sealed in r back into r's subject and case notes
// and drops the blob, so that callers see the referral as it was sent. A
// referral without sealed_details is left as it is.
func (s *sealer) open(r *exchangev1.Referral) error {
	if len(r.GetSealedDetails()) == 0 {
		return nil
	}
	plain, err := seal.Open(r.GetSealedDetails(), seal.Binding{RequestID: r.GetRequestId(), Sender: r.GetSender(), Receiver: r.GetReceiver()}, s.ring)
	if err != nil {
		return status.Errorf(codes.DataLoss, "client: the details of %s: %v", r.GetName(), err)
	}
	defer clear(plain)
	var d exchangev1.ReferralDetails
	if err := proto.Unmarshal(plain, &d); err != nil {
		return status.Errorf(codes.DataLoss, "client: the details of %s: %v", r.GetName(), err)
	}
	putDetails(r, &d)
	r.SealedDetails = nil
	return nil
}

// detailsOf moves r's identifying fields out of r into ReferralDetails.
func detailsOf(r *exchangev1.Referral) *exchangev1.ReferralDetails {
	d := &exchangev1.ReferralDetails{CaseNotes: r.GetCaseNotes()}
	r.CaseNotes = ""
	if sub := r.GetSubject(); sub != nil {
		d.Name, d.GuardianContact, d.BirthYear = sub.GetName(), sub.GetGuardianContact(), sub.GetBirthYear()
		sub.Name, sub.GuardianContact, sub.BirthYear = "", "", 0
	}
	return d
}

// putDetails puts d's fields back into r.
func putDetails(r *exchangev1.Referral, d *exchangev1.ReferralDetails) {
	if r.Subject == nil {
		r.Subject = &exchangev1.Subject{}
	}
	r.Subject.Name, r.Subject.GuardianContact, r.Subject.BirthYear = d.GetName(), d.GetGuardianContact(), d.GetBirthYear()
	r.CaseNotes = d.GetCaseNotes()
}
