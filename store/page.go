package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
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

// decodeToken returns the key after which the page starts.
func decodeToken(token string, fingerprint []byte) ([]byte, error) {
	if token == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) <= len(fingerprint) || !bytes.Equal(raw[:len(fingerprint)], fingerprint) {
		return nil, badToken()
	}
	// The decoder skips line breaks and ignores the unused low bits of
	// the last character; accept only the one spelling encodeToken makes.
	if encodeToken(fingerprint, raw[len(fingerprint):]) != token {
		return nil, badToken()
	}
	return raw[len(fingerprint):], nil
}

func encodeToken(fingerprint, lastKey []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(append([]byte{}, fingerprint...), lastKey...))
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
const (
	// scanBudgetPerItem is how many keys a page may visit per item asked.
	scanBudgetPerItem = 2
	// scanBudgetMin is the fewest keys a page may visit.
	scanBudgetMin = 100
)

// scanBudget is the most keys one page of limit items visits.
func scanBudget(limit int) int { return max(scanBudgetPerItem*limit, scanBudgetMin) }

// paginate walks the keys of bucket that start with prefix, after the key
// in the page token, and calls visit for each; visit decodes the item and
// says whether it matches the query. It returns one page of matching items
// and the token of the next page, empty when the walk reached the end of
// the prefix. It visits at most scanBudget keys: a page may hold fewer
// items than asked for, even none, and still have a next page.
func paginate[T any](tx kv.Tx, bucket, prefix []byte, p Page, fingerprint []byte, visit func(k, v []byte) (T, bool, error)) ([]T, string, error) {
	after, err := decodeToken(p.Token, fingerprint)
	if err != nil {
		return nil, "", err
	}
	if after != nil && !bytes.HasPrefix(after, prefix) {
		return nil, "", badToken()
	}
	limit := p.limit()
	budget := scanBudget(limit)
	var items []T
	// last is the last key the page used up: returned, or visited and
	// not matching. The next page resumes after it.
	var last []byte
	visited := 0
	c := tx.Bucket(bucket).Cursor()
	k, v := c.Seek(prefix)
	if after != nil {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if visited == budget {
			return items, encodeToken(fingerprint, last), nil
		}
		visited++
		item, ok, err := visit(k, v)
		if err != nil {
			return nil, "", err
		}
		if ok && len(items) == limit {
			// A further match: the next page starts with it.
			return items, encodeToken(fingerprint, last), nil
		}
		if ok {
			items = append(items, item)
		}
		last = append(last[:0], k...)
	}
	return items, "", nil
}
