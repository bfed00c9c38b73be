// Package logwrite writes a logger's lines to a file in as few write calls
// as the loggers' concurrency allows, without holding any line back.
//
// slog's handlers write each record with one write call, under their own
// mutex. A server logs one line per call it serves, and on a busy server
// that write(2) to stderr was 3% of the CPU a referral costs. A Writer
// instead gathers the lines handlers write into it, and the logging
// goroutine writes them itself right after its handler returns: when
// another goroutine is already writing, it leaves its line to that one,
// which writes everything gathered meanwhile in its next call. No timer
// and no goroutine of its own: a lone logger's line is written before its
// log call returns, as with the file itself, and under load one write
// carries many lines. The lines keep the order in which handlers wrote
// them.
package logwrite

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// DefaultLimit is how many bytes a Writer gathers before handlers that
// write more wait for the goroutine writing them: the bound on the memory
// lines take while the file is slow to take them.
const DefaultLimit = 1 << 20

// Writer gathers lines and writes them to its file. Handlers write into
// it; Handler wraps a handler so that each record is written out when it
// has been handled. Its methods are safe for concurrent use.
type Writer struct {
	out   io.Writer
	limit int

	mu      sync.Mutex
	drained sync.Cond // signalled when the writing goroutine takes the lines
	pending []byte    // lines gathered, not yet taken
	spare   []byte    // the buffer last written, reused for pending
	writing bool      // a goroutine is writing; it will take pending too
}

// New returns a Writer writing to out and gathering at most DefaultLimit
// bytes before writers wait.
func New(out io.Writer) *Writer { return NewWithLimit(out, DefaultLimit) }

// NewWithLimit is New with the limit on the bytes gathered (at least 1).
func NewWithLimit(out io.Writer, limit int) *Writer {
	w := &Writer{out: out, limit: max(limit, 1)}
	w.drained.L = &w.mu
	return w
}

// Write gathers p, to be written by the next Flush. While more than the
// limit is gathered and a goroutine is writing it, Write waits for that
// goroutine to take it, so that a slow file slows its loggers instead of
// growing memory. It never fails: a write error is reported by Flush.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for len(w.pending) >= w.limit && w.writing {
		w.drained.Wait()
	}
	w.pending = append(w.pending, p...)
	w.mu.Unlock()
	return len(p), nil
}

// Flush writes everything gathered, in one write call for each time it
// finds lines gathered, unless another goroutine is writing: that one then
// writes what is gathered, this call's lines included, before it returns.
// It returns the error of the last write this call made, if any.
func (w *Writer) Flush() error {
	w.mu.Lock()
	if w.writing {
		w.mu.Unlock()
		return nil
	}
	w.writing = true
	var err error
	for len(w.pending) > 0 {
		lines := w.pending
		w.pending, w.spare = w.spare[:0], nil
		w.drained.Broadcast()
		w.mu.Unlock()
		_, err = w.out.Write(lines)
		w.mu.Lock()
		if cap(lines) <= 2*w.limit {
			w.spare = lines[:0]
		}
	}
	w.writing = false
	w.mu.Unlock()
	return err
}

// Handler returns h with every record it handles written out through w
// once h has handled it. h must write to w.
func (w *Writer) Handler(h slog.Handler) slog.Handler { return &handler{Handler: h, w: w} }

// handler flushes its Writer after each record its inner handler handles.
type handler struct {
	slog.Handler
	w *Writer
}

// Handle handles r and writes out the lines gathered.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if ferr := h.w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// WithAttrs returns the inner handler's WithAttrs, still flushing.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{Handler: h.Handler.WithAttrs(attrs), w: h.w}
}

// WithGroup returns the inner handler's WithGroup, still flushing.
func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{Handler: h.Handler.WithGroup(name), w: h.w}
}
