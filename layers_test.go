// Package exchange_test holds checks on the repository as a whole.
package exchange_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// listedPackage is what the layers test reads of `go list -json`.
type listedPackage struct {
	ImportPath string
	Imports    []string
}

// TestClientsLinkNoStorage keeps the layers: a client of the wire API (the
// client package, exchangectl, and everything they link, tests aside)
// links no storage code. The arrows run cmd/exchangectl → client → the
// generated API (and auditchain, the chain's format, for verifying it);
// offline work on database files is exchanged's.
//
// Forbidden to them all: the exchange's store packages
// (github.com/alltogether/exchange/store and below) and etcd's client
// (go.etcd.io/etcd/...). bbolt itself (go.etcd.io/bbolt) is allowed to
// one package only, client/fieldfile, a field worker's offline outbox in
// a local file of its own: any other package reaching bbolt must do so
// through it, never by importing bbolt directly.
func TestClientsLinkNoStorage(t *testing.T) {
	roots := []string{"./client/...", "./cmd/exchangectl/..."}
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json=ImportPath,Imports"}, roots...)...)
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("go list: %v\n%s", err, exitErr.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	const module = "github.com/alltogether/exchange"
	linked := map[string]bool{}
	for _, p := range pkgs {
		linked[p.ImportPath] = true
	}
	for _, want := range []string{module + "/client", module + "/cmd/exchangectl", module + "/cmd/exchangectl/cli"} {
		if !linked[want] {
			t.Fatalf("go list did not list %s: the check would prove nothing", want)
		}
	}
	importers := func(path string) []string {
		var out []string
		for _, p := range pkgs {
			if slices.Contains(p.Imports, path) {
				out = append(out, p.ImportPath)
			}
		}
		return out
	}
	under := func(path, tree string) bool { return path == tree || strings.HasPrefix(path, tree+"/") }
	for _, p := range pkgs {
		if under(p.ImportPath, module+"/store") || under(p.ImportPath, "go.etcd.io/etcd") {
			t.Errorf("the client or exchangectl links %s (imported by %s): storage belongs to exchanged",
				p.ImportPath, strings.Join(importers(p.ImportPath), ", "))
		}
		if under(p.ImportPath, "go.etcd.io/bbolt") || p.ImportPath == module+"/client/fieldfile" {
			continue
		}
		for _, imp := range p.Imports {
			if under(imp, "go.etcd.io/bbolt") {
				t.Errorf("%s imports %s: of the client's packages only client/fieldfile may use bbolt", p.ImportPath, imp)
			}
		}
	}
}
