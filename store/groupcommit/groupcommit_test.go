package groupcommit

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/alltogether/exchange/store/kv"
)

var bucket = []byte("b")

// open returns a fresh database with one bucket, on a real file.
func open(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "gc.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}

// counted wraps fn so that every transaction it commits in is counted
// once, with the number of functions that shared it.
type commitLog struct {
	mu    sync.Mutex
	seen  map[kv.Tx]*int
	sizes []int
}

func (l *commitLog) wrap(fn func(kv.Tx) error) func(kv.Tx) error {
	return func(tx kv.Tx) error {
		l.mu.Lock()
		n, ok := l.seen[tx]
		if !ok {
			n = new(int)
			l.seen[tx] = n
			tx.OnCommit(func() {
				l.mu.Lock()
				l.sizes = append(l.sizes, *n)
				l.mu.Unlock()
			})
		}
		*n++
		l.mu.Unlock()
		return fn(tx)
	}
}

func put(key string) func(kv.Tx) error {
	return func(tx kv.Tx) error { return tx.Bucket(bucket).Put([]byte(key), []byte("v")) }
}

func get(t *testing.T, db *bolt.DB, key string) bool {
	t.Helper()
	var found bool
	db.View(func(tx *bolt.Tx) error { found = tx.Bucket(bucket).Get([]byte(key)) != nil; return nil })
	return found
}

// TestConcurrentWritesShareCommits holds a commit open while writes queue
// up behind it, and checks that they are then committed together, at most
// maxBatch to a transaction, every one durable.
func TestConcurrentWritesShareCommits(t *testing.T) {
	db := open(t)
	c := New(kv.BoltUpdate(db), 8, 0)
	log := &commitLog{seen: map[kv.Tx]*int{}}
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- c.Do(log.wrap(func(tx kv.Tx) error {
			close(started)
			<-release // the first commit is slow
			return put("first")(tx)
		}))
	}()
	<-started
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = c.Do(log.wrap(put(fmt.Sprint(i)))) })
	}
	// Wait until all n are queued behind the slow commit.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		queued := len(c.queue)
		c.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("only %d of %d writes queued", queued, n)
		}
	}
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
		if !get(t, db, fmt.Sprint(i)) {
			t.Errorf("write %d acknowledged but not stored", i)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	// 1 slow commit, then 20 queued writes in batches of at most 8: 8, 8, 4.
	if want := []int{1, 8, 8, 4}; fmt.Sprint(log.sizes) != fmt.Sprint(want) {
		t.Errorf("functions per commit = %v, want %v", log.sizes, want)
	}
}

