package kvtest

import "testing"

// TestBoltConformsToItself runs Conformance with bbolt on both sides: the
// sequences themselves follow bbolt's rules.
func TestBoltConformsToItself(t *testing.T) {
	Conformance(t, func(t *testing.T) Engine { return OpenBolt(t) })
}
