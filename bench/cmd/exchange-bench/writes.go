package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

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
// the storage ceiling and etcd. Both workloads run in every round, so
// that the batched push is compared with etcd's single puts of the same
// round. Every system that stores writes each measured window into a
// fresh database (a new data directory, process or file), so that no
// window starts on a file that earlier windows grew: kept across rounds,
// the storage ceiling, which writes the most, slowed by a third in the
// later rounds and flattered the exchange's ratio to it.
func (b *bench) writes(ctx context.Context) error {
	o := b.opt

	// The no-op server answers with the exchange's own responses,
	// captured from an exchange of their own.
	responses := filepath.Join(b.work, "responses-writes")
	if err := b.captureWriteResponses(ctx, responses); err != nil {
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

	valueSize := proto.Size(newReferral(0))
	createResponse, err := os.Stat(filepath.Join(responses, "CreateReferral.pb"))
	if err != nil {
		return err
	}
	b.rep.note("Payload: one referral is %d bytes as sent (CreateReferralRequest %d bytes); etcd puts values of %d bytes. Per referral the store writes %d key/value pairs, %d bytes, through CreateReferral and %d pairs, %d bytes, through BatchCreateReferrals; the storage ceiling writes the same. CreateReferral's response is %d bytes: the client library asks the exchange not to send back the sealed details it sent (omit_sent_sealed_details), and the no-op server sends the same response.",
		valueSize, proto.Size(&exchangev1.CreateReferralRequest{Referral: newReferral(0), RequestId: client.NewRequestID(), OmitSentSealedDetails: true}), valueSize,
		len(puts), writeSetBytes(puts), len(batchPuts), writeSetBytes(batchPuts), createResponse.Size())
	b.rep.note("Writes: every measured window of the exchange, the storage ceiling and etcd starts on a fresh database.")
	perSeal, blobSize, err := sealCost(200)
	if err != nil {
		return fmt.Errorf("measuring the client's sealing: %w", err)
	}
	fmt.Printf(" the sending client seals each referral's details before it sends it: %.0f µs of CPU per referral (200 seals, a %d-byte blob), outside the measured windows\n",
		float64(perSeal)/float64(time.Microsecond), blobSize)
	b.rep.note("Sealing: the sending client seals each referral's identifying details (age, ML-KEM-768 + X25519, to the receiver and itself): %.0f µs of CPU per referral, measured apart over 200 seals; a blob is %d bytes. Referrals are sealed before the measured windows, which measure the exchange alone.",
		float64(perSeal)/float64(time.Microsecond), blobSize)

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
	// onExchange measures workers running op against a fresh exchange,
	// and records the exchange's CPU time per referral over the run.
	onExchange := func(ctx context.Context, workload string, workers int, op func(p pool) loadgen.Op) (loadgen.Result, error) {
		ex, err := b.freshExchange(ctx, "writes-exchange")
		if err != nil {
			return loadgen.Result{}, err
		}
		defer ex.close()
		r, cpu, err := b.measureServerCPU(ctx, ex.proc.pid(), workers, op(ex.pool))
		if err == nil {
			fmt.Printf("  %-28s %-34s %12.1f µs of server CPU per referral (%.2f s over %d referrals, warm-up included); the sending clients %.1f µs\n",
				workload, sysExchange, cpu.perItem(), cpu.cpu.Seconds(), cpu.items, cpu.clientPerItem())
			b.rep.record(workload, sysExchange, "µs server CPU per referral", cpu.perItem())
			b.rep.record(workload, sysExchange, "µs client CPU per referral", cpu.clientPerItem())
		}
		return r, err
	}
	// onCeiling measures workers writing n referrals per call into a
	// fresh storage ceiling with the write set puts.
	onCeiling := func(ctx context.Context, workers, n int, puts []put) (loadgen.Result, error) {
		ceil, err := openCeiling(filepath.Join(b.work, "storage-ceiling.db"), puts)
		if err != nil {
			return loadgen.Result{}, err
		}
		defer ceil.close()
		return b.throughput(ctx, workers, func(context.Context, int, int64) (int, error) { return n, ceil.write(n) })
	}
	// onEtcd runs etcd-load against a fresh etcd.
	onEtcd := func(ctx context.Context, workload string, args ...string) (loadgen.Result, error) {
		peer, err := b.startEtcd("writes-etcd")
		if err != nil {
			return loadgen.Result{}, err
		}
		b.track(peer)
		defer peer.discard()
		return b.etcdLoad(ctx, peer, workload, args...)
	}
	single := []system{
		{sysExchange, func(ctx context.Context) error {
			r, err := onExchange(ctx, create, o.clients, func(p pool) loadgen.Op {
				return func(ctx context.Context, w int, _ int64) (int, error) {
					_, err := p.get(w).Referrals.Create(ctx, newReferral(pushSeq.Add(1)))
					return 1, err
				}
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
			r, err := onCeiling(ctx, o.clients, 1, puts)
			record(create, sysStorage, r)
			return err
		}},
		{sysEtcdPut, func(ctx context.Context) error {
			r, err := onEtcd(ctx, "put", "--clients", strconv.Itoa(o.clients), "--value-size", strconv.Itoa(valueSize))
			record(create, sysEtcdPut, r)
			return err
		}},
	}
	batch := []system{
		{sysExchange, func(ctx context.Context) error {
			r, err := onExchange(ctx, batchName, o.batchClients, func(p pool) loadgen.Op {
				return func(ctx context.Context, w int, _ int64) (int, error) {
					return pushBatch(ctx, p.get(w), o.batch)
				}
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
			r, err := onCeiling(ctx, o.batchClients, o.batch, batchPuts)
			record(batchName, sysStorage, r)
			return err
		}},
		{etcdTxn, func(ctx context.Context) error {
			r, err := onEtcd(ctx, "txn", "--clients", strconv.Itoa(o.batchClients), "--batch", strconv.Itoa(o.batch), "--value-size", strconv.Itoa(valueSize))
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
	// Issue #22's targets: Create ≥ 1.5× etcd's put and ≥ 0.4× the
	// transport ceiling; a batched push ≥ 1.0× etcd's transaction of 100
	// puts and ≥ 0.6× the storage ceiling.
	b.rep.compare("Create: exchange / etcd put", get(create, sysExchange), get(create, sysEtcdPut), "≥ 1.5×", atLeast(1.5))
	b.rep.compare("Create: exchange / transport ceiling", get(create, sysExchange), get(create, sysTransport), "≥ 0.40×", atLeast(0.40))
	b.rep.compare("Create: exchange / storage ceiling", get(create, sysExchange), get(create, sysStorage), "", nil)
	b.rep.compare("Batched push: exchange / "+etcdTxn, get(batchName, sysExchange), get(batchName, etcdTxn), "≥ 1.0×", atLeast(1.0))
	b.rep.compare("Batched push: exchange / storage ceiling", get(batchName, sysExchange), get(batchName, sysStorage), "≥ 0.60×", atLeast(0.60))
	b.rep.compare("Batched push: exchange / etcd single puts (same round)", get(batchName, sysExchange), get(create, sysEtcdPut), "", nil)
	b.rep.compare("Batched push: exchange / transport ceiling", get(batchName, sysExchange), get(batchName, sysTransport), "", nil)
	return nil
}

// captureWriteResponses saves, in dir, the responses of an exchange to a
// CreateReferral and to a batched push, for the no-op server to send.
func (b *bench) captureWriteResponses(ctx context.Context, dir string) error {
	ex, err := b.freshExchange(ctx, "writes-capture")
	if err != nil {
		return err
	}
	defer ex.close()
	raw := exchangev1.NewReferralServiceClient(ex.pool[0].Conn())
	// As the client library sends it: without the sent blob echoed.
	created, err := raw.CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral(0), RequestId: client.NewRequestID(), OmitSentSealedDetails: true})
	if err != nil {
		return err
	}
	if !created.GetSealedDetailsOmitted() {
		return fmt.Errorf("the exchange echoed the sealed details of a CreateReferral that asked it not to")
	}
	batched, err := raw.BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: batchRequests(b.opt.batch)})
	if err != nil {
		return err
	}
	if err := saveResponse(dir, "CreateReferral", created); err != nil {
		return err
	}
	return saveResponse(dir, "BatchCreateReferrals", batched)
}

// freshExchange is an exchange started on a new data directory, with the
// bench agencies in its directory and a pool of the sender's connections.
type freshExchange struct {
	proc *proc
	dir  string
	pool pool
	keep bool // keep the data directory (--keep)
}

// freshExchange starts an exchange on a new data directory.
func (b *bench) freshExchange(ctx context.Context, name string) (*freshExchange, error) {
	dir, err := b.newDataDir(name)
	if err != nil {
		return nil, err
	}
	p, err := b.startExchanged(name, dir, false)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b.track(p)
	ex := &freshExchange{proc: p, dir: dir, keep: b.opt.keep}
	if err := b.createAgencies(ctx, p.addr); err != nil {
		ex.close()
		return nil, err
	}
	if ex.pool, err = b.dialPool(p.addr, sender, b.opt.conns); err != nil {
		ex.close()
		return nil, err
	}
	return ex, nil
}

// close stops the exchange and removes its data directory, unless the
// bench keeps its scratch directory.
func (ex *freshExchange) close() {
	ex.pool.Close()
	ex.proc.stop()
	if !ex.keep {
		os.RemoveAll(ex.dir)
	}
}
