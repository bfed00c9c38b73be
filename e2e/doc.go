// Package e2e holds the end-to-end tests of the exchange. They build the real
// exchanged and exchangectl binaries (and grpcurl from tools/go.mod) once,
// start exchanged as a subprocess in a fresh directory and drive it the way
// the README tells a newcomer to: from the command line, over mutual TLS,
// checking output, files and exit codes.
//
// Run them with `go test ./e2e/`; `go test -short` skips them.
package e2e
