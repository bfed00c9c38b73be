package server

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// auditScanLimit bounds how many entries one ListAuditEntries call
// examines for an agency, so that a sparse filter cannot hold the call
// long; the page token continues from where it stopped.
const auditScanLimit = 10000

// auditService implements AuditService.
type auditService struct {
	exchangev1.UnimplementedAuditServiceServer
	server    *Server
	store     *store.Store
	heartbeat time.Duration // how long an audit watch stays silent before a heartbeat
}

// ListAuditEntries pages through the chain, filtered for agencies to the
// entries about their own resources or made by them. An agency is not
// shown where its entries stand in the chain: their sequence numbers and
// previous hashes are left out (the gaps between them would count what
// other agencies did), and page tokens are sealed, since they hold the
// position reached.
func (a *auditService) ListAuditEntries(ctx context.Context, req *exchangev1.ListAuditEntriesRequest) (*exchangev1.ListAuditEntriesResponse, error) {
	var after uint64
	if tok := req.GetPageToken(); tok != "" {
		var ok bool
		if after, ok = a.openToken(tok); !ok {
			return nil, invalidField("page_token", "not a token from a previous response")
		}
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	caller := CallerFrom(ctx)
	about := a.aboutCaller(ctx, caller)
	resp := &exchangev1.ListAuditEntriesResponse{}
	scanned := 0
	for scanned < auditScanLimit && len(resp.Entries) < size {
		entries, err := a.store.AuditEntries(ctx, after, min(size, auditScanLimit-scanned))
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			return resp, nil
		}
		for _, e := range entries {
			scanned++
			after = e.GetSequence()
			if caller.IsSecretariat() {
				resp.Entries = append(resp.Entries, e)
			} else if about(e) {
				e.Sequence, e.PreviousHash = 0, nil
				resp.Entries = append(resp.Entries, e)
			}
			if len(resp.Entries) == size {
				break
			}
		}
	}
	head, _, err := a.store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	if after < head {
		resp.NextPageToken = a.sealToken(after)
	}
	return resp, nil
}

// sealToken makes a page token that holds the sequence number reached,
// sealed (AES-256-GCM under the store's page secret) so that the caller
// cannot read it.
func (a *auditService) sealToken(after uint64) string {
	aead := a.tokenAEAD()
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, binary.BigEndian.AppendUint64(nil, after), []byte("audit")))
}

// openToken returns the sequence number a token from sealToken holds.
func (a *auditService) openToken(tok string) (uint64, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	aead := a.tokenAEAD()
	if err != nil || len(raw) < aead.NonceSize() {
		return 0, false
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte("audit"))
	if err != nil || len(plain) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(plain), true
}

func (a *auditService) tokenAEAD() cipher.AEAD {
	block, err := aes.NewCipher(a.store.PageSecret())
	if err != nil {
		panic("audit page tokens: " + err.Error()) // the secret is always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("audit page tokens: " + err.Error())
	}
	return aead
}

// aboutCaller decides whether an entry concerns the calling agency:
// made by it, about its own record or anything under it (its focal
// points, plans and datasets, "agencies/{agency}/datasets/{dataset}",
// rows written by contributors included), about a referral it is party
// to, or about a certificate that names it, whoever issued, recorded or
// revoked it: a certificate made for the agency by the secretariat or
// with the CA key offline can act as the agency, so the agency must see
// it. Lookups are cached for the call.
func (a *auditService) aboutCaller(ctx context.Context, c Caller) func(*exchangev1.AuditEntry) bool {
	me := c.AgencyName()
	cache := map[string]bool{}
	return func(e *exchangev1.AuditEntry) bool {
		name := e.GetResourceName()
		switch {
		case e.GetActor() == me, name == me, strings.HasPrefix(name, me+"/"):
			return true
		}
		if seen, ok := cache[name]; ok {
			return seen
		}
		var mine bool
		switch {
		case strings.HasPrefix(name, store.ReferralPrefix):
			mine, _ = a.store.IsReferralParty(ctx, c.Identity.AgencyID, name) // an error shows nothing
		case strings.HasPrefix(name, store.CertificatePrefix):
			if subject, found, err := a.store.CertificateSubject(ctx, name); err == nil && found {
				mine = subject == me
			}
		}
		cache[name] = mine
		return mine
	}
}

// GetAuditHead returns the last entry's sequence number and hash. Only the
// secretariat may ask (access.go): the head moves with every agency's
// changes, so an agency polling it would watch the whole network's
// activity.
func (a *auditService) GetAuditHead(ctx context.Context, _ *exchangev1.GetAuditHeadRequest) (*exchangev1.GetAuditHeadResponse, error) {
	seq, hash, err := a.store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetAuditHeadResponse{Sequence: seq, Hash: hash}, nil
}
