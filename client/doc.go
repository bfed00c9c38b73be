// Package client is the typed Go client of the exchange, the service through
// which anti-trafficking agencies share referrals, datasets and plans. It
// wraps the generated gRPC stubs with one documented method per call,
// iterators that hide paging, automatic idempotency keys and safe retries.
//
// # Basics
//
// Dial prepares a connection over mutual TLS 1.3. The caller's identity is
// its client certificate: an agency uses the certificate and key made by
// `exchangectl certs issue --agency ID`, the secretariat the files that
// exchanged writes into its data directory on first start.
//
//	c, err := client.Dial(ctx, client.Config{
//		Address:  "127.0.0.1:7443",
//		CertFile: "ilo.crt",
//		KeyFile:  "ilo.key",
//		CAFile:   "ca.crt",
//	})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//
// The server certificate is checked against Config.ServerName, by default
// the host part of the address. Dial reads the files at once and reports a
// missing or mismatched file, but does not wait for the network: the first
// call connects.
//
// # Several replicas
//
// To reach several exchanged replicas without a load balancer, list them
// in Config.Addresses (each host:port) instead of Address: calls are
// balanced round robin over the replicas that answer, a replica that is
// down is skipped, and a call caught by its death is retried on another
// (when its retry policy allows, see below). Address
// "dns:///exchange.example.org:7443" does the same over every address a
// DNS name resolves to. Every replica's certificate is checked against
// the one ServerName, by default the host part of the first address, so
// each must be valid for it.
//
// # Sub-clients
//
// The Client has one field per service:
//
//   - Directory (DirectoryClient): agencies, focal points, working groups and
//     locations.
//   - Certificates (CertificateClient): issue, read and revoke client
//     certificates. Issue makes the private key locally; only a certificate
//     signing request goes to the server.
//   - Referrals (ReferralClient): send referrals of people to other
//     agencies, one or a batch at a time; move them through their states
//     (Acknowledge, Accept, Reject, Start, Complete, Cancel), revoke
//     consent, forward; suggest recipients; count; and Watch for changes.
//   - Datasets (DatasetClient): define shared datasets with a typed schema,
//     Write rows (upserts and deletions, many per call, each checked on its
//     own), Pull them whole or since a revision (resumed after a broken
//     stream), Aggregate them with small-cell suppression, Lock and Unlock
//     periods, report Completeness, and WatchRows for changes.
//   - Plans (PlanClient): share plans from their inception stage (Create,
//     Update, Cancel; Get any version, Versions, Diff), keep an agency's
//     plans in sync with a complete set (Apply) or an IATI activity file
//     (ImportIati), find Overlaps, Gaps and Coverage across agencies, and
//     Watch for changes.
//
// Methods take and return the generated messages of package exchangev1
// (github.com/alltogether/exchange/proto/alltogether/exchange/v1) and use
// full resource names ("agencies/ilo"); AgencyName, WorkingGroupName,
// LocationName, CertificateName, FocalPointName, ReferralName,
// DatasetName and PlanName build them from ids.
//
// # Iterators
//
// List calls are iterators (iter.Seq2) over every matching resource. They
// fetch the next page only when the loop needs it, and stop when the loop
// stops. An error is yielded once, as the second value, and ends the
// iteration:
//
//	for a, err := range c.Directory.Agencies(ctx, &exchangev1.ListAgenciesRequest{Country: "KH"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(a.GetName())
//	}
//
// Collect gathers an iterator into a slice.
//
// # Writes, idempotency and retries
//
// Create-like calls (CreateAgency, CreateFocalPoint, CreateWorkingGroup,
// Certificates.Issue, Referrals.Create, Referrals.Forward and
// Datasets.Create) carry a request_id: random, made once per call, or your
// own with WithRequestID. Referrals.BatchCreate gives each request without
// one a random id. The exchange answers a repeated request_id with the
// first result, so such calls are safe to repeat; pass ids derived from
// your own records to make them safe to repeat across processes too.
//
// Calls that fail with UNAVAILABLE are retried, up to four attempts in all,
// with exponential backoff (100ms, 200ms, 400ms, with jitter), but only
// where repeating cannot act twice: reads (Get, List, SuggestRecipients,
// Statistics, Aggregate, Completeness), create-like calls carrying
// request ids, and Datasets.Write, whose row upserts and deletions leave
// the same rows however often they are made. Updates, deletes and state
// verbs (suspend, reactivate, revoke, lock and unlock, and every referral
// verb but Forward) are made once; on UNAVAILABLE they may or may not have
// taken effect, so read the resource again before deciding. The decision is
// a table keyed by method name (see MethodRetryPolicy); methods missing from
// it, including any called through Conn on a service this package does not
// know, are never retried.
//
// Plans.Create carries a request_id like the calls above. Plans.Apply and
// Plans.ImportIati carry none: they are declarative, so running them again
// leaves the same plans, but their answer is the diff of what they changed,
// and a repeat after a lost answer would report as unchanged what the lost
// call changed. They are therefore retried only as dry runs
// (validate_only); after UNAVAILABLE, apply again and expect the plans the
// first call may have changed to show as unchanged.
//
// Updates carry the etag of the resource as last read. If someone changed it
// since, the call fails with ABORTED and reason ETAG_MISMATCH: read again,
// reapply the change and update again.
//
// # Watching referrals
//
// Referrals.Watch follows the caller's referrals as a stream of events. It
// reconnects by itself when the stream breaks and resumes where it was, so
// that no event is lost or repeated; it returns OUT_OF_RANGE when the
// exchange no longer keeps the changes it would need, and the caller then
// lists again:
//
//	for {
//		inbox, rev, err := c.Referrals.Snapshot(ctx, &exchangev1.ListReferralsRequest{
//			Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX,
//		})
//		if err != nil {
//			return err
//		}
//		load(inbox)
//		err = c.Referrals.Watch(ctx, rev, apply)
//		if status.Code(err) != codes.OutOfRange {
//			return err
//		}
//	}
//
// Plans.Watch follows the plans the caller may see, optionally only those
// touching some provinces or niches, and resumes exactly as
// Referrals.Watch does.
//
// # Pulling and watching dataset rows
//
// Datasets.Pull streams rows, many per message; when the stream breaks it
// resumes after the last message received, with its resume token, so
// that no row is lost or repeated. The revision of the pull (of its first
// message, even after a resumption) is where the next incremental pull
// starts:
//
//	req := &exchangev1.PullDatasetRowsRequest{Dataset: client.DatasetName("returns"), SinceRevision: last}
//	var next int64
//	err := c.Datasets.Pull(ctx, req, func(m *exchangev1.PullDatasetRowsResponse) error {
//		next = m.GetRevision()
//		return save(m.GetRows()) // deleted rows come as tombstones (Deleted)
//	})
//	if err == nil {
//		last = next // the next pull starts there
//	}
//
// Datasets.WatchRows follows row changes live and reconnects like Watch.
// Unlike referral events, rows of the one revision a broken stream had
// begun may be delivered again after the reconnection; rows are upserts
// keyed by contributor, period, location and categories, so applying one
// twice changes nothing.
//
// # Field offices: the outbox
//
// Config.FieldFile names a local file (package fieldfile, usually
// fieldfile.PathBeside(CertFile)) in which Client.Outbox keeps the writes
// made while the exchange cannot be reached: referral creates, forwards
// and state changes, dataset row writes and plan applies. Such a write
// returns an error for which IsQueued is true; it is sealed and kept, and
// Outbox.Send sends it, in order per referral, dataset or agency's plans,
// so that each is stored once. A write the exchange refuses when sent
// later stays in the outbox, rejected with the exchange's reason, until a
// person drops it (Outbox.Drop). See Outbox.
//
//	c, err := client.Dial(ctx, client.Config{..., FieldFile: fieldfile.PathBeside("ilo.crt")})
//	_, err = c.Referrals.Accept(ctx, name, etag)
//	if client.IsQueued(err) {
//		// kept; c.Outbox.Send(ctx) sends it once the line is back
//	}
//
// # Errors
//
// Errors are gRPC status errors, returned unchanged: use status.Code for the
// code, and IsNotFound, Reason (the ErrorInfo reason, such as "NOT_FOUND" or
// "ETAG_MISMATCH") and FieldViolations (which request fields were invalid)
// for the details the exchange attaches. Resources the caller may not see
// answer NOT_FOUND, exactly like missing ones.
//
// # Caveats
//
// Config.Timeout bounds only calls whose context has no deadline, and never
// Watch, Datasets.Pull or Datasets.WatchRows; set a deadline on the context
// to bound a whole iteration, a sequence of calls, a pull or a watch. The
// package clienttest runs a fake exchange for tests; it checks far less
// than the real server.
package client
