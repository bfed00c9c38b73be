// Command exchanged runs the exchange: the gRPC service through which
// agencies refer people, collect data jointly and share plans.
//
// With no flags it listens on 127.0.0.1:7443, keeps its database and its
// development certificates in ./exchange-data (creating them on first
// start), and shuts down gracefully on SIGINT or SIGTERM.
package main

import "os"

func main() {
	os.Exit(Main(os.Args[1:]))
}
