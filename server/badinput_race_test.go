//go:build race

package server

// badInputRace is true in builds with the race detector, which make the
// validation of 100,000-item lists dozens of times slower.
const badInputRace = true
