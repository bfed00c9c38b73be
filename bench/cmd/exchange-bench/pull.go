package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// pulls seeds the --rows dataset once and starts one exchanged on it,
// then runs the pull workload and the pull-broken workload
// (pull_broken.go), whichever the run includes.
func (b *bench) pulls(ctx context.Context) error {
	o := b.opt
	dir, err := b.newDataDir("pull-exchange")
	if err != nil {
		return err
	}
	fmt.Printf(" seeding %d rows through the store (set-up, not measured)\n", o.rows)
	took, err := timed(func() error { return seedRows(ctx, dir, o.rows) })
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Printf(" seeded in %s\n", took.Round(time.Second))
	ex, err := b.startExchanged("pull-exchange", dir, false)
	if err != nil {
		return err
	}
	b.track(ex)
	if b.want("pull") {
		if err := b.pull(ctx, ex); err != nil {
			return err
		}
	}
	if b.want("pull-broken") {
		fmt.Println(" pull-broken")
		if err := b.pullBroken(ctx, ex); err != nil {
			return fmt.Errorf("pull-broken: %w", err)
		}
	}
	return nil
}

// pull measures a whole pull of the --rows dataset through the typed
// client (rows/s) and the server's memory while it runs, against the
// transport ceiling streaming the same messages.
func (b *bench) pull(ctx context.Context, ex *proc) error {
	o := b.opt
	exClient, err := b.dial(ex.addr, sender)
	if err != nil {
		return err
	}
	defer exClient.Close()
	req := &exchangev1.PullDatasetRowsRequest{Dataset: pullDatasetName, PageSize: int32(o.pullPage)}

	// Capture the first message for the no-op server.
	sctx, cancel := context.WithCancel(ctx)
	stream, err := exchangev1.NewDatasetServiceClient(exClient.Conn()).PullDatasetRows(sctx, req)
	if err != nil {
		cancel()
		return err
	}
	first, err := stream.Recv()
	cancel()
	if err != nil {
		return err
	}
	responses := filepath.Join(b.work, "responses-pull")
	if err := saveResponse(responses, "PullDatasetRows", first); err != nil {
		return err
	}
	noop, err := b.startNoop("pull-noop", responses)
	if err != nil {
		return err
	}
	b.track(noop)
	noopClient, err := b.dial(noop.addr, sender)
	if err != nil {
		return err
	}
	defer noopClient.Close()
	b.rep.note("Pull: %d rows per message (page_size %d; 0 is the server's default), %d bytes per message.",
		len(first.GetRows()), o.pullPage, proto.Size(first))

	workload := fmt.Sprintf("Dataset pull, %s rows", num(float64(o.rows)))
	// pullAll pulls the whole dataset in one stream and returns rows/s.
	pullAll := func(ctx context.Context, c *client.Client) (float64, error) {
		rows := 0
		start := time.Now()
		stream, err := exchangev1.NewDatasetServiceClient(c.Conn()).PullDatasetRows(ctx, req)
		for err == nil {
			var m *exchangev1.PullDatasetRowsResponse
			if m, err = stream.Recv(); err == nil {
				rows += len(m.GetRows())
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		elapsed := time.Since(start)
		if err == nil && rows < o.rows {
			err = fmt.Errorf("pulled %d rows, want %d", rows, o.rows)
		}
		return float64(rows) / elapsed.Seconds(), err
	}
	systems := []system{
		{sysExchange, func(ctx context.Context) error {
			// Memory before: the server idle between rounds.
			before, err := procStatus(ex.pid())
			if err != nil {
				return err
			}
			heapBefore, err := scrapeMetric(ctx, ex.metrics, "go_memstats_heap_alloc_bytes")
			if err != nil {
				return err
			}
			hwmReset := resetPeakRSS(ex.pid()) == nil
			sampler := sampleMemory(ex.pid(), ex.metrics, 10*time.Millisecond)
			rate, err := pullAll(ctx, exClient)
			sampler.finish()
			if err != nil {
				return err
			}
			after, err := procStatus(ex.pid())
			if err != nil {
				return err
			}
			peakRSS := sampler.peakRSS
			if hwmReset {
				peakRSS = max(peakRSS, after["VmHWM"])
			}
			mib := func(v int64) float64 { return float64(v) / (1 << 20) }
			heap := mib(sampler.peakHp - int64(heapBefore))
			anon := mib(sampler.peakAnon - before["RssAnon"])
			rss := mib(peakRSS - before["VmRSS"])
			fmt.Printf("  %-28s %-34s %12s rows/s; server growth: Go heap %+.1f MiB, anonymous RSS %+.1f MiB, RSS incl. mapped file %+.1f MiB\n",
				workload, sysExchange, num(rate), heap, anon, rss)
			b.rep.record(workload, sysExchange, "rows/s", rate)
			b.rep.record(workload, sysExchange+", server Go heap growth (peak − before)", "MiB", heap)
			b.rep.record(workload, sysExchange+", server anonymous RSS growth (peak − before)", "MiB", anon)
			b.rep.record(workload, sysExchange+", server RSS growth incl. mapped database", "MiB", rss)
			return nil
		}},
		{sysTransport, func(ctx context.Context) error {
			rate, err := pullAll(ctx, noopClient)
			fmt.Printf("  %-28s %-34s %12s rows/s\n", workload, sysTransport, num(rate))
			b.rep.record(workload, sysTransport, "rows/s", rate)
			return err
		}},
	}
	for round := range o.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, systems); err != nil {
			return err
		}
	}
	rows := b.rep.get(workload, sysExchange, "rows/s")
	b.rep.compare("Dataset pull rate", rows, nil, "≥ 200,000 rows/s", atLeast(200_000))
	b.rep.compare("Dataset pull: exchange / transport ceiling", rows, b.rep.get(workload, sysTransport, "rows/s"), "", nil)
	b.rep.compare("Dataset pull: server Go heap growth", b.rep.get(workload, sysExchange+", server Go heap growth (peak − before)", "MiB"), nil, "< 64 MiB", below(64))
	b.rep.compare("Dataset pull: server anonymous RSS growth", b.rep.get(workload, sysExchange+", server anonymous RSS growth (peak − before)", "MiB"), nil, "< 64 MiB", below(64))
	return nil
}
