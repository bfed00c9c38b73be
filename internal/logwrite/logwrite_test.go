package logwrite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a file that counts its write calls and may take its time.
type recorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	delay  time.Duration
	err    error
}

func (r *recorder) Write(p []byte) (int, error) {
	time.Sleep(r.delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	if r.err != nil {
		return 0, r.err
	}
	return r.buf.Write(p)
}

func (r *recorder) state() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String(), r.writes
}

func newLogger(w *Writer) *slog.Logger {
	return slog.New(w.Handler(slog.NewJSONHandler(w, nil)))
}

// TestALoneLineIsWrittenBeforeTheLogCallReturns: with no other logger,
// each line reaches the file, in its own write, before the call returns.
func TestALoneLineIsWrittenBeforeTheLogCallReturns(t *testing.T) {
	out := &recorder{}
	log := newLogger(New(out))
	for i := range 3 {
		log.Info("call", "n", i)
		text, writes := out.state()
		if writes != i+1 || strings.Count(text, "\n") != i+1 || !strings.Contains(text, fmt.Sprintf(`"n":%d}`, i)) {
			t.Fatalf("after line %d: %d writes, file %q", i, writes, text)
		}
	}
	// Loggers derived with attributes or groups write through it too.
	log.With("caller", "agencies/ilo").WithGroup("grpc").Info("call", "code", "OK")
	if text, _ := out.state(); !strings.Contains(text, `"caller":"agencies/ilo","grpc":{"code":"OK"}`) {
		t.Fatalf("derived logger wrote %q", text)
	}
}

// TestConcurrentLinesShareWritesAndAllArrive logs from 16 goroutines to a
// file that takes 200 µs per write: every line arrives whole, each
// goroutine's in its order, in far fewer writes than lines.
func TestConcurrentLinesShareWritesAndAllArrive(t *testing.T) {
	out := &recorder{delay: 200 * time.Microsecond}
	log := newLogger(New(out))
	const goroutines, lines = 16, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				log.Info("call", "g", g, "i", i)
			}
		})
	}
	wg.Wait()
	text, writes := out.state()
	next := make([]int, goroutines)
	n := 0
	for line := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
		var rec struct{ G, I int }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not whole: %q", n, line)
		}
		if rec.I != next[rec.G] {
			t.Fatalf("goroutine %d: line %d after %d", rec.G, rec.I, next[rec.G]-1)
		}
		next[rec.G]++
		n++
	}
	if n != goroutines*lines {
		t.Fatalf("%d lines arrived, want %d", n, goroutines*lines)
	}
	if writes > n/4 {
		t.Errorf("%d writes for %d lines: the lines were not gathered", writes, n)
	}
	t.Logf("%d lines in %d writes", n, writes)
}

// TestASlowFileHoldsItsLoggersBackInsteadOfMemory: while the file takes
// no line, loggers wait once the limit is gathered, and what is gathered
// stays within the limit and one line.
func TestASlowFileHoldsItsLoggersBackInsteadOfMemory(t *testing.T) {
	release := make(chan struct{})
	out := &blocking{release: release}
	const limit = 4096
	w := NewWithLimit(out, limit)
	log := newLogger(w)
	line := strings.Repeat("x", 300)
	done := make(chan struct{})
	var logged sync.WaitGroup
	for range 8 {
		logged.Go(func() {
			for range 100 {
				log.Info(line)
			}
		})
	}
	go func() { logged.Wait(); close(done) }()
	time.Sleep(100 * time.Millisecond)
	w.mu.Lock()
	gathered := len(w.pending)
	w.mu.Unlock()
	select {
	case <-done:
		t.Fatal("800 lines were taken by a file that takes none")
	default:
	}
	if gathered > limit+400 {
		t.Fatalf("%d bytes gathered, limit %d", gathered, limit)
	}
	close(release)
	<-done
	if got := strings.Count(out.buf.String(), "\n"); got != 800 {
		t.Fatalf("%d lines written, want 800", got)
	}
}

// blocking is a file that takes nothing until release is closed.
type blocking struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (b *blocking) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// TestAWriteErrorReachesTheLogger: the handler returns the file's error.
func TestAWriteErrorReachesTheLogger(t *testing.T) {
	broken := errors.New("disk full")
	w := New(&recorder{err: broken})
	h := w.Handler(slog.NewJSONHandler(w, nil))
	if err := h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "call", 0)); !errors.Is(err, broken) {
		t.Fatalf("Handle returned %v, want %v", err, broken)
	}
}
