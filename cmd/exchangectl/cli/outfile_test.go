//go:build unix

package cli

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pullTo runs `datasets pull --format jsonl --out out` in dir as mosvy on
// a fixture where rows were pushed, and returns the result and the
// stored rows' count.
func pullTo(t *testing.T, f *fixture, dir, out string) result {
	t.Helper()
	return f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--format", "jsonl", "--out", out)
}

// readFIFO starts reading the FIFO at path to its end, as a shell's
// consumer would, and returns a function that waits for what it read
// once the writer closes it. If nothing opens the FIFO for writing (the
// pull replaced it instead), the wait fails the test instead of hanging:
// it unblocks the reader by opening the FIFO itself.
func readFIFO(t *testing.T, path string) func() []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(path) // blocks until a writer opens it
		if err != nil {
			got <- []byte("open: " + err.Error())
			return
		}
		defer f.Close()
		data, _ := io.ReadAll(f)
		got <- data
	}()
	return func() []byte {
		t.Helper()
		select {
		case data := <-got:
			return data
		case <-time.After(10 * time.Second):
			if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			t.Fatalf("nothing wrote to the FIFO %s", path)
			return nil
		}
	}
}

// TestPullOutWritesThroughAFIFO pulls into a named pipe that another
// goroutine reads, as /dev/null or a shell's process substitution would
// take the rows: the reader gets every row, the pipe is still a pipe
// afterwards (not a regular file put in its place), and no temporary
// file is made beside it.
func TestPullOutWritesThroughAFIFO(t *testing.T) {
	f, dir := pushedFixture(t)
	fifo := filepath.Join(dir, "rows.pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	got := readFIFO(t, fifo)
	r := pullTo(t, f, dir, "rows.pipe").must(t)
	data := got()
	if n := bytes.Count(data, []byte("\n")); n != 16 {
		t.Errorf("the reader got %d rows, want 16:\n%s", n, data)
	}
	if !strings.Contains(r.stderr, "Pulled 16 rows into rows.pipe") {
		t.Errorf("stderr %q", r.stderr)
	}
	info, err := os.Lstat(fifo)
	if err != nil || info.Mode().Type() != fs.ModeNamedPipe {
		t.Fatalf("after the pull %s is %v (%v), want the FIFO it was", fifo, info.Mode().Type(), err)
	}
	noTemporaryFiles(t, dir)
}

// TestPullOutWritesThroughADevice pulls into a character device made like
// /dev/null (as root only): it stays the device. (The test never touches
// the machine's own /dev/null: a regression would replace it.)
func TestPullOutWritesThroughADevice(t *testing.T) {
	f, dir := pushedFixture(t)
	null := filepath.Join(dir, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil { // major 1, minor 3: null
		t.Skipf("cannot make a device node (needs root): %v", err)
	}
	pullTo(t, f, dir, "null").must(t)
	info, err := os.Lstat(null)
	if err != nil || info.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice {
		t.Fatalf("after the pull %s is %v (%v), want the character device it was", null, info.Mode().Type(), err)
	}
	noTemporaryFiles(t, dir)
}

// TestPullOutNeverReplacesASymlink pulls through a symbolic link to a
// regular file in another directory: the link stays the same link, the
// file it leads to gets the rows (mode 0600), and neither directory keeps
// a temporary file. A link to a FIFO is written through; a link to
// nothing is refused and creates nothing.
func TestPullOutNeverReplacesASymlink(t *testing.T) {
	f, dir := pushedFixture(t)
	elsewhere := t.TempDir()
	target := filepath.Join(elsewhere, "real.jsonl")
	if err := os.WriteFile(target, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	pullTo(t, f, dir, "link.jsonl").must(t)
	if info, err := os.Lstat(link); err != nil || info.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("the link is now %v (%v)", info.Mode().Type(), err)
	}
	if to, err := os.Readlink(link); err != nil || to != target {
		t.Errorf("the link now leads to %q (%v), want %q", to, err, target)
	}
	if rows := readBack(t, target, formatJSONL, nil); len(rows) != 16 {
		t.Errorf("the link's target holds %d rows, want 16", len(rows))
	}
	if info, _ := os.Stat(target); info.Mode().Perm() != 0o600 {
		t.Errorf("the link's target has mode %v, want 0600", info.Mode().Perm())
	}
	noTemporaryFiles(t, dir)
	noTemporaryFiles(t, elsewhere)

	// To a FIFO: written through.
	fifo := filepath.Join(elsewhere, "rows.pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fifo, filepath.Join(dir, "pipe-link")); err != nil {
		t.Fatal(err)
	}
	got := readFIFO(t, fifo)
	pullTo(t, f, dir, "pipe-link").must(t)
	if n := bytes.Count(got(), []byte("\n")); n != 16 {
		t.Errorf("through a link to a FIFO the reader got %d rows, want 16", n)
	}
	if info, err := os.Lstat(fifo); err != nil || info.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("the FIFO behind the link is now %v (%v)", info.Mode().Type(), err)
	}

	// To nothing: refused, and nothing is created at the link's end.
	dangling := filepath.Join(elsewhere, "missing.jsonl")
	if err := os.Symlink(dangling, filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	r := pullTo(t, f, dir, "dangling")
	if r.code == 0 || !strings.Contains(r.stderr, "symbolic link to nothing") {
		t.Errorf("a dangling link: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Lstat(dangling); !os.IsNotExist(err) {
		t.Errorf("a pull through a dangling link created %s (%v)", dangling, err)
	}
	noTemporaryFiles(t, dir)
}

// TestPullOutReplacesARegularFileAtomically pulls over an existing file
// (mode 0644, with a second hard link to its old contents): the path gets
// a new file (a new inode, so the other link keeps the old contents, as
// only a rename does) with every row and mode 0600; a pull that fails
// leaves the file as it was; a new path is created the same way.
func TestPullOutReplacesARegularFileAtomically(t *testing.T) {
	f, dir := pushedFixture(t)
	path := filepath.Join(dir, "rows.jsonl")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, filepath.Join(dir, "rows.old")); err != nil {
		t.Fatal(err)
	}
	pullTo(t, f, dir, "rows.jsonl").must(t)
	if rows := readBack(t, path, formatJSONL, nil); len(rows) != 16 {
		t.Errorf("%d rows, want 16", len(rows))
	}
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
		t.Errorf("rows.jsonl is %v (%v), want a regular file with mode 0600", info.Mode(), err)
	}
	if old := mustRead(t, dir, "rows.old"); old != "old\n" {
		t.Errorf("the old file was written in place (its other link now reads %q), not replaced", old)
	}
	noTemporaryFiles(t, dir)

	// A failed pull leaves the file as it was.
	before := mustRead(t, dir, "rows.jsonl")
	f.server.SetRowBatch(3)
	f.server.BreakPull(1, 0, 0, 0)
	if r := pullTo(t, f, dir, "rows.jsonl"); r.code != ExitUnavailable || !strings.Contains(r.stderr, "Nothing was written to rows.jsonl.") {
		t.Errorf("outage: exit %d, stderr %q", r.code, r.stderr)
	}
	if mustRead(t, dir, "rows.jsonl") != before {
		t.Error("a failed pull changed the file")
	}
	noTemporaryFiles(t, dir)
	f.server.SetRowBatch(0)

	// A new path.
	pullTo(t, f, dir, "new.jsonl").must(t)
	if info, err := os.Lstat(filepath.Join(dir, "new.jsonl")); err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
		t.Errorf("new.jsonl is %v (%v)", info.Mode(), err)
	}
	noTemporaryFiles(t, dir)

	// A directory is refused.
	if r := pullTo(t, f, dir, "."); r.code == 0 || !strings.Contains(r.stderr, "is a directory") {
		t.Errorf("a directory: exit %d, stderr %q", r.code, r.stderr)
	}
}
