package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/bench/loadgen"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// watch measures fan-out: 100 watch streams (the receiving agency's case
// systems, on 4 connections) follow referrals that 4 writers push in
// batches of 100; the figure is events delivered per second, from the
// first push to the last watcher receiving the last event. etcd's
// watchers follow a prefix that 4 writers fill with transactions of 100
// puts; the no-op server broadcasts a captured event per pushed referral.
func (b *bench) watch(ctx context.Context) error {
	o := b.opt
	const writers = 4
	dir, err := b.newDataDir("watch-exchange")
	if err != nil {
		return err
	}
	ex, err := b.startExchanged("watch-exchange", dir, false)
	if err != nil {
		return err
	}
	b.track(ex)
	if err := b.createAgencies(ctx, ex.addr); err != nil {
		return err
	}
	exWriters, err := b.dialPool(ex.addr, sender, o.conns)
	if err != nil {
		return err
	}
	defer exWriters.Close()
	exWatchers, err := b.dialPool(ex.addr, receiver, o.conns)
	if err != nil {
		return err
	}
	defer exWatchers.Close()

	// Capture one event and one batch response for the no-op server.
	responses := filepath.Join(b.work, "responses-watch")
	rawWatch := exchangev1.NewReferralServiceClient(exWatchers[0].Conn())
	head, err := rawWatch.ListReferrals(ctx, &exchangev1.ListReferralsRequest{PageSize: 1})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stream, err := rawWatch.WatchReferrals(sctx, &exchangev1.WatchReferralsRequest{StartRevision: head.GetRevision()})
	if err != nil {
		return err
	}
	batched, err := exchangev1.NewReferralServiceClient(exWriters[0].Conn()).BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: batchRequests(o.batch)})
	if err != nil {
		return err
	}
	var event *exchangev1.WatchReferralsResponse
	for event == nil {
		ev, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("capturing a watch event: %w", err)
		}
		if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
			event = ev
		}
	}
	cancel()
	if err := saveResponse(responses, "WatchReferrals", event); err != nil {
		return err
	}
	if err := saveResponse(responses, "BatchCreateReferrals", batched); err != nil {
		return err
	}
	noop, err := b.startNoop("watch-noop", responses)
	if err != nil {
		return err
	}
	b.track(noop)
	noopWriters, err := b.dialPool(noop.addr, sender, o.conns)
	if err != nil {
		return err
	}
	defer noopWriters.Close()
	noopWatchers, err := b.dialPool(noop.addr, receiver, o.conns)
	if err != nil {
		return err
	}
	defer noopWatchers.Close()

	peer, err := b.startEtcd("watch-etcd")
	if err != nil {
		return err
	}
	b.track(peer)

	workload := fmt.Sprintf("Watch fan-out, %d watchers", o.watchers)
	record := func(system string, r loadgen.Result) {
		fmt.Printf("  %-28s %-34s %12s events/s delivered (%d events written in %.2fs, all delivered in %.2fs)\n",
			workload, system, num(r.ItemsPerSec()), r.Ops, r.Extra["write_seconds"], r.Seconds)
		b.rep.record(workload, system, "events/s delivered", r.ItemsPerSec())
	}
	// fanOut runs one round; replays says whether the server replays
	// events from the revision a watcher asks for (the exchange does, so a
	// watcher is ready at once; the no-op server does not, so a watcher
	// is ready at the heartbeat it gets when subscribed).
	fanOut := func(ctx context.Context, writePool, watchPool pool, replays bool, from func() (int64, error)) (loadgen.Result, error) {
		rev, err := from()
		if err != nil {
			return loadgen.Result{}, err
		}
		return loadgen.FanOut(ctx, o.watchers, writers, o.watchWrites, 5*time.Minute,
			func(ctx context.Context, i int, ready func(), got func(int)) error {
				if replays {
					ready()
				}
				return watchPool.get(i).Referrals.Watch(ctx, rev, func(ev *exchangev1.WatchReferralsResponse) error {
					if ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
						ready()
					} else {
						got(1)
					}
					return nil
				})
			},
			func(ctx context.Context, w int, _ int64) (int, error) {
				return pushBatch(ctx, writePool.get(w), o.batch)
			})
	}
	systems := []system{
		{sysExchange, func(ctx context.Context) error {
			r, err := fanOut(ctx, exWriters, exWatchers, true, func() (int64, error) {
				resp, err := exchangev1.NewReferralServiceClient(exWatchers[0].Conn()).ListReferrals(ctx, &exchangev1.ListReferralsRequest{PageSize: 1})
				return resp.GetRevision(), err
			})
			record(sysExchange, r)
			return err
		}},
		{sysTransport, func(ctx context.Context) error {
			// The no-op server does not replay: each watcher is ready at
			// its first heartbeat, sent when it subscribes.
			r, err := fanOut(ctx, noopWriters, noopWatchers, false, func() (int64, error) { return 1, nil })
			record(sysTransport, r)
			return err
		}},
		{"etcd watch", func(ctx context.Context) error {
			r, err := b.etcdLoad(ctx, peer, "watch", "--watchers", strconv.Itoa(o.watchers), "--clients", strconv.Itoa(writers),
				"--writes", strconv.Itoa(o.watchWrites), "--batch", strconv.Itoa(o.batch), "--value-size", strconv.Itoa(proto.Size(newReferral(0))))
			record("etcd watch", r)
			return err
		}},
	}
	for round := range o.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, systems); err != nil {
			return err
		}
	}
	get := func(system string) *series { return b.rep.get(workload, system, "events/s delivered") }
	// Issue #22's targets: ≥ 1.0× etcd's watch, ≥ 0.8× the transport ceiling.
	b.rep.compare("Watch fan-out: exchange / etcd", get(sysExchange), get("etcd watch"), "≥ 1.0×", atLeast(1.0))
	b.rep.compare("Watch fan-out: exchange / transport ceiling", get(sysExchange), get(sysTransport), "≥ 0.80×", atLeast(0.80))
	return nil
}
