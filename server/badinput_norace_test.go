//go:build !race

package server

// badInputRace is true in builds with the race detector.
const badInputRace = false
