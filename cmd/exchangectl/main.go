// Command exchangectl is the command-line client of the exchange: it sends
// and follows referrals, defines datasets and pushes and pulls their rows,
// reads and administers the directory and issues certificates. Run
// `exchangectl --help` for the commands, flags, environment and exit codes.
package main

import (
	"os"

	"github.com/alltogether/exchange/cmd/exchangectl/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
