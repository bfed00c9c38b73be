//go:build exchange_experiment_one_fsync

package store

// See experimentOneFsync: a binary built with -tags
// exchange_experiment_one_fsync is for the bench only.
func init() { experimentOneFsync = true }
