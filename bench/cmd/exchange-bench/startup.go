package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// startup times exchanged from exec to its listening line on the seeded
// database: with a cold page cache (the data file evicted before each
// start, as after a reboot), with a warm one (as after a restart of a
// running machine), and on an empty database (what start-up costs
// regardless of data). The page check runs after listening, while writes
// wait (store.CheckHoldingWrites); on the seeded database the bench also
// waits for its "database pages checked" line and records when writes
// were accepted again.
func (b *bench) startup(ctx context.Context, dir string) error {
	empty, err := b.newDataDir("startup-empty")
	if err != nil {
		return err
	}
	// Create the empty database once, so that every timed start opens an
	// existing one.
	p, err := b.startExchanged("startup-empty-init", empty, false)
	if err != nil {
		return err
	}
	p.stop()
	dbFile := filepath.Join(dir, "exchange.db")
	info, err := os.Stat(dbFile)
	if err != nil {
		return err
	}
	workload := fmt.Sprintf("Start-up, %s referrals (%s MiB file)", num(float64(b.opt.records)), num(float64(info.Size())/(1<<20)))
	const (
		cold = "exchange, cold page cache"
		warm = "exchange, warm page cache"
		empt = "exchange, empty database"
		res  = "data file resident in the page cache before the cold start"
	)
	start := func(name, dataDir string, evict bool) system {
		return system{name, func(ctx context.Context) error {
			if evict {
				frac, err := evictFromPageCache(dbFile)
				if err != nil {
					return fmt.Errorf("evicting %s from the page cache: %w", dbFile, err)
				}
				fmt.Printf("  %-28s %.1f%% of the data file resident after eviction\n", "", 100*frac)
				b.rep.record(workload, res, "%", 100*frac)
			}
			p, err := b.startExchanged("startup", dataDir, false)
			if err != nil {
				return err
			}
			ms := float64(p.ready) / float64(time.Millisecond)
			fmt.Printf("  %-28s %-40s %12.0f ms to listening\n", "Start-up", name, ms)
			b.rep.record(workload, name, "ms to listening", ms)
			if dataDir == dir {
				done := float64(p.checked) / float64(time.Millisecond)
				fmt.Printf("  %-28s %-40s %12.0f ms to the end of the page check\n", "Start-up", name, done)
				b.rep.record(workload, name+": page check done (writes wait until then)", "ms from exec", done)
			}
			p.stop()
			return nil
		}}
	}
	systems := []system{start(cold, dir, true), start(warm, dir, false), start(empt, empty, false)}
	for round := range b.opt.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, systems); err != nil {
			return err
		}
	}
	get := func(system string) *series { return b.rep.get(workload, system, "ms to listening") }
	b.rep.compare("Start-up, cold page cache", get(cold), nil, "< 2,000 ms", below(2000))
	b.rep.compare("Start-up, warm page cache", get(warm), nil, "< 2,000 ms", below(2000))
	for _, name := range []string{cold, warm} {
		b.rep.compare("Start-up "+strings.TrimPrefix(name, "exchange, ")+": page check done after", b.rep.get(workload, name+": page check done (writes wait until then)", "ms from exec"), nil, "", nil)
	}
	b.rep.compare("Start-up cold: seeded / empty database", get(cold), get(empt), "", nil)
	return nil
}

// pageCheckLine is exchanged's log line when the page check after
// start-up has passed.
var pageCheckLine = regexp.MustCompile(`"msg":"database pages checked"`)

// waitPageCheck waits until exchanged's log says the page check passed.
func waitPageCheck(ctx context.Context, log string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(log); err == nil && pageCheckLine.Match(b) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("no %q line in %s after %s", "database pages checked", log, timeout)
}

// evictFromPageCache drops the file from the page cache, as a reboot
// would, without root: fsync (the kernel does not drop dirty pages), then
// posix_fadvise(DONTNEED). It returns the fraction of the file's pages
// still resident afterwards, measured with mincore on a fresh mapping.
func evictFromPageCache(path string) (float64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return 0, err
	}
	return residentFraction(f)
}

// residentFraction is the fraction of f's pages in the page cache.
func residentFraction(f *os.File) (float64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := int(info.Size())
	if size == 0 {
		return 0, errors.New("empty file")
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (size+page-1)/page)
	// x/sys/unix has no Mincore for Linux: the system call itself.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return 0, errno
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}
