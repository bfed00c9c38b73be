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
//
// Methods take and return the generated messages of package exchangev1
// (github.com/alltogether/exchange/proto/alltogether/exchange/v1) and use
// full resource names ("agencies/ilo"); AgencyName, WorkingGroupName,
// LocationName, CertificateName, FocalPointName and ReferralName build
// them from ids.
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
// Certificates.Issue, Referrals.Create and Referrals.Forward) carry a
// request_id: random, made once per call, or your own with WithRequestID.
// Referrals.BatchCreate gives each request without one a random id. The
// exchange answers a repeated request_id with the first result, so such
// calls are safe to repeat; pass ids derived from your own records to make
// them safe to repeat across processes too.
//
// Calls that fail with UNAVAILABLE are retried, up to four attempts in all,
// with exponential backoff (100ms, 200ms, 400ms, with jitter), but only
// where repeating cannot act twice: reads (Get, List, SuggestRecipients,
// Statistics) and create-like calls carrying request ids. Updates, deletes
// and state verbs (suspend, reactivate, revoke, and every referral verb
// but Forward) are made once; on UNAVAILABLE they may or may not have
// taken effect, so read the resource again before deciding. The decision is
// a table keyed by method name (see MethodRetryPolicy); methods missing from
// it, including any called through Conn on a service this package does not
// know, are never retried.
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
// Watch; set a deadline on the context to bound a whole iteration, a
// sequence of calls or a watch. The package clienttest runs a fake exchange for tests; it checks
// far less than the real server.
package client
