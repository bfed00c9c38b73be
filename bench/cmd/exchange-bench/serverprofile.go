package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// profileSeq numbers the server profiles of one run.
var profileSeq atomic.Int64

// serverProfileFlags are the flags exchanged needs to be profiled: its
// profiler on the metrics address (--pprof), when --server-cpuprofile asks
// for server profiles.
func (e *env) serverProfileFlags() []string {
	if e.opt.serverProfile == "" {
		return nil
	}
	return []string{"--pprof"}
}

// profileServer fetches a CPU profile of exchanged p, from now for
// --server-profile-seconds, into the --server-cpuprofile directory, named
// after the process and numbered in the order the profiles were started.
// The profile goes on in the background; p.stop waits for it, so that a
// window's profile is whole before its server goes. Without
// --server-cpuprofile it does nothing.
func (e *env) profileServer(p *proc) {
	if e.opt.serverProfile == "" || p.metrics == "" {
		return
	}
	name := fmt.Sprintf("%03d-%s.pprof", profileSeq.Add(1), strings.ReplaceAll(p.name, "/", "_"))
	path := filepath.Join(e.opt.serverProfile, name)
	seconds := int(e.opt.serverProfileFor.Round(time.Second) / time.Second)
	if seconds < 1 {
		seconds = int((e.opt.warmup+e.opt.duration).Round(time.Second)/time.Second) + 1
	}
	done := make(chan struct{})
	p.profiled = done
	go func() {
		defer close(done)
		if err := fetchProfile(p.metrics, seconds, path); err != nil {
			fmt.Fprintf(os.Stderr, "exchange-bench: profiling %s: %v\n", p.name, err)
			return
		}
		fmt.Printf("  (server CPU profile of %s, %d s: %s)\n", p.name, seconds, path)
	}()
}

// fetchProfile saves /debug/pprof/profile?seconds=N of the server whose
// metrics address is addr.
func fetchProfile(addr string, seconds int, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