// TestAFailingWriteFailsAlone checks failure isolation: a function that
// returns an error or panics gets its own error and leaves nothing behind,
// and the functions sharing its batch are committed.
func TestAFailingWriteFailsAlone(t *testing.T) {
	db := open(t)
	c := New(kv.BoltUpdate(db), 64, 50*time.Millisecond) // the delay gathers everything in one batch
	refused := errors.New("refused")
	fns := map[string]func(kv.Tx) error{
		"ok-1": put("ok-1"),
		"error": func(tx kv.Tx) error {
			put("error")(tx)
			return refused
		},
		"ok-2": put("ok-2"),
		"panic": func(tx kv.Tx) error {
			put("panic")(tx)
			panic("boom")
		},
		"ok-3": put("ok-3"),
	}
	var mu sync.Mutex
	got := map[string]error{}
	var wg sync.WaitGroup
	for name, fn := range fns {
		wg.Go(func() {
			err := c.Do(fn)
			mu.Lock()
			got[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, name := range []string{"ok-1", "ok-2", "ok-3"} {
		if got[name] != nil || !get(t, db, name) {
			t.Errorf("%s: err %v, stored %v; want nil, true", name, got[name], get(t, db, name))
		}
	}
	if !errors.Is(got["error"], refused) || get(t, db, "error") {
		t.Errorf("error: err %v, stored %v; want %v, false", got["error"], get(t, db, "error"), refused)
	}
	var p *PanicError
	if !errors.As(got["panic"], &p) || !strings.Contains(p.Error(), "boom") || get(t, db, "panic") {
		t.Errorf("panic: err %v, stored %v; want a PanicError with boom, false", got["panic"], get(t, db, "panic"))
	}
}

// TestDelayGathersUntilFull checks that a positive delay holds a commit
// for company and that a full batch does not wait for the delay.
func TestDelayGathersUntilFull(t *testing.T) {
	db := open(t)
	c := New(kv.BoltUpdate(db), 4, time.Hour)
	log := &commitLog{seen: map[kv.Tx]*int{}}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if err := c.Do(log.wrap(put(fmt.Sprint(i)))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait() // an hour's delay would time the test out
	log.mu.Lock()
	defer log.mu.Unlock()
	if fmt.Sprint(log.sizes) != "[4]" {
		t.Errorf("functions per commit = %v, want [4]", log.sizes)
	}
}

// TestFailedCommitReachesEveryCaller checks that when the transaction
// itself cannot commit (the database is read-only), every caller gets the
// error.
func TestFailedCommitReachesEveryCaller(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gc.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err })
	db.Close()
	ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	c := New(kv.BoltUpdate(ro), 8, 0)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if err := c.Do(put(fmt.Sprint(i))); err == nil {
				t.Errorf("write %d to a read-only database succeeded", i)
			}
		})
	}
	wg.Wait()
}

// TestFirstCommitGathersReadyWriters makes writers all ready to run at
// once on one processor and checks that the first commit takes them all:
// the goroutine that drains the queue is scheduled ahead of them, and
// without gather it would commit the first writes one at a time.
func TestFirstCommitGathersReadyWriters(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	db := open(t)
	c := New(kv.BoltUpdate(db), 256, 0)
	const n = 50
	for round := range 5 {
		log := &commitLog{seen: map[kv.Tx]*int{}}
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = c.Do(log.wrap(put(fmt.Sprint(round, i))))
			})
		}
		close(start) // all n writers become ready to run at once
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
		// One commit is what gathering gives; the scheduler's own
		// interruptions (a garbage collection) may split it once. Without
		// gathering the writers trickle in, [1 1 1 1 1 1 1 43], in about
		// four rounds out of five.
		if len(log.sizes) > 2 {
			t.Errorf("round %d: functions per commit = %v, want the %d ready writers in one commit", round, log.sizes, n)
		}
	}
}

// TestExclusiveHoldsWritesBack runs a function under Exclusive that makes
// transactions of its own, while writes arrive: none of them commits
// between those transactions, and all commit once it returns.
func TestExclusiveHoldsWritesBack(t *testing.T) {
	db := open(t)
	c := New(kv.BoltUpdate(db), 16, 0)
	inside := make(chan struct{})
	proceed := make(chan struct{})
	var seenBetween bool
	exclusiveDone := make(chan error, 1)
	go func() {
		exclusiveDone <- c.Exclusive(func() error {
			if err := kv.BoltUpdate(db)(put("first")); err != nil {
				return err
			}
			close(inside)
			<-proceed
			seenBetween = get(t, db, "w0") || get(t, db, "w1") || get(t, db, "w2")
			return kv.BoltUpdate(db)(put("second"))
		})
	}()
	<-inside
	var wg sync.WaitGroup
	results := make([]error, 3)
	for i := range 3 {
		wg.Go(func() { results[i] = c.Do(put(fmt.Sprintf("w%d", i))) })
	}
	time.Sleep(50 * time.Millisecond) // room for the writes to commit, if they did not wait
	close(proceed)
	if err := <-exclusiveDone; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if seenBetween {
		t.Error("a write committed while Exclusive ran")
	}
	for i, err := range results {
		if err != nil || !get(t, db, fmt.Sprintf("w%d", i)) {
			t.Errorf("write %d after Exclusive: %v", i, err)
		}
	}
}
