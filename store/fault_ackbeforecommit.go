//go:build exchange_fault_ack_before_commit

package store

// This file plants the fault described at ackBeforeCommit: a binary built
// with -tags exchange_fault_ack_before_commit acknowledges writes before
// they are committed. The crash harness (e2e/crash_test.go) builds such an
// exchanged to prove that it detects lost acknowledged writes.
func init() { ackBeforeCommit = true }
