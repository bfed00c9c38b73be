// Package groupcommit commits the writes of concurrent callers to a
// database together: many writes share one transaction and so one pair of
// fsyncs (bbolt) or one round of consensus (etcd), and each caller still
// learns whether its own write is durable.
//
// bbolt's own DB.Batch starts a batch's timer when the first write arrives
// and commits when the timer fires or the batch is full, so every write
// waits for the timer even when the disk is idle, and a second batch only
// starts gathering once the first has been handed to the disk. A Committer
// instead commits as soon as it can: a write that finds no commit running
// starts one at once (after letting the goroutines that are ready to run
// queue their writes too: a few yields of the processor, no timer), and
// writes that arrive while a commit runs are committed together right
// after it. Under light load a write waits for no one; under heavy load
// batches grow by themselves to what arrives during one commit, which is
// what keeps the disk busy and the fsyncs shared.
//
// Failure isolation is DB.Batch's: if a function fails (or panics), the
// transaction is rolled back, the others are run again without it in a new
// one, and the failed function is then run again alone, so that its error
// (or its success, if the failure came from a neighbour's effects) is its
// own. A function may therefore run more than once and must have no
// effects outside the transaction except variables it sets afresh on
// every run.
package groupcommit

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/alltogether/exchange/store/kv"
)

// Committer group-commits write functions to one database. Its zero value
// is not usable; make one with New.
type Committer struct {
	update   Update
	maxBatch int
	delay    time.Duration

	mu      sync.Mutex
	queue   []call
	running bool          // a goroutine is draining the queue
	full    chan struct{} // signalled when the queue holds maxBatch calls

	// exclusive is held by every commit, and by Exclusive for as long as
	// its function runs.
	exclusive sync.Mutex
}

// Update runs fn in one write transaction and commits it, returning fn's
// error or the commit's; bbolt's DB.Update, for instance.
type Update func(fn func(kv.Tx) error) error

// call is one caller's write function and where its result goes.
type call struct {
	fn     func(kv.Tx) error
	result chan<- error
}

// New returns a Committer committing through update that puts at most maxBatch functions
// (at least 1) in one transaction and, when delay is positive, lets a
// commit wait that long for company before it starts. A delay of 0, the
// right choice for a server, commits as soon as the previous commit ends.
func New(update Update, maxBatch int, delay time.Duration) *Committer {
	return &Committer{update: update, maxBatch: max(maxBatch, 1), delay: delay, full: make(chan struct{}, 1)}
}

// MaxBatch returns the most functions one transaction holds.
func (c *Committer) MaxBatch() int { return c.maxBatch }

// Delay returns how long a commit waits for company before it starts.
func (c *Committer) Delay() time.Duration { return c.delay }

// Do runs fn in a write transaction, possibly shared with other callers'
// functions, and returns once that transaction is committed (nil) or has
// failed (its error), or with fn's own error. A panic in fn is returned as
// an error, not propagated.
func (c *Committer) Do(fn func(kv.Tx) error) error {
	result := make(chan error, 1)
	c.mu.Lock()
	c.queue = append(c.queue, call{fn: fn, result: result})
	if len(c.queue) == c.maxBatch {
		select {
		case c.full <- struct{}{}:
		default:
		}
	}
	if !c.running {
		c.running = true
		go c.drain()
	}
	c.mu.Unlock()
	err := <-result
	if err == errTrySolo {
		c.exclusive.Lock()
		err = c.update(func(tx kv.Tx) error { return safely(fn, tx) })
		c.exclusive.Unlock()
	}
	return err
}

// Exclusive runs fn while no write of the Committer commits: writes that
// arrive meanwhile wait in the queue and commit after it. fn may run
// transactions of its own on the database, and must not call Do.
func (c *Committer) Exclusive(fn func() error) error {
	c.exclusive.Lock()
	defer c.exclusive.Unlock()
	return fn()
}

// drain commits queued functions, a batch at a time, until the queue is
// empty.
func (c *Committer) drain() {
	for {
		if c.delay > 0 {
			c.await()
		} else {
			c.gather()
		}
		c.mu.Lock()
		n := min(len(c.queue), c.maxBatch)
		if n == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil // let the backing array go
		}
		c.mu.Unlock()
		c.exclusive.Lock()
		commit(c.update, batch)
		c.exclusive.Unlock()
	}
}

// gather lets the goroutines that are ready to run queue their writes
// before a commit takes the queue, without a timer: it yields the
// processor, again while a yield brought more writes, at most
// maxGatherYields times. The goroutine draining the queue is started by
// the first write and the Go scheduler runs it next, ahead of handlers
// that are already runnable and about to write, so without this the first
// commit after a quiet moment would hold one write and the rest would wait
// for its fsyncs. A yield with nothing else to run returns at once, so an
// idle server commits as before, within microseconds.
func (c *Committer) gather() {
	n := c.queued()
	for range maxGatherYields {
		if n >= c.maxBatch {
			return
		}
		runtime.Gosched()
		m := c.queued()
		if m == n {
			return
		}
		n = m
	}
}

// maxGatherYields bounds gather: enough for the writers of a loaded
// server to reach the queue, few enough that the commit is not held up by
// a steady stream of new ones (they join the next commit).
const maxGatherYields = 8

// queued returns the number of writes waiting.
func (c *Committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// await waits for company: until the delay has passed or the queue holds
// a full batch.
func (c *Committer) await() {
	c.mu.Lock()
	full := len(c.queue) >= c.maxBatch
	c.mu.Unlock()
	if full {
		return
	}
	t := time.NewTimer(c.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.full:
	}
}

// commit runs batch in one transaction; a failing function is taken out,
// told to run alone, and the rest run again.
func commit(update Update, batch []call) {
	for len(batch) > 0 {
		failed := -1
		err := update(func(tx kv.Tx) error {
			for i, c := range batch {
				if err := safely(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].result <- errTrySolo
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		for _, c := range batch {
			c.result <- err
		}
		return
	}
}

// errTrySolo tells Do to run its function again in a transaction of its
// own. Callers never see it.
var errTrySolo = errors.New("groupcommit: run the function alone")

// PanicError is returned by Do when the function panicked.
type PanicError struct {
	// Value is what the function panicked with.
	Value any
}

// Error describes the panic.
func (p *PanicError) Error() string { return fmt.Sprintf("write function panicked: %v", p.Value) }

// safely calls fn, turning a panic into a *PanicError.
func safely(fn func(kv.Tx) error, tx kv.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v}
		}
	}()
	return fn(tx)
}
