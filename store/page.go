package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/alltogether/exchange/store/kv"
)

// Page asks for one page of a list.
type Page struct {
	// Size is the most items wanted; 0 means DefaultPageSize, and values
	// above MaxPageSize are capped.
	Size int32
	// Token continues from a previous page; empty starts at the beginning.
	Token string
}

const (
	// DefaultPageSize is the page size when the caller gives none.
	DefaultPageSize = 50
	// MaxPageSize is the largest page returned.
	MaxPageSize = 1000
)

func (p Page) limit() int {
	switch {
	case p.Size <= 0:
		return DefaultPageSize
	case p.Size > MaxPageSize:
		return MaxPageSize
	}
	return int(p.Size)
}

// query fingerprints a list query so that a page token cannot be replayed
// against a different filter.
func query(parts ...string) []byte {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return h[:8]
}

func badToken() error {
	return &Error{Kind: KindInvalidArgument, Field: "page_token",
		Message: "page_token is not valid for this request (it must come from a response to the same request)"}
}

// pageTokens seals page tokens. A token holds the key after which the
// next page starts, the last key the page visited, which need not be an
// item the caller was shown: a filtered page stops after its scan budget,
// perhaps on a record the caller may not see (another agency's plan kept
// from it, say). So the key is encrypted (AES-256-GCM, under a key derived
// from the store's page secret) and the caller learns nothing from it.
// The nonce is derived from the sealed bytes (HMAC-SHA-256), so that one
// position always gives the same token.
type pageTokens struct {
	aead     cipher.AEAD
	nonceKey []byte
}

// newPageTokens derives the sealing keys from secret (the store's page
// secret; nil for a store opened read-only, which serves no caller).
func newPageTokens(secret []byte) pageTokens {
	derive := func(purpose string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(purpose))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("page token key"))
	if err != nil {
		panic("page tokens: " + err.Error()) // a 32-byte key always fits
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("page tokens: " + err.Error())
	}
	return pageTokens{aead: aead, nonceKey: derive("page token nonce")}
}

// pageTokens returns the sealer of the store's page tokens.
func (s *Store) pageTokens() pageTokens { return newPageTokens(s.pageSecret) }

// decode returns the key after which the page starts.
func (pt pageTokens) decode(token string, fingerprint []byte) ([]byte, error) {
	if token == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	n := pt.aead.NonceSize()
	if err != nil || len(raw) < n {
		return nil, badToken()
	}
	plain, err := pt.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil || len(plain) <= len(fingerprint) || !bytes.Equal(plain[:len(fingerprint)], fingerprint) {
		return nil, badToken()
	}
	// The decoder skips line breaks and ignores the unused low bits of
	// the last character; accept only the one spelling encode makes.
	key := plain[len(fingerprint):]
	if pt.encode(fingerprint, key) != token {
		return nil, badToken()
	}
	return key, nil
}

// encode seals the position after lastKey in the query fingerprint names.
func (pt pageTokens) encode(fingerprint, lastKey []byte) string {
	plain := append(append([]byte{}, fingerprint...), lastKey...)
	m := hmac.New(sha256.New, pt.nonceKey)
	m.Write(plain)
	nonce := m.Sum(nil)[:pt.aead.NonceSize()]
	return base64.RawURLEncoding.EncodeToString(pt.aead.Seal(append([]byte{}, nonce...), nonce, plain, nil))
}

// A page visits at most scanBudget(limit) keys, matching or not: a
// filter that matches few records (or none) would otherwise walk every key
// under the prefix to fill one page, and a list the caller expects to
// answer in a millisecond would take the time of a full scan (598 ms for
// 250,000 referrals). As AIP-158 allows, such a page holds fewer items
// than asked for, even none, and still carries a next page token, which
// resumes after the last key visited; only an empty token ends the list.
//
// The budget keeps a filtered page within twice the cost of an unfiltered
// one of the same size: visiting a key that does not match costs no more
// than visiting one that does (which is then also encoded and sent), and
// an unfiltered page visits limit keys, plus one to know there is more.
// For small pages the fixed cost of a call dominates, so no page visits
// fewer than scanBudgetMin keys.
//
// A key that the visit turns down from the key alone, without reading its
// record (errPassOver: an inbox list passing over the agency's sent
// referrals), costs a small part of a visit, and counts 1/passOverShare
// of one: an agency that sent a million referrals and received few pages
// through its empty inbox in a few hundred calls rather than thousands.
const (
	// scanBudgetPerItem is how many keys a page may visit per item asked.
	scanBudgetPerItem = 2
	// scanBudgetMin is the fewest keys a page may visit.
	scanBudgetMin = 100
	// passOverShare is how many keys passed over cost one visit.
	passOverShare = 16
)

// errPassOver, from a visit, turns the key down from the key alone: it
// counts 1/passOverShare of a visit against the page's budget.
var errPassOver = errors.New("passed over on its key")

// scanBudget is the most keys one page of limit items visits.
func scanBudget(limit int) int { return max(scanBudgetPerItem*limit, scanBudgetMin) }

// paginate walks the keys of bucket that start with prefix, after the key
// in the page token, and calls visit for each; visit decodes the item and
// says whether it matches the query. It returns one page of matching items
// and the token of the next page, empty when the walk reached the end of
// the prefix. It visits at most scanBudget keys: a page may hold fewer
// items than asked for, even none, and still have a next page. pt seals
// the tokens.
func paginate[T any](pt pageTokens, tx kv.Tx, bucket, prefix []byte, p Page, fingerprint []byte, visit func(k, v []byte) (T, bool, error)) ([]T, string, error) {
	after, err := pt.decode(p.Token, fingerprint)
	if err != nil {
		return nil, "", err
	}
	if after != nil && !bytes.HasPrefix(after, prefix) {
		return nil, "", badToken()
	}
	limit := p.limit()
	// In passOverShare-ths of a visit.
	budget, spent := scanBudget(limit)*passOverShare, 0
	var items []T
	// last is the last key the page used up: returned, or visited and
	// not matching. The next page resumes after it.
	var last []byte
	c := tx.Bucket(bucket).Cursor()
	k, v := c.Seek(prefix)
	if after != nil {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if spent+1 > budget {
			return items, pt.encode(fingerprint, last), nil
		}
		item, ok, err := visit(k, v)
		if errors.Is(err, errPassOver) {
			spent++
			last = append(last[:0], k...)
			continue
		}
		if err != nil {
			return nil, "", err
		}
		spent += passOverShare
		if ok && len(items) == limit {
			// A further match: the next page starts with it.
			return items, pt.encode(fingerprint, last), nil
		}
		if ok {
			items = append(items, item)
		}
		last = append(last[:0], k...)
	}
	return items, "", nil
}
