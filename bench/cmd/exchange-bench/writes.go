package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/bench/loadgen"
	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// pushSeq numbers the referrals the bench sends, so that each has its own
// case reference.
var pushSeq atomic.Int64

// batchRequests builds one batched push: n referrals, each with its own
// request id.
func batchRequests(n int) []*exchangev1.CreateReferralRequest {
	reqs := make([]*exchangev1.CreateReferralRequest, n)
	for i := range reqs {
		reqs[i] = &exchangev1.CreateReferralRequest{Referral: newReferral(pushSeq.Add(1)), RequestId: client.NewRequestID()}
	}
	return reqs
}

// pushBatch sends a batch and fails unless every referral was accepted.
func pushBatch(ctx context.Context, c *client.Client, n int) (int, error) {
	results, err := c.Referrals.BatchCreate(ctx, batchRequests(n))
	if err != nil {
		return 0, err
	}
	for _, r := range results {
		if r.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED {
			return 0, fmt.Errorf("push not accepted: %v", r)
		}
	}
	return len(results), nil
}

// writes measures referral ingest, one per call from 64 clients and in
// batches of 100 from 8 clients, on the exchange, the transport ceiling,
// the storage ceiling and etcd, each with a fresh data directory. Both
// workloads run in every round, so that the batched push is compared with
// etcd's single puts of the same round.
func (b *bench) writes(ctx context.Context) error {
	o := b.opt
	dir, err := b.newDataDir("writes-exchange")
	if err != nil {
		return err
	}
	ex, err := b.startExchanged("writes-exchange", dir, false)
	if err != nil {
		return err
	}
	b.track(ex)
	if err := b.createAgencies(ctx, ex.addr); err != nil {
		return err
	}
	exPool, err := b.dialPool(ex.addr, sender, o.conns)
	if err != nil {
		return err
	}
	defer exPool.Close()

	// The no-op server answers with the exchange's own responses.
	responses := filepath.Join(b.work, "responses-writes")
	raw := exchangev1.NewReferralServiceClient(exPool[0].Conn())
	created, err := raw.CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral(0), RequestId: client.NewRequestID()})
	if err != nil {
		return err
	}
	batched, err := raw.BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: batchRequests(o.batch)})
	if err != nil {
		return err
	}
	if err := saveResponse(responses, "CreateReferral", created); err != nil {
		return err
	}
	if err := saveResponse(responses, "BatchCreateReferrals", batched); err != nil {
		return err
	}
	noop, err := b.startNoop("writes-noop", responses)
	if err != nil {
		return err
	}
	b.track(noop)
	noopPool, err := b.dialPool(noop.addr, sender, o.conns)
	if err != nil {
		return err
	}
	defer noopPool.Close()

	// The storage ceiling writes what the store writes per referral, as
	// CreateReferral and as BatchCreateReferrals make it write.
	puts, err := captureWriteSet(ctx, b.work, false)
	if err != nil {
		return fmt.Errorf("capturing the store's write set: %w", err)
	}
	batchPuts, err := captureWriteSet(ctx, b.work, true)
	if err != nil {
		return fmt.Errorf("capturing the store's write set: %w", err)
	}
	fmt.Printf(" a referral's write set through CreateReferral: %s\n", describeWriteSet(puts))
	fmt.Printf(" through BatchCreateReferrals: %s\n", describeWriteSet(batchPuts))
	ceil, err := openCeiling(filepath.Join(b.work, "storage-ceiling.db"), puts)
	if err != nil {
		return err
	}
	defer ceil.close()
	batchCeil, err := openCeiling(filepath.Join(b.work, "storage-ceiling-batch.db"), batchPuts)
	if err != nil {
		return err
	}
	defer batchCeil.close()

	peer, err := b.startEtcd("writes-etcd")
	if err != nil {
		return err
	}
	b.track(peer)
	valueSize := proto.Size(newReferral(0))
	b.rep.note("Payload: one referral is %d bytes as sent (CreateReferralRequest %d bytes); etcd puts values of %d bytes. Per referral the store writes %d key/value pairs, %d bytes, through CreateReferral and %d pairs, %d bytes, through BatchCreateReferrals; the storage ceiling writes the same.",
		valueSize, proto.Size(&exchangev1.CreateReferralRequest{Referral: newReferral(0), RequestId: client.NewRequestID()}), valueSize,
		len(puts), writeSetBytes(puts), len(batchPuts), writeSetBytes(batchPuts))

	const create = "Create, 1 per call"
	batchName := fmt.Sprintf("Batched push, %d per call", o.batch)
	etcdTxn := fmt.Sprintf("etcd, txn of %d puts per call", o.batch)
	record := func(workload, system string, r loadgen.Result) {
		show(workload, system, r, "referrals/s")
		b.rep.record(workload, system, "referrals/s", r.ItemsPerSec())
		if workload == create {
			b.rep.record(workload, system, "ms p50", r.P50Ms)
		}
	}
	single := []system{
		{sysExchange, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.clients, func(ctx context.Context, w int, _ int64) (int, error) {
				_, err := exPool.get(w).Referrals.Create(ctx, newReferral(pushSeq.Add(1)))
				return 1, err
			})
			record(create, sysExchange, r)
			return err
		}},
		{sysTransport, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.clients, func(ctx context.Context, w int, _ int64) (int, error) {
				_, err := noopPool.get(w).Referrals.Create(ctx, newReferral(pushSeq.Add(1)))
				return 1, err
			})
			record(create, sysTransport, r)
			return err
		}},
		{sysStorage, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.clients, func(context.Context, int, int64) (int, error) { return 1, ceil.write(1) })
			record(create, sysStorage, r)
			return err
		}},
		{sysEtcdPut, func(ctx context.Context) error {
			r, err := b.etcdLoad(ctx, peer, "put", "--clients", strconv.Itoa(o.clients), "--value-size", strconv.Itoa(valueSize))
			record(create, sysEtcdPut, r)
			return err
		}},
	}
	batch := []system{
		{sysExchange, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.batchClients, func(ctx context.Context, w int, _ int64) (int, error) {
				return pushBatch(ctx, exPool.get(w), o.batch)
			})
			record(batchName, sysExchange, r)
			return err
		}},
		{sysTransport, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.batchClients, func(ctx context.Context, w int, _ int64) (int, error) {
				return pushBatch(ctx, noopPool.get(w), o.batch)
			})
			record(batchName, sysTransport, r)
			return err
		}},
		{sysStorage, func(ctx context.Context) error {
			r, err := b.throughput(ctx, o.batchClients, func(context.Context, int, int64) (int, error) { return o.batch, batchCeil.write(o.batch) })
			record(batchName, sysStorage, r)
			return err
		}},
		{etcdTxn, func(ctx context.Context) error {
			r, err := b.etcdLoad(ctx, peer, "txn", "--clients", strconv.Itoa(o.batchClients), "--batch", strconv.Itoa(o.batch), "--value-size", strconv.Itoa(valueSize))
			record(batchName, etcdTxn, r)
			return err
		}},
	}
	for round := range o.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, single); err != nil {
			return err
		}
		if err := b.alternate(ctx, round, batch); err != nil {
			return err
		}
	}
	get := func(workload, system string) *series { return b.rep.get(workload, system, "referrals/s") }
	b.rep.compare("Create: exchange / etcd put", get(create, sysExchange), get(create, sysEtcdPut), "≥ 1.5×", atLeast(1.5))
	b.rep.compare("Create: exchange / transport ceiling", get(create, sysExchange), get(create, sysTransport), "≥ 0.40×", atLeast(0.40))
	b.rep.compare("Create: exchange / storage ceiling", get(create, sysExchange), get(create, sysStorage), "", nil)
	b.rep.compare("Batched push: exchange / etcd single puts (same round)", get(batchName, sysExchange), get(create, sysEtcdPut), "≥ 10×", atLeast(10))
	b.rep.compare("Batched push: exchange / storage ceiling", get(batchName, sysExchange), get(batchName, sysStorage), "≥ 0.50×", atLeast(0.50))
	b.rep.compare("Batched push: exchange / transport ceiling", get(batchName, sysExchange), get(batchName, sysTransport), "", nil)
	b.rep.compare("Batched push: exchange / "+etcdTxn, get(batchName, sysExchange), get(batchName, etcdTxn), "", nil)
	return nil
}
