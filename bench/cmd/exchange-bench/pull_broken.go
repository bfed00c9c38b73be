package main

import (
	"context"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/internal/faultproxy"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// pullBroken measures what a link that keeps dropping costs a pull
// (issue #21: a pull of 1,000,000 rows through a link that drops every
// 100,000 rows costs no more than 1.2× an unbroken pull). The whole --rows
// dataset is pulled with the Go client's Pull, which resumes a broken
// stream after the last message it delivered (the production path of
// exchangectl datasets pull), through two fault proxies in this process
// in front of the same exchanged: one that passes everything (the
// reference) and one that cuts each connection once it has carried the
// bytes of --pull-cut-rows rows (measured first, with an unbroken pull).
// Every pull must deliver each row once: as many rows as were seeded,
// and the same sum of their keys' hashes.
func (b *bench) pullBroken(ctx context.Context, ex *proc) error {
	o := b.opt
	pass, err := faultproxy.New(ex.addr)
	if err != nil {
		return err
	}
	defer pass.Close()
	cut, err := faultproxy.New(ex.addr)
	if err != nil {
		return err
	}
	defer cut.Close()
	req := &exchangev1.PullDatasetRowsRequest{Dataset: pullDatasetName, PageSize: int32(o.pullPage)}
	keys := newRowKeys()
	want := keys.expected(o.rows)

	// The bytes of a row on this link, from an unmeasured unbroken pull
	// (which also warms the page cache as the pull workload left it).
	warm, err := b.pullThrough(ctx, pass, req, keys, want)
	if err != nil {
		return fmt.Errorf("unbroken pull, to measure the bytes per row: %w", err)
	}
	perRow := float64(warm.bytes) / float64(o.rows)
	cutAfter := int64(perRow * float64(o.pullCutRows))
	cut.CutAfter(cutAfter)
	b.rep.note("Pull through a dropping link: %.1f bytes per row from the server (TLS and HTTP/2 framing included), so the link is cut after %s bytes on each connection (%s rows).",
		perRow, num(float64(cutAfter)), num(float64(o.pullCutRows)))

	workload := fmt.Sprintf("Dataset pull through a dropping link, %s rows", num(float64(o.rows)))
	sysWhole := "exchange, unbroken link (reference)"
	sysCut := fmt.Sprintf("exchange, link cut every %s rows", num(float64(o.pullCutRows)))
	measure := func(system string, p *faultproxy.Proxy) func(context.Context) error {
		return func(ctx context.Context) error {
			r, err := b.pullThrough(ctx, p, req, keys, want)
			if err != nil {
				return err
			}
			fmt.Printf("  %-28s %-34s %8.3f s, %s bytes from the server, %d reconnections (%d cuts), %v waited before them\n",
				workload, system, r.took.Seconds(), num(float64(r.bytes)), r.reconnects, r.cuts, r.waited.Round(time.Millisecond))
			b.rep.record(workload, system, "s", r.took.Seconds())
			b.rep.record(workload, system, "MB from the server", float64(r.bytes)/1e6)
			b.rep.record(workload, system, "reconnections", float64(r.reconnects))
			return nil
		}
	}
	systems := []system{{sysCut, measure(sysCut, cut)}, {sysWhole, measure(sysWhole, pass)}}
	for round := range o.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, systems); err != nil {
			return err
		}
	}
	cutRows := num(float64(o.pullCutRows))
	b.rep.compare(fmt.Sprintf("Pull through a link cut every %s rows / unbroken pull (time)", cutRows),
		b.rep.get(workload, sysCut, "s"), b.rep.get(workload, sysWhole, "s"), "≤ 1.2×", atMost(1.2))
	b.rep.compare(fmt.Sprintf("Pull through a link cut every %s rows / unbroken pull (bytes)", cutRows),
		b.rep.get(workload, sysCut, "MB from the server"), b.rep.get(workload, sysWhole, "MB from the server"), "", nil)
	return nil
}

// brokenPull is one pull through a proxy.
type brokenPull struct {
	took       time.Duration // from the call to Pull to its return
	bytes      int64         // from the server through the proxy
	reconnects int           // OnReconnect calls
	waited     time.Duration // the waits OnReconnect was told of, summed
	cuts       int64         // connections the proxy cut
}

// pullThrough pulls req whole as the sender through a new client
// connected to p, and fails unless it delivered each of the seeded rows
// once (want) and every message carried the revision of the first.
func (b *bench) pullThrough(ctx context.Context, p *faultproxy.Proxy, req *exchangev1.PullDatasetRowsRequest, keys *rowKeys, want rowSum) (brokenPull, error) {
	var r brokenPull
	c, err := b.dial(p.Addr(), sender)
	if err != nil {
		return r, err
	}
	defer c.Close()
	bytes, cuts := p.FromServer(), p.Cuts()
	var got rowSum
	var revision int64
	start := time.Now()
	err = c.Datasets.Pull(ctx, req, func(m *exchangev1.PullDatasetRowsResponse) error {
		if revision == 0 {
			revision = m.GetRevision()
		} else if m.GetRevision() != revision {
			return fmt.Errorf("a message carries revision %d, the pull's first %d", m.GetRevision(), revision)
		}
		for _, row := range m.GetRows() {
			got.add(keys.of(row))
		}
		return nil
	}, client.OnReconnect(func(_ error, wait time.Duration, _ int64) {
		r.reconnects++
		r.waited += wait
	}))
	r.took = time.Since(start)
	r.bytes, r.cuts = p.FromServer()-bytes, p.Cuts()-cuts
	if err != nil {
		return r, err
	}
	if got != want {
		return r, fmt.Errorf("pulled %d rows with key sum %#x, want each of the %d seeded once (key sum %#x)", got.rows, got.sum, want.rows, want.sum)
	}
	return r, nil
}

// rowKeys hashes a row's key (contributor, period, location and
// categories, as the exchange keys rows) with one seed per run.
type rowKeys struct {
	seed maphash.Seed
}

func newRowKeys() *rowKeys { return &rowKeys{seed: maphash.MakeSeed()} }

// of is the hash of row's key. The pull dataset's categories are sex and
// age_group, hashed in that order after their count.
func (k *rowKeys) of(row *exchangev1.Row) uint64 {
	var h maphash.Hash
	h.SetSeed(k.seed)
	for _, s := range []string{row.GetContributor(), row.GetPeriod(), row.GetLocation(), row.GetCategories()["sex"], row.GetCategories()["age_group"]} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	h.WriteByte(byte(len(row.GetCategories())))
	return h.Sum64()
}

// expected is the sum of the n seeded rows (seedRows, contributed by the
// receiver).
func (k *rowKeys) expected(n int) rowSum {
	var s rowSum
	for j := range n {
		row := pullRow(j)
		row.Contributor = "agencies/" + receiver
		s.add(k.of(row))
	}
	return s
}

// rowSum counts rows and adds their key hashes (modulo 2^64): a row
// delivered twice, or one missing, changes it.
type rowSum struct {
	rows int
	sum  uint64
}

func (s *rowSum) add(h uint64) { s.rows++; s.sum += h }

func atMost(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
