//go:build unix

package e2e

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackupOutWritesThroughPipesAndFollowsLinks takes online backups
// with `exchangectl admin backup -o` into a FIFO that a reader drains
// (as `-o /dev/stdout | gzip` would) and through a symbolic link: the FIFO
// stays a FIFO and its reader gets a whole database; the link stays a
// link and the file it leads to becomes the backup (mode 0600), which
// `exchanged backup verify` accepts.
func TestBackupOutWritesThroughPipesAndFollowsLinks(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sec.ok(t, "agencies", "create", "ilo", "--name", "ILO", "--kind", "un-agency")

	fifo := filepath.Join(dir, "backup.pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("cannot make a FIFO: %v", err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		data, _ := io.ReadAll(f)
		got <- data
	}()
	sec.ok(t, "admin", "backup", "-o", "backup.pipe")
	var streamed []byte
	select {
	case streamed = <-got:
	case <-time.After(30 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatal("the backup never wrote to the FIFO")
	}
	if info, err := os.Lstat(fifo); err != nil || info.Mode().Type() != fs.ModeNamedPipe {
		t.Fatalf("after the backup %s is %v (%v), want the FIFO", fifo, info.Mode().Type(), err)
	}
	writeFile(t, dir, "streamed.db", streamed)
	if r := sec.exec(t, "exchanged", "backup", "verify", "streamed.db"); r.code != 0 || !strings.Contains(r.stdout, "2 entries") {
		t.Errorf("the streamed backup:\n%s", r)
	}

	elsewhere := t.TempDir()
	target := filepath.Join(elsewhere, "exchange.db")
	if err := os.WriteFile(target, []byte("an older backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "latest.db")); err != nil {
		t.Fatal(err)
	}
	sec.ok(t, "admin", "backup", "-o", "latest.db")
	if info, err := os.Lstat(filepath.Join(dir, "latest.db")); err != nil || info.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("latest.db is now %v (%v), want the link", info.Mode().Type(), err)
	}
	if got := fileMode(t, target); got != 0o600 {
		t.Errorf("the backup behind the link has mode %v", got)
	}
	if r := sec.exec(t, "exchanged", "backup", "verify", target); r.code != 0 || !strings.Contains(r.stdout, "2 entries") {
		t.Errorf("the backup behind the link:\n%s", r)
	}
}
