package client

import (
	"regexp"
	"testing"
	"time"
)

// TestNewRequestIDSortsByTime checks the idempotency keys the client makes:
// they match the API's request_id pattern, are unique, and a key made in a
// later millisecond sorts after one made earlier (so that the exchange
// appends them to its index).
func TestNewRequestIDSortsByTime(t *testing.T) {
	pattern := regexp.MustCompile(`^[0-9a-f]{32}$`) // within the API's ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$
	seen := map[string]bool{}
	prev := NewRequestID()
	for range 20 {
		time.Sleep(2 * time.Millisecond)
		batch := make([]string, 500)
		for i := range batch {
			batch[i] = NewRequestID()
			if !pattern.MatchString(batch[i]) || seen[batch[i]] {
				t.Fatalf("request id %q: malformed or repeated", batch[i])
			}
			seen[batch[i]] = true
		}
		if batch[0] <= prev {
			t.Fatalf("request id %q made after %q sorts before it", batch[0], prev)
		}
		prev = batch[len(batch)-1]
	}
}
