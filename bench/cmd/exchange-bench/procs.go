package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server the bench started: exchanged, noop-server or etcd, each
// a process of its own on 127.0.0.1.
type proc struct {
	name    string
	cmd     *exec.Cmd
	addr    string        // where it accepts calls
	metrics string        // exchanged's metrics address, if any
	ready   time.Duration // from exec to the listening line
	started time.Time     // when it was started
	checked time.Duration // exchanged: from exec to the end of its page check
	done    chan struct{} // closed when the process has exited
	waitErr error
	// profiled, if set, is closed when the CPU profile being taken of
	// the process (--server-cpuprofile) is saved; stop waits for it.
	profiled chan struct{}
}

// startProc runs bin with args and waits until a line of its output
// matches ready (whose first group, if any, is the address); lines
// matching metricsLine (optional) give the metrics address. Only the
// stream that carries those lines (stdout, or stderr if readyOnStderr) is
// read by this process; both go to the log file, the other one directly,
// so that a server logging every call costs the load generator nothing.
func startProc(name, bin string, args []string, log string, readyOnStderr bool, ready, metricsLine *regexp.Regexp, timeout time.Duration) (*proc, error) {
	logFile, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	// A server never outlives the benchmark, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var lines io.Reader
	if readyOnStderr {
		cmd.Stdout = logFile
		lines, err = cmd.StderrPipe()
	} else {
		cmd.Stderr = logFile
		lines, err = cmd.StdoutPipe()
	}
	if err != nil {
		logFile.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), started: time.Now()}
	type found struct {
		addr, metrics string
		at            time.Time
	}
	events := make(chan found, 4)
	var logMu sync.Mutex
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(lines)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			at := time.Now()
			logMu.Lock()
			fmt.Fprintln(logFile, line)
			logMu.Unlock()
			if m := ready.FindStringSubmatch(line); m != nil {
				f := found{at: at}
				if len(m) > 1 {
					f.addr = m[1]
				}
				select {
				case events <- f:
				default:
				}
			}
			if metricsLine != nil {
				if m := metricsLine.FindStringSubmatch(line); m != nil {
					select {
					case events <- found{metrics: m[1]}:
					default:
					}
				}
			}
		}
	}()
	go func() {
		<-scanned
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	deadline := time.After(timeout)
	for p.addr == "" || (metricsLine != nil && p.metrics == "") {
		select {
		case f := <-events:
			if f.metrics != "" {
				p.metrics = f.metrics
			} else {
				p.addr = f.addr
				if p.addr == "" {
					p.addr = "-"
				}
				p.ready = f.at.Sub(start)
			}
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready (%v); see %s", name, p.waitErr, log)
		case <-deadline:
			p.stop()
			return nil, fmt.Errorf("%s not ready after %s; see %s", name, timeout, log)
		}
	}
	return p, nil
}

// stop ends the process with SIGTERM, then SIGKILL after 30s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	if p.profiled != nil {
		<-p.profiled
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exchangedReady and exchangedMetrics match exchanged's start-up lines.
var (
	exchangedReady   = regexp.MustCompile(`^exchanged listening on (\S+)`)
	exchangedMetrics = regexp.MustCompile(`^metrics on http://(\S+)/metrics`)
	noopReady        = regexp.MustCompile(`^noop-server listening on (\S+)`)
)

// startExchanged starts exchanged on a data directory with production
// settings (page check at start-up unless skipCheck, info logging, metrics
// on a local port), on a free port. The per-agency abuse limits differ
// from the defaults: the call rate is raised (--rate, --burst) from 200
// calls/s, and the calls in flight, streams and watches from 128, 64 and
// 32, because the bench measures the server's capacity with one sending
// agency's 64 clients (--clients) and one receiving agency's 100 watchers
// (--watchers), not the abuse policy; the limiters still run on every
// call. extra flags follow (the etcd cluster of a replica). Unless
// skipCheck, it returns once exchanged's page check after start-up has
// passed (its "database pages checked" line).
func (e *env) startExchanged(name, dataDir string, skipCheck bool, extra ...string) (*proc, error) {
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--metrics-listen", "127.0.0.1:0",
		"--rate", "1000000", "--burst", "1000000", "--max-calls-in-flight-per-agency", "1000000",
		"--max-streams-per-agency", "1000000", "--max-watches-per-agency", "1000000"}
	if skipCheck {
		args = append(args, "--skip-check")
	}
	args = append(args, e.serverProfileFlags()...)
	args = append(args, extra...)
	log := filepath.Join(e.work, "logs", name+".log")
	p, err := startProc(name, filepath.Join(e.bin, "exchanged"), args, log,
		false, exchangedReady, exchangedMetrics, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	if !skipCheck {
		// exchanged checks every page once it listens, reading the whole
		// file, while writes wait: no measurement may run alongside it.
		if err := waitPageCheck(context.Background(), log, 10*time.Minute); err != nil {
			p.stop()
			return nil, err
		}
		p.checked = time.Since(p.started)
	}
	// The profile covers the measured window, after the page check.
	e.profileServer(p)
	return p, nil
}

// startNoop starts the transport ceiling with the responses in dir.
func (e *env) startNoop(name, responses string) (*proc, error) {
	args := []string{"--listen", "127.0.0.1:0", "--pki", e.dev.Dir, "--responses", responses,
		"--pull-rows", strconv.Itoa(e.opt.rows)}
	return startProc(name, filepath.Join(e.bin, "noop-server"), args, filepath.Join(e.work, "logs", name+".log"),
		false, noopReady, nil, time.Minute)
}

// procStatus reads fields of /proc/PID/status in bytes (VmRSS, VmHWM,
// RssAnon, RssFile).
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				out[k] = n << 10
			}
		}
	}
	return out, nil
}

// resetPeakRSS resets VmHWM to the current RSS (clear_refs 5), so that
// VmHWM afterwards is the peak since now. It needs to own the process
// or be root; the caller falls back to sampling when it fails.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// scrapeMetric reads one unlabelled metric from a Prometheus text page.
func scrapeMetric(ctx context.Context, addr, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("metric " + name + " not found")
}

// freePorts returns n distinct loopback ports that were free a moment
// ago (all held open together, so that none is handed out twice).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// memorySampler samples a process's RssAnon, VmRSS and (if metrics is set)
// Go heap every interval until stopped, keeping the peaks.
type memorySampler struct {
	stop                      chan struct{}
	done                      chan struct{}
	peakAnon, peakRSS, peakHp int64
}

func sampleMemory(pid int, metrics string, interval time.Duration) *memorySampler {
	s := &memorySampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		n := 0
		for {
			if st, err := procStatus(pid); err == nil {
				s.peakAnon = max(s.peakAnon, st["RssAnon"])
				s.peakRSS = max(s.peakRSS, st["VmRSS"])
			}
			// A scrape costs the server a few milliseconds of CPU: every
			// 25th tick (250ms at the usual 10ms).
			if metrics != "" && n%25 == 0 {
				if h, err := scrapeMetric(context.Background(), metrics, "go_memstats_heap_alloc_bytes"); err == nil {
					s.peakHp = max(s.peakHp, int64(h))
				}
			}
			n++
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memorySampler) finish() {
	close(s.stop)
	<-s.done
}
