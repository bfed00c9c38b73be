// Package sealtest gives tests one key ring to seal referral details to,
// as an agency's client seals them, and to open them with again. The
// exchange stores a blob opaque and never checks its binding, so tests
// of the store and the server seal every referral with one binding to
// one key ring; tests of the client and of exchangectl, which seal and
// open for real, use agencies' own key rings instead. Only tests import
// it.
package sealtest

import (
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/seal"
)

// Ring returns the key ring, made once per test binary. Its file is
// removed at once: the keys stay in memory.
var Ring = sync.OnceValue(func() *seal.KeyRing {
	dir, err := os.MkdirTemp("", "sealtest-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ring, err := seal.CreateKeyRing(filepath.Join(dir, "keys"))
	if err != nil {
		panic(err)
	}
	return ring
})

// Binding is the binding of every blob Seal makes.
var Binding = seal.Binding{RequestID: "test", Sender: "agencies/ilo", Receiver: "agencies/any"}

// Seal seals the encoding of details to Ring's current key with Binding.
// It panics on failure: it makes test fixtures.
func Seal(details proto.Message) []byte {
	plain, err := proto.Marshal(details)
	if err != nil {
		panic(err)
	}
	blob, err := seal.Seal(plain, Binding, Ring().Current().Recipient())
	if err != nil {
		panic(err)
	}
	return blob
}

// Open opens a blob Seal made into details.
func Open(blob []byte, details proto.Message) error {
	plain, err := seal.Open(blob, Binding, Ring())
	if err != nil {
		return err
	}
	return proto.Unmarshal(plain, details)
}
