package main

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// The exchange refuses identifying details in clear: every referral the
// bench sends carries them sealed, as an agency's client seals them. The
// bench measures the exchange, so sealing happens before any measured
// window: benchSealed seals one referral's details once, and every
// referral carries that blob (the exchange keeps blobs opaque and never
// checks their binding). What sealing costs the sending client is
// measured apart, by sealCost, and reported beside the write workloads.

// benchDetails are the identifying details of the bench's referral, of a
// typical size.
func benchDetails(n int64) *exchangev1.ReferralDetails {
	return &exchangev1.ReferralDetails{
		Name: "Sokha Chan", GuardianContact: "mother, +855 12 345 678", BirthYear: 2010,
		CaseNotes: fmt.Sprintf("Returned from Bangkok through the Poipet border; needs counselling in Khmer, prefers a female counsellor. (%d)", n),
	}
}

// benchKeys are the receiver's and the sender's keys the bench seals to.
var benchKeys = sync.OnceValues(func() ([]seal.Recipient, error) {
	var to []seal.Recipient
	for range 2 {
		id, err := seal.GenerateIdentity()
		if err != nil {
			return nil, err
		}
		to = append(to, id.Recipient())
	}
	return to, nil
})

// sealBench seals the details of referral n, bound to requestID, to the
// receiver's and the sender's keys, as the client does.
func sealBench(n int64, requestID string) ([]byte, error) {
	to, err := benchKeys()
	if err != nil {
		return nil, err
	}
	plain, err := proto.Marshal(benchDetails(n))
	if err != nil {
		return nil, err
	}
	return seal.Seal(plain, seal.Binding{RequestID: requestID, Sender: "agencies/" + sender, Receiver: "agencies/" + receiver}, to...)
}

// benchSealed is the blob every bench referral carries, sealed once.
var benchSealed = sync.OnceValue(func() []byte {
	blob, err := sealBench(0, "bench-referral")
	if err != nil {
		panic(fmt.Sprintf("exchange-bench: cannot seal the bench referral's details: %v", err))
	}
	return blob
})

// sealCost seals n referrals' details, one after the other, and returns
// the process CPU time (user and system) per seal and the size of a blob.
func sealCost(n int) (time.Duration, int, error) {
	if _, err := benchKeys(); err != nil {
		return 0, 0, err
	}
	before, err := processCPU()
	if err != nil {
		return 0, 0, err
	}
	size := 0
	for i := range n {
		blob, err := sealBench(int64(i), fmt.Sprintf("seal-cost-%d", i))
		if err != nil {
			return 0, 0, err
		}
		size = len(blob)
	}
	after, err := processCPU()
	if err != nil {
		return 0, 0, err
	}
	return (after - before) / time.Duration(n), size, nil
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
