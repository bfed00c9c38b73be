package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/bench/loadgen"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// startupAndReads seeds one database with --records referrals (ilo → iom)
// and measures, on it, exchanged's start-up, Get by id, inbox List pages,
// the latency of a List page deep in the inbox against the first, and
// filtered List pages against unfiltered ones.
func (b *bench) startupAndReads(ctx context.Context) error {
	o := b.opt
	dir, err := b.newDataDir("reads-exchange")
	if err != nil {
		return err
	}
	fmt.Printf(" seeding %d referrals through the store (set-up, not measured)\n", o.records)
	var names []string
	took, err := timed(func() (err error) {
		names, err = seedReferrals(ctx, dir, o.records, 10_000)
		return err
	})
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Printf(" seeded in %s\n", took.Round(time.Second))
	if b.want("startup") {
		if err := b.startup(ctx, dir); err != nil {
			return err
		}
	}
	if b.want("reads") {
		if err := b.reads(ctx, dir, names); err != nil {
			return err
		}
	}
	if b.want("filtered") {
		b.stopAll() // the reads' exchanged holds the database's lock
		if err := b.filtered(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

// reads measures Get by id and inbox List pages against the transport
// ceiling and etcd, and a deep List page against the first.
func (b *bench) reads(ctx context.Context, dir string, names []string) error {
	o := b.opt
	ex, err := b.startExchanged("reads-exchange", dir, false)
	if err != nil {
		return err
	}
	b.track(ex)
	senders, err := b.dialPool(ex.addr, sender, o.conns)
	if err != nil {
		return err
	}
	defer senders.Close()
	receivers, err := b.dialPool(ex.addr, receiver, o.conns)
	if err != nil {
		return err
	}
	defer receivers.Close()

	inbox := func(pageSize int32, token string) *exchangev1.ListReferralsRequest {
		return &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, PageSize: pageSize, PageToken: token}
	}
	responses := filepath.Join(b.work, "responses-reads")
	got, err := exchangev1.NewReferralServiceClient(senders[0].Conn()).GetReferral(ctx, &exchangev1.GetReferralRequest{Name: names[0]})
	if err != nil {
		return err
	}
	listed, err := exchangev1.NewReferralServiceClient(receivers[0].Conn()).ListReferrals(ctx, inbox(100, ""))
	if err != nil {
		return err
	}
	if len(listed.GetReferrals()) != 100 {
		return fmt.Errorf("first inbox page has %d referrals, want 100", len(listed.GetReferrals()))
	}
	if err := saveResponse(responses, "GetReferral", got); err != nil {
		return err
	}
	if err := saveResponse(responses, "ListReferrals", listed); err != nil {
		return err
	}
	noop, err := b.startNoop("reads-noop", responses)
	if err != nil {
		return err
	}
	b.track(noop)
	noopSenders, err := b.dialPool(noop.addr, sender, o.conns)
	if err != nil {
		return err
	}
	defer noopSenders.Close()
	noopReceivers, err := b.dialPool(noop.addr, receiver, o.conns)
	if err != nil {
		return err
	}
	defer noopReceivers.Close()

	peer, err := b.startEtcd("reads-etcd")
	if err != nil {
		return err
	}
	b.track(peer)
	valueSize := proto.Size(newReferral(0))
	loaded, err := b.etcdLoad(ctx, peer, "load", "--keys", strconv.Itoa(o.etcdKeys), "--value-size", strconv.Itoa(valueSize))
	if err != nil {
		return err
	}
	fmt.Printf(" preloaded %d keys into etcd in %.1fs\n", o.etcdKeys, loaded.Seconds)
	b.rep.note("Reads: the exchange holds %s referrals; etcd holds %s keys of %d bytes (its Get and range references).",
		num(float64(o.records)), num(float64(o.etcdKeys)), valueSize)

	// The token of the page that starts 90% of the way into the inbox,
	// found by paging there (1,000 per page) through the API.
	deepAt := o.records * 9 / 10
	var deepToken string
	took, err := timed(func() error {
		rc := exchangev1.NewReferralServiceClient(receivers[0].Conn())
		for seen := 0; seen < deepAt; {
			resp, err := rc.ListReferrals(ctx, inbox(int32(min(1000, deepAt-seen)), deepToken))
			if err != nil {
				return err
			}
			seen += len(resp.GetReferrals())
			deepToken = resp.GetNextPageToken()
			if deepToken == "" {
				return fmt.Errorf("the inbox ended after %d referrals", seen)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("paging to referral %d: %w", deepAt, err)
	}
	fmt.Printf(" paged to referral %d in %s\n", deepAt, took.Round(time.Millisecond))

	const getName = "Get by id"
	listName := "Inbox List, pages of 100"
	getOp := func(p pool) loadgen.Op {
		return func(ctx context.Context, w int, _ int64) (int, error) {
			_, err := p.get(w).Referrals.Get(ctx, names[rand.IntN(len(names))])
			return 1, err
		}
	}
	// Each worker pages through the inbox from the newest, 50 pages, then
	// starts again.
	listOp := func(p pool) loadgen.Op {
		tokens := make([]string, o.clients)
		return func(ctx context.Context, w int, seq int64) (int, error) {
			if seq%50 == 0 {
				tokens[w] = ""
			}
			resp, err := exchangev1.NewReferralServiceClient(p.get(w).Conn()).ListReferrals(ctx, inbox(100, tokens[w]))
			tokens[w] = resp.GetNextPageToken()
			return 1, err
		}
	}
	record := func(workload, system, unit string, r loadgen.Result) {
		show(workload, system, r, unit)
		b.rep.record(workload, system, unit, r.ItemsPerSec())
	}
	gets := []system{
		{sysExchange, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.clients, getOp(senders))
			record(getName, sysExchange, "gets/s", r)
			return err
		}},
		{sysTransport, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.clients, getOp(noopSenders))
			record(getName, sysTransport, "gets/s", r)
			return err
		}},
		{"etcd get (linearizable)", func(ctx context.Context) error {
			r, err := b.etcdLoad(ctx, peer, "get", "--clients", strconv.Itoa(o.clients), "--keys", strconv.Itoa(o.etcdKeys))
			record(getName, "etcd get (linearizable)", "gets/s", r)
			return err
		}},
	}
	lists := []system{
		{sysExchange, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.clients, listOp(receivers))
			record(listName, sysExchange, "pages/s", r)
			return err
		}},
		{sysTransport, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.clients, listOp(noopReceivers))
			record(listName, sysTransport, "pages/s", r)
			return err
		}},
		{"etcd range, limit 100", func(ctx context.Context) error {
			r, err := b.etcdLoad(ctx, peer, "range", "--clients", strconv.Itoa(o.clients), "--batch", "100")
			r.Items = r.Ops // pages, not keys
			record(listName, "etcd range, limit 100", "pages/s", r)
			return err
		}},
	}
	deepName := fmt.Sprintf("List page latency, 1 client, %s referrals", num(float64(o.records)))
	deep := func(ctx context.Context) error {
		rc := exchangev1.NewReferralServiceClient(receivers[0].Conn())
		var first, deep []time.Duration
		for range 100 {
			for _, token := range []string{"", deepToken} {
				start := time.Now()
				resp, err := rc.ListReferrals(ctx, inbox(100, token))
				d := time.Since(start)
				if err != nil {
					return err
				}
				if len(resp.GetReferrals()) != 100 {
					return fmt.Errorf("page has %d referrals, want 100", len(resp.GetReferrals()))
				}
				if token == "" {
					first = append(first, d)
				} else {
					deep = append(deep, d)
				}
			}
		}
		f, d := loadgen.Millis(loadgen.Percentile(first, 50)), loadgen.Millis(loadgen.Percentile(deep, 50))
		fmt.Printf("  %-28s first page p50 %.2f ms, page at referral %d p50 %.2f ms\n", deepName, f, deepAt, d)
		b.rep.record(deepName, "exchange, first page", "ms p50", f)
		b.rep.record(deepName, fmt.Sprintf("exchange, page at referral %s", num(float64(deepAt))), "ms p50", d)
		return nil
	}
	for round := range o.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, gets); err != nil {
			return err
		}
		if err := b.alternate(ctx, round, lists); err != nil {
			return err
		}
		if err := deep(ctx); err != nil {
			return err
		}
	}
	b.rep.compare("Get: exchange / transport ceiling", b.rep.get(getName, sysExchange, "gets/s"), b.rep.get(getName, sysTransport, "gets/s"), "", nil)
	b.rep.compare("Get: exchange / etcd get", b.rep.get(getName, sysExchange, "gets/s"), b.rep.get(getName, "etcd get (linearizable)", "gets/s"), "", nil)
	b.rep.compare("Inbox List: exchange / transport ceiling", b.rep.get(listName, sysExchange, "pages/s"), b.rep.get(listName, sysTransport, "pages/s"), "", nil)
	b.rep.compare("Inbox List: exchange / etcd range", b.rep.get(listName, sysExchange, "pages/s"), b.rep.get(listName, "etcd range, limit 100", "pages/s"), "", nil)
	b.rep.compare("Deep List page / first page (latency)",
		b.rep.get(deepName, fmt.Sprintf("exchange, page at referral %s", num(float64(deepAt))), "ms p50"),
		b.rep.get(deepName, "exchange, first page", "ms p50"), "≤ 2×", func(v float64) bool { return v <= 2 })
	return nil
}
